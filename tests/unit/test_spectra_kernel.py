"""Weight spectra: the kernel against closed forms, scipy and the powerlaw package; ex.spectra's rows.

Tolerances (measured margins in brackets):

* ESD vs ``scipy.linalg.svdvals(W)**2`` in float64: every eigenvalue within ``k * eps * lambda_1``
  absolute, float32 and float64, any conditioning [observed <= 0.13 k eps lambda_1].
* Singular values, relative: the top half to 1e-12 (float64) / 1e-5 (float32) for condition numbers
  up to 1e3 [2e-15 / 3e-6]; all of them to 1e-3 when ``gram_resolved`` holds [1e-5].
* Closed forms and invariances (scale, orthogonal rotations on either side) to 1e-9 relative in
  float64.
* Power law: on 5000 planted Pareto samples alpha within 4 standard errors ``(alpha - 1)/sqrt(n)``;
  against ``powerlaw.Fit`` on the same data the same xmin (exactly), alpha and D to 1e-9 relative.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import math
import warnings

import numpy as np
import pytest
import scipy.linalg
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import explorer as ex
from explorer.kernel import (
    PowerLawFit,
    condition,
    effective_rank,
    energy_top_k,
    esd,
    fit_powerlaw,
    gram,
    gram_resolved,
    mp_edge,
    n_spikes,
    numerical_rank,
    participation_ratio,
    rankme,
    singular_values,
    stable_rank,
)
from explorer.spectra import STATUS_NO_FIT, STATUS_ZERO, spectra

# the module, not the function that explorer/__init__ exports under the same name
spectra_mod = importlib.import_module("explorer.spectra")

EPS = {torch.float64: np.finfo(np.float64).eps, torch.float32: np.finfo(np.float32).eps}


def planted(rng, m, n, s):
    """An m x n matrix with singular values s (random orthonormal bases on both sides)."""
    k = len(s)
    u, _ = np.linalg.qr(rng.normal(size=(m, k)))
    v, _ = np.linalg.qr(rng.normal(size=(n, k)))
    return (u * s) @ v.T


def orthogonal(rng, n):
    q, r = np.linalg.qr(rng.normal(size=(n, n)))
    return q * np.sign(np.diag(r))


# -- closed forms ---------------------------------------------------------------------------------
def test_identity():
    n = 7
    s = singular_values(np.eye(n))
    np.testing.assert_allclose(s, np.ones(n), rtol=1e-12)
    assert stable_rank(s) == pytest.approx(n)
    assert effective_rank(s) == pytest.approx(n)
    assert participation_ratio(s**2) == pytest.approx(n)
    assert numerical_rank(s, (n, n)) == n
    assert condition(s, (n, n)) == pytest.approx(1.0)
    np.testing.assert_allclose(energy_top_k(s, (1, 3, 100)), [1 / n, 3 / n, 1.0])
    # MP edge for v = 1/n: (1/n)(2 sqrt(n))^2 = 4; the identity has no spikes above it
    assert mp_edge(s**2, (n, n)) == pytest.approx(4.0)
    assert n_spikes(s**2, (n, n)) == 0


def test_rank_r_matrix():
    rng = np.random.default_rng(0)
    sv = np.array([5.0, 3.0, 2.0])
    w = planted(rng, 40, 25, np.r_[sv, np.zeros(0)])
    s = singular_values(w)
    assert s.shape == (25,)
    np.testing.assert_allclose(s[:3], sv, rtol=1e-12)
    # the Gram cannot tell its zero eigenvalues from rounding (they come out ~1e-15 s_1^2), and
    # says so; numerical rank and condition need singular values accurate at the tolerance
    assert not gram_resolved(s**2)
    s = scipy.linalg.svdvals(w)
    assert numerical_rank(s, w.shape) == 3 == np.linalg.matrix_rank(w)
    assert condition(s, w.shape) == math.inf
    assert stable_rank(s) == pytest.approx((sv**2).sum() / 25)
    assert participation_ratio(s**2) == pytest.approx((sv**2).sum() ** 2 / (sv**4).sum())
    np.testing.assert_allclose(energy_top_k(s, (1, 3)), [25 / 38, 1.0], rtol=1e-12)


def test_equal_singular_values_have_effective_rank_r():
    rng = np.random.default_rng(1)
    w = planted(rng, 30, 20, np.full(4, 2.5))
    assert effective_rank(singular_values(w)) == pytest.approx(4.0, rel=1e-6)


def test_diagonal_spectrum_with_known_entropy():
    # p = (1/2, 1/4, 1/8, 1/8): H = 1.75 bits, erank = 2**1.75
    s = np.array([4.0, 2.0, 1.0, 1.0])
    assert effective_rank(s) == pytest.approx(2**1.75, rel=1e-12)
    assert effective_rank(singular_values(np.diag(s))) == pytest.approx(2**1.75, rel=1e-12)
    assert stable_rank(s) == pytest.approx(22 / 16)
    assert participation_ratio(s**2) == pytest.approx(22**2 / (256 + 16 + 1 + 1))
    # zero singular values contribute 0 log 0 = 0
    assert effective_rank(np.r_[s, 0, 0]) == pytest.approx(2**1.75, rel=1e-12)


def test_rankme_closed_form_and_centring():
    # centred columns with singular values s: p = s / sum(s) + 1e-7
    rng = np.random.default_rng(2)
    z = planted(rng, 50, 3, np.array([3.0, 2.0, 1.0]))
    z = z - z.mean(0)
    s = scipy.linalg.svdvals(z)
    p = s / s.sum() + 1e-7
    want = math.exp(-(p * np.log(p)).sum())
    assert rankme(z) == pytest.approx(want, rel=1e-9)
    assert rankme(z + 100.0) == pytest.approx(want, rel=1e-6)  # centred by default
    assert rankme(z + 100.0, center=False) < want


def test_kinds_and_batches():
    rng = np.random.default_rng(3)
    stack = rng.normal(size=(5, 30, 12))
    lam_np = esd(stack)
    assert isinstance(lam_np, np.ndarray) and lam_np.shape == (5, 12)
    lam_t = esd(torch.from_numpy(stack))
    assert isinstance(lam_t, torch.Tensor) and lam_t.dtype == torch.float64
    for i in range(5):
        np.testing.assert_allclose(lam_np[i], esd(stack[i]), rtol=1e-12, atol=1e-12)
    assert np.all(np.diff(lam_np, axis=-1) <= 0) and np.all(lam_np >= 0)
    s = np.sqrt(lam_np)
    sr = stable_rank(s)
    assert sr.shape == (5,) and sr[2] == pytest.approx(stable_rank(s[2]))
    assert energy_top_k(s, (1, 2)).shape == (5, 2)
    assert isinstance(stable_rank(torch.from_numpy(s[0])), float)
    assert gram(stack).shape == (5, 12, 12) and gram(stack.transpose(0, 2, 1)).shape == (5, 12, 12)
    with pytest.raises(TypeError, match="dtype"):
        esd(stack, dtype=torch.float16)


# -- invariances ----------------------------------------------------------------------------------
shapes = st.tuples(st.integers(2, 24), st.integers(2, 24))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1), scale=st.floats(1e-3, 1e3))
def test_scale_invariance(shape, seed, scale):
    w = np.random.default_rng(seed).normal(size=shape)
    s, s2 = singular_values(w), singular_values(scale * w)
    for f in (stable_rank, effective_rank):
        assert f(s2) == pytest.approx(f(s), rel=1e-9)
    assert participation_ratio(s2**2) == pytest.approx(participation_ratio(s**2), rel=1e-9)
    assert sv_close(s2, scale * s)


def sv_close(a, b):
    return np.allclose(a, b, rtol=1e-9, atol=1e-9 * max(b[0], 1e-300))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, seed=st.integers(0, 2**31 - 1))
def test_orthogonal_rotations_on_either_side(shape, seed):
    rng = np.random.default_rng(seed)
    w = rng.normal(size=shape)
    q_left, q_right = orthogonal(rng, shape[0]), orthogonal(rng, shape[1])
    lam = esd(w)
    for rotated in (q_left @ w, w @ q_right, q_left @ w @ q_right):
        lam_r = esd(rotated)
        atol = min(shape) * EPS[torch.float64] * lam[0] * 10
        np.testing.assert_allclose(lam_r, lam, rtol=1e-9, atol=atol)
        s_r, s = np.sqrt(lam_r), np.sqrt(lam)
        assert stable_rank(s_r) == pytest.approx(stable_rank(s), rel=1e-9)
        assert effective_rank(s_r) == pytest.approx(effective_rank(s), rel=1e-9)


# -- against scipy's SVD --------------------------------------------------------------------------
def cases():
    rng = np.random.default_rng(4)
    yield "gauss tall", rng.normal(size=(300, 100)), 1e3
    yield "gauss wide", rng.normal(size=(100, 300)), 1e3
    yield "gauss square", rng.normal(size=(200, 200)), 1e4
    yield "cond 1e3", planted(rng, 200, 120, np.geomspace(1, 1e-3, 120)), 1e3
    yield "cond 1e6", planted(rng, 200, 120, np.geomspace(1, 1e-6, 120)), 1e6
    yield "cond 1e10", planted(rng, 200, 120, np.geomspace(1, 1e-10, 120)), 1e10


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("name,w,cond", list(cases()), ids=[c[0] for c in cases()])
def test_against_scipy_svd(dtype, name, w, cond):
    w = w.astype(np.float32) if dtype == torch.float32 else w
    ref = scipy.linalg.svdvals(w.astype(np.float64))
    lam = esd(w, dtype=dtype)
    k, eps = len(lam), EPS[dtype]
    assert np.max(np.abs(lam - ref**2)) <= k * eps * ref[0] ** 2
    s = np.sqrt(lam)
    if cond <= 1e3:
        top = k // 2
        np.testing.assert_allclose(
            s[:top], ref[:top], rtol=1e-12 if dtype == torch.float64 else 1e-5
        )
    if gram_resolved(lam, dtype=dtype):
        np.testing.assert_allclose(s, ref, rtol=1e-3)
        assert numerical_rank(s, w.shape, dtype) == np.linalg.matrix_rank(w)
        assert condition(s, w.shape, dtype) == pytest.approx(ref[0] / ref[-1], rel=1e-3)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["f64", "f32"])
def test_spectra_recomputes_unresolved_matrices_with_svd(dtype):
    rng = np.random.default_rng(5)
    sd = {
        "a.weight": torch.from_numpy(rng.normal(size=(60, 40))).float(),
        "b.weight": torch.from_numpy(planted(rng, 60, 40, np.geomspace(1, 1e-9, 40))).float(),
        "c.weight": torch.from_numpy(
            planted(rng, 60, 40, np.r_[np.ones(10), np.zeros(30)])
        ).float(),
    }
    df = spectra(ex.load(sd), dtype=dtype, device="cpu").set_index("name")
    assert df.loc["a.weight", "method"] == "gram"
    for name, w in sd.items():
        row = df.loc[name]
        ref = scipy.linalg.svdvals(w.double().numpy())
        np_rank = np.linalg.matrix_rank(w.numpy() if dtype == torch.float32 else w.double().numpy())
        assert row.numerical_rank == np_rank, name
        if np_rank == 40:
            assert row.condition == pytest.approx(ref[0] / ref[-1], rel=1e-3)
        else:
            assert row.condition == math.inf and row.method == "svd"
        assert row.sv_max == pytest.approx(ref[0], rel=1e-6)
        assert row.stable_rank == pytest.approx((ref**2).sum() / ref[0] ** 2, rel=1e-5)
        assert row.effective_rank == pytest.approx(effective_rank(ref), rel=1e-4)


# -- power law ------------------------------------------------------------------------------------
def pareto(rng, alpha, n, xmin=1.0):
    return xmin * (1 - rng.random(n)) ** (-1 / (alpha - 1))


@pytest.mark.parametrize("alpha", [1.5, 2.0, 3.0, 4.5])
def test_planted_pareto_alpha_is_recovered(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    n = 5000
    x = np.r_[pareto(rng, alpha, n), rng.uniform(0.01, 1.0, 1000)]  # a bulk below xmin = 1
    fit = fit_powerlaw(x)
    assert fit.status == "ok"
    assert abs(fit.alpha - alpha) <= 4 * (alpha - 1) / math.sqrt(fit.n_tail)
    assert fit.xmin >= 0.9 and fit.n_tail >= 500  # the bulk below 1 is cut off, the tail kept
    assert fit.sigma == pytest.approx((fit.alpha - 1) / math.sqrt(fit.n_tail))
    assert fit.n_tail == int((x >= fit.xmin).sum())


def powerlaw_fit(x):
    powerlaw = pytest.importorskip("powerlaw")
    with (
        contextlib.redirect_stdout(io.StringIO()),
        contextlib.redirect_stderr(io.StringIO()),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        return powerlaw.Fit(x, verbose=False)


@pytest.mark.parametrize("case", ["pareto+bulk", "lognormal", "ties", "esd"])
def test_same_fit_as_the_powerlaw_package(case):
    rng = np.random.default_rng(7)
    if case == "pareto+bulk":
        x = np.r_[pareto(rng, 2.5, 800), rng.uniform(0, 1, 300)]
    elif case == "lognormal":
        x = rng.lognormal(0, 1.5, 1000)
    elif case == "ties":
        x = np.round(pareto(rng, 3.0, 600), 2)  # many repeated values
    else:
        x = esd(rng.standard_t(3, size=(500, 200)))
    ours, ref = fit_powerlaw(x), powerlaw_fit(x)
    assert ours.xmin == ref.xmin
    assert ours.alpha == pytest.approx(ref.alpha, rel=1e-9)
    assert ours.D == pytest.approx(ref.D, rel=1e-9)
    assert ours.n_tail == int((x >= ref.xmin).sum())


def test_batched_fit_equals_single_fits_and_keeps_going_past_a_flagged_one():
    rng = np.random.default_rng(8)
    rows = [pareto(rng, a, 300) for a in (2.0, 3.0, 5.0)] + [np.ones(300)]
    batch = fit_powerlaw(np.stack(rows))
    assert isinstance(batch, PowerLawFit) and batch.alpha.shape == (4,)
    for i, r in enumerate(rows[:3]):
        one = fit_powerlaw(r)
        assert batch.alpha[i] == pytest.approx(one.alpha, rel=1e-12)
        assert batch.xmin[i] == one.xmin and batch.n_tail[i] == one.n_tail
    assert batch.status[:3] == ("ok", "ok", "ok")
    assert (
        np.isnan(batch.alpha[3]) and batch.n_tail[3] == 0 and batch.status[3].startswith("no fit")
    )


def test_flagged_fits_and_floor():
    constant = fit_powerlaw(np.full(10, 2.0))
    assert math.isnan(constant.alpha) and constant.n_tail == 0 and "fewer than 2" in constant.status
    assert fit_powerlaw(np.array([0.0, 0.0, 1.0])).status != "ok"  # zeros are never fitted
    two = fit_powerlaw(np.array([1.0, 2.0]))
    assert two.status == "ok" and two.n_tail == 2 and two.xmin == 1.0
    x = np.r_[np.full(5, 1e-9), pareto(np.random.default_rng(9), 3.0, 200)]
    assert fit_powerlaw(x, floor=1e-6).n_tail <= 200


# -- ex.spectra: rows, statuses, bad inputs --------------------------------------------------------
@pytest.fixture
def odd_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(20, 30),
        torch.nn.ReLU(),
        torch.nn.Linear(30, 30),
        torch.nn.ReLU(),
        torch.nn.Linear(30, 30),
        torch.nn.ReLU(),
        torch.nn.Linear(30, 1),  # a 1 x 30 head
    )
    with torch.no_grad():
        model[2].weight[3, 4] = float("nan")
        model[2].weight[5, 6] = float("inf")
        model[4].weight.zero_()
    return model


def test_bad_matrices_are_reported_not_fatal(odd_model):
    df = spectra(odd_model, device="cpu")
    assert list(df.address) == ex.load(odd_model).addresses
    by = df.set_index("name")
    good = by.loc["0.weight"]
    assert good.status == "ok" and good.numerical_rank == 20
    bad = by.loc["2.weight"]
    assert bad.status == "skipped: 2 NaN/Inf values" and math.isnan(bad.sv_max) and bad.esd is None
    zero = by.loc["4.weight"]
    assert zero.status == STATUS_ZERO
    assert zero.sv_max == 0 and zero.frobenius == 0 and zero.numerical_rank == 0
    assert zero.n_spikes == 0 and zero.mp_edge == 0
    assert all(math.isnan(zero[c]) for c in ("stable_rank", "effective_rank", "condition", "alpha"))
    row = by.loc["6.weight"]  # 1 x 30: one eigenvalue, every ratio defined
    w = odd_model[6].weight.detach().double()
    assert row.status == STATUS_NO_FIT and (row.m, row.n) == (1, 30)
    assert row.sv_max == pytest.approx(float(w.norm()), rel=1e-12)
    for c in ("stable_rank", "effective_rank", "participation_ratio", "condition", "energy_top_1"):
        assert row[c] == pytest.approx(1.0)
    assert row.numerical_rank == 1 and math.isnan(row.alpha)
    assert df.numerical_rank.dtype == "Int64"  # a count with <NA> for the skipped row


def test_rows_match_the_kernel_and_columns_are_complete():
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3),
        torch.nn.Flatten(),
        torch.nn.Linear(40, 70),
        torch.nn.Linear(70, 40),
    )
    df = spectra(model, device="cpu", ks=(1, 3))
    assert list(df.columns[-3:]) == ["method", "status", "esd"]
    assert {"energy_top_1", "energy_top_3", "mp_edge", "n_spikes", "alpha_weighted"} <= set(
        df.columns
    )
    assert df.attrs == {"checkpoint": "Sequential", "device": "cpu", "dtype": "float64"}
    ck = ex.load(model)
    for row in df.itertuples():
        w = ck.weight(row.address).double().numpy()
        ref = scipy.linalg.svdvals(w)
        np.testing.assert_allclose(np.sqrt(row.esd), ref, rtol=1e-9)
        assert (row.m, row.n) == w.shape
        assert row.frobenius == pytest.approx(np.linalg.norm(w), rel=1e-12)
        assert row.participation_ratio == pytest.approx(participation_ratio(ref**2), rel=1e-9)
        assert row.energy_top_3 == pytest.approx(energy_top_k(ref, (3,))[0], rel=1e-9)
        fit = fit_powerlaw(ref**2)
        assert row.alpha == pytest.approx(fit.alpha, rel=1e-9) and row.n_tail == fit.n_tail
        assert row.alpha_weighted == pytest.approx(fit.alpha * math.log10(ref[0] ** 2), rel=1e-9)
        assert row.n_spikes == n_spikes(ref**2, w.shape)
    assert "esd" not in spectra(model, keep_esd=False).columns


def test_layer_selection_progress_and_streaming(mlp):
    ck = ex.load(mlp)
    seen = []
    df = spectra(
        ck, lambda e: e.depth >= 2, progress=lambda done, total: seen.append((done, total))
    )
    assert list(df.address) == [e.address for e in ck.entries if e.depth >= 2]
    assert seen[-1] == (2, 2)
    one = spectra(ck, ck.addresses[0])
    assert len(one) == 1
    rows = list(spectra_mod.iter_spectra(ck, device="cpu"))
    assert sorted(r["_order"] for r in rows) == [0, 1, 2]


def test_out_of_memory_halves_the_batch_then_falls_back_to_the_cpu(monkeypatch):
    rng = np.random.default_rng(10)
    sd = {f"l{i}.weight": torch.from_numpy(rng.normal(size=(16, 12))).float() for i in range(5)}
    ck = ex.load(sd)
    want = spectra(ck, device="cpu", keep_esd=False)
    real = spectra_mod._run_batch
    calls = []

    def flaky(ck, chunk, dev, dtype, ks):
        calls.append((dev.type, len(chunk)))
        if dev.type == "meta":  # stands in for a GPU that is always out of memory
            raise torch.cuda.OutOfMemoryError("fake")
        return real(ck, chunk, dev, dtype, ks)

    monkeypatch.setattr(spectra_mod, "_run_batch", flaky)
    monkeypatch.setattr(spectra_mod, "resolve_device", lambda d: torch.device("meta"))
    with pytest.warns(RuntimeWarning, match="out of memory") as record:
        got = spectra(ck, keep_esd=False)
    assert [n for d, n in calls if d == "meta"][:3] == [5, 2, 1]  # halved down to one matrix
    assert [n for d, n in calls if d == "cpu"] == [1] * 5  # then each on the CPU
    assert any("on the CPU" in str(w.message) for w in record)
    cols = ["sv_max", "stable_rank", "alpha"]
    np.testing.assert_allclose(got[cols].to_numpy(), want[cols].to_numpy(), rtol=1e-12)


def test_eigensolver_failure_falls_back_to_svdvals(monkeypatch, mlp):
    want = spectra(mlp, keep_esd=False)

    def fails(*args, **kwargs):
        raise torch.linalg.LinAlgError("did not converge")

    monkeypatch.setattr(torch.linalg, "eigvalsh", fails)
    got = spectra(mlp, keep_esd=False)
    assert (got.method == "svd").all() and (got.status == "ok").all()
    cols = ["sv_max", "stable_rank", "effective_rank", "alpha", "numerical_rank"]
    np.testing.assert_allclose(got[cols].to_numpy(float), want[cols].to_numpy(float), rtol=1e-9)


def test_threaded_eigvalsh_is_torch_eigvalsh_matrix_by_matrix():
    """Same LAPACK routine; one intra-op thread instead of two changes rounding only."""
    from explorer.kernel.linalg import eigvalsh

    def same(a, b):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13 * float(b.abs().max()))

    g = torch.Generator().manual_seed(0)
    w = torch.randn(2, 5, 200, 96, dtype=torch.float64, generator=g)
    stack = w.mT @ w  # (2, 5, 96, 96)
    lam = eigvalsh(stack)
    assert lam.shape == (2, 5, 96)
    for i in range(2):
        for j in range(5):
            same(lam[i, j], torch.linalg.eigvalsh(stack[i, j]))
    small = stack[..., :8, :8]
    same(eigvalsh(small), torch.linalg.eigvalsh(small))
    same(eigvalsh(stack[0, 0]), torch.linalg.eigvalsh(stack[0, 0]))


@pytest.mark.parametrize("shape", [(20_000, 301), (300, 9_000), (50, 12), (1_000, 16)])
def test_gram_from_the_upper_blocks_and_slabs_is_the_full_product(shape):
    """The Gram of the smaller side, multiplied block by block above the diagonal and over row
    slabs, then mirrored, equals the full product (odd sizes, several slabs, tiny matrices)."""
    from explorer.spectra import _gram

    w = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    x = (w if shape[0] >= shape[1] else w.mT).double()
    n = min(shape)
    out = torch.full((n, n), float("nan"), dtype=torch.float64)
    ref = x.mT @ x
    torch.testing.assert_close(_gram(w, out), ref, rtol=1e-12, atol=1e-9 * ref.abs().max().item())
    torch.testing.assert_close(out, out.mT, rtol=1e-12, atol=1e-9 * ref.abs().max().item())
