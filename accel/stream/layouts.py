"""Payload layouts of the streaming dataflow, defined once.

Every stream between two blocks of a streaming accelerator carries *words*:
``lanes`` values of one integer shape side by side (lane 0 in the low bits).
A feature map of ``C`` channels travels pixel by pixel, pixels row-major
(``y`` outer, ``x`` inner), and all ``C`` channels of a pixel -- folded into
``C / lanes`` consecutive words -- before the next pixel ("HWC" order). Which
logical channel each position of a pixel holds is a permutation that the
builder tracks (zero-weight balancing reorders output channels, and a flatten
turns a whole feature map into one "pixel"); blocks never need to know it,
only the parameters the builder hands them are reordered.
"""

from amaranth.hdl import Shape, signed, unsigned
from amaranth.lib import data
from amaranth.utils import ceil_log2

__all__ = ["value_shape", "word_layout", "result_layout", "class_shape"]


def value_shape(bits, is_signed):
    """The shape of one integer value of ``bits`` bits."""
    return signed(bits) if is_signed else unsigned(bits)


def word_layout(shape, lanes):
    """A stream word: ``lanes`` values of ``shape`` (lane 0 in the low bits)."""
    return data.ArrayLayout(Shape.cast(shape), lanes)


def class_shape(classes):
    """The shape of a class index for ``classes`` classes."""
    return unsigned(max(1, ceil_log2(classes)))


def result_layout(classes, logit_shape=None):
    """The accelerator's output: the class, and the logits in class order on request."""
    fields = {"cls": class_shape(classes)}
    if logit_shape is not None:
        fields["logits"] = data.ArrayLayout(Shape.cast(logit_shape), classes)
    return data.StructLayout(fields)
