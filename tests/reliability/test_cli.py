"""``explorer audit`` and ``ex.audit`` given bad arguments, probes and output directories: all is
checked before the first spectrum, the CLI prints one line and exits 2, an output directory never
mixes two runs, and a step that fails late loses none of the finished ones."""

from __future__ import annotations

import importlib
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import explorer as ex
from explorer.cache import file_sha256
from explorer.cli import main
from explorer.errors import ArgumentError
from explorer.probe_files import read_probe
from tests.reliability.catalogue import assert_clear_error, bad_input, run_isolated

audit_module = importlib.import_module("explorer.audit")  # ex.audit is the function


def mlp(seed: int) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Two weights-only checkpoints on disk, a good probe file, and one finished audit of them."""
    root = tmp_path_factory.mktemp("cli")
    save_file(mlp(0).state_dict(), root / "a.safetensors")
    save_file(mlp(1).state_dict(), root / "b.safetensors")
    rng = np.random.default_rng(0)
    np.save(root / "probe.npy", rng.normal(size=(60, 8)).astype("float32"))
    code = main(
        ["audit", str(root / "a.safetensors"), str(root / "b.safetensors")]
        + ["--out", str(root / "done"), "--device", "cpu"]
    )
    assert code == 0
    return root


@pytest.fixture
def pair(files, tmp_path):
    for name in ("a.safetensors", "b.safetensors", "probe.npy"):
        (tmp_path / name).symlink_to(files / name)
    return tmp_path


@pytest.fixture
def no_heavy_work(monkeypatch):
    """Fail the test if the audit gets as far as a spectrum."""

    def spectra(*args, **kwargs):
        raise AssertionError("spectra ran before the arguments were checked")

    monkeypatch.setattr(audit_module, "spectra", spectra)


def cli(capsys, *argv) -> tuple[int, str]:
    code = main(["audit", *map(str, argv)])
    err = capsys.readouterr().err.strip()
    return code, err


def one_line_error(capsys, *argv) -> str:
    code, err = cli(capsys, *argv)
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("explorer audit: ")
    return err


@pytest.mark.parametrize("value", [0, -5, 3])
@bad_input(
    "cli",
    "--max-points 0, -5, or fewer than the metrics need (3) with a probe",
    "one line naming max_points, exit 2, before any spectrum",
)
def test_bad_max_points(pair, capsys, no_heavy_work, value):
    err = one_line_error(
        capsys,
        pair / "a.safetensors",
        pair / "b.safetensors",
        "--probe",
        pair / "probe.npy",
        "--max-points",
        value,
        "--out",
        pair / "out",
    )
    assert f"max_points={value}" in err
    assert not (pair / "out").exists()


@pytest.mark.parametrize(
    "kwargs, word",
    [
        ({"max_points": 2.5}, "max_points"),
        ({"seed": -1}, "seed"),
        ({"ks": [0, 4]}, "ks"),
        ({"ks": []}, "ks"),
        ({"intruder_k": -1}, "intruder_k"),
        ({"epsilon": 1.5}, "epsilon"),
        ({"epsilon": float("nan")}, "epsilon"),
    ],
    ids=lambda v: str(v) if isinstance(v, dict) else "",
)
@bad_input(
    "cli",
    "ex.audit with an out-of-range argument (max_points 2.5, seed -1, ks [0, 4] or [], "
    "intruder_k -1, epsilon 1.5 or NaN)",
    "ArgumentError naming the argument, before any spectrum",
)
def test_bad_audit_arguments(pair, no_heavy_work, kwargs, word):
    with pytest.raises(ArgumentError) as excinfo:
        ex.audit(pair / "a.safetensors", pair / "b.safetensors", out=pair / "out", **kwargs)
    assert_clear_error(excinfo, word)


@bad_input(
    "cli",
    "a probe with fewer distinct inputs than the metrics need (5 texts)",
    "one line: the probe has 5 distinct inputs, needs 21; exit 2 before any spectrum",
)
def test_probe_too_small(pair, capsys, no_heavy_work):
    (pair / "small.txt").write_text("\n".join(f"sentence {i}" for i in range(5)))
    err = one_line_error(
        capsys,
        pair / "a.safetensors",
        pair / "b.safetensors",
        "--probe",
        pair / "small.txt",
        "--out",
        pair / "out",
    )
    assert "5 distinct inputs" in err and "21" in err


@bad_input(
    "cli",
    "a probe whose 100 lines are all the same text",
    "one line: 1 distinct input, 99 duplicates; exit 2 before any spectrum",
)
def test_probe_all_duplicates(pair, capsys, no_heavy_work):
    (pair / "dup.txt").write_text("the same sentence\n" * 100)
    err = one_line_error(
        capsys,
        pair / "a.safetensors",
        pair / "b.safetensors",
        "--probe",
        pair / "dup.txt",
        "--out",
        pair / "out",
    )
    assert "1 distinct inputs" in err and "99 of its 100 inputs are duplicates" in err


@bad_input(
    "cli",
    "weights-only checkpoints (.safetensors files) with --probe",
    "one line: holds weights only, audit without a probe; exit 2 before any spectrum",
)
def test_weights_only_with_probe(pair, capsys, no_heavy_work):
    err = one_line_error(
        capsys,
        pair / "a.safetensors",
        pair / "b.safetensors",
        "--probe",
        pair / "probe.npy",
        "--out",
        pair / "out",
    )
    assert "holds weights only" in err and "without a probe" in err


@bad_input(
    "cli",
    "--out that is an existing file, or under a file (cannot be created)",
    "one line naming --out, exit 2 before any spectrum",
)
def test_unwritable_out(pair, capsys, no_heavy_work):
    (pair / "taken").write_text("x")
    err = one_line_error(
        capsys, pair / "a.safetensors", pair / "b.safetensors", "--out", pair / "taken"
    )
    assert "is a file" in err
    err = one_line_error(
        capsys, pair / "a.safetensors", pair / "b.safetensors", "--out", pair / "taken" / "sub"
    )
    assert "cannot write to --out" in err


@bad_input(
    "cli",
    "--out in a directory that cannot be written (read-only file system, simulated)",
    "one line: cannot write to --out, exit 2 before any spectrum",
)
def test_read_only_out(pair, capsys, no_heavy_work, monkeypatch):
    import errno
    from pathlib import Path

    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "write_bytes", refuse)
    err = one_line_error(
        capsys, pair / "a.safetensors", pair / "b.safetensors", "--out", pair / "ro"
    )
    assert "cannot write to --out" in err and "Read-only file system" in err


@bad_input(
    "cli",
    "a missing checkpoint path, or a probe file that does not exist",
    "one line naming the path, exit 2",
)
def test_missing_paths(pair, capsys, no_heavy_work):
    err = one_line_error(
        capsys, pair / "nope.safetensors", pair / "b.safetensors", "--out", pair / "o"
    )
    assert "nope.safetensors" in err
    err = one_line_error(
        capsys,
        pair / "a.safetensors",
        pair / "b.safetensors",
        "--probe",
        pair / "nope.txt",
        "--out",
        pair / "o",
    )
    assert "nope.txt" in err


@bad_input(
    "cli",
    "--out holding a previous audit run",
    "refused (one line, exit 2: give a new --out or --overwrite); with --overwrite the old run's "
    "files are removed first, other files kept",
)
def test_out_holding_another_run(files, pair, capsys):
    out = pair / "out"
    shutil.copytree(files / "done", out)
    first = json.loads((out / "provenance.json").read_text())["started"]
    (out / "data" / "stale.csv").write_text("from an older run")
    (out / "notes.txt").write_text("mine")
    err = one_line_error(capsys, pair / "a.safetensors", pair / "b.safetensors", "--out", out)
    assert "already holds an audit run" in err and "--overwrite" in err
    assert json.loads((out / "provenance.json").read_text())["started"] == first
    code, err = cli(
        capsys,
        pair / "a.safetensors",
        pair / "b.safetensors",
        "--out",
        out,
        "--overwrite",
        "--device",
        "cpu",
    )
    assert code == 0, err
    assert json.loads((out / "provenance.json").read_text())["started"] != first
    assert not (out / "data" / "stale.csv").exists()  # never mixed with the older run
    assert (out / "notes.txt").read_text() == "mine"


@bad_input(
    "cli",
    "a step failing late (the representations, after spectra and compare ran)",
    "the finished parts are written (report, data, provenance naming the failure), then an "
    "ExplorerError says what failed and where the rest is",
)
def test_late_failure_keeps_finished_parts(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory in the forward pass")

    monkeypatch.setattr(audit_module, "_representations", broken)
    probe = np.random.default_rng(0).normal(size=(40, 8)).astype("float32")
    with pytest.raises(ex.ExplorerError) as excinfo:
        ex.audit(mlp(0), mlp(1), probe, tmp_path / "out", device="cpu", ks=[2, 4])
    assert_clear_error(excinfo, "representations failed", "out of memory", str(tmp_path / "out"))
    prov = json.loads((tmp_path / "out" / "provenance.json").read_text())
    assert "out of memory" in prov["failed"]["representations"]
    assert {"compare", "spectra of Sequential"} <= set(prov["steps_seconds"])
    for name in ("spectra", "compare", "intruders", "pairing"):
        assert (tmp_path / "out" / "data" / f"{name}.csv").is_file()
    page = (tmp_path / "out" / "report.html").read_text()
    assert "representations failed" in page


@bad_input(
    "cli",
    "provenance of an audit from files",
    "every file read is listed with its SHA-256: both checkpoints and the probe file",
)
def test_every_file_read_is_in_the_provenance(files):
    prov = json.loads((files / "done" / "provenance.json").read_text())
    for side in "ab":
        digests = prov["checkpoints"][side]["sha256"]
        assert digests == {f"{side}.safetensors": file_sha256(files / f"{side}.safetensors")}
    meta = audit_module._probe_meta(read_probe(files / "probe.npy"))
    assert meta["source"] == str(files / "probe.npy")
    assert meta["sha256"] == file_sha256(files / "probe.npy")


@bad_input(
    "cli",
    "explorer audit with a bad --max-points, run as a command",
    "exactly one line on stderr, no traceback, exit status 2",
)
def test_command_line_prints_one_line(pair):
    argv = ["audit", str(pair / "a.safetensors"), str(pair / "b.safetensors")]
    argv += ["--max-points", "0", "--out", str(pair / "out")]
    done = run_isolated(f"import sys; from explorer.cli import main; sys.exit(main({argv!r}))")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "max_points=0" in done.stderr and "Traceback" not in done.stderr
