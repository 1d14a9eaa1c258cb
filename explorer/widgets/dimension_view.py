"""Intrinsic dimension and rank metrics of the representations against depth, with confidence
bands, one panel per metric; a click on a point moves the depth cursor.

Input is a tidy frame with columns ``depth, metric, value`` and optionally ``ci_low, ci_high``,
``subset`` and ``checkpoint`` (``ex.representation_metrics`` output; extra columns are kept in
``data`` and ignored by the chart).
"""

from __future__ import annotations

from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from explorer.widgets.charts import ACCENT, CONFIG, ChartView, ChartWidget, pick, save_spec

__all__ = ["DimensionView", "dimension_frame"]

NEEDED = ("depth", "metric", "value")


def dimension_frame(metrics: pd.DataFrame) -> pd.DataFrame:
    """The rows the chart draws: ``NEEDED`` plus ``ci_low, ci_high`` (NaN when absent),
    ``subset`` ("all" when absent), ``checkpoint`` ("" when absent) and ``series``."""
    missing = [c for c in NEEDED if c not in metrics]
    if missing:
        raise ValueError(f"the metrics frame lacks the columns {missing}; it needs {list(NEEDED)}")
    frame = metrics.copy()
    for column, default in (
        ("ci_low", np.nan),
        ("ci_high", np.nan),
        ("subset", "all"),
        ("checkpoint", ""),
    ):
        if column not in frame:
            frame[column] = default
    frame["depth"] = frame["depth"].astype(int)
    frame["subset"] = frame["subset"].fillna("all").astype(str)
    frame["checkpoint"] = frame["checkpoint"].fillna("").astype(str)
    for column in ("value", "ci_low", "ci_high"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    frame["series"] = [
        " · ".join(p for p in (c, s) if p)
        for c, s in zip(frame.checkpoint, frame.subset, strict=True)
    ]
    return frame


def lines(frame: pd.DataFrame, depth: alt.Parameter, metrics: list[str]):
    cols = [
        c
        for c in ("depth", "metric", "value", "ci_low", "ci_high", "subset", "checkpoint", "series")
        if c in frame
    ]
    data = frame[cols]
    span = [data.depth.min() - 0.3, data.depth.max() + 0.3]
    x = alt.X(
        "depth:Q",
        scale=alt.Scale(domain=span, nice=False),
        axis=alt.Axis(tickMinStep=1, format="d"),
    )
    colour = alt.Color("series:N", title=None, legend=alt.Legend(orient="bottom", symbolOpacity=1))
    dash = alt.StrokeDash("subset:N", title=None, legend=None)
    band = (
        alt.Chart()
        .transform_filter("isValid(datum.ci_low) && isValid(datum.ci_high)")
        .mark_area(opacity=0.18)
        .encode(x=x, y="ci_low:Q", y2="ci_high:Q", color=colour, detail="series:N")
    )
    line = (
        alt.Chart()
        .mark_line(strokeWidth=2)
        .encode(
            x=x,
            y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
            color=colour,
            strokeDash=dash,
        )
    )
    points = (
        alt.Chart()
        .mark_circle(opacity=1)
        .encode(
            x=x,
            y="value:Q",
            color=colour,
            size=alt.condition(alt.datum.depth == depth, alt.value(90), alt.value(30)),
            tooltip=[
                "metric:N",
                "series:N",
                "depth:Q",
                alt.Tooltip("value:Q", format=".4g"),
                alt.Tooltip("ci_low:Q", format=".4g"),
                alt.Tooltip("ci_high:Q", format=".4g"),
            ],
        )
        .add_params(pick(["depth"]))
    )
    rule = (
        alt.Chart()
        .transform_filter(alt.datum.depth == depth)
        .transform_aggregate(groupby=["depth"], n="count()")
        .mark_rule(color=ACCENT, strokeWidth=1.5, opacity=0.7)
        .encode(x="depth:Q")
    )
    return (
        alt.layer(rule, band, line, points, data=data)
        .properties(width=230, height=140)
        .facet(facet=alt.Facet("metric:N", title=None, sort=metrics), columns=2)
        .resolve_scale(y="independent")
        .properties(title="representation metrics per depth — click a point to move the depth")
    )


class DimensionView(ChartView):
    """Lines of each metric against depth (one panel per metric, independent y), shaded
    confidence bands, one colour per checkpoint/subset series and a dash per subset; the
    points at ``depth`` are drawn larger under a cursor rule.

    Parameters
    ----------
    metrics : DataFrame
        Columns ``depth, metric, value`` (+ ``ci_low, ci_high, subset, checkpoint``).
    depth : int, optional
    metrics_shown : list of str, optional
        Which metrics, in order (default: all, in order of appearance).
    cursor : HasTraits, optional
    """

    def __init__(self, metrics: pd.DataFrame, *, depth=None, metrics_shown=None, cursor=None):
        self._data = dimension_frame(metrics)
        self._depths = sorted(self._data.depth.unique().tolist())
        self._metrics = list(metrics_shown or dict.fromkeys(self._data.metric))
        unknown = set(self._metrics) - set(self._data.metric)
        if unknown:
            raise ValueError(f"no rows for the metrics {sorted(unknown)}")
        super().__init__(depth=self._depths[0] if depth is None else depth, cursor=cursor)

    @property
    def data(self) -> pd.DataFrame:
        return self._data

    def _chart(self):
        p = alt.param(name="depth", value=self.depth)
        shown = self._data[self._data.metric.isin(self._metrics)]
        return lines(shown, p, self._metrics).add_params(p).configure(**CONFIG)

    def _build(self):
        chart = ChartWidget(self._chart())
        self._charts["lines"] = chart
        self._watch_pick(chart, {"depth": self._picked})
        return chart

    def _picked(self, value: Any) -> None:
        self.depth = int(value)

    def _show_depth(self) -> None:
        self._set_params(depth=self.depth)

    def spec(self) -> dict:
        return self._chart().to_dict()

    def save(self, path, **kwargs):
        """Export as PNG/SVG/PDF/HTML/JSON (by suffix; images need vl-convert-python)."""
        return save_spec(self.spec(), path, **kwargs)
