"""The OrangeCrab build skips amaranth-boards' dfu-suffix step (openFPGALoader programs it)."""

from amaranth.vendor import LatticePlatform

from boards.ecp5.platforms import OrangeCrab85F


def test_orangecrab_has_the_lattice_steps_without_dfu_suffix():
    platform = OrangeCrab85F()
    templates = platform.command_templates
    assert not any("dfu-suffix" in t for t in templates)
    assert templates == LatticePlatform.command_templates.fget(platform)
    assert any("ecppack" in t for t in templates)
