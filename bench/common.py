"""Small helpers shared by the benchmark scripts: atomic result files."""

import json
import os
import tempfile

__all__ = ["atomic_write", "write_results"]


def atomic_write(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same directory and a rename,
    so that a reader never sees a half-written file (and an interrupted run leaves the old one)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}-")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        # mkstemp makes the file private (0600); results are for everyone to read.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise


def write_results(json_path, markdown_path, data, markdown):
    """Write a JSON document and its markdown rendering, each atomically."""
    atomic_write(json_path, json.dumps(data, indent=2, sort_keys=False) + "\n")
    atomic_write(markdown_path, markdown if markdown.endswith("\n") else markdown + "\n")
