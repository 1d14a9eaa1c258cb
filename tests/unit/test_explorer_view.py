"""The dashboard on the demo checkpoints: one depth cursor, one selection, jobs filling views."""

import html
import threading
import time

import pytest

pytest.importorskip("anywidget")
pytest.importorskip("altair")

import explorer  # noqa: E402
from explorer import demo  # noqa: E402
from explorer.jobs import JobEngine  # noqa: E402
from explorer.widgets.explorer_view import Explorer, nearest  # noqa: E402
from explorer.widgets.job_bar import JobBar, format_eta, layer_label  # noqa: E402

TIMEOUT = 300


@pytest.fixture(scope="module")
def engine():
    eng = JobEngine(cache=False, max_workers=2)
    yield eng
    eng.shutdown(wait=False)


@pytest.fixture(scope="module")
def digits(engine):
    """clean vs noisy digits, PCA only (UMAP is the slow test's)."""
    x = Explorer(
        demo.load("digits-clean"),
        probe=demo.probe("digits"),
        compare_to=demo.load("digits-noisy"),
        layouts=("pca",),
        n_boot=10,
        engine=engine,
    )
    x.widget  # noqa: B018 - build the dashboard before the jobs end, as in a notebook
    return x.wait(TIMEOUT)


def test_first_picture_is_the_pca_projection_and_jobs_fill_the_rest(engine):
    x = Explorer(
        demo.load("digits-clean"),
        probe=demo.probe("digits"),
        compare_to=demo.load("digits-noisy"),
        layouts=("pca",),
        n_boot=10,
        engine=engine,
    )
    assert {"projection", "projection_b"} <= set(x.views)
    assert x.first_picture_s < 10
    assert x.views["projection"].n_points == 450 and x.layout == "pca"
    x.wait(TIMEOUT)
    assert not x.busy and x.errors == []
    assert set(x.views) == {
        "projection",
        "projection_b",
        "spectra",
        "dimension",
        "subspace",
        "similarity",
    }
    assert set(x.data) == {"projection", "spectra", "metrics", "comparison", "similarity"}
    assert set(x.data["projection"].checkpoint) == {"digits-clean", "digits-noisy"}
    assert sorted(x.data["metrics"].depth.unique()) == x.activations[0].depths
    assert set(x.data["metrics"].metric) >= {"twonn", "effective_rank"}
    sim = x.data["similarity"]
    assert len(sim) == 25 and sim.cka.between(0, 1 + 1e-9).all()
    titles = [t for t, state, _ in x.job_bar.finished if state == "done"]
    assert {"CKA", "subspaces", "dimension"} <= set(titles)
    assert x.job_bar.running == []


def test_widget_layout_and_slots_hold_the_views(digits):
    w = digits.widget
    assert "explorer-dashboard" in w._dom_classes
    assert list(digits._tabs.titles) == ["weight spectra", "dimension", "subspaces", "CKA"]
    for name, view in digits.views.items():
        (child,) = digits._slots[name].children
        assert child is view.widget, name


def test_depth_propagates_to_every_view(digits):
    for depth in digits.depths:
        digits.depth = depth
        assert digits._scrubber.depth == depth
        for name, view in digits.views.items():
            assert view.depth == nearest(depth, view.depths), (name, depth)
        assert digits.views["similarity"].depth_b == depth
        assert digits.views["projection"].widget.depth == depth
    with pytest.raises(ValueError):
        digits.depth = 99


def test_a_view_moves_the_shared_cursor(digits):
    digits.depth = 0
    digits.views["spectra"].depth = 3  # a click on the spectra overview
    assert digits.depth == 3
    assert digits.views["projection_b"].depth == 3 and digits.views["dimension"].depth == 3
    digits.views["projection"].widget.depth = 1  # the projection's own scrubber (front end)
    assert digits.depth == 1 and digits.views["subspace"].depth == 1
    digits._scrubber.slider.value = 2  # the dashboard's slider
    assert digits.depth == 2 and digits.views["similarity"].depth == 2
    # depth 0 has no weight matrix: the spectra stay at the nearest depth they have, and say so
    digits.depth = 0
    spectra = digits.views["spectra"]
    assert spectra.depth == 1 and digits.depth == 0 and spectra.cursor_depth == 0
    assert spectra.depth_note() == "depth 1 (the cursor's depth 0 has no weight matrices)"
    digits.depth = 2
    assert spectra.depth_note() == "depth 2"


def test_the_line_under_the_slider_describes_the_depth(digits):
    digits.wait(TIMEOUT)
    _ = digits.widget  # displayed
    digits.depth = 3
    line = digits.describe_depth()
    assert line.startswith("blocks.3 · 1 weight matrix (mlp.up 64×128), effective rank ")
    assert "twonn " in line and "digits-clean" in line and "digits-noisy" in line
    assert "‖B − A‖/‖A‖ up to " in line and "CKA " in line
    assert all(html.escape(part) in digits._scrubber.summary.value for part in line.split(" · "))
    digits.depth = 0  # the input: no weights, hidden states only
    assert "weight" not in digits.describe_depth() and "blocks.0 · twonn" in digits.describe_depth()


def test_the_two_projections_zoom_together(digits):
    a, b = digits.views["projection"], digits.views["projection_b"]
    wa, wb = a.widget, b.widget  # as displayed: their cameras are linked in the browser
    links = [(*js.source, *js.target) for link in a._links for js in link.links]
    assert links == [(wa, "camera", wb, "camera")]  # the selection goes through Python
    b.camera = (2.5, 0.1, 0.0)
    assert a.camera == (2.5, 0.1, 0.0) and a.widget.camera == [2.5, 0.1, 0.0]
    a.reset_view()


def test_lasso_selection_propagates_and_adds_a_selection_series(digits):
    digits.views["projection"].widget.selection = list(range(60))  # the lasso, from JS
    assert digits.selection == list(range(60))
    assert digits.views["projection_b"].selection == list(range(60))
    digits.wait(TIMEOUT)
    data = digits.views["dimension"].data
    chosen = data[data.subset == "selection"]
    assert set(chosen.depth) == set(digits.activations[0].depths)
    assert set(chosen.checkpoint) == {"digits-clean", "digits-noisy"}
    assert (chosen.n_points == 60).all()
    assert "digits-clean · selection" in set(data.series)
    assert (data[data.subset == "all"].n_points == 450).all()

    # a new selection replaces the series; clearing it removes it
    digits.selection = list(range(100, 200))
    digits.wait(TIMEOUT)
    chosen = digits.views["dimension"].data.query("subset == 'selection'")
    assert (chosen.n_points == 100).all()
    digits.views["projection_b"].widget.selection = []
    assert digits.selection == [] and digits.views["projection"].selection == []
    digits.wait(TIMEOUT)
    assert "selection" not in set(digits.views["dimension"].data.subset)


def test_too_small_a_selection_starts_no_job(digits):
    before = digits.jobs.get("selection")
    digits.selection = [1, 2, 3]
    assert digits.jobs.get("selection") is before
    assert "at least" in digits.job_bar._summary.value
    with pytest.raises(ValueError, match="outside"):
        digits.selection = [10_000]
    digits.selection = []


def test_without_a_probe_only_weight_views(engine):
    x = Explorer(demo.load("base"), compare_to=demo.load("lora"), engine=engine)
    w = x.widget
    x.wait(TIMEOUT)
    assert set(x.views) == {"spectra", "subspace"} and x.errors == []
    assert list(x._tabs.titles) == ["weight spectra", "subspaces"]
    assert set(x.data) == {"spectra", "comparison"}
    assert "explorer-dashboard" in w._dom_classes
    with pytest.raises(ValueError, match="no probe"):
        x.selection = [0]
    x.depth = 2
    assert x.views["spectra"].depth == 2 and x.views["subspace"].depth == 2


def test_an_engine_off_this_process_is_refused_up_front():
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(1) as pool:
        with pytest.raises(ValueError, match="ProcessPoolExecutor.*ex.project"):
            Explorer(demo.load("base"), engine=JobEngine(executor=pool, cache=False))


def test_a_failing_layer_is_reported_with_its_depth(engine, monkeypatch):
    real = explorer.representation_metrics

    def flaky(acts, **kwargs):
        if acts.depths == [2]:
            raise RuntimeError("planted failure")
        return real(acts, **kwargs)

    monkeypatch.setattr(explorer, "representation_metrics", flaky)
    x = Explorer(
        demo.load("digits-clean"), probe=demo.probe("digits"), n_boot=10, engine=engine
    ).wait(TIMEOUT)
    assert any("depth 2" in e and "planted failure" in e for e in x.errors)
    assert "planted failure" in x.job_bar._errors_html.value
    assert 2 not in set(x.views["dimension"].data.depth)
    assert {0, 1, 3, 4} <= set(x.views["dimension"].data.depth)
    assert "similarity" not in x.views and "subspace" not in x.views


def test_cancel_stops_the_jobs(engine):
    gate = threading.Event()
    job = engine.submit(lambda d: gate.wait(10), [0, 1, 2], name="slow")
    bar = JobBar()
    bar.track(job, "slow thing")
    assert bar.titles == ["slow thing"]
    bar.cancel()
    gate.set()
    assert bar.wait_idle(10)
    assert job.cancelled and len(job.results) < 3
    assert bar.finished[-1][:2] == ("slow thing", "cancelled")
    assert "idle" in bar._summary.value or "all done" in bar._summary.value


def test_the_bar_moves_within_a_long_layer(engine):
    from explorer.jobs import layer_progress

    reached, gate = threading.Event(), threading.Event()

    def long_layer(d):
        layer_progress(0.4)
        reached.set()
        gate.wait(10)
        return d

    job = engine.submit(long_layer, [0, 1], name="long")
    bar = JobBar()
    bar.track(job, "long thing")
    assert reached.wait(10)
    row = bar._rows[job.id]
    deadline = time.monotonic() + 10
    while "depth 0 40 %" not in row.status.value:  # the layer's share, then 0/2 and the ETA
        assert time.monotonic() < deadline, row.status.value
        time.sleep(0.01)
    assert row.progress.value == pytest.approx(0.4 / 2) and "ETA" in row.status.value
    gate.set()
    assert bar.wait_idle(10)


def test_labels_and_eta():
    assert layer_label(3) == "depth 3" and layer_label("blocks.2.attn.q") == "blocks.2.attn.q"
    assert format_eta(None) == "" and format_eta(4.2) == "ETA 4 s"
    assert format_eta(125) == "ETA 2 min 5 s" and format_eta(0.1) == "ETA <1 s"
    assert nearest(0, [1, 2, 3]) == 1 and nearest(5, [1, 2, 3]) == 3 and nearest(2, [1, 3]) == 1


@pytest.mark.slow
def test_umap_replaces_pca_when_done_base_vs_lora(engine):
    x = Explorer(
        demo.load("base"),
        probe=demo.probe("shifted"),
        compare_to=demo.load("lora"),
        layouts=("pca", "umap"),
        n_boot=10,
        metrics=("twonn", "effective_rank"),
        engine=engine,
    )
    x.widget  # noqa: B018
    assert x.layout == "pca"
    x.selection = list(range(40))
    x.wait(TIMEOUT)
    assert x.errors == []
    assert x.layout == "umap" and "UMAP" in x.views["projection"].title
    umap = x._layouts["umap"]  # each depth started from the previous one's layout
    assert umap.a.init_previous and umap.b.init_previous
    assert x._buttons.options == ("PCA", "UMAP") and x._buttons.value == "UMAP"
    # the new views kept the cursor and the selection
    assert x.views["projection_b"].selection == list(range(40))
    x.depth = 2
    x._buttons.value = "PCA"  # back to the PCA layout
    assert x.layout == "pca" and "PCA" in x.views["projection"].title
    assert x.views["projection"].depth == 2 and x.views["projection"].selection == list(range(40))
