"""The one exception type that the integer model raises for bad input."""

__all__ = ["ModelError"]


class ModelError(ValueError):
    """An integer model, or a file holding one, is invalid.

    The message always names where the problem is (the operator, or the file)
    and which field is wrong, so that a user can fix the exporter or the file
    without reading a traceback.

    Attributes
    ----------
    where : str
        The operator name, or ``"model"`` / ``"file"`` for problems that are not
        tied to one operator.
    field : str
        The field that is wrong, e.g. ``"weights"`` or ``"thresholds"``.
    """

    def __init__(self, where, field, problem):
        self.where = where
        self.field = field
        self.problem = problem
        super().__init__(f"{where}: {field}: {problem}")
