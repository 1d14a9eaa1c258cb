"""PCA, Procrustes and ``project`` on CUDA give the CPU's numbers (skipped without CUDA).

Tolerances: the GPU computes in float32, the CPU in float64; coordinates agree to 1e-4 of their
largest magnitude on data with separated eigenvalues (sign convention included), to 1e-3 on the
demo; explained variance ratios to 1e-5 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex
from explorer import demo
from explorer.jobs import JobEngine
from explorer.kernel.projection import displacement, pca, procrustes
from explorer.projection import project

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _data(n, d, seed=0):
    g = torch.Generator().manual_seed(seed)
    scales = torch.cat([torch.tensor([30.0, 20.0, 10.0]), torch.linspace(1, 0.1, d - 3)])
    return torch.randn(n, d, generator=g, dtype=torch.float64) * scales + 3.0


@pytest.mark.parametrize(("n", "d", "solver"), [(5000, 256, "exact"), (300, 1000, "exact")])
def test_exact_pca_on_cuda_matches_cpu(n, d, solver):
    x = _data(n, d)
    cpu = pca(x, 3, solver=solver)
    gpu = pca(x.cuda(), 3, solver=solver)
    assert gpu.coords.device.type == "cuda" and gpu.coords.dtype == torch.float32
    assert gpu.solver == cpu.solver
    scale = cpu.coords.abs().max().item()
    torch.testing.assert_close(gpu.coords.cpu(), cpu.coords, atol=1e-4 * scale, rtol=0)
    torch.testing.assert_close(
        gpu.explained_variance_ratio.cpu().double(), cpu.explained_variance_ratio, rtol=1e-5, atol=0
    )


def test_randomized_pca_for_large_d_on_cuda():
    x = _data(4000, 8192)
    gpu = pca(x.float().cuda(), 2)
    assert gpu.solver == "randomized"
    cpu = pca(x, 2, solver="randomized")
    scale = cpu.coords.abs().max().item()
    torch.testing.assert_close(gpu.coords.cpu(), cpu.coords, atol=1e-3 * scale, rtol=0)


def test_procrustes_on_cuda():
    a = torch.randn(1000, 2, dtype=torch.float64, device="cuda")
    q, _ = torch.linalg.qr(torch.randn(2, 2, dtype=torch.float64, device="cuda"))
    b = a @ q + 1.0
    out = procrustes(a, b)
    assert out.device.type == "cuda"
    assert displacement(out, b) < 1e-6


def test_project_on_cuda_matches_cpu():
    acts = ex.capture(demo.load("digits-clean"), demo.probe("digits"), progress=False)
    engine = JobEngine(cache=False)
    try:
        cpu = project(acts, "pca", device="cpu", engine=engine)
        gpu = project(acts, "pca", device="cuda", engine=engine)
    finally:
        engine.shutdown()
    for d in acts.depths:
        scale = np.abs(cpu.coords[d]).max()
        np.testing.assert_allclose(gpu.coords[d], cpu.coords[d], atol=1e-3 * scale)
        np.testing.assert_allclose(
            gpu.explained_variance_ratio[d], cpu.explained_variance_ratio[d], rtol=1e-4
        )
