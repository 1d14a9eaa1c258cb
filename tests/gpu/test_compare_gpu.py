"""ex.compare and CKA give the same numbers on CUDA (float32) as on the CPU (float64)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex
from explorer.kernel import cka

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _pair():
    gen = torch.Generator().manual_seed(0)
    a = {"0.weight": torch.randn(300, 200, generator=gen), "2.weight": torch.randn(10, 300)}
    b = {k: v + 0.1 * torch.randn(v.shape, generator=gen) for k, v in a.items()}
    b["0.weight"] += 3 * torch.randn(300, 1, generator=gen) @ torch.randn(1, 200, generator=gen)
    return a, b


def test_compare_on_cuda_matches_cpu():
    a, b = _pair()
    cpu = ex.compare(a, b, ks=[1, 4, 16], device="cpu").frame()
    gpu = ex.compare(a, b, ks=[1, 4, 16], device="cuda").frame()
    assert gpu.attrs["device"].startswith("cuda")
    for col in ("overlap_left", "overlap_right", "principal_share", "delta_rel", "delta_dominance"):
        np.testing.assert_allclose(gpu[col], cpu[col], rtol=1e-4, atol=1e-5, err_msg=col)
    assert gpu.n_intruders.tolist() == cpu.n_intruders.tolist()


def test_randomized_svd_on_cuda_matches_exact_on_cpu():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(2048, 1536, generator=gen)
    w += 20 * torch.randn(2048, 8, generator=gen) @ torch.randn(8, 1536, generator=gen) / 40
    v = w + 0.01 * torch.randn(w.shape, generator=gen)
    cpu = ex.compare({"0.weight": w}, {"0.weight": v}, ks=[8], device="cpu", method="exact")
    gpu = ex.compare({"0.weight": w}, {"0.weight": v}, ks=[8], device="cuda")  # randomised
    np.testing.assert_allclose(
        gpu.frame().overlap_left, cpu.frame().overlap_left, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("resident", [True, False])
def test_cka_on_cuda_matches_cpu(resident, monkeypatch):
    """Host points are copied to the GPU once when they fit (resident), else streamed a block of
    rows at a time (a GPU reporting 1 MB free); both give the CPU's CKA."""
    if not resident:
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1 << 20, 1 << 30))
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(5000, 64, generator=gen)
    y = torch.tanh(x @ torch.randn(64, 32, generator=gen))
    for debiased in (False, True):
        ref = cka(x, y, debiased=debiased)
        assert cka(x, y, debiased=debiased, device="cuda") == pytest.approx(ref, rel=1e-5)
