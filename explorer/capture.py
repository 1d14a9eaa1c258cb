"""Run a probe set through a model and keep its hidden states per depth, memory-bounded.

Depth 0 is the input to the first block (the embeddings' output), depth i (1..L) the output of
block i, depth L+1 the output of the head (or of the final norm when there is no head). Plain
MLPs and unknown models use module order: depth i is the input of the (i+1)-th weighted module,
which is the previous layer's output after its activation.

Token pooling for (batch, tokens, dim) outputs: ``"mean"`` (over real tokens, by the attention
mask), ``"first"`` (the CLS token), ``"last"`` (the last real token), or ``"all"`` (every real
token, subsampled to ``max_points`` with a seeded uniform sample, keeping sample and position;
depths whose output is already one vector per input, like BERT's pooler, repeat it per token).
Convolutional outputs (batch, channels, h, w) are averaged over space.
"""

from __future__ import annotations

import contextlib
import re
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

POOLINGS = ("mean", "first", "last", "all")


@dataclass(frozen=True)
class Tap:
    """Where one depth's hidden state is read: the ``input`` or ``output`` of a module."""

    depth: int
    module: str
    side: str


def taps_for(ck: Checkpoint, model: nn.Module) -> list[Tap]:
    """The module (and side) that yields each depth's hidden state for this checkpoint."""
    layout = ck._layout
    names = [n for n, _ in model.named_modules()]
    family = layout.family
    if family is not None and family.block_module:
        pattern = re.compile(family.block_module)
        depth_of_key = {k: i + 1 for i, k in enumerate(layout.block_keys)}
        blocks: dict[int, str] = {}
        for name in names:
            m = pattern.search(name)
            if not m:
                continue
            key = tuple(
                int(v) for k, v in sorted(m.groupdict().items()) if re.fullmatch(r"b\d+", k)
            )
            if key in depth_of_key:
                blocks.setdefault(depth_of_key[key], name)
        if blocks:
            taps = [Tap(0, blocks[min(blocks)], "input")]
            taps += [Tap(d, blocks[d], "output") for d in sorted(blocks)]
            head = _first_match(names, family.head_modules)
            if head is not None:
                taps.append(Tap(max(blocks) + 1, head, "output"))
            return taps
    # module order: the weighted modules in the order of the layer table
    weighted = []
    for e in layout.entries:
        module_name = e.name.rsplit(".", 1)[0] if "." in e.name else ""
        module_name = module_name.replace(".base_layer", "")
        if module_name in names and module_name not in weighted:
            weighted.append(module_name)
    if not weighted:
        raise ProbeError(f"{ck.name}: could not find the modules that hold its weights")
    taps = [Tap(i, name, "input") for i, name in enumerate(weighted)]
    taps.append(Tap(len(weighted), weighted[-1], "output"))
    return taps


def _first_match(names: list[str], patterns: Sequence[str]) -> str | None:
    for pattern in patterns:
        for name in names:
            if re.search(pattern, name):
                return name
    return None


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
                t = first_tensor(args) if args else first_tensor(kwargs)
                caught[depth] = t

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
        ck, probe, batch_size, max_length, labels, max_points, seed, pooling
    )
    taps = taps_for(ck, model)
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
        with torch.no_grad(), hooked(model, taps) as caught:
            offset = 0
            for batch_index, (inputs, mask) in enumerate(batches):
                caught.clear()
                _forward(model, inputs, mask, dev, ck, batch_index)
                n = _batch_len(inputs)
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


def _batches(ck, probe, batch_size, max_length, labels, max_points, seed, pooling):
    """Turn any probe into a re-iterable list of ``(inputs, mask)`` batches plus labels."""
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
        batches = [(x[i : i + batch_size], None) for i in range(0, len(index), batch_size)]
    if n == 0:
        raise ProbeError("the probe is empty: give at least one input")
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
    if isinstance(inputs, dict):
        return int(next(iter(inputs.values())).shape[0])
    return int(inputs.shape[0])


def _forward(model, inputs, mask, dev, ck, batch_index) -> None:
    try:
        if isinstance(inputs, dict):
            model(**{k: v.to(dev) for k, v in inputs.items()})
        else:
            x = inputs.to(dev)
            if x.is_floating_point():
                first = next(model.parameters(), None)
                if first is not None and first.is_floating_point():
                    x = x.to(first.dtype)
            model(x)
    except torch.cuda.OutOfMemoryError as exc:
        raise ProbeError(
            f"out of GPU memory running {ck.name} on a batch: pass a smaller batch_size, "
            "or device='cpu'"
        ) from exc
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        shape = (
            {k: tuple(v.shape) for k, v in inputs.items()}
            if isinstance(inputs, dict)
            else tuple(inputs.shape)
        )
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
