"""Exported files have the permissions of any file the user writes (0666 less the
umask), not the 0600 of the temporary file they are written through."""

import os
import stat

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from accel.export import export


class _Inverter(wiring.Component):
    a: In(4)
    y: Out(4)

    def elaborate(self, platform):
        m = Module()
        m.d.comb += self.y.eq(~self.a)
        return m


def test_export_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        path = export(_Inverter(), tmp_path / "inv.il", fmt="rtlil")
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        os.umask(0o027)
        path = export(_Inverter(), tmp_path / "inv2.il", fmt="rtlil")
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
    finally:
        os.umask(old)
