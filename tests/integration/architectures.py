"""The architecture sweep: every AutoModel type of the installed transformers, tiny, through explorer.

For each model type that has both a config (``CONFIG_MAPPING``) and an AutoModel class
(``MODEL_MAPPING``), :func:`tiny_config` shrinks the default config (widths to 32, every stack to
:data:`LAYERS` blocks, 2 heads, feed-forward 64, vocabulary ~100, 4 experts, ...; nested text/vision
sub-configs too), :func:`build` instantiates it with random weights (seeded), and :func:`check`
measures what explorer makes of it through its public API only (``ex.load``, ``ck.layers``,
``ex.capture``):

``one_depth``
    every block's matrices share one depth;
``increasing``
    depth increases with the block index within a stack, and blocks of different stacks never
    share a depth;
``covered``
    every non-empty parameter with two or more axes appears in the layer table (tied copies count
    once);
``roles``
    at least 90 % of the block matrices have a named role (not ``other``);
``capture``
    for models whose forward takes ``input_ids``: ``ex.capture`` on token ids gives a hidden state
    of the model's width (:data:`WIDTH`) at the depth of every block that the model's own forward
    runs on those ids (hooks on the blocks tell; a vision-language model's vision tower does not run).

The blocks are found here without asking explorer: they are the children of the outermost
``nn.ModuleList``/``nn.Sequential`` modules that have exactly :data:`LAYERS` children, each holding
two or more weight matrices (of one class, or of several in a hybrid model's layer list). No other
size in a tiny config is :data:`LAYERS` (experts are 4, heads 2), so those stacks are the layer
stacks the config asked for; stages of blocks (``depths`` lists) get :data:`LAYERS` blocks per
stage. Sibling stacks of one length whose blocks the model's own forward calls in turn (XLM's
``attentions.i`` and ``ffns.i``) are one stack. A type whose config cannot be built or whose model cannot be
instantiated here is reported with the reason and does not count as a failure of explorer.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field

import torch
from torch import nn

LAYERS = 3  # blocks per stack; no other size in a tiny config may equal it
WIDTH = 32  # hidden size / d_model / n_embd
HEADS = 2
HEAD_DIM = WIDTH // HEADS
FFN = 64
VOCAB = 128  # special token ids sit at its top, probe ids below PROBE_VOCAB
PROBE_VOCAB = 64
EXPERTS = 4
SEQ = 8  # tokens per probe input
N_PROBE = 4  # probe inputs
ROLE_TARGET = 0.9
TIME_LIMIT = 600  # seconds per model type: a guard against hangs only (a busy machine is slow)
CHECKS = ("one_depth", "increasing", "covered", "roles", "capture")

# field names (of a config or one of its sub-configs) and the tiny value they get
_WIDTH_NAMES = re.compile(
    r"^(hidden_size|d_model|n_embd|n_embed|embed_dim|hidden_dim|model_dim|d_embed|dim|"
    r"embedding_size|embedding_dim|emb_dim|word_embed_proj_dim|projection_dim|proj_dim|"
    r"text_embed_dim|vision_embed_dim|d_inner_model|encoder_hidden_size|decoder_hidden_size|"
    r"text_hidden_size|vision_hidden_size|audio_hidden_size|hidden_channels|out_hidden_size)$"
)
_HEAD_DIM_NAMES = re.compile(
    r"^(head_dim|attention_head_size|d_kv|kv_channels|d_head|qk_nope_head_dim|v_head_dim|"
    r"qk_rope_head_dim|attention_head_dim|key_head_dim|value_head_dim|index_head_dim|"
    r"swa_head_dim)$"
)
_HEADS_NAMES = re.compile(
    r"^(num_attention_heads|n_head|n_heads|num_heads|encoder_attention_heads|"
    r"decoder_attention_heads|attention_heads|num_attention_heads_per_layer|"
    r"encoder_num_attention_heads|decoder_num_attention_heads|n_attention_heads|"
    r"num_key_heads|num_value_heads)$"
)
_KV_HEADS_NAMES = re.compile(
    r"^(num_key_value_heads|n_kv_heads|num_kv_heads|multi_query_group_num|n_head_kv|"
    r"num_kv_groups|decoder_num_key_value_heads)$"
)
_LAYER_NAMES = re.compile(
    r"^(num_hidden_layers|n_layer|n_layers|num_layers|encoder_layers|decoder_layers|"
    r"num_encoder_layers|num_decoder_layers|n_layers_decoder|encoder_num_hidden_layers|"
    r"decoder_num_hidden_layers|num_text_layers|num_vision_layers|text_num_hidden_layers|depth|"
    r"l_layers|x_layers|r_layers|num_self_attends_per_block)$"
)
_FFN_NAMES = re.compile(
    r"^(intermediate_size|ffn_dim|n_inner|d_ff|ffn_hidden_size|encoder_ffn_dim|decoder_ffn_dim|"
    r"dim_feedforward|moe_intermediate_size|shared_expert_intermediate_size|intermediate_dim|"
    r"mlp_dim|inner_dim|d_inner|encoder_intermediate_size|decoder_intermediate_size|"
    r"expert_intermediate_size|ffn_size|feed_forward_size|hidden_dim_ffn)$"
)
_EXPERT_NAMES = re.compile(
    r"^(num_experts|num_local_experts|n_routed_experts|moe_num_experts|num_routed_experts|"
    r"n_experts)$"
)
_TOP_K_NAMES = re.compile(
    r"^(num_experts_per_tok|moe_top_k|moe_topk|top_k|num_selected_experts|zero_expert_num)$"
)
_RANK_NAMES = re.compile(r"^(kv_lora_rank|q_lora_rank|time_step_rank|state_size|d_state)$")
_LIST_WIDTH_NAMES = re.compile(r"^(hidden_sizes|embed_dims|dims|hidden_dims|embed_dim|channels)$")
_LIST_DEPTH_NAMES = re.compile(r"^(depths|depth|num_layers|layers|block_repeats|stage_depths)$")
_LIST_HEADS_NAMES = re.compile(r"^(num_heads|num_attention_heads|heads)$")


@dataclass
class Result:
    """What the sweep found for one model type."""

    model_type: str
    model_class: str = ""
    instantiated: bool = False
    reason: str = ""  # why it did not instantiate
    n_blocks: int = 0
    n_stacks: int = 0
    role_fraction: float | None = None
    takes_ids: bool = False
    capture_note: str = ""  # why capture was not checked (the tiny model's own forward fails)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    seconds: float = 0.0  # wall clock
    cpu_seconds: float = 0.0  # this process's CPU time (the figure that holds on a busy machine)

    @property
    def passed(self) -> bool:
        return self.instantiated and all(ok for ok, _ in self.checks.values())

    @property
    def failures(self) -> list[str]:
        return [f"{name}: {why}" for name, (ok, why) in self.checks.items() if not ok]


def model_types() -> list[str]:
    """Model types with both a config class and an AutoModel class, sorted."""
    from transformers import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    return sorted(t for t in MODEL_MAPPING_NAMES if t in CONFIG_MAPPING)


# -- tiny configs -------------------------------------------------------------------------------


_PREFIX = re.compile(
    r"^((mamba|ssm|text|vision|audio|speech|encoder|decoder|global|local|cross|moe|linear|attn|"
    r"attention|shared|lm|llm|backbone|latent|expert|mlp|language|qformer|prompt|depth)_)+"
)
_TOKEN_ID = re.compile(r"(token_id|token_index|token_ids|_token)$")
_DERIVED = ("layer_types", "mlp_layer_types")  # recomputed from the (shrunk) layer count


def _shrunk_value(name: str, value, old_layers: set[int]):
    """The tiny value for one config field, or ``None`` to keep the default."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        for key in dict.fromkeys((name, _PREFIX.sub("", name))):
            new = _shrunk_int(key, value)
            if new is not None:
                return new
        return None
    if isinstance(value, list | tuple) and value and all(type(v) is int for v in value):
        if _LIST_DEPTH_NAMES.match(name):
            return [LAYERS if v > 0 else 0 for v in value]
        if _LIST_WIDTH_NAMES.match(name):
            scale = max(value[0] // 16, 1)
            return [max(v // scale, 8) for v in value]
        if _LIST_HEADS_NAMES.match(name):
            return [min(v, HEADS) for v in value]
        if len(value) in old_layers:  # per-layer lists (window sizes, ...)
            return _per_layer(value)
    if isinstance(value, list | tuple) and value and len(value) in old_layers:
        if all(isinstance(v, str) for v in value):
            return _per_layer(value)
    if isinstance(value, str) and "pattern" in name and len(value) in old_layers:
        return "".join(_per_layer(value))  # one character per layer (hybrid layouts)
    return None


def _per_layer(value) -> list:
    """:data:`LAYERS` entries of a per-layer list, keeping each kind of layer it has (in order)."""
    first = {}
    for i, v in enumerate(value):
        first.setdefault(v, i)
    chosen = sorted(first.values())[:LAYERS]
    chosen += [i for i in range(len(value)) if i not in chosen][: LAYERS - len(chosen)]
    return [value[i] for i in sorted(chosen)]


def _mrope(section: list[int]) -> list[int]:
    """A multimodal rotary split scaled to the tiny head (its parts sum to HEAD_DIM // 2)."""
    total, want = sum(section), HEAD_DIM // 2
    out = [max(1, v * want // total) for v in section]
    out[0] += want - sum(out)
    return out


def _shrunk_int(name: str, value: int) -> int | None:
    if _LAYER_NAMES.match(name):
        return LAYERS if value > 0 else None
    if _WIDTH_NAMES.match(name):
        return WIDTH
    if _HEAD_DIM_NAMES.match(name):
        return HEAD_DIM
    if _HEADS_NAMES.match(name):
        return HEADS
    if _KV_HEADS_NAMES.match(name):
        return min(value, HEADS) if value > 0 else None
    if _FFN_NAMES.match(name):
        return FFN
    if _EXPERT_NAMES.match(name):
        return EXPERTS if value > 1 else None
    if _TOP_K_NAMES.match(name):
        return min(value, 2)
    if _RANK_NAMES.match(name):
        return min(value, 16)
    if name == "n_shared_experts":
        return min(value, 1)
    if "vocab" in name and value > VOCAB:
        return VOCAB
    return None


def _is_id(name: str, value) -> bool:
    return bool(_TOKEN_ID.search(name)) and type(value) is int


def _large_ids(values: dict, found: set[int]) -> set[int]:
    """Every special token id >= VOCAB anywhere in a config tree (as dicts)."""
    for name, value in values.items():
        if not isinstance(name, str):
            continue
        if isinstance(value, dict):
            _large_ids(value, found)
        elif _is_id(name, value) and value >= VOCAB:
            found.add(value)
        elif _TOKEN_ID.search(name) and isinstance(value, list | tuple):
            found.update(v for v in value if type(v) is int and v >= VOCAB)
    return found


def _overrides(values: dict, id_map: dict[int, int]) -> dict:
    """The constructor arguments that make a config (as a dict) tiny, sub-configs as dicts.

    Special token ids past the tiny vocabulary move to its top (``id_map``, the same in every
    sub-config); probe ids are drawn below them.
    """
    old_layers = {
        v for k, v in values.items() if type(v) is int and _LAYER_NAMES.match(k) and v > 0
    }
    out: dict = {}
    for name, value in values.items():
        if name.startswith("_"):
            continue
        if "layer" in name and isinstance(value, dict) and value:
            kept = {k: v for k, v in value.items() if str(k).isdigit() and int(k) < LAYERS}
            if len(kept) < len(value) and all(str(k).isdigit() for k in value):
                out[name] = kept  # per-layer settings keyed by layer index
                continue
        if isinstance(value, dict) and value and all(isinstance(k, str) for k in value):
            sub = {**value, **_overrides(value, id_map)}
            if "model_type" in value:
                for k in _DERIVED:
                    sub.pop(k, None)
            if sub != value:
                out[name] = sub
            continue
        if name == "mrope_section" and isinstance(value, list) and value:
            out[name] = _mrope(value)
            continue
        if _is_id(name, value):
            if value in id_map:
                out[name] = id_map[value]
            continue
        if _TOKEN_ID.search(name) and isinstance(value, list | tuple):
            if any(v in id_map for v in value):
                out[name] = [id_map.get(v, v) for v in value]
            continue
        if (
            value is None
            and _TOP_K_NAMES.match(name)
            and any(_EXPERT_NAMES.match(k) for k in values)
        ):
            out[name] = 2  # some defaults leave the router's k unset
            continue
        new = _shrunk_value(name, value, old_layers)
        if new is not None and new != value:
            out[name] = new
    return out


def tiny_config(model_type: str):
    """The default config of ``model_type`` with every size-like field made tiny."""
    from transformers import CONFIG_MAPPING

    cls = CONFIG_MAPPING[model_type]
    default = cls()
    values = default.to_dict()
    large = sorted(_large_ids(values, set()))
    id_map = {v: VOCAB - 1 - i for i, v in enumerate(large)}
    over = _overrides(values, id_map)
    try:
        return cls(**over)
    except TypeError:
        # a config that takes sub-configs only as objects
        sub = {k: v for k, v in over.items() if not isinstance(v, dict)}
        config = cls(**sub)
        for k, v in over.items():
            if isinstance(v, dict):
                setattr(config, k, type(getattr(default, k))(**v))
        return config


def build(model_type: str) -> nn.Module:
    """A tiny ``AutoModel`` of ``model_type`` with seeded random weights, in eval mode."""
    from transformers import AutoModel

    config = tiny_config(model_type)
    torch.manual_seed(0)
    with _quiet():
        model = AutoModel.from_config(config)
    return model.eval()


@contextlib.contextmanager
def _quiet():
    from transformers.utils import logging

    level = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.set_verbosity(level)


# -- blocks, defined without explorer ----------------------------------------------------------


@dataclass(frozen=True)
class Block:
    stack: str  # module name of the ModuleList/Sequential
    index: int  # position in the stack
    prefix: str  # module name of the block: parameter names start with prefix + "."


def find_blocks(model: nn.Module) -> list[Block]:
    """The model's blocks: children of the outermost stacks of :data:`LAYERS` blocks.

    A block holds two or more weight matrices (a list of single layers is an MLP head or a set
    of per-scale projections). The blocks of a stack of :data:`LAYERS` may differ in class: a
    hybrid model's layer list (attention and linear-attention or state-space layers). A model
    with no such stack (layers shared, or stacks whose length the config does not set) falls back
    to the outermost stacks of two or more same-class blocks, and then to lists of single layers
    (MobileNet-V1's convolutions).
    """
    stacks = (
        _stacks(model, lambda n: n == LAYERS, mixed=True)
        or _stacks(model, lambda n: n >= 2)
        or _stacks(model, lambda n: n >= 2, matrices=1)
    )
    return [
        Block(stack, i, f"{stack}.{i}" if stack else str(i))
        for stack, n in stacks
        for i in range(n)
    ]


def _stacks(
    model: nn.Module, length_ok, mixed: bool = False, matrices: int = 2
) -> list[tuple[str, int]]:
    stacks: list[tuple[str, int]] = []
    for name, module in model.named_modules():
        if not _block_list(module, mixed, matrices) or not length_ok(len(module)):
            continue  # a list of single layers (an MLP head, per-scale projections) is no stack
        if all(_holds_stack(c) for c in module):
            continue  # a list of stages (CvT's 3 stages of 3 blocks): their blocks are the blocks
        if any(name.startswith(s + ".") for s, _ in stacks):
            continue
        stacks.append((name, len(module)))
    return stacks


def _matrices(module: nn.Module) -> int:
    """How many weight matrices (parameters with two or more axes) ``module`` holds."""
    return sum(p.ndim >= 2 for p in module.parameters())


def _block_list(module: nn.Module, mixed: bool = False, matrices: int = 2) -> bool:
    """Is ``module`` a ModuleList/Sequential of children of one class (any classes if ``mixed``)
    that hold ``matrices`` or more weight matrices each?"""
    return (
        isinstance(module, nn.ModuleList | nn.Sequential)
        and (mixed or len({type(c) for c in module}) == 1)
        and all(_matrices(c) >= matrices for c in module)
    )


def zip_interleaved(blocks: list[Block], ran: list[Block]) -> list[Block]:
    """Sibling stacks of one length whose blocks the forward calls in turn (XLM's ``attentions.i``
    then ``ffns.i``, then ``attentions.i+1``) are one stack: index ``i`` of each is one block.

    ``ran`` is the order in which the model's own forward called the blocks (each call once).
    """
    stacks = list(dict.fromkeys(b.stack for b in blocks))
    members = {s: [b for b in blocks if b.stack == s] for s in stacks}
    first = {}
    for n, b in enumerate(ran):
        first.setdefault(b, n)
    into: dict[str, str] = {}
    for i, a in enumerate(stacks):
        for b in stacks[i + 1 :]:
            if a in into or b in into or a.rpartition(".")[0] != b.rpartition(".")[0]:
                continue
            xs, ys = members[a], members[b]
            if len(xs) != len(ys) or not all(x in first for x in xs + ys):
                continue
            calls = [first[x] for pair in zip(xs, ys, strict=True) for x in pair]
            if calls == sorted(calls):
                into[b] = a
    return [Block(into.get(b.stack, b.stack), b.index, b.prefix) for b in blocks]


def _holds_stack(module: nn.Module) -> bool:
    """Is ``module`` a stage: a list of :data:`LAYERS` same-class blocks holding at least 3/4 of
    its weight matrices (plus perhaps a downsampling layer)?"""
    total = _matrices(module)
    return any(
        _block_list(m) and len(m) == LAYERS and _matrices(m) >= 0.75 * total
        for m in list(module.modules())[1:]
    )


def _in_block(name: str, blocks: Iterable[Block]) -> Block | None:
    for b in blocks:
        if name.startswith(b.prefix + "."):
            return b
    return None


# -- the checks ---------------------------------------------------------------------------------


def takes_input_ids(model: nn.Module) -> bool:
    try:
        return "input_ids" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def check(model_type: str, *, capture: bool = True) -> Result:
    """Build ``model_type`` tiny and run every check on it (see the module docstring)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    start, cpu = time.perf_counter(), time.process_time()
    result = Result(model_type, model_class=str(MODEL_MAPPING_NAMES.get(model_type, "")))
    with _time_limit(TIME_LIMIT):
        try:
            model = build(model_type)
        except Exception as exc:  # noqa: BLE001 - any failure to instantiate is recorded
            result.reason = _one_line(exc)
            result.seconds = time.perf_counter() - start
            result.cpu_seconds = time.process_time() - cpu
            return result
        result.instantiated = True
        try:
            _check_model(model, result, capture=capture)
        except _TimeUp:
            for name in CHECKS:
                result.checks.setdefault(name, (False, f"checks took over {TIME_LIMIT} s"))
        finally:
            result.seconds = time.perf_counter() - start
            result.cpu_seconds = time.process_time() - cpu
    return result


class _TimeUp(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: int):
    """Raise :class:`_TimeUp` in the block after ``seconds`` (main thread; no-op elsewhere)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def up(_signum, _frame):
        raise _TimeUp(f"over {seconds} s")

    old = signal.signal(signal.SIGALRM, up)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _check_model(model: nn.Module, result: Result, *, capture: bool) -> None:
    import explorer as ex

    blocks = find_blocks(model)
    result.takes_ids = takes_input_ids(model)
    own, ran = "", []
    if result.takes_ids and capture and blocks:
        own, ran = _own_forward(model, blocks)
        blocks = zip_interleaved(blocks, ran)
    result.n_blocks = len({(b.stack, b.index) for b in blocks})
    result.n_stacks = len({b.stack for b in blocks})
    try:
        with _quiet():
            ck = ex.load(model)
        table = ck.layers
    except Exception as exc:  # noqa: BLE001
        why = f"ex.load failed: {_one_line(exc)}"
        for name in CHECKS:
            result.checks[name] = (False, why)
        return
    rows = list(zip(table["name"], table["depth"], table["role"], strict=True))
    if not blocks:
        why = f"no stack of {LAYERS} blocks in the module (the sweep cannot tell)"
        result.checks["one_depth"] = (False, why)
    else:
        depth_of = _block_depths(rows, blocks)
        result.checks["one_depth"] = _check_one_depth(depth_of)
        result.checks["increasing"] = _check_increasing(depth_of, blocks)
        result.checks["roles"] = _check_roles(rows, blocks, result)
    result.checks["covered"] = _check_covered(model, {name for name, _, _ in rows})
    if result.takes_ids and capture and blocks:
        if own:
            result.capture_note = f"the model's own forward fails here: {own}"
        elif ran:
            result.checks["capture"] = _check_capture(
                ck, model, [b for b in blocks if b.prefix in {r.prefix for r in ran}], rows
            )
        else:
            result.capture_note = "the model's own forward on token ids runs none of its blocks"


def _block_depths(rows, blocks) -> dict[Block, set[int]]:
    depth_of: dict[Block, set[int]] = {b: set() for b in blocks}
    for name, depth, _ in rows:
        b = _in_block(name, blocks)
        if b is not None:
            depth_of[b].add(int(depth))
    return depth_of


def _check_one_depth(depth_of) -> tuple[bool, str]:
    bad = {b.prefix: sorted(d) for b, d in depth_of.items() if len(d) != 1}
    if not bad:
        return True, ""
    first = next(iter(bad.items()))
    return (
        False,
        f"{len(bad)} of {len(depth_of)} blocks span != 1 depth (e.g. {first[0]}: {first[1]})",
    )


def _check_increasing(depth_of, blocks) -> tuple[bool, str]:
    one = {b: min(d) for b, d in depth_of.items() if len(d) == 1}
    if len(one) != len(blocks):
        return False, "not every block has one depth"
    for stack in dict.fromkeys(b.stack for b in blocks):
        by_index: dict[int, set[int]] = {}
        for b in blocks:
            if b.stack == stack:
                by_index.setdefault(b.index, set()).add(one[b])
        if any(len(d) != 1 for d in by_index.values()):
            return False, f"{stack}: the lists of one block have different depths"
        seq = [min(by_index[i]) for i in sorted(by_index)]
        if any(a >= b for a, b in zip(seq, seq[1:], strict=False)):
            return False, f"{stack}: block depths {seq} do not increase"
    by_depth: dict[int, set[str]] = {}
    for b, d in one.items():
        by_depth.setdefault(d, set()).add(b.stack)
    shared = {d: s for d, s in by_depth.items() if len(s) > 1}
    if shared:
        d, s = next(iter(shared.items()))
        return False, f"stacks {sorted(s)} share depth {d}"
    return True, ""


def _check_roles(rows, blocks, result: Result) -> tuple[bool, str]:
    roles = [role for name, _, role in rows if _in_block(name, blocks) is not None]
    if not roles:
        result.role_fraction = 0.0
        return False, "no matrices of the blocks in the table"
    named = sum(r != "other" for r in roles)
    result.role_fraction = named / len(roles)
    if result.role_fraction >= ROLE_TARGET:
        return True, ""
    others = sorted(
        {
            _strip(name, blocks)
            for name, _, role in rows
            if role == "other" and _in_block(name, blocks)
        }
    )
    return False, f"{named}/{len(roles)} block matrices named; 'other': {', '.join(others[:4])}"


def _strip(name: str, blocks) -> str:
    b = _in_block(name, blocks)
    return name[len(b.prefix) + 1 :] if b else name


def _check_covered(model: nn.Module, names: set[str]) -> tuple[bool, str]:
    groups: dict[int, list[str]] = {}
    for name, t in model.state_dict(keep_vars=True).items():
        if t.ndim >= 2 and t.is_floating_point() and t.numel() > 0:  # (1, 0, d): no registers
            groups.setdefault(id(t), []).append(name)
    missing = [g[0] for g in groups.values() if not names.intersection(g)]
    if not missing:
        return True, ""
    return False, f"{len(missing)} of {len(groups)} matrices missing (e.g. {missing[0]})"


def _probe_ids(model: nn.Module) -> torch.Tensor:
    vocab = getattr(model.config, "vocab_size", None) or VOCAB
    gen = torch.Generator().manual_seed(0)
    return torch.randint(3, min(int(vocab), PROBE_VOCAB), (N_PROBE, SEQ), generator=gen)


def _own_forward(model: nn.Module, blocks=()) -> tuple[str, list]:
    """Run the model on the probe ids the way transformers documents it: ('' when it works, or
    why not; the blocks among ``blocks`` that its forward ran, in call order, seen by hooks)."""
    ids = _probe_ids(model)
    kwargs = {"input_ids": ids}
    if getattr(model.config, "is_encoder_decoder", False):
        kwargs["decoder_input_ids"] = ids
    ran: list = []
    hooks = [
        model.get_submodule(b.prefix).register_forward_hook(lambda *_, b=b: ran.append(b))
        for b in blocks
    ]
    try:
        with torch.no_grad(), _quiet():
            model(**kwargs)
    except Exception as exc:  # noqa: BLE001
        return _one_line(exc), ran
    finally:
        for h in hooks:
            h.remove()
    return "", ran


def _check_capture(ck, model: nn.Module, blocks, rows) -> tuple[bool, str]:
    """Every block that the model's own forward runs on token ids (a vision tower of a
    vision-language model does not) has a hidden state of the model's width at its depth."""
    import explorer as ex

    ids = _probe_ids(model)
    try:
        with _quiet():
            acts = ex.capture(ck, ids, device="cpu", progress=False, max_bytes=None)
    except Exception as exc:  # noqa: BLE001
        return False, _one_line(exc)
    depth_of = _block_depths(rows, blocks)
    depths = sorted({min(depth_of[b]) for b in blocks if depth_of.get(b)})
    missing = [d for d in depths if d not in acts.depths]
    if missing:
        return False, f"no hidden state at block depths {missing[:4]}"
    wrong = {d: tuple(acts[d].shape) for d in depths if acts[d].shape != (N_PROBE, WIDTH)}
    if wrong:
        d, shape = next(iter(wrong.items()))
        return False, f"{len(wrong)} block depths not ({N_PROBE}, {WIDTH}) (depth {d}: {shape})"
    return True, ""


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    msg = text[0] if text else ""
    # no machine's paths in the doc: '/any/where/site-packages/x' -> 'site-packages/x'
    msg = re.sub(r"/[^\s'\"]*/site-packages/", "site-packages/", msg)
    return f"{type(exc).__name__}: {msg[:200]}"


# -- the whole sweep ----------------------------------------------------------------------------


def sweep(types: Iterable[str] | None = None, *, workers: int = 1) -> list[Result]:
    """:func:`check` for every type (default :func:`model_types`), in ``workers`` processes."""
    types = list(types) if types is not None else model_types()
    if workers <= 1:
        return [check(t) for t in types]
    import multiprocessing as mp

    # forkserver, not fork: a plain fork of a test process that already runs threads (a browser
    # test's event loop, torch's pools) can copy a held lock and hang the workers for good. The
    # server is a fresh single-threaded process that imports torch/transformers/explorer once, and
    # each worker forks from it; a fresh worker every 40 types keeps the memory of hundreds of
    # model classes from piling up
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "transformers", "explorer", __name__])
    with ctx.Pool(workers, maxtasksperchild=40) as pool:
        return pool.map(check, types, chunksize=1)


# -- docs/architectures.md ----------------------------------------------------------------------

DOC_HEADER = "# Architectures: what explorer makes of every transformers model type"
_TABLE_HEAD = (
    "| model type | AutoModel class | blocks (stacks) | roles named | capture | passes | why not |"
)


def row(r: Result) -> str:
    """The table row of one instantiated type (the test compares it with the checked-in doc)."""
    blocks = f"{r.n_blocks} ({r.n_stacks})" if r.n_blocks else "none found"
    roles = f"{100 * r.role_fraction:.0f} %" if r.role_fraction is not None else "-"
    if "capture" in r.checks:
        capture = "yes" if r.checks["capture"][0] else "no"
    elif r.capture_note:
        capture = "n/a (its own forward fails)"
    else:
        capture = "n/a (no input_ids)"
    why = "; ".join(r.failures + ([r.capture_note] if r.capture_note else []))
    cells = [
        f"`{r.model_type}`",
        r.model_class,
        blocks,
        roles,
        capture,
        "yes" if r.passed else "no",
    ]
    return "| " + " | ".join(_cell(c) for c in [*cells, why]) + " |"


def not_built_row(r: Result) -> str:
    return f"| `{r.model_type}` | {_cell(r.model_class)} | {_cell(r.reason)} |"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def summary(results: list[Result]) -> tuple[int, int, int]:
    """(types, instantiated, passing every check)."""
    built = [r for r in results if r.instantiated]
    return len(results), len(built), sum(r.passed for r in built)


def render(results: list[Result], versions: str) -> str:
    """The whole of docs/architectures.md for these results."""
    n, m, k = summary(results)
    built = [r for r in results if r.instantiated]
    failing = {name: sum(not r.checks.get(name, (True, ""))[0] for r in built) for name in CHECKS}
    lines = [
        DOC_HEADER,
        "",
        "Generated by `python scripts/architectures.py` from the sweep in",
        "`tests/integration/architectures.py`; `tests/integration/test_architectures.py` checks",
        f"that every row still holds. Measured with {versions}.",
        "",
        "Every model type of the installed transformers that has an AutoModel class is built at a",
        f"tiny size (width {WIDTH}, {LAYERS} blocks per stack, {HEADS} heads, feed-forward {FFN}, "
        f"vocabulary {VOCAB}, {EXPERTS} experts) with random weights and opened with `ex.load`.",
        "The blocks are found from the module structure alone (the stacks of "
        f"{LAYERS} children that hold two or more weight matrices each, of one class or, in a "
        "hybrid model's layer list, of several; sibling lists that the forward calls in turn "
        "are one stack), and checked:",
        "each block's matrices share one depth; depth increases with the block index and stacks do",
        "not share depths; every non-empty parameter with two or more axes is in `ck.layers`; at least",
        f"{ROLE_TARGET:.0%} of block matrices have a named role (not `other`); for models that take",
        f"`input_ids`, `ex.capture` on {N_PROBE} x {SEQ} token ids gives a hidden state of width "
        f"{WIDTH} at the depth of every block its own forward runs on those ids (a",
        "vision-language model's vision tower does not run on token ids).",
        "",
        f"**{n} types, {m} instantiate here, {k} pass every check = "
        f"{100 * k / max(m, 1):.1f} % of those that instantiate.**",
        "",
        "Types failing each check: "
        + ", ".join(f"{name} {count}" for name, count in failing.items())
        + ".",
        "",
        "## Every type that instantiates",
        "",
        _TABLE_HEAD,
        "|---|---|---|---|---|---|---|",
        *(row(r) for r in built),
        "",
        "## Types that do not instantiate here",
        "",
        "Their tiny config or their model could not be built in this environment (a missing",
        "optional library, a config that rejects the tiny sizes); they are not counted above.",
        "",
        "| model type | AutoModel class | reason |",
        "|---|---|---|",
        *(not_built_row(r) for r in results if not r.instantiated),
        "",
    ]
    return "\n".join(lines)


def doc_rows(text: str) -> dict[str, str]:
    """Model type -> its row, for every row of either table in a rendered doc."""
    rows = {}
    for line in text.splitlines():
        m = re.match(r"\| `([^`]+)` \|", line)
        if m:
            rows[m.group(1)] = line
    return rows


def versions() -> str:
    import transformers

    return f"transformers {transformers.__version__}, torch {torch.__version__}"
