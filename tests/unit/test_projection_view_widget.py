"""The projection view's Python side, headless: traits set as the front end would set them."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from ipywidgets.widgets.widget import _remove_buffers

from explorer.widgets import projection_view
from explorer.widgets.projection_view import (
    ProjectionView,
    ProjectionViewWidget,
    array_from_payload,
    array_payload,
)


def layouts(n=6, depths=(0, 1, 2), seed=0):
    rng = np.random.default_rng(seed)
    return {d: rng.normal(size=(n, 2)) for d in depths}


def test_widget_is_built_on_first_display_only(monkeypatch):
    built = []

    class Spy(ProjectionViewWidget):
        def __init__(self, **traits):
            built.append(traits)
            super().__init__(**traits)

    monkeypatch.setattr(projection_view, "ProjectionViewWidget", Spy)
    view = ProjectionView(layouts())
    assert built == []
    data, _ = view._repr_mimebundle_()
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == view.widget.model_id
    view._repr_mimebundle_()
    assert len(built) == 1


def test_points_travel_as_one_binary_float32_buffer():
    coords = layouts(n=5, depths=(3, 1, 2))
    widget = ProjectionView(coords, labels=list("aabbc")).widget
    state, paths, buffers = _remove_buffers(widget.get_state())
    assert ["coords", "view"] in paths and ["label_codes", "view"] in paths
    assert state["coords"] == {"dtype": "float32", "shape": [3, 5, 2]}
    coords_buffer = buffers[paths.index(["coords", "view"])]
    assert isinstance(coords_buffer, memoryview) and coords_buffer.nbytes == 3 * 5 * 2 * 4
    # Depths in ascending order, each depth's layout in its slot, little-endian float32.
    back = np.frombuffer(bytes(coords_buffer), dtype="<f4").reshape(3, 5, 2)
    np.testing.assert_array_equal(back[0], coords[1].astype(np.float32))
    np.testing.assert_array_equal(back[2], coords[3].astype(np.float32))
    assert widget.depths == [1, 2, 3] and widget.n_depths == 3 and widget.depth == 1
    assert state["label_codes"] == {"dtype": "uint32", "shape": [5]}
    assert widget.label_names == ["a", "b", "c"]
    np.testing.assert_array_equal(array_from_payload(widget.label_codes), [0, 0, 1, 1, 2])
    # No number goes as JSON: the state without its buffers holds no list of floats.
    assert "view" not in state["coords"]


def test_array_payload_round_trips_and_refuses_non_numbers():
    for array in (np.arange(6, dtype=np.float64).reshape(2, 3), np.array([3, 1], dtype=np.int64)):
        payload = array_payload(array)
        assert payload["shape"] == list(array.shape)
        np.testing.assert_array_equal(array_from_payload(payload), array)
    assert array_payload(np.array([True]))["dtype"] == "uint32"
    with pytest.raises(TypeError, match="numeric"):
        array_payload(np.array(["a"]))


def test_a_projection_is_taken_duck_typed_with_its_labels():
    projection = SimpleNamespace(coords=layouts(n=4), labels=np.array([0, 1, 1, 0]))
    view = ProjectionView(projection, title="pca")
    assert view.depths == [0, 1, 2] and view.n_points == 4
    assert view.widget.color_kind == "category"
    assert view.widget.legend == ["0", "1"]
    assert view.widget.color_title == "label"
    assert view.widget.title == "pca"
    # Three components: the first two are drawn.
    wide = ProjectionView({0: np.ones((4, 3)), 1: np.zeros((4, 3))})
    assert wide.coords(1).shape == (4, 2)


def test_mismatched_numbers_of_points_are_a_clear_error():
    with pytest.raises(ValueError, match=r"number of points differs: \{0: 6, 1: 6, 2: 5\}"):
        ProjectionView({0: np.zeros((6, 2)), 1: np.zeros((6, 2)), 2: np.zeros((5, 2))})


@pytest.mark.parametrize(
    ("coords", "error", "match"),
    [
        ({}, ValueError, "empty"),
        ([np.zeros((3, 2))], TypeError, "map depth"),
        ({0: np.zeros(3)}, ValueError, r"coords\[0\] has shape \(3,\)"),
        ({0: np.zeros((3, 1))}, ValueError, "needs \\(N, 2\\)"),
        ({0: np.array([[0.0, np.nan]])}, ValueError, "NaN"),
        ({0.5: np.zeros((3, 2))}, TypeError, "integer"),
    ],
)
def test_bad_coords(coords, error, match):
    with pytest.raises(error, match=match):
        ProjectionView(coords)


def test_bad_arguments():
    coords = layouts(n=3)
    with pytest.raises(ValueError, match="3 texts for|2 texts for 3"):
        ProjectionView(coords, texts=["a", "b"])
    with pytest.raises(ValueError, match="one value per point"):
        ProjectionView(coords, labels=[1, 2])
    with pytest.raises(ValueError, match="depth 7 has no layout"):
        ProjectionView(coords, depth=7)
    with pytest.raises(TypeError, match="bool"):
        ProjectionView(coords, depth=True)
    with pytest.raises(ValueError, match="needs labels"):
        ProjectionView(coords, color_by="label")
    with pytest.raises(ValueError, match="transition_ms"):
        ProjectionView(coords, transition_ms=-1)
    with pytest.raises(TypeError, match="colour|color"):
        ProjectionView(coords, colour="red")


def test_color_by_float_is_a_ramp_and_anything_else_categories():
    coords = layouts(n=4)
    metric = ProjectionView(coords, color_by=pd.Series([0.5, 2.0, np.nan, 1.0], name="loss")).widget
    assert metric.color_kind == "continuous"
    assert metric.legend == ["0.5", "2"]
    assert metric.color_title == "loss"
    assert array_from_payload(metric.color).dtype == np.float32
    words = ProjectionView(coords, labels=[0, 0, 1, 1], color_by=["x", "y", "x", "z"]).widget
    assert words.color_kind == "category"
    assert words.legend == ["x", "y", "z"]
    np.testing.assert_array_equal(array_from_payload(words.color), [0, 1, 0, 2])
    plain = ProjectionView(coords).widget
    assert plain.color_kind == "none" and plain.color == {}


def test_depth_moves_both_ways():
    view = ProjectionView(layouts(depths=(0, 4, 8)), depth=4)
    assert view.depth == 4 and view.widget.depth == 4
    view.widget.depth = 8  # the slider
    assert view.depth == 8
    assert view.set_depth(0) is view
    assert view.widget.depth == 0
    with pytest.raises(ValueError, match="no layout"):
        view.depth = 2


def test_selection_moves_both_ways_and_is_checked():
    view = ProjectionView(layouts(n=6))
    view.widget.selection = [4, 1, 1]  # the lasso
    assert view.selection == [1, 4]
    view.selection = np.array([True, False, True, False, False, False])
    assert view.widget.selection == [0, 2]
    assert view.set_selection([5]).selection == [5]
    assert view.clear_selection().widget.selection == []
    with pytest.raises(ValueError, match=r"\[6\] are outside 0..5"):
        view.selection = [6]
    with pytest.raises(TypeError, match="indices"):
        view.selection = [0.5]
    with pytest.raises(ValueError, match="one entry per point"):
        view.selection = np.array([True])


def test_data_is_a_tidy_frame_of_what_is_shown():
    coords = layouts(n=3)
    view = ProjectionView(coords, labels=["a", "b", "a"], texts=["x", "y", "z"], depth=2)
    view.widget.selection = [1]
    frame = view.data
    assert list(frame.columns) == ["depth", "point", "x", "y", "label", "selected", "text"]
    assert frame["depth"].tolist() == [2, 2, 2]
    np.testing.assert_allclose(frame[["x", "y"]].to_numpy(), coords[2].astype(np.float32))
    assert frame["selected"].tolist() == [False, True, False]
    assert frame["label"].tolist() == ["a", "b", "a"]
    assert ProjectionView(coords).data["label"].isna().all()


def test_transition_ms():
    view = ProjectionView(layouts())
    assert view.widget.transition_ms == 300
    view.transition_ms = 0
    assert view.widget.transition_ms == 0
    assert ProjectionView(layouts(), transition_ms=0).widget.transition_ms == 0


def test_camera_moves_both_ways_and_is_checked():
    view = ProjectionView(layouts())
    assert view.camera == (1.0, 0.0, 0.0) and view.widget.camera == [1.0, 0.0, 0.0]
    view.widget.camera = [3.0, -0.5, 0.25]  # the wheel, once a frame
    assert view.camera == (3.0, -0.5, 0.25)
    view.camera = (2, 0, 1)
    assert view.widget.camera == [2.0, 0.0, 1.0]
    assert view.reset_view().widget.camera == [1.0, 0.0, 0.0]
    for bad, match in [
        ((0.0, 0, 0), "zoom must be"),
        ((1, float("nan"), 0), "finite"),
        ((1, 2), "zoom, pan_x, pan_y"),
        ("abc", "zoom, pan_x, pan_y"),
    ]:
        with pytest.raises(ValueError, match=match):
            view.camera = bad


def jslinks(view):
    """The browser-side links (ipywidgets ``Link`` widgets) of a view, as (a, trait, b, trait)."""
    from ipywidgets.widgets.widget_link import Link

    found = [js for link in view._links for js in link.links]
    assert all(isinstance(js, Link) for js in found)
    return [(*js.source, *js.target) for js in found]


def test_linked_views_share_camera_and_selection_in_the_browser_and_in_python():
    a, b = ProjectionView(layouts(n=6)), ProjectionView(layouts(n=6, seed=1))
    a.camera = (2.0, 0.1, 0.2)
    a.selection = [1, 2]
    assert a.link(b) is a
    assert b.camera == (2.0, 0.1, 0.2) and b.selection == [1, 2]  # b starts from a's state
    b.camera = (4.0, 0.0, 0.0)  # set in Python: both follow, before any widget exists
    assert a.camera == (4.0, 0.0, 0.0)
    # the widgets are built lazily; once both exist they are linked in the browser (jslink)
    wa = a.widget
    assert jslinks(a) == []
    wb = b.widget
    assert sorted(jslinks(a)) == [(wa, "camera", wb, "camera"), (wa, "selection", wb, "selection")]
    assert wb.camera == [4.0, 0.0, 0.0] and wb.selection == [1, 2]
    b.selection = [5]
    assert a.selection == [5] and wa.selection == [5]
    # closing a view removes its links; the other goes on alone
    a.close()
    assert jslinks(b) == [] and a._widget is None
    b.camera = (1.0, 0.0, 0.0)
    assert a.camera == (4.0, 0.0, 0.0)


def test_link_refuses_what_it_cannot_share():
    a = ProjectionView(layouts(n=6))
    with pytest.raises(ValueError, match="itself"):
        a.link(a)
    with pytest.raises(TypeError, match="another ProjectionView"):
        a.link(object())
    other = ProjectionView(layouts(n=7))
    with pytest.raises(ValueError, match="6 and 7 points"):
        a.link(other)
    a.link(other, selection=False)  # zoom only
    other.camera = (2, 0, 0)
    assert a.camera == (2.0, 0.0, 0.0) and a.selection == []
    with pytest.raises(ValueError, match="nothing to link"):
        a.link(other, camera=False, selection=False)


def test_the_export_palette_is_the_view_palette():
    import re
    from pathlib import Path

    from explorer.widgets.projection_export import CATEGORICAL

    ts = Path(__file__).resolve().parents[2] / "widgets_js/src/scatter/colors.ts"
    block = re.search(r"CATEGORICAL: readonly string\[\] = \[(.*?)\];", ts.read_text(), re.S)
    assert re.findall(r'"(#[0-9a-f]{6})"', block.group(1)) == CATEGORICAL


def test_the_exported_picture_is_what_the_view_shows(tmp_path):
    coords = {0: np.array([[0.0, 0.0], [2.0, 1.0], [4.0, 2.0]]), 1: np.array([[1.0, 1.0]] * 3)}
    view = ProjectionView(coords, labels=["a", "b", "a"], title="t")
    spec = view.spec()
    assert spec["title"] == "t · depth 0"
    x, y = spec["encoding"]["x"]["scale"]["domain"], spec["encoding"]["y"]["scale"]["domain"]
    # drawn in view units: the square [-1, 1]^2 at home
    np.testing.assert_allclose([x, y], [[-1, 1], [-1, 1]])
    # depth 0 framed on its own: centre (2, 1), half side 2 at 0.92 of the square
    points = spec["data"]["values"]
    np.testing.assert_allclose(
        [[p["x"], p["y"]] for p in points], [[-0.92, -0.46], [0, 0], [0.92, 0.46]]
    )
    assert [p["colour"] for p in points] == ["a", "b", "a"]
    assert spec["encoding"]["color"]["scale"]["range"] == ["#4e79a7", "#f28e2b"]
    assert "opacity" in spec["layer"][0]["mark"]
    # zoomed 4x about the centre: only the middle point stays in view
    view.camera = (4.0, 0.0, 0.0)
    spec = view.spec()
    np.testing.assert_allclose(spec["encoding"]["x"]["scale"]["domain"], [-0.25, 0.25])
    assert [p["point"] for p in spec["data"]["values"]] == [1]
    view.reset_view()
    view.selection = [2]
    spec = view.spec(depth=1)
    assert spec["title"] == "t · depth 1" and spec["encoding"]["opacity"]["condition"]["test"]
    assert [p["selected"] for p in spec["data"]["values"]] == [False, False, True]
    metric = ProjectionView(coords, color_by=np.array([0.5, 1.0, np.nan])).spec()
    assert metric["encoding"]["color"]["scale"] == {"scheme": "viridis"}
    assert ProjectionView(coords).spec()["layer"][0]["mark"]["color"] == "#1976d2"
    png = view.save(tmp_path / "view.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert view.save(tmp_path / "view.svg").read_text().startswith("<svg")


def test_each_depth_is_framed_on_its_bulk_with_far_outliers_pinned_to_the_edge():
    """The frame of ``frame`` in geometry.ts (its vitest pins the same numbers on the same points):
    a 10 x 10 grid and one point at (1000, 5) is framed on the grid, the outlier pinned."""
    from explorer.widgets.projection_export import EDGE, frame, to_view

    grid = np.array([[i % 10, i // 10] for i in range(100)] + [[1000, 5]], dtype=np.float32)
    cx, cy, scale = frame(grid)
    np.testing.assert_allclose([cx, cy, scale], [4.5, 4.5, 0.92 / 4.5])
    world, pinned = to_view(grid)
    assert pinned.tolist() == [False] * 100 + [True]
    np.testing.assert_allclose(world[100], [EDGE, EDGE * 0.5 / 995.5], rtol=1e-6)
    # a small depth and a large one both fill the view (the old single fit drew the small one as a
    # dot); a cloud with no far outlier is framed by all its points, none pinned
    rng = np.random.default_rng(0)
    small, big = rng.normal(size=(500, 2)) * 0.01, rng.normal(size=(500, 2)) * 50
    view = ProjectionView({0: small, 1: big})
    for depth in (0, 1):
        points = view.spec(depth)["data"]["values"]
        xs = np.array([p["x"] for p in points])
        # the middle 90 % spans a third of the square's side (2) or more: a Gaussian's tails
        # reach 3 sigma, its middle 90 % 1.6 sigma (the old single fit: 0.0003 at depth 0)
        assert (np.percentile(xs, 95) - np.percentile(xs, 5)) / 2 > 0.33
        assert not any(p["pinned"] for p in points)
    np.testing.assert_allclose(max(np.abs(to_view(small)[0]).max(0)), 0.92)
