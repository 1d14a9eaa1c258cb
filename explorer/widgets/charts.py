"""Shared pieces of the chart views: an offline, theme-following ``alt.JupyterChart``, the
JupyterLab colours, the depth cursor, and export through vl-convert.

Offline: altair's ``JupyterChart`` imports vega-embed from a CDN. ``enable_offline()`` instead
bundles altair's front end with the vega-embed, Vega and Vega-Lite that ship inside
``vl-convert-python`` (``vl_convert.javascript_bundle``, no network). :func:`offline_esm` does the
same with a small theme shim around altair's ``render`` and caches the bundle on disk (building it
takes seconds), so :class:`ChartWidget` never asks the network for anything.

Shared: the bundle (~900 KB) travels to the browser once per kernel, in one hidden
:class:`VegaLibrary` model. Each chart's own front end is a few lines (``_LOADER``) that import the
library's code once per page (cached by the library model's id) and hand it the chart. Before,
every chart carried the whole bundle in its state: a dashboard sent and saved it five times.

Theme: specs are built with colours written as ``"var(--jp-ui-font-color1, #000000)"``. The shim
resolves each such string against JupyterLab's CSS variables at the widget's element (the
fallback outside JupyterLab) and draws again when the theme changes; the background is
transparent. :func:`resolve_colours` swaps in the fallbacks (light theme) for export.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import re
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import altair as alt
import anywidget
import traitlets
from ipywidgets import widget_serialization

__all__ = [
    "ACCENT",
    "BORDER",
    "CONFIG",
    "FG1",
    "FG2",
    "FG3",
    "ChartView",
    "ChartWidget",
    "VegaLibrary",
    "offline_esm",
    "records",
    "resolve_colours",
    "stack_specs",
    "save_spec",
    "theme_colour",
]


def theme_colour(variable: str, fallback: str) -> str:
    """``"var(--jp-..., fallback)"``: resolved by the front end, the fallback on export."""
    return f"var({variable}, {fallback})"


FG1 = theme_colour("--jp-ui-font-color1", "#212121")
FG2 = theme_colour("--jp-ui-font-color2", "#616161")
FG3 = theme_colour("--jp-ui-font-color3", "#9e9e9e")
BORDER = theme_colour("--jp-border-color2", "#e0e0e0")
ACCENT = theme_colour("--jp-brand-color1", "#1976d2")
WARN = theme_colour("--jp-warn-color1", "#f57c00")
FONT = theme_colour("--jp-ui-font-family", "sans-serif")
#: categorical colours readable on white and on JupyterLab Dark's #111
CATEGORY = "tableau10"
#: sequential scheme for heatmaps, readable on both themes
SEQUENTIAL = "viridis"

CONFIG: dict[str, Any] = {
    "background": "transparent",
    "font": FONT,
    "view": {"stroke": BORDER},
    "axis": {
        "labelColor": FG2,
        "titleColor": FG1,
        "gridColor": BORDER,
        "domainColor": FG3,
        "tickColor": FG3,
        "titleFontWeight": "normal",
    },
    "legend": {
        "labelColor": FG2,
        "titleColor": FG1,
        "titleFontWeight": "normal",
        "symbolFillColor": FG2,
        "symbolStrokeColor": FG2,
    },
    "header": {"labelColor": FG1, "titleColor": FG1},
    "title": {"color": FG1, "subtitleColor": FG2, "fontWeight": "normal", "anchor": "start"},
    "text": {"color": FG1},
    "range": {"category": {"scheme": CATEGORY}},
}

_VAR = re.compile(r"^var\((--[\w-]+)\s*,\s*(.+)\)$")

# Wraps altair's render: a model proxy whose spec has var(--...) strings resolved against the
# element's CSS variables, and a re-draw when JupyterLab switches theme.
_SHIM = r"""
function explorerResolve(value, style) {
  if (typeof value === "string") {
    const m = /^var\((--[\w-]+)\s*,\s*(.+)\)$/.exec(value);
    if (!m) return value;
    const got = style.getPropertyValue(m[1]).trim();
    return got || m[2].trim();
  }
  if (Array.isArray(value)) return value.map((v) => explorerResolve(v, style));
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = explorerResolve(v, style);
    return out;
  }
  return value;
}

function explorerPalette(el) {
  const style = getComputedStyle(el);
  return ["--jp-ui-font-color1", "--jp-layout-color0", "--jp-brand-color1"]
    .map((name) => style.getPropertyValue(name).trim()).join("|");
}

async function explorerRender({ model, el }) {
  const redraws = new Set();
  const proxy = {
    get(name) {
      const value = model.get(name);
      if (name === "spec" && value) {
        // a redraw starts from the params' current values, not from those the spec was built with
        const current = model.get("_params") ?? {};
        const spec = { ...value };
        if (Array.isArray(value.params)) {
          spec.params = value.params.map((p) =>
            !p.select && current[p.name] != null ? { ...p, value: current[p.name] } : p);
        }
        return explorerResolve(spec, getComputedStyle(el));
      }
      return value;
    },
    set: (...args) => model.set(...args),
    save_changes: () => model.save_changes(),
    send: (...args) => model.send(...args),
    on(event, callback) {
      if (event === "change:spec") redraws.add(callback);
      return model.on(event, callback);
    },
    off: (...args) => model.off(...args),
    get widget_manager() { return model.widget_manager; },
  };
  el.classList.add("explorer-chart");
  let palette = explorerPalette(el);
  const timers = [];
  const check = () => {
    const now = explorerPalette(el);
    if (now !== palette) {
      palette = now;
      for (const redraw of redraws) redraw();
    }
  };
  // JupyterLab flips body attributes and loads the theme's CSS: look again until it has landed.
  const observer = new MutationObserver(() => {
    for (const ms of [0, 50, 200, 600, 1500]) timers.push(setTimeout(check, ms));
  });
  observer.observe(document.body, { attributes: true });
  await render({ model: proxy, el });
  return () => {
    observer.disconnect();
    timers.forEach(clearTimeout);
  };
}

export default { render: explorerRender };
"""


def _altair_source() -> str:
    from altair.jupyter.jupyter_chart import load_js_src

    lines = load_js_src().split("\n")
    while lines and (not lines[0].strip() or lines[0].startswith(("import", "//"))):
        lines.pop(0)
    body = "\n".join(lines)
    tail = "export default { render }"
    if tail not in body:
        raise RuntimeError(
            "altair's JupyterChart front end changed: no `export default { render }`"
        )
    return body.replace(tail, "") + _SHIM


def _bundle_dir() -> Path:
    from explorer.cache import cache_root

    return cache_root() / "widgets"


_ESM: str | None = None


def offline_esm() -> str:
    """altair's JupyterChart front end with the theme shim, bundled with vega-embed, Vega and
    Vega-Lite from vl-convert: no network at runtime. Cached in memory and on disk (keyed by the
    altair and vl-convert versions and the shim)."""
    global _ESM
    if _ESM is not None:
        return _ESM
    try:
        import vl_convert as vlc
    except ImportError as err:
        raise ImportError(
            "explorer's charts render offline with the Vega libraries of vl-convert-python: "
            "pip install vl-convert-python"
        ) from err
    from altair.utils._importers import vl_version_for_vl_convert

    source = _altair_source()
    vl_version = vl_version_for_vl_convert()
    tag = f"{alt.__version__}|{vlc.__version__}|{vl_version}|{source}"
    path = _bundle_dir() / f"jupyterchart-{hashlib.sha256(tag.encode()).hexdigest()[:16]}.js"
    if path.is_file():
        _ESM = path.read_text()
        return _ESM
    esm = vlc.javascript_bundle(source, vl_version=vl_version)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(esm)
        tmp.replace(path)
    except OSError:  # a read-only cache only costs the rebuild next time
        pass
    _ESM = esm
    return esm


class VegaLibrary(anywidget.AnyWidget):
    """The offline chart bundle of :func:`offline_esm`, sent to the browser once per kernel and
    shared by every :class:`ChartWidget` (never displayed itself)."""

    _esm = "export default {};"
    code = traitlets.Unicode().tag(sync=True)


_LIBRARY: VegaLibrary | None = None


def vega_library() -> VegaLibrary:
    """The kernel's :class:`VegaLibrary` (made again if it was closed)."""
    global _LIBRARY
    if _LIBRARY is None or _LIBRARY.comm is None:
        _LIBRARY = VegaLibrary(code=offline_esm())
    return _LIBRARY


# A chart's front end: the library's code, imported once per page and library, renders it.
_LOADER = """
const libraries = (globalThis.__explorerVegaLibraries ??= new Map());

function library(model) {
  const ref = String(model.get("library") ?? "");
  const id = ref.replace(/^IPY_MODEL_/, "");
  if (!id) return Promise.reject(new Error("explorer chart: no Vega library model"));
  if (!libraries.has(id)) {
    const loaded = model.widget_manager.get_model(id).then(async (lib) => {
      const url = URL.createObjectURL(new Blob([lib.get("code")], { type: "text/javascript" }));
      try {
        return await import(url);
      } finally {
        URL.revokeObjectURL(url);
      }
    });
    loaded.catch(() => libraries.delete(id)); // try again on the next chart
    libraries.set(id, loaded);
  }
  return libraries.get(id);
}

export default {
  async render({ model, el }) {
    const lib = await library(model);
    return lib.default.render({ model, el });
  },
};
"""


class ChartWidget(alt.JupyterChart):
    """``alt.JupyterChart`` drawn by the offline bundle of :func:`offline_esm` (shared through
    :class:`VegaLibrary`), following the JupyterLab theme. ``params`` and ``selections`` work as
    in altair."""

    _esm = _LOADER
    _css = (
        ".explorer-chart .vega-embed { overflow: visible; } .explorer-chart { min-height: 40px; }"
    )
    library = traitlets.Instance(VegaLibrary, allow_none=True).tag(
        sync=True, **widget_serialization
    )

    def __init__(self, chart: alt.TopLevelMixin, **kwargs: Any):
        kwargs.setdefault("embed_options", {"actions": False, "renderer": "svg"})
        kwargs.setdefault("library", vega_library())
        super().__init__(chart, **kwargs)

    def show_spec(self, spec: dict, values: Mapping[str, Any] | None = None) -> None:
        """Draw a new spec dict (no altair validation: fast), keeping the current params."""
        current = dict(self._params)
        current.update(values or {})
        self.spec = with_param_values(spec, current)


def with_param_values(spec: dict, values: Mapping[str, Any]) -> dict:
    """A copy of ``spec`` whose top-level variable params start at ``values``."""
    spec = dict(spec)
    params = []
    for p in spec.get("params", []):
        if "select" not in p and p.get("name") in values and values[p["name"]] is not None:
            p = dict(p, value=values[p["name"]])
        params.append(p)
    if params:
        spec["params"] = params
    return spec


def records(frame) -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON-safe dicts (numpy scalars to Python, NaN to null)."""
    return json.loads(frame.to_json(orient="records", double_precision=6))


def picked(selection: Mapping[str, Any] | None, field: str) -> Any:
    """The value of ``field`` in the first point of a Vega-Lite point-selection state as
    ``JupyterChart._vl_selections`` holds it (``None`` when nothing is picked)."""
    if not selection:
        return None
    value = selection.get("value")
    if isinstance(value, Mapping) and value.get(field):
        got = value[field]
        return got[0] if isinstance(got, list) else got
    for entry in selection.get("store") or []:
        fields = [f.get("field") for f in entry.get("fields", [])]
        if field in fields:
            return entry["values"][fields.index(field)]
    return None


def stack_specs(specs: list[dict], values: Mapping[str, Any]) -> dict:
    """One static spec with ``specs`` one above the other, for export: their datasets merged,
    selections dropped, and the variable params set to ``values``."""
    out: dict[str, Any] = {"vconcat": [], "datasets": {}, "spacing": 24}
    for spec in specs:
        spec = dict(spec)
        out["$schema"] = spec.pop("$schema", None)
        out["config"] = spec.pop("config", {})
        out["datasets"].update(spec.pop("datasets", {}))
        spec.pop("params", None)
        out["vconcat"].append(spec)
    out["params"] = [{"name": k, "value": v} for k, v in values.items()]
    return out


def resolve_colours(value: Any) -> Any:
    """``value`` (a spec) with every ``var(--name, fallback)`` replaced by its fallback."""
    if isinstance(value, str):
        m = _VAR.match(value)
        return m.group(2).strip() if m else value
    if isinstance(value, list):
        return [resolve_colours(v) for v in value]
    if isinstance(value, dict):
        return {k: resolve_colours(v) for k, v in value.items()}
    return value


def save_spec(spec: dict, path: str | os.PathLike, *, scale: float = 2.0) -> Path:
    """Write a Vega-Lite spec as ``.png``, ``.svg``, ``.pdf``, ``.html`` (self-contained) or
    ``.json``, in the light theme on white; images through vl-convert."""
    path = Path(path)
    spec = resolve_colours(spec)
    spec.setdefault("config", {})["background"] = "white"
    suffix = path.suffix.lower()
    if suffix == ".json":
        path.write_text(json.dumps(spec, indent=1))
        return path
    try:
        import vl_convert as vlc
    except ImportError as err:
        raise ImportError("saving images needs vl-convert-python: pip install it") from err
    from altair.utils._importers import vl_version_for_vl_convert

    v = vl_version_for_vl_convert()
    if suffix == ".png":
        path.write_bytes(vlc.vegalite_to_png(spec, vl_version=v, scale=scale))
    elif suffix == ".svg":
        path.write_text(vlc.vegalite_to_svg(spec, vl_version=v))
    elif suffix == ".pdf":
        path.write_bytes(vlc.vegalite_to_pdf(spec, vl_version=v))
    elif suffix == ".html":
        path.write_text(vlc.vegalite_to_html(spec, vl_version=v, bundle=True))
    else:
        raise ValueError(f"cannot save {path.name}: use .png, .svg, .pdf, .html or .json")
    return path


def checked_depth(depth: Any, depths: Iterable[int]) -> int:
    if isinstance(depth, bool):
        raise TypeError("depth must be an int, not a bool")
    depth = operator.index(depth)
    depths = sorted(set(depths))
    if depth not in depths:
        raise ValueError(f"depth {depth} is not among the depths shown: {depths}")
    return depth


class ChartView(traitlets.HasTraits):
    """Base of the chart views: a ``depth`` trait (the cursor), charts built lazily.

    ``cursor`` links ``depth`` both ways with another object's ``depth`` trait (a shared cursor
    widget or another view), so scrubbing one moves all. Subclasses set ``self._depths`` (the
    depths they show, ascending) before calling ``__init__``, and implement ``_build()``
    (returning the ipywidget) and ``_show_depth()``, and register their charts in
    ``self._charts`` so a click comes back through :meth:`_watch_pick`.
    """

    depth = traitlets.Int(0)

    def __init__(self, *, cursor: traitlets.HasTraits | None = None, **kwargs: Any):
        self._widget = None
        self._charts: dict[str, ChartWidget] = {}
        self._links: list[traitlets.link] = []
        super().__init__(**kwargs)
        if cursor is not None:
            self.link(cursor)

    def link(self, cursor: traitlets.HasTraits, name: str = "depth") -> ChartView:
        """Follow and move ``cursor``'s ``name`` trait (``cursor`` takes this view's depth)."""
        self._links.append(traitlets.link((self, "depth"), (cursor, name)))
        return self

    @property
    def depths(self) -> list[int]:
        """The depths this view shows, ascending."""
        return self._depths

    @traitlets.validate("depth")
    def _valid_depth(self, proposal):
        return checked_depth(proposal["value"], self.depths)

    @traitlets.observe("depth")
    def _depth_moved(self, change):
        if self._widget is not None:
            self._show_depth()

    @property
    def widget(self):
        """The ipywidget of this view, built on first use."""
        if self._widget is None:
            self._widget = self._build()
            self._show_depth()
        return self._widget

    def set_depth(self, depth: int) -> ChartView:
        self.depth = depth
        return self

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _build(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def _show_depth(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_params(self, **values: Any) -> None:
        for chart in self._charts.values():
            for name, value in values.items():
                if name in chart.params.trait_names() and getattr(chart.params, name) != value:
                    setattr(chart.params, name, value)

    def _watch_pick(
        self, chart: ChartWidget, fields: Mapping[str, Callable[[Any], None]], name: str = "pick"
    ) -> None:
        """On a click in ``chart`` (a point selection ``name``), call ``fields[f](value)``."""

        def on_change(change):
            state = change["new"].get(name)
            got = {f: picked(state, f) for f in fields}
            if any(v is None for v in got.values()):
                return
            with self.hold_trait_notifications():
                for f, v in got.items():
                    fields[f](v)

        chart.observe(on_change, "_vl_selections")


def pick(fields: list[str], name: str = "pick") -> alt.Parameter:
    """A click selecting one point by ``fields``; it clears when the pointer leaves the mark, so
    clicking the same point again (after the cursor moved elsewhere) is seen again."""
    return alt.selection_point(name=name, fields=fields, on="click", clear="mouseout", empty=False)
