"""Branch-free exponentials for per-neuron loops: e^x, and phi1, phi2 of a non-positive argument.

libm's ``exp``/``expm1`` are opaque calls with branches inside, so a loop that calls them per neuron runs
one neuron at a time. The functions here are straight-line arithmetic (fused multiply-adds, integer adds and
shifts, selects): inlined into a loop, LLVM turns them into SIMD code (4 doubles per AVX2 instruction).

e^x (Cody-Waite). x = k ln2 + r with k = round(x / ln2), |r| <= ln2/2 (+ rounding):

* k is rounded by adding S = 1.5 * 2^52: t = x/ln2 + S has an ulp of 1, so t = S + k and the low bits of t's
  bit pattern are k in two's complement (no float -> int conversion, which AVX2 lacks for int64);
* r = (x - k LN2_HI) - k LN2_LO: LN2_HI holds ln2's first 32 bits, so k LN2_HI is exact for |k| < 2^21 and
  the first difference is exact (Sterbenz); r carries one rounding, <= 2^-54 |r|;
* e^r = 1 + q, q = expm1(r) = r + r^2 P(r), P(r) = sum_{i=0}^{12} r^i/(i+2)! (Horner in FMAs): the
  truncation is below |r|^13/15! <= 8e-19, 0.007 ulp of e^r;
* 2^k is built from its bit pattern ((k + 1023) << 52, reinterpreted as a double) in two halves,
  2^k = 2^{k1} 2^{k - k1}, k1 = k >> 1, both normal for every k reached: (1 + q) 2^{k1} is exact, and the
  last product rounds once, into the subnormals if e^x is there (gradual underflow, as libm) and to 0 below.

x is first clamped to [-746, 710] (a select, NaN passes): below, e^x < 2^-1076 rounds to +0 (as does
-inf); above, 2^{k1} 2^{k-k1} overflows to +inf. The result is within 1 ulp of e^x (tests/test_vexp.py
checks it against mpmath across the range, subnormals included); e^0 = 1 exactly.

phi1(z) = (e^z - 1)/z and phi2(z) = (e^z - 1 - z)/z^2 (limits 1 and 1/2 at 0), for z <= 0: the
exponential's pieces give both without cancellation. With k = 0 (|z| <= ln2/2) r = z exactly, and
phi1 = 1 + z P(z), phi2 = P(z) (the series itself). Otherwise |z| > 0.34: expm1(z) = 2^k q + (2^k - 1)
(one FMA; 2^k - 1 is exact for k >= -53 and rounds to -1 below, where e^z < 2^-53), phi1 = expm1(z)/z
(no cancellation left). phi2 = (e^z - 1 - z)/z^2 still cancels there (by up to 2.5 bits at z = -ln2/2): its
numerator is summed as 2^k (r + r_lo + r^2 P(r)) + (2^k - 1 - z), with r_lo the rounding error of r (exact
by Sterbenz and one FMA) and 2^k r, 2^k - 1 - z exact for k = -1, where the cancellation is worst. Both
forms are computed and one is selected, so there is no branch. (z^2 is finite for |z| < 1e154.)

``fma``, the division (without Numba's zero check: the divisors here are non-zero) and the bit casts compile
to Numba intrinsics that emit plain LLVM IR (llvm.fma, fdiv, bitcast), so the same code compiles for any
Numba target; called from plain Python they compute the same values (an exact rational fma, struct casts),
so the functions here also run, bit for bit, without the JIT.
"""

from __future__ import annotations

import math
import struct
from fractions import Fraction

from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable

__all__ = ["SHORT_X", "fma", "vexp", "vexp_phis", "vexp_phis_short", "vexp_short"]

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # 0x3fe62e42fee00000: ln2's first 32 bits
_LN2_LO = 1.90821492927058770002e-10  # ln2 - _LN2_HI
_SHIFT = 6755399441055744.0  # 1.5 * 2^52: adding it rounds to an integer, kept in the low bits
_SHIFT_BITS = 0x4338000000000000  # its bit pattern
_X_MIN = -746.0  # e^x < 2^-1076 below: rounds to +0
_X_MAX = 710.0  # e^x > 2^1024 above: overflows to +inf
#: |x| <= SHORT_X gives k = 0 (|x| / ln2 <= 0.4905 < 1/2): then r = x exactly and 2^k = 1, so the series alone is
#: e^x, bit for bit (vexp_short, vexp_phis_short): a loop whose arguments all lie there skips the reduction
SHORT_X = 0.34

# 1/(i+2)!, i = 0..12: the Taylor coefficients of P(r) = (e^r - 1 - r)/r^2
_P0 = 1.0 / 2.0
_P1 = 1.0 / 6.0
_P2 = 1.0 / 24.0
_P3 = 1.0 / 120.0
_P4 = 1.0 / 720.0
_P5 = 1.0 / 5040.0
_P6 = 1.0 / 40320.0
_P7 = 1.0 / 362880.0
_P8 = 1.0 / 3628800.0
_P9 = 1.0 / 39916800.0
_P10 = 1.0 / 479001600.0
_P11 = 1.0 / 6227020800.0
_P12 = 1.0 / 87178291200.0


def fma(a: float, b: float, c: float) -> float:
    """a * b + c with one rounding (in jitted code llvm.fma.f64: one instruction on FMA hardware, vectorisable)."""
    if math.isfinite(a) and math.isfinite(b) and math.isfinite(c):
        try:
            return float(Fraction(a) * Fraction(b) + Fraction(c))  # int / int rounds correctly
        except OverflowError:
            return a * b + c
    return a * b + c


def _div(a: float, b: float) -> float:
    """a / b for b != 0 (in jitted code without Numba's zero-division check, whose branch would stop vectorisation)."""
    return a / b


def _bits(x: float) -> int:
    """The bit pattern of a float64 as an int64."""
    return struct.unpack("<q", struct.pack("<d", x))[0]


def _from_bits(i: int) -> float:
    """The float64 whose bit pattern is the int64 i."""
    return struct.unpack("<d", struct.pack("<q", i))[0]


# jitted versions: plain LLVM IR (the Python ones above serve plain Python calls, e.g. NUMBA_DISABLE_JIT=1)
@intrinsic
def _fma_ir(typingctx, a, b, c):  # noqa: ANN001, ANN202
    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        return builder.fma(*args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@intrinsic
def _div_ir(typingctx, a, b):  # noqa: ANN001, ANN202
    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        return builder.fdiv(*args)

    return types.float64(types.float64, types.float64), codegen


@intrinsic
def _bits_ir(typingctx, x):  # noqa: ANN001, ANN202
    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits_ir(typingctx, i):  # noqa: ANN001, ANN202
    def codegen(context, builder, signature, args):  # noqa: ANN001, ANN202
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@overload(fma)
def _fma_jit(a, b, c):  # noqa: ANN001, ANN202
    return lambda a, b, c: _fma_ir(float(a), float(b), float(c))


@overload(_div)
def _div_jit(a, b):  # noqa: ANN001, ANN202
    return lambda a, b: _div_ir(float(a), float(b))


@overload(_bits)
def _bits_jit(x):  # noqa: ANN001, ANN202
    return lambda x: _bits_ir(x)


@overload(_from_bits)
def _from_bits_jit(i):  # noqa: ANN001, ANN202
    return lambda i: _from_bits_ir(i)


@register_jitable
def _reduce(x: float) -> tuple[float, float, int, float, float]:
    """(r, r_lo, k, P(r), q) for the clamped x: x = k ln2 + r + r_lo (r_lo: r's rounding error),
    q = e^r - 1 = r + r^2 P(r)."""
    x = min(max(x, _X_MIN), _X_MAX)  # selects (max(nan, c) is nan); a branch here invites jump threading
    t = fma(x, _LOG2E, _SHIFT)
    kf = t - _SHIFT
    r_hi = fma(-kf, _LN2_HI, x)  # exact
    r = fma(-kf, _LN2_LO, r_hi)
    r_lo = fma(-kf, _LN2_LO, r_hi - r)  # r_hi - r is exact (Sterbenz)
    p, q = _series(r)
    return r, r_lo, _bits(t) - _SHIFT_BITS, p, q


@register_jitable
def _series(r: float) -> tuple[float, float]:
    """(P(r), q = e^r - 1 = r + r^2 P(r)) for |r| <= ln2/2 (Horner in FMAs)."""
    p = fma(_P12, r, _P11)
    p = fma(p, r, _P10)
    p = fma(p, r, _P9)
    p = fma(p, r, _P8)
    p = fma(p, r, _P7)
    p = fma(p, r, _P6)
    p = fma(p, r, _P5)
    p = fma(p, r, _P4)
    p = fma(p, r, _P3)
    p = fma(p, r, _P2)
    p = fma(p, r, _P1)
    p = fma(p, r, _P0)
    return p, fma(r * r, p, r)


@register_jitable
def _pow2_halves(k: int) -> tuple[float, float]:
    """(2^{k1}, 2^{k - k1}), k1 = k >> 1: both normal for -2044 < k < 2046."""
    k1 = k >> 1
    return _from_bits((k1 + 1023) << 52), _from_bits((k - k1 + 1023) << 52)


@register_jitable
def vexp(x: float) -> float:
    """e^x within 1 ulp, subnormal results included; +0 below -745.2 and for -inf, +inf above 709.8."""
    _, _, k, _, q = _reduce(x)
    s1, s2 = _pow2_halves(k)
    return ((1.0 + q) * s1) * s2


@register_jitable
def vexp_short(x: float) -> float:
    """:func:`vexp` for |x| <= SHORT_X, bit for bit (k = 0 there: no range reduction, no scaling)."""
    _, q = _series(x)
    return 1.0 + q


@register_jitable
def vexp_phis_short(z: float) -> tuple[float, float, float]:
    """:func:`vexp_phis` for -SHORT_X <= z <= 0, bit for bit (k = 0 there, the series branch)."""
    p, q = _series(z)
    return 1.0 + q, fma(z, p, 1.0), p


@register_jitable
def vexp_phis(z: float) -> tuple[float, float, float]:
    """(e^z, phi1(z), phi2(z)) for z <= 0 (see the module docstring); unused parts cost nothing once inlined."""
    r, r_lo, k, p, q = _reduce(z)
    s1, s2 = _pow2_halves(k)
    near = k == 0
    s = s1 * s2
    zd = 1.0 if near else z  # a non-zero divisor in the lanes that take the series
    # both forms are computed and then selected: conditional code would stop the vectoriser
    phi1_far = _div(fma(s, q, s - 1.0), zd)
    # e^z - 1 - z = 2^k (r + r_lo + r^2 P) + (2^k - 1 - z), the exact parts first
    phi2_far = _div(fma(s * (r * r), p, fma(s, r, (s - 1.0) - z) + s * r_lo), zd * zd)
    phi1_near = fma(r, p, 1.0)
    return ((1.0 + q) * s1) * s2, phi1_near if near else phi1_far, p if near else phi2_far
