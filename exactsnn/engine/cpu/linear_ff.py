"""Forward kernel of a layer of 3-state neurons (adLIF) whose delays are on the feedforward synapses only.

Why. The heap kernel (:func:`exactsnn.engine.cpu.linear.linear_sample`) takes every (input spike x neuron) arrival
from a heap, brings its neuron there and re-predicts its next crossing: ~0.35 s per 0.5 s SHD-like sample of a
256-neuron layer per million arrivals. But between two spikes of the layer a neuron's dynamics are linear, so
the arrivals it receives may be summed in any order, and most neurons are far enough below threshold that a
cheap bound proves they cannot cross.

The scheme (windows are bookkeeping, no time grid enters the maths). The windows [T0, T1) of
:func:`~exactsnn.engine.cpu.linear_windows.window_grid` (||A_j|| H <= 1/4) hold each neuron's arrivals
(a = t_e + D[i, j] <= T), bucketed per (window, neuron) and sorted by time within a bucket (a few each). Within a
window the layer goes from *segment* to segment: a segment [t_c, t_end] starts at the window's start or at a
spike of the layer and ends at the earliest spike after it or at T1. For a segment:

1. **Screen** every neuron not in a refractory window: on the free flow from x(t_c), V <= min(beta ||x||_P,
   V + max(V', 0) h + alpha ||x||_P h^2 / 2) (the bounds of :func:`~exactsnn.neurons.linear.may_cross_before`),
   and an arrival of weight w adds w g(s) to V, with g(s) = [expm(A s) e_I]_V bounded on [0, H] by
   ``g_up = H A_02 + r`` and ``g_dn = max(0, r - H A_02)`` (r = e^{N H} - 1 - N H, N = ||A||_inf: every term of
   the series of g after the first is at most N^k s^k / k!). A neuron whose bound plus the window's arrivals
   (sum of w g_up over w > 0 and |w| g_dn over w < 0) stays below v_th cannot cross before t_end.
2. **Probe** the others exactly (refractory ones included): their arrivals in order, the crossing search of
   :func:`~exactsnn.neurons.linear.next_spike` on each stretch, up to the earliest crossing found so far.
3. **Bring** the layer to t_end: cleared neurons as x(t_end) = expm(A h) x(t_c) + sum_k (A^k e_I / k!) M_k with
   the moments M_k = sum_a w_a (t_end - a)^k of their arrivals in the segment (the layer-wide series
   :func:`~exactsnn.neurons.series.propagate_layer`, then the moment terms); probed ones event by event with
   :func:`~exactsnn.neurons.linear.advance`. At the earliest crossing the neurons crossing there fire (state
   recorded, V = v_reset, w += b, refractory window) and their zero-delay recurrent rows are added to I.

Exactness as the heap kernel's: every neuron that can cross is searched with the same crossing search (spike
times to a few ulps of the heap's, whose searches start at other points); the screen is a rigorous bound with a
margin above the search's own tolerance. At equal times a crossing comes first, then the feedforward arrivals,
then the recurrent ones (an arrival at a spike's time belongs to the next segment). Memory: the buckets (4 bytes
per arrival) and O(n) state.
"""

from __future__ import annotations

import math

import numpy as np

from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.linear import _record_spike
from exactsnn.engine.cpu.linear_windows import add_moment, window_grid, window_of
from exactsnn.engine.cpu.maths import advance, layer_norm, next_spike, pnorm, propagate_layer
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.linear import series_terms

__all__ = ["linear_ff_sample", "run_linear_ff_batch"]

_MARGIN = 1e-9  # screen margin, relative to max(|v_th|, 1): far above the crossing search's 4-ulp tolerance


@kernel
def _neuron_buckets(tin: np.ndarray, uin: np.ndarray, Dt: np.ndarray, T: float, H: float,
                    n_win: int) -> tuple[np.ndarray, np.ndarray]:
    """The arrivals a = tin[e] + Dt[uin[e], j] <= T by (window, neuron): (off (n_win n + 1), events e (int32));
    bucket (w, j) is ``off[w n + j]:off[w n + j + 1]``, sorted by arrival time (ties in input order)."""
    n = Dt.shape[1]
    cnt = np.zeros(n_win * n + 1, np.int64)
    for e in range(tin.size):
        t = tin[e]
        row = Dt[uin[e]]
        for j in range(n):
            a = t + row[j]
            if a <= T:
                cnt[window_of(a, H, n_win) * n + j + 1] += 1
    off = np.cumsum(cnt)
    fill = off[:-1].copy()
    be = np.empty(off[-1], np.int32)
    for e in range(tin.size):
        t = tin[e]
        row = Dt[uin[e]]
        for j in range(n):
            a = t + row[j]
            if a <= T:
                key = window_of(a, H, n_win) * n + j
                be[fill[key]] = e
                fill[key] += 1
    # each bucket by arrival time: a stable insertion sort on its own keys (a few entries each)
    keys = np.empty(64)
    for key in range(n_win * n):
        lo, hi = off[key], off[key + 1]
        if hi - lo < 2:
            continue
        if hi - lo > keys.size:
            keys = np.empty(2 * (hi - lo))
        j = key % n
        for p in range(lo, hi):
            e = be[p]
            a = tin[e] + Dt[uin[e], j]
            q = p - lo
            while q > 0 and keys[q - 1] > a:
                keys[q] = keys[q - 1]
                be[lo + q] = be[lo + q - 1]
                q -= 1
            keys[q] = a
            be[lo + q] = e
    return off, be


@kernel
def _input_tables(A: np.ndarray, H: float, K: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B, g_up, g_dn): B (n, K + 1, 3) = A^k e_I / k! per neuron (an input's effect over s is sum_k B_k s^k;
    contiguous per neuron), and the bounds of g(s) = [expm(A s) e_I]_V on [0, H] (module docstring)."""
    n = A.shape[0]
    B = np.zeros((n, K + 1, 3))
    g_up = np.empty(n)
    g_dn = np.empty(n)
    for j in range(n):
        Bj = B[j]
        Bj[0, 2] = 1.0
        for k in range(1, K + 1):
            for r in range(3):
                Bj[k, r] = (A[j, r, 0] * Bj[k - 1, 0] + A[j, r, 1] * Bj[k - 1, 1] + A[j, r, 2] * Bj[k - 1, 2]) / k
        N = 0.0
        for r in range(3):
            N = max(N, abs(A[j, r, 0]) + abs(A[j, r, 1]) + abs(A[j, r, 2]))
        rest = math.expm1(N * H) - N * H
        lin = H * A[j, 0, 2]
        g_up[j] = (abs(lin) + rest) * (1.0 + 1e-12)
        g_dn[j] = max(0.0, rest - lin) * (1.0 + 1e-12)
    return B, g_up, g_dn


@helper
def _excess(x: np.ndarray, h: float, A: np.ndarray, P: np.ndarray, beta: float, alpha: float, extra: float,
            v_th: float) -> float:
    """How far the bound on V over [0, h] of the free flow from state x plus ``extra`` (the arrivals' bound) reaches
    above v_th less the margin: below 0, V cannot cross there (the bounds of ``may_cross_before``)."""
    v = x[0]
    nP = pnorm(P, x)
    vp = A[0, 0] * v + A[0, 1] * x[1] + A[0, 2] * x[2]
    bound = min(beta * nP, v + max(vp, 0.0) * h + 0.5 * alpha * nP * h * h)
    return bound + extra - (v_th - _MARGIN * max(abs(v_th), 1.0))


@helper
def _probe(
    x0: np.ndarray, t0: float, t_hor: float, lo: int, hi: int, be: np.ndarray, tin: np.ndarray, uin: np.ndarray,
    wt_col: np.ndarray, dt_col: np.ndarray, ref_end: float, A: np.ndarray, P: np.ndarray, beta: float,
    alpha: float, tau_w: float, tau_syn: float, a: float, v_th: float, v_reset: float, Phi: np.ndarray,
    s1: np.ndarray, s2: np.ndarray, cache: np.ndarray, cPhi: np.ndarray, y: np.ndarray, xa: np.ndarray,
    xs: np.ndarray, xl: np.ndarray, yy: np.ndarray,
) -> float:
    """The first crossing in [t0, t_hor] of a neuron at state x0 at t0 receiving the bucket's arrivals lo:hi (in
    time order; weights and delays from its columns), or -1.0. A crossing at an arrival's time comes first."""
    for r in range(3):
        y[r] = x0[r]
    t = t0
    for p in range(lo, hi):
        e = be[p]
        u = uin[e]
        ta = tin[e] + dt_col[u]
        if ta > t_hor:
            break
        ts = next_spike(y, t, ta, ref_end, A, P, beta, alpha, tau_w, tau_syn, a, v_th, v_reset, Phi, s1, s2, xa,
                        xs, xl, yy)
        if ts >= 0.0:
            return ts
        advance(y, t, ta, ref_end, A, tau_w, tau_syn, a, v_reset, Phi, s1, s2, cache, cPhi, False)
        y[2] += wt_col[u]
        t = ta
    return next_spike(y, t, t_hor, ref_end, A, P, beta, alpha, tau_w, tau_syn, a, v_th, v_reset, Phi, s1, s2, xa,
                      xs, xl, yy)


@helper
def _arrival_time(p: int, hi: int, be: np.ndarray, tin: np.ndarray, uin: np.ndarray, dc: np.ndarray) -> float:
    """The time of bucket entry p (inf at the bucket's end hi); dc: the neuron's row of delays."""
    if p >= hi:
        return math.inf
    e = be[p]
    return tin[e] + dc[uin[e]]


@helper
def _take(wgt: float, j: int, up_rem: np.ndarray, dn_rem: np.ndarray) -> None:
    """An arrival of weight wgt at neuron j is taken: it leaves the window's remaining positive / negative input."""
    up_rem[j] -= max(wgt, 0.0)  # branch-free: the signs of the weights are random
    dn_rem[j] += min(wgt, 0.0)


@helper
def _advance_recording(
    x: np.ndarray, t0: float, t1: float, j: int, ref_end: np.ndarray, ref_spike: np.ndarray, A: np.ndarray,
    tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, v_reset: float, t_max: float, Phi: np.ndarray,
    s1: np.ndarray, s2: np.ndarray, cache: np.ndarray, cPhi: np.ndarray, out_r: np.ndarray,
) -> None:
    """Neuron j's state x from t0 to t1 (refractory until ref_end[j]); I at its window's end into out_r when that
    end (before t_max) falls in (t0, t1]."""
    i_end = advance(x, t0, t1, ref_end[j], A[j], tau_w[j], tau_syn[j], av[j], v_reset, Phi, s1, s2, cache, cPhi, False)
    if not math.isnan(i_end) and ref_end[j] < t_max:
        out_r[ref_spike[j]] = i_end


@kernel
def linear_ff_sample(
    tin: np.ndarray, uin: np.ndarray, W: np.ndarray, Dm: np.ndarray, Dt: np.ndarray, Rt: np.ndarray,
    has_rec: bool, A: np.ndarray, P: np.ndarray, bnd: np.ndarray, C: np.ndarray, tau_w: np.ndarray,
    tau_syn: np.ndarray, av: np.ndarray, bv: np.ndarray, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> int:
    """Simulate one sample of one layer (module docstring). Returns the spike count, or -1 on overflow.

    ``W``, ``Dm`` (n, n_pre): weights and feedforward delays (s), ``Dt`` the delays transposed (n_pre, n);
    ``Rt`` (n, n) recurrent weights [pre, post]; A, P, bnd, tau_w, tau_syn, a, b as
    :func:`exactsnn.engine.cpu.linear.linear_sample`; C: :func:`exactsnn.neurons.series.coefficients` of A.
    Outputs as there (I at each spike, I at each refractory window's end before t_max).
    """
    n = W.shape[0]
    cap = out_t.size
    nrm = layer_norm(C)
    H, n_win = window_grid(nrm, t_max)
    K = series_terms(nrm * H)
    B, g_up, g_dn = _input_tables(A, H, K)
    off, be = _neuron_buckets(tin, uin, Dt, t_max, H, n_win)
    X = np.zeros((3, n))
    Y = np.empty((3, n))
    ref_end = np.full(n, -np.inf)
    ref_spike = np.zeros(n, np.int64)
    cur = np.empty(n, np.int64)
    fl = np.empty(n, np.int64)
    fx = np.empty(n)
    up_rem = np.empty(n)
    dn_rem = np.empty(n)
    nxt = np.empty(n)  # the time of each neuron's next arrival in the window (inf: none left)
    clear = np.zeros(n, np.bool_)  # proven not to cross before the window's end (screen or probe)
    tj = np.empty(n)
    rl = np.empty(n, np.int64)
    xr = np.empty((n, 3))
    m = np.empty(K + 1)
    x = np.empty(3)
    y = np.empty(3)
    xa = np.empty(3)
    xs = np.empty(3)
    xl = np.empty(3)
    yy = np.empty(3)
    Phi = np.empty((3, 3))
    s1 = np.empty((3, 3))
    s2 = np.empty((3, 3))
    cPhi = np.empty((3, 3))
    cache = np.full(1, -1.0)
    count = 0
    for w in range(n_win):
        T0 = w * H
        last = w == n_win - 1
        T1 = t_max if last else (w + 1) * H
        base = w * n
        for j in range(n):
            cur[j] = off[base + j]
            nxt[j] = _arrival_time(cur[j], off[base + j + 1], be, tin, uin, Dm[j])
            clear[j] = False
            # the window's positive and negative input to j, less what the segments take (the screen's arrivals)
            up = 0.0
            dn = 0.0
            wc = W[j]
            for p in range(off[base + j], off[base + j + 1]):
                wgt = wc[uin[be[p]]]
                up += max(wgt, 0.0)
                dn -= min(wgt, 0.0)
            up_rem[j] = up
            dn_rem[j] = dn
        t_c = T0
        while True:
            # ---- screen: the neurons that may cross before T1
            n_fl = 0
            h = T1 - t_c
            for j in range(n):
                if clear[j]:
                    continue
                ex = math.inf  # refractory: probed first (cheap: no search before the window's end)
                if not ref_end[j] > t_c:
                    extra = max(up_rem[j], 0.0) * g_up[j] + max(dn_rem[j], 0.0) * g_dn[j]
                    for r in range(3):
                        x[r] = X[r, j]
                    ex = _excess(x, h, A[j], P[j], bnd[j, 0], bnd[j, 1], extra, v_th)
                if ex >= 0.0:
                    # the list by falling excess: the likeliest first crossers are probed first, which shortens
                    # the later probes' horizon
                    q = n_fl
                    while q > 0 and fx[q - 1] < ex:
                        fl[q] = fl[q - 1]
                        fx[q] = fx[q - 1]
                        q -= 1
                    fl[q] = j
                    fx[q] = ex
                    n_fl += 1
                else:
                    clear[j] = True
            # ---- probes: the earliest crossing in [t_c, T1]
            t_best = math.inf
            for q in range(n_fl):
                j = fl[q]
                for r in range(3):
                    x[r] = X[r, j]
                hor = min(T1, t_best)
                tj[q] = _probe(x, t_c, hor, cur[j], off[base + j + 1], be, tin, uin, W[j], Dm[j], ref_end[j], A[j],
                               P[j], bnd[j, 0], bnd[j, 1], tau_w[j], tau_syn[j], av[j], v_th, v_reset, Phi, s1, s2,
                               cache, cPhi, y, xa, xs, xl, yy)
                if tj[q] >= 0.0:
                    t_best = min(t_best, tj[q])
                elif hor == T1:
                    clear[j] = True
            at_end = t_best == math.inf
            t_end = T1 if at_end else t_best
            # ---- the layer to t_end: the series and the moments of each neuron's arrivals up to t_end
            n_ref = 0
            for j in range(n):
                if ref_end[j] > t_c:  # in a refractory window: event by event (below), from its state at t_c
                    rl[n_ref] = j
                    for r in range(3):
                        xr[n_ref, r] = X[r, j]
                    n_ref += 1
            propagate_layer(X, t_end - t_c, C, nrm, Y)
            for j in range(n):
                p = cur[j]
                hi = off[base + j + 1]
                if ref_end[j] > t_c or not (nxt[j] < t_end or (at_end and p < hi)):
                    continue  # refractory (below), or no arrival of j in this segment
                wc = W[j]
                dc = Dm[j]
                for k in range(K + 1):
                    m[k] = 0.0
                while p < hi:
                    e = be[p]
                    u = uin[e]
                    ta = tin[e] + dc[u]
                    if not (at_end or ta < t_end):
                        break
                    _take(wc[u], j, up_rem, dn_rem)
                    add_moment(wc[u], t_end - ta, m)
                    p += 1
                cur[j] = p
                nxt[j] = _arrival_time(p, hi, be, tin, uin, dc)
                Bj = B[j]
                v0, v1, v2 = 0.0, 0.0, 0.0
                for k in range(K + 1):
                    v0 += Bj[k, 0] * m[k]
                    v1 += Bj[k, 1] * m[k]
                    v2 += Bj[k, 2] * m[k]
                X[0, j] += v0
                X[1, j] += v1
                X[2, j] += v2
            for q in range(n_ref):
                j = rl[q]
                for r in range(3):
                    x[r] = xr[q, r]
                t = t_c
                p = cur[j]
                hi = off[base + j + 1]
                wc = W[j]
                dc = Dm[j]
                while p < hi:
                    e = be[p]
                    u = uin[e]
                    ta = tin[e] + dc[u]
                    if not (at_end or ta < t_end):
                        break
                    _advance_recording(x, t, ta, j, ref_end, ref_spike, A, tau_w, tau_syn, av, v_reset, t_max, Phi,
                                       s1, s2, cache, cPhi, out_r)
                    x[2] += wc[u]
                    _take(wc[u], j, up_rem, dn_rem)
                    t = ta
                    p += 1
                cur[j] = p
                nxt[j] = _arrival_time(p, hi, be, tin, uin, dc)
                _advance_recording(x, t, t_end, j, ref_end, ref_spike, A, tau_w, tau_syn, av, v_reset, t_max, Phi, s1,
                                   s2, cache, cPhi, out_r)
                X[0, j], X[1, j], X[2, j] = x[0], x[1], x[2]
            if at_end:
                break
            # ---- the crossings at t_best fire; their zero-delay recurrent rows arrive
            c0 = count
            for q in range(n_fl):
                if tj[q] == t_best:
                    j = fl[q]
                    if count >= cap:
                        return -1
                    for r in range(3):
                        x[r] = X[r, j]
                    _record_spike(j, t_best, x, ref_end, ref_spike, bv, v_reset, t_ref, count, out_t, out_u, out_i,
                                  out_r)
                    X[0, j], X[1, j], X[2, j] = x[0], x[1], x[2]
                    clear[j] = False
                    count += 1
            if has_rec:
                I = X[2]
                for q in range(c0, count):
                    row = Rt[out_u[q]]
                    for j in range(n):
                        I[j] += row[j]
                # a cleared neuron stays cleared when the rows lower its V over the rest of the window
                for j in range(n):
                    if clear[j]:
                        rs = 0.0
                        for q in range(c0, count):
                            rs += Rt[out_u[q], j]
                        if rs > 0.0 or (rs < 0.0 and g_dn[j] > 0.0):
                            clear[j] = False
            t_c = t_best
    return count


@threaded_driver
def run_linear_ff_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, Dm: np.ndarray, Rt: np.ndarray,
    has_rec: bool, A: np.ndarray, P: np.ndarray, bnd: np.ndarray, C: np.ndarray, tau_w: np.ndarray,
    tau_syn: np.ndarray, av: np.ndarray, bv: np.ndarray, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray, counts: np.ndarray,
) -> None:
    """:func:`linear_ff_sample` over every sample (Python threads); counts[b] = spike count or -1 (overflow)."""
    Dt = np.ascontiguousarray(Dm.T)

    def work(b: int, t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        counts[b] = linear_ff_sample(times[lo:hi], units[lo:hi], W, Dm, Dt, Rt, has_rec, A, P, bnd, C, tau_w,
                                     tau_syn, av, bv, v_th, v_reset, t_ref, t_max, out_t[b], out_u[b], out_i[b],
                                     out_r[b])

    for_each_sample(work, offsets.size - 1)
