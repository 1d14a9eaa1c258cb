"""Run a probe set through a model and keep its hidden states per depth, memory-bounded.

Depth 0 is the input to the first block (the embeddings' output), depth i (1..L) the output of
block i, depth L+1 the output of the head (or of the final norm when there is no head). Plain
MLPs and unknown models use module order: depth i is the input of the (i+1)-th weighted module,
which is the previous layer's output after its activation.

Token pooling for (batch, tokens, dim) outputs: ``"mean"`` (over real tokens, by the attention
mask), ``"first"`` (the CLS token), ``"last"`` (the last real token), or ``"all"`` (every real
token, subsampled to ``max_points`` with a seeded uniform sample, keeping sample and position;
depths whose output is already one vector per input, like BERT's pooler, repeat it per token).
Convolutional outputs (batch, channels, h, w) are averaged over space. Models with
hyper-connections (DeepSeek-V4, Hunyuan-V4) carry several residual streams per token, (batch,
tokens, streams, width): a block's hidden state is their mean (the model's own head mixes them
with learned weights).
"""

from __future__ import annotations

import contextlib
import inspect
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from explorer import arguments
from explorer.activations import Activations
from explorer.errors import ProbeError
from explorer.kernel.device import resolve_device
from explorer.probe import Probe
from explorer.sources.checkpoint import Checkpoint
from explorer.sources.load import Loadable, load
from explorer.sources.matrices import matrix_shape
from explorer.sources.structure import Structure, find_structure

POOLINGS = ("mean", "first", "last", "all")
PROBE = "__probe__"  # key of a tensor probe's batch in the per-batch inputs dict


@dataclass(frozen=True)
class Tap:
    """Where one depth's hidden state is read: the ``input`` or ``output`` of a module."""

    depth: int
    module: str
    side: str


def taps_for(ck: Checkpoint, model: nn.Module) -> list[Tap]:
    """The module (and side) that yields each depth's hidden state for this checkpoint.

    Blocks come from the model's own parameter names (the same rule as the layer table, see
    :mod:`explorer.sources.structure`), so a checkpoint whose file names differ from its
    module's (transformers renames some) still finds its block modules, in the same order.
    """
    names = [n for n, _ in model.named_modules()]
    structure = module_structure(model)
    blocks = [b for stack in structure.stacks for b in stack.blocks]
    if blocks and len(blocks) == ck.n_blocks and all(b in set(names) for b in blocks):
        # depth 0: the input of the first block of the first stack that runs (a vision tower
        # fed token ids never does), so every stack's first block is tapped; the first wins
        taps = [Tap(0, s.blocks[0], "input") for s in structure.stacks if s.blocks]
        parts = _parallel_parts(structure, names)
        taps += [
            Tap(i + 1, parts[b][-1] if b in parts else b, "output") for i, b in enumerate(blocks)
        ]
        lists = {m.rpartition(".")[0] for members in parts.values() for m in members}
        head = _head_module(
            model, [*blocks, *(m for ms in parts.values() for m in ms), *lists], structure
        )
        if head is not None:
            taps.append(Tap(len(blocks) + 1, head, "output"))
        return taps
    # module order: the weighted modules in the order of the layer table
    weighted = []
    for e in ck.entries:
        module_name = e.name.rsplit(".", 1)[0] if "." in e.name else ""
        module_name = module_name.replace(".base_layer", "")
        if module_name in names and module_name not in weighted:
            weighted.append(module_name)
    if not weighted:
        raise ProbeError(f"{ck.name}: could not find the modules that hold its weights")
    taps = [Tap(i, name, "input") for i, name in enumerate(weighted)]
    taps.append(Tap(len(weighted), weighted[-1], "output"))
    return taps


def _parallel_parts(structure: Structure, names: list[str]) -> dict[str, list[str]]:
    """For blocks made of parallel lists (XLM's ``attentions.i``, ``ffns.i``, ``layer_norm2.i``):
    every module with index ``i`` in registration order; the last one's output is the block's."""
    parts = {}
    for stack in structure.stacks:
        if not stack.parallel:
            continue
        parent = stack.parallel[0].rpartition(".")[0]
        head = re.escape(parent + ".") if parent else ""
        for block in stack.blocks:
            index = block.rpartition(".")[2]
            pattern = re.compile(rf"^{head}[^.]+\.{index}$")
            parts[block] = [n for n in names if pattern.match(n)]
    return parts


def module_structure(model: nn.Module) -> Structure:
    """Blocks and stacks of a module, from the names of its weight matrices."""
    matrices = [
        n for n, p in model.named_parameters() if matrix_shape(tuple(p.shape), ()) is not None
    ]
    return find_structure(matrices)


_HEADS = re.compile(r"(?:^|\.)(?:lm_head|score|classifier|qa_outputs|fc|head|cls)$")
_NORM = re.compile(r"(?:^|\.)(?:\w*norm\w*|ln_f)$", re.IGNORECASE)


def _head_module(
    model: nn.Module, blocks: list[str], structure: Structure | None = None
) -> str | None:
    """Depth L+1: a head (``lm_head``, ``classifier``...), else a pooler, else the final norm.

    Only modules outside every block count, and none inside an earlier vision, audio or encoder
    stack (a vision tower's own head is not the model's). The final norm is a norm next to the
    last stack's list of blocks (``model.norm`` beside ``model.layers``), else the last norm
    registered after the last block.
    """
    stacks = structure.stacks if structure is not None else ()
    last_block = stacks[-1].blocks[-1] if stacks else blocks[-1]
    towers = tuple(  # vision, audio and encoder stacks before the last: never the model's head
        s.root
        for s in stacks[:-1]
        if s.root
        and not s.name.startswith(("text", "main"))
        and not stacks[-1].root.startswith(s.root)
    )
    inside = tuple(b + "." for b in blocks)
    order = [n for n, _ in model.named_modules() if n and not n.startswith(inside)]
    order = [n for n in order if n not in blocks and not (towers and n.startswith(towers))]
    for pattern in (_HEADS, re.compile(r"(?:^|\.)pooler$")):
        for name in order:
            if pattern.search(name):
                return name
    all_names = [n for n, _ in model.named_modules()]
    after = [n for n in all_names[all_names.index(last_block) :] if n in order and _NORM.search(n)]
    beside = last_block.rpartition(".")[0].rpartition(".")[0]
    next_to = [n for n in after if n.rpartition(".")[0] == beside]
    return (next_to or after or [None])[-1]


@contextlib.contextmanager
def hooked(model: nn.Module, taps: list[Tap]) -> Iterator[dict[int, torch.Tensor]]:
    """Add forward hooks that store each tap's tensor in the yielded dict; removed on exit."""
    modules = dict(model.named_modules())
    caught: dict[int, torch.Tensor] = {}
    handles = []

    def first_tensor(value):
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, tuple | list) and value:
            return first_tensor(value[0])
        if isinstance(value, dict):
            for key in ("hidden_states", "last_hidden_state", "logits", "pooler_output"):
                if key in value:
                    return first_tensor(value[key])
        if hasattr(value, "to_tuple"):
            return first_tensor(value.to_tuple())
        return None

    for tap in taps:
        module = modules[tap.module]
        if tap.side == "input":

            def pre_hook(_m, args, kwargs, depth=tap.depth):
                if caught.get(depth) is None:  # several taps of one depth: the first one wins
                    caught[depth] = first_tensor(args) if args else first_tensor(kwargs)

            handles.append(module.register_forward_pre_hook(pre_hook, with_kwargs=True))
        else:

            def hook(_m, _args, output, depth=tap.depth):
                caught[depth] = first_tensor(output)

            handles.append(module.register_forward_hook(hook))
    try:
        yield caught
    finally:
        for h in handles:
            h.remove()


def pool(hidden: torch.Tensor, mask: torch.Tensor | None, how: str) -> torch.Tensor:
    """Reduce one batch's hidden state to (batch, dim) (see the module docstring)."""
    if hidden.ndim == 2:
        return hidden
    if hidden.ndim == 4:  # conv feature maps
        return hidden.mean(dim=(2, 3))
    if hidden.ndim != 3:
        return hidden.reshape(hidden.shape[0], -1)
    if mask is None or mask.shape[:2] != hidden.shape[:2]:
        mask = torch.ones(hidden.shape[:2], dtype=torch.bool, device=hidden.device)
    mask = mask.to(hidden.device).bool()
    if how == "first":
        return hidden[:, 0]
    if how == "last":
        last = mask.long().cumsum(1).argmax(1)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1)


def capture(
    checkpoint: Loadable,
    probe: Probe | Sequence[str] | torch.Tensor | np.ndarray | Any,
    *,
    depths: Sequence[int] | None = None,
    pooling: str = "mean",
    batch_size: int = 32,
    device: str | torch.device = "auto",
    dtype: torch.dtype = torch.float32,
    max_points: int | None = None,
    max_bytes: int | None = 2 * 1024**3,
    max_length: int = 128,
    labels: dict[str, Sequence] | None = None,
    seed: int = 0,
    progress: bool | None = None,
    decoder_input_ids: torch.Tensor | np.ndarray | None = None,
    stack: str | None = None,
) -> Activations:
    """Hidden states per depth of ``checkpoint`` on ``probe``.

    Parameters
    ----------
    checkpoint
        Anything :func:`explorer.load` accepts that can run (an ``nn.Module`` or a model
        directory with ``config.json``).
    probe
        A :class:`~explorer.probe.Probe`, a list of strings (tokenised with the checkpoint's own
        tokenizer), a tensor/array with one input per row, or a torch ``Dataset``/``DataLoader``
        yielding inputs or ``(input, label)`` pairs.
    depths
        Which depths to keep (default all, 0..L+1).
    pooling
        ``"mean"``, ``"first"``, ``"last"`` or ``"all"`` for token sequences.
    device
        ``"auto"`` (CUDA when present), ``"cpu"`` or ``"cuda"``. Results are moved to the CPU.
    dtype
        Storage dtype of the kept states (``torch.float32`` or ``torch.float16``).
    max_points
        Keep at most this many points: a seeded random subset of inputs (pooled) or of tokens
        (``"all"``).
    max_bytes
        Refuse (before running) a capture whose kept states would exceed this many bytes.
    labels
        Per-input labels for array probes (``{"label": y}``).
    progress
        Show a progress bar (tqdm: text in a terminal, a widget in a notebook). ``None`` shows
        one when there are more than four batches.
    decoder_input_ids
        Encoder-decoder models only: the decoder's input ids, one row per probe input. By
        default the decoder reads the probe's token ids shifted right by one, behind the
        model's ``decoder_start_token_id`` (else its pad, else its bos token, else 0): the
        teacher-forcing input, of the probe's own length, so decoder depths pool over the same
        tokens as encoder depths. Without token ids (``inputs_embeds``, audio features) the
        decoder reads that start token alone.
    stack
        Two-tower models (a text and a vision tower, as in CLIP): the tower to run. By default
        the one the probe fits: token ids and strings run the ``text`` tower, images
        (4-D float tensors) the ``vision`` tower, other float tensors the ``audio`` tower.
        Only that tower's depths are captured (depth 0 is the input of its first block).

    Inputs: strings (tokenised with the checkpoint's tokenizer), integer tensors (token ids,
    passed as ``input_ids`` to models with a transformers config), float tensors whose last
    axis is the model's embedding width and which have three axes (passed as
    ``inputs_embeds`` to models that take them), and any other tensor (pixel values, audio
    features, plain features), passed as the first argument.
    """
    batch_size = arguments.integer("batch_size", batch_size, low=1)
    max_length = arguments.integer("max_length", max_length, low=1)
    if max_points is not None:
        max_points = arguments.integer("max_points", max_points, low=1)
    if max_bytes is not None:
        max_bytes = arguments.integer("max_bytes", max_bytes, low=1)
    seed = arguments.integer("seed", seed, low=0)
    if pooling not in POOLINGS:
        raise ValueError(f"pooling={pooling!r}; choose one of {POOLINGS}")
    if dtype not in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        raise ValueError(f"dtype={dtype}; use torch.float32 or torch.float16")
    ck = load(checkpoint)
    dev = resolve_device(device)
    model = ck.module()
    batches, n_inputs, point_labels, tokenizer = _batches(
        ck, probe, batch_size, max_length, labels, max_points, seed, pooling, decoder_input_ids
    )
    runner, taps = _runner_and_taps(ck, model, batches[0][0], stack)
    if depths is not None:
        wanted = set(depths)
        unknown = wanted - {t.depth for t in taps}
        if unknown:
            raise ProbeError(
                f"depths {sorted(unknown)} do not exist; {ck.name} has depths "
                f"0..{max(t.depth for t in taps)}"
            )
        taps = [t for t in taps if t.depth in wanted]

    was_training = model.training
    first_param = next(model.parameters(), None)
    home = first_param.device if first_param is not None else torch.device("cpu")
    moved = home != dev  # walking every parameter costs as much as a small model's forward
    model.eval()
    if moved:
        model.to(dev)
    kept: dict[int, list[torch.Tensor]] = {t.depth: [] for t in taps}
    tokens = _TokenSample(max_points, seed) if pooling == "all" else None
    bar = _progress(len(batches) > 4 if progress is None else progress, n_inputs, ck.name)
    try:
        with torch.no_grad(), hooked(runner, taps) as caught:
            offset = 0
            for batch_index, (inputs, mask) in enumerate(batches):
                caught.clear()
                _forward(runner, inputs, dev, ck, batch_index)
                n = _batch_len(inputs)
                _batch_first(caught, n)
                _merge_streams(caught, inputs, mask)
                if batch_index == 0 and depths is None:
                    _drop_stacks_not_run(kept, caught, ck)
                    _drop_head_not_run(kept, caught, ck, taps)
                if tokens is not None:
                    tokens.add(caught, mask, offset, n, kept, dtype)
                else:
                    for depth in kept:
                        h = caught.get(depth)
                        if h is None:
                            raise ProbeError(f"{ck.name}: depth {depth} produced no hidden state")
                        kept[depth].append(pool(h, mask, pooling).to("cpu", dtype))
                if batch_index == 0:
                    _check_budget(kept, n, n_inputs, max_bytes, pooling, max_points)
                offset += n
                bar.update(n)
    finally:
        bar.close()
        model.train(was_training)
        if moved:
            model.to(home)

    if tokens is not None:
        states = tokens.states(kept)
        point_labels = tokens.labels(point_labels, tokenizer, batches)
    else:
        states = {d: torch.cat(chunks) for d, chunks in kept.items()}
    meta = {
        "checkpoint": ck.name,
        "source": ck.source,
        "family": ck.family,
        "pooling": pooling,
        "dtype": str(dtype).replace("torch.", ""),
        "device": str(dev),
        "n_inputs": n_inputs,
        "seed": seed,
    }
    if isinstance(probe, Probe):
        meta["probe"] = probe.name
    return Activations(states, point_labels, meta)


# -- probes -----------------------------------------------------------------------------------


def _batches(ck, probe, batch_size, max_length, labels, max_points, seed, pooling, decoder_ids):
    """Turn any probe into a re-iterable list of ``(inputs, mask)`` batches plus labels.

    ``inputs`` is the tokenizer's dict for text, else a dict with the probe tensor under
    ``PROBE`` (and ``decoder_input_ids`` when given).
    """
    if isinstance(probe, Probe):
        labels = {**probe.labels, **(labels or {})}
        probe = probe.inputs
    labels = {k: np.asarray(v) for k, v in (labels or {}).items()}
    tokenizer = None
    if isinstance(probe, torch.utils.data.DataLoader | torch.utils.data.Dataset):
        xs, ys = _from_dataset(probe)
        probe = xs
        if ys is not None and "label" not in labels:
            labels["label"] = ys
    if isinstance(probe, str):
        probe = [probe]
    if isinstance(probe, Sequence) and len(probe) == 0:
        raise ProbeError("the probe is empty: give at least one input")
    if isinstance(probe, Sequence) and probe and all(isinstance(p, str) for p in probe):
        texts = list(probe)
        n = len(texts)
        labels.setdefault("text", np.asarray(texts))
        index = _subset(n, max_points, seed) if pooling != "all" else np.arange(n)
        tokenizer = ck.tokenizer()
        if tokenizer is None:
            raise ProbeError(
                f"{ck.name} has no tokenizer, so it cannot read text. Load the model's "
                "directory (with its tokenizer files) or pass token ids as a tensor."
            )
        batches = []
        for start in range(0, len(index), batch_size):
            chunk = [texts[i] for i in index[start : start + batch_size]]
            enc = tokenizer(
                chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            batches.append((dict(enc), enc["attention_mask"]))
    else:
        x = _as_tensor(probe, ck.name)
        n = x.shape[0]
        index = _subset(n, max_points, seed) if pooling != "all" else np.arange(n)
        x = x[torch.as_tensor(index)]
        batches = [({PROBE: x[i : i + batch_size]}, None) for i in range(0, len(index), batch_size)]
    if n == 0:
        raise ProbeError("the probe is empty: give at least one input")
    if decoder_ids is not None:
        dec = _as_tensor(decoder_ids, ck.name)
        if dec.ndim != 2 or dec.shape[0] != n or dec.is_floating_point():
            raise ProbeError(
                f"decoder_input_ids has shape {tuple(dec.shape)} ({dec.dtype}); give integer "
                f"token ids, one row per probe input: ({n}, length)"
            )
        dec = dec[torch.as_tensor(index)]
        start = 0
        for inputs, _ in batches:
            size = _batch_len(inputs)
            inputs["decoder_input_ids"] = dec[start : start + size]
            start += size
    for key, values in labels.items():
        if len(values) != n:
            raise ProbeError(f"label {key!r} has {len(values)} values for {n} probe inputs")
    labels = {k: v[index] for k, v in labels.items()}
    return batches, len(index), labels, tokenizer


def _from_dataset(data) -> tuple[torch.Tensor, np.ndarray | None]:
    xs, ys = [], []
    items = data if isinstance(data, torch.utils.data.DataLoader) else iter(data)
    batched = isinstance(data, torch.utils.data.DataLoader)
    for item in items:
        if isinstance(item, dict):
            x, y = item.get("input", item.get("x")), item.get("label", item.get("y"))
        elif isinstance(item, tuple | list):
            x, y = item[0], item[1] if len(item) > 1 else None
        else:
            x, y = item, None
        x = torch.as_tensor(x)
        xs.append(x if batched else x.unsqueeze(0))
        if y is not None:
            y = torch.as_tensor(y)
            ys.append(y.reshape(-1) if batched else y.reshape(1))
    if not xs:
        raise ProbeError("the probe dataset is empty: give at least one input")
    labels = torch.cat(ys).numpy() if ys and len(ys) == len(xs) else None
    return torch.cat(xs), labels


def _as_tensor(probe, name: str) -> torch.Tensor:
    if isinstance(probe, np.ndarray):
        if probe.dtype == object:
            raise ProbeError("the probe array holds Python objects; give numbers or strings")
        probe = torch.from_numpy(np.ascontiguousarray(probe))
    if not isinstance(probe, torch.Tensor):
        raise ProbeError(
            f"cannot use a {type(probe).__name__} as a probe for {name}: give a list of "
            "strings, a tensor or array with one input per row, a Dataset/DataLoader, or a Probe"
        )
    if probe.ndim == 0:
        raise ProbeError("the probe is a scalar; give one input per row")
    if probe.is_floating_point() and not bool(torch.isfinite(probe).all()):
        raise ProbeError("the probe holds NaN or Inf values; clean the inputs first")
    if probe.dtype == torch.float64:
        probe = probe.float()
    return probe


def _subset(n: int, max_points: int | None, seed: int) -> np.ndarray:
    if max_points is None or max_points >= n:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False))


def _batch_len(inputs) -> int:
    return int(next(iter(inputs.values())).shape[0])


def _drop_head_not_run(kept: dict, caught: dict, ck: Checkpoint, taps: list[Tap]) -> None:
    """Depth L+1 is dropped, with a warning, when the module taken for the head did not run (a
    TTS model's training-only flows): the head is a guess from names, the blocks are not."""
    head = ck.n_blocks + 1
    if head in kept and caught.get(head) is None and ck.n_blocks > 0:
        module = next((t.module for t in taps if t.depth == head), "?")
        warnings.warn(
            f"{ck.name}: {module!r}, taken as the head (depth {head}), did not run on this "
            "input, so there is no head state; the blocks' states are all there",
            stacklevel=3,
        )
        kept.pop(head)


def _drop_stacks_not_run(kept: dict, caught: dict, ck: Checkpoint) -> None:
    """Depths of stacks the forward pass never ran (a vision tower fed token ids) are dropped.

    Only whole stacks go: a missing depth inside a stack that did run stays, and fails loudly.
    """
    structure = ck._layout.structure
    if structure is None or len(structure.stacks) < 2:
        return
    for stack in structure.stacks:
        stack_depths = {structure.depth_of[b] for b in stack.blocks}
        if stack_depths and all(caught.get(d) is None for d in stack_depths):
            for d in stack_depths:
                kept.pop(d, None)


def _batch_first(caught: dict[int, torch.Tensor], n: int) -> None:
    """Sequence-first hidden states (torch's ``batch_first=False`` layers) become batch-first."""
    for depth, h in caught.items():
        if isinstance(h, torch.Tensor) and h.ndim == 3 and h.shape[0] != n and h.shape[1] == n:
            caught[depth] = h.transpose(0, 1)


def _merge_streams(caught: dict[int, torch.Tensor], inputs: dict, mask) -> None:
    """Hyper-connection residual streams (batch, tokens, streams, width) become their mean."""
    ids = inputs.get("input_ids", inputs.get(PROBE))
    if mask is not None:
        tokens = tuple(mask.shape)
    elif isinstance(ids, torch.Tensor) and ids.ndim == 2 and not ids.is_floating_point():
        tokens = tuple(ids.shape)
    else:
        return
    for depth, h in caught.items():
        if isinstance(h, torch.Tensor) and h.ndim == 4 and tuple(h.shape[:2]) == tokens:
            caught[depth] = h.mean(dim=2)


def _model_kwargs(model: nn.Module, inputs: dict, dev) -> tuple[tuple, dict]:
    """Positional and keyword arguments for one batch (see :func:`capture`'s Inputs)."""
    kwargs = {k: v.to(dev) for k, v in inputs.items() if k != PROBE}
    args: tuple = ()
    if PROBE in inputs:
        x = inputs[PROBE].to(dev)
        params = _forward_params(model)
        first = next(model.parameters(), None)
        if x.is_floating_point() and first is not None and first.is_floating_point():
            x = x.to(first.dtype)
        if not x.is_floating_point() and "input_ids" in params:
            kwargs["input_ids"] = x
        elif (
            x.is_floating_point()
            and x.ndim == 3
            and "inputs_embeds" in params
            and x.shape[-1] == _embedding_width(model)
        ):
            kwargs["inputs_embeds"] = x
        else:
            args = (x,)
    config = getattr(model, "config", None)
    if getattr(config, "is_encoder_decoder", False) and "decoder_input_ids" not in kwargs:
        kwargs["decoder_input_ids"] = _decoder_ids(config, kwargs, args, dev)
    return args, kwargs


def _decoder_ids(config, kwargs: dict, args: tuple, dev) -> torch.Tensor:
    """The documented default: the input ids shifted right behind the decoder's start token."""
    candidates = (
        getattr(config, "decoder_start_token_id", None),
        getattr(config, "pad_token_id", None),
        getattr(config, "bos_token_id", None),
    )
    start = next((v for v in candidates if isinstance(v, int)), 0)
    ids = kwargs.get("input_ids")
    if ids is not None:
        shifted = torch.full_like(ids, start)
        shifted[:, 1:] = ids[:, :-1]
        return shifted
    x = kwargs.get("inputs_embeds")
    n = (x if x is not None else args[0] if args else next(iter(kwargs.values()))).shape[0]
    return torch.full((n, 1), start, dtype=torch.long, device=dev)


def _forward_params(model: nn.Module) -> set[str]:
    try:
        return set(inspect.signature(model.forward).parameters)
    except (TypeError, ValueError):
        return set()


def _embedding_width(model: nn.Module) -> int | None:
    get = getattr(model, "get_input_embeddings", None)
    try:
        emb = get() if callable(get) else None
    except (NotImplementedError, AttributeError):
        return None
    return getattr(emb, "embedding_dim", None)


def _runner_and_taps(ck: Checkpoint, model: nn.Module, first_batch: dict, stack: str | None):
    """The module to run and its taps: the whole model, or one tower of a two-tower model."""
    taps = taps_for(ck, model)
    structure = module_structure(model)
    names = [s.name for s in structure.stacks]
    towers = {"text", "vision", "audio"} & set(names)
    if (
        len(towers) < 2
        or not set(names) <= towers  # towers that feed a language model (Phi-4-multimodal)
        or getattr(getattr(model, "config", None), "is_encoder_decoder", False)
    ):
        if stack is not None and stack not in names:
            raise ProbeError(
                f"stack={stack!r}: {ck.name} has the stacks {names}; stack= chooses a tower "
                "of a two-tower model"
            )
        return model, taps
    if stack is None:
        x = first_batch.get(PROBE)
        if x is None or not x.is_floating_point():
            stack = "text"
        else:
            stack = "vision" if x.ndim == 4 else "audio"
    chosen = next((s for s in structure.stacks if s.name == stack), None)
    if chosen is None:
        raise ProbeError(f"stack={stack!r}: {ck.name} has the towers {sorted(towers)}")
    root = chosen.root.rstrip(".")
    try:
        runner = model.get_submodule(root)
    except AttributeError:
        raise ProbeError(f"{ck.name}: cannot find the module of its {stack} tower") from None
    blocks = set(chosen.blocks)
    kept = [t for t in taps if t.module in blocks and t.side == "output"]
    first = Tap(0, chosen.blocks[0], "input")
    head = _head_module(runner, [b[len(root) + 1 :] for b in chosen.blocks])
    tail = [Tap(ck.n_blocks + 1, f"{root}.{head}", "output")] if head is not None else []
    local = [Tap(t.depth, t.module[len(root) + 1 :], t.side) for t in [first, *kept, *tail]]
    return runner, local


def _forward(model, inputs, dev, ck, batch_index) -> None:
    try:
        args, kwargs = _model_kwargs(model, inputs, dev)
        model(*args, **kwargs)
    except torch.cuda.OutOfMemoryError as exc:
        raise ProbeError(
            f"out of GPU memory running {ck.name} on a batch: pass a smaller batch_size, "
            "or device='cpu'"
        ) from exc
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        shapes = {k: tuple(v.shape) for k, v in inputs.items()}
        shape = shapes[PROBE] if list(shapes) == [PROBE] else shapes
        first = ck.entries[0]
        raise ProbeError(
            f"running {ck.name} on the probe failed at batch {batch_index} (inputs of shape "
            f"{shape}; its first weight {first.address} is {first.shape[0]} x {first.shape[1]}): "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. Check that "
            "the probe has the shape and dtype the model expects."
        ) from exc


def _check_budget(kept, batch_n, n_inputs, max_bytes, pooling, max_points) -> None:
    if max_bytes is None:
        return
    per_point = sum(chunks[0].shape[1] * chunks[0].element_size() for chunks in kept.values())
    if pooling == "all":
        n_points = max_points or sum(c.shape[0] for c in next(iter(kept.values()))) * (
            n_inputs / max(batch_n, 1)
        )
    else:
        n_points = n_inputs
    need = int(per_point * n_points)
    if need > max_bytes:
        raise ProbeError(
            f"keeping these hidden states would take about {need / 1024**3:.1f} GiB "
            f"(max_bytes={max_bytes / 1024**3:.1f} GiB): pass max_points=..., "
            "dtype=torch.float16, fewer depths=..., or a larger max_bytes"
        )


class _TokenSample:
    """A seeded uniform sample of at most ``max_points`` real tokens across all batches.

    Every token gets a random key; the tokens with the smallest keys are kept, which is a
    uniform sample without replacement whatever the batch order (reservoir sampling by keys).
    """

    def __init__(self, max_points: int | None, seed: int):
        self.max_points = max_points
        self.gen = torch.Generator().manual_seed(seed)
        self.keys = torch.empty(0)
        self.sample = torch.empty(0, dtype=torch.long)
        self.position = torch.empty(0, dtype=torch.long)

    def add(self, caught, mask, offset, n, kept, dtype) -> None:
        any_state = next(iter(caught.values()))
        t = any_state.shape[1] if any_state.ndim == 3 else 1
        if mask is None or mask.shape != (n, t):
            mask = torch.ones(n, t, dtype=torch.bool)
        rows, cols = torch.nonzero(mask.bool().cpu(), as_tuple=True)
        keys = torch.rand(len(rows), generator=self.gen)
        all_keys = torch.cat([self.keys, keys])
        order = torch.argsort(all_keys)
        if self.max_points is not None:
            order = order[: self.max_points]
        for depth in kept:
            h = caught[depth]
            if h.ndim == 3:
                new = h[rows.to(h.device), cols.to(h.device)]
            else:  # a pooled state (pooler, logits): each token gets its input's state
                new = pool(h, None, "mean")[rows.to(h.device)]
            new = new.to("cpu", dtype)
            old = kept[depth][0] if kept[depth] else new[:0]
            kept[depth] = [torch.cat([old, new])[order]]
        self.keys = all_keys[order]
        self.sample = torch.cat([self.sample, rows + offset])[order]
        self.position = torch.cat([self.position, cols])[order]

    def states(self, kept) -> dict[int, torch.Tensor]:
        order = torch.argsort(self.sample * 1_000_000 + self.position)
        self._final = order
        return {d: chunks[0][order] for d, chunks in kept.items()}

    def labels(self, point_labels, tokenizer, batches) -> dict[str, np.ndarray]:
        sample = self.sample[self._final].numpy()
        position = self.position[self._final].numpy()
        out = {k: v[sample] for k, v in point_labels.items()}
        out["sample"] = sample
        out["position"] = position
        if tokenizer is not None:
            ids = torch.cat(
                [
                    torch.nn.functional.pad(
                        b["input_ids"], (0, _max_len(batches) - b["input_ids"].shape[1])
                    )
                    for b, _ in batches
                ]
            )
            out["token"] = np.asarray(
                tokenizer.convert_ids_to_tokens(ids[sample, position].tolist())
            )
        return out


def _max_len(batches) -> int:
    return max(b["input_ids"].shape[1] for b, _ in batches)


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(show: bool, total: int, name: str):
    if not show:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"capture {name}", unit="input")
