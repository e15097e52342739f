"""Atomic writes: a reader (or a resumed run) sees the old file or the new one, never a part.

Every file the package writes for a user to keep (``config.yml``, ``metrics.json``,
checkpoints, ``best_model/``, ``deploy.yml``) goes through this module:

- ``atomic_write(path, write)``: ``write(tmp_path)`` fills a temporary file in the same
  directory, which is fsync'ed and renamed over ``path`` (``os.replace``);
- ``atomic_write_text`` / ``atomic_save`` (``paddle.save``) on top of it;
- ``atomic_dir(parent, name, write)``: the same for a directory of files (a checkpoint); an
  existing ``name`` is first renamed to ``.old-<tag>-*`` and removed after the new one is in,
  so a kill between the two renames leaves the ``.old-`` copy for ``restore_old_dirs``.

Files and directories get the permissions of ordinary ``open``/``mkdir`` under the process
umask (``mkstemp``/``mkdtemp`` alone would make them owner-only), so a run on shared storage is
readable by the group.
"""
import os
import re
import secrets
import shutil
import tempfile
import threading

__all__ = ["atomic_write", "atomic_write_text", "atomic_save", "atomic_dir", "restore_old_dirs",
           "fsync_dir"]

_UMASK_LOCK = threading.Lock()


def fsync_dir(path):
    """Make a rename inside directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_file(path):
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _umask():
    """The process umask, read from /proc (Linux >= 4.7) or else set and restored under a
    lock (a file another thread creates in that instant gets the stricter 077, never looser)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _share(path):
    """chmod a ``mkstemp`` file to 0666 or a ``mkdtemp`` directory to 0777, less the umask."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


def atomic_write(path, write):
    """Create or replace the file ``path`` with what ``write(tmp_path)`` writes to
    ``tmp_path``. On any exception the previous ``path`` is untouched and no temporary file
    is left. Missing parent directories are created."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=folder)
    os.close(fd)
    try:
        write(tmp)
        _fsync_file(tmp)
        _share(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    fsync_dir(folder)


def atomic_write_text(text, path):
    """Write the string ``text`` (UTF-8) to ``path`` atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
    atomic_write(path, write)


def atomic_save(obj, path):
    """``paddle.save(obj, path)`` atomically."""
    import paddle  # only here: the text writers serve modules that never load Paddle

    atomic_write(path, lambda tmp: paddle.save(obj, tmp))


def atomic_dir(parent, name, write, tmp_tag, old_tag):
    """Create ``parent/name`` atomically: ``write(tmp_dir)`` fills a temporary directory
    ``.tmp-<tmp_tag>-*`` whose files are fsync'ed before it is renamed in. An existing
    ``name`` is swapped out through ``.old-<old_tag>-*``, never deleted first. Returns the
    final path."""
    os.makedirs(parent, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".tmp-{tmp_tag}-", dir=parent)
    final = os.path.join(parent, name)
    try:
        write(tmp)
        for entry in os.listdir(tmp):
            _fsync_file(os.path.join(tmp, entry))
        _share(tmp)
        old = None
        if os.path.exists(final):
            old = os.path.join(parent, f".old-{old_tag}-{secrets.token_hex(4)}")
            os.rename(final, old)
        os.replace(tmp, final)
        fsync_dir(parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def restore_old_dirs(parent, old_tags, final_name, tmp_prefixes=()):
    """Repair what a process killed inside ``atomic_dir`` left in ``parent``.

    ``old_tags``: a regular expression of the ``old_tag`` values to repair; ``final_name(tag)``
    maps an ``.old-<tag>-*`` directory's tag to its final name. Such a
    directory whose final name is missing (killed between the two renames) is renamed back;
    otherwise it is a leftover and removed, as are directories starting with one of
    ``tmp_prefixes`` (killed while writing). A missing ``parent`` is fine.
    """
    if not os.path.isdir(parent):
        return
    old_dir = re.compile(rf"^\.old-({old_tags})-[0-9a-f]+$")
    for name in sorted(os.listdir(parent)):
        path = os.path.join(parent, name)
        old = old_dir.match(name)
        if old:
            final = os.path.join(parent, final_name(old.group(1)))
            if os.path.exists(final):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.rename(path, final)
                fsync_dir(parent)
        elif tmp_prefixes and name.startswith(tuple(tmp_prefixes)) and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
