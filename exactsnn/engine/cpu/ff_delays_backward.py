"""EventProp reverse replay of a LIF layer whose delays are on the feedforward synapses only.

Why a kernel of its own. With per-synapse feedforward delays every input spike reaches each neuron
at its own time, so the general delay kernel (:func:`exactsnn.engine.cpu.backward.queue_backward_sample`)
lists and sorts every (input spike x neuron) arrival: O(arrivals log arrivals) time and memory. But a
feedforward arrival never changes the adjoint (lam is continuous at arrivals, module docstring of
:mod:`exactsnn.engine.cpu.backward`, same convention lam = dL/d(V, I)); lam_j jumps only at neuron
j's own spikes and refractory ends. The replay therefore splits in two passes:

1. **Own events** (spikes and refractory ends, in reverse, zero-delay recurrence included): exactly
   the shared-clock replay of the delay-free kernel without input events. Every neuron's adjoint
   is carried back together (the recurrent term of a spike's jump needs all of them at t_k); the
   adjoint just below each own event of neuron j, lam_j(tau1^-), is recorded. Between two own events
   of j (a *stretch* [tau0, tau1), an arrival at an event time belonging to the later stretch, as
   the forward order at equal times says) lam_j is free::

       lam_V(a) = lam_V1 e^{-(tau1 - a)/tau_mem}
       lam_I(a) = lam_I1 e^{-(tau1 - a)/tau_syn} + lam_V1 c(tau1 - a),   c(h) = k (e^{-h/tau_syn} - e^{-h/tau_mem})

   with k = tau_syn/(tau_syn - tau_mem) (lif_factors' coupling). After the last own event lam = 0.
2. **Arrivals in any order**: arrival of input event e (unit i, time t) at neuron j at a = t + D[j, i]
   adds ``dL/dW[j, i] += lam_I,j(a)`` and ``w x`` to dL/dD[j, i] and to dL/dt_e, with
   ``x = lam_I/tau_syn - lam_V/tau_mem`` at (j, a). The stretch holding a is found by a cursor per
   synapse (the arrivals of one synapse come in time order), so nothing is listed or sorted.

Modal (fast) form of pass 2: e^{-(tau1 - a)/tau} = e^{-tau1/tau} e^{t/tau} e^{D/tau}, so with per-stretch
coefficients (lam_I1 + k lam_V1) e^{-tau1/tau_syn}, -k lam_V1 e^{-tau1/tau_mem} and lam_V1 e^{-tau1/tau_mem},
per-event factors e^{t/tau} and per-synapse factors e^{D/tau} (computed once per call), an arrival costs
a few multiply-adds and no exponential. The global reference costs ~(T/tau) ulps of relative accuracy
per term (1e-14 for T = 1 s, tau = 5 ms: the size of the rounding that the delay-free replay
accumulates over its thousands of decay steps). It is used when the exponents stay in range,
(T + max D)/min(tau) <= ``MODAL_EXPONENT_MAX``, and the modes are well separated
(|k| <= ``MODAL_K_MAX``, i.e. tau_mem and tau_syn not close, where c(h) would be a difference of
nearly equal terms); otherwise each arrival evaluates lif_factors(tau1 - a) directly (exact, slower).
"""

from __future__ import annotations

import math

import numpy as np
from numba import get_thread_id, njit, prange

from exactsnn.engine.cpu.backward import _collect, _decay, _dot, _spike_jump
from exactsnn.engine.cpu.jit import helper
from exactsnn.neurons.lif import lif_factors

__all__ = ["ff_delays_backward_batch", "modal_ok", "MODAL_EXPONENT_MAX", "MODAL_K_MAX"]

MODAL_EXPONENT_MAX = 600.0  # e^600 ~ 4e260: products of the modal factors stay finite
MODAL_K_MAX = 4.0  # |tau_syn/(tau_syn - tau_mem)| above this: direct evaluation (cancellation in c(h))


def modal_ok(T: float, d_max: float, tau_mem: float, tau_syn: float, force_direct: bool = False) -> bool:
    """Whether pass 2 may use the modal form (see the module docstring)."""
    if force_direct or tau_mem == tau_syn:
        return False
    k = tau_syn / (tau_syn - tau_mem)
    return abs(k) <= MODAL_K_MAX and (T + d_max) / min(tau_mem, tau_syn) <= MODAL_EXPONENT_MAX


@njit(cache=True)
def _own_events(us: np.ndarray, ts: np.ndarray, n: int, t_ref: float, T: float) -> tuple:
    """Per-neuron own events (CSR, forward order): offsets (n+1), times, and each spike's event indices.

    Returns ``(off, evt, ev_spike, ev_ref)``: neuron j's events are ``evt[off[j]:off[j+1]]``; spike s is
    event ``ev_spike[s]`` and its refractory end (when t_s + t_ref < T) event ``ev_ref[s]`` (else -1).
    """
    n_s = ts.size
    cnt = np.zeros(n + 1, np.int64)
    for s in range(n_s):
        cnt[us[s] + 1] += 1
        if t_ref > 0.0 and ts[s] + t_ref < T:
            cnt[us[s] + 1] += 1
    off = np.cumsum(cnt)
    fill = off[:-1].copy()
    evt = np.empty(off[n])
    ev_spike = np.empty(n_s, np.int64)
    ev_ref = np.full(n_s, -1, np.int64)
    for s in range(n_s):  # spikes are in time order, and a neuron's window ends before its next spike
        j = us[s]
        evt[fill[j]] = ts[s]
        ev_spike[s] = fill[j]
        fill[j] += 1
        if t_ref > 0.0 and ts[s] + t_ref < T:
            evt[fill[j]] = ts[s] + t_ref
            ev_ref[s] = fill[j]
            fill[j] += 1
    return off, evt, ev_spike, ev_ref


@njit(cache=True)
def _own_replay(
    Rt: np.ndarray, has_rec: bool, ts: np.ndarray, us: np.ndarray, I_spk: np.ndarray, I_ref: np.ndarray,
    down: np.ndarray, tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, T: float,
    gRt: np.ndarray, n: int, ev_spike: np.ndarray, ev_ref: np.ndarray, stV: np.ndarray, stI: np.ndarray,
) -> None:
    """Pass 1: the shared-clock replay over the layer's own events; lam just below each event -> stV, stI.

    Same event order and arithmetic as ``dense_backward_sample`` with no input events.
    """
    n_s = ts.size
    i_s = n_s - 1
    i_r = -1
    if t_ref > 0.0:
        for s in range(n_s):
            if ts[s] + t_ref < T:
                i_r = s
    lam_V = np.zeros(n)
    lam_I = np.zeros(n)
    stored = np.zeros(n_s)
    inv_s = 1.0 / tau_syn
    inv_m = 1.0 / tau_mem
    t = T
    while i_r >= 0 or i_s >= 0:
        te = -np.inf
        if i_r >= 0:
            te = ts[i_r] + t_ref
        if i_s >= 0 and ts[i_s] > te:
            te = ts[i_s]
        r0 = i_r
        while r0 >= 0 and ts[r0] + t_ref == te:
            r0 -= 1
        s0 = i_s
        while s0 >= 0 and ts[s0] == te:
            s0 -= 1
        if te < t:
            a_m, cf, a_s = lif_factors(t - te, tau_mem, tau_syn)
            _decay(lam_V, lam_I, a_m, cf, a_s)
            t = te
        for s in range(r0 + 1, i_r + 1):
            k = us[s]
            stored[s] = (I_ref[s] - v_reset) * lam_V[k]
            lam_V[k] = 0.0
            stV[ev_ref[s]] = 0.0
            stI[ev_ref[s]] = lam_I[k]
        for s in range(s0 + 1, i_s + 1):
            k = us[s]
            d = down[s]
            if has_rec:
                _collect(lam_I, gRt[k])
                d += _dot(Rt[k], lam_I, lam_V, inv_s, inv_m)
            lam_V[k] = _spike_jump(lam_V[k], s, I_spk, I_ref, stored, d, t_ref, tau_mem, v_th, v_reset)
            stV[ev_spike[s]] = lam_V[k]
            stI[ev_spike[s]] = lam_I[k]
        i_r, i_s = r0, s0


@helper
def _reset_cursors(off: np.ndarray, evt: np.ndarray, q: np.ndarray, nb: np.ndarray) -> None:
    """Cursors of one presynaptic unit's synapses before its first arrival: every neuron's first stretch.

    ``q[j]``: the row (own event) ending the stretch that holds the synapse's next arrival, or the
    zero row ``evt.size`` after the neuron's last event; ``nb[j]``: the time that stretch ends (inf after).
    """
    m = evt.size
    for j in range(q.size):
        if off[j + 1] > off[j]:
            q[j] = off[j]
            nb[j] = evt[off[j]]
        else:
            q[j] = m
            nb[j] = np.inf


@helper
def _advance_cursors(
    t: float, Dr: np.ndarray, q: np.ndarray, nb: np.ndarray, off: np.ndarray, evt: np.ndarray
) -> None:
    """Move each synapse's cursor past the own events at or before its arrival t + D (an arrival at an
    event time belongs to the stretch that starts there)."""
    for j in range(Dr.size):
        a = t + Dr[j]
        if a >= nb[j]:
            c = q[j]
            end = off[j + 1]
            while c < end and evt[c] <= a:
                c += 1
            if c < end:
                q[j] = c
                nb[j] = evt[c]
            else:
                q[j] = evt.size
                nb[j] = np.inf


@helper
def _arrivals_direct(
    t: float, Wr: np.ndarray, Dr: np.ndarray, q: np.ndarray, evt: np.ndarray, stV: np.ndarray, stI: np.ndarray,
    tau_mem: float, tau_syn: float, T: float, gw: np.ndarray, gd: np.ndarray,
) -> float:
    """Pass 2 for one input event (rows of its unit, [pre, post]), lif_factors per arrival; returns dL/dt."""
    inv_s = 1.0 / tau_syn
    inv_m = 1.0 / tau_mem
    m = evt.size
    acc = 0.0
    for j in range(Wr.size):
        a = t + Dr[j]
        r = q[j]
        if a > T or r == m:
            continue  # never arrives, or arrives after the neuron's last event (lam = 0 there)
        a_m, cf, a_s = lif_factors(evt[r] - a, tau_mem, tau_syn)
        lv = a_m * stV[r]
        li = cf * stV[r] + a_s * stI[r]
        x = Wr[j] * (li * inv_s - lv * inv_m)
        gw[j] += li
        gd[j] += x
        acc += x
    return acc


@helper
def _advance_modal(
    t: float, Dr: np.ndarray, q: np.ndarray, nb: np.ndarray, off: np.ndarray, evt: np.ndarray, coef: np.ndarray,
    C: np.ndarray,
) -> None:
    """:func:`_advance_cursors`, also copying the new stretch's modal coefficients into ``C`` (4, n)."""
    for j in range(Dr.size):
        a = t + Dr[j]
        if a >= nb[j]:
            c = q[j]
            end = off[j + 1]
            while c < end and evt[c] <= a:
                c += 1
            if c < end:
                q[j] = c
                nb[j] = evt[c]
            else:
                q[j] = evt.size
                nb[j] = np.inf
            for k in range(4):
                C[k, j] = coef[q[j], k]


@njit(cache=True, _nrt=False, fastmath={"reassoc", "contract"})
def _arrivals_modal(
    ps: float, pm: float, Wr: np.ndarray, Fs: np.ndarray, Fm: np.ndarray, C: np.ndarray, gw: np.ndarray,
    gd: np.ndarray,
) -> float:
    """Pass 2 for one input event in modal form (``ps = e^{t/tau_syn}``, ``pm = e^{t/tau_mem}``); returns dL/dt.

    ``C[:, j]`` = (lam_I s-mode, lam_I m-mode, x s-mode, x m-mode) of the stretch of neuron j that holds
    this arrival (zero after the neuron's last event): contiguous, branch-free, so the loop vectorises.
    Reassociation and contraction only let the compiler vectorise (fixed order, reproducible results).
    """
    acc = 0.0
    for j in range(Wr.size):
        es = ps * Fs[j]
        em = pm * Fm[j]
        x = Wr[j] * (C[2, j] * es + C[3, j] * em)
        gw[j] += C[0, j] * es + C[1, j] * em
        gd[j] += x
        acc += x
    return acc


@helper
def _arrivals_modal_late(
    t: float, ps: float, pm: float, Wr: np.ndarray, Dr: np.ndarray, Fs: np.ndarray, Fm: np.ndarray, C: np.ndarray,
    T: float, gw: np.ndarray, gd: np.ndarray,
) -> float:
    """:func:`_arrivals_modal` for an input within max D of T: arrivals after T are skipped."""
    acc = 0.0
    for j in range(Wr.size):
        if t + Dr[j] > T:
            continue
        es = ps * Fs[j]
        em = pm * Fm[j]
        x = Wr[j] * (C[2, j] * es + C[3, j] * em)
        gw[j] += C[0, j] * es + C[1, j] * em
        gd[j] += x
        acc += x
    return acc


@njit(cache=True)
def _modal_coefficients(evt: np.ndarray, stV: np.ndarray, stI: np.ndarray, tau_mem: float, tau_syn: float):
    """(m + 1, 4) rows of :func:`_arrivals_modal` (global time reference 0; the last row zero)."""
    inv_s = 1.0 / tau_syn
    inv_m = 1.0 / tau_mem
    k = tau_syn / (tau_syn - tau_mem)
    m = evt.size
    coef = np.zeros((m + 1, 4))
    for r in range(m):
        gs = math.exp(-evt[r] * inv_s)
        gm = math.exp(-evt[r] * inv_m)
        coef[r, 0] = (stI[r] + k * stV[r]) * gs
        coef[r, 1] = -k * stV[r] * gm
        coef[r, 2] = coef[r, 0] * inv_s
        coef[r, 3] = coef[r, 1] * inv_s - stV[r] * gm * inv_m
    return coef


@njit(cache=True)
def ff_delays_backward_sample(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Dt: np.ndarray, Fs: np.ndarray, Fm: np.ndarray,
    modal: bool, Rt: np.ndarray, has_rec: bool, ts: np.ndarray, us: np.ndarray, I_spk: np.ndarray,
    I_ref: np.ndarray, down: np.ndarray, tau_mem: float, tau_syn: float, v_th: float, v_reset: float,
    t_ref: float, T: float, want_up: bool, gWt: np.ndarray, gDt: np.ndarray, gRt: np.ndarray, up: np.ndarray,
) -> None:
    """Reverse replay of one sample (see the module docstring); [pre, post] layouts, gradients added in place.

    ``Fs``, ``Fm``: e^{D/tau_syn}, e^{D/tau_mem} ([pre, post]) when ``modal``; ``up[e]`` (with ``want_up``)
    receives dL/dt of input event e. Pass 2 goes unit by unit (each unit's events in time order), so
    the synapse cursors and the unit's weight rows stay in the first-level cache.
    """
    n_pre, n = Wt.shape
    off, evt, ev_spike, ev_ref = _own_events(us, ts, n, t_ref, T)
    m = evt.size
    stV = np.zeros(m)
    stI = np.zeros(m)
    _own_replay(Rt, has_rec, ts, us, I_spk, I_ref, down, tau_mem, tau_syn, v_th, v_reset, t_ref, T, gRt, n,
                ev_spike, ev_ref, stV, stI)
    if m == 0:
        return  # a silent layer: lam = 0 everywhere, no arrival contributes
    coef = _modal_coefficients(evt, stV, stI, tau_mem, tau_syn) if modal else np.zeros((1, 4))
    # input events grouped by unit (stable: time order within a unit)
    n_in = np.searchsorted(tin, T, side="right")
    first = np.zeros(n_pre + 1, np.int64)
    for e in range(n_in):
        first[uin[e] + 1] += 1
    first = np.cumsum(first)
    fill = first[:-1].copy()
    by_unit = np.empty(n_in, np.int64)
    for e in range(n_in):
        by_unit[fill[uin[e]]] = e
        fill[uin[e]] += 1
    q = np.empty(n, np.int64)
    nb = np.empty(n)
    C = np.zeros((4, n))
    inv_s = 1.0 / tau_syn
    inv_m = 1.0 / tau_mem
    t_safe = T - Dt.max()  # inputs at or before this time arrive everywhere by T
    for i in range(n_pre):
        if first[i + 1] == first[i]:
            continue
        _reset_cursors(off, evt, q, nb)
        if modal:
            for j in range(n):
                for k in range(4):
                    C[k, j] = coef[q[j], k]
        for p in range(first[i], first[i + 1]):
            e = by_unit[p]
            t = tin[e]
            if modal and t <= t_safe:
                _advance_modal(t, Dt[i], q, nb, off, evt, coef, C)
                d = _arrivals_modal(math.exp(t * inv_s), math.exp(t * inv_m), Wt[i], Fs[i], Fm[i], C, gWt[i], gDt[i])
            elif modal:  # near T: some arrivals fall after the window
                _advance_modal(t, Dt[i], q, nb, off, evt, coef, C)
                d = _arrivals_modal_late(t, math.exp(t * inv_s), math.exp(t * inv_m), Wt[i], Dt[i], Fs[i], Fm[i], C,
                                         T, gWt[i], gDt[i])
            else:
                _advance_cursors(t, Dt[i], q, nb, off, evt)
                d = _arrivals_direct(t, Wt[i], Dt[i], q, evt, stV, stI, tau_mem, tau_syn, T, gWt[i], gDt[i])
            if want_up:
                up[e] += d


@njit(parallel=True, cache=True)
def ff_delays_backward_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, Wt: np.ndarray, Dt: np.ndarray,
    Fs: np.ndarray, Fm: np.ndarray, modal: bool, Rt: np.ndarray, has_rec: bool,
    s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray, I_spk: np.ndarray, I_ref: np.ndarray,
    down: np.ndarray, tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, T: float,
    want_up: bool, gWt: np.ndarray, gDt: np.ndarray, gRt: np.ndarray, up: np.ndarray,
) -> None:
    """:func:`ff_delays_backward_sample` over every sample (prange); gradients have a leading per-thread axis."""
    for b in prange(offsets.size - 1):
        tid = get_thread_id()
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        ff_delays_backward_sample(
            times[lo:hi], units[lo:hi], Wt, Dt, Fs, Fm, modal, Rt, has_rec, s_times[slo:shi], s_units[slo:shi],
            I_spk[slo:shi], I_ref[slo:shi], down[slo:shi], tau_mem, tau_syn, v_th, v_reset, t_ref, T, want_up,
            gWt[tid], gDt[tid], gRt[tid], up[lo:hi],
        )
