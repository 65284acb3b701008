"""A simulated board behind a serial line: for tests and for trying the host side
without hardware.

:class:`UARTLine` is the far end of the board's serial line, bit by bit, one
clock cycle at a time. :class:`PtyBoard` runs a :class:`boards.top.BoardCore`
in simulation (any :class:`sim.simulation.Simulation` backend) in a thread and
connects its UART to a pseudo-terminal, so that the host driver talks to it
exactly as to a USB-serial port (``PtyBoard(...).port`` is the device path).
While the board is idle and the line quiet, :class:`PtyBoard` stops its clock
and waits for the host's next byte (``select``), so a waiting board costs no
CPU time. Pseudo-terminals exist on Linux and macOS only.
"""

import errno
import os
import select
import threading

from sim.simulation import Simulation

__all__ = ["UARTLine", "PtyBoard", "run_frames"]


class UARTLine:
    """The host end of an 8N1 serial line with ``divisor`` cycles per bit.

    Each :meth:`step` is one clock cycle: it takes the board's ``tx`` level,
    returns the level to drive on the board's ``rx``, and collects the bytes
    the board sent in :attr:`received`.
    """

    def __init__(self, divisor):
        self._divisor = divisor
        self._pending = bytearray()
        self._bits = []          # levels still to send for the current byte
        self._timer = 0
        self._rx_state = None    # None idle, else (bit index, countdown, value)
        self._prev_tx = 1
        self.received = bytearray()

    def send(self, data):
        self._pending.extend(data)

    @property
    def busy(self):
        """True while bytes are queued or being sent."""
        return bool(self._pending or self._bits)

    def step(self, tx):
        # Board -> host: find the start bit's falling edge, sample mid-bit.
        if self._rx_state is None:
            if self._prev_tx and not tx:
                self._rx_state = [0, self._divisor + self._divisor // 2 - 1, 0]
        else:
            state = self._rx_state
            state[1] -= 1
            if state[1] < 0:
                if state[0] < 8:
                    state[2] |= tx << state[0]
                    state[0] += 1
                    state[1] = self._divisor - 1
                else:               # stop bit
                    if tx:
                        self.received.append(state[2])
                    self._rx_state = None
        self._prev_tx = tx
        # Host -> board.
        if not self._bits and self._pending:
            byte = self._pending.pop(0)
            self._bits = [0] + [(byte >> i) & 1 for i in range(8)] + [1]
            self._timer = self._divisor
        if not self._bits:
            return 1
        level = self._bits[0]
        self._timer -= 1
        if self._timer == 0:
            self._bits.pop(0)
            self._timer = self._divisor
        return level


def run_frames(core, chunks, *, backend="pysim", idle_cycles=None, max_cycles=2_000_000):
    """Send ``chunks`` (bytes, or an int: that many idle cycles) to a core's rx;
    return everything it sent on tx once the line has been idle ``idle_cycles``.

    The plain-testbench way to exercise a whole board (no pseudo-terminal).
    """
    line = UARTLine(core.divisor)
    if idle_cycles is None:
        idle_cycles = core.timeout + 40 * core.divisor
    sim = Simulation(core, backend=backend, quiet=True)

    async def testbench(ctx):
        queue = list(chunks)
        wait = 0
        quiet = 0
        for _ in range(max_cycles):
            if not line.busy and wait == 0 and queue:
                item = queue.pop(0)
                if isinstance(item, int):
                    wait = item
                else:
                    line.send(item)
            if wait:
                wait -= 1
            tx = ctx.get(core.tx)
            ctx.set(core.rx, line.step(tx))
            await ctx.tick()
            if line.busy or queue or wait or line._rx_state is not None or not tx:
                quiet = 0
            else:
                quiet += 1
                if quiet >= idle_cycles:
                    return
        raise TimeoutError(f"The board did not go quiet within {max_cycles} cycles")

    sim.add_testbench(testbench)
    sim.run()
    return bytes(line.received)


class PtyBoard:
    """A simulated board on a pseudo-terminal; use as a context manager.

    Parameters
    ----------
    core : boards.top.BoardCore
    backend : str
        A :class:`sim.simulation.Simulation` backend (``"cxxrtl"`` is much faster).
    poll_cycles : int
        How often (in cycles) the simulation looks for new bytes from the host.
    quiet : bool
        No progress lines on stderr while a compiled model is built.

    Raises
    ------
    sim.backends.BuildError
        The compiled backend cannot be built (the message says why).
    OSError
        No pseudo-terminals here (Windows).
    """

    # Seconds the stopped clock waits for the host before it checks for a stop request.
    IDLE_WAIT = 0.25

    def __init__(self, core, *, backend="pysim", poll_cycles=None, quiet=True):
        import tty          # POSIX only: imported here so that the module imports on Windows
        self._core = core
        self._backend = backend
        self._poll = poll_cycles or 10 * core.divisor
        # The line must be quiet this long before the clock stops: the board's
        # frame timeout has then passed, so stopping is the same as more idle line.
        self._quiet_cycles = core.timeout + 12 * core.divisor
        self._stop = threading.Event()
        self._error = None
        self._sim = Simulation(core, backend=backend, quiet=quiet)
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        self._thread = None
        self.cycles = 0
        self.idle_waits = 0

    @property
    def running(self):
        """True while the simulation thread runs."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def error(self):
        """What stopped the simulation thread, or None."""
        return self._error

    @property
    def port(self):
        """The device path a host opens (the pseudo-terminal's slave side)."""
        return os.ttyname(self._slave)

    def __enter__(self):
        line = UARTLine(self._core.divisor)
        core = self._core

        async def bridge(ctx):
            countdown = 0
            quiet = 0
            while True:
                if countdown == 0:
                    countdown = self._poll
                    if self._stop.is_set():
                        return
                    if quiet >= self._quiet_cycles and ctx.get(core.idle):
                        # Nothing to simulate until the host sends: wait for it.
                        self.idle_waits += 1
                        select.select([self._master], [], [], self.IDLE_WAIT)
                    if not line.busy:
                        try:
                            data = os.read(self._master, 4096)
                        except OSError as error:
                            if error.errno not in (errno.EAGAIN, errno.EWOULDBLOCK, errno.EIO):
                                raise
                            data = b""
                        line.send(data)
                    if line.received:
                        try:
                            written = os.write(self._master, bytes(line.received))
                            del line.received[:written]
                        except BlockingIOError:
                            pass
                countdown -= 1
                tx = ctx.get(core.tx)
                ctx.set(core.rx, line.step(tx))
                if line.busy or line.received or line._rx_state is not None or not tx:
                    quiet = 0
                else:
                    quiet += 1
                await ctx.tick()
                self.cycles += 1

        self._sim.add_testbench(bridge)

        def run():
            try:
                self._sim.run()
            except BaseException as error:   # reported by __exit__
                self._error = error

        self._thread = threading.Thread(target=run, name="PtyBoard", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=60)
        os.close(self._master)
        os.close(self._slave)
        if self._error is not None and exc[0] is None:
            raise self._error
        return False
