"""Depth switch -> painted frame in the projection view, 100k points x 12 depths, in JupyterLab.

Runs the browser test that measures it (headless Debian chromium; on a machine without a GPU
WebGL is SwiftShader, software) and prints its figures:

    .venv/bin/python benchmarks/projection_view_browser.py [--million]

``--million`` instead measures 1M points x 6 depths: the frame intervals while the view is
zoomed by one wheel event per frame (fps) and depth switch -> next frame.

``to_first_frame_drawn_ms``: key press until the animation frame that issues the new positions'
draw calls has run (main-thread cost). ``to_next_frame_ms``: until the animation frame after it,
i.e. once that frame was rendered and handed to the compositor (what a user waits for).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TESTS = "tests/browser/test_projection_view_browser.py::"
MILLION = "--million" in sys.argv[1:]
TEST = TESTS + (
    "test_million_points_zoom_and_depth_switch" if MILLION else "test_depth_switch_100k_points"
)
RESULT = (
    REPO
    / "test-artifacts"
    / ("projection_view_1m.json" if MILLION else "projection_view_depth_switch.json")
)

if __name__ == "__main__":
    RESULT.unlink(missing_ok=True)
    env = dict(os.environ, EXPLORER_BENCH_1M="1")
    run = subprocess.run([sys.executable, "-m", "pytest", TEST, "-q", "-s"], cwd=REPO, env=env)
    if run.returncode or not RESULT.is_file():
        sys.exit(run.returncode or 1)
    print(json.dumps(json.loads(RESULT.read_text()), indent=2))
