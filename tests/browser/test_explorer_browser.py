"""The dashboard in a real JupyterLab: every view draws, the scrubber moves the linked views, the
lasso adds a selection series to the dimension view, both themes, nothing leaves loopback, and it
still works after the notebook is saved and opened again.

Run with ``-s`` to see the time to the first picture (also kept in test-artifacts/).
"""

import io
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
Image = pytest.importorskip("PIL.Image")
expect = pytest.importorskip("playwright.sync_api").expect
pytest.importorskip("vl_convert")

from lab_page import KERNEL_READY, RUN_CELL, screenshot, set_theme, write_notebook  # noqa: E402

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
if not (REPO / "explorer/static/projection_view.js").is_file() and not os.environ.get("CI"):
    pytest.skip("JS bundle not built: run scripts/setup", allow_module_level=True)

CELLS = [
    "import explorer as ex\nfrom explorer import demo\n"
    'x = ex.Explorer(demo.load("digits-clean"), probe=demo.probe("digits"),\n'
    '                compare_to=demo.load("digits-noisy"))\nx',
    'print("depth", x.depth, "selected", len(x.selection))',
    'x.wait(400)\nprint("done", sorted(x.views), x.layout, x.errors)',
    'print("series", sorted(set(x.views["dimension"].data.series)))',
]

# the depths of the largest symbols of a chart: those under the depth cursor are drawn bigger
CURSOR = """root => {
  const marks = [...root.querySelectorAll("g.mark-symbol path")]
    .map(el => ({w: el.getBoundingClientRect().width, d: el.__data__?.datum?.depth}))
    .filter(m => m.d !== undefined);
  const top = Math.max(...marks.map(m => m.w));
  return [...new Set(marks.filter(m => m.w > top - 0.5).map(m => m.d))];
}"""
SUBSETS = """root => [...new Set([...root.querySelectorAll("g.mark-symbol path")]
  .map(el => el.__data__?.datum?.subset).filter(Boolean))].sort()"""
# the visible tick labels of every axis of a chart, with their boxes
AXIS_LABELS = """root => [...root.querySelectorAll("g.role-axis")].map(axis =>
  [...axis.querySelectorAll("g.role-axis-label text")]
    .filter(t => t.textContent && t.getAttribute("opacity") !== "0")
    .map(t => { const b = t.getBoundingClientRect();
                return {text: t.textContent, x0: b.left, x1: b.right, y0: b.top, y1: b.bottom}; }))"""
# background colours of the layout toggle's buttons, the active one first
TOGGLE = """root => [...root.querySelectorAll(".explorer-layouts button")]
  .sort((a, b) => b.classList.contains("mod-active") - a.classList.contains("mod-active"))
  .map(b => getComputedStyle(b).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number))"""


def overlapping(labels: list[dict], gap: float = 1.0) -> list[tuple[str, str]]:
    """Pairs of tick labels of one axis whose boxes touch or overlap."""
    return [
        (a["text"], b["text"])
        for i, a in enumerate(labels)
        for b in labels[i + 1 :]
        if a["x0"] < b["x1"] + gap and b["x0"] < a["x1"] + gap
        and a["y0"] < b["y1"] + gap and b["y0"] < a["y1"] + gap
    ]  # fmt: skip


def toggle_contrast(dashboard) -> float:
    """RGB distance between the active layout button's background and the other's."""
    active, other = dashboard.evaluate(TOGGLE)
    return float(np.linalg.norm(np.subtract(active, other)))


def pixels(locator) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(locator.screenshot())).convert("RGB")).astype(int)


def painted(image: np.ndarray) -> int:
    """Pixels that differ clearly from the background (the colour of the top-left corner)."""
    return int((np.abs(image - image[2, 2]).sum(axis=2) > 60).sum())


def output_of(page, index):
    return page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output")


def python_says(page, index, expected, tries=40):
    output = output_of(page, index)
    for _ in range(tries):
        page.evaluate(RUN_CELL, index)
        page.wait_for_timeout(150)
        if output.count() and output.first.inner_text().strip() == expected:
            return
        page.wait_for_timeout(150)
    expect(output).to_have_text(expected)


def open_tab(page, dashboard, title):
    dashboard.locator(".explorer-tabs .lm-TabBar-tab", has_text=title).click()
    page.wait_for_timeout(300)


def open_notebook(page, lab, name):
    page.goto(lab.notebook_url(name))
    page.wait_for_function(KERNEL_READY, timeout=60_000)


def lasso_left_half(page, plot):
    plot.scroll_into_view_if_needed()
    box = plot.bounding_box()
    x0, y0 = box["x"] + 4, box["y"] + 4
    x1, y1 = box["x"] + box["width"] / 2, box["y"] + box["height"] - 4
    page.keyboard.down("Shift")
    page.mouse.move(x0, y0)
    page.mouse.down()
    for x, y in [(x1, y0), (x1, y1), (x0, y1), (x0, y0 + 2)]:
        page.mouse.move(x, y, steps=8)
    page.mouse.up()
    page.keyboard.up("Shift")


def test_explorer_dashboard_in_jupyterlab(page, lab, outside_requests, artifacts):
    write_notebook(lab, "explorer.ipynb", CELLS)
    page.set_viewport_size({"width": 1280, "height": 1700})  # the whole dashboard in view
    open_notebook(page, lab, "explorer.ipynb")
    set_theme(page, "JupyterLab Light", "true", settle_ms=2000)

    # First picture: both projections drawn with WebGL, while the jobs still run.
    start = time.perf_counter()
    page.evaluate(RUN_CELL, 0)
    dashboard = page.locator(".explorer-dashboard")
    roots = dashboard.locator(".explorer-pv")
    expect(roots).to_have_count(2, timeout=120_000)
    for i in range(2):
        expect(roots.nth(i)).to_have_attribute("data-renderer", "webgl2", timeout=60_000)
    plots = roots.locator(".explorer-pv-plot")
    while painted(pixels(plots.nth(0))) < 2000 and time.perf_counter() - start < 120:
        page.wait_for_timeout(50)
    first_picture = time.perf_counter() - start
    expect(dashboard.locator(".explorer-job-bar")).to_be_visible()

    # Every job ends and fills its view.
    output = output_of(page, 2)
    page.evaluate(RUN_CELL, 2)
    expect(output).to_contain_text("done", timeout=400_000)
    all_done = time.perf_counter() - start
    text = output.inner_text()
    assert "'dimension', 'projection', 'projection_b', 'similarity', 'spectra', 'subspace'" in text
    assert text.strip().endswith("[]"), f"job errors: {text}"
    expect(dashboard.locator(".explorer-job-summary")).to_contain_text("all done")
    timing = {"first_picture_s": round(first_picture, 2), "all_jobs_s": round(all_done, 2)}
    (artifacts / "explorer_timings.json").write_text(json.dumps(timing))
    print("\nexplorer dashboard (digits demo):", timing)

    # The dashboard's cursor: the line under it describes the depth, ‹ › step, play runs through.
    summary = dashboard.locator(".explorer-depth-summary")
    expect(summary).to_contain_text("blocks.0 · twonn ")
    dashboard.locator(".explorer-depth-next").click()
    expect(summary).to_contain_text("blocks.1 · 1 weight matrix (mlp.up", timeout=20_000)
    expect(roots.nth(1)).to_have_attribute("data-depth", "1", timeout=20_000)
    dashboard.locator(".explorer-depth-previous").click()
    expect(roots.nth(0)).to_have_attribute("data-depth", "0", timeout=20_000)
    play, stop = dashboard.locator(".explorer-depth-play button").all()[:2]
    play.click()
    expect(roots.nth(0)).to_have_attribute("data-depth", "2", timeout=20_000)
    expect(roots.nth(1)).to_have_attribute("data-depth", "4", timeout=20_000)
    expect(summary).to_contain_text("blocks.4 · 1 weight matrix (head")
    stop.click()  # back to the first depth
    expect(roots.nth(0)).to_have_attribute("data-depth", "0", timeout=20_000)
    expect(summary).to_contain_text("blocks.0 · twonn ")

    # Every view renders something.
    page.wait_for_timeout(500)
    dashboard.screenshot(path=artifacts / "explorer-first.png")
    for i in range(2):
        assert painted(pixels(plots.nth(i))) > 2000, f"projection {i} is blank"
    for title in ["weight spectra", "dimension", "subspaces", "CKA"]:
        open_tab(page, dashboard, title)
        panel = dashboard.locator(".explorer-tabs .widget-tab-contents > :visible").first
        chart = panel.locator(".explorer-chart").first
        expect(chart.locator("svg g.mark-symbol path, svg g.mark-rect path").first).to_be_attached(
            timeout=60_000
        )
        assert painted(pixels(chart)) > 1500, f"the {title} view is blank"

    # The spectra tab at depth 0 (no weight matrix there) says it shows depth 1, and why; its ESD
    # axes label powers of ten only, none running into another ("1e-1" touched "2e-1").
    open_tab(page, dashboard, "weight spectra")
    spectra = dashboard.locator(".explorer-slot-spectra")
    expect(spectra.locator(".explorer-spectra-depth")).to_have_text(
        "depth 1 (the cursor's depth 0 has no weight matrices)"
    )
    esd = spectra.locator(".explorer-chart").nth(1)
    expect(esd.locator("svg g.mark-rect path").first).to_be_attached()
    axes = [labels for labels in esd.evaluate(AXIS_LABELS) if labels]
    assert len(axes) >= 2, axes
    for labels in axes:
        assert overlapping(labels) == [], labels
        assert all(re.fullmatch(r"1e[+-]\d+", label["text"]) for label in labels), labels
    spectra.screenshot(path=artifacts / "explorer-spectra-depth0.png")

    # The scrubber of the first projection moves Python, the second projection and the charts.
    open_tab(page, dashboard, "dimension")
    dimension = dashboard.locator(".explorer-slot-dimension .explorer-chart")
    expect(dimension.locator("svg g.mark-symbol path").first).to_be_attached()
    page.wait_for_function(
        f"el => ({CURSOR})(el).join() === '0'", arg=dimension.element_handle(), timeout=20_000
    )
    before = [pixels(plots.nth(1)), pixels(dimension)]
    roots.nth(0).locator("input[type=range]").fill("3")
    expect(roots.nth(1)).to_have_attribute("data-depth", "3", timeout=20_000)
    python_says(page, 1, "depth 3 selected 0")
    page.wait_for_function(
        f"el => ({CURSOR})(el).join() === '3'", arg=dimension.element_handle(), timeout=20_000
    )
    page.wait_for_timeout(600)
    after = [pixels(plots.nth(1)), pixels(dimension)]
    assert painted(np.abs(after[0] - before[0])) > 1000, "projection b did not follow the depth"
    assert painted(np.abs(after[1] - before[1])) > 30, "the dimension chart did not follow"

    # Zoom the first projection with the wheel: the second follows in the browser (linked camera);
    # a double click on the first resets both.
    box = plots.nth(0).bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    before = pixels(plots.nth(1))
    for _ in range(3):
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(50)
    page.wait_for_function("el => Number(el.dataset.zoom) > 1.5", arg=roots.nth(0).element_handle())
    zoom = roots.nth(0).get_attribute("data-zoom")
    expect(roots.nth(1)).to_have_attribute("data-zoom", zoom, timeout=10_000)
    page.wait_for_timeout(400)
    assert painted(np.abs(pixels(plots.nth(1)) - before)) > 1000, "projection b did not zoom"
    roots.nth(0).locator("xpath=../../..").screenshot(path=artifacts / "explorer-zoomed.png")
    plots.nth(0).dblclick()
    expect(roots.nth(1)).to_have_attribute("data-zoom", "1.0000", timeout=10_000)
    page.wait_for_timeout(400)

    # Lasso in the first projection: both select, the dimension view gets a selection series.
    lasso_left_half(page, plots.nth(0))
    page.wait_for_function(
        "el => Number(el.dataset.selected) > 8", arg=roots.nth(0).element_handle()
    )
    selected = roots.nth(0).get_attribute("data-selected")
    expect(roots.nth(1)).to_have_attribute("data-selected", selected, timeout=20_000)
    python_says(page, 1, f"depth 3 selected {selected}")
    page.evaluate(RUN_CELL, 2)
    page.wait_for_timeout(500)
    expect(output).to_contain_text("done", timeout=300_000)
    python_says(
        page,
        3,
        "series ['digits-clean · all', 'digits-clean · selection', "
        "'digits-noisy · all', 'digits-noisy · selection']",
    )
    page.wait_for_function(
        f"el => ({SUBSETS})(el).join() === 'all,selection'",
        arg=dimension.element_handle(),
        timeout=30_000,
    )

    # The two projections share the width, side by side (they took a third each, a gap between).
    width = dashboard.bounding_box()["width"]
    left, right = (roots.nth(i).bounding_box() for i in range(2))
    assert min(left["width"], right["width"]) > 0.47 * width, (left, right, width)
    assert right["x"] - (left["x"] + left["width"]) < 16, (left, right)

    # Screenshots, light and dark; the active layout (UMAP) stands out in both themes.
    page.mouse.move(5, 5)
    dashboard.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    expect(dashboard.locator(".explorer-layouts button.mod-active")).to_have_text("UMAP")
    assert toggle_contrast(dashboard) > 100, dashboard.evaluate(TOGGLE)
    screenshot(dashboard, artifacts, "explorer-light.png", "explorer-light.png")
    set_theme(page, "JupyterLab Dark", "false", settle_ms=2000)
    assert toggle_contrast(dashboard) > 100, dashboard.evaluate(TOGGLE)
    dashboard.locator(".explorer-layouts").screenshot(path=artifacts / "explorer-toggle-dark.png")
    dark = pixels(plots.nth(0))
    assert dark[2, 2].sum() < 3 * 90, "the projection stayed light"
    assert painted(dark) > 2000
    label = dimension.evaluate(
        "el => getComputedStyle(el.querySelector('g.role-axis-label text')).fill"
    )
    assert label != "rgb(33, 33, 33)", "dimension axis labels stayed dark on dark"
    screenshot(dashboard, artifacts, "explorer-dark.png", "explorer-dark.png")
    set_theme(page, "JupyterLab Light", "true", settle_ms=2000)

    # Saved and opened again: the views come back from the kernel and stay linked.
    page.evaluate("() => window.jupyterapp.commands.execute('docmanager:save')")
    page.wait_for_timeout(1000)
    open_notebook(page, lab, "explorer.ipynb")
    dashboard = page.locator(".explorer-dashboard")
    roots = dashboard.locator(".explorer-pv")
    expect(roots).to_have_count(2, timeout=60_000)
    expect(roots.nth(1)).to_have_attribute("data-depth", "3", timeout=30_000)
    plots = roots.locator(".explorer-pv-plot")
    page.wait_for_timeout(800)
    assert painted(pixels(plots.nth(0))) > 2000, "blank after reopening"
    roots.nth(1).locator("input[type=range]").fill("1")
    expect(roots.nth(0)).to_have_attribute("data-depth", "1", timeout=20_000)
    python_says(page, 1, f"depth 1 selected {selected}")

    assert outside_requests == []
