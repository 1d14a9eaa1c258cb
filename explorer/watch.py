"""``ex.watch(model, probe, every=N)``: representation metrics per depth, live, while a model trains.

Every ``every`` steps the probe's hidden states are captured (one forward pass, no gradients, the
model's train flag and device restored; :func:`explorer.capture`), and the metrics are computed
per depth on a background thread so that training goes on meanwhile:

* ``effective_rank``: Roy & Vetterli on the centred states' singular values;
* ``rankme``: Garrido et al. (``eps = 1e-7``) on the centred states;
* ``twonn``: Facco et al. TwoNN intrinsic dimension (duplicates removed first);
* ``drift`` (``drift=True``): per depth, the mean over its weight matrices of ``1 - overlap`` of
  the top-``drift_k`` left singular subspace with the one at the first record (``overlap`` =
  mean ``cos^2`` of the principal angles, REFERENCES.md), i.e. how far training has rotated the
  principal subspaces since watching began.

Results accumulate in :attr:`Watch.frame` (tidy: ``step, depth, metric, value``) and stream into a
live chart (:meth:`Watch.widget`). Use it as a plain callback (``watch(step)`` after
``optimizer.step()``), as a ``transformers.TrainerCallback`` (:meth:`Watch.trainer_callback`) or
a Lightning callback (:meth:`Watch.lightning_callback`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from explorer.capture import capture
from explorer.kernel.dimension import twonn
from explorer.kernel.spectra import effective_rank, rankme_from_singular_values
from explorer.kernel.subspaces import singular_vectors, subspace_overlap
from explorer.sources.load import load

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METRICS", "Watch", "watch"]

METRICS = ("effective_rank", "rankme", "twonn")


def _spectral(x: torch.Tensor, cache: dict) -> torch.Tensor:
    """Singular values of the centred states, computed once per depth for both rank metrics."""
    if "s" not in cache:
        x = x.double()
        cache["s"] = torch.linalg.svdvals(x - x.mean(0))
    return cache["s"]


_COMPUTE = {
    "effective_rank": lambda x, c: float(effective_rank(_spectral(x, c))),
    "rankme": lambda x, c: float(rankme_from_singular_values(_spectral(x, c))),
    "twonn": lambda x, c: float(twonn(x.float())),
}


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
        background: bool = True,
        seed: int = 0,
    ):
        unknown = set(metrics) - set(_COMPUTE)
        if unknown:
            raise ValueError(f"unknown metrics {sorted(unknown)}; choose from {list(_COMPUTE)}")
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, not {every}")
        self.model, self.probe, self.every = model, probe, int(every)
        self.metrics, self.drift, self.drift_k = tuple(metrics), drift, int(drift_k)
        self.max_points, self.seed = max_points, seed
        self._rows: list[dict] = []
        self._lock = threading.Lock()
        # metrics run with one intra-op thread (a per-thread setting), so that they never
        # spin against the training loop's own threads
        self._pool = (
            ThreadPoolExecutor(1, "explorer-watch", torch.set_num_threads, (1,))
            if background
            else None
        )
        self._pending: list[Future] = []
        self._initial: dict[str, tuple[int, torch.Tensor]] | None = None
        self._calls = 0
        self._view = None
        self._ck = None
        self.seconds_blocking = 0.0  # time the training loop spent inside watch

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
            max_points=self.max_points,
            seed=self.seed,
            progress=False,
        )
        states = {d: acts[d].detach().cpu() for d in acts.depths}
        weights = self._weights() if self.drift else None
        if self._pool is None:
            self._compute(step, states, weights)
        else:
            self._pending = [f for f in self._pending if not f.done()]
            self._pending.append(self._pool.submit(self._compute, step, states, weights))
        self.seconds_blocking += time.perf_counter() - start

    def _weights(self) -> dict[str, tuple[int, torch.Tensor]]:
        ck = load(self.model)
        return {
            e.address: (e.depth, ck.weight(e.address, dtype=torch.float64).clone())
            for e in ck.entries
        }

    def _compute(self, step: int, states, weights) -> None:
        rows = []
        for depth, x in states.items():
            cache: dict = {}
            for m in self.metrics:
                try:
                    value = _COMPUTE[m](x, cache)
                except Exception:  # noqa: BLE001 - a metric undefined at one depth is a NaN
                    value = float("nan")
                rows.append({"step": step, "depth": depth, "metric": m, "value": value})
        if weights is not None:
            rows += self._drift_rows(step, weights)
        with self._lock:
            self._rows.extend(rows)
        if self._view is not None:
            self._view.refresh()

    def _drift_rows(self, step: int, weights) -> list[dict]:
        tops = {a: (d, singular_vectors(w, self.drift_k)[0]) for a, (d, w) in weights.items()}
        if self._initial is None:
            self._initial = tops
        by_depth: dict[int, list[float]] = {}
        for address, (depth, u) in tops.items():
            if address in self._initial:
                ref = self._initial[address][1]
                by_depth.setdefault(depth, []).append(max(0.0, 1.0 - subspace_overlap(ref, u)))
        return [
            {"step": step, "depth": d, "metric": "drift", "value": float(np.mean(v))}
            for d, v in sorted(by_depth.items())
        ]

    def wait(self, timeout: float | None = None) -> Watch:
        """Block until every record so far has been computed."""
        for f in list(self._pending):
            f.result(timeout)
        return self

    def close(self) -> None:
        """Finish pending work and stop the background thread."""
        self.wait()
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
        record; default False), ``drift_k`` (8), ``max_points`` (512), ``background`` (compute
        metrics on a background thread so only the capture blocks the loop; default True),
        ``seed`` (0).

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
