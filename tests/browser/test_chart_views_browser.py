"""The chart views in a real JupyterLab: drawn offline (no request leaves loopback), legible in the
light and dark themes, and a click on a point moves the depth cursor in Python."""

import pickle

import pytest

nbformat = pytest.importorskip("nbformat")
expect = pytest.importorskip("playwright.sync_api").expect
pytest.importorskip("vl_convert")

from lab_page import KERNEL_READY, RUN_CELL, screenshot, set_theme, write_notebook  # noqa: E402

pytestmark = pytest.mark.browser


# Marks of a chart: every symbol/rect the SVG renderer drew, with the datum it is bound to.
MARKS = """(root, kind) => [...root.querySelectorAll(`g.mark-${kind} path`)].map(el => {
  const box = el.getBoundingClientRect();
  return {x: box.x + box.width / 2, y: box.y + box.height / 2, w: box.width, h: box.height,
          datum: el.__data__?.datum ?? null};
}).filter(m => m.w > 0 && m.h > 0)"""

# Depths of the largest symbols: the points under the depth cursor are drawn bigger.
CURSOR = """root => {
  const marks = [...root.querySelectorAll("g.mark-symbol path")]
    .map(el => ({w: el.getBoundingClientRect().width, d: el.__data__?.datum?.depth}));
  const top = Math.max(...marks.map(m => m.w));
  return [...new Set(marks.filter(m => m.w > top - 0.5).map(m => m.d))];
}"""

LABEL_COLOUR = """root => {
  const text = root.querySelector("g.role-axis-label text");
  return text ? getComputedStyle(text).fill : null;
}"""


def warn_rgb(hex_colour: str) -> str:
    """``#rrggbb`` as getComputedStyle writes it."""
    r, g, b = (int(hex_colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return f"rgb({r}, {g}, {b})"


def open_notebook(page, lab, name):
    page.goto(lab.notebook_url(name))
    page.wait_for_function(KERNEL_READY, timeout=60_000)
    set_theme(page, "JupyterLab Light", "true")  # an earlier test may have left it dark


def python_says(page, index, expected, tries=40):
    output = page.locator(".jp-Notebook .jp-Cell").nth(index).locator(".jp-OutputArea-output")
    for _ in range(tries):
        page.evaluate(RUN_CELL, index)
        expect(output).to_contain_text("=", timeout=30_000)
        if output.inner_text().strip() == expected:
            return
        page.wait_for_timeout(150)
    expect(output).to_have_text(expected)


def click_mark(page, chart, kind, match):
    """Click the first mark of ``kind`` whose datum has the items of ``match``, then move away
    (a selection clears when the pointer leaves the mark)."""
    chart.scroll_into_view_if_needed()
    marks = chart.evaluate(MARKS, kind)
    target = next(m for m in marks if match.items() <= (m["datum"] or {}).items())
    page.mouse.move(target["x"] - 40, target["y"] - 40)
    page.mouse.click(target["x"], target["y"])
    page.wait_for_timeout(300)
    page.mouse.move(target["x"] - 40, target["y"] - 40, steps=4)
    return target["datum"]


@pytest.fixture(scope="module")
def spectra_pickle(lab):
    import explorer as ex
    from explorer import demo

    path = lab.root / "spectra.pkl"
    path.write_bytes(pickle.dumps(ex.spectra(demo.load("minilm"))))
    return path


def test_spectrum_view_offline_click_and_themes(
    page, lab, spectra_pickle, outside_requests, artifacts
):
    cells = [
        "import pickle\nfrom explorer.widgets.spectrum_view import SpectrumView\n"
        "view = SpectrumView(pickle.load(open('spectra.pkl', 'rb')), depth=2)\nview",
        'print("depth =", view.depth)',
        "view.depth = 4",
    ]
    write_notebook(lab, "spectrum.ipynb", cells)
    open_notebook(page, lab, "spectrum.ipynb")
    page.evaluate(RUN_CELL, 0)
    charts = page.locator(".explorer-chart")
    expect(charts).to_have_count(2, timeout=90_000)
    overview, esd = charts.nth(0), charts.nth(1)
    expect(overview.locator("svg g.mark-symbol path").first).to_be_attached(timeout=60_000)
    expect(esd.locator("svg g.mark-rect path").first).to_be_attached(timeout=60_000)
    bars = esd.evaluate(MARKS, "rect")
    assert len(bars) > 50 and {b["datum"]["depth"] for b in bars} == {2}

    # a click on the attn.q point at depth 5 moves Python's cursor and the ESD follows
    click_mark(page, overview, "symbol", {"depth": 5, "role": "attn.q"})
    python_says(page, 1, "depth = 5")
    page.wait_for_function(
        """el => [...el.querySelectorAll("g.mark-rect path")]
             .every(p => p.__data__?.datum?.depth === 5)""",
        arg=esd.element_handle(),
        timeout=30_000,
    )

    # Python moves the cursor; then clicking depth 5 again is seen again
    page.evaluate(RUN_CELL, 2)
    python_says(page, 1, "depth = 4")
    click_mark(page, overview, "symbol", {"depth": 5, "role": "attn.q"})
    python_says(page, 1, "depth = 5")

    assert overview.evaluate(CURSOR) == [5]
    light = overview.evaluate(LABEL_COLOUR)
    page.screenshot(path=artifacts / "spectrum_view_light_page.png")
    # tall enough for the whole view, so that the notebook's toolbar does not cover its top
    page.set_viewport_size({"width": 1280, "height": 1400})
    cell = page.locator(".jp-OutputArea-output").first
    screenshot(cell, artifacts, "spectrum_view_light.png", "spectrum-view.png")
    set_theme(page, "JupyterLab Dark", "false", settle_ms=2000)
    dark = overview.evaluate(LABEL_COLOUR)
    assert overview.evaluate(CURSOR) == [5], "a theme redraw lost the cursor"
    assert light and dark and light != dark, (light, dark)
    screenshot(cell, artifacts, "spectrum_view_dark.png", "spectrum-view-dark.png")
    assert outside_requests == []


@pytest.fixture(scope="module")
def other_pickles(lab):
    import dataclasses

    import numpy as np
    import pandas as pd

    import explorer as ex
    from explorer import demo

    cmp = ex.compare(demo.load("base"), [demo.load("full"), demo.load("lora")])
    (lab.root / "cmp.pkl").write_bytes(pickle.dumps(dataclasses.replace(cmp, pairing={})))
    probe = demo.probe("digits")
    sim = ex.similarity(
        ex.capture(demo.load("digits-clean"), probe), ex.capture(demo.load("digits-noisy"), probe)
    )
    (lab.root / "sim.pkl").write_bytes(pickle.dumps(sim))
    rows = [
        dict(depth=d, metric=m, value=v, ci_low=v - 1, ci_high=v + 1, subset=s, checkpoint=c)
        for c in ("clean", "noisy")
        for s in ("all", "selection")
        for m, base in (("twonn", 8.0), ("mle", 9.0), ("rankme", 40.0), ("effective_rank", 35.0))
        for d in range(5)
        for v in [base + 3 * np.sin(d / 2) + 2 * (c == "noisy") - (s == "selection")]
    ]
    (lab.root / "dim.pkl").write_bytes(pickle.dumps(pd.DataFrame(rows)))


OTHERS = [
    "import pickle\n"
    "from explorer.widgets.subspace_view import SubspaceView\n"
    "from explorer.widgets.similarity_view import SimilarityView\n"
    "from explorer.widgets.dimension_view import DimensionView\n"
    "sub = SubspaceView(pickle.load(open('cmp.pkl', 'rb')), b='lora', depth=1)\n"
    "sim = SimilarityView(pickle.load(open('sim.pkl', 'rb')))\n"
    "dim = DimensionView(pickle.load(open('dim.pkl', 'rb')), depth=1)",
    "sub",
    "sim",
    "dim",
    'print("depths =", sub.depth, sub.k, sim.depth, sim.depth_b, dim.depth)',
    "sub.depth = 1",
]

# The intruder test's marks: per symbol its datum's intruder flag and its fill; the dashed
# (principal angles) and solid (max |cos|) lines' right ends.
CURVE = """root => {
  const symbols = [...root.querySelectorAll("g.mark-symbol path")]
    .map(el => ({intruder: el.__data__?.datum?.intruder, fill: getComputedStyle(el).fill}))
    .filter(m => m.intruder);
  const lines = [...root.querySelectorAll("g.mark-line path")].map(el => ({
    dashed: !!el.getAttribute("stroke-dasharray"), right: el.getBoundingClientRect().right}));
  return {symbols, lines};
}"""
WARN = "() => getComputedStyle(document.body).getPropertyValue('--jp-warn-color1').trim()"


def test_subspace_similarity_dimension_views(page, lab, other_pickles, outside_requests, artifacts):
    write_notebook(lab, "others.ipynb", OTHERS)
    open_notebook(page, lab, "others.ipynb")
    for i in range(4):
        page.evaluate(RUN_CELL, i)
    charts = page.locator(".explorer-chart")
    expect(charts).to_have_count(4, timeout=90_000)
    heat, curve, cka, dims = (charts.nth(i) for i in range(4))
    for chart, kind in ((heat, "rect"), (curve, "symbol"), (cka, "rect"), (dims, "symbol")):
        expect(chart.locator(f"svg g.mark-{kind} path").first).to_be_attached(timeout=60_000)
    python_says(page, 4, "depths = 1 10 0 0 1")

    # the k slider (keyboard) recomputes the intruder test: fewer points in the curve
    before = len(curve.evaluate(MARKS, "symbol"))
    sub_widget = page.locator(".jp-OutputArea-output").nth(0)
    handle = sub_widget.locator(".noUi-handle").first
    handle.focus()
    for _ in range(4):
        handle.press("ArrowLeft")
    python_says(page, 4, "depths = 1 6 0 0 1")
    page.wait_for_function(
        "([el, n]) => el.querySelectorAll('g.mark-symbol path').length < n",
        arg=[curve.element_handle(), before],
        timeout=30_000,
    )

    # clicks: a heatmap cell, a CKA cell, a dimension point
    click_mark(page, heat, "rect", {"depth": 3})
    python_says(page, 4, "depths = 3 6 0 0 1")
    click_mark(page, cka, "rect", {"depth_a": 2, "depth_b": 4})
    python_says(page, 4, "depths = 3 6 2 4 1")
    click_mark(page, dims, "symbol", {"depth": 4})
    python_says(page, 4, "depths = 3 6 2 4 4")

    # The subspace view at depth 1, k = 6: every heatmap row is filled (k = 10 was empty for
    # mlp.up), intruders are orange diamonds, the dotted line reaches j = k, the table breathes.
    page.evaluate(RUN_CELL, 5)
    python_says(page, 4, "depths = 1 6 2 4 4")
    page.wait_for_function(
        """el => {
          const at = [...el.querySelectorAll("g.mark-symbol path")]
            .map(p => p.__data__?.datum?.address).filter(Boolean);
          return at.length > 0 && at.every(a => a === "blocks.1.mlp.up");
        }""",
        arg=curve.element_handle(),
        timeout=30_000,
    )
    cells = heat.evaluate(MARKS, "rect")
    at10 = {c["datum"]["address"] for c in cells if c["datum"] and c["datum"].get("k") == 10}
    assert at10 == {f"blocks.{d}.mlp.up" for d in (1, 2, 3)} | {"blocks.4.head"}, at10
    drawn = curve.evaluate(CURVE)
    intruders = [m for m in drawn["symbols"] if m["intruder"] == "intruder"]
    aligned = [m for m in drawn["symbols"] if m["intruder"] == "aligned"]
    assert len(intruders) == 2 and len(aligned) == 4, drawn  # j = 2, 3 of 6 at epsilon 0.5
    warn = page.evaluate(WARN)
    assert all(m["fill"] == warn_rgb(warn) for m in intruders), (warn, intruders)
    assert all(m["fill"] != warn_rgb(warn) for m in aligned)
    dashed = max(line["right"] for line in drawn["lines"] if line["dashed"])
    solid = max(line["right"] for line in drawn["lines"] if not line["dashed"])
    assert abs(dashed - solid) < 3, "the dotted line stops before j = k"
    padding = (
        sub_widget.locator("table.explorer-intruders th")
        .nth(2)
        .evaluate("el => parseFloat(getComputedStyle(el).paddingRight)")
    )
    assert padding >= 10, "the table's columns run into each other"

    names = {"subspace": sub_widget, "similarity": cka, "dimension": dims}
    for name, locator in names.items():
        screenshot(locator, artifacts, f"{name}_view_light.png", f"{name}-view.png")
    light = cka.evaluate(LABEL_COLOUR)
    set_theme(page, "JupyterLab Dark", "false", settle_ms=2000)
    assert cka.evaluate(LABEL_COLOUR) != light
    # the intruders are drawn in the dark theme's warning colour, the others are not
    dark_warn = warn_rgb(page.evaluate(WARN))
    symbols = curve.evaluate(CURVE)["symbols"]
    assert {m["fill"] for m in symbols if m["intruder"] == "intruder"} == {dark_warn}, symbols
    assert all(m["fill"] != dark_warn for m in symbols if m["intruder"] == "aligned")
    for name, locator in names.items():
        screenshot(locator, artifacts, f"{name}_view_dark.png", f"{name}-view-dark.png")
    assert outside_requests == []
