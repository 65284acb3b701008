"""Stream payload layouts of the systolic array and the GEMM engine, defined once here.

Every layout is built from the parameters of the block that uses it (array
size, activation and weight-code shapes, accumulator width), so the functions
below take those parameters and return a ``data.StructLayout`` or
``data.ArrayLayout``. Fields are packed from the least significant bit in the
order written here (Amaranth's ``StructLayout`` order); the host-side packing in
:mod:`accel.systolic.driver` follows the same order.
"""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from amaranth.utils import bits_for

__all__ = ["step_layout", "weight_stationary_step_layout", "output_stationary_step_layout",
           "result_row_layout", "command_layout", "OS_CONTROL_LAYOUT", "partial_layout"]


def weight_stationary_step_layout(rows, cols, act_shape, weight_shape, acc_width):
    """One step fed to a weight-stationary array.

    ``load = 1``: a *weight row*; ``w`` shifts into the array from the bottom,
    so after ``rows`` load steps the first row sent sits in array row 0.
    ``load = 0``: a *compute step*; ``a[r]`` is the activation of array row r
    (a K index) and ``psum[c]`` the partial sum that column c adds to.
    """
    return data.StructLayout({
        "a": data.ArrayLayout(act_shape, rows),
        "w": data.ArrayLayout(weight_shape, cols),
        "psum": data.ArrayLayout(signed(acc_width), cols),
        "load": 1,
    })


def output_stationary_step_layout(rows, cols, act_shape, weight_shape):
    """One step fed to an output-stationary array: one K index of a tile.

    ``a[r]`` is A[m0 + r, k], ``w[c]`` is B[k, n0 + c]; ``first`` marks k = 0 of
    a tile (the accumulators restart), ``last`` its final k (results leave).
    """
    return data.StructLayout({
        "a": data.ArrayLayout(act_shape, rows),
        "w": data.ArrayLayout(weight_shape, cols),
        "first": 1,
        "last": 1,
    })


def step_layout(dataflow, rows, cols, act_shape, weight_shape, acc_width):
    """The step layout of ``dataflow`` ("weight-stationary" or "output-stationary")."""
    if dataflow == "weight-stationary":
        return weight_stationary_step_layout(rows, cols, act_shape, weight_shape, acc_width)
    return output_stationary_step_layout(rows, cols, act_shape, weight_shape)


def result_row_layout(cols, acc_width):
    """One row of results leaving an array: ``cols`` signed accumulators."""
    return data.ArrayLayout(signed(acc_width), cols)


#: Control flags that travel along an output-stationary row with the activation.
OS_CONTROL_LAYOUT = data.StructLayout({"valid": 1, "first": 1, "last": 1})


def partial_layout(acc_width):
    """One slot of the output-stationary result chain."""
    return data.StructLayout({"valid": 1, "data": signed(acc_width)})


def command_layout(max_m, max_k, max_n):
    """A GEMM command: the sizes M, K, N (each at least 1 and at most its maximum)."""
    return data.StructLayout({
        "m": unsigned(bits_for(max_m)),
        "k": unsigned(bits_for(max_k)),
        "n": unsigned(bits_for(max_n)),
    })
