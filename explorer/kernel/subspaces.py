"""Subspaces of two weight matrices: principal angles, overlap, intruder dimensions, updates.

Definitions follow REFERENCES.md ("Two checkpoints"). ``W_A`` is the reference (the base), ``W_B``
the other checkpoint, both ``m x n``; ``U_A S_A V_A^T`` is the thin SVD of ``W_A`` and
``Delta = W_B - W_A`` the update. Every function takes numpy arrays or torch tensors, computes on
the tensor's device in its dtype (non-float input becomes float64) and returns numpy arrays or
Python numbers.

Which SVD, and why (:func:`singular_vectors`):

* **exact** (``torch.linalg.svd``, thin) whenever every singular vector is needed (intruder
  dimensions compare B's top vectors with *all* of A's, and ``k`` near the rank) or the matrix is
  small (``min(m, n) <= 1024``: a 1024 x 1024 exact SVD is a few tens of milliseconds on a CPU);
* **randomised** (``torch.svd_lowrank``, Halko et al. 2011, ``q = k + 10`` with 4 power
  iterations) for the top ``k <= min(m, n) / 8`` vectors of a larger matrix: at ``k = 64`` on a
  4096 x 4096 matrix it is ~6 ms on an H100 against ~1.1 s for the exact SVD. Its top vectors are
  accurate to ``(s_{k+p+1} / s_j)^(2 q + 1)`` (Halko et al., Thm. 10.8), so angles are trustworthy
  only where the spectrum has a gap at ``k``; ``method="exact"`` removes the doubt.
"""

from __future__ import annotations

import numpy as np
import torch

from explorer.kernel.spectra import _tensor, effective_rank, esd, stable_rank

__all__ = [
    "angles_between_bases",
    "intruder_cosines",
    "intruder_dimensions",
    "orthonormal_basis",
    "principal_angles",
    "singular_vectors",
    "subspace_overlap",
    "task_vector_cosines",
    "update_energy",
    "update_in_basis",
    "update_spectrum",
]

#: Exact SVD at or below this smaller side; randomised only above it and for k <= min(m, n) / 8.
EXACT_MAX_SIDE = 1024
_OVERSAMPLE = 10
_POWER_ITERS = 4


def _float(x) -> torch.Tensor:
    t, _ = _tensor(x)
    return t if t.is_floating_point() else t.double()


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().numpy()


def orthonormal_basis(A) -> torch.Tensor:
    """An orthonormal basis of the column space of ``A`` (``scipy.linalg.orth``'s rule).

    Left singular vectors whose singular value exceeds ``s_1 * max(m, n) * eps``.
    """
    a = _float(A)
    if a.ndim != 2:
        raise ValueError(f"expected a 2-D matrix whose columns span a subspace, got {a.ndim}-D")
    if a.numel() == 0:
        return a.new_zeros((a.shape[0], 0))
    u, s, _ = torch.linalg.svd(a, full_matrices=False)
    tol = s[0] * max(a.shape) * torch.finfo(a.dtype).eps
    return u[:, : int((s > tol).sum())]


def principal_angles(A, B) -> np.ndarray:
    """Principal angles (radians, ascending) between the column spaces of ``A`` and ``B``.

    With orthonormal bases ``Q_A``, ``Q_B`` (:func:`orthonormal_basis`, so rank-deficient input
    is fine), ``cos theta_i`` are the singular values of ``Q_A^T Q_B`` (Björck & Golub 1973). Where
    ``cos^2 theta >= 1/2`` the angle is taken from the sines instead, the singular values of
    ``Q_B - Q_A Q_A^T Q_B`` (Knyazev & Argentati 2002), which keeps small angles accurate to
    machine precision where ``arccos`` would lose half the digits. There are
    ``min(rank A, rank B)`` angles. This is ``scipy.linalg.subspace_angles`` sorted ascending,
    except that scipy pairs its sine/cosine switch with the angles in reverse order, so where small
    and large angles mix it takes small ones from ``arccos`` (absolute error ~1e-8 in float64);
    here each angle takes the accurate formula.
    """
    qa, qb = orthonormal_basis(A), orthonormal_basis(B)
    if qa.shape[0] != qb.shape[0]:
        raise ValueError(
            f"the subspaces live in different spaces: {qa.shape[0]} vs {qb.shape[0]} rows"
        )
    return angles_between_bases(qa, qb)


def angles_between_bases(qa: torch.Tensor, qb: torch.Tensor) -> np.ndarray:
    """:func:`principal_angles` for bases already orthonormal (no re-orthogonalisation)."""
    qb = qb.to(qa.dtype)
    if qa.shape[1] < qb.shape[1]:
        qa, qb = qb, qa
    if qb.shape[1] == 0:
        return np.zeros(0)
    cross = qa.mT @ qb
    cos = torch.linalg.svdvals(cross).clamp(0, 1).flip(0)  # ascending cosines = descending angles
    sin = torch.linalg.svdvals(qb - qa @ cross).clamp(0, 1)  # descending sines
    theta = torch.where(cos**2 >= 0.5, torch.arcsin(sin), torch.arccos(cos))
    return np.sort(_numpy(theta))


def subspace_overlap(QA, QB) -> float:
    """Overlap ``||Q_A^T Q_B||_F^2 / k`` of two orthonormal ``k``-frames: mean ``cos^2`` of the
    principal angles, 1 for the same subspace, ``k / n`` expected for random ones in ``R^n``."""
    qa, qb = _float(QA), _float(QB)
    k = min(qa.shape[1], qb.shape[1])
    if k == 0:
        return float("nan")
    return float((qa.mT @ qb.to(qa.dtype)).square().sum() / k)


def singular_vectors(W, k: int | None = None, *, method: str = "auto", seed: int = 0):
    """Top-``k`` singular triplets ``(U, S, Vh)`` of ``W`` (``U`` is m x k, ``Vh`` is k x n).

    ``method``: ``"exact"`` (thin ``torch.linalg.svd``), ``"randomized"`` (``torch.svd_lowrank``
    with ``k + 10`` columns and 4 power iterations, seeded) or ``"auto"``: randomised only when
    ``min(m, n) > 1024`` and ``k <= min(m, n) / 8`` (see the module docstring). Signs are fixed so
    that the largest-magnitude entry of each left vector is positive (deterministic output).
    """
    w = _float(W)
    r = min(w.shape)
    k = r if k is None else max(0, min(int(k), r))
    if method == "auto":
        method = "randomized" if r > EXACT_MAX_SIDE and k <= r // 8 else "exact"
    if method == "exact":
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
        u, s, vh = u[:, :k], s[:k], vh[:k]
    elif method == "randomized":
        u, s, v = seeded_svd_lowrank(w, min(k + _OVERSAMPLE, r), _POWER_ITERS, seed)
        u, s, vh = u[:, :k], s[:k], v[:, :k].mT
    else:
        raise ValueError(f"method must be 'auto', 'exact' or 'randomized', not {method!r}")
    flip = torch.sign(u.gather(0, u.abs().argmax(0, keepdim=True)))
    flip[flip == 0] = 1
    return u * flip, s, vh * flip.mT


def seeded_svd_lowrank(x: torch.Tensor, q: int, niter: int, seed: int):
    """``torch.svd_lowrank(x, q, niter)``'s algorithm with its test matrix drawn from ``seed``.

    Halko, Martinsson & Tropp 2011 (Alg. 4.4, as ``torch.svd_lowrank``): ``Q = orth(X Omega)``
    with ``niter`` power iterations ``Q = orth(X orth(X^T Q))``, then the SVD of ``Q^T X``. The
    Gaussian ``Omega`` comes from a private ``torch.Generator``: torch's global generator, which a
    training loop on another thread may be drawing from, is neither read nor reset. Returns
    ``(U, S, V)`` as ``torch.svd_lowrank`` does (``x ~ U diag(S) V^T``).
    """
    if x.shape[-2] < x.shape[-1]:  # work on the tall side, as torch.svd_lowrank does
        v, s, u = seeded_svd_lowrank(x.mT, q, niter, seed)
        return u, s, v
    gen = torch.Generator(device=x.device).manual_seed(seed)
    omega = torch.randn(x.shape[-1], q, generator=gen, device=x.device, dtype=x.dtype)
    basis = torch.linalg.qr(x @ omega).Q
    for _ in range(niter):
        basis = torch.linalg.qr(x @ torch.linalg.qr(x.mT @ basis).Q).Q
    u, s, vh = torch.linalg.svd(basis.mT @ x, full_matrices=False)
    return basis @ u, s, vh.mT


def intruder_cosines(basis_a, top_b) -> np.ndarray:
    """``|cos|`` between each of B's top vectors and every one of A's singular vectors.

    ``basis_a``: all of A's (left or right) singular vectors as columns (``m x r``); ``top_b``:
    B's top ``k`` ones as columns, by descending singular value. Returns the ``k x r`` matrix
    ``|Y_B^T X_A|``; row ``j``'s maximum decides whether B's ``j``-th vector is an intruder.
    """
    xa, yb = _float(basis_a), _float(top_b)
    return _numpy((yb.mT @ xa.to(yb.dtype)).abs())


def intruder_dimensions(cosines, k: int = 10, epsilon: float = 0.5) -> np.ndarray:
    """Indices ``j < k`` of B's top vectors whose max ``|cos|`` with all of A's is ``< epsilon``.

    Shuttleworth et al. 2024 ("LoRA vs Full Fine-tuning: An Illusion of Equivalence"), defaults
    ``k = 10``, ``epsilon = 0.5``. ``cosines`` is :func:`intruder_cosines`' matrix, so ``k`` and
    ``epsilon`` can move without another SVD.
    """
    c = np.asarray(cosines)[: int(k)]
    return np.flatnonzero(c.max(axis=1) < epsilon) if c.size else np.zeros(0, dtype=np.int64)


def update_energy(delta, U_k, V_k=None) -> tuple[float, float]:
    """Share of an update's energy in A's top-``k`` principal subspace (PiSSA / MiLoRA view).

    One-sided ``||U_k^T Delta||_F^2 / ||Delta||_F^2`` and, when ``V_k`` (``n x k``) is given,
    two-sided ``||U_k^T Delta V_k||_F^2 / ||Delta||_F^2``; the minor share is one minus either.
    NaN for a zero update.
    """
    d, u = _float(delta), _float(U_k)
    u = u.to(d.dtype)
    total = d.square().sum()
    if total == 0:
        return float("nan"), float("nan")
    left = u.mT @ d
    one = float(left.square().sum() / total)
    if V_k is None:
        return one, float("nan")
    return one, float((left @ _float(V_k).to(d.dtype)).square().sum() / total)


def update_in_basis(delta, U_k, V_k) -> np.ndarray:
    """``M = U_k^T Delta V_k``: the update in A's singular basis (SVFT view, Lingam et al. 2024).

    Its diagonal rescales A's singular directions; its off-diagonal entries rotate them.
    """
    d = _float(delta)
    return _numpy(_float(U_k).to(d.dtype).mT @ d @ _float(V_k).to(d.dtype))


def update_spectrum(delta) -> dict[str, float]:
    """Spectrum of the update (MultiLoRA view): is the change dominated by one direction?

    ``dominance = sigma_1^2 / sum sigma_i^2``, ``stable_rank = sum sigma^2 / sigma_1^2``,
    ``effective_rank`` (Roy & Vetterli) of ``Delta``'s singular values. NaN for a zero update.
    The singular values come from the Gram ESD in float64 (:func:`explorer.kernel.esd`, ~10x
    faster than ``svdvals`` on a GPU); values below ``sigma_1 * 1e-7`` are not resolved there,
    which moves none of the three numbers by more than ~1e-7 relative.
    """
    s = esd(_float(delta), dtype=torch.float64).clamp_min(0).sqrt()
    if s.numel() == 0 or s[0] == 0:
        return {
            "dominance": float("nan"),
            "stable_rank": float("nan"),
            "effective_rank": float("nan"),
        }
    sr = float(stable_rank(s))
    return {"dominance": 1.0 / sr, "stable_rank": sr, "effective_rank": float(effective_rank(s))}


def task_vector_cosines(deltas) -> np.ndarray:
    """Cosine matrix ``cos(tau_i, tau_j)`` of task vectors ``tau_i = W_i - W_base`` (flattened).

    Ilharco et al. 2023, "Editing Models with Task Arithmetic". A zero task vector has NaN
    cosines.
    """
    flat = torch.stack([_float(d).reshape(-1).double() for d in deltas])
    norms = flat.norm(dim=1)
    gram = flat @ flat.mT
    with np.errstate(invalid="ignore", divide="ignore"):
        return _numpy(gram) / np.outer(_numpy(norms), _numpy(norms))
