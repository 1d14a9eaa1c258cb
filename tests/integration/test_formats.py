"""Every source format round-trips: write, load, and read back every matrix unchanged.

Formats: ``nn.Module``, in-memory state_dict, ``.pt`` / ``.bin`` (torch.save), ``.safetensors``,
sharded directories with a ``model.safetensors.index.json`` or a ``pytorch_model.bin.index.json``
(written by hand), Hugging Face model directories (``save_pretrained``), and PEFT LoRA adapters
(a directory with its base, and the in-memory PEFT model). Safetensors files are read lazily.
"""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import explorer as ex

transformers = pytest.importorskip("transformers")

pytestmark = [
    pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning"),
    pytest.mark.filterwarnings("ignore:fan_in_fan_out is set to False:UserWarning"),
]

VOCAB = 100
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def tiny_bert():
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=VOCAB, max_position_embeddings=16, **TINY)
    return transformers.BertModel(config).eval()


def tiny_gpt2():
    torch.manual_seed(1)
    config = transformers.GPT2Config(
        n_embd=32,
        n_layer=2,
        n_head=4,
        vocab_size=VOCAB,
        n_positions=16,
        bos_token_id=0,
        eos_token_id=0,
    )
    return transformers.GPT2LMHeadModel(config).eval()


MODELS = {"bert": tiny_bert, "gpt2": tiny_gpt2}


@pytest.fixture(scope="module", params=sorted(MODELS))
def model(request):
    return MODELS[request.param]()


def untied(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop tied duplicates (GPT-2's lm_head), as Hugging Face does before writing files."""
    seen, out = set(), {}
    for name, t in state.items():
        key = (t.data_ptr(), tuple(t.shape), tuple(t.stride()))
        if key not in seen:
            seen.add(key)
            out[name] = t.contiguous()
    return out


def shard(state: dict[str, torch.Tensor], n: int) -> list[dict[str, torch.Tensor]]:
    names = list(state)
    size = math.ceil(len(names) / n)
    return [{k: state[k] for k in names[i : i + size]} for i in range(0, len(names), size)]


def write_index(directory, shards, pattern: str, saver) -> None:
    weight_map = {}
    for i, part in enumerate(shards, start=1):
        fname = pattern.format(i=i, n=len(shards))
        saver(part, directory / fname)
        weight_map.update(dict.fromkeys(part, fname))
    total = sum(t.numel() * t.element_size() for part in shards for t in part.values())
    index = {"metadata": {"total_size": total}, "weight_map": dict(sorted(weight_map.items()))}
    suffix = "safetensors" if pattern.endswith("safetensors") else "bin"
    name = (
        "model.safetensors.index.json"
        if suffix == "safetensors"
        else "pytorch_model.bin.index.json"
    )
    (directory / name).write_text(json.dumps(index, indent=2))


def write(fmt: str, model: nn.Module, tmp_path):
    """Write ``model`` in format ``fmt`` and return what ex.load takes."""
    state = model.state_dict()
    if fmt == "module":
        return model
    if fmt == "state_dict":
        return state
    if fmt in ("pt", "bin"):
        path = tmp_path / f"weights.{fmt}"
        torch.save(state, path)  # tied tensors stay tied in the file
        return path
    if fmt == "safetensors":
        path = tmp_path / "weights.safetensors"
        save_file(untied(state), path, metadata={"format": "pt"})
        return path
    if fmt == "sharded-safetensors":
        parts = shard(untied(state), 3)
        write_index(tmp_path, parts, "model-{i:05d}-of-{n:05d}.safetensors", save_file)
        return tmp_path
    if fmt == "sharded-bin":
        parts = shard(untied(state), 2)
        write_index(tmp_path, parts, "pytorch_model-{i:05d}-of-{n:05d}.bin", torch.save)
        return tmp_path
    if fmt == "hf-dir":
        model.save_pretrained(tmp_path)
        return tmp_path
    raise AssertionError(fmt)


FORMATS = [
    "module",
    "state_dict",
    "pt",
    "bin",
    "safetensors",
    "sharded-safetensors",
    "sharded-bin",
    "hf-dir",
]


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip(fmt, model, tmp_path):
    reference = ex.load(model)
    original = model.state_dict()
    ck = ex.load(write(fmt, model, tmp_path))

    assert ck.family == reference.family
    assert ck.layers.equals(reference.layers), (ck.layers, reference.layers)
    for address in reference.addresses:
        w = ck.weight(address)
        assert w.dtype == torch.float32 and w.shape == reference.entry(address).shape
        assert torch.equal(w, reference.weight(address)), address
        # and the stored tensor itself is the original, bit for bit
        assert torch.equal(ck.tensor(ck.entry(address).name), original[ck.entry(address).name])
    if ck.family == "bert":  # no transforms: every matrix is a parameter as it is
        for address in ck.addresses:
            assert torch.equal(ck.weight(address), original[ck.entry(address).name])


def test_hf_dir_runs(tmp_path):
    bert = tiny_bert()
    bert.save_pretrained(tmp_path)
    ck = ex.load(tmp_path)
    assert ck.can_run
    assert ck.meta["config"]["model_type"] == "bert"
    ids = torch.randint(0, VOCAB, (3, 6))
    with torch.no_grad():
        out = ck.module()(input_ids=ids).last_hidden_state
        expected = bert(input_ids=ids).last_hidden_state
    torch.testing.assert_close(out, expected)
    acts = ex.capture(ck, ids, device="cpu")
    assert list(acts.depths) == [0, 1, 2, 3]
    torch.testing.assert_close(acts[2], expected.mean(dim=1))


def test_weights_only_sources_cannot_run(tmp_path):
    save_file(untied(tiny_bert().state_dict()), tmp_path / "w.safetensors")
    ck = ex.load(tmp_path / "w.safetensors")
    assert not ck.can_run
    with pytest.raises(ex.SourceError, match="weights only"):
        ck.module()


def test_torch_file_with_a_wrapping_dict(tmp_path):
    bert = tiny_bert()
    torch.save({"state_dict": bert.state_dict(), "epoch": 3}, tmp_path / "ckpt.pt")
    assert ex.load(tmp_path / "ckpt.pt").layers.equals(ex.load(bert).layers)


def test_half_precision_is_read_as_float32(tmp_path):
    bert = tiny_bert().to(torch.bfloat16)
    save_file(bert.state_dict(), tmp_path / "bf16.safetensors")
    ck = ex.load(tmp_path / "bf16.safetensors")
    assert set(ck.layers.dtype) == {"bfloat16"}
    w = ck.weight("blocks.1.attn.q")
    assert w.dtype == torch.float32
    assert torch.equal(w, bert.encoder.layer[0].attention.self.query.weight.detach().float())


# -- laziness ---------------------------------------------------------------------------------


class SpySafeOpen:
    """Stands in for ``safetensors.safe_open`` and counts the tensors read through it."""

    def __init__(self, real):
        self.real = real
        self.reads: list[str] = []

    def __call__(self, *args, **kwargs):
        handle = self.real(*args, **kwargs)
        spy = self

        class Handle:
            def get_tensor(self, name):
                spy.reads.append(name)
                return handle.get_tensor(name)

            def __getattr__(self, attr):
                return getattr(handle, attr)

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                return False

        return Handle()


@pytest.mark.parametrize("fmt", ["safetensors", "sharded-safetensors"])
def test_safetensors_are_read_lazily(fmt, tmp_path, monkeypatch):
    import safetensors

    spy = SpySafeOpen(safetensors.safe_open)
    monkeypatch.setattr(safetensors, "safe_open", spy)
    ck = ex.load(write(fmt, tiny_bert(), tmp_path))
    assert len(ck.layers) == 16 and ck.n_blocks == 2
    assert spy.reads == []  # names, shapes and dtypes come from the header alone
    ck.weight("blocks.2.mlp.up")
    assert spy.reads == ["encoder.layer.1.intermediate.dense.weight"]
    list(ck.weights(["blocks.1.attn.q", "blocks.1.attn.k"]))
    assert len(spy.reads) == 3


# -- LoRA adapters ----------------------------------------------------------------------------


def make_lora(base: nn.Module, targets: list[str], *, r=4, alpha=8, rslora=False):
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=targets, use_rslora=rslora)
    model = peft.get_peft_model(copy.deepcopy(base), config)
    torch.manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:  # PEFT starts B at zero; give it a real update
                p.normal_(0, 0.5)
    return model


def merged_state(peft_model) -> dict[str, torch.Tensor]:
    return copy.deepcopy(peft_model).merge_and_unload().state_dict()


def lora_factors(peft_model, module: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The (A, B) factors PEFT holds for one adapted module."""
    mod = dict(peft_model.base_model.model.named_modules())[module]
    return mod.lora_A["default"].weight.detach(), mod.lora_B["default"].weight.detach()


@pytest.mark.parametrize("rslora", [False, True], ids=["lora", "rslora"])
def test_lora_adapter_dir_with_base(rslora, tmp_path):
    base = tiny_bert()
    peft_model = make_lora(
        base, ["query", "value", "intermediate.dense"], r=4, alpha=8, rslora=rslora
    )
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = merged_state(peft_model)
    base_state = base.state_dict()

    ck = ex.load(tmp_path / "adapter", base=base)
    in_memory = ex.load(peft_model)
    assert ck.layers.equals(ex.load(base).layers)
    assert in_memory.layers.equals(ck.layers)
    adapted = set()
    scale = 8 / (math.sqrt(4) if rslora else 4)
    for row in ck.layers.itertuples():
        w = ck.weight(row.address)
        torch.testing.assert_close(w, merged[row.name], atol=1e-6, rtol=0)
        torch.testing.assert_close(in_memory.weight(row.address), w, atol=1e-6, rtol=0)
        module = row.name.removesuffix(".weight")
        if any(module.endswith(t) for t in ["query", "value", "intermediate.dense"]):
            adapted.add(row.address)
            a, b = lora_factors(peft_model, module)
            assert a.shape[0] == b.shape[1] == 4
            expected = base_state[row.name] + scale * (b @ a)  # W + (alpha / r) B A
            torch.testing.assert_close(w, expected, atol=1e-6, rtol=0)
            assert not torch.allclose(w, base_state[row.name], atol=1e-3)
        else:
            assert torch.equal(w, base_state[row.name]), row.address
    assert adapted == {f"blocks.{d}.{r}" for d in (1, 2) for r in ("attn.q", "attn.v", "mlp.up")}


def test_lora_adapter_on_gpt2_conv1d(tmp_path):
    """fan_in_fan_out: the update is transposed onto Conv1D's (in, out) weight, then split."""
    base = tiny_gpt2()
    peft_model = make_lora(base, ["c_attn", "c_fc"])
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = merged_state(peft_model)
    merged_ck = ex.load(merged)
    ck = ex.load(tmp_path / "adapter", base=base)
    in_memory = ex.load(peft_model)
    for address in ck.addresses:
        torch.testing.assert_close(ck.weight(address), merged_ck.weight(address), atol=1e-6, rtol=0)
        torch.testing.assert_close(
            in_memory.weight(address), merged_ck.weight(address), atol=1e-6, rtol=0
        )
    assert not torch.allclose(ck.weight("blocks.1.attn.k"), ex.load(base).weight("blocks.1.attn.k"))
    assert torch.equal(ck.weight("blocks.1.attn.o"), ex.load(base).weight("blocks.1.attn.o"))


def test_lora_adapter_with_base_directory_runs(tmp_path):
    base = tiny_bert()
    base.save_pretrained(tmp_path / "base")
    peft_model = make_lora(base, ["query", "value"])
    peft_model.save_pretrained(tmp_path / "adapter")
    ck = ex.load(tmp_path / "adapter", base=tmp_path / "base")
    assert ck.can_run and ck.family == "bert"
    merged = copy.deepcopy(peft_model).merge_and_unload()
    params = dict(ck.module().named_parameters())
    for name, p in merged.named_parameters():
        torch.testing.assert_close(params[name], p, atol=1e-6, rtol=0)
    ids = torch.randint(0, VOCAB, (3, 6))
    acts = ex.capture(ck, ids, device="cpu")
    with torch.no_grad():
        expected = merged(input_ids=ids).last_hidden_state.mean(dim=1)
    torch.testing.assert_close(acts[2], expected, atol=1e-5, rtol=1e-5)


def test_lora_on_a_plain_mlp(mlp, tmp_path):
    peft_model = make_lora(mlp, ["0", "2"], r=2, alpha=4)
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = merged_state(peft_model)
    for ck in (ex.load(tmp_path / "adapter", base=mlp), ex.load(peft_model)):
        assert ck.family == "mlp"
        assert list(ck.layers.name) == ["0.weight", "2.weight", "4.weight"]
        for row in ck.layers.itertuples():
            torch.testing.assert_close(ck.weight(row.address), merged[row.name], atol=1e-6, rtol=0)
        acts = ex.capture(ck, torch.randn(5, 8), device="cpu")
        assert list(acts.depths) == [0, 1, 2, 3]


def test_lora_on_embeddings_and_modules_to_save(tmp_path):
    """Embedding LoRA stores A (r, vocab) and B (dim, r); a modules_to_save copy replaces W."""
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB, max_position_embeddings=16, num_labels=3, **TINY
    )
    base = transformers.BertForSequenceClassification(config).eval()
    peft = pytest.importorskip("peft")
    lora = peft.LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["word_embeddings", "query"],
        modules_to_save=["classifier"],
    )
    peft_model = peft.get_peft_model(copy.deepcopy(base), lora)
    torch.manual_seed(3)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_B" in name or "lora_embedding" in name:  # PEFT zeroes embedding A
                p.normal_(0, 0.5)
            if "modules_to_save" in name:
                p.add_(1.0)
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = merged_state(peft_model)
    base_state = base.state_dict()
    for ck in (ex.load(tmp_path / "adapter", base=base), ex.load(peft_model)):
        assert ck.layers.equals(ex.load(base).layers)
        for row in ck.layers.itertuples():
            torch.testing.assert_close(ck.weight(row.address), merged[row.name], atol=1e-6, rtol=0)
        for address in ("blocks.0.embed", "blocks.3.head", "blocks.1.attn.q"):
            name = ck.entry(address).name
            assert not torch.allclose(ck.weight(address), base_state[name], atol=1e-3), address
        assert torch.equal(
            ck.weight("blocks.1.attn.k"), base_state[ck.entry("blocks.1.attn.k").name]
        )


def test_lora_on_convolutions(tmp_path):
    torch.manual_seed(0)
    base = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 1), nn.ReLU(), nn.Conv2d(8, 6, 3)
    )
    peft_model = make_lora(base, ["0", "2"], r=2, alpha=4)
    peft_model.save_pretrained(tmp_path / "adapter")
    merged = merged_state(peft_model)
    for ck in (ex.load(tmp_path / "adapter", base=base), ex.load(peft_model)):
        assert list(ck.layers.role) == ["conv", "conv", "head"]
        for row in ck.layers.itertuples():
            expected = merged[row.name].reshape(row.shape)
            torch.testing.assert_close(ck.weight(row.address), expected, atol=1e-6, rtol=0)
        assert not torch.allclose(ck.weight("blocks.1.conv"), base[0].weight.reshape(4, -1))


def test_merged_in_memory_lora_is_not_added_twice():
    base = tiny_bert()
    peft_model = make_lora(base, ["query"])
    expected = ex.load(peft_model).weight("blocks.1.attn.q")
    peft_model.merge_adapter()
    torch.testing.assert_close(
        ex.load(peft_model).weight("blocks.1.attn.q"), expected, atol=1e-6, rtol=0
    )


def test_dora_is_refused(tmp_path):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(
        tiny_bert(), peft.LoraConfig(r=2, lora_alpha=4, target_modules=["query"], use_dora=True)
    )
    with pytest.raises(ex.SourceError, match="DoRA"):
        ex.load(model)
    model.save_pretrained(tmp_path / "adapter")
    with pytest.raises(ex.SourceError, match="DoRA"):
        ex.load(tmp_path / "adapter", base=tiny_bert())
