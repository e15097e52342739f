"""Checks of the options model builders share, each worded once (class counts:
``paddle_fcn.errors.check_num_classes``)."""
__all__ = ["positive_int"]


def positive_int(value, what):
    """``value`` if it is a positive ``int`` (not a bool); else ``ValueError`` naming ``what``:
    "``what`` must be a positive integer, got ``value``"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value
