"""Jupyter widgets: each view draws results it is given and computes nothing itself.

Views are imported on first use (``explorer.widgets.SpectrumView``), so that importing one does
not build every bundle.
"""

from importlib import import_module

_VIEWS = {
    "DimensionView": "dimension_view",
    "Explorer": "explorer_view",
    "LayerBrowser": "layer_browser",
    "LayerBrowserWidget": "layer_browser",
    "ProjectionView": "projection_view",
    "ProjectionViewWidget": "projection_view",
    "SimilarityView": "similarity_view",
    "SpectrumView": "spectrum_view",
    "SubspaceView": "subspace_view",
    "WatchView": "watch_view",
}

__all__ = sorted(_VIEWS)


def __getattr__(name: str):
    if name in _VIEWS:
        return getattr(import_module(f"explorer.widgets.{_VIEWS[name]}"), name)
    raise AttributeError(f"module 'explorer.widgets' has no attribute {name!r}")
