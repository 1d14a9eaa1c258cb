"""The projection view's picture as a Vega-Lite spec, for PNG/SVG/PDF export through vl-convert.

It draws what the WebGL view shows at one depth: the same frame of that depth (:func:`frame`,
``frame`` in ``widgets_js/src/scatter/geometry.ts``: the bulk of the points fills the square, far
outliers are pinned to its edge and drawn as rings), the same zoom and pan (``camera``), colours
(the categorical palette of ``widgets_js/src/scatter/colors.ts``, viridis for a metric), point
size and opacity, and a selection drawn on top of the dimmed rest. Axes are left out, as in the
view: the two coordinates of a projection have no units.
"""

from __future__ import annotations

import math
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
#: Share of the square the points that set the frame fill (``MARGIN`` in geometry.ts).
MARGIN = 0.92
#: Quantiles per axis that bound a depth's bulk (``BULK_QUANTILES``).
BULK_QUANTILES = (0.02, 0.98)
#: Far points, beyond this times the bulk's half side from its centre, do not set the frame.
FAR = 2.5
#: Points beyond this (view units, either axis) are pinned to the frame's edge (``EDGE``).
EDGE = 0.97
#: The quantiles are read on an evenly strided sample of at most this many points.
QUANTILE_SAMPLE = 20_000
#: Side of the exported square, in CSS pixels (before vl-convert's ``scale``).
SIDE_PX = 480


def point_size(n: int) -> float:
    """Point diameter in CSS pixels for ``n`` points (``pointSize`` in projection_view.ts)."""
    return min(8.0, max(1.5, 7 * (1000 / max(1, n)) ** 0.25))


def point_alpha(n: int) -> float:
    """Point opacity for ``n`` points (``pointAlpha`` in projection_view.ts)."""
    return float(min(0.9, max(0.35, 0.9 - 0.15 * np.log10(max(1, n) / 2000))))


def _fit(points: np.ndarray) -> tuple[float, float, float]:
    """Centre and scale that put every finite point in ``[-MARGIN, MARGIN]^2``."""
    finite = points[np.isfinite(points).all(-1)].astype(np.float64)
    if not len(finite):
        return 0.0, 0.0, 1.0
    lo, hi = finite.min(0), finite.max(0)
    half = float(max(hi - lo)) / 2
    return float(lo[0] + hi[0]) / 2, float(lo[1] + hi[1]) / 2, MARGIN / half if half > 0 else 1.0


def frame(points: np.ndarray) -> tuple[float, float, float]:
    """Centre and scale of one depth's frame, ``view = (xy - centre) * scale``.

    The points set it as in :func:`_fit`, except the far ones: those further from the centre of
    the bulk than ``FAR`` times its half side on either axis, the bulk being the box of the
    ``BULK_QUANTILES`` per axis (read on a strided sample of at most ``QUANTILE_SAMPLE`` points,
    the lower rank rounded down and the upper one up). :func:`to_view` pins them to the frame's
    edge. One scale for both axes.
    """
    stride = max(1, math.ceil(len(points) / QUANTILE_SAMPLE))
    sample = points[::stride].astype(np.float64)
    sample = sample[np.isfinite(sample).all(-1)]
    if len(sample) < 2:
        return _fit(points)
    xs, ys = np.sort(sample[:, 0]), np.sort(sample[:, 1])
    lo, hi = (q * (len(sample) - 1) for q in BULK_QUANTILES)
    x0, x1 = xs[math.floor(lo)], xs[math.ceil(hi)]
    y0, y1 = ys[math.floor(lo)], ys[math.ceil(hi)]
    reach = FAR * max(x1 - x0, y1 - y0) / 2
    if not reach > 0:
        return _fit(points)
    with np.errstate(invalid="ignore"):
        far = np.abs(points.astype(np.float64) - [(x0 + x1) / 2, (y0 + y1) / 2]).max(1) > reach
    return _fit(points[~far])


def to_view(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One depth's points in view units as the view draws them (:func:`frame`), and which of them
    are pinned to the frame's edge (moved along the ray from the centre onto ``EDGE``)."""
    cx, cy, scale = frame(points)
    world = (points.astype(np.float64) - [cx, cy]) * scale
    with np.errstate(invalid="ignore"):
        reach = np.abs(world).max(axis=1)
        pinned = reach > EDGE
    world[pinned] *= (EDGE / reach[pinned])[:, None]
    return world, pinned


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
    zoom, pan_x, pan_y = camera
    # a view point w is drawn at w * zoom + pan; the square shows [-1, 1]
    x_domain = [(-1 - pan_x) / zoom, (1 - pan_x) / zoom]
    y_domain = [(-1 - pan_y) / zoom, (1 - pan_y) / zoom]
    world, pinned = to_view(xy[index])
    frame = pd.DataFrame({"x": world[:, 0], "y": world[:, 1], "point": np.arange(n)})
    frame["pinned"] = pinned
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
    ring = {"type": "point", "filled": False, "strokeWidth": 1.5, "size": mark["size"] * 2.6}
    ring.update({k: mark[k] for k in ("color",) if k in mark})
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "title": title,
        "width": SIDE_PX,
        "height": SIDE_PX,
        "data": {"values": frame.to_dict("records")},
        "encoding": encoding,
        "layer": [
            {"mark": mark, "transform": [{"filter": "!datum.pinned"}]},
            # far outliers, pinned to the frame's edge: rings
            {"mark": ring, "transform": [{"filter": "datum.pinned"}]},
        ],
        "config": {"view": {"stroke": "#ddd"}},
    }
