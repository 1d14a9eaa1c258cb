"""What ``ex.audit`` checks before any heavy work: arguments, the output directory, the probe.

Everything here is cheap (no spectrum, no forward pass), so a mistake is reported in the first
second of an audit rather than after minutes of spectra and comparisons.
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from explorer.errors import ArgumentError, ProbeError
from explorer.probe import Probe

# The neighbour-based estimators of the representation section use up to 20 neighbours (MLE,
# local ID), so fewer distinct points than 21 give no meaningful number there.
MIN_PROBE_POINTS = 21

# The files an audit writes into its output directory; one of them there means a previous run.
RUN_FILES = ("provenance.json", "report.html", "data")


def check_arguments(
    *, max_points: Any, seed: Any, ks: Any, intruder_k: Any, epsilon: Any, has_probe: bool
) -> None:
    """Refuse out-of-range audit arguments with an :class:`ArgumentError` naming each one."""

    def positive_int(value) -> bool:
        return isinstance(value, int | np.integer) and not isinstance(value, bool) and value > 0

    wrong = []
    if max_points is not None and not positive_int(max_points):
        wrong.append(f"max_points={max_points!r} must be a positive integer (or None for all)")
    elif has_probe and max_points is not None and max_points < MIN_PROBE_POINTS:
        wrong.append(
            f"max_points={max_points} is too few for the representation metrics: they need at "
            f"least {MIN_PROBE_POINTS} points (their estimators use 20 neighbours)"
        )
    if not (isinstance(seed, int | np.integer) and not isinstance(seed, bool) and seed >= 0):
        wrong.append(f"seed={seed!r} must be a non-negative integer")
    if ks is not None and not (
        isinstance(ks, list | tuple) and ks and all(positive_int(k) for k in ks)
    ):
        wrong.append(f"ks={ks!r} must be a non-empty list of positive integers")
    if not positive_int(intruder_k):
        wrong.append(f"intruder_k={intruder_k!r} must be a positive integer")
    if not (
        isinstance(epsilon, int | float)
        and not isinstance(epsilon, bool)
        and math.isfinite(epsilon)
        and 0 < epsilon < 1
    ):
        wrong.append(f"epsilon={epsilon!r} must be a cosine threshold between 0 and 1")
    if wrong:
        raise ArgumentError("; ".join(wrong))


def prepare_out(out: str | os.PathLike, overwrite: bool) -> Path:
    """Create ``out`` and prove it writable; refuse one that holds another run unless ``overwrite``.

    An output directory never mixes two runs: with ``overwrite`` the previous run's files
    (``RUN_FILES``) are removed before anything is written, and nothing else in the directory is
    touched.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise ArgumentError(f"--out {out} is a file, not a directory: give a directory path")
    previous = [name for name in RUN_FILES if (out / name).exists()]
    if previous and not overwrite:
        raise ArgumentError(
            f"--out {out} already holds an audit run ({', '.join(previous)}); an output "
            "directory never mixes two runs: give a new --out, or --overwrite (overwrite=True) "
            "to replace that run"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        trial = out / f".explorer-write-test-{uuid.uuid4().hex}"
        trial.write_bytes(b"")
        trial.unlink()
    except OSError as exc:
        raise ArgumentError(
            f"cannot write to --out {out} ({exc.strerror or exc}); give a directory you can "
            "write to"
        ) from None
    if previous:
        _remove_run(out)
    return out


def _remove_run(out: Path) -> None:
    for name in ("provenance.json", "report.html"):
        (out / name).unlink(missing_ok=True)
    data = out / "data"
    if data.is_dir():
        for f in data.iterdir():
            if f.suffix in (".csv", ".parquet"):
                f.unlink()


def check_probe(probe: Any, max_points: int | None) -> int:
    """The number of distinct inputs of ``probe``; refuse one too small or all duplicates.

    Duplicates are removed before the neighbour-based estimators, so what counts is the
    number of distinct inputs (texts, or rows of an array), of which the capture keeps at most
    ``max_points``.
    """
    inputs = probe.inputs if isinstance(probe, Probe) else probe
    try:
        n = len(inputs)
    except TypeError:
        return -1  # a Dataset or DataLoader: the capture checks it as it runs
    if n == 0:
        raise ProbeError("the probe is empty: give at least one input per point")
    if isinstance(inputs, list | tuple) and all(isinstance(s, str) for s in inputs):
        distinct = len(set(inputs))
    else:
        try:
            arr = np.asarray(inputs.detach().cpu() if hasattr(inputs, "detach") else inputs)
            distinct = len(np.unique(arr.reshape(len(arr), -1), axis=0))
        except (TypeError, ValueError):
            return -1  # inputs the capture reads its own way (token dicts...)
    usable = min(distinct, max_points) if max_points is not None else distinct
    if usable < MIN_PROBE_POINTS:
        dup = f" ({n - distinct} of its {n} inputs are duplicates)" if distinct < n else ""
        raise ProbeError(
            f"the probe has {distinct} distinct inputs{dup}; the representation metrics need at "
            f"least {MIN_PROBE_POINTS} (their estimators use 20 neighbours, after removing "
            "duplicates). Give more distinct inputs, or audit without a probe"
        )
    return distinct
