"""The chart views built headless from real demo results: specs, sliders, the depth cursor, export.

The front end is stood in for as altair's tests do: a click is the ``_vl_selections`` state the
JavaScript would send; the depth shown is the ``depth`` param sent back to it.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import traitlets

pytest.importorskip("altair")
pytest.importorskip("anywidget")

from explorer.widgets.charts import (  # noqa: E402
    ChartWidget,
    offline_esm,
    picked,
    resolve_colours,
    stack_specs,
)


def click(chart: ChartWidget, **values) -> None:
    """What the front end sends when a point with ``values`` is clicked."""
    fields = [{"type": "E", "field": f} for f in values]
    store = [{"unit": "view_1", "fields": fields, "values": list(values.values())}]
    chart._vl_selections = {"pick": {"value": {f: [v] for f, v in values.items()}, "store": store}}


def param(spec: dict, name: str = "depth"):
    return next(p["value"] for p in spec["params"] if p["name"] == name)


def leave(chart: ChartWidget) -> None:
    chart._vl_selections = {"pick": {"value": {}, "store": []}}


@pytest.fixture(scope="session")
def spectra_df():
    import explorer as ex
    from explorer import demo

    return ex.spectra(demo.load("minilm"))


@pytest.fixture(scope="session")
def comparison():
    import explorer as ex
    from explorer import demo

    return ex.compare(demo.load("base"), [demo.load("full"), demo.load("lora")])


@pytest.fixture(scope="session")
def sim_df():
    import explorer as ex
    from explorer import demo

    probe = demo.probe("digits")
    a = ex.capture(demo.load("digits-clean"), probe)
    b = ex.capture(demo.load("digits-noisy"), probe)
    return ex.similarity(a, b)


@pytest.fixture
def metrics_df():
    rows = []
    for ck in ("clean", "noisy"):
        for subset in ("all", "selection"):
            for metric, base in (("twonn", 8.0), ("mle", 9.0), ("rankme", 40.0)):
                for d in range(5):
                    v = base + d + (ck == "noisy")
                    rows.append(
                        dict(
                            depth=d,
                            metric=metric,
                            value=v,
                            ci_low=v - 1,
                            ci_high=v + 1,
                            subset=subset,
                            checkpoint=ck,
                            n_points=300,
                        )
                    )
    return pd.DataFrame(rows)


def test_offline_bundle_needs_no_network():
    esm = offline_esm()
    assert "esm.sh" not in esm and "cdn.jsdelivr" not in esm
    assert "import(" not in esm  # no dynamic imports either
    assert not [line for line in esm.splitlines() if line.startswith("import ")]
    assert "explorerRender" in esm


def test_charts_share_one_library_model_and_carry_only_a_loader():
    import altair as alt

    from explorer.widgets.charts import ChartWidget, vega_library

    chart = alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(x="x:Q")
    a, b = ChartWidget(chart), ChartWidget(chart)
    assert a.library is b.library is vega_library()
    assert a.library.code == offline_esm()
    assert len(a._esm) < 2_000 and "explorerRender" not in a._esm  # not the 900 KB bundle
    state = a.get_state()
    assert state["library"] == f"IPY_MODEL_{a.library.model_id}"
    a.library.close()  # e.g. Widget.close_all(): the next chart gets a new library
    assert ChartWidget(chart).library is vega_library() is not a.library


def test_colours_resolve_to_light_fallbacks():
    spec = {"a": "var(--jp-ui-font-color1, #212121)", "b": ["var(--x, red)", 3], "c": "blue"}
    assert resolve_colours(spec) == {"a": "#212121", "b": ["red", 3], "c": "blue"}


def test_picked_reads_value_or_store():
    assert picked({"value": {"depth": [3]}, "store": []}, "depth") == 3
    store = [{"fields": [{"field": "depth_a"}, {"field": "depth_b"}], "values": [1, 2]}]
    assert picked({"value": None, "store": store}, "depth_b") == 2
    assert picked({"value": {}, "store": []}, "depth") is None


# --- SpectrumView -------------------------------------------------------------------------


def test_spectrum_view_data_from_minilm(spectra_df):
    from explorer.widgets.spectrum_view import SpectrumView

    view = SpectrumView(spectra_df, depth=3)
    esd = view.data
    assert set(esd.kind) == {"esd", "fit", "xmin", "mp_edge"}
    assert set(esd.depth) == set(spectra_df.depth)
    bars = esd[(esd.kind == "esd") & (esd.address == "blocks.3.attn.q")]
    lam = spectra_df.set_index("address").esd["blocks.3.attn.q"]
    widths = bars.x2 - bars.x
    assert np.isclose((bars.y * widths).sum(), 1.0)  # a density over the positive eigenvalues
    assert bars.x.min() == pytest.approx(lam[lam > 0].min())
    row = spectra_df.set_index("address").loc["blocks.3.attn.q"]
    fit = esd[(esd.kind == "fit") & (esd.address == "blocks.3.attn.q")]
    slope = np.diff(np.log(fit.y.to_numpy())) / np.diff(np.log(fit.x.to_numpy()))
    assert slope[0] == pytest.approx(-row.alpha)
    edge = esd[(esd.kind == "mp_edge") & (esd.address == "blocks.3.attn.q")].x.item()
    assert edge == pytest.approx(row.mp_edge)
    over = view.overview_data
    assert {"effective_rank", "stable_rank", "alpha"} <= set(over.metric)
    assert len(over[over.metric == "alpha"]) == len(spectra_df)


def test_spectrum_view_spec_and_cursor(spectra_df, tmp_path):
    from explorer.widgets.spectrum_view import SpectrumView

    view = SpectrumView(spectra_df, depth=2)
    box = view.widget
    overview, esd = view._charts["overview"], view._charts["esd"]
    assert overview.params.depth == 2 and param(esd.spec) == 2
    assert esd.spec["transform"] == [{"filter": "(datum.depth === depth)"}]
    assert overview.spec["config"]["background"] == "transparent"
    assert {p["name"] for p in overview.spec["params"]} >= {"depth", "pick"}

    view.depth = 4  # Python moves the cursor: both charts follow
    assert overview.params.depth == 4
    assert param(esd.spec) == 4 and "depth 4" in esd.spec["title"]["subtitle"]

    click(overview, depth=6)  # a click in the overview moves the cursor
    assert view.depth == 6 and param(esd.spec) == 6
    leave(overview)
    assert view.depth == 6

    view.metric = "alpha"
    assert param(overview.spec) == 6
    assert "alpha" in str(overview.spec["title"])
    assert box.children[0].children[0].value == "alpha"
    with pytest.raises(ValueError, match="not among"):
        view.depth = 99
    with pytest.raises(ValueError, match="metric"):
        view.metric = "nope"

    png, svg = view.save(tmp_path / "s.png"), view.save(tmp_path / "s.svg", chart="esd")
    if png.suffix == ".png":
        pytest.importorskip("vl_convert")
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "<svg" in svg.read_text() and "var(--" not in svg.read_text()


def test_views_share_a_cursor(spectra_df):
    from explorer.widgets.spectrum_view import SpectrumView

    class Cursor(traitlets.HasTraits):
        depth = traitlets.Int(0)

    cursor = Cursor()
    a = SpectrumView(spectra_df, cursor=cursor)
    b = SpectrumView(spectra_df, cursor=cursor, metric="alpha")
    assert a.depth == b.depth == 0
    _ = a.widget
    click(a._charts["overview"], depth=5)
    assert cursor.depth == 5 and b.depth == 5
    cursor.depth = 1
    assert a.depth == 1 and a._charts["overview"].params.depth == 1


# --- SubspaceView -------------------------------------------------------------------------


def test_subspace_view_sliders_recompute(comparison):
    from explorer.widgets.subspace_view import SubspaceView

    view = SubspaceView(comparison, b="lora", depth=1)
    box = view.widget
    assert view.data.b.unique().tolist() == ["lora"]
    heat = view._charts["heatmap"]
    assert heat.params.depth == 1
    expected = comparison.intruders(10, 0.5)
    expected = expected[expected.b == "lora"].reset_index(drop=True)
    pd.testing.assert_frame_equal(view.intruder_data, expected)

    sliders = box.children[1].children
    sliders[0].value = 4  # k
    sliders[1].value = 0.6  # epsilon
    assert (view.k, view.epsilon) == (4, 0.6)
    want = comparison.intruders(4, 0.6)
    assert view.intruder_data.n_intruders.tolist() == want[want.b == "lora"].n_intruders.tolist()
    curve = view.curve_data
    test = curve[curve.kind == "max_cos"]
    cos = comparison.cosines("blocks.1.mlp.up", "lora")["intruder"][:4].max(axis=1)
    np.testing.assert_allclose(test.cos, cos)
    assert (test.intruder == "intruder").sum() == (cos < 0.6).sum()
    datasets = view._charts["curve"].spec["datasets"]
    assert datasets["epsilon"] == [{"epsilon": 0.6}] and len(datasets["curve"]) == len(curve)
    assert "k = 4, epsilon = 0.60" in box.children[3].value

    click(heat, depth=3)
    assert view.depth == 3 and set(view.curve_data.address) == {"blocks.3.mlp.up"}
    view.b = "full"
    assert view.data.b.unique().tolist() == ["full"] and heat.params.depth == 3
    with pytest.raises(ValueError, match="outside"):
        view.k = view.k_max + 1


def test_subspace_view_has_every_row_of_k_and_draws_the_principal_angles_up_to_k(comparison):
    from explorer.widgets.subspace_view import SubspaceView

    view = SubspaceView(comparison, b="lora", depth=1)
    # the sweep holds the intruder test's k (10): its heatmap row is filled for every matrix
    # (mlp.up's sweep was 1, 2, 4, 8, 16, ...: an empty row at k = 10)
    at10 = view.data[view.data.k == 10]
    assert set(at10.address) == set(view.data.address) and at10.overlap_left.notna().all()
    view.k = 6  # not in the sweep: the dotted line still reaches j = 6 (it was cut at j = 4)
    curve = view.curve_data
    dotted = curve[curve.kind == "principal"]
    assert dotted.j.tolist() == list(range(1, 7))
    np.testing.assert_allclose(
        dotted.cos, comparison.principal_cosines("blocks.1.mlp.up", 6, "lora")
    )
    # intruders are orange diamonds, with a legend entry of their own
    layers = view.spec("curve")["layer"]
    diamonds = [la for la in layers if la["mark"].get("shape") == "diamond"]
    assert len(diamonds) == 1
    assert diamonds[0]["encoding"]["fill"]["scale"]["domain"] == ["intruder"]
    _ = view.widget
    table = view._table.value
    assert "<th style='padding: 3px 14px 3px 0" in table and ">which j</th>" in table


def test_subspace_sliders_are_fast(comparison):
    from explorer.widgets.subspace_view import SubspaceView

    view = SubspaceView(comparison)
    _ = view.widget
    times = []
    for k, eps in [(3, 0.4), (8, 0.5), (5, 0.7), (10, 0.3)]:
        t = time.perf_counter()
        view.k = k
        view.epsilon = eps
        times.append((time.perf_counter() - t) / 2)
    assert np.median(times) < 0.1, times


# --- SimilarityView -----------------------------------------------------------------------


def test_similarity_view_heatmap_and_click(sim_df, tmp_path):
    from explorer.widgets.similarity_view import SimilarityView

    view = SimilarityView(sim_df, depth=1, depth_b=2)
    assert len(view.data) == sim_df.size
    assert view.data.set_index(["depth_a", "depth_b"]).cka[(1, 2)] == sim_df.loc[1, 2]
    chart = view.widget
    assert chart.params.depth == 1 and chart.params.depth_b == 2
    click(chart, depth_a=3, depth_b=0)
    assert (view.depth, view.depth_b) == (3, 0)
    assert (chart.params.depth, chart.params.depth_b) == (3, 0)
    assert "digits-clean" in str(chart.spec["title"])
    view.save(tmp_path / "cka.json")
    assert (tmp_path / "cka.json").read_text().count("var(--") == 0


# --- DimensionView ------------------------------------------------------------------------


def test_dimension_view_series_and_click(metrics_df):
    from explorer.widgets.dimension_view import DimensionView

    view = DimensionView(metrics_df, depth=2)
    assert set(view.data.series) == {
        "clean · all",
        "clean · selection",
        "noisy · all",
        "noisy · selection",
    }
    assert "n_points" in view.data  # extra columns kept
    chart = view.widget
    assert chart.params.depth == 2
    click(chart, depth=4)
    assert view.depth == 4 and chart.params.depth == 4
    bare = DimensionView(
        metrics_df[["depth", "metric", "value"]].drop_duplicates(["depth", "metric"])
    )
    assert set(bare.data.subset) == {"all"} and bare.data.ci_low.isna().all()
    bare.spec()
    with pytest.raises(ValueError, match="lacks the columns"):
        DimensionView(metrics_df.drop(columns="value"))


def test_stack_specs_merges_datasets():
    a = {
        "$schema": "s",
        "config": {"x": 1},
        "datasets": {"d1": []},
        "params": [{"name": "pick"}],
        "mark": "point",
    }
    b = {"$schema": "s", "config": {"x": 1}, "datasets": {"d2": []}, "mark": "line"}
    out = stack_specs([a, b], {"depth": 3})
    assert out["datasets"].keys() == {"d1", "d2"} and out["params"] == [
        {"name": "depth", "value": 3}
    ]
    assert [s["mark"] for s in out["vconcat"]] == ["point", "line"]
