"""Out of memory inside a kernel operation: an error that says what to do, never a dead kernel."""

from __future__ import annotations

import pytest
import torch

import explorer as ex
from explorer.activations import Activations
from explorer.errors import MemoryLimitError
from tests.reliability.catalogue import assert_clear_error, bad_input


@bad_input(
    "memory",
    "torch.OutOfMemoryError inside representation_metrics (a large depth on a small GPU)",
    "MemoryLimitError naming the depth and suggesting max_points, a subset, fewer methods, n_boot or device='cpu'",
)
def test_metrics_oom_is_wrapped(monkeypatch):
    from explorer.kernel import dimension

    def boom(*a, **k):
        raise torch.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(dimension, "covariance_spectrum", boom)
    acts = Activations({3: torch.randn(30, 6)})
    with pytest.raises(MemoryLimitError) as excinfo:
        ex.representation_metrics(acts, methods=["effective_rank"], device="cpu")
    assert_clear_error(excinfo, "depth 3", "out of memory", "max_points", "device='cpu'")


@bad_input(
    "memory",
    "MemoryError (host memory) inside representation_metrics",
    "MemoryLimitError with the same advice",
)
def test_metrics_host_memory_error_is_wrapped(monkeypatch):
    from explorer.kernel import dimension

    def boom(*a, **k):
        raise MemoryError()

    monkeypatch.setattr(dimension, "covariance_spectrum", boom)
    with pytest.raises(MemoryLimitError) as excinfo:
        ex.representation_metrics(
            Activations({0: torch.randn(30, 6)}), methods=["rankme"], device="cpu"
        )
    assert_clear_error(excinfo, "out of memory", "n_boot")
