"""explorer: look inside neural networks, layer by layer, in Jupyter.

>>> import explorer as ex
>>> ck = ex.load(model_or_path)        # a Checkpoint; ck.layers is the layer table
>>> acts = ex.capture(ck, probe)       # hidden states per depth
"""

from explorer.activations import Activations
from explorer.audit import audit
from explorer.capture import capture
from explorer.compare import Comparison, compare
from explorer.errors import (
    BundleMissingError,
    DeviceError,
    ExplorerError,
    LayerError,
    ProbeError,
    SourceError,
)
from explorer.probe import Probe
from explorer.projection import Projection, ProjectionPair, project, project_pair
from explorer.representation import representation_metrics, size_curve_metrics
from explorer.similarity import similarity
from explorer.sources import Checkpoint, PairedLayers, load, pair
from explorer.spectra import spectra
from explorer.watch import watch

__version__ = "0.1.0"

_WIDGETS = (
    "DimensionView",
    "Explorer",
    "LayerBrowser",
    "ProjectionView",
    "SimilarityView",
    "SpectrumView",
    "SubspaceView",
)


def __getattr__(name: str):
    # widgets are imported on first use so that `import explorer` stays free of notebook packages
    if name in _WIDGETS:
        from explorer import widgets

        return getattr(widgets, name)
    raise AttributeError(f"module 'explorer' has no attribute {name!r}")


__all__ = [
    "Activations",
    "BundleMissingError",
    "Checkpoint",
    "Comparison",
    "DimensionView",
    "DeviceError",
    "Explorer",
    "ExplorerError",
    "LayerBrowser",
    "LayerError",
    "PairedLayers",
    "Projection",
    "ProjectionPair",
    "ProjectionView",
    "Probe",
    "ProbeError",
    "SimilarityView",
    "SourceError",
    "SpectrumView",
    "SubspaceView",
    "audit",
    "capture",
    "compare",
    "load",
    "project",
    "project_pair",
    "pair",
    "representation_metrics",
    "similarity",
    "size_curve_metrics",
    "spectra",
    "watch",
]
