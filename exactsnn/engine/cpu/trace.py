"""Exact membrane potential at query times, replayed from a layer's inputs and its recorded spikes.

The spike times are known from the forward pass, so no crossing search is needed: every neuron
integrates its merged, time-sorted arrival list in closed form, resets at its own spike times and
is held at v_reset during refractory windows. Queries at an event time see the state after the
event (right-continuous). Parallel over samples; memory O(arrivals of one neuron) per thread plus
the (B, n, n_query) result.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from exactsnn.neurons.lif import lif_advance


@njit(cache=True)
def _neuron_trace(
    j: int, tin: np.ndarray, uin: np.ndarray, W: np.ndarray, D: np.ndarray,
    ts: np.ndarray, us: np.ndarray, R: np.ndarray, E: np.ndarray, has_rec: bool, spiking: bool,
    tau_mem: float, tau_syn: float, v_reset: float, t_ref: float, t_max: float, tq: np.ndarray, out: np.ndarray,
) -> None:
    n_ff = tin.size
    n_rec = ts.size if has_rec else 0
    at = np.empty(n_ff + n_rec)
    aw = np.empty(n_ff + n_rec)
    k = 0
    for e in range(n_ff):
        ta = tin[e] + D[j, uin[e]]
        if ta <= t_max:
            at[k] = ta
            aw[k] = W[j, uin[e]]
            k += 1
    for e in range(n_rec):
        ta = ts[e] + E[j, us[e]]
        if ta <= t_max:
            at[k] = ta
            aw[k] = R[j, us[e]]
            k += 1
    order = np.argsort(at[:k], kind="mergesort")
    # own spike times
    n_own = 0
    if spiking:
        for e in range(ts.size):
            if us[e] == j:
                n_own += 1
    own = np.empty(n_own)
    c = 0
    if spiking:
        for e in range(ts.size):
            if us[e] == j:
                own[c] = ts[e]
                c += 1
    V = 0.0
    I = 0.0
    t = 0.0
    ref_end = -np.inf
    pa = 0
    po = 0
    for q in range(tq.size):
        tqq = tq[q]
        # every arrival and reset at or before the query, in time order (arrivals first on ties)
        while True:
            t_a = at[order[pa]] if pa < k else np.inf
            t_o = own[po] if po < n_own else np.inf
            if t_a <= tqq and t_a <= t_o:
                V, I, _ = lif_advance(V, I, t, t_a, ref_end, tau_mem, tau_syn, v_reset)
                t = t_a
                I += aw[order[pa]]
                pa += 1
            elif t_o <= tqq:
                V, I, _ = lif_advance(V, I, t, t_o, ref_end, tau_mem, tau_syn, v_reset)
                t = t_o
                V = v_reset
                ref_end = t_o + t_ref if t_ref > 0.0 else -np.inf
                po += 1
            else:
                break
        Vq, _, _ = lif_advance(V, I, t, tqq, ref_end, tau_mem, tau_syn, v_reset)
        out[q] = Vq


@njit(parallel=True, cache=True)
def voltage_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, D: np.ndarray,
    s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray, R: np.ndarray, E: np.ndarray,
    has_rec: bool, spiking: bool, tau_mem: float, tau_syn: float, v_reset: float, t_ref: float,
    t_max: float, tq: np.ndarray,
) -> np.ndarray:
    """V of every neuron of a layer at sorted query times ``tq`` (s): array (B, n, len(tq))."""
    B = offsets.size - 1
    n = W.shape[0]
    out = np.empty((B, n, tq.size))
    for b in prange(B):
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        for j in range(n):
            _neuron_trace(
                j, times[lo:hi], units[lo:hi], W, D, s_times[slo:shi], s_units[slo:shi], R, E, has_rec, spiking,
                tau_mem, tau_syn, v_reset, t_ref, t_max, tq, out[b, j],
            )
    return out
