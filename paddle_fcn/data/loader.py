"""Batches from worker processes that can neither hang the run nor outlive it.

``WorkerLoader(dataset, batches, collate_fn, num_workers, timeout)`` yields
``collate_fn([dataset[item] for item in batch])`` for every ``batch`` of ``batches``, in order,
loaded ahead by ``num_workers`` processes (``0``: in this process). Three guarantees that
``paddle.io.DataLoader`` does not give:

- **No OpenCV deadlock.** OpenCV's thread pool does not survive ``fork``: once this process
  has run a multi-threaded OpenCV call (a resize or erode of a photo-size image does), a forked
  worker that starts OpenCV threads blocks forever on the dead pool's lock. Workers are forked
  while OpenCV is set to no threads (``fork_safe_opencv``), inherit that setting, and never
  touch the pool size themselves (``cv2.setNumThreads(1)`` in a worker was this package's own
  deadlock); this process gets its threads back right after.
- **A watchdog.** Each worker records the sample it is reading and since when, in memory
  shared with this process. A sample that takes longer than ``timeout`` seconds, a worker
  that dies, or no batch at all for ``timeout`` seconds raises ``DataLoaderError`` naming the
  worker, the sample index and its files; the reader checks every second or so.
- **No orphans.** Workers die with this process (Linux ``PR_SET_PDEATHSIG``, so even after a
  SIGKILL; elsewhere they notice the new parent within a second once idle), ignore Ctrl-C
  (this process handles it and stops them), and ``close()`` (also on leaving the iteration by
  an exception) ends them, killing any that do not stop within a second.
"""
import contextlib
import ctypes
import multiprocessing
import os
import pickle
import queue
import signal
import time
import traceback

import cv2

from paddle_fcn.data.io import DataError

__all__ = ["WorkerLoader", "DataLoaderError", "fork_safe_opencv", "sample_name"]

_IDLE = -1.0
_PR_SET_PDEATHSIG = 1


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
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _index(item):
    """Dataset index of a batch item: ``i`` or ``(i, seed)`` (``engine.sampler``)."""
    return int(item[0] if isinstance(item, tuple) else item)


def _portable(exc, where):
    """``exc`` if it pickles (its message is the user's: a DataError names its file), else a
    RuntimeError carrying the worker's traceback."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001  (anything that does not survive the queue)
        return RuntimeError(f"{where}: {''.join(traceback.format_exception(exc))}")


def _worker_loop(wid, dataset, collate_fn, tasks, results, progress, parent_pid):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the main process to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the trainer's handler inherited by fork
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
        try:
            samples = []
            for item in items:
                progress[3 * wid:3 * wid + 3] = (number, _index(item), time.time())
                samples.append(dataset[item])
            out = (number, collate_fn(samples), None)
        except Exception as exc:  # noqa: BLE001  (reported by the main process)
            out = (number, None, _portable(exc, f"worker {wid}, batch {number}"))
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
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._progress = ctx.RawArray("d", [0.0, 0.0, _IDLE] * self.num_workers)
        self._results, self._done, self._last = ctx.Queue(), {}, time.time()
        self._tasks = [ctx.Queue() for _ in range(self.num_workers)]
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
