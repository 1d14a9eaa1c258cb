"""The projection view in a real JupyterLab: WebGL draws, depth scrubs, the lasso reaches Python.

Run with ``-s`` to see the depth-switch timings (also kept in test-artifacts/).
"""

import io
import json
import os
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
Image = pytest.importorskip("PIL.Image")
expect = pytest.importorskip("playwright.sync_api").expect

from lab_page import KERNEL_READY, RUN_CELL, screenshot, set_theme, write_notebook  # noqa: E402

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "explorer" / "static" / "projection_view.js"
if not BUNDLE.is_file() and not os.environ.get("CI"):  # in CI a missing bundle fails
    pytest.skip("JS bundle not built: run scripts/setup", allow_module_level=True)

# Two clusters that stay on their side at every depth: points 0..999 left of centre, 1000..1999
# right; each depth moves them further apart and up or down, so every depth draws differently.
SETUP = """\
import numpy as np
from explorer.widgets.projection_view import ProjectionView

rng = np.random.default_rng(0)
n = 2000
coords = {}
for d in range(4):
    xy = rng.normal(scale=0.3, size=(n, 2)).astype(np.float32)
    xy[:1000] += (-3 - d, 0.8 * d)
    xy[1000:] += (3 + d, -0.8 * d)
    coords[d] = xy
labels = np.where(np.arange(n) < 1000, "left", "right")
view = ProjectionView(coords, labels=labels, texts=[f"point {i}" for i in range(n)],
                      title="two clusters, four depths")
view"""
CELLS = [
    SETUP,
    'print("depth", view.depth, "selected", len(view.selection), view.selection == list(range(1000)))',
    "view.selection = list(range(1000, 1500))",
]

BENCH = """\
import numpy as np
from explorer.widgets.projection_view import ProjectionView

rng = np.random.default_rng(1)
base = rng.normal(size=(100_000, 2)).astype(np.float32)
coords = {d: base @ np.array([[np.cos(d / 3), -np.sin(d / 3)], [np.sin(d / 3), np.cos(d / 3)]],
                             dtype=np.float32) * (1 + d / 6) for d in range(12)}
big = ProjectionView(coords, color_by=rng.integers(0, 10, 100_000), title="100k x 12")
big"""

SWITCHES = (
    "name => performance.getEntriesByName(name ?? 'explorer-projection-depth-switch')"
    ".map(e => e.duration)"
)


RENDERER = """() => {
  const gl = document.createElement("canvas").getContext("webgl2");
  const info = gl && gl.getExtension("WEBGL_debug_renderer_info");
  return info ? gl.getParameter(info.UNMASKED_RENDERER_WEBGL) : null;
}"""


def summary(ms: np.ndarray) -> dict[str, float]:
    return {
        "median": round(float(np.median(ms)), 1),
        "p95": round(float(np.percentile(ms, 95)), 1),
        "max": round(float(ms.max()), 1),
    }


def open_notebook(page, lab, name, cells):
    write_notebook(lab, name, cells)
    page.goto(lab.notebook_url(name))
    page.wait_for_function(KERNEL_READY, timeout=60_000)
    page.evaluate(RUN_CELL, 0)


def pixels(locator) -> np.ndarray:
    """What the element shows on screen, RGB."""
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(int)


def painted(image: np.ndarray) -> int:
    """Pixels that differ clearly from the background (the colour of the top-left corner)."""
    return int((np.abs(image - image[2, 2]).sum(axis=2) > 60).sum())


def wait_settled(page, root):
    """Until no transition runs: the switch was measured and the 300 ms animation is over."""
    page.wait_for_timeout(450)


def python_says(page, output, expected, cell=1):
    for _ in range(30):  # the front end debounces, so Python may see a change a moment later
        page.evaluate(RUN_CELL, cell)
        expect(output).to_contain_text("depth")
        if output.inner_text().strip() == expected:
            return
        page.wait_for_timeout(150)
    expect(output).to_have_text(expected)


def test_projection_view_in_jupyterlab(page, lab, outside_requests, artifacts):
    open_notebook(page, lab, "projection_view.ipynb", CELLS)
    root = page.locator(".explorer-pv")
    plot = root.locator(".explorer-pv-plot")
    slider = root.locator("input[type=range]")
    expect(slider).to_be_visible(timeout=60_000)
    expect(root).to_have_attribute("data-renderer", "webgl2")
    expect(root.locator(".explorer-pv-depth")).to_have_text("depth 0")
    expect(root.locator(".explorer-pv-legend-item")).to_have_text(["left", "right"])
    wait_settled(page, root)
    at0 = pixels(plot)
    assert painted(at0) > 2000, "the WebGL canvas is blank"
    # Left cluster left of centre, right cluster right: two colours on two sides.
    half = at0.shape[1] // 2
    assert painted(at0[:, : half - 5]) > 1000 and painted(at0[:, half + 5 :]) > 1000

    # The slider moves the points; Python follows.
    slider.fill("2")
    expect(root).to_have_attribute("data-depth", "2")
    expect(root.locator(".explorer-pv-depth")).to_have_text("depth 2")
    wait_settled(page, root)
    at2 = pixels(plot)
    assert painted(np.abs(at2 - at0)) > 1000, "the points did not move with the slider"
    output = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
    python_says(page, output, "depth 2 selected 0 False")

    # Arrow keys on the focused view (JupyterLab must not take them for cell navigation).
    root.locator(".explorer-pv-depth").click()
    page.keyboard.press("ArrowRight")
    expect(root).to_have_attribute("data-depth", "3")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    expect(root).to_have_attribute("data-depth", "0")
    page.keyboard.press("ArrowRight")
    expect(root).to_have_attribute("data-depth", "1")
    wait_settled(page, root)
    at1 = pixels(plot)
    assert painted(np.abs(at1 - at2)) > 1000
    python_says(page, output, "depth 1 selected 0 False")
    timings = page.evaluate(SWITCHES)
    assert len(timings) >= 6 and all(t > 0 for t in timings)
    print("\n2k points, depth switch -> next frame (ms):", [round(t) for t in timings])

    # Lasso (shift + drag) round the left half: exactly the left cluster comes back to Python.
    box = plot.bounding_box()
    x0, y0 = box["x"] + 4, box["y"] + 4
    x1, y1 = box["x"] + box["width"] / 2 - 2, box["y"] + box["height"] - 4
    page.keyboard.down("Shift")
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in [(x1, y0), (x1, y1), (x0, y1), (x0, y0 + 2)]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    page.keyboard.up("Shift")
    expect(root).to_have_attribute("data-selected", "1000")
    expect(root.locator(".explorer-pv-count")).to_have_text("1,000 selected")
    python_says(page, output, "depth 1 selected 1000 True")
    page.wait_for_timeout(100)
    lassoed = pixels(plot)

    # Python selects half of the right cluster: the view redraws it.
    page.evaluate(RUN_CELL, 2)
    expect(root).to_have_attribute("data-selected", "500")
    page.wait_for_timeout(200)
    chosen = pixels(plot)
    assert painted(np.abs(chosen - lassoed)) > 500, "the selection from Python was not drawn"

    # Hover shows the point's text.
    page.mouse.move(box["x"] + box["width"] * 0.8, box["y"] + box["height"] / 2, steps=4)
    for dx in range(0, 200, 8):  # find a point under the pointer
        page.mouse.move(box["x"] + box["width"] * 0.62 + dx, box["y"] + box["height"] * 0.5)
        page.wait_for_timeout(40)
        if root.locator(".explorer-pv-tooltip").is_visible():
            break
    expect(root.locator(".explorer-pv-tooltip")).to_contain_text("point ")
    page.mouse.move(box["x"] - 30, box["y"] - 30)

    # Screenshots, light then dark; the dark one must be drawn on a dark background.
    page.evaluate(RUN_CELL, 1)  # scroll nothing: keep the view in place
    root.screenshot(path=artifacts / "projection_view_light.png")
    set_theme(page, "JupyterLab Dark", "false")
    expect(root).not_to_have_css("background-color", "rgb(255, 255, 255)")
    page.wait_for_timeout(500)
    dark = pixels(plot)
    assert dark[2, 2].sum() < 3 * 90, "the plot background stayed light"
    assert painted(dark) > 2000, "nothing drawn in the dark theme"
    root.screenshot(path=artifacts / "projection_view_dark.png")

    assert outside_requests == []


# The example: the digits demo's hidden states laid out with PCA. Depth 0 (the pixels) has
# a few points 20x further out than the bulk, and the clouds grow 20-fold with depth: one frame
# for every depth drew depths 0-2 as a blob.
DIGITS = """\
import explorer as ex
from explorer import demo
acts = ex.capture(demo.load("digits-clean"), demo.probe("digits"), progress=False)
view = ex.ProjectionView(ex.project(acts, "pca"), title="digits-clean · PCA", transition_ms=1200)
view"""


def bulk_fill(root) -> float:
    """How much of the plot the bulk of the points spans where they are drawn now: the larger of
    the 5th-95th percentile spans of their x and y on screen, over the plot's shorter side (the
    side of the square the view frames a depth in)."""
    xy = np.array(root.evaluate("el => el.explorerScreenPositions()")).reshape(-1, 2)
    box = root.locator(".explorer-pv-plot").bounding_box()
    spans = np.percentile(xy, 95, axis=0) - np.percentile(xy, 5, axis=0)
    return float(spans.max() / min(box["width"], box["height"]))


def painted_box(image: np.ndarray) -> np.ndarray:
    """The 1st-99th percentile box of the painted pixels (x0, y0, x1, y1), border cut off."""
    inner = image[3:-3, 3:-3]
    ys, xs = np.nonzero(np.abs(inner - inner[2, 2]).sum(axis=2) > 60)
    return np.array([np.percentile(xs, 1), np.percentile(ys, 1), np.percentile(xs, 99),
                     np.percentile(ys, 99)]) + 3  # fmt: skip


def test_each_depth_fills_the_view(page, lab, outside_requests, artifacts):
    """Every depth of the digits PCA is framed so that its bulk fills the view; far outliers are
    kept, on the edge, marked, and counted; the points move smoothly from depth to depth."""
    open_notebook(page, lab, "projection_digits.ipynb", [DIGITS])
    set_theme(page, "JupyterLab Light", "true")
    root = page.locator(".explorer-pv")
    plot = root.locator(".explorer-pv-plot")
    slider = root.locator("input[type=range]")
    expect(slider).to_be_visible(timeout=120_000)
    page.mouse.move(0, 0)
    fills = {}
    for index in range(5):
        slider.fill(str(index))
        expect(root).to_have_attribute("data-depth", str(index))
        page.wait_for_timeout(1500)  # the 1.2 s transition is over
        fills[index] = round(bulk_fill(root), 3)
        # what is painted covers the box where the points are said to be drawn
        xy = np.array(root.evaluate("el => el.explorerScreenPositions()")).reshape(-1, 2)
        lo, hi = np.percentile(xy, [5, 95], axis=0)
        box = painted_box(pixels(plot))
        assert (box[:2] <= lo + 4).all() and (box[2:] >= hi - 4).all(), (box, lo, hi)
        if index == 0:
            page.evaluate("() => document.activeElement?.blur()")  # no focus ring in the picture
            at0 = pixels(plot)
            screenshot(
                root, artifacts, "projection_digits_depth0_light.png", "projection-view-light.png"
            )
    print("\ndigits PCA, bulk of the points / side of the view, per depth:", fills)
    (artifacts / "projection_framing.json").write_text(json.dumps(fills))
    assert min(fills.values()) > 0.45, f"a depth is drawn too small: {fills}"

    # Depth 0's far outliers are drawn as rings on the frame's edge and said so.
    slider.fill("0")
    page.wait_for_timeout(1500)
    pinned = int(root.get_attribute("data-pinned"))
    assert 0 < pinned <= 5, f"{pinned} points pinned at depth 0 (3 far outliers expected)"
    expect(root.locator(".explorer-pv-note")).to_have_text(
        f"{pinned} point{'s' if pinned > 1 else ''} beyond the frame: rings on its edge"
    )
    edge = at0[3:-3, 3:-3]
    painted_edge = painted(np.concatenate([edge[:, :14], edge[:, -14:]], axis=1)) + painted(
        np.concatenate([edge[:14], edge[-14:]], axis=0)
    )
    assert painted_edge > 20, "nothing drawn on the frame's edge"
    slider.fill("2")
    expect(root).to_have_attribute("data-pinned", "0")
    expect(root.locator(".explorer-pv-note")).to_have_text("")

    # Mid-way between depths 0 and 4 the cloud neither collapses nor blows up.
    slider.fill("0")
    page.wait_for_timeout(1500)
    slider.fill("4")
    middle = []
    for _ in range(3):
        page.wait_for_timeout(300)
        middle.append(round(bulk_fill(root), 3))
    print("mid-transition 0 -> 4:", middle)
    assert min(middle) > 0.3, f"the points collapsed on the way: {middle}"

    page.wait_for_timeout(1500)
    set_theme(page, "JupyterLab Dark", "false", settle_ms=500)
    slider.fill("0")
    page.wait_for_timeout(1500)
    dark = bulk_fill(root)
    page.evaluate("() => document.activeElement?.blur()")
    assert abs(dark - fills[0]) < 0.05, (dark, fills[0])
    screenshot(root, artifacts, "projection_digits_depth0_dark.png", "projection-view-dark.png")
    set_theme(page, "JupyterLab Light", "true")
    assert outside_requests == []


def open_big_scatter(page, lab, name: str, cell: str, settle_ms: int):
    """Open a notebook whose one cell shows a large ProjectionView; wait until it is drawn."""
    open_notebook(page, lab, name, [cell])
    root = page.locator(".explorer-pv")
    expect(root.locator("input[type=range]")).to_be_visible(timeout=300_000)
    expect(root).to_have_attribute("data-renderer", "webgl2")
    page.wait_for_timeout(settle_ms)
    assert painted(pixels(root.locator(".explorer-pv-plot"))) > 5000
    return root


def scrub_there_and_back(page, root, steps: int, hold_ms: int) -> np.ndarray:
    """Arrow keys through ``steps`` depths and back; each switch's time to the next frame (ms)."""
    root.locator(".explorer-pv-depth").click()
    for key in ["ArrowRight"] * steps + ["ArrowLeft"] * steps:
        page.keyboard.press(key)
        page.wait_for_timeout(hold_ms)
    expect(root).to_have_attribute("data-depth", "0")
    timings = np.array(page.evaluate(SWITCHES))
    assert len(timings) == 2 * steps
    return timings


RESTART = """() => {
  const session = window.jupyterapp.shell.currentWidget.sessionContext.session;
  return session.kernel.restart();
}"""


def test_projection_view_after_a_kernel_restart(page, lab, outside_requests):
    """Restart the kernel and run the cells again: a new view draws and talks to the new kernel."""
    open_notebook(page, lab, "projection_view_restart.ipynb", CELLS)
    root = page.locator(".explorer-pv")
    expect(root.locator("input[type=range]")).to_be_visible(timeout=60_000)
    page.evaluate(RESTART)
    page.wait_for_function(KERNEL_READY, timeout=60_000)
    page.evaluate(RUN_CELL, 0)
    expect(root).to_have_count(1)  # the new output replaced the old view
    expect(root).to_have_attribute("data-renderer", "webgl2", timeout=60_000)
    wait_settled(page, root)
    assert painted(pixels(root.locator(".explorer-pv-plot"))) > 2000, "blank after the restart"
    root.locator("input[type=range]").fill("3")
    expect(root).to_have_attribute("data-depth", "3")
    output = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
    python_says(page, output, "depth 3 selected 0 False")
    assert outside_requests == []


MILLION = (
    BENCH.replace("100_000", "1_000_000")
    .replace("range(12)", "range(6)")
    .replace('"100k x 12"', '"1M x 6"')
)
WHEEL_FRAMES = """async root => {
  // frame-to-frame intervals while the view is zoomed by 60 wheel events, one per frame
  const plot = root.querySelector(".explorer-pv-plot");
  const box = plot.getBoundingClientRect();
  const times = [], drawn = [];
  for (let i = 0; i < 60; i++) {
    plot.dispatchEvent(new WheelEvent("wheel", {deltaY: i < 30 ? -40 : 40, bubbles: true,
      cancelable: true, clientX: box.left + box.width / 2, clientY: box.top + box.height / 2}));
    times.push(await new Promise(requestAnimationFrame));
    drawn.push(Number(root.dataset.pointsDrawn));
  }
  return {intervals: times.slice(1).map((t, i) => t - times[i]), drawn: drawn.slice(1)};
}"""


@pytest.mark.skipif(
    not os.environ.get("EXPLORER_BENCH_1M"),
    reason="a benchmark (about a minute): EXPLORER_BENCH_1M=1 or benchmarks/projection_view_browser.py --million",
)
def test_million_points_zoom_and_depth_switch(page, lab, artifacts):
    """1M points x 6 depths: wheel-zoom frame intervals and depth switch -> next frame.

    Frames in motion may draw a random subset when they are slow (level of detail); the figures
    say how many points those frames drew, and the settled frame must draw all of them."""
    root = open_big_scatter(page, lab, "projection_view_1m.ipynb", MILLION, settle_ms=2000)
    zoom = page.evaluate(WHEEL_FRAMES, root.element_handle())
    frames = np.array(zoom["intervals"])
    # the frame after the motion settles draws every point again
    expect(root).to_have_attribute("data-points-drawn", "1000000", timeout=10_000)
    root.screenshot(path=artifacts / "projection_view_1m.png")
    timings = scrub_there_and_back(page, root, steps=5, hold_ms=1500)
    result = {
        "points": 1_000_000,
        "depths": 6,
        "renderer": page.evaluate(RENDERER),
        "zoom_frame_interval_ms": summary(frames),
        "zoom_fps_median": round(1000 / float(np.median(frames)), 1),
        "points_drawn_while_zooming": summary(np.array(zoom["drawn"], dtype=float)),
        "depth_switch_to_next_frame_ms": summary(timings),
    }
    (artifacts / "projection_view_1m.json").write_text(json.dumps(result, indent=2))
    print("\nprojection view, 1M points:", json.dumps(result))


def test_depth_switch_100k_points(page, lab, artifacts):
    """Depth switch -> the frame after the one that drew it, 100k points x 12 depths."""
    root = open_big_scatter(page, lab, "projection_view_100k.ipynb", BENCH, settle_ms=1000)
    timings = scrub_there_and_back(page, root, steps=11, hold_ms=400)
    expect(root).to_have_attribute("data-points-drawn", "100000")  # settled: every point
    drawn = np.array(page.evaluate(SWITCHES, "explorer-projection-depth-drawn"))
    assert len(timings) == len(drawn) == 22
    result = {
        "points": 100_000,
        "depths": 12,
        "switches": len(timings),
        "renderer": page.evaluate(RENDERER),
        "to_next_frame_ms": summary(timings),
        "to_first_frame_drawn_ms": summary(drawn),
    }
    (artifacts / "projection_view_depth_switch.json").write_text(json.dumps(result, indent=2))
    print("\nprojection view depth switch:", json.dumps(result))
    assert result["to_next_frame_ms"]["p95"] < 1000
