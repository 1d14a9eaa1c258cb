"""CKA between the depths of two captures as a heatmap; a click on a cell moves both cursors.

Input is ``ex.similarity(acts_a, acts_b)`` (index ``depth_a``, columns ``depth_b``); the view
only stacks it into tidy rows.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd
import traitlets

from explorer.widgets.charts import (
    ACCENT,
    CONFIG,
    FG1,
    SEQUENTIAL,
    ChartView,
    ChartWidget,
    checked_depth,
    pick,
    save_spec,
)

__all__ = ["SimilarityView", "similarity_frame"]


def similarity_frame(sim: pd.DataFrame) -> pd.DataFrame:
    """Tidy ``depth_a, depth_b, cka`` rows of a depth x depth similarity matrix."""
    frame = sim.copy()
    frame.index = pd.Index([int(d) for d in frame.index], name="depth_a")
    frame.columns = pd.Index([int(d) for d in frame.columns], name="depth_b")
    tidy = frame.stack().rename("cka").reset_index()
    tidy["cka"] = pd.to_numeric(tidy["cka"], errors="coerce")
    return tidy


def heatmap(frame: pd.DataFrame, a: alt.Parameter, b: alt.Parameter, names=("A", "B"), title=""):
    at_cursor = (alt.datum.depth_a == a) & (alt.datum.depth_b == b)
    base = alt.Chart(frame).encode(
        x=alt.X("depth_b:O", title=f"depth of {names[1]}"),
        y=alt.Y("depth_a:O", title=f"depth of {names[0]}", sort="descending"),
    )
    cells = (
        base.mark_rect()
        .encode(
            color=alt.Color(
                "cka:Q",
                title="CKA",
                scale=alt.Scale(scheme=SEQUENTIAL, domain=[0, 1]),
            ),
            stroke=alt.condition(at_cursor, alt.value(ACCENT), alt.value(None)),
            strokeWidth=alt.condition(at_cursor, alt.value(3), alt.value(0)),
            tooltip=["depth_a:O", "depth_b:O", alt.Tooltip("cka:Q", format=".3f")],
        )
        .add_params(pick(["depth_a", "depth_b"]))
    )
    n = max(frame.depth_a.nunique(), frame.depth_b.nunique())
    size = min(440, max(180, 34 * n))
    layers = [cells]
    if n <= 16:
        labels = base.mark_text(fontSize=10).encode(
            text=alt.Text("cka:Q", format=".2f"),
            color=alt.condition(alt.datum.cka > 0.6, alt.value("#111111"), alt.value("#f5f5f5")),
        )
        layers.append(labels)
    return alt.layer(*layers).properties(
        width=size, height=size, title=alt.Title(title or "linear CKA", color=FG1)
    )


class SimilarityView(ChartView):
    """Heatmap of CKA between depths; clicking a cell sets ``depth`` (row, A) and ``depth_b``
    (column, B), and the cell under the two cursors is outlined.

    Parameters
    ----------
    sim : DataFrame
        ``ex.similarity(acts_a, acts_b)``: index ``depth_a``, columns ``depth_b``.
    depth, depth_b : int, optional
        Initial cursors (default: the first depths).
    cursor : HasTraits, optional
        An object whose ``depth`` trait this view follows and moves.

    Attributes
    ----------
    data : DataFrame
        ``depth_a, depth_b, cka``.
    """

    depth_b = traitlets.Int(0)

    def __init__(self, sim: pd.DataFrame, *, depth=None, depth_b=None, cursor=None, title=None):
        self._data = similarity_frame(sim)
        self._depths = sorted(self._data.depth_a.unique().tolist())
        self._depths_b = sorted(self._data.depth_b.unique().tolist())
        attrs = getattr(sim, "attrs", {})
        self._names = (str(attrs.get("a", "A")), str(attrs.get("b", attrs.get("a", "B"))))
        kind = "debiased linear CKA" if attrs.get("debiased") else "linear CKA"
        self._title = title or f"{kind}: {self._names[0]} vs {self._names[1]}"
        super().__init__(
            depth=self._depths[0] if depth is None else depth,
            depth_b=self._depths_b[0] if depth_b is None else depth_b,
            cursor=cursor,
        )

    @property
    def data(self) -> pd.DataFrame:
        return self._data

    @traitlets.validate("depth_b")
    def _valid_depth_b(self, proposal):
        return checked_depth(proposal["value"], self._depths_b)

    @traitlets.observe("depth_b")
    def _depth_b_moved(self, change):
        if self._widget is not None:
            self._show_depth()

    def _chart(self):
        a = alt.param(name="depth", value=self.depth)
        b = alt.param(name="depth_b", value=self.depth_b)
        return heatmap(self._data, a, b, self._names, self._title).add_params(a, b)

    def _build(self):
        chart = ChartWidget(self._chart().configure(**CONFIG))
        self._charts["heatmap"] = chart
        self._watch_pick(chart, {"depth_a": self._picked_a, "depth_b": self._picked_b})
        return chart

    def _picked_a(self, value: Any) -> None:
        self.depth = int(value)

    def _picked_b(self, value: Any) -> None:
        self.depth_b = int(value)

    def _show_depth(self) -> None:
        self._set_params(depth=self.depth, depth_b=self.depth_b)

    def spec(self) -> dict:
        return self._chart().configure(**CONFIG).to_dict()

    def save(self, path, **kwargs):
        """Export as PNG/SVG/PDF/HTML/JSON (by suffix; images need vl-convert-python)."""
        return save_spec(self.spec(), path, **kwargs)
