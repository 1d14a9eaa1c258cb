"""Weight spectra along the depth: a metric per role against depth (click a point to move the
cursor) and the log-log ESD of the matrices at the cursor with their power-law fit and MP edge.

Input is ``ex.spectra(ck)``; the view only reshapes it: the ESD histogram is a binning of the
eigenvalues the kernel returned, and the fit line evaluates the fitted density
``(n_tail / n) (alpha - 1) / xmin (lambda / xmin)^-alpha`` at the ends of the fitted tail.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import traitlets

from explorer.widgets.charts import (
    ACCENT,
    CONFIG,
    FG2,
    FG3,
    WARN,
    ChartView,
    ChartWidget,
    pick,
    save_spec,
    stack_specs,
)

__all__ = ["METRICS", "SpectrumView", "esd_frame", "metric_frame"]

#: metrics offered in the overview, with their axis titles
METRICS = {
    "effective_rank": "effective rank",
    "stable_rank": "stable rank",
    "alpha": "power-law alpha",
    "alpha_weighted": "weighted alpha",
    "participation_ratio": "participation ratio",
    "sv_max": "spectral norm",
}
NEEDED = ("address", "depth", "role")


def _matrix(address: str, depth: int) -> str:
    prefix = f"blocks.{depth}."
    return address[len(prefix) :] if address.startswith(prefix) else address


def esd_frame(spectra: pd.DataFrame, bins: int = 40) -> pd.DataFrame:
    """Tidy ESD of every matrix: one row per histogram bar, fit end point or rule.

    Columns ``address, depth, role, matrix, kind, x, x2, y, y2``: ``kind`` is ``"esd"`` (a bar
    from ``x`` to ``x2`` of density ``y`` per unit eigenvalue, log-spaced bins over the positive
    eigenvalues, drawn down to ``y2``, a third of the matrix's smallest density), ``"fit"`` (two points of the power-law density at ``xmin`` and
    ``lambda_max``), ``"mp_edge"`` or ``"xmin"`` (a vertical rule at ``x``).
    """
    if "esd" not in spectra:
        raise ValueError("the spectra frame has no esd column: call ex.spectra(ck, keep_esd=True)")
    rows: list[dict[str, Any]] = []
    for r in spectra.itertuples(index=False):
        lam = np.asarray(r.esd, dtype=float)
        lam = lam[np.isfinite(lam) & (lam > 0)]
        if lam.size == 0:
            continue
        key = {
            "address": r.address,
            "depth": int(r.depth),
            "role": r.role,
            "matrix": _matrix(r.address, int(r.depth)),
        }
        lo, hi = lam.min(), lam.max()
        if hi <= lo:
            lo, hi = lo / 1.5, hi * 1.5
        edges = np.geomspace(lo, hi, min(bins, max(4, lam.size // 2)) + 1)
        counts, _ = np.histogram(lam, edges)
        density = counts / (lam.size * np.diff(edges))
        floor = density[counts > 0].min() / 3  # where the bars start on the log axis
        for a, b, c, d in zip(edges[:-1], edges[1:], counts, density, strict=True):
            if c:
                rows.append(key | {"kind": "esd", "x": a, "x2": b, "y": d, "y2": floor})
        alpha, xmin, n_tail = (getattr(r, c, np.nan) for c in ("alpha", "xmin", "n_tail"))
        if np.isfinite(alpha) and np.isfinite(xmin) and xmin > 0 and alpha > 1 and n_tail:
            scale = float(n_tail) / lam.size * (alpha - 1) / xmin
            for x in (xmin, hi):
                rows.append(
                    key | {"kind": "fit", "x": x, "x2": np.nan, "y": scale * (x / xmin) ** -alpha}
                )
            rows.append(key | {"kind": "xmin", "x": xmin, "x2": np.nan, "y": np.nan})
        edge = getattr(r, "mp_edge", np.nan)
        if np.isfinite(edge) and edge > 0:
            rows.append(key | {"kind": "mp_edge", "x": edge, "x2": np.nan, "y": np.nan})
    return pd.DataFrame(rows, columns=[*NEEDED, "matrix", "kind", "x", "x2", "y", "y2"])


def metric_frame(spectra: pd.DataFrame, metrics=tuple(METRICS)) -> pd.DataFrame:
    """Long table ``address, depth, role, matrix, metric, value`` of the metrics present."""
    present = [m for m in metrics if m in spectra]
    long = spectra[[*NEEDED, *present]].melt(id_vars=list(NEEDED), var_name="metric")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    long.insert(
        3, "matrix", [_matrix(a, int(d)) for a, d in zip(long.address, long.depth, strict=True)]
    )
    return long


def overview_chart(frame: pd.DataFrame, metric: str, depth: alt.Parameter, roles: list[str]):
    title = METRICS.get(metric, metric)
    span = [frame.depth.min() - 0.4, frame.depth.max() + 0.4]
    base = alt.Chart().encode(
        x=alt.X(
            "depth:Q",
            title="depth",
            scale=alt.Scale(domain=span, nice=False),
            axis=alt.Axis(tickMinStep=1, format="d"),
        ),
        y=alt.Y("value:Q", title=title, scale=alt.Scale(zero=False)),
    )
    line = base.mark_line(color=FG3, strokeWidth=1).encode(detail="matrix:N")
    points = (
        base.mark_circle(size=45, opacity=0.9)
        .encode(
            color=alt.condition(alt.datum.depth == depth, alt.value(ACCENT), alt.value(FG2)),
            size=alt.condition(alt.datum.depth == depth, alt.value(90), alt.value(40)),
            tooltip=["address:N", "depth:Q", alt.Tooltip("value:Q", title=title, format=".4g")],
        )
        .add_params(pick(["depth"]))
    )
    rule = (
        alt.Chart()
        .transform_filter(alt.datum.depth == depth)
        .transform_aggregate(groupby=["depth"], n="count()")
        .mark_rule(color=ACCENT, strokeWidth=1.5, opacity=0.6)
        .encode(x="depth:Q")
    )
    return (
        alt.layer(rule, line, points, data=frame[frame.metric == metric])
        .properties(width=150, height=100)
        .facet(facet=alt.Facet("role:N", title=None, sort=roles), columns=4)
        .resolve_scale(y="independent")
        .properties(title=f"{title} per role — click a point to move the depth")
    )


#: a decade's first tick: log axes label (and draw grid lines at) powers of ten only; with 2, 3,
#: ... 9 labelled too, "1e-1" and "2e-1" ran into each other. The nice domain starts and ends at
#: one, so there are always two.
DECADE = "abs(log(datum.value) / LN10 - round(log(datum.value) / LN10)) < 1e-6"


def log_axis(**kwargs) -> alt.Axis:
    return alt.Axis(
        format="~e",
        labelExpr=f"{DECADE} ? datum.label : ''",
        labelOverlap="greedy",
        labelSeparation=4,  # greedy then also drops labels that would touch
        gridOpacity={"condition": {"test": DECADE, "value": 1}, "value": 0},
        **kwargs,
    )


def esd_chart(frame: pd.DataFrame, depth: alt.Parameter, order: list[str]):
    base = alt.Chart()
    x_log = alt.Scale(type="log", nice=True)
    x_axis = log_axis(grid=False)
    bars = (
        base.transform_filter(alt.datum.kind == "esd")
        .mark_rect(color=ACCENT, opacity=0.55)
        .encode(
            x=alt.X("x:Q", scale=x_log, title="eigenvalue of W^T W", axis=x_axis),
            x2="x2:Q",
            y=alt.Y(
                "y:Q", scale=alt.Scale(type="log", nice=True), title="density", axis=log_axis()
            ),
            y2="y2:Q",
        )
    )
    fit = (
        base.transform_filter(alt.datum.kind == "fit")
        .mark_line(color=WARN, strokeWidth=2)
        .encode(x="x:Q", y="y:Q")
    )
    rules = (
        base.transform_filter(alt.FieldOneOfPredicate(field="kind", oneOf=["mp_edge", "xmin"]))
        .mark_rule(strokeWidth=1.5)
        .encode(
            x="x:Q",
            strokeDash=alt.StrokeDash(
                "kind:N",
                scale=alt.Scale(domain=["mp_edge", "xmin"], range=[[4, 3], [1, 0]]),
                legend=None,
            ),
            color=alt.Color(
                "kind:N",
                scale=alt.Scale(domain=["mp_edge", "xmin"], range=[FG2, WARN]),
                legend=None,
            ),
            tooltip=["address:N", "kind:N", alt.Tooltip("x:Q", format=".4g")],
        )
    )
    return (
        alt.layer(bars, fit, rules, data=frame)
        .properties(width=200, height=130)
        .facet(facet=alt.Facet("matrix:N", title=None, sort=order), columns=3)
        .transform_filter(alt.datum.depth == depth)
        .resolve_scale(x="independent", y="independent")
    )


ESD_NOTE = "orange: power-law fit from xmin; dashed: Marchenko-Pastur bulk edge"


class SpectrumView(ChartView):
    """The weight spectra of one checkpoint along its depth.

    Top: a metric (``metric``, a dropdown) against depth, one small multiple per role; a click on
    a point moves ``depth``. Below: the log-log ESD of each matrix at ``depth`` with the power-law
    fit from ``xmin`` (orange) and the Marchenko-Pastur bulk edge (dashed).

    Parameters
    ----------
    spectra : DataFrame
        ``ex.spectra(ck)`` (with its ``esd`` column).
    depth : int, optional
        The depth shown first (default the first depth with matrices).
    metric : str, default "effective_rank"
        Overview metric: a column of ``spectra`` (see :data:`METRICS`).
    cursor : HasTraits, optional
        An object with a ``depth`` trait to follow and move (a shared cursor, another view).
    bins : int, default 40
        Histogram bins per matrix.

    Attributes
    ----------
    data : DataFrame
        The ESD chart's tidy rows (:func:`esd_frame`); ``overview_data`` the overview's.
    cursor_depth : int or None
        Where a shared cursor is when that depth has no weight matrices (the dashboard's hidden
        states at depth 0 of an MLP): the view shows the nearest ``depth`` and says so.
    """

    cursor_depth = traitlets.Int(None, allow_none=True)

    def __init__(
        self,
        spectra: pd.DataFrame,
        *,
        depth: int | None = None,
        metric: str = "effective_rank",
        cursor=None,
        bins: int = 40,
    ):
        missing = [c for c in NEEDED if c not in spectra]
        if missing:
            raise ValueError(f"spectra lacks the columns {missing}: pass ex.spectra(ck)")
        self._spectra = spectra
        self._depths = sorted(int(d) for d in spectra.depth.unique())
        self._esd = esd_frame(spectra, bins=bins)
        self._overview = metric_frame(spectra)
        self._roles = list(dict.fromkeys(spectra.role))
        self._order = list(dict.fromkeys(self._esd.matrix))
        self._metric = self._checked_metric(metric)
        super().__init__(depth=self._depths[0] if depth is None else depth, cursor=cursor)

    @property
    def data(self) -> pd.DataFrame:
        return self._esd

    @property
    def overview_data(self) -> pd.DataFrame:
        return self._overview

    def _checked_metric(self, metric: str) -> str:
        options = set(self._overview.metric)
        if metric not in options:
            raise ValueError(
                f"metric {metric!r} is not in the spectra frame; choose from {sorted(options)}"
            )
        return metric

    @property
    def metric(self) -> str:
        return self._metric

    @metric.setter
    def metric(self, metric: str) -> None:
        self._metric = self._checked_metric(metric)
        if self._widget is not None:
            if self._dropdown.value != metric:
                self._dropdown.value = metric
            self._charts["overview"].chart = self._overview_chart(self.depth)

    def _overview_chart(self, depth: int):
        p = alt.param(name="depth", value=depth)
        return (
            overview_chart(self._overview, self._metric, p, self._roles)
            .add_params(p)
            .configure(**CONFIG)
        )

    def _esd_chart(self, depth: int):
        p = alt.param(name="depth", value=depth)
        title = alt.Title("ESD at the depth cursor (log-log)", subtitle=self._subtitle(depth))
        return (
            esd_chart(self._esd, p, self._order)
            .add_params(p)
            .properties(title=title)
            .configure(**CONFIG)
        )

    def _subtitle(self, depth: int) -> str:
        n = int((self._spectra.depth == depth).sum())
        return f"depth {depth}: {n} matri{'x' if n == 1 else 'ces'} — {ESD_NOTE}"

    def _build(self):
        import ipywidgets as w

        self._charts["overview"] = ChartWidget(self._overview_chart(self.depth))
        self._charts["esd"] = ChartWidget(self._esd_chart(self.depth))
        self._watch_pick(self._charts["overview"], {"depth": self._picked})
        self._dropdown = w.Dropdown(
            options=[(METRICS.get(m, m), m) for m in dict.fromkeys(self._overview.metric)],
            value=self._metric,
            description="metric",
            layout=w.Layout(width="260px"),
        )
        self._dropdown.observe(lambda c: setattr(self, "metric", c["new"]), "value")
        self._label = w.HTML()
        return w.VBox(
            [w.HBox([self._dropdown, self._label]), self._charts["overview"], self._charts["esd"]],
            layout=w.Layout(width="100%"),
        )

    def _picked(self, depth: Any) -> None:
        self.depth = int(depth)

    def _show_depth(self) -> None:
        self._set_params(depth=self.depth)
        esd = self._charts["esd"]
        spec = esd.spec
        if spec is not None:
            spec = dict(spec, title=dict(spec["title"], subtitle=self._subtitle(self.depth)))
            esd.show_spec(spec, {"depth": self.depth})
        self._show_note()

    def _show_note(self) -> None:
        self._label.value = (
            f"<span class='explorer-spectra-depth' style='color: var(--jp-ui-font-color2)'>"
            f"{self.depth_note()}</span>"
        )

    def depth_note(self) -> str:
        """What the label next to the metric says: the depth shown, and the cursor's when that
        one has no weight matrices."""
        cursor = self.cursor_depth
        if cursor is None or cursor == self.depth:
            return f"depth {self.depth}"
        return f"depth {self.depth} (the cursor's depth {cursor} has no weight matrices)"

    @traitlets.observe("cursor_depth")
    def _cursor_moved(self, change):
        if self._widget is not None:
            self._show_note()

    def spec(self, chart: str = "both") -> dict:
        """The Vega-Lite spec (``"overview"``, ``"esd"``, or ``"both"`` stacked)."""
        parts = {
            "overview": self._overview_chart(self.depth).to_dict(),
            "esd": self._esd_chart(self.depth).to_dict(),
        }
        if chart != "both":
            return parts[chart]
        return stack_specs([parts["overview"], parts["esd"]], {"depth": self.depth})

    def save(self, path, chart: str = "both", **kwargs):
        """Export as PNG/SVG/PDF/HTML/JSON (by suffix; images need vl-convert-python)."""
        return save_spec(self.spec(chart), path, **kwargs)
