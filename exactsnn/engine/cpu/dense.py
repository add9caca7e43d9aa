"""Forward kernel for layers without per-synapse delays (feedforward or recurrent).

Why this scheme. Without delays an input spike of unit i reaches every neuron of the layer at the
same instant, so the whole layer can live on one shared clock: all neurons are brought from the
previous event time t to the next event time t' together. For LIF the propagation over a stretch
of length h is linear with factors shared by every neuron (a_m = e^{-h/tau_mem}, c(h),
a_s = e^{-h/tau_syn}), so an input event costs one fused, branch-light pass over n neurons
(V = a_m V + c I; I = a_s I + W[:, i]) with the weights laid out contiguously per input unit.

Exactness is kept by a conservative bound (see :mod:`exactsnn.neurons.lif`): without further
input V(s) <= max(V0, I0, 0), so only neurons with V >= v_th or I >= v_th (the candidates, flagged
in the same pass) can spike before the next event. For each candidate a cheaper bound
(V <= V0 + max(I0 - V0, 0) h / tau_mem while V rises) and the end value screen the interval; the
few that remain get the exact first-crossing search. The earliest crossing in (t, t'] becomes a
spike: the layer is brought to it, the neuron is reset, its recurrent row is added (zero delay),
and the search repeats. Refractory neurons (V held at v_reset) sit in a small list and are patched
after each shared pass; when their window closes inside a stretch their V is recomputed from
v_reset at the exact end time.

Cost per input event is O(n) vectorisable work plus O(candidates) scalar work; memory is the
layer state plus the spike record (time, unit, I at the spike, I at the end of refractoriness).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from exactsnn.neurons.lif import lif_coupling, lif_next_spike, lif_voltage


@njit(cache=True)
def _patch_refractory(
    I_old: np.ndarray, ref_list: np.ndarray, n_ref: int, ref_end: np.ndarray,
    ref_spike: np.ndarray, vfix: np.ndarray, t0: float, t1: float,
    tau_mem: float, tau_syn: float, v_reset: float, out_r: np.ndarray,
) -> None:
    """Compute, before the shared pass, the true V at t1 of every refractory neuron (into vfix)."""
    for r in range(n_ref):
        j = ref_list[r]
        te = ref_end[j]
        if te > t1:
            vfix[r] = v_reset
        else:
            I_end = I_old[j] * math.exp(-(te - t0) / tau_syn)
            out_r[ref_spike[j]] = I_end
            vfix[r] = lif_voltage(v_reset, I_end, t1 - te, tau_mem, tau_syn)


@njit(cache=True)
def _apply_refractory(
    V: np.ndarray, I: np.ndarray, ref_list: np.ndarray, n_ref: int, ref_end: np.ndarray, vfix: np.ndarray,
    t1: float, v_th: float, cand: np.ndarray, n_cand: int,
) -> tuple[int, int]:
    """Write the patched voltages, drop closed windows; returns (n_ref, n_cand)."""
    r = 0
    for k in range(n_ref):
        j = ref_list[k]
        V[j] = vfix[k]
        if ref_end[j] > t1:
            ref_list[r] = j
            r += 1
        elif V[j] >= v_th and I[j] < v_th and n_cand < cand.size:
            cand[n_cand] = j  # not flagged by the shared pass, which saw the clamped value
            n_cand += 1
    return r, n_cand


@njit(cache=True)
def dense_sample(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> int:
    """Simulate one sample of one delay-free layer. Returns the spike count, or -1 on overflow.

    ``Wt``: (n_pre, n) transposed feedforward weights; ``Rt``: (n, n) transposed recurrent weights.
    """
    n = Wt.shape[1]
    cap = out_t.size
    V = np.zeros(n)
    I = np.zeros(n)
    I_old = np.zeros(n)
    ref_end = np.full(n, -np.inf)
    ref_list = np.empty(n, np.int64)
    ref_spike = np.zeros(n, np.int64)
    vfix = np.empty(n)
    cand = np.empty(2 * n + 2, np.int64)
    n_ref = 0
    n_cand = 0
    every = v_th <= 0.0  # the bound needs v_th > 0; otherwise search every neuron
    n_ev = np.searchsorted(tin, t_max, side="right")
    count = 0
    t = 0.0
    ev = 0
    while True:
        t_next = tin[ev] if ev < n_ev else t_max
        h = t_next - t
        aV = math.exp(-h / tau_mem)
        cI = lif_coupling(h, tau_mem, tau_syn)
        # ---- spikes in (t, t_next]
        while True:
            best = math.inf
            bj = -1
            m = n if every else n_cand
            for k in range(m):
                j = k if every else cand[k]
                v0 = V[j]
                i0 = I[j]
                if ref_end[j] <= t:
                    # cheap screens (exact bounds), then the exact search
                    v_end = aV * v0 + cI * i0
                    if v_end < v_th:
                        if not (i0 > v0 and v0 + (max(i0, 0.0) - v0) * (h / tau_mem) >= v_th) and v0 < v_th:
                            continue
                ts = lif_next_spike(v0, i0, t, t_next, ref_end[j], tau_mem, tau_syn, v_th, v_reset)
                if ts >= 0.0 and ts < best:
                    best = ts
                    bj = j
            if bj < 0:
                break
            # bring the layer to the spike
            s = best - t
            a2 = math.exp(-s / tau_mem)
            c2 = lif_coupling(s, tau_mem, tau_syn)
            d2 = math.exp(-s / tau_syn)
            if n_ref > 0:
                I_old[:] = I
                _patch_refractory(I_old, ref_list, n_ref, ref_end, ref_spike, vfix, t, best,
                                  tau_mem, tau_syn, v_reset, out_r)
            for j in range(n):
                V[j] = a2 * V[j] + c2 * I[j]
                I[j] = d2 * I[j]
            if n_ref > 0:
                n_ref, n_cand = _apply_refractory(V, I, ref_list, n_ref, ref_end, vfix, best, v_th, cand, n_cand)
            t = best
            h = t_next - t
            aV = math.exp(-h / tau_mem)
            cI = lif_coupling(h, tau_mem, tau_syn)
            if count >= cap:
                return -1
            out_t[count] = t
            out_u[count] = bj
            out_i[count] = I[bj]
            out_r[count] = math.nan
            V[bj] = v_reset
            if t_ref > 0.0:
                ref_end[bj] = t + t_ref
                ref_spike[bj] = count
                ref_list[n_ref] = bj
                n_ref += 1
            count += 1
            if has_rec:
                # zero-delay recurrent input; the candidate set can only grow through it
                row = Rt[bj]
                n_cand = 0
                for j in range(n):
                    I[j] += row[j]
                    cand[n_cand] = j
                    n_cand += (I[j] >= v_th) | (V[j] >= v_th)
        if ev >= n_ev:
            break
        # ---- bring the layer to the next input time and apply every input at that time
        if n_ref > 0:
            I_old[:] = I
            _patch_refractory(I_old, ref_list, n_ref, ref_end, ref_spike, vfix, t, t_next,
                              tau_mem, tau_syn, v_reset, out_r)
        aI = math.exp(-h / tau_syn)
        row = Wt[uin[ev]]
        ev += 1
        n_cand = 0
        for j in range(n):
            v = aV * V[j] + cI * I[j]
            i = aI * I[j] + row[j]
            V[j] = v
            I[j] = i
            cand[n_cand] = j
            n_cand += (i >= v_th) | (v >= v_th)
        while ev < n_ev and tin[ev] == t_next:
            row = Wt[uin[ev]]
            ev += 1
            n_cand = 0
            for j in range(n):
                i = I[j] + row[j]
                I[j] = i
                cand[n_cand] = j
                n_cand += (i >= v_th) | (V[j] >= v_th)
        if n_ref > 0:
            n_ref, n_cand = _apply_refractory(V, I, ref_list, n_ref, ref_end, vfix, t_next, v_th, cand, n_cand)
        t = t_next
    # refractory windows that close by t_max still need their end current
    if n_ref > 0 and t < t_max:
        I_old[:] = I
        _patch_refractory(I_old, ref_list, n_ref, ref_end, ref_spike, vfix, t, t_max,
                          tau_mem, tau_syn, v_reset, out_r)
    return count


@njit(parallel=True, cache=True)
def run_dense_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray, counts: np.ndarray,
) -> None:
    """:func:`dense_sample` over every sample of a CSR batch, in parallel; rows of out_* per sample."""
    for b in prange(offsets.size - 1):
        lo = offsets[b]
        hi = offsets[b + 1]
        counts[b] = dense_sample(
            times[lo:hi], units[lo:hi], Wt, Rt, has_rec, tau_mem, tau_syn, v_th, v_reset, t_ref, t_max,
            out_t[b], out_u[b], out_i[b], out_r[b],
        )
