"""Blocks and stacks from parameter names: where a model's depth axis comes from.

A *stack* is a numbered container, ``<prefix>.<i>.<rest>`` (an ``nn.ModuleList`` or
``nn.Sequential`` seen through its parameter names); its children are *blocks* when they are
repeated: each holds at least two weight matrices (median over children) and they hold much the
same ``<rest>`` names: each child shares at least half of its names with the *common* names (those
more than half of the children have), or has a third of its own names among them (a dense first
layer before mixture-of-experts layers still shares its attention). So ``encoder.layer.3`` is a
block, while ``classifier.1`` (one matrix) and T5's ``block.0.layer.1`` (attention and feed-forward sub-layers, all different)
are not. Containers named like experts or heads (``experts.3``, ``heads.0``) are never stacks:
they stay inside their block, and so do lists of attention or MLP sub-layers inside a stack's
child (LongCat-Flash's ``layers.0.self_attn.1``, ``layers.0.mlps.1``).

Stages flatten, one level: a stack whose children are mostly (>= 75 % of their matrices) further stacks (a
ResNet's ``stages.1.layers.2``, Swin's ``layers.0.blocks.1``) contributes those inner blocks in
order, and a stage's own extra matrices (a downsampling layer) join the stage's first block. A
stage's blocks are not flattened again, nor are the children of a list named ``blocks`` (unless
they hold ``blocks`` again: PP-OCR's ``blocks.3.blocks.0`` is a block of a stage): HGNet's
``stages.2.blocks.0`` is a block although it holds a list of conv ``layers`` (whose outputs are
concatenated, never a stream of states).
A list of lists (SegFormer's ``block.1.2``: stage 1, block 2) flattens the same way.
Sibling stacks named ``layer1``, ``layer2``, ... (torchvision) are stages of one stack too.
*Parallel lists* (XLM's ``attentions.i`` and ``ffns.i``: sibling stacks with the same indices,
named alike, none named like a list of whole blocks: ``layers``, ``x_layers``, ``blocks``) are
one stack: index ``i`` of every list is one block, at one depth; the block's path is the first list's
(``Stack.parallel`` names all of them). A list named ``layers``/``blocks``/``h`` whose children
each hold >= 2 matrices is a stack even when the children differ (hybrid models: Nemotron-H's
mamba, attention and MoE layers).

Several stacks (an encoder and a decoder, a text and a vision tower) follow each other on one
depth axis, named from their prefix (``vision``, ``audio``, ``text``, ``encoder``, ``decoder``,
else ``main``) and ordered vision/audio, encoder, text, then decoder: the order in which an
encoder-decoder or a vision-language model runs them. Depth 0 holds the embeddings of every
stack, the blocks are numbered 1..L across the stacks in that order, and the head is at L+1.

Only names and the number of axes are used, never module objects, so a module and its saved
file give the same blocks.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

# Containers that are parts of a block, never a stack of blocks.
_INNER = re.compile(r"^(?:\w*experts?|heads|attention_heads|local_experts)$", re.IGNORECASE)
_SUBLAYERS = re.compile(r"^(?:self_attn|self_attention|mlps|ffns|feed_forwards)$", re.IGNORECASE)
_STAGE_NAME = re.compile(r"^(.*?\D)(\d+)$")
_BLOCKS = re.compile(r"^\w*blocks$", re.IGNORECASE)  # a list named blocks holds blocks, not stages
_STACK_WORDS = (
    ("vision", ("vision", "visual", "image", "vit")),
    ("audio", ("audio", "speech")),
    ("text", ("text", "language")),
    ("encoder", ("encoder",)),
    ("decoder", ("decoder",)),
)
_STACK_ORDER = {"vision": 0, "audio": 0, "encoder": 1, "main": 1, "text": 2, "decoder": 3}


@dataclass(frozen=True)
class Stack:
    """One stack of blocks: its name, the prefix its other parameters share, its blocks."""

    name: str
    root: str  # "text_model." / "model.encoder." / "" : where this stack's own names start
    blocks: tuple[str, ...]  # block module paths, in forward order
    parallel: tuple[str, ...] = ()  # the sibling lists whose index i is block i (XLM), if any


@dataclass(frozen=True)
class Structure:
    """The stacks in forward order and, for every block module path, its depth (1..L)."""

    stacks: tuple[Stack, ...]
    depth_of: dict[str, int]  # block path -> depth; also stage extras -> their block's depth

    @property
    def n_blocks(self) -> int:
        return sum(len(s.blocks) for s in self.stacks)

    def locate(self, name: str) -> tuple[int, str, str] | None:
        """``(depth, block path, rest)`` of a parameter inside a block, else None.

        In a block of parallel lists the list's name leads ``rest`` (``ffns.lin1.weight``).
        """
        parts = name.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            prefix = ".".join(parts[:cut])
            if prefix in self.depth_of:
                rest = ".".join(parts[cut:])
                lists = {p for stack in self.stacks for p in stack.parallel}
                if prefix.rpartition(".")[0] in lists:  # a parallel list's name is context
                    rest = f"{parts[cut - 2]}.{rest}"
                return self.depth_of[prefix], prefix, rest
        return None

    def stack_of(self, name: str) -> Stack | None:
        """The stack whose root is the longest prefix of ``name`` (None if none is)."""
        best = None
        for stack in self.stacks:
            if name.startswith(stack.root) and (best is None or len(stack.root) > len(best.root)):
                best = stack
        return best


def _join(prefix: str, index: int | str) -> str:
    return f"{prefix}.{index}" if prefix else str(index)


def _candidates(names: list[str]) -> dict[str, dict[int, set[str]]]:
    """Every numbered container: prefix -> child index -> the names under that child."""
    found: dict[str, dict[int, set[str]]] = {}
    for name in names:
        parts = name.split(".")
        for p, part in enumerate(parts[:-1]):
            if part.isdigit():
                prefix = ".".join(parts[:p])
                rest = ".".join(parts[p + 1 :])
                found.setdefault(prefix, {}).setdefault(int(part), set()).add(rest)
    return found


def _repeated(children: dict[int, set[str]]) -> bool:
    """Children hold >= 2 matrices (median) and mostly the same names (see module docstring)."""
    sizes = sorted(len(c) for c in children.values())
    if sizes[len(sizes) // 2] < 2:
        return False
    counts = Counter(rest for c in children.values() for rest in c)
    common = {rest for rest, n in counts.items() if n > len(children) / 2}
    return bool(common) and all(
        len(c & common) >= len(c | common) / 2 or len(c & common) >= len(c) / 3
        for c in children.values()
    )


_LAYERS = re.compile(r"^(?:layers|h|blocks|decoder_layers|encoder_layers)$", re.IGNORECASE)


_WHOLE = re.compile(r"(?:^|_)(?:layers?|blocks?|h)$", re.IGNORECASE)  # LXMERT's r_layers


def _hybrid(prefix: str, children: dict[int, set[str]]) -> bool:
    """A hybrid model's ``layers`` list: every child holds >= 2 matrices but they differ (Nemotron-H's
    mamba, attention and MoE layers; MiniMax's linear and softmax attention)."""
    sizes = [len(c) for c in children.values()]
    return bool(_LAYERS.match(prefix.rsplit(".", 1)[-1])) and len(sizes) > 1 and min(sizes) >= 2


def find_structure(names: list[str]) -> Structure:
    """Blocks and stacks of a model from the names of its weight matrices (module docstring)."""
    found = _candidates(names)
    stacks = {
        prefix: children
        for prefix, children in found.items()
        if not _INNER.match(prefix.rsplit(".", 1)[-1])
        and (_repeated(children) or _hybrid(prefix, children))
    }
    stacks = {  # lists of sub-layers inside a block are parts of it (LongCat's self_attn.0, .1)
        prefix: children
        for prefix, children in stacks.items()
        if not (
            _SUBLAYERS.match(prefix.rsplit(".", 1)[-1])
            and any(prefix.startswith(other + ".") for other in stacks)
        )
    }

    def inside(prefix: str, outer: str) -> bool:
        return prefix.startswith(outer + ".") if outer else bool(prefix)

    def blocks_of(prefix: str, flatten: bool = True) -> tuple[list[str], dict[str, str]]:
        """Block paths of a stack (flattening stages) and stage extras -> their first block."""
        children = stacks[prefix]
        inner = [p for p in stacks if inside(p, prefix)]
        nested = any(_join(prefix, i) in stacks for i in children)  # a list of lists of blocks
        if (
            _BLOCKS.match(prefix.rpartition(".")[2])
            and not nested
            and not all(_BLOCKS.match(p.rpartition(".")[2]) for p in inner)
        ):
            flatten = False  # blocks of conv layers (HGNet); blocks of blocks are stages
        if not flatten:
            return [_join(prefix, i) for i in sorted(children)], {}
        covered = 0
        for index, rests in children.items():
            child = _join(prefix, index)
            direct = [p for p in inner if p == child or inside(p, child)]
            in_stacks = sum(
                1 for r in rests if any(_join(child, r).startswith(p + ".") for p in direct)
            )
            covered += in_stacks >= 0.75 * len(rests)
        if covered <= len(children) / 2:
            return [_join(prefix, i) for i in sorted(children)], {}
        blocks: list[str] = []
        extras: dict[str, str] = {}
        for index in sorted(children):
            child = _join(prefix, index)
            direct = _outermost([p for p in inner if p == child or inside(p, child)])
            stage: list[str] = []
            for p in sorted(direct, key=natural_key):
                sub, sub_extras = blocks_of(p, flatten=False)
                stage += sub
                extras.update(sub_extras)
            if stage:
                extras[child] = stage[0]
            blocks += stage
        return blocks, extras

    top = _outermost(list(stacks))
    parallel = _parallel_lists(top, stacks, names)
    merged = {p for lists in parallel.values() for p in lists[1:]}
    groups: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for prefix in [p for p in top if p not in merged]:
        parent, _, last = prefix.rpartition(".")
        m = _STAGE_NAME.match(last)
        key = (parent, m.group(1)) if m else (parent, last)
        groups.setdefault(key, []).append((int(m.group(2)) if m else 0, prefix))

    built: list[tuple[str, str, list[str], dict[str, str]]] = []
    for members in groups.values():
        blocks: list[str] = []
        extras: dict[str, str] = {}
        for _, prefix in sorted(members):
            sub, sub_extras = blocks_of(prefix)
            blocks += sub
            extras.update(sub_extras)
        first = sorted(members)[0][1]
        for other in parallel.get(first, ())[1:]:
            extras.update({_join(other, i): _join(first, i) for i in stacks[other]})
        name, root = _stack_name(first)
        built.append((name, root, blocks, extras, parallel.get(first, ())))

    built.sort(key=lambda b: (_STACK_ORDER.get(b[0], 1), natural_key(b[1])))
    names_seen = Counter(b[0] for b in built)
    result: list[Stack] = []
    depth_of: dict[str, int] = {}
    depth = 0
    used: Counter = Counter()
    for name, root, blocks, extras, lists in built:
        if names_seen[name] > 1:
            used[name] += 1
            name = f"{name}{used[name]}" if used[name] > 1 else name
        if len(built) == 1:
            root = ""
        for block in blocks:
            depth += 1
            depth_of[block] = depth
        for extra, block in extras.items():
            depth_of.setdefault(extra, depth_of[block])
        result.append(Stack(name, root, tuple(blocks), lists))
    return Structure(tuple(result), depth_of)


_SEQUENTIAL_WORDS = {"down", "up", "encoder", "decoder", "enc", "dec", "pre", "post", "input"}


def _parallel_lists(
    top: list[str], stacks: dict[str, dict[int, set[str]]], names: list[str]
) -> dict[str, tuple[str, ...]]:
    """First list -> all lists (in order of the names) of each group of parallel lists.

    Parallel: siblings (same parent) with the same child indices, none of them flattened stages,
    named alike (``_stack_name``) and not like consecutive stacks (``down_blocks``/``up_blocks``).
    """
    first_seen = {}
    for i, name in enumerate(names):
        for p in top:
            if name.startswith(p + ".") and p not in first_seen:
                first_seen[p] = i
    by_key: dict[tuple, list[str]] = {}
    for p in top:
        parent, _, last = p.rpartition(".")
        if (
            _WHOLE.search(last)
            or _STAGE_NAME.match(last)
            or set(re.split(r"[_\d]+", last.lower())) & _SEQUENTIAL_WORDS
        ):
            continue  # layer1/layer2 are stages, down_blocks/up_blocks consecutive stacks
        if any(q.startswith(p + ".") for q in stacks):
            continue
        key = (parent, tuple(sorted(stacks[p])), _stack_name(p)[0])
        by_key.setdefault(key, []).append(p)
    return {
        lists[0]: tuple(lists)
        for lists in (sorted(g, key=first_seen.get) for g in by_key.values() if len(g) > 1)
    }


def _outermost(prefixes: list[str]) -> list[str]:
    """The prefixes that lie inside no other one of the list."""
    return [
        p
        for p in prefixes
        if not any(q != p and (p.startswith(q + ".") if q else bool(p)) for q in prefixes)
    ]


def _stack_name(prefix: str) -> tuple[str, str]:
    """A stack's name from its prefix, and its root (the prefix up to the naming component)."""
    parts = prefix.split(".") if prefix else []
    for name, words in _STACK_WORDS:
        for i, part in enumerate(parts):
            if any(w in part.lower() for w in words):
                return name, ".".join(parts[: i + 1]) + "."
    return "main", (prefix.rpartition(".")[0] + "." if "." in prefix else "")


def natural_key(text: str) -> tuple:
    """Sort key that orders ``layers.2`` before ``layers.10``."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in re.split(r"(\d+)", text))
