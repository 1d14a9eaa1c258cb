"""The layer table: every weight matrix of a checkpoint at ``blocks.{depth}.{role}[.{variant}]``.

The depth axis comes from the model's structure (:mod:`explorer.sources.structure`): depth 0
holds the embeddings (of every stack), depths 1..L the blocks (several stacks, such as an encoder
and a decoder, one after the other in forward order, each row naming its ``stack``), and L+1 the
head: every matrix outside the blocks that is not embedding-like. Roles come from a vocabulary of
parameter names (:mod:`explorer.sources.roles`); matrices are built by the transforms of
:mod:`explorer.sources.matrices`.

Two things structure cannot tell are decided here:

- *orientation*: a block's attention and MLP matrices read the model's width ``d`` (the size
  most of them share). A matrix whose role reads ``d`` (q, k, v, up, gate) but stores it as rows,
  or writes ``d`` (o, down) but stores it as columns, is transposed; square ones follow the
  majority of their stack (GPT-2's Conv1D stores every matrix as (in, out)).
- *fused layouts* (:data:`INTERLEAVED`, :func:`qkv_parts`): most fused q/k/v projections stack
  [q; k; v] (GPT-2, torch's ``in_proj_weight``, Phi-3 with fewer k/v heads), but GPT-NeoX,
  Bloom, Persimmon and DeBERTa store q, k and v head after head, and Falcon has its own two
  layouts. A head-interleaved fused matrix is split only when the config gives the head count;
  otherwise it stays whole, as ``attn.qkv``. Fused [gate; up] (Phi-3, Mixtral's experts) splits
  in halves, gate first.

In a mixture of experts, each expert's matrices sit at its block's depth with the expert's index
as variant (``blocks.3.mlp.up.5``). Several matrices with one address get ``.1``, ``.2``, ... in
name order. Rows are sorted by depth, role, variant and name (numbers compared as numbers), never
by storage order, so a module, a torch file and a safetensors file give the same table.

A model without blocks (a plain MLP, an ``nn.Sequential`` of single layers) falls back to module
order (family ``sequential``, or ``mlp`` for a chain of Linear layers): every weight is a block of
its own, and the last matrix is the ``head``.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, field

from explorer.sources.matrices import apply_transforms, effective_ndim, matrix_shape, rows
from explorer.sources.roles import (
    Named,
    block_role,
    embed_role,
    head_role,
    is_embedding,
    is_expert_tensor,
)
from explorer.sources.structure import Structure, find_structure, natural_key

__all__ = ["ROLES", "LayerEntry", "Layout", "apply_transforms", "parse_address", "resolve"]

ROLES = (
    "embed",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.o",
    "attn.qkv",
    "attn.kv",
    "attn.gate",
    "attn.pos",
    "mlp.up",
    "mlp.gate",
    "mlp.down",
    "mlp.gate_up",
    "mlp.router",
    "ssm.in",
    "ssm.x",
    "ssm.dt",
    "ssm.a",
    "ssm.out",
    "ssm.gate",
    "mix",
    "norm",
    "act",
    "conv",
    "head",
    "other",
)

_READS_WIDTH = {"attn.q", "attn.k", "attn.v", "attn.qkv", "mlp.up", "mlp.gate", "mlp.gate_up"}
_WRITES_WIDTH = {"attn.o", "mlp.down"}


@dataclass(frozen=True)
class Family:
    """A well-known family, recognised by ``model_type`` or a marker name (a label only)."""

    name: str
    model_types: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()


FAMILIES: tuple[Family, ...] = (
    Family("bert", ("bert", "roberta", "xlm-roberta", "electra"), (r"attention\.self\.query\.",)),
    Family("gpt2", ("gpt2",), (r"(?:^|\.)h\.\d+\.attn\.c_attn\.weight$",)),
    Family("llama", ("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo")),
    Family(
        "vit",
        ("vit", "deit", "dinov2"),
        (r"attention\.attention\.query\.weight$", r"(?:^|\.)layers\.\d+\.attention\.q_proj\."),
    ),
    Family("resnet", ("resnet",), (r"encoder\.stages\.\d+\.layers\.\d+\.",)),
    Family("resnet-torchvision", (), (r"^layer1\.0\.conv1\.weight$",)),
    Family("llama", (), (r"layers\.\d+\.self_attn\.q_proj\.weight$",)),
)

# Model types whose fused q/k/v projection holds [q_h; k_h; v_h] for each head h in turn.
INTERLEAVED = ("gpt_neox", "gpt_neox_japanese", "bloom", "persimmon", "deberta")


@dataclass(frozen=True)
class LayerEntry:
    """One analysed weight matrix: where it sits on the depth axis and how to build it."""

    address: str
    depth: int
    role: str
    name: str  # the original parameter name
    shape: tuple[int, int]  # the analysed (out, in) matrix shape
    stored_shape: tuple[int, ...]
    dtype: str
    transforms: tuple[str, ...] = field(default=())
    stack: str = ""

    @property
    def params(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Layout:
    """A resolved checkpoint: its family label, weight matrices, and blocks (depth 1..L)."""

    family_name: str
    entries: tuple[LayerEntry, ...]
    n_blocks: int
    structure: Structure | None = None


def family_label(names: list[str], model_type: str | None) -> str | None:
    """The well-known family a checkpoint belongs to (by ``model_type``, then by names)."""
    if model_type:
        for fam in FAMILIES:
            if model_type in fam.model_types:
                return fam.name
    for fam in FAMILIES:
        if any(re.search(m, n) for m in fam.markers for n in names):
            return fam.name
    return None


def _config_int(config: dict, *keys: str) -> int | None:
    for key in keys:
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def qkv_parts(
    n_rows: int, width: int, model_type: str | None, config: dict | None
) -> list[str] | None:
    """The three ``rows`` transforms (q, k, v) of a fused projection, or None if unknown."""
    config = config or {}
    heads = _config_int(config, "num_attention_heads", "n_head", "num_heads", "n_heads")
    kv = _config_int(config, "num_key_value_heads", "num_kv_heads", "n_head_kv")
    if model_type == "falcon" and heads:
        if config.get("new_decoder_architecture") and kv and heads % kv == 0:
            per = heads // kv  # groups of [q_1..q_per, k, v]
            if n_rows % (kv * (per + 2)):
                return None
            hd = n_rows // (kv * (per + 2))
            period = (per + 2) * hd
            return [rows(kv, period, 0, per * hd), rows(kv, period, per * hd, hd)] + [
                rows(kv, period, (per + 1) * hd, hd)
            ]
        if config.get("multi_query", True):
            if n_rows % (heads + 2):
                return None
            hd = n_rows // (heads + 2)
            return [rows(1, n_rows, 0, heads * hd), rows(1, n_rows, heads * hd, hd)] + [
                rows(1, n_rows, (heads + 1) * hd, hd)
            ]
    interleaved = model_type in INTERLEAVED or model_type == "falcon"
    interleaved |= model_type == "gpt_bigcode" and not config.get("multi_query", True)
    if interleaved:
        if not heads or n_rows % (3 * heads):
            return None
        hd = n_rows // (3 * heads)
        return [rows(heads, 3 * hd, i * hd, hd) for i in range(3)]
    head_dim = _config_int(config, "head_dim")
    q_rows = heads * head_dim if heads and head_dim else width
    if not 0 < q_rows < n_rows or (n_rows - q_rows) % 2:
        if n_rows % 3:
            return None
        q_rows = n_rows // 3
    kv_rows = (n_rows - q_rows) // 2
    return [rows(1, n_rows, 0, q_rows), rows(1, n_rows, q_rows, kv_rows)] + [
        rows(1, n_rows, q_rows + kv_rows, kv_rows)
    ]


@dataclass
class _Planned:
    name: str
    depth: int
    stack: str
    named: Named
    experts: int  # > 0: an (experts, out, in) tensor


def resolve(
    names: list[str],
    shapes: dict[str, tuple[int, ...]],
    dtypes: dict[str, str],
    model_type: str | None = None,
    config: dict | None = None,
) -> Layout:
    """Give every matrix-shaped parameter its address. Never fails: see the module docstring."""
    matrices = [n for n in names if matrix_shape(shapes[n], ()) is not None]
    structure = find_structure(matrices)
    if structure.n_blocks == 0:
        return _resolve_in_module_order(names, shapes, dtypes)
    n_blocks = structure.n_blocks
    stack_of_depth = {structure.depth_of[b]: s.name for s in structure.stacks for b in s.blocks}
    several = len(structure.stacks) > 1

    located = {n: structure.locate(n) for n in matrices}
    siblings: dict[str, set[str]] = {}
    for loc in located.values():
        if loc is not None:
            siblings.setdefault(loc[1], set()).add(loc[2])

    plan: list[_Planned] = []
    for name in matrices:
        ndim = effective_ndim(shapes[name])
        loc = located[name]
        if loc is not None:
            depth, path, rest = loc
            expert = is_expert_tensor(rest, len(shapes[name]))
            named = block_role(rest, siblings[path], 2 if expert else ndim)
            experts = shapes[name][0] if expert else 0
            plan.append(_Planned(name, depth, stack_of_depth[depth], named, experts))
            continue
        stack = structure.stack_of(name)
        stack_name = stack.name if stack is not None and several else ""
        if ndim > 2 or is_embedding(name):
            depth, named = 0, embed_role(name, ndim)
        else:
            depth, named = n_blocks + 1, head_role(name)
        if stack_name:
            variant = f"{stack_name}.{named.variant}" if named.variant else stack_name
            named = Named(named.role, variant, named.fused)
        plan.append(_Planned(name, depth, stack_name, named, 0))

    transposed = _orientation(plan, shapes)
    kernels = Counter(p.depth for p in plan if p.named.role == "conv" and p.depth)
    entries: list[LayerEntry] = []
    for p in plan:
        experts = range(p.experts) if p.experts else [None]
        for j in experts:
            base: tuple[str, ...] = (f"e{j}",) if j is not None else ()
            variant = p.named.variant if j is None else str(j)
            if p.named.role == "conv" and kernels[p.depth] > 1 and not variant:
                variant = _conv_variant(p.name)
            if p.name in transposed:
                base += ("T",)
            entries += _split(p, base, variant, shapes, dtypes, model_type, config)

    entries.sort(key=_canonical_order)
    label = family_label(matrices, model_type) or model_type or "blocks"
    return Layout(label, _unique(entries), n_blocks, structure)


def _orientation(plan: list[_Planned], shapes) -> set[str]:
    """Names of block matrices stored as (in, out) (see the module docstring)."""
    out: set[str] = set()
    for stack in {p.stack for p in plan if 1 <= p.depth}:
        members = [
            p
            for p in plan
            if p.stack == stack
            and p.depth >= 1
            and p.named.role in _READS_WIDTH | _WRITES_WIDTH
            and len(shapes[p.name]) - (1 if p.experts else 0) == 2
        ]
        dims = Counter(d for p in members for d in shapes[p.name][-2:])
        if not dims:
            continue
        width = dims.most_common(1)[0][0]
        votes: dict[str, bool] = {}
        for p in members:
            rows_, cols = shapes[p.name][-2:]
            reads = p.named.role in _READS_WIDTH
            if (cols if reads else rows_) == width and (rows_ if reads else cols) != width:
                votes[p.name] = False
            elif (rows_ if reads else cols) == width and (cols if reads else rows_) != width:
                votes[p.name] = True
        flipped = sum(votes.values()) > len(votes) / 2
        for p in members:
            if votes.get(p.name, flipped):
                out.add(p.name)
    return out


def _conv_variant(name: str) -> str:
    """Which of a block's several kernels: ``shortcut``, or the number in its name."""
    low = name.lower()
    if re.search(r"shortcut|downsample|residual", low):
        return "shortcut"
    parts = low.split(".")
    digits = [re.search(r"(\d+)$", p).group(1) for p in parts[-3:] if re.search(r"\d+$", p)]
    return digits[-1] if digits else ""


def _split(p: _Planned, base, variant, shapes, dtypes, model_type, config) -> list[LayerEntry]:
    """One entry, or the parts of a fused matrix (kept whole when its layout is unknown)."""
    shape = matrix_shape(shapes[p.name], base)
    role = p.named.role
    parts: list[tuple[str, tuple[str, ...]]] = [(role, base)]
    if p.named.fused == "qkv" and shape is not None:
        split = qkv_parts(shape[0], shape[1], model_type, config)
        if split is not None:
            parts = [(f"attn.{r}", (*base, t)) for r, t in zip("qkv", split, strict=True)]
    elif p.named.fused == "gate_up" and shape is not None and shape[0] % 2 == 0:
        half = shape[0] // 2
        parts = [
            ("mlp.gate", (*base, rows(1, shape[0], 0, half))),
            ("mlp.up", (*base, rows(1, shape[0], half, half))),
        ]
    out = []
    for role, transforms in parts:
        mshape = matrix_shape(shapes[p.name], transforms)
        if mshape is None:
            continue
        out.append(
            _entry(p.depth, role, variant, p.name, mshape, shapes, dtypes, transforms, p.stack)
        )
    return out


def _canonical_order(e: LayerEntry) -> tuple:
    _, role = parse_address(e.address)
    variant = role[len(e.role) + 1 :] if role.startswith(e.role + ".") else ""
    return (e.depth, _role_rank(e.role), natural_key(variant), natural_key(e.name), e.transforms)


def _resolve_in_module_order(
    names: list[str], shapes: dict[str, tuple[int, ...]], dtypes: dict[str, str]
) -> Layout:
    """Plain MLPs (a chain of 2-D weights) and unknown models: one block per weight, in order.

    A plain MLP's hidden Linear layers get role ``mlp.up``; the last matrix is the ``head`` at
    depth L+1. Unknown models get ``conv`` for kernels and ``other`` for everything else.
    """
    weights = [n for n in names if matrix_shape(shapes[n], ()) is not None]
    if not weights:
        return Layout("empty", (), 0)
    plain_mlp = all(len(shapes[n]) == 2 for n in weights) and all(
        shapes[b][1] == shapes[a][0] for a, b in zip(weights, weights[1:], strict=False)
    )
    body, head = weights[:-1], weights[-1]
    entries = []
    for i, name in enumerate(body):
        if plain_mlp:
            role = "mlp.up"
        elif len(shapes[name]) > 2:
            role = "conv"
        else:
            role = "other"
        shape = matrix_shape(shapes[name], ())
        entries.append(_entry(i + 1, role, "", name, shape, shapes, dtypes, ()))
    shape = matrix_shape(shapes[head], ())
    entries.append(_entry(len(body) + 1, "head", "", head, shape, shapes, dtypes, ()))
    return Layout("mlp" if plain_mlp else "sequential", tuple(entries), len(body))


def _role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else len(ROLES)


def _entry(depth, role, variant, name, shape, shapes, dtypes, transforms, stack="") -> LayerEntry:
    address = f"blocks.{depth}.{role}" + (f".{variant}" if variant else "")
    return LayerEntry(
        address=address,
        depth=depth,
        role=role,
        name=name,
        shape=tuple(shape),
        stored_shape=tuple(shapes[name]),
        dtype=dtypes[name],
        transforms=tuple(transforms),
        stack=stack,
    )


def _unique(entries: list[LayerEntry]) -> tuple[LayerEntry, ...]:
    """Addresses must be unique: a repeated one gets ``.1``, ``.2``, ... in parameter order."""
    seen: dict[str, int] = {}
    out = []
    for e in entries:
        n = seen.get(e.address, 0)
        seen[e.address] = n + 1
        if n:
            e = LayerEntry(
                f"{e.address}.{n}",
                e.depth,
                e.role,
                e.name,
                e.shape,
                e.stored_shape,
                e.dtype,
                e.transforms,
                e.stack,
            )
        out.append(e)
    return tuple(out)


def parse_address(address: str) -> tuple[int, str]:
    """``"blocks.3.attn.q"`` -> ``(3, "attn.q")``; ``"blocks.3"`` -> ``(3, "")``."""
    m = re.fullmatch(r"blocks\.(\d+)(?:\.(.+))?", address)
    if not m:
        raise ValueError(
            f"{address!r} is not a layer address; addresses look like 'blocks.3.attn.q' "
            "(weights) or 'blocks.3' (hidden states)"
        )
    return int(m.group(1)), m.group(2) or ""
