"""Stopping a run on Ctrl-C (SIGINT) or SIGTERM without losing what it saved.

Inside ``stop_on_signals()`` either signal raises ``TrainingInterrupted`` in the main thread,
wherever it is (waiting for data included), except inside ``critical()`` sections (writing a
checkpoint or the best model), where it is held back and raised when the section ends, so
files on disk are always complete. A second signal while one is held back is the same
request and changes nothing. The previous handlers (Python's, or Paddle's own SIGTERM handler,
which would abort the process with a stack dump) are restored on exit.
"""
import contextlib
import signal
import threading

__all__ = ["TrainingInterrupted", "stop_on_signals", "critical", "EXIT_CODES"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Exit status of tools/train.py after such a stop: the shell's 128 + signal number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingInterrupted(Exception):
    """Raised by ``stop_on_signals`` for SIGINT/SIGTERM; ``signum`` and ``iteration`` (the
    last completed optimizer step, filled in by the trainer)."""

    def __init__(self, signum, iteration=None):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.iteration = signum, iteration


_state = threading.local()


def _held():
    return getattr(_state, "depth", 0) > 0


def _handler(signum, frame):
    if _held():
        _state.pending = getattr(_state, "pending", None) or signum
        return
    raise TrainingInterrupted(signum)


@contextlib.contextmanager
def stop_on_signals():
    """Turn SIGINT/SIGTERM into ``TrainingInterrupted`` (main thread only; elsewhere a no-op)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    _state.pending = None
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


@contextlib.contextmanager
def critical():
    """Hold SIGINT/SIGTERM back until the block is done (then raise for the first one)."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        yield
    finally:
        _state.depth -= 1
    pending = getattr(_state, "pending", None)
    if pending and not _held():
        _state.pending = None
        raise TrainingInterrupted(pending)
