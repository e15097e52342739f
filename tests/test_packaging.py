"""pyproject.toml: the wheel pip builds holds every module of the package, the data files the
package reads at run time and the ``paddle-fcn`` entry point, and nothing else of the
repository (tests, tools, benchmarks, configs).

The wheel is built offline (``--no-build-isolation``) from a copy of the repository, so that a
``build/`` folder of an earlier build cannot leak stale modules into it.
"""
import configparser
import glob
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest
from fixtures import REPO

# Data files that code reads by name (data/voc.py, data/reference/__init__.py and its users).
RUNTIME_DATA = [
    "paddle_fcn/data/splits/pascal_seg11valid.txt",
    "paddle_fcn/data/splits/README.md",  # the BSD-2 attribution travels with the copy
    "paddle_fcn/data/reference/README.md",
    "paddle_fcn/data/reference/pascal-context_classes-59.txt",
    "paddle_fcn/data/reference/nyud_classes.txt",
    "paddle_fcn/data/reference/sift-flow_classes.txt",
    "paddle_fcn/data/reference/ade20k_classes-150.txt",
]


def _can_build_wheels():
    """None when this interpreter's setuptools can build a wheel offline, else the reason."""
    if importlib.util.find_spec("setuptools") is None:
        return "setuptools is not installed (pip install setuptools to build wheels offline)"
    import setuptools

    major, minor = (int(p) for p in setuptools.__version__.split(".")[:2])
    if (major, minor) < (70, 1) and importlib.util.find_spec("wheel") is None:
        return (f"setuptools {setuptools.__version__} needs the wheel package for bdist_wheel "
                "(pip install -U setuptools, or pip install wheel)")
    return None


def _package_files():
    """Every file of the package folder in the repository, as wheel member names."""
    root = os.path.join(REPO, "paddle_fcn")
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        rel = os.path.relpath(folder, REPO).replace(os.sep, "/")
        found += [f"{rel}/{name}" for name in files if not name.endswith(".pyc")]
    return found


def _requirements(lines):
    """``{name: {specifier, ...}}`` of requirement lines (setuptools reorders specifiers)."""
    parsed = {}
    for line in lines:
        match = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(.*)", line)
        name, spec = match.group(1).lower().replace("_", "-"), match.group(2).replace(" ", "")
        parsed[name] = set(filter(None, spec.split(",")))
    return parsed


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    reason = _can_build_wheels()
    if reason:
        pytest.skip(reason)
    source = tmp_path_factory.mktemp("source") / "repo"
    local = {".git", ".venv", "build", "dist", "output", "data"}  # a checkout's own, top level

    def skipped(folder, names):
        top = os.path.samefile(folder, REPO)
        return [n for n in names if n == "__pycache__" or n.endswith(".egg-info")
                or (top and n in local)]

    shutil.copytree(REPO, source, ignore=skipped)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                           "--no-build-isolation", "--no-index", "-q", "-w", str(out),
                           str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    wheels = glob.glob(str(out / "*.whl"))
    assert len(wheels) == 1, wheels
    return zipfile.ZipFile(wheels[0])


def test_wheel_holds_every_module_and_the_runtime_data(wheel):
    names = set(wheel.namelist())
    modules = [n for n in _package_files() if n.endswith(".py")]
    assert "paddle_fcn/__init__.py" in modules and "paddle_fcn/data/voc.py" in modules
    assert sorted(set(modules) - names) == []
    assert sorted(set(RUNTIME_DATA) - names) == []
    assert sorted(set(_package_files()) - names) == []  # no other file of the package left out


def test_wheel_holds_nothing_but_the_package(wheel):
    tops = {n.split("/")[0] for n in wheel.namelist()}
    dist_info = [t for t in tops if t.endswith(".dist-info")]
    assert len(dist_info) == 1 and tops == {"paddle_fcn", dist_info[0]}
    for name in ("tests", "tools", "benchmarks", "configs", "docs"):
        assert not any(n.startswith(name + "/") for n in wheel.namelist())


def test_wheel_metadata_has_the_requirements_and_the_entry_point(wheel):
    dist_info = next(n.split("/")[0] for n in wheel.namelist() if ".dist-info/" in n)
    metadata = wheel.read(f"{dist_info}/METADATA").decode()
    requires = [line.split(":", 1)[1] for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    with open(os.path.join(REPO, "requirements.txt")) as f:
        listed = [line for line in f if line.strip() and not line.startswith("#")]
    assert len(listed) >= 8 and _requirements(requires) == _requirements(listed)
    assert "Requires-Python: >=3.9" in metadata
    entry_points = configparser.ConfigParser()
    entry_points.read_string(wheel.read(f"{dist_info}/entry_points.txt").decode())
    assert entry_points["console_scripts"]["paddle-fcn"] == "paddle_fcn.cli:main"
