"""paddle_fcn.fileio: a failed write leaves the old file and no temporary; the umask holds."""
import os

import pytest

from paddle_fcn.fileio import atomic_dir, atomic_write, atomic_write_text, restore_old_dirs


def _entries(folder):
    return sorted(os.listdir(folder))


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    atomic_write_text("old", str(path))  # the folder is created
    assert path.read_text() == "old"

    def half_then_fail(tmp):
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(str(path), half_then_fail)
    assert path.read_text() == "old" and _entries(tmp_path / "sub") == ["metrics.json"]


def test_text_follows_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_text("x", str(tmp_path / "a.txt"))
    finally:
        os.umask(old)
    assert os.stat(tmp_path / "a.txt").st_mode & 0o777 == 0o640


def test_a_directory_swap_killed_between_the_renames_is_restored(tmp_path):
    def write(folder, text):
        with open(os.path.join(folder, "f.txt"), "w") as f:
            f.write(text)

    final = atomic_dir(str(tmp_path), "best_model", lambda d: write(d, "1"), "best", "best")
    atomic_dir(str(tmp_path), "best_model", lambda d: write(d, "2"), "best", "best")
    assert open(os.path.join(final, "f.txt")).read() == "2"
    assert _entries(tmp_path) == ["best_model"]  # the old copy is gone
    os.rename(final, tmp_path / ".old-best-0123abcd")  # as if killed between the renames
    os.makedirs(tmp_path / ".tmp-best-x")  # and a write killed midway
    restore_old_dirs(str(tmp_path), "best", lambda tag: "best_model", (".tmp-best-",))
    assert _entries(tmp_path) == ["best_model"]
    assert open(os.path.join(final, "f.txt")).read() == "2"

    def fail(folder):
        write(folder, "3")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):  # a failed write changes nothing
        atomic_dir(str(tmp_path), "best_model", fail, "best", "best")
    assert _entries(tmp_path) == ["best_model"]
    assert open(os.path.join(final, "f.txt")).read() == "2"
