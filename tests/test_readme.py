"""The README's Quick start stays true: CI runs its test command, its main job exists."""

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_commands():
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, re.S).group(1)
    return [line for line in block.splitlines() if line.strip()]


def test_quick_start_is_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all(command.startswith("pip install -e ") for command in commands)


def test_ci_runs_the_readme_test_command():
    test_command = quick_start_commands()[1]
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_command in (line.strip() for line in ci_lines)


def test_main_job_module_exists():
    main_job = quick_start_commands()[0].split("&&", 1)[1].split()
    assert main_job[:2] == ["python", "-m"]
    assert importlib.util.find_spec(main_job[2]) is not None
