"""Slow, high-precision reference simulator: the oracle for the forward-pass property tests.

Independent of ``exactsnn`` on purpose (it imports nothing from it): it takes plain arrays and
floats and redoes the maths from the model definition in mpmath with ``DPS`` significant digits.

Model (time in seconds). Each LIF neuron has state (V, I):

    tau_mem dV/dt = -V + I,    tau_syn dI/dt = -I,    an arriving spike of weight w: I += w.

When V reaches v_th from below the neuron spikes at that exact time, V is set to v_reset and held
there for t_ref seconds (I keeps decaying and receiving inputs), then evolves freely again.
V = I = 0 at t = 0. The window is the closed interval [0, t_max]: arrivals at t <= t_max are applied,
spikes at t <= t_max are recorded. A spike of presynaptic unit i at t reaches unit j of the next
layer at t + D[j, i] with weight W[j, i]; in a recurrent layer a spike of unit k at t reaches j at
t + E[j, k] with weight R[j, k]. A non-spiking (LI) layer has the same dynamics without threshold.

Between two events of a neuron, with s the time since the first:

    I(s) = I0 exp(-s/tau_syn)
    V(s) = V0 exp(-s/tau_mem) + I0 k (exp(-s/tau_syn) - exp(-s/tau_mem)),  k = tau_syn/(tau_syn - tau_mem)
    V(s) = exp(-s/tau) (V0 + I0 s/tau)                                       if tau_mem = tau_syn = tau

(the second form is the limit of the first; nearly equal time constants are handled by the first
form, whose cancellation costs ~log10(k) of the DPS digits).

Crossing search (cannot miss a grazing spike): V' = (I - V)/tau_mem = A exp(-s/tau_mem) + B exp(-s/tau_syn)
is a sum of two exponentials, so it has at most one zero s* (closed form below). V is monotone on
[0, s*] and on [s*, S]; on each piece in order, V(left) < v_th <= V(right) brackets the unique first
crossing, which plain bisection then pins down to ~1e-32 s.

Scheduling: per sample and per layer (a layer only needs the complete spike trains of the layer below),
a global loop takes, in time order, the earliest of (a) the pending arrivals (a heap) and (b) every
neuron's predicted first crossing of its free trajectory over [now, t_max], recomputed whenever that
neuron's state changes. On an exact tie a crossing is processed before arrivals at the same time (an
I jump does not move V, so the order does not change any spike time).

Ambiguity margin: for every interval during which a neuron evolves freely between two of its own state
changes [a, b] (b: its next arrival, or t_max), the oracle records |max_{[a, b]} V - v_th|, where for an
interval that ends in a spike the maximum is taken over the free trajectory up to the neuron's next
pending arrival (or t_max) as if it had not spiked. ``margin`` is the smallest such value over the whole
simulation. A small margin means a near-tangent spike, a crossing just before an event that would
have turned V back, or a crossing just before or after t_max: any float64 simulator may legitimately
decide such a case either way.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import mpmath
import numpy as np
from mpmath import mpf

DPS = 50  # working precision (decimal digits)
BISECTION_WIDTH = mpf("1e-34")  # crossing times are bracketed to this width (seconds)

__all__ = ["ReferenceResult", "ReferenceRunawayError", "reference_simulate", "LifMaths", "DPS"]


class ReferenceRunawayError(RuntimeError):
    """A layer of one sample produced more spikes than the oracle is willing to simulate."""


class LifMaths:
    """Closed-form free evolution of (V, I) for one pair of time constants, in mpmath."""

    def __init__(self, tau_mem: float, tau_syn: float) -> None:
        self.tm = mpf(tau_mem)
        self.ts = mpf(tau_syn)
        self.equal = self.tm == self.ts
        self.k = None if self.equal else self.ts / (self.ts - self.tm)

    def current(self, I0: mpf, s: mpf) -> mpf:
        return I0 * mpmath.exp(-s / self.ts)

    def voltage(self, V0: mpf, I0: mpf, s: mpf) -> mpf:
        em = mpmath.exp(-s / self.tm)
        if self.equal:
            return em * (V0 + I0 * s / self.tm)
        return V0 * em + I0 * self.k * (mpmath.exp(-s / self.ts) - em)

    def dvoltage(self, V0: mpf, I0: mpf, s: mpf) -> mpf:
        """dV/ds from the ODE itself: (I - V)/tau_mem."""
        return (self.current(I0, s) - self.voltage(V0, I0, s)) / self.tm

    def extremum(self, V0: mpf, I0: mpf) -> mpf | None:
        """The unique s* > 0 with V'(s*) = 0, or None."""
        if self.equal:
            # V' = exp(-s/tau)/tau * (I0 - V0 - I0 s/tau)
            if I0 == 0:
                return None
            s = self.tm * (I0 - V0) / I0
        else:
            # V' = A exp(-s/tau_mem) + B exp(-s/tau_syn)
            A = (I0 * self.k - V0) / self.tm
            B = -I0 * self.k / self.ts
            if A == 0 or B == 0:
                return None
            r = -B / A
            if r <= 0:
                return None
            # A e^{-s/tm} = -B e^{-s/ts}  <=>  e^{s (1/ts - 1/tm)} = -B/A
            s = mpmath.log(r) / (1 / self.ts - 1 / self.tm)
        if s <= 0:
            return None
        # sanity: V'(s*) vanishes relative to the size of its two terms
        scale = (abs(V0) + abs(I0)) / min(self.tm, self.ts) * (1 + (abs(self.k) if self.k is not None else 0))
        assert abs(self.dvoltage(V0, I0, s)) <= scale * mpf(10) ** (-(DPS - 15)), "bad extremum"
        return s

    def max_on(self, V0: mpf, I0: mpf, S: mpf) -> mpf:
        """max of V over [0, S]."""
        best = max(V0, self.voltage(V0, I0, S))
        s = self.extremum(V0, I0)
        if s is not None and s < S:
            best = max(best, self.voltage(V0, I0, s))
        return best

    def first_crossing(self, V0: mpf, I0: mpf, S: mpf, v_th: mpf) -> mpf | None:
        """Smallest s in (0, S] with V(s) >= v_th, given V0 < v_th; None if there is none."""
        assert V0 < v_th
        if S <= 0:
            return None
        cuts = [mpf(0)]
        s_star = self.extremum(V0, I0)
        if s_star is not None and s_star < S:
            cuts.append(s_star)
        cuts.append(S)
        for lo, hi in zip(cuts[:-1], cuts[1:], strict=False):
            # V is monotone on [lo, hi] and V(lo) < v_th (lo = 0, or the end of a piece below threshold)
            if self.voltage(V0, I0, hi) >= v_th:
                return self._root(V0, I0, lo, hi, v_th)
        return None

    def _vi(self, V0: mpf, I0: mpf, s: mpf) -> tuple[mpf, mpf]:
        em = mpmath.exp(-s / self.tm)
        es = mpmath.exp(-s / self.ts)
        if self.equal:
            return em * (V0 + I0 * s / self.tm), I0 * es
        return V0 * em + I0 * self.k * (es - em), I0 * es

    def _root(self, V0: mpf, I0: mpf, lo: mpf, hi: mpf, v_th: mpf) -> mpf:
        """The crossing in [lo, hi], where V is increasing with V(lo) < v_th <= V(hi): returns the upper
        end of a bracket of width <= BISECTION_WIDTH. Newton steps are taken only inside the current
        bracket (else bisection); once Newton has converged two probes close the bracket; after 100
        iterations it is plain bisection, so it always terminates with a valid bracket."""
        W = BISECTION_WIDTH
        x = (lo + hi) / 2
        it = 0
        while hi - lo > W:
            it += 1
            V, I = self._vi(V0, I0, x)
            f = V - v_th
            if f >= 0:
                hi = x
            else:
                lo = x
            d = (I - V) / self.tm
            xn = x - f / d if (d > 0 and it < 100) else None
            if xn is None or not (lo < xn < hi):
                xn = (lo + hi) / 2
            elif abs(xn - x) < W / 4:
                a, b = xn - W / 2, xn + W / 2
                if lo < a and self.voltage(V0, I0, a) < v_th:
                    lo = a
                if b < hi and self.voltage(V0, I0, b) >= v_th:
                    hi = b
                xn = (lo + hi) / 2
            x = xn
        return hi


@dataclass
class _Segment:
    """A neuron's state from time ``t`` on: (V, I) at t, and the end of a refractory hold (if > t)."""

    t: mpf
    V: mpf
    I: mpf
    ref_end: mpf


@dataclass
class _LayerRun:
    spikes: list[tuple[mpf, int]]
    segments: list[list[_Segment]]
    margin: float


@dataclass
class ReferenceResult:
    """Output of :func:`reference_simulate`.

    ``spikes[l][b]``: ``(times, units)`` lists of layer l, sample b, sorted by (time, unit); times are
    the nearest floats to the high-precision ``spikes_mp[l][b]`` times. ``margin``: smallest threshold
    margin seen anywhere (see the module docstring); ``margins[l][b]`` per layer and sample.
    """

    spikes: list[list[tuple[list[float], list[int]]]]
    spikes_mp: list[list[list[tuple[mpf, int]]]]
    margins: list[list[float]]
    _segments: list[list[list[list[_Segment]]]] = field(repr=False)
    _maths: list[LifMaths] = field(repr=False)
    _v_reset: list[mpf] = field(repr=False)

    @property
    def margin(self) -> float:
        return min((m for per_layer in self.margins for m in per_layer), default=math.inf)

    def n_spikes(self) -> int:
        return sum(len(t) for per_layer in self.spikes for t, _ in per_layer)

    def voltage(self, l: int, b: int, t: float) -> np.ndarray:
        """V of every unit of layer l in sample b at time t (right-continuous: v_reset at a spike)."""
        tq = mpf(t)
        out = []
        with mpmath.workdps(DPS):
            for segs in self._segments[l][b]:
                starts = [sg.t for sg in segs]
                sg = segs[bisect.bisect_right(starts, tq) - 1]
                V, _ = _state_at(sg, tq, self._maths[l], self._v_reset[l])
                out.append(float(V))
        return np.array(out)


def _state_at(sg: _Segment, t: mpf, m: LifMaths, v_reset: mpf) -> tuple[mpf, mpf]:
    """(V, I) at time t >= sg.t."""
    if sg.ref_end > sg.t:
        if t <= sg.ref_end:
            return v_reset, m.current(sg.I, t - sg.t)
        I_r = m.current(sg.I, sg.ref_end - sg.t)
        s = t - sg.ref_end
        return m.voltage(v_reset, I_r, s), m.current(I_r, s)
    s = t - sg.t
    return m.voltage(sg.V, sg.I, s), m.current(sg.I, s)


def _free_start(sg: _Segment, m: LifMaths, v_reset: mpf) -> tuple[mpf, mpf, mpf]:
    """(time, V, I) from which the neuron of segment sg evolves freely."""
    if sg.ref_end > sg.t:
        return sg.ref_end, v_reset, m.current(sg.I, sg.ref_end - sg.t)
    return sg.t, sg.V, sg.I


def _run_layer(layer: dict, pre: list[tuple[mpf, int]], t_max: mpf, max_spikes: int) -> _LayerRun:
    W = np.asarray(layer["W"], dtype=np.float64)
    n = W.shape[0]
    D = np.zeros_like(W) if layer.get("D") is None else np.asarray(layer["D"], dtype=np.float64)
    R = None if layer.get("R") is None else np.asarray(layer["R"], dtype=np.float64)
    E = None if layer.get("E") is None else np.asarray(layer["E"], dtype=np.float64)
    if R is not None and E is None:
        E = np.zeros_like(R)
    spiking = bool(layer.get("spiking", True))
    m = LifMaths(layer["tau_mem"], layer["tau_syn"])
    v_th = mpf(layer.get("v_th", 1.0)) if spiking else mpf(0)
    v_reset = mpf(layer.get("v_reset", 0.0)) if spiking else mpf(0)
    t_ref = mpf(layer.get("t_ref", 0.0)) if spiking else mpf(0)
    if spiking:
        assert v_reset < v_th

    # pending arrivals: (time, seq, unit, weight); times are exact sums of the float inputs
    heap: list[tuple[mpf, int, int, mpf]] = []
    seq = 0
    for t_pre, i in pre:
        for j in range(n):
            ta = t_pre + mpf(D[j, i])
            if ta <= t_max:
                heap.append((ta, seq, j, mpf(W[j, i])))
                seq += 1
    heapq.heapify(heap)

    segments = [[_Segment(mpf(0), mpf(0), mpf(0), mpf("-inf"))] for _ in range(n)]
    spikes: list[tuple[mpf, int]] = []
    margin = math.inf

    def predict(j: int) -> mpf | None:
        if not spiking:
            return None
        fs, Vf, If = _free_start(segments[j][-1], m, v_reset)
        if fs > t_max:
            return None
        s = m.first_crossing(Vf, If, t_max - fs, v_th)
        return None if s is None else fs + s

    def interval_margin(j: int, b: mpf) -> float:
        """|max V - v_th| over the free part of [current segment start, b]."""
        fs, Vf, If = _free_start(segments[j][-1], m, v_reset)
        if not spiking or fs > b:
            return math.inf
        return float(abs(m.max_on(Vf, If, b - fs) - v_th))

    pred = [predict(j) for j in range(n)]
    while True:
        t_arr = heap[0][0] if heap else mpf("inf")
        live = [p for p in pred if p is not None]
        t_c = min(live) if live else mpf("inf")
        if t_c <= t_arr and t_c <= t_max:
            spikers = [j for j in range(n) if pred[j] is not None and pred[j] == t_c]
            for j in spikers:  # before any arrival this batch of spikes schedules
                nxt = min((a[0] for a in heap if a[2] == j), default=t_max)
                margin = min(margin, interval_margin(j, min(nxt, t_max)))
            for j in spikers:
                _, I = _state_at(segments[j][-1], t_c, m, v_reset)
                segments[j].append(_Segment(t_c, v_reset, I, t_c + t_ref))
                spikes.append((t_c, j))
                if R is not None:
                    for k in range(n):
                        if R[k, j] != 0:
                            ta = t_c + mpf(E[k, j])
                            if ta <= t_max:
                                heapq.heappush(heap, (ta, seq, k, mpf(R[k, j])))
                                seq += 1
            if len(spikes) > max_spikes:
                raise ReferenceRunawayError(f"more than {max_spikes} spikes in one layer and sample")
            for j in spikers:
                pred[j] = predict(j)
        elif t_arr <= t_max:
            hits: dict[int, mpf] = {}
            while heap and heap[0][0] == t_arr:
                _, _, j, w = heapq.heappop(heap)
                hits[j] = hits.get(j, mpf(0)) + w
            for j, w in hits.items():
                margin = min(margin, interval_margin(j, t_arr))
                sg = segments[j][-1]
                V, I = _state_at(sg, t_arr, m, v_reset)
                segments[j].append(_Segment(t_arr, V, I + w, sg.ref_end))
                pred[j] = predict(j)
        else:
            break
    for j in range(n):
        margin = min(margin, interval_margin(j, t_max))
    spikes.sort(key=lambda x: (x[0], x[1]))
    return _LayerRun(spikes, segments, margin)


def reference_simulate(
    n_inputs: int,
    layers: Sequence[dict],
    inputs: Sequence[tuple[Sequence[float], Sequence[int]]],
    t_max: float,
    max_spikes: int = 2000,
) -> ReferenceResult:
    """Simulate every sample of ``inputs`` through ``layers`` with DPS-digit arithmetic.

    ``layers[l]``: dict with W (n_post, n_pre), D (same shape, seconds, or None for zeros), R and E
    ((n, n) or None), tau_mem, tau_syn, v_th, v_reset, t_ref, spiking (bool). ``inputs``: per sample
    ``(times, units)`` with units in [0, n_inputs). Raises :class:`ReferenceRunawayError` when a layer of
    a sample emits more than ``max_spikes`` spikes.
    """
    with mpmath.workdps(DPS):
        T = mpf(t_max)
        maths = [LifMaths(ly["tau_mem"], ly["tau_syn"]) for ly in layers]
        v_resets = [mpf(ly.get("v_reset", 0.0)) if ly.get("spiking", True) else mpf(0) for ly in layers]
        spikes_mp: list[list[list[tuple[mpf, int]]]] = [[] for _ in layers]
        margins: list[list[float]] = [[] for _ in layers]
        segs: list[list[list[list[_Segment]]]] = [[] for _ in layers]
        for times, units in inputs:
            times = [float(x) for x in times]
            units = [int(u) for u in units]
            assert all(0 <= u < n_inputs for u in units)
            pre = [(mpf(t), u) for t, u in zip(times, units, strict=True)]
            for l, ly in enumerate(layers):
                W = np.asarray(ly["W"])
                expected_pre = n_inputs if l == 0 else np.asarray(layers[l - 1]["W"]).shape[0]
                assert W.shape[1] == expected_pre, f"layer {l}: W has {W.shape[1]} columns, expected {expected_pre}"
                run = _run_layer(ly, pre, T, max_spikes)
                spikes_mp[l].append(run.spikes)
                margins[l].append(run.margin)
                segs[l].append(run.segments)
                pre = run.spikes
        spikes = [[([float(t) for t, _ in s], [u for _, u in s]) for s in per_layer] for per_layer in spikes_mp]
    return ReferenceResult(spikes, spikes_mp, margins, segs, maths, v_resets)
