"""Windowed reverse replay of a layer of 3-state neurons (adLIF) whose delays are on the feedforward synapses only.

Why. With per-synapse feedforward delays every input spike reaches each neuron at its own time; the arrival-list
replay (:mod:`exactsnn.engine.cpu.linear_backward`) lists and sorts every (input spike x neuron) arrival and brings
each neuron's adjoint (with learned parameters its 13 rows) and state from arrival to arrival: ~1.2 s per 0.5 s
SHD-like sample of a 256-neuron layer. But between two of its own events (spikes, refractory-window ends) a
neuron's dynamics are linear and an arrival changes neither its adjoint nor, beyond adding w to I, anything that
does not sum: arrivals may be taken in any order. This kernel carries the windowed reverse of the delay-free
layer (:mod:`exactsnn.engine.cpu.linear_windows`, whose module docstring has the maths and the tables E, P) over
to delayed arrivals; zero-delay recurrence is kept as there.

Per sample, with the windows [T0, T1) of length H of :func:`~exactsnn.engine.cpu.linear_windows.window_grid`:

1. **Buckets.** Every arrival (input event e of unit i at neuron j, at a = t_e + D[i, j] <= T; later ones never
   reach the layer) is put in the bucket of its window by a counting sort, as runs (one input event's arrivals in
   one window: the event once, then its neurons as 16-bit indices): ~2 bytes per arrival, no time sort.
2. **Forward replay by moments.** A neuron without an own event in a window and not refractory at its end
   (*clean*) goes from T0 to T1 as x(T1) = expm(A H) x(T0) + sum_k (A^k e_I / k!) M_k with the window's moments
   M_k = sum_a w_a (T1 - a)^k (feedforward and recurrent arrivals alike): expm(A H) is E's lam block transposed and
   A^k e_I / k! is row I of U_k (both in the tables). The other neurons (*replayed*) go event by event (their
   arrivals of the window sorted by time, a few dozen; spikes, window ends, recurrent arrivals from the spike
   list) with :func:`~exactsnn.neurons.linear.advance`, recording w and I before each spike and at each window's
   end. The state at every window start is kept (3 floats per neuron and window).
3. **Reverse replay**, windows from the last: clean neurons read lam_I, lam_V at an arrival from their window
   polynomials (dL/dW += lam_I; dL/dD and dL/dt_e += w (lam_I/tau_syn - lam_V/tau_mem); moments for the parameter
   terms), in bucket order; replayed neurons go back event by event, each column brought lazily from its last
   event (the block series of :func:`~exactsnn.neurons.series.adjoint_layer` on one column, or inside a refractory
   window its closed form), all columns together only where a spike's recurrent arrivals read them.

At equal times the forward order is that of the arrival-list replay: spikes, window ends, feedforward, then
recurrent arrivals; an arrival on a window's start belongs to that window. Memory: the buckets (~2 bytes per
arrival), the window-start states, the tables and O(n (K + 13)) of scratch; no per-arrival state.
"""

from __future__ import annotations

import math

import numpy as np

from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.linear_backward import G_B, spike_jump, window_end_term
from exactsnn.engine.cpu.linear_dense_backward import _parameter_gradients
from exactsnn.engine.cpu.linear_windows import (
    _clean_arrival,
    _clean_close,
    _coefficients,
    _list_units,
    _window_terms,
    add_moment,
    moments_row,
    replayed_units,
    window_grid,
    window_of,
)
from exactsnn.engine.cpu.maths import adjoint_column, advance, layer_norm
from exactsnn.engine.cpu.reverse_merge import last_window_end, next_block
from exactsnn.engine.cpu.sort import stable_argsort
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.series import N_ADJ

__all__ = ["MAX_NEURONS", "linear_ff_backward_batch", "linear_ff_backward_sample"]

#: largest layer this replay takes (its buckets hold neuron indices in 16 bits); larger layers with feedforward
#: delays are differentiated by the arrival-list replay
MAX_NEURONS = 65535


@kernel
def _buckets(tin: np.ndarray, uin: np.ndarray, Dt: np.ndarray, T: float, H: float,
             n_win: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Counting sort of the arrivals a = tin[e] + Dt[uin[e], j] <= T by window, as *runs* (the arrivals of one input
    event in one window): (roff (n_win + 1), re, rst, bj). Window w's runs are ``roff[w]:roff[w + 1]``; run r is
    event re[r] at the neurons bj[rst[r]:rst[r + 1]] (ascending). 2 bytes per arrival and 12 per run."""
    n = Dt.shape[1]
    n_e = np.zeros(n_win + 1, np.int64)
    n_r = np.zeros(n_win + 1, np.int64)
    last = np.full(n_win, -1, np.int64)
    for e in range(tin.size):
        t = tin[e]
        row = Dt[uin[e]]
        for j in range(n):
            a = t + row[j]
            if a <= T:
                w = window_of(a, H, n_win)
                n_e[w + 1] += 1
                if last[w] != e:
                    last[w] = e
                    n_r[w + 1] += 1
    eoff = np.cumsum(n_e)
    roff = np.cumsum(n_r)
    e_fill = eoff[:-1].copy()
    r_fill = roff[:-1].copy()
    re = np.empty(roff[n_win], np.int32)
    rst = np.empty(roff[n_win] + 1, np.int64)
    rst[roff[n_win]] = eoff[n_win]
    bj = np.empty(eoff[n_win], np.uint16)  # layers of at most MAX_NEURONS neurons
    last[:] = -1
    for e in range(tin.size):
        t = tin[e]
        row = Dt[uin[e]]
        for j in range(n):
            a = t + row[j]
            if a <= T:
                w = window_of(a, H, n_win)
                if last[w] != e:  # a new run: the event's first arrival in this window
                    last[w] = e
                    r = r_fill[w]
                    re[r] = e
                    rst[r] = e_fill[w]
                    r_fill[w] = r + 1
                bj[e_fill[w]] = j
                e_fill[w] += 1
    return roff, re, rst, bj


@kernel
def _replayed_arrivals(r_lo: int, r_hi: int, re: np.ndarray, rst: np.ndarray, bj: np.ndarray, tin: np.ndarray,
                       uin: np.ndarray, Dt: np.ndarray, pos: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arrivals of runs r_lo:r_hi at replayed neurons (pos[j] >= 0), in time order (stable): (times, events,
    columns)."""
    nf = 0
    for p in range(rst[r_lo], rst[r_hi]):
        if pos[bj[p]] >= 0:
            nf += 1
    fa = np.empty(nf)
    fe = np.empty(nf, np.int64)
    fr = np.empty(nf, np.int64)
    q = 0
    for r in range(r_lo, r_hi):
        e = re[r]
        t = tin[e]
        drow = Dt[uin[e]]
        for p in range(rst[r], rst[r + 1]):
            j = bj[p]
            if pos[j] >= 0:
                fa[q] = t + drow[j]
                fe[q] = e
                fr[q] = pos[j]
                q += 1
    order = stable_argsort(fa)
    return fa[order], fe[order], fr[order]


@helper
def _clean_step(X: np.ndarray, j: int, E: np.ndarray, Bj: np.ndarray, M: np.ndarray, Mt: np.ndarray) -> None:
    """Clean neuron j over its window: x <- expm(A H) x + sum_k (A^k e_I / k!) (M[k, j] + Mt[j, k]); Bj (K + 1, 3):
    its A^k e_I / k! (row I of U_k, :func:`~exactsnn.engine.cpu.linear_windows.window_tables`)."""
    v, w, i = X[0, j], X[1, j], X[2, j]
    y0 = E[0, 0, j] * v + E[1, 0, j] * w + E[2, 0, j] * i
    y1 = E[0, 1, j] * v + E[1, 1, j] * w + E[2, 1, j] * i
    y2 = E[2, 2, j] * i
    for k in range(M.shape[0]):
        m = M[k, j] + Mt[j, k]
        y0 += Bj[k, 0] * m
        y1 += Bj[k, 1] * m
        y2 += Bj[k, 2] * m
    X[0, j], X[1, j], X[2, j] = y0, y1, y2


@kernel
def _forward_replay(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Dt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    ts_: np.ndarray, us_: np.ndarray, A: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray,
    bv: np.ndarray, v_reset: float, t_ref: float, T: float, H: float, n_win: int, E: np.ndarray, P: np.ndarray,
    roff: np.ndarray, re: np.ndarray, rst: np.ndarray, bj: np.ndarray, Xw: np.ndarray, w_spk: np.ndarray,
    I_spk: np.ndarray, w_end: np.ndarray, I_end: np.ndarray, ref_end: np.ndarray,
) -> None:
    """Step 2 of the module docstring: the state at every window start into Xw (n_win, 3, n), w and I before each
    spike and at each window's end, each neuron's last window end into ref_end."""
    n = Wt.shape[1]
    n_s = ts_.size
    K1 = P.shape[0]
    B = np.empty((n, K1, 3))  # the inputs' table, contiguous per neuron
    for k in range(K1):
        for r in range(3):
            for j in range(n):
                B[j, k, r] = P[k, 1, r, j]
    n_r = last_window_end(ts_, t_ref, T) + 1  # window ends before T: events
    X = np.zeros((3, n))
    M = np.zeros((K1, n))
    Mt = np.zeros((n, K1))
    cm = np.ones(n)
    pos = np.full(n, -1, np.int64)
    sl = np.empty(n, np.int64)
    xc = np.empty((n, 3))
    tcol = np.empty(n)
    Phi = np.empty((3, 3))
    s1 = np.empty((3, 3))
    s2 = np.empty((3, 3))
    F = np.empty((3, 3))
    cache = np.full(1, -1.0)
    i_s = 0
    i_r = 0
    for w in range(n_win):
        T0 = w * H
        T1 = T if w == n_win - 1 else (w + 1) * H
        last = w == n_win - 1
        Xw[w] = X
        s_hi = i_s
        while s_hi < n_s and (last or ts_[s_hi] < T1):
            s_hi += 1
        # replayed: in a window at T0 (its end is in this window or later) or spiking in this one
        n_sl = 0
        for j in range(n):
            if ref_end[j] >= T0:
                pos[j] = n_sl
                sl[n_sl] = j
                n_sl += 1
        n_sl = _list_units(us_, i_s, s_hi, pos, sl, n_sl)
        for r in range(n_sl):
            j = sl[r]
            cm[j] = 0.0
            xc[r, 0], xc[r, 1], xc[r, 2] = X[0, j], X[1, j], X[2, j]
            tcol[r] = T0
        # ---- clean neurons: moments of the window's arrivals
        M[:] = 0.0
        Mt[:] = 0.0
        for r in range(roff[w], roff[w + 1]):
            e = re[r]
            u = uin[e]
            t1e = T1 - tin[e]
            wrow = Wt[u]
            drow = Dt[u]
            for p in range(rst[r], rst[r + 1]):
                j = bj[p]
                if cm[j] != 0.0:
                    add_moment(wrow[j], t1e - drow[j], Mt[j])
        if has_rec:
            for q in range(i_s, s_hi):
                moments_row(Rt[us_[q]], T1 - ts_[q], M)
        for j in range(n):
            if cm[j] != 0.0:
                _clean_step(X, j, E, B[j], M, Mt)
        # ---- replayed neurons: event by event
        if n_sl > 0:
            fa, fe, fr = _replayed_arrivals(roff[w], roff[w + 1], re, rst, bj, tin, uin, Dt, pos)
            i_f = 0
            while True:
                te = math.inf
                if i_f < fa.size:
                    te = fa[i_f]
                if i_r < n_r and ts_[i_r] + t_ref < te:
                    te = ts_[i_r] + t_ref
                if i_s < s_hi and ts_[i_s] < te:
                    te = ts_[i_s]
                if te == math.inf or (not last and te >= T1):
                    break
                s0 = i_s
                while i_s < s_hi and ts_[i_s] == te:  # spikes
                    k = us_[i_s]
                    r = pos[k]
                    advance(xc[r], tcol[r], te, ref_end[k], A[k], tau_w[k], tau_syn[k], av[k], v_reset, Phi, s1,
                            s2, cache, F, False)
                    tcol[r] = te
                    w_spk[i_s] = xc[r, 1]
                    I_spk[i_s] = xc[r, 2]
                    xc[r, 0] = v_reset
                    xc[r, 1] += bv[k]
                    if t_ref > 0.0:
                        ref_end[k] = te + t_ref
                    i_s += 1
                while i_r < n_r and ts_[i_r] + t_ref == te:  # window ends
                    k = us_[i_r]
                    r = pos[k]
                    advance(xc[r], tcol[r], te, ref_end[k], A[k], tau_w[k], tau_syn[k], av[k], v_reset, Phi, s1,
                            s2, cache, F, False)
                    tcol[r] = te
                    w_end[i_r] = xc[r, 1]
                    I_end[i_r] = xc[r, 2]
                    i_r += 1
                while i_f < fa.size and fa[i_f] == te:  # feedforward arrivals
                    r = fr[i_f]
                    k = sl[r]
                    advance(xc[r], tcol[r], te, ref_end[k], A[k], tau_w[k], tau_syn[k], av[k], v_reset, Phi, s1,
                            s2, cache, F, False)
                    tcol[r] = te
                    xc[r, 2] += Wt[uin[fe[i_f]], k]
                    i_f += 1
                if has_rec:
                    for q in range(s0, i_s):  # recurrent arrivals of the spikes at te
                        row = Rt[us_[q]]
                        for r in range(n_sl):
                            k = sl[r]
                            advance(xc[r], tcol[r], te, ref_end[k], A[k], tau_w[k], tau_syn[k], av[k], v_reset, Phi,
                                    s1, s2, cache, F, False)
                            tcol[r] = te
                            xc[r, 2] += row[k]
            for r in range(n_sl):
                k = sl[r]
                advance(xc[r], tcol[r], T1, ref_end[k], A[k], tau_w[k], tau_syn[k], av[k], v_reset, Phi, s1, s2,
                        cache, F, False)
                X[0, k], X[1, k], X[2, k] = xc[r, 0], xc[r, 1], xc[r, 2]
                pos[k] = -1
                cm[k] = 1.0
        i_s = s_hi
        while i_r < n_r and (last or ts_[i_r] + t_ref < T1):  # window ends of clean neurons: none
            i_r += 1


@helper
def _bring(Zc: np.ndarray, r: int, t: float, tcol: np.ndarray, in_s: np.ndarray, tw_s: np.ndarray,
           ts_s: np.ndarray, params: bool, rows: np.ndarray, Cc: np.ndarray, nrm: float, Y: np.ndarray,
           Y2: np.ndarray) -> None:
    """Column r (its 13 rows Zc[r]) back from its last event to t: the block series, or in a refractory window
    lam_V = 0, lam_w and lam_I decay, nu_d <- e^{-h/tau_syn} (nu_d + h lam_I)."""
    h = tcol[r] - t
    if h <= 0.0:
        return
    Z = Zc[r]
    if in_s[r]:
        es = math.exp(-h / ts_s[r])
        Z[0] = 0.0
        Z[1] *= math.exp(-h / tw_s[r])
        if params:
            Z[12] = es * (Z[12] + h * Z[2])
        Z[2] *= es
    else:
        adjoint_column(Z, h, Cc[r], nrm, Y, Y2, params, rows)
    tcol[r] = t


@helper
def _restart_vec(z: np.ndarray, v: float, w: float, i: float, G: np.ndarray, k: int) -> None:
    """:func:`~exactsnn.engine.cpu.linear_windows._restart_col` for one neuron's rows z (N_ADJ,)."""
    G[0, k] += z[3] * v + z[4] * w + z[5] * i
    G[1, k] += z[6] * v + z[7] * w + z[8] * i
    G[2, k] += z[9] * v + z[10] * w + z[11] * i
    for q in range(3, 12):
        z[q] = 0.0


@helper
def _column_reads(w: np.ndarray, Zc: np.ndarray, sl: np.ndarray, n_sl: int, g: np.ndarray, inv_s: np.ndarray,
                  inv_m: np.ndarray, params: bool, G: np.ndarray) -> float:
    """A recurrent row w (n,) arriving at the replayed columns: g += lam_I, with ``params`` G += w nu_I; returns
    sum_r w (lam_I/tau_syn - lam_V/tau_mem)."""
    acc = 0.0
    for r in range(n_sl):
        j = sl[r]
        Z = Zc[r]
        wj = w[j]
        g[j] += Z[2]
        acc += wj * (Z[2] * inv_s[j] - Z[0] * inv_m[j])
        if params:
            G[0, j] += wj * Z[5]
            G[1, j] += wj * Z[8]
            G[2, j] += wj * Z[11]
            G[3, j] += wj * Z[12]
    return acc


@helper
def _clean_reads(
    r_lo: int, r_hi: int, re: np.ndarray, rst: np.ndarray, bj: np.ndarray, tin: np.ndarray, uin: np.ndarray,
    Wt: np.ndarray, Dt: np.ndarray, T1: float, cm: np.ndarray, cI: np.ndarray, cV: np.ndarray, params: bool,
    want_up: bool, Mt: np.ndarray, inv_s: np.ndarray, inv_m: np.ndarray, gWt: np.ndarray, gDt: np.ndarray,
    up: np.ndarray,
) -> None:
    """The feedforward arrivals of runs r_lo:r_hi at clean neurons: lam_I, lam_V from the window polynomials cI, cV
    ((n, K + 1), rising powers of s = T1 - a), dL/dW, dL/dD, dL/dt of the input event, moments Mt (n, K + 1)."""
    K1 = cI.shape[1]
    for r in range(r_lo, r_hi):
        e = re[r]
        u = uin[e]
        t1e = T1 - tin[e]
        wrow, drow, gw, gd = Wt[u], Dt[u], gWt[u], gDt[u]
        acc = 0.0
        for p in range(rst[r], rst[r + 1]):
            j = bj[p]
            if cm[j] == 0.0:
                continue
            s = t1e - drow[j]
            wt = wrow[j]
            ci, cv = cI[j], cV[j]
            li = ci[0]
            lv = cv[0]
            pw = 1.0
            if params:
                mt = Mt[j]
                mt[0] += wt
                for k in range(1, K1):
                    pw *= s
                    li += ci[k] * pw
                    lv += cv[k] * pw
                    mt[k] += wt * pw
            else:
                for k in range(1, K1):
                    pw *= s
                    li += ci[k] * pw
                    lv += cv[k] * pw
            gw[j] += li
            d = wt * (li * inv_s[j] - lv * inv_m[j])
            gd[j] += d
            acc += d
        if want_up:
            up[e] += acc


@kernel
def linear_ff_backward_sample(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Dt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    ts_: np.ndarray, us_: np.ndarray, down: np.ndarray, A: np.ndarray, tau_mem: np.ndarray, tau_w: np.ndarray,
    tau_syn: np.ndarray, av: np.ndarray, bv: np.ndarray, v_th: float, v_reset: float, t_ref: float, T: float,
    want_up: bool, params: bool, rows: np.ndarray, C: np.ndarray, E: np.ndarray, P: np.ndarray, gWt: np.ndarray,
    gDt: np.ndarray, gRt: np.ndarray, gP: np.ndarray, up: np.ndarray,
) -> None:
    """Reverse replay of one sample of a linear layer with feedforward delays (module docstring).

    Arguments as :func:`exactsnn.engine.cpu.linear_dense_backward.linear_dense_backward_sample` (C, E, P always
    given: :func:`exactsnn.neurons.series.coefficients`, :func:`~exactsnn.engine.cpu.linear_windows.window_tables`),
    plus the transposed delays Dt (n_pre, n) and dL/dD into gDt (n_pre, n).
    """
    n = Wt.shape[1]
    n_s = ts_.size
    K1 = P.shape[0]
    nrm = layer_norm(C)
    H, n_win = window_grid(nrm, T)
    roff, re, rst, bj = _buckets(tin, uin, Dt, T, H, n_win)
    # ---- forward replay
    Xw = np.empty((n_win, 3, n))
    w_spk = np.empty(n_s)
    I_spk = np.empty(n_s)
    w_end = np.full(n_s, np.nan)
    I_end = np.full(n_s, np.nan)
    ref_end = np.full(n, -np.inf)
    _forward_replay(tin, uin, Wt, Dt, Rt, has_rec, ts_, us_, A, tau_w, tau_syn, av, bv, v_reset, t_ref, T, H, n_win,
                    E, P, roff, re, rst, bj, Xw, w_spk, I_spk, w_end, I_end, ref_end)
    # ---- reverse replay
    G = np.zeros((4, n))
    lam = np.zeros((3, n))
    inv_m = 1.0 / tau_mem
    inv_s = 1.0 / tau_syn
    in_ref = ref_end >= T  # the neuron's last window is still open at T
    stored = np.zeros(n_s)
    rec_down = np.zeros(n_s)
    cm = np.ones(n)
    cf_I = np.empty((K1, n))
    cf_V = np.empty((K1, n))
    cf = np.empty((K1, n))
    cI = np.empty((n, K1))
    cV = np.empty((n, K1))
    M = np.zeros((K1, n))
    Mt = np.zeros((n, K1))
    li = np.empty(n)
    lv = np.empty(n)
    pos = np.full(n, -1, np.int64)
    sl = np.empty(n, np.int64)
    Zc = np.zeros((n, N_ADJ))
    Cc = np.empty((n, 8))
    Y = np.empty(N_ADJ)
    Y2 = np.empty(N_ADJ)
    in_s = np.zeros(n, np.bool_)
    tw_s = np.empty(n)
    ts_s = np.empty(n)
    tcol = np.empty(n)
    i_s = n_s - 1
    i_r = last_window_end(ts_, t_ref, T)
    for w in range(n_win - 1, -1, -1):
        T0 = w * H
        T1 = T if w == n_win - 1 else (w + 1) * H
        s_lo, r_lo, n_sl = replayed_units(ts_, us_, t_ref, T0, i_s, i_r, in_ref, pos, sl, cm)
        # ---- clean neurons: polynomials from lam(T1)
        lo, hi = roff[w], roff[w + 1]
        any_rec = has_rec and s_lo < i_s
        any_arrival = hi > lo or any_rec
        if any_arrival:
            _coefficients(P, lam, 1, cf_I)
            _coefficients(P, lam, 0, cf_V)
            if params:
                M[:] = 0.0
                Mt[:] = 0.0
            if hi > lo:
                for k in range(K1):
                    for j in range(n):
                        cI[j, k] = cf_I[k, j]
                        cV[j, k] = cf_V[k, j]
                _clean_reads(lo, hi, re, rst, bj, tin, uin, Wt, Dt, T1, cm, cI, cV, params, want_up, Mt, inv_s,
                             inv_m, gWt, gDt, up)
            if any_rec:
                for q in range(s_lo + 1, i_s + 1):
                    k = us_[q]
                    rec_down[q] += _clean_arrival(Rt[k], T1 - ts_[q], cm, cf_I, cf_V, True, params, M, li, lv,
                                                  gRt[k], inv_s, inv_m)
            if params and hi > lo:
                for k in range(K1):
                    for j in range(n):
                        M[k, j] += Mt[j, k]
        _clean_close(E, P, lam, cm, Xw[w], params, any_arrival, M, cf, G)
        # ---- the others: event by event, each column from its own last event
        if n_sl > 0:
            fa, fe, fr = _replayed_arrivals(lo, hi, re, rst, bj, tin, uin, Dt, pos)
            for r in range(n_sl):
                j = sl[r]
                Zc[r] = 0.0
                Zc[r, 0], Zc[r, 1], Zc[r, 2] = lam[0, j], lam[1, j], lam[2, j]
                for c in range(8):
                    Cc[r, c] = C[c, j]
                in_s[r] = in_ref[j]
                tw_s[r] = tau_w[j]
                ts_s[r] = tau_syn[j]
                tcol[r] = T1
            i_f = fa.size - 1
            while True:
                te, f0, r0, s0 = next_block(fa, i_f, ts_, i_r, i_s, t_ref)
                if te < T0:
                    break
                if has_rec and s0 < i_s:
                    for r in range(n_sl):
                        _bring(Zc, r, te, tcol, in_s, tw_s, ts_s, params, rows, Cc, nrm, Y, Y2)
                    for q in range(s0 + 1, i_s + 1):
                        k = us_[q]
                        rec_down[q] += _column_reads(Rt[k], Zc, sl, n_sl, gRt[k], inv_s, inv_m, params, G)
                for f in range(i_f, f0, -1):
                    r = fr[f]
                    _bring(Zc, r, te, tcol, in_s, tw_s, ts_s, params, rows, Cc, nrm, Y, Y2)
                    j = sl[r]
                    e = fe[f]
                    u = uin[e]
                    Z = Zc[r]
                    wt = Wt[u, j]
                    gWt[u, j] += Z[2]
                    d = wt * (Z[2] * inv_s[j] - Z[0] * inv_m[j])
                    gDt[u, j] += d
                    if want_up:
                        up[e] += d
                    if params:
                        G[0, j] += wt * Z[5]
                        G[1, j] += wt * Z[8]
                        G[2, j] += wt * Z[11]
                        G[3, j] += wt * Z[12]
                for q in range(i_r, r0, -1):
                    k = us_[q]
                    r = pos[k]
                    _bring(Zc, r, te, tcol, in_s, tw_s, ts_s, params, rows, Cc, nrm, Y, Y2)
                    Z = Zc[r]
                    stored[q] = window_end_term(Z[0], I_end[q], w_end[q], v_reset, tau_mem[k])
                    if params:
                        _restart_vec(Z, v_reset, w_end[q], I_end[q], G, k)
                        _window_terms(Z[1], w_end[q], av[k], tau_w[k], v_reset, t_ref, gP[k])
                    Z[0] = 0.0
                    in_s[r] = True
                for q in range(i_s, s0, -1):
                    k = us_[q]
                    r = pos[k]
                    _bring(Zc, r, te, tcol, in_s, tw_s, ts_s, params, rows, Cc, nrm, Y, Y2)
                    Z = Zc[r]
                    gP[k, G_B] += Z[1]
                    if params and t_ref == 0.0:
                        _restart_vec(Z, v_reset, w_spk[q] + bv[k], I_spk[q], G, k)
                    Z[0] = spike_jump(Z[0], Z[1], I_spk[q], w_spk[q], stored[q], t_ref, down[q],
                                         rec_down[q], tau_mem[k], tau_w[k], av[k], bv[k], v_th, v_reset)
                    in_s[r] = False
                i_f, i_r, i_s = f0, r0, s0
            x0 = Xw[w]
            for r in range(n_sl):
                _bring(Zc, r, T0, tcol, in_s, tw_s, ts_s, params, rows, Cc, nrm, Y, Y2)
                j = sl[r]
                Z = Zc[r]
                if params:  # nu restarts at the window's start, nu_d too (as for the clean neurons)
                    _restart_vec(Z, x0[0, j], x0[1, j], x0[2, j], G, j)
                    G[3, j] += Z[12] * x0[2, j]
                lam[0, j], lam[1, j], lam[2, j] = Z[0], Z[1], Z[2]
                in_ref[j] = in_s[r]
                pos[j] = -1
                cm[j] = 1.0
        i_s, i_r = s_lo, r_lo
    if params:
        _parameter_gradients(C, G, gP)


@threaded_driver
def linear_ff_backward_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, Wt: np.ndarray, Dt: np.ndarray, Rt: np.ndarray,
    has_rec: bool, s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray, down: np.ndarray, A: np.ndarray,
    tau_mem: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, bv: np.ndarray, v_th: float,
    v_reset: float, t_ref: float, T: float, want_up: bool, params: bool, rows: np.ndarray, C: np.ndarray,
    E: np.ndarray, P: np.ndarray, gWt: np.ndarray, gDt: np.ndarray, gRt: np.ndarray, gP: np.ndarray, up: np.ndarray,
) -> None:
    """:func:`linear_ff_backward_sample` over every sample (Python threads, :mod:`exactsnn.engine.cpu.threads`);
    gWt, gDt, gRt, gP have a leading per-thread axis."""

    def work(b: int, t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        linear_ff_backward_sample(
            times[lo:hi], units[lo:hi], Wt, Dt, Rt, has_rec, s_times[slo:shi], s_units[slo:shi], down[slo:shi], A,
            tau_mem, tau_w, tau_syn, av, bv, v_th, v_reset, t_ref, T, want_up, params, rows, C, E, P, gWt[t], gDt[t],
            gRt[t], gP[t], up[lo:hi],
        )

    for_each_sample(work, offsets.size - 1)
