"""Weight spectra on CUDA give the CPU's numbers (skipped without CUDA).

Tolerances: float64 columns to 1e-9 relative (cuSOLVER and LAPACK differ in rounding only);
the power-law fit to 1e-6 (its xmin is an argmin over KS distances computed in another order);
float32 to 1e-4 on the well-resolved columns.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import explorer as ex
from explorer.kernel import esd, fit_powerlaw, singular_values, stable_rank
from explorer.spectra import spectra

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

EXACT = ["sv_max", "frobenius", "stable_rank", "effective_rank", "participation_ratio"]
EXACT += ["energy_top_1", "energy_top_10", "mp_edge"]
FIT = ["alpha", "xmin", "D", "alpha_weighted"]


def test_kernel_runs_on_the_tensors_device():
    g = torch.Generator().manual_seed(0)
    w = torch.randn(4, 300, 120, generator=g, dtype=torch.float64)
    lam = esd(w.cuda())
    assert lam.device.type == "cuda" and lam.shape == (4, 120)
    torch.testing.assert_close(lam.cpu(), esd(w), rtol=1e-10, atol=1e-9)
    s = singular_values(w[0].cuda())
    assert isinstance(stable_rank(s), float)
    fit_gpu, fit_cpu = fit_powerlaw(lam), fit_powerlaw(lam.cpu())
    assert fit_gpu.alpha.device.type == "cuda"
    torch.testing.assert_close(fit_gpu.alpha.cpu(), fit_cpu.alpha, rtol=1e-9, atol=0)
    torch.testing.assert_close(fit_gpu.n_tail.cpu(), fit_cpu.n_tail)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_minilm_spectra_on_cuda_match_cpu(minilm, dtype):
    cpu = spectra(minilm, device="cpu", dtype=dtype)
    gpu = spectra(minilm, device="cuda", dtype=dtype)
    assert gpu.attrs["device"].startswith("cuda") and list(gpu.address) == list(cpu.address)
    rtol = 1e-9 if dtype == torch.float64 else 1e-4
    for c in EXACT:
        np.testing.assert_allclose(gpu[c], cpu[c], rtol=rtol, err_msg=c)
    for c in FIT:
        np.testing.assert_allclose(gpu[c], cpu[c], rtol=1e-6 if dtype == torch.float64 else 1e-3)
    if dtype == torch.float64:
        np.testing.assert_array_equal(gpu.numerical_rank, cpu.numerical_rank)
        np.testing.assert_array_equal(gpu.n_tail, cpu.n_tail)
        np.testing.assert_allclose(gpu.condition, cpu.condition, rtol=1e-3)
        for a, b in zip(gpu.esd, cpu.esd, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12 * b[0])
    assert (gpu.status == cpu.status).all()


def test_bf16_weights_from_gpu_memory():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.Linear(512, 128))
    model = model.to(device="cuda", dtype=torch.bfloat16)
    ck = ex.load(model)
    gpu = spectra(ck, device="cuda")
    cpu = spectra(ck, device="cpu")
    for c in EXACT:
        np.testing.assert_allclose(gpu[c], cpu[c], rtol=1e-9, err_msg=c)
    w = ck.weight(ck.addresses[0], device="cpu", dtype=torch.float64)
    ref = torch.linalg.svdvals(w)
    assert gpu.sv_max[0] == pytest.approx(float(ref[0]), rel=1e-9)
