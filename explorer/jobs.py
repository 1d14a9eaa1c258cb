"""Background jobs: one function per layer, streamed results, progress, cancel, disk cache.

A job computes ``fn(layer)`` for each of its ``layers`` on a ``concurrent.futures.Executor`` (a
shared pool of background threads by default; Dask's ``client.get_executor()`` for a cluster)
and keeps the caller free: :meth:`JobEngine.submit` returns at once. At most ``parallel`` layers
of a job are in flight (default 1: layers run in order), and the next one is submitted when one
finishes, so

* **cancel** stops the job between layers: no layer starts after :meth:`Job.cancel` (the layer
  already running finishes, its result is kept);
* **partial results stream**: each finished layer is announced to the ``on_part`` callbacks and
  to every :meth:`Job.parts` iterator at once;
* **progress** (layers done, the layer now running and how far it has got, an ETA from the
  time per unit of work done so far) goes to the ``on_progress`` callbacks; a long layer reports
  how far it has got by calling :func:`layer_progress` (in-process executors only);
* **errors** are caught per layer: the failed layer's exception is kept in :attr:`Job.errors`
  and the other layers complete; :meth:`Job.result` then raises :class:`JobError` naming them;
* **nested jobs** (a layer that itself submits a job to the same engine, e.g. calls
  ``ex.project``) run their layers inline on the calling worker thread: waiting for free workers
  of a pool the outer job may fill would never end (a nested pool deadlock);
* **exit**: the default pool's threads are daemons, so a layer still running when the interpreter
  (a notebook kernel) shuts down does not keep it alive; cache writes are atomic, so an
  interrupted layer leaves nothing that is read back;
* **cache**: with ``key=`` (a function of the layer giving a :func:`explorer.cache.key`), a
  layer whose entry is on disk is read instead of computed, and a computed one is stored; such a
  layer's result must be a mapping of names to numeric arrays. Changing a parameter changes only
  the keys that depend on it, so only those layers recompute.

Nothing here imports notebook packages: widgets subscribe with callbacks.
"""

from __future__ import annotations

import itertools
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from typing import Any

from explorer.cache import Cache
from explorer.errors import ArgumentError, ExplorerError

__all__ = [
    "DaemonThreadPool",
    "Job",
    "JobEngine",
    "JobError",
    "Progress",
    "default_engine",
    "layer_progress",
    "submit",
]

_ids = itertools.count(1)
_engine_ids = itertools.count(1)
_worker = threading.local()  # .engines: ids of the engines whose layer this thread is running
_local = threading.local()
# seconds between two progress events from inside one layer
_LAYER_PROGRESS_INTERVAL = 0.2


def layer_progress(fraction: float) -> None:
    """From inside a job's function: the layer now running is ``fraction`` (0..1) done.

    The job's :class:`Progress` and its ETA move within the layer (at most one event per 0.2 s).
    A no-op outside a job and on executors that run layers in other processes (Dask).
    """
    report = getattr(_local, "report", None)
    if report is not None:
        report(min(1.0, max(0.0, float(fraction))))


class JobError(ExplorerError, RuntimeError):
    """Some layers of a job failed. ``errors``: layer -> exception; ``results``: the others."""

    def __init__(self, name: str, errors: Mapping[Hashable, BaseException], results: dict):
        self.errors = dict(errors)
        self.results = results
        lines = [f"{_label(k)}: {type(e).__name__}: {e}" for k, e in self.errors.items()]
        super().__init__(
            f"job {name!r}: {len(self.errors)} layer(s) failed "
            f"({len(results)} completed):\n  " + "\n  ".join(lines)
        )


def _label(layer: Hashable) -> str:
    return f"blocks.{layer}" if isinstance(layer, int) else str(layer)


@dataclass(frozen=True)
class Progress:
    """A job's state: ``done`` of ``total`` layers, ``current`` the layer running (or the last
    finished), ``running`` the summed fractions reported by the layers in flight
    (:func:`layer_progress`), ``eta_s`` = elapsed x (work left / work done), the work counted in
    layers, ``done + running`` of them done (None before any work is done)."""

    done: int
    total: int
    current: Hashable | None
    elapsed_s: float
    eta_s: float | None
    state: str
    running: float = 0.0

    @property
    def fraction(self) -> float:
        return (self.done + self.running) / self.total if self.total else 1.0


class Job:
    """A running or finished job; create it with :meth:`JobEngine.submit`.

    Attributes
    ----------
    id, name : int, str
    layers : list
        The layers in submission order.
    results : dict
        layer -> result for the layers finished so far (in completion order).
    errors : dict
        layer -> exception for the layers that failed.
    cached : set
        The layers read from the cache instead of computed.
    """

    def __init__(
        self,
        engine: JobEngine,
        fn: Callable[[Any], Any],
        layers: Sequence[Hashable],
        *,
        key: Callable[[Any], str | None] | None,
        name: str,
        parallel: int,
    ):
        if len(set(layers)) != len(layers):
            raise ValueError("the layers of a job must be distinct")
        if not isinstance(parallel, int) or parallel < 1:
            raise ArgumentError(f"parallel must be an integer >= 1, got {parallel!r}")
        self.id = next(_ids)
        self.name = name or getattr(fn, "__name__", "job")
        self.layers = list(layers)
        self.results: dict[Hashable, Any] = {}
        self.errors: dict[Hashable, BaseException] = {}
        self.cached: set[Hashable] = set()
        self._engine = engine
        self._fn = fn
        self._key = key
        self._parallel = parallel
        self._cond = threading.Condition()
        self._order: list[Hashable] = []  # finished layers (done or failed), in completion order
        self._next = 0
        self._running: list[Hashable] = []
        self._within: dict[Hashable, float] = {}  # layer in flight -> fraction it reported
        self._last_within = 0.0
        self._cancelled = False
        self._finished = False
        self._start = time.perf_counter()
        self._part_cbs: list[Callable] = []
        self._progress_cbs: list[Callable] = []
        self._done_cbs: list[Callable] = []

    def __repr__(self) -> str:
        p = self.progress
        return f"Job({self.id}, {self.name!r}, {p.state}, {p.done}/{p.total})"

    # -- state --------------------------------------------------------------------------------
    @property
    def state(self) -> str:
        """``"running"``, ``"cancelled"`` (stopped early) or ``"finished"`` (every layer ran)."""
        with self._cond:
            return self._state()

    def _state(self) -> str:
        if not self._finished:
            return "running"
        return "cancelled" if len(self._order) < len(self.layers) else "finished"

    @property
    def progress(self) -> Progress:
        with self._cond:
            done = len(self._order)
            running = sum(self._within.values())
            work = done + running
            elapsed = time.perf_counter() - self._start
            eta = elapsed / work * (len(self.layers) - work) if work > 0 else None
            if self._running:
                current = self._running[0]
            else:
                current = self._order[-1] if self._order else None
            return Progress(done, len(self.layers), current, elapsed, eta, self._state(), running)

    @property
    def cancelled(self) -> bool:
        return self._cancelled

    def done(self) -> bool:
        return self._finished

    # -- control ------------------------------------------------------------------------------
    def cancel(self) -> None:
        """Start no further layer; the job ends when the layers in flight return."""
        with self._cond:
            self._cancelled = True
        self._pump()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the job has ended; ``False`` if ``timeout`` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: self._finished, timeout)

    def result(self, timeout: float | None = None) -> dict[Hashable, Any]:
        """Wait and return ``layer -> result`` in layer order; :class:`JobError` if any failed,
        ``TimeoutError`` after ``timeout`` seconds. A cancelled job returns what it finished."""
        if not self.wait(timeout):
            raise TimeoutError(f"job {self.name!r} still running after {timeout} s")
        results = {k: self.results[k] for k in self.layers if k in self.results}
        if self.errors:
            raise JobError(self.name, self.errors, results)
        return results

    def parts(self, timeout: float | None = None) -> Iterator[tuple[Hashable, Any]]:
        """Yield ``(layer, result)`` as layers finish (those already finished first); failed
        layers are skipped (see :attr:`errors`). Ends when the job does."""
        seen = 0
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._cond:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not self._cond.wait_for(partial(self._has_news, seen), left):
                    raise TimeoutError(f"job {self.name!r}: no part within {timeout} s")
                new = self._order[seen:]
                seen = len(self._order)
                finished = self._finished
                got = [(k, self.results[k]) for k in new if k in self.results]
            yield from got
            if finished and not new:
                return

    def _has_news(self, seen: int) -> bool:
        return len(self._order) > seen or self._finished

    # -- callbacks ----------------------------------------------------------------------------
    def on_part(self, cb: Callable[[Hashable, Any], None]) -> Job:
        """``cb(layer, result)`` for each finished layer; replays those already finished."""
        with self._cond:
            self._part_cbs.append(cb)
            done = [(k, self.results[k]) for k in self._order if k in self.results]
        for k, v in done:
            _call(cb, k, v)
        return self

    def on_progress(self, cb: Callable[[Progress], None]) -> Job:
        """``cb(progress)`` whenever a layer starts or ends."""
        with self._cond:
            self._progress_cbs.append(cb)
        return self

    def on_done(self, cb: Callable[[Job], None]) -> Job:
        """``cb(job)`` once the job has ended (at once if it already has)."""
        with self._cond:
            finished = self._finished
            if not finished:
                self._done_cbs.append(cb)
        if finished:
            _call(cb, self)
        return self

    # -- machinery ----------------------------------------------------------------------------
    def _pump(self) -> None:
        """Submit layers while fewer than ``parallel`` are in flight; end the job when idle."""
        while True:
            with self._cond:
                if self._finished:
                    return
                more = not self._cancelled and self._next < len(self.layers)
                if not more and not self._running:
                    self._finished = True
                    self._cond.notify_all()
                    done_cbs, self._done_cbs = self._done_cbs, []
                    break
                if not more or len(self._running) >= self._parallel:
                    return
                layer = self.layers[self._next]
                self._next += 1
                self._running.append(layer)
            self._emit_progress()
            if self._engine._token in getattr(_worker, "engines", ()):
                self._run_inline(layer)
                continue
            # a layer's own progress reaches the job only from threads of this process
            report = partial(self._layer_progress, layer) if self._engine.in_process else None
            try:
                fut = self._engine.executor.submit(
                    _run_marked,
                    self._engine._token,
                    self._fn,
                    layer,
                    self._key,
                    self._engine.cache,
                    report,
                )
            except Exception as exc:  # noqa: BLE001 - e.g. an executor that was shut down
                self._record(layer, None, exc)
                continue
            fut.add_done_callback(lambda f, layer=layer: self._on_future(layer, f))
        self._emit_progress()
        for cb in done_cbs:
            _call(cb, self)

    def _run_inline(self, layer: Hashable) -> None:
        """A nested job's layer, on the worker thread that submitted it (see the module doc)."""
        try:
            value, hit = _run_layer(self._fn, layer, self._key, self._engine.cache)
            exc = None
        except Exception as e:  # noqa: BLE001 - reported with the layer, others go on
            value, hit, exc = None, False, e
        self._record(layer, value, exc, hit)

    def _on_future(self, layer: Hashable, fut: Future) -> None:
        try:
            value, hit = fut.result()
            exc = None
        except BaseException as e:  # noqa: BLE001 - reported with the layer, others go on
            value, hit, exc = None, False, e
        self._record(layer, value, exc, hit)
        self._pump()

    def _layer_progress(self, layer: Hashable, fraction: float) -> None:
        with self._cond:
            if layer not in self._running:
                return
            self._within[layer] = fraction
            now = time.perf_counter()
            if now - self._last_within < _LAYER_PROGRESS_INTERVAL:
                return
            self._last_within = now
        self._emit_progress()

    def _record(self, layer, value, exc: BaseException | None, hit: bool = False) -> None:
        with self._cond:
            self._running.remove(layer)
            self._within.pop(layer, None)
            if exc is None:
                self.results[layer] = value
                if hit:
                    self.cached.add(layer)
            else:
                self.errors[layer] = exc
            self._order.append(layer)
            cbs = list(self._part_cbs) if exc is None else []
            self._cond.notify_all()
        for cb in cbs:
            _call(cb, layer, value)
        self._emit_progress()

    def _emit_progress(self) -> None:
        with self._cond:
            cbs = list(self._progress_cbs)
        if cbs:
            p = self.progress
            for cb in cbs:
                _call(cb, p)


def _run_layer(fn, layer, key, cache: Cache | None, report=None):
    """One layer on a worker: the cached result if a valid entry exists, else ``fn(layer)``
    (with ``report`` receiving its :func:`layer_progress`)."""
    k = key(layer) if key is not None and cache is not None else None
    if k is not None:
        hit = cache.get(k)
        if hit is not None:
            return hit[0], True
    outer, _local.report = getattr(_local, "report", None), report
    try:
        value = fn(layer)
    finally:
        _local.report = outer
    if k is not None:
        if not isinstance(value, Mapping):
            raise TypeError(
                f"a cached job must return a mapping of names to arrays, got {type(value)}"
            )
        cache.put(k, value, {"layer": _label(layer)})
    return value, False


def _run_marked(token: int, fn, layer, key, cache: Cache | None, report=None):
    """:func:`_run_layer` with this thread marked as a worker of engine ``token``."""
    engines = _worker.__dict__.setdefault("engines", set())
    fresh = token not in engines
    engines.add(token)
    try:
        return _run_layer(fn, layer, key, cache, report)
    finally:
        if fresh:
            engines.discard(token)


def _call(cb, *args) -> None:
    """A subscriber's exception is a warning, never the job's failure."""
    try:
        cb(*args)
    except Exception as exc:  # noqa: BLE001
        warnings.warn(f"job callback {cb!r} raised {type(exc).__name__}: {exc}", stacklevel=2)


class JobEngine:
    """Where jobs run.

    Parameters
    ----------
    executor : concurrent.futures.Executor, optional
        Runs the layers. Default: a pool of ``max_workers`` background threads owned by the
        engine. Any executor works, e.g. ``distributed.Client(...).get_executor()`` for Dask.
    cache : Cache, None or False
        Where keyed results live; ``None``: a :class:`~explorer.cache.Cache` at the default
        location, created on first use; ``False``: never cache.
    max_workers : int, optional
        Threads of the default pool (default ``min(4, cpu_count)``).
    """

    def __init__(
        self,
        executor: Executor | None = None,
        cache: Cache | None | bool = None,
        max_workers: int | None = None,
    ):
        if max_workers is not None and max_workers < 1:
            raise ArgumentError(f"max_workers must be >= 1, got {max_workers}")
        self._own = executor is None
        self._token = next(_engine_ids)
        self.executor = executor or DaemonThreadPool(
            max_workers or min(4, os.cpu_count() or 1), "explorer-job"
        )
        self._cache = cache

    @property
    def in_process(self) -> bool:
        """Whether layers run on threads of this process (so they can update widgets and report
        :func:`layer_progress`), rather than in other processes (Dask, a process pool)."""
        return isinstance(self.executor, (ThreadPoolExecutor, DaemonThreadPool))

    @property
    def cache(self) -> Cache | None:
        if self._cache is None:
            self._cache = Cache()
        return self._cache or None

    def submit(
        self,
        fn: Callable[[Any], Any],
        layers: Sequence[Hashable],
        *,
        key: Callable[[Any], str | None] | None = None,
        name: str = "",
        parallel: int = 1,
        on_part: Callable[[Hashable, Any], None] | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        on_done: Callable[[Job], None] | None = None,
    ) -> Job:
        """Start ``fn(layer)`` for each layer in the background and return the :class:`Job`.

        ``key(layer)`` (optional) gives the layer's cache key (see :func:`explorer.cache.key`),
        or ``None`` to compute that layer without the cache. The callbacks are attached before
        the first layer starts, so none of its events is missed.
        """
        job = Job(self, fn, layers, key=key, name=name, parallel=parallel)
        if on_part is not None:
            job.on_part(on_part)
        if on_progress is not None:
            job.on_progress(on_progress)
        if on_done is not None:
            job.on_done(on_done)
        job._pump()
        return job

    def shutdown(self, wait: bool = True) -> None:
        """Shut down the engine's own thread pool (an executor passed in is left alone)."""
        if self._own:
            self.executor.shutdown(wait=wait, cancel_futures=True)


class DaemonThreadPool(Executor):
    """A pool of up to ``max_workers`` daemon threads, started as work arrives.

    Unlike :class:`concurrent.futures.ThreadPoolExecutor` (whose threads the interpreter joins at
    exit), a layer still running here does not keep a finished script or a kernel that is being
    shut down alive.
    """

    def __init__(self, max_workers: int, name: str = "explorer-job"):
        self._max = max_workers
        self._name = name
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._shutdown = False

    def submit(self, fn, /, *args, **kwargs) -> Future:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            fut: Future = Future()
            self._queue.put((fut, fn, args, kwargs))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self._max:
                t = threading.Thread(
                    target=self._work, name=f"{self._name}_{len(self._threads)}", daemon=True
                )
                t.start()
                self._threads.append(t)
        return fut

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn, args, kwargs = item
            del item
            if fut.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:  # noqa: BLE001 - handed to the future
                    fut.set_exception(exc)
                else:
                    fut.set_result(result)
            del fut
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            threads = list(self._threads)
        if cancel_futures:
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is not None:
                    item[0].cancel()
        for _ in threads:
            self._queue.put(None)
        if wait:
            for t in threads:
                if t is not threading.current_thread():
                    t.join()


_default: JobEngine | None = None
_default_lock = threading.Lock()


def default_engine() -> JobEngine:
    """The process-wide engine (background threads, cache at the default location)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = JobEngine()
        return _default


def submit(fn: Callable[[Any], Any], layers: Sequence[Hashable], **kwargs) -> Job:
    """:meth:`JobEngine.submit` on :func:`default_engine`."""
    return default_engine().submit(fn, layers, **kwargs)
