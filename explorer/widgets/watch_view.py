"""The live chart of :func:`explorer.watch`: each metric against training step, a line per depth."""

from __future__ import annotations

import threading
import time
from typing import Any

import altair as alt

from explorer.widgets.charts import CONFIG, ChartWidget, records

__all__ = ["WatchView"]

_MIN_INTERVAL = 0.5  # seconds between redraws while training streams results


def watch_spec(frame) -> dict:
    """Vega-Lite spec: one small chart per metric, value against step, colour = depth."""
    chart = (
        alt.Chart(alt.Data(values=records(frame)))
        .mark_line(point=True)
        .encode(
            x=alt.X("step:Q", title="step"),
            y=alt.Y("value:Q", title=None, scale=alt.Scale(zero=False)),
            color=alt.Color("depth:O", scale=alt.Scale(scheme="viridis")),
            tooltip=["step:Q", "depth:O", "metric:N", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(width=220, height=150)
        .facet(facet=alt.Facet("metric:N", title=None), columns=4)
        .resolve_scale(y="independent")
    )
    return chart.to_dict() | {"config": CONFIG}


class WatchView:
    """Draws a :class:`explorer.watch.Watch`'s frame; :meth:`refresh` redraws (throttled)."""

    def __init__(self, watch: Any):
        self._watch = watch
        self._lock = threading.Lock()
        self._last = 0.0
        self.widget = ChartWidget(alt.Chart(alt.Data(values=[])).mark_point())
        self.refresh(force=True)

    def refresh(self, force: bool = False) -> None:
        with self._lock:
            now = time.monotonic()
            if not force and now - self._last < _MIN_INTERVAL:
                return
            self._last = now
            self.widget.show_spec(watch_spec(self._watch.frame))
