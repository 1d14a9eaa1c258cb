"""PCA, Procrustes and ``project`` on CUDA give the CPU's numbers (skipped without CUDA).

Tolerances: the GPU computes in float32, the CPU in float64; coordinates agree to 1e-4 of their
largest magnitude on data with separated eigenvalues (sign convention included), to 1e-3 on the
demo; explained variance ratios to 1e-5 relative.

UMAP and t-SNE on CUDA (TorchDR or cuML, each one installed) are other implementations of the
CPU reference (umap-learn, scikit-learn), so they agree in quality, not in coordinates: on the
demo digits at the first and last depth, trustworthiness at k = 10 within 0.02 of the CPU layout's and the
10-NN label accuracy in the layout within 0.03.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex
from explorer import demo
from explorer.jobs import JobEngine
from explorer.kernel.embedding_gpu import available_gpu_engines, umap_gpu
from explorer.kernel.neighbors import knn_accuracy
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


@pytest.fixture(scope="module")
def digits():
    return ex.capture(demo.load("digits-clean"), demo.probe("digits"), progress=False)


def _engines():
    found = available_gpu_engines()
    return [
        pytest.param(e, marks=pytest.mark.skipif(e not in found, reason=f"{e} is not installed"))
        for e in ("torchdr", "cuml")
    ]


@pytest.mark.parametrize("gpu_engine", _engines())
@pytest.mark.parametrize("method", ["umap", "tsne"])
def test_layout_on_cuda_agrees_with_the_cpu_in_quality(digits, method, gpu_engine):
    depths = [digits.depths[0], digits.depths[-1]]
    engine = JobEngine(cache=False)
    try:
        cpu = project(digits, method, depths=depths, device="cpu", engine=engine)
        gpu = project(
            digits, method, depths=depths, device="cuda", engine=engine, gpu_engine=gpu_engine
        )
    finally:
        engine.shutdown()
    q_cpu, q_gpu = cpu.quality(k=[10]).set_index("depth"), gpu.quality(k=[10]).set_index("depth")
    for d in depths:
        assert np.isfinite(gpu.raw[d]).all() and gpu.raw[d].dtype == np.float32
        tw_cpu, tw_gpu = q_cpu.trustworthiness_10[d], q_gpu.trustworthiness_10[d]
        assert tw_gpu >= tw_cpu - 0.02, (d, tw_gpu, tw_cpu)
        acc_cpu, acc_gpu = q_cpu.knn_accuracy_layout[d], q_gpu.knn_accuracy_layout[d]
        assert acc_gpu >= acc_cpu - 0.03, (d, acc_gpu, acc_cpu)


def test_auto_device_lays_out_on_the_gpu_when_an_engine_is_installed(digits):
    if not available_gpu_engines():
        pytest.skip("neither torchdr nor cuml is installed")
    engine = JobEngine(cache=False)
    try:
        p = project(digits, "umap", depths=digits.depths[-1:], device="auto", engine=engine)
    finally:
        engine.shutdown()
    assert p.raw[digits.depths[-1]].shape == (digits.n_points, 2)


@pytest.mark.skipif("torchdr" not in available_gpu_engines(), reason="torchdr is not installed")
def test_torchdr_umap_on_cuda_at_20k_points_separates_clusters():
    g = torch.Generator(device="cuda").manual_seed(0)
    labels = torch.randint(0, 10, (20_000,), device="cuda", generator=g)
    centers = torch.randn(10, 128, device="cuda", generator=g) * 4
    x = centers[labels] + torch.randn(20_000, 128, device="cuda", generator=g)
    z = umap_gpu(x, seed=1, engine="torchdr")
    assert z.device.type == "cuda" and z.shape == (20_000, 2)
    assert knn_accuracy(z.cpu(), labels.cpu().numpy(), k=10) > 0.95
