"""The naming rules: how each architecture family's parameter names map onto ``blocks.{i}.{role}``.

One table (:data:`FAMILIES`) holds every family, like nnsight's rename map. A rule is a regular
expression on the original parameter name; its named groups ``b0``, ``b1``, ... form the block key
(``encoder.layer.3`` has key ``(3,)``, a ResNet's ``stages.1.layers.2`` has ``(1, 2)``) and blocks
are numbered 1..L in the order of their keys. Rules without block groups sit at depth 0
(embeddings, stems) or at depth L+1 (heads). Depth 0 = embeddings, 1..L = blocks, L+1 = head.

Transforms turn the stored tensor into the (out, in) matrix that is analysed:
``T`` transposes (GPT-2's Conv1D stores (in, out)); ``qkv0``/``qkv1``/``qkv2`` take the q, k or v
third of a fused projection along the output axis; tensors with more than two axes are reshaped to
(out, in * k * k) (convolutions) after leading singleton axes are squeezed (ViT's position table).

In a recognised family, a matrix no rule names gets role ``other``: in its block if its name lies
inside one, at depth 0 if it looks like an embedding, else with the head. Rows are sorted by depth,
role, variant and name (numbers compared as numbers), never by storage order, so a module, a torch
file and a safetensors file of the same model give the same table.

An unknown model falls back to module order (family ``sequential``, or ``mlp`` for a chain of
Linear layers): every weight is a block of its own, role ``conv`` for kernels and ``other`` (or
``mlp.up``) for the rest, and the last matrix is the ``head``. Its order is the store's order, so
a safetensors file (which keeps no module order) is read in natural name order.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

ROLES = (
    "embed",
    "attn.q",
    "attn.k",
    "attn.v",
    "attn.o",
    "mlp.up",
    "mlp.gate",
    "mlp.down",
    "conv",
    "head",
    "other",
)


@dataclass(frozen=True)
class Rule:
    """One naming rule: ``pattern`` (regex searched at the end of the name) -> role at a position."""

    pattern: str
    role: str
    position: str = "block"  # "embed" (depth 0), "block" (1..L, from groups b0, b1...), "head"
    variant: str = ""  # appended to the role, may use other named groups: "{j}" or "position"
    transforms: tuple[str, ...] = ("",)  # one matrix per transform (fused qkv gives three)


@dataclass(frozen=True)
class Family:
    """An architecture family: how to recognise it, its rules, and where its hidden states are.

    ``block_module`` matches the module names whose outputs are the block hidden states (same
    groups as the rules); ``head_modules`` are tried in order for the depth L+1 hidden state.
    """

    name: str
    rules: tuple[Rule, ...]
    markers: tuple[str, ...] = ()
    model_types: tuple[str, ...] = ()
    block_module: str = ""
    head_modules: tuple[str, ...] = ()


BERT = Family(
    name="bert",
    model_types=("bert", "roberta", "xlm-roberta", "electra"),
    markers=(r"encoder\.layer\.\d+\.attention\.self\.query\.weight$",),
    rules=(
        Rule(r"embeddings\.word_embeddings\.weight$", "embed", "embed"),
        Rule(r"embeddings\.position_embeddings\.weight$", "embed", "embed", "position"),
        Rule(r"embeddings\.token_type_embeddings\.weight$", "embed", "embed", "token_type"),
        Rule(r"encoder\.layer\.(?P<b0>\d+)\.attention\.self\.query\.weight$", "attn.q"),
        Rule(r"encoder\.layer\.(?P<b0>\d+)\.attention\.self\.key\.weight$", "attn.k"),
        Rule(r"encoder\.layer\.(?P<b0>\d+)\.attention\.self\.value\.weight$", "attn.v"),
        Rule(r"encoder\.layer\.(?P<b0>\d+)\.attention\.output\.dense\.weight$", "attn.o"),
        Rule(r"encoder\.layer\.(?P<b0>\d+)\.intermediate\.dense\.weight$", "mlp.up"),
        Rule(r"encoder\.layer\.(?P<b0>\d+)\.output\.dense\.weight$", "mlp.down"),
        Rule(r"pooler\.dense\.weight$", "head", "head", "pooler"),
        Rule(r"(?:classifier|cls\.predictions\.transform\.dense)\.weight$", "head", "head"),
    ),
    block_module=r"encoder\.layer\.(?P<b0>\d+)$",
    head_modules=(r"classifier$", r"pooler$"),
)

GPT2 = Family(
    name="gpt2",
    model_types=("gpt2",),
    markers=(r"h\.\d+\.attn\.c_attn\.weight$",),
    rules=(
        Rule(r"wte\.weight$", "embed", "embed"),
        Rule(r"wpe\.weight$", "embed", "embed", "position"),
        Rule(
            r"h\.(?P<b0>\d+)\.attn\.c_attn\.weight$",
            "attn.qkv",
            transforms=("T,qkv0", "T,qkv1", "T,qkv2"),
        ),
        Rule(r"h\.(?P<b0>\d+)\.attn\.c_proj\.weight$", "attn.o", transforms=("T",)),
        Rule(r"h\.(?P<b0>\d+)\.mlp\.c_fc\.weight$", "mlp.up", transforms=("T",)),
        Rule(r"h\.(?P<b0>\d+)\.mlp\.c_proj\.weight$", "mlp.down", transforms=("T",)),
        Rule(r"(?:lm_head|score)\.weight$", "head", "head"),
    ),
    block_module=r"(?:^|\.)h\.(?P<b0>\d+)$",
    head_modules=(r"(?:lm_head|score)$", r"ln_f$"),
)

LLAMA = Family(
    name="llama",
    model_types=("llama", "mistral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo"),
    markers=(r"layers\.\d+\.self_attn\.q_proj\.weight$",),
    rules=(
        Rule(r"embed_tokens\.weight$", "embed", "embed"),
        Rule(r"layers\.(?P<b0>\d+)\.self_attn\.q_proj\.weight$", "attn.q"),
        Rule(r"layers\.(?P<b0>\d+)\.self_attn\.k_proj\.weight$", "attn.k"),
        Rule(r"layers\.(?P<b0>\d+)\.self_attn\.v_proj\.weight$", "attn.v"),
        Rule(r"layers\.(?P<b0>\d+)\.self_attn\.o_proj\.weight$", "attn.o"),
        Rule(
            r"layers\.(?P<b0>\d+)\.self_attn\.qkv_proj\.weight$",
            "attn.qkv",
            transforms=("qkv0", "qkv1", "qkv2"),
        ),
        Rule(r"layers\.(?P<b0>\d+)\.mlp\.gate_proj\.weight$", "mlp.gate"),
        Rule(r"layers\.(?P<b0>\d+)\.mlp\.up_proj\.weight$", "mlp.up"),
        Rule(r"layers\.(?P<b0>\d+)\.mlp\.down_proj\.weight$", "mlp.down"),
        Rule(r"(?:lm_head|score)\.weight$", "head", "head"),
    ),
    block_module=r"layers\.(?P<b0>\d+)$",
    head_modules=(r"(?:lm_head|score)$", r"(?:^|\.)norm$"),
)

_VIT_BLOCK = r"(?:encoder\.layer|(?:^|\.)layers)\.(?P<b0>\d+)"

VIT = Family(
    name="vit",
    model_types=("vit", "deit", "dinov2"),
    # Two spellings: the checkpoint files (``encoder.layer.N.attention.attention.query``) and the
    # modules of transformers >= 5 (``layers.N.attention.q_proj``, ``mlp.fc1``).
    markers=(
        r"encoder\.layer\.\d+\.attention\.attention\.query\.weight$",
        r"(?:^|\.)layers\.\d+\.attention\.q_proj\.weight$",
    ),
    rules=(
        Rule(r"embeddings\.patch_embeddings\.projection\.weight$", "embed", "embed"),
        Rule(r"embeddings\.position_embeddings$", "embed", "embed", "position"),
        Rule(
            r"embeddings\.(?P<token>cls|distillation|mask|register)_tokens?$",
            "embed",
            "embed",
            "{token}",
        ),
        Rule(rf"{_VIT_BLOCK}\.attention\.(?:attention\.query|q_proj)\.weight$", "attn.q"),
        Rule(rf"{_VIT_BLOCK}\.attention\.(?:attention\.key|k_proj)\.weight$", "attn.k"),
        Rule(rf"{_VIT_BLOCK}\.attention\.(?:attention\.value|v_proj)\.weight$", "attn.v"),
        Rule(rf"{_VIT_BLOCK}\.attention\.(?:output\.dense|o_proj)\.weight$", "attn.o"),
        Rule(rf"{_VIT_BLOCK}\.(?:intermediate\.dense|mlp\.fc1)\.weight$", "mlp.up"),
        Rule(rf"{_VIT_BLOCK}\.(?:output\.dense|mlp\.fc2)\.weight$", "mlp.down"),
        Rule(r"pooler\.dense\.weight$", "head", "head", "pooler"),
        Rule(r"classifier\.weight$", "head", "head"),
    ),
    block_module=rf"{_VIT_BLOCK}$",
    head_modules=(r"classifier$", r"pooler$", r"(?:^|\.)layernorm$"),
)

RESNET_HF = Family(
    name="resnet",
    model_types=("resnet",),
    markers=(r"encoder\.stages\.\d+\.layers\.\d+\.",),
    rules=(
        Rule(r"embedder\.embedder\.convolution\.weight$", "conv", "embed"),
        Rule(
            r"stages\.(?P<b0>\d+)\.layers\.(?P<b1>\d+)\.layer\.(?P<j>\d+)\.convolution\.weight$",
            "conv",
            variant="{j}",
        ),
        Rule(
            r"stages\.(?P<b0>\d+)\.layers\.(?P<b1>\d+)\.shortcut\.convolution\.weight$",
            "conv",
            variant="shortcut",
        ),
        Rule(r"classifier\.\d+\.weight$", "head", "head"),
    ),
    block_module=r"stages\.(?P<b0>\d+)\.layers\.(?P<b1>\d+)$",
    head_modules=(r"^classifier$", r"pooler$"),
)

RESNET_TORCHVISION = Family(
    name="resnet-torchvision",
    markers=(r"^layer1\.0\.conv1\.weight$",),
    rules=(
        Rule(r"^conv1\.weight$", "conv", "embed"),
        Rule(r"^layer(?P<b0>\d+)\.(?P<b1>\d+)\.conv(?P<j>\d+)\.weight$", "conv", variant="{j}"),
        Rule(r"^layer(?P<b0>\d+)\.(?P<b1>\d+)\.downsample\.0\.weight$", "conv", variant="shortcut"),
        Rule(r"^fc\.weight$", "head", "head"),
    ),
    block_module=r"^layer(?P<b0>\d+)\.(?P<b1>\d+)$",
    head_modules=(r"^fc$",),
)

# Plain MLPs and unknown models are recognised structurally in `resolve` (module order).
FAMILIES: tuple[Family, ...] = (BERT, GPT2, LLAMA, VIT, RESNET_HF, RESNET_TORCHVISION)


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

    @property
    def params(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class Layout:
    """A resolved checkpoint: its family, its weight matrices and its block keys (depth 1..L)."""

    family: Family | None
    family_name: str
    entries: tuple[LayerEntry, ...]
    n_blocks: int
    block_keys: tuple[tuple[int, ...], ...]


def family_by_name(name: str) -> Family | None:
    for fam in FAMILIES:
        if fam.name == name:
            return fam
    return None


def detect_family(names: list[str], model_type: str | None = None) -> Family | None:
    """The family whose ``model_type`` (config.json) or marker names match, else None."""
    if model_type:
        for fam in FAMILIES:
            if model_type in fam.model_types:
                return fam
    for fam in FAMILIES:
        if any(re.search(m, n) for m in fam.markers for n in names):
            return fam
    return None


def matrix_shape(stored: tuple[int, ...], transforms: tuple[str, ...]) -> tuple[int, int] | None:
    """Shape of the analysed matrix, or None for tensors that are not matrices (1-D, scalars)."""
    shape = list(stored)
    while len(shape) > 2 and shape[0] == 1:
        shape.pop(0)
    if len(shape) < 2 or min(shape) == 0:
        return None
    if len(shape) > 2:
        shape = [shape[0], math.prod(shape[1:])]
    out, inp = shape
    for t in transforms:
        if t == "T":
            out, inp = inp, out
        elif t.startswith("qkv"):
            if out % 3:
                return None
            out //= 3
    return (out, inp)


def resolve(
    names: list[str],
    shapes: dict[str, tuple[int, ...]],
    dtypes: dict[str, str],
    model_type: str | None = None,
) -> Layout:
    """Give every matrix-shaped parameter its address. Never fails: unknown names go to module order."""
    family = detect_family(names, model_type)
    if family is None:
        return _resolve_in_module_order(names, shapes, dtypes)

    matched: list[tuple[str, Rule, re.Match]] = []
    unmatched: list[str] = []
    for name in names:
        if matrix_shape(shapes[name], ()) is None:
            continue
        for rule in family.rules:
            m = re.search(rule.pattern, name)
            if m:
                matched.append((name, rule, m))
                break
        else:
            unmatched.append(name)

    keys = sorted(
        {
            _block_key(m)
            for _, rule, m in matched
            if rule.position == "block" and _block_key(m) is not None
        }
    )
    depth_of_key = {k: i + 1 for i, k in enumerate(keys)}
    head_depth = len(keys) + 1

    entries: list[LayerEntry] = []
    for name, rule, m in matched:
        if rule.position == "embed":
            depth = 0
        elif rule.position == "head":
            depth = head_depth
        else:
            depth = depth_of_key[_block_key(m)]
        variant = rule.variant.format(**m.groupdict()) if rule.variant else ""
        splits = [tuple(x for x in t.split(",") if x) for t in rule.transforms]
        if any(matrix_shape(shapes[name], t) is None for t in splits):
            # a "fused" matrix that cannot be split in three: keep it whole, as "other"
            whole = tuple(x for x in splits[0] if not x.startswith("qkv"))
            shape = matrix_shape(shapes[name], whole)
            entries.append(_entry(depth, "other", variant, name, shape, shapes, dtypes, whole))
            continue
        for transforms in splits:
            role = rule.role
            if role == "attn.qkv":
                role = "attn." + "qkv"[int(transforms[-1][-1])]
            shape = matrix_shape(shapes[name], transforms)
            entries.append(_entry(depth, role, variant, name, shape, shapes, dtypes, transforms))

    # Matrices no rule names: inside a block module -> that block; embedding-like -> depth 0;
    # anything else -> the head. Decided from the name alone, so every format agrees.
    block_module = re.compile(family.block_module.rstrip("$")) if family.block_module else None
    for name in unmatched:
        m = block_module.search(name) if block_module is not None else None
        if m and _block_key(m) in depth_of_key:
            depth = depth_of_key[_block_key(m)]
        elif re.search(r"embed|(?:^|\.)(?:wte|wpe|stem)(?:\.|$)", name):
            depth = 0
        else:
            depth = head_depth
        shape = matrix_shape(shapes[name], ())
        entries.append(_entry(depth, "other", "", name, shape, shapes, dtypes, ()))

    # A canonical order that does not depend on how the file stored its tensors (safetensors
    # sorts them by dtype and name; a module lists them in definition order).
    entries.sort(key=_canonical_order)
    return Layout(family, family.name, _unique(entries), len(keys), tuple(keys))


def natural_key(text: str) -> tuple:
    """Sort key that orders ``layers.2`` before ``layers.10``."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text))


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
        return Layout(None, "empty", (), 0, ())
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
        entries.append(
            _entry(i + 1, role, "", name, matrix_shape(shapes[name], ()), shapes, dtypes, ())
        )
    entries.append(
        _entry(len(body) + 1, "head", "", head, matrix_shape(shapes[head], ()), shapes, dtypes, ())
    )
    keys = tuple((i,) for i in range(len(body)))
    return Layout(None, "mlp" if plain_mlp else "sequential", tuple(entries), len(body), keys)


def _role_rank(role: str) -> int:
    return ROLES.index(role) if role in ROLES else len(ROLES)


def _block_key(m: re.Match) -> tuple[int, ...] | None:
    groups = sorted((k, v) for k, v in m.groupdict().items() if re.fullmatch(r"b\d+", k))
    if not groups:
        return None
    return tuple(int(v) for _, v in groups)


def _entry(depth, role, variant, name, shape, shapes, dtypes, transforms) -> LayerEntry:
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


def apply_transforms(tensor, transforms: tuple[str, ...]):
    """Build the analysed (out, in) matrix from the stored tensor (see the module docstring)."""
    t = tensor
    while t.ndim > 2 and t.shape[0] == 1:
        t = t.squeeze(0)
    if t.ndim > 2:
        t = t.reshape(t.shape[0], -1)
    for tr in transforms:
        if tr == "T":
            t = t.T
        elif tr.startswith("qkv"):
            i = int(tr[-1])
            d = t.shape[0] // 3
            t = t[i * d : (i + 1) * d]
    return t
