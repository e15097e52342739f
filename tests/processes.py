"""Test helper: which processes are alive, read from /proc (Linux), for the no-orphan tests."""
import os

__all__ = ["children", "alive", "processes_with"]


def _stat(pid):
    """``(state, parent pid)`` of ``pid``, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def alive(pid):
    """Whether ``pid`` runs (a zombie, dead but not yet reaped, does not count)."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def children(pid):
    """Pids of the live processes whose parent is ``pid``."""
    pids = [int(e) for e in os.listdir("/proc") if e.isdigit()]
    return [p for p in pids if (_stat(p) or ("Z", None))[1] == pid and alive(p)]


def processes_with(text):
    """Pids of the live processes whose command line contains ``text`` (a trainer's data
    workers are forks of it: the same command line)."""
    found = []
    for pid in (int(e) for e in os.listdir("/proc") if e.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and alive(pid):
            found.append(pid)
    return found
