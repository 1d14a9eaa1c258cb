"""Layer tables are right: real MiniLM, tiny random models of every family, unknown models.

Every tiny model is built from a transformers config with random weights (nothing is downloaded)
and loaded twice, from the ``nn.Module`` and from its ``save_pretrained`` directory; both tables
must agree. Each family's hidden-state taps must cover depths 0..L+1 without a gap.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from torch import nn

import explorer as ex
from explorer.capture import taps_for
from explorer.sources import parse_address
from explorer.sources.families import ROLES

transformers = pytest.importorskip("transformers")

VOCAB = 100
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
ATTN_MLP = ["attn.q", "attn.k", "attn.v", "attn.o", "mlp.up", "mlp.down"]


# -- helpers ----------------------------------------------------------------------------------


def assert_consistent(ck: ex.Checkpoint) -> None:
    """Invariants every layer table keeps, whatever the model."""
    layers = ck.layers
    assert list(layers.columns) == [
        "address",
        "depth",
        "role",
        "name",
        "shape",
        "dtype",
        "params",
        "stack",
    ]
    assert layers.address.is_unique
    for row in layers.itertuples():
        depth, role = parse_address(row.address)
        assert depth == row.depth, row.address
        assert role == row.role or role.startswith(row.role + "."), row.address
        assert row.role in ROLES, row.role
        assert row.name in ck.parameter_names, row.name
        assert len(row.shape) == 2 and row.params == math.prod(row.shape)
    assert list(layers.depth) == sorted(layers.depth), "rows are in depth order"
    assert layers.depth.min() >= 0 and layers.depth.max() <= ck.n_blocks + 1


def assert_same_table(a: ex.Checkpoint, b: ex.Checkpoint, *, names: bool = True) -> None:
    cols = ["address", "depth", "role", "shape", "dtype", "params"] + (["name"] if names else [])
    assert a.layers[cols].equals(b.layers[cols]), (a.layers[cols], b.layers[cols])


def assert_taps_cover(ck: ex.Checkpoint, probe: torch.Tensor) -> None:
    """Hidden states exist for every depth 0..L+1, from the taps and from a real capture."""
    expected = list(range(ck.n_blocks + 2))
    assert [t.depth for t in taps_for(ck, ck.module())] == expected
    acts = ex.capture(ck, probe, device="cpu")
    assert list(acts.depths) == expected
    for d in expected:
        h = acts[d]
        assert h.shape[0] == probe.shape[0] and h.ndim == 2
        assert torch.isfinite(h).all()


def from_dir(model: nn.Module, tmp_path_factory) -> ex.Checkpoint:
    directory = tmp_path_factory.mktemp(type(model).__name__)
    model.save_pretrained(directory)
    return ex.load(directory)


def param(model: nn.Module, name: str) -> torch.Tensor:
    return dict(model.named_parameters())[name].detach()


def rows(ck: ex.Checkpoint, depth: int) -> dict[str, tuple]:
    """``{address: (shape, name)}`` at one depth."""
    sel = ck.layers[ck.layers.depth == depth]
    return {r.address: (r.shape, r.name) for r in sel.itertuples()}


# -- real MiniLM ------------------------------------------------------------------------------


def test_minilm_table_is_right(minilm, minilm_dir):
    from safetensors import safe_open

    layers = minilm.layers
    assert minilm.family == "bert" and minilm.n_blocks == 6
    assert len(layers) == 40
    assert_consistent(minilm)

    d, vocab, positions, ff = 384, 30522, 512, 1536
    assert rows(minilm, 0) == {
        "blocks.0.embed": ((vocab, d), "embeddings.word_embeddings.weight"),
        "blocks.0.embed.position": ((positions, d), "embeddings.position_embeddings.weight"),
        "blocks.0.embed.token_type": ((2, d), "embeddings.token_type_embeddings.weight"),
    }
    names = {
        "attn.q": "attention.self.query",
        "attn.k": "attention.self.key",
        "attn.v": "attention.self.value",
        "attn.o": "attention.output.dense",
        "mlp.up": "intermediate.dense",
        "mlp.down": "output.dense",
    }
    shapes = {"mlp.up": (ff, d), "mlp.down": (d, ff)}
    for depth in range(1, 7):
        block = rows(minilm, depth)
        assert list(block) == [f"blocks.{depth}.{role}" for role in ATTN_MLP]
        for role in ATTN_MLP:
            shape, name = block[f"blocks.{depth}.{role}"]
            assert shape == shapes.get(role, (d, d))
            assert name == f"encoder.layer.{depth - 1}.{names[role]}.weight"
    assert rows(minilm, 7) == {"blocks.7.head.pooler": ((d, d), "pooler.dense.weight")}

    # every float 2-D parameter is in the table, once, and reads back unchanged
    with safe_open(str(minilm_dir / "model.safetensors"), framework="pt") as f:
        matrices = {k: f.get_tensor(k) for k in f.keys()}
    matrices = {k: v for k, v in matrices.items() if v.ndim == 2 and v.is_floating_point()}
    assert layers.params.sum() == sum(v.numel() for v in matrices.values())
    assert set(layers.name) == set(matrices)
    for row in layers.itertuples():
        assert torch.equal(minilm.weight(row.address), matrices[row.name].float())


def test_minilm_taps(minilm):
    taps = taps_for(minilm, minilm.module())
    assert [t.depth for t in taps] == list(range(8))
    assert taps[0] == type(taps[0])(0, "encoder.layer.0", "input")
    assert [t.module for t in taps[1:7]] == [f"encoder.layer.{i}" for i in range(6)]


# -- GPT-2: fused c_attn, Conv1D stored (in, out) ---------------------------------------------


@pytest.fixture(scope="module")
def gpt2():
    torch.manual_seed(0)
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


def test_gpt2_table(gpt2, tmp_path_factory):
    ck = ex.load(gpt2)
    d = 32
    assert ck.family == "gpt2" and ck.n_blocks == 2
    assert_consistent(ck)
    assert rows(ck, 0) == {
        "blocks.0.embed": ((VOCAB, d), "transformer.wte.weight"),
        "blocks.0.embed.position": ((16, d), "transformer.wpe.weight"),
    }
    for depth in (1, 2):
        h = f"transformer.h.{depth - 1}"
        assert rows(ck, depth) == {
            f"blocks.{depth}.attn.q": ((d, d), f"{h}.attn.c_attn.weight"),
            f"blocks.{depth}.attn.k": ((d, d), f"{h}.attn.c_attn.weight"),
            f"blocks.{depth}.attn.v": ((d, d), f"{h}.attn.c_attn.weight"),
            f"blocks.{depth}.attn.o": ((d, d), f"{h}.attn.c_proj.weight"),
            f"blocks.{depth}.mlp.up": ((4 * d, d), f"{h}.mlp.c_fc.weight"),
            f"blocks.{depth}.mlp.down": ((d, 4 * d), f"{h}.mlp.c_proj.weight"),
        }
    # lm_head is tied to wte: one matrix, listed once (under its first name)
    assert "lm_head.weight" not in set(ck.layers.name)
    assert torch.equal(ck.tensor("lm_head.weight"), param(gpt2, "transformer.wte.weight"))
    assert_same_table(ck, from_dir(gpt2, tmp_path_factory))


def test_gpt2_split_and_transpose_are_exact(gpt2):
    ck = ex.load(gpt2)
    d = 32
    for depth in (1, 2):
        h = f"transformer.h.{depth - 1}"
        c_attn = param(gpt2, f"{h}.attn.c_attn.weight")  # Conv1D: (in, 3 * out)
        assert c_attn.shape == (d, 3 * d)
        for i, role in enumerate(["q", "k", "v"]):
            expected = c_attn.T[i * d : (i + 1) * d]
            assert torch.equal(ck.weight(f"blocks.{depth}.attn.{role}"), expected)
        assert torch.equal(
            ck.weight(f"blocks.{depth}.mlp.up"), param(gpt2, f"{h}.mlp.c_fc.weight").T
        )
        down = param(gpt2, f"{h}.mlp.c_proj.weight").T
        assert torch.equal(ck.weight(f"blocks.{depth}.mlp.down"), down)


def test_gpt2_split_matches_the_forward_pass(gpt2):
    """q/k/v really are the projections GPT-2 computes (not just some slice)."""
    ck = ex.load(gpt2)
    attn = gpt2.transformer.h[0].attn
    x = torch.randn(3, 32)
    with torch.no_grad():
        qkv = attn.c_attn(x) - attn.c_attn.bias
    q, k, v = qkv.split(32, dim=1)
    for role, out in zip(["q", "k", "v"], [q, k, v], strict=True):
        torch.testing.assert_close(x @ ck.weight(f"blocks.1.attn.{role}").T, out)


def test_gpt2_untied_head_is_at_l_plus_1():
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_embd=32, n_layer=2, n_head=4, vocab_size=VOCAB, n_positions=16, tie_word_embeddings=False
    )
    ck = ex.load(transformers.GPT2LMHeadModel(config))
    assert rows(ck, 3) == {"blocks.3.head": ((VOCAB, 32), "lm_head.weight")}


def test_gpt2_taps(gpt2):
    assert_taps_cover(ex.load(gpt2), torch.randint(0, VOCAB, (4, 7)))


# -- Llama: q/k/v/o_proj, gate/up/down_proj, grouped-query attention --------------------------


@pytest.fixture(scope="module")
def llama():
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=VOCAB, num_key_value_heads=2, max_position_embeddings=16, **TINY
    )
    return transformers.LlamaForCausalLM(config).eval()


def test_llama_table(llama, tmp_path_factory):
    ck = ex.load(llama)
    d, kv, ff = 32, 2 * (32 // 4), 64  # 2 key/value heads of head_dim 8
    assert ck.family == "llama" and ck.n_blocks == 2
    assert_consistent(ck)
    assert rows(ck, 0) == {"blocks.0.embed": ((VOCAB, d), "model.embed_tokens.weight")}
    for depth in (1, 2):
        p = f"model.layers.{depth - 1}"
        assert rows(ck, depth) == {
            f"blocks.{depth}.attn.q": ((d, d), f"{p}.self_attn.q_proj.weight"),
            f"blocks.{depth}.attn.k": ((kv, d), f"{p}.self_attn.k_proj.weight"),
            f"blocks.{depth}.attn.v": ((kv, d), f"{p}.self_attn.v_proj.weight"),
            f"blocks.{depth}.attn.o": ((d, d), f"{p}.self_attn.o_proj.weight"),
            f"blocks.{depth}.mlp.up": ((ff, d), f"{p}.mlp.up_proj.weight"),
            f"blocks.{depth}.mlp.gate": ((ff, d), f"{p}.mlp.gate_proj.weight"),
            f"blocks.{depth}.mlp.down": ((d, ff), f"{p}.mlp.down_proj.weight"),
        }
    assert rows(ck, 3) == {"blocks.3.head": ((VOCAB, d), "lm_head.weight")}
    for row in ck.layers.itertuples():
        assert torch.equal(ck.weight(row.address), param(llama, row.name))
    assert_same_table(ck, from_dir(llama, tmp_path_factory))


def test_llama_taps(llama):
    assert_taps_cover(ex.load(llama), torch.randint(0, VOCAB, (4, 7)))


# -- ViT: patch convolution, position table, classifier ---------------------------------------


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    config = transformers.ViTConfig(image_size=32, patch_size=8, num_labels=3, **TINY)
    return transformers.ViTForImageClassification(config).eval()


def test_vit_table(vit, tmp_path_factory):
    ck = ex.load(vit)
    d, patches = 32, (32 // 8) ** 2
    assert ck.family == "vit" and ck.n_blocks == 2
    assert_consistent(ck)
    embed = rows(ck, 0)
    assert {a: s for a, (s, _) in embed.items()} == {
        "blocks.0.embed": (d, 3 * 8 * 8),
        "blocks.0.embed.cls": (1, d),
        "blocks.0.embed.position": (patches + 1, d),
    }
    conv = param(vit, "vit.embeddings.patch_embeddings.projection.weight")
    assert conv.shape == (d, 3, 8, 8)
    assert torch.equal(ck.weight("blocks.0.embed"), conv.reshape(d, -1))
    position = param(vit, "vit.embeddings.position_embeddings")
    assert torch.equal(ck.weight("blocks.0.embed.position"), position[0])
    for depth in (1, 2):
        block = rows(ck, depth)
        assert list(block) == [f"blocks.{depth}.{r}" for r in ATTN_MLP]
        assert block[f"blocks.{depth}.mlp.up"][0] == (64, d)
        assert block[f"blocks.{depth}.mlp.down"][0] == (d, 64)
        assert all(
            name.startswith("vit.") and f".{depth - 1}." in name for _, name in block.values()
        )
    assert rows(ck, 3) == {"blocks.3.head": ((3, d), "classifier.weight")}

    # transformers >= 5 renames ViT's modules (layers.0.attention.q_proj) but still writes the
    # checkpoint names (encoder.layer.0.attention.attention.query): same table, each its names
    on_disk = from_dir(vit, tmp_path_factory)
    assert_same_table(ck, on_disk, names=False)
    assert on_disk.layers.set_index("address").name["blocks.1.attn.q"] in (
        "vit.encoder.layer.0.attention.attention.query.weight",
        "vit.layers.0.attention.q_proj.weight",
    )
    for address in ck.addresses:
        assert torch.equal(ck.weight(address), on_disk.weight(address))


def test_vit_taps(vit, tmp_path_factory):
    assert_taps_cover(ex.load(vit), torch.randn(4, 3, 32, 32))
    assert_taps_cover(from_dir(vit, tmp_path_factory), torch.randn(4, 3, 32, 32))


# -- ResNet (Hugging Face): stem, stages of blocks, shortcuts -----------------------------------


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    config = transformers.ResNetConfig(
        embedding_size=8, hidden_sizes=[8, 16], depths=[1, 2], num_labels=3
    )
    return transformers.ResNetForImageClassification(config).eval()


def test_resnet_table(resnet, tmp_path_factory):
    ck = ex.load(resnet)
    assert ck.family == "resnet" and ck.n_blocks == 3  # 1 + 2 blocks, numbered across stages
    assert_consistent(ck)
    stem = "resnet.embedder.embedder.convolution.weight"
    assert rows(ck, 0) == {"blocks.0.conv": ((8, 3 * 7 * 7), stem)}
    assert torch.equal(ck.weight("blocks.0.conv"), param(resnet, stem).reshape(8, -1))
    where = {1: (0, 0), 2: (1, 0), 3: (1, 1)}  # depth -> (stage, layer)
    for depth, (stage, layer) in where.items():
        block = rows(ck, depth)
        prefix = f"resnet.encoder.stages.{stage}.layers.{layer}."
        assert all(name.startswith(prefix) for _, name in block.values())
        expected = [f"blocks.{depth}.conv.{j}" for j in range(3)]
        if depth == 2:  # the first block of stage 1 changes width: it has a shortcut
            expected.append("blocks.2.conv.shortcut")
        assert list(block) == expected
    assert rows(ck, 2)["blocks.2.conv.shortcut"][0] == (16, 8)
    mid = param(resnet, "resnet.encoder.stages.1.layers.0.layer.1.convolution.weight")
    assert mid.ndim == 4 and mid.shape[2:] == (3, 3)
    assert torch.equal(ck.weight("blocks.2.conv.1"), mid.reshape(mid.shape[0], -1))
    assert rows(ck, 4) == {"blocks.4.head": ((3, 16), "classifier.1.weight")}
    assert_same_table(ck, from_dir(resnet, tmp_path_factory))


def test_resnet_taps(resnet):
    assert_taps_cover(ex.load(resnet), torch.randn(4, 3, 32, 32))


# -- ResNet (torchvision naming), without torchvision -------------------------------------------


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return torch.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchvisionStyleResNet(nn.Module):
    """torchvision.models.resnet's parameter names: conv1, bn1, layer{i}.{j}.conv1, fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.layer1 = nn.Sequential(BasicBlock(8, 8), BasicBlock(8, 8))
        self.layer2 = nn.Sequential(BasicBlock(8, 16, stride=2))
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        return self.fc(x.mean(dim=(2, 3)))


def test_torchvision_resnet(tmp_path):
    torch.manual_seed(0)
    model = TorchvisionStyleResNet().eval()
    ck = ex.load(model)
    assert ck.family == "resnet-torchvision" and ck.n_blocks == 3
    assert_consistent(ck)
    assert rows(ck, 0) == {"blocks.0.conv": ((8, 3 * 49), "conv1.weight")}
    assert rows(ck, 1) == {
        "blocks.1.conv.1": ((8, 72), "layer1.0.conv1.weight"),
        "blocks.1.conv.2": ((8, 72), "layer1.0.conv2.weight"),
    }
    assert list(rows(ck, 2)) == ["blocks.2.conv.1", "blocks.2.conv.2"]
    assert rows(ck, 3) == {
        "blocks.3.conv.1": ((16, 72), "layer2.0.conv1.weight"),
        "blocks.3.conv.2": ((16, 144), "layer2.0.conv2.weight"),
        "blocks.3.conv.shortcut": ((16, 8), "layer2.0.downsample.0.weight"),
    }
    assert rows(ck, 4) == {"blocks.4.head": ((5, 16), "fc.weight")}
    w = model.layer2[0].conv2.weight.detach()
    assert torch.equal(ck.weight("blocks.3.conv.2"), w.reshape(16, -1))
    torch.save(model.state_dict(), tmp_path / "resnet18.pth")
    assert_same_table(ck, ex.load(tmp_path / "resnet18.pth"))
    assert_taps_cover(ck, torch.randn(4, 3, 32, 32))


# -- unknown models: module order ---------------------------------------------------------------


class SmallConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1)
        )
        self.classifier = nn.Linear(8, 5)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def test_custom_conv_net_falls_back_to_module_order():
    torch.manual_seed(0)
    model = SmallConvNet().eval()
    ck = ex.load(model)
    assert ck.family == "sequential" and ck.n_blocks == 2
    assert_consistent(ck)
    table = ck.layers
    assert list(table.address) == ["blocks.1.conv", "blocks.2.conv", "blocks.3.head"]
    assert list(table.name) == ["features.0.weight", "features.2.weight", "classifier.weight"]
    assert list(table["shape"]) == [(4, 27), (8, 36), (5, 8)]
    assert_taps_cover(ck, torch.randn(4, 3, 32, 32))
    acts = ex.capture(ck, torch.randn(4, 3, 16, 16), device="cpu")
    assert [acts[d].shape[1] for d in acts.depths] == [3, 4, 8, 5]


def test_plain_mlp(mlp):
    ck = ex.load(mlp)
    assert ck.family == "mlp" and ck.n_blocks == 2
    assert_consistent(ck)
    assert list(ck.layers.address) == ["blocks.1.mlp.up", "blocks.2.mlp.up", "blocks.3.head"]
    assert list(ck.layers.role) == ["mlp.up", "mlp.up", "head"]
    assert list(ck.layers["shape"]) == [(16, 8), (12, 16), (3, 12)]
    assert torch.equal(ck.weight("blocks.2.mlp.up"), mlp[2].weight.detach())
    assert_taps_cover(ck, torch.randn(5, 8))
    acts = ex.capture(ck, torch.randn(5, 8), device="cpu")
    assert [acts[d].shape[1] for d in acts.depths] == [8, 16, 12, 3]


def test_deep_mlp_orders_ten_and_more_layers_numerically(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    layers = []
    for _ in range(11):
        layers += [nn.Linear(6, 6), nn.ReLU()]
    model = nn.Sequential(*layers, nn.Linear(6, 2))
    ck = ex.load(model)
    assert ck.family == "mlp" and ck.n_blocks == 11
    save_file(model.state_dict(), tmp_path / "deep.safetensors")  # the file sorts "10" < "2"
    assert_same_table(ck, ex.load(tmp_path / "deep.safetensors"))


def test_odd_modules_never_error():
    class Odd(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.lstm = nn.LSTM(4, 6)
            self.bil = nn.Bilinear(3, 5, 2)
            self.conv3d = nn.Conv3d(2, 3, (2, 2, 2))
            self.scalar = nn.Parameter(torch.tensor(1.0))
            self.row = nn.Parameter(torch.randn(1, 1, 7))
            self.empty = nn.Parameter(torch.empty(0, 3))
            self.register_buffer("steps", torch.zeros(3, 3, dtype=torch.long))
            self.half = nn.Linear(4, 4).half()

    ck = ex.load(Odd())
    assert ck.family == "sequential"
    assert_consistent(ck)
    shapes = dict(zip(ck.layers.name, ck.layers["shape"], strict=True))
    assert shapes["conv3d.weight"] == (3, 2 * 2 * 2 * 2)
    assert shapes["bil.weight"] == (2, 15)
    assert shapes["row"] == (1, 7)
    assert "steps" not in shapes and "empty" not in shapes and "scalar" not in shapes
    for address in ck.addresses:
        assert ck.weight(address).dtype == torch.float32


# hypothesis: any mixture of familiar and unfamiliar names and shapes loads, consistently
_FRAGMENTS = [
    "encoder.layer.{i}.attention.self.query.weight",
    "encoder.layer.{i}.output.dense.weight",
    "transformer.h.{i}.attn.c_attn.weight",
    "transformer.h.{i}.mlp.c_fc.weight",
    "model.layers.{i}.self_attn.q_proj.weight",
    "model.layers.{i}.mlp.down_proj.weight",
    "vit.layers.{i}.attention.q_proj.weight",
    "encoder.stages.{i}.layers.{j}.layer.0.convolution.weight",
    "layer{i}.{j}.conv1.weight",
    "embeddings.word_embeddings.weight",
    "lm_head.weight",
    "fc.weight",
    "blocks.{i}.mixer.weight",
    "weird{i}",
]
_entries = st.tuples(
    st.sampled_from(_FRAGMENTS),
    st.integers(0, 12),
    st.integers(0, 3),
    st.lists(st.integers(0, 4), min_size=0, max_size=4),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example([("transformer.h.{i}.attn.c_attn.weight", 0, 0, [1, 1])], None)  # 1 row cannot split
@example(
    [("encoder.layer.{i}.output.dense.weight", 3, 0, [4, 4]), ("weird{i}", 0, 0, [2, 2])], "bert"
)
@given(st.lists(_entries, min_size=1, max_size=12), st.sampled_from([None, "gpt2", "vit", "bert"]))
def test_any_state_dict_resolves_or_says_why(entries, model_type):
    from explorer.sources.checkpoint import Checkpoint
    from explorer.sources.stores import DictStore

    state = {}
    for fragment, i, j, shape in entries:
        state[fragment.format(i=i, j=j)] = torch.zeros(shape)
    try:
        ck = Checkpoint(DictStore(state), name="x", source="<test>", model_type=model_type)
    except ex.SourceError as exc:  # only allowed when there is no matrix at all
        assert "no weight matrices" in str(exc)
        assert not any(t.ndim >= 2 and min(t.shape) > 0 for t in state.values())
        return
    assert_consistent(ck)
    for address in ck.addresses:
        assert tuple(ck.weight(address).shape) == ck.entry(address).shape


def test_addresses_parse_back():
    assert parse_address("blocks.3.attn.q") == (3, "attn.q")
    assert parse_address("blocks.12") == (12, "")
    assert parse_address("blocks.2.conv.shortcut") == (2, "conv.shortcut")
    for bad in ["block.3", "blocks.x.attn", "3.attn.q", "blocks.-1.head"]:
        with pytest.raises(ValueError, match="not a layer address"):
            parse_address(bad)


def test_family_table_is_one_table():
    from explorer.sources import families

    assert {f.name for f in families.FAMILIES} >= {
        "bert",
        "gpt2",
        "llama",
        "vit",
        "resnet",
        "resnet-torchvision",
    }
    for family in families.FAMILIES:
        for marker in family.markers:
            re.compile(marker)
