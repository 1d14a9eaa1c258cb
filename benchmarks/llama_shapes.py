"""What the Llama-2-7B-scale benchmarks share: the 7 projection shapes of one layer (hidden 4096,
MLP 11008), a base matrix with its LoRA-like fine-tune, and the device sync around a timing."""

import torch

HIDDEN, MLP = 4096, 11008


def shapes(shrink: int = 1) -> dict[str, tuple[int, int]]:
    """``{parameter suffix: (out, in)}``; ``shrink`` divides the widths for smoke tests."""
    h, f = HIDDEN // shrink, MLP // shrink
    return {
        "self_attn.q_proj": (h, h),
        "self_attn.k_proj": (h, h),
        "self_attn.v_proj": (h, h),
        "self_attn.o_proj": (h, h),
        "mlp.gate_proj": (f, h),
        "mlp.up_proj": (f, h),
        "mlp.down_proj": (h, f),
    }


def base_and_tuned(
    m: int, n: int, gen: torch.Generator, device: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """``W ~ N(0, 0.02^2)`` (m x n) and ``W + U D``, a rank-16 update with entries of
    ``U``, ``D`` ~ N(0, 0.05^2) (a LoRA-like fine-tune), drawn from ``gen`` in that order."""
    w = torch.randn((m, n), generator=gen, device=device).mul_(0.02)
    up = torch.randn((m, 16), generator=gen, device=device).mul_(0.05)
    down = torch.randn((16, n), generator=gen, device=device).mul_(0.05)
    return w, w + up @ down


def sync(device: str) -> None:
    """Wait for the device's queued work (CUDA), so that a wall-clock timing covers it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
