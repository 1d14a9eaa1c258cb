"""Probe files that cannot be used as they are: each is refused by ``read_probe`` with a
ProbeError naming the file and the line or rows, never a pandas/numpy/codec traceback."""

from __future__ import annotations

import numpy as np
import pytest

from explorer.errors import ProbeError
from explorer.probe_files import read_probe
from tests.reliability.catalogue import assert_clear_error, bad_input


def refused(path, *words):
    with pytest.raises(ProbeError) as excinfo:
        read_probe(path)
    assert_clear_error(excinfo, str(path), *words)


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
@bad_input(
    "probes and capture",
    "a probe file in Latin-1, not UTF-8 (.txt, .csv)",
    "ProbeError naming the file, the byte and its line, and how to re-save as UTF-8",
)
def test_not_utf8(tmp_path, suffix):
    path = tmp_path / f"p{suffix}"
    path.write_bytes("text\nfirst\ncaf\xe9 au lait\n".encode("latin-1"))
    refused(path, "not utf-8", "0xe9", "line 3", "iconv")


@bad_input(
    "probes and capture",
    "a UTF-8 text file with a byte-order mark",
    "read; the mark is not part of the first text",
)
def test_byte_order_mark(tmp_path):
    (tmp_path / "p.txt").write_bytes("\ufeffhello\nworld\n".encode())
    assert read_probe(tmp_path / "p.txt").inputs == ["hello", "world"]


@pytest.mark.parametrize(
    "name, content", [("p.txt", ""), ("b.txt", "\n  \n"), ("p.csv", ""), ("h.csv", "text,label\n")]
)
@bad_input(
    "probes and capture",
    "an empty probe file (0 bytes, blank lines, a CSV header without rows)",
    "ProbeError naming the file: empty / no rows",
)
def test_empty_probe_files(tmp_path, name, content):
    (tmp_path / name).write_text(content)
    with pytest.raises(ProbeError) as excinfo:
        read_probe(tmp_path / name)
    assert_clear_error(excinfo, str(tmp_path / name))
    assert any(w in str(excinfo.value) for w in ("empty", "no rows", "no non-empty"))


@bad_input(
    "probes and capture",
    "a malformed CSV (an unclosed quote)",
    "ProbeError: not a well-formed table",
)
def test_malformed_csv(tmp_path):
    (tmp_path / "p.csv").write_text('text,label\n"a,1\nb,2\n')
    refused(tmp_path / "p.csv", "not a well-formed table")


@bad_input(
    "probes and capture",
    "empty cells in a CSV (a text, a label, a feature)",
    "ProbeError naming each column and the rows (as a spreadsheet numbers them)",
)
def test_empty_cells(tmp_path):
    (tmp_path / "t.csv").write_text("text,label\nhello,1\n,2\nworld,\n")
    refused(tmp_path / "t.csv", "empty cells", "'text' at rows [3]", "'label' at rows [4]")
    (tmp_path / "f.csv").write_text("x,y,label\n1,2,a\n3,,b\n5,6,c\n")
    refused(tmp_path / "f.csv", "'y' at rows [3]")


@bad_input(
    "probes and capture",
    "a numeric feature column with one stray word",
    "ProbeError naming the column and row; never silently taken as a label column",
)
def test_stray_word_in_features(tmp_path):
    (tmp_path / "p.csv").write_text("x,y\n1,2\n3,4\n5,abc\n")
    refused(tmp_path / "p.csv", "column 'y'", "rows [4]", "'abc'")


@bad_input(
    "probes and capture",
    "a CSV with neither a text column nor numbers",
    "ProbeError: name the text column 'text'",
)
def test_csv_without_text_or_features(tmp_path):
    (tmp_path / "p.csv").write_text("sentence,topic\nhello,a\nworld,b\n")
    refused(tmp_path / "p.csv", "'text' column")


@pytest.mark.parametrize(
    "array, words",
    [
        (np.full((5, 3), np.nan), ["nan or inf", "rows [0, 1, 2, 3, 4]"]),
        (np.array(["a", "b"]), ["not numbers"]),
        (np.float32(3), ["scalar"]),
        (np.zeros((0, 4)), ["no rows"]),
        (np.array([{"a": 1}], dtype=object), ["never unpickles"]),
    ],
    ids=["nan", "strings", "scalar", "no-rows", "objects"],
)
@bad_input(
    "probes and capture",
    ".npy probes holding NaN, strings, a scalar, no rows or Python objects",
    "ProbeError naming the file and what it holds; objects are never unpickled",
)
def test_bad_npy(tmp_path, array, words):
    np.save(tmp_path / "p.npy", array, allow_pickle=True)
    refused(tmp_path / "p.npy", *words)


@bad_input("probes and capture", "a .npy file of garbage bytes", "ProbeError: not a .npy file")
def test_garbage_npy(tmp_path):
    (tmp_path / "p.npy").write_bytes(b"garbage, not numpy")
    refused(tmp_path / "p.npy", "not a .npy file")


@bad_input(
    "probes and capture",
    "a probe whose lines are all the same text",
    "read_probe reads it (a probe may repeat); the audit refuses it before any work (see cli)",
)
def test_all_duplicates_are_read(tmp_path):
    (tmp_path / "p.txt").write_text("same\n" * 30)
    probe = read_probe(tmp_path / "p.txt")
    assert len(probe) == 30 and probe.meta["source"] == str(tmp_path / "p.txt")
