"""Errors explorer raises: each says what was wrong and what to do about it."""

from __future__ import annotations


class ExplorerError(Exception):
    """Base class of every error explorer raises on purpose."""


class SourceError(ExplorerError, ValueError):
    """A checkpoint could not be opened or read (missing, corrupt, unknown or unsafe format)."""


class LayerError(ExplorerError, KeyError):
    """A layer address that the checkpoint does not have, or a weight that cannot be used."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ProbeError(ExplorerError, ValueError):
    """A probe set that cannot be run through the model (empty, wrong shape, wrong type)."""


class DeviceError(ExplorerError, RuntimeError):
    """A device that is not available (for example CUDA requested on a machine without it)."""


class BundleMissingError(ExplorerError, FileNotFoundError):
    """The widgets' JavaScript bundle has not been built (run scripts/setup)."""


class ArgumentError(ExplorerError, ValueError):
    """An argument outside its valid range; the message names the argument, its value and the range."""


class DataError(ExplorerError, ValueError):
    """Data an operation cannot use as given (NaN/Inf, constant, too few points, too large for memory)."""


class MissingDependencyError(ExplorerError, ImportError):
    """An optional library that the request needs is not installed (the message says what to
    pip install)."""


class MemoryLimitError(ExplorerError, MemoryError):
    """An operation that needs (or ran out of) more memory than there is; says what to shrink."""
