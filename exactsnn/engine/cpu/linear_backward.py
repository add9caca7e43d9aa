"""EventProp reverse replay of a layer of linear 3-state neurons (adLIF; LIF with learned taus).

The maths (adjoint flow, the jump at a spike with and without a refractory window, the neuron
parameter integrals) is derived in :mod:`exactsnn.neurons.adlif`; this module only schedules it.

Per sample: (1) every event of the layer is listed (feedforward and recurrent arrivals, zero
weights included since their gradient is not zero, refractory ends, spikes) and sorted in the
forward order (at equal times: spikes, window ends, feedforward, then recurrent arrivals); (2) a
forward replay with the known spike times (no crossing search) stores each neuron's state just
before each of its events; (3) the events are replayed in reverse with lazy per-neuron adjoints
lam = (lam_V, lam_w, lam_I) = dL/dx, each brought back over the stretch since the neuron's previous
(later) event by expm(A^T D) (:func:`exactsnn.neurons.linear.flow_adjoint`: its Taylor series on the
short stretches between arrivals), with the stretch's parameter integral Q = int lam x^T dt taken from
one structured Van Loan exponential (:func:`exactsnn.neurons.linear.lam_x_integral`) when neuron
parameters are learned. The events are gathered into forward order once, so that both replays walk
them in order (through the sort permutation every array read was a cache miss). Memory per event: the
state just before it (3 floats) and its listing (17 bytes: time, kind, two indices).

Used for layers with recurrent delays; a delay-free layer runs on the shared-clock replay of
:mod:`exactsnn.engine.cpu.linear_dense_backward` and a layer with feedforward delays only on the windowed replay of
:mod:`exactsnn.engine.cpu.linear_ff_windows`, which share the jump maths below (:func:`window_end_term`,
:func:`spike_jump`); the tests compare both with this one (``exactsnn.grad.linear_arrival_replay``).
"""

from __future__ import annotations

import math

import numpy as np

from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.maths import advance, flow_adjoint, lam_x_integral
from exactsnn.engine.cpu.sort import stable_argsort
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver

_SPIKE = 0
_REF = 1
_FF = 2
_REC = 3

# columns of the neuron-parameter gradient array
G_TAU_MEM, G_TAU_W, G_TAU_SYN, G_A, G_B = 0, 1, 2, 3, 4


@helper
def window_end_term(lam_V: float, I_e: float, w_e: float, v_reset: float, tau_mem: float) -> float:
    """S of a spike whose refractory window ends at t_e < T: lam_V(t_e^+) Vdot(t_e^+) (state (v_reset, w_e, I_e))."""
    return lam_V * (I_e - w_e - v_reset) / tau_mem


@helper
def spike_jump(
    lam_V: float, lam_w: float, I: float, w_m: float, stored: float, t_ref: float, down: float, rec_down: float,
    tau_mem: float, tau_w: float, a: float, b: float, v_th: float, v_reset: float,
) -> float:
    """lam_V(t_k^-) of a spike with state (v_th, w_m, I) just before it, from lam(t_k^+): ``stored`` is S of its
    window end (t_ref > 0), ``down + rec_down`` its downstream dL/dt_k (lam_w, lam_I are continuous)."""
    if t_ref > 0.0:
        S = stored
    else:
        S = lam_V * (I - w_m - b - v_reset) / tau_mem
    dldt = -S + lam_w * (a * (v_th - v_reset) + b) / tau_w + down + rec_down
    return -dldt / ((I - w_m - v_th) / tau_mem)


@kernel
def _forward_order(et: np.ndarray, ek: np.ndarray, n_head: int, m_ff: int, delays: bool) -> np.ndarray:
    """Indices of the events in forward order: by time, ties by position (spikes, window ends, feedforward,
    recurrent as listed). The events are listed as [spikes and window ends | feedforward | recurrent].

    Without delays the feedforward block is already in time order (inputs are sorted), so only the other
    events are sorted and merged in: O(m) instead of a sort of every (input, neuron) arrival.
    """
    m = et.size
    if delays:
        return stable_argsort(et)
    n_other = m - m_ff
    other = np.empty(n_other, np.int64)
    for q in range(n_head):
        other[q] = q
    for q in range(n_head + m_ff, m):
        other[q - m_ff] = q
    other = other[stable_argsort(et[other])]
    order = np.empty(m, np.int64)
    a = 0
    f = n_head
    f_end = n_head + m_ff
    for q in range(m):
        take_other = False
        if a < n_other:
            o = other[a]
            take_other = f >= f_end or et[o] < et[f] or (et[o] == et[f] and ek[o] < _FF)
        if take_other:
            order[q] = other[a]
            a += 1
        else:
            order[q] = f
            f += 1
    return order


@kernel
def linear_backward_sample(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Dt: np.ndarray, Rt: np.ndarray, Et: np.ndarray, has_rec: bool,
    delays: bool, ts_: np.ndarray, us_: np.ndarray, down: np.ndarray, A: np.ndarray, tau_mem: np.ndarray,
    tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, bv: np.ndarray, uniform: bool, v_th: float, v_reset: float,
    t_ref: float, T: float, want_params: bool, gWt: np.ndarray, gDt: np.ndarray, gRt: np.ndarray, gEt: np.ndarray,
    gP: np.ndarray, up: np.ndarray,
) -> None:
    """Reverse replay of one sample; gradients are added to gWt, gDt (n_pre, n), gRt, gEt (n, n), gP (n, 5)
    (columns tau_mem, tau_w, tau_syn, a, b) and up (dL/dt of each input event). gDt and gEt are only
    touched with ``delays`` (without, the layer's delays are not parameters).

    Weights, delays and their gradients are transposed ([pre, post]): the arrivals of one presynaptic
    spike walk along a contiguous row.
    """
    n = Wt.shape[1]
    n_in = tin.size
    n_s = ts_.size
    # ---- (1) events in forward order
    m = n_s
    for s in range(n_s):
        if t_ref > 0.0 and ts_[s] + t_ref < T:
            m += 1
    m_ff = 0
    for e in range(n_in):
        for j in range(n):
            if tin[e] + Dt[uin[e], j] <= T:
                m_ff += 1
    m_rec = 0
    if has_rec:
        for s in range(n_s):
            for j in range(n):
                if ts_[s] + Et[us_[s], j] <= T:
                    m_rec += 1
    m += m_ff + m_rec
    # 17 bytes per event (kind int8, indices int32): the list is this kernel's memory
    et = np.empty(m)
    ek = np.empty(m, np.int8)
    ei = np.empty(m, np.int32)
    ej = np.empty(m, np.int32)
    c = 0
    for s in range(n_s):
        et[c] = ts_[s]
        ek[c] = _SPIKE
        ei[c] = s
        ej[c] = us_[s]
        c += 1
    if t_ref > 0.0:
        for s in range(n_s):
            if ts_[s] + t_ref < T:
                et[c] = ts_[s] + t_ref
                ek[c] = _REF
                ei[c] = s
                ej[c] = us_[s]
                c += 1
    for e in range(n_in):
        for j in range(n):
            ta = tin[e] + Dt[uin[e], j]
            if ta <= T:
                et[c] = ta
                ek[c] = _FF
                ei[c] = e
                ej[c] = j
                c += 1
    if has_rec:
        for s in range(n_s):
            for j in range(n):
                ta = ts_[s] + Et[us_[s], j]
                if ta <= T:
                    et[c] = ta
                    ek[c] = _REC
                    ei[c] = s
                    ej[c] = j
                    c += 1
    order = _forward_order(et, ek, m - m_ff - m_rec, m_ff, delays)
    # the events in forward order, gathered once: both replays then walk the arrays in order (reading them
    # through ``order`` costs a cache miss per array and event)
    t_s = np.empty(m)
    k_s = np.empty(m, np.int8)
    i_s = np.empty(m, np.int32)
    j_s = np.empty(m, np.int32)
    for q in range(m):
        o = order[q]
        t_s[q] = et[o]
        k_s[q] = ek[o]
        i_s[q] = ei[o]
        j_s[q] = ej[o]
    et, ek, ei, ej = t_s, k_s, i_s, j_s
    # ---- (2) forward replay: state of the neuron just before each event
    Phi = np.empty((3, 3))
    s1 = np.empty((3, 3))
    s2 = np.empty((3, 3))
    cPhi = np.empty((3, 3))
    cache = np.full(1, -1.0)
    X = np.zeros((n, 3))
    tl = np.zeros(n)
    ref_end = np.full(n, -np.inf)
    xm = np.empty((m, 3))
    last_end = np.full(n, -np.inf)  # end of each neuron's last refractory window
    for q in range(m):
        j = ej[q]
        t = et[q]
        x = X[j]
        advance(x, tl[j], t, ref_end[j], A[j], tau_w[j], tau_syn[j], av[j], v_reset, Phi, s1, s2, cache, cPhi,
               uniform)
        tl[j] = t
        xm[q, 0] = x[0]
        xm[q, 1] = x[1]
        xm[q, 2] = x[2]
        kind = ek[q]
        if kind == _FF:
            x[2] += Wt[uin[ei[q]], j]
        elif kind == _REC:
            x[2] += Rt[us_[ei[q]], j]
        elif kind == _SPIKE:
            x[0] = v_reset
            x[1] += bv[j]
            if t_ref > 0.0:
                ref_end[j] = t + t_ref
                last_end[j] = t + t_ref
    # ---- (3) reverse replay
    lam = np.zeros((n, 3))
    tb = np.full(n, T)
    in_ref = np.zeros(n, np.bool_)
    for j in range(n):
        in_ref[j] = last_end[j] >= T  # the last window is still open at T
    stored = np.zeros(n_s)
    rec_down = np.zeros(n_s)
    x0 = np.empty(3)
    Q = np.empty((3, 3))
    q1 = np.empty((3, 3))
    q2 = np.empty((3, 3))
    q3 = np.empty((3, 3))
    v1 = np.empty(3)
    v2 = np.empty(3)
    for q in range(m - 1, -1, -1):
        j = ej[q]
        t = et[q]
        kind = ek[q]
        i = ei[q]
        tm = tau_mem[j]
        tw = tau_w[j]
        ts = tau_syn[j]
        a = av[j]
        # state just after the event
        x0[0] = xm[q, 0]
        x0[1] = xm[q, 1]
        x0[2] = xm[q, 2]
        if kind == _FF:
            x0[2] += Wt[uin[i], j]
        elif kind == _REC:
            x0[2] += Rt[us_[i], j]
        elif kind == _SPIKE:
            x0[0] = v_reset
            x0[1] += bv[j]
        Dt = tb[j] - t
        if Dt > 0.0:
            lam_j = lam[j]
            if in_ref[j]:
                ew = math.exp(-Dt / tw)
                es = math.exp(-Dt / ts)
                if want_params:
                    gP[j, G_A] += lam_j[1] * v_reset * (1.0 - ew)
                    gP[j, G_TAU_W] += lam_j[1] * (x0[1] - a * v_reset) * Dt * ew / (tw * tw)
                    gP[j, G_TAU_SYN] += lam_j[2] * x0[2] * Dt * es / (ts * ts)
                lam_j[0] = 0.0
                lam_j[1] *= ew
                lam_j[2] *= es
            else:
                if want_params:
                    lam_x_integral(A[j], lam_j, x0, Dt, Q, q1, q2, q3, v1, v2)
                    gP[j, G_TAU_MEM] += (Q[0, 0] + Q[0, 1] - Q[0, 2]) / (tm * tm)
                    gP[j, G_TAU_W] += (Q[1, 1] - a * Q[1, 0]) / (tw * tw)
                    gP[j, G_A] += Q[1, 0] / tw
                    gP[j, G_TAU_SYN] += Q[2, 2] / (ts * ts)
                flow_adjoint(A[j], Dt, lam_j, Phi, s1, s2)
            tb[j] = t
        lam_j = lam[j]
        if kind == _FF:
            u = uin[i]
            g = lam_j[2] / ts - lam_j[0] / tm
            gWt[u, j] += lam_j[2]
            if delays:  # a delay-free layer's delays are not parameters
                gDt[u, j] += Wt[u, j] * g
            up[i] += Wt[u, j] * g
        elif kind == _REC:
            k = us_[i]
            g = lam_j[2] / ts - lam_j[0] / tm
            gRt[k, j] += lam_j[2]
            if delays:
                gEt[k, j] += Rt[k, j] * g
            rec_down[i] += Rt[k, j] * g
        elif kind == _REF:
            # releasing the clamp later leaves V short of its free slope at the window's end
            stored[i] = window_end_term(lam_j[0], xm[q, 2], xm[q, 1], v_reset, tm)
            lam_j[0] = 0.0
            in_ref[j] = True
        else:
            gP[j, G_B] += lam_j[1]
            lam_j[0] = spike_jump(lam_j[0], lam_j[1], xm[q, 2], xm[q, 1], stored[i], t_ref, down[i],
                                  rec_down[i], tm, tw, a, bv[j], v_th, v_reset)
            in_ref[j] = False


@threaded_driver
def linear_backward_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, W: np.ndarray, D: np.ndarray, R: np.ndarray,
    E: np.ndarray, has_rec: bool, delays: bool, s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray,
    down: np.ndarray, A: np.ndarray, tau_mem: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray,
    av: np.ndarray, bv: np.ndarray, uniform: bool, v_th: float, v_reset: float, t_ref: float, T: float,
    want_params: bool, gW: np.ndarray, gD: np.ndarray, gR: np.ndarray, gE: np.ndarray, gP: np.ndarray, up: np.ndarray,
) -> None:
    """Reverse replay of every sample (Python threads, :mod:`exactsnn.engine.cpu.threads`); gradient buffers
    have a leading per-thread axis.

    W, D, R, E and the gradient buffers are transposed ([pre, post]).
    """

    def work(b: int, t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        linear_backward_sample(
            times[lo:hi], units[lo:hi], W, D, R, E, has_rec, delays, s_times[slo:shi], s_units[slo:shi], down[slo:shi],
            A, tau_mem, tau_w, tau_syn, av, bv, uniform, v_th, v_reset, t_ref, T, want_params,
            gW[t], gD[t], gR[t], gE[t], gP[t], up[lo:hi],
        )

    for_each_sample(work, offsets.size - 1)
