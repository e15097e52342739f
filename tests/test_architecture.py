"""The package's import graph: no cycles, and layers that point one way (docs/architecture.md).

Every ``import`` of every module under ``paddle_fcn/`` counts, those inside functions too (a
lazy import that dodges a cycle is still a cycle). Layers, top down::

    cli -> engine -> inference -> {models, data, config} -> core

``core`` is ``paddle_fcn/{upsample, metrics, runtime, normalization, errors, fileio,
device}.py``; a module may import its own group and the layers below it, never a layer above
nor a sibling of its own layer (models, data and config do not import each other).
``tools/*.py`` sit above ``cli`` and are not walked.
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "paddle_fcn"
CORE = ("upsample", "metrics", "runtime", "normalization", "errors", "fileio", "device")
# group -> rank; a module imports groups of lower rank, and its own group
RANKS = {"cli": 4, "engine": 3, "inference": 2, "models": 1, "data": 1, "config": 1, "core": 0}


def _module_names():
    """``{dotted name: path}`` of every module of the package (``pkg/__init__.py`` as ``pkg``)."""
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = path
    return names


MODULES = _module_names()


def _resolve(name):
    """The package module an imported name belongs to: the longest dotted prefix that is one."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in MODULES:
            return candidate
    return None


def _imports(module, path):
    """The package modules ``module`` imports anywhere in its source (``from a import b``
    counts as importing ``a.b`` when that is a module, else ``a``)."""
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, up level - 1 more
                anchor = module.split(".")[: len(module.split(".")) - node.level
                                           + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        found.update(t for t in map(_resolve, targets) if t is not None and t != module)
    return found


GRAPH = {module: _imports(module, path) for module, path in MODULES.items()}


def _group(module):
    """The layer group of a module (``paddle_fcn`` itself, the package's front door, is
    ``cli``'s); ``None`` for a module no layer claims."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] == "__main__":  # the front doors: import paddle_fcn, -m
        return "cli"
    if parts[1] in RANKS and parts[1] != "core":
        return parts[1]
    if len(parts) == 2 and parts[1] in CORE:
        return "core"
    return None


def _edges(importer_group):
    """``importer -> imported`` edges from modules of ``importer_group`` that break the
    layering: to a higher layer, or to a sibling group of the same rank."""
    bad = []
    for module, imported in sorted(GRAPH.items()):
        if _group(module) != importer_group:
            continue
        for target in sorted(imported):
            group = _group(target)
            if group != importer_group and RANKS[group] >= RANKS[importer_group]:
                bad.append(f"{module} -> {target}")
    return bad


def _cycles():
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, components = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(GRAPH[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    return components


def test_the_walk_sees_lazy_and_relative_imports(tmp_path):
    source = tmp_path / "x.py"
    source.write_text("import numpy\nfrom paddle_fcn.upsample import bilinear_kernel\n\n"
                      "def f():\n    from paddle_fcn.models.fcn import FCN\n"
                      "    from . import vgg\n    from .. import metrics\n")
    assert _imports("paddle_fcn.models.x", source) == {
        "paddle_fcn.upsample", "paddle_fcn.models.fcn", "paddle_fcn.models.vgg",
        "paddle_fcn.metrics"}
    assert "paddle_fcn.models.fcn" in GRAPH["paddle_fcn.models.fcn_vgg"]


def test_every_module_has_a_layer():
    assert [m for m in MODULES if _group(m) is None] == []


def test_no_import_cycles():
    assert _cycles() == []


@pytest.mark.parametrize("group", list(RANKS))
def test_layers_point_down(group):
    """No module of ``group`` imports a layer above it or a sibling of its rank (core: nothing
    but core; models, data, config: not each other; inference: not engine nor cli; engine:
    not cli)."""
    assert _edges(group) == []
