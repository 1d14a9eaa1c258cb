"""explorer audit streams: auditing two checkpoints never holds either of them in memory.

Two 192 MiB safetensors checkpoints (128 matrices of 8192 x 48 float32 each) are audited in a
fresh process that samples its anonymous resident memory (``RssAnon``: what cannot be paged back
to the file, unlike the memory-mapped weights) every 2 ms. Holding one checkpoint would add 192
MiB; streaming one matrix at a time adds a few matrices' worth. A machine whose memory is smaller
than the checkpoint only has to page the mapped files, which the kernel does on its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import save_file

N_MATRICES, ROWS, COLS = 128, 8192, 48
CHECKPOINT_MIB = N_MATRICES * ROWS * COLS * 4 / 2**20

_AUDIT_WITH_MEMORY_PROBE = textwrap.dedent(
    """
    import json, sys, threading, time
    import explorer as ex

    # a first audit of two small checkpoints: every import and memory pool is set up before
    # the baseline
    ex.audit(sys.argv[4], sys.argv[5], out=sys.argv[6], device="cpu")

    def rss_anon_mib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) / 1024

    peak, done = [rss_anon_mib()], threading.Event()

    def sample():
        while not done.is_set():
            peak.append(max(peak[-1], rss_anon_mib()))
            time.sleep(0.002)

    base = peak[0]
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    report = ex.audit(sys.argv[1], sys.argv[2], out=sys.argv[3], device="cpu")
    done.set()
    t.join()
    print(json.dumps({"report": str(report), "base": base, "peak": peak[-1]}))
    """
)


def _checkpoints(tmp_path, prefix="", n_matrices=N_MATRICES):
    gen = torch.Generator().manual_seed(0)
    paths = []
    for name, scale in (("a", 0.0), ("b", 1e-2)):
        torch.manual_seed(0)  # the same base weights in both
        tensors = {}
        for i in range(n_matrices // 2):
            for role in ("up_proj", "down_proj"):
                w = torch.randn(ROWS, COLS) / COLS**0.5
                if scale and i == 3:
                    w += scale * torch.randn(ROWS, 1, generator=gen) @ torch.randn(1, COLS)
                key = f"model.layers.{i}.mlp.{role}.weight"
                tensors[key] = w if role == "up_proj" else w.T.contiguous()
        path = tmp_path / f"{prefix}{name}.safetensors"
        save_file(tensors, path)
        del tensors
        paths.append(path)
    return paths


def test_audit_of_two_large_checkpoints_streams(tmp_path):
    a, b = _checkpoints(tmp_path)
    small = _checkpoints(tmp_path, prefix="small-", n_matrices=8)
    out = tmp_path / "report"
    args = [a, b, out, *small, tmp_path / "warm-up"]
    done = subprocess.run(
        [sys.executable, "-c", _AUDIT_WITH_MEMORY_PROBE, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    grown = result["peak"] - result["base"]
    # a few 8 MiB matrices (and their float64 copies and SVD factors) at a time, never a model
    print(
        f"anonymous memory grew {grown:.0f} MiB auditing two {CHECKPOINT_MIB:.0f} MiB checkpoints"
    )
    assert grown < CHECKPOINT_MIB / 2, f"anonymous memory grew {grown:.0f} MiB while auditing"
    assert (out / "report.html").exists()
    provenance = json.loads((out / "provenance.json").read_text())["checkpoints"]
    assert provenance["a"]["matrices"] == provenance["b"]["matrices"] == N_MATRICES
    assert provenance["a"]["sha256"]["a.safetensors"] != provenance["b"]["sha256"]["b.safetensors"]
