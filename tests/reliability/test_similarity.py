"""ex.similarity on inputs larger than memory, or broken ones: refused up front, never OOM-killed."""

from __future__ import annotations

import pytest
import torch

import explorer as ex
from explorer.activations import Activations
from explorer.errors import MemoryLimitError
from tests.reliability.catalogue import assert_clear_error, bad_input


@bad_input(
    "similarity",
    "CKA of depths whose Gram matrices exceed the memory budget (EXPLORER_MEMORY_BUDGET=1 MiB here)",
    "MemoryLimitError before any work, with the bytes it needs and what to shrink (was killed by the OOM killer)",
)
def test_similarity_larger_than_budget(monkeypatch):
    monkeypatch.setenv("EXPLORER_MEMORY_BUDGET", str(1 << 20))
    acts = Activations({0: torch.randn(20, 600), 1: torch.randn(20, 600)})
    with pytest.raises(MemoryLimitError) as excinfo:
        ex.similarity(acts, device="cpu")
    assert_clear_error(excinfo, "needs about", "GiB", "available", "depths_a")


@bad_input(
    "similarity",
    "CKA within the memory budget",
    "computed as before (the budget check does not refuse what fits)",
)
def test_similarity_within_budget(monkeypatch):
    monkeypatch.setenv("EXPLORER_MEMORY_BUDGET", str(1 << 30))
    torch.manual_seed(0)
    acts = Activations({0: torch.randn(20, 8), 1: torch.randn(20, 8)})
    df = ex.similarity(acts, device="cpu")
    assert df.shape == (2, 2) and abs(df.loc[0, 0] - 1) < 1e-12


@bad_input(
    "similarity",
    "out of memory inside the CKA products (torch.OutOfMemoryError)",
    "MemoryLimitError saying what to shrink (depths, dimensions, device), never a dead kernel",
)
def test_similarity_oom_is_wrapped(monkeypatch):
    import sys

    sim = sys.modules["explorer.similarity"]  # explorer.similarity is also the function

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 40.00 GiB")

    monkeypatch.setattr(sim, "CKAStats", boom)
    acts = Activations({0: torch.randn(20, 8)})
    with pytest.raises(MemoryLimitError) as excinfo:
        ex.similarity(acts, device="cpu")
    assert_clear_error(excinfo, "ex.similarity", "out of memory", "depths_a", "device")
