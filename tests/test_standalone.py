"""The project stands alone: no file points to documents outside the repository
(the design and style notes it was started from); what they say that matters is
in the docstrings and the README."""

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Built from parts so that this file does not match itself.
OUTSIDE = re.compile(r"\b(?:STYLE|DESIGN|QUANT)" + r"\.md\b|(?:\.\./|/work/)" + "shared/")
SKIP_DIRS = {".git", "__pycache__", ".pytest_cache", ".hypothesis", "qaccel.egg-info"}
TEXT = {".py", ".md", ".toml", ".cfg", ".txt", ".yml", ".yaml", ".sh", ".json", ".ys", ".tcl"}


def _files():
    for path in sorted(REPO.rglob("*")):
        if path.is_file() and path.suffix in TEXT and not SKIP_DIRS & set(path.relative_to(REPO).parts):
            yield path


def test_no_file_points_outside_the_repository():
    found = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
             for path in _files()
             for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
             if OUTSIDE.search(line)]
    assert not found, "\n".join(found)
