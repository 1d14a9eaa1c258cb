"""float32 ``x^b`` for numba loops that the compiler turns into vector code (imported lazily:
importing numba takes a while).

A call to the C library's ``powf`` keeps a loop scalar (numba has no vector ``pow`` without
Intel's SVML); :func:`powf` is plain arithmetic on the float's bits, which LLVM vectorises:

* ``log2 x = e + log2 m`` with ``x = m 2^e``, ``m`` in ``[sqrt(1/2), sqrt(2))``, and
  ``log2 m = (2 / ln 2) atanh t = (2 / ln 2) (t + t^3/3 + ... + t^9/9)``, ``t = (m - 1) / (m + 1)``
  (``|t| < 0.172``: the first omitted term is below 2e-9);
* ``2^y = 2^k e^(f ln 2)``, ``k = round(y)``, ``|f| <= 1/2``, ``e^z`` by its Taylor polynomial of
  degree 7 (remainder below 3e-9), ``2^k`` written into the exponent bits; ``y`` clipped to
  ``[-126, 126]``.

Relative error against float64 ``x**b`` at most ~2.6e-6 for ``x`` in ``[1e-12, 1e8]`` (the
rounding of ``b log2 x`` in float32; ~1e-6 for ``x`` in ``[1e-4, 1e4]``), checked in
``tests/unit/test_fastmath.py``; ``powf(0, b)`` is ~1e-35 instead of 0.
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import intrinsic

_SQRT2 = np.float32(np.sqrt(2.0))
_TWO_OVER_LN2 = np.float32(2.0 / np.log(2.0))
_LN2 = np.float32(np.log(2.0))
_ONE, _HALF = np.float32(1.0), np.float32(0.5)
_MANTISSA, _ONE_BITS = np.int32(0x7FFFFF), np.int32(0x3F800000)
_EXPONENT_MAX = np.float32(126.0)
#: 1/9, 1/7, 1/5, 1/3, 1: the atanh series of log2f in powers of t^2, highest first
_ATANH = tuple(np.float32(1 / c) for c in (9, 7, 5, 3, 1))
#: 1/7!, ..., 1/1!, 1/0!: the Taylor polynomial of exp2f, highest power first
_EXP = tuple(np.float32(1 / np.prod(np.arange(1, n + 1))) for n in range(7, -1, -1))


@intrinsic
def _bits(typingctx, x):
    """The bits of a float32 as an int32."""
    if x != types.float32:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], context.get_value_type(types.int32))

    return types.int32(types.float32), codegen


@intrinsic
def _float(typingctx, i):
    """The float32 whose bits are the low 32 bits of the integer ``i``."""
    if not isinstance(i, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        low = context.cast(builder, args[0], signature.args[0], types.int32)
        return builder.bitcast(low, context.get_value_type(types.float32))

    return types.float32(i), codegen


@numba.njit(inline="always", fastmath=True)
def log2f(x):
    """``log2 x`` for a positive float32 ``x`` (see the module docstring)."""
    i = _bits(x)
    e = np.float32(((i >> 23) & 255) - 127)
    m = _float((i & _MANTISSA) | _ONE_BITS)  # in [1, 2)
    high = m > _SQRT2
    m = _HALF * m if high else m
    e = e + _ONE if high else e
    t = (m - _ONE) / (m + _ONE)
    t2 = t * t
    series = _ATANH[0]  # Horner's rule
    for c in _ATANH[1:]:
        series = series * t2 + c
    return e + _TWO_OVER_LN2 * t * series


@numba.njit(inline="always", fastmath=True)
def exp2f(y):
    """``2^y`` for a float32 ``y``, clipped to ``[-126, 126]`` (see the module docstring)."""
    y = min(max(y, -_EXPONENT_MAX), _EXPONENT_MAX)
    k = np.floor(y + _HALF)
    z = (y - k) * _LN2
    taylor = _EXP[0]  # Horner's rule
    for c in _EXP[1:]:
        taylor = taylor * z + c
    return taylor * _float((np.int32(k) + 127) << 23)


@numba.njit(inline="always", fastmath=True)
def powf(x, b):
    """``x^b`` for a float32 ``x >= 0`` and exponent ``b``: ``2^(b log2 x)``."""
    return exp2f(b * log2f(x))
