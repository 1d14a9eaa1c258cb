"""Tiny transformers models of architectures no family table lists, built from configs with random
weights (hidden 32, 2 layers, 4 heads, vocab 100; nothing is downloaded).

Blocks are found here independently of explorer: the children of an ``nn.ModuleList`` that are
all of one class and hold at least two matrices. Each model: every block's matrices share one
depth; depth increases with the block index; every 2-D parameter is in the table; >= 90 % of block
matrices have a named role; capture gives one hidden state per block, of the model's width; the
module and its ``save_pretrained`` directory give the same table. Fused q/k/v splits are checked
against the q, k and v the model itself computes.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import explorer as ex

transformers = pytest.importorskip("transformers")
T = transformers

VOCAB = 100
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def _configs() -> dict[str, object]:
    return {
        "gpt_neox": lambda: T.GPTNeoXConfig(vocab_size=VOCAB, **TINY),
        "bloom": lambda: T.BloomConfig(hidden_size=32, n_layer=2, n_head=4, vocab_size=VOCAB),
        "t5": lambda: T.T5Config(
            d_model=32, d_ff=64, num_layers=2, num_heads=4, d_kv=8, vocab_size=VOCAB
        ),
        "distilbert": lambda: T.DistilBertConfig(
            dim=32, hidden_dim=64, n_layers=2, n_heads=4, vocab_size=VOCAB
        ),
        "deberta-v2": lambda: T.DebertaV2Config(vocab_size=VOCAB, **TINY),
        "mpnet": lambda: T.MPNetConfig(vocab_size=VOCAB, **TINY),
        "opt": lambda: T.OPTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            ffn_dim=64,
            vocab_size=VOCAB,
            word_embed_proj_dim=32,
        ),
        "mixtral": lambda: T.MixtralConfig(
            vocab_size=VOCAB, num_key_value_heads=2, num_local_experts=4, **TINY
        ),
        "mamba": lambda: T.MambaConfig(
            hidden_size=32, num_hidden_layers=2, vocab_size=VOCAB, state_size=4
        ),
        "clip": lambda: T.CLIPConfig(
            text_config=dict(vocab_size=VOCAB, max_position_embeddings=16, **TINY),
            vision_config=dict(image_size=16, patch_size=8, **TINY),
            projection_dim=16,
        ),
        "whisper": lambda: T.WhisperConfig(
            d_model=32,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            vocab_size=VOCAB,
            num_mel_bins=8,
            max_source_positions=16,
            max_target_positions=16,
            pad_token_id=1,
            bos_token_id=1,
            eos_token_id=2,
            decoder_start_token_id=1,
        ),
        "falcon": lambda: T.FalconConfig(
            hidden_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=VOCAB
        ),
    }


CONFIGS = _configs()


def build(kind: str) -> nn.Module:
    torch.manual_seed(0)
    return T.AutoModel.from_config(CONFIGS[kind]()).eval()


def module_blocks(model: nn.Module) -> list[list[str]]:
    """Per ModuleList of repeated blocks: the block module names, in order."""
    stacks = []
    for name, module in model.named_modules():
        if not isinstance(module, nn.ModuleList) or "expert" in name.rsplit(".", 1)[-1]:
            continue
        children = list(module.named_children())
        if not children or len({type(c) for _, c in children}) != 1:
            continue
        if sum(p.ndim >= 2 for p in children[0][1].parameters()) < 2:
            continue
        stacks.append([f"{name}.{i}" for i, _ in children])
    return stacks


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_blocks_roles_and_coverage(kind, tmp_path):
    model = build(kind)
    ck = ex.load(model)
    layers = ck.layers
    stacks = module_blocks(model)
    assert stacks, "the model has repeated blocks"
    assert ck.n_blocks == sum(len(s) for s in stacks)

    depth_of_block = {}
    for blocks in stacks:
        for block in blocks:
            rows = layers[layers.name.str.startswith(block + ".")]
            assert len(rows), block
            assert rows.depth.nunique() == 1, (block, sorted(set(rows.depth)))
            depth_of_block[block] = int(rows.depth.iloc[0])
        depths = [depth_of_block[b] for b in blocks]
        assert depths == sorted(depths) and len(set(depths)) == len(depths)
    assert sorted(depth_of_block.values()) == list(range(1, ck.n_blocks + 1))

    matrices = {n for n, p in model.named_parameters() if p.ndim >= 2 and p.numel()}
    assert matrices <= set(layers.name), matrices - set(layers.name)

    in_blocks = layers[(layers.depth >= 1) & (layers.depth <= ck.n_blocks)]
    named = (in_blocks.role != "other").mean()
    assert named >= 0.9, in_blocks[in_blocks.role == "other"].name.tolist()

    model.save_pretrained(tmp_path)
    on_disk = ex.load(tmp_path)
    cols = ["address", "depth", "role", "shape", "stack"]
    assert on_disk.layers[cols].equals(layers[cols])


TEXT = ["gpt_neox", "bloom", "t5", "distilbert", "deberta-v2", "mpnet", "opt", "mixtral"]
TEXT += ["mamba", "clip", "falcon"]


@pytest.mark.parametrize("kind", TEXT)
def test_capture_gives_one_state_per_block(kind):
    model = build(kind)
    ck = ex.load(model)
    ids = torch.randint(3, VOCAB, (3, 6))
    acts = ex.capture(ck, ids, device="cpu")
    width = 32
    block_depths = [d for d in acts.depths if 1 <= d <= ck.n_blocks]
    expected = range(1, ck.n_blocks + 1)
    if kind == "clip":  # a two-tower model runs the tower the probe fits: token ids -> text
        text = ck.layers[ck.layers["stack"] == "text"]
        expected = sorted(set(text.depth) - {0})
    assert block_depths == list(expected)
    assert 0 in acts.depths
    for d in [0, *block_depths]:
        assert acts[d].shape == (3, width), d
        assert torch.isfinite(acts[d]).all()


def test_whisper_encoder_decoder_capture():
    model = build("whisper")
    ck = ex.load(model)
    assert list(dict.fromkeys(ck.layers["stack"][ck.layers.depth.between(1, 4)])) == [
        "encoder",
        "decoder",
    ]
    features = torch.randn(2, 8, 32)  # (batch, mel bins, 2 * max_source_positions frames)
    acts = ex.capture(ck, features, device="cpu")
    assert [d for d in acts.depths if d <= 4] == [0, 1, 2, 3, 4]
    assert all(acts[d].shape == (2, 32) for d in range(5))


def test_t5_decoder_inputs_rule_and_override():
    model = build("t5")
    ids = torch.randint(3, VOCAB, (2, 5))
    acts = ex.capture(model, ids, device="cpu", pooling="first")
    config = model.config
    start_id = getattr(config, "decoder_start_token_id", None)
    start_id = config.pad_token_id if start_id is None else start_id
    with torch.no_grad():
        start = torch.full((2, 1), start_id)
        shifted = torch.cat([start, ids[:, :-1]], 1)
        out = model(input_ids=ids, decoder_input_ids=shifted, output_hidden_states=True)
    # depth 1 = the first encoder block's output; depth 5 = the decoder's final norm
    torch.testing.assert_close(acts[1], out.encoder_hidden_states[1][:, 0])
    torch.testing.assert_close(acts[5], out.last_hidden_state[:, 0])
    other = torch.randint(3, VOCAB, (2, 5))
    acts2 = ex.capture(model, ids, device="cpu", pooling="first", decoder_input_ids=other)
    with torch.no_grad():
        out2 = model(input_ids=ids, decoder_input_ids=other)
    torch.testing.assert_close(acts2[5], out2.last_hidden_state[:, 0])
    torch.testing.assert_close(acts2[1], acts[1])  # the encoder does not change


# -- fused q/k/v: the split equals what the model computes ---------------------------------------


def _attention_input(model, attn: nn.Module, ids) -> torch.Tensor:
    seen = {}

    def pre(_m, args, kwargs):
        seen["x"] = args[0] if args else kwargs["hidden_states"]

    handle = attn.register_forward_pre_hook(pre, with_kwargs=True)
    try:
        with torch.no_grad():
            model(input_ids=ids)
    finally:
        handle.remove()
    return seen["x"]


def _check_split(ck, x, q, k, v, depth=1) -> None:
    """q, k, v: (tokens, heads * head_dim) as the model computed them, without bias."""
    for role, want in zip("qkv", (q, k, v), strict=True):
        got = x @ ck.weight(f"blocks.{depth}.attn.{role}").T
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-4)


def _zero_fused_bias(attn):
    if attn.query_key_value.bias is not None:
        with torch.no_grad():
            attn.query_key_value.bias.zero_()


def test_gpt_neox_split_is_the_models_own(monkeypatch):
    from transformers.models.gpt_neox import modeling_gpt_neox

    model = build("gpt_neox")
    model.config._attn_implementation = "eager"
    attn = model.layers[0].attention
    _zero_fused_bias(attn)
    ids = torch.randint(3, VOCAB, (1, 1))  # one token: rotary embedding at position 0 is identity
    seen = {}
    original = modeling_gpt_neox.eager_attention_forward

    def record(module, query, key, value, *args, **kwargs):
        if module is attn:
            seen.update(q=query, k=key, v=value)
        return original(module, query, key, value, *args, **kwargs)

    monkeypatch.setattr(modeling_gpt_neox, "eager_attention_forward", record)
    x = _attention_input(model, attn, ids)[0]
    flat = {r: t[0].transpose(0, 1).reshape(1, -1) for r, t in seen.items()}  # (1, heads*hd)
    ck = ex.load(model)
    _check_split(ck, x, flat["q"], flat["k"], flat["v"])
    assert ck.entry("blocks.1.attn.q").transforms[-1].startswith("rows:4:")


def test_bloom_split_is_the_models_own():
    model = build("bloom")
    attn = model.h[0].self_attention
    _zero_fused_bias(attn)
    ids = torch.randint(3, VOCAB, (1, 3))
    x = _attention_input(model, attn, ids)[0]
    with torch.no_grad():
        q, k, v = attn._reshape(attn.query_key_value(x[None]))  # the model's own split
    flat = [t[0].transpose(0, 1).reshape(3, -1) for t in (q, k, v)]
    _check_split(ex.load(model), x, *flat)


@pytest.mark.parametrize(
    "layout",
    [dict(multi_query=True), dict(multi_query=False), dict(new_decoder_architecture=True)],
)
def test_falcon_split_is_the_models_own(layout):
    torch.manual_seed(0)
    config = T.FalconConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, vocab_size=VOCAB, **layout
    )
    if layout.get("new_decoder_architecture"):
        config.num_kv_heads = 2
    model = T.AutoModel.from_config(config).eval()
    attn = model.h[0].self_attention
    _zero_fused_bias(attn)
    ids = torch.randint(3, VOCAB, (1, 3))
    x = _attention_input(model, attn, ids)[0]
    with torch.no_grad():
        q, k, v = attn._split_heads(attn.query_key_value(x[None]))  # the model's own split
    if layout.get("new_decoder_architecture"):  # k, v come broadcast to every query head
        k, v = (t[0].reshape(3, 2, 2, -1)[:, :, 0][None] for t in (k, v))
    flat = [t[0].reshape(3, -1) for t in (q, k, v)]
    _check_split(ex.load(model), x, *flat)
