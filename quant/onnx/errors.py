"""The error an import or export raises when a graph cannot map onto the integer model."""

from quant.ir import ModelError

__all__ = ["OnnxMappingError", "require_onnx"]


class OnnxMappingError(ModelError):
    """A node of an ONNX graph has no exact integer-model equivalent (or the reverse).

    A :class:`quant.ir.ModelError`, so that every command reports it in one line:
    ``<node>: <op>: <what is wrong and what would be needed>``.
    """

    def __init__(self, node, op, problem):
        super().__init__(node, op, problem)


def require_onnx():
    """Import onnx and qonnx, or say in one line which extra installs them.

    quant.ir and accel never import these; only this package does, and only
    when a conversion is asked for.
    """
    try:
        import onnx  # noqa: F401
        import qonnx  # noqa: F401
    except ImportError as error:
        raise ImportError(f"ONNX import and export need onnx and qonnx ({error.name} is missing); "
                          "install them with: pip install 'qaccel[onnx]'") from None
