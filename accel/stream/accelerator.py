"""The streaming accelerator: one component holding a planned pipeline."""

import numpy as np
from amaranth.hdl import Module
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .layouts import word_layout
from .plan import PipelinePlan
from .words import from_stream, pack_words, to_stream, unpack_words

__all__ = ["StreamingAccelerator"]


class StreamingAccelerator(wiring.Component):
    """A streaming dataflow accelerator for one integer model (see :func:`accel.build`).

    Input: pixels row-major, images back to back; each pixel in
    ``channels / lanes`` words of ``lanes`` channels in channel order (by
    default one word of all channels; see :attr:`input_format`). Output: one
    word per image, the class (``o.payload.cls``) and, when built with
    ``logits=True``, the logits in class order (``o.payload.logits``); or, when
    built with ``stream_output=True``, the output tensor's words in the same
    pixel and channel order as the input (see :attr:`output_format` and
    :meth:`decode_outputs`) -- what the next part of a cut model takes.

    Members
    -------
    i : ``In(stream.Signature(word_layout(input shape, input lanes)))``
    o : ``Out(stream.Signature(result_layout(classes[, logit shape])))``, or with a
        streamed output ``Out(stream.Signature(word_layout(output shape, output lanes)))``
    """

    def __init__(self, plan, model, report):
        if not isinstance(plan, PipelinePlan):
            raise TypeError(f"Plan must be a PipelinePlan, not {plan!r}")
        self._plan = plan
        self._model = model
        self._report = report
        fmt = plan.input_format
        component, port = plan.output
        self._out_port = getattr(component, port)
        super().__init__({
            "i": In(stream.Signature(word_layout(fmt.value_shape, fmt.lanes))),
            "o": Out(stream.Signature(self._out_port.payload.shape())),
        })

    @property
    def model(self):
        return self._model

    @property
    def plan(self):
        return self._plan

    @property
    def report(self):
        """The :class:`accel.report.BuildReport` of the folding and the cycle estimate."""
        return self._report

    @property
    def interval(self):
        """Estimated steady-state cycles per image."""
        return self._plan.interval

    @property
    def classes(self):
        return self._plan.result_classes

    @property
    def input_format(self):
        """The :class:`~accel.stream.plan.StreamFormat` of the input words."""
        return self._plan.input_format

    @property
    def stream_output(self):
        """True when ``o`` carries the output tensor's words (no arg-max)."""
        return self._plan.output_format is not None

    @property
    def output_format(self):
        """The :class:`~accel.stream.plan.StreamFormat` of ``o``'s words with a
        streamed output; None with the arg-max."""
        return self._plan.output_format

    def tensor_names(self):
        """Tensors that :meth:`tap` can observe (every operator of the model)."""
        return list(self._plan.taps)

    def tap(self, name):
        """``(stream interface, StreamFormat)`` carrying tensor ``name``.

        For simulation on pysim: a transfer on the interface (``valid & ready``)
        is one word of the tensor; :meth:`decode` turns one image's words back
        into the model's tensor.
        """
        if name not in self._plan.taps:
            raise KeyError(f"The model has no tensor named {name!r}")
        component, port = self._plan.taps[name]
        interface = self.i if component == "input" else getattr(component, port)
        return interface, self._plan.formats[name]

    def decode(self, name, words):
        """The words of one image of tensor ``name`` -> its logical (model) array."""
        fmt = self._plan.formats[name]
        values = unpack_words(words, fmt.lanes, fmt.bits, fmt.signed)
        return from_stream(values, fmt.shape, fmt.order)

    def encode_inputs(self, images):
        """Input images (N, C, H, W) -> the list of input words."""
        fmt = self._plan.input_format
        words = []
        for image in np.asarray(images):
            words += pack_words(to_stream(image), fmt.lanes, fmt.bits)
        return words

    def decode_outputs(self, words):
        """A streamed output's words, images back to back -> array (N, *output shape).

        The words are those of whole images, as ``o`` delivers them (a built part's
        output words are the next part's :meth:`encode_inputs` words).
        """
        fmt = self._plan.output_format
        if fmt is None:
            raise ValueError("The accelerator outputs classes, not a stream of words; "
                             "decode each word with decode_output")
        words = list(words)
        if len(words) % fmt.words:
            raise ValueError(f"Output word count must be a multiple of the {fmt.words} words "
                             f"of an image, not {len(words)}")
        values = unpack_words(words, fmt.lanes, fmt.bits, fmt.signed).reshape(-1, fmt.words
                                                                              * fmt.lanes)
        return np.array([from_stream(image, fmt.shape, fmt.order) for image in values],
                        dtype=np.int64).reshape((-1,) + tuple(fmt.shape))

    def decode_output(self, word):
        """One output word -> (class, logits or None)."""
        if self._plan.output_format is not None:
            raise ValueError("The accelerator streams its output tensor; decode its words "
                             "with decode_outputs")
        layout = self._out_port.payload.shape()
        cls_bits = layout["cls"].shape.width
        cls = int(word) & ((1 << cls_bits) - 1)
        if "logits" not in layout.members:
            return cls, None
        shape = layout["logits"].shape.elem_shape
        logits = unpack_words([int(word) >> cls_bits], self.classes, shape.width, shape.signed)
        return cls, logits

    def elaborate(self, platform):
        m = Module()
        for name, component in self._plan.blocks:
            m.submodules[name] = component

        def resolve(end, flip_input):
            component, port = end
            if component == "input":
                return wiring.flipped(self.i)
            return getattr(component, port)

        for source, sink in self._plan.connections:
            wiring.connect(m, resolve(source, True), resolve(sink, False))
        wiring.connect(m, self._out_port, wiring.flipped(self.o))
        return m
