"""Forward kernel for layers with per-synapse delays (feedforward and, if recurrent, recurrent).

Why this scheme. With per-synapse delays an input spike reaches each neuron at its own time, so
there is no shared clock to exploit; every arrival touches one neuron. Each neuron therefore keeps
its own state and the time it refers to (lazy update), and is brought forward only when an event
concerns it. Events come from two sources:

* feedforward arrivals ``t_s + D[j, u_s]``: all known before the layer runs, generated once and
  sorted (stable sort, so exact ties keep the canonical input order, then neuron order);
* a per-sample array-backed heap (:mod:`exactsnn.engine.cpu.heap`) holding recurrent arrivals
  ``t_k + E[j, k]`` and each neuron's predicted next threshold crossing. A prediction carries the
  neuron's version stamp; any later change of that neuron bumps the version, so stale predictions
  are skipped when popped instead of being searched for and deleted.

At equal times a predicted crossing is handled before arrivals (LIF arrivals change I only, so the
order cannot change a spike time). A prediction is made only when the conservative bound of
:mod:`exactsnn.neurons.lif` says a crossing is possible, and it uses the exact first-crossing
search up to t_max. Memory: the sorted arrival list (input spikes x layer size) plus the heap;
spike records as in the dense kernel.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from exactsnn.engine.cpu.heap import heap_pop, heap_push, heap_reserve
from exactsnn.neurons.lif import lif_advance, lif_may_cross, lif_next_spike

_CROSS = 0  # kind of a predicted threshold crossing (handled first on equal times)
_ARRIVE = 1  # kind of a recurrent arrival


@njit(cache=True)
def queue_sample(
    tin: np.ndarray, uin: np.ndarray, W: np.ndarray, D: np.ndarray, R: np.ndarray, E: np.ndarray,
    has_rec: bool, tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> int:
    """Simulate one sample of one layer with delays. Returns the spike count, or -1 on overflow.

    ``W``, ``D``: (n, n_pre) weights and delays (s); ``R``, ``E``: (n, n) recurrent ones.
    """
    n = W.shape[0]
    cap = out_t.size
    # feedforward arrivals, sorted once
    n_in = tin.size
    at = np.empty(n_in * n)
    aw = np.empty(n_in * n)
    aj = np.empty(n_in * n, np.int64)
    k = 0
    for e in range(n_in):
        u = uin[e]
        for j in range(n):
            ta = tin[e] + D[j, u]
            if ta <= t_max:
                at[k] = ta
                aw[k] = W[j, u]
                aj[k] = j
                k += 1
    order = np.argsort(at[:k], kind="mergesort")
    # per-neuron lazy state
    V = np.zeros(n)
    I = np.zeros(n)
    tl = np.zeros(n)
    ref_end = np.full(n, -np.inf)
    ref_spike = np.zeros(n, np.int64)
    version = np.zeros(n, np.int64)
    # heap
    hcap = 4 * n + 16
    ht = np.empty(hcap)
    hk = np.empty(hcap, np.int64)
    hs = np.empty(hcap, np.int64)
    ha = np.empty(hcap, np.int64)
    hb = np.empty(hcap, np.int64)
    size = 0
    seq = 0
    count = 0
    p = 0
    if lif_may_cross(0.0, 0.0, v_th):
        # rest at or above threshold (v_th <= 0): every neuron may fire before any input
        for j in range(n):
            ts = lif_next_spike(0.0, 0.0, 0.0, t_max, -math.inf, tau_mem, tau_syn, v_th, v_reset)
            if ts >= 0.0:
                ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, 1)
                size = heap_push(ht, hk, hs, ha, hb, size, ts, _CROSS, seq, j, 0)
                seq += 1
    while True:
        t_ff = at[order[p]] if p < k else math.inf
        t_h = ht[0] if size > 0 else math.inf
        if t_ff == math.inf and t_h == math.inf:
            break
        if t_h <= t_ff:
            t = t_h
            kind = hk[0]
            j = ha[0]
            b = hb[0]
            size = heap_pop(ht, hk, hs, ha, hb, size)
            if kind == _CROSS and b != version[j]:
                continue  # stale prediction
            v1, i1, i_end = lif_advance(V[j], I[j], tl[j], t, ref_end[j], tau_mem, tau_syn, v_reset)
            if not math.isnan(i_end):
                out_r[ref_spike[j]] = i_end
            V[j] = v1
            I[j] = i1
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
                count += 1
                if has_rec:
                    ht, hk, hs, ha, hb = heap_reserve(ht, hk, hs, ha, hb, size, n)
                    for m in range(n):
                        if R[m, j] != 0.0:
                            ta = t + E[m, j]
                            if ta <= t_max:
                                size = heap_push(ht, hk, hs, ha, hb, size, ta, _ARRIVE, seq, m, j)
                                seq += 1
            else:
                I[j] += R[j, b]
        else:
            idx = order[p]
            p += 1
            j = aj[idx]
            t = t_ff
            v1, i1, i_end = lif_advance(V[j], I[j], tl[j], t, ref_end[j], tau_mem, tau_syn, v_reset)
            if not math.isnan(i_end):
                out_r[ref_spike[j]] = i_end
            V[j] = v1
            I[j] = i1 + aw[idx]
            tl[j] = t
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


@njit(parallel=True, cache=True)
def run_queue_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, D: np.ndarray,
    R: np.ndarray, E: np.ndarray, has_rec: bool,
    tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray, counts: np.ndarray,
) -> None:
    """:func:`queue_sample` over every sample of a CSR batch, in parallel; rows of out_* per sample."""
    for b in prange(offsets.size - 1):
        lo = offsets[b]
        hi = offsets[b + 1]
        counts[b] = queue_sample(
            times[lo:hi], units[lo:hi], W, D, R, E, has_rec, tau_mem, tau_syn, v_th, v_reset, t_ref, t_max,
            out_t[b], out_u[b], out_i[b], out_r[b],
        )
