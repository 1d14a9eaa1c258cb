"""Intrinsic dimension on one GPU at 100k and 1M points (the GPU part of dimension_vs_skdim.py).

    python benchmarks/dimension_gpu.py                        # 100k and 1M x 768
    python benchmarks/dimension_gpu.py --sizes 100000 --budget 60
    python benchmarks/dimension_gpu.py --device cpu --sizes 3000 --dim 64   # smoke test

Data: a 10-dimensional sphere isometrically embedded in ``--dim`` dimensions (float32, on the
device), so the right answer is ~10. Per size: the kernel's exact kNN with k = 2 (TF32 candidate
products, exact distances), TwoNN (kNN + fit, duplicates checked) and, up to ``--mle-max``
points, MLE with k = 20. One JSON line per size (``part``, ``points``, ``seconds`` = TwoNN's,
the estimates, peak device memory); a size is skipped, with a line that says so, once
``--budget`` seconds have passed. Exits with a message (status 0) when the device is CUDA and
none is present.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from dimension_vs_skdim import sphere  # benchmarks/ is on sys.path when run as a script

from explorer.kernel import dimension as dm
from explorer.kernel.neighbors import knn


def timed(fn, device: str):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return round(time.perf_counter() - t0, 3), out


def run(n: int, args) -> dict:
    x = sphere(n, 10, args.dim, device=args.device)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    timed(lambda: knn(x[:2000], 2), args.device)  # warm-up
    knn_s, _ = timed(lambda: knn(x, 2), args.device)
    twonn_s, twonn = timed(lambda: dm.twonn(x), args.device)
    out = {"points": n, "dims": args.dim, "seconds": twonn_s, "twonn": round(twonn, 3)}
    out["knn2_seconds"] = knn_s
    if n <= args.mle_max:
        mle_s, mle = timed(lambda: dm.mle(x, k=20), args.device)
        out |= {"mle_seconds": mle_s, "mle": round(mle, 3)}
    if cuda:
        out["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    return out | {"goal_s": None}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--dim", type=int, default=768)
    p.add_argument("--mle-max", type=int, default=200_000, help="largest size MLE runs at")
    p.add_argument("--budget", type=float, default=300.0, help="seconds; later sizes are skipped")
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "dimension_gpu: no CUDA GPU on this machine (or a CPU build of torch); nothing to do."
        )
        return 0
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device
    start = time.perf_counter()
    for n in args.sizes:
        part = {"part": f"dimension {n}", "device": name}
        if time.perf_counter() - start > args.budget:
            print(json.dumps(part | {"status": "skipped", "why": "over --budget"}), flush=True)
            continue
        print(json.dumps(part | run(n, args)), flush=True)
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    return 0


if __name__ == "__main__":
    sys.exit(main())
