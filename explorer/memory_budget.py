"""How much memory an operation may use, and out-of-memory turned into an error that says what to do.

The budget is ``EXPLORER_MEMORY_BUDGET`` (bytes) when set, else what the device has free: the
host's ``MemAvailable`` (``/proc/meminfo``) or, on CUDA, ``torch.cuda.mem_get_info``. An operation
that can tell its footprint up front calls :func:`require` before any work, so an input larger
than memory is refused with the bytes it would need instead of being killed by the OOM killer.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import torch

from explorer.errors import MemoryLimitError

__all__ = ["available_bytes", "gib", "out_of_memory", "require"]


def gib(n: float) -> str:
    return f"{n / 1024**3:.2f} GiB"


def available_bytes(device: torch.device) -> int:
    """The budget in bytes on ``device`` (module docstring)."""
    env = os.environ.get("EXPLORER_MEMORY_BUDGET")
    if env:
        return int(float(env))
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown (not Linux): do not refuse


def require(needed: int, what: str, device: torch.device, hint: str) -> None:
    """Raise :class:`MemoryLimitError` when ``needed`` bytes exceed the budget on ``device``."""
    budget = available_bytes(device)
    if needed > budget:
        raise MemoryLimitError(
            f"{what} needs about {gib(needed)} on {device}, {gib(budget)} is available "
            f"(EXPLORER_MEMORY_BUDGET or free memory): {hint}"
        )


@contextlib.contextmanager
def out_of_memory(what: str, hint: str) -> Iterator[None]:
    """Turn torch's (or Python's) out-of-memory inside the block into :class:`MemoryLimitError`."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as exc:
        if isinstance(exc, MemoryLimitError):
            raise
        raise MemoryLimitError(f"{what} ran out of memory ({exc}): {hint}") from exc
