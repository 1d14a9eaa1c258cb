"""The analysis kernel: pure math on tensors, CPU or GPU. Imports nothing of the notebook."""

from explorer.kernel.device import resolve_device

__all__ = ["resolve_device"]
