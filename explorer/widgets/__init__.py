"""Jupyter widgets: each view draws results it is given and computes nothing itself."""

from explorer.widgets.layer_browser import LayerBrowser, LayerBrowserWidget

__all__ = ["LayerBrowser", "LayerBrowserWidget"]
