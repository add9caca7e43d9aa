"""EventProp reverse replay of one spiking LIF layer (CPU kernels).

Convention: the adjoint of a neuron is ``lam = (lam_V, lam_I) = dL/d(V, I)(t)``, the sensitivity
of the loss to nudging the neuron's state at time t and letting the network run on. All adjoints
vanish at t = T.

Between events (state x = (V, I), dx/dt = A x, A = [[-1/tau_mem, 1/tau_mem], [0, -1/tau_syn]]),
dlam/dt = -A^T lam, so going back over a stretch of length h with the forward factors
(a_m, c, a_s) of :func:`exactsnn.neurons.lif.lif_factors`::

    lam_V(t - h) = a_m lam_V(t)        lam_I(t - h) = c lam_V(t) + a_s lam_I(t)

An arrival of weight w at t_a (I += w) leaves lam continuous and contributes::

    dL/dw = lam_I(t_a)        dL/dt_a = w (lam_I/tau_syn - lam_V/tau_mem)(t_a)

(the second: moving the jump later by d leaves the state short of -d A w e_I). dL/dt_a is also the
arrival's share of dL/d(delay) and of dL/d(time of the presynaptic spike).

Spike of neuron k at t_k (V(t_k^-) = v_th, V' = (I - v_th)/tau_mem > 0) with refractory window
ending at t_e = t_k + t_ref. During the window V is clamped, so perturbations of V there have no
effect: lam_V = 0 on [t_k, t_e). Shifting t_e later by d replaces free evolution by the clamp on
[t_e, t_e + d): dL/dt_e = -lam_V(t_e^+) (I(t_e) - v_reset)/tau_mem (and t_e moves with t_k). A
perturbation dV of V(t_k^-) moves the spike by -dV tau_mem/(I - v_th), hence the jump::

    lam_V(t_k^-) = [ (I(t_e) - v_reset) lam_V(t_e^+) - tau_mem dL/dt_k|_downstream ] / (I(t_k) - v_th)

where dL/dt_k|_downstream = sum over the spike's arrivals (next layer, recurrent targets, loss) of
dL/dt_a. For t_ref = 0 this is the published jump; a window ending at or after T contributes no
end term. lam_I is continuous at spikes. Going backward, at t_e the end term is stored and lam_V
set to 0; the stored term is used at t_k. Because lam_V = 0 inside the window the free adjoint
propagation above is exact there too (lam_I then simply decays).

Event order: the reverse of the forward order. At equal times arrivals are replayed before
refractory ends and spikes (the forward handles a crossing before the arrivals at its instant,
including its own zero-delay recurrent arrivals).

Per-neuron time constants (a delay-free layer that learns tau_mem / tau_syn). With no explicit tau in the
threshold, the reset or the refractory clock, dL/dp = int_0^T lam^T (dA/dp) x dt (the spike-time effects are
already in the lam_V jumps, which use each neuron's own tau_mem): dL/dtau_mem = int lam_V (V - I) dt / tau_mem^2,
dL/dtau_syn = int lam_I I dt / tau_syn^2 (zero tau_mem integrand in refractory windows, where lam_V = 0). No
forward state is needed: with nu^p(t) = d/dx(t) of the rest of that integral (perturbations carried by the
linear flow, event times fixed), nu' = -A^T nu - (dA/dp)^T lam, nu(T) = 0, so nu^p is the tangent d lam/dp of
the adjoint propagator: back over a stretch h, with the factors of ``lif_rate_tangents``::

    nu_m,V <- a_m nu_m,V + (da_m/dtau_mem) lam_V         nu_m,I <- c nu_m,V + a_s nu_m,I + (dc/dtau_mem) lam_V
    nu_s,I <- a_s nu_s,I + (dc/dtau_syn) lam_V + (da_s/dtau_syn) lam_I     (nu_s,V = 0)

(closed forms in divided differences of e^{-x h}: exact at tau_mem = tau_syn). x is built by injections only,
so the integral is the sum of nu at each: an arrival of weight w adds w nu_I (both p); V restarting from v_reset
(at the spike for t_ref = 0, at the refractory end otherwise) adds v_reset nu_m,V there, then nu_m,V = 0 (V
before a reset has no effect after it). nu is continuous at arrivals.

Two kernels, as in the forward pass: a shared-clock one for layers without delays (every input
event is a vector event over the layer, O(n) vectorisable work) and a per-arrival one with lazy
per-neuron adjoints for layers with delays. Gradients are accumulated in per-thread buffers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.reverse_merge import last_window_end, next_block
from exactsnn.engine.cpu.rows import add_row
from exactsnn.engine.cpu.sort import stable_argsort
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.lif import lif_factors, lif_rate_tangents, lif_short_stretch


@njit(cache=True)
def _reverse_order(times: np.ndarray) -> np.ndarray:
    """Indices of ``times`` by decreasing time; equal times keep their order in the array."""
    return stable_argsort(-times)


@helper
def _spike_jump(
    lam_V: float, s: int, I_spk: np.ndarray, I_ref: np.ndarray, stored: np.ndarray, down: float,
    t_ref: float, tau_mem: float, v_th: float, v_reset: float,
) -> float:
    """lam_V just before spike s (see the module docstring)."""
    if t_ref > 0.0:
        term = stored[s]
    else:
        term = (I_spk[s] - v_reset) * lam_V
    return (term - tau_mem * down) / (I_spk[s] - v_th)


@njit(cache=True, _nrt=False, fastmath={"reassoc"})
def _dot(w: np.ndarray, lam_I: np.ndarray, lam_V: np.ndarray, inv_s: float, inv_m: float) -> float:
    """sum_j w_j (lam_I,j/tau_syn - lam_V,j/tau_mem): dL/dt of an arrival of row w at every neuron.

    Reassociation only lets the sum be vectorised (a fixed order, so results stay reproducible).
    """
    acc = 0.0
    for j in range(w.size):
        acc += w[j] * (lam_I[j] * inv_s - lam_V[j] * inv_m)
    return acc


@helper
def _decay_collect(
    lam_V: np.ndarray, lam_I: np.ndarray, a_m: float, cf: float, a_s: float, gw: np.ndarray
) -> None:
    """Carry the adjoints back over one stretch and add the new lam_I to ``gw`` (one fused pass)."""
    for j in range(lam_V.size):
        lv = lam_V[j]
        li = cf * lv + a_s * lam_I[j]
        lam_V[j] = a_m * lv
        lam_I[j] = li
        gw[j] += li


@njit(cache=True, _nrt=False, fastmath={"reassoc"})
def _decay_collect_dot(
    lam_V: np.ndarray, lam_I: np.ndarray, a_m: float, cf: float, a_s: float, gr: np.ndarray, r: np.ndarray,
    inv_s: float, inv_m: float,
) -> float:
    """:func:`_decay`, then ``gr += lam_I`` and the :func:`_dot` of ``r``, in one pass (a lone spike)."""
    acc = 0.0
    for j in range(lam_V.size):
        lv = a_m * lam_V[j]
        li = cf * lam_V[j] + a_s * lam_I[j]
        lam_V[j] = lv
        lam_I[j] = li
        gr[j] += li
        acc += r[j] * (li * inv_s - lv * inv_m)
    return acc


@helper
def _decay(lam_V: np.ndarray, lam_I: np.ndarray, a_m: float, cf: float, a_s: float) -> None:
    for j in range(lam_V.size):
        lv = lam_V[j]
        lam_I[j] = cf * lv + a_s * lam_I[j]
        lam_V[j] = a_m * lv


# ----------------------------------------------------------------------------- per-neuron time constants
@helper
def _decay_taus(
    lam_V: np.ndarray, lam_I: np.ndarray, nu: np.ndarray, want_taus: bool, uniform: bool, h: float, tau_m0: float,
    tau_s0: float, inv_m: np.ndarray, inv_s: np.ndarray, r_max: float,
) -> None:
    """Carry (lam_V, lam_I) and, with ``want_taus`` or per-neuron factors, nu = (nu_m,V, nu_m,I, nu_s,I) back over
    a stretch of h seconds, with factors shared by every neuron (``uniform``: time constants tau_m0, tau_s0) or
    each neuron's own (rates ``inv_m``, ``inv_s``, the largest r_max), computed inside the pass: their maths is
    branch-free, so it vectorises."""
    n = lam_V.size
    if want_taus or not uniform:
        mV = nu[0]
        mI = nu[1]
        sI = nu[2]
        if uniform:
            a_m, cf, a_s = lif_factors(h, tau_m0, tau_s0)
            _, _, _, dam, dcm, dcs, das = lif_rate_tangents(h, 1.0 / tau_m0, 1.0 / tau_s0)
            for j in range(n):
                lv = lam_V[j]
                li = lam_I[j]
                mv = mV[j]
                lam_V[j] = a_m * lv
                lam_I[j] = cf * lv + a_s * li
                mV[j] = a_m * mv + dam * lv
                mI[j] = cf * mv + a_s * mI[j] + dcm * lv
                sI[j] = a_s * sI[j] + dcs * lv + das * li
        else:
            # per-neuron factors always carry nu along (scratch when not ``want_taus``): one copy of this large
            # vectorised loop to compile
            short = lif_short_stretch(h, r_max)
            for j in range(n):
                am, c, as_, dam_j, dcm_j, dcs_j, das_j = lif_rate_tangents(h, inv_m[j], inv_s[j], short)
                lv = lam_V[j]
                li = lam_I[j]
                mv = mV[j]
                lam_V[j] = am * lv
                lam_I[j] = c * lv + as_ * li
                mV[j] = am * mv + dam_j * lv
                mI[j] = c * mv + as_ * mI[j] + dcm_j * lv
                sI[j] = as_ * sI[j] + dcs_j * lv + das_j * li
    else:
        a_m, cf, a_s = lif_factors(h, tau_m0, tau_s0)
        _decay(lam_V, lam_I, a_m, cf, a_s)


@helper
def _collect_taus(w: np.ndarray, nu: np.ndarray, g_tau: np.ndarray) -> None:
    """An arrival of row w at every neuron: dL/dtau_mem += w nu_m,I, dL/dtau_syn += w nu_s,I."""
    mI = nu[1]
    sI = nu[2]
    gm = g_tau[0]
    gs = g_tau[1]
    for j in range(w.size):
        gm[j] += w[j] * mI[j]
        gs[j] += w[j] * sI[j]


@njit(cache=True, _nrt=False, fastmath={"reassoc"})
def _dot_each(w: np.ndarray, lam_I: np.ndarray, lam_V: np.ndarray, inv_s: np.ndarray, inv_m: np.ndarray) -> float:
    """:func:`_dot` with per-neuron 1/tau_syn and 1/tau_mem."""
    acc = 0.0
    for j in range(w.size):
        acc += w[j] * (lam_I[j] * inv_s[j] - lam_V[j] * inv_m[j])
    return acc


@kernel
def dense_backward_sample(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    ts: np.ndarray, us: np.ndarray, I_spk: np.ndarray, I_ref: np.ndarray, down: np.ndarray,
    tau_mem: np.ndarray, tau_syn: np.ndarray, v_th: float, v_reset: float, t_ref: float, T: float, want_up: bool,
    want_taus: bool, gWt: np.ndarray, gRt: np.ndarray, g_tau: np.ndarray, up: np.ndarray, record: bool,
    ev_spike: np.ndarray, ev_ref: np.ndarray, stV: np.ndarray, stI: np.ndarray,
) -> None:
    """Reverse replay of one sample of a delay-free layer.

    ``tau_mem``, ``tau_syn``: (n,) per-neuron time constants (s); when all are equal every stretch uses
    shared factors. ``down[s]``: dL/dt of own spike s from outside the layer; with ``want_up``, ``up[e]``
    receives dL/dt of input event e (only a layer above another layer, or a caller asking for input-time
    gradients, needs it). Weights and gradients are transposed ([pre, post], contiguous per
    presynaptic unit): gradients are added into gWt (n_pre, n) and gRt (n, n); with ``want_taus``,
    dL/dtau_mem and dL/dtau_syn into the rows of g_tau (2, n) (the augmented adjoint of the module
    docstring). The layer has no delays to learn, so no delay gradient is formed.

    The three event streams (inputs, refractory ends, own spikes) are each in time order, so they
    are merged backwards in O(events); at equal times inputs come first, then refractory ends, then
    spikes (see the module docstring), each stream in its own order.

    With ``record`` the adjoint (lam_V, lam_I) of the neuron just below each of its own events is
    written to ``stV``/``stI`` at ``ev_spike[s]`` (spike s) and ``ev_ref[s]`` (its refractory end): the
    first pass of :mod:`exactsnn.engine.cpu.ff_delays_backward`, which runs this replay without inputs.
    """
    n = Wt.shape[1]
    n_s = ts.size
    uniform = True
    for j in range(1, n):
        if tau_mem[j] != tau_mem[0] or tau_syn[j] != tau_syn[0]:
            uniform = False
    # shared time constants and no time-constant gradient: the fused two-state passes
    fast = uniform and not want_taus
    tm0 = tau_mem[0]
    ts0 = tau_syn[0]
    inv_m_j = 1.0 / tau_mem
    inv_s_j = 1.0 / tau_syn
    r_max = max(inv_m_j.max(), inv_s_j.max())
    nu = np.zeros((3, n if want_taus or not uniform else 0))
    ie = np.searchsorted(tin, T, side="right") - 1  # inputs after T never reached the layer
    i_s = n_s - 1
    # refractory ends t_k + t_ref < T, in the order of the spikes
    i_r = last_window_end(ts, t_ref, T)
    lam_V = np.zeros(n)
    lam_I = np.zeros(n)
    stored = np.zeros(n_s)
    inv_s = 1.0 / ts0  # multiplications keep the per-neuron loops vectorisable
    inv_m = 1.0 / tm0
    t = T
    while ie >= 0 or i_r >= 0 or i_s >= 0:
        te, e0, r0, s0 = next_block(tin, ie, ts, i_r, i_s, t_ref)
        if fast and te < t and has_rec and ie == e0 and i_r == r0 and i_s == s0 + 1:
            # the common recurrent case, fused: a lone spike after an event-free stretch
            a_m, cf, a_s = lif_factors(t - te, tm0, ts0)
            t = te
            k = us[i_s]
            d = down[i_s] + _decay_collect_dot(lam_V, lam_I, a_m, cf, a_s, gRt[k], Rt[k], inv_s, inv_m)
            lam_V[k] = _spike_jump(lam_V[k], i_s, I_spk, I_ref, stored, d, t_ref, tm0, v_th, v_reset)
            if record:
                stV[ev_spike[i_s]] = lam_V[k]
                stI[ev_spike[i_s]] = lam_I[k]
            i_s = s0
            continue
        first_done = False  # the first input's weight gradient already collected (fused with the decay)
        if te < t:
            if fast:
                a_m, cf, a_s = lif_factors(t - te, tm0, ts0)
                if ie > e0:
                    # the common case, fused: decay, then the first input's weight gradient
                    _decay_collect(lam_V, lam_I, a_m, cf, a_s, gWt[uin[e0 + 1]])
                    first_done = True
                else:
                    _decay(lam_V, lam_I, a_m, cf, a_s)
            else:
                _decay_taus(lam_V, lam_I, nu, want_taus, uniform, t - te, tm0, ts0, inv_m_j, inv_s_j, r_max)
            t = te
        for e in range(e0 + 1, ie + 1):
            if e > e0 + 1 or not first_done:
                add_row(gWt[uin[e]], lam_I)
            if want_taus:
                _collect_taus(Wt[uin[e]], nu, g_tau)
            if want_up:
                if uniform:
                    up[e] += _dot(Wt[uin[e]], lam_I, lam_V, inv_s, inv_m)
                else:
                    up[e] += _dot_each(Wt[uin[e]], lam_I, lam_V, inv_s_j, inv_m_j)
        for s in range(r0 + 1, i_r + 1):
            k = us[s]
            stored[s] = (I_ref[s] - v_reset) * lam_V[k]
            lam_V[k] = 0.0
            if want_taus:
                # V restarts from v_reset here: that injection's share of the tau_mem integral, and no
                # sensitivity to V before it
                g_tau[0, k] += v_reset * nu[0, k]
                nu[0, k] = 0.0
            if record:
                stV[ev_ref[s]] = 0.0
                stI[ev_ref[s]] = lam_I[k]
        for s in range(s0 + 1, i_s + 1):
            k = us[s]
            d = down[s]
            if has_rec:
                # its zero-delay recurrent arrivals come after the spike in the forward pass
                add_row(gRt[k], lam_I)
                if want_taus:
                    _collect_taus(Rt[k], nu, g_tau)
                if uniform:
                    d += _dot(Rt[k], lam_I, lam_V, inv_s, inv_m)
                else:
                    d += _dot_each(Rt[k], lam_I, lam_V, inv_s_j, inv_m_j)
            lam_V[k] = _spike_jump(lam_V[k], s, I_spk, I_ref, stored, d, t_ref, tau_mem[k], v_th, v_reset)
            if want_taus:
                if t_ref == 0.0:
                    g_tau[0, k] += v_reset * nu[0, k]  # the reset at the spike itself
                nu[0, k] = 0.0
            if record:
                stV[ev_spike[s]] = lam_V[k]
                stI[ev_spike[s]] = lam_I[k]
        ie, i_r, i_s = e0, r0, s0


@kernel
def queue_backward_sample(
    tin: np.ndarray, uin: np.ndarray, W: np.ndarray, D: np.ndarray, R: np.ndarray, E: np.ndarray, has_rec: bool,
    ts: np.ndarray, us: np.ndarray, I_spk: np.ndarray, I_ref: np.ndarray, down: np.ndarray,
    tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, T: float,
    gW: np.ndarray, gD: np.ndarray, gR: np.ndarray, gE: np.ndarray, up: np.ndarray,
) -> None:
    """Reverse replay of one sample of a layer with per-synapse delays (lazy per-neuron adjoints)."""
    n = W.shape[0]
    n_in = tin.size
    n_s = ts.size
    m_ff = 0
    for e in range(n_in):
        for j in range(n):
            if tin[e] + D[j, uin[e]] <= T:
                m_ff += 1
    m_rec = 0
    if has_rec:
        for s in range(n_s):
            for j in range(n):
                if ts[s] + E[j, us[s]] <= T:
                    m_rec += 1
    n_ref = 0
    if t_ref > 0.0:
        for s in range(n_s):
            if ts[s] + t_ref < T:
                n_ref += 1
    m = m_ff + m_rec + n_ref + n_s
    et = np.empty(m)
    ek = np.empty(m, np.int64)
    ei = np.empty(m, np.int64)
    ej = np.empty(m, np.int64)
    c = 0
    for e in range(n_in):
        for j in range(n):
            ta = tin[e] + D[j, uin[e]]
            if ta <= T:
                et[c] = ta
                ek[c] = 0
                ei[c] = e
                ej[c] = j
                c += 1
    if has_rec:
        for s in range(n_s):
            for j in range(n):
                ta = ts[s] + E[j, us[s]]
                if ta <= T:  # zero weights too: their gradient is not zero
                    et[c] = ta
                    ek[c] = 1
                    ei[c] = s
                    ej[c] = j
                    c += 1
    if t_ref > 0.0:
        for s in range(n_s):
            if ts[s] + t_ref < T:
                et[c] = ts[s] + t_ref
                ek[c] = 2
                ei[c] = s
                ej[c] = us[s]
                c += 1
    for s in range(n_s):
        et[c] = ts[s]
        ek[c] = 3
        ei[c] = s
        ej[c] = us[s]
        c += 1
    order = _reverse_order(et)
    lam_V = np.zeros(n)
    lam_I = np.zeros(n)
    tl = np.full(n, T)
    stored = np.zeros(n_s)
    rec_down = np.zeros(n_s)
    for q in range(m):
        idx = order[q]
        t = et[idx]
        j = ej[idx]
        if t < tl[j]:
            a_m, cf, a_s = lif_factors(tl[j] - t, tau_mem, tau_syn)
            lv = lam_V[j]
            lam_V[j] = a_m * lv
            lam_I[j] = cf * lv + a_s * lam_I[j]
            tl[j] = t
        kind = ek[idx]
        i = ei[idx]
        if kind == 0:
            u = uin[i]
            x = lam_I[j] / tau_syn - lam_V[j] / tau_mem
            gW[j, u] += lam_I[j]
            gD[j, u] += W[j, u] * x
            up[i] += W[j, u] * x
        elif kind == 1:
            k = us[i]
            x = lam_I[j] / tau_syn - lam_V[j] / tau_mem
            gR[j, k] += lam_I[j]
            gE[j, k] += R[j, k] * x
            rec_down[i] += R[j, k] * x
        elif kind == 2:
            stored[i] = (I_ref[i] - v_reset) * lam_V[j]
            lam_V[j] = 0.0
        else:
            lam_V[j] = _spike_jump(lam_V[j], i, I_spk, I_ref, stored, down[i] + rec_down[i],
                                   t_ref, tau_mem, v_th, v_reset)


@threaded_driver
def dense_backward_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray, I_spk: np.ndarray, I_ref: np.ndarray,
    down: np.ndarray, tau_mem: np.ndarray, tau_syn: np.ndarray, v_th: float, v_reset: float, t_ref: float, T: float,
    want_up: bool, want_taus: bool, gWt: np.ndarray, gRt: np.ndarray, g_tau: np.ndarray, up: np.ndarray,
) -> None:
    """:func:`dense_backward_sample` over every sample (Python threads, :mod:`exactsnn.engine.cpu.threads`);
    gWt, gRt, g_tau have a leading per-thread axis."""
    none_i = np.zeros(0, np.int64)
    none_f = np.zeros(0)

    def work(b: int, t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        dense_backward_sample(
            times[lo:hi], units[lo:hi], Wt, Rt, has_rec, s_times[slo:shi], s_units[slo:shi],
            I_spk[slo:shi], I_ref[slo:shi], down[slo:shi], tau_mem, tau_syn, v_th, v_reset, t_ref, T, want_up,
            want_taus, gWt[t], gRt[t], g_tau[t], up[lo:hi], False, none_i, none_i, none_f, none_f,
        )

    for_each_sample(work, offsets.size - 1)


@threaded_driver
def queue_backward_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray,
    W: np.ndarray, D: np.ndarray, R: np.ndarray, E: np.ndarray, has_rec: bool,
    s_times: np.ndarray, s_units: np.ndarray, s_offsets: np.ndarray, I_spk: np.ndarray, I_ref: np.ndarray,
    down: np.ndarray, tau_mem: float, tau_syn: float, v_th: float, v_reset: float, t_ref: float, T: float,
    gW: np.ndarray, gD: np.ndarray, gR: np.ndarray, gE: np.ndarray, up: np.ndarray,
) -> None:
    """:func:`queue_backward_sample` over every sample (Python threads); [post, pre] layouts, per-thread gradient
    axis."""

    def work(b: int, t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        slo, shi = s_offsets[b], s_offsets[b + 1]
        queue_backward_sample(
            times[lo:hi], units[lo:hi], W, D, R, E, has_rec, s_times[slo:shi], s_units[slo:shi],
            I_spk[slo:shi], I_ref[slo:shi], down[slo:shi], tau_mem, tau_syn, v_th, v_reset, t_ref, T,
            gW[t], gD[t], gR[t], gE[t], up[lo:hi],
        )

    for_each_sample(work, offsets.size - 1)
