"""LoRA adapter directories that cannot be read as they are: wrong types in adapter_config.json,
no base, a base of another shape, missing or inconsistent factors. Each is refused at load, before
any weight is read, with a SourceError naming the file and the field."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import explorer as ex
from tests.reliability.catalogue import assert_clear_error, bad_input

CONFIG = {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["0", "2"]}


def base() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 12))


def adapter(directory, config=None, factors=None):
    """An adapter dir for :func:`base`: rank-2 factors on modules 0 (8 -> 16) and 2 (16 -> 12)."""
    directory.mkdir()
    text = config if isinstance(config, str) else json.dumps(CONFIG if config is None else config)
    (directory / "adapter_config.json").write_text(text)
    if factors is None:
        g = torch.Generator().manual_seed(1)
        factors = {}
        for m, (fan_in, fan_out) in (("0", (8, 16)), ("2", (16, 12))):
            factors[f"base_model.model.{m}.lora_A.weight"] = torch.randn(2, fan_in, generator=g)
            factors[f"base_model.model.{m}.lora_B.weight"] = torch.randn(fan_out, 2, generator=g)
    if factors != {}:
        save_file(factors, directory / "adapter_model.safetensors")
    return directory


def refused(path, *words, base_model=None, named=None):
    with pytest.raises(ex.SourceError) as excinfo:
        ex.load(path, base=base() if base_model is None else base_model)
    assert_clear_error(excinfo, str(named or path), *words)


@bad_input(
    "lora", "a well-formed adapter on its base", "loads; the adapted weight is W + alpha/r B A"
)
def test_good_adapter(tmp_path):
    path = adapter(tmp_path / "a")
    ck = ex.load(path, base=base())
    f = load_file(path / "adapter_model.safetensors")
    want = (
        base()[0].weight
        + 2.0 * f["base_model.model.0.lora_B.weight"] @ f["base_model.model.0.lora_A.weight"]
    )
    got = ck.weight(ck.select(lambda e: e.name == "0.weight")[0].address)
    torch.testing.assert_close(got, want.detach())


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("r", "two", ["r must be a positive integer"]),
        ("r", 0, ["r must be a positive integer"]),
        ("r", -2, ["r must be a positive integer"]),
        ("r", 2.5, ["r must be a positive integer"]),
        ("r", None, ["r must be a positive integer"]),
        ("lora_alpha", "x", ["lora_alpha must be a number"]),
        ("lora_alpha", None, ["lora_alpha must be a number"]),
        ("rank_pattern", [1], ["rank_pattern must be an object"]),
        ("rank_pattern", {"0": "x"}, ["rank_pattern['0']"]),
        ("rank_pattern", {"[": 3}, ["not a valid pattern"]),
        ("alpha_pattern", "s", ["alpha_pattern must be an object"]),
        ("use_rslora", "no", ["use_rslora must be true or false"]),
        ("fan_in_fan_out", "false", ["fan_in_fan_out must be true or false"]),
        ("base_model_name_or_path", 5, ["base_model_name_or_path must be a path"]),
    ],
    ids=lambda v: repr(v)[:20] if not isinstance(v, list) else "",
)
@bad_input(
    "lora",
    "adapter_config.json with a wrong type or range (r 'two', 0, -2, 2.5, null; lora_alpha 'x'; "
    "patterns not objects or bad regex; booleans as strings; base path a number)",
    "SourceError naming adapter_config.json, the field and the value",
)
def test_adapter_config_wrong_types(tmp_path, field, value, words):
    path = adapter(tmp_path / "a", {**CONFIG, field: value})
    refused(path, *words, named=path / "adapter_config.json")


@pytest.mark.parametrize("text", ["[1, 2]", "{broken"], ids=["list", "not-json"])
@bad_input("lora", "adapter_config.json that is not a JSON object", "SourceError naming the file")
def test_adapter_config_not_an_object(tmp_path, text):
    path = adapter(tmp_path / "a", text)
    refused(path, named=path / "adapter_config.json")


@bad_input(
    "lora",
    "an adapter whose base is not given and not a local directory",
    "SourceError: explorer never downloads, pass base=",
)
def test_adapter_without_base(tmp_path):
    path = adapter(tmp_path / "a", {**CONFIG, "base_model_name_or_path": "org/model"})
    with pytest.raises(ex.SourceError) as excinfo:
        ex.load(path)
    assert_clear_error(excinfo, str(path), "org/model", "never downloads", "base=")
    bare = adapter(tmp_path / "b")
    with pytest.raises(ex.SourceError) as excinfo:
        ex.load(bare)
    assert_clear_error(excinfo, "names no base model", "base=")


@bad_input(
    "lora",
    "an adapter on a base of other shapes (factors fit each other, not the base)",
    "SourceError at load naming the parameter and both shapes",
)
def test_base_of_another_shape(tmp_path):
    path = adapter(tmp_path / "a")
    other = nn.Sequential(nn.Linear(9, 16), nn.ReLU(), nn.Linear(16, 12))
    refused(path, "0.weight", "(16, 8)", "(16, 9)", "another base model", base_model=other)


@bad_input(
    "lora",
    "an adapter for modules the base does not have",
    "SourceError naming the modules",
)
def test_base_without_the_modules(tmp_path):
    path = adapter(tmp_path / "a")
    refused(path, "does not have", base_model=nn.Sequential(nn.Linear(8, 16)))


@bad_input(
    "lora",
    "an adapter directory without adapter weights",
    "SourceError: no adapter_model.safetensors",
)
def test_missing_adapter_weights(tmp_path):
    refused(adapter(tmp_path / "a", factors={}), "no adapter_model.safetensors")


@bad_input("lora", "an adapter with lora_A but no lora_B", "SourceError naming the lone tensor")
def test_missing_lora_b(tmp_path):
    path = adapter(tmp_path / "a", factors={"base_model.model.0.lora_A.weight": torch.randn(2, 8)})
    refused(path, "lora_A", "no matching lora_B")


@bad_input(
    "lora",
    "lora_A and lora_B whose inner dimensions differ",
    "SourceError at load: the factors do not fit together",
)
def test_factors_that_do_not_fit(tmp_path):
    factors = {
        "base_model.model.0.lora_A.weight": torch.randn(3, 8),
        "base_model.model.0.lora_B.weight": torch.randn(16, 2),
    }
    refused(adapter(tmp_path / "a", factors=factors), "do not fit together")


@bad_input(
    "lora",
    "adapter_config.json's r differs from the factors' rank (config of another adapter)",
    "SourceError: the scale alpha/r would be wrong; never a silently mis-scaled update",
)
def test_rank_differs_from_config(tmp_path):
    refused(adapter(tmp_path / "a", {**CONFIG, "r": 4}), "r=4", "rank 2")


@bad_input("lora", "an empty (0-byte) adapter_model.safetensors", "SourceError naming the file")
def test_empty_adapter_file(tmp_path):
    path = adapter(tmp_path / "a")
    (path / "adapter_model.safetensors").write_bytes(b"")
    refused(path, named=path / "adapter_model.safetensors")


@bad_input(
    "lora",
    "an adapter whose factors hold NaN",
    "ex.spectra flags the adapted layer (skipped: NaN/Inf), the others are analysed",
)
def test_nan_factors_are_flagged(tmp_path):
    factors = {
        "base_model.model.0.lora_A.weight": torch.full((2, 8), float("nan")),
        "base_model.model.0.lora_B.weight": torch.randn(16, 2),
    }
    df = ex.spectra(ex.load(adapter(tmp_path / "a", factors=factors), base=base()))
    assert (df["status"] != "ok").sum() == 1
    assert "NaN/Inf" in df.loc[df["status"] != "ok", "status"].iloc[0]
