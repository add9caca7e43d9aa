"""Branch-free exponentials (``exactsnn/neurons/vexp.py``) against mpmath, and the per-neuron LIF factors on them.

* ``vexp``: within 1 ulp of e^x on grids over the whole range (tiny |x|, the reduction's boundaries, the
  subnormal results and the underflow boundary, the overflow end) and on hypothesis samples; exact special
  values (e^0 = 1, +0 below underflow and at -inf, +inf above overflow, NaN passes);
* ``vexp_phis`` (z <= 0): e^z within 1 ulp, phi1 within 2 ulp, phi2 within 4 ulp (2.8 seen);
* the short forms equal the general ones bit for bit for |x| <= SHORT_X, and plain Python (the fallbacks of
  the intrinsics) equals the jitted code bit for bit;
* ``lif_rate_factors`` / ``lif_rate_tangents`` (all, and their short-stretch form) against 120-digit closed
  forms of the same (h, r_m, r_s) over random rates and gaps (tau_mem == tau_syn, nearly equal, far apart; h up
  to 200 s): within 4 ulp x (1 + h max(r_m, r_s)) (the second factor is the conditioning of e^{-h r} to the
  rounding of h r; dc/dtau_mem in ulps of its larger term, as it is a difference), and the factors agree with
  the libm-based ``lif_factors`` to 8 ulp x (1 + h max(r_m, r_s)).
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

from exactsnn.neurons.lif import lif_factors, lif_rate_factors, lif_rate_tangents, lif_short_stretch
from exactsnn.neurons.vexp import SHORT_X, vexp, vexp_phis, vexp_phis_short, vexp_short

LN2 = math.log(2.0)


@njit
def _vexp_all(x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    for i in range(x.size):
        out[i] = vexp(x[i])
    return out


@njit
def _phis_all(z: np.ndarray, short: bool) -> np.ndarray:
    out = np.empty((3, z.size))
    for i in range(z.size):
        ez, p1, p2 = vexp_phis_short(z[i]) if short else vexp_phis(z[i])
        out[0, i] = ez
        out[1, i] = p1
        out[2, i] = p2
    return out


@njit
def _tangents_all(h: np.ndarray, r_m: np.ndarray, r_s: np.ndarray, short: bool) -> np.ndarray:
    out = np.empty((10, h.size))
    for i in range(h.size):
        t = lif_rate_tangents(h[i], r_m[i], r_s[i], short)
        for k in range(7):
            out[k, i] = t[k]
        a_m, c, a_s = lif_rate_factors(h[i], r_m[i], r_s[i], short)
        out[7, i] = a_m
        out[8, i] = c
        out[9, i] = a_s
    return out


def _ulps(got: float, ref: mp.mpf, floor: float = 2.0**-1074) -> float:
    """|got - ref| in ulps of the double nearest ref (subnormal ulps below the normal range)."""
    r = float(ref)
    return float(abs(mp.mpf(got) - ref) / max(math.ulp(r), floor))


def _exp_ref(x: float) -> mp.mpf:
    with mp.workdps(40):
        return mp.exp(mp.mpf(x))


def _phis_ref(z: float) -> tuple[mp.mpf, mp.mpf]:
    with mp.workdps(60):
        zz = mp.mpf(z)
        if abs(z) < 0.5:  # the series: expm1 itself would cancel at 60 digits for tiny z
            return (mp.fsum(zz**k / mp.factorial(k + 1) for k in range(60)),
                    mp.fsum(zz**k / mp.factorial(k + 2) for k in range(60)))
        em = mp.expm1(zz)
        return em / zz, (em - zz) / zz**2


# ----------------------------------------------------------------------------------------------- vexp
def _grid() -> np.ndarray:
    rng = np.random.default_rng(0)
    k = np.arange(-1076, 1025)
    return np.concatenate([
        rng.uniform(-746.0, 710.0, 6000),
        -np.exp(rng.uniform(-700, 0, 1000)), np.exp(rng.uniform(-700, 0, 500)),  # tiny |x|
        (k + 0.5) * LN2, (k - 0.5) * LN2, k * LN2,  # the reduction's boundaries and its exact points
        rng.uniform(-745.2, -708.0, 2000),  # subnormal results
        np.linspace(-745.2, -745.0, 400),  # the underflow boundary (2^-1075 = e^-745.13)
        np.linspace(709.0, 709.782, 200),  # the overflow end (e^709.7827 = max double)
        np.nextafter(SHORT_X, 0) * np.array([-1.0, 1.0]), [-5e-324, 5e-324, -1e-300, 1e-300, -0.5, 0.5],
    ])


def test_vexp_within_one_ulp_over_the_whole_range():
    x = _grid()
    x = x[(x >= -745.2) & (x <= 709.78)]
    got = _vexp_all(x)
    worst = max(_ulps(g, _exp_ref(v)) for g, v in zip(got, x, strict=True))
    assert worst <= 1.0, worst


@settings(max_examples=300, deadline=None)
@given(st.floats(min_value=-746.0, max_value=0.0))
def test_vexp_within_one_ulp_hypothesis(x):
    assert _ulps(_vexp_all(np.array([x]))[0], _exp_ref(x)) <= 1.0


def test_vexp_special_values():
    x = np.array([0.0, -0.0, -np.inf, np.inf, np.nan, -745.2, -746.0, -800.0, -1e300, 709.79, 710.0, 1e300])
    got = _vexp_all(x)
    assert got[0] == 1.0 and got[1] == 1.0
    assert np.all(got[[2, 5, 6, 7, 8]] == 0.0) and not np.any(np.signbit(got[[2, 5, 6, 7, 8]]))
    assert np.all(np.isposinf(got[[3, 9, 10, 11]]))
    assert np.isnan(got[4])
    assert _vexp_all(np.array([-745.1]))[0] == 5e-324  # the smallest subnormal (gradual underflow)


# ----------------------------------------------------------------------------------------------- phi1, phi2
def test_phis_within_a_few_ulps():
    rng = np.random.default_rng(1)
    z = np.concatenate([
        -rng.uniform(0.0, 50.0, 3000), -np.exp(rng.uniform(-40, 1, 1500)), -rng.uniform(0.3, 1.2, 3000),
        -np.arange(1, 40) * LN2 / 2, -np.nextafter(SHORT_X, 1.0) * np.array([1.0]),
        [0.0, -0.0, -5e-324, -1e-300, -800.0, -1e6],
    ])
    got = _phis_all(z, False)
    worst = [0.0, 0.0, 0.0]
    for i, v in enumerate(z):
        p1, p2 = _phis_ref(v)
        for k, ref in enumerate((_exp_ref(v), p1, p2)):
            worst[k] = max(worst[k], _ulps(got[k, i], ref))
    assert worst[0] <= 1.0 and worst[1] <= 2.0 and worst[2] <= 4.0, worst
    assert tuple(_phis_all(np.array([0.0]), False)[:, 0]) == (1.0, 1.0, 0.5)


def test_short_forms_are_the_general_ones_bit_for_bit():
    rng = np.random.default_rng(2)
    x = np.concatenate([rng.uniform(-SHORT_X, SHORT_X, 20000), [-SHORT_X, SHORT_X, 0.0, -0.0, -5e-324]])
    short = np.array([vexp_short(v) for v in x[:50]])  # plain Python too
    assert np.array_equal(short, _vexp_all(x[:50]))
    z = -np.abs(x)
    assert np.array_equal(_phis_all(z, True), _phis_all(z, False))
    h = rng.uniform(0.0, 2e-3, 5000)
    r_m, r_s = 1.0 / rng.uniform(1e-3, 0.1, h.size), 1.0 / rng.uniform(1e-3, 0.1, h.size)
    ok = np.array([lif_short_stretch(a, max(b, c)) for a, b, c in zip(h, r_m, r_s, strict=True)])
    assert ok.sum() > 1000
    assert np.array_equal(_tangents_all(h[ok], r_m[ok], r_s[ok], True), _tangents_all(h[ok], r_m[ok], r_s[ok], False))


def test_plain_python_equals_the_jit_bit_for_bit():
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.uniform(-746.0, 0.0, 100), -np.exp(rng.uniform(-30, 0, 50)), [-745.1, 0.0, -np.inf]])
    assert np.array_equal(np.array([vexp(v) for v in x]), _vexp_all(x))
    z = x[np.isfinite(x)]
    assert np.array_equal(np.array([vexp_phis(v) for v in z]).T, _phis_all(z, False))
    h, r_m, r_s = rng.uniform(0, 0.05, 40), 1 / rng.uniform(1e-3, 0.05, 40), 1 / rng.uniform(1e-3, 0.05, 40)
    py = np.array([lif_rate_tangents(a, b, c) for a, b, c in zip(h, r_m, r_s, strict=True)]).T
    assert np.array_equal(py, _tangents_all(h, r_m, r_s, False)[:7])


# ----------------------------------------------------------------------------------------------- LIF factors
def _factor_ref(h: float, r_m: float, r_s: float) -> list[mp.mpf]:
    """(a_m, c, a_s, da_m/dtau_mem, dc/dtau_mem, dc/dtau_syn, da_s/dtau_syn) of these doubles, 120 digits.

    D = (e^{-h r_m} - e^{-h r_s})/(r_s - r_m), c = r_m D, d/dtau = -r^2 d/dr (closed forms; at 120 digits the
    differences of nearly equal rates keep > 60 digits).
    """
    with mp.workdps(120):
        h, a, b = mp.mpf(h), mp.mpf(r_m), mp.mpf(r_s)
        ea, eb = mp.exp(-a * h), mp.exp(-b * h)
        if a == b:
            D, Da, Db = h * ea, -h * h * ea / 2, -h * h * ea / 2
        else:
            d = b - a
            D = (ea - eb) / d
            Da = (-h * ea * d + (ea - eb)) / d**2
            Db = (h * eb * d - (ea - eb)) / d**2
        return [ea, a * D, eb, h * a**2 * ea, -a**2 * (D + a * Da), -b**2 * a * Db, h * b**2 * eb]


def _cases(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(4)
    tm = np.exp(rng.uniform(np.log(1e-4), np.log(0.2), n))
    kind = rng.integers(0, 4, n)
    near = tm * (1 + rng.choice([1e-12, 1e-9, 1e-6, 1e-3], n) * rng.choice([-1, 1], n))
    ts = np.select([kind == 0, kind == 1, kind == 2],
                   [np.exp(rng.uniform(np.log(1e-4), np.log(0.2), n)), tm, near], tm * rng.uniform(0.5, 2, n))
    h = np.exp(rng.uniform(np.log(1e-7), np.log(2.0), n)) * np.where(rng.random(n) < 0.1, 100.0, 1.0)
    h[:8] = 0.0
    return h, 1.0 / tm, 1.0 / ts


@pytest.mark.parametrize("short", [False, True])
def test_rate_factors_and_tangents_match_120_digits(short):
    h, r_m, r_s = _cases(400)
    if short:
        keep = np.array([lif_short_stretch(a, max(b, c)) for a, b, c in zip(h, r_m, r_s, strict=True)])
        h, r_m, r_s = h[keep], r_m[keep], r_s[keep]
        assert h.size > 50
    got = _tangents_all(h, r_m, r_s, short)
    assert np.array_equal(got[7], got[0]) and np.array_equal(got[9], got[2])
    worst = np.zeros(8)
    for i in range(h.size):
        ref = _factor_ref(h[i], r_m[i], r_s[i])
        cond = 1.0 + h[i] * max(r_m[i], r_s[i])
        for k in range(8):
            r = ref[k] if k < 7 else ref[1]  # row 8: c of lif_rate_factors
            g = got[k if k < 7 else 8, i]
            floor = 1e-300  # a product with a subnormal factor keeps only that factor's few bits
            if k == 4:  # -r_m^2 (E - r_m P), a difference: in ulps of its larger term
                floor = max(floor, math.ulp(float(2 * r_m[i] * abs(ref[1]) + abs(r))))
            worst[k] = max(worst[k], _ulps(g, r, floor) / cond)
    assert np.all(worst <= 4.0), worst


def test_rate_factors_agree_with_the_libm_factors():
    h, r_m, r_s = _cases(2000)
    got = _tangents_all(h, r_m, r_s, False)
    for i in range(h.size):
        libm = lif_factors(h[i], 1.0 / r_m[i], 1.0 / r_s[i])
        cond = 1.0 + h[i] * max(r_m[i], r_s[i])
        for k, j in ((0, 7), (1, 8), (2, 9)):
            tol = 8.0 * cond * max(math.ulp(libm[k]), 1e-300)
            assert abs(got[j, i] - libm[k]) <= tol, (k, h[i], 1 / r_m[i], 1 / r_s[i], got[j, i], libm[k])
