"""Forward kernel for layers of linear 3-state neurons (adLIF, or LIF with learned time constants).

Why this scheme. Every neuron may have its own parameters (learned per neuron), so there are no
shared decay factors to exploit; each neuron keeps its own state x = (V, w, I) and the time it
refers to, and is brought forward (expm(A s), :mod:`exactsnn.neurons.linear`) only when an event
concerns it. Arrivals are *bundles* exactly as in :mod:`exactsnn.engine.cpu.queue` (one heap entry
per presynaptic spike in flight, its arrivals in delay order), together with each neuron's predicted
next crossing, skipped when stale (version stamps). At equal times a crossing comes first, then
feedforward, then recurrent arrivals.

Horizon of a prediction. With per-synapse delays a neuron's next arrival is unknown. Its next crossing
is searched to a *check point* at most ``CHECK_AHEAD`` (2 ms) ahead (or to its pending one), where a check
event brings it there and looks again; none is set when no crossing can ever come without input
(V <= beta ||x||_P < v_th: the Lyapunov bound, which never grows). Over such short horizons the quadratic
screen clears most neurons; searched to t_max (as before) it cleared few, and each search stepped
through the whole sample: the forward pass of the adLIF + feedforward-delay network took 3x longer per
arrival. A check is an event like an arrival of weight zero (the neuron is brought to it), so the spike
times are those of a search from a later starting point: equal to a few ulps. Without delays
every neuron receives every input spike (zero weights included: they re-predict), so the search only
needs to reach the next input spike time, where the neuron is looked at again; recurrent arrivals
(zero delay) re-predict too. Over such short horizons the quadratic bound of
:func:`exactsnn.neurons.linear.may_cross_before` settles almost every neuron in O(1).

Layers with feedforward delays only (zero-delay recurrence) use the windowed order-free kernel of
:mod:`exactsnn.engine.cpu.linear_ff` instead (no heap; this one serves layers with recurrent delays and v_th <= 0).
Layers without delays use a shared-clock kernel instead (:func:`linear_dense_sample`, no heap): every
input event brings each neuron to the event time and adds its weight (one cached matrix exponential
serves the whole layer when the neurons share their parameters), then screens it over the stretch
to the next input with the quadratic bound; only flagged neurons are searched. Feedforward layers
run each flagged neuron's spikes to the next input on its own (neurons do not interact until then);
recurrent layers take the earliest crossing, bring the layer to it and add the spike's row, as the
LIF kernel does. The heap costs ~10x more per arrival than this pass.
The shared-clock kernel keeps the layer state as three contiguous rows (V, w, I): with shared
parameters its pass over the layer (one cached propagator, the screen written as flags) vectorises;
the few neurons off the clock (fired since the last pass, or inside a reset window) are advanced on
their own and written over the pass's result (bit-identical to a per-neuron loop; ~1.8x faster pass).
With per-neuron parameters the same pass brings the layer over by one Taylor series summed for all
neurons at once (:func:`exactsnn.neurons.series.propagate_layer`) and screens with per-neuron tables:
~10x faster than a matrix exponential per neuron per input, spike times equal to a few ulps.
"""

from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable

from exactsnn.engine.cpu.flags import read_flags
from exactsnn.engine.cpu.heap import heap_pop, heap_push, heap_replace_top, heap_reserve
from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.maths import advance, expm_into, layer_norm, next_spike, pnorm, propagate_layer, window_advance
from exactsnn.engine.cpu.rows import add_row
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.series import coefficients

_CROSS = 0
_FF = 1
_REC = 2
_CHECK = 3
#: look-ahead (s) of a crossing prediction in a layer with delays: a neuron's next arrival is unknown there, so
#: its crossing is searched to a check point at most this far ahead, where it is looked at again (see
#: :func:`linear_sample`); a search to t_max would rarely be ruled out by the screen
CHECK_AHEAD = 2e-3


@kernel
def _scratch() -> tuple:
    """Per-sample work arrays of the propagator and the crossing search: Phi, s1, s2, cPhi (3, 3),
    the cached stretch length (-1: none), and four 3-vectors."""
    return (np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.empty((3, 3)), np.full(1, -1.0),
            np.empty(3), np.empty(3), np.empty(3), np.empty(3))


@kernel
def linear_sample(
    tin: np.ndarray, uin: np.ndarray, W: np.ndarray, ff_order: np.ndarray, ff_delay: np.ndarray,
    R: np.ndarray, rec_order: np.ndarray, rec_delay: np.ndarray, has_rec: bool, delays: bool,
    A: np.ndarray, P: np.ndarray, bnd: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray,
    bv: np.ndarray, uniform: bool, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> int:
    """Simulate one sample of one layer of linear neurons. Returns the spike count, or -1 on overflow.

    ``W`` (n, n_pre), ``R`` (n, n); ``ff_order, ff_delay`` / ``rec_order, rec_delay`` from
    :func:`exactsnn.engine.cpu.queue.sort_delays`; per-neuron ``A`` (n, 3, 3), ``P`` (n, 3, 3),
    ``bnd`` (n, 2) = (beta, alpha) from :func:`exactsnn.neurons.linear.crossing_bounds`, and
    tau_w, tau_syn (s), a, b (n,).
    """
    n = W.shape[0]
    cap = out_t.size
    n_in = np.searchsorted(tin, t_max, side="right")
    X = np.zeros((n, 3))
    tl = np.zeros(n)
    ref_end = np.full(n, -np.inf)
    ref_spike = np.zeros(n, np.int64)
    version = np.zeros(n, np.int64)
    check = np.full(n, -1.0)  # each neuron's pending check time (-1: none)
    Phi, s1, s2, cPhi, cache, xa, xs, xl, y = _scratch()
    hcap = 2 * n + 64
    ht = np.empty(hcap)
    hk = np.empty(hcap, np.int64)
    hs = np.empty(hcap, np.int64)
    ha = np.empty(hcap, np.int64)
    hb = np.empty(hcap, np.int64)
    size = 0
    seq = 0
    count = 0
    p = 0
    # rest at or above threshold (v_th <= 0): every neuron fires at once
    if v_th <= 0.0:
        for j in range(n):
            ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
            size = heap_push(ht, hk, hs, ha, hb, size, 0.0, _CROSS, seq, j, 0)
            seq += 1
    while True:
        t_top = ht[0] if size > 0 else math.inf
        if p < n_in and tin[p] <= t_top:
            ta = tin[p] + ff_delay[uin[p], 0]
            if ta <= t_max:
                ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
                size = heap_push(ht, hk, hs, ha, hb, size, ta, _FF, seq, p, 0)
                seq += 1
            p += 1
            continue
        if size == 0:
            break
        t = ht[0]
        kind = hk[0]
        a_ = ha[0]
        b_ = hb[0]
        if kind == _CROSS:
            size = heap_pop(ht, hk, hs, ha, hb, size)
            j = a_
            if b_ != version[j]:
                continue
            wgt = 0.0
        elif kind == _CHECK:
            size = heap_pop(ht, hk, hs, ha, hb, size)
            j = a_
            if check[j] != t:
                continue
            check[j] = -1.0
            wgt = 0.0
        else:
            if kind == _FF:
                u = uin[a_]
                j = ff_order[u, b_]
                wgt = W[j, u]
                nxt = tin[a_] + ff_delay[u, b_ + 1] if b_ + 1 < n else math.inf
            else:
                u = out_u[a_]
                j = rec_order[u, b_]
                wgt = R[j, u]
                nxt = out_t[a_] + rec_delay[u, b_ + 1] if b_ + 1 < n else math.inf
            if nxt <= t_max:
                heap_replace_top(ht, hk, hs, ha, hb, size, nxt, kind, seq, a_, b_ + 1)
                seq += 1
            else:
                size = heap_pop(ht, hk, hs, ha, hb, size)
            if wgt == 0.0 and delays:
                continue  # unchanged trajectory, and its prediction reaches t_max already
        x = X[j]
        i_end = advance(x, tl[j], t, ref_end[j], A[j], tau_w[j], tau_syn[j], av[j], v_reset,
                       Phi, s1, s2, cache, cPhi, uniform)
        if not math.isnan(i_end):
            out_r[ref_spike[j]] = i_end
        x[2] += wgt
        tl[j] = t
        if kind == _CROSS:
            if count >= cap:
                return -1
            _record_spike(j, t, x, ref_end, ref_spike, bv, v_reset, t_ref, count, out_t, out_u, out_i, out_r)
            if has_rec:
                ta = t + rec_delay[j, 0]
                if ta <= t_max:
                    ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
                    size = heap_push(ht, hk, hs, ha, hb, size, ta, _REC, seq, count, 0)
                    seq += 1
            count += 1
        version[j] += 1
        horizon = t_max
        if not delays:
            if p < n_in:
                horizon = tin[p]
        elif check[j] > t:
            horizon = min(check[j], t_max)  # looked at again there anyway
        elif t + CHECK_AHEAD < t_max:
            horizon = t + CHECK_AHEAD
        ts = next_spike(x, t, horizon, ref_end[j], A[j], P[j], bnd[j, 0], bnd[j, 1], tau_w[j], tau_syn[j],
                        av[j], v_th, v_reset, Phi, s1, s2, xa, xs, xl, y)
        if ts >= 0.0 and (kind != _CROSS or ts > t or ref_end[j] > t):
            ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
            size = heap_push(ht, hk, hs, ha, hb, size, ts, _CROSS, seq, j, version[j])
            seq += 1
        elif ts < 0.0 and horizon < t_max and check[j] <= t and _may_ever_cross(
                x, t, ref_end[j], P[j], bnd[j, 0], tau_w[j], tau_syn[j], av[j], v_th, v_reset, xa):
            check[j] = horizon  # no crossing before the horizon: look again there
            ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
            size = heap_push(ht, hk, hs, ha, hb, size, horizon, _CHECK, seq, j, 0)
            seq += 1
    _close_windows(X[:, 2], tl, ref_end, ref_spike, tau_syn, t_max, out_r)
    return count


@helper
def _may_ever_cross(
    x: np.ndarray, t: float, ref_end: float, P: np.ndarray, beta: float, tau_w: float, tau_syn: float, a: float,
    v_th: float, v_reset: float, xa: np.ndarray,
) -> bool:
    """False only if the free flow from state x at t (refractory until ref_end) stays below v_th for ever:
    V <= beta ||x||_P, which never grows (P: the Lyapunov form of :func:`exactsnn.neurons.linear.crossing_bounds`).
    xa: scratch."""
    for i in range(3):
        xa[i] = x[i]
    if ref_end > t:
        window_advance(xa, ref_end - t, tau_w, tau_syn, a, v_reset)
    return xa[0] >= v_th or beta * pnorm(P, xa) >= v_th


@helper
def _fire_linear(
    j: int, tf: float, X: np.ndarray, x: np.ndarray, tl: np.ndarray, ref_end: np.ndarray, ref_spike: np.ndarray,
    A: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, bv: np.ndarray, v_reset: float,
    t_ref: float, Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray, cache: np.ndarray, cPhi: np.ndarray,
    uniform: bool, count: int, out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> None:
    """Bring neuron j (column j of the layer state ``X`` (3, n), worked on in the 3-vector ``x``) to its
    crossing tf, record spike ``count`` and reset it."""
    _load(X, j, x)
    i_end = advance(x, tl[j], tf, ref_end[j], A[j], tau_w[j], tau_syn[j], av[j], v_reset, Phi, s1, s2,
                   cache, cPhi, uniform)
    if not math.isnan(i_end):
        out_r[ref_spike[j]] = i_end
    tl[j] = tf
    _record_spike(j, tf, x, ref_end, ref_spike, bv, v_reset, t_ref, count, out_t, out_u, out_i, out_r)
    _store(x, X, j)


@register_jitable
def _load(X: np.ndarray, j: int, x: np.ndarray) -> None:
    """x = column j of the layer state X (3, n) (the shared-clock kernel keeps V, w, I as contiguous rows, so
    that its pass over the layer vectorises; the per-neuron maths takes a 3-vector)."""
    x[0] = X[0, j]
    x[1] = X[1, j]
    x[2] = X[2, j]


@register_jitable
def _store(x: np.ndarray, X: np.ndarray, j: int) -> None:
    """Column j of X = x (see :func:`_load`)."""
    X[0, j] = x[0]
    X[1, j] = x[1]
    X[2, j] = x[2]


@helper
def _record_spike(
    j: int, t: float, x: np.ndarray, ref_end: np.ndarray, ref_spike: np.ndarray, bv: np.ndarray, v_reset: float,
    t_ref: float, count: int, out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> None:
    """Record spike ``count`` of neuron j (state x at its crossing t) and apply the reset: V = v_reset, w += b."""
    out_t[count] = t
    out_u[count] = j
    out_i[count] = x[2]
    out_r[count] = math.nan
    x[0] = v_reset
    x[1] += bv[j]
    if t_ref > 0.0:
        ref_end[j] = t + t_ref
        ref_spike[j] = count


@helper
def _close_windows(
    I: np.ndarray, tl: np.ndarray, ref_end: np.ndarray, ref_spike: np.ndarray, tau_syn: np.ndarray, t_max: float,
    out_r: np.ndarray,
) -> None:
    """Record I at the end of every refractory window that closes by t_max after its neuron's last update
    (``I``: every neuron's current at its last update)."""
    for j in range(I.size):
        if tl[j] < ref_end[j] <= t_max:
            out_r[ref_spike[j]] = I[j] * math.exp(-(ref_end[j] - tl[j]) / tau_syn[j])


@register_jitable
def _may_cross_uniform(
    v: float, w: float, i: float, p00: float, p01: float, p02: float, p11: float, p12: float, p22: float,
    a00: float, a01: float, a02: float, alpha: float, lim: float, H: float, v_th: float,
) -> np.uint8:
    """:func:`~exactsnn.neurons.linear.may_cross_before` with the layer's shared A, P and bounds, branch-free
    (1: may cross in [0, H]). ``lim`` = (v_th / beta)^2: below it, beta sqrt(x^T P x) < v_th bounds |V| for
    all later times (no square root needed to rule out the many neurons far from threshold)."""
    q = p00 * v * v + p11 * w * w + p22 * i * i + 2.0 * (p01 * v * w + p02 * v * i + p12 * w * i)
    vp = a00 * v + a01 * w + a02 * i
    reach = v + max(vp, 0.0) * H + 0.5 * alpha * math.sqrt(max(q, 0.0)) * H * H >= v_th
    return np.uint8((v >= v_th) | ((q >= lim) & reach))  # uint8: the pass vectorises (int64 does not)


#: longest stretch (times the layer norm of A) that :func:`_shared_pass_each` brings over by the layer-wide
#: series; beyond it (16 or more halved pieces) a matrix exponential per neuron is cheaper (measured with n = 256:
#: 75 vs 186 ns per neuron at h L = 2.5, 190 vs 183 at 7.5, 680 vs 190 at 25)
_SERIES_MAX_HL = 4.0

#: rows of the screen table G (:func:`_screen_rows`): P's six entries, A's V row, alpha, lim
_G_ROWS = 11


@helper
def _screen_rows(A: np.ndarray, P: np.ndarray, bnd: np.ndarray, v_th: float, G: np.ndarray) -> None:
    """Fill column j of G (11, m) for the first m neurons with what the screen needs of neuron j, as rows
    p00, p01, p02, p11, p12, p22, a00, a01, a02, alpha, lim (``lim`` = (v_th / beta)^2, -1 when v_th <= 0):
    contiguous per quantity, so that :func:`_shared_pass_each`'s screen loads them as vectors
    (m = 1 for a layer with shared parameters: its column 0 serves every neuron)."""
    for j in range(G.shape[1]):
        G[0, j] = P[j, 0, 0]
        G[1, j] = P[j, 0, 1]
        G[2, j] = P[j, 0, 2]
        G[3, j] = P[j, 1, 1]
        G[4, j] = P[j, 1, 2]
        G[5, j] = P[j, 2, 2]
        G[6, j] = A[j, 0, 0]
        G[7, j] = A[j, 0, 1]
        G[8, j] = A[j, 0, 2]
        G[9, j] = bnd[j, 1]
        beta = bnd[j, 0]
        G[10, j] = v_th * v_th / (beta * beta) if v_th > 0.0 else -1.0


@register_jitable
def _may_cross_each(G: np.ndarray, j: int, v: float, w: float, i: float, H: float, v_th: float) -> np.uint8:
    """:func:`_may_cross_uniform` with neuron j's own P, A and bounds (column j of the table of
    :func:`_screen_rows`); branch-free, so a loop over j vectorises."""
    return _may_cross_uniform(v, w, i, G[0, j], G[1, j], G[2, j], G[3, j], G[4, j], G[5, j], G[6, j], G[7, j],
                              G[8, j], G[9, j], G[10, j], H, v_th)


@helper
def _advance_listed(
    X: np.ndarray, tl: np.ndarray, t1: float, ref_end: np.ndarray, ref_spike: np.ndarray, A: np.ndarray,
    tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, v_reset: float, Phi: np.ndarray, s1: np.ndarray,
    s2: np.ndarray, cache: np.ndarray, cPhi: np.ndarray, out_r: np.ndarray, spl: np.ndarray, n_sp: int,
    xsp: np.ndarray,
) -> None:
    """Exact state at t1 of every neuron off the layer clock (``spl[:n_sp]``: fired since the last pass, or in a
    reset window), each by :func:`~exactsnn.neurons.linear.advance` from its own time, into ``xsp[r]``; records
    I at the end of a window closing by t1. X is not changed (the pass writes these over its own result)."""
    for r in range(n_sp):
        j = spl[r]
        xr = xsp[r]
        _load(X, j, xr)
        i_end = advance(xr, tl[j], t1, ref_end[j], A[j], tau_w[j], tau_syn[j], av[j], v_reset, Phi, s1, s2,
                        cache, cPhi, False)
        if not math.isnan(i_end):
            out_r[ref_spike[j]] = i_end


@helper
def _write_listed(
    X: np.ndarray, t1: float, row: np.ndarray, ref_end: np.ndarray, H: float, v_th: float, G: np.ndarray,
    each: bool, screen: bool, flagged: int, spl: np.ndarray, n_sp: int, in_sp: np.ndarray, xsp: np.ndarray,
    flags: np.ndarray,
) -> tuple[int, int]:
    """Write the states of :func:`_advance_listed` (plus ``row``) over the pass's result and, with ``screen``,
    screen those neurons again (column j of G with ``each``, else column 0); a listed neuron leaves the list
    once its window has closed by t1. Returns (flagged count, new n_sp)."""
    V = X[0]
    W = X[1]
    I = X[2]
    keep = 0
    for r in range(n_sp):
        j = spl[r]
        V[j] = xsp[r, 0]
        W[j] = xsp[r, 1]
        I[j] = xsp[r, 2] + row[j]
        if screen:
            flagged -= flags[j]
            if ref_end[j] > t1:
                f = np.uint8(ref_end[j] < t1 + H)  # held at v_reset until its window ends
            else:
                f = _may_cross_each(G, j if each else 0, V[j], W[j], I[j], H, v_th)
            flags[j] = f
            flagged += f
        if ref_end[j] > t1:
            spl[keep] = j
            keep += 1
        else:
            in_sp[j] = False
    return flagged, keep


@helper
def _shared_pass_uniform(
    X: np.ndarray, tl: np.ndarray, t0: float, t1: float, row: np.ndarray, ref_end: np.ndarray,
    ref_spike: np.ndarray, A: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, v_reset: float,
    v_th: float, H: float, Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray, cache: np.ndarray, cPhi: np.ndarray,
    out_r: np.ndarray, cand: np.ndarray, screen: bool, spl: np.ndarray, n_sp: int, in_sp: np.ndarray,
    xsp: np.ndarray, flags: np.ndarray, G: np.ndarray,
) -> tuple[int, int]:
    """:func:`_shared_pass` when all neurons share A; returns (n_cand, n_sp).

    Every neuron on the layer clock t0 is brought to t1 by the one cached propagator in a branch-free pass
    that also screens it (:func:`_may_cross_uniform` with column 0 of G, flags as in the LIF kernel). The few
    others, listed in ``spl[:n_sp]`` (fired since the last pass, so off the clock, or in a reset window), get
    their exact state from :func:`~exactsnn.neurons.linear.advance`, computed before the pass from their own
    state and written over the pass's result, and are screened again; a listed neuron leaves the list once its
    window has closed by t1. Same operations in the same order as the per-neuron loop: the same bits.
    """
    n = X.shape[1]
    V = X[0]
    W = X[1]
    I = X[2]
    _advance_listed(X, tl, t1, ref_end, ref_spike, A, tau_w, tau_syn, av, v_reset, Phi, s1, s2, cache, cPhi,
                    out_r, spl, n_sp, xsp)
    p00, p01, p02, p11, p12, p22 = G[0, 0], G[1, 0], G[2, 0], G[3, 0], G[4, 0], G[5, 0]
    a00, a01, a02, alpha, lim = G[6, 0], G[7, 0], G[8, 0], G[9, 0], G[10, 0]
    h = t1 - t0
    flagged = 0
    if h > 0.0:
        if cache[0] != h:
            expm_into(A[0], h, cPhi, s1, s2)
            cache[0] = h
        c00, c01, c02 = cPhi[0, 0], cPhi[0, 1], cPhi[0, 2]
        c10, c11, c12 = cPhi[1, 0], cPhi[1, 1], cPhi[1, 2]
        c22 = cPhi[2, 2]
        if screen:
            for j in range(n):
                v0, w0, i0 = V[j], W[j], I[j]
                v = c00 * v0 + c01 * w0 + c02 * i0
                w = c10 * v0 + c11 * w0 + c12 * i0
                i = c22 * i0 + row[j]
                V[j] = v
                W[j] = w
                I[j] = i
                tl[j] = t1
                f = _may_cross_uniform(v, w, i, p00, p01, p02, p11, p12, p22, a00, a01, a02, alpha, lim, H, v_th)
                flags[j] = f
                flagged += f
        else:
            for j in range(n):
                v0, w0, i0 = V[j], W[j], I[j]
                V[j] = c00 * v0 + c01 * w0 + c02 * i0
                W[j] = c10 * v0 + c11 * w0 + c12 * i0
                I[j] = c22 * i0 + row[j]
                tl[j] = t1
    else:
        for j in range(n):
            i = I[j] + row[j]
            I[j] = i
            tl[j] = t1
            if screen:
                f = _may_cross_uniform(V[j], W[j], i, p00, p01, p02, p11, p12, p22, a00, a01, a02, alpha,
                                       lim, H, v_th)
                flags[j] = f
                flagged += f
    flagged, keep = _write_listed(X, t1, row, ref_end, H, v_th, G, False, screen, flagged, spl, n_sp, in_sp, xsp,
                                  flags)
    if not screen or flagged == 0:
        return 0, keep
    return read_flags(flags, cand, 0, False), keep


@helper
def _shared_pass_each(
    X: np.ndarray, tl: np.ndarray, t0: float, t1: float, row: np.ndarray, ref_end: np.ndarray,
    ref_spike: np.ndarray, A: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, v_reset: float,
    v_th: float, H: float, Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray, cache: np.ndarray, cPhi: np.ndarray,
    out_r: np.ndarray, cand: np.ndarray, screen: bool, spl: np.ndarray, n_sp: int, in_sp: np.ndarray,
    xsp: np.ndarray, flags: np.ndarray, G: np.ndarray, C: np.ndarray, nrm: float, Y: np.ndarray,
) -> tuple[int, int]:
    """:func:`_shared_pass` when every neuron has its own A; returns (n_cand, n_sp).

    The counterpart of :func:`_shared_pass_uniform` without a shared propagator: the whole layer goes over
    the stretch at once by :func:`~exactsnn.neurons.series.propagate_layer` (one Taylor series for all neurons,
    vectorised over them; C the rows of :func:`~exactsnn.neurons.series.coefficients`, ``nrm`` their
    :func:`layer_norm`, Y (3, n) scratch), 7-20 ns per neuron against 70-190 ns for a matrix exponential per
    neuron, for stretches up to :data:`_SERIES_MAX_HL` / nrm (longer ones, rare between inputs, take the
    per-neuron exponential; row n of ``xsp`` is its scratch); the screen is :func:`_may_cross_each` on G (11, n),
    branch-free. Neurons off the clock are handled as in the uniform pass (advanced on their own, written over
    the result). The series and ``expm_block_into`` agree to a few ulps, not bit for bit.
    """
    n = X.shape[1]
    V = X[0]
    W = X[1]
    I = X[2]
    _advance_listed(X, tl, t1, ref_end, ref_spike, A, tau_w, tau_syn, av, v_reset, Phi, s1, s2, cache, cPhi,
                    out_r, spl, n_sp, xsp)
    h = t1 - t0
    if h * nrm <= _SERIES_MAX_HL:
        propagate_layer(X, h, C, nrm, Y)  # nothing when h == 0
    else:  # a long stretch: the series' 2^q pieces would cost more than a matrix exponential per neuron
        x = xsp[n]  # the spare row
        for j in range(n):
            _load(X, j, x)
            advance(x, t0, t1, -math.inf, A[j], tau_w[j], tau_syn[j], av[j], v_reset, Phi, s1, s2, cache, cPhi,
                    False)
            _store(x, X, j)
    flagged = 0
    if screen:
        for j in range(n):
            i = I[j] + row[j]
            I[j] = i
            tl[j] = t1
            f = _may_cross_each(G, j, V[j], W[j], i, H, v_th)
            flags[j] = f
            flagged += f
    else:
        for j in range(n):
            I[j] += row[j]
            tl[j] = t1
    flagged, keep = _write_listed(X, t1, row, ref_end, H, v_th, G, True, screen, flagged, spl, n_sp, in_sp, xsp,
                                  flags)
    if not screen or flagged == 0:
        return 0, keep
    return read_flags(flags, cand, 0, False), keep


@helper
def _off_clock(j: int, spl: np.ndarray, n_sp: int, in_sp: np.ndarray) -> int:
    """List neuron j (just fired) for the shared pass's own advance; returns the new n_sp."""
    if not in_sp[j]:
        in_sp[j] = True
        spl[n_sp] = j
        n_sp += 1
    return n_sp


@helper
def _shared_pass(
    X: np.ndarray, tl: np.ndarray, t0: float, t1: float, row: np.ndarray, ref_end: np.ndarray,
    ref_spike: np.ndarray, A: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, v_reset: float,
    v_th: float, H: float, Phi: np.ndarray, s1: np.ndarray, s2: np.ndarray, cache: np.ndarray, cPhi: np.ndarray,
    uniform: bool, out_r: np.ndarray, cand: np.ndarray, screen: bool, spl: np.ndarray, n_sp: int,
    in_sp: np.ndarray, xsp: np.ndarray, flags: np.ndarray, G: np.ndarray, C: np.ndarray | None, nrm: float,
    Y: np.ndarray,
) -> tuple[int, int]:
    """Bring every neuron from the layer clock t0 (fired neurons: their own time) to t1 and add ``row`` to I;
    with ``screen``, list the neurons that may cross in [t1, t1 + H] (refractory ones whose window ends
    inside included). Returns (their number, n_sp): see :func:`_shared_pass_uniform` for ``spl``; G: the
    screen table of :func:`_screen_rows`, C, nrm, Y: the series of :func:`_shared_pass_each`; C is None when the
    neurons share A (``uniform``), and then Numba prunes the other branch: a layer of shared parameters never
    waits for the series pass to compile."""
    if C is None:
        return _shared_pass_uniform(X, tl, t0, t1, row, ref_end, ref_spike, A, tau_w, tau_syn, av, v_reset, v_th,
                                    H, Phi, s1, s2, cache, cPhi, out_r, cand, screen, spl, n_sp, in_sp, xsp, flags,
                                    G)
    return _shared_pass_each(X, tl, t0, t1, row, ref_end, ref_spike, A, tau_w, tau_syn, av, v_reset, v_th, H, Phi,
                             s1, s2, cache, cPhi, out_r, cand, screen, spl, n_sp, in_sp, xsp, flags, G, C, nrm, Y)


@kernel
def linear_dense_sample(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    A: np.ndarray, P: np.ndarray, bnd: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray,
    bv: np.ndarray, uniform: bool, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray, C: np.ndarray | None,
) -> int:
    """Shared-clock simulation of one sample of a delay-free layer of linear neurons (spike count or -1).

    ``Wt`` (n_pre, n) and ``Rt`` (n, n): transposed weights, contiguous per presynaptic unit. ``C``: None when
    the neurons share A (``uniform``), else the rows of :func:`exactsnn.neurons.series.coefficients`.
    """
    n = Wt.shape[1]
    cap = out_t.size
    X = np.zeros((3, n))  # rows V, w, I (see _load)
    xj = np.empty(3)
    tl = np.zeros(n)
    ref_end = np.full(n, -np.inf)
    ref_spike = np.zeros(n, np.int64)
    pred = np.full(n, -1.0)
    cand = np.empty(n, np.int64)
    fired = np.empty(n, np.int64)
    zero_row = np.zeros(n)
    Phi, s1, s2, cPhi, cache, xa, xs, xl, y = _scratch()
    # neurons off the shared clock (see _shared_pass_uniform) and the screen's flags (padding stays 0)
    spl = np.empty(n, np.int64)
    in_sp = np.zeros(n, np.bool_)
    xsp = np.empty((n + 1, 3))  # row n: scratch of _shared_pass_each
    flags = np.zeros(8 * ((n + 7) // 8), np.uint8)
    # the screen's table (one column when the neurons share A) and, per-neuron A only, the series' rows
    G = np.empty((_G_ROWS, 1 if uniform else n))
    _screen_rows(A, P, bnd, v_th, G)
    nrm = 0.0
    if C is not None:
        nrm = layer_norm(C)
    Y = np.empty((3, 0 if uniform else n))
    n_sp = 0
    n_ev = np.searchsorted(tin, t_max, side="right")
    count = 0
    t = 0.0
    ev = 0
    n_cand = 0
    if v_th <= 0.0:  # rest is at or above threshold
        for j in range(n):
            cand[j] = j
        n_cand = n
    while True:
        t_next = tin[ev] if ev < n_ev else t_max
        for k in range(n_cand):
            j = cand[k]
            _load(X, j, xj)
            pred[j] = next_spike(xj, tl[j], t_next, ref_end[j], A[j], P[j], bnd[j, 0], bnd[j, 1], tau_w[j],
                                 tau_syn[j], av[j], v_th, v_reset, Phi, s1, s2, xa, xs, xl, y)
        if not has_rec:
            # no interaction until the next input: each candidate's spikes up to t_next, on their own
            for k in range(n_cand):
                j = cand[k]
                tf = pred[j]
                pred[j] = -1.0
                while tf >= 0.0:
                    if count >= cap:
                        return -1
                    _fire_linear(j, tf, X, xj, tl, ref_end, ref_spike, A, tau_w, tau_syn, av, bv, v_reset, t_ref,
                                 Phi, s1, s2, cache, cPhi, uniform, count, out_t, out_u, out_i, out_r)
                    n_sp = _off_clock(j, spl, n_sp, in_sp)
                    count += 1
                    tf = next_spike(xj, tf, t_next, ref_end[j], A[j], P[j], bnd[j, 0], bnd[j, 1], tau_w[j],
                                    tau_syn[j], av[j], v_th, v_reset, Phi, s1, s2, xa, xs, xl, y)
            n_cand = 0
        while n_cand > 0:
            best = math.inf
            for k in range(n_cand):
                j = cand[k]
                if pred[j] >= 0.0 and pred[j] < best:
                    best = pred[j]
            if best == math.inf:
                break
            # every crossing at exactly this time fires before the recurrent input any of them sends
            n_fired = 0
            for k in range(n_cand):
                j = cand[k]
                if pred[j] != best:
                    continue
                pred[j] = -1.0
                if count >= cap:
                    return -1
                _fire_linear(j, best, X, xj, tl, ref_end, ref_spike, A, tau_w, tau_syn, av, bv, v_reset, t_ref,
                             Phi, s1, s2, cache, cPhi, uniform, count, out_t, out_u, out_i, out_r)
                n_sp = _off_clock(j, spl, n_sp, in_sp)
                count += 1
                fired[n_fired] = j
                n_fired += 1
            # bring the layer to the spike time first, then add the rows of every spike fired there
            n_cand, n_sp = _shared_pass(X, tl, t, best, Rt[fired[0]], ref_end, ref_spike, A, tau_w, tau_syn,
                                        av, v_reset, v_th, t_next - best, Phi, s1, s2, cache, cPhi, uniform,
                                        out_r, cand, n_fired == 1, spl, n_sp, in_sp, xsp, flags, G, C, nrm, Y)
            if n_fired > 1:
                for k in range(1, n_fired):
                    add_row(X[2], Rt[fired[k]])
                n_cand, n_sp = _shared_pass(X, tl, best, best, zero_row, ref_end, ref_spike, A, tau_w,
                                            tau_syn, av, v_reset, v_th, t_next - best, Phi, s1, s2, cache, cPhi,
                                            uniform, out_r, cand, True, spl, n_sp, in_sp, xsp, flags, G, C, nrm,
                                            Y)
            t = best
            for k in range(n_cand):
                j = cand[k]
                _load(X, j, xj)
                pred[j] = next_spike(xj, t, t_next, ref_end[j], A[j], P[j], bnd[j, 0], bnd[j, 1], tau_w[j],
                                     tau_syn[j], av[j], v_th, v_reset, Phi, s1, s2, xa, xs, xl, y)
        if ev >= n_ev:
            break
        ev_end = ev + 1
        while ev_end < n_ev and tin[ev_end] == t_next:
            ev_end += 1
        t2 = tin[ev_end] if ev_end < n_ev else t_max
        single = ev_end == ev + 1
        n_cand, n_sp = _shared_pass(X, tl, t, t_next, Wt[uin[ev]], ref_end, ref_spike, A, tau_w, tau_syn, av,
                                    v_reset, v_th, t2 - t_next, Phi, s1, s2, cache, cPhi, uniform, out_r, cand,
                                    single, spl, n_sp, in_sp, xsp, flags, G, C, nrm, Y)
        if not single:
            # simultaneous inputs: the layer is at t_next now; add the other rows, then screen once
            for e in range(ev + 1, ev_end):
                add_row(X[2], Wt[uin[e]])
            n_cand, n_sp = _shared_pass(X, tl, t_next, t_next, zero_row, ref_end, ref_spike, A, tau_w,
                                        tau_syn, av, v_reset, v_th, t2 - t_next, Phi, s1, s2, cache, cPhi, uniform,
                                        out_r, cand, True, spl, n_sp, in_sp, xsp, flags, G, C, nrm, Y)
        ev = ev_end
        t = t_next
    _close_windows(X[2], tl, ref_end, ref_spike, tau_syn, t_max, out_r)
    return count


def run_linear_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, ff_order: np.ndarray,
    ff_delay: np.ndarray, R: np.ndarray, rec_order: np.ndarray, rec_delay: np.ndarray, has_rec: bool,
    delays: bool, A: np.ndarray, P: np.ndarray, bnd: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray,
    av: np.ndarray, bv: np.ndarray, uniform: bool, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray, counts: np.ndarray,
) -> None:
    """:func:`linear_sample` (delays) or :func:`linear_dense_sample` over every sample of a CSR batch, in
    parallel on Python threads (:mod:`exactsnn.engine.cpu.threads`); rows of out_* per sample. Two drivers,
    so a run compiles only the kernel it uses."""
    if delays:
        _run_linear_queue_batch(
            times, units, offsets, W, ff_order, ff_delay, R, rec_order, rec_delay, has_rec, A, P, bnd, tau_w,
            tau_syn, av, bv, uniform, v_th, v_reset, t_ref, t_max, out_t, out_u, out_i, out_r, counts,
        )
    else:  # the shared-clock kernel walks rows of presynaptic units; the heap kernel uses [post, pre]
        _run_linear_dense_batch(
            times, units, offsets, np.ascontiguousarray(W.T), np.ascontiguousarray(R.T), has_rec, A, P, bnd, tau_w,
            tau_syn, av, bv, uniform, v_th, v_reset, t_ref, t_max, out_t, out_u, out_i, out_r, counts,
            None if uniform else coefficients(A),
        )


@threaded_driver
def _run_linear_dense_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    A: np.ndarray, P: np.ndarray, bnd: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray,
    bv: np.ndarray, uniform: bool, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray, counts: np.ndarray,
    C: np.ndarray | None,
) -> None:
    def work(b: int, _t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        counts[b] = linear_dense_sample(
            times[lo:hi], units[lo:hi], Wt, Rt, has_rec, A, P, bnd, tau_w, tau_syn, av, bv, uniform,
            v_th, v_reset, t_ref, t_max, out_t[b], out_u[b], out_i[b], out_r[b], C,
        )

    for_each_sample(work, offsets.size - 1)


@threaded_driver
def _run_linear_queue_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, ff_order: np.ndarray,
    ff_delay: np.ndarray, R: np.ndarray, rec_order: np.ndarray, rec_delay: np.ndarray, has_rec: bool,
    A: np.ndarray, P: np.ndarray, bnd: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray,
    bv: np.ndarray, uniform: bool, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray, counts: np.ndarray,
) -> None:
    def work(b: int, _t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        counts[b] = linear_sample(
            times[lo:hi], units[lo:hi], W, ff_order, ff_delay, R, rec_order, rec_delay, has_rec, True,
            A, P, bnd, tau_w, tau_syn, av, bv, uniform, v_th, v_reset, t_ref, t_max,
            out_t[b], out_u[b], out_i[b], out_r[b],
        )

    for_each_sample(work, offsets.size - 1)
