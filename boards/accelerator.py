"""The one place where a board gets its accelerator from an integer model.

:func:`make_accelerator` returns the accelerator component and an
:class:`AcceleratorInfo` that the board top and the reports need. It uses
``accel.build`` when that exists and the stand-in (:mod:`boards.standin`)
otherwise -- swapping is the one marked line below.

The board top requires of the component:

- ``i``: an input stream whose payload is one pixel code of at most 8 bits
  (unsigned, or signed in two's complement), or an array of one per channel,
  pixels in ``info.order``;
- ``o``: an output stream with one transfer per image whose payload is either
  the class (unsigned) or a struct with a ``class`` member and, optionally, a
  ``logits`` array of signed integers.
"""

from dataclasses import dataclass
import hashlib

from amaranth.hdl import Shape
from amaranth.lib import data

from quant.ir import Input, IntegerModel

__all__ = ["AcceleratorInfo", "AcceleratorError", "make_accelerator", "describe_accelerator",
           "output_fields", "model_fingerprint"]


class AcceleratorError(ValueError):
    """The model cannot be turned into an accelerator for a board."""


@dataclass(frozen=True)
class AcceleratorInfo:
    """What the board needs to know about an accelerator.

    ``order``: 0 = (channel, row, column) pixel order, 1 = (row, column,
    channel); ``logit_width``: 0 when the accelerator gives no logits;
    ``cycles_per_image``: the steady-state interval, or None when unknown;
    ``pixel_signed``: the pixel codes are signed (the model's input is).
    """
    shape: tuple
    pixel_bits: int
    order: int
    classes: int
    logit_width: int
    cycles_per_image: int | None
    fingerprint: int
    backend: str
    pixel_signed: bool = False

    @property
    def pixels(self):
        channels, height, width = self.shape
        return channels * height * width

    @property
    def logit_bytes(self):
        return (self.logit_width + 7) // 8


def model_fingerprint(model):
    """First 4 bytes (little-endian) of a SHA-256 over the model's operators and arrays.

    The board reports it, so that a host can tell which model a board runs.
    """
    digest = hashlib.sha256(model.name.encode())
    for op in model.ops:
        fields, arrays = op.to_manifest()
        digest.update(repr(sorted(fields.items())).encode())
        for key in sorted(arrays):
            digest.update(key.encode() + repr(arrays[key].tolist()).encode())
    return int.from_bytes(digest.digest()[:4], "little")


def class_member(layout):
    """The name of the class member of a struct output payload (``class`` or ``cls``)."""
    names = {name for name, _ in layout}
    return next((name for name in ("class", "cls") if name in names), None)


def input_lanes(component):
    """``(lanes, element bits)``: pixel codes per ``i`` transfer (the channels of one
    pixel for an array payload, else 1) and the width of each."""
    shape = component.signature.members["i"].signature.members["payload"].shape
    if isinstance(shape, data.ArrayLayout):
        return shape.length, Shape.cast(shape.elem_shape).width
    return 1, Shape.cast(shape).width


def output_fields(component):
    """``(class_width, logits_count, logit_width)`` of the component's ``o`` payload.

    Raises
    ------
    AcceleratorError
        When the payload is neither an unsigned class nor a struct with ``class``.
    """
    shape = component.signature.members["o"].signature.members["payload"].shape
    if isinstance(shape, data.StructLayout):
        members = {name: field.shape for name, field in shape}
        name = class_member(shape)
        if name is None:
            raise AcceleratorError("The accelerator's output payload has no 'class' (or 'cls') member")
        class_width = Shape.cast(members[name]).width
        logits = members.get("logits")
        if logits is None:
            return class_width, 0, 0
        if not isinstance(logits, data.ArrayLayout):
            raise AcceleratorError("The accelerator's 'logits' output must be an array")
        return class_width, logits.length, Shape.cast(logits.elem_shape).width
    cast = Shape.cast(shape)
    if cast.signed:
        raise AcceleratorError("The accelerator's class output must be unsigned")
    return cast.width, 0, 0


def make_accelerator(model, *, logits=True, backend="auto", target_cycles=None, budget=None):
    """The accelerator for ``model`` and what the board needs to know about it.

    Parameters
    ----------
    model : quant.ir.IntegerModel
    logits : bool
        Send the logits to the host as well as the class (when the accelerator
        provides them).
    backend : str
        ``"accel"`` (``accel.build``), ``"standin"`` (:mod:`boards.standin`), or
        ``"auto"``: ``accel.build`` when it is available.
    target_cycles, budget : int, optional
        ``accel.build``'s folding: cycles per image each layer must meet, or the
        multiply units to spend (one of them; neither: its default budget).

    Raises
    ------
    AcceleratorError
        The model has an input the board cannot stream (not one image input of
        at most 8 bits) or an operator the accelerator does not support.
    """
    _board_input(model)                # fail before building anything
    if backend not in ("auto", "accel", "standin"):
        raise ValueError(f"Backend must be auto, accel or standin, not {backend!r}")
    folding = {key: value for key, value in (("target_cycles", target_cycles), ("budget", budget))
               if value is not None}
    component, order, cycles, backend = _build(model, backend, logits, folding)
    return component, describe_accelerator(model, component, order=order, cycles_per_image=cycles,
                                           backend=backend, logits=logits)


def _board_input(model):
    """``(input op, classes)`` of a model the board can stream, else an AcceleratorError."""
    if not isinstance(model, IntegerModel):
        raise TypeError(f"Model must be an IntegerModel, not {model!r}")
    inputs = [op for op in model.ops if isinstance(op, Input)]
    if len(inputs) != 1:
        raise AcceleratorError(f"The board streams one input image; the model has {len(inputs)} inputs")
    source = inputs[0]
    if len(source.shape) != 3:
        raise AcceleratorError(f"The model's input must be an image (channels, height, width), "
                               f"not shape {source.shape}")
    if source.type.bits > 8:
        raise AcceleratorError(f"The host link sends pixels of at most 8 bits, one per byte; the "
                               f"model's input is {source.type.describe()}")
    classes = model.types[model.outputs[-1]].shape[0]
    if classes > 256:
        raise AcceleratorError(f"The host link carries at most 256 classes, not {classes}")
    return source, classes


def describe_accelerator(model, component, *, order, cycles_per_image, backend, logits=True):
    """The :class:`AcceleratorInfo` of ``component`` running ``model`` on a board, after
    checking that its ports fit the host link (also for an accelerator built elsewhere,
    such as board 0 of a ring of boards).

    Raises
    ------
    AcceleratorError
        The model or the component's input/output do not fit the host link.
    """
    source, classes = _board_input(model)
    lanes, element_bits = input_lanes(component)
    if element_bits != source.type.bits or (lanes != 1 and lanes != source.shape[0]):
        raise AcceleratorError(f"The accelerator's input ({lanes} x {element_bits} bits) does not "
                               f"match the model's ({source.shape[0]} channels of {source.type.bits} bits)")

    class_width, logit_count, logit_width = output_fields(component)
    if not logits or logit_count != classes:
        logit_width = 0
    if logit_width > 64:
        raise AcceleratorError(f"Logits of {logit_width} bits are wider than the host link's 64")
    return AcceleratorInfo(shape=tuple(source.shape), pixel_bits=source.type.bits, order=order,
                           classes=classes, logit_width=logit_width,
                           cycles_per_image=cycles_per_image,
                           fingerprint=model_fingerprint(model), backend=backend,
                           pixel_signed=source.type.signed)


def _build(model, backend, logits, folding):
    """(component, pixel order, cycles per image, backend name)."""
    if backend in ("auto", "accel"):
        try:
            from accel.build import build as accel_build
        except ImportError:
            if backend == "accel":
                raise AcceleratorError("accel.build is not available") from None
        else:
            from quant.ir import ModelError
            try:
                component = accel_build(model, logits=logits, **folding)
            except ModelError as error:
                raise AcceleratorError(f"unsupported model: {error}") from None
            except ValueError as error:     # a folding that cannot be met
                raise AcceleratorError(str(error)) from None
            # accel.build streams pixels row-major, all channels of a pixel per word.
            return component, 1, component.report.interval, "accel.build"
    if folding:
        raise AcceleratorError("the stand-in accelerator has no folding options "
                               "(target cycles, budget)")
    from .standin import StandInAccelerator, supports_standin
    if not supports_standin(model):
        raise AcceleratorError("the stand-in accelerator runs only input -> flatten -> linear models")
    component = StandInAccelerator(model)
    return component, 0, component.cycles_per_image, "standin"
