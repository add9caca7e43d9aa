"""Exact membrane potential at query times, replayed from a layer's inputs and its recorded spikes.

The spike times are known from the forward pass, so no crossing search is needed: every neuron
integrates its merged, time-sorted arrival list in closed form, resets at its own spike times and
is held at v_reset during refractory windows. Queries at an event time see the state after the
event (right-continuous). Samples run in parallel on threads (:mod:`exactsnn.engine.cpu.threads`);
memory O(arrivals of one neuron) per thread plus the (B, n, n_query) result.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from exactsnn.engine.cpu.jit import kernel
from exactsnn.engine.cpu.maths import advance
from exactsnn.engine.cpu.sort import stable_argsort
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.lif import lif_advance


@njit(cache=True)
def _arrivals(
    j: int, tin: np.ndarray, uin: np.ndarray, W: np.ndarray, D: np.ndarray, ts: np.ndarray, us: np.ndarray,
    R: np.ndarray, E: np.ndarray, has_rec: bool, t_max: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Times and weights of every arrival at neuron j up to t_max, in time order (ties keep input order)."""
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
    order = stable_argsort(at[:k])
    return at[:k][order], aw[:k][order]


@njit(cache=True)
def _linear_neuron_trace(
    j: int, tin: np.ndarray, uin: np.ndarray, W: np.ndarray, D: np.ndarray,
    ts: np.ndarray, us: np.ndarray, R: np.ndarray, E: np.ndarray, has_rec: bool,
    A: np.ndarray, tau_w: float, tau_syn: float, a: float, b: float, v_reset: float, t_ref: float, t_max: float,
    tq: np.ndarray, out: np.ndarray,
) -> None:
    """:func:`_neuron_trace` for a linear 3-state neuron (adLIF): state (V, w, I), reset V = v_reset, w += b."""
    at, aw = _arrivals(j, tin, uin, W, D, ts, us, R, E, has_rec, t_max)
    k = at.size
    own = ts[us == j]
    x = np.zeros(3)
    Phi = np.empty((3, 3))
    s1 = np.empty((3, 3))
    s2 = np.empty((3, 3))
    xq = np.empty(3)
    no_cache = np.full(1, -1.0)
    t = 0.0
    ref_end = -np.inf
    pa = 0
    po = 0
    for q in range(tq.size):
        tqq = tq[q]
        while True:
            t_a = at[pa] if pa < k else np.inf
            t_o = own[po] if po < own.size else np.inf
            if t_a <= tqq and t_a <= t_o:
                advance(x, t, t_a, ref_end, A, tau_w, tau_syn, a, v_reset, Phi, s1, s2, no_cache, Phi, False)
                t = t_a
                x[2] += aw[pa]
                pa += 1
            elif t_o <= tqq:
                advance(x, t, t_o, ref_end, A, tau_w, tau_syn, a, v_reset, Phi, s1, s2, no_cache, Phi, False)
                t = t_o
                x[0] = v_reset
                x[1] += b
                ref_end = t_o + t_ref if t_ref > 0.0 else -np.inf
                po += 1
            else:
                break
        xq[:] = x
        advance(xq, t, tqq, ref_end, A, tau_w, tau_syn, a, v_reset, Phi, s1, s2, no_cache, Phi, False)
        out[q] = xq[0]


@threaded_driver
def linear_voltage_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, D: np.ndarray,
    s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray, R: np.ndarray, E: np.ndarray,
    has_rec: bool, A: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, bv: np.ndarray,
    v_reset: float, t_ref: float, t_max: float, tq: np.ndarray,
) -> np.ndarray:
    """:func:`voltage_batch` for a layer of linear neurons with per-neuron A (n, 3, 3), tau_w, tau_syn, a, b."""
    out = np.empty((offsets.size - 1, W.shape[0], tq.size))

    def work(b: int, _t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        _linear_voltage_sample(times[lo:hi], units[lo:hi], W, D, s_times[slo:shi], s_units[slo:shi], R, E, has_rec,
                               A, tau_w, tau_syn, av, bv, v_reset, t_ref, t_max, tq, out[b])

    for_each_sample(work, offsets.size - 1)
    return out


@kernel
def _linear_voltage_sample(
    tin: np.ndarray, uin: np.ndarray, W: np.ndarray, D: np.ndarray, ts: np.ndarray, us: np.ndarray, R: np.ndarray,
    E: np.ndarray, has_rec: bool, A: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray,
    bv: np.ndarray, v_reset: float, t_ref: float, t_max: float, tq: np.ndarray, out: np.ndarray,
) -> None:
    """One sample of :func:`linear_voltage_batch`: out (n, len(tq))."""
    for j in range(W.shape[0]):
        _linear_neuron_trace(j, tin, uin, W, D, ts, us, R, E, has_rec, A[j], tau_w[j], tau_syn[j], av[j], bv[j],
                             v_reset, t_ref, t_max, tq, out[j])


@njit(cache=True)
def _neuron_trace(
    j: int, tin: np.ndarray, uin: np.ndarray, W: np.ndarray, D: np.ndarray,
    ts: np.ndarray, us: np.ndarray, R: np.ndarray, E: np.ndarray, has_rec: bool, spiking: bool,
    tau_mem: float, tau_syn: float, v_reset: float, t_ref: float, t_max: float, tq: np.ndarray, out: np.ndarray,
) -> None:
    at, aw = _arrivals(j, tin, uin, W, D, ts, us, R, E, has_rec, t_max)
    k = at.size
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
            t_a = at[pa] if pa < k else np.inf
            t_o = own[po] if po < n_own else np.inf
            if t_a <= tqq and t_a <= t_o:
                V, I, _ = lif_advance(V, I, t, t_a, ref_end, tau_mem, tau_syn, v_reset)
                t = t_a
                I += aw[pa]
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


@threaded_driver
def voltage_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, D: np.ndarray,
    s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray, R: np.ndarray, E: np.ndarray,
    has_rec: bool, spiking: bool, tau_mem: np.ndarray, tau_syn: np.ndarray, v_reset: float, t_ref: float,
    t_max: float, tq: np.ndarray,
) -> np.ndarray:
    """V of every neuron of a layer at sorted query times ``tq`` (s): array (B, n, len(tq)).

    ``tau_mem``, ``tau_syn``: (n,) per-neuron time constants (s).
    """
    out = np.empty((offsets.size - 1, W.shape[0], tq.size))

    def work(b: int, _t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        _voltage_sample(times[lo:hi], units[lo:hi], W, D, s_times[slo:shi], s_units[slo:shi], R, E, has_rec, spiking,
                        tau_mem, tau_syn, v_reset, t_ref, t_max, tq, out[b])

    for_each_sample(work, offsets.size - 1)
    return out


@kernel
def _voltage_sample(
    tin: np.ndarray, uin: np.ndarray, W: np.ndarray, D: np.ndarray, ts: np.ndarray, us: np.ndarray, R: np.ndarray,
    E: np.ndarray, has_rec: bool, spiking: bool, tau_mem: np.ndarray, tau_syn: np.ndarray, v_reset: float,
    t_ref: float, t_max: float, tq: np.ndarray, out: np.ndarray,
) -> None:
    """One sample of :func:`voltage_batch`: out (n, len(tq))."""
    for j in range(W.shape[0]):
        _neuron_trace(j, tin, uin, W, D, ts, us, R, E, has_rec, spiking, tau_mem[j], tau_syn[j], v_reset, t_ref, t_max,
                      tq, out[j])
