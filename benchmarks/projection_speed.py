"""UMAP per depth: umap-learn's parallel mode vs ``ex.project(acts, "umap")``, same data, one run.

    python benchmarks/projection_speed.py [--n 10000 50000] [--dim 384] [--repeat 1]
        [--quality-points 5000]

Data: ``--n`` points in ``--dim`` dimensions, 10 labelled classes of 4 sub-clusters each; every
sub-cluster lies near its own random 12-dimensional subspace (a power-law spread, plus isotropic
noise), as sentence or image embeddings do (float32, fixed seed). Both sides run in this process
with numba already compiled (a warm-up of each on 5,000 points first):

* umap-learn: ``umap.UMAP(n_neighbors=15, n_jobs=-1).fit_transform(X)`` (no ``random_state``: its
  parallel mode; pynndescent's approximate neighbours, spectral initialisation);
* ours: ``ex.project(acts, "umap", cache=False)`` for one depth (the disk cache off): exact
  neighbours up to 20,000 points, explorer's NN-descent above.

Printed per size: both times (median of ``--repeat`` runs, the two sides taking turns so that
both meet the same load), the median of the runs' ratios, and both qualities:
trustworthiness at k = 10 (``sklearn.manifold.trustworthiness`` on a seeded subset of
``--quality-points`` points; the same subset for both) and the leave-one-out 10-NN label accuracy
of the whole layout (:func:`explorer.kernel.knn_accuracy`). Quote the figures with the core count
printed in the first line (``taskset -c 0,1`` / ``NUMBA_NUM_THREADS=2`` mimic a 2-core CI).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
import warnings

import numpy as np
import torch


def embeddings(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labelled points near a union of low-dimensional subspaces (see the module docstring)."""
    rng = np.random.default_rng(seed)
    classes, subs, local = 10, 4, 12
    centres = rng.normal(size=(classes, dim)) * 3.0
    label = rng.integers(0, classes, n)
    sub = rng.integers(0, subs, n)
    x = np.empty((n, dim), dtype=np.float32)
    spread = 2.0 / np.sqrt(np.arange(1, local + 1))
    for c in range(classes):
        for s in range(subs):
            rows = np.flatnonzero((label == c) & (sub == s))
            basis = np.linalg.qr(rng.normal(size=(dim, local)))[0].T
            offset = centres[c] + rng.normal(size=dim) * 1.2
            z = rng.normal(size=(len(rows), local)) * spread
            x[rows] = offset + z @ basis + rng.normal(size=(len(rows), dim)) * 0.08
    return x, label


def timed(fns, repeat: int):
    """Run the functions in turn ``repeat`` times (so both sides meet the same load, on a
    machine whose speed drifts), and return each one's median seconds, its median ratio to the
    first's, and its last output."""
    times = [[] for _ in fns]
    outs = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - t0)
    ratios = [statistics.median(t / t0 for t, t0 in zip(ts, times[0], strict=True)) for ts in times]
    return [statistics.median(ts) for ts in times], ratios, outs


def quality(x, low, label, keep) -> tuple[float, float]:
    from sklearn.manifold import trustworthiness

    from explorer.kernel import knn_accuracy

    tw = trustworthiness(x[keep], low[keep], n_neighbors=10)
    return float(tw), knn_accuracy(low, label, k=10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, nargs="+", default=[10_000, 50_000])
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--repeat", type=int, default=1)
    p.add_argument("--quality-points", type=int, default=5000)
    p.add_argument("--ours-only", action="store_true", help="skip umap-learn (tuning runs)")
    args = p.parse_args()

    import explorer as ex
    from explorer.jobs import JobEngine
    from explorer.projection import import_umap

    umap = import_umap()
    engine = JobEngine(cache=False)

    def ours(x):
        acts = ex.Activations({0: torch.from_numpy(x)})
        return ex.project(acts, "umap", cache=False, engine=engine).raw[0]

    def theirs(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return umap.UMAP(n_neighbors=15, n_jobs=-1).fit_transform(x)

    t0 = time.perf_counter()
    warm, _ = embeddings(5000, args.dim, seed=1)
    ours(warm)
    if not args.ours_only:
        theirs(warm)
    print(
        f"cores {len(os.sched_getaffinity(0))}, numba threads {os.environ.get('NUMBA_NUM_THREADS', '-')}"
        f", torch threads {torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}, "
        f"warm-up {time.perf_counter() - t0:.1f} s"
    )
    head = f"{'N':>7} {'ours s':>7} {'umap-learn s':>12} {'ratio':>6}"
    head += f" {'trust ours':>10} {'trust u-l':>9} {'10-NN ours':>10} {'10-NN u-l':>9}"
    print(head)
    for n in args.n:
        x, label = embeddings(n, args.dim)
        rng = np.random.default_rng(0)
        keep = np.sort(rng.choice(n, min(n, args.quality_points), replace=False))
        sides = [lambda x=x: ours(x)] + ([] if args.ours_only else [lambda x=x: theirs(x)])
        seconds, ratios, outs = timed(sides, args.repeat)
        q_ours = quality(x, outs[0], label, keep)
        if args.ours_only:
            t_ours, t_ref, ratio, q_ref = (
                seconds[0],
                float("nan"),
                float("nan"),
                (float("nan"),) * 2,
            )
        else:
            (t_ours, t_ref), ratio = seconds, ratios[1]
            q_ref = quality(x, outs[1], label, keep)
        print(
            f"{n:>7} {t_ours:>7.2f} {t_ref:>12.2f} {ratio:>5.2f}x"
            f" {q_ours[0]:>10.4f} {q_ref[0]:>9.4f} {q_ours[1]:>10.4f} {q_ref[1]:>9.4f}",
            flush=True,
        )
    engine.shutdown()


if __name__ == "__main__":
    main()
