"""Time to the first and to the final picture: 50k points x 12 depths, PCA first, then UMAP (CPU).

    python benchmarks/projection_pictures.py [--n 50000] [--dim 384] [--depths 12]
        [--umap-depths 12] [--independent] [--runs 1]

What a user of the projection view waits for. Data: ``--n`` points in ``--dim`` dimensions at each
of ``--depths`` depths, 10 Gaussian clusters whose spread and position drift with depth (float32).
Both projections start in the background at once, as the dashboard (``ex.Explorer``) starts
them: ``ex.project(acts, "pca", background=True)`` and ``ex.project(acts, "umap",
background=True, **LAYOUT_OPTIONS["umap"])`` (each depth starts from the previous one's layout,
:data:`explorer.widgets.explorer_view.LAYOUT_OPTIONS`), on one engine, the disk cache off.
Printed are the seconds from the call until the first PCA depth is ready (the first picture),
until every PCA depth is, until the first UMAP depth is, and until the last is (the final
picture). ``--umap-depths`` lays out only the first that many depths
with UMAP (to keep a run short); the per-depth UMAP time is printed too. ``--independent``
lays out each depth on its own (spectral initialisation, every epoch) instead of from the
previous depth's layout (fewer epochs where the neighbours changed little,
:func:`explorer.kernel.umap_layout.warm_epochs`). The numba code compiles on the first use on a
machine and is loaded from numba's disk cache by later processes, so run it twice to see both
(``explorer demo --build-only`` compiles it ahead); ``--runs 2`` measures a second time in the
same process, as a second picture in the same kernel would wait.
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
import torch


def clusters(n: int, dim: int, depths: int, seed: int = 0) -> dict[int, torch.Tensor]:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 10, n)
    centres = rng.normal(size=(10, dim)).astype(np.float32)
    noise = rng.normal(size=(n, dim)).astype(np.float32)
    out = {}
    for d in range(depths):
        drift = rng.normal(scale=0.2, size=(10, dim)).astype(np.float32)
        centres = centres + drift
        out[d] = torch.from_numpy(centres[label] * (1 + d / 4) + noise * (1.5 - d / depths))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=50_000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--depths", type=int, default=12)
    p.add_argument("--umap-depths", type=int, default=None)
    p.add_argument("--independent", action="store_true", help="no warm start between depths")
    p.add_argument("--runs", type=int, default=1, help="measure this many times in one process")
    args = p.parse_args()
    for run in range(1, args.runs + 1):
        if args.runs > 1:
            print(f"run {run} of {args.runs} in this process")
        measure(args)


def measure(args: argparse.Namespace) -> None:
    import explorer as ex
    from explorer.jobs import JobEngine
    from explorer.widgets.explorer_view import LAYOUT_OPTIONS

    options = {} if args.independent else LAYOUT_OPTIONS["umap"]

    acts = ex.Activations(clusters(args.n, args.dim, args.depths))
    umap_depths = acts.depths[: args.umap_depths or args.depths]
    engine = JobEngine(cache=False)
    seen: dict[str, float] = {}
    lock = threading.Lock()

    def mark(name: str) -> None:
        with lock:
            seen.setdefault(name, time.perf_counter() - t0)

    print(
        f"{args.n} points x {args.dim} dims x {args.depths} depths (UMAP on {len(umap_depths)}), "
        f"UMAP options {options}, cpu cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}"
    )
    t0 = time.perf_counter()
    pca = ex.project(acts, "pca", background=True, engine=engine, cache=False, device="cpu")
    umap = ex.project(
        acts, "umap", depths=umap_depths, background=True, engine=engine, cache=False,
        **options,
    )  # fmt: skip
    returned = time.perf_counter() - t0
    pca.job.on_part(lambda depth, _: mark("first PCA depth"))
    umap.job.on_part(lambda depth, _: mark("first UMAP depth"))
    pca.wait()
    mark("every PCA depth")
    umap.wait()
    mark("every UMAP depth (final picture)")
    print(f"  both calls returned after        {returned:8.3f} s")
    for name, seconds in sorted(seen.items(), key=lambda kv: kv[1]):
        print(f"  {name:32s} {seconds:8.2f} s")
    per_depth = (
        seen["every UMAP depth (final picture)"] - seen.get("first UMAP depth", 0.0)
    ) / max(1, len(umap_depths) - 1)
    print(f"  UMAP per further depth           {per_depth:8.2f} s")
    print(f"  states: pca {pca.job.state}, umap {umap.job.state}")
    engine.shutdown()


if __name__ == "__main__":
    main()
