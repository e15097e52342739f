"""Checks of the options model builders share, each worded once."""
__all__ = ["positive_int", "check_num_classes"]


def positive_int(value, what):
    """``value`` if it is a positive ``int`` (not a bool); else ``ValueError`` naming ``what``:
    "``what`` must be a positive integer, got ``value``"."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a positive integer, got {value!r}")
    return value


def check_num_classes(num_classes, what="num_classes"):
    """``num_classes`` (a model's number of classes, or a head's: ``what``) if it is a positive
    integer, else ``ValueError`` naming ``what`` and the value."""
    return positive_int(num_classes, what)
