"""The layer browser's Python side, headless: traits set as the front end would set them."""

from types import SimpleNamespace

import pandas as pd
import pytest

from explorer.widgets import LayerBrowser, LayerBrowserWidget, layer_browser


def fake_checkpoint(name="tiny"):
    layers = pd.DataFrame(
        {
            "address": ["blocks.0.embed", "blocks.1.mlp.up", "blocks.1.mlp.down", "blocks.3.head"],
            "depth": [0, 1, 1, 3],
            "role": ["embed", "mlp.up", "mlp.down", "head"],
            "name": ["emb.weight", "fc1.weight", "fc2.weight", "out.weight"],
            "shape": [(1000, 1800), (64, 32), (32, 64), (10, 32)],
            "dtype": ["float32"] * 4,
            "params": [1_800_000, 2048, 2048, 320],
        }
    )
    return SimpleNamespace(layers=layers, n_blocks=2, name=name)


def test_widget_is_built_on_first_display_only(monkeypatch):
    built = []

    class Spy(LayerBrowserWidget):
        def __init__(self, **traits):
            built.append(traits)
            super().__init__(**traits)

    monkeypatch.setattr(layer_browser, "LayerBrowserWidget", Spy)
    browser = LayerBrowser(fake_checkpoint())
    assert built == []
    data, _ = browser._repr_mimebundle_()
    assert len(built) == 1
    assert data["application/vnd.jupyter.widget-view+json"]["model_id"] == browser.widget.model_id
    browser._repr_mimebundle_()
    assert len(built) == 1


def test_traits_describe_the_checkpoint():
    widget = LayerBrowser(fake_checkpoint(), depth=1).widget
    assert widget.depth == 1
    assert widget.n_depths == 4
    assert widget.title == "tiny"
    assert widget.layers[0] == {
        "address": "blocks.0.embed",
        "depth": 0,
        "role": "embed",
        "name": "emb.weight",
        "shape": "1000×1800",
        "params": 1_800_000,
    }
    assert widget.depth_labels == [
        "blocks.0 — 1 matrix, 1.8M params",
        "blocks.1 — 2 matrices, 4.1k params",
        "blocks.2 — no weight matrices",
        "blocks.3 — 1 matrix, 320 params",
    ]


def test_the_slider_moves_python_depth():
    browser = LayerBrowser(fake_checkpoint())
    browser.widget.depth = 3  # what the front end does when the slider moves
    assert browser.depth == 3


def test_python_depth_moves_the_slider():
    browser = LayerBrowser(fake_checkpoint())
    assert browser.set_depth(2) is browser
    assert browser.widget.depth == 2
    browser.depth = 1
    assert (browser.depth, browser.widget.depth) == (1, 1)


def test_depth_set_before_display_reaches_the_widget():
    browser = LayerBrowser(fake_checkpoint()).set_depth(3)
    assert browser.widget.depth == 3


@pytest.mark.parametrize(("depth", "error"), [(4, ValueError), (-1, ValueError), (True, TypeError)])
def test_bad_depths_are_refused(depth, error):
    browser = LayerBrowser(fake_checkpoint())
    with pytest.raises(error, match="depth"):
        browser.depth = depth
    assert browser.depth == 0


def test_unknown_keyword_is_named():
    with pytest.raises(TypeError, match="dpeth"):
        LayerBrowser(fake_checkpoint(), dpeth=2)


def test_missing_columns_are_named():
    checkpoint = fake_checkpoint()
    checkpoint.layers = checkpoint.layers.drop(columns=["role"])
    with pytest.raises(ValueError, match="role"):
        LayerBrowser(checkpoint)


def test_title_defaults_to_the_checkpoint_name_and_can_be_given():
    assert LayerBrowser(fake_checkpoint(name="mlp")).title == "mlp"
    assert LayerBrowser(fake_checkpoint(), title="mine").widget.title == "mine"


def test_a_real_checkpoint(mlp):
    import explorer as ex

    checkpoint = ex.load(mlp)
    browser = LayerBrowser(checkpoint)
    assert browser.n_depths == checkpoint.n_blocks + 2
    assert [row["shape"] for row in browser.layers] == ["16×8", "12×16", "3×12"]
    assert sum(row["params"] for row in browser.layers) == 8 * 16 + 16 * 12 + 12 * 3
