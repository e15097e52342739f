"""The FCN reference repository's class lists (BSD-2, see README.md here), parsed."""
import os
import re

__all__ = ["reference_path", "read_reference_classes"]

_HERE = os.path.dirname(os.path.abspath(__file__))


def reference_path(name):
    """Path of the reference file ``name`` shipped with the package."""
    return os.path.join(_HERE, name)


def read_reference_classes(name):
    """Class names in index order from a reference list.

    ``pascal-context_classes-59.txt``: ``"<i>: <name>"`` lines, 0 = background (60 names).
    ``nyud_classes.txt``: one name per line up to the first blank line (40 names; the note
    after it says 0 is void). ``sift-flow_classes.txt``: ``{"semantic": [33], "geometric": [3]}``
    from its ``"NN name"`` lines under the ``Semantic:`` / ``Geometric:`` headings.
    """
    with open(reference_path(name), encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    if name.startswith("pascal-context"):
        return [line.split(":", 1)[1].strip() for line in lines if line.strip()]
    if name.startswith("nyud"):
        return lines[:lines.index("")]
    if name.startswith("sift-flow"):
        heads, current = {}, None
        for line in lines:
            if line.startswith(("Semantic:", "Geometric:")):
                current = heads.setdefault(line.split(":")[0].lower(), [])
            elif current is not None and re.match(r"^\d\d ", line):
                current.append(line[3:].strip())
        return heads
    raise ValueError(f"no reference class list {name!r}")
