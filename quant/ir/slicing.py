"""Cutting an integer model into consecutive parts at single-tensor boundaries.

A model is cut *after* an operator: everything up to and including it goes to
one part, the rest to the next. That is a clean cut when exactly one tensor is
live across it -- the one just computed -- so that the parts can run one after
the other (on several devices) and pass only that tensor between them. No
skip connection may cross a cut.

Each part after the first starts with an :class:`~quant.ir.Input` named after
the cut tensor, of the cut tensor's exact type (shape, bits, signedness: all a
:class:`~quant.ir.TensorType` holds, and all that the downstream type
inference reads), so every tensor keeps its name and its type, and the parts'
reference runs compose bit for bit into the whole model's.
"""

from .checks import MAX_BITS
from .elementwise import Flatten
from .errors import ModelError
from .model import IntegerModel
from .operator import Input

__all__ = ["cut_points", "split_model"]


def _live_after(model):
    """Per operator position: the tensors needed after it (read later, or outputs)."""
    last_use = {}
    for index, op in enumerate(model.ops):
        for name in op.inputs:
            last_use[name] = index
    for name in model.outputs:
        last_use[name] = len(model.ops)
    live, out = set(), []
    for index, op in enumerate(model.ops):
        live.add(op.name)
        live = {name for name in live if last_use.get(name, -1) > index}
        out.append(frozenset(live))
    return out


def _refusal(model, name, live):
    """Why tensor ``name`` is not a cut point, or None when it is one."""
    op = model.op(name)
    if isinstance(op, Input):
        return "is a model input"
    if name in model.outputs:
        return "is a model output"
    if isinstance(op, Flatten):
        return "is a flatten's output (cut before the flatten instead)"
    if live != {name}:
        others = sorted(live - {name})
        return (f"is not the only tensor live there: {', '.join(map(repr, others))} "
                "also crosses it (a skip connection)")
    if model.type_of(name).bits > MAX_BITS:
        return (f"is {model.type_of(name).bits} bits wide; a model input takes at most "
                f"{MAX_BITS} (cut after its requantize)")
    return None


def cut_points(model):
    """The tensors after which ``model`` can be cut, in operator order.

    A cut point is a tensor that is the only one live across the boundary just
    after its operator; never a model input or output, a flatten's output (cut
    before the flatten), nor a tensor wider than a model input may be.
    """
    if not isinstance(model, IntegerModel):
        raise TypeError(f"Model must be an IntegerModel, not {model!r}")
    live = _live_after(model)
    return [op.name for op, after in zip(model.ops, live)
            if _refusal(model, op.name, after) is None]


def split_model(model, cuts):
    """Split ``model`` at the tensors ``cuts`` into ``len(cuts) + 1`` models.

    Part ``k`` holds the operators after cut ``k - 1`` up to and including cut
    ``k``; its output is that cut tensor (the last part keeps the model's
    outputs). Every part after the first starts with ``Input(cut tensor name,
    shape, bits, signed)`` carrying the cut tensor's type and scale.

    Parameters
    ----------
    model : IntegerModel
    cuts : sequence of str
        Cut tensors (see :func:`cut_points`), in operator order.

    Returns
    -------
    list of IntegerModel
        Named ``"<model>.part<k>"``; their metadata adds ``"slice": {"index",
        "count", "input", "output"}`` to the model's.

    Raises
    ------
    ModelError
        Naming the cut: not a tensor of the model, not a cut point (and why),
        repeated, or out of operator order.
    """
    if not isinstance(model, IntegerModel):
        raise TypeError(f"Model must be an IntegerModel, not {model!r}")
    if isinstance(cuts, str) or not isinstance(cuts, (list, tuple)):
        raise ModelError("model", "cuts", f"must be a list of tensor names, not {cuts!r}")
    position = {op.name: index for index, op in enumerate(model.ops)}
    live = _live_after(model)
    previous = -1
    for cut in cuts:
        if not isinstance(cut, str) or cut not in position:
            raise ModelError(str(cut), "cut", "is not a tensor of the model")
        why = _refusal(model, cut, live[position[cut]])
        if why is not None:
            raise ModelError(cut, "cut", f"cannot cut the model there: the tensor {why}")
        if position[cut] <= previous:
            raise ModelError(cut, "cut", "is repeated or out of operator order "
                             f"(cuts must follow the operators: {', '.join(cuts)})")
        previous = position[cut]
    bounds = [0] + [position[cut] + 1 for cut in cuts] + [len(model.ops)]
    parts = []
    for k, (start, stop) in enumerate(zip(bounds, bounds[1:])):
        ops = list(model.ops[start:stop])
        source = cuts[k - 1] if k else None
        if source is not None:
            t = model.type_of(source)
            ops.insert(0, Input(source, t.shape, t.bits, t.signed, model.op(source).scale))
        outputs = [cuts[k]] if k < len(cuts) else list(model.outputs)
        metadata = dict(model.metadata)
        metadata["slice"] = {"index": k, "count": len(cuts) + 1,
                             "input": source or model.inputs[0].name,
                             "output": outputs[-1]}
        name = f"{model.name}.part{k}"
        parts.append(IntegerModel(ops, outputs, name=name[-128:].lstrip("."),
                                  metadata=metadata))
    return parts
