#!/usr/bin/env python
"""Run the architecture sweep and write docs/architectures.md (``--workers N``: processes, default 2)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architectures.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(1)
    from tests.integration import architectures as sweep

    start = time.perf_counter()
    results = sweep.sweep(workers=args.workers)
    DOC.write_text(sweep.render(results, sweep.versions()))
    n, m, k = sweep.summary(results)
    print(
        f"wrote {DOC.relative_to(ROOT)}: {n} types, {m} instantiate, {k} pass every check "
        f"({100 * k / max(m, 1):.1f} %) in {time.perf_counter() - start:.0f} s "
        f"with {args.workers} workers ({sum(r.cpu_seconds for r in results):.0f} s of CPU "
        "in the checks)"
    )
    for r in sorted(results, key=lambda r: -r.cpu_seconds)[:5]:
        print(f"  slowest: {r.model_type} {r.cpu_seconds:.1f} s CPU")
    return 0


if __name__ == "__main__":
    sys.exit(main())
