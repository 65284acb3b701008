"""One module of argument checks: the rules and their messages, and no copies elsewhere."""

import ast
import pathlib

import pytest

from quant.ir import ModelError
from quant.ir.checks import check_bool, check_int, check_pair, require_int, require_pair

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("call, error, message", [
    (lambda: check_int(0, "Weight width", 1), ValueError, "Weight width must be a positive integer, not 0"),
    (lambda: check_int(-1, "Wire latency", 0), ValueError, "Wire latency must be a non-negative integer, not -1"),
    (lambda: check_int(1, "Weight width", 2), ValueError, "Weight width must be at least 2, not 1"),
    (lambda: check_int(9, "Weight width", 1, 8), ValueError, "Weight width must be at most 8, not 9"),
    (lambda: check_int(2.0, "Rows", 1), TypeError, "Rows must be a positive integer, not 2.0"),
    (lambda: check_int("2", "Entry"), TypeError, "Entry must be an integer, not '2'"),
    (lambda: check_int(True, "Rows", 1), TypeError, "Rows must be a positive integer, not True"),
    (lambda: check_int(0, "Bias width", 1, 48, between=True), ValueError,
     "Bias width must be between 1 and 48, not 0"),
    (lambda: check_bool(1, "Ahead"), TypeError, "Ahead must be True or False, not 1"),
    (lambda: check_pair((1, 2, 3), "Kernel", 1), ValueError,
     r"Kernel must be an integer or a pair of integers, not \(1, 2, 3\)"),
    (lambda: check_pair((1, 0), "Kernel", 1), ValueError, "Kernel must be a positive integer, not 0"),
])
def test_check_messages(call, error, message):
    with pytest.raises(error, match=f"^{message}$"):
        call()


def test_check_values():
    assert check_int(3, "x", 1, 3) == 3
    assert check_pair(2, "Kernel", 1) == (2, 2)
    assert check_pair([3, 4], "Kernel", 1) == (3, 4)
    assert check_bool(False, "x") is False


@pytest.mark.parametrize("call, message", [
    (lambda: require_int(0, "c1", "bits", lo=1), "c1: bits: must be at least 1, not 0"),
    (lambda: require_int("3", "c1", "bits"), "c1: bits: must be an integer, not '3'"),
    (lambda: require_pair((1, 2, 3), "p", "stride", lo=1),
     r"p: stride: must be an integer or a pair of integers, not \(1, 2, 3\)"),
    (lambda: require_pair(None, "p", "stride"), "p: stride: must be an integer or a pair of integers"),
])
def test_model_field_messages(call, message):
    with pytest.raises(ModelError, match=f"^{message}"):
        call()


# Validators that once had a copy per package; their one home is quant/ir/checks.py.
_CHECK_NAMES = {"require_int", "require_bool", "require_pair", "_check_size", "_require_count",
                "_as_int", "_check_acc_width", "check_int", "check_bool", "check_pair"}


def test_no_copies_of_the_argument_checks():
    home = ROOT / "quant" / "ir" / "checks.py"
    copies = []
    for package in ("quant", "accel", "sim", "boards"):
        for path in sorted((ROOT / package).rglob("*.py")):
            if path == home:
                continue
            tree = ast.parse(path.read_text(), str(path))
            copies += [f"{path.relative_to(ROOT)}: {node.name}" for node in ast.walk(tree)
                       if isinstance(node, ast.FunctionDef) and node.name in _CHECK_NAMES]
    assert copies == []
