"""How a stored tensor becomes the (out, in) matrix that is analysed.

A matrix is described by its parameter name and a tuple of transforms, applied in order:

- ``e{j}``: expert ``j`` of experts stored as one (experts, out, in) tensor;
- leading singleton axes are dropped (a ViT's (1, n, d) position table), and a tensor with more
  than two axes becomes (out, in * k * k) (convolutions);
- ``T``: transpose (GPT-2's Conv1D stores (in, out));
- ``rows:G:P:O:L``: rows ``[g * P + O, g * P + O + L)`` of every group ``g < G``, so a fused
  projection gives its parts: ``G = 1`` cuts one contiguous range (GPT-2's [q; k; v], a
  [gate; up] pair), ``G = heads`` and ``P = 3 * head_dim`` take one third of every head (GPT-NeoX
  and Bloom store [q_h, k_h, v_h] head after head).
"""

from __future__ import annotations

import math


def rows(groups: int, period: int, offset: int, length: int) -> str:
    """The transform that keeps ``length`` rows at ``offset`` of each of ``groups`` periods."""
    return f"rows:{groups}:{period}:{offset}:{length}"


def matrix_shape(stored: tuple[int, ...], transforms: tuple[str, ...]) -> tuple[int, int] | None:
    """Shape of the analysed matrix, or None for tensors that are not matrices (1-D, scalars)."""
    shape = list(stored)
    for t in transforms:
        if t.startswith("e"):
            shape = shape[1:]
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
        elif t.startswith("rows:"):
            groups, period, _, length = (int(x) for x in t.split(":")[1:])
            if out != groups * period:
                return None
            out = groups * length
    return (out, inp)


def effective_ndim(stored: tuple[int, ...]) -> int:
    """Axes left once leading singleton axes are dropped (never fewer than two)."""
    shape = list(stored)
    while len(shape) > 2 and shape[0] == 1:
        shape.pop(0)
    return len(shape)


def apply_transforms(tensor, transforms: tuple[str, ...]):
    """Build the analysed (out, in) matrix from the stored tensor (see the module docstring)."""
    t = tensor
    for tr in transforms:
        if tr.startswith("e"):
            t = t[int(tr[1:])]
    while t.ndim > 2 and t.shape[0] == 1:
        t = t.squeeze(0)
    if t.ndim > 2:
        t = t.reshape(t.shape[0], -1)
    for tr in transforms:
        if tr == "T":
            t = t.T
        elif tr.startswith("rows:"):
            groups, period, offset, length = (int(x) for x in tr.split(":")[1:])
            t = t.reshape(groups, period, -1)[:, offset : offset + length].reshape(
                groups * length, -1
            )
    return t
