"""Roles from a vocabulary of parameter names, whatever the architecture calls them.

Inside a block, a matrix's role comes from its module's own name (the *leaf*: ``q_proj`` in
``self_attn.q_proj.weight``) read in its *context* (the names above it):

- attention (a context name containing ``att``, or ``mha``): q/k/v/o under their many names
  (``query``/``q``/``q_proj``/``q_lin``/``wq``, ``o``/``o_proj``/``out_proj``/``out_lin``/
  ``dense``/``c_proj``/``wo``, ...); fused q/k/v (``c_attn``, ``query_key_value``, ``qkv_proj``,
  ``qkv``, ``wqkv``, ``in_proj``) is split by the caller; fused k/v (``kv_proj``, ``to_kv``,
  ``kv_b_proj``) stays whole as ``attn.kv``; multi-head latent attention's two halves
  (``q_a_proj``/``q_b_proj``, ``kv_a_proj_with_mqa``/``kv_b_proj``) get the variants ``a`` and
  ``b``; attention gates are ``attn.gate``, relative-position tables and biases ``attn.pos``.
  A layer wrapped in another (``q_proj.linear``, ``qkv_proj.convolution``) is read by the name
  of the wrapper. A context naming cross-attention
  (``encoder_attn``, ``EncDecAttention``, ``crossattention``, ``multihead_attn``) gives the
  variant ``cross``.
- state space (``mixer``, ``ssm``, ``mamba``): ``in_proj`` -> ``ssm.in``, ``x_proj`` ->
  ``ssm.x``, ``dt_proj`` -> ``ssm.dt``, ``out_proj`` -> ``ssm.out``, ``A_log`` -> ``ssm.a``.
- otherwise the MLP: ``fc1``/``c_fc``/``wi``/``dense_h_to_4h``/``linear1``/``up_proj``/
  ``intermediate.dense``/``lin1`` -> ``mlp.up``; ``fc2``/``c_proj``/``wo``/``dense_4h_to_h``/
  ``linear2``/``down_proj``/``output.dense``/``lin2`` -> ``mlp.down``; ``gate_proj``/``wi_0`` ->
  ``mlp.gate``; ``w1``/``w3``/``w2`` are gate/up/down when a ``w3`` is there (Llama, Mixtral), else
  ``w1`` is up; ``gate_up_proj`` is fused (gate first, split by the caller); a mixture of experts'
  router (``router``, or ``gate`` next to experts) -> ``mlp.router``.
- kernels with more than two axes -> ``conv``.

Less common names: a prefix on an attention name is the variant (LiLT's ``layout_key``, LUKE's
``e2w_query``; ``layout_output.dense``/``lang_inter.dense`` are MLP down/up); an indexer's
matrices (DeepSeek-V3.2) have the variant ``indexer``; linear attention's beta/forget gates,
``receptance`` and attention routers are ``attn.gate``; short-convolution and recurrent token
mixers (``conv``, ``lconv1d``, ``temporal_block``) read with ``in_proj``/``linear_x``/
``linear_y``/``linear_start`` (``ssm.in``) and write with ``out_proj``/``linear_out``/
``linear_end`` (``ssm.out``); Gemma-3n's ``per_layer_input_gate``/``per_layer_projection`` are
``mlp.gate``/``mlp.down`` with the variant ``per_layer``, MobileBERT's bottleneck in/out
``mlp.up``/``mlp.down`` with ``bottleneck``; GPT-OSS's ``*_proj_bias`` take their matrix's role.

Parameters that are no layer of attention, MLP or mixer: RWKV's ``time_mix_*`` and
hyper-connections (``attn_hc``, ``*_hyper_connection``) -> ``mix``; a norm's scale or shift with
extra axes (GRN, ``q_proj.norm.scale``) -> ``norm``; Snake's ``alpha`` -> ``act``; RG-LRU's gates ->
``ssm.gate``; mLSTM's ``*gate_preact`` -> ``attn.gate`` (its q/k/v read as attention); a router's
own layer (``router.classifier``) -> ``mlp.router``; LightGlue's per-layer ``matchability`` and
``final_projection`` -> ``head``. Anything inside a q/k/v projection (``k_proj.sconv``) takes the
projection's role with the part as the variant.

An expert's index (``experts.3.w1``) or ``shared`` (``shared_expert``) is the variant. Anything
else is ``other``: never an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

Q = {
    "linear_q",
    "q_a_proj",
    "q_b_proj",
    "q",
    "query",
    "q_proj",
    "q_lin",
    "wq",
    "query_proj",
    "to_q",
    "q_linear",
    "q_attn",
    "query_global",
    "wq_a",
    "wq_b",
}
K = {"key_global", "linear_k", "k", "key", "k_proj", "k_lin", "wk", "key_proj", "to_k", "k_linear"}
V = {
    "value_global",
    "linear_v",
    "v",
    "value",
    "v_proj",
    "v_lin",
    "wv",
    "value_proj",
    "to_v",
    "v_linear",
}
OUT = {"o", "o_proj", "out_proj", "out_lin", "wo", "dense", "c_proj", "proj", "out", "output"}
OUT |= {"to_out", "o_linear", "out_linear", "output_proj", "dense_out", "linear_out"}
OUT |= {"projection", "projection_layer", "o_a_proj", "o_b_proj", "projection_out", "attention_out"}
OUT |= {"wo_a", "wo_b"}
KV = {"kv_proj", "to_kv", "kv_b_proj", "kv_a_proj_with_mqa", "kv_a_proj", "wkv"}
QKV = {"c_attn", "query_key_value", "qkv_proj", "qkv", "wqkv", "in_proj", "to_qkv", "qkv_linear"}
QKV |= {"att_proj", "queries_keys_values"}
UP = {"fc1", "c_fc", "wi", "wi_1", "dense_h_to_4h", "linear1", "up_proj", "up", "fc_in", "lin1"}
UP |= {"w_in", "intermediate_dense", "ff1", "fc11", "w3", "linear_fc1", "linear_1", "proj_in"}
UP |= {"ffw_layer_1", "pwconv1", "input_linear", "pointwise_conv1", "dense1", "linear_up"}
UP |= {"pointwise_lin1"}
GATE = {"gate_proj", "wi_0", "gate_linear"}
_W_IN = {"w_0": "mlp.gate", "w_1": "mlp.up"}  # CPM-Ant's gated w_in.w_0, w_in.w_1
DOWN = {"fc2", "c_proj", "wo", "dense_4h_to_h", "linear2", "w2", "down_proj", "down", "fc_out"}
DOWN |= {"lin2", "w_out", "output_dense", "ff2", "linear_fc2", "linear_2", "proj_out"}
DOWN |= {"ffw_layer_2", "pwconv2", "output_linear", "pointwise_conv2", "dense2", "linear_down"}
DOWN |= {"pointwise_lin2"}
GATE_UP = {"gate_up_proj", "gate_up"}
SSM = {"in_proj": "ssm.in", "x_proj": "ssm.x", "dt_proj": "ssm.dt", "out_proj": "ssm.out"}
SSM |= {"a_log": "ssm.a", "a": "ssm.a"}
_KNOWN = Q | K | V | OUT | QKV | UP | GATE | DOWN | GATE_UP | KV | {"w1", "w2", "w3"}
_WRAPPERS = {"linear", "convolution", "conv", "proj", "layer", "dense", "linear_layer"}
_WRAPPED = _KNOWN - {"proj", "dense", "output", "out", "o", "projection"}
_WRAPPED |= {"linear_start", "linear_end", "router"}
_POSITION = re.compile(
    r"rel|pos|distance|bias_[uv]$|^r_[rsw]_bias$|^seg_embed$|sampling_offsets|^time_|^ape$"
)
# Attention's other gates: linear attention's beta and forget gates (b_proj, f_proj, A_log),
# Doge's dt_proj, deformable attention's attention_weights, an indexer's per-head weights.
_ATTN_GATE = {"gate", "gate_proj", "g_proj", "b_proj", "f_proj", "f_a_proj", "f_b_proj", "a_log"}
_ATTN_GATE |= {"dt_proj", "attention_weights", "weights_proj", "receptance", "router"}
_ATTN_GATE |= {"conv_kernel_layer", "wgate"}  # ConvBERT's span-based dynamic kernel
# Attention under other names: ConvBERT's convolution branch, JetMoE's attention experts.
_ATTN_OTHER = {"key_conv_attn_layer": ("attn.k", "conv"), "conv_out_layer": ("attn.v", "conv")}
_ATTN_OTHER |= {"input_linear": ("attn.q", ""), "output_linear": ("attn.o", "")}
# An MLP's first and last layers under generic names (in an MLP context only).
_MLP_IN = {"in_proj", "intermediate", "layer_1", "proj_up"}
_MLP_OUT = {"out_proj", "output", "layer_2", "proj_down"}
# Leaves that name attention without any context (not q/k/v/o, which MLPs also use).
_ATTN_ONLY = {"o_proj", "out_lin", "o_a_proj", "o_b_proj"}
# Token mixers built from a short convolution between two pointwise layers (LFM2's conv,
# Gemma-3n's lconv1d, RecurrentGemma's temporal block): their in/out layers are ssm.in/ssm.out.
_MIXER_WORDS = {"mixer", "ssm", "temporal_block", "conv", "lconv1d"}
_MIXER_IN = {"in_proj", "linear_start", "linear_x", "linear_y"}
_MIXER_OUT = {"out_proj", "linear_end", "linear_out"}

_HYPER = re.compile(r"hyper_connection|(?:^|_)hc$|^hc_")
_NORM = re.compile(r"^(?:\w*_)?(?:norm\d*|grn|layernorm|ln\d*)$")
_LSTM = {"mlstm_layer", "mlstm", "mlstm_cell"}
# the two halves of a low-rank (latent) projection, under the module's and DeepSeek-V4's file names
_HALVES = {"q_a_proj": "a", "q_b_proj": "b", "kv_a_proj_with_mqa": "a", "kv_a_proj": "a"}
_HALVES |= {"kv_b_proj": "b", "o_a_proj": "a", "o_b_proj": "b"}
_HALVES |= {"wq_a": "a", "wq_b": "b", "wo_a": "a", "wo_b": "b"}
_ASSIGNMENT_HEADS = {"matchability", "final_projection"}
_MLP_WORDS = {"feed_forward", "feedforward", "ffn", "ffns", "mlp", "ff", "channel_mix", "fc"}
_CROSS = re.compile(r"cross|encdec|encoder_attn|multihead_attn|src_attn|enc_attn")
_EXPERT = re.compile(r"^(?:\w*_)?experts?$")
_SHARED = re.compile(r"^shared_(?:experts?|mlp)$")
_PER_LAYER = {"per_layer_input_gate": "mlp.gate", "per_layer_projection": "mlp.down"}
_SUBLAYER = re.compile(r"^(?:([a-z0-9]+)_)?(intermediate\w*|inter|output\w*)$")


@dataclass(frozen=True)
class Named:
    """A matrix's role, its variant, and ``fused`` (``"qkv"``/``"gate_up"``) if it must split."""

    role: str
    variant: str = ""
    fused: str = ""


def split_name(rest: str) -> tuple[str, list[str]]:
    """``"attention.self.query.weight"`` -> ``("query", ["attention", "self"])``, lower case."""
    parts = rest.split(".")
    if parts[-1] in ("weight", "weight_integer") and len(parts) > 1:  # I-BERT keeps both
        parts = parts[:-1]
    elif parts[-1].endswith("_weight"):
        parts[-1] = parts[-1][: -len("_weight")]
    parts = [p.lower() for p in parts]
    return parts[-1], parts[:-1]


def block_role(rest: str, siblings: set[str], ndim: int) -> Named:
    """The role of a matrix at ``rest`` inside a block whose matrices are ``siblings``."""
    leaf, context = split_name(rest)
    if leaf.endswith("_bias") and leaf[: -len("_bias")] in _KNOWN:  # GPT-OSS's expert biases
        base = block_role(rest[: -len("_bias")], siblings, ndim)
        return Named(base.role, base.variant or "bias")
    if leaf in _WRAPPERS and context and (context[-1] in _WRAPPED or _POSITION.search(context[-1])):
        leaf, context = context[-1], context[:-1]  # q_proj.linear, qkv_proj.convolution
    variant = _variant(context)
    words = [c for c in context if not c.isdigit()]
    special = _special(leaf, words)
    if special:
        return Named(special, variant)
    if ndim > 2 and not _is_expert_tensor(words, ndim):
        return Named("conv", variant)
    if leaf in _PER_LAYER:  # Gemma-3n's per-layer input: a gated projection into the stream
        return Named(_PER_LAYER[leaf], "per_layer")
    if any(c.startswith("gating") for c in words):  # PatchTSMixer's gating block
        return Named("mlp.gate", variant)
    if "bottleneck" in words and leaf == "dense" and words[-1] in ("input", "bottleneck"):
        return Named("mlp.up" if words[-1] == "input" else "mlp.down", "bottleneck")  # MobileBERT
    if any(
        ("att" in c and "norm" not in c) or c in ("mha", "self", "modulation") or c in _LSTM
        for c in words
    ):
        if any(_CROSS.search(c) for c in words):
            variant = "cross"
        if "indexer" in words:  # DeepSeek-V3.2's lightning indexer: its own q, k, head weights
            variant = "indexer"
        if leaf in _HALVES and variant != "indexer":
            variant = _HALVES[leaf]  # multi-head latent attention: the two halves a, b
        if leaf in _ATTN_OTHER:
            role, kind = _ATTN_OTHER[leaf]
            return Named(role, kind or variant)
        owner = next((c for c in reversed(words) if c in Q | K | V), None)
        if owner and leaf not in _KNOWN:  # a part of a projection (Inkling's k_proj.sconv)
            role = "attn.q" if owner in Q else "attn.k" if owner in K else "attn.v"
            return Named(role, words[-1] if words[-1] != owner else leaf)
        prefix, _, base = leaf.partition("_")
        if leaf not in _KNOWN and base in Q | K | V:  # LiLT's layout_key, LUKE's e2w_query
            leaf, variant = base, prefix
        if leaf in Q:
            return Named("attn.q", variant)
        if leaf in K:
            return Named("attn.k", variant)
        if leaf in V:
            return Named("attn.v", variant)
        if leaf in QKV:
            return Named("attn.qkv", variant, "qkv")
        if leaf in OUT:
            return Named("attn.o", variant)
        if leaf in KV:
            return Named("attn.kv", variant)
        if leaf.startswith("in_proj_") or leaf == "projection_in":  # fused, layout unknown
            return Named("attn.qkv", variant)
        if leaf in _ATTN_GATE or any("gate" in c for c in words):
            return Named("attn.gate", variant)
        if _POSITION.search(leaf) or any(_POSITION.search(c) for c in words if "att" not in c):
            return Named("attn.pos", variant)
        return Named("other", variant)
    if any(c in _MIXER_WORDS or c.startswith("mamba") for c in words):
        if leaf in SSM:
            return Named(SSM[leaf], variant)
        if leaf in _MIXER_IN:
            return Named("ssm.in", variant)
        if leaf in _MIXER_OUT:
            return Named("ssm.out", variant)
    gated = any(split_name(s)[0] == "w3" for s in siblings)
    experts_here = any("expert" in s for s in siblings)
    if leaf in GATE_UP:
        return Named("mlp.gate_up", variant, "gate_up")
    if leaf in _W_IN and words and words[-1] == "w_in":
        return Named(_W_IN[leaf], variant)
    if leaf == "w1":
        return Named("mlp.gate" if gated else "mlp.up", variant)
    if leaf in GATE:
        return Named("mlp.gate", variant)
    if leaf in UP:
        return Named("mlp.up", variant)
    if leaf in DOWN:
        return Named("mlp.down", variant)
    sub = _SUBLAYER.match(words[-1]) if leaf == "dense" and words else None
    if sub:  # BERT's intermediate/output, LXMERT's lang_inter, LiLT's layout_output
        role = "mlp.down" if sub.group(2).startswith("output") else "mlp.up"
        return Named(role, sub.group(1) or variant)
    if leaf == "dense" and words and words[-1] in ("ffn", "mlp"):
        return Named("mlp.up", variant)
    if leaf in ("router", "shared_expert_gate") or (leaf == "gate" and experts_here):
        return Named("mlp.router", "shared" if leaf == "shared_expert_gate" else variant)
    if leaf == "gate":
        return Named("mlp.gate", variant)
    if any(c in _MLP_WORDS for c in words):
        if leaf == "key":
            return Named("mlp.up", variant)
        if leaf == "value":
            return Named("mlp.down", variant)
        if leaf in ("receptance", "proj_up_gate"):
            return Named("mlp.gate", variant)
        if leaf in _MLP_IN:
            return Named("mlp.up", variant)
        if leaf in _MLP_OUT:
            return Named("mlp.down", variant)
        if leaf.isdigit():  # an nn.Sequential MLP: its first matrix reads, its last writes
            numbered = sorted(
                int(split_name(s)[0])
                for s in siblings
                if _parent(s) == _parent(rest) and split_name(s)[0].isdigit()
            )
            if len(numbered) > 1 and int(leaf) == numbered[0]:
                return Named("mlp.up", variant)
            if len(numbered) > 1 and int(leaf) == numbered[-1]:
                return Named("mlp.down", variant)
    if leaf in (Q | K | V) - {"q", "k", "v", "key", "value"}:  # unambiguous without context
        return Named("attn." + ("q" if leaf in Q else "k" if leaf in K else "v"), variant)
    if leaf in _ATTN_ONLY:
        return Named("attn.o", variant)
    if leaf in QKV - {"qkv", "in_proj"}:
        return Named("attn.qkv", variant, "qkv")
    return Named("other", variant)


def _special(leaf: str, words: list[str]) -> str:
    """Roles of the few block parameters that are not layers of attention, MLP or mixer."""
    if leaf.startswith("time_mix") or any(_HYPER.search(c) for c in [*words, leaf]):
        return "mix"  # RWKV's token shift; hyper-connections' residual-stream mixing
    if _NORM.match(leaf) or (leaf in ("bias", "scale") and words and _NORM.match(words[-1])):
        return "norm"  # a normalisation's scale or shift stored with extra axes (GRN)
    if leaf == "alpha" and words and words[-1].startswith("snake"):
        return "act"  # Snake activation's learned frequency (DAC, BigVGAN)
    if "rg_lru" in words and "gate" in leaf:
        return "ssm.gate"  # RG-LRU's input and recurrence gates (block-diagonal per head)
    if words and words[-1] in _LSTM and leaf.endswith("gate_preact"):
        return "attn.gate"  # mLSTM's input, forget and output gates
    if words and words[-1] == "router":
        return "mlp.router"  # a router's own layer (LongCat-Flash's router.classifier)
    if leaf in _ASSIGNMENT_HEADS:
        return "head"  # LightGlue's per-layer match assignment (early exit)
    return ""


def _parent(rest: str) -> str:
    parts = rest.split(".")
    return ".".join(parts[:-2] if parts[-1] == "weight" else parts[:-1])


def _variant(context: list[str]) -> str:
    for i, c in enumerate(context):
        if _SHARED.match(c):
            return "shared"
        if _EXPERT.match(c) and i + 1 < len(context) and context[i + 1].isdigit():
            return context[i + 1]
    return ""


def _is_expert_tensor(words: list[str], ndim: int) -> bool:
    """Experts stored as one (experts, out, in) tensor (transformers >= 5's Mixtral, Qwen-MoE)."""
    return ndim == 3 and any(_EXPERT.match(c) for c in words)


def is_expert_tensor(rest: str, ndim: int) -> bool:
    _, context = split_name(rest)
    return _is_expert_tensor([c for c in context if not c.isdigit()], ndim)


# -- outside the blocks: embeddings (depth 0) and heads (depth L+1) ------------------------

_EMBED = re.compile(
    r"embed|emb(?:\.|_|$)|(?:^|\.)(?:wte|wpe|shared|stem|tok|tokens?|words?)(?:\.|$)|"
    r"patch|position|pos_emb|"
    r"(?:cls|distillation|mask|register)_tokens?|relative|rel_"
)
_TOKEN = re.compile(r"(?:^|\.)(cls|distillation|mask|register)_tokens?$")
_PLAIN_HEAD = {"lm_head", "classifier", "score", "fc", "head", "cls", "qa_outputs", "logits"}
_PLAIN_HEAD |= {"out", "output", "unembed"}


def is_embedding(name: str) -> bool:
    """Outside the blocks, is this an embedding-side matrix (depth 0) rather than a head?"""
    return bool(_EMBED.search(name.lower()))


def embed_role(name: str, ndim: int) -> Named:
    """Role and variant of a depth-0 matrix: ``embed`` (``.position``, ...) or a stem ``conv``.

    ``ndim`` counts the axes after leading singleton axes are dropped (a ViT's (1, n, d)
    position table is a matrix); kernels (``ndim > 2``) are stem convolutions unless they cut
    an image into patches.
    """
    low = name.lower()
    if ndim > 2 and "patch" not in low:
        return Named("conv")
    m = _TOKEN.search(low)
    if m:
        return Named("embed", m.group(1))
    if "token_type" in low:
        return Named("embed", "token_type")
    if re.search(r"relative|rel_", low):
        return Named("embed", "relative")
    if re.search(r"position|wpe|pos_emb", low):
        return Named("embed", "position")
    return Named("embed")


def head_role(name: str) -> Named:
    """Role and variant of a matrix after the blocks: ``head`` or ``head.pooler``, ..."""
    leaf, context = split_name(name)
    parts = [*context, leaf]
    if "pooler" in parts:
        return Named("head", "pooler")
    if any(p in _PLAIN_HEAD for p in parts):
        return Named("head")
    named = [p for p in parts if not p.isdigit() and p not in ("weight", "dense", "model")]
    return Named("head", named[-1] if named else "")
