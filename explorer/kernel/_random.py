"""Counter-based random numbers for the numba kernels: a draw is a pure function of its
``(seed, ...)`` counters, so parallel loops give the same numbers whatever the thread count or
order (imported lazily: importing numba takes a while)."""

from __future__ import annotations

import numba
import numpy as np

#: 2^64 / golden ratio, the increment of splitmix64 (Steele, Lea & Flood 2014).
GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_32 = np.uint64(32)


@numba.njit(inline="always")
def mix(z):
    """splitmix64's finaliser: a bijective scramble of 64 bits."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@numba.njit(inline="always")
def below(h, n):
    """An index in ``[0, n)`` from the high 32 bits of the hash ``h``: ``floor(h_hi n / 2^32)``
    (Lemire 2019: no 64-bit division; ``n < 2^32``)."""
    return np.int64(((h >> _32) * np.uint64(n)) >> _32)
