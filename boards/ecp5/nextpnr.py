"""nextpnr-ecp5's command-line options for an ECP5 part.

Amaranth's platform knows its part as ``device`` ("LFE5U-85F"), ``package``
("BG381") and ``speed`` (6); nextpnr spells the same part as ``--85k --package
CABGA381 --speed 6``. The tables here are ours, so that the build flow does not
depend on a private table of Amaranth's Lattice platform.
"""

__all__ = ["NEXTPNR_DEVICES", "NEXTPNR_PACKAGES", "nextpnr_part_options"]

#: ECP5 device name -> nextpnr-ecp5's device option.
NEXTPNR_DEVICES = {
    "LFE5U-12F": "--12k", "LFE5U-25F": "--25k", "LFE5U-45F": "--45k", "LFE5U-85F": "--85k",
    "LFE5UM-25F": "--um-25k", "LFE5UM-45F": "--um-45k", "LFE5UM-85F": "--um-85k",
    "LFE5UM5G-25F": "--um5g-25k", "LFE5UM5G-45F": "--um5g-45k", "LFE5UM5G-85F": "--um5g-85k",
}

#: Package code in the part number -> nextpnr-ecp5's ``--package`` value.
NEXTPNR_PACKAGES = {
    "BG256": "CABGA256", "MG285": "CSFBGA285", "BG381": "CABGA381", "BG554": "CABGA554",
    "BG756": "CABGA756",
}


def nextpnr_part_options(platform):
    """``[device option, "--package", package, "--speed", speed]`` for ``platform``'s part."""
    device = NEXTPNR_DEVICES.get(platform.device)
    if device is None:
        raise ValueError(f"nextpnr-ecp5 has no device {platform.device}; use one of "
                         f"{', '.join(NEXTPNR_DEVICES)}")
    package = NEXTPNR_PACKAGES.get(platform.package)
    if package is None:
        raise ValueError(f"nextpnr-ecp5 has no package {platform.package}; use one of "
                         f"{', '.join(NEXTPNR_PACKAGES)}")
    return [device, "--package", package, "--speed", str(platform.speed)]
