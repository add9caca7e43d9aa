"""Scalar LIF maths (exactsnn.neurons.lif) against an independent mpmath (50-digit) oracle.

The oracle uses the textbook closed form V(s) = V0 e^{-s/tm} + k I0 (e^{-s/ts} - e^{-s/tm}),
k = ts/(ts - tm) (and its limit e^{-s/tau}(V0 + I0 s/tau) at tm == ts), evaluated at 50 digits on
the exact float inputs. Its stationary point is derived independently of the package: V' = 0 <=> I = V
<=> e^{s (1/tm - 1/ts)} = R := ts/tm - V0 (ts - tm)/(tm I0), so s* = ln(R)/(1/tm - 1/ts) when R > 0
(s* = tau (1 - V0/I0) at tm == ts). The first crossing is found by a dense scan of each monotone piece
[0, s*], [s*, h] followed by bisection, all in mpmath.

Tolerances. Evaluating e^{-s/tm} from the rounded quotient s/tm has an unavoidable relative error of
about eps * s/tm (likewise for the expm1(s delta) factor), so lif_voltage is held to
8 eps (4 + s/tm + s |1/tm - 1/ts|) relative to the size of its terms |V0 e^{-s/tm}| + |I0 c(s)|
(about 1e-14 for s up to ten time constants). Crossing times are compared in voltage space: the
returned time must lie between the exact first times where V reaches v_th -/+ eps_V, eps_V being that
evaluation bound; this is the honest tolerance for both steep and grazing crossings.
"""

from __future__ import annotations

import math

import mpmath as mp
import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exactsnn.neurons.lif import (
    lif_coupling,
    lif_extremum,
    lif_factors,
    lif_first_crossing,
    lif_first_crossing_known,
    lif_may_cross,
    lif_may_reach,
    lif_voltage,
)

EPS = float(np.finfo(np.float64).eps)
MP_DPS = 50


# ----------------------------------------------------------------------------- mpmath oracle
def _mpf(*xs):
    return [mp.mpf(float(x)) for x in xs]


def v_mp(V0, I0, s, tm, ts):
    """Exact V(s) (mpf) from (V0, I0) without input."""
    V0, I0, s, tm, ts = _mpf(V0, I0, s, tm, ts)
    if tm == ts:
        return mp.exp(-s / tm) * (V0 + I0 * s / tm)
    # e^{-s/ts} - e^{-s/tm} = e^{-s/tm} expm1(s (1/tm - 1/ts)): no cancellation for tiny or huge s
    return mp.exp(-s / tm) * (V0 + ts / (ts - tm) * I0 * mp.expm1(s * (1 / tm - 1 / ts)))


def dv_mp(V0, I0, s, tm, ts):
    """Exact V'(s) = (I(s) - V(s))/tm."""
    I = mp.mpf(float(I0)) * mp.exp(-mp.mpf(float(s)) / mp.mpf(float(ts)))
    return (I - v_mp(V0, I0, s, tm, ts)) / mp.mpf(float(tm))


def s_star_raw_mp(V0, I0, tm, ts):
    """Exact real stationary time of V (possibly <= 0), or mp.inf if V' never vanishes."""
    V0, I0, tm, ts = _mpf(V0, I0, tm, ts)
    if I0 == 0:
        return mp.inf
    if tm == ts:
        return tm * (1 - V0 / I0)
    R = ts / tm - V0 * (ts - tm) / (tm * I0)
    if R <= 0:
        return mp.inf
    return mp.log(R) / (1 / tm - 1 / ts)


def s_star_mp(V0, I0, tm, ts):
    """Exact positive stationary point of V, or mp.inf."""
    s = s_star_raw_mp(V0, I0, tm, ts)
    return s if s > 0 else mp.inf


def _first_reach(V0, I0, lo, hi, tm, ts, level, n_scan=48):
    """First s in the monotone piece [lo, hi] with V(s) >= level (mpf), or None."""
    f = lambda s: v_mp(V0, I0, s, tm, ts) - level  # noqa: E731
    if f(lo) >= 0:
        return lo
    if f(hi) < 0:
        return None
    grid = [lo + (hi - lo) * mp.mpf(k) / n_scan for k in range(n_scan + 1)]
    a = lo
    b = hi
    for x in grid[1:]:
        if f(x) >= 0:
            b = x
            break
        a = x
    for _ in range(200):  # bisection to far below double resolution
        m = (a + b) / 2
        if f(m) >= 0:
            b = m
        else:
            a = m
        if b - a < mp.mpf(10) ** (-(MP_DPS - 8)) * (1 + abs(b)):
            break
    return b


def first_reach_mp(V0, I0, h, tm, ts, level):
    """First s in [0, h] with V(s) >= level, or None (exact: V is monotone between 0, s*, h)."""
    h = mp.mpf(float(h))
    s_star = s_star_mp(V0, I0, tm, ts)
    pieces = [(mp.mpf(0), s_star), (s_star, h)] if s_star < h else [(mp.mpf(0), h)]
    for lo, hi in pieces:
        r = _first_reach(V0, I0, lo, hi, tm, ts, level)
        if r is not None:
            return r
    return None


def max_on_mp(V0, I0, h, tm, ts):
    s_star = s_star_mp(V0, I0, tm, ts)
    cands = [mp.mpf(float(V0)), v_mp(V0, I0, h, tm, ts)]
    if s_star < h:
        cands.append(v_mp(V0, I0, s_star, tm, ts))
    return max(cands)


def voltage_tol(V0, I0, s, tm, ts) -> float:
    """Evaluation error bound of V(s) in double (see module docstring)."""
    cond = 4 + s / tm + s * abs(1 / tm - 1 / ts)
    scale = abs(V0) * math.exp(-s / tm) + abs(I0) * abs(float(v_mp(0.0, 1.0, s, tm, ts)))
    return 8 * EPS * cond * scale


def first_crossing_known(V0, I0, h, tm, ts, v_th, t0):
    """lif_first_crossing_known with the stretch's factors computed as the dense kernel does."""
    a_m, c, a_s = lif_factors(h, tm, ts)
    return lif_first_crossing_known(V0, I0, h, a_m, c, a_s, tm, ts, v_th, t0)


def check_first_crossing(V0, I0, h, tm, ts, v_th, t0, fn=lif_first_crossing):
    """Assert fn(...) (lif_first_crossing by default) is the exact first crossing up to the evaluation error."""
    with mp.workdps(MP_DPS):
        got = fn(V0, I0, h, tm, ts, v_th, t0)
        if V0 >= v_th:
            assert got == 0.0
            return
        eps_v = 8 * EPS * (4 + h / tm + h * abs(1 / tm - 1 / ts)) * (abs(V0) + abs(I0))
        peak = max_on_mp(V0, I0, h, tm, ts)
        if got == -1.0:
            assert peak < v_th + eps_v, f"missed a crossing: peak - v_th = {float(peak - v_th):.3e}"
            return
        assert 0.0 <= got <= h
        assert peak >= v_th - eps_v, f"crossing reported but peak - v_th = {float(peak - v_th):.3e}"
        s_lo = first_reach_mp(V0, I0, h, tm, ts, mp.mpf(v_th) - eps_v)
        s_hi = first_reach_mp(V0, I0, h, tm, ts, mp.mpf(v_th) + eps_v)
        if s_hi is None:  # peak within eps_v of threshold: anything up to the peak is right
            s_star = s_star_mp(V0, I0, tm, ts)
            s_hi = s_star if s_star < h else mp.mpf(h)
        slack = 4 * EPS * (abs(t0) + h)
        assert s_lo - slack <= got <= s_hi + slack, f"got {got!r}, exact window [{float(s_lo)!r}, {float(s_hi)!r}]"


# ----------------------------------------------------------------------------- strategies
taus = st.floats(1e-3, 1e-1)


def state(lo: float, hi: float | None = None) -> st.SearchStrategy[float]:
    """Voltages / currents in [-lo, hi]; magnitudes below 1e-100 become 0 (subnormal states are not a
    regime the float maths is meant for: products such as tm * delta * V0 underflow)."""
    hi = lo if hi is None else hi
    return st.floats(-lo, hi).map(lambda x: 0.0 if abs(x) < 1e-100 else x)


@st.composite
def tau_pairs(draw):
    tm = draw(taus)
    kind = draw(st.sampled_from(["equal", "near", "ratio"]))
    if kind == "equal":
        ts = tm
    elif kind == "near":
        ts = tm * (1.0 + draw(st.sampled_from([-1, 1])) * 10.0 ** draw(st.floats(-15, -5)))
    else:
        ts = tm * 10.0 ** draw(st.floats(-1.3, 1.3))  # ratio within 1/20 .. 20
    return tm, ts


# ----------------------------------------------------------------------------- lif_voltage
def _check_voltage(V0, I0, s, tm, ts):
    with mp.workdps(MP_DPS):
        got = lif_voltage(V0, I0, s, tm, ts)
        ref = v_mp(V0, I0, s, tm, ts)
        tol = voltage_tol(V0, I0, s, tm, ts)
        assert abs(mp.mpf(got) - ref) <= tol + 1e-300, (got, float(ref), tol)


def test_voltage_random_against_mpmath():
    rng = np.random.default_rng(0)
    for _ in range(600):
        tm = 10 ** rng.uniform(-3, -1)
        kind = rng.integers(3)
        ts = (
            tm
            if kind == 0
            else tm * (1 + rng.choice([-1, 1]) * 10 ** rng.uniform(-15, -5))
            if kind == 1
            else tm * 10 ** rng.uniform(-1.3, 1.3)
        )
        s = rng.uniform(0, 10 * max(tm, ts))
        _check_voltage(rng.normal() * 2, rng.normal() * 5, s, tm, ts)


@pytest.mark.parametrize("tau", [1e-3, 5e-3, 0.02, 0.1])
def test_voltage_equal_taus_closed_form(tau):
    for s in np.linspace(0, 10 * tau, 21):
        _check_voltage(0.3, 2.0, s, tau, tau)
        _check_voltage(-0.7, -1.5, s, tau, tau)
    # the tm == ts limit: V = e^{-s/tau}(V0 + I0 s/tau); peak I0/e at s = tau when V0 = 0
    assert lif_voltage(0.0, 1.0, tau, tau, tau) == pytest.approx(math.exp(-1.0), rel=4 * EPS)


@pytest.mark.parametrize("rel_gap", [1e-15, 1e-12, 1e-9, 1e-6, -1e-9])
def test_voltage_nearly_equal_taus(rel_gap):
    tm = 0.02
    ts = tm * (1 + rel_gap)
    for s in np.linspace(0, 0.2, 41):
        _check_voltage(0.1, 3.0, s, tm, ts)
    # continuity with the equal-tau limit (first order in the gap)
    v_eq = lif_voltage(0.1, 3.0, 0.03, tm, tm)
    v_near = lif_voltage(0.1, 3.0, 0.03, tm, ts)
    assert abs(v_near - v_eq) <= 10 * abs(rel_gap) + 16 * EPS


def test_voltage_at_zero_and_no_current():
    assert lif_voltage(0.7, 5.0, 0.0, 0.02, 0.005) == 0.7
    assert lif_voltage(0.7, 0.0, 0.01, 0.02, 0.005) == pytest.approx(0.7 * math.exp(-0.5), rel=2 * EPS)
    assert lif_coupling(0.0, 0.02, 0.005) == 0.0


def test_coupling_matches_voltage():
    rng = np.random.default_rng(5)
    for _ in range(200):
        tm, ts = 10 ** rng.uniform(-3, -1, size=2)
        s = rng.uniform(0, 5 * max(tm, ts))
        V0, I0 = rng.normal(size=2)
        c = lif_coupling(s, tm, ts)
        v = math.exp(-s / tm) * V0 + c * I0
        assert v == pytest.approx(lif_voltage(V0, I0, s, tm, ts), rel=1e-13, abs=1e-15)
        with mp.workdps(MP_DPS):
            assert abs(mp.mpf(c) - v_mp(0.0, 1.0, s, tm, ts)) <= voltage_tol(0.0, 1.0, s, tm, ts)


@given(V0=state(3), I0=state(10), frac=st.floats(0, 10), taus_=tau_pairs())
@settings(deadline=None)
def test_voltage_property(V0, I0, frac, taus_):
    tm, ts = taus_
    _check_voltage(V0, I0, frac * max(tm, ts), tm, ts)


# A long silent gap with tau_syn > tau_mem: e^{-s/tm} underflows while expm1(s delta) overflows.
# The exact value is tiny but finite, and the kernels evaluate V after every gap between events.
@pytest.mark.parametrize(("tm", "ts", "s"), [(1e-3, 10e-3, 1.0), (1e-3, 10e-3, 0.8), (5e-3, 20e-3, 5.0)])
def test_voltage_long_gap_is_finite(tm, ts, s):
    ref = float(v_mp(0.0, 1.0, s, tm, ts))
    assert ref > 0.0
    jit_v = numba.njit(lambda a, b, c, d, e: lif_voltage(a, b, c, d, e))
    for V0, I0 in ((0.0, 1.0), (0.5, 2.0)):
        exact = float(v_mp(V0, I0, s, tm, ts))
        got = jit_v(V0, I0, s, tm, ts)
        assert math.isfinite(got), f"jitted lif_voltage gave {got} after a {s} s gap"
        assert got == pytest.approx(exact, rel=1e-12, abs=1e-300)
        got_py = lif_voltage(V0, I0, s, tm, ts)  # plain Python must not raise OverflowError
        assert got_py == pytest.approx(exact, rel=1e-12, abs=1e-300)


# ----------------------------------------------------------------------------- lif_extremum
def _check_extremum(V0, I0, tm, ts):
    with mp.workdps(MP_DPS):
        got = lif_extremum(V0, I0, tm, ts)
        ref = s_star_raw_mp(V0, I0, tm, ts)
        if ref == mp.inf:
            assert got == math.inf, (got, V0, I0, tm, ts)
            return
        if ref <= mp.mpf(10) ** (10 - MP_DPS) * max(tm, ts):
            # none at a positive time (s* = 0 up to the oracle's own rounding); an exact s* = 0 may
            # round to a tiny positive value in double
            assert got == math.inf or got <= 8 * EPS * max(tm, ts), (got, float(ref))
            return
        assert got != math.inf, (float(ref), V0, I0, tm, ts)
        # condition: a relative change eps in V0 (or I0) moves s* by eps tm |V0/I0| / (1 + y),
        # y = -(ts - tm)/ts V0/I0 (ill-conditioned as y -> -1, where s* -> inf)
        y = -(mp.mpf(ts) - tm) / ts * mp.mpf(V0) / I0
        tol = 8 * EPS * (float(ref) + max(tm, ts) + tm * abs(V0 / I0) / float(1 + y))
        assert abs(mp.mpf(got) - ref) <= tol, (got, float(ref))
        # V' vanishes there: it changes sign across got (beyond the tolerance)
        d = 4 * tol
        if got > d:
            assert dv_mp(V0, I0, got - d, tm, ts) * dv_mp(V0, I0, got + d, tm, ts) < 0


def test_extremum_random():
    rng = np.random.default_rng(1)
    n_finite = 0
    for _ in range(1500):
        tm = 10 ** rng.uniform(-3, -1)
        kind = rng.integers(3)
        ts = (
            tm
            if kind == 0
            else tm * (1 + rng.choice([-1, 1]) * 10 ** rng.uniform(-15, -5))
            if kind == 1
            else tm * 10 ** rng.uniform(-1.3, 1.3)
        )
        V0, I0 = rng.normal() * 2, rng.normal() * 5
        _check_extremum(V0, I0, tm, ts)
        n_finite += lif_extremum(V0, I0, tm, ts) != math.inf
    assert 300 < n_finite < 1400  # both branches exercised


@given(V0=state(3), I0=state(10), taus_=tau_pairs())
@settings(deadline=None)
def test_extremum_property(V0, I0, taus_):
    _check_extremum(V0, I0, *taus_)


def test_extremum_known_values():
    tm, ts = 0.02, 0.005
    # from rest the peak of the PSP kernel: s* = tm ts/(tm - ts) ln(tm/ts)
    expect = tm * ts / (tm - ts) * math.log(tm / ts)
    assert lif_extremum(0.0, 1.0, tm, ts) == pytest.approx(expect, rel=4 * EPS)
    assert lif_extremum(0.0, -1.0, tm, ts) == pytest.approx(expect, rel=4 * EPS)  # a trough
    assert lif_extremum(0.0, 1.0, 0.01, 0.01) == pytest.approx(0.01, rel=4 * EPS)
    assert lif_extremum(0.5, 0.0, tm, ts) == math.inf  # pure decay
    assert lif_extremum(1.0, 1.0, tm, ts) == math.inf  # V' = 0 at s = 0 only
    assert lif_extremum(1.0, 0.5, tm, ts) == math.inf  # decays monotonically towards 0
    # both taus given the other way round (synapse slower than membrane)
    expect = 0.02 * 0.005 / (0.02 - 0.005) * math.log(0.02 / 0.005)
    assert lif_extremum(0.0, 1.0, ts, tm) == pytest.approx(expect, rel=4 * EPS)


# ----------------------------------------------------------------------------- lif_first_crossing
def test_first_crossing_at_or_above_threshold_returns_zero():
    assert lif_first_crossing(1.0, 0.0, 0.1, 0.02, 0.005, 1.0, 0.0) == 0.0
    assert lif_first_crossing(1.5, -3.0, 0.1, 0.02, 0.005, 1.0, 0.3) == 0.0
    assert lif_first_crossing(-0.2, 0.0, 0.1, 0.02, 0.005, -0.5, 0.0) == 0.0


def test_first_crossing_none():
    assert lif_first_crossing(0.0, 0.0, 1.0, 0.02, 0.005, 1.0, 0.0) == -1.0
    assert lif_first_crossing(0.5, 1.0, 10.0, 0.02, 0.005, 1.0, 0.0) == -1.0  # V <= max(V0, I0) < 1
    assert lif_first_crossing(0.0, -5.0, 1.0, 0.02, 0.005, 1.0, 0.0) == -1.0
    assert lif_first_crossing(0.0, 100.0, 0.0, 0.02, 0.005, 1.0, 0.0) == -1.0  # empty horizon


def test_first_crossing_steep_matches_mpmath_root():
    tm, ts, v_th = 0.02, 0.005, 1.0
    for I0 in (7.0, 20.0, 100.0, 1e4):
        got = lif_first_crossing(0.0, I0, 0.1, tm, ts, v_th, 0.5)
        with mp.workdps(MP_DPS):
            ref = first_reach_mp(0.0, I0, 0.1, tm, ts, mp.mpf(v_th))
            slope = dv_mp(0.0, I0, ref, tm, ts)
            tol = 8 * EPS * (abs(v_th) + I0) / float(slope) + 4 * EPS * 0.6
            assert abs(mp.mpf(got) - ref) <= tol, (got, float(ref), tol)


def _psp_peak_current(V0, tm, ts, v_th, margin):
    """I0 (float) whose trajectory from V0 peaks at v_th (1 + margin), with the exact peak time."""
    with mp.workdps(MP_DPS):
        target = mp.mpf(v_th) * (1 + mp.mpf(margin))

        def peak(I0):
            s = s_star_mp(V0, I0, tm, ts)
            return v_mp(V0, I0, s, tm, ts)

        # peak is increasing in I0 for I0 > 0; bisection on I0
        lo, hi = mp.mpf(max(v_th, 1e-3)), mp.mpf(1e3)
        for _ in range(300):
            mid = (lo + hi) / 2
            if peak(float(mid)) >= target:
                hi = mid
            else:
                lo = mid
        I0 = float(hi) if margin > 0 else float(lo)
        return I0, s_star_mp(V0, I0, tm, ts), peak(I0)


@pytest.mark.parametrize(("tm", "ts"), [(0.02, 0.005), (0.005, 0.02), (0.01, 0.01), (0.01, 0.01 * (1 + 1e-10))])
@pytest.mark.parametrize("V0", [0.0, -0.5, 0.6])
@pytest.mark.parametrize("margin", [1e-6, 1e-9, 1e-12])
def test_first_crossing_grazing_above(tm, ts, V0, margin):
    v_th = 1.0
    I0, s_star, peak = _psp_peak_current(V0, tm, ts, v_th, margin)
    with mp.workdps(MP_DPS):
        assert peak > v_th  # the exact trajectory does cross
        h = float(4 * s_star)
        assert v_mp(V0, I0, h, tm, ts) < v_th  # ... and is back below at the horizon
        assert lif_voltage(V0, I0, h, tm, ts) < v_th
    got = lif_first_crossing(V0, I0, h, tm, ts, v_th, 0.25)
    assert got != -1.0, "grazing crossing missed"
    assert got <= float(s_star) * (1 + 1e-12)
    check_first_crossing(V0, I0, h, tm, ts, v_th, 0.25)


@pytest.mark.parametrize(("tm", "ts"), [(0.02, 0.005), (0.005, 0.02), (0.01, 0.01)])
@pytest.mark.parametrize("V0", [0.0, -0.5])
@pytest.mark.parametrize("margin", [-1e-6, -1e-9])
def test_first_crossing_grazing_below(tm, ts, V0, margin):
    v_th = 1.0
    I0, s_star, peak = _psp_peak_current(V0, tm, ts, v_th, margin)
    assert peak < v_th
    assert lif_first_crossing(V0, I0, float(4 * s_star), tm, ts, v_th, 0.0) == -1.0


def test_first_crossing_after_a_trough():
    # v_th < 0: V first falls (V0 > I0), reaches its minimum, then rises through v_th towards 0
    tm, ts, v_th = 0.02, 0.005, -1.0
    V0, I0 = -2.0, -3.0
    assert lif_extremum(V0, I0, tm, ts) < 0.05
    got = lif_first_crossing(V0, I0, 0.5, tm, ts, v_th, 0.0)
    assert got > lif_extremum(V0, I0, tm, ts)
    check_first_crossing(V0, I0, 0.5, tm, ts, v_th, 0.0)


def test_first_crossing_respects_horizon():
    tm, ts = 0.02, 0.005
    full = lif_first_crossing(0.0, 10.0, 0.1, tm, ts, 1.0, 0.0)
    assert 0 < full < 0.1
    assert lif_first_crossing(0.0, 10.0, full * (1 - 1e-6), tm, ts, 1.0, 0.0) == -1.0
    assert lif_first_crossing(0.0, 10.0, full * (1 + 1e-6), tm, ts, 1.0, 0.0) == pytest.approx(full, rel=1e-14)


@pytest.mark.parametrize("fn", [lif_first_crossing, first_crossing_known])
def test_first_crossing_random(fn):
    rng = np.random.default_rng(2)
    n_cross = 0
    for _ in range(250):
        tm = 10 ** rng.uniform(-3, -1)
        ts = tm if rng.random() < 0.2 else tm * 10 ** rng.uniform(-1.3, 1.3)
        v_th = rng.choice([1.0, rng.uniform(-1, 2)])
        V0 = v_th - abs(rng.normal())
        I0 = rng.normal() * 4
        # long stretches, and the short ones between SHD-rate inputs
        h = rng.uniform(0, 5 * max(tm, ts)) if rng.random() < 0.5 else rng.exponential(2e-4)
        check_first_crossing(V0, I0, h, tm, ts, v_th, rng.uniform(0, 1), fn=fn)
        n_cross += fn(V0, I0, h, tm, ts, v_th, 0.0) >= 0
    assert 30 < n_cross < 220


@given(
    V0=state(3, 1.5),
    I0=state(10),
    frac=st.floats(0, 6),
    taus_=tau_pairs(),
    v_th=st.one_of(st.just(1.0), st.floats(-1, 2)),
    t0=st.floats(0, 2),
)
@settings(deadline=None)
@pytest.mark.parametrize("fn", [lif_first_crossing, first_crossing_known])
def test_first_crossing_property(fn, V0, I0, frac, taus_, v_th, t0):
    tm, ts = taus_
    check_first_crossing(V0, I0, frac * max(tm, ts), tm, ts, v_th, t0, fn=fn)


@given(
    V0=st.floats(0.0, 1.0, exclude_max=True),
    margin=st.floats(1e-12, 1e-4),
    taus_=tau_pairs(),
)
@settings(deadline=None, max_examples=30)
def test_first_crossing_grazing_property(V0, margin, taus_):
    tm, ts = taus_
    I0, s_star, peak = _psp_peak_current(V0, tm, ts, 1.0, margin)
    assume(peak > 1.0 and s_star < 10 * max(tm, ts))
    h = float(3 * s_star)
    assume(v_mp(V0, I0, h, tm, ts) < 1.0)
    assert lif_first_crossing(V0, I0, h, tm, ts, 1.0, 0.0) >= 0.0
    check_first_crossing(V0, I0, h, tm, ts, 1.0, 0.0)


@pytest.mark.parametrize(("tm", "ts"), [(0.02, 0.005), (0.005, 0.02), (0.01, 0.01)])
@pytest.mark.parametrize("V0", [0.0, 0.6])
@pytest.mark.parametrize("margin", [1e-6, 1e-9, 1e-12, -1e-9])
@pytest.mark.parametrize("horizon", [0.5, 1.0 + 1e-9, 1.3, 4.0])
def test_first_crossing_known_factors_grazing(tm, ts, V0, margin, horizon):
    """The known-factors shortcut (rising at both ends => no interior maximum) must not hide a grazing
    peak: horizons just past the peak (V'(h) ~ 0), before it and well after it."""
    I0, s_star, _ = _psp_peak_current(V0, tm, ts, 1.0, margin)
    check_first_crossing(V0, I0, float(horizon * s_star), tm, ts, 1.0, 0.25, fn=first_crossing_known)


def test_first_crossing_jitted_matches_python():
    jit_fc = numba.njit(lambda a, b, c, d, e, f, g: lif_first_crossing(a, b, c, d, e, f, g))
    rng = np.random.default_rng(9)
    for _ in range(200):
        args = (rng.uniform(-1, 1), rng.normal() * 5, rng.uniform(0, 0.1), 0.02, 0.005, 1.0, rng.uniform(0, 1))
        py, jit = lif_first_crossing(*args), jit_fc(*args)
        assert py == jit or abs(py - jit) <= 8 * EPS * (args[6] + args[2]), (args, py, jit)


# ----------------------------------------------------------------------------- lif_may_cross
def _sup_mp(V0, I0, tm, ts):
    """sup over s >= 0 of the exact V(s) (V tends to 0)."""
    s_star = s_star_mp(V0, I0, tm, ts)
    cands = [mp.mpf(float(V0)), mp.mpf(0)]
    if s_star < mp.inf:
        cands.append(v_mp(V0, I0, s_star, tm, ts))
    return max(cands)


@given(
    V0=state(3),
    I0=state(10),
    taus_=tau_pairs(),
    v_th=st.one_of(st.just(1.0), st.floats(-1, 3)),
)
@settings(deadline=None)
def test_may_cross_is_conservative(V0, I0, taus_, v_th):
    tm, ts = taus_
    if lif_may_cross(V0, I0, v_th):
        return
    with mp.workdps(MP_DPS):
        assert _sup_mp(V0, I0, tm, ts) < v_th
    # 30 time constants (s/tm <= 600 for the tau ratios drawn; longer gaps: test_voltage_long_gap_is_finite)
    assert lif_first_crossing(V0, I0, 30 * max(tm, ts), tm, ts, v_th, 0.0) == -1.0


@given(
    V0=state(3, 1.5),
    I0=state(10),
    frac=st.floats(0, 3),
    taus_=tau_pairs(),
    v_th=st.one_of(st.just(1.0), st.floats(-1, 2)),
)
@settings(deadline=None)
def test_may_reach_is_conservative(V0, I0, frac, taus_, v_th):
    """The per-stretch screen of the kernels: False only if the exact V stays below v_th over k tau_mem."""
    tm, ts = taus_
    h = frac * tm
    if lif_may_reach(V0, I0, h / tm, v_th):
        return
    with mp.workdps(MP_DPS):
        assert max_on_mp(V0, I0, h, tm, ts) < v_th


def test_may_cross_cases():
    assert lif_may_cross(1.0, 0.0, 1.0)
    assert lif_may_cross(0.0, 1.0, 1.0)
    assert lif_may_cross(-5.0, -5.0, 0.0)  # V relaxes to 0 = v_th
    assert not lif_may_cross(0.9, 0.99, 1.0)
    assert not lif_may_cross(-1.0, -1.0, 0.5)
