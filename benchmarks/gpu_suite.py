"""Every GPU test and GPU benchmark of the project in one run, within a time budget, one table.

Run through ``benchmarks/gpu_suite.sh`` (which picks the Python and installs missing optional
packages from local wheels); see there for the options. Each step is a subprocess in its own
process group with its own timeout, cut further so that the whole suite ends within
``--budget`` seconds (default 470, under 8 minutes with the start-up); a step that would start
with less than 10 s left is skipped. Each step's output goes to ``<log-dir>/<step>.log``, the
table also to ``<log-dir>/summary.json``.

``--dry-run`` (CPU, CI) proves that the suite starts and that everything it names exists: each
script is present and imports (its ``main`` found, nothing run), ``explorer`` and the GPU engine
module import, and pytest collects the ``gpu``-marked tests.

``--smoke`` (CPU, CI) runs every step end to end as the real suite does (subprocesses, timeouts,
the table), each benchmark on ``--device cpu`` at a tiny size (its ``smoke`` arguments) and the
GPU tests as pytest finds them without CUDA (skipped), so that a GPU machine's few minutes are
not spent on a script that fails before its first figure.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
# the GPU tests' tmp_path, outside the log directory, which may be a folder that brings back
# only a few files (pytest empties it at the start of each run)
PYTEST_TMP = Path(tempfile.gettempdir()) / "explorer-gpu-suite-tests"


@dataclass
class Row:
    """One line of the table: what a step reports about one of its parts."""

    label: str
    part: str | None  # the "part" of the step's JSON lines; None: the step's own figure
    goal_s: float | None = None
    seconds_key: str = "seconds"  # the part's figure the goal is judged on
    smoke_part: str | None = None  # --smoke: the part's name at the smoke size, if it differs


@dataclass
class Step:
    name: str
    argv: list[str]
    timeout: float
    rows: list[Row]
    goal: str = ""
    files: list[str] = field(default_factory=list)
    smoke: list[str] | None = None  # --smoke: the script's arguments on the CPU, tiny sizes

    def command(self, smoke: bool) -> list[str]:
        return self.argv[:2] + self.smoke if smoke and self.smoke is not None else self.argv


def steps() -> list[Step]:
    bench = "benchmarks/"
    return [
        Step(
            "pytest -m gpu",
            [PY, "-m", "pytest", "-m", "gpu", "tests/gpu", "-v", "-p", "no:cacheprovider"]
            + ["--durations=8", "--basetemp", str(PYTEST_TMP)],
            90,  # the tests took 30 s on an H200 (numba compiling the CPU references)
            [Row("GPU tests (tests/gpu)", None)],
            goal="all pass",
            files=["tests/gpu"],
        ),
        Step(
            "projection",
            [PY, bench + "projection_gpu.py", "--budget", "100"],
            120,
            [
                Row("PCA 1M x 768", "pca"),
                Row("kNN + UMAP 1M x 768, 1 depth", "umap1", 10),
                Row("UMAP 100k x 768 x 12 depths", "umap12", 30),
            ],
            files=[bench + "projection_gpu.py"],
            smoke=["--device", "cpu", "--points", "2000", "--dims", "64"]
            + ["--depth-points", "1000", "--depths", "2"],
        ),
        Step(
            "spectra 7B",
            [PY, bench + "spectra_7b_gpu.py", "--source", "gpu"],
            45,
            [Row("spectra, 224 matrices of Llama-2-7B", None, 8)],
            files=[bench + "spectra_7b_gpu.py", bench + "llama_shapes.py"],
            smoke=["--source", "gpu", "--device", "cpu", "--shrink", "64", "--layers", "2"],
        ),
        Step(
            "compare 7B + CKA",
            [PY, bench + "compare_gpu.py", "--layers", "4", "--depths", "8"],
            80,
            [
                Row("compare, Llama-2-7B pair (4 layers, x 8)", "compare", 15, "model_seconds"),
                Row("CKA 100k x 4096, 8 x 8 depths", "cka"),
            ],
            files=[bench + "compare_gpu.py", bench + "llama_shapes.py"],
            smoke=["--device", "cpu", "--layers", "2", "--shrink", "64"]
            + ["--points", "500", "--depths", "2"],
        ),
        Step(
            "dimension",
            [PY, bench + "dimension_gpu.py", "--sizes", "100000", "1000000", "--budget", "45"],
            60,
            [
                Row("TwoNN + MLE 100k x 768", "dimension 100000", smoke_part="dimension 2000"),
                Row("TwoNN 1M x 768", "dimension 1000000", smoke_part="dimension 20000"),
            ],
            files=[bench + "dimension_gpu.py", bench + "dimension_vs_skdim.py"],
            smoke=["--device", "cpu", "--sizes", "2000", "20000", "--dim", "32"],
        ),
        Step(
            "full SVD",
            [PY, bench + "svd_gpu.py"],
            75,
            [
                Row(
                    "full SVD 4096 x 4096 (compare's A)", "svd 4096x4096", smoke_part="svd 128x128"
                ),
                Row("full SVD 11008 x 4096", "svd 11008x4096", smoke_part="svd 344x128"),
            ],
            files=[bench + "svd_gpu.py", bench + "llama_shapes.py"],
            smoke=["--device", "cpu", "--shrink", "32"],
        ),
    ]


# -- reading a step's output ----------------------------------------------------------------------
def json_parts(text: str) -> dict[str, dict]:
    parts = {}
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if "part" in obj:
                parts[obj["part"]] = obj
    return parts


def own_figure(step: Step, text: str) -> tuple[str, float | None]:
    """The figure of a step without JSON parts: pytest's counts, the spectra time."""
    if step.name.startswith("pytest"):
        found = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error).*?) in [\d.]+s", text, re.M)
        if found:
            return found[-1], None
        # cut short (timeout): count the outcomes -v printed so far
        counts = {
            o: len(re.findall(rf"::\S+ {o}\b", text)) for o in ("PASSED", "FAILED", "SKIPPED")
        }
        return "cut short after " + ", ".join(f"{n} {o.lower()}" for o, n in counts.items()), None
    m = re.search(r"from GPU memory: ([\d.]+) s", text)
    return (f"{float(m.group(1)):.2f} s" if m else "no figure"), float(m.group(1)) if m else None


# the figures of a part's JSON line shown next to its seconds, in this order
_FIGURES_SHOWN = (
    *("knn_seconds", "knn_recall"),
    *("trustworthiness_10", "knn_accuracy_layout", "twonn", "mle"),
    *("default_sin64", "gesvd", "gesvdj", "gesvda", "gram64", "gram64_sin64", "gram64_orth"),
)


def part_figure(obj: dict, seconds_key: str = "seconds") -> tuple[str, float | None]:
    if obj.get("status") == "skipped":
        return f"skipped: {obj.get('why', '')}", None
    seconds = obj.get(seconds_key)
    extra = [] if seconds_key == "seconds" else [f"measured {obj.get('seconds')} s"]
    for k in _FIGURES_SHOWN:
        if k in obj:
            extra.append(f"{k.replace('_layout', '')} {obj[k]}")
    q = obj.get("quality_last_depth")
    if q:
        extra.append(f"tw10 {q['trustworthiness_10']} acc {q['knn_accuracy_layout']}")
    text = f"{seconds:.2f} s" if seconds is not None else "?"
    return (text + (f" ({', '.join(extra)})" if extra else "")), seconds


def goal_text(goal_s: float | None, seconds: float | None, fallback: str = "") -> str:
    if goal_s is None:
        return fallback or "-"
    if seconds is None:
        return f"<= {goal_s:g} s"
    return f"<= {goal_s:g} s ({'met' if seconds <= goal_s else 'MISSED'})"


# -- running ------------------------------------------------------------------------------------
def run_step(step: Step, timeout: float, log: Path, smoke: bool = False) -> tuple[str, str]:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    with open(log, "w") as out:
        proc = subprocess.Popen(
            step.command(smoke),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
        try:
            rc = proc.wait(timeout=timeout)
            status = "ok" if rc == 0 else f"FAIL (rc {rc})"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the step's own process group
            proc.wait()
            status = f"TIMEOUT ({timeout:.0f} s)"
    return status, log.read_text(errors="replace")


def environment() -> str:
    import torch

    from explorer.kernel.embedding_gpu import available_gpu_engines

    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA"
    engines = ", ".join(available_gpu_engines()) or "no GPU layout engine"
    return f"{dev}; torch {torch.__version__}; {engines}"


def table(rows: list[dict]) -> str:
    cols = ["step", "status", "figure", "goal"]
    width = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    line = lambda r: " | ".join(str(r[c]).ljust(width[c]) for c in cols)  # noqa: E731
    head = line({c: c for c in cols})
    return "\n".join([head, "-+-".join("-" * width[c] for c in cols)] + [line(r) for r in rows])


def run(args) -> int:
    import torch

    log_dir = Path(args.log_dir).resolve()
    log_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = [{"step": "environment", "status": "ok", "figure": environment(), "goal": "-"}]
    if args.smoke:
        rows[0]["figure"] += "; --smoke: tiny sizes on the CPU, figures not comparable"
    elif not torch.cuda.is_available():
        rows[0]["status"] = "FAIL"
        print(table(rows))
        print("gpu_suite: no CUDA GPU here (use --dry-run on a CPU)")
        return 1
    failed = False
    for step in steps():
        if args.only and not any(o in step.name for o in args.only):
            continue
        left = args.budget - (time.perf_counter() - start)
        timeout = min(step.timeout, left - 5)
        print(f"[gpu_suite] {step.name} (timeout {timeout:.0f} s)", flush=True)
        if timeout < 10:
            status, text = "SKIP (suite budget)", ""
        else:
            slug = re.sub(r"[^a-z0-9]+", "-", step.name.lower()).strip("-")
            status, text = run_step(step, timeout, log_dir / f"{slug}.log", args.smoke)
        failed |= not status.startswith(("ok", "SKIP"))
        parts = json_parts(text)
        for row in step.rows:
            part = (row.smoke_part or row.part) if args.smoke else row.part
            row_status = status
            if part is None:
                figure, seconds = own_figure(step, text) if text else ("-", None)
            elif part in parts:
                figure, seconds = part_figure(parts[part], row.seconds_key)
            else:
                figure, seconds = "-", None
                if args.smoke and status == "ok":  # the script ran but never reported the part
                    row_status, failed = f"FAIL (no part {part!r})", True
            goal = "-" if args.smoke else goal_text(row.goal_s, seconds, step.goal)
            rows.append({"step": row.label, "status": row_status, "figure": figure, "goal": goal})
    total = time.perf_counter() - start
    rows.append({"step": "whole suite", "status": "ok", "figure": f"{total:.0f} s", "goal": ""})
    rows[-1]["goal"] = goal_text(args.budget, total)
    (log_dir / "summary.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n" + table(rows))
    print(f"\nlogs: {log_dir}")
    return 1 if failed else 0


class _Parsed(Exception):
    """Raised in place of running a script's main() once its arguments have parsed."""


def check_arguments(script: Path, argv: list[str]) -> str:
    """Import ``script`` and let its ``main()`` parse ``argv``, stopping right after parsing:
    the script imports and accepts the suite's arguments (argparse exits on a bad one)."""
    spec = importlib.util.spec_from_file_location(f"_suite_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, *a, **kw):
        raise _Parsed(original(self, *a, **kw))

    saved = sys.argv
    sys.argv, argparse.ArgumentParser.parse_args = [str(script), *argv], parse_then_stop
    try:
        module.main()
    except _Parsed:
        return f"{script.name} imports, takes {' '.join(argv) or 'no arguments'}"
    finally:
        sys.argv, argparse.ArgumentParser.parse_args = saved, original
    raise RuntimeError("main() returned without parsing arguments")


def dry_run(args) -> int:
    """Everything the suite names exists and starts, without running anything heavy."""
    rows = []
    ok = True

    def add(step: str, good: bool, figure: str) -> None:
        nonlocal ok
        ok &= good
        rows.append({"step": step, "status": "ok" if good else "FAIL", "figure": figure})

    try:
        add("environment", True, environment())
    except Exception as err:  # noqa: BLE001 - reported in the table
        add("environment", False, f"{type(err).__name__}: {err}")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    for step in steps():
        missing = [f for f in step.files if not (ROOT / f).exists()]
        if missing:
            add(step.name, False, f"missing {missing}")
            continue
        if step.name.startswith("pytest"):
            out = subprocess.run(
                [PY, "-m", "pytest", "-m", "gpu", "tests/gpu", "--collect-only", "-q"]
                + ["-p", "no:cacheprovider"],
                cwd=ROOT,
                capture_output=True,
                text=True,
            )
            m = re.search(r"(\d+)(?:/\d+)? tests? (?:collected|selected)", out.stdout)
            n = int(m.group(1)) if m else 0
            add(step.name, out.returncode == 0 and n > 0, f"{n} gpu tests collected")
            continue
        try:
            add(step.name, True, check_arguments(ROOT / step.argv[1], step.argv[2:]))
        except (Exception, SystemExit) as err:  # noqa: BLE001 - reported in the table
            add(step.name, False, f"{step.argv[1]}: {type(err).__name__}: {err}")
    for r in rows:
        r["goal"] = "-"
    print(table(rows))
    print(f"\ndry run: {'every step is in place' if ok else 'FAILED'}")
    return 0 if ok else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dry-run", action="store_true")
    p.add_argument("--smoke", action="store_true", help="run every step on the CPU, tiny sizes")
    p.add_argument("--budget", type=float, default=470.0, help="seconds for the whole suite")
    p.add_argument("--log-dir", default=os.environ.get("EXPLORER_SUITE_LOGS", "gpu-suite-logs"))
    p.add_argument("--only", nargs="*", help="run the steps whose name contains one of these")
    args = p.parse_args()
    return dry_run(args) if args.dry_run else run(args)


if __name__ == "__main__":
    sys.exit(main())
