"""`import quant.ir` and `import accel` must never pull in torch: the integer model,
the reference and the HDL are used on machines without PyTorch."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize("module", ["quant.ir", "accel", "sim.reference", "quant.ir.bundle"])
def test_module_imports_without_torch(module):
    # A fresh interpreter: this test process may already have torch loaded.
    code = (f"import sys, {module}; "
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')); "
            "print(','.join(bad))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=__file__.rsplit("/tests/", 1)[0])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"
