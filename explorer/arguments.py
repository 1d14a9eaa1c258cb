"""Range checks for public arguments: an :class:`~explorer.errors.ArgumentError` that names the
argument, the value given and the valid range, before any work starts."""

from __future__ import annotations

import math
from collections.abc import Iterable
from numbers import Integral, Real

from explorer.errors import ArgumentError

__all__ = ["choice", "integer", "integers", "real"]


def _range(low, high) -> str:
    return f">= {low}" if high is None else f"in [{low}, {high}]"


def integer(name: str, value, low: int = 1, high: int | None = None, hint: str = "") -> int:
    """``value`` as an int in ``[low, high]`` (``high=None``: no upper bound)."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ArgumentError(f"{name} must be an integer {_range(low, high)}, got {value!r}{hint}")
    if value < low or (high is not None and value > high):
        raise ArgumentError(f"{name}={value} is out of range: it must be {_range(low, high)}{hint}")
    return int(value)


def integers(name: str, values: Iterable, low: int = 1, high: int | None = None) -> list[int]:
    """A non-empty sequence of ints, each in ``[low, high]``."""
    if isinstance(values, Integral | str) or not isinstance(values, Iterable):
        raise ArgumentError(f"{name} must be a sequence of integers, got {values!r}")
    values = list(values)
    if not values:
        raise ArgumentError(f"{name} is empty: give at least one integer {_range(low, high)}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, Integral) or v < low or (high and v > high):
            raise ArgumentError(
                f"{name}={values} holds {v!r}: every entry must be an integer {_range(low, high)}"
            )
    return [int(v) for v in values]


def real(name: str, value, low: float, high: float, *, open_low: bool = False) -> float:
    """``value`` as a finite float in ``[low, high]`` (``(low, high]`` with ``open_low``)."""
    bracket = "(" if open_low else "["
    where = f"in {bracket}{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ArgumentError(f"{name} must be a number {where}, got {value!r}")
    if value < low or value > high or (open_low and value == low):
        raise ArgumentError(f"{name}={value} is out of range: it must be {where}")
    return float(value)


def choice(name: str, value, allowed: Iterable) -> object:
    """``value`` if it is one of ``allowed``."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ArgumentError(f"{name}={value!r} is not one of {allowed}")
    return value
