"""Intrinsic dimension: explorer vs scikit-dimension (and DADApy if importable), same data, one run.

    python benchmarks/dimension_vs_skdim.py [--sizes 10000 50000] [--dim 384]
        [--skdim twonn mle lpca] [--skdim-max 10000] [--gpu-sizes 100000] [--gpu-1m]

Data: a 10-dimensional sphere isometrically embedded in ``--dim`` dimensions (float32), so the
right answer is ~10. For each size, ours (exact blocked kNN + fit, duplicates checked) and
scikit-dimension's TwoNN, MLE (n_neighbors=20, comb="mle") and lPCA (FO, global, as its
``fit``) are timed once each, with the ratio. scikit-dimension's TwoNN sorts full distance rows
(~300 s at 50k x 384 on a 2-core CPU): ``--skdim-max`` skips it above that size (``--skdim``
chooses which of its estimators run). DADApy's 2NN runs only if ``dadapy`` imports (it pins
numpy<2, so it lives in its own environment). With CUDA, ours also runs at ``--gpu-sizes`` x 768
and, with ``--gpu-1m``, TwoNN on 1M x 768. Peak memory: the process's max RSS on the CPU,
``torch.cuda.max_memory_allocated`` on the GPU. The machine's load average is printed: on a busy
2-core machine every time grows.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
import warnings

import numpy as np
import torch


def sphere(n: int, d: int, big_d: int, seed: int = 0, device: str = "cpu") -> torch.Tensor:
    g = torch.Generator(device=device).manual_seed(seed)
    z = torch.randn(n, d + 1, generator=g, device=device)
    z = z / z.norm(dim=1, keepdim=True)
    q = torch.linalg.qr(torch.randn(big_d, d + 1, generator=g, device=device))[0]
    return z @ q.T


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - t0, out


def rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def line(label: str, seconds: float, value: float, extra: str = "") -> None:
    print(f"  {label:34s} {seconds:8.2f} s   d = {value:7.3f}  {extra}")


def cpu_run(n: int, args, skdim, Data) -> None:
    from explorer.kernel import dimension as dm
    from explorer.kernel.neighbors import knn

    x = sphere(n, 10, args.dim)
    xn = x.numpy()
    print(f"\nN = {n} x {args.dim} (10-sphere), CPU")
    t_knn, _ = timed(lambda: knn(x, 2))
    line("explorer kNN (k=2) alone", t_knn, float("nan"))
    ours = {
        "twonn": timed(lambda: dm.twonn(x)),
        "mle": timed(lambda: dm.mle(x, k=20)),
        "lpca": timed(lambda: dm.LocalPCA(k=100, dtype=torch.float32).fit(x).dimension_),
    }
    for name, (t, v) in ours.items():
        line(f"explorer {name} (kNN + fit)", t, v, "local PCA, k=100" if name == "lpca" else "")
    if skdim is not None and n <= args.skdim_max:
        ref = {
            "twonn": lambda: skdim.id.TwoNN().fit(xn).dimension_,
            "mle": lambda: skdim.id.MLE().fit(xn, n_neighbors=20, comb="mle").dimension_,
            "lpca": lambda: skdim.id.lPCA(ver="FO").fit(xn).dimension_,
        }
        for name in args.skdim:
            t, v = timed(ref[name])
            note = "(its fit: one global PCA, not local)" if name == "lpca" else ""
            line(f"scikit-dimension {name}", t, v, f"ratio {t / ours[name][0]:6.1f}x {note}")
    elif skdim is not None:
        print(f"  scikit-dimension skipped above --skdim-max {args.skdim_max}")
    if Data is not None:
        t, v = timed(lambda: Data(xn.astype(np.float64)).compute_id_2NN()[0])
        line("DADApy 2NN", t, v, f"ratio {t / ours['twonn'][0]:6.1f}x")
    print(f"  peak RSS {rss_gib():.2f} GiB, load average {os.getloadavg()[0]:.2f}")


def gpu_run(n: int) -> None:
    from explorer.kernel import dimension as dm
    from explorer.kernel.neighbors import knn

    x = sphere(n, 10, 768, device="cuda")
    print(f"\nN = {n} x 768 (10-sphere), {torch.cuda.get_device_name()}")
    for precision in ("tf32", "fp32"):
        torch.cuda.reset_peak_memory_stats()
        t, _ = timed(lambda p=precision: knn(x, 2, precision=p))
        line(
            f"kNN k=2 {precision}",
            t,
            float("nan"),
            f"peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB",
        )
    t, v = timed(lambda: dm.twonn(x))
    line("explorer TwoNN (kNN tf32 + fit)", t, v)
    if n <= 200_000:
        t, v = timed(lambda: dm.mle(x, k=20))
        line("explorer MLE k=20", t, v)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--skdim", nargs="*", default=["twonn", "mle", "lpca"])
    parser.add_argument("--skdim-max", type=int, default=10_000)
    parser.add_argument("--gpu-sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--gpu-1m", action="store_true")
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    print(
        f"cpu cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    try:
        import skdim
    except ImportError:
        skdim = None
        print("scikit-dimension is not installed: ours only")
    try:
        from dadapy import Data
    except ImportError:
        Data = None
        print("DADApy is not importable here (it pins numpy<2): skipped")

    for n in args.sizes:
        cpu_run(n, args, skdim, Data)
    if torch.cuda.is_available():
        for n in list(args.gpu_sizes) + ([1_000_000] if args.gpu_1m else []):
            gpu_run(n)
    else:
        print("\nno CUDA: GPU sizes skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
