"""The projection view's picture as a Vega-Lite spec, for PNG/SVG/PDF export through vl-convert.

It draws what the WebGL view shows at one depth: the same fit of all depths into the square, the
same zoom and pan (``camera``), colours (the categorical palette of
``widgets_js/src/scatter/colors.ts``, viridis for a metric), point size and opacity, and a
selection drawn on top of the dimmed rest. Axes are left out, as in the view: the two
coordinates of a projection have no units.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

#: Tableau 10 then the lighter halves of Tableau 20 (``CATEGORICAL`` in colors.ts).
CATEGORICAL = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
    "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#a0cbe8", "#ffbe7d", "#8cd17d", "#b6992d", "#f1ce63",
    "#86bcb6", "#d37295", "#fabfd2", "#d4a6c8", "#79706e",
]  # fmt: skip
#: Colour of points when nothing colours them.
NEUTRAL = "#1976d2"
#: Share of the square the fitted points fill (``MARGIN`` in geometry.ts).
MARGIN = 0.92
#: Side of the exported square, in CSS pixels (before vl-convert's ``scale``).
SIDE_PX = 480


def point_size(n: int) -> float:
    """Point diameter in CSS pixels for ``n`` points (``pointSize`` in projection_view.ts)."""
    return min(8.0, max(1.5, 7 * (1000 / max(1, n)) ** 0.25))


def point_alpha(n: int) -> float:
    """Point opacity for ``n`` points (``pointAlpha`` in projection_view.ts)."""
    return float(min(0.9, max(0.35, 0.9 - 0.15 * np.log10(max(1, n) / 2000))))


def _fit(xy: np.ndarray) -> tuple[float, float, float]:
    """Centre and half side of the square that the view fits every depth's points into."""
    finite = xy[np.isfinite(xy).all(-1)]
    if not len(finite):
        return 0.0, 0.0, MARGIN
    lo, hi = finite.min(0), finite.max(0)
    half = float(max(hi - lo)) / 2
    return float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2, half if half > 0 else MARGIN


def projection_spec(
    xy: np.ndarray,
    index: int,
    *,
    color: dict[str, Any],
    selection: list[int],
    camera: tuple[float, float, float],
    title: str,
) -> dict:
    """Vega-Lite spec of depth ``index`` of ``xy`` ([depth, N, 2]) as the view draws it.

    ``color`` is the view's colouring (``kind`` "none" | "category" | "continuous", ``values``,
    ``legend``, ``title``); points outside the zoomed square are left out.
    """
    n = xy.shape[1]
    cx, cy, half = _fit(xy)
    zoom, pan_x, pan_y = camera
    scale = MARGIN / half  # data -> world units
    # world w is drawn at w * zoom + pan; the square shows view units [-1, 1]
    x_domain = [cx + (-1 - pan_x) / zoom / scale, cx + (1 - pan_x) / zoom / scale]
    y_domain = [cy + (-1 - pan_y) / zoom / scale, cy + (1 - pan_y) / zoom / scale]
    points = xy[index]
    frame = pd.DataFrame({"x": points[:, 0], "y": points[:, 1], "point": np.arange(n)})
    frame["selected"] = False
    frame.loc[selection, "selected"] = True
    encoding: dict[str, Any] = {
        "x": {"field": "x", "type": "quantitative", "axis": None,
              "scale": {"domain": x_domain, "nice": False, "zero": False}},
        "y": {"field": "y", "type": "quantitative", "axis": None,
              "scale": {"domain": y_domain, "nice": False, "zero": False}},
        "order": {"field": "selected", "type": "quantitative"},
    }  # fmt: skip
    kind, values = color["kind"], color["values"]
    mark: dict[str, Any] = {"type": "circle", "size": float(np.pi * (point_size(n) / 2) ** 2)}
    if kind == "category":
        names = list(color["legend"])
        codes = values.astype(int)
        frame["colour"] = [names[c] if 0 <= c < len(names) else "?" for c in codes]
        encoding["color"] = {
            "field": "colour",
            "type": "nominal",
            "title": color["title"] or None,
            "scale": {"domain": names, "range": [CATEGORICAL[i % 20] for i in range(len(names))]},
        }
    elif kind == "continuous":
        frame["colour"] = values
        encoding["color"] = {
            "field": "colour",
            "type": "quantitative",
            "title": color["title"] or None,
            "scale": {"scheme": "viridis"},
        }
    else:
        mark["color"] = NEUTRAL
    alpha = point_alpha(n)
    if selection:
        encoding["opacity"] = {"condition": {"test": "datum.selected", "value": alpha},
                               "value": alpha * 0.25}  # fmt: skip
    else:
        mark["opacity"] = alpha
    inside = frame.x.between(*x_domain) & frame.y.between(*y_domain)
    frame = frame[inside & np.isfinite(frame.x) & np.isfinite(frame.y)]
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title,
        "width": SIDE_PX,
        "height": SIDE_PX,
        "data": {"values": frame.to_dict("records")},
        "mark": mark,
        "encoding": encoding,
        "config": {"view": {"stroke": "#ddd"}},
    }
