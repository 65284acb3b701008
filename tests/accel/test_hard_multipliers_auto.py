"""``hard_multipliers="auto"`` without a device shares out the DSP blocks of a
stated device (``accel.build.AUTO_DSP_DEVICE``), and the report says which."""

import accel
from accel.build import AUTO_DSP_DEVICE
from accel.device import device
from accel.stream.networks import network


def test_auto_without_a_device_states_the_device_it_assumes():
    assert AUTO_DSP_DEVICE == "LFE5U-85F"
    acc = accel.build(network("digits", 0), budget=64, hard_multipliers="auto")
    policy = acc.report.as_dict()["policy"]
    assert policy["hard_multipliers"] == "auto" and policy["dsp_device"] == AUTO_DSP_DEVICE
    assert f"dsp_device={AUTO_DSP_DEVICE}" in acc.report.text()
    assert acc.report.resources["DSP"] <= device(AUTO_DSP_DEVICE).dsp


def test_auto_with_a_device_names_that_device():
    acc = accel.build(network("digits", 0), device="LFE5U-25F", hard_multipliers="auto")
    policy = acc.report.as_dict()["policy"]
    assert policy["device"] == "LFE5U-25F" and "dsp_device" not in policy
