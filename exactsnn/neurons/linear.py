"""Numerics of a neuron that is a 3-state linear system between events (adLIF; LIF with learned taus).

State x = (V, w, I), dx/dt = A x between events (see :mod:`exactsnn.neurons.adlif` for the model)::

    A = [[-1/tau_mem, -1/tau_mem, 1/tau_mem],
         [ a/tau_w,   -1/tau_w,   0        ],
         [ 0,          0,        -1/tau_syn]]

Propagator. x(t0 + s) = expm(A s) x(t0). The matrix exponential is evaluated by scaling and squaring
with a Taylor series (scale s by 2^-k until ||A s||_inf <= 1/2, sum the series until a term is below
1e-18, square k times). Unlike an eigen-decomposition this has no division by eigenvalue gaps, so it
is accurate through every coincidence a learned parameter can pass: tau_mem = tau_syn, tau_w =
tau_syn, critical damping, and real or complex (damped oscillation) eigenvalues alike. The error of
the squarings grows like the condition of the exponential itself (|lambda s| eps); for the short
stretches between events (||A s|| < 1/2, no squaring at all) it is a few ulps.

Refractory window. V is held at v_reset, so w relaxes towards a v_reset and I decays::

    V = v_reset,  w(s) = a v_reset + (w0 - a v_reset) e^{-s/tau_w},  I(s) = I0 e^{-s/tau_syn}

First-crossing search that cannot skip a crossing (V may cross v_th several times between two events
when the eigenvalues are complex). With P the solution of the Lyapunov equation A^T P + P A = -1
(P is symmetric positive definite when A is stable, i.e. a > -1), the norm ||x||_P = sqrt(x^T P x)
never grows along the free flow (d/dt x^T P x = -|x|^2). Hence for all later times, by Cauchy-Schwarz
in the P-inner product::

    |V|   <= beta  ||x(s)||_P,   beta  = sqrt(e_V^T P^-1 e_V)
    |V''| <= alpha ||x(s)||_P,   alpha = sqrt(g^T P^-1 g),  g = (A^T)^2 e_V

so M2 = alpha ||x||_P bounds V'' from the current point on. If beta ||x||_P < v_th the neuron cannot
reach threshold before its next input. Otherwise step from s by the largest h with
V + V' h + M2 h^2/2 <= v_th (V stays below threshold on [s, s + h]); once V' > 0 and
v_th - V <= V'^2 / (2 M2) the lower bound V + V' t - M2 t^2/2 reaches v_th at t* <= V'/M2, and V is
increasing on [s, s + V'/M2], so the first crossing is the unique root in [s, s + t*]: bracketed
exactly, then polished by safeguarded Newton steps (V' is exact: (A x)_V) to a few ulps of the
absolute time. A stretch that approaches threshold tangentially within the rounding of V (gap below
a few ulps of v_th) counts as a crossing, as the closed-form LIF search does for a grazing maximum.

Cheaper screen over a known horizon H (the next input in a layer without delays): V'' <= M2, so
V(s + t) <= V + max(V', 0) t + M2 t^2/2 for t in [0, H - s]; below v_th at t = H - s means no crossing.

Everything below is ``register_jitable`` (no allocation in the hot paths: callers pass scratch arrays).
"""

from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable

__all__ = [
    "system_matrices", "crossing_bounds", "expm_block_into", "expm_into", "propagate", "propagate_short", "flow",
    "flow_adjoint", "series_terms", "advance", "first_crossing", "next_spike", "window_advance", "lam_x_integral",
]

EPS = 2.220446049250313e-16
TERM_TOL = 1e-18  # Taylor series of a propagation (spike times): the stopping rule of expm_block_into
MAX_SEARCH_STEPS = 200_000  # safe steps per search; only a near-tangent approach needs more than ~50


def system_matrices(tau_mem: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, a: np.ndarray) -> np.ndarray:
    """A of every neuron: array (n, 3, 3) from per-neuron parameter arrays (seconds; a dimensionless)."""
    tm, tw, ts, a = (np.asarray(v, dtype=np.float64) for v in (tau_mem, tau_w, tau_syn, a))
    A = np.zeros((tm.size, 3, 3))
    A[:, 0, 0] = -1.0 / tm
    A[:, 0, 1] = -1.0 / tm
    A[:, 0, 2] = 1.0 / tm
    A[:, 1, 0] = a / tw
    A[:, 1, 1] = -1.0 / tw
    A[:, 2, 2] = -1.0 / ts
    return A


def crossing_bounds(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(P, bounds) for every neuron: P (n, 3, 3) solves A^T P + P A = -1; bounds (n, 2) = (beta, alpha).

    Raises ``ValueError`` when some A is not stable (the adaptation must satisfy a > -1).
    """
    n = A.shape[0]
    eye = np.eye(3)
    # vec(A^T P + P A) = (I kron A^T + A^T kron I) vec(P) for row-major vec
    At = np.transpose(A, (0, 2, 1))
    K = np.einsum("ij,nkl->nikjl", eye, At).reshape(n, 9, 9) + np.einsum("nij,kl->nikjl", At, eye).reshape(n, 9, 9)
    rhs = np.broadcast_to(-eye.reshape(9), (n, 9))
    P = np.linalg.solve(K, rhs[..., None])[..., 0].reshape(n, 3, 3)
    P = 0.5 * (P + np.transpose(P, (0, 2, 1)))
    eig = np.linalg.eigvalsh(P)
    if not np.all(np.isfinite(eig)) or np.any(eig[:, 0] <= 0):
        raise ValueError("the neuron's linear dynamics is not stable (adLIF needs a > -1)")
    Pinv = np.linalg.inv(P)
    e = np.array([1.0, 0.0, 0.0])
    g = np.einsum("nji,nkj,k->ni", A, A, e)  # (A^T)^2 e_V
    beta = np.sqrt(np.einsum("i,nij,j->n", e, Pinv, e))
    alpha = np.sqrt(np.einsum("ni,nij,nj->n", g, Pinv, g))
    # a hair of slack so that rounding in P cannot make the bounds optimistic
    return P, np.stack([beta, alpha], axis=1) * (1.0 + 1e-12)


@register_jitable
def _halvings(nrm: float, s: float) -> tuple[float, int]:
    """The scaling of scaling and squaring: (h, sq) with h = s / 2^sq, the fewest halvings that bring the norm
    ``nrm`` of M s to at most 1/2 (halvings are exact, so h and the series below do not depend on how)."""
    h = s
    sq = 0
    while nrm > 0.5:
        nrm *= 0.5
        h *= 0.5
        sq += 1
    return h, sq


@register_jitable
def expm_block_into(M: np.ndarray, s: float, out: np.ndarray) -> None:
    """out = expm(M s) for a 3x3 M with M[2, 0] = M[2, 1] = 0 (every linear neuron's A): the arithmetic of
    :func:`expm_into` (same scaling, terms, stopping rule and squarings, so the same floats up to the sign of
    a zero), on the seven entries that are not zero, in registers: ~3.5x faster (250 vs 870 ns)."""
    m00, m01, m02 = M[0, 0], M[0, 1], M[0, 2]
    m10, m11, m12 = M[1, 0], M[1, 1], M[1, 2]
    m22 = M[2, 2]
    nrm = max(max(abs(m00) + abs(m01) + abs(m02), abs(m10) + abs(m11) + abs(m12)), abs(m22)) * abs(s)
    h, sq = _halvings(nrm, s)
    o00, o01, o02, o10, o11, o12, o22 = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0
    a00, a01, a02, a10, a11, a12, a22 = 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0
    for m in range(1, 40):
        f = h / m
        b00 = (a00 * m00 + a01 * m10) * f
        b01 = (a00 * m01 + a01 * m11) * f
        b02 = (a00 * m02 + a01 * m12 + a02 * m22) * f
        b10 = (a10 * m00 + a11 * m10) * f
        b11 = (a10 * m01 + a11 * m11) * f
        b12 = (a10 * m02 + a11 * m12 + a12 * m22) * f
        b22 = (a22 * m22) * f
        a00, a01, a02, a10, a11, a12, a22 = b00, b01, b02, b10, b11, b12, b22
        o00 += b00
        o01 += b01
        o02 += b02
        o10 += b10
        o11 += b11
        o12 += b12
        o22 += b22
        big = max(max(max(abs(b00), abs(b01)), max(abs(b02), abs(b10))), max(max(abs(b11), abs(b12)), abs(b22)))
        if big <= 1e-18:
            break
    for _ in range(sq):
        o00, o01, o02, o10, o11, o12, o22 = (
            o00 * o00 + o01 * o10, o00 * o01 + o01 * o11, o00 * o02 + o01 * o12 + o02 * o22,
            o10 * o00 + o11 * o10, o10 * o01 + o11 * o11, o10 * o02 + o11 * o12 + o12 * o22, o22 * o22,
        )
    out[0, 0], out[0, 1], out[0, 2] = o00, o01, o02
    out[1, 0], out[1, 1], out[1, 2] = o10, o11, o12
    out[2, 0], out[2, 1], out[2, 2] = 0.0, 0.0, o22



@register_jitable
def expm_into(M: np.ndarray, s: float, out: np.ndarray, t1: np.ndarray, t2: np.ndarray) -> None:
    """out = expm(M s) for a small square M (k x k); t1, t2: k x k scratch. A 3x3 M of a linear neuron's
    shape goes to :func:`expm_block_into` (the same floats, faster)."""
    k = M.shape[0]
    if k == 3 and M[2, 0] == 0.0 and M[2, 1] == 0.0:
        expm_block_into(M, s, out)
        return
    nrm = 0.0
    for i in range(k):
        r = 0.0
        for j in range(k):
            r += abs(M[i, j])
        nrm = max(nrm, r)
    nrm *= abs(s)
    h, sq = _halvings(nrm, s)
    for i in range(k):
        for j in range(k):
            v = 1.0 if i == j else 0.0
            out[i, j] = v
            t1[i, j] = v
    for m in range(1, 40):
        f = h / m
        big = 0.0
        for i in range(k):
            for j in range(k):
                acc = 0.0
                for q in range(k):
                    acc += t1[i, q] * M[q, j]
                acc *= f
                t2[i, j] = acc
                big = max(big, abs(acc))
        for i in range(k):
            for j in range(k):
                t1[i, j] = t2[i, j]
                out[i, j] += t2[i, j]
        if big <= 1e-18:
            break
    for _ in range(sq):
        for i in range(k):
            for j in range(k):
                acc = 0.0
                for q in range(k):
                    acc += out[i, q] * out[q, j]
                t2[i, j] = acc
        for i in range(k):
            for j in range(k):
                out[i, j] = t2[i, j]


@register_jitable
def series_terms(x: float, tol: float = TERM_TOL) -> int:
    """Terms k after the first so that x^k / k! <= tol (x = h L <= 1/2 and tol = 1e-18: k <= 17)."""
    t = 1.0
    k = 0
    while t > tol:
        k += 1
        t *= x / k
    return k


@register_jitable
def propagate_short(M: np.ndarray, s: float, x: np.ndarray) -> bool:
    """x <- expm(M s) x for a neuron's A = M (M[2, 0] = M[2, 1] = 0) without forming the matrix, when
    ||M s||_inf <= 1/2: the Taylor series of expm(M s) x in Horner form, x + s M (x + s M/2 (x + ...)), with the
    stopping rule of :func:`expm_block_into` ((||M s||)^k / k! <= 1e-18), ~6x fewer operations than the
    propagator for the short stretches between a neuron's arrivals. Returns False (x untouched) when the
    stretch is longer; the caller then uses the propagator."""
    m00, m01, m02 = M[0, 0], M[0, 1], M[0, 2]
    m10, m11, m12 = M[1, 0], M[1, 1], M[1, 2]
    m22 = M[2, 2]
    nrm = max(max(abs(m00) + abs(m01) + abs(m02), abs(m10) + abs(m11) + abs(m12)), abs(m22)) * abs(s)
    if nrm > 0.5:
        return False
    k = series_terms(nrm)
    x0, x1, x2 = x[0], x[1], x[2]
    y0, y1, y2 = x0, x1, x2
    for i in range(k, 0, -1):
        f = s / i
        y0, y1, y2 = (x0 + f * (m00 * y0 + m01 * y1 + m02 * y2), x1 + f * (m10 * y0 + m11 * y1 + m12 * y2),
                      x2 + f * (m22 * y2))
    x[0], x[1], x[2] = y0, y1, y2
    return True


@register_jitable
def flow(A: np.ndarray, s: float, x: np.ndarray, Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> None:
    """x <- expm(A s) x: :func:`propagate_short` on short stretches, else through the propagator (Phi, s1, s2:
    3x3 scratch)."""
    if not propagate_short(A, s, x):
        expm_into(A, s, Phi, s1, s2)
        propagate(Phi, x)


@register_jitable
def flow_adjoint(A: np.ndarray, s: float, lam: np.ndarray, Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray) -> None:
    """lam <- expm(A^T s) lam (an adjoint brought back over a stretch of s seconds): the Taylor series in Horner
    form when ||A s||_1 <= 1/2 (the stopping rule of :func:`expm_block_into`), else through the propagator
    (Phi, s1, s2: 3x3 scratch)."""
    m00, m01, m02 = A[0, 0], A[0, 1], A[0, 2]
    m10, m11, m12 = A[1, 0], A[1, 1], A[1, 2]
    m22 = A[2, 2]
    nrm = max(max(abs(m00) + abs(m10), abs(m01) + abs(m11)), abs(m02) + abs(m12) + abs(m22)) * abs(s)
    if nrm > 0.5:
        expm_into(A, s, Phi, s1, s2)
        l0 = Phi[0, 0] * lam[0] + Phi[1, 0] * lam[1]
        l1 = Phi[0, 1] * lam[0] + Phi[1, 1] * lam[1]
        l2 = Phi[0, 2] * lam[0] + Phi[1, 2] * lam[1] + Phi[2, 2] * lam[2]
        lam[0], lam[1], lam[2] = l0, l1, l2
        return
    k = series_terms(nrm)
    x0, x1, x2 = lam[0], lam[1], lam[2]
    y0, y1, y2 = x0, x1, x2
    for i in range(k, 0, -1):
        f = s / i
        y0, y1, y2 = (x0 + f * (m00 * y0 + m10 * y1), x1 + f * (m01 * y0 + m11 * y1),
                      x2 + f * (m02 * y0 + m12 * y1 + m22 * y2))
    lam[0], lam[1], lam[2] = y0, y1, y2


@register_jitable
def propagate(Phi: np.ndarray, x: np.ndarray) -> None:
    """x = Phi x in place (3-vectors; Phi upper block triangular: I feeds V, V and w couple)."""
    v = Phi[0, 0] * x[0] + Phi[0, 1] * x[1] + Phi[0, 2] * x[2]
    w = Phi[1, 0] * x[0] + Phi[1, 1] * x[1] + Phi[1, 2] * x[2]
    x[2] = Phi[2, 2] * x[2]
    x[0] = v
    x[1] = w


@register_jitable
def window_advance(x: np.ndarray, s: float, tau_w: float, tau_syn: float, a: float, v_reset: float) -> None:
    """Refractory evolution over s seconds in place: V held at v_reset, w relaxes to a v_reset."""
    wr = a * v_reset
    x[0] = v_reset
    x[1] = wr + (x[1] - wr) * math.exp(-s / tau_w)
    x[2] = x[2] * math.exp(-s / tau_syn)


@register_jitable
def advance(
    x: np.ndarray, t0: float, t1: float, ref_end: float, A: np.ndarray, tau_w: float, tau_syn: float, a: float,
    v_reset: float, Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray, cache: np.ndarray, cPhi: np.ndarray,
    use_cache: bool,
) -> float:
    """State x at t0 -> t1 in place; V held at v_reset until ref_end. Returns I at ref_end if the window
    ends in (t0, t1], else NaN (the caller records it). Phi, s1, s2: 3x3 scratch. With ``use_cache`` (all
    neurons share A) the propagator of the last stretch length is kept in cPhi, its length in cache[0]."""
    i_end = math.nan
    if ref_end > t0:
        if ref_end > t1:
            window_advance(x, t1 - t0, tau_w, tau_syn, a, v_reset)
            return i_end
        window_advance(x, ref_end - t0, tau_w, tau_syn, a, v_reset)
        i_end = x[2]
        t0 = ref_end
    s = t1 - t0
    if s > 0.0:
        if use_cache:
            if cache[0] != s:
                expm_into(A, s, cPhi, s1, s2)
                cache[0] = s
            propagate(cPhi, x)
        else:
            flow(A, s, x, Phi, s1, s2)
    return i_end


@register_jitable
def _pnorm(P: np.ndarray, x: np.ndarray) -> float:
    acc = 0.0
    for i in range(3):
        for j in range(3):
            acc += x[i] * P[i, j] * x[j]
    return math.sqrt(max(acc, 0.0))


@register_jitable
def _vdot(A: np.ndarray, x: np.ndarray) -> float:
    return A[0, 0] * x[0] + A[0, 1] * x[1] + A[0, 2] * x[2]


@register_jitable
def _polish(
    x_lo: np.ndarray, lo: float, hi: float, v_hi: float, A: np.ndarray, v_th: float, t_abs: float,
    Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray, y: np.ndarray,
) -> float:
    """Root of V = v_th in (lo, hi] (relative to x_lo's time lo; V(lo) < v_th <= v_hi = V(hi), V rising)."""
    tol = 4.0 * EPS * max(abs(t_abs) + hi, 1e-12)
    v_lo = x_lo[0]
    a_ = 0.0
    b_ = hi - lo
    u = b_ * ((v_th - v_lo) / (v_hi - v_lo))
    if not 0.0 < u < b_:
        u = 0.5 * b_
    dx_old = 2.0 * b_
    dx = b_
    for _ in range(200):
        for i in range(3):
            y[i] = x_lo[i]
        flow(A, u, y, Phi, s1, s2)
        f = y[0] - v_th
        if f >= 0.0:
            b_ = u
        else:
            a_ = u
        if f == 0.0:
            return lo + u
        d1 = _vdot(A, y)
        newton = u - f / d1 if d1 > 0.0 else math.inf
        if a_ < newton < b_ and abs(2.0 * f) <= abs(dx_old * d1):
            dx_old = dx
            dx = u - newton
            u = newton
            if abs(dx) <= tol:
                return lo + u
        else:
            dx_old = dx
            dx = 0.5 * (b_ - a_)
            u = a_ + dx
            if dx <= tol:
                return lo + b_
    return lo + b_


@register_jitable
def first_crossing(
    x0: np.ndarray, H: float, A: np.ndarray, P: np.ndarray, beta: float, alpha: float, v_th: float, t0: float,
    Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray, xs: np.ndarray, xl: np.ndarray, y: np.ndarray,
) -> float:
    """First s in [0, H] with V(s) >= v_th on the free flow from x0 (at absolute time t0); -1.0 if none.

    xs, xl, y: 3-vector scratch. See the module docstring for why no crossing can be skipped.
    """
    if x0[0] >= v_th:
        return 0.0
    if not H > 0.0:
        return -1.0
    for i in range(3):
        xs[i] = x0[i]
    s = 0.0
    gap_tol = 4.0 * EPS * max(abs(v_th), 1.0)
    for _ in range(MAX_SEARCH_STEPS):
        nP = _pnorm(P, xs)
        if beta * nP < v_th:
            return -1.0
        V = xs[0]
        Vp = _vdot(A, xs)
        M2 = alpha * nP
        gap = v_th - V
        if gap <= gap_tol:
            return s
        if M2 <= 0.0:
            return -1.0
        if Vp > 0.0 and Vp * Vp >= 2.0 * M2 * gap:
            t_star = 2.0 * gap / (Vp + math.sqrt(Vp * Vp - 2.0 * M2 * gap))
            t_rise = Vp / M2  # V is increasing on [s, s + t_rise]
            hi = min(s + t_star, H)
            for i in range(3):
                xl[i] = xs[i]
            for i in range(3):
                y[i] = xs[i]
            flow(A, hi - s, y, Phi, s1, s2)
            if y[0] >= v_th:
                return _polish(xl, s, hi, y[0], A, v_th, t0, Phi, s1, s2, y)
            if hi >= H:
                return -1.0  # V rises monotonically to H and stays below v_th
            # rounding kept V(s + t*) a hair below v_th: try the end of the rising stretch
            hi = min(s + t_rise, H)
            for i in range(3):
                y[i] = xs[i]
            flow(A, hi - s, y, Phi, s1, s2)
            if y[0] >= v_th:
                return _polish(xl, s, hi, y[0], A, v_th, t0, Phi, s1, s2, y)
            if hi >= H:
                return -1.0
            for i in range(3):
                xs[i] = y[i]
            s = hi
            continue
        disc = math.sqrt(Vp * Vp + 2.0 * M2 * gap)
        h = 2.0 * gap / (Vp + disc) if Vp > 0.0 else (disc - Vp) / M2
        s_new = s + h
        if s_new >= H:
            return -1.0
        if s_new == s:
            return s  # the gap is below what the step can resolve: a tangential touch
        for i in range(3):
            xl[i] = xs[i]
        flow(A, h, xs, Phi, s1, s2)
        if xs[0] >= v_th:
            # only rounding can put V above v_th at a safe step's end: the root is within it
            return _polish(xl, s, s_new, xs[0], A, v_th, t0, Phi, s1, s2, y)
        s = s_new
    return -1.0


@register_jitable
def may_cross_before(
    x: np.ndarray, H: float, A: np.ndarray, P: np.ndarray, beta: float, alpha: float, v_th: float
) -> bool:
    """Cheap screen: False only if V stays below v_th on [0, H] of the free flow from x."""
    if x[0] >= v_th:
        return True
    nP = _pnorm(P, x)
    if beta * nP < v_th:
        return False
    Vp = _vdot(A, x)
    return x[0] + max(Vp, 0.0) * H + 0.5 * alpha * nP * H * H >= v_th


@register_jitable
def next_spike(
    x: np.ndarray, t0: float, t1: float, ref_end: float, A: np.ndarray, P: np.ndarray, beta: float, alpha: float,
    tau_w: float, tau_syn: float, a: float, v_th: float, v_reset: float,
    Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray, xa: np.ndarray, xs: np.ndarray, xl: np.ndarray, y: np.ndarray,
) -> float:
    """Absolute time of the first threshold crossing in [t0, t1] without input, or -1.0 if none.

    x is the state at t0 (not modified); while t < ref_end the neuron is refractory. xa..y: scratch.
    """
    for i in range(3):
        xa[i] = x[i]
    if ref_end > t0:
        if ref_end >= t1:
            return -1.0
        window_advance(xa, ref_end - t0, tau_w, tau_syn, a, v_reset)
        t0 = ref_end
    if not may_cross_before(xa, t1 - t0, A, P, beta, alpha, v_th):
        return -1.0
    s = first_crossing(xa, t1 - t0, A, P, beta, alpha, v_th, t0, Phi, s1, s2, xs, xl, y)
    if s < 0.0:
        return -1.0
    return t0 + s


@register_jitable
def lam_x_integral(
    A: np.ndarray, lam: np.ndarray, x0: np.ndarray, D: float, Q: np.ndarray, E: np.ndarray, S: np.ndarray,
    T1: np.ndarray, v: np.ndarray, v2: np.ndarray,
) -> None:
    """Q = int_0^D lam(t) x(t)^T dt with x(t) = expm(A t) x0 and lam(t) = expm(A^T (D - t)) lam (the end value).

    This is the upper-right block of the Van Loan exponential expm([[A^T, C], [0, A^T]] D), C = lam x0^T,
    evaluated with its structure: with F = A^T the block's powers are [[F^k, S_k], [0, F^k]],
    S_{k+1} = F S_k + C F^k, and C F^k = lam (A^k x0)^T is an outer product, so a Taylor term costs one
    3x3 product. Scaling and squaring as in :func:`expm_into`: Q(2h) = E Q(h) + Q(h) E, E = expm(A^T h).
    E, S, T1: 3x3 scratch; v, v2: 3-vector scratch.
    """
    nrm = 0.0
    for i in range(3):
        r = 0.0
        for j in range(3):
            r += abs(A[i, j])
        nrm = max(nrm, r)
    nrm *= D
    h, sq = _halvings(nrm, D)
    # k = 1 term: S_1 = C, coefficient h
    for i in range(3):
        v[i] = x0[i]  # A^k x0 at k = 0
    for i in range(3):
        for j in range(3):
            S[i, j] = lam[i] * v[j]
            Q[i, j] = h * S[i, j]
    coef = h
    tol = 1e-17 * h * (abs(lam[0]) + abs(lam[1]) + abs(lam[2])) * (abs(x0[0]) + abs(x0[1]) + abs(x0[2]))
    for k in range(1, 30):
        for i in range(3):
            v2[i] = A[i, 0] * v[0] + A[i, 1] * v[1] + A[i, 2] * v[2]
        for i in range(3):
            v[i] = v2[i]  # A^k x0
        coef *= h / (k + 1)  # h^(k+1) / (k+1)!
        for i in range(3):
            for j in range(3):
                T1[i, j] = A[0, i] * S[0, j] + A[1, i] * S[1, j] + A[2, i] * S[2, j] + lam[i] * v[j]
        big = 0.0
        for i in range(3):
            for j in range(3):
                S[i, j] = T1[i, j]
                Q[i, j] += coef * T1[i, j]
                big = max(big, abs(coef * T1[i, j]))
        if big <= tol:
            break
    if sq == 0:
        return  # a short stretch needs no doubling (nor E)
    # E = expm(A^T h)
    expm_into(A, h, S, T1, E)  # S = expm(A h) (T1, E scratch)
    for i in range(3):
        for j in range(3):
            E[i, j] = S[j, i]
    for _ in range(sq):
        # Q <- E Q + Q E ; E <- E E
        for i in range(3):
            for j in range(3):
                T1[i, j] = (E[i, 0] * Q[0, j] + E[i, 1] * Q[1, j] + E[i, 2] * Q[2, j]
                            + Q[i, 0] * E[0, j] + Q[i, 1] * E[1, j] + Q[i, 2] * E[2, j])
        for i in range(3):
            for j in range(3):
                Q[i, j] = T1[i, j]
        for i in range(3):
            for j in range(3):
                T1[i, j] = E[i, 0] * E[0, j] + E[i, 1] * E[1, j] + E[i, 2] * E[2, j]
        for i in range(3):
            for j in range(3):
                E[i, j] = T1[i, j]
