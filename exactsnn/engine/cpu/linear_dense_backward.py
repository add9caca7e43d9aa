"""EventProp reverse replay of a delay-free layer of linear 3-state neurons (adLIF) on a shared clock.

The maths (adjoint flow, the jump at a spike with and without a refractory window, dL/db) is derived in
:mod:`exactsnn.neurons.adlif`; the jump is :func:`~exactsnn.engine.cpu.linear_backward.spike_jump` and the
window's end term :func:`~exactsnn.engine.cpu.linear_backward.window_end_term`, shared with the arrival-list
replay. The schedule is that of the LIF shared-clock replay
(:func:`exactsnn.engine.cpu.backward.dense_backward_sample`): without delays every input reaches every neuron
at once, so the whole layer is brought from event to event together and nothing is listed per arrival.

Used for every layer without delays (layers with delays: :mod:`exactsnn.engine.cpu.linear_backward`). Learned
tau_mem, tau_w, tau_syn, a: dL/dp = integral lam^T (dA/dp) x dt needs the forward state, which this replay does not
keep per stretch; instead each neuron carries parameter adjoints nu (:mod:`exactsnn.neurons.series`: three 3-vectors
and a scalar serve all four parameters) back with lam, and the integral is collected where x receives something:
W nu_I at every arrival, nu . x(t_r) where a free segment starts (the end of a refractory window, state
(v_reset, w_e, I_e), or the spike itself without one, state (v_reset, w^- + b, I^-)), after which nu restarts
from 0. Inside a window V is held, so its own terms are in closed form (lam_w (w - a v_reset) is constant there)::

    dL/dtau_w += lam_w(t_e) (w_e - a v_reset) t_ref / tau_w^2     dL/da += lam_w(t_e) v_reset (1 - e^{-t_ref/tau_w})

and I's flow (the same in and out of windows) makes nu_d (tau_syn) a scalar that never restarts. Learning b is
dL/db = sum of lam_w(t_k^+) over the neuron's spikes. With per-neuron parameters (learned or not) the layer goes
over each stretch in one series pass (:func:`~exactsnn.neurons.series.propagate_layer`, ``adjoint_layer``), the
neurons in a window on their own.

Per sample, over three time-ordered event streams (inputs, refractory ends, own spikes):

1. Forward replay with the known spike times (no crossing search): the layer's state x = (V, w, I) goes
   over each stretch of length h between consecutive inputs / spikes by Phi(h) = expm(A h) (one cached 3x3
   for the whole layer when the neurons share their parameters, the series pass otherwise); a neuron in a
   refractory window follows the window's closed form up to its end. Only what the jumps need is kept:
   w and I just before each spike and at the end of its window.
2. Reverse replay: lam = (lam_V, lam_w, lam_I) = dL/dx of the whole layer goes back over each stretch by
   Phi(h)^T lam (7 multiply-adds per neuron: I feeds V and w but nothing feeds I), or inside a window by
   lam_V = 0, lam_w *= e^{-h/tau_w}, lam_I *= e^{-h/tau_syn}. An input adds lam_I to its dL/dW row and, when
   asked, W . (lam_I/tau_syn - lam_V/tau_mem) to its dL/dt; a window's end stores its S and sets lam_V = 0;
   a spike collects its zero-delay recurrent arrivals (after the spike in the forward pass), then lam_V jumps.
   With per-neuron parameters (learned or not) the reverse replay is windowed instead
   (:mod:`exactsnn.engine.cpu.linear_windows`: per-neuron polynomials over ~1 ms windows; the neurons with an
   event of their own in a window replay it event by event, lam and nu together by the block series); the
   forward replay then also keeps the layer's state at every window start.

At equal times the forward order is spikes, window ends, inputs, recurrent arrivals (that of
:mod:`exactsnn.engine.cpu.linear_backward`); the reverse replay takes the reverse. Memory: the layer's state
and adjoint (6 floats per neuron) and 6 floats per spike, with per-neuron parameters the window-start states
(3 floats per neuron and window) and the window tables; no per-arrival list.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.extending import register_jitable

from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.linear_backward import G_A, G_B, G_TAU_MEM, G_TAU_SYN, G_TAU_W, spike_jump, window_end_term
from exactsnn.engine.cpu.linear_windows import window_grid, windowed_reverse
from exactsnn.engine.cpu.maths import advance, layer_norm, propagate_layer
from exactsnn.engine.cpu.reverse_merge import last_window_end, next_block
from exactsnn.engine.cpu.rows import add_row
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.linear import expm_block_into


@helper
def _forward_shared(
    X: np.ndarray, t0: float, t1: float, ref_end: np.ndarray, ref_spike: np.ndarray, n_ref: int, A: np.ndarray,
    tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, v_reset: float, F: np.ndarray, s1: np.ndarray,
    s2: np.ndarray, cache: np.ndarray, Phi: np.ndarray, x: np.ndarray, w_end: np.ndarray, I_end: np.ndarray,
) -> int:
    """Bring the layer's state X (3, n: rows V, w, I) from t0 to t1 when all neurons share A (one cached
    propagator F); record w and I at every window's end in (t0, t1]. ``n_ref``: neurons whose window is open at
    t0; returns the number still open at t1."""
    h = t1 - t0
    V, Wv, I = X[0], X[1], X[2]
    if cache[0] != h:
        expm_block_into(A[0], h, F)
        cache[0] = h
    f00, f01, f02, f10, f11, f12, f22 = F[0, 0], F[0, 1], F[0, 2], F[1, 0], F[1, 1], F[1, 2], F[2, 2]
    if n_ref == 0:  # the common case: a loop the compiler vectorises
        for j in range(V.size):
            v, w, i = V[j], Wv[j], I[j]
            V[j] = f00 * v + f01 * w + f02 * i
            Wv[j] = f10 * v + f11 * w + f12 * i
            I[j] = f22 * i
        return 0
    still = 0
    for j in range(V.size):
        if ref_end[j] > t0:
            still += _window_stretch(X, j, t0, t1, ref_end, ref_spike, A, tau_w, tau_syn, av, v_reset, F, s1, s2,
                                     cache, Phi, x, w_end, I_end)
            V[j], Wv[j], I[j] = x[0], x[1], x[2]
        else:
            v, w, i = V[j], Wv[j], I[j]
            V[j] = f00 * v + f01 * w + f02 * i
            Wv[j] = f10 * v + f11 * w + f12 * i
            I[j] = f22 * i
    return still


@register_jitable
def _window_stretch(
    X: np.ndarray, j: int, t0: float, t1: float, ref_end: np.ndarray, ref_spike: np.ndarray, A: np.ndarray,
    tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, v_reset: float, F: np.ndarray, s1: np.ndarray,
    s2: np.ndarray, cache: np.ndarray, Phi: np.ndarray, x: np.ndarray, w_end: np.ndarray, I_end: np.ndarray,
) -> int:
    """Neuron j, in a window at t0, from t0 to t1 into x; records w and I at the window's end if it closes by
    t1, then the free rest of the stretch. Returns 1 if the window is still open at t1. Inlined into its callers
    (a call per windowed neuron per stretch cost the shared-parameter replay ~5 %)."""
    x[0], x[1], x[2] = X[0, j], X[1, j], X[2, j]
    if ref_end[j] > t1:
        advance(x, t0, t1, ref_end[j], A[j], tau_w[j], tau_syn[j], av[j], v_reset, Phi, s1, s2, cache, F, False)
        return 1
    I_end[ref_spike[j]] = advance(x, t0, ref_end[j], ref_end[j], A[j], tau_w[j], tau_syn[j], av[j], v_reset, Phi,
                                  s1, s2, cache, F, False)
    w_end[ref_spike[j]] = x[1]
    advance(x, ref_end[j], t1, -math.inf, A[j], tau_w[j], tau_syn[j], av[j], v_reset, Phi, s1, s2, cache, F, False)
    return 0


@helper
def _forward_each(
    X: np.ndarray, t0: float, t1: float, ref_end: np.ndarray, ref_spike: np.ndarray, n_ref: int, A: np.ndarray,
    tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, v_reset: float, C: np.ndarray, nrm: float,
    F: np.ndarray, s1: np.ndarray, s2: np.ndarray, cache: np.ndarray, Phi: np.ndarray, x: np.ndarray,
    w_end: np.ndarray, I_end: np.ndarray, Y: np.ndarray, wl: np.ndarray, xw: np.ndarray,
) -> int:
    """:func:`_forward_shared` for neurons with their own A: one series pass over the layer
    (:func:`~exactsnn.neurons.series.propagate_layer`); the neurons in a window are advanced on their own first
    (``wl``, ``xw``: their list and states) and written over it."""
    still = 0
    n_w = 0
    if n_ref > 0:
        for j in range(X.shape[1]):
            if ref_end[j] > t0:
                still += _window_stretch(X, j, t0, t1, ref_end, ref_spike, A, tau_w, tau_syn, av, v_reset, F, s1, s2,
                                         cache, Phi, x, w_end, I_end)
                wl[n_w] = j
                xw[n_w, 0], xw[n_w, 1], xw[n_w, 2] = x[0], x[1], x[2]
                n_w += 1
    propagate_layer(X, t1 - t0, C, nrm, Y)
    for r in range(n_w):
        j = wl[r]
        X[0, j], X[1, j], X[2, j] = xw[r, 0], xw[r, 1], xw[r, 2]
    return still


@helper
def _reverse_shared(
    Z: np.ndarray, h: float, in_ref: np.ndarray, n_ref: int, A: np.ndarray, tau_w: np.ndarray,
    tau_syn: np.ndarray, F: np.ndarray, cache: np.ndarray,
) -> None:
    """lam of the layer (rows 0-2 of Z) back over h seconds when all neurons share A: Phi(h)^T lam, or inside a
    window lam_V = 0 and lam_w, lam_I decay."""
    lV, lW, lI = Z[0], Z[1], Z[2]
    if cache[0] != h:
        expm_block_into(A[0], h, F)
        cache[0] = h
    f00, f01, f02, f10, f11, f12, f22 = F[0, 0], F[0, 1], F[0, 2], F[1, 0], F[1, 1], F[1, 2], F[2, 2]
    if n_ref == 0:
        for j in range(lV.size):
            v, w = lV[j], lW[j]
            lV[j] = f00 * v + f10 * w
            lW[j] = f01 * v + f11 * w
            lI[j] = f02 * v + f12 * w + f22 * lI[j]
        return
    ew = math.exp(-h / tau_w[0])
    es = math.exp(-h / tau_syn[0])
    for j in range(lV.size):
        if in_ref[j]:  # lam_V = 0 in the window
            lW[j] *= ew
            lI[j] *= es
        else:
            v, w = lV[j], lW[j]
            lV[j] = f00 * v + f10 * w
            lW[j] = f01 * v + f11 * w
            lI[j] = f02 * v + f12 * w + f22 * lI[j]


@njit(cache=True, _nrt=False, fastmath={"reassoc"})
def _dot(w: np.ndarray, lI: np.ndarray, lV: np.ndarray, inv_s: np.ndarray, inv_m: np.ndarray) -> float:
    """sum_j w_j (lam_I,j/tau_syn,j - lam_V,j/tau_mem,j): dL/dt of an arrival of row w at every neuron.

    Reassociation only lets the sum be vectorised (a fixed order, so results stay reproducible).
    """
    acc = 0.0
    for j in range(w.size):
        acc += w[j] * (lI[j] * inv_s[j] - lV[j] * inv_m[j])
    return acc


@helper
def _parameter_gradients(C: np.ndarray, G: np.ndarray, gP: np.ndarray) -> None:
    """The sums of nu . injection (G: rows g, a1, b, d) as dL/dtau_mem, dL/da, dL/dtau_w, dL/dtau_syn into gP."""
    for j in range(G.shape[1]):
        m, wa, wd, sj = C[0, j], C[1, j], C[2, j], C[3, j]
        gP[j, G_TAU_MEM] += m * m * G[0, j]
        gP[j, G_A] += wd * G[1, j]
        gP[j, G_TAU_W] += wd * (wd * G[2, j] - wa * G[1, j])
        gP[j, G_TAU_SYN] += sj * sj * G[3, j]


@kernel
def linear_dense_backward_sample(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool, ts_: np.ndarray,
    us_: np.ndarray, down: np.ndarray, A: np.ndarray, tau_mem: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray,
    av: np.ndarray, bv: np.ndarray, v_th: float, v_reset: float, t_ref: float, T: float, want_up: bool,
    params: bool, rows: np.ndarray, C: np.ndarray | None, E: np.ndarray, P: np.ndarray, gWt: np.ndarray,
    gRt: np.ndarray, gP: np.ndarray, up: np.ndarray,
) -> None:
    """Reverse replay of one sample of a delay-free linear layer (see the module docstring).

    ``A`` (n, 3, 3) and tau_mem, tau_w, tau_syn, a, b (n,) per neuron; ``down[s]``: dL/dt of own spike s from
    outside the layer. Weights and gradients are transposed ([pre, post]): dL/dW is added into gWt (n_pre, n),
    dL/dR into gRt (n, n), dL/db into gP[:, G_B] (gP: (n, 5), columns of
    :mod:`~exactsnn.engine.cpu.linear_backward`), with ``params`` dL/dtau_mem, dL/dtau_w, dL/dtau_syn, dL/da into
    its other columns (``rows``: the adjoint rows they need, :func:`exactsnn.neurons.series.adjoint_rows`), and
    with ``want_up`` dL/dt of input event e into up[e]. ``C``: None when the neurons
    share A and learn none of its parameters (then ``params`` is False), else the (8, n) rows of
    :func:`exactsnn.neurons.series.coefficients`. The two cases compile apart (Numba prunes the branches on
    ``C is None``), so that a layer of shared parameters does not wait for the series code to compile.
    """
    n = Wt.shape[1]
    n_s = ts_.size
    n_in = np.searchsorted(tin, T, side="right")  # inputs after T never reached the layer
    nrm = 0.0
    if C is not None:
        nrm = layer_norm(C)
    F = np.empty((3, 3))
    Phi = np.empty((3, 3))
    s1 = np.empty((3, 3))
    s2 = np.empty((3, 3))
    x = np.empty(3)
    cache = np.full(1, -1.0)
    wl = np.empty(n, np.int64)
    xw = np.empty((n, 3))
    # ---- (1) forward replay: w and I just before each spike and at each window's end
    X = np.zeros((3, n))
    n_series = 0 if C is None else n  # the series' scratch, for per-neuron parameters only
    Y = np.empty((3, n_series))
    V, Wv, I = X[0], X[1], X[2]
    ref_end = np.full(n, -np.inf)
    ref_spike = np.zeros(n, np.int64)
    w_spk = np.empty(n_s)
    I_spk = np.empty(n_s)
    w_end = np.full(n_s, np.nan)
    I_end = np.full(n_s, np.nan)
    n_ref = 0
    t = 0.0
    e = 0
    s = 0
    # per-neuron parameters: the state at every window start, for the windowed reverse (linear_windows)
    H, n_win = window_grid(nrm, T) if C is not None else (0.0, 0)
    Xw = np.empty((n_win, 3, n))
    wi = 0
    while e < n_in or s < n_s or wi < n_win:
        te = tin[e] if e < n_in else math.inf
        if s < n_s and ts_[s] <= te:
            te = ts_[s]
        if C is not None:
            while wi < n_win and wi * H <= te:  # window starts up to te: the state before te's events
                if wi * H > t:
                    n_ref = _forward_each(X, t, wi * H, ref_end, ref_spike, n_ref, A, tau_w, tau_syn, av, v_reset,
                                          C, nrm, F, s1, s2, cache, Phi, x, w_end, I_end, Y, wl, xw)
                    t = wi * H
                Xw[wi] = X
                wi += 1
        if te == math.inf:  # no event left: the window starts after the last one are stored
            break
        if te > t:
            if C is None:
                n_ref = _forward_shared(X, t, te, ref_end, ref_spike, n_ref, A, tau_w, tau_syn, av, v_reset, F, s1,
                                        s2, cache, Phi, x, w_end, I_end)
            else:
                n_ref = _forward_each(X, t, te, ref_end, ref_spike, n_ref, A, tau_w, tau_syn, av, v_reset, C, nrm,
                                      F, s1, s2, cache, Phi, x, w_end, I_end, Y, wl, xw)
            t = te
        s_first = s
        while s < n_s and ts_[s] == te:
            k = us_[s]
            w_spk[s] = Wv[k]
            I_spk[s] = I[k]
            V[k] = v_reset
            Wv[k] += bv[k]
            if t_ref > 0.0:
                ref_end[k] = te + t_ref
                ref_spike[k] = s
                n_ref += 1
            s += 1
        while e < n_in and tin[e] == te:
            add_row(I, Wt[uin[e]])
            e += 1
        if has_rec:
            for q in range(s_first, s):
                add_row(I, Rt[us_[q]])
    for j in range(n):  # windows that close after the last event, before T
        if t < ref_end[j] < T:
            x[0], x[1], x[2] = V[j], Wv[j], I[j]
            I_end[ref_spike[j]] = advance(x, t, ref_end[j], ref_end[j], A[j], tau_w[j], tau_syn[j], av[j], v_reset,
                                          Phi, s1, s2, cache, F, False)
            w_end[ref_spike[j]] = x[1]
    # ---- (2) reverse replay
    if C is not None:
        G = np.zeros((4, n))
        windowed_reverse(tin, uin, n_in, Wt, Rt, has_rec, ts_, us_, down, tau_mem, tau_w, tau_syn, av, bv, v_th,
                         v_reset, t_ref, T, want_up, params, rows, C, nrm, H, Xw, E, P, ref_end, w_spk, I_spk, w_end,
                         I_end, gWt, gRt, gP, up, G)
        if params:
            _parameter_gradients(C, G, gP)
        return
    Z = np.zeros((3, n))
    lV, lW, lI = Z[0], Z[1], Z[2]
    inv_m = 1.0 / tau_mem
    inv_s = 1.0 / tau_syn
    in_ref = np.zeros(n, np.bool_)
    n_ref = 0
    for j in range(n):
        if ref_end[j] >= T:  # the neuron's last window is still open at T
            in_ref[j] = True
            n_ref += 1
    stored = np.zeros(n_s)
    rec_down = np.zeros(n_s)
    cache[0] = -1.0
    ie = n_in - 1
    i_s = n_s - 1
    i_r = last_window_end(ts_, t_ref, T)
    t = T
    while ie >= 0 or i_r >= 0 or i_s >= 0:
        te, e0, r0, s0 = next_block(tin, ie, ts_, i_r, i_s, t_ref)
        if te < t:
            _reverse_shared(Z, t - te, in_ref, n_ref, A, tau_w, tau_syn, F, cache)
            t = te
        if has_rec:
            for q in range(s0 + 1, i_s + 1):
                k = us_[q]
                add_row(gRt[k], lI)
                rec_down[q] = _dot(Rt[k], lI, lV, inv_s, inv_m)
        for q in range(e0 + 1, ie + 1):
            u = uin[q]
            add_row(gWt[u], lI)
            if want_up:
                up[q] += _dot(Wt[u], lI, lV, inv_s, inv_m)
        for q in range(i_r, r0, -1):
            k = us_[q]
            stored[q] = window_end_term(lV[k], I_end[q], w_end[q], v_reset, tau_mem[k])
            lV[k] = 0.0
            in_ref[k] = True
            n_ref += 1
        for q in range(i_s, s0, -1):
            k = us_[q]
            gP[k, G_B] += lW[k]
            lV[k] = spike_jump(lV[k], lW[k], I_spk[q], w_spk[q], stored[q], t_ref, down[q], rec_down[q], tau_mem[k],
                               tau_w[k], av[k], bv[k], v_th, v_reset)
            if in_ref[k]:
                in_ref[k] = False
                n_ref -= 1
        ie, i_r, i_s = e0, r0, s0


@threaded_driver
def linear_dense_backward_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray, down: np.ndarray, A: np.ndarray,
    tau_mem: np.ndarray, tau_w: np.ndarray, tau_syn: np.ndarray, av: np.ndarray, bv: np.ndarray, v_th: float,
    v_reset: float, t_ref: float, T: float, want_up: bool, params: bool, rows: np.ndarray, C: np.ndarray | None,
    E: np.ndarray, P: np.ndarray, gWt: np.ndarray, gRt: np.ndarray, gP: np.ndarray, up: np.ndarray,
) -> None:
    """:func:`linear_dense_backward_sample` over every sample (Python threads, :mod:`exactsnn.engine.cpu.threads`);
    gWt, gRt, gP have a leading per-thread axis."""

    def work(b: int, t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        linear_dense_backward_sample(
            times[lo:hi], units[lo:hi], Wt, Rt, has_rec, s_times[slo:shi], s_units[slo:shi], down[slo:shi], A,
            tau_mem, tau_w, tau_syn, av, bv, v_th, v_reset, t_ref, T, want_up, params, rows, C, E, P, gWt[t], gRt[t],
            gP[t], up[lo:hi],
        )

    for_each_sample(work, offsets.size - 1)
