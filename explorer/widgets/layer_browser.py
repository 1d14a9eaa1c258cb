"""The layer table with a depth slider: which weight matrices sit at each depth of a checkpoint.

``LayerBrowser`` is the plain-Python facade (testable without a browser); it builds its
``LayerBrowserWidget`` on first display. The widget holds traits and draws; it computes nothing.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import Any

import anywidget
import traitlets

from explorer.errors import BundleMissingError

STATIC = Path(__file__).resolve().parent.parent / "static"
ESM = STATIC / "layer_browser.js"
CSS = STATIC / "layer_browser.css"
COLUMNS = ("address", "depth", "role", "name", "shape", "params")


_missing = [path.name for path in (ESM, CSS) if not path.is_file()]
if _missing:
    raise BundleMissingError(
        f"{', '.join(_missing)} not found in {STATIC}: the widgets' JavaScript is not built. "
        "Run scripts/setup (it builds widgets_js/ with npm), or "
        "`cd widgets_js && npm install && npm run build`."
    )


class LayerBrowserWidget(anywidget.AnyWidget):
    """Front end of :class:`LayerBrowser`: a depth slider, bars of parameters, the layer table."""

    _esm = ESM
    _css = CSS
    depth = traitlets.Int(0).tag(sync=True)
    n_depths = traitlets.Int(1).tag(sync=True)
    layers = traitlets.List(traitlets.Dict()).tag(sync=True)
    depth_labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)


def format_count(n: int) -> str:
    """``1834000 -> "1.8M"``, the same rule as the table's ``formatCount`` in JS."""
    for unit, scale in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return str(n)


def _rows(frame: Any) -> list[dict[str, Any]]:
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"checkpoint.layers lacks the columns {missing}; it needs {list(COLUMNS)}")
    return [
        {
            "address": str(r.address),
            "depth": int(r.depth),
            "role": str(r.role),
            "name": str(r.name),
            "shape": "×".join(str(d) for d in r.shape),
            "params": int(r.params),
        }
        for r in frame.itertuples(index=False)
    ]


def _depth_labels(rows: list[dict[str, Any]], n_depths: int) -> list[str]:
    labels = []
    for depth in range(n_depths):
        here = [r for r in rows if r["depth"] == depth]
        if not here:
            labels.append(f"blocks.{depth} — no weight matrices")
            continue
        noun = "matrix" if len(here) == 1 else "matrices"
        params = format_count(sum(r["params"] for r in here))
        labels.append(f"blocks.{depth} — {len(here)} {noun}, {params} params")
    return labels


class LayerBrowser:
    """Browse a checkpoint's weight matrices depth by depth.

    Display it in a notebook to get the slider and the table; ``depth`` follows the slider.

    Parameters
    ----------
    checkpoint : Checkpoint
        Anything with a ``layers`` DataFrame (address, depth, role, name, shape, dtype, params)
        and ``n_blocks``; depths run 0 (embeddings) .. n_blocks + 1 (head).
    depth : int, default 0
        The depth shown first.
    title : str, optional
        A heading; the checkpoint's ``name`` when it has one.

    Examples
    --------
    >>> browser = LayerBrowser(ex.load(model)).set_depth(2)  # doctest: +SKIP
    >>> browser  # doctest: +SKIP
    """

    def __init__(self, checkpoint: Any, *, depth: int = 0, title: str | None = None):
        self._layers = _rows(checkpoint.layers)
        self._n_depths = int(checkpoint.n_blocks) + 2
        self._depth_labels = _depth_labels(self._layers, self._n_depths)
        self._title = getattr(checkpoint, "name", "") if title is None else title
        self._depth = self._checked(depth)
        self._widget: LayerBrowserWidget | None = None

    def _checked(self, depth: int) -> int:
        if isinstance(depth, bool):
            raise TypeError("depth must be an int, not a bool")
        depth = operator.index(depth)
        if not 0 <= depth < self.n_depths:
            raise ValueError(f"depth {depth} is outside 0..{self.n_depths - 1}")
        return depth

    @property
    def widget(self) -> LayerBrowserWidget:
        """The anywidget behind this browser, built on first use."""
        if self._widget is None:
            self._widget = LayerBrowserWidget(
                depth=self._depth,
                n_depths=self._n_depths,
                layers=self._layers,
                depth_labels=self._depth_labels,
                title=self._title,
            )
            self._widget.observe(self._on_widget_depth, "depth")
        return self._widget

    def _on_widget_depth(self, change: dict[str, Any]) -> None:
        self._depth = change["new"]

    @property
    def depth(self) -> int:
        """The depth under the cursor, 0 .. n_depths - 1; moved by the slider or by assignment."""
        return self._depth

    @depth.setter
    def depth(self, depth: int) -> None:
        self._depth = self._checked(depth)
        if self._widget is not None:
            self._widget.depth = self._depth

    def set_depth(self, depth: int) -> LayerBrowser:
        """Move the cursor to ``depth`` and return ``self``, for chaining."""
        self.depth = depth
        return self

    @property
    def n_depths(self) -> int:
        """How many depths the slider covers: n_blocks + 2."""
        return self._n_depths

    @property
    def title(self) -> str:
        return self._title

    @property
    def layers(self) -> list[dict[str, Any]]:
        """The table's rows: address, depth, role, name, shape (as text), params."""
        return [dict(row) for row in self._layers]

    @property
    def depth_labels(self) -> list[str]:
        """One summary line per depth, as shown next to the slider."""
        return list(self._depth_labels)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)
