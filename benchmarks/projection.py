"""explorer.kernel.pca vs sklearn.decomposition.PCA on the same data, in one process, one run.

    python benchmarks/projection.py [--n 20000] [--d 384 1024 4096] [--repeat 3] [--device auto]

For each D: a float32 N x D matrix with a power-law spectrum (``lambda_i ~ 1/i``); ours is ``pca(X, 2)`` on the chosen
device (``solver="auto"``: exact covariance eigendecomposition up to D = 2048, randomised SVD
above), timed including the copy to the device and synchronised; scikit-learn's is
``PCA(2, svd_solver="auto", random_state=0).fit_transform`` on the CPU with the same float32 data.
Each side runs ``--repeat`` times after a warm-up; the medians and their ratio are printed, with
the largest coordinate difference relative to the coordinates' scale (the sign conventions are
the same).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np
import torch


def timed(fn, repeat: int) -> tuple[float, object]:
    out = fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--d", type=int, nargs="+", default=[384, 1024, 4096])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    from sklearn.decomposition import PCA

    from explorer.kernel import resolve_device
    from explorer.kernel.projection import pca

    dev = resolve_device(args.device)
    print(f"device {dev}, N = {args.n}, load average {os.getloadavg()[0]:.1f}")
    print(f"{'D':>6} {'solver':>11} {'ours s':>8} {'sklearn s':>10} {'ratio':>6} {'max diff':>9}")
    rng = np.random.default_rng(0)
    for d in args.d:
        # a power-law spectrum lambda_i ~ 1/i, as representations tend to have (gap at the top)
        scales = (10.0 / np.sqrt(np.arange(1, d + 1))).astype(np.float32)
        X = (rng.standard_normal((args.n, d), dtype=np.float32) * scales).astype(np.float32)

        def ours(X=X):
            out = pca(torch.from_numpy(X).to(dev), 2)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            return out

        t_ours, r = timed(ours, args.repeat)
        t_ref, ref = timed(lambda X=X: PCA(2, random_state=0).fit_transform(X), args.repeat)
        coords = r.coords.cpu().numpy()
        diff = np.abs(coords - ref).max() / np.abs(ref).max()
        print(
            f"{d:>6} {r.solver:>11} {t_ours:>8.3f} {t_ref:>10.3f} {t_ref / t_ours:>5.1f}x {diff:>9.1e}"
        )


if __name__ == "__main__":
    main()
