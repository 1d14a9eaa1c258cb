"""Full SVDs of Llama-2-7B-shaped matrices on one GPU: which way should ``ex.compare`` take?

    python benchmarks/svd_gpu.py                              # CUDA: 4096 x 4096, 11008 x 4096
    python benchmarks/svd_gpu.py --device cpu --shrink 32     # smoke test on a CPU

``ex.compare`` needs every singular vector of the base matrix A (the intruder test compares B's
top vectors with all of A's), through a float32 ``torch.linalg.svd``. On an H200 that cost about
1.2 s per 7B matrix, so a 7B pair takes ~265 s against issue 5's goal of 15 s (~67 ms a matrix).
This prints, per shape, the seconds of each candidate (the mean of 2 after a warm-up) and its
accuracy against a float64 SVD, so that one GPU run says which to build:

* ``default``, ``gesvd``, ``gesvdj``, ``gesvda``: ``torch.linalg.svd`` in float32 with that
  cuSOLVER driver (``default``: torch's choice; the named drivers exist on CUDA only);
* ``gram64``: ``G = W^T W`` (the smaller side) in float64, ``eigh``, then ``U = W V / sigma``;
  exact in exact arithmetic, and in float64 the squared condition number costs ~``eps64 *
  (sigma_1 / sigma_i)^2`` in the i-th vector, far below float32's rounding for these matrices.

Accuracy, per candidate: ``sigma_err`` the largest ``|sigma_i - sigma_i^ref| / sigma_1``;
``sin64`` the largest principal-angle sine between its top-64 left vectors and the reference's;
``orth`` the largest entry of ``|U^T U - I|`` (all vectors; the intruder cosines need them
orthonormal). Data: ``W ~ N(0, 0.02^2)`` plus a rank-16 update, seeded. One JSON line per shape
(``part`` ``"svd MxN"``, ``seconds`` the default's, then each candidate's seconds under its
name and its accuracy as ``<name>_sigma_err``, ``<name>_sin64``, ``<name>_orth``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import torch
from llama_shapes import HIDDEN, MLP, base_and_tuned, sync  # benchmarks/ is on sys.path

DRIVERS = ("gesvd", "gesvdj", "gesvda")


def matrix(m: int, n: int, device: str) -> torch.Tensor:
    """A fine-tuned matrix, as ``ex.compare``'s B in ``compare_gpu.py``."""
    return base_and_tuned(m, n, torch.Generator(device=device).manual_seed(m * 7 + n), device)[1]


def gram64(w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(U, sigma)`` of ``w`` from the float64 Gram matrix of its smaller side."""
    w64 = w.double()
    tall = w.shape[0] >= w.shape[1]
    lam, vecs = torch.linalg.eigh(w64.mT @ w64 if tall else w64 @ w64.mT)
    lam, vecs = lam.flip(0), vecs.flip(1)
    sigma = lam.clamp_min(0).sqrt()
    u = (w64 @ vecs) / sigma.clamp_min(torch.finfo(torch.float64).tiny) if tall else vecs
    return u.float(), sigma.float()


def candidates(device: str) -> dict[str, Callable]:
    def svd(driver: str | None):
        def run(w):
            u, s, _ = torch.linalg.svd(w, full_matrices=False, driver=driver)
            return u, s

        return run

    out = {"default": svd(None)}
    if device.startswith("cuda"):
        out.update({d: svd(d) for d in DRIVERS})
    out["gram64"] = gram64
    return out


def timed(f: Callable, w: torch.Tensor, device: str) -> tuple[float, tuple]:
    result = f(w)  # warm-up (and the result that is checked)
    times = []
    for _ in range(2):
        sync(device)
        t0 = time.perf_counter()
        f(w)
        sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


def accuracy(u, s, u_ref, s_ref, k: int = 64) -> dict[str, float]:
    u, s = u.double(), s.double()
    sigma_err = float((s - s_ref).abs().max() / s_ref[0])
    k = min(k, u.shape[1])
    cos = torch.linalg.svdvals(u[:, :k].mT @ u_ref[:, :k]).clamp(0, 1)
    eye = torch.eye(u.shape[1], dtype=u.dtype, device=u.device)
    return {
        "sigma_err": float(f"{sigma_err:.2e}"),
        "sin64": float(f"{float((1 - cos.min() ** 2).clamp_min(0).sqrt()):.2e}"),
        "orth": float(f"{float((u.mT @ u - eye).abs().max()):.2e}"),
    }


def bench_shape(m: int, n: int, device: str) -> dict:
    w = matrix(m, n, device)
    u_ref, s_ref, _ = torch.linalg.svd(w.double(), full_matrices=False)
    row: dict = {"part": f"svd {m}x{n}", "device": device}
    for name, f in candidates(device).items():
        try:
            seconds, (u, s) = timed(f, w, device)
        except RuntimeError as err:  # a driver this build or card lacks
            row[name] = f"failed: {str(err).splitlines()[0][:80]}"
            continue
        row[name] = round(seconds, 3)
        row.update({f"{name}_{k}": v for k, v in accuracy(u, s, u_ref, s_ref).items()})
    row["seconds"] = row["default"] if isinstance(row.get("default"), float) else None
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--shrink", type=int, default=1, help="divide the widths (smoke tests)")
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run on a GPU machine (or --device cpu --shrink 32 to smoke)")
        return
    h, f = HIDDEN // args.shrink, MLP // args.shrink
    for m, n in ((h, h), (f, h)):
        print(json.dumps(bench_shape(m, n, args.device)), flush=True)


if __name__ == "__main__":
    main()
