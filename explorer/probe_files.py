"""``read_probe``: a probe set from a file, checked cell by cell before any model runs.

Formats: ``.txt`` (one input text per line, UTF-8), ``.csv``/``.tsv`` (a ``text`` column, or
numeric feature columns, plus label columns), ``.npy`` (a numeric array, one input per row; never
unpickled) and ``demo:NAME``. Every problem is a :class:`~explorer.errors.ProbeError` that names
the file, the line or rows, and what to do; nothing a reader library raises reaches the user.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from explorer.errors import ProbeError
from explorer.probe import Probe

__all__ = ["read_probe"]


def read_probe(path: str | Path) -> Probe:
    """A probe from a file: ``.txt`` (one input text per line), ``.csv``/``.tsv`` (a ``text``
    column, or numeric columns as features, and any other columns as labels; a ``label`` column
    is a label), ``.npy`` (an array, one input per row; never unpickled), or ``demo:NAME``.

    Empty cells, text that is not UTF-8, non-numeric features and NaN/Inf are refused with the
    rows they are in. The file's path is kept in ``probe.meta["source"]``.
    """
    text = str(path)
    if text.startswith("demo:"):
        from explorer import demo

        return demo.probe(text[5:])
    p = Path(path)
    if not p.is_file():
        raise ProbeError(f"probe file {p} does not exist")
    suffix = p.suffix.lower()
    meta = {"source": str(p)}
    if suffix == ".txt":
        lines = [s.strip() for s in _utf8(p).splitlines() if s.strip()]
        if not lines:
            raise ProbeError(f"probe file {p} holds no non-empty line")
        return Probe(lines, name=p.stem, meta=meta)
    if suffix in (".csv", ".tsv"):
        return _read_table(p, "\t" if suffix == ".tsv" else ",", meta)
    if suffix == ".npy":
        return _read_npy(p, meta)
    raise ProbeError(
        f"unknown probe format {p.suffix!r}: use .txt (one text per line), .csv/.tsv, .npy, "
        "or demo:sentences / demo:digits / demo:shifted"
    )


def _utf8(p: Path) -> str:
    raw = p.read_bytes()
    try:
        return raw.decode("utf-8-sig")  # a byte-order mark is not part of the first input
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ProbeError(
            f"probe file {p} is not UTF-8 text: byte 0x{raw[exc.start]:02x} on line {line} "
            "cannot be decoded. Re-save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8`)"
        ) from None


def _rows(mask) -> str:
    """Data rows as a spreadsheet shows them (header is line 1), at most five."""
    rows = [int(i) + 2 for i in np.flatnonzero(np.asarray(mask))]
    return f"{rows[:5]}{' ...' if len(rows) > 5 else ''}"


def _read_table(p: Path, sep: str, meta: dict) -> Probe:
    import io

    import pandas as pd

    try:
        df = pd.read_csv(io.StringIO(_utf8(p)), sep=sep)
    except pd.errors.EmptyDataError:
        raise ProbeError(
            f"probe file {p} is empty: give a header line and one row per input"
        ) from None
    except pd.errors.ParserError as exc:
        detail = str(exc).strip().splitlines()[-1]
        raise ProbeError(f"probe file {p} is not a well-formed table ({detail})") from None
    if df.empty:
        raise ProbeError(f"probe file {p} has a header but no rows: give one row per input")
    blank = df.isna() | df.apply(lambda c: c.astype(str).str.strip() == "")
    if blank.any().any():
        where = "; ".join(f"{c!r} at rows {_rows(blank[c])}" for c in df.columns if blank[c].any())
        raise ProbeError(f"probe file {p} has empty cells ({where}); fill them or drop those rows")
    if "text" in df:
        labels = {c: df[c].to_numpy() for c in df.columns if c != "text"}
        return Probe(df["text"].astype(str).tolist(), labels, name=p.stem, meta=meta)
    label_cols = [c for c in df.columns if c == "label" or not pd.api.types.is_numeric_dtype(df[c])]
    for c in label_cols:
        numbers = pd.to_numeric(df[c], errors="coerce")
        if c != "label" and numbers.notna().mean() >= 0.5:
            raise ProbeError(
                f"probe file {p}: column {c!r} holds numbers except at rows "
                f"{_rows(numbers.isna())} (e.g. {df[c][numbers.isna()].iloc[0]!r}); fix those "
                "cells, or name the column 'label' if it is a label"
            )
    features = df.drop(columns=label_cols)
    if features.empty:
        raise ProbeError(
            f"probe file {p} has no 'text' column and no numeric feature column "
            f"(columns {list(df.columns)}); name the text column 'text', or give numbers"
        )
    values = features.to_numpy("float64")
    bad = ~np.isfinite(values)
    if bad.any():
        raise ProbeError(
            f"probe file {p} holds NaN or Inf features at rows {_rows(bad.any(axis=1))}"
        )
    return Probe(
        values.astype("float32"),
        {c: df[c].to_numpy() for c in label_cols},
        name=p.stem,
        meta=meta,
    )


def _read_npy(p: Path, meta: dict) -> Probe:
    with open(p, "rb") as fh:
        if fh.read(6) != b"\x93NUMPY":
            raise ProbeError(f"{p} is not a .npy file (no NumPy header); save it with numpy.save")
    try:
        arr = np.load(p, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc).lower():
            raise ProbeError(f"{p} holds Python objects; explorer never unpickles them") from exc
        raise ProbeError(f"{p} is not a valid .npy file ({exc}); save it with numpy.save") from exc
    except (OSError, EOFError) as exc:
        raise ProbeError(f"{p} is not a valid .npy file ({exc}); save it with numpy.save") from exc
    if arr.ndim == 0 or len(arr) == 0:
        raise ProbeError(
            f"{p} holds {'a scalar' if arr.ndim == 0 else 'no rows'}: give one input per row"
        )
    if arr.dtype.kind not in "biuf":
        raise ProbeError(
            f"{p} holds {arr.dtype} values, not numbers; put texts in a .txt or .csv probe"
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        rows = ~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1)
        raise ProbeError(
            f"{p} holds NaN or Inf in rows {[int(i) for i in np.flatnonzero(rows)[:5]]}"
        )
    return Probe(arr.astype("float32"), name=p.stem, meta=meta)
