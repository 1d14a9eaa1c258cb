"""Training loops of the demo models: small, seeded, single-threaded, bit-for-bit repeatable."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn


def mlp(widths: Sequence[int]) -> nn.Sequential:
    """A plain ``nn.Sequential`` of Linear layers with ReLU between them (float32).

    ``mlp([64, 128, 128, 64, 10])`` has parameters ``0.*, 2.*, 4.*, 6.*``; explorer reads it as
    family ``mlp``: three hidden blocks (``mlp.up``) and a ``head``.
    """
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        if i:
            layers.append(nn.ReLU())
        layers.append(nn.Linear(n_in, n_out, dtype=torch.float32))
    return nn.Sequential(*layers)


def linear_names(model: nn.Sequential) -> list[str]:
    """The names of the Linear modules of :func:`mlp` (``["0", "2", "4", "6"]``)."""
    return [name for name, m in model.named_children() if isinstance(m, nn.Linear)]


@contextlib.contextmanager
def deterministic(seed: int) -> Iterator[None]:
    """Seed torch and use one CPU thread; restore both on exit.

    The global random state is forked, so the caller's own random stream is left untouched.
    Single-threaded eager CPU kernels of these small dense layers are deterministic, so two
    builds give the same bits. ``torch.use_deterministic_algorithms`` is not switched on: it
    adds nothing on the CPU here and its first call imports torch's compiler stack (~2.5 s).
    """
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(threads)


def fit(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    seed: int,
    params: Iterable[torch.nn.Parameter] | None = None,
) -> float:
    """Minibatch Adam on cross-entropy; the shuffling order comes from ``seed``.

    Trains ``params`` (default: every parameter that requires a gradient). Returns the mean
    training loss of the last epoch.
    """
    xs = torch.tensor(np.asarray(x), dtype=torch.float32)
    ys = torch.tensor(np.asarray(y), dtype=torch.int64)
    if params is None:
        params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(list(params), lr=lr)
    order = torch.Generator().manual_seed(seed)
    model.train()
    last = float("nan")
    for _ in range(epochs):
        perm = torch.randperm(len(xs), generator=order)
        total = 0.0
        for start in range(0, len(xs), batch_size):
            idx = perm[start : start + batch_size]
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(xs[idx]), ys[idx])
            loss.backward()
            optimizer.step()
            total += loss.item() * len(idx)
        last = total / len(xs)
    model.eval()
    return last


@torch.no_grad()
def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Fraction of rows whose arg-max logit is the label."""
    was_training = model.training
    model.eval()
    logits = model(torch.tensor(np.asarray(x), dtype=torch.float32))
    model.train(was_training)
    return float((logits.argmax(dim=1).numpy() == np.asarray(y)).mean())


def n_params(model: nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
