"""Batches from worker processes that can neither hang the run nor outlive it.

``WorkerLoader(dataset, batches, collate_fn, num_workers, timeout)`` yields
``collate_fn([dataset[item] for item in batch])`` for every ``batch`` of ``batches``, in order,
loaded ahead by ``num_workers`` processes (``0``: in this process). Three guarantees that
``paddle.io.DataLoader`` does not give:

- **No OpenCV deadlock.** OpenCV's thread pool does not survive ``fork``: once this process
  has run a multi-threaded OpenCV call (a resize or erode of a photo-size image does), a forked
  child that reconfigures the pool (``cv2.setNumThreads(n)``, n >= 1) waits for the parent's
  threads, which do not exist in the child, for ever. This package's old ``worker_init_fn``
  did exactly that (measured: hung in 4 of 6 runs). Workers here never touch the pool size,
  and are forked while OpenCV is set to no threads (``fork_safe_opencv``), so they inherit
  "no pool" and run OpenCV single-threaded (one core each, which is what N workers want);
  this process gets its threads back right after the fork.
- **A watchdog.** Each worker records the sample it is reading and since when, in memory
  shared with this process. A sample that takes longer than ``timeout`` seconds, a worker
  that dies, or no batch at all for ``timeout`` seconds raises ``DataLoaderError`` naming the
  worker, the sample index and its files; the reader checks every second or so. An exception
  in a worker comes back with the sample and the worker's traceback (a ``DataError``, whose
  message already names the file, as it is). With ``num_workers=0`` there is no watchdog.
- **No orphans.** Workers die with this process (Linux ``PR_SET_PDEATHSIG``, so even after a
  SIGKILL; elsewhere they notice the new parent within a second once idle), ignore Ctrl-C
  (this process handles it and stops them; SIGINT/SIGTERM are blocked while they are forked,
  so none arrives before they have set that up), and ``close()`` (also on leaving the
  iteration by an exception) ends them, killing any that do not stop within a second.

Protocol: batch ``n`` goes to worker ``n % num_workers`` as ``(n, items)`` on that worker's
task queue (``None``: stop); every worker answers on the shared result queue with
``(n, batch, None)`` or ``(n, None, exception)``; results that arrive early wait in a buffer
until their turn. ``progress[3 w : 3 w + 3]`` is worker ``w``'s ``(batch, sample index,
start time)``, the time ``-1`` while it is idle (written before the index, so a reader that
sees an old start time long past the timeout also sees its sample).
"""
import contextlib
import ctypes
import multiprocessing
import os
import pickle
import queue
import signal
import sys
import time
import traceback

import cv2

from paddle_fcn.errors import DataError

__all__ = ["WorkerLoader", "DataLoaderError", "fork_safe_opencv", "sample_name"]

_IDLE = -1.0
_PR_SET_PDEATHSIG = 1
_LINUX = sys.platform.startswith("linux")
_STOP_SIGNALS = {signal.SIGINT, signal.SIGTERM}


class DataLoaderError(DataError):
    """A loader worker is stuck (longer than ``data_timeout``) or died; names the sample."""


def sample_name(dataset, index):
    """``sample <i> (<image>, <label>)`` when ``dataset`` lists its files, else ``sample <i>``."""
    files = getattr(dataset, "files", None)
    if files is not None and 0 <= index < len(files):
        return f"sample {index} ({', '.join(map(str, files[index]))})"
    return f"sample {index} of {type(dataset).__name__}"


@contextlib.contextmanager
def fork_safe_opencv():
    """OpenCV without a thread pool while processes are forked; its thread count restored
    after. A child forked meanwhile inherits 'no threads' and so never waits on the pool."""
    threads = cv2.getNumThreads()
    cv2.setNumThreads(0)
    try:
        yield
    finally:
        cv2.setNumThreads(threads)


def _die_with_parent(parent_pid):
    """Have the kernel SIGKILL this worker when its parent dies (Linux; a no-op elsewhere)."""
    if _LINUX:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _index(item):
    """Dataset index of a batch item: ``i`` or ``(i, seed)`` (``engine.sampler``)."""
    return int(item[0] if isinstance(item, tuple) else item)


def _portable(exc, where):
    """What to send back for ``exc``: a ``DataError`` as it is (its message names the file)
    if it pickles; anything else as a ``DataLoaderError`` naming ``where`` (worker, sample,
    files) with the worker's traceback, which would otherwise be lost."""
    if isinstance(exc, DataError):
        with contextlib.suppress(Exception):
            pickle.loads(pickle.dumps(exc))
            return exc
    trace = "".join(traceback.format_exception(exc)).rstrip()
    return DataLoaderError(f"{where}: {type(exc).__name__}: {exc}\nworker traceback:\n{trace}")


def _worker_loop(wid, dataset, collate_fn, tasks, results, progress, parent_pid):
    """Worker ``wid``: answer ``(n, items)`` tasks until ``None`` or the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the main process to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the trainer's handler inherited by fork
    if hasattr(signal, "pthread_sigmask"):  # blocked by _start around the fork
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    _die_with_parent(parent_pid)
    while True:
        try:
            task = tasks.get(timeout=1.0)
        except queue.Empty:
            if os.getppid() != parent_pid:
                return
            continue
        if task is None:
            return
        number, items = task
        index = -1
        try:
            samples = []
            for item in items:
                index = _index(item)
                progress[3 * wid + 2] = _IDLE
                progress[3 * wid:3 * wid + 2] = (number, index)
                progress[3 * wid + 2] = time.time()
                samples.append(dataset[item])
            out = (number, collate_fn(samples), None)
        except Exception as exc:  # noqa: BLE001  (reported by the main process)
            where = f"data loader worker {wid} on {sample_name(dataset, index)} of batch {number}"
            out = (number, None, _portable(exc, where))
        progress[3 * wid + 2] = _IDLE
        results.put(out)


class WorkerLoader:
    """See the module docstring. ``batches``: an iterable of lists of dataset items;
    ``prefetch``: batches queued per worker; ``timeout``: seconds (``data_timeout``)."""

    def __init__(self, dataset, batches, collate_fn, num_workers=2, timeout=300.0, prefetch=2):
        if num_workers < 0 or timeout <= 0:
            raise ValueError(f"num_workers must be >= 0 and timeout > 0, got {num_workers}, "
                             f"{timeout}")
        self.dataset, self.batches, self.collate_fn = dataset, batches, collate_fn
        self.num_workers, self.timeout, self.prefetch = num_workers, float(timeout), prefetch
        self._procs, self._tasks, self._results = [], [], None

    def __iter__(self):
        """Batches in the order of ``batches``; the workers start at the first ``next`` and
        end with the iteration (exhausted, closed or left by an exception)."""
        if self._procs:
            raise RuntimeError("WorkerLoader is already being iterated; make a second loader")
        if self.num_workers == 0:
            for items in self.batches:
                yield self.collate_fn([self.dataset[item] for item in items])
            return
        self._start()
        try:
            pending = iter(self.batches)
            sent = sum(self._send(n, pending) for n in range(self.num_workers * self.prefetch))
            number = 0
            while number < sent:
                yield self._receive(number)
                number += 1
                sent += self._send(sent, pending)
        finally:
            self.close()

    def _start(self):
        # fork where it is safe (Linux); macOS and Windows spawn (the dataset pickles)
        ctx = multiprocessing.get_context("fork" if _LINUX else "spawn")
        self._progress = ctx.RawArray("d", [0.0, 0.0, _IDLE] * self.num_workers)
        self._results, self._done, self._last = ctx.Queue(), {}, time.time()
        self._tasks = [ctx.Queue() for _ in range(self.num_workers)]
        blocked = hasattr(signal, "pthread_sigmask")
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS) if blocked else None
        try:
            self._fork_workers(ctx)
        finally:
            if blocked:
                signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)

    def _fork_workers(self, ctx):
        with fork_safe_opencv():
            for wid in range(self.num_workers):
                p = ctx.Process(target=_worker_loop, daemon=True, name=f"data-worker-{wid}",
                                args=(wid, self.dataset, self.collate_fn, self._tasks[wid],
                                      self._results, self._progress, os.getpid()))
                p.start()
                self._procs.append(p)

    def _send(self, number, pending):
        """Queue batch ``number`` (the next of ``pending``) to its worker; False when done."""
        items = next(pending, None)
        if items is None:
            return False
        self._tasks[number % self.num_workers].put((number, list(items)))
        return True

    def _receive(self, number):
        """Batch ``number``: from the buffer or the result queue, checking the workers each
        time the queue stays empty for a second."""
        while number not in self._done:
            try:
                got, data, error = self._results.get(timeout=min(1.0, self.timeout / 4))
            except queue.Empty:
                self._check(number)
                continue
            self._done[got], self._last = (data, error), time.time()
        data, error = self._done.pop(number)
        if error is not None:
            raise error
        return data

    def _check(self, number):
        """Raise DataLoaderError if a worker died or is stuck, or nothing came for too long."""
        now = time.time()
        for wid, p in enumerate(self._procs):
            batch, index, since = self._progress[3 * wid:3 * wid + 3]
            where = f"data loader worker {wid} (pid {p.pid})"
            if since != _IDLE:
                where += f" on {sample_name(self.dataset, int(index))} of batch {int(batch)}"
            if not p.is_alive():
                how = (f"killed by signal {-p.exitcode}" if p.exitcode < 0
                       else f"exit code {p.exitcode}")
                raise DataLoaderError(f"{where}: the worker died ({how}); see its output above")
            if since != _IDLE and now - since > self.timeout:
                raise DataLoaderError(
                    f"{where}: no result after {now - since:.0f} s (data_timeout = "
                    f"{self.timeout:g} s). Reading or transforming this sample hangs or is "
                    f"very slow; check the file, or raise data_timeout, or use num_workers=0 "
                    f"to debug it in this process")
        if now - self._last > self.timeout:
            raise DataLoaderError(f"no batch from the {self.num_workers} data loader workers "
                                  f"for {now - self._last:.0f} s (data_timeout = "
                                  f"{self.timeout:g} s) while waiting for batch {number}")

    def close(self):
        """End the workers (killing any that do not stop within a second); idempotent."""
        for q in self._tasks:
            with contextlib.suppress(Exception):
                q.put(None)
        deadline = time.time() + 1.0
        for p in self._procs:
            p.join(max(0.0, deadline - time.time()))
        for p in self._procs:
            if p.is_alive():
                p.kill()
                p.join(5.0)
        for q in self._tasks + ([self._results] if self._results is not None else []):
            q.cancel_join_thread()
            q.close()
        self._procs, self._tasks, self._results = [], [], None
