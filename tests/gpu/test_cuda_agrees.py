"""CPU and CUDA give the same hidden states and weights (skipped without CUDA)."""

from __future__ import annotations

import pytest
import torch

import explorer as ex

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def test_capture_on_cuda_matches_cpu(mlp):
    x = torch.randn(64, 8)
    cpu = ex.capture(mlp, x, device="cpu")
    gpu = ex.capture(mlp, x, device="cuda")
    assert gpu.meta["device"].startswith("cuda")
    for d in cpu.depths:
        assert gpu[d].device.type == "cpu"  # results always come back to the host
        torch.testing.assert_close(gpu[d], cpu[d], rtol=1e-4, atol=1e-5)
    assert next(mlp.parameters()).device.type == "cpu"  # the user's model is put back


def test_minilm_capture_on_cuda_matches_cpu(minilm):
    texts = ["a quiet harbour at dawn", "the compiler rejected the cast"]
    cpu = ex.capture(minilm, texts, device="cpu")
    gpu = ex.capture(minilm, texts, device="cuda")
    for d in cpu.depths:
        torch.testing.assert_close(gpu[d], cpu[d], rtol=1e-3, atol=1e-4)


def test_weight_on_cuda(minilm):
    w = minilm.weight("blocks.3.attn.q", device="cuda")
    assert w.device.type == "cuda" and w.dtype == torch.float32
    torch.testing.assert_close(w.cpu(), minilm.weight("blocks.3.attn.q"))
