"""The integer model: operators in topological order, with inferred tensor types."""

import json

from .checks import require_name
from .errors import ModelError
from .operator import Input, Operator

__all__ = ["IntegerModel"]


class IntegerModel:
    """A graph of integer operators, validated on construction.

    Parameters
    ----------
    ops : list of Operator
        In topological order: every input an operator names must be the name of
        an operator before it. Names are unique; an operator's output tensor
        has the operator's name.
    outputs : list of str, optional
        Names of the output tensors; by default the last operator.
    name : str
        A name for reports and file listings.
    metadata : dict, optional
        Free JSON metadata (data set, class names, training run...). Not used
        for computation.

    Raises
    ------
    ModelError
        Naming the operator and field for any inconsistency: unknown or
        forward (dangling or cyclic) references, shape or width mismatches,
        duplicate names, an operator whose output nobody reads.

    Every operator but an input must be read, by another operator or as a model
    output. A result nobody reads is always a mistake, and in hardware it is a
    stream nobody takes from, which stalls the fork that feeds it. An unread
    input forks nothing, so it is allowed (the model ignores it).
    """

    def __init__(self, ops, outputs=None, *, name="model", metadata=None):
        self._name = require_name(name, "model", "name")
        if not isinstance(ops, (list, tuple)) or not ops:
            raise ModelError("model", "ops", "must be a non-empty list of operators")
        self._ops = tuple(ops)
        self._by_name = {}
        self._types = {}
        for index, op in enumerate(self._ops):
            if not isinstance(op, Operator):
                raise ModelError("model", f"ops[{index}]", f"is not an operator: {op!r}")
            if op.name in self._by_name:
                raise ModelError(op.name, "name", "is used by more than one operator")
            for input_name in op.inputs:
                if input_name not in self._by_name:
                    later = any(o.name == input_name for o in self._ops[index:])
                    why = ("which comes later (operators must be in topological order, "
                           "and a graph with a cycle has none)") if later else "which does not exist"
                    raise ModelError(op.name, "inputs", f"refers to {input_name!r}, {why}")
            try:
                self._types[op.name] = op.infer([self._types[i] for i in op.inputs])
            except ModelError as error:
                # TensorType cannot know which operator it is built for.
                if error.where != "tensor":
                    raise
                raise ModelError(op.name, f"output {error.field}", error.problem) from None
            channels = self._types[op.name].channels
            if isinstance(op.scale, tuple) and len(op.scale) not in (1, channels):
                raise ModelError(op.name, "scale",
                                 f"has {len(op.scale)} per-channel entries, but the output has "
                                 f"{channels} channels")
            self._by_name[op.name] = op
        if not self.inputs:
            raise ModelError("model", "ops", "has no input operator")
        if outputs is None:
            outputs = [self._ops[-1].name]
        if isinstance(outputs, str) or not isinstance(outputs, (list, tuple)) or not outputs:
            raise ModelError("model", "outputs", f"must be a non-empty list of names, not {outputs!r}")
        for output in outputs:
            if not isinstance(output, str) or output not in self._by_name:
                raise ModelError("model", "outputs", f"names {output!r}, which is not an operator")
        self._outputs = tuple(outputs)
        read = {name for op in self._ops for name in op.inputs} | set(self._outputs)
        for op in self._ops:
            if op.name not in read and not isinstance(op, Input):
                raise ModelError(op.name, "outputs",
                                 "is never read: no operator takes it as an input and it is not "
                                 "a model output; remove the operator or list it in the model's "
                                 "outputs")
        if metadata is None:
            metadata = {}
        try:
            self._metadata = json.loads(json.dumps(metadata, allow_nan=False))
        except (TypeError, ValueError, RecursionError) as error:
            raise ModelError("model", "metadata", f"must be plain JSON ({error})") from None
        if not isinstance(self._metadata, dict):
            raise ModelError("model", "metadata", "must be a JSON object")

    @property
    def name(self):
        return self._name

    @property
    def ops(self):
        return self._ops

    @property
    def outputs(self):
        return self._outputs

    @property
    def metadata(self):
        return self._metadata

    @property
    def inputs(self):
        """The input operators, in order."""
        return [op for op in self._ops if isinstance(op, Input)]

    @property
    def types(self):
        """Tensor type of every operator's output, by name (a copy)."""
        return dict(self._types)

    def op(self, name):
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"the model has no operator named {name!r}") from None

    def type_of(self, name):
        return self._types[self.op(name).name]

    def consumers(self, name):
        """Operators that read the output of ``name``."""
        return [op for op in self._ops if name in op.inputs]

    def summary(self):
        """A plain-text table of operators, shapes and widths."""
        rows = [("name", "type", "inputs", "output")]
        for op in self._ops:
            kind = op.op_type
            weights = getattr(op, "weights", None)
            if weights is not None:
                kind += f" ({weights.kind} w{weights.bits})"
            rows.append((op.name, kind, ",".join(op.inputs), self._types[op.name].describe()))
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
                         for row in rows)

    def __repr__(self):
        return f"IntegerModel({self._name!r}, {len(self._ops)} ops, outputs={list(self._outputs)})"
