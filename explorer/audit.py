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

from explorer.audit_checks import check_arguments, check_probe, prepare_out
from explorer.cache import file_sha256
from explorer.compare import compare
from explorer.errors import ExplorerError, ProbeError
from explorer.probe import Probe
from explorer.probe_files import read_probe
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
    overwrite: bool = False,
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
        Output directory (created). One that already holds an audit run is refused, unless
        ``overwrite``: then that run's files are removed first, so two runs never mix.
    device, ks, intruder_k, epsilon, seed
        Passed to :func:`explorer.spectra`, :func:`explorer.compare` and the capture.
    max_points : int
        At most this many probe points are captured (seeded sample).
    overwrite : bool
        Replace a previous run in ``out`` (see ``out``).
    progress : callable, optional
        Called with a one-line message at each step (the CLI prints them).

    Returns
    -------
    pathlib.Path
        ``out/report.html``.

    Raises
    ------
    ArgumentError, ProbeError, SourceError
        Before any heavy work: an argument out of range, an output directory that cannot be
        written or holds another run, a probe with too few distinct inputs, a checkpoint that
        cannot be read or (with a probe) cannot run.
    ExplorerError
        After the report was written, when a step failed: the finished steps are in ``out``
        (report, data, and ``provenance.json``'s ``failed`` entry naming the step and its error).
    """
    from explorer.report import write_report

    started = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    # Everything that can be checked is checked before the first spectrum.
    check_arguments(
        max_points=max_points,
        seed=seed,
        ks=ks,
        intruder_k=intruder_k,
        epsilon=epsilon,
        has_probe=probe is not None,
    )
    if probe is not None:
        check_probe(probe, max_points)
    out = prepare_out(out, overwrite)
    ck_a, ck_b = load(a), load(b)
    if probe is not None:
        for ck in (ck_a, ck_b):
            if not ck.can_run:
                raise ProbeError(
                    f"{ck.name} ({ck.source}) holds weights only, so the probe cannot be run "
                    "through it: audit without a probe (--probe), or give a model directory "
                    "with a config.json"
                )
    name_a = ck_a.name
    name_b = ck_b.name if ck_b.name != name_a else f"{ck_b.name} (b)"
    steps: dict[str, float] = {}
    failed: dict[str, str] = {}
    frames: dict[str, Any] = {}

    def step(name: str, fn: Callable[[], Any]) -> Any:
        """Run one part; a failure is recorded (and reported) while the finished parts are kept."""
        _say(progress, f"{name} ...")
        start = time.perf_counter()
        try:
            result = fn()
        except Exception as exc:  # noqa: BLE001 - recorded, reported, raised after the report
            failed[name] = f"{type(exc).__name__}: {exc}"
            _say(progress, f"{name}: FAILED ({failed[name][:300]})")
            return None
        steps[name] = round(time.perf_counter() - start, 3)
        _say(progress, f"{name}: done in {steps[name]:.1f} s")
        return result

    spec_a = step(f"spectra of {name_a}", lambda: spectra(ck_a, device=device))
    spec_b = step(f"spectra of {name_b}", lambda: spectra(ck_b, device=device))
    if spec_a is not None and spec_b is not None:
        frames["spectra"] = _stack({name_a: spec_a, name_b: spec_b})
    cmp = step(
        "compare",
        lambda: compare(
            ck_a, ck_b, ks=ks, intruder_k=intruder_k, epsilon=epsilon, device=device, seed=seed
        ),
    )
    if cmp is not None:
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
            or {}
        )
        probe_meta = _probe_meta(probe)
    first = frames.get("compare", spec_a if spec_a is not None else spec_b)
    attrs = first.attrs if first is not None else {}
    provenance = {
        "explorer": _version(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "torch": torch.__version__,
        "device": attrs.get("device"),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "checkpoints": {"a": _describe(ck_a), "b": _describe(ck_b)},
        "probe": probe_meta,
        "parameters": {
            "ks": ks,
            "intruder_k": intruder_k,
            "epsilon": epsilon,
            "max_points": max_points,
            "seed": seed,
            "spectra_dtype": (spec_a.attrs if spec_a is not None else {}).get("dtype"),
            "compare_dtype": attrs.get("dtype") if cmp is not None else None,
            "overwrite": overwrite,
        },
        "steps_seconds": steps,
        "failed": failed,
        "started": started.isoformat(),
        "finished": datetime.now(timezone.utc).isoformat(),
        "seconds": round(time.perf_counter() - t0, 3),
        "command": sys.argv if Path(sys.argv[0]).name in ("explorer", "__main__.py") else None,
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2, default=str))
    report = write_report(out, frames, provenance, names=(name_a, name_b))
    _say(progress, f"report: {report}")
    if failed:
        parts = "; ".join(f"{k} failed ({v[:300]})" for k, v in failed.items())
        raise ExplorerError(
            f"the audit finished only in part: {parts}. The finished parts are in {out} "
            "(report.html, data/; provenance.json lists what failed)"
        )
    return report


def _stack(by_name: dict) -> Any:
    import pandas as pd

    parts = [df.assign(checkpoint=name) for name, df in by_name.items()]
    return pd.concat(parts, ignore_index=True)


def _representations(named_a, named_b, probe, device, max_points, seed) -> dict:
    from explorer.capture import capture
    from explorer.similarity import similarity

    (name_a, ck_a), (name_b, ck_b) = named_a, named_b
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
        **(
            {"base_sha256": _file_digests(Path(ck.meta["base"]))}
            if _is_path(ck.meta.get("base"))
            else {}
        ),
        "meta": {k: v for k, v in ck.meta.items() if isinstance(v, str | int | float | bool)},
    }


def _digest(ck) -> dict[str, str]:
    """SHA-256 of every file of a checkpoint on disk, else of its weight matrices' bytes.

    In-memory tensors are read one at a time.
    """
    src = Path(str(ck.source))
    if src.exists():
        return _file_digests(src)
    h = hashlib.sha256()
    for e in ck.entries:
        w = ck.weight(e.address, dtype=torch.float32, check_finite=False)
        h.update(e.address.encode())
        h.update(w.contiguous().numpy().tobytes())
    return {"<weights, float32, in address order>": h.hexdigest()}


def _is_path(value) -> bool:
    return isinstance(value, str) and not value.startswith("<") and Path(value).exists()


def _file_digests(src: Path) -> dict[str, str]:
    """SHA-256 of a file, or of every file under a directory (by relative path)."""
    files = [src] if src.is_file() else sorted(p for p in src.rglob("*") if p.is_file())
    return {str(p.relative_to(src) if src.is_dir() else p.name): file_sha256(p) for p in files}


def _version() -> str:
    from explorer import __version__

    return __version__


def _probe_meta(probe) -> dict:
    if isinstance(probe, Probe):
        meta = {"name": probe.name, "n": len(probe), "labels": list(probe.labels), **probe.meta}
        if _is_path(meta.get("source")):
            meta["sha256"] = file_sha256(meta["source"])
        return meta
    return {"n": len(probe)}
