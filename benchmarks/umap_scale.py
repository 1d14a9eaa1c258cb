"""UMAP at scale on the CPU: each stage's time and the peak memory, and the spectral start
against umap-learn's on the same graph.

    python benchmarks/umap_scale.py [--n 200000] [--dim 32] [--compare-spectral]

The points are Gaussian with 8 of the ``dim`` coordinates 5x wider (one connected neighbour graph,
near-equal leading eigenvalues: the spectral start's hard case). Prints the seconds from the start
to the end of the neighbours (NN-descent above 20,000 points), of the graph and spectral start,
and of the 200 epochs, and the process's peak resident memory. ``--compare-spectral`` also
times umap-learn's ``spectral_layout`` and explorer's ``spectral_init`` on the same graph and
prints the largest principal angle between the two layouts (umap-learn's holds ``sqrt(N)``
Lanczos vectors: 8 N^1.5 bytes, 8 GB at a million points).

Measured on 2 cores: 1,000,000 x 32 in 185-202 s and 1.7 GB (703 s and 9.4 GB with umap-learn's
spectral start and the earlier NN-descent); at 200,000 x 32 the spectral starts take 27.9 s
(umap-learn) and 2.6-2.8 s (explorer), 0.02-1.3 degrees apart.
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def points(n: int, dim: int) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((n, dim), dtype=np.float32)
    x[:, : min(8, dim)] *= 5
    return x


def stages(x: np.ndarray) -> None:
    from explorer.kernel.umap_layout import umap_layout

    start, marks = time.perf_counter(), {}

    def progress(fraction: float) -> None:
        if fraction in (0.2, 0.3, 1.0):
            marks[fraction] = time.perf_counter() - start

    umap_layout(x, progress=progress)
    print(
        f"{len(x)} x {x.shape[1]}: neighbours {marks[0.2]:.1f} s, graph + spectral start "
        f"{marks[0.3] - marks[0.2]:.1f} s, epochs {marks[1.0] - marks[0.3]:.1f} s, "
        f"total {marks[1.0]:.1f} s; peak RSS {peak_mb():.0f} MB",
        flush=True,
    )


def compare_spectral(x: np.ndarray) -> None:
    import scipy.linalg
    import torch
    from umap.spectral import spectral_layout

    from explorer.kernel.fuzzy_graph import fuzzy_graph
    from explorer.kernel.neighbors import with_self
    from explorer.kernel.spectral_init import spectral_init
    from explorer.kernel.umap_layout import search_neighbors

    graph = fuzzy_graph(*with_self(*search_neighbors(torch.from_numpy(x), 15)))
    seconds, layouts = {}, {}
    for name, run in (
        ("explorer", lambda: spectral_init(graph, 2, x, np.random.RandomState(0))),
        ("umap-learn", lambda: spectral_layout(x, graph, 2, np.random.RandomState(0))),
    ):
        before = peak_mb()
        start = time.perf_counter()
        layouts[name] = run()
        seconds[name] = time.perf_counter() - start
        print(
            f"spectral start, {name}: {seconds[name]:.2f} s, peak RSS rose "
            f"{peak_mb() - before:.0f} MB (a lower bound: only what went above the earlier peak)"
        )
    cosines = scipy.linalg.svdvals(
        scipy.linalg.orth(layouts["explorer"]).T @ scipy.linalg.orth(layouts["umap-learn"])
    )
    angle = np.degrees(np.arccos(np.clip(cosines.min(), -1.0, 1.0)))
    print(
        f"ratio {seconds['umap-learn'] / seconds['explorer']:.1f}x, largest principal angle "
        f"{angle:.2f} degrees"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--compare-spectral", action="store_true")
    args = parser.parse_args()
    x = points(args.n, args.dim)
    stages(x)  # first, so that its peak memory is its own
    if args.compare_spectral:
        compare_spectral(x)


if __name__ == "__main__":
    main()
