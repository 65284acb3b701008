"""Requantize: map an accumulator to the next layer's activation code.

Two methods, both exact integer functions that the hardware matches bit for bit:

* :class:`Thresholds` — per channel T sorted thresholds; output = offset +
  number of thresholds <= acc. Folds batch-norm, scaling, ReLU and clamping.
* :class:`MultiplyShift` — out = clamp((acc * M + 2^(S-1)) >> S, lo, hi),
  rounding half up; with S = 0 there is no rounding term.
"""

import numpy as np

from .checks import MAX_ACCUMULATOR_BITS, get_field, require_int, require_int_array
from .errors import ModelError
from .tensor import signed_width

__all__ = ["Thresholds", "MultiplyShift", "method_from_manifest"]

MAX_MULTIPLIER_BITS = 32
MAX_SHIFT = 62
_THRESHOLD_LIMIT = 1 << MAX_ACCUMULATOR_BITS


def _per_channel(array, channels, where, field):
    """Per-channel parameters are stored per channel, or once for all channels."""
    if array.shape[0] not in (1, channels):
        raise ModelError(where, field,
                         f"has {array.shape[0]} rows; the input has {channels} channels "
                         "(give one row per channel, or one row for all)")
    return np.broadcast_to(array, (channels,) + array.shape[1:])


def _channel_view(acc):
    """Move the channel axis (axis 1 of a batch) to the front, flatten the rest."""
    return np.moveaxis(acc, 1, 0).reshape(acc.shape[1], -1)


class Thresholds:
    """Threshold requantization (FINN style)."""

    method = "thresholds"

    def __init__(self, thresholds, offset=0, *, where="requantize"):
        self._thresholds = require_int_array(thresholds, where, "thresholds", ndim=2,
                                             lo=-_THRESHOLD_LIMIT, hi=_THRESHOLD_LIMIT)
        rows, count = self._thresholds.shape
        if rows == 0 or count == 0:
            raise ModelError(where, "thresholds", f"must not be empty, shape {self._thresholds.shape}")
        steps = np.diff(self._thresholds, axis=1)
        if np.any(steps < 0):
            channel, position = np.argwhere(steps < 0)[0]
            raise ModelError(where, "thresholds",
                             f"channel {channel} is not sorted: threshold {position + 1} "
                             f"({self._thresholds[channel, position + 1]}) is below threshold "
                             f"{position} ({self._thresholds[channel, position]})")
        self._offset = require_int(offset, where, "offset", lo=-(1 << 32), hi=1 << 32)

    @property
    def thresholds(self):
        return self._thresholds

    @property
    def offset(self):
        return self._offset

    @property
    def count(self):
        return self._thresholds.shape[1]

    def output_range(self):
        return self._offset, self._offset + self.count

    def check_input(self, input_type, where):
        _per_channel(self._thresholds, input_type.channels, where, "thresholds")

    def apply(self, acc):
        """Requantize a batch ``acc`` of shape (N, C, ...)."""
        table = _per_channel(self._thresholds, acc.shape[1], "requantize", "thresholds")
        flat = _channel_view(acc)
        out = np.empty_like(flat)
        for channel in range(flat.shape[0]):
            out[channel] = np.searchsorted(table[channel], flat[channel], side="right")
        out += self._offset
        shape = (acc.shape[1], acc.shape[0]) + acc.shape[2:]
        return np.moveaxis(out.reshape(shape), 0, 1)

    def to_manifest(self):
        return {"method": self.method, "offset": self._offset}, {"thresholds": self._thresholds}

    @classmethod
    def from_manifest(cls, fields, arrays, where):
        return cls(get_field(arrays, "thresholds", where), get_field(fields, "offset", where),
                   where=where)


class MultiplyShift:
    """Multiply-shift requantization (8-bit style outputs)."""

    method = "multiply_shift"

    def __init__(self, multiplier, shift, lo, hi, *, where="requantize"):
        limit = (1 << (MAX_MULTIPLIER_BITS - 1)) - 1
        self._multiplier = require_int_array(multiplier, where, "multiplier", ndim=1,
                                             lo=-limit, hi=limit)
        self._shift = require_int_array(shift, where, "shift", ndim=1, lo=0, hi=MAX_SHIFT)
        for field, array in (("multiplier", self._multiplier), ("shift", self._shift)):
            if array.shape[0] == 0:
                raise ModelError(where, field, "must not be empty")
        self._lo = require_int(lo, where, "lo", lo=-(1 << 32), hi=1 << 32)
        self._hi = require_int(hi, where, "hi", lo=self._lo, hi=1 << 32)

    @property
    def multiplier(self):
        return self._multiplier

    @property
    def shift(self):
        return self._shift

    @property
    def lo(self):
        return self._lo

    @property
    def hi(self):
        return self._hi

    def output_range(self):
        return self._lo, self._hi

    def check_input(self, input_type, where):
        _per_channel(self._multiplier, input_type.channels, where, "multiplier")
        _per_channel(self._shift, input_type.channels, where, "shift")
        # acc * M + rounding must not wrap the int64 reference (nor the hardware).
        product_bits = input_type.bits + signed_width(int(self._multiplier.min()),
                                                      int(self._multiplier.max()))
        if product_bits > 63:
            raise ModelError(where, "multiplier",
                             f"a {input_type.bits}-bit accumulator times this multiplier needs "
                             f"{product_bits} bits, more than 63; use a smaller multiplier and shift")

    def apply(self, acc):
        channels = acc.shape[1]
        extra = (1,) * (acc.ndim - 2)
        multiplier = _per_channel(self._multiplier, channels, "requantize", "multiplier")
        shift = _per_channel(self._shift, channels, "requantize", "shift")
        multiplier = multiplier.reshape((1, channels) + extra)
        shift = shift.reshape((1, channels) + extra)
        rounding = np.left_shift(np.int64(1), shift) >> 1
        out = np.right_shift(acc * multiplier + rounding, shift)
        return np.clip(out, self._lo, self._hi)

    def to_manifest(self):
        return ({"method": self.method, "lo": self._lo, "hi": self._hi},
                {"multiplier": self._multiplier, "shift": self._shift})

    @classmethod
    def from_manifest(cls, fields, arrays, where):
        return cls(get_field(arrays, "multiplier", where), get_field(arrays, "shift", where),
                   get_field(fields, "lo", where), get_field(fields, "hi", where), where=where)


_METHODS = {cls.method: cls for cls in (Thresholds, MultiplyShift)}


def method_from_manifest(fields, arrays, where):
    method = get_field(fields, "method", where)
    if not isinstance(method, str) or method not in _METHODS:
        raise ModelError(where, "method",
                         f"unknown requantize method {method!r}; expected one of {sorted(_METHODS)}")
    return _METHODS[method].from_manifest(fields, arrays, where)


# The operator itself sits with its methods: one concept, requantization.
from .checks import MAX_BITS, require_bool  # noqa: E402
from .operator import Operator, common_fields, register  # noqa: E402
from .tensor import TensorType  # noqa: E402


@register
class Requantize(Operator):
    """Accumulator -> activation code of ``bits`` bits (signed or unsigned)."""

    op_type = "requantize"

    def __init__(self, name, input, method, bits, signed=False, scale=None):
        super().__init__(name, (input,), scale)
        if not isinstance(method, (Thresholds, MultiplyShift)):
            raise ModelError(self.name, "method",
                             f"must be Thresholds or MultiplyShift, not {type(method).__name__}")
        self._method = method
        self._bits = require_int(bits, self.name, "bits", lo=1, hi=MAX_BITS)
        self._signed = require_bool(signed, self.name, "signed")
        out_type = TensorType((1,), self._bits, self._signed)
        lo, hi = method.output_range()
        if lo < out_type.min_value or hi > out_type.max_value:
            field = "thresholds" if isinstance(method, Thresholds) else "lo"
            raise ModelError(self.name, field,
                             f"outputs range over [{lo}, {hi}], which does not fit "
                             f"{out_type.describe()[:-3]} [{out_type.min_value}, {out_type.max_value}]")

    @property
    def method(self):
        return self._method

    @property
    def bits(self):
        return self._bits

    @property
    def signed(self):
        return self._signed

    def infer(self, input_types):
        (x,) = input_types
        self._method.check_input(x, self.name)
        return TensorType(x.shape, self._bits, self._signed)

    def params(self):
        fields, _ = self._method.to_manifest()
        return {"method": fields, "bits": self._bits, "signed": self._signed}

    def arrays(self):
        return {f"method.{key}": value for key, value in self._method.to_manifest()[1].items()}

    @classmethod
    def from_manifest(cls, fields, arrays):
        name, inputs, scale = common_fields(fields)
        if not isinstance(inputs, list) or len(inputs) != 1:
            raise ModelError(name, "inputs", f"requantize takes 1 input, not {inputs!r}")
        method_arrays = {key[len("method."):]: value for key, value in arrays.items()
                         if key.startswith("method.")}
        method = method_from_manifest(get_field(fields, "method", name), method_arrays, name)
        return cls(name, inputs[0], method, get_field(fields, "bits", name),
                   get_field(fields, "signed", name), scale)


__all__ += ["Requantize"]
