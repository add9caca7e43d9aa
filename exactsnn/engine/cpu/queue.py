"""Forward kernel for layers with per-synapse delays (feedforward and, if recurrent, recurrent).

Why this scheme. With per-synapse delays an input spike reaches each neuron at its own time, so
there is no shared clock to exploit; every arrival touches one neuron. Each neuron therefore keeps
its own state and the time it refers to (lazy update), and is brought forward only when an event
concerns it.

Arrivals as bundles. The delays of one presynaptic unit are sorted once per call (``sort_delays``),
so every spike is a *bundle* of arrivals already in time order: spike (t, u) reaches neuron
``order[u, k]`` at ``t + sorted_delay[u, k]``, k = 0, 1, ... A per-sample array-backed heap
(:mod:`exactsnn.engine.cpu.heap`) holds one entry per bundle in flight (its next arrival) plus
each neuron's predicted next threshold crossing; an arrival replaces its bundle's entry by the
bundle's next one (one sift-down). Input bundles enter the heap lazily, once the heap reaches their
spike time, so the heap holds only the spikes whose arrivals are still under way (about
rate x max delay), and no list of (spike x neuron) arrivals is ever built: memory is
O(n_pre x n) for the sorted delays plus the heap.

A prediction carries the neuron's version stamp; any later change of that neuron bumps the version,
so stale predictions are skipped when popped instead of being searched for and deleted. At equal
times a predicted crossing comes first, then feedforward, then recurrent arrivals, then insertion
order (LIF arrivals change I only, so the order cannot change a spike time). A prediction is made
only when the conservative bound of :mod:`exactsnn.neurons.lif` allows a crossing, with the exact
first-crossing search up to t_max.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from exactsnn.engine.cpu.heap import heap_pop, heap_push, heap_replace_top, heap_reserve
from exactsnn.engine.cpu.jit import kernel
from exactsnn.engine.cpu.sort import stable_argsort
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.lif import lif_advance, lif_may_cross, lif_next_spike

_CROSS = 0  # a predicted threshold crossing (handled first on equal times)
_FF = 1  # the next arrival of a feedforward bundle: a = input event, b = position in the bundle
_REC = 2  # the next arrival of a recurrent bundle: a = spike index, b = position in the bundle


@njit(cache=True)
def sort_delays(D: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per presynaptic unit u (column of D, shape (n_post, n_pre)): targets by delay, and the delays.

    Returns ``order`` (n_pre, n_post) and ``delay`` (n_pre, n_post) with
    ``delay[u, k] = D[order[u, k], u]`` non-decreasing in k (stable: ties by target index).
    """
    n_post, n_pre = D.shape
    order = np.empty((n_pre, n_post), np.int64)
    delay = np.empty((n_pre, n_post))
    for u in range(n_pre):
        col = np.ascontiguousarray(D[:, u])
        o = stable_argsort(col)
        for k in range(n_post):
            order[u, k] = o[k]
            delay[u, k] = col[o[k]]
    return order, delay


@kernel
def queue_sample(
    tin: np.ndarray, uin: np.ndarray, W: np.ndarray, ff_order: np.ndarray, ff_delay: np.ndarray,
    R: np.ndarray, rec_order: np.ndarray, rec_delay: np.ndarray, has_rec: bool,
    tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> int:
    """Simulate one sample of one layer with delays. Returns the spike count, or -1 on overflow.

    ``W`` (n, n_pre) and ``R`` (n, n): weights; ``ff_order, ff_delay`` and ``rec_order, rec_delay``:
    the feedforward and recurrent delays (s) sorted by :func:`sort_delays`.
    """
    n = W.shape[0]
    cap = out_t.size
    n_in = np.searchsorted(tin, t_max, side="right")
    # per-neuron lazy state
    V = np.zeros(n)
    I = np.zeros(n)
    tl = np.zeros(n)
    ref_end = np.full(n, -np.inf)
    ref_spike = np.zeros(n, np.int64)
    version = np.zeros(n, np.int64)
    # heap: bundles in flight and crossing predictions
    hcap = 2 * n + 64
    ht = np.empty(hcap)
    hk = np.empty(hcap, np.int64)
    hs = np.empty(hcap, np.int64)
    ha = np.empty(hcap, np.int64)
    hb = np.empty(hcap, np.int64)
    size = 0
    seq = 0
    count = 0
    p = 0  # next input spike whose bundle is not in the heap yet
    if lif_may_cross(0.0, 0.0, v_th):
        # rest at or above threshold (v_th <= 0): every neuron may fire before any input
        for j in range(n):
            ts = lif_next_spike(0.0, 0.0, 0.0, t_max, -math.inf, tau_mem, tau_syn, v_th, v_reset)
            if ts >= 0.0:
                ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
                size = heap_push(ht, hk, hs, ha, hb, size, ts, _CROSS, seq, j, 0)
                seq += 1
    while True:
        t_top = ht[0] if size > 0 else math.inf
        if p < n_in and tin[p] <= t_top:
            # no arrival of this spike (or of any later one) can precede the heap's minimum otherwise
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
        a = ha[0]
        b = hb[0]
        if kind == _CROSS:
            size = heap_pop(ht, hk, hs, ha, hb, size)
            j = a
            if b != version[j]:
                continue  # stale prediction
            w = 0.0
        else:
            # one arrival of a bundle; the bundle's entry moves on to its next arrival
            if kind == _FF:
                u = uin[a]
                j = ff_order[u, b]
                w = W[j, u]
                nxt = tin[a] + ff_delay[u, b + 1] if b + 1 < n else math.inf
            else:
                u = out_u[a]
                j = rec_order[u, b]
                w = R[j, u]
                nxt = out_t[a] + rec_delay[u, b + 1] if b + 1 < n else math.inf
            if nxt <= t_max:
                heap_replace_top(ht, hk, hs, ha, hb, size, nxt, kind, seq, a, b + 1)
                seq += 1
            else:
                size = heap_pop(ht, hk, hs, ha, hb, size)
            if w == 0.0:
                continue  # nothing to add: the neuron's trajectory is unchanged
        v1, i1, i_end = lif_advance(V[j], I[j], tl[j], t, ref_end[j], tau_mem, tau_syn, v_reset)
        if not math.isnan(i_end):
            out_r[ref_spike[j]] = i_end
        V[j] = v1
        I[j] = i1 + w
        tl[j] = t
        if kind == _CROSS:
            if count >= cap:
                return -1
            out_t[count] = t
            out_u[count] = j
            out_i[count] = I[j]
            out_r[count] = math.nan
            V[j] = v_reset
            if t_ref > 0.0:
                ref_end[j] = t + t_ref
                ref_spike[j] = count
            if has_rec:
                ta = t + rec_delay[j, 0]
                if ta <= t_max:
                    ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
                    size = heap_push(ht, hk, hs, ha, hb, size, ta, _REC, seq, count, 0)
                    seq += 1
            count += 1
        # neuron j changed: invalidate its prediction and predict again if a crossing is possible
        version[j] += 1
        v_now = v_reset if ref_end[j] > t else V[j]
        if lif_may_cross(v_now, I[j], v_th):
            ts = lif_next_spike(V[j], I[j], t, t_max, ref_end[j], tau_mem, tau_syn, v_th, v_reset)
            if ts >= 0.0:
                ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
                size = heap_push(ht, hk, hs, ha, hb, size, ts, _CROSS, seq, j, version[j])
                seq += 1
    # refractory windows that close by t_max still need their end current
    for j in range(n):
        if tl[j] < ref_end[j] <= t_max:
            out_r[ref_spike[j]] = I[j] * math.exp(-(ref_end[j] - tl[j]) / tau_syn)
    return count


@threaded_driver
def run_queue_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, ff_order: np.ndarray,
    ff_delay: np.ndarray, R: np.ndarray, rec_order: np.ndarray, rec_delay: np.ndarray, has_rec: bool,
    tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray, counts: np.ndarray,
) -> None:
    """:func:`queue_sample` over every sample of a CSR batch, in parallel on Python threads
    (:mod:`exactsnn.engine.cpu.threads`); rows of out_* per sample."""

    def work(b: int, _t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        counts[b] = queue_sample(
            times[lo:hi], units[lo:hi], W, ff_order, ff_delay, R, rec_order, rec_delay, has_rec,
            tau_mem, tau_syn, v_th, v_reset, t_ref, t_max, out_t[b], out_u[b], out_i[b], out_r[b],
        )

    for_each_sample(work, offsets.size - 1)
