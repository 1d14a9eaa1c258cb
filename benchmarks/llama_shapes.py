"""The 7 projection shapes of one Llama-2-7B layer (hidden 4096, MLP 11008), shared by the benchmarks."""

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
