"""Windowed reverse replay of a delay-free layer of 3-state neurons with per-neuron parameters (adLIF).

Why. With per-neuron A the shared-clock replay (:mod:`exactsnn.engine.cpu.linear_dense_backward`) brought the
adjoint of every neuron, 13 rows with the parameter adjoints nu, over every stretch between two events of the
layer by a Taylor series (:func:`~exactsnn.neurons.series.adjoint_layer`): ~80 ns per neuron and event, most
of a learned-parameter training step. But an input changes no adjoint: it only reads lam_I (for dL/dW) and
nu_I (for the parameter gradients) at its time. Only a neuron's own events (its spikes, the ends of its
refractory windows) change its adjoint; between them it is one analytic function of time.

The scheme (windows are bookkeeping: no time grid enters the maths). Cut [0, T] into windows [T0, T1) of
length H (||A_j H|| <= 1/4 for every neuron, H <= 2 ms; the last one closed at T). Over a window without own
events neuron j's adjoint is Z(T1 - s) = expm(G_j s) Z(T1) (G_j: the block generator of
:func:`~exactsnn.neurons.series.adjoint_layer`, rows lam then nu), and nu restarts at 0 at every window's end
(the parameter integral over a window is nu(T0) . x(T0) plus W nu_I at its arrivals, whatever happened after
T1: :mod:`exactsnn.neurons.series`), so Z(T1) = (lam1, 0) and everything in the window is a fixed matrix times
lam1. Per call and neuron, for the window length H (units: s, 1/s)::

    U_k = G^k[:, :3] / k!      E = sum_k H^k U_k = expm(G H)[:, :3]      (13 x 3 each)

so that lam(T0) = E[:3] lam1, nu(T0) = E[3:] lam1, and at an arrival at T1 - s (0 < s <= H)
lam_I, lam_V, nu_I = sum_k s^k (U_k lam1)[row], a polynomial whose coefficients are computed once per window
(K terms: (||A|| H)^K / K! below the unit roundoff, as the series it replaces). An input of row w (or a
recurrent spike of row R[k]) then costs, per neuron, K multiply-adds for lam_I (dL/dW), K for lam_V when dL/dt
is asked, and K into the window's moments M_k = sum_a w_a s_a^k; at the window's start the parameter terms
are sum_k (U_k lam1)_{nu_I} M_k + nu(T0) . x(T0), with x(T0) the forward state kept by the forward replay.

Neurons with an own event in a window (a spike or a window end in [T0, T1)), or in a refractory window at T1,
replay that window exactly as before: the per-event replay of the delay-free layer restricted to them (their
events, the layer's inputs and recurrent arrivals, series propagation between them); the recurrent reads of
a spike (dL/dt_k of its downstream arrivals) sum both parts, the polynomial one first. ~1.5 % of the
neuron-windows at 15 Hz and H = 1 ms.

Memory: the forward state at every window start (3 floats per neuron and window), the tables (13 x 3 x (K + 2)
floats per neuron), the layer's adjoint and moments (3 + 4 (K + 1) floats per neuron).
"""

from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable

from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.linear_backward import G_A, G_B, G_TAU_W, spike_jump, window_end_term
from exactsnn.engine.cpu.maths import adjoint_layer
from exactsnn.engine.cpu.reverse_merge import last_window_end, next_block
from exactsnn.neurons.linear import TERM_TOL, series_terms
from exactsnn.neurons.series import _ROWS, ADJ_TOL, N_ADJ, layer_norm

__all__ = ["add_moment", "moments_row", "replayed_units", "window_grid", "window_of", "window_tables",
           "windowed_reverse"]

_H_MAX = 2e-3  # longest window (s): more neurons replay a window exactly the longer it is
_NORM_H = 0.25  # ||A|| H at most: K ~ 12 terms
#: the rows of Z read at arrivals: lam_V, lam_I, then nu_I of nu_g, nu_a1, nu_b and nu_d (module docstring of
#: exactsnn.neurons.series)
_READ = (0, 2, 5, 8, 11, 12)


@register_jitable
def window_grid(nrm: float, T: float) -> tuple[float, int]:
    """(H, number of windows) for a layer of norm ``nrm`` (1/s) over [0, T] (s): equal windows tiling [0, T]."""
    h = min(_NORM_H / nrm, _H_MAX) if nrm > 0.0 else _H_MAX
    if not T > 0.0:
        return 0.0, 1
    n_win = max(1, int(math.ceil(T / h)))
    return T / n_win, n_win


@register_jitable
def window_of(t: float, H: float, n_win: int) -> int:
    """The window holding time t (s): w H <= t < (w + 1) H, the last one closed at T (the same comparisons as the
    replays' window starts w H, so that rounding puts an arrival where they look for it)."""
    w = min(int(t / H), n_win - 1)
    while w > 0 and t < w * H:
        w -= 1
    while w < n_win - 1 and t >= (w + 1) * H:
        w += 1
    return w


@register_jitable
def add_moment(wgt: float, s: float, m: np.ndarray) -> None:
    """m_k += wgt s^k: an input of weight wgt arriving s seconds before the moments' reference time."""
    pw = 1.0
    for k in range(m.size):
        m[k] += wgt * pw
        pw *= s


@helper
def moments_row(w: np.ndarray, s: float, M: np.ndarray) -> None:
    """M_k += w s^k for a row w (n,) of inputs arriving s seconds before the window's end (M: (K + 1, n))."""
    pw = 1.0
    for k in range(M.shape[0]):
        mk = M[k]
        for j in range(mk.size):
            mk[j] += w[j] * pw
        pw *= s


def window_tables(C: np.ndarray, T: float) -> tuple[np.ndarray, np.ndarray]:
    """(E, P) of the windows of a sample of T seconds for the (8, n) coefficient rows C: E (13, 3, n) =
    expm(G H)[:, :3] and P (K + 1, 6, 3, n) = the rows ``_READ`` of U_k = G^k[:, :3] / k! (module docstring).
    Once per call, in NumPy (vectorised over the neurons; compiled, it cost 6.7 s of first-call compile time)."""
    nrm = layer_norm(C)
    h, _ = window_grid(nrm, T)
    n = C.shape[1]
    K = series_terms(nrm * h, ADJ_TOL)
    KE = max(K, series_terms(nrm * h, TERM_TOL))
    read = list(_READ)
    U = np.zeros((N_ADJ, 3, n))
    for c in range(3):
        U[c, c, :] = 1.0
    E = U.copy()
    P = np.zeros((K + 1, 6, 3, n))
    P[0] = U[read]
    hk = 1.0
    for k in range(1, KE + 1):
        V = np.empty_like(U)
        for o, c1, y1, c2, y2, e3, y3 in _ROWS:
            V[o] = (C[c1] * U[y1] + C[c2] * U[y2] + e3 * U[y3]) / k
        U = V
        hk *= h
        E += hk * U
        if k <= K:
            P[k] = U[read]
    return E, P


@helper
def _coefficients(P: np.ndarray, lam: np.ndarray, r: int, out: np.ndarray) -> None:
    """out[k, j] = P[k, r] . lam[:, j]: the polynomial of read row r over the window, from lam1 (3, n)."""
    lV, lW, lI = lam[0], lam[1], lam[2]
    for k in range(P.shape[0]):
        p0, p1, p2, o = P[k, r, 0], P[k, r, 1], P[k, r, 2], out[k]
        for j in range(lV.size):
            o[j] = p0[j] * lV[j] + p1[j] * lW[j] + p2[j] * lI[j]


@helper
def _poly(cf: np.ndarray, s: float, out: np.ndarray) -> None:
    """out[j] = sum_k cf[k, j] s^k, summed by rising powers (the terms fall by ||A|| s / k <= 1/4 each: a few
    ulps, like Horner's rule, which makes each pass depend on the last and ran twice as long)."""
    c = cf[0]
    for j in range(out.size):
        out[j] = c[j]
    pw = 1.0
    for k in range(1, cf.shape[0]):
        pw *= s
        c = cf[k]
        for j in range(out.size):
            out[j] += c[j] * pw


@helper
def _clean_arrival(
    w: np.ndarray, s: float, cm: np.ndarray, cf_I: np.ndarray, cf_V: np.ndarray, need_V: bool, params: bool,
    M: np.ndarray, li: np.ndarray, lv: np.ndarray, g: np.ndarray, inv_s: np.ndarray, inv_m: np.ndarray,
) -> float:
    """An arrival of row w (n,) at T1 - s for the neurons of mask ``cm`` (1.0 clean, 0.0 replayed exactly):
    g += cm lam_I (the row's gradient), moments M_k += w s^k (with ``params``); returns
    sum_j cm_j w_j (lam_I/tau_syn - lam_V/tau_mem) when ``need_V`` (dL/dt of the arrival), else 0."""
    _poly(cf_I, s, li)
    for j in range(li.size):
        g[j] += cm[j] * li[j]
    if params:
        moments_row(w, s, M)
    acc = 0.0
    if need_V:
        _poly(cf_V, s, lv)
        for j in range(li.size):
            acc += cm[j] * w[j] * (li[j] * inv_s[j] - lv[j] * inv_m[j])
    return acc


@helper
def _clean_close(
    E: np.ndarray, P: np.ndarray, lam: np.ndarray, cm: np.ndarray, x0: np.ndarray, params: bool, arrivals: bool,
    M: np.ndarray, cf: np.ndarray, G: np.ndarray,
) -> None:
    """The window's start for the clean neurons: parameter terms into G (rows g, a1, b, d; the moments M only if the
    window had ``arrivals``) and lam <- lam(T0)."""
    n = lam.shape[1]
    if params:
        for q in range(4 if arrivals else 0):
            _coefficients(P, lam, 2 + q, cf)
            g = G[q]
            for k in range(M.shape[0]):
                mk, ck = M[k], cf[k]
                for j in range(n):
                    g[j] += cm[j] * ck[j] * mk[j]
        lV, lW, lI = lam[0], lam[1], lam[2]
        for j in range(n):
            if cm[j] != 0.0:
                v, w, i = x0[0, j], x0[1, j], x0[2, j]
                a, b, c = lV[j], lW[j], lI[j]
                for q in range(3):
                    o = 3 + 3 * q
                    G[q, j] += ((E[o, 0, j] * a + E[o, 1, j] * b + E[o, 2, j] * c) * v
                                + (E[o + 1, 0, j] * a + E[o + 1, 1, j] * b + E[o + 1, 2, j] * c) * w
                                + (E[o + 2, 0, j] * a + E[o + 2, 1, j] * b + E[o + 2, 2, j] * c) * i)
                G[3, j] += (E[12, 0, j] * a + E[12, 1, j] * b + E[12, 2, j] * c) * i
    lV, lW, lI = lam[0], lam[1], lam[2]
    for j in range(n):
        if cm[j] != 0.0:
            a, b, c = lV[j], lW[j], lI[j]
            lV[j] = E[0, 0, j] * a + E[0, 1, j] * b + E[0, 2, j] * c
            lW[j] = E[1, 0, j] * a + E[1, 1, j] * b + E[1, 2, j] * c
            lI[j] = E[2, 0, j] * a + E[2, 1, j] * b + E[2, 2, j] * c


@helper
def _reverse_each(
    Z: np.ndarray, h: float, in_ref: np.ndarray, n_ref: int, tau_w: np.ndarray, tau_syn: np.ndarray, params: bool,
    rows: np.ndarray, C: np.ndarray, nrm: float, Y: np.ndarray, Y2: np.ndarray, wl: np.ndarray, xw: np.ndarray,
) -> None:
    """:func:`_reverse_shared` for neurons with their own A, and with ``params`` the parameter adjoints (rows 3-12
    of Z, :mod:`exactsnn.neurons.series`): one series pass; the neurons in a window on their own, written over it.
    In a window the parameter adjoints are 0, except nu_d (I's flow is the same in and out of windows):
    nu_d <- e^{-h/tau_syn} (nu_d + h lam_I)."""
    lV, lW, lI = Z[0], Z[1], Z[2]
    n_w = 0
    if n_ref > 0:
        for j in range(lV.size):
            if in_ref[j]:
                es = math.exp(-h / tau_syn[j])
                wl[n_w] = j
                xw[n_w, 0] = lW[j] * math.exp(-h / tau_w[j])
                xw[n_w, 1] = lI[j] * es
                xw[n_w, 2] = es * (Z[12, j] + h * lI[j]) if params else 0.0
                n_w += 1
    adjoint_layer(Z, h, C, nrm, Y, Y2, params, rows)
    for r in range(n_w):
        j = wl[r]
        lV[j] = 0.0
        lW[j] = xw[r, 0]
        lI[j] = xw[r, 1]
        if params:
            for q in range(3, 12):
                Z[q, j] = 0.0
            Z[12, j] = xw[r, 2]


@helper
def _window_terms(lam_w: float, w_e: float, a: float, tau_w: float, v_reset: float, t_ref: float,
                  g: np.ndarray) -> None:
    """A refractory window's own parameter terms into g (one neuron's row of gP): V is held, so lam_w (w - a v_reset)
    is constant over the window and lam_w(t_e) w_e, its end values, give them in closed form."""
    wd = 1.0 / tau_w
    g[G_TAU_W] += lam_w * (w_e - a * v_reset) * t_ref * wd * wd
    g[G_A] += lam_w * v_reset * -math.expm1(-t_ref * wd)


@helper
def _restart_col(Zs: np.ndarray, r: int, v: float, w: float, i: float, G: np.ndarray, k: int) -> None:
    """Neuron k (column r of Zs) restarts at state (v, w, i): G[:3, k] += nu . x, then nu_g, nu_a1, nu_b = 0."""
    G[0, k] += Zs[3, r] * v + Zs[4, r] * w + Zs[5, r] * i
    G[1, k] += Zs[6, r] * v + Zs[7, r] * w + Zs[8, r] * i
    G[2, k] += Zs[9, r] * v + Zs[10, r] * w + Zs[11, r] * i
    for q in range(3, 12):
        Zs[q, r] = 0.0


@helper
def _list_units(us_: np.ndarray, lo: int, hi: int, pos: np.ndarray, sl: np.ndarray, n_sl: int) -> int:
    """Append the neurons of spikes lo..hi-1 not listed yet to the list sl (pos[k]: neuron k's place, -1 if
    none); returns the new length."""
    for q in range(lo, hi):
        k = us_[q]
        if pos[k] < 0:
            pos[k] = n_sl
            sl[n_sl] = k
            n_sl += 1
    return n_sl


@helper
def replayed_units(
    ts_: np.ndarray, us_: np.ndarray, t_ref: float, T0: float, i_s: int, i_r: int, in_ref: np.ndarray,
    pos: np.ndarray, sl: np.ndarray, cm: np.ndarray,
) -> tuple[int, int, int]:
    """The neurons a window [T0, ...) replays exactly: those refractory at its end (in_ref), spiking in it (spikes
    s_lo + 1 .. i_s) or whose refractory window ends in it (spikes r_lo + 1 .. i_r), listed in sl (pos[j]: neuron
    j's place) with cm[j] = 0. Returns (s_lo, r_lo, their number)."""
    s_lo = i_s
    while s_lo >= 0 and ts_[s_lo] >= T0:
        s_lo -= 1
    r_lo = i_r
    while r_lo >= 0 and ts_[r_lo] + t_ref >= T0:
        r_lo -= 1
    n_sl = 0
    for j in range(in_ref.size):
        if in_ref[j]:
            pos[j] = n_sl
            sl[n_sl] = j
            n_sl += 1
    n_sl = _list_units(us_, s_lo + 1, i_s + 1, pos, sl, n_sl)  # spikes in the window
    n_sl = _list_units(us_, r_lo + 1, i_r + 1, pos, sl, n_sl)  # refractory-window ends in it
    for r in range(n_sl):
        cm[sl[r]] = 0.0
    return s_lo, r_lo, n_sl


@helper
def _replayed_arrival(
    w: np.ndarray, Zs: np.ndarray, sl: np.ndarray, g: np.ndarray, inv_s: np.ndarray, inv_m: np.ndarray, params: bool,
    G: np.ndarray,
) -> float:
    """An arrival of row w (n,) at the neurons replayed event by event (column r of Zs is neuron sl[r]): g += lam_I,
    with ``params`` G += w nu_I; returns sum_r w (lam_I/tau_syn - lam_V/tau_mem) (dL/dt of the arrival, their part)."""
    acc = 0.0
    for r in range(Zs.shape[1]):
        j = sl[r]
        wj = w[j]
        g[j] += Zs[2, r]
        acc += wj * (Zs[2, r] * inv_s[j] - Zs[0, r] * inv_m[j])
        if params:
            G[0, j] += wj * Zs[5, r]
            G[1, j] += wj * Zs[8, r]
            G[2, j] += wj * Zs[11, r]
            G[3, j] += wj * Zs[12, r]
    return acc


@kernel
def windowed_reverse(
    tin: np.ndarray, uin: np.ndarray, n_in: int, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool, ts_: np.ndarray,
    us_: np.ndarray, down: np.ndarray, tau_mem: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray,
    bv: np.ndarray, v_th: float, v_reset: float, t_ref: float, T: float, want_up: bool, params: bool,
    rows: np.ndarray, C: np.ndarray, nrm: float, H: float, Xw: np.ndarray, E: np.ndarray, P: np.ndarray,
    ref_end: np.ndarray, w_spk: np.ndarray, I_spk: np.ndarray, w_end: np.ndarray, I_end: np.ndarray,
    gWt: np.ndarray, gRt: np.ndarray, gP: np.ndarray, up: np.ndarray, G: np.ndarray,
) -> None:
    """Reverse replay of one sample over the windows of length H (module docstring), from the forward replay's
    window-start states ``Xw`` (n_win, 3, n) and spike/window-end records; arguments as
    :func:`exactsnn.engine.cpu.linear_dense_backward.linear_dense_backward_sample`. Parameter terms into G (4, n),
    rows g, a1, b, d."""
    n = Wt.shape[1]
    n_s = ts_.size
    n_win = Xw.shape[0]
    K1 = P.shape[0]
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
    M = np.zeros((K1, n))
    li = np.empty(n)
    lv = np.empty(n)
    pos = np.full(n, -1, np.int64)
    sl = np.empty(n, np.int64)
    ie = n_in - 1
    i_s = n_s - 1
    i_r = last_window_end(ts_, t_ref, T)
    for w in range(n_win - 1, -1, -1):
        T0 = w * H
        T1 = T if w == n_win - 1 else (w + 1) * H
        # the window's events: [T0, T1), the last window [T0, T]
        e_lo = ie
        while e_lo >= 0 and tin[e_lo] >= T0:
            e_lo -= 1
        s_lo, r_lo, n_sl = replayed_units(ts_, us_, t_ref, T0, i_s, i_r, in_ref, pos, sl, cm)
        # ---- clean neurons: polynomials from lam(T1)
        any_arrival = e_lo < ie or (has_rec and s_lo < i_s)
        if any_arrival:
            _coefficients(P, lam, 1, cf_I)
            if want_up or (has_rec and s_lo < i_s):
                _coefficients(P, lam, 0, cf_V)
            if params:
                M[:] = 0.0
            for q in range(e_lo + 1, ie + 1):
                u = uin[q]
                d = _clean_arrival(Wt[u], T1 - tin[q], cm, cf_I, cf_V, want_up, params, M, li, lv, gWt[u], inv_s,
                                   inv_m)
                if want_up:
                    up[q] += d
            if has_rec:
                for q in range(s_lo + 1, i_s + 1):
                    k = us_[q]
                    rec_down[q] += _clean_arrival(Rt[k], T1 - ts_[q], cm, cf_I, cf_V, True, params, M, li, lv,
                                                  gRt[k], inv_s, inv_m)
        _clean_close(E, P, lam, cm, Xw[w], params, any_arrival, M, cf, G)
        # ---- the others: the per-event replay, restricted to them
        if n_sl > 0:
            Zs = np.zeros((N_ADJ, n_sl))
            Cs = np.empty((8, n_sl))
            in_s = np.empty(n_sl, np.bool_)
            tw_s = np.empty(n_sl)
            ts_s = np.empty(n_sl)
            Ys = np.empty((N_ADJ, n_sl))
            Y2s = np.empty((N_ADJ, n_sl))
            wl = np.empty(n_sl, np.int64)
            xw = np.empty((n_sl, 3))
            n_ref = 0
            for r in range(n_sl):
                j = sl[r]
                Zs[0, r], Zs[1, r], Zs[2, r] = lam[0, j], lam[1, j], lam[2, j]
                for c in range(8):
                    Cs[c, r] = C[c, j]
                in_s[r] = in_ref[j]
                n_ref += 1 if in_ref[j] else 0
                tw_s[r] = tau_w[j]
                ts_s[r] = tau_syn[j]
            t = T1
            while True:
                te, e0, r0, s0 = next_block(tin, ie, ts_, i_r, i_s, t_ref)
                if te < T0:
                    break
                if te < t:
                    _reverse_each(Zs, t - te, in_s, n_ref, tw_s, ts_s, params, rows, Cs, nrm, Ys, Y2s, wl, xw)
                    t = te
                if has_rec:
                    for q in range(s0 + 1, i_s + 1):
                        k = us_[q]
                        rec_down[q] += _replayed_arrival(Rt[k], Zs, sl, gRt[k], inv_s, inv_m, params, G)
                for q in range(e0 + 1, ie + 1):
                    u = uin[q]
                    d = _replayed_arrival(Wt[u], Zs, sl, gWt[u], inv_s, inv_m, params, G)
                    if want_up:
                        up[q] += d
                for q in range(i_r, r0, -1):
                    k = us_[q]
                    r = pos[k]
                    stored[q] = window_end_term(Zs[0, r], I_end[q], w_end[q], v_reset, tau_mem[k])
                    if params:
                        _restart_col(Zs, r, v_reset, w_end[q], I_end[q], G, k)
                        _window_terms(Zs[1, r], w_end[q], av[k], tau_w[k], v_reset, t_ref, gP[k])
                    Zs[0, r] = 0.0
                    in_s[r] = True
                    n_ref += 1
                for q in range(i_s, s0, -1):
                    k = us_[q]
                    r = pos[k]
                    gP[k, G_B] += Zs[1, r]
                    if params and t_ref == 0.0:
                        _restart_col(Zs, r, v_reset, w_spk[q] + bv[k], I_spk[q], G, k)
                    Zs[0, r] = spike_jump(Zs[0, r], Zs[1, r], I_spk[q], w_spk[q], stored[q], t_ref, down[q],
                                          rec_down[q], tau_mem[k], tau_w[k], av[k], bv[k], v_th, v_reset)
                    if in_s[r]:
                        in_s[r] = False
                        n_ref -= 1
                ie, i_r, i_s = e0, r0, s0
            if t > T0:
                _reverse_each(Zs, t - T0, in_s, n_ref, tw_s, ts_s, params, rows, Cs, nrm, Ys, Y2s, wl, xw)
            for r in range(n_sl):
                j = sl[r]
                if params:  # nu restarts at the window's start, nu_d too (as for the clean neurons)
                    x0 = Xw[w]
                    _restart_col(Zs, r, x0[0, j], x0[1, j], x0[2, j], G, j)
                    G[3, j] += Zs[12, r] * x0[2, j]
                lam[0, j], lam[1, j], lam[2, j] = Zs[0, r], Zs[1, r], Zs[2, r]
                in_ref[j] = in_s[r]
                pos[j] = -1
                cm[j] = 1.0
        ie, i_s, i_r = e_lo, s_lo, r_lo
