"""The depth axis from structure, for models nobody listed: the user's own blocks, torch's
``nn.Transformer`` modules, names without a module, and the name vocabulary of roles."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import explorer as ex
from explorer.sources.families import ROLES, resolve
from explorer.sources.matrices import apply_transforms, rows
from explorer.sources.roles import block_role
from explorer.sources.structure import find_structure

D = 16


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(D, D) for _ in range(4))

    def forward(self, h):
        att = torch.softmax(self.wq(h) @ self.wk(h).transpose(1, 2) / D**0.5, -1)
        return self.wo(att @ self.wv(h)), att


class Block(nn.Module):
    """A user's own pre-norm transformer block with its own names."""

    def __init__(self):
        super().__init__()
        self.norm = nn.LayerNorm(D)
        self.attn = Attention()
        self.mlp = nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D))

    def forward(self, x):
        out, att = self.attn(self.norm(x))
        x = x + out
        return x + self.mlp(x), att  # a tuple: the hidden state comes first


class UserModel(nn.Module):
    def __init__(self, n: int = 3, sequential: bool = False):
        super().__init__()
        self.tok = nn.Embedding(50, D)
        blocks = [Block() for _ in range(n)]
        self.blocks = nn.Sequential(*blocks) if sequential else nn.ModuleList(blocks)
        self.out = nn.Linear(D, 50)

    def forward(self, ids):
        x = self.tok(ids)
        for block in self.blocks:
            x = block(x)[0]
        return self.out(x)


def table(ck) -> dict[str, tuple[int, str, str]]:
    return {r.address: (r.depth, r.role, r.name) for r in ck.layers.itertuples()}


def assert_one_state_per_block(ck, probe, width: int) -> None:
    acts = ex.capture(ck, probe, device="cpu")
    assert acts.depths[: ck.n_blocks + 1] == list(range(ck.n_blocks + 1))
    for d in range(ck.n_blocks + 1):
        assert acts[d].shape == (probe.shape[0], width), d


def test_user_blocks_in_a_module_list_and_a_sequential(tmp_path):
    for sequential in (False, True):
        torch.manual_seed(0)
        model = UserModel(sequential=sequential).eval()
        ck = ex.load(model)
        assert ck.n_blocks == 3 and ck.family == "blocks"
        t = table(ck)
        assert t["blocks.0.embed"][2] == "tok.weight"
        assert t["blocks.4.head"][2] == "out.weight"
        for i in range(3):
            block = {a: v for a, v in t.items() if v[0] == i + 1}
            assert {v[1] for v in block.values()} == {"attn.q", "attn.k", "attn.v", "attn.o"} | {
                "mlp.up",
                "mlp.down",
            }
            assert all(v[2].startswith(f"blocks.{i}.") for v in block.values())
        assert set(ck.layers["stack"]) <= {"main", ""}
        save_file(model.state_dict(), tmp_path / "user.safetensors")
        on_disk = ex.load(tmp_path / "user.safetensors")
        assert on_disk.layers.drop(columns="dtype").equals(ck.layers.drop(columns="dtype"))
        assert_one_state_per_block(ck, torch.randint(0, 50, (4, 6)), D)


def test_block_states_are_block_outputs_never_inputs():
    torch.manual_seed(0)
    model = UserModel().eval()
    ids = torch.randint(0, 50, (2, 5))
    acts = ex.capture(model, ids, device="cpu", pooling="first")
    with torch.no_grad():
        x = model.tok(ids)
        assert torch.allclose(acts[0], x[:, 0])  # depth 0: the embedding output
        for i, block in enumerate(model.blocks):
            x = block(x)[0]
            assert torch.allclose(acts[i + 1], x[:, 0], atol=1e-6)


class SeqFirst(nn.Module):
    def __init__(self, inner: nn.Sequential):
        super().__init__()
        self.inp, self.enc = inner[0], inner[1]

    def forward(self, x):
        return self.enc(self.inp(x).transpose(0, 1))


@pytest.mark.parametrize("batch_first", [True, False])
def test_torch_transformer_encoder(batch_first):
    torch.manual_seed(0)
    layer = nn.TransformerEncoderLayer(D, 2, 32, batch_first=batch_first, dropout=0.0)
    model = nn.Sequential(
        nn.Linear(5, D), nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)
    )
    model.eval()
    probe = torch.randn(3, 7, 5)
    ck = ex.load(model)
    assert ck.n_blocks == 3
    t = table(ck)
    for depth in (1, 2, 3):
        roles = {v[1] for v in t.values() if v[0] == depth}
        assert roles == {"attn.q", "attn.k", "attn.v", "attn.o", "mlp.up", "mlp.down"}
    # the packed in_proj_weight is [q; k; v]: check against torch's own attention
    mha = model[1].layers[0].self_attn
    x = torch.randn(4, D)
    w = mha.in_proj_weight.detach()
    for i, role in enumerate("qkv"):
        assert torch.equal(ck.weight(f"blocks.1.attn.{role}"), w[i * D : (i + 1) * D])
    q, k, v = nn.functional._in_projection_packed(x, x, x, w)
    torch.testing.assert_close(x @ ck.weight("blocks.1.attn.q").T, q)
    torch.testing.assert_close(x @ ck.weight("blocks.1.attn.v").T, v)
    # a sequence-first stack (batch_first=False) still gives one state per probe row
    assert_one_state_per_block(ex.load(SeqFirst(model) if not batch_first else model), probe, D)


def test_torch_transformer_decoder_and_full_transformer():
    torch.manual_seed(0)
    layer = nn.TransformerDecoderLayer(D, 2, 32, batch_first=True)
    decoder = nn.TransformerDecoder(layer, 2)
    ck = ex.load(decoder)
    cross = ck.layers[ck.layers.address.str.endswith(".cross")]
    assert set(cross.role) == {"attn.q", "attn.k", "attn.v", "attn.o"}
    assert set(cross.depth) == {1, 2}

    model = nn.Transformer(
        D, 2, num_encoder_layers=2, num_decoder_layers=3, dim_feedforward=32, batch_first=True
    )
    ck = ex.load(model)
    assert ck.n_blocks == 5
    layers = ck.layers
    enc, dec = layers[layers["stack"] == "encoder"], layers[layers["stack"] == "decoder"]
    assert set(enc.depth) == {1, 2} and set(dec.depth) == {3, 4, 5}
    assert all(n.startswith("encoder.layers.") for n in enc.name)
    assert all(n.startswith("decoder.layers.") for n in dec.name)
    block = layers[layers.depth == 1]
    assert (block.role != "other").all()


def test_names_only_gives_the_same_blocks_as_the_module():
    torch.manual_seed(0)
    model = UserModel(n=12).eval()
    names = [n for n, p in model.named_parameters() if p.ndim == 2]
    structure = find_structure(sorted(names))  # storage order does not matter
    assert structure.stacks[0].blocks == tuple(f"blocks.{i}" for i in range(12))
    assert [structure.depth_of[f"blocks.{i}"] for i in range(12)] == list(range(1, 13))


def test_stages_flatten_and_stacks_are_ordered():
    names = [
        f"encoder.stages.{s}.layers.{i}.{m}.weight"
        for s, n in ((0, 2), (1, 3))
        for i in range(n)
        for m in ("conv1", "conv2")
    ]
    names += ["encoder.stages.1.downsample.weight", "embedder.weight"]
    structure = find_structure(names)
    blocks = structure.stacks[0].blocks
    assert blocks == (
        "encoder.stages.0.layers.0",
        "encoder.stages.0.layers.1",
        "encoder.stages.1.layers.0",
        "encoder.stages.1.layers.1",
        "encoder.stages.1.layers.2",
    )
    # the stage's own downsampling joins the stage's first block
    assert structure.locate("encoder.stages.1.downsample.weight")[0] == 3

    two = [f"decoder.layers.{i}.fc{j}.weight" for i in range(2) for j in (1, 2)]
    two += [f"encoder.layers.{i}.fc{j}.weight" for i in range(3) for j in (1, 2)]
    structure = find_structure(two)
    assert [s.name for s in structure.stacks] == ["encoder", "decoder"]
    assert structure.depth_of["decoder.layers.0"] == 4


def test_sub_layers_and_experts_are_not_blocks():
    # T5: block.i.layer.0 (attention) and layer.1 (feed-forward) differ: block.i is the block
    names = [
        f"encoder.block.{i}.layer.{j}.{m}.weight"
        for i in range(2)
        for j, ms in ((0, ("SelfAttention.q", "SelfAttention.k")), (1, ("DenseReluDense.wi",) * 1))
        for m in (*ms, "x")
        if m != "x" or j == 1
    ]
    assert find_structure(names).stacks[0].blocks == ("encoder.block.0", "encoder.block.1")
    experts = [
        f"layers.{i}.moe.experts.{e}.w{k}.weight"
        for i in range(2)
        for e in range(4)
        for k in (1, 2, 3)
    ]
    experts += [f"layers.{i}.attn.q_proj.weight" for i in range(2)]
    ck_layout = resolve(experts, {n: (8, 8) for n in experts}, {n: "float32" for n in experts})
    assert ck_layout.n_blocks == 2
    addresses = {e.address for e in ck_layout.entries}
    assert {"blocks.1.mlp.gate.3", "blocks.1.mlp.up.3", "blocks.2.mlp.down.0"} <= addresses


def test_three_dimensional_experts_split_per_expert_and_gate_up_in_halves():
    e, ff = 3, 6
    names = ["layers.0.mlp.experts.gate_up_proj", "layers.0.mlp.experts.down_proj"]
    names += ["layers.0.self_attn.q_proj.weight", "layers.1.self_attn.q_proj.weight"]
    names += ["layers.1.mlp.experts.gate_up_proj", "layers.1.mlp.experts.down_proj"]
    shapes = {n: (D, D) for n in names}
    for n in names:
        if "gate_up" in n:
            shapes[n] = (e, 2 * ff, D)
        elif "down" in n:
            shapes[n] = (e, D, ff)
    layout = resolve(names, shapes, {n: "float32" for n in names})
    by_address = {x.address: x for x in layout.entries}
    gate_up = torch.randn(e, 2 * ff, D)
    for j in range(e):
        gate = by_address[f"blocks.1.mlp.gate.{j}"]
        up = by_address[f"blocks.1.mlp.up.{j}"]
        assert gate.shape == up.shape == (ff, D)
        assert torch.equal(apply_transforms(gate_up, gate.transforms), gate_up[j, :ff])
        assert torch.equal(apply_transforms(gate_up, up.transforms), gate_up[j, ff:])
        assert by_address[f"blocks.1.mlp.down.{j}"].shape == (D, ff)


def test_row_groups_take_each_heads_part():
    h, hd = 3, 2
    fused = torch.arange(h * 3 * hd, dtype=torch.float32).reshape(-1, 1)
    k = apply_transforms(fused, (rows(h, 3 * hd, hd, hd),))
    assert k.flatten().tolist() == [2, 3, 8, 9, 14, 15]


@pytest.mark.parametrize(
    ("rest", "role", "variant"),
    [
        ("attention.self.query.weight", "attn.q", ""),
        ("attention.q_lin.weight", "attn.q", ""),
        ("self_attn.Wq.weight", "attn.q", ""),
        ("layer.0.SelfAttention.k.weight", "attn.k", ""),
        ("layer.1.EncDecAttention.v.weight", "attn.v", "cross"),
        ("encoder_attn.out_proj.weight", "attn.o", "cross"),
        ("attention.output.dense.weight", "attn.o", ""),
        ("self_attention.dense.weight", "attn.o", ""),
        ("attn.c_attn.weight", "attn.qkv", ""),
        ("self_attn.in_proj_weight", "attn.qkv", ""),
        ("attn.Wqkv.weight", "attn.qkv", ""),
        ("intermediate.dense.weight", "mlp.up", ""),
        ("output.dense.weight", "mlp.down", ""),
        ("mlp.dense_h_to_4h.weight", "mlp.up", ""),
        ("mlp.dense_4h_to_h.weight", "mlp.down", ""),
        ("layer.1.DenseReluDense.wi.weight", "mlp.up", ""),
        ("layer.1.DenseReluDense.wo.weight", "mlp.down", ""),
        ("ffn.lin1.weight", "mlp.up", ""),
        ("linear2.weight", "mlp.down", ""),
        ("mlp.c_fc.weight", "mlp.up", ""),
        ("mlp.c_proj.weight", "mlp.down", ""),
        ("mlp.gate_proj.weight", "mlp.gate", ""),
        ("mlp.gate_up_proj.weight", "mlp.gate_up", ""),
        ("mixer.in_proj.weight", "ssm.in", ""),
        ("mixer.x_proj.weight", "ssm.x", ""),
        ("mixer.dt_proj.weight", "ssm.dt", ""),
        ("mixer.out_proj.weight", "ssm.out", ""),
        ("mixer.A_log", "ssm.a", ""),
        ("block_sparse_moe.experts.5.w2.weight", "mlp.down", "5"),
        ("mlp.shared_expert.up_proj.weight", "mlp.up", "shared"),
        ("self_attn.k_proj.linear.weight", "attn.k", ""),
        ("self_attn.q_a_proj.weight", "attn.q", "a"),
        ("self_attn.kv_b_proj.weight", "attn.kv", "b"),
        ("attn.rel_pos_h", "attn.pos", ""),
        ("layer.0.SelfAttention.relative_attention_bias.weight", "attn.pos", ""),
        ("self_attn.linear_q.weight", "attn.q", ""),
        ("mlp.linear_fc1.weight", "mlp.up", ""),
        ("mlp.fc1.proj.weight", "mlp.up", ""),
        ("intermediate_query.dense.weight", "mlp.up", ""),
        ("attn.proj.weight", "attn.o", ""),
        ("attention.self.key.weight_integer", "attn.k", ""),
        ("linear_attn.in_proj_qkvz.weight", "attn.qkv", ""),
        ("pwconv1.weight", "mlp.up", ""),
        ("feed_forward1.ffw_layer_2.linear.weight", "mlp.down", ""),
        ("attention.self.layout_key.weight", "attn.k", "layout"),
        ("layout_output.dense.weight", "mlp.down", "layout"),
        ("lang_inter.dense.weight", "mlp.up", "lang"),
        ("attention.self.e2w_query.weight", "attn.q", "e2w"),
        ("self_attn.indexer.wq_b.weight", "attn.q", "indexer"),
        ("self_attn.indexer.weights_proj.weight", "attn.gate", "indexer"),
        ("self_attn.o_b_proj.weight", "attn.o", "b"),
        ("self_attn.forget_gate.f_a_proj.weight", "attn.gate", ""),
        ("per_layer_input_gate.weight", "mlp.gate", "per_layer"),
        ("per_layer_projection.weight", "mlp.down", "per_layer"),
        ("temporal_block.linear_x.weight", "ssm.in", ""),
        ("temporal_block.linear_out.weight", "ssm.out", ""),
        ("temporal_block.o_proj.weight", "attn.o", ""),
        ("conv.in_proj.weight", "ssm.in", ""),
        ("lconv1d.linear_end.linear.weight", "ssm.out", ""),
        ("bottleneck.input.dense.weight", "mlp.up", "bottleneck"),
        ("output.bottleneck.dense.weight", "mlp.down", "bottleneck"),
        ("post_attention_layernorm.mlp.fc1.weight", "mlp.up", ""),
        ("mlp.dense1.weight", "mlp.up", ""),
        ("feed_forward.output.weight", "mlp.down", ""),
        ("attn.att_proj.weight", "attn.qkv", ""),
        ("mlp.experts.down_proj_bias", "mlp.down", "bias"),
        ("patch_mixer.gating_block.attn_layer.weight", "mlp.gate", ""),
        ("attention.self.continuous_position_bias_mlp.0.weight", "attn.pos", ""),
        ("out_lin.weight", "attn.o", ""),
        ("ffn.ffn.w_in.w_0.weight", "mlp.gate", ""),
        ("self_att.self_attention.attention_out.weight", "attn.o", ""),
        ("attention.time_mix_key", "mix", ""),
        ("feed_forward.time_mix_receptance", "mix", ""),
        ("attn_hc.fn", "mix", ""),
        ("attn_hyper_connection.input_mix_weight_up.weight", "mix", ""),
        ("grn.weight", "norm", ""),
        ("grn.bias", "norm", ""),
        ("self_attn.q_proj.norm.scale", "norm", ""),
        ("res_unit1.snake1.alpha", "act", ""),
        ("temporal_block.rg_lru.input_gate_weight", "ssm.gate", ""),
        ("temporal_block.rg_lru.recurrent_gate_bias", "ssm.gate", ""),
        ("mlstm_layer.q.weight", "attn.q", ""),
        ("mlstm_layer.igate_preact.weight", "attn.gate", ""),
        ("self_attn.k_proj.sconv.static_weight", "attn.k", "sconv"),
        ("mlp.router.classifier.weight", "mlp.router", ""),
        ("conv.pointwise_lin1.weight", "mlp.up", ""),
        ("something.unheard_of.weight", "other", ""),
    ],
)
def test_role_vocabulary(rest, role, variant):
    named = block_role(rest, {rest}, 2)
    assert (named.role, named.variant) == (role, variant)
    assert named.role in ROLES


def test_w1_w2_w3_follow_llama_when_w3_is_there():
    gated = {"feed_forward.w1.weight", "feed_forward.w2.weight", "feed_forward.w3.weight"}
    assert block_role("feed_forward.w1.weight", gated, 2).role == "mlp.gate"
    assert block_role("feed_forward.w3.weight", gated, 2).role == "mlp.up"
    plain = {"ffn.w1.weight", "ffn.w2.weight"}
    assert block_role("ffn.w1.weight", plain, 2).role == "mlp.up"


class ParallelLists(nn.Module):
    """XLM's layout: block i is attentions[i], norms1[i], ffns[i], norms2[i] (post-norm)."""

    def __init__(self, n: int = 3):
        super().__init__()
        self.tok = nn.Embedding(50, D)
        self.attentions = nn.ModuleList(Attention() for _ in range(n))
        self.norms1 = nn.ModuleList(nn.LayerNorm(D) for _ in range(n))
        self.ffns = nn.ModuleList(
            nn.Sequential(nn.Linear(D, 4 * D), nn.GELU(), nn.Linear(4 * D, D)) for _ in range(n)
        )
        self.norms2 = nn.ModuleList(nn.LayerNorm(D) for _ in range(n))

    def forward(self, ids):
        x = self.tok(ids)
        for att, n1, ffn, n2 in zip(
            self.attentions, self.norms1, self.ffns, self.norms2, strict=True
        ):
            x = n1(x + att(x)[0])
            x = n2(x + ffn(x))
        return x


def test_parallel_lists_are_one_block_per_index():
    torch.manual_seed(0)
    model = ParallelLists().eval()
    ck = ex.load(model)
    rows = {name: (depth, role) for depth, role, name in table(ck).values()}
    assert ck.n_blocks == 3
    assert rows["attentions.1.wq.weight"] == (2, "attn.q")
    assert rows["attentions.1.wo.weight"] == (2, "attn.o")
    assert rows["ffns.1.0.weight"] == (2, "mlp.up")
    assert rows["ffns.1.2.weight"] == (2, "mlp.down")
    ids = torch.randint(0, 50, (2, 5))
    acts = ex.capture(ck, ids, device="cpu", pooling="first")
    assert acts.depths == [0, 1, 2, 3]
    with torch.no_grad():
        x = model.tok(ids)
        for i in range(3):
            x = model.norms1[i](x + model.attentions[i](x)[0])
            x = model.norms2[i](x + model.ffns[i](x))
            assert torch.allclose(acts[i + 1], x[:, 0], atol=1e-6)


def test_numbered_stages_and_up_down_lists_stay_consecutive():
    two = [f"{p}.{i}.{m}.weight" for p in ("layer1", "layer2") for i in range(2) for m in "ab"]
    assert find_structure(two).n_blocks == 4
    unet = [
        f"{p}.{i}.{m}.weight" for p in ("down_blocks", "up_blocks") for i in range(2) for m in "ab"
    ]
    assert find_structure(unet).n_blocks == 4


def test_a_list_named_blocks_holds_blocks_even_with_inner_lists():
    """HGNet: stages.s.blocks.b.layers.l; the blocks are stages.s.blocks.b, not the conv layers."""
    names = [
        f"encoder.stages.{s}.blocks.{b}.{part}.weight"
        for s in range(2)
        for b in range(2)
        for part in [f"layers.{k}.conv{j}" for k in range(3) for j in (1, 2)] + ["aggregation.0"]
    ]
    structure = find_structure(names)
    blocks = [b for stack in structure.stacks for b in stack.blocks]
    assert blocks == [f"encoder.stages.{s}.blocks.{b}" for s in range(2) for b in range(2)]
    assert [structure.depth_of[b] for b in blocks] == [1, 2, 3, 4]
    alone = [n for n in names if n.startswith("encoder.stages.1.")]  # a top-level blocks list
    assert find_structure(alone).stacks[0].blocks == (
        "encoder.stages.1.blocks.0",
        "encoder.stages.1.blocks.1",
    )


def test_hybrid_layers_that_share_no_names_are_still_blocks():
    """Nemotron-H: mamba, MoE, attention and MLP layers in one ``layers`` list."""
    kinds = [
        ["mixer.in_proj", "mixer.out_proj"],
        ["mixer.gate", "mixer.shared_experts.up_proj", "mixer.shared_experts.down_proj"],
        ["mixer.q_proj", "mixer.k_proj", "mixer.v_proj", "mixer.o_proj"],
        ["mixer.up_proj", "mixer.down_proj"],
    ]
    names = [f"model.layers.{i}.{m}.weight" for i, ms in enumerate(kinds) for m in ms]
    structure = find_structure(["model.embeddings.weight", *names])
    assert structure.stacks[0].blocks == tuple(f"model.layers.{i}" for i in range(4))
    other = [f"model.parts.{i}.{m}.weight" for i, ms in enumerate(kinds) for m in ms]
    assert find_structure(other).n_blocks == 0  # only a list named like layers may differ


def test_lists_of_whole_layers_stay_consecutive_stacks():
    """LXMERT: l_layers, x_layers, r_layers under one parent run one after the other."""
    names = [
        f"encoder.{p}.{i}.{m}.weight"
        for p in ("l_layers", "x_layers", "r_layers")
        for i in range(2)
        for m in ("attention.query", "attention.key", "output.dense")
    ]
    assert find_structure(names).n_blocks == 6


def test_a_list_of_lists_of_blocks_flattens_in_order():
    """SegFormer: encoder.block.s.i (stage s, block i) gives one depth per block, stage by stage."""
    names = [
        f"encoder.block.{s}.{i}.{m}.weight"
        for s in range(2)
        for i in range(3)
        for m in ("attention.query", "attention.key", "mlp.dense1", "mlp.dense2")
    ]
    structure = find_structure(names)
    blocks = [b for stack in structure.stacks for b in stack.blocks]
    assert blocks == [f"encoder.block.{s}.{i}" for s in range(2) for i in range(3)]
    assert [structure.depth_of[b] for b in blocks] == [1, 2, 3, 4, 5, 6]


def test_lists_of_sublayers_stay_inside_their_block():
    """LongCat-Flash: layers.i holds self_attn.0/1 and mlps.0/1; the block is layers.i."""
    names = [
        f"layers.{i}.{part}.{j}.{m}.weight"
        for i in range(3)
        for part, ms in (("self_attn", ("q_proj", "o_proj")), ("mlps", ("up_proj", "down_proj")))
        for j in range(2)
        for m in ms
    ]
    structure = find_structure(names)
    assert structure.stacks[0].blocks == ("layers.0", "layers.1", "layers.2")
    assert structure.locate("layers.1.mlps.1.up_proj.weight")[0] == 2
