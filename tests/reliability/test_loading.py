"""Bad files and directories given to ``ex.load``: each is refused with a SourceError that names
the file and says what to do, never a raw traceback from torch, safetensors or json."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import save_file

import explorer as ex
from tests.reliability.catalogue import assert_clear_error, bad_input


def state(scale: float = 1.0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "layers.0.weight": scale * torch.randn(16, 8, generator=g),
        "layers.1.weight": scale * torch.randn(4, 16, generator=g),
    }


@pytest.fixture
def files(tmp_path):
    save_file(state(), tmp_path / "good.safetensors")
    torch.save(state(), tmp_path / "good.pt")
    return tmp_path


def load_error(path, *words, named=None):
    """``ex.load(path)`` raises a SourceError naming ``named`` (default: the path) and ``words``."""
    with pytest.raises(ex.SourceError) as excinfo:
        ex.load(path)
    assert_clear_error(excinfo, str(named or path), *words)


@bad_input("loading", "a .safetensors file cut in half", "SourceError naming the file: truncated")
def test_truncated_safetensors(files):
    raw = (files / "good.safetensors").read_bytes()
    (files / "cut.safetensors").write_bytes(raw[: len(raw) // 2])
    load_error(files / "cut.safetensors", "truncated")


@bad_input("loading", "a .pt file cut in half", "SourceError naming the file: truncated or corrupt")
def test_truncated_torch_file(files):
    raw = (files / "good.pt").read_bytes()
    (files / "cut.pt").write_bytes(raw[: len(raw) // 2])
    load_error(files / "cut.pt", "truncated or corrupt")


@bad_input(
    "loading", "a .bin file of random bytes", "SourceError naming the file: not a torch checkpoint"
)
def test_random_bytes_bin(files):
    (files / "noise.bin").write_bytes(os.urandom(4096))
    load_error(files / "noise.bin", "not a torch checkpoint")


@pytest.mark.parametrize("name", ["empty.safetensors", "empty.pt", "empty.bin"])
@bad_input("loading", "an empty (0-byte) weight file", "SourceError naming the file")
def test_empty_files(files, name):
    (files / name).write_bytes(b"")
    load_error(files / name)


@pytest.mark.parametrize("name", ["model.onnx", "model.gguf", "weights"])
@bad_input(
    "loading",
    "an unknown format (.onnx, .gguf, no extension)",
    "SourceError listing the formats explorer reads",
)
def test_unknown_formats(files, name):
    (files / name).write_bytes(b"GGUF\x00\x00")
    load_error(files / name, "unknown weight format", ".safetensors")


@bad_input("loading", "an empty directory", "SourceError: no weights found, what was looked for")
def test_empty_directory(tmp_path):
    load_error(tmp_path, "no weights found")


@bad_input(
    "loading",
    "a directory holding two different checkpoints (same tensor names, no index)",
    "SourceError naming both files; never a silent merge of the two",
)
def test_directory_with_two_checkpoints(tmp_path):
    save_file(state(), tmp_path / "a.safetensors")
    save_file(state(2.0), tmp_path / "b.safetensors")
    load_error(tmp_path, "several checkpoints", "a.safetensors", "b.safetensors")


@bad_input("loading", "a directory of disjoint shard files without an index", "loads all of them")
def test_directory_of_shards_without_index(tmp_path):
    sd = state()
    save_file({"layers.0.weight": sd["layers.0.weight"]}, tmp_path / "part-1.safetensors")
    save_file({"layers.1.weight": sd["layers.1.weight"]}, tmp_path / "part-2.safetensors")
    ck = ex.load(tmp_path)
    assert sorted(e.name for e in ck.entries) == sorted(sd)


def sharded(tmp_path, weight_map=None):
    sd = state()
    save_file({"layers.0.weight": sd["layers.0.weight"]}, tmp_path / "m-1.safetensors")
    save_file({"layers.1.weight": sd["layers.1.weight"]}, tmp_path / "m-2.safetensors")
    index = {
        "weight_map": {"layers.0.weight": "m-1.safetensors", "layers.1.weight": "m-2.safetensors"}
    }
    if weight_map is not None:
        index = weight_map
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    return tmp_path


@bad_input(
    "loading", "a sharded directory with a shard missing", "SourceError naming the missing shard"
)
def test_missing_shard(tmp_path):
    (sharded(tmp_path) / "m-2.safetensors").unlink()
    index = tmp_path / "model.safetensors.index.json"
    load_error(tmp_path, "missing", "m-2.safetensors", named=index)
    load_error(index, "missing", "m-2.safetensors")  # the index file itself, too


@pytest.mark.parametrize(
    "index",
    [
        [1, 2],
        {"weight_map": [1, 2]},
        {"weight_map": "m-1.safetensors"},
        {"weight_map": {"layers.0.weight": 3}},
    ],
    ids=["list", "map-is-list", "map-is-str", "file-is-int"],
)
@bad_input(
    "loading",
    "an index.json with wrong types (a list, weight_map not an object, a file that is a number)",
    "SourceError naming the index and the expected shape",
)
def test_index_with_wrong_types(tmp_path, index):
    sharded(tmp_path, index)
    load_error(tmp_path, "weight_map", named=tmp_path / "model.safetensors.index.json")


@bad_input(
    "loading", "an index.json with an empty weight_map", "SourceError: the index lists no tensors"
)
def test_index_without_tensors(tmp_path):
    sharded(tmp_path, {"weight_map": {}})
    load_error(tmp_path, "lists no tensors", named=tmp_path / "model.safetensors.index.json")


@bad_input(
    "loading",
    "an index.json placing a tensor in a shard that does not hold it",
    "SourceError: index and shards belong to different saves",
)
def test_index_disagrees_with_shards(tmp_path):
    wm = {"layers.0.weight": "m-1.safetensors", "layers.1.weight": "m-1.safetensors"}
    sharded(tmp_path, {"weight_map": wm})
    index = tmp_path / "model.safetensors.index.json"
    load_error(tmp_path, "layers.1.weight", "different saves", named=index)


@bad_input(
    "loading",
    "an index.json naming a shard outside its directory (../other.safetensors)",
    "SourceError: shard files must lie in the index's directory",
)
def test_index_points_outside(tmp_path):
    inner = tmp_path / "model"
    inner.mkdir()
    save_file(state(), tmp_path / "other.safetensors")
    sharded(inner, {"weight_map": {"layers.0.weight": "../other.safetensors"}})
    load_error(inner, "must lie in", named=inner / "model.safetensors.index.json")


@pytest.mark.parametrize(
    "config, words",
    [
        ("[1, 2]", ["not a json object"]),
        ("{broken", ["cannot read"]),
        ('{"model_type": 3}', ["model_type must be a string"]),
        ('{"architectures": "BertModel"}', ["architectures must be a list"]),
    ],
    ids=["list", "not-json", "model-type-int", "architectures-str"],
)
@bad_input(
    "loading",
    "config.json with wrong types or broken JSON",
    "SourceError naming config.json and the field",
)
def test_config_json_wrong_types(tmp_path, config, words):
    save_file(state(), tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(config)
    load_error(tmp_path, *words, named=tmp_path / "config.json")


@pytest.mark.parametrize("modules", ['{"path": "0_T"}', "[1, 2]", '[{"path": 3}]', "{broken"])
@bad_input(
    "loading",
    "modules.json (sentence-transformers) with wrong types or broken JSON",
    "SourceError naming modules.json",
)
def test_modules_json_wrong_types(tmp_path, modules):
    save_file(state(), tmp_path / "model.safetensors")
    (tmp_path / "modules.json").write_text(modules)
    load_error(tmp_path, named=tmp_path / "modules.json")


class Bomb:
    """A genuine payload: unpickling it runs ``touch <marker>`` through os.system."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
@bad_input(
    "loading",
    "a .pt/.bin whose pickle runs code (a genuine __reduce__ payload)",
    "SourceError naming the file: needs pickled code, refused; the code never runs",
)
def test_pickled_code_is_never_run(tmp_path, zipped):
    path, marker = tmp_path / "evil.bin", tmp_path / "ran"
    sd = {"layers.0.weight": torch.ones(4, 4), "payload": Bomb(marker)}
    torch.save(sd, path, _use_new_zipfile_serialization=zipped)
    load_error(path, "pickled code")
    assert not marker.exists(), "the pickled payload ran"
