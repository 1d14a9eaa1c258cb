"""Principal angles, intruder dimensions and update summaries vs scipy and planted truth."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import explorer as ex
from explorer.compare import _shared_coordinates, default_ks
from explorer.kernel.subspaces import (
    angles_between_bases,
    intruder_cosines,
    intruder_dimensions,
    principal_angles,
    singular_vectors,
    subspace_overlap,
    task_vector_cosines,
    update_energy,
    update_in_basis,
    update_spectrum,
)


def _orth(rng, m, k):
    q, _ = np.linalg.qr(rng.standard_normal((m, k)))
    return q


def _planted(m=24, n=12, seed=0):
    """W = U diag(s) V^T with distinct singular values 12..1, and a unit vector w outside span U."""
    rng = np.random.default_rng(seed)
    full = _orth(rng, m, n + 1)
    u, w = full[:, :n], full[:, n]
    v = _orth(rng, n, n)
    s = np.arange(n, 0, -1, dtype=float)
    return u, s, v, w


# -- principal angles -----------------------------------------------------------------------------
@settings(max_examples=40, deadline=None)
@given(
    m=st.integers(2, 40),
    ka=st.integers(1, 12),
    kb=st.integers(1, 12),
    seed=st.integers(0, 2**32 - 1),
)
def test_principal_angles_match_scipy(m, ka, kb, seed):
    # tolerance 1e-7 rad: where large and small angles mix (e.g. two 3-D subspaces of R^4
    # share a plane) scipy takes the small ones from arccos, exact only to sqrt(eps) ~ 2e-8; ours
    # come from the sines (see the docstring and the planted-rotation test, exact to 1e-12)
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((m, ka)), rng.standard_normal((m, kb))
    ours = principal_angles(a, b)
    ref = np.sort(sl.subspace_angles(a, b))
    assert ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, atol=1e-7)


def test_rank_deficient_and_k_above_rank_match_scipy():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((30, 3)) @ rng.standard_normal((3, 7))  # 7 columns, rank 3
    b = rng.standard_normal((30, 5))
    ours = principal_angles(a, b)
    assert len(ours) == 3
    np.testing.assert_allclose(ours, np.sort(sl.subspace_angles(a, b)), atol=1e-10)
    np.testing.assert_allclose(principal_angles(a, a), 0, atol=1e-7)
    assert principal_angles(np.zeros((5, 2)), b[:5]).shape == (0,)


def test_float32_input_stays_float32_and_agrees_to_1e_5():
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((50, 6)), rng.standard_normal((50, 6))
    ref = principal_angles(a, b)
    np.testing.assert_allclose(
        principal_angles(a.astype(np.float32), b.astype(np.float32)), ref, atol=1e-5
    )


def test_mismatched_rows_raise():
    with pytest.raises(ValueError, match="different spaces"):
        principal_angles(np.ones((4, 1)), np.ones((5, 1)))


@pytest.mark.parametrize("theta", [1e-9, 1e-4, 0.3, np.pi / 3, np.pi / 2])
def test_planted_rotation_in_a_known_plane_gives_that_angle(theta):
    u, s, v, w = _planted()
    wa = u @ np.diag(s) @ v.T
    u1 = u[:, 0]
    rot = (
        np.eye(len(w))
        + (np.cos(theta) - 1) * (np.outer(u1, u1) + np.outer(w, w))
        + np.sin(theta) * (np.outer(w, u1) - np.outer(u1, w))
    )
    wb = rot @ wa
    for k in (1, 3, 12):
        ua, _, _ = singular_vectors(wa, k)
        ub, _, _ = singular_vectors(wb, k)
        ang = principal_angles(ua, ub)
        expected = np.zeros(k)
        expected[-1] = theta
        # absolute error ~1e-15: the sine formula keeps tiny angles exact
        np.testing.assert_allclose(ang, expected, atol=1e-12, rtol=1e-9)


def test_shared_coordinates_keep_angles():
    rng = np.random.default_rng(3)
    qa = torch.as_tensor(_orth(rng, 400, 10))
    qb = torch.as_tensor(_orth(rng, 400, 10)) * 0.1 + qa
    qb, _ = torch.linalg.qr(qb)
    ca, cb = _shared_coordinates(qa, qb)
    assert ca.shape == (20, 10)
    for k in (1, 5, 10):
        np.testing.assert_allclose(
            angles_between_bases(ca[:, :k], cb[:, :k]),
            np.sort(sl.subspace_angles(qa[:, :k].numpy(), qb[:, :k].numpy())),
            atol=1e-12,
        )


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_angles_invariant_to_a_common_rotation(seed):
    rng = np.random.default_rng(seed)
    a, b, q = rng.standard_normal((15, 4)), rng.standard_normal((15, 3)), _orth(rng, 15, 15)
    np.testing.assert_allclose(principal_angles(q @ a, q @ b), principal_angles(a, b), atol=1e-10)


def test_overlap_is_mean_cos_squared():
    rng = np.random.default_rng(4)
    qa, qb = _orth(rng, 20, 5), _orth(rng, 20, 5)
    theta = principal_angles(qa, qb)
    assert subspace_overlap(qa, qb) == pytest.approx(np.mean(np.cos(theta) ** 2), rel=1e-12)
    assert subspace_overlap(qa, qa) == pytest.approx(1.0)


# -- singular vectors -------------------------------------------------------------------------------
def test_randomized_svd_matches_exact_where_the_spectrum_has_a_gap():
    rng = np.random.default_rng(5)
    u, v = _orth(rng, 1500, 1200), _orth(rng, 1200, 1200)
    s = np.concatenate([np.linspace(100, 50, 16), np.full(1184, 1.0)])
    w = torch.as_tensor((u * s) @ v.T)
    ue, se, _ = singular_vectors(w, 16, method="exact")
    ur, sr, _ = singular_vectors(w, 16, method="randomized")
    np.testing.assert_allclose(sr.numpy(), se.numpy(), rtol=1e-9)
    assert principal_angles(ue, ur).max() < 1e-6
    ua, _, _ = singular_vectors(w, 16)  # auto picks randomised here: 1200 > 1024, 16 <= 150
    assert principal_angles(ue, ua).max() < 1e-6


def test_seeded_svd_lowrank_leaves_the_global_generator_alone():
    from explorer.kernel.subspaces import seeded_svd_lowrank

    rng = np.random.default_rng(0)
    spectrum = 0.7 ** np.arange(80)  # decaying: 20 columns and 4 power iterations resolve the top
    w = torch.as_tensor((_orth(rng, 300, 80) * spectrum) @ _orth(rng, 80, 80).T)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    torch.rand(1)  # a training loop drew once ...
    u, s, v = seeded_svd_lowrank(w, 20, 4, seed=7)  # ... then the metrics ran ...
    torch.testing.assert_close(torch.rand(2), expected[1:])  # ... and its stream goes on
    again = seeded_svd_lowrank(w, 20, 4, seed=7)
    assert all(torch.equal(a, b) for a, b in zip((u, s, v), again, strict=True))
    torch.testing.assert_close(s[:5], torch.linalg.svdvals(w)[:5], rtol=1e-10, atol=0)
    wide_u, wide_s, wide_v = seeded_svd_lowrank(w.mT, 20, 4, seed=7)  # the tall side is used
    torch.testing.assert_close(wide_s, s)
    torch.testing.assert_close((wide_u * wide_s) @ wide_v.mT, ((u * s) @ v.mT).mT)


def test_singular_vectors_have_deterministic_signs():
    w = np.random.default_rng(6).standard_normal((8, 5))
    u1, s1, vh1 = singular_vectors(w)
    u2, _, _ = singular_vectors(-w)
    np.testing.assert_allclose(u1.numpy(), u2.numpy(), atol=1e-12)
    np.testing.assert_allclose((u1 * s1) @ vh1, w, atol=1e-12)
    with pytest.raises(ValueError, match="method"):
        singular_vectors(w, 2, method="magic")


# -- intruders ------------------------------------------------------------------------------------
def test_planted_rank_one_update_outside_the_top_subspace_is_one_intruder():
    u, s, v, w = _planted()
    wa = u @ np.diag(s) @ v.T
    z = v[:, 0]
    # B v_1 = 12 u_1 + 30 w: B's top left vector is (12 u_1 + 30 w) / sqrt(12^2 + 30^2), whose
    # cosine with u_1 is 12 / sqrt(1044) = 0.371 and 0 with every other vector of A
    wb = wa + 30.0 * np.outer(w, z)
    ua, _, _ = singular_vectors(wa)
    ub, _, _ = singular_vectors(wb, 10)
    cos = intruder_cosines(ua, ub)
    assert cos.shape == (10, 12)
    assert list(intruder_dimensions(cos, 10, 0.5)) == [0]
    assert cos[0].max() == pytest.approx(12 / np.sqrt(1044), rel=1e-12)
    np.testing.assert_allclose(cos[0, 1:], 0, atol=1e-12)
    assert subspace_overlap(ua[:, :10], ub) < 1
    same = intruder_cosines(ua, singular_vectors(wa, 10)[0])
    assert len(intruder_dimensions(same)) == 0
    np.testing.assert_allclose(same.max(axis=1), 1, atol=1e-12)


def test_intruder_threshold_and_k_move_without_recomputing():
    cos = np.array([[0.9, 0.1], [0.3, 0.2], [0.45, 0.1]])
    assert list(intruder_dimensions(cos, k=3, epsilon=0.5)) == [1, 2]
    assert list(intruder_dimensions(cos, k=2, epsilon=0.5)) == [1]
    assert list(intruder_dimensions(cos, k=3, epsilon=0.4)) == [1]


# -- updates -----------------------------------------------------------------------------------------
def test_update_energy_inside_and_outside_the_principal_subspace():
    u, s, v, _ = _planted()
    inside = u[:, :3] @ np.diag([3.0, 2, 1]) @ v[:, :3].T
    outside = u[:, 5:] @ v[:, 5:].T
    assert update_energy(inside, u[:, :3], v[:, :3]) == pytest.approx((1.0, 1.0))
    one, two = update_energy(outside, u[:, :3], v[:, :3])
    assert one == pytest.approx(0.0, abs=1e-24) and two == pytest.approx(0.0, abs=1e-24)
    mixed = inside + outside
    expected = 14 / (14 + 7)
    assert update_energy(mixed, u[:, :3])[0] == pytest.approx(expected)
    assert np.isnan(update_energy(np.zeros_like(inside), u[:, :3])[0])


def test_update_in_basis_is_diagonal_for_a_rescaling():
    u, s, v, _ = _planted()
    delta = u @ np.diag(0.1 * s) @ v.T
    m = update_in_basis(delta, u, v)
    np.testing.assert_allclose(m, np.diag(0.1 * s), atol=1e-12)


def test_update_spectrum_of_a_rank_one_update():
    x = np.outer(np.arange(1.0, 5), np.arange(1.0, 4))
    spec = update_spectrum(x)
    assert spec["dominance"] == pytest.approx(1.0)
    assert spec["effective_rank"] == pytest.approx(1.0)
    assert np.isnan(update_spectrum(np.zeros((3, 3)))["dominance"])


def test_task_vector_cosines():
    a = np.array([[1.0, 0], [0, 0]])
    b = np.array([[0, 1.0], [0, 0]])
    c = task_vector_cosines([a, b, 2 * a])
    np.testing.assert_allclose(c, [[1, 0, 1], [0, 1, 0], [1, 0, 1]], atol=1e-15)


# -- ex.compare on planted checkpoints --------------------------------------------------------------
def _state(w):
    return {"0.weight": torch.as_tensor(w, dtype=torch.float32)}


def test_compare_identical_checkpoints_has_zero_angles_and_no_intruders():
    u, s, v, _ = _planted()
    wa = u @ np.diag(s) @ v.T
    cmp = ex.compare(_state(wa), _state(wa))
    df = cmp.frame()
    assert df.k.tolist() == [1, 2, 4, 8, 10, 12]  # default_ks(12) and intruder_k
    assert default_ks(12) == [1, 2, 4, 8, 12]
    np.testing.assert_allclose(df.angle_max_left, 0, atol=1e-5)
    np.testing.assert_allclose(df.overlap_right, 1, atol=1e-10)
    assert (df.n_intruders == 0).all()
    assert df.principal_share.isna().all()  # zero update: shares are undefined
    assert (df.status == "ok").all()


def test_compare_finds_the_planted_intruder_and_task_cosines():
    u, s, v, w = _planted()
    wa = u @ np.diag(s) @ v.T
    wb = wa + 30.0 * np.outer(w, v[:, 0])
    wc = wa + 0.5 * np.outer(u[:, 0], v[:, 0])  # a rescaling of A's top direction
    cmp = ex.compare(_state(wa), [_state(wb), _state(wc)], ks=[1, 2, 4])
    intr = cmp.intruders()
    assert intr.n_intruders.tolist() == [1, 0]
    (tasks,) = cmp.task_cosines.values()
    np.testing.assert_allclose(tasks, np.eye(2), atol=1e-6)  # w and u_1 are orthogonal
    df = cmp.frame().set_index(["b", "k"])
    first, second = cmp.names
    # weights are stored in float32, so angles hold to ~1e-5 degrees
    angle = np.degrees(np.arccos(12 / np.sqrt(1044)))
    assert df.loc[(first, 1), "angle_max_left"] == pytest.approx(angle, abs=1e-4)
    assert df.loc[(second, 1), "principal_share"] == pytest.approx(1.0)
    assert df.loc[(second, 1), "diagonal_share"] == pytest.approx(1.0)
    assert df.loc[(first, 1), "delta_dominance"] == pytest.approx(1.0)
    cos = cmp.cosines(df.address.iloc[0], b=first)
    assert cos["intruder"].shape == (12, 12) and cos["cross"].shape == (12, 12)


def test_compare_reports_nan_layers_and_goes_on():
    good = {"0.weight": torch.randn(6, 4), "2.weight": torch.randn(3, 6)}
    bad = {"0.weight": torch.full((6, 4), float("nan")), "2.weight": torch.randn(3, 6)}
    cmp = ex.compare(good, bad)
    status = cmp.frame().groupby("address").status.first()
    assert status.tolist() == ["skipped: NaN/Inf values in b", "ok"]
    assert cmp.intruders().n_intruders.isna().tolist() == [True, False]


def test_principal_cosines_at_any_k_match_scipy():
    """Between the sweep's k (here 1, 2, 4) the cosines come from the kept U_A^T U_B block."""
    rng = np.random.default_rng(3)
    wa = rng.standard_normal((24, 12))
    wb = wa + 0.8 * rng.standard_normal((24, 12))
    cmp = ex.compare(_state(wa), _state(wb), ks=[1, 2, 4])
    address = cmp.frame().address.iloc[0]
    ua, ub = (np.linalg.svd(_state(w)["0.weight"].double().numpy())[0] for w in (wa, wb))
    for k in (1, 3, 4, 7, 12):
        want = np.cos(np.sort(sl.subspace_angles(ua[:, :k], ub[:, :k])))
        got = cmp.principal_cosines(address, k)
        np.testing.assert_allclose(got, want, atol=1e-6)
    np.testing.assert_allclose(cmp.principal_cosines(address, 4), np.cos(cmp.angles(address, 4)))
    with pytest.raises(KeyError, match="k=13"):
        cmp.principal_cosines(address, 13)
