"""The layer browser in a real JupyterLab: it draws, the slider moves Python, Python moves it."""

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
expect = pytest.importorskip("playwright.sync_api").expect

from lab_page import KERNEL_READY, RUN_CELL, set_theme, write_notebook  # noqa: E402

pytestmark = pytest.mark.browser
BUNDLE = Path(__file__).resolve().parents[2] / "explorer" / "static" / "layer_browser.js"
if not BUNDLE.is_file() and not os.environ.get("CI"):  # in CI a missing bundle fails
    pytest.skip("JS bundle not built: run scripts/setup", allow_module_level=True)

SETUP = """\
import torch
from explorer.sources import load
from explorer.widgets import LayerBrowser

torch.manual_seed(0)
model = torch.nn.Sequential(
    torch.nn.Linear(8, 16), torch.nn.ReLU(),
    torch.nn.Linear(16, 16), torch.nn.ReLU(),
    torch.nn.Linear(16, 4),
)
w = LayerBrowser(load(model), title="three linear layers")
w"""
CELLS = [
    SETUP,
    'print("depth =", w.depth)',
    "w.set_depth(3);",
    # thirty layers: the table scrolls under its sticky header
    "deep = LayerBrowser(load(torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(30)])))\n"
    "deep.set_depth(17)",
]

# What is painted at the middle of each header cell (the header, or a row scrolled under it), and
# where the header and the first current row are.
HEADER = """root => {
  const wrap = root.querySelector(".explorer-lb-table-wrap");
  const head = root.querySelector("thead").getBoundingClientRect();
  const row = root.querySelector("tbody tr.is-current").getBoundingClientRect();
  const hits = [...root.querySelectorAll("th")].map(th => {
    const box = th.getBoundingClientRect();
    return document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2)?.tagName;
  });
  return {hits, headBottom: head.bottom, rowTop: row.top, rowBottom: row.bottom,
          wrapBottom: wrap.getBoundingClientRect().bottom, scrolled: wrap.scrollTop};
}"""

# What the bar chart drew: how many pixels are painted, the colour most of them have (the bars'),
# and the depth slots holding more than a tick label's worth of blue-dominant (accent) pixels.
BARS = """canvas => {
  const {width, height} = canvas;
  const data = canvas.getContext("2d").getImageData(0, 0, width, height).data;
  const slots = Number(canvas.closest(".explorer-lb").querySelector("input").max) + 1;
  const accent = new Array(slots).fill(0);
  const colours = new Map();
  let painted = 0;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i + 3] === 0) continue;
    painted++;
    const colour = `rgb(${data[i]}, ${data[i + 1]}, ${data[i + 2]})`;
    colours.set(colour, (colours.get(colour) ?? 0) + 1);
    if (data[i + 2] > data[i] + 60) accent[Math.floor((((i / 4) % width) / width) * slots)]++;
  }
  const commonest = [...colours].sort((a, b) => b[1] - a[1])[0]?.[0];
  return {painted, commonest, highlighted: accent.flatMap((n, slot) => (n > 200 ? [slot] : []))};
}"""


def test_layer_browser_in_jupyterlab(page, lab, outside_requests, artifacts):
    # The notebook names its kernel, so JupyterLab opens it without a "Select Kernel" dialog.
    write_notebook(lab, "layer_browser.ipynb", CELLS)
    page.goto(lab.notebook_url("layer_browser.ipynb"))
    page.wait_for_function(KERNEL_READY, timeout=30_000)
    set_theme(page, "JupyterLab Light", "true")  # an earlier test may have left it dark

    page.evaluate(RUN_CELL, 0)
    widget = page.locator(".explorer-lb")
    slider = widget.locator("input[type=range]")
    expect(slider).to_be_visible(timeout=30_000)
    expect(slider).to_have_value("0")
    expect(widget.locator(".explorer-lb-summary")).to_have_text("blocks.0 — no weight matrices")
    current = widget.locator("tbody tr.is-current td:first-child")
    canvas = widget.locator("canvas")
    before = canvas.evaluate(BARS)
    assert before["painted"] > 500, "the bar chart drew nothing"
    assert before["highlighted"] == [], "no bar should be highlighted at an empty depth"

    # The keyboard moves the slider: the table, the bars and then Python follow.
    slider.press("ArrowRight")
    expect(slider).to_have_value("1")
    expect(current).to_have_text(["blocks.1.mlp.up"])
    after = canvas.evaluate(BARS)
    assert after["highlighted"] == [1]
    output = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".jp-OutputArea-output")
    for _ in range(20):  # the front end debounces, so Python may see the move a moment later
        page.evaluate(RUN_CELL, 1)
        expect(output).to_contain_text("depth =")
        if output.inner_text().strip() == "depth = 1":
            break
        page.wait_for_timeout(100)
    expect(output).to_have_text("depth = 1")

    # Python moves the cursor: the view follows.
    page.evaluate(RUN_CELL, 2)
    expect(slider).to_have_value("3")
    expect(current).to_have_text(["blocks.3.head"])
    expect(widget.locator(".explorer-lb-depth")).to_have_text("depth 3 / 3")
    light = canvas.evaluate(BARS)
    assert light["highlighted"] == [3]
    page.screenshot(path=artifacts / "layer_browser_light.png")
    widget.screenshot(path=artifacts / "layer_browser_light_widget.png")

    # Dark theme: colours come from JupyterLab's variables, and the bars are redrawn in them.
    set_theme(page, "JupyterLab Dark", "false")
    expect(widget).not_to_have_css("background-color", "rgb(255, 255, 255)")
    dark = canvas.evaluate(BARS)
    assert dark["highlighted"] == [3]
    assert dark["commonest"] != light["commonest"], "the bars kept their light-theme colour"
    page.screenshot(path=artifacts / "layer_browser_dark.png")
    widget.screenshot(path=artifacts / "layer_browser_dark_widget.png")

    # A long table scrolled to depth 17: the sticky header is painted over the rows under it
    # (they painted over it), and the current row sits fully below it.
    page.evaluate(RUN_CELL, 3)
    deep = page.locator(".explorer-lb").nth(1)
    expect(deep.locator(".explorer-lb-depth")).to_have_text("depth 17 / 30", timeout=30_000)
    for theme, is_light in (("JupyterLab Dark", "false"), ("JupyterLab Light", "true")):
        set_theme(page, theme, is_light)
        deep.scroll_into_view_if_needed()
        page.wait_for_timeout(300)
        layout = deep.evaluate(HEADER)
        assert layout["scrolled"] > 100, layout
        assert layout["hits"] == ["TH"] * 5, f"a row is painted over the header: {layout}"
        assert layout["headBottom"] - 1 <= layout["rowTop"] < layout["rowBottom"], layout
        assert layout["rowBottom"] <= layout["wrapBottom"], layout
        deep.screenshot(path=artifacts / f"layer_browser_scrolled_{is_light}.png")
    # back in the light theme, the bars are drawn in its colours again (they kept the dark ones,
    # read while the theme's CSS was still loading)
    page.wait_for_timeout(1600)
    assert deep.locator("canvas").evaluate(BARS)["commonest"] == light["commonest"]

    assert outside_requests == []
