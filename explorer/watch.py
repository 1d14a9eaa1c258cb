"""``ex.watch(model, probe, every=N)``: representation metrics per depth, live, while a model trains.

Every ``every`` steps the probe's hidden states are captured (one forward pass, no gradients, the
model's train flag and device restored; :func:`explorer.capture`), and the metrics of
:mod:`explorer.watch_metrics` (effective rank, RankMe, TwoNN and optionally the drift of the
weights' principal subspaces) are computed per depth while training goes on: by default in a
separate process (:mod:`explorer.watch_worker`) so that they never hold the training loop's
interpreter lock, or on a thread, or inline.

Results accumulate in :attr:`Watch.frame` (tidy: ``step, depth, metric, value``) and stream into a
live chart (:meth:`Watch.widget`). Use it as a plain callback (``watch(step)`` after
``optimizer.step()``), as a ``transformers.TrainerCallback`` (:meth:`Watch.trainer_callback`) or
a Lightning callback (:meth:`Watch.lightning_callback`).
"""

from __future__ import annotations

import os
import threading
import time
import warnings
import weakref
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import torch

from explorer.capture import capture
from explorer.sources.load import load
from explorer.watch_metrics import METRICS, Recorder, check_metrics

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METRICS", "Watch", "watch"]

_BACKGROUND = {True: "process", "process": "process", "thread": "thread", False: None, None: None}


def _quiet_thread() -> None:
    """One intra-op thread (a per-thread setting) so that the metrics never spin against the
    training loop's own threads, at the lowest CPU priority where the OS allows it per thread."""
    torch.set_num_threads(1)
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # Linux: this thread
    except (AttributeError, OSError):
        pass


class Watch:
    """Metrics per depth over training steps; see :func:`watch`."""

    def __init__(
        self,
        model: torch.nn.Module,
        probe: Any,
        *,
        every: int = 50,
        metrics: Sequence[str] = METRICS,
        drift: bool = False,
        drift_k: int = 8,
        max_points: int | None = 512,
        batch_size: int = 256,
        background: bool | str = "process",
        seed: int = 0,
    ):
        metrics = check_metrics(metrics)
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, not {every}")
        if background not in _BACKGROUND:
            raise ValueError(f"background must be 'process', 'thread' or False, not {background!r}")
        self.model, self.probe, self.every = model, probe, int(every)
        self.metrics, self.drift, self.drift_k = metrics, drift, int(drift_k)
        self.max_points, self.batch_size, self.seed = max_points, int(batch_size), seed
        self.background = _BACKGROUND[background]
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        self._recorder = Recorder(metrics, drift_k)  # used unless the process does the work
        self._pool: ThreadPoolExecutor | None = None
        self._worker = None
        self._pending: list[Future] = []
        self._first_weights = None
        if self.background == "process":
            self._worker = self._start_process()
        self._calls = 0
        self._view = None
        self._ck = None
        self.seconds_blocking = 0.0  # time the training loop spent inside watch

    def _start_process(self):
        from explorer.watch_worker import ProcessWorker

        me = weakref.ref(self)  # the worker's threads must not keep a dropped Watch alive

        def on_rows(rows):
            if (w := me()) is not None:
                w._add_rows(rows)

        def on_failure(reason, jobs):
            if (w := me()) is not None:
                w._take_over(reason, jobs)

        try:
            worker = ProcessWorker(self.metrics, self.drift_k, on_rows, on_failure)
        except OSError as exc:
            self._take_over(f"cannot start the metrics process ({exc})", [])
            return None
        weakref.finalize(self, worker.stop)  # a Watch never closed still ends its process
        return worker

    def _take_over(self, reason: str, jobs: list) -> None:
        """The process failed: compute its unanswered records (and later ones) on a thread."""
        warnings.warn(
            f"ex.watch: {reason}; computing the metrics on a thread instead",
            RuntimeWarning,
            stacklevel=2,
        )
        self.background = "thread"
        if self._first_weights is not None:  # the drift stays relative to the first record
            self._recorder.reference(self._first_weights)
        for job in jobs:
            self._submit_thread(*job)

    def _submit_thread(self, step: int, states, weights) -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, "explorer-watch", _quiet_thread)
        self._pending = [f for f in self._pending if not f.done()]
        self._pending.append(self._pool.submit(self._compute, step, states, weights))

    # -- recording --------------------------------------------------------------------------
    def __call__(self, step: int | None = None) -> None:
        """Call once per training step; records at step 0, ``every``, ``2 every``, ..."""
        step = self._calls if step is None else int(step)
        self._calls += 1
        if step % self.every == 0:
            self.record(step)

    def record(self, step: int) -> None:
        """Capture the probe now and compute the metrics (in the background by default)."""
        start = time.perf_counter()
        device = next(self.model.parameters()).device
        if self._ck is None:
            self._ck = load(self.model)  # the layer table once, not at every record
        acts = capture(
            self._ck,
            self.probe,
            device=device,
            batch_size=self.batch_size,
            max_points=self.max_points,
            seed=self.seed,
            progress=False,
        )
        states = {d: acts[d].detach().cpu().numpy() for d in acts.depths}
        weights = self._weights() if self.drift else None
        if self._first_weights is None and self.background == "process":
            self._first_weights = weights
        if self.background is None:
            self._compute(step, states, weights)
        elif self.background == "thread" or not self._worker.submit(step, states, weights):
            self._submit_thread(step, states, weights)
        self.seconds_blocking += time.perf_counter() - start

    def _weights(self) -> dict[str, tuple[int, Any]]:
        """Copies of the weights now (the layer table is the one :meth:`record` loaded)."""
        ck = self._ck
        return {
            e.address: (e.depth, ck.weight(e.address, dtype=torch.float64).clone().numpy())
            for e in ck.entries
        }

    def _compute(self, step: int, states, weights) -> None:
        self._add_rows(self._recorder.rows(step, states, weights))

    def _add_rows(self, rows: list[dict]) -> None:
        with self._lock:
            self._rows.extend(rows)
        if self._view is not None:
            self._view.refresh()

    def wait(self, timeout: float | None = None) -> Watch:
        """Block until every record so far has been computed."""
        if self._worker is not None and not self._worker.wait(timeout):
            raise TimeoutError(f"the metrics of ex.watch were not ready within {timeout} s")
        for f in list(self._pending):
            f.result(timeout)
        return self

    def close(self) -> None:
        """Finish pending work and stop the background process or thread."""
        self.wait()
        if self._worker is not None:
            self._worker.close()
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # -- results ------------------------------------------------------------------------------
    @property
    def frame(self) -> pd.DataFrame:
        """Tidy results so far: ``step, depth, metric, value`` (sorted)."""
        import pandas as pd

        with self._lock:
            rows = list(self._rows)
        df = pd.DataFrame(rows, columns=["step", "depth", "metric", "value"])
        return df.sort_values(["metric", "depth", "step"], ignore_index=True)

    def widget(self):
        """A live chart of every metric against step, one line per depth (offline, themed)."""
        if self._view is None:
            from explorer.widgets.watch_view import WatchView

            self._view = WatchView(self)
        return self._view.widget

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget())

    # -- framework callbacks ----------------------------------------------------------------
    def trainer_callback(self):
        """A ``transformers.TrainerCallback`` that records every ``every`` global steps."""
        from transformers import TrainerCallback

        owner = self

        class _Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                owner(state.global_step)

            def on_train_end(self, args, state, control, **kwargs):
                owner.wait()

        return _Callback()

    def lightning_callback(self):
        """A Lightning ``Callback`` that records every ``every`` global steps."""
        try:
            from lightning.pytorch import Callback
        except ImportError:
            from pytorch_lightning import Callback

        owner = self

        class _Callback(Callback):
            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                owner(trainer.global_step)

            def on_train_end(self, trainer, pl_module):
                owner.wait()

        return _Callback()

    def __repr__(self) -> str:
        steps = sorted({r["step"] for r in self._rows})
        return f"Watch(every={self.every}, metrics={list(self.metrics)}, records={len(steps)})"


def watch(model: torch.nn.Module, probe: Any, every: int = 50, **options: Any) -> Watch:
    """Watch effective rank, RankMe, intrinsic dimension (and subspace drift) per depth as
    ``model`` trains.

    Parameters
    ----------
    model : torch.nn.Module
        The model being trained (captured in place, on its own device).
    probe : Probe, list of str, tensor or array
        The inputs captured at each record (at most ``max_points``, default 512, a seeded sample).
    every : int
        Record at steps ``0, every, 2 every, ...``.
    **options
        ``metrics`` (any of ``"effective_rank"``, ``"rankme"``, ``"twonn"``; default all),
        ``drift`` (also the drift of each depth's top-``drift_k`` weight subspaces since the first
        record; default False), ``drift_k`` (8), ``max_points`` (512), ``batch_size`` of the
        capture (256), ``background``: where the metrics run while training goes on:
        ``"process"`` (default: a one-thread Python process of their own, so that they never
        hold the training loop's interpreter lock; if it cannot start or dies, a thread takes
        over with a warning and no record is lost), ``"thread"``, or ``False`` (inline, the loop
        waits); ``seed`` (0).

    Returns
    -------
    Watch
        Call it once per step (``w(step)``); ``w.frame`` holds the results, ``w.widget()`` the
        live chart; ``w.trainer_callback()`` / ``w.lightning_callback()`` for those frameworks.

    Examples
    --------
    >>> w = ex.watch(model, probe, every=20)
    >>> for step, (x, y) in enumerate(loader):
    ...     loss = loss_fn(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
    ...     w(step)
    >>> w.frame.query("metric == 'rankme'")
    """
    return Watch(model, probe, every=every, **options)
