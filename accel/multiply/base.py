"""The interface every multiply unit shares.

A multiply unit computes ``p = a * value(w)``: ``a`` is an activation code,
``w`` a weight *code* of the unit's kind (see :mod:`quant.ir.weights`), and
``value`` the kind's decoding. All units are fully pipelined behind one clock
enable ``en``, so that a processing element or a systolic array can use any
kind without knowing which.
"""

import functools

from amaranth.hdl import signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out
from amaranth.utils import ceil_log2

from quant.ir.sizing import activation_bounds, product_bounds
from quant.ir.tensor import signed_width

__all__ = ["MultiplyUnit", "MAX_ACT_BITS", "quiet_on_error"]

#: Widest activation a multiply unit accepts (the integer model's limit is lower).
MAX_ACT_BITS = 32


def quiet_on_error(init):
    """Decorate a component's ``__init__`` so that a rejected argument raises only its error.

    Amaranth warns about every Elaboratable that is never elaborated, including
    one whose constructor raised; that warning would follow the real error.
    """
    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        try:
            init(self, *args, **kwargs)
        except Exception:
            self._MustUse__silence = True
            raise
    return wrapper


class MultiplyUnit(wiring.Component):
    """Base of the multiply units: ``p = a * value(w)``, pipelined behind ``en``.

    Subclasses validate their own parameters, then call this constructor with
    the weight code shape and the range of weight values; the product width
    follows from that range and the activation range, so that no product of
    a valid code ever overflows ``p``.

    Parameters
    ----------
    act_bits : int
        Width of the activation code ``a`` (1 to 32).
    act_signed : bool
        Whether ``a`` is a signed (two's-complement) or an unsigned code.
    weight_shape : Shape
        Shape of the weight code port ``w``.
    weight_bounds : (int, int)
        Smallest and largest weight value a valid code decodes to.
    channels : int or None
        With a count, the unit has a ``channel`` input selecting per-channel
        decoding (per-channel codebooks); ``None`` for none.

    Members
    -------
    a : ``In(signed(act_bits))`` or ``In(unsigned(act_bits))``
        Activation code.
    w : ``In(weight_shape)``
        Weight code of the unit's kind.
    channel : ``In(unsigned(max(1, ceil_log2(channels))))``
        Output channel whose decoding applies (only with ``channels``); it is
        pipelined exactly like ``w``.
    en : ``In(1)``
        Pipeline advance: the clock enable of every pipeline register. While
        ``en`` is 0 every register holds and ``p`` does not change.
    p : ``Out(signed(product_width))``
        The product of the operands presented ``latency`` enabled cycles ago.
    """

    #: Pipeline registers between the operand ports and ``p``; set by each subclass.
    LATENCY = None
    #: Whether synthesis is meant to map the unit to a hard (DSP) multiplier.
    USES_HARD_MULTIPLIER = False

    def __init__(self, act_bits, act_signed, weight_bits, weight_shape, weight_bounds, *,
                 channels=None):
        self._act_bits = act_bits
        self._act_signed = act_signed
        self._weight_bits = weight_bits
        self._weight_bounds = (int(weight_bounds[0]), int(weight_bounds[1]))
        self._channels = channels
        act_lo, act_hi = activation_bounds(act_bits, act_signed)
        low, high = product_bounds(*self._weight_bounds, act_lo, act_hi)
        self._product_shape = signed(signed_width(min(0, low), max(0, high)))
        members = {
            "a": In(self.act_shape(act_bits, act_signed)),
            "w": In(weight_shape),
        }
        if channels is not None:
            members["channel"] = In(self.channel_shape(channels))
        members["en"] = In(1)
        members["p"] = Out(self._product_shape)
        super().__init__(wiring.Signature(members))

    @staticmethod
    def act_shape(act_bits, act_signed):
        """Shape of ``a`` for activation codes of ``act_bits`` bits."""
        return signed(act_bits) if act_signed else unsigned(act_bits)

    @staticmethod
    def channel_shape(channels):
        """Shape of ``channel`` for ``channels`` per-channel decodings."""
        return unsigned(max(1, ceil_log2(channels)))

    @classmethod
    def code_shape(cls, weight_bits):
        """Shape of ``w`` for ``weight_bits``-bit codes; set by each subclass."""
        raise NotImplementedError

    @property
    def latency(self):
        """Enabled clock cycles from the operands on ``a``/``w`` to their product on ``p``."""
        return self.LATENCY

    @property
    def uses_hard_multiplier(self):
        """Whether synthesis maps this unit to a hard multiplier (DSP block)."""
        return self.USES_HARD_MULTIPLIER

    @property
    def act_bits(self):
        return self._act_bits

    @property
    def act_signed(self):
        return self._act_signed

    @property
    def weight_bits(self):
        return self._weight_bits

    @property
    def weight_bounds(self):
        """``(min, max)``: the range of weight values that valid codes decode to."""
        return self._weight_bounds

    @property
    def product_shape(self):
        """Shape of ``p``: the narrowest signed shape holding every product."""
        return self._product_shape

    @property
    def channels(self):
        """Number of per-channel decodings (``None`` when there is no ``channel`` port)."""
        return self._channels


def balanced_sum(terms):
    """Sum ``terms`` as a balanced tree (depth log2(n) instead of n - 1 adders)."""
    terms = list(terms)
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        terms = pairs + ([terms[-1]] if len(terms) % 2 else [])
    return terms[0]
