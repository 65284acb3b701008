"""Bring your own model: QONNX / FINN-ONNX import into the integer model, and export back.

``import_qonnx(path)`` maps a Brevitas ``export_qonnx`` graph (or a FINN-ONNX
graph with MultiThreshold nodes) onto :class:`quant.ir.IntegerModel` exactly;
``export_qonnx(model, path)`` writes an integer model as QONNX that qonnx's
executor (and FINN, hls4ml) runs with the reference interpreter's classes.

Needs the ``onnx`` extra (onnx, qonnx); they are imported only when used.
"""

from .errors import OnnxMappingError, require_onnx

__all__ = ["import_qonnx", "export_qonnx", "compare", "OnnxMappingError"]


def import_qonnx(source, *, name=None):
    """See :func:`quant.onnx.importer.import_qonnx`."""
    require_onnx()
    from .importer import import_qonnx as run
    return run(source, name=name)


def export_qonnx(model, path):
    """See :func:`quant.onnx.exporter.export_qonnx`."""
    require_onnx()
    from .exporter import export_qonnx as run
    return run(model, path)


def compare(source, model, images, batch=256):
    """See :func:`quant.onnx.agreement.compare`."""
    require_onnx()
    from .agreement import compare as run
    return run(source, model, images, batch)
