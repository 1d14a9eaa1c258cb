"""The dashboard: every view of one checkpoint (and a second one to compare with) on one depth
cursor and one point selection.

``Explorer(ck, probe, compare_to)`` captures the probe's hidden states and lays them out with
PCA at once (milliseconds on the demo), so the first picture comes quickly. Everything heavier
runs as background jobs (:mod:`explorer.jobs`) whose progress, current layer, ETA and cancel
button show in the job bar, and fills its view in as it finishes: the weight spectra, UMAP
layouts, representation metrics (per depth, drawn as each depth arrives), the subspace
comparison and CKA. A lasso selection in the projection starts a job of the same metrics on the
selected points only, drawn as a ``selection`` series in the dimension view.

The dashboard computes nothing itself: it calls the public functions (``ex.capture``,
``ex.project``, ``ex.spectra``, ``ex.representation_metrics``, ``ex.compare``,
``ex.similarity``) and hands their results to the views.
"""

from __future__ import annotations

import dataclasses
import html
import operator
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import traitlets

from explorer.activations import Activations
from explorer.jobs import Job, JobEngine, default_engine
from explorer.widgets.depth_scrubber import DepthScrubber, describe_depth
from explorer.widgets.job_bar import JobBar

__all__ = ["DEFAULT_METRICS", "LAYOUT_OPTIONS", "Explorer"]

#: representation metrics computed per depth by default (cheap enough for a first look)
DEFAULT_METRICS = ("twonn", "mle", "effective_rank", "participation_ratio")
#: what the dashboard passes to ``ex.project`` per layout method besides the engine and device.
#: UMAP starts each depth from the previous depth's layout: the pictures stay alike from one depth
#: to the next, and a depth whose neighbours barely changed runs fewer epochs
#: (:func:`explorer.kernel.umap_layout.warm_epochs`; 50 k points x 12 depths of
#: ``benchmarks/projection_pictures.py``: see its docstring). On the digits demo (450 points,
#: 5 depths, 2 seeds) trustworthiness (k = 10) differs from independent layouts by -0.012 to
#: +0.006 (mean -0.0015), within the 0.01 that two seeds of independent layouts differ by.
LAYOUT_OPTIONS: dict[str, dict[str, Any]] = {"umap": {"init_previous": True}}
#: the fewest selected points a selection series is computed for
MIN_SELECTED = 8
_MUTED = "color: var(--jp-ui-font-color2, #616161)"
_WARN = "color: var(--jp-warn-color1, #f57c00)"


def nearest(depth: int, depths: Sequence[int]) -> int:
    """The depth of ``depths`` closest to ``depth`` (the lower one on a tie)."""
    return min(depths, key=lambda d: (abs(d - depth), d))


def _message(text: str, warn: bool = False) -> str:
    style = _WARN if warn else _MUTED
    return f"<div class='explorer-placeholder' style='{style}; padding: 12px'>{text}</div>"


def _close(widget: Any) -> None:
    """Close an ipywidget and the widgets it holds (a replaced view must not leak comms)."""
    if widget is None:
        return
    for child in getattr(widget, "children", ()):
        _close(child)
    widget.close()


class Explorer(traitlets.HasTraits):
    """Spectra, projections, dimension, subspaces and similarity of a checkpoint on one depth
    cursor and one selection.

    Parameters
    ----------
    ck : Checkpoint or anything :func:`explorer.load` accepts
    probe : Probe, sequence of str, or array, optional
        Inputs to capture hidden states on. Without it only the weight views are shown
        (spectra, and the subspace comparison with ``compare_to``).
    compare_to : Checkpoint, optional
        A second checkpoint of the same architecture: its projection is shown next to the first
        (aligned onto it, same depth and selection), and the subspace and CKA views compare the
        two.
    layouts : sequence of {"pca", "umap", "tsne"}, default ("pca", "umap")
        The first is computed before the dashboard shows; the others run as jobs and replace
        the picture when they are in (the layout buttons switch back).
    metrics : sequence of str
        Representation metrics of the dimension view (see
        :data:`explorer.representation.METRICS`).
    n_boot : int, default 50
        Bootstrap replicates of their confidence intervals.
    depth : int, optional
        Where the cursor starts (default: the first depth).
    device : str, default "auto"
    engine : JobEngine, optional
        Where jobs run (default: :func:`explorer.jobs.default_engine`). Its executor must run
        threads of this process (the default pool, or a ``ThreadPoolExecutor``): the dashboard's jobs update its views as they go, so they run in
        this process (a Dask or process-pool engine serves ``ex.project`` and the other
        functions called directly).
    capture_options : dict, optional
        Keywords for :func:`explorer.capture` (``max_points``, ``pooling``, ...).
    title : str, optional

    Attributes
    ----------
    depth : int
        The shared depth cursor: every view follows it (at the nearest depth it has), and a
        click or slider in any view moves it.
    selection : list of int
        The shared point selection (the lasso in either projection, or assignment).
    views : dict
        The views built so far: ``projection`` (+ ``projection_b``), ``spectra``,
        ``dimension``, ``subspace``, ``similarity``.
    jobs : dict
        The latest job of each kind, by name.
    job_bar : JobBar

    Examples
    --------
    >>> from explorer import demo  # doctest: +SKIP
    >>> ex.Explorer(demo.load("digits-clean"), probe=demo.probe("digits"),
    ...             compare_to=demo.load("digits-noisy"))  # doctest: +SKIP
    """

    depth = traitlets.Int(0)
    selection = traitlets.List(traitlets.Int())

    def __init__(
        self,
        ck: Any,
        probe: Any = None,
        compare_to: Any = None,
        *,
        layouts: Sequence[str] = ("pca", "umap"),
        metrics: Sequence[str] = DEFAULT_METRICS,
        n_boot: int = 50,
        depth: int | None = None,
        device: str = "auto",
        engine: JobEngine | None = None,
        capture_options: dict | None = None,
        title: str | None = None,
    ):
        import explorer as ex

        t0 = time.perf_counter()
        self._lock = threading.RLock()
        self._idle = threading.Condition(self._lock)
        self._busy = 0
        self._syncing = 0
        self._engine = engine or default_engine()
        if not self._engine.in_process:
            raise ValueError(
                f"ex.Explorer runs its jobs on threads of this process, which update the views "
                f"as they go; this engine's executor is a {type(self._engine.executor).__name__}. "
                "Pass a JobEngine with its default thread pool (or none); use a Dask or "
                "process-pool engine with ex.project and the other functions directly."
            )
        self._device = device
        self._metrics = list(metrics)
        self._n_boot = int(n_boot)
        self._layout_names = [str(m) for m in layouts]
        if not self._layout_names:
            raise ValueError("layouts is empty: give at least one of 'pca', 'umap', 'tsne'")
        self.views: dict[str, Any] = {}
        self.jobs: dict[str, Job] = {}
        self.job_bar = JobBar()
        self._results: dict[str, Any] = {}
        self._layouts: dict[str, Any] = {}  # method -> Projection or ProjectionPair
        self._layout = self._layout_names[0]
        self._layout_chosen = False
        self._metric_parts: dict[int, pd.DataFrame] = {}
        self._selection_parts: dict[int, pd.DataFrame] = {}
        self._selection_gen = 0
        self._widget = None
        self._slots: dict[str, Any] = {}
        self._messages: dict[str, str] = {}

        self._ck = ex.load(ck)
        self._ck_b = None if compare_to is None else ex.load(compare_to)
        names = [self._ck.name or "a"]
        if self._ck_b is not None:
            names.append(self._ck_b.name or "b")
            if names[0] == names[1]:
                names = [f"{names[0]} (a)", f"{names[1]} (b)"]
        self._names = names
        self._title = title

        weight_depths = sorted({int(d) for d in self._ck.layers.depth})
        self._acts: list[Activations] = []
        if probe is not None:
            opts = {"device": device, "progress": False, **(capture_options or {})}
            self._acts = [ex.capture(self._ck, probe, **opts)]
            if self._ck_b is not None:
                self._acts.append(ex.capture(self._ck_b, probe, **opts))
            self._probe_name = getattr(probe, "name", "probe")
        self._depths = sorted(set(weight_depths) | {d for a in self._acts for d in a.depths})
        first = self._acts[0].depths[0] if self._acts else weight_depths[0]
        super().__init__(depth=first if depth is None else depth)

        if self._acts:
            self._layouts[self._layout] = self._project(self._layout)
            self._show_projection()
        self.first_picture_s = time.perf_counter() - t0

        self._start_jobs(weight_depths)

    # -- jobs -------------------------------------------------------------------------------------
    def _submit(
        self,
        name: str,
        title: str,
        fn: Callable[[Any], Any],
        layers: Sequence[Hashable],
        done: Callable[[Job], None],
        on_part: Callable[[Hashable, Any], None] | None = None,
    ) -> Job:
        job = self._engine.submit(fn, layers, name=name)
        return self._follow_job(name, title, job, done, on_part)

    def _follow_job(self, name, title, job, done, on_part=None) -> Job:
        with self._lock:
            self._busy += 1
            self.jobs[name] = job
        self.job_bar.track(job, title)

        def finished(j: Job) -> None:
            try:
                done(j)
            except Exception as exc:  # noqa: BLE001 - shown in the bar, never raised
                self.job_bar.error(title, f"{type(exc).__name__}: {exc}")
                self._show_message(name, f"{title} failed: {exc}", warn=True)
            finally:
                with self._lock:
                    self._busy -= 1
                    self._idle.notify_all()

        if on_part is not None:

            def part(layer, value) -> None:
                try:
                    on_part(layer, value)
                except Exception as exc:  # noqa: BLE001
                    self.job_bar.error(title, f"depth {layer}: {type(exc).__name__}: {exc}")

            job.on_part(part)
        job.on_done(finished)
        return job

    def _start_jobs(self, weight_depths: list[int]) -> None:
        """The quick jobs (spectra, compare, CKA) first; the slow ones (metrics, other layouts)
        when those are done, so that their layers do not queue behind slow layers."""
        import explorer as ex

        light: list[tuple] = [
            (
                "spectra",
                f"spectra · {self._names[0]}",
                lambda d: ex.spectra(self._ck, lambda e, d=d: e.depth == d, device=self._device),
                weight_depths,
                self._spectra_done,
            )
        ]
        if self._ck_b is not None:
            light.append(
                (
                    "compare",
                    "subspaces",
                    lambda d: ex.compare(
                        self._ck, self._ck_b, lambda e, d=d: e.depth == d, device=self._device
                    ),
                    weight_depths,
                    self._compare_done,
                )
            )
        if len(self._acts) > 1:
            a, b = self._acts
            light.append(
                (
                    "similarity",
                    "CKA",
                    lambda d: ex.similarity(a, b, depths_a=[d], device=self._device),
                    a.depths,
                    self._similarity_done,
                )
            )
        left = {"n": len(light)}

        def then(done: Callable[[Job], None]) -> Callable[[Job], None]:
            def run(job: Job) -> None:
                try:
                    done(job)
                finally:
                    with self._lock:
                        left["n"] -= 1
                        last = left["n"] == 0
                    if last:
                        self._start_slow_jobs()

            return run

        for name, title, fn, layers, done in light:
            self._submit(name, title, fn, layers, then(done))

    def _start_slow_jobs(self) -> None:
        if not self._acts:
            return
        self._submit(
            "metrics",
            "dimension",
            lambda d: self._metrics_at(d, None),
            self._acts[0].depths,
            self._metrics_done,
            on_part=self._metrics_part,
        )
        for method in self._layout_names[1:]:
            self._start_layout(method)

    def _start_layout(self, method: str) -> None:
        import explorer as ex

        options = LAYOUT_OPTIONS.get(method, {})
        projections = [
            ex.project(
                acts, method, background=True, engine=self._engine, device=self._device, **options
            )
            for acts in self._acts
        ]
        left = {"n": len(projections)}

        def one_done(_job: Job) -> None:
            with self._lock:
                left["n"] -= 1
                if left["n"]:
                    return
            for p in projections:
                p.wait()  # raises JobError naming the depths that failed
            self._layouts[method] = self._paired(projections)
            if not self._layout_chosen:
                self._layout = method
            self._show_projection()

        for p, name in zip(projections, self._names, strict=False):
            self._follow_job(f"{method}:{name}", f"{method.upper()} · {name}", p.job, one_done)

    def _project(self, method: str):
        import explorer as ex

        options = LAYOUT_OPTIONS.get(method, {})
        projections = [
            ex.project(acts, method, engine=self._engine, device=self._device, **options)
            for acts in self._acts
        ]
        return self._paired(projections)

    def _paired(self, projections):
        """One Projection, or a ProjectionPair with ``b`` aligned onto ``a`` at each depth."""
        if len(projections) == 1:
            return projections[0]
        from explorer.kernel.projection import procrustes
        from explorer.projection import ProjectionPair

        a, b = projections
        for d in a.depths:
            b.coords[d] = procrustes(b.raw[d], a.coords[d])
        return ProjectionPair(a, b, tuple(self._names))

    def _metrics_at(self, depth: int, subset) -> pd.DataFrame:
        import explorer as ex

        frames = []
        for name, acts in zip(self._names, self._acts, strict=False):
            one = Activations({depth: acts[depth]}, acts.labels, acts.meta)
            frame = ex.representation_metrics(
                one, methods=self._metrics, subset=subset, n_boot=self._n_boot, device=self._device
            )
            if len(self._acts) > 1:
                frame.insert(0, "checkpoint", name)
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    # -- results into views -----------------------------------------------------------------------
    def _spectra_done(self, job: Job) -> None:
        parts = [job.results[d] for d in job.layers if d in job.results]
        if not parts:
            self._show_message("spectra", "no spectra: every depth failed (see above)", True)
            return
        frame = pd.concat(parts, ignore_index=True)
        frame.attrs = dict(parts[0].attrs)
        self._results["spectra"] = frame
        from explorer.widgets.spectrum_view import SpectrumView

        self._attach("spectra", SpectrumView(frame))
        self._refresh_summary()

    def _compare_done(self, job: Job) -> None:
        parts = [job.results[d] for d in job.layers if d in job.results]
        parts = [p for p in parts if any(p.layers[n] for n in p.names)]
        if not parts:
            self._show_message("subspace", "no matched layers to compare", True)
            return
        first = parts[0]
        layers = {n: {} for n in first.names}
        cosines: dict = {}
        for p in parts:
            for n in p.names:
                layers[n].update(p.layers[n])
            cosines.update(p.task_cosines)
        cmp = dataclasses.replace(first, layers=layers, task_cosines=cosines)
        self._results["comparison"] = cmp
        # its tidy table, once: the line under the depth slider reads it at every move
        self._results["comparison_frame"] = cmp.frame()
        from explorer.widgets.subspace_view import SubspaceView

        self._attach("subspace", SubspaceView(cmp))
        self._refresh_summary()

    def _similarity_done(self, job: Job) -> None:
        parts = [job.results[d] for d in job.layers if d in job.results]
        if not parts:
            self._show_message("similarity", "no CKA: every depth failed (see above)", True)
            return
        sim = pd.concat(parts)
        sim.attrs = dict(parts[0].attrs, a=self._names[0], b=self._names[-1])
        self._results["similarity"] = sim
        from explorer.widgets.similarity_view import SimilarityView

        self._attach("similarity", SimilarityView(sim))
        self._refresh_summary()

    def _metrics_part(self, depth: int, frame: pd.DataFrame) -> None:
        with self._lock:
            self._metric_parts[depth] = frame
            self._show_dimension()
            self._refresh_summary()

    def _metrics_done(self, job: Job) -> None:
        if not job.results:
            self._show_message("dimension", "no metrics: every depth failed (see above)", True)

    def _show_dimension(self) -> None:
        from explorer.widgets.dimension_view import DimensionView

        with self._lock:
            frame = self.metrics_frame()
            if frame.empty:
                return
            self._attach("dimension", DimensionView(frame))

    def metrics_frame(self) -> pd.DataFrame:
        """The representation metrics computed so far: all points, then the selection."""
        with self._lock:
            parts = [self._metric_parts[d] for d in sorted(self._metric_parts)]
            parts += [self._selection_parts[d] for d in sorted(self._selection_parts)]
        if not parts:
            return pd.DataFrame()
        return pd.concat(parts, ignore_index=True)

    # -- the selection series ---------------------------------------------------------------------
    @traitlets.validate("selection")
    def _valid_selection(self, proposal):
        n = self.n_points
        values = sorted({int(i) for i in proposal["value"]})
        if values and n == 0:
            raise ValueError("no probe: there are no points to select")
        bad = [i for i in values if not 0 <= i < n]
        if bad:
            raise ValueError(f"point indices {bad[:5]} are outside 0..{n - 1}")
        return values

    @traitlets.observe("selection")
    def _selection_changed(self, change) -> None:
        sel = change["new"]
        with self._lock:
            self._syncing += 1
            try:
                for name in ("projection", "projection_b"):
                    view = self.views.get(name)
                    if view is not None and view.selection != sel:
                        view.selection = sel
            finally:
                self._syncing -= 1
        self._start_selection(sel)

    def _start_selection(self, sel: list[int]) -> None:
        with self._lock:
            self._selection_gen += 1
            gen = self._selection_gen
            old = self.jobs.get("selection")
            had = bool(self._selection_parts)
            self._selection_parts = {}
        if old is not None and not old.done():
            old.cancel()
        if not sel:
            self.job_bar.note("")
            if had:
                self._show_dimension()
            return
        if len(sel) < MIN_SELECTED:
            self.job_bar.note(
                f"{len(sel)} points selected: select at least {MIN_SELECTED} for their metrics"
            )
            if had:
                self._show_dimension()
            return
        self.job_bar.note(f"{len(sel)} points selected")
        subset = np.asarray(sel)

        def part(depth, frame) -> None:
            with self._lock:
                if gen != self._selection_gen:
                    return
                self._selection_parts[depth] = frame
                self._show_dimension()

        self._submit(
            "selection",
            f"dimension · {len(sel)} selected",
            lambda d: self._metrics_at(d, subset),
            self._acts[0].depths,
            lambda job: None,
            on_part=part,
        )

    # -- the shared depth cursor ------------------------------------------------------------------
    @traitlets.validate("depth")
    def _valid_depth(self, proposal):
        # not charts.checked_depth: importing altair takes seconds, the first picture needs none
        depth = proposal["value"]
        if isinstance(depth, bool):
            raise TypeError("depth must be an int, not a bool")
        depth = operator.index(depth)
        if depth not in self._depths:
            raise ValueError(f"depth {depth} is not among the depths shown: {self._depths}")
        return depth

    @traitlets.observe("depth")
    def _depth_changed(self, change) -> None:
        with self._lock:
            self._syncing += 1
            try:
                for view in list(self.views.values()):
                    self._move(view, change["new"])
                if self._widget is not None:
                    self._scrubber.show(change["new"])
            finally:
                self._syncing -= 1

    @staticmethod
    def _move(view: Any, depth: int) -> None:
        target = nearest(depth, view.depths)
        if view.depth != target:
            view.depth = target
        if hasattr(view, "cursor_depth"):  # says when it shows another depth than the cursor's
            view.cursor_depth = depth
        if hasattr(view, "depth_b"):  # the CKA heatmap: the same depth of both checkpoints
            b = nearest(depth, view._depths_b)
            if view.depth_b != b:
                view.depth_b = b

    def _view_moved(self, change) -> None:
        if self._syncing or change["new"] == self.depth:
            return
        with self._lock:
            if change["new"] in self._depths:
                self.depth = change["new"]

    def _view_selected(self, change) -> None:
        if self._syncing:
            return
        new = sorted({int(i) for i in change["new"]})
        if new != self.selection:
            self.selection = new

    # -- views and their slots --------------------------------------------------------------------
    def _attach(self, name: str, view: Any) -> None:
        """Make ``view`` the one called ``name``: on the cursor, and in its slot if drawn."""
        from explorer.widgets.projection_view import ProjectionView

        with self._lock:
            old = self.views.get(name)
            if old is not None and not isinstance(old, ProjectionView):
                old.unobserve(self._view_moved, "depth")
            self._syncing += 1
            try:
                self._move(view, self.depth)
                if isinstance(view, ProjectionView):
                    view.selection = self.selection
            finally:
                self._syncing -= 1
            self.views[name] = view
            if not isinstance(view, ProjectionView):
                view.observe(self._view_moved, "depth")
            self._messages.pop(name, None)
            if self._widget is not None:
                self._fill(name)
            if isinstance(old, ProjectionView) and old is not view:
                old.close()  # the replaced view's comms and links
            elif old is not None and old is not view:
                _close(getattr(old, "_widget", None))

    def _widget_of(self, name: str, view: Any):
        from explorer.widgets.projection_view import ProjectionView

        widget = view.widget
        if isinstance(view, ProjectionView) and not getattr(widget, "_explorer_linked", False):
            widget.observe(self._view_moved, "depth")
            widget.observe(self._view_selected, "selection")
            widget._explorer_linked = True
        return widget

    def _show_projection(self) -> None:
        from explorer.widgets.projection_view import ProjectionView

        result = self._layouts[self._layout]
        pair = getattr(result, "a", None) is not None
        parts = [(result.a, result.b)] if pair else [(result, None)]
        a, b = parts[0]
        texts = self._acts[0].labels.get("text")
        texts = None if texts is None else [str(t) for t in texts]
        label = self._layout.upper()
        views = {
            "projection": ProjectionView(
                a.coords, labels=a.labels, texts=texts, title=f"{self._names[0]} · {label}"
            )
        }
        if b is not None:
            views["projection_b"] = ProjectionView(
                b.coords, labels=a.labels, texts=texts, title=f"{self._names[1]} · {label}"
            )
            # zoom and pan follow each other in the browser; the selection goes through Python
            # (it also drives the dimension view)
            views["projection"].link(views["projection_b"], selection=False)
        with self._lock:
            for name, view in views.items():
                self._attach(name, view)
            if self._widget is not None:
                self._sync_layout_buttons()

    def _show_message(self, name: str, text: str, warn: bool = False) -> None:
        with self._lock:
            self._messages[name] = _message(html.escape(text), warn)
            if self._widget is not None and name not in self.views:
                self._fill(name)

    def _fill(self, name: str) -> None:
        import ipywidgets as w

        slot = self._slots.get(name)
        if slot is None:
            return
        view = self.views.get(name)
        if view is not None:
            slot.children = (self._widget_of(name, view),)
        else:
            text = self._messages.get(name, _message("computing… (see the job bar)"))
            slot.children = (w.HTML(text),)

    def _sync_layout_buttons(self) -> None:
        options = [m.upper() for m in self._layout_names if m in self._layouts]
        shown = bool(options) and len(self._layout_names) > 1
        self._buttons.layout.display = "" if shown else "none"
        if options:
            self._buttons.options = options
            self._buttons.value = self._layout.upper()

    def _layout_clicked(self, change) -> None:
        method = str(change["new"] or "").lower()
        if self._syncing or method == self._layout or method not in self._layouts:
            return
        self._layout_chosen = True
        self._layout = method
        self._show_projection()

    # -- the widget -------------------------------------------------------------------------------
    @property
    def widget(self):
        """The dashboard's ipywidget, built on first use."""
        import ipywidgets as w

        with self._lock:
            if self._widget is not None:
                return self._widget
            names = " vs ".join(self._names)
            probe = (
                f" · probe {html.escape(str(self._probe_name))} ({self.n_points} points)"
                if self._acts
                else ""
            )
            heading = self._title or f"explorer · {names}"
            title = w.HTML(
                f"<div class='explorer-title' style='font-size: 15px'><b>{html.escape(heading)}"
                f"</b><span style='{_MUTED}'>{probe}</span></div>",
                layout=w.Layout(flex="1 1 auto"),
            )
            self._scrubber = DepthScrubber(
                self._depths, self.depth, self._scrubbed, self.describe_depth
            )
            self._buttons = w.ToggleButtons(
                options=[self._layout.upper()],
                tooltips=["2-D layout of the points at each depth"],
                style={"button_width": "64px"},
            )
            self._buttons.add_class("explorer-layouts")
            self._buttons.observe(self._layout_clicked, "value")
            header = w.HBox(
                [title, self._buttons, self._scrubber.controls],
                layout=w.Layout(align_items="center", width="100%", flex_flow="row wrap"),
            )
            rows = [header, self._scrubber.summary, self.job_bar.widget]

            def slot(name: str):
                # a column: the view in it stretches to the slot's width (in a row it shrank to
                # its content, and the two projections left a third of the width between them)
                box = w.VBox(layout=w.Layout(width="100%", min_height="60px"))
                box.add_class(f"explorer-slot-{name}")
                self._slots[name] = box
                return box

            if self._acts:
                proj = [slot("projection")]
                if len(self._acts) > 1:
                    proj.append(slot("projection_b"))
                for box in proj:
                    box.layout.flex = "1 1 0"
                    box.layout.min_width = "0"
                rows.append(w.HBox(proj, layout=w.Layout(width="100%", grid_gap="8px")))
            tabs = [("spectra", "weight spectra")]
            if self._acts:
                tabs.append(("dimension", "dimension"))
            if self._ck_b is not None:
                tabs.append(("subspace", "subspaces"))
                if self._acts:
                    tabs.append(("similarity", "CKA"))
            tab = w.Tab(children=[slot(n) for n, _ in tabs], titles=[t for _, t in tabs])
            tab.add_class("explorer-tabs")
            rows.append(tab)
            self._tabs = tab
            self._widget = w.VBox(rows, layout=w.Layout(width="100%"))
            self._widget.add_class("explorer-dashboard")
            for name in self._slots:
                self._fill(name)
            self._syncing += 1
            try:
                self._sync_layout_buttons()
            finally:
                self._syncing -= 1
            return self._widget

    def _scrubbed(self, depth: int) -> None:
        if not self._syncing:
            self.depth = nearest(depth, self._depths)

    def describe_depth(self, depth: int | None = None) -> str:
        """One line on what is at ``depth`` (the cursor's by default) among the results so far:
        its address, the weight matrices' effective ranks, the first metric of the hidden states
        with its interval, the largest relative weight change and the CKA between the two
        checkpoints (:func:`explorer.widgets.depth_scrubber.describe_depth`). Shown under the
        depth slider."""
        depth = self.depth if depth is None else depth
        with self._lock:
            results = dict(self._results)
            metrics = self.metrics_frame()
        return describe_depth(
            depth,
            spectra=results.get("spectra"),
            metrics=metrics,
            comparison=results.get("comparison_frame"),
            similarity=results.get("similarity"),
            metric=self._metrics[0],
            names=self._names,
        )

    def _refresh_summary(self) -> None:
        if self._widget is not None:
            self._scrubber.refresh()

    def _repr_mimebundle_(self, **kwargs: Any):
        return self.widget._repr_mimebundle_(**kwargs)

    # -- public state -----------------------------------------------------------------------------
    @property
    def depths(self) -> list[int]:
        """Every depth the cursor can take: hidden-state depths and weight depths."""
        return list(self._depths)

    @property
    def n_points(self) -> int:
        return self._acts[0].n_points if self._acts else 0

    @property
    def names(self) -> list[str]:
        return list(self._names)

    @property
    def activations(self) -> list[Activations]:
        """The captured hidden states, one per checkpoint (empty without a probe)."""
        return list(self._acts)

    @property
    def layout(self) -> str:
        """The projection method shown (``"pca"``, ``"umap"``, ...)."""
        return self._layout

    @layout.setter
    def layout(self, method: str) -> None:
        if method not in self._layouts:
            raise ValueError(f"layout {method!r} is not computed yet; have {list(self._layouts)}")
        self._layout_chosen = True
        self._layout = method
        self._show_projection()

    @property
    def data(self) -> dict[str, pd.DataFrame]:
        """The tidy frames behind the views computed so far: ``projection`` (the layout shown,
        with a ``checkpoint`` column for two), ``spectra``, ``metrics`` (all points and the
        selection), ``comparison``, ``similarity`` (``depth_a, depth_b, cka``)."""
        from explorer.widgets.similarity_view import similarity_frame

        out: dict[str, pd.DataFrame] = {}
        with self._lock:
            if self._layout in self._layouts:
                out["projection"] = self._layouts[self._layout].frame()
            if "spectra" in self._results:
                out["spectra"] = self._results["spectra"]
            metrics = self.metrics_frame()
            if not metrics.empty:
                out["metrics"] = metrics
            if "comparison" in self._results:
                out["comparison"] = self._results["comparison_frame"].copy()
            if "similarity" in self._results:
                out["similarity"] = similarity_frame(self._results["similarity"])
        return out

    @property
    def busy(self) -> bool:
        """Whether a job is running (or its result is being drawn)."""
        with self._lock:
            return self._busy > 0

    def wait(self, timeout: float | None = None) -> Explorer:
        """Block until every job has ended and its view is drawn; ``TimeoutError`` after
        ``timeout`` seconds."""
        with self._idle:
            if not self._idle.wait_for(lambda: self._busy == 0, timeout):
                running = [n for n, j in self.jobs.items() if not j.done()]
                raise TimeoutError(f"jobs still running after {timeout} s: {running}")
        return self

    def cancel(self) -> Explorer:
        """Cancel every running job (what each finished is kept)."""
        self.job_bar.cancel()
        return self

    def set_depth(self, depth: int) -> Explorer:
        self.depth = depth
        return self

    def set_selection(self, indices: Any) -> Explorer:
        self.selection = list(np.asarray(indices).ravel().tolist())
        return self

    @property
    def errors(self) -> list[str]:
        """Failures so far, each with its job and layer."""
        return list(self.job_bar.errors)

    def __repr__(self) -> str:
        return (
            f"Explorer({' vs '.join(self._names)}, points={self.n_points}, depth={self.depth}, "
            f"views={sorted(self.views)}, busy={self.busy})"
        )
