"""The dashboard's depth cursor: play/pause, step buttons, a slider, and what is at the depth.

``DepthScrubber`` is a row of ipywidgets (``Play`` linked to the slider in the browser, so playing
goes on while the kernel is busy; ``‹``/``›`` step through the depths that exist; the slider takes
the arrow keys when focused) with a line under it: the depth's address and a one-line summary of
the results computed so far (:func:`describe_depth`). It only formats numbers the kernel made.
"""

from __future__ import annotations

import html
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

__all__ = ["DepthScrubber", "describe_depth"]

#: Milliseconds a depth stays on screen while playing.
PLAY_INTERVAL_MS = 1200


def _range(values: pd.Series) -> str:
    lo, hi = float(values.min()), float(values.max())
    return f"{lo:.3g}" if lo == hi else f"{lo:.3g}–{hi:.3g}"


def _weights(spectra: pd.DataFrame, depth: int) -> str | None:
    rows = spectra[spectra["depth"] == depth]
    if rows.empty:
        return None
    if len(rows) == 1:
        row = rows.iloc[0]
        what = f"1 weight matrix ({row['role']} {int(row['m'])}×{int(row['n'])})"
    else:
        what = f"{len(rows)} weight matrices ({', '.join(dict.fromkeys(rows['role']))})"
    return f"{what}, effective rank {_range(rows['effective_rank'])}"


def _hidden(metrics: pd.DataFrame, depth: int, metric: str, names: Sequence[str]) -> str | None:
    rows = metrics[
        (metrics["depth"] == depth) & (metrics["subset"] == "all") & (metrics["metric"] == metric)
    ]
    if rows.empty:
        return None
    parts = []
    for name, group in rows.groupby("checkpoint", sort=False):
        row = group.iloc[0]
        ci = f" [{row['ci_low']:.3g}, {row['ci_high']:.3g}]" if pd.notna(row["ci_low"]) else ""
        parts.append(f"{row['value']:.3g}{ci}" + (f" {name}" if len(names) > 1 else ""))
    return f"{metric} " + ", ".join(parts)


def describe_depth(
    depth: int,
    *,
    spectra: pd.DataFrame | None = None,
    metrics: pd.DataFrame | None = None,
    comparison: pd.DataFrame | None = None,
    similarity: pd.DataFrame | None = None,
    metric: str = "twonn",
    names: Sequence[str] = (),
) -> str:
    """One line on what is at ``depth``, from whichever results exist yet.

    ``blocks.{depth}`` (its address, DESIGN.md's convention), then: the weight matrices there
    with the range of their effective ranks (``ex.spectra``); ``metric`` of the hidden states per
    checkpoint with its bootstrap interval (``ex.representation_metrics``, all points); the
    largest relative change ``||B - A||_F / ||A||_F`` of a matrix there (``Comparison.frame()``'s
    ``delta_rel``); and the CKA between the two checkpoints at this depth (``ex.similarity``).
    """
    parts = [f"blocks.{depth}"]
    if spectra is not None and not spectra.empty:
        parts.append(_weights(spectra, depth))
    if metrics is not None and not metrics.empty:
        parts.append(_hidden(metrics, depth, metric, names))
    if comparison is not None and not comparison.empty:
        rows = comparison[comparison["depth"] == depth]["delta_rel"].dropna()
        if not rows.empty:
            parts.append(f"‖B − A‖/‖A‖ up to {rows.max():.3g}")
    if similarity is not None and depth in similarity.index and depth in similarity.columns:
        parts.append(f"CKA {similarity.loc[depth, depth]:.3f}")
    return " · ".join(p for p in parts if p)


class DepthScrubber:
    """Play/pause, step buttons and a slider over ``depths``, and the line that describes the
    current depth (``describe(depth) -> str``). ``on_move(depth)`` is called when the user moves
    it; :meth:`show` moves it from Python without calling back."""

    def __init__(
        self,
        depths: Sequence[int],
        depth: int,
        on_move: Callable[[int], None],
        describe: Callable[[int], str],
    ):
        import ipywidgets as w

        self._depths = sorted(depths)
        self._on_move = on_move
        self._describe = describe
        self._quiet = 0
        lo, hi = self._depths[0], self._depths[-1]
        self.slider = w.IntSlider(
            value=depth,
            min=lo,
            max=hi,
            description="depth",
            continuous_update=True,
            style={"description_width": "initial"},
            layout=w.Layout(width="300px"),
        )
        self.slider.add_class("explorer-depth")
        self.play = w.Play(
            value=depth,
            min=lo,
            max=hi,
            interval=PLAY_INTERVAL_MS,
            show_repeat=False,
            layout=w.Layout(width="84px"),
        )
        self.play.add_class("explorer-depth-play")
        w.jslink((self.play, "value"), (self.slider, "value"))
        button = dict(layout=w.Layout(width="32px", padding="0"))
        self.previous = w.Button(description="‹", tooltip="previous depth", **button)
        self.next = w.Button(description="›", tooltip="next depth", **button)
        self.previous.add_class("explorer-depth-previous")
        self.next.add_class("explorer-depth-next")
        self.previous.on_click(lambda _: self.step(-1))
        self.next.on_click(lambda _: self.step(1))
        self.summary = w.HTML(layout=w.Layout(width="100%"))
        self.summary.add_class("explorer-depth-summary")
        self.slider.observe(self._moved, "value")
        self.controls = w.HBox(
            [self.play, self.previous, self.slider, self.next],
            layout=w.Layout(align_items="center"),
        )
        self.refresh()

    @property
    def depth(self) -> int:
        return self.slider.value

    def step(self, by: int) -> None:
        """Move to the next (``by > 0``) or previous existing depth, as a user would."""
        later = [d for d in self._depths if (d - self.depth) * by > 0]
        if later:
            self.slider.value = min(later, key=lambda d: abs(d - self.depth))

    def show(self, depth: int) -> None:
        """Move to ``depth`` from Python (no ``on_move``); the move describes it."""
        self._quiet += 1
        try:
            self.slider.value = depth
        finally:
            self._quiet -= 1

    def refresh(self) -> None:
        """Describe the current depth again (results have arrived)."""
        parts = self._describe(self.depth).split(" · ")  # each part wraps as a whole
        text = " · ".join(
            f"<span style='white-space: nowrap'>{html.escape(p)}</span>" for p in parts
        )
        self.summary.value = f"<div style='opacity: 0.8; font-size: 12px'>{text}</div>"

    def _moved(self, change: dict[str, Any]) -> None:
        if not self._quiet:
            self._on_move(change["new"])
        self.refresh()
