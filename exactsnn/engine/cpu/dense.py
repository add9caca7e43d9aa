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
from numba.extending import register_jitable

from exactsnn.engine.cpu.flags import read_flags
from exactsnn.engine.cpu.jit import helper, kernel
from exactsnn.engine.cpu.rows import add_row
from exactsnn.engine.cpu.threads import for_each_sample, threaded_driver
from exactsnn.neurons.lif import (
    lif_factors,
    lif_first_crossing_known,
    lif_may_reach,
    lif_next_spike,
    lif_rate_factors,
    lif_short_stretch,
    lif_voltage,
)

# the per-neuron screen uses k_j = h (1 + SCREEN_UP) / tau_mem_j computed as a product with 1/tau_mem_j:
# rounded up by more than the product's few ulps, so it is never below h / tau_mem_j (stays conservative)
SCREEN_UP = 1e-15


@helper
def _stretch_factors(h: float, uniform: bool, tm0: float, ts0: float) -> tuple[float, float, float]:
    """The shared (a_m, c, a_s) of a stretch of h seconds when the taus are ``uniform`` (tm0, ts0); otherwise
    zeros (every neuron's factors are computed where they are used, :func:`_advance_each`)."""
    if uniform:
        return lif_factors(h, tm0, ts0)
    return 0.0, 0.0, 0.0


@helper
def _predict_candidates(
    cand: np.ndarray, n_cand: int, pred: np.ndarray, V: np.ndarray, I: np.ndarray, t: float, t_next: float,
    ref_end: np.ndarray, uniform: bool, fa: float, fc: float, fi: float, inv_m: np.ndarray, inv_s: np.ndarray,
    tau_mem: np.ndarray, tau_syn: np.ndarray, v_th: float, v_reset: float,
) -> None:
    """``pred[j]`` = :func:`_predict` for every listed candidate, with the factors of :func:`_stretch_factors`
    (per neuron: those :func:`_advance_each` uses over the same stretch, bit for bit)."""
    if uniform:
        tm0 = tau_mem[0]
        ts0 = tau_syn[0]
        for k in range(n_cand):
            j = cand[k]
            pred[j] = _predict(V[j], I[j], t, t_next, ref_end[j], fa, fc, fi, tm0, ts0, v_th, v_reset)
    else:
        h = t_next - t
        for k in range(n_cand):
            j = cand[k]
            a_m, c, a_s = lif_rate_factors(h, inv_m[j], inv_s[j])
            pred[j] = _predict(V[j], I[j], t, t_next, ref_end[j], a_m, c, a_s, tau_mem[j], tau_syn[j], v_th, v_reset)


@helper
def _advance(
    V: np.ndarray, I: np.ndarray, row: np.ndarray, t0: float, t1: float, aV: float, cI: float, aI: float,
    ref_list: np.ndarray, n_ref: int, ref_end: np.ndarray, ref_spike: np.ndarray, in_ref: np.ndarray,
    vfix: np.ndarray, flags: np.ndarray, tau_mem: float, tau_syn: float, v_reset: float, out_i: np.ndarray,
    out_r: np.ndarray, t_ref: float, screen: bool, t2: float, v_th: float, cand: np.ndarray,
) -> tuple[int, int]:
    """Bring the layer from t0 to t1 and add ``row`` to I; returns (n_ref, n_cand).

    (aV, cI, aI) are the shared factors of :func:`lif_factors` for t1 - t0. Neurons in
    ``ref_list`` (reset pending or refractory) get their exact V at t1: v_reset while the window
    lasts, else the free evolution from v_reset at the window's end (whose current is recorded).
    With ``screen``, the same pass also counts the neurons that may cross in (t1, t2] and, if there
    are any, lists them (see :func:`_screen`; ``flags`` is scratch); otherwise n_cand is 0.
    :func:`_advance_each` is the same with per-neuron time constants.
    """
    n = V.size
    # patched voltages use the current at t0, so compute them before the shared pass
    for r in range(n_ref):
        j = ref_list[r]
        te = ref_end[j]
        if te >= t1:
            vfix[r] = v_reset  # (at te == t1 the free evolution from v_reset has not started)
            if te == t1 and t_ref > 0.0:
                out_r[ref_spike[j]] = I[j] * math.exp(-(te - t0) / tau_syn)
        else:
            # without refractoriness the window ends at the spike: its current is already recorded
            # (the same expression, evaluated in _fire from the same state)
            I_end = out_i[ref_spike[j]] if t_ref == 0.0 else I[j] * math.exp(-(te - t0) / tau_syn)
            out_r[ref_spike[j]] = I_end
            vfix[r] = lif_voltage(v_reset, I_end, t1 - te, tau_mem, tau_syn)
    k = (t2 - t1) / tau_mem
    flagged = 0
    if screen:
        for j in range(n):
            v = aV * V[j] + cI * I[j]
            i = aI * I[j] + row[j]
            I[j] = i
            V[j] = v
            flagged += lif_may_reach(v, i, k, v_th)
    else:
        for j in range(n):
            v = aV * V[j] + cI * I[j]
            I[j] = aI * I[j] + row[j]
            V[j] = v
    keep = 0
    for r in range(n_ref):
        j = ref_list[r]
        V[j] = vfix[r]
        if ref_end[j] > t1:
            ref_list[keep] = j
            keep += 1
        else:
            in_ref[j] = False
        if screen and flagged == 0 and lif_may_reach(V[j], I[j], k, v_th):
            flagged = 1  # the shared pass saw the clamped voltage; the patched one may cross
    if not screen:
        return keep, 0
    n_cand = _list_flags(V, I, k, v_th, flags, cand) if flagged > 0 else 0
    return keep, _list_pending(ref_list, keep, ref_end, t2, cand, n_cand)


@helper
def _advance_each(
    V: np.ndarray, I: np.ndarray, row: np.ndarray, t0: float, t1: float,
    ref_list: np.ndarray, n_ref: int, ref_end: np.ndarray, ref_spike: np.ndarray, in_ref: np.ndarray,
    vfix: np.ndarray, flags: np.ndarray, tau_m: np.ndarray, tau_s: np.ndarray, inv_m: np.ndarray, inv_s: np.ndarray,
    r_max: float, v_reset: float, out_i: np.ndarray, out_r: np.ndarray, t_ref: float, screen: bool, t2: float,
    v_th: float, cand: np.ndarray,
) -> tuple[int, int]:
    """:func:`_advance` with per-neuron time constants ``tau_m``, ``tau_s`` (``inv_m``, ``inv_s``: their inverses):
    each neuron's factors of t1 - t0 (:func:`~exactsnn.neurons.lif.lif_rate_factors`; ``r_max``: the largest
    rate, for its short-stretch form) are computed in the pass itself, which stays vectorised (that maths is
    branch-free), and the screen's k is per neuron.

    (A separate copy: the shared-clock pass of :func:`_advance` is the hot loop of every LIF layer, and
    calls to non-inlined helpers inside it cost ~30 % there.)
    """
    n = V.size
    for r in range(n_ref):
        j = ref_list[r]
        te = ref_end[j]
        if te >= t1:
            vfix[r] = v_reset
            if te == t1 and t_ref > 0.0:
                out_r[ref_spike[j]] = I[j] * math.exp(-(te - t0) / tau_s[j])
        else:
            I_end = out_i[ref_spike[j]] if t_ref == 0.0 else I[j] * math.exp(-(te - t0) / tau_s[j])
            out_r[ref_spike[j]] = I_end
            vfix[r] = lif_voltage(v_reset, I_end, t1 - te, tau_m[j], tau_s[j])
    k = _screen_k(t2 - t1, False, tau_m)
    h = t1 - t0
    short = lif_short_stretch(h, r_max)
    flagged = 0
    # one loop, screening even when the caller does not ask (its cost is small next to the factors'): each
    # copy of this loop is a large vectorised body to compile
    for j in range(n):
        fa, fc, fi = lif_rate_factors(h, inv_m[j], inv_s[j], short)
        v = fa * V[j] + fc * I[j]
        i = fi * I[j] + row[j]
        I[j] = i
        V[j] = v
        flagged += lif_may_reach(v, i, k * inv_m[j], v_th)
    keep = 0
    for r in range(n_ref):
        j = ref_list[r]
        V[j] = vfix[r]
        if ref_end[j] > t1:
            ref_list[keep] = j
            keep += 1
        else:
            in_ref[j] = False
        if screen and flagged == 0 and lif_may_reach(V[j], I[j], k * inv_m[j], v_th):
            flagged = 1
    if not screen:
        return keep, 0
    n_cand = _list_flags_each(V, I, k, inv_m, v_th, flags, cand) if flagged > 0 else 0
    return keep, _list_pending(ref_list, keep, ref_end, t2, cand, n_cand)


@helper
def _screen_k(h: float, uniform: bool, tau_mem: np.ndarray) -> float:
    """The screen's k = h/tau_mem when ``uniform``; else the factor k with k_j = k/tau_mem_j >= h/tau_mem_j
    formed as ``k * inv_m[j]`` (see :data:`SCREEN_UP`)."""
    if uniform:
        return h / tau_mem[0]
    return h * (1.0 + SCREEN_UP)


@helper
def _list_flags(V: np.ndarray, I: np.ndarray, k: float, v_th: float, flags: np.ndarray, cand: np.ndarray) -> int:
    """List the neurons that :func:`~exactsnn.neurons.lif.lif_may_reach` flags; returns their number.

    A vectorised pass stores the flags (uint8, zero padding to a multiple of 8), then they are read
    eight at a time: a flagged neuron is rare, so this costs a fraction of a scalar screen-and-branch
    loop, which took ~10 % of the forward pass. Called only when something was flagged.
    """
    for j in range(V.size):
        flags[j] = lif_may_reach(V[j], I[j], k, v_th)
    return read_flags(flags, cand, 0, False)


@helper
def _list_flags_each(
    V: np.ndarray, I: np.ndarray, k: float, inv_m: np.ndarray, v_th: float, flags: np.ndarray, cand: np.ndarray
) -> int:
    """:func:`_list_flags` with per-neuron k_j = k * inv_m[j] (:func:`_screen_k`)."""
    for j in range(V.size):
        flags[j] = lif_may_reach(V[j], I[j], k * inv_m[j], v_th)
    return read_flags(flags, cand, 0, False)


@register_jitable
def _predict(
    V: float, I: float, t: float, t_next: float, ref_end: float, fa: float, fc: float, fi: float,
    tau_mem: float, tau_syn: float, v_th: float, v_reset: float,
) -> float:
    """:func:`lif_next_spike` on (t, t_next] given that stretch's shared factors (fa, fc, fi)."""
    if ref_end > t:
        return lif_next_spike(V, I, t, t_next, ref_end, tau_mem, tau_syn, v_th, v_reset)
    s = lif_first_crossing_known(V, I, t_next - t, fa, fc, fi, tau_mem, tau_syn, v_th, t)
    return -1.0 if s < 0.0 else t + s


@helper
def _list_pending(
    ref_list: np.ndarray, n_ref: int, ref_end: np.ndarray, t2: float, cand: np.ndarray, n_cand: int
) -> int:
    """Append the neurons whose reset window ends before t2 (V restarts from v_reset inside)."""
    for r in range(n_ref):
        j = ref_list[r]
        if ref_end[j] < t2:
            cand[n_cand] = j
            n_cand += 1
    return n_cand


@helper
def _screen(
    V: np.ndarray, I: np.ndarray, t1: float, t2: float, ref_list: np.ndarray, n_ref: int, ref_end: np.ndarray,
    cand: np.ndarray, flags: np.ndarray, tau_mem: np.ndarray, inv_m: np.ndarray, uniform: bool, v_th: float,
) -> int:
    """List the neurons that may cross threshold in (t1, t2]; returns the list's length.

    The screen :func:`~exactsnn.neurons.lif.lif_may_reach` is exact (no input until t2). A
    vectorisable counting pass comes first; the list is built only when something was flagged.
    Neurons whose reset window ends before t2 are always listed.
    """
    k = _screen_k(t2 - t1, uniform, tau_mem)
    flagged = 0
    if uniform:
        for j in range(V.size):
            flagged += lif_may_reach(V[j], I[j], k, v_th)
        n_cand = _list_flags(V, I, k, v_th, flags, cand) if flagged > 0 else 0
    else:
        for j in range(V.size):
            flagged += lif_may_reach(V[j], I[j], k * inv_m[j], v_th)
        n_cand = _list_flags_each(V, I, k, inv_m, v_th, flags, cand) if flagged > 0 else 0
    return _list_pending(ref_list, n_ref, ref_end, t2, cand, n_cand)


@helper
def _fire(
    j: int, tf: float, t: float, V: np.ndarray, I: np.ndarray, ref_end: np.ndarray, in_ref: np.ndarray,
    ref_list: np.ndarray, n_ref: int, ref_spike: np.ndarray, t_ref: float, v_reset: float, tau_syn: float,
    count: int, out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> int:
    """Record neuron j's spike at tf (state known at t) as event ``count``; returns the new n_ref.

    ``tau_syn``: neuron j's synaptic time constant (s)."""
    out_t[count] = tf
    out_u[count] = j
    out_i[count] = I[j] * math.exp(-(tf - t) / tau_syn)
    out_r[count] = math.nan
    if in_ref[j]:
        # its previous window closed inside this stretch: record that window's end current
        out_r[ref_spike[j]] = I[j] * math.exp(-(ref_end[j] - t) / tau_syn)
    else:
        in_ref[j] = True
        ref_list[n_ref] = j
        n_ref += 1
    # the reset is applied lazily: V restarts from v_reset at ref_end (= spike + t_ref)
    ref_end[j] = tf + t_ref
    ref_spike[j] = count
    V[j] = v_reset
    return n_ref


@kernel
def dense_sample(
    tin: np.ndarray, uin: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    tau_mem: np.ndarray, tau_syn: np.ndarray, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray,
) -> int:
    """Simulate one sample of one delay-free layer. Returns the spike count, or -1 on overflow.

    ``Wt``: (n_pre, n) transposed feedforward weights; ``Rt``: (n, n) transposed recurrent weights;
    ``tau_mem``, ``tau_syn``: (n,) per-neuron time constants (s). When they are all equal the shared
    factors of one stretch serve every neuron (one fused pass per event); otherwise each neuron's factors are
    computed in that pass (branch-free maths, two exponentials per neuron, vectorised).
    """
    n = Wt.shape[1]
    cap = out_t.size
    uniform = True
    for j in range(1, n):
        if tau_mem[j] != tau_mem[0] or tau_syn[j] != tau_syn[0]:
            uniform = False
    tm0 = tau_mem[0]
    ts0 = tau_syn[0]
    inv_m = 1.0 / tau_mem
    inv_s = 1.0 / tau_syn
    r_max = max(inv_m.max(), inv_s.max())
    V = np.zeros(n)
    I = np.zeros(n)
    zero_row = np.zeros(n)
    ref_end = np.full(n, -np.inf)
    in_ref = np.zeros(n, np.bool_)
    ref_list = np.empty(n, np.int64)
    ref_spike = np.zeros(n, np.int64)
    vfix = np.empty(n)
    flags = np.zeros(8 * ((n + 7) // 8), np.uint8)  # screen results; the padding stays 0
    pred = np.full(n, -1.0)
    fired = np.empty(n, np.int64)
    cand = np.empty(2 * n + 1, np.int64)
    n_ref = 0
    n_ev = np.searchsorted(tin, t_max, side="right")
    count = 0
    t = 0.0
    ev = 0
    # rest may already be at or above threshold (v_th <= 0)
    n_cand = _screen(V, I, 0.0, tin[0] if n_ev > 0 else t_max, ref_list, n_ref, ref_end, cand, flags, tau_mem, inv_m,
                     uniform, v_th)
    fh = -1.0  # the stretch length the cached shared factors (fa, fc, fi) belong to
    fa = fc = fi = 0.0
    while True:
        t_next = tin[ev] if ev < n_ev else t_max
        # ---- spikes in (t, t_next]: predict each candidate once, then take them in time order
        if n_cand > 0 and t_next - t != fh:
            fh = t_next - t
            fa, fc, fi = _stretch_factors(fh, uniform, tm0, ts0)
        _predict_candidates(cand, n_cand, pred, V, I, t, t_next, ref_end, uniform, fa, fc, fi, inv_m, inv_s, tau_mem,
                            tau_syn, v_th, v_reset)
        if not has_rec:
            # neurons do not interact until the next input: run each candidate's spikes to t_next
            # (the caller puts the record in time order)
            for k in range(n_cand):
                j = cand[k]
                tf = pred[j]
                pred[j] = -1.0  # a duplicate entry in cand must not fire it twice
                while tf >= 0.0:
                    if count >= cap:
                        return -1
                    n_ref = _fire(j, tf, t, V, I, ref_end, in_ref, ref_list, n_ref, ref_spike, t_ref, v_reset,
                                  tau_syn[j], count, out_t, out_u, out_i, out_r)
                    count += 1
                    tf = -1.0
                    # it restarts from v_reset with a current below max(I[j], 0): screen before solving
                    if lif_may_reach(v_reset, I[j], (t_next - ref_end[j]) / tau_mem[j], v_th):
                        tf = lif_next_spike(V[j], I[j], t, t_next, ref_end[j], tau_mem[j], tau_syn[j], v_th, v_reset)
            n_cand = 0
        while n_cand > 0:
            best = math.inf
            for k in range(n_cand):
                j = cand[k]
                if pred[j] >= 0.0 and pred[j] < best:
                    best = pred[j]
            if best == math.inf:
                break
            # every crossing at exactly this time fires before the recurrent input any of them sends
            n_fired = 0
            for k in range(n_cand):
                j = cand[k]
                if pred[j] != best:
                    continue
                pred[j] = -1.0  # a duplicate entry in cand must not fire it twice
                if count >= cap:
                    return -1
                n_ref = _fire(j, best, t, V, I, ref_end, in_ref, ref_list, n_ref, ref_spike, t_ref, v_reset,
                              tau_syn[j], count, out_t, out_u, out_i, out_r)
                count += 1
                fired[n_fired] = j
                n_fired += 1
            # zero-delay recurrent input changes every neuron: bring the layer to the spike
            fa, fc, fi = _stretch_factors(best - t, uniform, tm0, ts0)
            if uniform:
                n_ref, n_cand = _advance(V, I, Rt[fired[0]], t, best, fa, fc, fi, ref_list, n_ref, ref_end, ref_spike,
                                         in_ref, vfix, flags, tm0, ts0, v_reset, out_i, out_r, t_ref, n_fired == 1,
                                         t_next, v_th, cand)
            else:
                n_ref, n_cand = _advance_each(V, I, Rt[fired[0]], t, best, ref_list, n_ref, ref_end, ref_spike, in_ref,
                                              vfix, flags, tau_mem, tau_syn, inv_m, inv_s, r_max, v_reset, out_i, out_r,
                                              t_ref, n_fired == 1, t_next, v_th, cand)
            fh = -1.0
            for k in range(1, n_fired):
                add_row(I, Rt[fired[k]])
            if n_fired > 1:
                n_cand = _screen(V, I, best, t_next, ref_list, n_ref, ref_end, cand, flags, tau_mem, inv_m, uniform,
                                 v_th)
            t = best
            if n_cand > 0:
                fh = t_next - t
                fa, fc, fi = _stretch_factors(fh, uniform, tm0, ts0)
            _predict_candidates(cand, n_cand, pred, V, I, t, t_next, ref_end, uniform, fa, fc, fi, inv_m, inv_s,
                                tau_mem, tau_syn, v_th, v_reset)
        if ev >= n_ev:
            break
        # ---- bring the layer to the next input time and apply every input at that time
        ev_end = ev + 1
        while ev_end < n_ev and tin[ev_end] == t_next:
            ev_end += 1
        t2 = tin[ev_end] if ev_end < n_ev else t_max
        if t_next - t != fh:
            fh = t_next - t
            fa, fc, fi = _stretch_factors(fh, uniform, tm0, ts0)
        single = ev_end == ev + 1
        if uniform:
            n_ref, n_cand = _advance(V, I, Wt[uin[ev]], t, t_next, fa, fc, fi, ref_list, n_ref, ref_end, ref_spike,
                                     in_ref, vfix, flags, tm0, ts0, v_reset, out_i, out_r, t_ref, single, t2, v_th,
                                     cand)
        else:
            n_ref, n_cand = _advance_each(V, I, Wt[uin[ev]], t, t_next, ref_list, n_ref, ref_end, ref_spike, in_ref,
                                          vfix, flags, tau_mem, tau_syn, inv_m, inv_s, r_max, v_reset, out_i, out_r,
                                          t_ref, single, t2, v_th, cand)
        for e in range(ev + 1, ev_end):
            add_row(I, Wt[uin[e]])
        if not single:
            n_cand = _screen(V, I, t_next, t2, ref_list, n_ref, ref_end, cand, flags, tau_mem, inv_m, uniform, v_th)
        ev = ev_end
        t = t_next
    # refractory windows that close by t_max still need their end current
    if n_ref > 0:
        fa, fc, fi = _stretch_factors(t_max - t, uniform, tm0, ts0)
        if uniform:
            _advance(V, I, zero_row, t, t_max, fa, fc, fi, ref_list, n_ref, ref_end, ref_spike, in_ref, vfix, flags,
                     tm0, ts0, v_reset, out_i, out_r, t_ref, False, t_max, v_th, cand)
        else:
            _advance_each(V, I, zero_row, t, t_max, ref_list, n_ref, ref_end, ref_spike, in_ref, vfix, flags,
                          tau_mem, tau_syn, inv_m, inv_s, r_max, v_reset, out_i, out_r, t_ref, False, t_max, v_th, cand)
    if t_ref == 0.0:
        out_r[:count] = math.nan  # zero-length windows were only used for the lazy reset
    return count


@threaded_driver
def run_dense_batch(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, Wt: np.ndarray, Rt: np.ndarray, has_rec: bool,
    tau_mem: np.ndarray, tau_syn: np.ndarray, v_th: float, v_reset: float, t_ref: float, t_max: float,
    out_t: np.ndarray, out_u: np.ndarray, out_i: np.ndarray, out_r: np.ndarray, counts: np.ndarray,
) -> None:
    """:func:`dense_sample` over every sample of a CSR batch, in parallel on Python threads
    (:mod:`exactsnn.engine.cpu.threads`); rows of out_* per sample.

    ``tau_mem``, ``tau_syn``: (n,) per-neuron time constants (all equal for a layer that learns none).
    """

    def work(b: int, _t: int) -> None:
        lo, hi = offsets[b], offsets[b + 1]
        counts[b] = dense_sample(
            times[lo:hi], units[lo:hi], Wt, Rt, has_rec, tau_mem, tau_syn, v_th, v_reset, t_ref, t_max,
            out_t[b], out_u[b], out_i[b], out_r[b],
        )

    for_each_sample(work, offsets.size - 1)
