"""The ports of a component, as every backend sees them.

A component's signature is flattened into plain ports: nested interfaces
become ``path__to__member`` names (the names Amaranth gives them in RTLIL and
Verilog), data views (struct payloads) become their underlying integers, and
members that are constants (``always_ready=True`` streams) are remembered as
constants rather than ports. The synchronous reset of the ``sync`` domain is
one more input port named ``rst``; the clock is the backend's business.
"""

from dataclasses import dataclass

from amaranth.hdl import ClockSignal, Const, ResetSignal, Signal, Value, ValueCastable
from amaranth.hdl import _ir
from amaranth.lib import wiring

__all__ = ["Port", "PortMap", "PortError"]


class PortError(KeyError, ValueError):
    """A testbench named something that is not a port of the component."""

    def __str__(self):  # KeyError would otherwise quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class Port:
    """One flat port: ``name`` as in RTLIL (``i__payload``), ``index`` in the
    compiled adapter's port table, ``direction`` ``"in"`` or ``"out"``."""

    name: str
    index: int
    direction: str
    width: int
    signed: bool
    signal: Signal | None  # None for ``rst``

    @property
    def words(self):
        """Number of 64-bit words that hold a value of this port."""
        return max(1, (self.width + 63) // 64)

    @property
    def mask(self):
        return (1 << self.width) - 1

    def to_raw(self, value):
        """An int (negative allowed for signed ports) as the port's raw bits."""
        if not isinstance(value, int):
            try:
                value = int(value)  # numpy integers, bools
            except (TypeError, ValueError):
                raise TypeError(f"Value for port {self.name!r} must be an integer, not {value!r}") from None
        return value & self.mask

    def from_raw(self, raw):
        """Raw bits as the int a testbench sees (sign-extended for signed ports)."""
        if self.signed and self.width and raw >> (self.width - 1):
            return raw - (1 << self.width)
        return raw


def _flow_direction(flow):
    return "in" if flow == wiring.In else "out"


class PortMap:
    """The flat ports of ``component`` and how to resolve a testbench's
    reference (a Signal/View of the component, a dotted or ``__`` name, or
    ``ResetSignal("sync")``) to one of them."""

    def __init__(self, component):
        signature = getattr(component, "signature", None)
        if not isinstance(signature, wiring.Signature):
            raise TypeError(
                f"Component must be a wiring.Component (its signature lists the ports), not {component!r}")
        self._ports = []
        self._constants = {}  # name -> (value, signed)
        self._by_name = {}
        self._by_signal = {}
        for path, member, value in signature.flatten(component):
            name = "__".join(map(str, path))
            if isinstance(value, ValueCastable):
                value = value.as_value()
            value = Value.cast(value)
            if isinstance(value, Const):
                self._constants[name] = (value.value, value.shape().signed)
                continue
            if not isinstance(value, Signal):
                raise TypeError(f"Port {name!r} must be a signal, not {value!r}")
            if len(value) == 0:
                self._constants[name] = (0, False)
                continue
            port = Port(name, len(self._ports), _flow_direction(member.flow), len(value),
                        value.shape().signed, value)
            self._add(port)
        # The synchronous reset; present in the netlist only when the design has
        # a sync domain, which the backends check (``has_reset``).
        self._reset = Port("rst", len(self._ports), "in", 1, False, None)
        self._add(self._reset)

    def _add(self, port):
        if port.name in self._by_name:
            raise ValueError(f"Two ports are both named {port.name!r}")
        self._ports.append(port)
        self._by_name[port.name] = port
        if port.signal is not None:
            self._by_signal[id(port.signal)] = port

    def __iter__(self):
        return iter(self._ports)

    def __len__(self):
        return len(self._ports)

    @property
    def reset(self):
        return self._reset

    @property
    def constants(self):
        return dict(self._constants)

    def rtlil_ports(self):
        """The ``ports=`` argument for ``amaranth.back.rtlil.convert`` (no clock
        or reset: Amaranth adds those of the ``sync`` domain itself)."""
        return {p.name: (p.signal, _ir.PortDirection.Input if p.direction == "in"
                         else _ir.PortDirection.Output)
                for p in self._ports if p.signal is not None}

    def resolve(self, ref):
        """The :class:`Port` for ``ref``, or ``("const", value)`` for a
        constant member; :class:`PortError` when ``ref`` is not a port."""
        if isinstance(ref, str):
            name = ref.replace(".", "__")
            if name in self._by_name:
                return self._by_name[name]
            if name in self._constants:
                return ("const", self._constants[name])
            known = ", ".join(sorted(self._by_name))
            raise PortError(f"{ref!r} is not a port of the component; ports: {known}")
        if isinstance(ref, ResetSignal):
            if ref.domain != "sync":
                raise PortError(f"Only the sync domain's reset is a port, not {ref!r}")
            return self._reset
        if isinstance(ref, ClockSignal):
            raise PortError("The clock is driven by the simulation; use `await ctx.tick()`")
        if isinstance(ref, ValueCastable):
            ref = ref.as_value()
        if isinstance(ref, Value):
            ref = Value.cast(ref)
            port = self._by_signal.get(id(ref))
            if port is not None:
                return port
            if isinstance(ref, Const):
                return ("const", (ref.value, ref.shape().signed))
            raise PortError(
                f"{ref!r} is not a port of the component (compiled backends see only the "
                f"signature's ports; use the pysim backend to reach internal signals)")
        raise TypeError(f"Port must be a Signal of the component or a name, not {ref!r}")
