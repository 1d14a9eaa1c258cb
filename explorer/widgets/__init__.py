"""Jupyter widgets: each view draws results it is given and computes nothing itself."""

from explorer.widgets.layer_browser import LayerBrowser, LayerBrowserWidget
from explorer.widgets.projection_view import ProjectionView, ProjectionViewWidget

__all__ = ["LayerBrowser", "LayerBrowserWidget", "ProjectionView", "ProjectionViewWidget"]
