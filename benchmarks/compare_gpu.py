"""ex.compare and ex.similarity at Llama-2-7B scale on one GPU.

    python benchmarks/compare_gpu.py                 # the whole model, then CKA
    python benchmarks/compare_gpu.py --layers 4      # 28 matrices, the model's time scaled
    python benchmarks/compare_gpu.py --device cpu --shrink 16 --layers 2   # smoke test on a CPU

* compare: two checkpoints with the 224 projection shapes of Llama-2-7B (hidden 4096, MLP 11008,
  32 layers), A random N(0, 0.02^2), B = A + a rank-16 update per matrix (a LoRA-like
  fine-tune), both float32 on the GPU; ``ex.compare(A, B, ks=[64], intruder_k=10)``: principal
  angles at k = 64 (left and right), intruder cosines of B's top 32 vectors against all of A's,
  update energy, basis and spectrum. Goal (issue 5): <= 15 s on an H100.
* CKA: ``ex.similarity`` of two captures, 100k points x 4096 dims x 32 depths each (float16 on
  the host, moved a block of rows at a time); ``--points`` and ``--depths`` shrink it.

Prints one JSON line per part with the time, the per-matrix figure and where the time went.
Exits with a message (status 0) when the device is CUDA and none is present.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import torch
from llama_shapes import HIDDEN, base_and_tuned, shapes, sync  # benchmarks/ is on sys.path

import explorer as ex


def pair(layers: int, shrink: int, device: str) -> tuple[dict, dict]:
    gen = torch.Generator(device=device).manual_seed(0)
    a, b = {}, {}
    for i in range(layers):
        for name, (m, n) in shapes(shrink).items():
            key = f"model.layers.{i}.{name}.weight"
            a[key], b[key] = base_and_tuned(m, n, gen, device)
    return a, b


def bench_compare(args) -> None:
    a, b = pair(args.layers, args.shrink, args.device)
    sync(args.device)
    start = time.perf_counter()
    cmp = ex.compare(a, b, ks=[64], intruder_k=10, device=args.device)
    sync(args.device)
    seconds = time.perf_counter() - start
    intr = cmp.intruders()
    print(
        json.dumps(
            {
                "part": "compare",
                "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
                "matrices": len(intr),
                "seconds": round(seconds, 2),
                "ms_per_matrix": round(1000 * seconds / max(1, len(intr)), 1),
                "intruders_total": int(intr.n_intruders.sum()),
                # the whole model's time: measured at 32 layers, else scaled from the layers run
                # (every layer holds the same seven shapes)
                "model_seconds": round(seconds * 32 / args.layers, 1),
                "goal_s": 15 if args.shrink == 1 else None,
            }
        )
    )


def bench_cka(args) -> None:
    d = HIDDEN // args.shrink
    gen = torch.Generator(device=args.device).manual_seed(1)

    def capture(name: str) -> ex.Activations:
        # drawn on the device, kept on the host as a capture keeps them (drawing 6.6 GB of
        # float16 on the host took longer than the suite gives this step)
        states = {
            i: torch.randn((args.points, d), generator=gen, device=args.device).half().cpu()
            for i in range(args.depths)
        }
        return ex.Activations(states, meta={"checkpoint": name})

    acts_a, acts_b = capture("a"), capture("b")
    start = time.perf_counter()
    sim = ex.similarity(acts_a, acts_b, device=args.device)
    sync(args.device)
    seconds = time.perf_counter() - start
    pairs = sim.size
    print(
        json.dumps(
            {
                "part": "cka",
                "points": args.points,
                "dims": d,
                "depths": args.depths,
                "pairs": pairs,
                "seconds": round(seconds, 2),
                "ms_per_pair": round(1000 * seconds / pairs, 1),
            }
        )
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--layers", type=int, default=32)
    p.add_argument("--shrink", type=int, default=1, help="divide the widths (smoke tests)")
    p.add_argument("--points", type=int, default=100_000)
    p.add_argument("--depths", type=int, default=32)
    p.add_argument("--skip-cka", action="store_true")
    args = p.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("no CUDA device here: run on a GPU machine (or --device cpu --shrink 16 to smoke)")
        sys.exit(0)
    bench_compare(args)
    if not args.skip_cka:
        bench_cka(args)


if __name__ == "__main__":
    main()
