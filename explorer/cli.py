"""Command line: ``explorer demo`` builds the embedded default and summarises it.

Later subcommands (``audit``, ``spectra``) call the same session functions the widgets use.
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="explorer", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="build the bundled demo checkpoints (offline, cached)")
    p.add_argument("--build-only", action="store_true", help="build and summarise, nothing else")
    p.add_argument("--rebuild", action="store_true", help="ignore the cache and rebuild")
    p.set_defaults(run=_demo)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
