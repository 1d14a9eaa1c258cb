"""The README's main command as a new user runs it: ``scripts/demo`` (as root where the test runs
as root), the URL it prints, the tour it lands on, run to its end: the dashboard of two
checkpoints. Then a second launch with nothing changed, timed to its URL.

It needs the environment that ``scripts/setup`` made from this clone (CI's: ``scripts/test`` runs
``scripts/setup hf,demo,test`` first), so that the demo installs nothing; elsewhere it is skipped
rather than letting pip install this clone into whatever environment runs the tests.
Run with ``-s`` to see the launch times (also kept in test-artifacts/).
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

expect = pytest.importorskip("playwright.sync_api").expect
np = pytest.importorskip("numpy")


pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
URL = re.compile(r"(http://127\.0\.0\.1:(\d+)/lab/tree/tour\.ipynb\?token=\w+)")
ALL_CELLS_RUN = """() => {
  const panel = window.jupyterapp.shell.currentWidget;
  const cells = panel.content.widgets.filter(c => c.model.type === "code");
  return cells.length > 0 && cells.every(c => c.model.executionCount !== null)
    && panel.sessionContext.session?.kernel?.status === "idle";
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def environment(tmp: Path) -> dict[str, str]:
    """This interpreter's environment as the active one, and Jupyter's own files under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    if sys.prefix != sys.base_prefix:  # a virtualenv: what scripts/setup then uses
        env["VIRTUAL_ENV"] = sys.prefix
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    for name in ("CONFIG", "RUNTIME"):
        env[f"JUPYTER_{name}_DIR"] = str(tmp / name.lower())
    env["EXPLORER_DEMO_DIR"] = str(tmp / "workspace")
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """The environment scripts/setup would use holds explorer from this clone: no pip runs."""
    env = environment(tmp_path_factory.mktemp("check"))
    check = subprocess.run(
        ["scripts/setup", "--check", "hf,demo"], cwd=REPO, env=env, capture_output=True, text=True
    )
    if check.returncode:
        why = check.stderr.strip().splitlines()[-1:] or ["?"]
        message = f"scripts/setup would install into {sys.prefix} ({why[0]})"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: scripts/test runs scripts/setup first")
        pytest.skip(f"{message}: run scripts/setup hf,demo,test there first")
    return env


class Launch:
    """``scripts/demo ARGS`` in its own process group; its output read as it comes."""

    def __init__(self, env: dict[str, str], args: list[str]):
        self.start = time.perf_counter()
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            ["scripts/demo", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def url(self, timeout: float) -> tuple[str, float]:
        """The first URL to the tour printed, and the seconds it took to appear."""
        deadline = self.start + timeout
        while (left := deadline - time.perf_counter()) > 0:
            try:
                line = self._queue.get(timeout=left)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if found := URL.search(line):
                return found.group(1), time.perf_counter() - self.start
        tail = "".join(self.lines[-40:])
        raise AssertionError(f"scripts/demo printed no URL to the tour in {timeout} s:\n{tail}")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def launch(env, port: int) -> Launch:
    # arguments pass through to JupyterLab: the port, no browser, and the app handle for the test
    return Launch(env, [f"--port={port}", "--no-browser", "--LabApp.expose_app_in_browser=True"])


def test_scripts_demo_to_the_dashboard(installed, page, outside_requests, artifacts, tmp_path):
    env = installed
    tour = (REPO / "notebooks" / "tour.ipynb").read_bytes()
    first = launch(env, port := free_port())
    try:
        url, first_s = first.url(timeout=900)
        said = "".join(first.lines)
        assert f"http://127.0.0.1:{port}/lab/tree/tour.ipynb?token=" in url  # our port
        assert "nothing changed: no pip" in said, said[-3000:]
        if os.geteuid() == 0:
            assert "--allow-root" in said  # and it went on, as the URL shows

        # The printed URL opens the tour (not the Launcher), with no news toast over it.
        page.set_viewport_size({"width": 1280, "height": 1600})
        page.goto(url)
        page.wait_for_function(
            "() => window.jupyterapp?.shell.currentWidget?.context?.path === 'tour.ipynb'",
            timeout=120_000,
        )
        page.wait_for_function(
            "() => window.jupyterapp.shell.currentWidget.sessionContext.session?.kernel"
            "?.connectionStatus === 'connected'",
            timeout=120_000,
        )
        page.wait_for_timeout(3000)  # when the news question would pop up
        assert page.get_by_text("Jupyter news").count() == 0, "the news toast is back"

        # Run the whole tour: it ends on the dashboard, both projections drawn with WebGL.
        started = time.perf_counter()
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        dashboard = page.locator(".explorer-dashboard")
        expect(dashboard).to_have_count(1, timeout=600_000)
        roots = dashboard.locator(".explorer-pv")
        expect(roots).to_have_count(2, timeout=120_000)
        for i in range(2):
            expect(roots.nth(i)).to_have_attribute("data-renderer", "webgl2", timeout=60_000)
        page.wait_for_function(ALL_CELLS_RUN, timeout=300_000)
        tour_s = time.perf_counter() - started
        errors = page.locator(
            ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']"
        )
        tracebacks = [t for t in errors.all_inner_texts() if "Traceback" in t or "Error" in t]
        assert tracebacks == [], tracebacks
        dashboard.scroll_into_view_if_needed()
        page.wait_for_timeout(1500)
        for i in range(2):
            drawn = roots.nth(i).evaluate("el => el.explorerScreenPositions().length / 2")
            assert drawn == 450, drawn  # the digits probe's points
        # every view of the other sections drew too
        for name in (".explorer-lb", ".explorer-chart", ".explorer-pv"):
            assert page.locator(name).count() >= 1, name
        dashboard.screenshot(path=artifacts / "demo-tour-dashboard.png")

        # Saved (JupyterLab autosaves too): into the demo's copy, never into the clone.
        page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
        copy = Path(env["EXPLORER_DEMO_DIR"]) / "notebooks" / "tour.ipynb"
        deadline = time.monotonic() + 30
        while b'"output_type"' not in copy.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert b'"output_type"' in copy.read_bytes(), "the run tour was not saved in the copy"
        assert (REPO / "notebooks" / "tour.ipynb").read_bytes() == tour, "the clone's tour changed"
    finally:
        first.stop()

    # A second launch, nothing changed: the URL in seconds (no pip, the demo cached).
    second = launch(env, free_port())
    try:
        _, second_s = second.url(timeout=300)
        assert "nothing changed: no pip" in "".join(second.lines)
    finally:
        second.stop()
    timing = {"first_launch_s": round(first_s, 1), "tour_s": round(tour_s, 1),
              "second_launch_s": round(second_s, 1)}  # fmt: skip
    (artifacts / "demo_launch.json").write_text(json.dumps(timing))
    print("\nscripts/demo:", timing)
    assert second_s < 45, timing
    assert outside_requests == []
