"""``ex.audit(a, b, probe)``: every number explorer has about what B changed, without a browser.

Runs, in this order, streaming one matrix at a time (so a checkpoint larger than host memory is
fine): the weight spectra of both checkpoints (:func:`explorer.spectra`), the comparison of B
against A (:func:`explorer.compare`), and, when a probe is given and both checkpoints can run,
the hidden states of both on it (:func:`explorer.capture`), their CKA depth x depth
(:func:`explorer.similarity`) and their representation metrics per depth. The results go to
``out/``: ``report.html`` (self-contained, charts inlined as SVG, opens with no network),
``data/*.parquet`` and ``data/*.csv`` (every number in the report; each table in the report names
the file and row it comes from) and ``provenance.json`` (file digests, versions, device, seeds,
parameters, timestamps).
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from explorer.cache import file_sha256
from explorer.compare import compare
from explorer.errors import ProbeError
from explorer.probe import Probe
from explorer.sources.load import load
from explorer.spectra import spectra

__all__ = ["audit", "read_probe"]


def _say(progress: Callable[[str], None] | None, message: str) -> None:
    if progress is not None:
        progress(message)


def audit(
    a,
    b,
    probe: Probe | Any = None,
    out: str | Path = "explorer-audit",
    *,
    device: str = "auto",
    ks: list[int] | None = None,
    intruder_k: int = 10,
    epsilon: float = 0.5,
    max_points: int | None = 2000,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Audit what checkpoint ``b`` changed relative to ``a``; write the report to ``out``.

    Parameters
    ----------
    a, b : Checkpoint or anything :func:`explorer.load` accepts
        The reference (base) and the changed checkpoint.
    probe : Probe, list of str, array, or None
        Inputs to compare the representations on (see :func:`explorer.capture`); None skips the
        representation sections. :func:`read_probe` reads one from a file.
    out : path
        Output directory (created; files in it are overwritten).
    device, ks, intruder_k, epsilon, seed
        Passed to :func:`explorer.spectra`, :func:`explorer.compare` and the capture.
    max_points : int
        At most this many probe points are captured (seeded sample).
    progress : callable, optional
        Called with a one-line message at each step (the CLI prints them).

    Returns
    -------
    pathlib.Path
        ``out/report.html``.
    """
    from explorer.report import write_report

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ck_a, ck_b = load(a), load(b)
    name_a = ck_a.name
    name_b = ck_b.name if ck_b.name != name_a else f"{ck_b.name} (b)"
    steps: dict[str, float] = {}
    frames: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        _say(progress, f"{name} ...")
        start = time.perf_counter()
        result = fn()
        steps[name] = round(time.perf_counter() - start, 3)
        _say(progress, f"{name}: done in {steps[name]:.1f} s")
        return result

    spec_a = step(f"spectra of {name_a}", lambda: spectra(ck_a, device=device))
    spec_b = step(f"spectra of {name_b}", lambda: spectra(ck_b, device=device))
    frames["spectra"] = _stack({name_a: spec_a, name_b: spec_b})
    cmp = step(
        "compare",
        lambda: compare(
            ck_a, ck_b, ks=ks, intruder_k=intruder_k, epsilon=epsilon, device=device, seed=seed
        ),
    )
    frames["compare"] = cmp.frame()
    frames["intruders"] = cmp.intruders()
    frames["pairing"] = cmp.pairing[cmp.names[0]].frame()
    probe_meta = None
    if probe is not None:
        frames.update(
            step(
                "representations",
                lambda: _representations(
                    (name_a, ck_a), (name_b, ck_b), probe, device, max_points, seed
                ),
            )
        )
        probe_meta = _probe_meta(probe)
    provenance = {
        "explorer": _version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "device": frames["compare"].attrs.get("device"),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "checkpoints": {"a": _describe(ck_a), "b": _describe(ck_b)},
        "probe": probe_meta,
        "parameters": {
            "ks": ks,
            "intruder_k": intruder_k,
            "epsilon": epsilon,
            "max_points": max_points,
            "seed": seed,
            "spectra_dtype": spec_a.attrs.get("dtype"),
            "compare_dtype": frames["compare"].attrs.get("dtype"),
        },
        "steps_seconds": steps,
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "seconds": round(time.perf_counter() - t0, 3),
        "command": sys.argv if Path(sys.argv[0]).name in ("explorer", "__main__.py") else None,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2, default=str))
    report = write_report(out, frames, provenance, names=(name_a, name_b))
    _say(progress, f"report: {report}")
    return report


def _stack(by_name: dict) -> Any:
    import pandas as pd

    parts = [df.assign(checkpoint=name) for name, df in by_name.items()]
    return pd.concat(parts, ignore_index=True)


def _representations(named_a, named_b, probe, device, max_points, seed) -> dict:
    from explorer.capture import capture
    from explorer.similarity import similarity

    (name_a, ck_a), (name_b, ck_b) = named_a, named_b
    for ck in (ck_a, ck_b):
        if not ck.can_run:
            raise ProbeError(
                f"{ck.name} holds weights only, so the probe cannot be run through it: audit "
                "without --probe, or give a model directory with a config.json"
            )
    opts = dict(device=device, max_points=max_points, seed=seed, progress=False)
    acts_a, acts_b = capture(ck_a, probe, **opts), capture(ck_b, probe, **opts)
    sim = similarity(acts_a, acts_b, device=device)
    tidy = sim.stack().rename("cka").reset_index()
    frames = {"similarity": tidy}
    try:
        from explorer.representation import representation_metrics
    except ImportError:  # pragma: no cover - the module ships with explorer
        return frames
    frames["representation"] = _stack(
        {
            name: representation_metrics(acts, device=device, seed=seed)
            for name, acts in ((name_a, acts_a), (name_b, acts_b))
        }
    )
    return frames


def _describe(ck) -> dict:
    return {
        "name": ck.name,
        "family": ck.family,
        "source": str(ck.source),
        "matrices": len(ck.entries),
        "sha256": _digest(ck),
        "meta": {k: v for k, v in ck.meta.items() if isinstance(v, str | int | float | bool)},
    }


def _digest(ck) -> dict[str, str]:
    """SHA-256 of every file of a checkpoint on disk, else of its weight matrices' bytes.

    In-memory tensors are read one at a time.
    """
    src = Path(str(ck.source))
    if src.exists():
        files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
        return {str(p.relative_to(src) if src.is_dir() else p.name): file_sha256(p) for p in files}
    h = hashlib.sha256()
    for e in ck.entries:
        w = ck.weight(e.address, dtype=torch.float32, check_finite=False)
        h.update(e.address.encode())
        h.update(w.contiguous().numpy().tobytes())
    return {"<weights, float32, in address order>": h.hexdigest()}


def _version() -> str:
    from explorer import __version__

    return __version__


def _probe_meta(probe) -> dict:
    if isinstance(probe, Probe):
        return {"name": probe.name, "n": len(probe), "labels": list(probe.labels), **probe.meta}
    return {"n": len(probe)}


def read_probe(path: str | Path) -> Probe:
    """A probe from a file: ``.txt`` (one input text per line), ``.csv``/``.tsv`` (a ``text``
    column, or numeric columns as features, and any other columns as labels; a ``label`` column
    is a label), ``.npy`` (an array, one input per row; never unpickled), or ``demo:NAME``."""
    text = str(path)
    if text.startswith("demo:"):
        from explorer import demo

        return demo.probe(text[5:])
    p = Path(path)
    if not p.is_file():
        raise ProbeError(f"probe file {p} does not exist")
    suffix = p.suffix.lower()
    if suffix == ".txt":
        lines = [s.strip() for s in p.read_text(encoding="utf-8").splitlines() if s.strip()]
        if not lines:
            raise ProbeError(f"probe file {p} holds no non-empty line")
        return Probe(lines, name=p.stem, meta={"source": str(p)})
    if suffix in (".csv", ".tsv"):
        import pandas as pd

        df = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",")
        if "text" in df:
            labels = {c: df[c].to_numpy() for c in df.columns if c != "text"}
            return Probe(df["text"].astype(str).tolist(), labels, name=p.stem)
        label_cols = [c for c in df.columns if c == "label" or df[c].dtype == object]
        features = df.drop(columns=label_cols)
        return Probe(
            features.to_numpy("float32"), {c: df[c].to_numpy() for c in label_cols}, name=p.stem
        )
    if suffix == ".npy":
        import numpy as np

        try:
            arr = np.load(p, allow_pickle=False)
        except ValueError as exc:
            raise ProbeError(f"{p} holds Python objects; explorer never unpickles them") from exc
        return Probe(arr.astype("float32"), name=p.stem, meta={"source": str(p)})
    raise ProbeError(
        f"unknown probe format {p.suffix!r}: use .txt (one text per line), .csv/.tsv, .npy, "
        "or demo:sentences / demo:digits / demo:shifted"
    )
