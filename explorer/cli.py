"""Command line: ``explorer demo`` builds the embedded default and summarises it;
``explorer audit A B --probe FILE --out DIR`` writes the audit report (see :func:`explorer.audit`).
"""

from __future__ import annotations

import argparse
import sys
import time


def _demo(args: argparse.Namespace) -> int:
    from explorer import demo

    start = time.perf_counter()
    path = demo.build(force=args.rebuild, progress=lambda msg: print(f"[demo] {msg}", flush=True))
    print(f"[demo] built in {time.perf_counter() - start:.1f} s, cached in {path}")
    from explorer.projection import warm_umap

    seconds = warm_umap()
    if seconds is None:
        print("[demo] UMAP's numba code: already compiled in the cache", flush=True)
    else:
        print(f"[demo] UMAP's numba code compiled and cached in {seconds:.1f} s", flush=True)
    for name in demo.names():
        ck = demo.load(name)
        acc = ck.meta.get("test_accuracy")
        extra = f", test accuracy {acc:.3f}" if isinstance(acc, float) else ""
        print(
            f"  {name:<13} {ck.family:<5} {ck.n_blocks} blocks, {len(ck.entries)} matrices{extra}"
        )
    if not args.build_only:
        print("Open notebooks/tour.ipynb in JupyterLab (scripts/demo does this for you).")
    return 0


def _audit(args: argparse.Namespace) -> int:
    from explorer.audit import audit, read_probe
    from explorer.errors import ExplorerError

    start = time.perf_counter()

    def say(message: str) -> None:
        print(
            f"[audit {time.perf_counter() - start:6.1f} s] {message}", file=sys.stderr, flush=True
        )

    try:
        if args.demo:
            from explorer import demo

            if args.a or args.b:
                raise ExplorerError("--demo audits the bundled pair: give no checkpoints with it")
            a, b = demo.load("base"), demo.load("lora")
            probe = read_probe(args.probe or "demo:shifted")
        else:
            if not (args.a and args.b):
                raise ExplorerError("give two checkpoints (A B), or --demo for the bundled pair")
            a, b = args.a, args.b
            probe = read_probe(args.probe) if args.probe else None
        report = audit(
            a,
            b,
            probe,
            args.out,
            device=args.device,
            max_points=args.max_points,
            seed=args.seed,
            overwrite=args.overwrite,
            progress=say,
        )
    except ExplorerError as exc:
        print(f"explorer audit: {exc}", file=sys.stderr)
        return 2
    print(report)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="explorer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build the bundled demo checkpoints (offline, cached)")
    p.add_argument("--build-only", action="store_true", help="build and summarise, nothing else")
    p.add_argument("--rebuild", action="store_true", help="ignore the cache and rebuild")
    p.set_defaults(run=_demo)
    p = sub.add_parser(
        "audit",
        help="what B changed relative to A: HTML report + data (Parquet/CSV) + provenance",
    )
    p.add_argument("a", nargs="?", help="reference checkpoint (file or directory)")
    p.add_argument("b", nargs="?", help="changed checkpoint (file or directory)")
    p.add_argument("--probe", help="inputs: .txt (a text per line), .csv/.tsv, .npy, or demo:NAME")
    p.add_argument("--out", default="explorer-audit", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace a previous audit run in --out")
    p.add_argument("--demo", action="store_true", help="audit the bundled base vs LoRA pair")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-points", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(run=_audit)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
