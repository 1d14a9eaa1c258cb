"""explorer: look inside neural networks, layer by layer, in Jupyter.

>>> import explorer as ex
>>> ck = ex.load(model_or_path)        # a Checkpoint; ck.layers is the layer table
>>> acts = ex.capture(ck, probe)       # hidden states per depth
"""

from explorer.activations import Activations
from explorer.capture import capture
from explorer.errors import DeviceError, ExplorerError, LayerError, ProbeError, SourceError
from explorer.probe import Probe
from explorer.sources import Checkpoint, PairedLayers, load, pair

__version__ = "0.1.0"

__all__ = [
    "Activations",
    "Checkpoint",
    "DeviceError",
    "ExplorerError",
    "LayerError",
    "PairedLayers",
    "Probe",
    "ProbeError",
    "SourceError",
    "capture",
    "load",
    "pair",
]
