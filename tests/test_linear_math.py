"""Numerics of the 3-state linear neuron (exactsnn.neurons.linear) against independent oracles.

Oracles: ``scipy.linalg.expm`` (Pade with scaling and squaring, ~1e-15 here) for the propagator,
``scipy.integrate.quad_vec`` for the Van Loan integral, ``scipy.integrate.solve_ivp`` for the
refractory window, and a brute-force scan (1 us grid over [0, H] from scipy propagators, grid local
maxima near threshold refined by bounded minimisation, the root bracketed by ``brentq`` and polished in
40-digit mpmath) for the first crossing.

Measured (this machine, 20 000 random adLIF matrices, tau in [1 ms, 200 ms], a in (-0.9, 50), s in
[1e-7 s, 2 s]; a third with coincident eigenvalues or critical damping): the elementwise error of
``expm_into`` relative to max(1, |entry|) is <= 2.5 eps for ||A s||_inf < 1 (no squaring), <= 2.8e-14 for
||A s|| < 10, and grows with the norm like the docstring says (|lambda s| eps): up to 4.4e-13 at
||A s|| ~ 5e3 (mpmath confirms it is expm_into's error; scipy is at ~1e-15 there). Tolerance used:
min(64 eps max(1, ||A s||), 2e-12), about 3.5x above the worst ratio seen in each range.
First crossings agree with the brute force to <= 2.5e-16 s (~8000 random cases off-line, tolerance
1e-12 s); without the mpmath polish the oracle itself is off by up to 1.6e-12 s near grazing crossings.
Van Loan block vs quadrature: <= 2.5e-14 relative (tolerance 1e-13 plus 4x quad_vec's error estimate).
Lyapunov residual: < 1e-15 absolute, 5.6e-16 relative to ||A|| ||P|| (tolerance 1e-10 relative).
"""

from __future__ import annotations

import ctypes
import glob
import math
import os

import mpmath as mp
import numba
import numpy as np
import pytest
import scipy
import scipy.integrate as si
import scipy.linalg as sl
import scipy.optimize as so
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from exactsnn.neurons.linear import (
    advance,
    crossing_bounds,
    expm_into,
    first_crossing,
    flow,
    flow_adjoint,
    may_cross_before,
    next_spike,
    propagate_short,
    system_matrices,
    window_advance,
)

EPS = float(np.finfo(np.float64).eps)
TAU_MEM, TAU_W = 20e-3, 100e-3  # oscillatory for a > 0.8


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_scipy_lapack():
    """scipy's bundled OpenBLAS wakes its worker threads even for 3x3 LAPACK calls: with the CPUs busy
    (tests running side by side) one scipy.linalg.expm then takes ~16 ms instead of ~15 us, and this
    module makes thousands. Pin that library to one thread here (restored afterwards); a no-op where
    it is not found."""
    handles = []
    libdir = os.path.join(os.path.dirname(os.path.dirname(scipy.__file__)), "scipy.libs")
    for path in glob.glob(os.path.join(libdir, "libscipy_openblas*.so")):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for suffix in ("", "64_"):
            get = getattr(lib, f"scipy_openblas_get_num_threads{suffix}", None)
            set_ = getattr(lib, f"scipy_openblas_set_num_threads{suffix}", None)
            if get is not None and set_ is not None:
                set_.argtypes = [ctypes.c_int]
                handles.append((set_, int(get())))
                set_(1)
    yield
    for set_, n in handles:
        set_(n)


# ----------------------------------------------------------------------------- jitted wrappers
@numba.njit
def _expm(M, s):
    k = M.shape[0]
    out = np.empty((k, k))
    t1 = np.empty((k, k))
    t2 = np.empty((k, k))
    expm_into(M, s, out, t1, t2)
    return out


@numba.njit
def _first_crossing(x0, H, A, P, beta, alpha, v_th, t0):
    Phi, s1, s2 = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
    xs, xl, y = np.empty(3), np.empty(3), np.empty(3)
    return first_crossing(x0, H, A, P, beta, alpha, v_th, t0, Phi, s1, s2, xs, xl, y)


@numba.njit
def _next_spike(x, t0, t1, ref_end, A, P, beta, alpha, tau_w, tau_syn, a, v_th, v_reset):
    Phi, s1, s2 = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
    xa, xs, xl, y = np.empty(3), np.empty(3), np.empty(3), np.empty(3)
    return next_spike(x, t0, t1, ref_end, A, P, beta, alpha, tau_w, tau_syn, a, v_th, v_reset,
                      Phi, s1, s2, xa, xs, xl, y)


@numba.njit
def _may_cross(x, H, A, P, beta, alpha, v_th):
    return may_cross_before(x, H, A, P, beta, alpha, v_th)


@numba.njit
def _advance(x, t0, t1, ref_end, A, tau_w, tau_syn, a, v_reset):
    Phi, s1, s2 = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
    return advance(x, t0, t1, ref_end, A, tau_w, tau_syn, a, v_reset, Phi, s1, s2, np.full(1, -1.0), Phi, False)


def neuron(tau_mem=TAU_MEM, tau_w=TAU_W, tau_syn=5e-3, a=20.0):
    """(A, P, beta, alpha) of one neuron."""
    A = system_matrices([tau_mem], [tau_w], [tau_syn], [a])
    P, bnd = crossing_bounds(A)
    return A[0], P[0], float(bnd[0, 0]), float(bnd[0, 1])


def random_params(rng, n):
    """n random (tau_mem, tau_w, tau_syn, a): a third of them at a coincidence of eigenvalues."""
    tm, tw, ts = (10 ** rng.uniform(-3, math.log10(0.2), n) for _ in range(3))
    a = rng.uniform(-0.9, 50, n)
    kind = rng.integers(6, size=n)
    ts = np.where(kind == 0, tm, ts)  # tau_mem = tau_syn
    tw = np.where(kind == 1, ts, tw)  # tau_w = tau_syn
    crit = (tw - tm) ** 2 / (4 * tm * tw)
    a = np.where(kind == 2, crit, a)  # critical damping: double (V, w) eigenvalue
    a = np.where(kind == 3, np.minimum(crit, 50.0) * (1 + 1e-9), a)  # just oscillatory
    return tm, tw, ts, a


def random_stretches(rng, n):
    """n random neurons' A (:func:`random_params`) and stretch lengths s from 0.1 us to 2 s (log-uniform)."""
    A = system_matrices(*random_params(rng, n))
    return A, 10 ** rng.uniform(-7, math.log10(2.0), n)


def expm_tol(A, s):
    n = float(np.abs(A).sum(axis=1).max() * abs(s))
    return min(64 * EPS * max(1.0, n), 2e-12)


@numba.njit
def _flows(A, s, x):
    """(expm(A s) x, expm(A^T s) x, whether the short series applies) through flow / flow_adjoint."""
    Phi, s1, s2 = np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3))
    y = x.copy()
    flow(A, s, y, Phi, s1, s2)
    z = x.copy()
    flow_adjoint(A, s, z, Phi, s1, s2)
    w = x.copy()
    short = propagate_short(A, s, w)
    return y, z, short


# ----------------------------------------------------------------------------- expm_into
def test_flow_and_adjoint_flow_against_scipy():
    """x <- expm(A s) x and lam <- expm(A^T s) lam without forming the propagator on short stretches (Taylor
    series in Horner form), through it on long ones: both against scipy on random adLIF neurons (a third at a
    coincidence of eigenvalues), s from 0.1 us to 2 s, within the propagator's own tolerance times |x|."""
    rng = np.random.default_rng(3)
    n = 1500
    A, s = random_stretches(rng, n)
    n_short = 0
    for k in range(n):
        x = rng.normal(size=3) * np.array([1.0, 0.3, 3.0])
        got, got_t, short = _flows(A[k], s[k], x)
        n_short += short
        E = sl.expm(A[k] * s[k])
        tol = expm_tol(A[k], s[k]) * float(np.abs(x).max()) * 3
        assert np.abs(got - E @ x).max() <= tol, (k, got, E @ x)
        assert np.abs(got_t - E.T @ x).max() <= tol, (k, got_t, E.T @ x)
    assert 200 < n_short < n - 200  # both paths ran


def test_system_matrix_layout():
    A = system_matrices([0.02], [0.1], [0.005], [3.0])[0]
    expect = np.array([[-50.0, -50.0, 50.0], [30.0, -10.0, 0.0], [0.0, 0.0, -200.0]])
    np.testing.assert_allclose(A, expect, rtol=1e-15)


def test_expm_random_adlif_matrices_against_scipy():
    rng = np.random.default_rng(0)
    n = 1500
    A, s = random_stretches(rng, n)
    worst = 0.0
    for k in range(n):
        got = _expm(A[k], s[k])
        ref = sl.expm(A[k] * s[k])
        err = float((np.abs(got - ref) / np.maximum(1.0, np.abs(ref))).max())
        tol = expm_tol(A[k], s[k])
        assert err <= tol, (A[k], s[k], err, tol)
        worst = max(worst, err / tol)
    assert worst > 0.0  # the comparison is not vacuous


@pytest.mark.parametrize("tau", [1e-3, 5e-3, 20e-3, 200e-3])
@pytest.mark.parametrize("coincidence", ["mem=syn", "w=syn", "critical", "all equal"])
@pytest.mark.parametrize("s", [1e-7, 1e-4, 3e-3, 0.05, 0.7, 2.0])
def test_expm_coincident_eigenvalues(tau, coincidence, s):
    if coincidence == "mem=syn":
        tm, tw, ts, a = tau, 0.1, tau, 5.0
    elif coincidence == "w=syn":
        tm, tw, ts, a = 0.02, tau, tau, 0.3
    elif coincidence == "critical":
        tm, tw, ts = tau, 0.1, 5e-3
        a = (tw - tm) ** 2 / (4 * tm * tw)
    else:  # triple eigenvalue -1/tau (a = 0 is critical at tm = tw) and a Jordan block of size 3
        tm = tw = ts = tau
        a = 0.0
    A = system_matrices([tm], [tw], [ts], [a])[0]
    got = _expm(A, s)
    ref = sl.expm(A * s)
    err = float((np.abs(got - ref) / np.maximum(1.0, np.abs(ref))).max())
    assert err <= expm_tol(A, s), err


def test_expm_all_equal_closed_form():
    """tm = tw = ts = tau, a = 0: expm(A s) = e^{-s/tau} (I + N s/tau + N^2 s^2/(2 tau^2)), N nilpotent."""
    tau = 0.02
    A = system_matrices([tau], [tau], [tau], [0.0])[0]
    N = A * tau + np.eye(3)
    for s in (1e-6, 1e-3, 0.02, 0.3):
        r = s / tau
        ref = math.exp(-r) * (np.eye(3) + N * r + N @ N * r * r / 2)
        got = _expm(A, s)
        assert np.abs(got - ref).max() <= 16 * EPS * max(1.0, r), (s, np.abs(got - ref).max())


def test_expm_at_zero_and_tiny_steps():
    A, *_ = neuron(a=30.0)
    np.testing.assert_array_equal(_expm(A, 0.0), np.eye(3))
    # for ||A s|| <= 1/2 there is no squaring: a few ulps of the first-order expansion
    s = 1e-9
    got = _expm(A, s)
    ref = np.eye(3) + A * s + A @ A * s * s / 2
    assert np.abs(got - ref).max() <= 4 * EPS


@pytest.mark.parametrize("D", [1e-4, 3e-3, 0.04, 0.3])
@pytest.mark.parametrize("a", [0.5, 0.8, 30.0])
def test_van_loan_block_equals_quadrature(D, a):
    """Upper-right block of expm([[A^T, C], [0, A^T]] D) = int_0^D expm(A^T (D-u)) C expm(A^T u) du."""
    rng = np.random.default_rng(int(D * 1e4) + int(a * 10))
    A = system_matrices([20e-3], [100e-3], [5e-3], [a])[0]
    At = A.T.copy()
    lam, x0 = rng.normal(size=3), rng.normal(size=3)
    for C in (np.outer(lam, x0), rng.normal(size=(3, 3))):
        M = np.zeros((6, 6))
        M[:3, :3] = At
        M[3:, 3:] = At
        M[:3, 3:] = C
        E = _expm(M, D)

        def integrand(u, C=C):
            return sl.expm(At * (D - u)) @ C @ sl.expm(At * u)

        Q, abserr = si.quad_vec(integrand, 0.0, D, epsabs=1e-16, epsrel=1e-12)
        scale = max(np.abs(Q).max(), 1e-300)
        assert np.abs(E[:3, 3:] - Q).max() <= 1e-13 * scale + 4 * abserr, np.abs(E[:3, 3:] - Q).max() / scale
        # the diagonal blocks are the plain propagator, the lower-left block stays zero
        assert np.abs(E[:3, :3] - sl.expm(At * D)).max() <= expm_tol(M, D)
        assert np.abs(E[3:, 3:] - sl.expm(At * D)).max() <= expm_tol(M, D)
        assert np.all(E[3:, :3] == 0.0)


# ----------------------------------------------------------------------------- crossing_bounds
def test_lyapunov_solution_is_spd_and_solves_the_equation():
    rng = np.random.default_rng(1)
    tm, tw, ts, a = random_params(rng, 600)
    A = system_matrices(tm, tw, ts, a)
    P, bnd = crossing_bounds(A)
    assert P.shape == (600, 3, 3) and bnd.shape == (600, 2)
    np.testing.assert_array_equal(P, np.transpose(P, (0, 2, 1)))
    assert np.all(np.linalg.eigvalsh(P)[:, 0] > 0)
    At = np.transpose(A, (0, 2, 1))
    res = At @ P + P @ A + np.eye(3)
    scale = np.abs(A).max(axis=(1, 2)) * np.abs(P).max(axis=(1, 2))
    assert np.all(np.abs(res).max(axis=(1, 2)) <= 1e-10 * scale)
    # beta, alpha as documented (with the 1e-12 safety slack)
    e = np.array([1.0, 0.0, 0.0])
    Pinv = np.linalg.inv(P)
    beta = np.sqrt(np.einsum("i,nij,j->n", e, Pinv, e))
    g = np.einsum("nji,nkj,k->ni", A, A, e)
    alpha = np.sqrt(np.einsum("ni,nij,nj->n", g, Pinv, g))
    np.testing.assert_allclose(bnd[:, 0], beta, rtol=1e-11)
    np.testing.assert_allclose(bnd[:, 1], alpha, rtol=1e-11)
    assert np.all(bnd >= np.stack([beta, alpha], axis=1))


def _pnorm(P, x):
    return math.sqrt(max(float(x @ P @ x), 0.0))


def test_bounds_hold_along_trajectories():
    rng = np.random.default_rng(2)
    tm, tw, ts, a = random_params(rng, 60)
    A_all = system_matrices(tm, tw, ts, a)
    P_all, bnd = crossing_bounds(A_all)
    for k in range(60):
        A, P, beta, alpha = A_all[k], P_all[k], bnd[k, 0], bnd[k, 1]
        s = np.concatenate([[0.0], np.sort(rng.uniform(0, 5 * max(tm[k], tw[k], ts[k]), 80))])
        Phis = sl.expm(A[None] * s[:, None, None])
        for _ in range(3):
            x0 = rng.normal(size=3) * np.array([1.0, 3.0, 10.0])
            X = Phis @ x0
            n0 = _pnorm(P, x0)
            nP = np.array([_pnorm(P, x) for x in X])
            assert np.all(np.abs(X[:, 0]) <= beta * n0 * (1 + 1e-12) + 1e-14)
            assert np.all(np.diff(nP) <= 1e-12 * n0)  # ||x||_P never grows
            V2 = X @ (A @ A)[0]  # V'' = e_V^T A^2 x
            assert np.all(np.abs(V2) <= alpha * nP * (1 + 1e-12) + 1e-12 * alpha * n0)
        # beta is attained at x0 = P^-1 e_V (Cauchy-Schwarz equality)
        x0 = np.linalg.solve(P, np.array([1.0, 0.0, 0.0]))
        assert abs(x0[0]) == pytest.approx(beta * _pnorm(P, x0), rel=1e-10)


@pytest.mark.parametrize("a", [-1.0, -1.0 - 1e-9, -1.5, -20.0])
def test_unstable_adaptation_is_rejected(a):
    A = system_matrices([0.02, 0.02], [0.1, 0.1], [0.005, 0.005], [0.5, a])
    with pytest.raises(ValueError):
        crossing_bounds(A)


def test_barely_stable_adaptation_is_accepted():
    P, bnd = crossing_bounds(system_matrices([0.02], [0.1], [0.005], [-0.999]))
    assert np.all(np.linalg.eigvalsh(P[0]) > 0) and np.all(np.isfinite(bnd))


# ----------------------------------------------------------------------------- brute-force first crossing
GRID = 1e-6
BLOCK = 1000


def _V(A, x0, s):  # noqa: N802
    return float((sl.expm(A * s) @ x0)[0])


def _grid_voltage(A, x0, H):
    """t_k = k GRID (k = 0..ceil(H/GRID)) and V(t_k), all from scipy propagators (no long recurrences)."""
    K = int(math.ceil(H / GRID))
    J = K // BLOCK + 1
    steps = np.empty((BLOCK, 3, 3))
    steps[0] = np.eye(3)
    Q = sl.expm(A * GRID)
    m = 1
    while m < BLOCK:  # steps[k] = Q^k by doubling
        c = min(m, BLOCK - m)
        steps[m : m + c] = steps[:c] @ (steps[m - 1] @ Q)
        m += c
    starts = np.empty((J, 3))
    starts[0] = x0
    big = sl.expm(A * (BLOCK * GRID))
    for j in range(1, J):  # J <= 201 products: relative drift ~ J eps, far below the 1e-9 ambiguity margin
        starts[j] = big @ starts[j - 1]
    V = np.einsum("kj,Jj->Jk", steps[:, 0, :], starts).reshape(-1)[: K + 1]
    return np.arange(K + 1) * GRID, V


def brute_first_crossing(A, x0, H, v_th):
    """(first s in [0, H] with V(s) >= v_th, or -1; margin). The margin is the smallest distance to v_th
    of V's local maxima before the crossing and of the crossing excursion's grid maximum (or of the local
    maxima on [0, H] and V(H) when there is no crossing): an example whose margin is below 1e-9 is
    ambiguous for a 1 us grid."""
    if x0[0] >= v_th:
        return 0.0, math.inf
    t, V = _grid_voltage(A, x0, H)
    keep = t <= H
    t, V = t[keep], V[keep]
    if t[-1] < H:
        t, V = np.append(t, H), np.append(V, _V(A, x0, H))

    def f(s):
        return _V(A, x0, s) - v_th

    above = np.flatnonzero(V >= v_th)
    k_end = above[0] if above.size else len(V) - 1
    # grid local maxima that could hide an excursion above v_th (between grid points V exceeds its grid
    # values by at most max|V''| GRID^2 / 8 < 1e-6 here); farther ones have a margin > 1e-9 anyway
    peaks = np.flatnonzero((V[1:-1] > V[:-2]) & (V[1:-1] >= V[2:]) & (V[1:-1] >= v_th - 1e-4)) + 1
    margin = math.inf
    for k in peaks[peaks <= k_end]:
        lo, hi = t[k - 1], t[k + 1]
        r = so.minimize_scalar(lambda s: -_V(A, x0, s), bounds=(lo, hi), method="bounded",
                               options=dict(xatol=1e-13))
        peak = max(-r.fun, V[k])
        margin = min(margin, abs(peak - v_th))
        if peak >= v_th:  # an excursion above v_th between grid points (or at the grid point k)
            if margin < 1e-9:
                return float(t[k]), margin  # ambiguous: the caller skips it
            t_pk = r.x if -r.fun >= v_th else t[k]
            return _exact_root(A, x0, v_th, so.brentq(f, lo, t_pk, xtol=1e-17, rtol=4 * EPS)), margin
    if above.size:
        k = above[0]
        seg = V[k:]
        below = np.flatnonzero(seg < v_th)
        margin = min(margin, float(seg[: below[0] if below.size else seg.size].max() - v_th))  # the excursion
        if margin < 1e-9:
            return float(t[k]), margin  # ambiguous (e.g. V reaches v_th only at H): the caller skips it
        return _exact_root(A, x0, v_th, so.brentq(f, t[k - 1], t[k], xtol=1e-17, rtol=4 * EPS)), margin
    return -1.0, min(margin, v_th - V[-1])


def _exact_root(A, x0, v_th, s):
    """Polish a double-precision root s of V = v_th in 40-digit arithmetic (mpmath.expm): the scipy
    propagator's ~1e-15 relative error moves a root by 1e-15 |x| / V', up to ~1e-12 s near grazing."""
    with mp.workdps(40):
        Am, xm = mp.matrix(A.tolist()), mp.matrix(x0.tolist())

        def g(u):
            return (mp.expm(Am * u) * xm)[0] - v_th

        lo, hi = mp.mpf(s) - mp.mpf("1e-10"), mp.mpf(s) + mp.mpf("1e-10")
        if not (g(lo) < 0 <= g(hi)):
            return s  # not bracketed (V' tiny): keep the double root
        for _ in range(80):  # bisection to ~1e-34 s
            mid = (lo + hi) / 2
            if g(mid) >= 0:
                hi = mid
            else:
                lo = mid
        return float(hi)


def test_brute_force_oracle_sanity():
    """The oracle itself: a LIF-like neuron (a = 0, w = 0) against the closed form."""
    tm, ts = 0.02, 0.005
    A, *_ = neuron(tm, 0.1, ts, 0.0)
    x0 = np.array([0.0, 0.0, 8.0])
    s_ref, margin = brute_first_crossing(A, x0, 0.05, 1.0)

    def v(s):
        return ts / (ts - tm) * 8.0 * (math.exp(-s / ts) - math.exp(-s / tm)) - 1.0

    assert margin > 0.2  # the excursion's peak is 2^(1/3)
    assert s_ref == pytest.approx(so.brentq(v, 0.0, 0.009, xtol=1e-17, rtol=4 * EPS), abs=1e-15)
    ref, margin = brute_first_crossing(A, x0, 0.05, 1.3)  # the peak is 2^(1/3) = 1.2599...
    assert ref == -1.0 and margin > 1e-3
    ref, margin = brute_first_crossing(A, x0, 0.05, 2 ** (1 / 3) + 1e-10)  # just above the peak
    assert ref == -1.0 and 5e-11 < margin < 2e-10


# ----------------------------------------------------------------------------- first_crossing property
@st.composite
def crossing_cases(draw):
    a = draw(st.floats(5.0, 60.0))
    tau_syn = draw(st.sampled_from([2e-3, 5e-3, 20e-3, 100e-3]))
    V0 = draw(st.floats(-1.0, 1.0))
    w0 = draw(st.floats(-3.0, 3.0))
    I0 = draw(st.floats(-5.0, 20.0))
    H = draw(st.floats(1e-3, 0.2))
    level = 10.0 ** draw(st.floats(-2.5, 0.08))  # v_th = V0 + level * (max V - V0): mostly crossed
    t0 = draw(st.sampled_from([0.0, 0.37, 1.0]))
    return a, tau_syn, np.array([V0, w0, I0]), H, level, t0


def threshold_for(A, x0, H, level):
    """A threshold at the given fraction of V's rise over [0, H] (0.5 above V0 when V does not rise)."""
    _, V = _grid_voltage(A, x0, H)
    rise = float(V.max() - x0[0])
    return float(x0[0] + level * rise) if rise > 1e-3 else float(x0[0] + 0.5), V


@settings(max_examples=min(settings.default.max_examples, 40))
@given(crossing_cases())
def test_first_crossing_is_the_first_one(case):
    a, tau_syn, x0, H, level, t0 = case
    A, P, beta, alpha = neuron(TAU_MEM, TAU_W, tau_syn, a)
    v_th, _ = threshold_for(A, x0, H, level)
    assume(v_th > 0.05)
    ref, margin = brute_first_crossing(A, x0, H, v_th)
    assume(margin >= 1e-9)
    got = _first_crossing(x0, H, A, P, beta, alpha, v_th, t0)
    screen = _may_cross(x0, H, A, P, beta, alpha, v_th)
    if ref < 0:
        assert got == -1.0, f"spurious crossing at {got!r} (margin {margin:.2e})"
    else:
        assert screen, "may_cross_before ruled out a real crossing"
        assert abs(got - ref) <= 1e-12, f"got {got!r}, brute force {ref!r}"
    # next_spike (no refractory window) is the same search on absolute times
    ns = _next_spike(x0, t0, t0 + H, -math.inf, A, P, beta, alpha, TAU_W, tau_syn, a, v_th, -1.0)
    if ref < 0:
        assert ns == -1.0
    else:
        assert abs(ns - (t0 + ref)) <= 1e-12 + 4 * EPS * t0


def test_property_strategy_crosses_several_times():
    """The property test's distribution (tau_mem 20 ms, tau_w 100 ms, a in [5, 60], thresholds placed
    within V's range) often has V cross v_th several times on [0, H]: the first-crossing claim is tested
    where it matters."""
    rng = np.random.default_rng(3)
    several = 0
    for _ in range(40):
        a = rng.uniform(5, 60)
        A, *_ = neuron(TAU_MEM, TAU_W, rng.choice([2e-3, 5e-3, 20e-3, 100e-3]), a)
        x0 = np.array([rng.uniform(-1, 1), rng.uniform(-3, 3), rng.uniform(-5, 20)])
        v_th, V = threshold_for(A, x0, 0.2, 10 ** rng.uniform(-2.5, 0.08))
        several += np.count_nonzero(np.diff((V >= v_th).astype(int)) == 1) >= 2
    assert several >= 6


def _refine_peak(A, x0, lo, hi):
    """Time of the maximum of V on [lo, hi] (V' changes sign from + to - once): root of V' = (A x)_V."""
    def dv(s):
        return float((A @ sl.expm(A * s) @ x0)[0])

    return so.brentq(dv, lo, hi, xtol=1e-17, rtol=4 * EPS)


def _peaks(A, x0, H, step=1e-4):
    s = np.arange(0.0, H, step)
    V = (sl.expm(A[None] * s[:, None, None]) @ x0)[:, 0]
    idx = np.flatnonzero((V[1:-1] > V[:-2]) & (V[1:-1] >= V[2:])) + 1
    return [_refine_peak(A, x0, s[k - 1], s[k + 1]) for k in idx]


@pytest.mark.parametrize("delta", [1e-5, 1e-9, 1e-12])
def test_near_miss_then_crossing_on_a_later_swing(delta):
    """V rises to v_th - delta, falls, and crosses on the next (higher) swing: not stopping early."""
    tau_syn, a = 5e-3, 20.0
    A, P, beta, alpha = neuron(TAU_MEM, TAU_W, tau_syn, a)
    x = np.array([-1.397, 9.614, 24.823])  # strong adaptation w0: a low first swing, a high second one
    t1, t2 = _peaks(A, x, 0.1)[:2]
    p1, p2 = _V(A, x, t1), _V(A, x, t2)
    assert 0 < p1 < p2
    x0 = x * ((1.0 - delta) / p1)  # scale so that the first peak is at v_th - delta, v_th = 1
    v_th = 1.0
    assert v_th - delta * 1.01 <= _V(A, x0, t1) < v_th
    assert _V(A, x0, t2) > 2.0
    # the exact answer: the rising flank of the second swing
    trough = so.minimize_scalar(lambda s: _V(A, x0, s), bounds=(t1, t2), method="bounded").x
    ref = so.brentq(lambda s: _V(A, x0, s) - v_th, trough, t2, xtol=1e-17, rtol=4 * EPS)
    for H in (t2, 0.2):
        got = _first_crossing(x0, H, A, P, beta, alpha, v_th, 0.0)
        assert abs(got - ref) <= 1e-12, (got, ref)
    # a horizon that ends before the second swing reaches v_th: no crossing
    assert _first_crossing(x0, ref - 1e-6, A, P, beta, alpha, v_th, 0.0) == -1.0
    assert _first_crossing(x0, t1 + 1e-3, A, P, beta, alpha, v_th, 0.0) == -1.0


@pytest.mark.parametrize("eps_above", [1e-8, 1e-10, 1e-12])
def test_grazing_peak_between_coarse_grid_points(eps_above):
    """A swing that exceeds v_th by a hair for well under a microsecond is found, at its entry."""
    A, P, beta, alpha = neuron(TAU_MEM, TAU_W, 5e-3, 40.0)
    x = np.array([0.0, 0.0, 5.0])
    tp = _peaks(A, x, 0.1)[1]  # second swing (lower than the first: set v_th just below its peak)
    v_th = 1.0
    x0 = x * ((v_th + eps_above) / _V(A, x, tp))
    p = _V(A, x0, tp)
    assert p > v_th
    # the first swing is higher: a crossing there. Start after it, on the way down.
    t_start = so.minimize_scalar(lambda s: _V(A, x0, s), bounds=(0.0, tp), method="bounded").x
    xs = sl.expm(A * t_start) @ x0
    tp_rel = tp - t_start
    coarse = sl.expm(A[None] * np.arange(0.0, 0.05, 1e-3)[:, None, None]) @ xs
    assert coarse[:, 0].max() < v_th  # a 1 ms scan misses the excursion
    ref = so.brentq(lambda s: _V(A, xs, s) - v_th, tp_rel - 1e-4, tp_rel, xtol=1e-17, rtol=4 * EPS)
    got = _first_crossing(xs, 0.05, A, P, beta, alpha, v_th, t_start)
    # the crossing time is ill-conditioned (V' ~ sqrt(2 V'' eps)); V at the answer is within rounding of v_th
    assert ref - 1e-11 <= got <= tp_rel + 1e-11, (got, ref, tp_rel)
    assert abs(_V(A, xs, got) - v_th) <= 1e-13
    # and the horizon just before the entry sees nothing
    assert _first_crossing(xs, ref - 1e-8, A, P, beta, alpha, v_th, t_start) == -1.0


def test_start_at_or_above_threshold_and_empty_horizon():
    A, P, beta, alpha = neuron(a=10.0)
    assert _first_crossing(np.array([1.0, 0.0, 0.0]), 0.1, A, P, beta, alpha, 1.0, 0.0) == 0.0
    assert _first_crossing(np.array([1.5, 0.0, -3.0]), 0.1, A, P, beta, alpha, 1.0, 0.0) == 0.0
    assert _first_crossing(np.array([0.5, 0.0, 9.0]), 0.0, A, P, beta, alpha, 1.0, 0.0) == -1.0
    # at rest nothing happens, and the cheap screen says so
    assert _first_crossing(np.zeros(3), 1.0, A, P, beta, alpha, 1.0, 0.0) == -1.0
    assert not _may_cross(np.zeros(3), 1.0, A, P, beta, alpha, 1.0)


def test_may_cross_before_is_conservative():
    rng = np.random.default_rng(4)
    ruled_out = 0
    for _ in range(60):
        a = rng.uniform(5, 60)
        A, P, beta, alpha = neuron(TAU_MEM, TAU_W, 5e-3, a)
        x0 = np.array([rng.uniform(-1, 0.9), rng.uniform(-2, 2), rng.uniform(-5, 15)])
        H = 10 ** rng.uniform(-4, -1)
        if not _may_cross(x0, H, A, P, beta, alpha, 1.0):
            ruled_out += 1
            s = np.linspace(0, H, 2001)
            V = (sl.expm(A[None] * s[:, None, None]) @ x0)[:, 0]
            assert V.max() < 1.0
            assert _first_crossing(x0, H, A, P, beta, alpha, 1.0, 0.0) == -1.0
    assert ruled_out >= 10


# ----------------------------------------------------------------------------- refractory window
@pytest.mark.parametrize("v_reset", [0.0, 0.1, -0.2])
@pytest.mark.parametrize("a", [-0.5, 0.5, 40.0])
def test_window_advance_matches_ode_with_frozen_voltage(v_reset, a):
    tau_w, tau_syn = 0.1, 5e-3
    x0 = np.array([v_reset, 0.7, -2.3])

    def rhs(_t, y):  # V frozen at v_reset: w' = (-w + a v_reset)/tau_w, I' = -I/tau_syn
        return [(-y[0] + a * v_reset) / tau_w, -y[1] / tau_syn]

    for s in (1e-6, 1e-3, 2e-3, 0.03):
        sol = si.solve_ivp(rhs, (0.0, s), x0[1:], method="DOP853", rtol=1e-13, atol=1e-15)
        x = x0.copy()
        window_advance(x, s, tau_w, tau_syn, a, v_reset)
        assert x[0] == v_reset
        np.testing.assert_allclose(x[1:], sol.y[:, -1], rtol=1e-10, atol=1e-13)


def test_advance_across_a_window_end():
    tau_w, tau_syn, a, v_reset = 0.1, 5e-3, 30.0, -0.2
    A, *_ = neuron(TAU_MEM, tau_w, tau_syn, a)
    x0 = np.array([v_reset, 0.4, 3.0])
    t0, ref_end, t1 = 0.010, 0.012, 0.031
    x = x0.copy()
    i_end = _advance(x, t0, t1, ref_end, A, tau_w, tau_syn, a, v_reset)
    xe = x0.copy()
    window_advance(xe, ref_end - t0, tau_w, tau_syn, a, v_reset)
    assert i_end == xe[2]
    ref = sl.expm(A * (t1 - ref_end)) @ xe
    tol = expm_tol(A, t1 - ref_end) * np.abs(xe).sum()
    assert np.abs(x - ref).max() <= tol, np.abs(x - ref).max()
    # entirely inside the window: no window end reported, V stays clamped
    x = x0.copy()
    assert math.isnan(_advance(x, t0, 0.011, ref_end, A, tau_w, tau_syn, a, v_reset))
    assert x[0] == v_reset
    # no window at all: plain propagation
    x = x0.copy()
    assert math.isnan(_advance(x, t0, t1, -math.inf, A, tau_w, tau_syn, a, v_reset))
    assert np.abs(x - sl.expm(A * (t1 - t0)) @ x0).max() <= expm_tol(A, t1 - t0) * np.abs(x0).sum()


def test_next_spike_waits_for_the_window_end():
    tau_w, tau_syn, a, v_reset, v_th = 0.1, 5e-3, 20.0, 0.1, 1.0
    A, P, beta, alpha = neuron(TAU_MEM, tau_w, tau_syn, a)
    x = np.array([v_reset, 0.5, 30.0])  # strong current: would cross at once if V were free
    t0, ref_end = 0.02, 0.023
    free = _next_spike(x, t0, 0.1, -math.inf, A, P, beta, alpha, tau_w, tau_syn, a, v_th, v_reset)
    assert t0 < free < ref_end
    got = _next_spike(x, t0, 0.1, ref_end, A, P, beta, alpha, tau_w, tau_syn, a, v_th, v_reset)
    xe = x.copy()
    window_advance(xe, ref_end - t0, tau_w, tau_syn, a, v_reset)
    ref, margin = brute_first_crossing(A, xe, 0.1 - ref_end, v_th)
    assert margin >= 1e-9 and ref > 0
    assert abs(got - (ref_end + ref)) <= 1e-12
    # the window covers the whole horizon: nothing; x itself is not modified
    x_before = x.copy()
    assert _next_spike(x, t0, ref_end, ref_end, A, P, beta, alpha, tau_w, tau_syn, a, v_th, v_reset) == -1.0
    np.testing.assert_array_equal(x, x_before)
