"""Forward kernel for LIF layers whose delays sit on the feedforward synapses only.

Scope: a LIF layer with per-synapse feedforward delays ``D[j, i]`` and, if recurrent, instantaneous
(zero-delay) recurrence (``Layer(..., delays="feedforward")``, or a non-recurrent layer with
``delays=True``). Same model, semantics, tie rules and record as :mod:`exactsnn.engine.cpu.queue`
(exact event-driven simulation: no time grid, no missed spike, grazing included), much faster.

Why this scheme (order-free accumulation). Between two spikes of a neuron (outside refractoriness)
its state is linear in its inputs, so the arrivals it receives may be summed in any order; ordering
matters only for a neuron that may reach threshold. Time is cut into windows [T0, T1) of length h
(bookkeeping only: every state change and every spike keeps its exact time). For each window and
neuron the feedforward arrivals in it are accumulated, order-free, into four numbers (positive and
negative weights apart, one per mode tau in {tau_syn, tau_mem}) ::

    S_tau = sum_a w_a exp(-(T1 - t_a)/tau)     (t_a in [T0, T1), so T1 - t_a in (0, h])

A conservative screen (below) then clears most neurons; a cleared neuron's state at T1 is its state
at T0 propagated over h plus the accumulators (no sorting, no search)::

    I(T1) = a_s I(T0) + S_syn,     V(T1) = a_m V(T0) + c(h) I(T0) + k (S_syn - S_mem),
    a_tau = exp(-h/tau),  c = the coupling of lif_factors,  k = tau_syn/(tau_syn - tau_mem).

The neurons the screen flags (and those whose refractory window ends inside the window) replay the
window exactly: their arrivals in it are collected, sorted (a few), and run through the same
sequential exact search as the queue kernel (``lif_advance`` / ``lif_next_spike``), with the
crossings of all flagged neurons taken earliest first.

Factorised accumulation. Let u = the window of input spike t_i (T_u = u h <= t_i < T_u + h,
r = t_i - T_u) and, per synapse, m0 = floor(D/h) and the phase p = (m0 + 1) h - D in (0, h]. The
arrival t_a = t_i + D lies in window u + m0 when r < p (then T1 - t_a = p - r), else in window
u + m0 + 1 (T1 - t_a = p - r + h). Hence w exp(-(T1 - t_a)/tau) = [w exp(-p/tau)] * [exp(r/tau)]
(times exp(-h/tau) in the second case): a per-synapse factor in [e^{-h/tau} w, w) computed once per
call and a per-spike factor in [1, e^{h/tau}) computed once per input spike. Every exponent is at
most h/tau in size, whatever the delays, so nothing can overflow or underflow. Each input spike
scatters its fan-out once, when its own window starts, into a ring of per-window accumulators
spanning the largest delay (a power of two of windows, each a power-of-two slot holding the arrays
S+_syn, S+_mem, S-_syn, S-_mem over the neurons, so a slot index is a mask). A unit's synapses are sorted by phase,
so those with p <= r (next window) are a prefix found by bisection: an arrival costs two
multiply-adds and no branch. The replay of a flagged neuron decides r >= p from the same stored
floats, so each arrival belongs to exactly one window on both paths (an arrival time t_i + D that
rounds across a window edge is clamped into its window: a shift of at most an ulp).

The screen (proof). On [T0, T1] (h <= t_peak, the peak time of a kick's voltage response
c(s) = k (e^{-s/tau_syn} - e^{-s/tau_mem}) >= 0, which rises on [0, t_peak]) the voltage is the free
trajectory plus the responses of the window's arrivals::

    V(t) = V_free(t) + sum_a w_a c(t - t_a) [t >= t_a].

Each positive term is at most w_a c(T1 - t_a) (c rises on [0, T1 - t_a], a subset of [0, h]), each
negative one at most 0, so the arrivals add at most k (S+_syn - S+_mem), the positive accumulators'
voltage at T1. The free trajectory obeys V_free(s) <= V0 + max(max(I0, 0) - V0, 0) s/tau_mem
(``lif_may_reach``) and V_free(s) = a_m(s) V0 + c(s) I0 <= max(V0, a_m(h) V0) + c(h) max(I0, 0)
(c >= 0 rises on [0, h]); the smaller of the two bounds at s = h holds. A neuron is cleared when
that bound, plus 1e-12 times the magnitude of its terms (covering rounding), stays below v_th.
Zero-delay recurrent kicks R[j, k] at a spike time t_k in the window are arrivals like any other:
they join the accumulators of cleared neurons (which are then screened again: a neuron flagged by a
kick cannot cross before t_k, since its trajectory up to t_k was cleared) and are applied directly
to flagged ones, after every crossing at the same instant (crossings first, then feedforward, then
recurrent arrivals, as in the queue kernel). A neuron flagged by a kick replays the window from T0
with its feedforward arrivals and every kick of the window so far.

Refractoriness: a window inside a neuron's refractory window leaves V at v_reset and accumulates I
(no crossing possible); a window in which refractoriness ends is replayed exactly (the current at the
end is recorded). Near-equal time constants make k = tau_syn/(tau_syn - tau_mem) large and the
difference S_syn - S_mem cancel: :func:`ff_supported` refuses |tau_syn - tau_mem| < 5 % of the larger
(and v_th <= 0, rest at threshold); the caller runs the queue kernel for those layers.

Cost per sample: O(input spikes x n) scatter (two multiply-adds per synapse), O(windows x n)
for one fused pass per window (update of window w, screen of window w + 1), O(spikes x n) recurrent
kicks (one fused add-and-rescreen pass per spike), plus exact work for the flagged neuron-windows
(their arrivals are found by one rescan of the input spikes of the last Dmax + h for all of them).
Memory: O(n_pre x n) tables, O(ring x n) accumulators, O(spikes) record.

Measured (``benchmarks/ff_delays_forward.py``: 700 inputs at 10 Hz, 256 recurrent neurons at 15 Hz, batch 8 x
0.5 s, D ~ U(0, 25 ms), one thread on a shared 2-core machine): 7.1x the delay-free dense forward (7.9x in CPU
time), the heap kernel 161x; about 1 % of the neuron-windows are replayed (mostly the windows of the
spikes). Against the heap kernel on 300 random networks (274k spikes): the same spikes, times within 5.5e-15 s.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange
from numba.extending import register_jitable

from exactsnn.engine.cpu.flags import read_flags
from exactsnn.engine.cpu.heap import grow
from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.lif import lif_advance, lif_factors, lif_next_spike, log1p_ratio

__all__ = ["ff_supported", "ff_window", "ff_tables", "run_ff_delays_batch"]

_CROSS = 0
_ARR = 1
_NONE = 2
_SCREEN_REL = 1e-12  # rounding allowance of the screen, relative to the magnitude of its terms
_NEAR_EQUAL = 0.05  # |tau_syn - tau_mem| below this fraction of the larger: queue kernel instead
_H_MAX = 0.5e-3  # default window length (s), capped by the PSP peak time


def ff_supported(tau_mem: float, tau_syn: float, v_th: float) -> bool:
    """Whether the windowed kernel handles these LIF parameters (else use the queue kernel)."""
    return v_th > 0.0 and abs(tau_syn - tau_mem) >= _NEAR_EQUAL * max(tau_mem, tau_syn)


def ff_window(tau_mem: float, tau_syn: float, h_max: float = _H_MAX) -> float:
    """Window length h (s): min(h_max, t_peak), t_peak = peak time of a kick's voltage response."""
    t_peak = tau_syn * log1p_ratio((tau_syn - tau_mem) / tau_mem)
    return min(h_max, t_peak)


@njit(cache=True)
def _phase_order(p: np.ndarray, h: float) -> np.ndarray:
    """Indices sorting the phases ``p`` (values in (0, h]) in O(n): buckets, then an insertion pass."""
    n = p.size
    start = np.zeros(n + 1, np.int64)
    b = np.empty(n, np.int64)
    for k in range(n):
        b[k] = min(int(p[k] / h * n), n - 1)
        start[b[k] + 1] += 1
    for k in range(n):
        start[k + 1] += start[k]
    order = np.empty(n, np.int64)
    for k in range(n):
        order[start[b[k]]] = k
        start[b[k]] += 1
    for a in range(1, n):  # nearly sorted: linear on average
        k = order[a]
        c = a - 1
        while c >= 0 and p[order[c]] > p[k]:
            order[c + 1] = order[c]
            c -= 1
        order[c + 1] = k
    return order


@njit(parallel=True, cache=True)
def ff_tables(
    W: np.ndarray, D: np.ndarray, h: float, tau_mem: float, tau_syn: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, int, int]:
    """Per-call tables of the windowed kernel for weights/delays ``W, D`` (n, n_pre) and window h (s).

    Returns ``(off, ph_s, fs, fm, key, ring, slot, mmax)``. Per presynaptic unit u, its synapses sorted
    by phase (rows of shape (n_pre, n)): accumulator offset ``m0 * slot + j + 2 n [w < 0]`` (int32),
    phase, w e^{-phase/tau_syn}, w e^{-phase/tau_mem}. ``key[j, u]`` = (phase, m0) of synapse (j, u) (the
    same floats; neuron-major: a rescan streams through one row in unit order).
    ``ring`` windows (a power of two >= max m0 + 3) of ``slot`` doubles (a power of two >= 4 n) make the
    accumulator ring; ``mmax`` = max m0.
    """
    n, n_pre = W.shape
    m0 = np.empty((n_pre, n), np.int64)
    ph = np.empty((n_pre, n))
    for u in prange(n_pre):
        for j in range(n):
            d = D[j, u]
            m = int(math.floor(d / h))
            p = (m + 1) * h - d
            while p <= 0.0:
                m += 1
                p = (m + 1) * h - d
            while p > h and m > 0:
                m -= 1
                p = (m + 1) * h - d
            m0[u, j] = m
            ph[u, j] = p
    mmax = m0.max() if m0.size else 0
    ring = 1
    while ring < mmax + 3:
        ring *= 2
    slot = 1
    while slot < 4 * n:
        slot *= 2
    off = np.empty((n_pre, n), np.int32)
    key = np.empty((n, n_pre, 2))
    ph_s = np.empty((n_pre, n))
    fs = np.empty((n_pre, n))
    fm = np.empty((n_pre, n))
    for u in prange(n_pre):
        order = _phase_order(ph[u], h)
        for k in range(n):
            j = order[k]
            w = W[j, u]
            p = ph[u, j]
            off[u, k] = m0[u, j] * slot + j + (2 * n if w < 0.0 else 0)
            ph_s[u, k] = p
            fs[u, k] = w * math.exp(-p / tau_syn)
            fm[u, k] = w * math.exp(-p / tau_mem)
    for j in prange(n):
        for u in range(n_pre):
            key[j, u, 0] = ph[u, j]
            key[j, u, 1] = m0[u, j]
    return off, ph_s, fs, fm, key, ring, slot, mmax


@helper
def _scatter(
    acc: np.ndarray, base: int, slot: int, mask: int, n: int, off: np.ndarray, ph_s: np.ndarray, fs: np.ndarray,
    fm: np.ndarray, r: float, gs0: float, gm0: float, gs1: float, gm1: float,
) -> None:
    """Add one input spike's arrivals (its unit's rows, sorted by phase) to the window accumulators.

    The synapses with phase <= r (arrival one window later) are a prefix of the row: found by bisection,
    so the two loops carry no per-arrival branch.
    """
    lo = 0
    hi = off.size
    while lo < hi:
        mid = (lo + hi) >> 1
        if ph_s[mid] <= r:
            lo = mid + 1
        else:
            hi = mid
    b1 = base + slot
    for k in range(lo):
        o = (b1 + off[k]) & mask
        acc[o] += fs[k] * gs1
        acc[o + n] += fm[k] * gm1
    for k in range(lo, off.size):
        o = (base + off[k]) & mask
        acc[o] += fs[k] * gs0
        acc[o + n] += fm[k] * gm0


@register_jitable
def _hit(v0: float, i0: float, sp: float, mp: float, kh: float, am: float, ch: float, kk: float, v_th: float) -> bool:
    """The screen: True unless V provably stays below v_th in the window (proof in the module docstring)."""
    ip = max(i0, 0.0)
    b1 = v0 + max(ip - v0, 0.0) * kh
    b2 = max(v0, am * v0) + ch * ip
    bound = min(b1, b2) + kk * (sp - mp)
    scale = abs(v0) + ip + abs(kk) * (sp + mp) + abs(v_th)
    return bound + _SCREEN_REL * scale >= v_th


@helper
def _screen_start(
    V: np.ndarray, I: np.ndarray, ref_end: np.ndarray, status: np.ndarray, b: np.ndarray, T0: float, T1: float,
    kh: float, am: float, ch: float, kk: float, v_th: float, flags: np.ndarray,
) -> int:
    """Flag the neurons to replay in window [T0, T1) (``b``: its accumulators); returns how many."""
    n = V.size
    count = 0
    for j in range(n):
        hit = _hit(V[j], I[j], b[j], b[n + j], kh, am, ch, kk, v_th)
        re = ref_end[j]
        f = (re < T1) & ((re > T0) | hit)
        status[j] = 1 if re >= T1 else 0
        flags[j] = f
        count += f
    return count


@helper
def _update_screen(
    V: np.ndarray, I: np.ndarray, ref_end: np.ndarray, status: np.ndarray, a: np.ndarray, b: np.ndarray,
    T1: float, T2: float, am: float, ch: float, as_: float, kk: float, v_reset: float,
    kh: float, v_th: float, flags: np.ndarray,
) -> int:
    """State at T1 of every neuron from its state at T0 and window [T0, T1)'s accumulators ``a`` (zeroed
    after), and the screen of the next window [T1, T2) (accumulators ``b``). Returns the number flagged."""
    n = V.size
    count = 0
    for j in range(n):
        ss = a[j] + a[2 * n + j]
        sm = a[n + j] + a[3 * n + j]
        v0 = V[j]
        i0 = I[j]
        re = ref_end[j]
        v1 = v_reset if re >= T1 else am * v0 + ch * i0 + kk * (ss - sm)
        i1 = as_ * i0 + ss
        V[j] = v1
        I[j] = i1
        hit = _hit(v1, i1, b[j], b[n + j], kh, am, ch, kk, v_th)
        f = (re < T2) & ((re > T1) | hit)
        status[j] = 1 if re >= T2 else 0
        flags[j] = f
        count += f
    for q in range(4 * n):
        a[q] = 0.0
    return count


@helper
def _kick_screen(
    V: np.ndarray, I: np.ndarray, status: np.ndarray, a: np.ndarray, row: np.ndarray, ek_s: float, ek_m: float,
    kh: float, am: float, ch: float, kk: float, v_th: float, flags: np.ndarray,
) -> int:
    """Add a zero-delay recurrent row (a kick at T1 - s, ek_tau = e^{-s/tau}) to the window's accumulators
    ``a`` and flag the cleared neurons that it may now bring to threshold; returns how many."""
    n = V.size
    count = 0
    for j in range(n):
        r = row[j]
        rp = max(r, 0.0)
        rn = min(r, 0.0)
        sp = a[j] + rp * ek_s
        mp = a[n + j] + rp * ek_m
        a[j] = sp
        a[n + j] = mp
        a[2 * n + j] += rn * ek_s
        a[3 * n + j] += rn * ek_m
        f = (status[j] == 0) & (r > 0.0) & _hit(V[j], I[j], sp, mp, kh, am, ch, kk, v_th)
        flags[j] = flags[j] | f
        count += f
    return count


@helper
def _list_flags(flags: np.ndarray, out: np.ndarray, m: int) -> int:
    """Append the flagged neurons to ``out[m:]`` and clear their flags (:func:`read_flags`); returns the new length.
    A helper of its own: inlined into the kernel, the flag reader slowed its forward pass (0.09-0.11 against
    0.07-0.08 s per batch in an A/B)."""
    return read_flags(flags, out, m, True)


@helper
def _insertion_sort(lt: np.ndarray, lw: np.ndarray, lk: np.ndarray, lo: int, hi: int) -> None:
    """Sort entries [lo, hi) by (time, kind), stably."""
    for a in range(lo + 1, hi):
        t = lt[a]
        w = lw[a]
        k = lk[a]
        b = a - 1
        while b >= lo and (lt[b] > t or (lt[b] == t and lk[b] > k)):
            lt[b + 1] = lt[b]
            lw[b + 1] = lw[b]
            lk[b + 1] = lk[b]
            b -= 1
        lt[b + 1] = t
        lw[b + 1] = w
        lk[b + 1] = k


@helper
def _merge_candidates(
    cu: np.ndarray, cr: np.ndarray, cw: np.ndarray, ct: np.ndarray, n_c: int, du: np.ndarray, dr: np.ndarray,
    dw: np.ndarray, dt: np.ndarray, uin: np.ndarray, rr: np.ndarray, wi: np.ndarray, tin: np.ndarray,
    a: int, b: int, w_min: int, tmp: np.ndarray,
) -> int:
    """The input spikes whose arrivals may fall in the current window, in unit order (into d*).

    Keeps the old candidates (c*) of window >= w_min and merges in the spikes [a, b) (the new window's);
    returns the new count. Unit order lets a rescan stream through a neuron's table row.
    """
    m = 0
    for p in range(a, b):  # the new spikes by unit (a handful: insertion sort)
        k = m
        while k > 0 and uin[tmp[k - 1]] > uin[p]:
            tmp[k] = tmp[k - 1]
            k -= 1
        tmp[k] = p
        m += 1
    i = 0
    k = 0
    out = 0
    while i < n_c or k < m:
        if i < n_c and cw[i] < w_min:
            i += 1
            continue
        if k >= m or (i < n_c and cu[i] <= uin[tmp[k]]):
            du[out] = cu[i]
            dr[out] = cr[i]
            dw[out] = cw[i]
            dt[out] = ct[i]
            i += 1
        else:
            p = tmp[k]
            du[out] = uin[p]
            dr[out] = rr[p]
            dw[out] = wi[p]
            dt[out] = tin[p]
            k += 1
        out += 1
    return out


@helper
def _collect(
    js: np.ndarray, n_js: int, w: int, last: bool, T0: float, T1: float, t_max: float, cu: np.ndarray,
    cr: np.ndarray, cw: np.ndarray, ct: np.ndarray, n_c: int, W: np.ndarray, D: np.ndarray, key: np.ndarray,
    lt: np.ndarray, lw: np.ndarray, lk: np.ndarray, lpos: np.ndarray, lend: np.ndarray,
) -> None:
    """Append the feedforward arrivals of window w of neurons ``js[:n_js]`` to their list segments.

    Each segment starts at ``lpos[j]`` with ``lend[j] = lpos[j]`` and has room for every candidate.
    The window of an arrival is decided from the same stored floats as in :func:`_scatter`.
    """
    for q in range(n_js):
        j = js[q]
        kj = key[j]
        e = lend[j]
        for c in range(n_c):
            u = cu[c]
            if kj[u, 1] + (1.0 if cr[c] >= kj[u, 0] else 0.0) != w - cw[c]:
                continue
            wt = W[j, u]
            if wt == 0.0:
                continue
            ta = ct[c] + D[j, u]
            if last and ta > t_max:
                continue
            lt[e] = min(max(ta, T0), T1)
            lw[e] = wt
            lk[e] = 1
            e += 1
        lend[j] = e


@helper
def _next_event(
    j: int, V: np.ndarray, I: np.ndarray, tl: np.ndarray, ref_end: np.ndarray, lpos: np.ndarray,
    lend: np.ndarray, lt: np.ndarray, nev: np.ndarray, nkind: np.ndarray, t_end: float,
    tau_mem: float, tau_syn: float, v_th: float, v_reset: float,
) -> None:
    """Neuron j's next event: its first crossing up to its next arrival (or t_end), else that arrival."""
    pos = lpos[j]
    has = pos < lend[j]
    ta = lt[pos] if has else t_end
    tc = lif_next_spike(V[j], I[j], tl[j], ta, ref_end[j], tau_mem, tau_syn, v_th, v_reset)
    if tc >= 0.0:
        nev[j] = tc
        nkind[j] = _CROSS
    elif has:
        nev[j] = ta
        nkind[j] = _ARR
    else:
        nev[j] = math.inf
        nkind[j] = _NONE


@helper
def _apply(
    j: int, t: float, w: float, V: np.ndarray, I: np.ndarray, tl: np.ndarray, ref_end: np.ndarray,
    ref_spike: np.ndarray, out_r: np.ndarray, tau_mem: float, tau_syn: float, v_reset: float,
) -> None:
    """Bring neuron j to t (no crossing in between) and add w to its current."""
    v1, i1, i_end = lif_advance(V[j], I[j], tl[j], t, ref_end[j], tau_mem, tau_syn, v_reset)
    if not math.isnan(i_end):
        out_r[ref_spike[j]] = i_end
    V[j] = v1
    I[j] = i1 + w
    tl[j] = t


@kernel
def ff_sample(
    tin: np.ndarray, uin: np.ndarray, W: np.ndarray, D: np.ndarray, Rt: np.ndarray, has_rec: bool,
    off: np.ndarray, ph_s: np.ndarray, fs: np.ndarray, fm: np.ndarray, key: np.ndarray,
    ring: int, slot: int, mmax: int, h: float, tau_mem: float, tau_syn: float, v_th: float, v_reset: float,
    t_ref: float, t_max: float, out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> int:
    """Simulate one sample of one layer with feedforward delays. Returns the spike count, or -1 on overflow.

    ``W, D`` (n, n_pre): feedforward weights and delays (s); ``Rt`` (n, n): transposed zero-delay
    recurrent weights; the tables come from :func:`ff_tables` for window length ``h``.
    """
    n = W.shape[0]
    cap = out_t.size
    n2 = 2 * n
    mask = ring * slot - 1
    n_in = np.searchsorted(tin, t_max, side="right")
    n_win = int(math.floor(t_max / h)) + 1
    while n_win > 1 and (n_win - 1) * h > t_max:
        n_win -= 1
    while n_win * h <= t_max:
        n_win += 1
    # window factors (every window has length h) and the per-spike factors
    am, ch, as_ = lif_factors(h, tau_mem, tau_syn)
    kh = h / tau_mem
    kk = tau_syn / (tau_syn - tau_mem)
    eh_s = math.exp(-h / tau_syn)
    eh_m = math.exp(-h / tau_mem)
    wi = np.empty(n_in, np.int64)
    rr = np.empty(n_in)
    for p in range(n_in):
        t = tin[p]
        w = int(math.floor(t / h))
        while w > 0 and w * h > t:
            w -= 1
        while (w + 1) * h <= t:
            w += 1
        wi[p] = w
        rr[p] = t - w * h
    win_first = np.empty(n_win + 2, np.int64)  # first input spike of each window
    p = 0
    for w in range(n_win + 2):
        while p < n_in and wi[p] < w:
            p += 1
        win_first[w] = p
    # state: V, I at the current window's start (replayed neurons: at tl)
    V = np.zeros(n)
    I = np.zeros(n)
    tl = np.zeros(n)
    ref_end = np.full(n, -np.inf)
    ref_spike = np.zeros(n, np.int64)
    status = np.zeros(n, np.int8)  # 0 free (screened), 1 refractory all window, 2 replayed
    ref_list = np.empty(n, np.int64)
    in_ref = np.zeros(n, np.bool_)
    n_ref = 0
    acc = np.zeros(ring * slot)
    flags = np.zeros(8 * ((n + 7) // 8), np.uint8)
    fl = np.empty(n, np.int64)
    fired = np.empty(n, np.int64)
    lpos = np.zeros(n, np.int64)
    lend = np.zeros(n, np.int64)
    nev = np.full(n, math.inf)
    nkind = np.full(n, _NONE, np.int64)
    vsave = np.empty(n)
    isave = np.empty(n)
    cu = np.empty(n_in + 1, np.int64)  # candidate input spikes: unit, r, window, time
    cr = np.empty(n_in + 1)
    cw = np.empty(n_in + 1, np.int64)
    ct = np.empty(n_in + 1)
    du = np.empty(n_in + 1, np.int64)
    dr = np.empty(n_in + 1)
    dw = np.empty(n_in + 1, np.int64)
    dt = np.empty(n_in + 1)
    tmp = np.empty(n_in + 1, np.int64)
    n_cand = 0
    lcap = 256
    lt = np.empty(lcap)
    lw = np.empty(lcap)
    lk = np.empty(lcap, np.int64)
    count = 0
    # window 0: its input spikes, then the screen
    for p in range(win_first[0], win_first[1]):
        r = rr[p]
        gs0 = math.exp(r / tau_syn)
        gm0 = math.exp(r / tau_mem)
        _scatter(acc, 0, slot, mask, n, off[uin[p]], ph_s[uin[p]], fs[uin[p]], fm[uin[p]], r, gs0, gm0, gs0 * eh_s,
                 gm0 * eh_m)
    nf = _screen_start(V, I, ref_end, status, acc[0:n2], 0.0, h, kh, am, ch, kk, v_th, flags)
    nf = _list_flags(flags, fl, 0) if nf > 0 else 0
    for w in range(n_win):
        T0 = w * h
        T1 = (w + 1) * h
        last = w == n_win - 1
        t_end = t_max if last else T1
        p0 = (w & (ring - 1)) * slot
        a = acc[p0:p0 + 2 * n2]
        win_spike0 = count
        # the input spikes whose arrivals may fall in this window, in unit order
        n_cand = _merge_candidates(cu, cr, cw, ct, n_cand, du, dr, dw, dt, uin, rr, wi, tin, win_first[w],
                                   win_first[w + 1], w - mmax - 1, tmp)
        cu, du = du, cu
        cr, dr = dr, cr
        cw, dw = dw, cw
        ct, dt = dt, ct
        # collect and start every flagged neuron
        if nf > 0:
            need = nf * (n_cand + 1)
            if need > lcap:
                lcap = 2 * need
                lt = np.empty(lcap)
                lw = np.empty(lcap)
                lk = np.empty(lcap, np.int64)
            for q in range(nf):
                j = fl[q]
                lpos[j] = q * (n_cand + 1)
                lend[j] = lpos[j]
            _collect(fl, nf, w, last, T0, T1, t_max, cu, cr, cw, ct, n_cand, W, D, key, lt, lw, lk, lpos, lend)
            for q in range(nf):
                j = fl[q]
                _insertion_sort(lt, lw, lk, lpos[j], lend[j])
                status[j] = 2
                tl[j] = T0
                _next_event(j, V, I, tl, ref_end, lpos, lend, lt, nev, nkind, t_end, tau_mem, tau_syn, v_th,
                            v_reset)
        n_list = nf * (n_cand + 1)
        # events of the flagged neurons, earliest first
        while nf > 0:
            best = math.inf
            bk = _NONE
            bj = -1
            for q in range(nf):
                j = fl[q]
                if nev[j] < best or (nev[j] == best and nkind[j] < bk):
                    best = nev[j]
                    bk = nkind[j]
                    bj = j
            if bj < 0:
                break
            if bk == _ARR:
                pos = lpos[bj]
                _apply(bj, lt[pos], lw[pos], V, I, tl, ref_end, ref_spike, out_r, tau_mem, tau_syn, v_reset)
                lpos[bj] = pos + 1
                _next_event(bj, V, I, tl, ref_end, lpos, lend, lt, nev, nkind, t_end, tau_mem, tau_syn, v_th,
                            v_reset)
                continue
            # every crossing at exactly this time fires before any recurrent input they send
            n_fired = 0
            for q in range(nf):
                j = fl[q]
                if nkind[j] != _CROSS or nev[j] != best:
                    continue
                if count >= cap:
                    return -1
                _apply(j, best, 0.0, V, I, tl, ref_end, ref_spike, out_r, tau_mem, tau_syn, v_reset)
                out_t[count] = best
                out_u[count] = j
                out_i[count] = I[j]
                out_r[count] = math.nan
                V[j] = v_reset
                if t_ref > 0.0:
                    ref_end[j] = best + t_ref
                    ref_spike[j] = count
                    if not in_ref[j]:
                        in_ref[j] = True
                        ref_list[n_ref] = j
                        n_ref += 1
                count += 1
                fired[n_fired] = j
                n_fired += 1
            if has_rec:
                s = T1 - best
                ek_s = math.exp(-s / tau_syn)
                ek_m = math.exp(-s / tau_mem)
                n_new = 0
                for c in range(n_fired):
                    k = fired[c]
                    row = Rt[k]
                    n_new += _kick_screen(V, I, status, a, row, ek_s, ek_m, kh, am, ch, kk, v_th, flags)
                    for q in range(nf):
                        j = fl[q]
                        rw = row[j]
                        if rw == 0.0:
                            continue
                        # pending arrivals before the kick are at this very time (ff before rec)
                        pos = lpos[j]
                        while pos < lend[j] and lt[pos] <= best:
                            _apply(j, lt[pos], lw[pos], V, I, tl, ref_end, ref_spike, out_r, tau_mem, tau_syn,
                                   v_reset)
                            pos += 1
                        lpos[j] = pos
                        _apply(j, best, rw, V, I, tl, ref_end, ref_spike, out_r, tau_mem, tau_syn, v_reset)
                if n_new > 0:
                    # cleared neurons that the kicks may bring to threshold replay the window from T0 with
                    # their feedforward arrivals and every kick so far (no crossing before this instant:
                    # their trajectory up to here was cleared)
                    nf0 = nf
                    nf = _list_flags(flags, fl, nf)
                    n_k = count - win_spike0
                    room = n_cand + n_k + 1
                    if n_list + (nf - nf0) * room > lcap:
                        lcap = 2 * (n_list + (nf - nf0) * room)
                        lt = grow(lt, lcap)
                        lw = grow(lw, lcap)
                        lk = grow(lk, lcap)
                    for q in range(nf0, nf):
                        j = fl[q]
                        lpos[j] = n_list
                        lend[j] = n_list
                        n_list += room
                    _collect(fl[nf0:], nf - nf0, w, last, T0, T1, t_max, cu, cr, cw, ct, n_cand, W, D, key, lt,
                             lw, lk, lpos, lend)
                    for q in range(nf0, nf):
                        j = fl[q]
                        e = lend[j]
                        for c in range(win_spike0, count):
                            rw = Rt[out_u[c], j]
                            if rw != 0.0:
                                lt[e] = out_t[c]
                                lw[e] = rw
                                lk[e] = 2
                                e += 1
                        lend[j] = e
                        _insertion_sort(lt, lw, lk, lpos[j], e)
                        status[j] = 2
                        tl[j] = T0
                        pos = lpos[j]
                        while pos < e and lt[pos] <= best:
                            _apply(j, lt[pos], lw[pos], V, I, tl, ref_end, ref_spike, out_r, tau_mem, tau_syn,
                                   v_reset)
                            pos += 1
                        lpos[j] = pos
                        nev[j] = -1.0  # predicted below
            for q in range(nf):
                j = fl[q]
                if tl[j] == best or nev[j] <= best:
                    _next_event(j, V, I, tl, ref_end, lpos, lend, lt, nev, nkind, t_end, tau_mem, tau_syn, v_th,
                                v_reset)
        if last:
            # the record needs nothing else: refractory ends up to t_max of the replayed neurons
            for q in range(nf):
                _apply(fl[q], t_max, 0.0, V, I, tl, ref_end, ref_spike, out_r, tau_mem, tau_syn, v_reset)
            break
        # replayed neurons to T1 (pending arrivals were all applied)
        for q in range(nf):
            j = fl[q]
            _apply(j, T1, 0.0, V, I, tl, ref_end, ref_spike, out_r, tau_mem, tau_syn, v_reset)
            vsave[q] = V[j]
            isave[q] = I[j]
        # the next window's input spikes (their arrivals fall in windows w + 1 ... w + 1 + mmax + 1)
        p1 = ((w + 1) & (ring - 1)) * slot
        for p in range(win_first[w + 1], win_first[w + 2]):
            u = uin[p]
            r = rr[p]
            gs0 = math.exp(r / tau_syn)
            gm0 = math.exp(r / tau_mem)
            _scatter(acc, p1, slot, mask, n, off[u], ph_s[u], fs[u], fm[u], r, gs0, gm0, gs0 * eh_s, gm0 * eh_m)
        # every other neuron to T1, and the screen of the next window
        b = acc[p1:p1 + n2]
        T2 = (w + 2) * h
        nn = _update_screen(V, I, ref_end, status, a, b, T1, T2, am, ch, as_, kk, v_reset, kh, v_th, flags)
        for q in range(nf):
            j = fl[q]
            V[j] = vsave[q]
            I[j] = isave[q]
            tl[j] = T1
            nev[j] = math.inf
            nkind[j] = _NONE
            re = ref_end[j]
            f = (re < T2) & ((re > T1) | _hit(V[j], I[j], b[j], b[n + j], kh, am, ch, kk, v_th))
            nn += int(f) - int(flags[j])
            flags[j] = f
        # refractory windows that end exactly at T1 (for a replayed neuron this rewrites the same value)
        keep = 0
        for c in range(n_ref):
            j = ref_list[c]
            if ref_end[j] <= T1:
                if ref_end[j] == T1:
                    out_r[ref_spike[j]] = I[j]
                in_ref[j] = False
            else:
                ref_list[keep] = j
                keep += 1
        n_ref = keep
        nf = _list_flags(flags, fl, 0) if nn > 0 else 0
    return count


@threaded_driver
def run_ff_delays_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, D: np.ndarray, Rt: np.ndarray,
    has_rec: bool, off: np.ndarray, ph_s: np.ndarray, fs: np.ndarray, fm: np.ndarray, key: np.ndarray,
    ring: int, slot: int, mmax: int, h: float, tau_mem: float, tau_syn: float, v_th: float,
    v_reset: float, t_ref: float, t_max: float, out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray,
    out_r: np.ndarray, counts: np.ndarray,
) -> None:
    """:func:`ff_sample` over every sample of a CSR batch, in parallel on Python threads
    (:mod:`exactsnn.engine.cpu.threads`); rows of out_* per sample."""

    def work(b: int, _t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        counts[b] = ff_sample(
            times[lo:hi], units[lo:hi], W, D, Rt, has_rec, off, ph_s, fs, fm, key, ring, slot, mmax, h,
            tau_mem, tau_syn, v_th, v_reset, t_ref, t_max, out_t[b], out_u[b], out_i[b], out_r[b],
        )

    for_each_sample(work, offsets.size - 1)
