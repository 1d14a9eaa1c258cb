"""Two checkpoints, layer by layer: subspace overlap per depth and k, the intruder test at the
depth cursor, and the intruder table, with ``k`` and ``epsilon`` as live sliders.

Input is ``ex.compare(a, b)``. Moving ``k`` or ``epsilon`` re-reads the cosines the comparison
kept (``Comparison.intruders``, ``Comparison.cosines``): no SVD is redone, and the chart gets
its new rows without altair re-validating the spec.
"""

from __future__ import annotations

import html
from typing import Any

import altair as alt
import numpy as np
import pandas as pd
import traitlets

from explorer.widgets.charts import (
    ACCENT,
    CONFIG,
    FG1,
    FG2,
    SEQUENTIAL,
    WARN,
    ChartView,
    ChartWidget,
    pick,
    records,
    save_spec,
    stack_specs,
)

__all__ = ["SubspaceView"]


def overlap_heatmap(frame: pd.DataFrame, depth: alt.Parameter, roles: list[str], side: str):
    at = alt.datum.depth == depth
    return (
        alt.Chart(frame)
        .mark_rect()
        .encode(
            x=alt.X("depth:O", title="depth"),
            y=alt.Y("k:O", title="k", sort="descending"),
            color=alt.Color(
                f"overlap_{side}:Q",
                title="overlap",
                scale=alt.Scale(scheme=SEQUENTIAL, domain=[0, 1]),
            ),
            stroke=alt.condition(at, alt.value(ACCENT), alt.value(None)),
            strokeWidth=alt.condition(at, alt.value(2), alt.value(0)),
            tooltip=[
                "address:N",
                "k:O",
                alt.Tooltip(f"overlap_{side}:Q", format=".3f"),
                alt.Tooltip(f"angle_max_{side}:Q", title="largest angle (deg)", format=".1f"),
            ],
        )
        .add_params(pick(["depth"]))
        .properties(width=alt.Step(22), height=alt.Step(14))
        .facet(facet=alt.Facet("role:N", title=None, sort=roles), columns=4)
        .resolve_scale(x="independent")
        .properties(
            title=alt.Title(
                "subspace overlap: mean cos² of the principal angles",
                subtitle="top-k singular subspaces of A and B; click a cell to move the depth",
            )
        )
    )


CURVE_SUBTITLE = [
    "solid: max |cos| of B's vector j with all of A's (below epsilon: an intruder, orange diamond)",
    "dotted: cos of the principal angles between A's and B's top-k subspaces",
]


def curve_chart(roles: list[str]):
    data = alt.NamedData(name="curve")
    colour = alt.Color("role:N", title=None, sort=roles, legend=alt.Legend(orient="right"))
    base = alt.Chart(data).encode(
        x=alt.X(
            "j:Q",
            title="B's singular vector j (by singular value)",
            axis=alt.Axis(tickMinStep=1, format="d"),
        ),
        y=alt.Y("cos:Q", title="cosine", scale=alt.Scale(domain=[0, 1])),
    )
    test = base.transform_filter(alt.datum.kind == "max_cos")
    tooltip = ["address:N", "j:Q", alt.Tooltip("cos:Q", format=".3f"), "intruder:N"]
    line = test.mark_line(strokeWidth=1.5).encode(color=colour)
    aligned = (
        test.transform_filter(alt.datum.intruder == "aligned")
        .mark_circle(size=36, opacity=1)
        .encode(color=colour, tooltip=tooltip)
    )
    intruders = (
        test.transform_filter(alt.datum.intruder == "intruder")
        .mark_point(shape="diamond", filled=True, size=140, opacity=1, stroke=FG1, strokeWidth=1)
        .encode(
            fill=alt.Fill(
                "intruder:N",
                title=None,
                scale=alt.Scale(domain=["intruder"], range=[WARN]),
                legend=alt.Legend(orient="right", symbolType="diamond", symbolSize=120),
            ),
            tooltip=tooltip,
        )
    )
    angles = (
        base.transform_filter(alt.datum.kind == "principal")
        .mark_line(strokeDash=[2, 2], strokeWidth=1.2)
        .encode(color=colour)
    )
    eps = (
        alt.Chart(alt.NamedData(name="epsilon"))
        .mark_rule(color=WARN, strokeDash=[5, 3], strokeWidth=1.5)
        .encode(y="epsilon:Q")
    )
    return alt.layer(eps, angles, line, aligned, intruders).properties(
        width=420,
        height=170,
        title=alt.Title(
            "intruder test at the depth cursor", subtitle=CURVE_SUBTITLE, subtitleColor=FG2
        ),
    )


class SubspaceView(ChartView):
    """What fine-tuning changed: overlap heatmap (depth x k, one panel per role), the intruder
    test of the matrices at ``depth`` and the intruder table.

    Parameters
    ----------
    comparison : Comparison
        ``ex.compare(a, b)``.
    k : int, default 10
        B's top-k vectors tested for intruders (at most the number of cosines kept).
    epsilon : float, default 0.5
        Intruder threshold on the largest |cos| with A's singular vectors.
    b : str or int, optional
        Which compared checkpoint (default the first; a dropdown when there are several).
    side : "left" or "right"
    depth : int, optional
    cursor : HasTraits, optional

    Attributes
    ----------
    data : DataFrame
        ``comparison.frame()`` rows of checkpoint ``b`` (the heatmap); ``curve_data`` and
        ``intruder_data`` are the other two panels' rows for the current ``depth``, ``k`` and
        ``epsilon``.
    """

    k = traitlets.Int(10)
    epsilon = traitlets.Float(0.5)
    b = traitlets.Unicode()

    def __init__(
        self, comparison, *, k=10, epsilon=0.5, b=None, side="left", depth=None, cursor=None
    ):
        if side not in ("left", "right"):
            raise ValueError(f"side must be 'left' or 'right', not {side!r}")
        self._cmp = comparison
        self._side = side
        self._frame_all = comparison.frame()
        self._depths = sorted(int(d) for d in self._frame_all.depth.unique())
        self._roles = list(dict.fromkeys(self._frame_all.role))
        self._k_max = self._kept()
        name = comparison._name(b)
        self._intruders = pd.DataFrame()
        self._curve = pd.DataFrame()
        self._curve_key = None
        super().__init__(
            depth=self._depths[0] if depth is None else depth,
            b=name,
            k=k,
            epsilon=epsilon,
            cursor=cursor,
        )
        self._recompute()

    def _kept(self) -> int:
        sizes = [
            lc.intruder[self._side].shape[0]
            for layers in self._cmp.layers.values()
            for lc in layers.values()
            if lc.intruder.get(self._side) is not None and lc.intruder[self._side].size
        ]
        return max(sizes) if sizes else 1

    @property
    def k_max(self) -> int:
        return self._k_max

    @traitlets.validate("k")
    def _valid_k(self, proposal):
        k = int(proposal["value"])
        if not 1 <= k <= self._k_max:
            raise ValueError(f"k={k} is outside 1..{self._k_max} (the cosines kept by compare)")
        return k

    @traitlets.validate("epsilon")
    def _valid_epsilon(self, proposal):
        eps = float(proposal["value"])
        if not 0 < eps <= 1:
            raise ValueError(f"epsilon={eps} must be in (0, 1]")
        return eps

    @traitlets.validate("b")
    def _valid_b(self, proposal):
        return self._cmp._name(proposal["value"])

    @traitlets.observe("k", "epsilon", "b")
    def _test_moved(self, change):
        self._recompute()
        if self._widget is not None:
            if change["name"] == "b":
                self._charts["heatmap"].chart = self._heatmap_chart()
            self._sync_controls()
            self._show_depth()

    @property
    def data(self) -> pd.DataFrame:
        return self._frame_all[self._frame_all.b == self.b].reset_index(drop=True)

    @property
    def intruder_data(self) -> pd.DataFrame:
        return self._intruders

    @property
    def curve_data(self) -> pd.DataFrame:
        key = (self.depth, self.k, self.epsilon, self.b)
        if self._curve_key != key:
            self._curve, self._curve_key = self._curves(self.depth), key
        return self._curve

    def _recompute(self) -> None:
        """Intruders at (k, epsilon) for every layer, and the curves at the cursor."""
        table = self._cmp.intruders(self.k, self.epsilon, side=self._side)
        self._intruders = table[table.b == self.b].reset_index(drop=True)

    def _curves(self, depth: int) -> pd.DataFrame:
        parts = []
        for lc in self._cmp.layers[self.b].values():
            if lc.depth != depth:
                continue
            cos = self._cmp.cosines(lc.address, self.b, self._side)["intruder"]
            if cos is None or not cos.size:
                continue
            top = cos[: self.k].max(axis=1)
            j = np.arange(1, len(top) + 1)
            parts.append(
                pd.DataFrame(
                    {
                        "address": lc.address,
                        "role": lc.role,
                        "kind": "max_cos",
                        "j": j,
                        "cos": top,
                        "intruder": np.where(top < self.epsilon, "intruder", "aligned"),
                    }
                )
            )
            try:  # at k itself (up to the kept block of U_A^T U_B), else the sweep's k below it
                principal = self._cmp.principal_cosines(lc.address, self.k, self.b, self._side)
            except KeyError:
                sweep = [s for s in lc.ks if s <= self.k]
                principal = (
                    self._cmp.principal_cosines(lc.address, max(sweep), self.b, self._side)
                    if sweep
                    else np.zeros(0)
                )
            parts.append(
                pd.DataFrame(
                    {
                        "address": lc.address,
                        "role": lc.role,
                        "kind": "principal",
                        "j": np.arange(1, len(principal) + 1),
                        "cos": principal,
                        "intruder": "",
                    }
                )
            )
        columns = ["address", "role", "kind", "j", "cos", "intruder"]
        return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=columns)

    def _heatmap_chart(self):
        p = alt.param(name="depth", value=self.depth)
        return (
            overlap_heatmap(self.data, p, self._roles, self._side).add_params(p).configure(**CONFIG)
        )

    def _curve_spec(self) -> dict:
        if not hasattr(self, "_curve_template"):
            self._curve_template = curve_chart(self._roles).configure(**CONFIG).to_dict()
        return dict(
            self._curve_template,
            datasets={"curve": records(self.curve_data), "epsilon": [{"epsilon": self.epsilon}]},
        )

    def _table_html(self) -> str:
        cell = "padding: 3px 14px 3px 0; white-space: nowrap; text-align: {}"
        left, right = cell.format("left"), cell.format("right")
        rows = []
        for r in self._intruders.itertuples(index=False):
            here = int(r.depth) == self.depth
            style = " style='background: var(--jp-layout-color2); font-weight: 600'" if here else ""
            n = "" if pd.isna(r.n_intruders) else int(r.n_intruders)
            colour = "var(--jp-warn-color1)" if n else "var(--jp-ui-font-color2)"
            idx = ", ".join(str(int(i) + 1) for i in r.intruders)
            rows.append(
                f"<tr{style}><td style='{left}'>{html.escape(r.address)}</td>"
                f"<td style='{right}; color: {colour}'>{n}</td><td style='{left}'>{idx}</td>"
                f"<td style='{right}'>{r.min_max_cos:.3f}</td></tr>"
            )
        head = "".join(
            f"<th style='{align}; border-bottom: 1px solid var(--jp-border-color1)'>{name}</th>"
            for name, align in (
                ("address", left),
                ("intruders", right),
                ("which j", left),
                ("min max |cos|", right),
            )
        )
        return (
            "<div style='max-height: 260px; overflow: auto; color: var(--jp-ui-font-color1);"
            " font-size: var(--jp-ui-font-size1)'>"
            f"<div>intruder dimensions of {html.escape(self.b)} vs {html.escape(self._cmp.a)} at "
            f"k = {self.k}, epsilon = {self.epsilon:.2f}</div>"
            "<table class='explorer-intruders' style='border-collapse: collapse; line-height: 1.4'>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        )

    def _build(self):
        import ipywidgets as w

        self._charts["heatmap"] = ChartWidget(self._heatmap_chart())
        self._watch_pick(self._charts["heatmap"], {"depth": self._picked})
        curve = curve_chart(self._roles).configure(**CONFIG)
        self._charts["curve"] = ChartWidget(curve)
        self._k_slider = w.IntSlider(
            value=self.k, min=1, max=self._k_max, description="k", continuous_update=True
        )
        self._eps_slider = w.FloatSlider(
            value=self.epsilon,
            min=0.05,
            max=1.0,
            step=0.01,
            description="epsilon",
            continuous_update=True,
        )
        self._k_slider.observe(lambda c: setattr(self, "k", c["new"]), "value")
        self._eps_slider.observe(lambda c: setattr(self, "epsilon", c["new"]), "value")
        controls = [self._k_slider, self._eps_slider]
        if len(self._cmp.names) > 1:
            self._b_dropdown = w.Dropdown(options=self._cmp.names, value=self.b, description="B")
            self._b_dropdown.observe(lambda c: setattr(self, "b", c["new"]), "value")
            controls.append(self._b_dropdown)
        self._table = w.HTML()
        return w.VBox(
            [
                self._charts["heatmap"],
                w.HBox(controls),
                self._charts["curve"],
                self._table,
            ]
        )

    def _sync_controls(self) -> None:
        self._k_slider.value = self.k
        self._eps_slider.value = self.epsilon
        if hasattr(self, "_b_dropdown"):
            self._b_dropdown.value = self.b

    def _picked(self, value: Any) -> None:
        self.depth = int(value)

    def _show_depth(self) -> None:
        self._set_params(depth=self.depth)
        self._charts["curve"].show_spec(self._curve_spec())
        self._table.value = self._table_html()

    def spec(self, chart: str = "both") -> dict:
        """The Vega-Lite spec (``"heatmap"``, ``"curve"`` or ``"both"`` stacked)."""
        parts = {"heatmap": self._heatmap_chart().to_dict(), "curve": self._curve_spec()}
        if chart != "both":
            return parts[chart]
        return stack_specs([parts["heatmap"], parts["curve"]], {"depth": self.depth})

    def save(self, path, chart: str = "both", **kwargs):
        """Export as PNG/SVG/PDF/HTML/JSON (by suffix; images need vl-convert-python)."""
        return save_spec(self.spec(chart), path, **kwargs)
