"""Readout losses (exactsnn.losses) against independent oracles.

Oracles, none of which shares code with the package:

* ``quad_integrals``: H_tau(t) = int_t^T f(u) e^{-(u-t)/tau} du and F(t) = int_t^T f(u) c(u-t) du by
  mpmath quadrature (mp.quad, 20 digits) of the textbook integrands, with breakpoints at the kernel
  and Gaussian scales.
* ``exact_integrals``: the textbook erf/erfc closed forms at 60 digits (F as k (H_syn - H_mem) at 120
  digits, or mp.diff at tau_mem == tau_syn). Used for extreme Gaussian parameters, where quadrature is
  slow; it is itself checked against quadrature on moderate ones.
* z from ``readout`` against mp.quad of f(t) V(t), V built from the arrivals at 30 digits.
* MaxVoltage against a maximum found by bisection on V' = (I - V)/tau_mem in mpmath.
* Adjoints against central finite differences of the loss in w_a and t_a.

Tolerances. Closed forms: 1e-12 relative (the worst seen is 2e-13, from exp() of arguments of a few
hundred whose own rounding is ~100 eps); for the signed slope weighting relative to
int |f| e^{-(u-t)/tau} (resp. int |f| c), since the signed integral itself may vanish; values below
1e-290 are compared absolutely (they underflow in float64). z: 1e-10 relative to sum |w_a F(t_a)|.
Finite differences: central differences at steps h and h/2 (h = 1e-4 in w, 1e-5 T in t), Richardson-
extrapolated (the max-voltage loss has third derivatives large enough to matter at 1e-6 otherwise);
held to 1e-6 relative to the largest gradient entry of the group (DESIGN.md §5, pitfall 3) plus the
rounding bound 24 eps (|L| + 1)/h of the extrapolated float64 difference. For MaxVoltage, points where
the two step sizes disagree (the argmax jumps between local maxima) are skipped.
"""

from __future__ import annotations

import math

import mpmath as mp
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from exactsnn.losses import LOSSES, FirstSpike, MaxVoltage, Sum, SumExp, SumGaussian
from exactsnn.losses import _cross_entropy as cross_entropy

EPS = float(np.finfo(np.float64).eps)
TAUS = [(20e-3, 5e-3), (5e-3, 20e-3), (10e-3, 10e-3), (10e-3, 10e-3 * (1 + 1e-9)), (10e-3, 10e-3 * (1 + 1e-5))]


# ----------------------------------------------------------------------------- oracles
def weight_mp(loss, u, T):
    if isinstance(loss, Sum):
        return mp.mpf(1)
    if isinstance(loss, SumExp):
        return mp.exp(-u / T) / T
    mu, sg = (mp.mpf(x) for x in loss.absolute(float(T)))
    g = mp.exp(-((u - mu) ** 2) / (2 * sg**2))
    return loss.offset + (g if loss.weighting == "gaussian" else (u - mu) * g)


def kernel_mp(s, tm, ts):
    """c(s) = ts/(ts - tm) (e^{-s/ts} - e^{-s/tm}), its limit (s/tau) e^{-s/tau} at tm == ts."""
    if tm == ts:
        return s / tm * mp.exp(-s / tm)
    return mp.exp(-s / tm) * ts / (ts - tm) * mp.expm1(s * (1 / tm - 1 / ts))


def quad_integrals(loss, t, T, tm, ts):
    """(H_mem, H_syn, F, int |f| e^{-s/tm}, int |f| e^{-s/ts}, int |f| c) by mp.quad."""
    with mp.workdps(20):
        t, T, tm, ts = (mp.mpf(float(x)) for x in (t, T, tm, ts))
        if t == T:
            return (0.0,) * 6
        pts = {t, T}
        for k in (0.25, 0.5, 1, 2, 4, 8, 16, 32, 64):
            pts |= {t + k * tm, t + k * ts}
        if isinstance(loss, SumGaussian):
            mu, sg = (mp.mpf(x) for x in loss.absolute(float(T)))
            for centre in (mu, mu - sg**2 / tm, mu - sg**2 / ts):
                pts |= {centre + k * sg for k in range(-8, 9)}
        pts = sorted(p for p in pts if t <= p <= T)
        f = lambda u: weight_mp(loss, u, T)  # noqa: E731
        out = [
            mp.quad(lambda u: f(u) * mp.exp(-(u - t) / tm), pts),
            mp.quad(lambda u: f(u) * mp.exp(-(u - t) / ts), pts),
            mp.quad(lambda u: f(u) * kernel_mp(u - t, tm, ts), pts),
        ]
        if isinstance(loss, SumGaussian) and loss.weighting == "gaussian_slope":
            out.append(mp.quad(lambda u: abs(f(u)) * mp.exp(-(u - t) / tm), pts))
            out.append(mp.quad(lambda u: abs(f(u)) * mp.exp(-(u - t) / ts), pts))
            out.append(mp.quad(lambda u: abs(f(u)) * kernel_mp(u - t, tm, ts), pts))
        else:
            out += [out[0], out[1], out[2]]
        return tuple(float(x) for x in out)


def h_exact(loss, t, T, r):
    """int_t^T f(u) e^{-r(u-t)} du from textbook closed forms (mpf arguments, current precision)."""
    D = T - t
    if isinstance(loss, Sum):
        return -mp.expm1(-r * D) / r
    if isinstance(loss, SumExp):
        a = r + 1 / T
        return mp.exp(-t / T) / T * (-mp.expm1(-a * D)) / a
    mu, sg = (mp.mpf(x) for x in loss.absolute(float(T)))
    s2 = mp.sqrt(2) * sg
    y0, y1 = (t - mu + r * sg**2) / s2, (T - mu + r * sg**2) / s2
    if y0 >= 0:
        de = mp.erfc(y0) - mp.erfc(y1)
    elif y1 <= 0:
        de = mp.erfc(-y1) - mp.erfc(-y0)
    else:
        de = mp.erf(y1) - mp.erf(y0)
    hg = mp.exp(r**2 * sg**2 / 2 - r * (mu - t)) * sg * mp.sqrt(mp.pi / 2) * de
    off = loss.offset * (-mp.expm1(-r * D) / r)
    if loss.weighting == "gaussian":
        return off + hg
    g = lambda u: mp.exp(-((u - mu) ** 2) / (2 * sg**2))  # noqa: E731
    return off + sg**2 * (g(t) - g(T) * mp.exp(-r * D) - r * hg)  # (u - mu) g = -sigma^2 g'


def exact_integrals(loss, t, T, tm, ts):
    """(H_mem, H_syn, F) as mpf at 60 digits."""
    with mp.workdps(60):
        t, T, tm, ts = (mp.mpf(float(x)) for x in (t, T, tm, ts))
        hm, hs = h_exact(loss, t, T, 1 / tm), h_exact(loss, t, T, 1 / ts)
        if tm == ts:
            F = -mp.diff(lambda r: h_exact(loss, t, T, r), 1 / tm) / tm
        else:
            with mp.workdps(120):
                F = ts / (ts - tm) * (h_exact(loss, t, T, 1 / ts) - h_exact(loss, t, T, 1 / tm))
        return +hm, +hs, +F


def rel_err(value, ref, scale=None):
    scale = abs(ref) if scale is None else abs(scale)
    return float(abs(mp.mpf(float(value)) - ref) / max(scale, mp.mpf("1e-290")))


# ----------------------------------------------------------------------------- closed forms
QUAD_LOSSES = [
    Sum(),
    SumExp(),
    SumGaussian(),
    SumGaussian(weighting="gaussian_slope"),
    SumGaussian(mu=0.3, sigma=0.1, offset=0.0),
]
QUAD_T = [0.0, 0.3, 0.97, 1.0 - 1e-6]


@pytest.mark.parametrize("loss", QUAD_LOSSES, ids=repr)
@pytest.mark.parametrize("taus", [TAUS[0], TAUS[2], TAUS[3]], ids=["20-5", "equal", "nearly-equal"])
def test_integrals_match_quadrature(loss, taus):
    tm, ts = taus
    T = 1.0
    t = np.array(QUAD_T)
    hm, hs, F = loss.integrals(t, T, tm, ts)
    for i, ti in enumerate(QUAD_T):
        qm, qs, qF, qma, qsa, qFa = quad_integrals(loss, ti, T, tm, ts)
        assert abs(hm[i] - qm) <= 1e-12 * qma, (ti, hm[i], qm)
        assert abs(hs[i] - qs) <= 1e-12 * qsa, (ti, hs[i], qs)
        assert abs(F[i] - qF) <= 1e-12 * qFa, (ti, F[i], qF)


def test_exact_oracle_matches_quadrature():
    """The erf-based oracle used below for extreme parameters agrees with quadrature where both are cheap."""
    for loss in (SumGaussian(), SumGaussian(weighting="gaussian_slope", mu=0.2, sigma=0.05)):
        for tm, ts in (TAUS[0], TAUS[2]):
            for t in (0.0, 0.25, 0.9):
                q = quad_integrals(loss, t, 1.0, tm, ts)
                e = exact_integrals(loss, t, 1.0, tm, ts)
                for k, sc in ((0, q[3]), (1, q[4]), (2, q[5])):
                    assert rel_err(q[k], e[k], sc) < 1e-14


EXTREME = [
    dict(mu=-0.5, sigma=0.05),  # peak long before the window
    dict(mu=2.0, sigma=0.1),  # peak long after it
    dict(mu=0.3, sigma=0.005),  # very narrow
    dict(mu=0.5, sigma=0.001),  # narrower than tau_syn
    dict(mu=0.5, sigma=5.0),  # nearly flat
    dict(mu=-3.0, sigma=1.0),
    dict(mu=1.0, sigma=0.02),  # peak at T
    dict(mu=0.0, sigma=0.02),  # peak at 0
]
EXTREME_T = np.array([0.0, 1e-12, 0.2999, 0.3, 0.3001, 0.5, 0.98, 1 - 1e-3, 1 - 1e-9, 1 - 1e-13, 1.0])


@pytest.mark.parametrize("params", EXTREME, ids=lambda p: f"mu{p['mu']}-sigma{p['sigma']}")
@pytest.mark.parametrize("weighting", ["gaussian", "gaussian_slope"])
def test_gaussian_extreme_parameters(params, weighting):
    T = 1.0
    for offset in (0.0, 0.1):
        loss = SumGaussian(offset=offset, weighting=weighting, **params)
        for tm, ts in TAUS + [(1e-3, 0.5)]:
            hm, hs, F = loss.integrals(EXTREME_T, T, tm, ts)
            for i, t in enumerate(EXTREME_T):
                em, es, eF = exact_integrals(loss, t, T, tm, ts)
                for got, ref in ((hm[i], em), (hs[i], es), (F[i], eF)):
                    assert np.isfinite(got)
                    assert rel_err(got, ref) < 1e-12, (loss, tm, ts, t, got, ref)


@pytest.mark.parametrize("loss", [Sum(), SumExp()], ids=repr)
def test_exponential_weightings_near_equal_and_near_end(loss):
    T = 0.7
    t = np.array([0.0, 1e-9, 0.35, T - 1e-2, T - 1e-6, T - 1e-10, T - 1e-14, T])
    for tm, ts in TAUS + [(20e-3, 19.9e-3), (1e-3, 2.0)]:
        hm, hs, F = loss.integrals(t, T, tm, ts)
        for i, ti in enumerate(t):
            em, es, eF = exact_integrals(loss, ti, T, tm, ts)
            for got, ref in ((hm[i], em), (hs[i], es), (F[i], eF)):
                assert rel_err(got, ref) < 1e-13, (tm, ts, ti, got, ref)


def test_equal_taus_is_the_limit():
    """F is continuous through tau_mem == tau_syn."""
    t = np.linspace(0.0, 1.0, 11)
    for loss in (Sum(), SumExp(), SumGaussian(), SumGaussian(weighting="gaussian_slope")):
        F0 = loss.integrals(t, 1.0, 10e-3, 10e-3)[2]
        for eps in (1e-12, 1e-8, 1e-4):
            F1 = loss.integrals(t, 1.0, 10e-3, 10e-3 * (1 + eps))[2]
            scale = np.abs(F0).max()
            assert np.all(np.abs(F1 - F0) <= 10 * eps * scale + 1e-15 * scale)


# ----------------------------------------------------------------------------- z against V(t)
def random_arrivals(rng, M, B, n_out, T, w_scale=1.0):
    t = rng.uniform(0.0, T, M)
    w = rng.normal(0.0, w_scale, M)
    o = rng.integers(0, n_out, M)
    b = rng.integers(0, B, M)
    return t, w, o, b


def voltage_mp(t_arr, w_arr, u, tm, ts):
    return mp.fsum(mp.mpf(w) * kernel_mp(u - mp.mpf(ta), tm, ts) for ta, w in zip(t_arr, w_arr, strict=True) if u > ta)


Z_LOSSES = QUAD_LOSSES[:4] + [SumGaussian(mu=0.02, sigma=0.01, weighting="gaussian_slope")]


@pytest.mark.parametrize("loss", Z_LOSSES, ids=repr)
@pytest.mark.parametrize("taus", [TAUS[0], TAUS[2]], ids=["20-5", "equal"])
def test_z_matches_quadrature_of_voltage(loss, taus):
    tm, ts = taus
    T = 0.1
    rng = np.random.default_rng(7)
    t, w, o, b = random_arrivals(rng, 12, 2, 2, T)
    t[0] = 0.0  # an arrival at each end of the window
    t[1] = T
    labels = np.array([0, 1])
    loss_value, _, _, z = loss.readout(t, w, o, b, labels, 2, T, tm, ts)
    _, _, F = loss.integrals(t, T, tm, ts)
    with mp.workdps(30):
        tm_, ts_, T_ = mp.mpf(tm), mp.mpf(ts), mp.mpf(T)
        for bb in range(2):
            for oo in range(2):
                sel = (b == bb) & (o == oo)
                pts = sorted({mp.mpf(0), T_} | {mp.mpf(x) for x in t[sel]})
                t_o, w_o = t[sel], w[sel]

                def integrand(u, t_o=t_o, w_o=w_o):
                    return weight_mp(loss, u, T_) * voltage_mp(t_o, w_o, u, tm_, ts_)

                ref = mp.quad(integrand, pts)
                scale = np.abs(w[sel] * F[sel]).sum()
                assert abs(z[bb, oo] - float(ref)) <= 1e-10 * scale + 1e-300
    ref_loss, _ = cross_entropy(z, labels)
    assert loss_value == pytest.approx(ref_loss, rel=1e-15)


def test_sample_without_arrivals_has_zero_z():
    t, w, o, b = np.array([0.01, 0.02]), np.array([1.0, 2.0]), np.array([0, 1]), np.array([1, 1])
    loss, lam_V, lam_I, z = Sum().readout(t, w, o, b, np.array([2, 0, 1]), 3, 0.05, 20e-3, 5e-3)
    assert np.all(z[0] == 0.0) and np.all(z[2] == 0.0)
    assert lam_V.shape == lam_I.shape == (2,)
    # a sample with z = 0 contributes log(n_out) to the mean
    per_sample = np.log(np.exp(z).sum(axis=1)) - z[np.arange(3), [2, 0, 1]]
    assert loss == pytest.approx(per_sample.mean(), rel=1e-14)
    none = np.zeros(0, int)
    empty = MaxVoltage().readout(np.zeros(0), np.zeros(0), none, none, [0, 1], 2, 1.0, 0.02, 0.005)
    assert empty[0] == pytest.approx(math.log(2)) and empty[1].shape == (0,) and np.all(empty[3] == 0)


# ----------------------------------------------------------------------------- max voltage oracle
def max_voltage_mp(t_arr, w_arr, T, tm, ts):
    """(max, argmax) of V on [0, T] by bisection on V' between consecutive arrivals (30 digits)."""
    with mp.workdps(30):
        tm, ts, T = mp.mpf(tm), mp.mpf(ts), mp.mpf(T)
        times = sorted({mp.mpf(x) for x in t_arr})

        def V(u):  # noqa: N802
            return voltage_mp(t_arr, w_arr, u, tm, ts)

        def dV(u):  # noqa: N802 -- right derivative: arrivals at u count
            arrived = [(mp.mpf(ta), mp.mpf(w)) for ta, w in zip(t_arr, w_arr, strict=True) if u >= ta]
            I = mp.fsum(w * mp.exp(-(u - ta) / ts) for ta, w in arrived)
            return (I - V(u)) / tm

        best, arg = mp.mpf(0), mp.mpf(0)
        edges = times + [T]
        for left, right in zip(edges[:-1], edges[1:], strict=True):
            for u in (left, right):
                if V(u) > best:
                    best, arg = V(u), u
            if right > left and dV(left) > 0 and dV(right - (right - left) * mp.mpf("1e-25")) < 0:
                lo, hi = left, right
                for _ in range(110):
                    mid = (lo + hi) / 2
                    lo, hi = (mid, hi) if dV(mid) > 0 else (lo, mid)
                if V(lo) > best:
                    best, arg = V(lo), lo
        return float(best), float(arg)


def test_max_voltage_matches_oracle():
    rng = np.random.default_rng(3)
    T = 0.1
    for tm, ts in (TAUS[0], TAUS[1], TAUS[2], TAUS[3]):
        t, w, o, b = random_arrivals(rng, 30, 2, 3, T, w_scale=2.0)
        labels = np.array([1, 2])
        z = MaxVoltage().readout(t, w, o, b, labels, 3, T, tm, ts)[3]
        _, t_star, _ = MaxVoltage().peaks(t, w, o, b, 2, 3, T, tm, ts)
        for bb in range(2):
            for oo in range(3):
                sel = (b == bb) & (o == oo)
                ref, arg = max_voltage_mp(t[sel], w[sel], T, tm, ts)
                assert z[bb, oo] >= 0.0
                assert abs(z[bb, oo] - ref) <= 1e-13 * max(1.0, abs(ref))
                assert abs(t_star[bb, oo] - arg) <= 1e-6 * T or abs(ref) < 1e-12


def test_max_voltage_kink_at_inhibitory_arrival():
    """V rising, a strong inhibitory arrival turns it down: the max sits at that arrival time."""
    T, tm, ts = 0.05, 20e-3, 5e-3
    t = np.array([0.002, 0.004, 0.03])
    w = np.array([3.0, -6.0, 0.5])
    o = np.zeros(3, int)
    b = np.zeros(3, int)
    labels = np.array([0])
    mv = MaxVoltage()
    z, t_star, i_kink = mv.peaks(t, w, o, b, 1, 2, T, tm, ts)
    assert t_star[0, 0] == 0.004 and i_kink[0, 0] == pytest.approx(3.0 * math.exp(-0.002 / ts))
    check_gradients(mv, t, w, o, b, labels, 2, T, tm, ts, skip_kinks=False)


def test_max_voltage_never_positive_gives_zero():
    t, w = np.array([0.0, 0.01]), np.array([-1.0, -2.0])
    loss, lam_V, lam_I, z = MaxVoltage().readout(t, w, np.array([1, 1]), np.array([0, 0]), [1], 2, 0.05, 0.02, 0.005)
    assert np.all(z == 0.0) and np.all(lam_V == 0.0) and np.all(lam_I == 0.0)


# ----------------------------------------------------------------------------- finite differences
def check_gradients(loss, t, w, o, b, labels, n_out, T, tm, ts, skip_kinks, rtol=1e-6):
    """dL/dw_a = lam_I and dL/dt_a = w_a (lam_I/ts - lam_V/tm) against central differences."""
    _, lam_V, lam_I, _ = loss.readout(t, w, o, b, labels, n_out, T, tm, ts)
    g_w = lam_I
    g_t = w * (lam_I / ts - lam_V / tm)

    def L(tt, ww):  # noqa: N802
        return loss.readout(tt, ww, o, b, labels, n_out, T, tm, ts)[0]

    def central(which, a, h):
        tp, tn, wp, wn = t.copy(), t.copy(), w.copy(), w.copy()
        if which == "w":
            wp[a] += h
            wn[a] -= h
        else:
            tp[a] += h
            tn[a] -= h
        return (L(tp, wp) - L(tn, wn)) / (2 * h)

    L0 = abs(L(t, w))
    for which, grad, h in (("w", g_w, 1e-4), ("t", g_t, 1e-5 * T)):
        scale = np.abs(grad).max()
        noise = 24 * EPS * (L0 + 1.0) / h  # rounding of the loss values, through the extrapolation
        for a in range(t.size):
            if which == "t" and not (2 * h <= t[a] <= T - 2 * h):
                continue
            fd1, fd2 = central(which, a, h), central(which, a, h / 2)
            if skip_kinks and abs(fd1 - fd2) > 1e-4 * scale + noise:
                continue
            fd = (4 * fd2 - fd1) / 3  # Richardson: the h^2 term cancels
            assert abs(fd - grad[a]) <= rtol * scale + noise, (which, a, fd, grad[a], scale)


arrival = st.tuples(
    st.floats(0.0, 1.0), st.floats(-3.0, 3.0).filter(lambda x: abs(x) > 1e-3), st.integers(0, 2), st.integers(0, 1)
)
GRAD_LOSSES = [Sum(), SumExp(), SumGaussian(), SumGaussian(weighting="gaussian_slope", mu=0.4, sigma=0.3, offset=0.0)]


@given(
    arrivals=st.lists(arrival, min_size=1, max_size=10),
    loss=st.sampled_from(GRAD_LOSSES),
    taus=st.sampled_from(TAUS[:4]),
    labels=st.tuples(st.integers(0, 2), st.integers(0, 2)),
)
def test_integral_loss_gradients_match_finite_differences(arrivals, loss, taus, labels):
    T = 0.08
    t = np.array([a[0] for a in arrivals]) * T
    w = np.array([a[1] for a in arrivals])
    o = np.array([a[2] for a in arrivals])
    b = np.array([a[3] for a in arrivals])
    check_gradients(loss, t, w, o, b, np.array(labels), 3, T, *taus, skip_kinks=False)


@given(
    arrivals=st.lists(arrival, min_size=1, max_size=10),
    taus=st.sampled_from(TAUS[:4]),
    labels=st.tuples(st.integers(0, 2), st.integers(0, 2)),
)
def test_max_voltage_gradients_match_finite_differences(arrivals, taus, labels):
    T = 0.08
    t = np.array([a[0] for a in arrivals]) * T
    w = np.array([a[1] for a in arrivals])
    o = np.array([a[2] for a in arrivals])
    b = np.array([a[3] for a in arrivals])
    assume(len(set(t.tolist())) == t.size)  # simultaneous arrivals at the argmax are a genuine tie
    check_gradients(MaxVoltage(), t, w, o, b, np.array(labels), 3, T, *taus, skip_kinks=True)


# ----------------------------------------------------------------------------- cross-entropy, first spike
def test_cross_entropy_gradient():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 3, (4, 5))
    labels = np.array([0, 4, 2, 2])
    loss, grad = cross_entropy(z, labels)
    ref = np.mean([-z[i, labels[i]] + math.log(np.exp(z[i]).sum()) for i in range(4)])
    assert loss == pytest.approx(ref, rel=1e-14)
    h = 1e-6
    for idx in np.ndindex(z.shape):
        zp, zn = z.copy(), z.copy()
        zp[idx] += h
        zn[idx] -= h
        fd = (cross_entropy(zp, labels)[0] - cross_entropy(zn, labels)[0]) / (2 * h)
        assert abs(fd - grad[idx]) < 1e-9
    assert np.allclose(grad.sum(axis=1), 0.0, atol=1e-16)
    # huge logits: no overflow
    loss, grad = cross_entropy(np.array([[1e4, -1e4, 0.0]]), np.array([1]))
    assert loss == pytest.approx(2e4) and np.all(np.isfinite(grad))


@pytest.mark.parametrize("gap", [13.5, 30.0, 60.0, 700.0])
def test_cross_entropy_confident_sample_to_ulps(gap):
    """A confidently right sample (loss ~e^-gap) keeps full relative accuracy in loss and gradient."""
    z = np.array([[20.0, 20.0 - gap, 19.0 - gap], [0.3, -1.0, 2.0]])
    labels = np.array([0, 2])
    loss, grad = cross_entropy(z, labels)
    with mp.workdps(1000):
        per, g_ref = [], np.zeros_like(z)
        for i in range(2):
            zi = [mp.mpf(float(x)) for x in z[i]]
            lse = mp.log(mp.fsum(mp.exp(x) for x in zi))
            per.append(lse - zi[labels[i]])
            for j in range(3):
                g_ref[i, j] = float((mp.exp(zi[j] - lse) - (j == labels[i])) / 2)
        ref = float(mp.fsum(per) / 2)
    assert abs(loss - ref) <= 4 * EPS * abs(ref)
    assert np.all(np.abs(grad - g_ref) <= 8 * EPS * np.abs(g_ref))
    loss1, grad1 = cross_entropy(z[:1], labels[:1])  # the confident sample alone: loss ~ e^{-gap}
    assert abs(loss1 - float(per[0])) <= 4 * EPS * float(per[0])


def test_first_spike_loss_and_gradient():
    fs = FirstSpike(tau0=2e-3, tau1=10e-3, alpha=1e-2)
    T = 0.03
    ft = np.array([[0.004, 0.006, np.inf], [np.inf, 0.012, 0.009], [np.inf, np.inf, np.inf]])
    labels = np.array([0, 0, 2])
    loss, grad = fs.spike_loss(ft, labels, T)
    te = np.where(np.isfinite(ft), ft, T)
    ce = [te[i, labels[i]] / 2e-3 + math.log(np.exp(-te[i] / 2e-3).sum()) for i in range(3)]
    reg = [1e-2 * math.expm1(te[i, labels[i]] / 10e-3) for i in range(3)]
    ref = np.mean(ce) + np.mean(reg)
    assert loss == pytest.approx(ref, rel=1e-13)
    assert np.all(grad[~np.isfinite(ft)] == 0.0)
    h = 1e-9
    for idx in zip(*np.nonzero(np.isfinite(ft)), strict=True):
        fp, fn = ft.copy(), ft.copy()
        fp[idx] += h
        fn[idx] -= h
        fd = (fs.spike_loss(fp, labels, T)[0] - fs.spike_loss(fn, labels, T)[0]) / (2 * h)
        assert abs(fd - grad[idx]) <= 1e-6 * np.abs(grad).max()


# ----------------------------------------------------------------------------- construction and validation
def test_defaults_construct():
    assert SumGaussian().absolute(2.0) == pytest.approx((1.2, 0.4))
    assert SumGaussian(mu=0.3, sigma=0.01, relative=False).absolute(2.0) == (0.3, 0.01)
    for cls in (Sum, SumExp, SumGaussian, MaxVoltage, FirstSpike):
        assert LOSSES[cls.name] is cls
        cls()
    f = SumGaussian().weight(np.array([0.0, 0.6]), 1.0)
    assert f[1] == pytest.approx(1.1) and f[0] == pytest.approx(0.1 + math.exp(-4.5))
    assert SumGaussian(weighting="gaussian_slope").weight(np.array([0.6]), 1.0)[0] == pytest.approx(0.1)
    assert SumExp().weight(np.array([0.0]), 2.0)[0] == 0.5 and Sum().weight(np.array([0.3]), 1.0)[0] == 1.0


@pytest.mark.parametrize(
    "kwargs",
    [dict(sigma=0.0), dict(sigma=-1.0), dict(mu=math.nan), dict(offset=-0.1), dict(weighting="box"), dict(relative=1)],
)
def test_sum_gaussian_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError, match="SumGaussian"):
        SumGaussian(**kwargs)


@pytest.mark.parametrize("kwargs", [dict(tau0=0.0), dict(tau1=math.inf), dict(alpha=-1.0)])
def test_first_spike_rejects_bad_parameters(kwargs):
    with pytest.raises(ValueError, match="FirstSpike"):
        FirstSpike(**kwargs)


GOOD = dict(
    t_arr=np.array([0.01, 0.02]), w_arr=np.array([1.0, -1.0]), o_arr=np.array([0, 1]), b_arr=np.array([0, 1]),
    labels=np.array([0, 1]), n_out=2, T=0.05, tau_mem=0.02, tau_syn=0.005,
)


@pytest.mark.parametrize("loss", [Sum(), MaxVoltage()], ids=repr)
@pytest.mark.parametrize(
    "change, message",
    [
        (dict(labels=np.array([0, 2])), "label 2 of sample 1"),
        (dict(labels=np.array([-1, 0])), "outside"),
        (dict(labels=np.array([0.0, 1.0])), "integers"),
        (dict(labels=np.array([[0, 1]])), "1-d"),
        (dict(labels=np.array([], dtype=int)), "empty"),
        (dict(labels=np.array([0])), "sample index"),
        (dict(o_arr=np.array([0, 2])), "readout unit"),
        (dict(t_arr=np.array([0.01, 0.06])), "arrival times"),
        (dict(t_arr=np.array([-0.01, 0.02])), "arrival times"),
        (dict(w_arr=np.array([1.0, np.nan])), "non-finite"),
        (dict(w_arr=np.array([1.0])), "one length"),
        (dict(T=0.0), "T must be"),
        (dict(tau_syn=-1.0), "tau_syn"),
        (dict(n_out=0), "n_out"),
    ],
)
def test_readout_validation(loss, change, message):
    with pytest.raises(ValueError, match=message):
        loss.readout(**{**GOOD, **change})


def test_first_spike_validation():
    fs = FirstSpike()
    with pytest.raises(ValueError, match="label"):
        fs.spike_loss(np.array([[0.01, np.inf]]), np.array([2]), 0.05)
    with pytest.raises(ValueError, match="length"):
        fs.spike_loss(np.array([[0.01, np.inf]]), np.array([0, 1]), 0.05)
    with pytest.raises(ValueError, match="NaN"):
        fs.spike_loss(np.array([[np.nan, 0.01]]), np.array([0]), 0.05)
    with pytest.raises(ValueError, match="shape"):
        fs.spike_loss(np.array([0.01, 0.02]), np.array([0]), 0.05)
