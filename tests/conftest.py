import os
import sys

# Make the repository importable when pytest runs from a clean checkout
# without `pip install -e .` (CI installs it; this keeps local runs simple).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from accel.toolchain import configure_toolchain  # noqa: E402

configure_toolchain()
