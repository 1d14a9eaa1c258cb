"""The projection view: each depth's 2-D layout of the same points, scrubbed with a depth slider.

``ProjectionView`` is the plain-Python facade (testable without a browser); it builds its
``ProjectionViewWidget`` on first display. The layouts arrive computed (``ex.project``); the widget
only frames them in its viewport, animates between depths, and reports the lasso's indices.
Each depth is framed on its own so that the bulk of its points fills the view (a depth whose
cloud is small is not drawn as a dot): its points set the frame except far outliers (beyond 2.5
times the half side of the box of the 2nd-98th percentiles per axis, from its centre), which
are drawn as rings on the frame's edge, in their direction (``frame`` in
``widgets_js/src/scatter/geometry.ts``, :func:`explorer.widgets.projection_export.frame`). The
animation between depths moves each point from its place in one frame to its place in the next.
Views of more than 20,000 points whose frames miss 30 fps (software WebGL, a weak GPU, a million
points) draw a fixed random subset while they zoom, pan or animate, sized from the last frame
intervals (the first frame of a motion half of that, so that it answers the input sooner), and
every point once the motion settles (``widgets_js/src/scatter/detail.ts``). Two views can share
zoom and pan (``camera``) and the selection with :meth:`ProjectionView.link`, in the browser.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from explorer.errors import BundleMissingError

STATIC = Path(__file__).resolve().parent.parent / "static"
ESM = STATIC / "projection_view.js"
CSS = STATIC / "projection_view.css"

_missing = [path.name for path in (ESM, CSS) if not path.is_file()]
if _missing:
    raise BundleMissingError(
        f"{', '.join(_missing)} not found in {STATIC}: the widgets' JavaScript is not built. "
        "Run scripts/setup (it builds widgets_js/ with npm), or "
        "`cd widgets_js && npm install && npm run build`."
    )

DTYPES = {np.dtype("<f4"): "float32", np.dtype("<u4"): "uint32", np.dtype("<i4"): "int32"}


def array_payload(array: np.ndarray) -> dict[str, Any]:
    """``{view, dtype, shape}``: raw little-endian bytes that travel as a binary buffer.

    The front end reads it back with ``decode`` in ``widgets_js/src/codecs.ts``.
    """
    array = np.asarray(array)
    kind = {"f": "<f4", "u": "<u4", "i": "<i4", "b": "<u4"}.get(array.dtype.kind)
    if kind is None:
        raise TypeError(f"cannot send a {array.dtype} array; it needs a numeric dtype")
    data = np.ascontiguousarray(array, dtype=kind)
    return {
        "view": memoryview(data).cast("B"),
        "dtype": DTYPES[data.dtype],
        "shape": list(data.shape),
    }


def array_from_payload(payload: Mapping[str, Any]) -> np.ndarray:
    """The inverse of :func:`array_payload` (a copy)."""
    dtype = {name: dtype for dtype, name in DTYPES.items()}[payload["dtype"]]
    return np.frombuffer(bytes(payload["view"]), dtype=dtype).reshape(payload["shape"]).copy()


#: The camera that shows every point: zoom 1, no pan.
HOME = (1.0, 0.0, 0.0)
#: Zoom limits of the view (``widgets_js/src/scatter/geometry.ts``).
ZOOM_RANGE = (0.2, 500.0)


def _checked_camera(value: Any) -> tuple[float, float, float]:
    try:
        zoom, pan_x, pan_y = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"camera must be (zoom, pan_x, pan_y), got {value!r}") from None
    if not all(np.isfinite([zoom, pan_x, pan_y])):
        raise ValueError(f"camera values must be finite, got {value!r}")
    if not ZOOM_RANGE[0] <= zoom <= ZOOM_RANGE[1]:
        raise ValueError(f"zoom must be in {list(ZOOM_RANGE)}, got {zoom}")
    return zoom, pan_x, pan_y


class _Link:
    """Traits two views share in the browser (``ipywidgets.jslink``), connected once both views'
    widgets exist (they are built on first display)."""

    def __init__(self, a: ProjectionView, b: ProjectionView, names: tuple[str, ...]):
        self.a, self.b, self.names = a, b, names
        self.links: list[Any] = []

    def other(self, view: ProjectionView) -> ProjectionView:
        return self.b if view is self.a else self.a

    def connect(self) -> None:
        if self.links or self.a._widget is None or self.b._widget is None:
            return
        import ipywidgets

        self.links = [
            ipywidgets.jslink((self.a._widget, n), (self.b._widget, n)) for n in self.names
        ]

    def close(self) -> None:
        for link in self.links:
            link.close()
        self.links = []


class ProjectionViewWidget(anywidget.AnyWidget):
    """Front end of :class:`ProjectionView`: the WebGL scatter, depth scrubber and lasso."""

    _esm = ESM
    _css = CSS
    coords = traitlets.Dict().tag(sync=True)  # float32 [depth, N, 2] as {view, dtype, shape}
    depths = traitlets.List(traitlets.Int()).tag(sync=True)
    depth = traitlets.Int(0).tag(sync=True)
    n_depths = traitlets.Int(0).tag(sync=True)
    color = traitlets.Dict().tag(sync=True)  # float32 [N]: category codes or a metric; {} for none
    color_kind = traitlets.Enum(["none", "category", "continuous"], "none").tag(sync=True)
    color_title = traitlets.Unicode("").tag(sync=True)
    legend = traitlets.List(traitlets.Unicode()).tag(sync=True)
    label_codes = traitlets.Dict().tag(sync=True)  # uint32 [N] into label_names; {} for none
    label_names = traitlets.List(traitlets.Unicode()).tag(sync=True)
    texts = traitlets.List(traitlets.Unicode()).tag(sync=True)
    selection = traitlets.List(traitlets.Int()).tag(sync=True)
    # [zoom, pan_x, pan_y]: the camera of geometry.ts, sent once a frame while the user zooms
    camera = traitlets.List(traitlets.Float(), list(HOME), minlen=3, maxlen=3).tag(sync=True)
    title = traitlets.Unicode("").tag(sync=True)
    transition_ms = traitlets.Int(300).tag(sync=True)


def _layouts(coords: Any) -> tuple[list[int], np.ndarray]:
    """Depths in ascending order and their layouts stacked as float32 [depth, N, 2]."""
    mapping = getattr(coords, "coords", coords)
    if not isinstance(mapping, Mapping):
        raise TypeError(
            "coords must map depth -> (N, 2) array, or have such a mapping as .coords "
            f"(an explorer Projection); got {type(coords).__name__}"
        )
    if not mapping:
        raise ValueError(
            "coords is empty: no depth has a layout (is the projection still running?)"
        )
    depths = sorted(operator.index(d) for d in mapping)
    arrays = []
    for depth in depths:
        array = np.asarray(mapping[depth], dtype=np.float32)
        if array.ndim != 2 or array.shape[1] < 2:
            raise ValueError(f"coords[{depth}] has shape {array.shape}; it needs (N, 2)")
        if not np.isfinite(array[:, :2]).all():
            raise ValueError(f"coords[{depth}] holds NaN or infinite values")
        arrays.append(array[:, :2])
    sizes = {depth: len(a) for depth, a in zip(depths, arrays, strict=True)}
    if len(set(sizes.values())) > 1:
        raise ValueError(
            f"every depth must lay out the same points, but the number of points differs: {sizes}"
        )
    return depths, np.ascontiguousarray(np.stack(arrays))


def _categories(values: Any, n: int, what: str) -> tuple[np.ndarray, list[str]]:
    """Codes 0..k-1 per point and the k category names (sorted)."""
    values = np.asarray(values)
    if values.ndim != 1 or len(values) != n:
        raise ValueError(f"{what} has shape {values.shape}; it needs one value per point ({n})")
    names, codes = np.unique(
        values.astype(str) if values.dtype == object else values, return_inverse=True
    )
    return codes.astype(np.uint32), [str(name) for name in names]


def _texts(texts: Any, n: int) -> list[str]:
    if texts is None:
        return []
    if isinstance(texts, str) or not isinstance(texts, Sequence | np.ndarray):
        raise TypeError(f"texts must be a sequence of {n} strings, one per point")
    if len(texts) != n:
        raise ValueError(f"{len(texts)} texts for {n} points")
    return [str(t) for t in texts]


class ProjectionView:
    """Scrub through the 2-D layouts of the same points at each depth.

    Display it in a notebook: a WebGL scatter with a depth slider (play, step, arrow keys when the
    view has focus), zoom (wheel), pan (drag), hover text, and lasso selection (shift + drag, or
    the lasso button) whose point indices come back as ``selection``. Changing depth moves the
    points from the old layout to the new one over ``transition_ms``. Zoom and pan are
    ``camera``; :meth:`link` makes another view (a second checkpoint's) follow them and the
    selection.

    Parameters
    ----------
    coords : mapping of int -> (N, 2) array, or an object with such a ``.coords``
        The layouts, one per depth, all of the same N points (an :class:`explorer.Projection`
        works as is; its ``labels`` are used when ``labels`` is not given). Only the first two
        columns are drawn.
    labels : sequence of N values, optional
        A category per point (class, topic, ...): shown on hover and used for colour by default.
    texts : sequence of N str, optional
        What hovering a point shows (the input sentence, an image's file name, ...).
    depth : int, default the first depth
        The depth shown first; one of the keys of ``coords``.
    color_by : None, "label", or a sequence of N values, optional
        ``None`` colours by ``labels`` when given. Float values are a continuous metric (a
        colour ramp); anything else (ints, strings, bools) is categorical.
    title : str, optional
    transition_ms : int, default 300
        How long points take to move to a new depth's layout; 0 jumps at once.

    Examples
    --------
    >>> view = ProjectionView(ex.project(acts), texts=sentences)  # doctest: +SKIP
    >>> view  # doctest: +SKIP
    >>> view.selection  # the lasso's point indices  # doctest: +SKIP
    """

    def __init__(
        self,
        coords: Any,
        labels: Any = None,
        texts: Any = None,
        depth: int | None = None,
        color_by: Any = None,
        title: str | None = None,
        *,
        transition_ms: int = 300,
    ):
        self._depths, self._xy = _layouts(coords)
        self._n = self._xy.shape[1]
        if labels is None:
            labels = getattr(coords, "labels", None)
        self._labels: np.ndarray | None = None
        self._label_codes: np.ndarray | None = None
        self._label_names: list[str] = []
        if labels is not None:
            self._labels = np.asarray(labels)
            self._label_codes, self._label_names = _categories(labels, self._n, "labels")
        self._texts = _texts(texts, self._n)
        self._color = self._coloring(color_by)
        self._title = "" if title is None else str(title)
        self._transition_ms = self._checked_ms(transition_ms)
        self._depth = self._checked(self._depths[0] if depth is None else depth)
        self._selection: list[int] = []
        self._camera = HOME
        self._links: list[_Link] = []
        self._widget: ProjectionViewWidget | None = None

    # ---- validation ------------------------------------------------------------------------
    def _checked(self, depth: int) -> int:
        if isinstance(depth, bool):
            raise TypeError("depth must be an int, not a bool")
        depth = operator.index(depth)
        if depth not in self._depths:
            raise ValueError(f"depth {depth} has no layout; the depths are {self._depths}")
        return depth

    @staticmethod
    def _checked_ms(ms: int) -> int:
        ms = operator.index(ms)
        if ms < 0:
            raise ValueError(f"transition_ms must be >= 0, got {ms}")
        return ms

    def _checked_selection(self, indices: Any) -> list[int]:
        values = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if values.size == 0:
            return []
        if values.dtype == bool:
            if values.shape != (self._n,):
                raise ValueError(f"a boolean mask must have one entry per point ({self._n})")
            values = np.flatnonzero(values)
        elif values.dtype.kind not in "iu" or values.ndim != 1:
            raise TypeError("selection must be point indices (ints) or a boolean mask")
        bad = values[(values < 0) | (values >= self._n)]
        if bad.size:
            raise ValueError(f"point indices {bad[:5].tolist()} are outside 0..{self._n - 1}")
        return sorted({int(i) for i in values})

    def _coloring(self, color_by: Any) -> dict[str, Any]:
        if color_by is None:
            if self._label_codes is None:
                return {"kind": "none", "values": None, "legend": [], "title": ""}
            color_by = "label"
        if isinstance(color_by, str):
            if color_by not in ("label", "labels"):
                raise ValueError(f"color_by={color_by!r}: give 'label' or one value per point")
            if self._label_codes is None:
                raise ValueError("color_by='label' needs labels")
            return {
                "kind": "category",
                "values": self._label_codes.astype(np.float32),
                "legend": list(self._label_names),
                "title": "label",
            }
        values = np.asarray(color_by)
        if values.ndim != 1 or len(values) != self._n:
            raise ValueError(
                f"color_by has shape {values.shape}; it needs one value per point ({self._n})"
            )
        name = str(getattr(color_by, "name", "") or "")
        if values.dtype.kind == "f":
            finite = values[np.isfinite(values)]
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 0.0)
            return {
                "kind": "continuous",
                "values": values.astype(np.float32),
                "legend": [f"{lo:.3g}", f"{hi:.3g}"],
                "title": name,
            }
        codes, names = _categories(values, self._n, "color_by")
        return {
            "kind": "category",
            "values": codes.astype(np.float32),
            "legend": names,
            "title": name,
        }

    # ---- the widget ------------------------------------------------------------------------
    @property
    def widget(self) -> ProjectionViewWidget:
        """The anywidget behind this view, built on first use."""
        if self._widget is None:
            color = self._color
            self._widget = ProjectionViewWidget(
                coords=array_payload(self._xy),
                depths=self._depths,
                depth=self._depth,
                n_depths=len(self._depths),
                color={} if color["values"] is None else array_payload(color["values"]),
                color_kind=color["kind"],
                color_title=color["title"],
                legend=color["legend"],
                label_codes={} if self._label_codes is None else array_payload(self._label_codes),
                label_names=self._label_names,
                texts=self._texts,
                selection=self._selection,
                camera=list(self._camera),
                title=self._title,
                transition_ms=self._transition_ms,
            )
            self._widget.observe(self._on_widget_depth, "depth")
            self._widget.observe(self._on_widget_selection, "selection")
            self._widget.observe(self._on_widget_camera, "camera")
            for link in self._links:
                link.connect()
        return self._widget

    def _on_widget_depth(self, change: dict[str, Any]) -> None:
        if change["new"] in self._depths:
            self._depth = change["new"]

    def _on_widget_selection(self, change: dict[str, Any]) -> None:
        self._selection = sorted({int(i) for i in change["new"] if 0 <= int(i) < self._n})

    def _on_widget_camera(self, change: dict[str, Any]) -> None:
        try:
            self._camera = _checked_camera(change["new"])
        except ValueError:
            pass  # the browser clamps; keep the last good camera

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)

    # ---- state -----------------------------------------------------------------------------
    @property
    def depth(self) -> int:
        """The depth shown; moved by the slider, the arrow keys, play, or by assignment."""
        return self._depth

    @depth.setter
    def depth(self, depth: int) -> None:
        self._depth = self._checked(depth)
        if self._widget is not None:
            self._widget.depth = self._depth

    def set_depth(self, depth: int) -> ProjectionView:
        """Move to ``depth`` and return ``self``, for chaining."""
        self.depth = depth
        return self

    @property
    def depths(self) -> list[int]:
        """The depths that have a layout, ascending."""
        return list(self._depths)

    @property
    def n_depths(self) -> int:
        return len(self._depths)

    @property
    def n_points(self) -> int:
        return self._n

    @property
    def selection(self) -> list[int]:
        """Indices of the selected points, ascending; set by the lasso or by assignment."""
        return list(self._selection)

    @selection.setter
    def selection(self, indices: Any) -> None:
        self._set("selection", self._checked_selection(indices))

    def set_selection(self, indices: Any) -> ProjectionView:
        """Select points by index (or a boolean mask) and return ``self``."""
        self.selection = indices
        return self

    def clear_selection(self) -> ProjectionView:
        self.selection = []
        return self

    @property
    def camera(self) -> tuple[float, float, float]:
        """Zoom and pan, ``(zoom, pan_x, pan_y)``: each depth's layout is framed in the square
        ``[-1, 1]^2`` (see the module's docstring) and a point ``w`` of it is drawn at
        ``w * zoom + pan``, so ``(1, 0, 0)`` shows every point (far outliers on the edge). Moved by the wheel, dragging,
        "reset view", by assignment, and by a linked view (:meth:`link`)."""
        return self._camera

    @camera.setter
    def camera(self, value: Any) -> None:
        self._set("camera", _checked_camera(value))

    def reset_view(self) -> ProjectionView:
        """Show every point again (zoom 1, no pan) and return ``self``."""
        self.camera = HOME
        return self

    def _set(self, name: str, value: Any, seen: set[int] | None = None) -> None:
        """Set camera or selection here and on the views linked for it (in Python too, so that
        linked views agree before any browser shows them)."""
        seen = set() if seen is None else seen
        seen.add(id(self))
        setattr(self, f"_{name}", value)
        if self._widget is not None:
            setattr(self._widget, name, list(value))
        for link in self._links:
            other = link.other(self)
            if name in link.names and id(other) not in seen:
                other._set(name, value, seen)

    def link(
        self, other: ProjectionView, *, camera: bool = True, selection: bool = True
    ) -> ProjectionView:
        """Share zoom and pan (``camera``) and the selection with ``other``, both ways; returns
        ``self``.

        The views follow each other in the browser (``ipywidgets.jslink``): the other view moves
        with every frame of a zoom or pan, also while the kernel is busy. Both start from this
        view's camera and selection. The camera is relative to each view's own frame of each
        depth, so it shows about the same region when the layouts are aligned
        (``ex.project_pair`` aligns the second checkpoint's to the first's). Selections are point
        indices: linking them needs the same points in both views.
        """
        if not isinstance(other, ProjectionView):
            raise TypeError(f"can only link to another ProjectionView, got {type(other).__name__}")
        if other is self:
            raise ValueError("a view cannot be linked to itself")
        names = tuple(n for n, on in (("camera", camera), ("selection", selection)) if on)
        if not names:
            raise ValueError("nothing to link: camera and selection are both False")
        if selection and other.n_points != self._n:
            raise ValueError(
                f"cannot link selections of {self._n} and {other.n_points} points: the indices "
                "would name different points (link(other, selection=False) shares the zoom only)"
            )
        link = _Link(self, other, names)
        self._links.append(link)
        other._links.append(link)
        for name in names:
            other._set(name, getattr(self, f"_{name}"), {id(self)})
        link.connect()
        return self

    def close(self) -> None:
        """Close the widget and its links (its comms); the view can be displayed again."""
        for link in self._links:
            link.close()
            link.other(self)._links.remove(link)
        self._links = []
        if self._widget is not None:
            self._widget.close()
            self._widget = None

    @property
    def transition_ms(self) -> int:
        return self._transition_ms

    @transition_ms.setter
    def transition_ms(self, ms: int) -> None:
        self._transition_ms = self._checked_ms(ms)
        if self._widget is not None:
            self._widget.transition_ms = self._transition_ms

    @property
    def title(self) -> str:
        return self._title

    def coords(self, depth: int | None = None) -> np.ndarray:
        """The (N, 2) float32 layout at ``depth`` (the current one by default), as drawn."""
        return self._xy[
            self._depths.index(self._checked(self.depth if depth is None else depth))
        ].copy()

    def spec(self, depth: int | None = None) -> dict:
        """Vega-Lite spec of the picture at ``depth`` (the current one by default), drawn as the
        view draws it: the same zoom and pan, colours, point size and selection."""
        from explorer.widgets.projection_export import projection_spec

        depth = self.depth if depth is None else self._checked(depth)
        return projection_spec(
            self._xy,
            self._depths.index(depth),
            color=self._color,
            selection=self._selection,
            camera=self._camera,
            title=f"{self._title} · depth {depth}" if self._title else f"depth {depth}",
        )

    def save(self, path, depth: int | None = None, **kwargs):
        """Export the picture at ``depth`` as PNG/SVG/PDF/HTML/JSON (by the suffix; images need
        vl-convert-python; ``scale=`` sets a PNG's pixels per CSS pixel). Every point is drawn,
        so a million points take a while (about 8 s per 100k for a PNG)."""
        from explorer.widgets.charts import save_spec

        return save_spec(self.spec(depth), path, **kwargs)

    @property
    def data(self):
        """What is shown, tidy: one row per point at the current depth.

        Columns: depth, point, x, y, label (None without labels), selected, and text when given.
        """
        import pandas as pd

        xy = self._xy[self._depths.index(self._depth)]
        selected = np.zeros(self._n, dtype=bool)
        selected[self._selection] = True
        frame = pd.DataFrame(
            {
                "depth": np.full(self._n, self._depth),
                "point": np.arange(self._n),
                "x": xy[:, 0],
                "y": xy[:, 1],
                "label": self._labels if self._labels is not None else [None] * self._n,
                "selected": selected,
            }
        )
        if self._texts:
            frame["text"] = self._texts
        return frame
