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
from numba import njit

from exactsnn.engine.cpu.backward import dense_backward_sample
from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.lif import lif_factors

__all__ = ["ff_delays_backward_batch", "modal_ok", "MODAL_EXPONENT_MAX", "MODAL_K_MAX"]

MODAL_EXPONENT_MAX = 600.0  # e^600 ~ 4e260: products of the modal factors stay finite
MODAL_K_MAX = 4.0  # |tau_syn/(tau_syn - tau_mem)| above this: direct evaluation (cancellation in c(h))
PAD = 3  # rows after a neuron's last stretch end (lam = 0): room for the cursor and its two look-aheads


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
def _stretch_rows(off: np.ndarray, evt: np.ndarray, stV: np.ndarray, stI: np.ndarray, n: int) -> tuple:
    """Per-neuron rows of stretches: neuron j's stretches end at rows ``base[j] .. base[j] + m_j - 1`` (its own
    events, with lam just below them), followed by ``PAD`` rows that end at +inf with lam = 0 (after the
    last event). Returns ``(base, end_time, lam_V, lam_I)``."""
    m = evt.size
    base = np.empty(n, np.int64)
    rows = m + PAD * n
    end_time = np.full(rows, np.inf)
    sV = np.zeros(rows)
    sI = np.zeros(rows)
    for j in range(n):
        base[j] = off[j] + PAD * j
        for c in range(off[j + 1] - off[j]):
            end_time[base[j] + c] = evt[off[j] + c]
            sV[base[j] + c] = stV[off[j] + c]
            sI[base[j] + c] = stI[off[j] + c]
    return base, end_time, sV, sI


@helper
def _advance(
    t: float, Dr: np.ndarray, r0: np.ndarray, nb1: np.ndarray, nb2: np.ndarray, nb3: np.ndarray,
    end_time: np.ndarray,
) -> bool:
    """Bring every neuron's cursor ``r0`` to the stretch holding time t (an event at t starts the next
    stretch) with the next three stretch ends ``nb1..nb3``; True if an arrival t + D[j] lies beyond two
    of them (then the caller searches per arrival)."""
    far = False
    for j in range(r0.size):
        if t >= nb1[j]:
            r = r0[j]
            while t >= end_time[r]:
                r += 1
            r0[j] = r
            nb1[j] = end_time[r]
            nb2[j] = end_time[r + 1]
            nb3[j] = end_time[r + 2]
        if t + Dr[j] >= nb3[j]:
            far = True
    return far


@njit(cache=True, _nrt=False, fastmath={"reassoc", "contract"})
def _arrivals_modal(
    t: float, ps: float, pm: float, Wr: np.ndarray, Dr: np.ndarray, Fs: np.ndarray, Fm: np.ndarray,
    r0: np.ndarray, nb1: np.ndarray, nb2: np.ndarray, coef: np.ndarray, gw: np.ndarray, gd: np.ndarray,
) -> float:
    """Pass 2 for one input event in modal form (``ps = e^{t/tau_syn}``, ``pm = e^{t/tau_mem}``); returns dL/dt.

    Every arrival lies in the stretch ``r0`` or one of the next two (the caller checked): the row is
    chosen by two comparisons, so the loop has no branch and vectorises. ``coef[r]`` = (lam_I s-mode,
    lam_I m-mode, x s-mode, x m-mode) of row r. Reassociation and contraction only let the compiler
    vectorise (a fixed order: results stay reproducible).
    """
    acc = 0.0
    for j in range(Wr.size):
        a = t + Dr[j]
        r = r0[j] + (a >= nb1[j]) + (a >= nb2[j])
        es = ps * Fs[j]
        em = pm * Fm[j]
        x = Wr[j] * (coef[r, 2] * es + coef[r, 3] * em)
        gw[j] += coef[r, 0] * es + coef[r, 1] * em
        gd[j] += x
        acc += x
    return acc


@helper
def _arrivals_search(
    t: float, ps: float, pm: float, Wr: np.ndarray, Dr: np.ndarray, Fs: np.ndarray, Fm: np.ndarray,
    r0: np.ndarray, end_time: np.ndarray, sV: np.ndarray, sI: np.ndarray, coef: np.ndarray, modal: bool,
    tau_mem: float, tau_syn: float, T: float, gw: np.ndarray, gd: np.ndarray,
) -> float:
    """Pass 2 for one input event, each arrival's stretch searched from ``r0``: arrivals far ahead, inputs
    within max D of T (arrivals after T are skipped) and the direct form (lif_factors per arrival)."""
    inv_s = 1.0 / tau_syn
    inv_m = 1.0 / tau_mem
    acc = 0.0
    for j in range(Wr.size):
        a = t + Dr[j]
        if a > T:
            continue
        r = r0[j]
        while a >= end_time[r]:
            r += 1
        if end_time[r] == np.inf:
            continue  # after the neuron's last own event lam = 0
        if modal:
            es = ps * Fs[j]
            em = pm * Fm[j]
            li = coef[r, 0] * es + coef[r, 1] * em
            x = Wr[j] * (coef[r, 2] * es + coef[r, 3] * em)
        else:
            a_m, cf, a_s = lif_factors(end_time[r] - a, tau_mem, tau_syn)
            li = cf * sV[r] + a_s * sI[r]
            x = Wr[j] * (li * inv_s - a_m * sV[r] * inv_m)
        gw[j] += li
        gd[j] += x
        acc += x
    return acc


@njit(cache=True)
def _modal_coefficients(end_time: np.ndarray, sV: np.ndarray, sI: np.ndarray, tau_mem: float, tau_syn: float):
    """(rows, 4) coefficients of :func:`_arrivals_modal` (global time reference 0; padding rows zero)."""
    inv_s = 1.0 / tau_syn
    inv_m = 1.0 / tau_mem
    k = tau_syn / (tau_syn - tau_mem)
    coef = np.zeros((end_time.size, 4))
    for r in range(end_time.size):
        if end_time[r] == np.inf:
            continue
        gs = math.exp(-end_time[r] * inv_s)
        gm = math.exp(-end_time[r] * inv_m)
        coef[r, 0] = (sI[r] + k * sV[r]) * gs
        coef[r, 1] = -k * sV[r] * gm
        coef[r, 2] = coef[r, 0] * inv_s
        coef[r, 3] = coef[r, 1] * inv_s - sV[r] * gm * inv_m
    return coef


@kernel
def ff_delays_backward_sample(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Dt: np.ndarray, Fs: np.ndarray, Fm: np.ndarray,
    modal: bool, Rt: np.ndarray, has_rec: bool, ts: np.ndarray, us: np.ndarray, I_spk: np.ndarray,
    I_ref: np.ndarray, down: np.ndarray, tau_mem: float, tau_syn: float, v_th: float, v_reset: float,
    t_ref: float, T: float, want_up: bool, gWt: np.ndarray, gDt: np.ndarray, gRt: np.ndarray, up: np.ndarray,
) -> None:
    """Reverse replay of one sample (see the module docstring); [pre, post] layouts, gradients added in place.

    ``Fs``, ``Fm``: e^{D/tau_syn}, e^{D/tau_mem} ([pre, post]) when ``modal``; ``up[e]`` (with ``want_up``)
    receives dL/dt of input event e. Pass 2 walks the input events in time order with one cursor per
    neuron (the stretch holding the current time): an arrival, at most max D later, almost always lies
    in that stretch or one of the next two, found by two comparisons without a branch.
    """
    n_pre, n = Wt.shape
    off, evt, ev_spike, ev_ref = _own_events(us, ts, n, t_ref, T)
    m = evt.size
    stV = np.zeros(m)
    stI = np.zeros(m)
    # pass 1: the shared-clock replay of the layer's own events (no inputs), recording lam below each event
    dense_backward_sample(tin[:0], uin[:0], Wt, Rt, has_rec, ts, us, I_spk, I_ref, down, np.full(n, tau_mem),
                          np.full(n, tau_syn), v_th, v_reset, t_ref, T, False, False, gWt, gRt, np.zeros((2, 0)),
                          up[:0], True, ev_spike, ev_ref, stV, stI)
    if m == 0:
        return  # a silent layer: lam = 0 everywhere, no arrival contributes
    base, end_time, sV, sI = _stretch_rows(off, evt, stV, stI, n)
    coef = _modal_coefficients(end_time, sV, sI, tau_mem, tau_syn) if modal else np.zeros((1, 4))
    r0 = base.copy()
    nb1 = np.empty(n)
    nb2 = np.empty(n)
    nb3 = np.empty(n)
    for j in range(n):
        nb1[j] = end_time[r0[j]]
        nb2[j] = end_time[r0[j] + 1]
        nb3[j] = end_time[r0[j] + 2]
    inv_s = 1.0 / tau_syn
    inv_m = 1.0 / tau_mem
    t_safe = T - Dt.max()  # inputs at or before this time arrive everywhere by T
    for e in range(tin.size):
        t = tin[e]
        if t > T:
            break
        i = uin[e]
        far = _advance(t, Dt[i], r0, nb1, nb2, nb3, end_time)
        ps = math.exp(t * inv_s) if modal else 0.0
        pm = math.exp(t * inv_m) if modal else 0.0
        if modal and not far and t <= t_safe:
            d = _arrivals_modal(t, ps, pm, Wt[i], Dt[i], Fs[i], Fm[i], r0, nb1, nb2, coef, gWt[i], gDt[i])
        else:
            d = _arrivals_search(t, ps, pm, Wt[i], Dt[i], Fs[i], Fm[i], r0, end_time, sV, sI, coef, modal,
                                 tau_mem, tau_syn, T, gWt[i], gDt[i])
        if want_up:
            up[e] += d


@threaded_driver
def ff_delays_backward_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, Wt: np.ndarray, Dt: np.ndarray,
    Fs: np.ndarray, Fm: np.ndarray, modal: bool, Rt: np.ndarray, has_rec: bool,
    s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray, I_spk: np.ndarray, I_ref: np.ndarray,
    down: np.ndarray, tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, T: float,
    want_up: bool, gWt: np.ndarray, gDt: np.ndarray, gRt: np.ndarray, up: np.ndarray,
) -> None:
    """:func:`ff_delays_backward_sample` over every sample (Python threads, :mod:`exactsnn.engine.cpu.threads`);
    gradients have a leading per-thread axis."""

    def work(b: int, t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        ff_delays_backward_sample(
            times[lo:hi], units[lo:hi], Wt, Dt, Fs, Fm, modal, Rt, has_rec, s_times[slo:shi], s_units[slo:shi],
            I_spk[slo:shi], I_ref[slo:shi], down[slo:shi], tau_mem, tau_syn, v_th, v_reset, t_ref, T, want_up,
            gWt[t], gDt[t], gRt[t], up[lo:hi],
        )

    for_each_sample(work, offsets.size - 1)
