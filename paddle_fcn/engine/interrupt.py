"""Stopping a run on Ctrl-C (SIGINT) or SIGTERM without losing what it saved.

Inside ``stop_on_signals()`` the first of these signals raises ``TrainingInterrupted`` in the
main thread, wherever it is (waiting for data included), except inside ``critical()`` sections
(writing a checkpoint, the best model, the metrics), where it is held back and raised when the
section ends, so files on disk are always complete. Later signals are the same request: they
raise nothing, so the clean-up that follows the first (ending the data workers) cannot be cut
short by a second Ctrl-C.

With several ranks (``deferred=True``) a signal only records the request: a rank that stopped
on its own would leave the others waiting in a collective for ever. ``requested(reduce_sum)``
at an iteration boundary (a collective) then stops every rank after the same step.

``TrainingInterrupted`` derives from ``BaseException`` (as ``KeyboardInterrupt`` does), so an
``except Exception`` around a file read cannot swallow it. The handlers in place before
(Python's own for SIGINT, the default for SIGTERM) are restored on exit.
"""
import contextlib
import signal
import threading

__all__ = ["TrainingInterrupted", "stop_on_signals", "critical", "requested", "EXIT_CODES"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Exit status of tools/train.py after such a stop: the shell's 128 + signal number.
EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


class TrainingInterrupted(BaseException):
    """Raised by ``stop_on_signals`` for SIGINT/SIGTERM; ``signum``, ``iteration`` (the last
    completed optimizer step; None when the run stopped while starting) and ``rank``, filled
    in by the trainer."""

    def __init__(self, signum, iteration=None, rank=0):
        super().__init__(signal.Signals(signum).name)
        self.signum, self.iteration, self.rank = signum, iteration, rank


class _State(threading.local):
    depth = 0          # nesting of critical() sections
    pending = None     # signal received and not yet raised
    raised = False     # TrainingInterrupted already raised: later signals only record
    deferred = False   # several ranks: never raise from the handler


_state = _State()


def _handler(signum, frame):
    if _state.raised or _state.pending:
        return
    _state.pending = signum
    if _state.depth == 0 and not _state.deferred:
        _raise()


def _raise():
    signum, _state.pending, _state.raised = _state.pending, None, True
    raise TrainingInterrupted(signum)


@contextlib.contextmanager
def stop_on_signals(deferred=False):
    """Turn SIGINT/SIGTERM into ``TrainingInterrupted`` (main thread only; elsewhere a no-op).
    ``deferred``: only record them, for ``requested`` to act on (several ranks)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state.pending, _state.raised, _state.deferred = None, False, deferred
    previous = {s: signal.signal(s, _handler) for s in SIGNALS}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _state.pending, _state.deferred = None, False


@contextlib.contextmanager
def critical():
    """Hold SIGINT/SIGTERM back until the block is done (then raise for the first one)."""
    _state.depth += 1
    try:
        yield
    finally:
        _state.depth -= 1
    if _state.pending and _state.depth == 0 and not _state.deferred:
        _raise()


def requested(reduce_sum=None):
    """Raise ``TrainingInterrupted`` if a stop was requested on this rank or, with
    ``reduce_sum`` (a sum over the ranks of a list of numbers, e.g.
    ``distributed.all_reduce_sum``; collective), on any rank: SIGTERM wins over SIGINT. For
    deferred mode, at an iteration boundary; a no-op otherwise."""
    if not _state.deferred:
        return
    mine = _state.pending or 0
    term, any_rank = reduce_sum([mine == signal.SIGTERM, mine != 0]) if reduce_sum else \
        (mine == signal.SIGTERM, mine != 0)
    if any_rank:
        _state.pending = signal.SIGTERM if term else (mine or signal.SIGINT)
        _raise()
