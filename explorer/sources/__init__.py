"""Opening checkpoints and addressing their layers on one depth axis."""

from explorer.sources.checkpoint import Checkpoint
from explorer.sources.families import LayerEntry, parse_address
from explorer.sources.load import load, pair
from explorer.sources.pairing import PairedLayers

__all__ = ["Checkpoint", "LayerEntry", "PairedLayers", "load", "pair", "parse_address"]
