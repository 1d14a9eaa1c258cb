"""kNN, intrinsic dimension and DSE on CUDA give the CPU's numbers (skipped without CUDA).

The CUDA kNN takes TF32 candidates and recomputes their distances exactly in float32, so
distances agree to float32 rounding and the estimates to ~1e-5 relative.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from explorer.kernel import dimension as dm
from explorer.kernel.entropy import diffusion_spectral_entropy
from explorer.kernel.neighbors import dedupe, knn

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


def _data(n=4000, d=8, big_d=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d + 1, generator=g)
    z = z / z.norm(dim=1, keepdim=True)
    return z @ torch.linalg.qr(torch.randn(big_d, d + 1, generator=g))[0].T


@pytest.mark.parametrize("precision", ["tf32", "fp32"])
def test_knn_on_cuda_matches_cpu(precision):
    x = _data()
    d_cpu, i_cpu = knn(x, 20)
    d_gpu, i_gpu = knn(x.cuda(), 20, precision=precision)
    assert d_gpu.device.type == "cuda"
    torch.testing.assert_close(d_gpu.cpu(), d_cpu, rtol=1e-5, atol=1e-6)
    assert (i_gpu.cpu() == i_cpu).float().mean() > 0.999


def test_estimates_on_cuda_match_cpu():
    x = _data()
    for f in (dm.twonn, dm.mle, lambda a: dm.lpca(a, k=50), lambda a: dm.gride(a)[1][3]):
        assert f(x.cuda()) == pytest.approx(f(x), rel=1e-5)
    assert diffusion_spectral_entropy(x[:2000].cuda()) == pytest.approx(
        diffusion_spectral_entropy(x[:2000]), rel=1e-8
    )
    dup = torch.cat([x, x[:100] * (1 + 1e-7 * torch.randn(100, x.shape[1]))])
    assert dedupe(dup.cuda()).n_duplicates == dedupe(dup).n_duplicates == 100
    np.testing.assert_allclose(dm.lid(x.cuda()).cpu().numpy(), dm.lid(x).numpy(), rtol=1e-4)
