"""Slow, high-precision reference simulator for adaptive LIF (adLIF) networks: a test oracle.

Independent of ``exactsnn`` on purpose (it imports nothing from it, only ``DPS`` and
``ReferenceRunawayError`` from the LIF oracle ``reference.py``, whose interface and conventions it
copies). Everything is recomputed from the model definition in mpmath with ``DPS`` significant digits.

Model (time in seconds). Each neuron has state x = (V, w, I), x = 0 at t = 0:

    tau_mem dV/dt = -V + I - w,    tau_w dw/dt = -w + a V,    tau_syn dI/dt = -I,

an arriving spike of weight W adds W to I. When V reaches v_th from below the neuron spikes at that
exact time: V := v_reset, w := w + b. If t_ref > 0, V is then held at v_reset for t_ref seconds while
w follows tau_w dw/dt = -w + a v_reset (closed form w_inf + (w0 - w_inf) exp(-s/tau_w), w_inf =
a v_reset) and I keeps decaying and receiving inputs; afterwards the free dynamics resume from
(v_reset, w, I). LIF is a = b = 0 (w stays 0). A non-spiking (readout) layer has the same dynamics
without threshold, with a = b = 0 forced (LI). Window, delays, recurrence and tie rule are exactly as
in reference.py: closed window [0, t_max]; a spike of presynaptic unit i at t reaches unit j at
t + D[j, i] with weight W[j, i]; recurrent spikes of unit k reach j at t + E[j, k] with weight R[j, k];
on an exact tie a crossing is processed before arrivals at the same time.

Free evolution: dx/dt = A x with

    A = [[-1/tau_mem, -1/tau_mem, 1/tau_mem], [a/tau_w, -1/tau_w, 0], [0, 0, -1/tau_syn]],

so x(t0 + s) = expm(A s) x(t0). Every propagator comes from ``mpmath.expm`` (Taylor series with scaling
and squaring at extra working precision) on an mpmath matrix: this covers real, complex (damped
oscillation, a > (tau_w - tau_mem)^2 / (4 tau_mem tau_w)) and coincident eigenvalues alike, with no case
analysis. For speed, expm(A h 2^-k) is computed once per layer parameters and dyadic level k (h: the grid
cell below), and an arbitrary s is applied by the semigroup property, expm(A s) = prod over the binary
digits of s/h of expm(A h 2^-k) (exact: the digits of an mpf are finite), down to h/2^24, times the
Taylor series of expm(A r) for the rest r < h/2^24 (||A r|| < 2^-25), summed to 2^-(prec+20) relative.
``AdlifMaths.free_expm`` (one direct expm call) is kept for cross-checks (tests/test_reference_adlif.py
checks agreement to 1e-44).

Crossing search (first crossing of a free interval, cannot miss a grazing spike). The free interval
is cut into grid cells of a fixed per-layer length h (the largest power of two <= min(tau_mem, tau_w,
tau_syn)/8, 1/(4 omega) with omega the largest |Im| of the eigenvalues of A, and 1/(2 ||A||_inf)),
and cells are halved dyadically (widths h/2^k, propagators expm(A h/2^k) cached per level); every point's
state is its cell's left end state times an exact-to-DPS-digits propagator. The decision on a (sub)cell
[p, q] of width w is made from *rigorous bounds*, not from the cell size:

* M3: |V'''(s)| = |e_V^T A^3 expm(A s) x(p_cell)| <= ||e_V^T A^3||_1 exp(||A|| h) ||x(p_cell)|| for s in
  the grid cell (inf-norms; ||expm(A s)|| <= exp(||A|| s) holds for any submultiplicative norm).
* M2 on [p, q]: by the mean value theorem |V''(s)| <= min(|V''(p)| + M3 (s-p), |V''(q)| + M3 (q-s))
  <= (|V''(p)| + |V''(q)| + M3 w)/2, with V'' = e_V^T A^2 x exactly from the state.
* Monotonicity: V'(s) >= V'(p) - M2 (s-p) and V'(s) >= V'(q) - M2 (q-s), so V'(p) + V'(q) > M2 w
  implies V' > 0 on [p, q] (and symmetrically < -M2 w: V' < 0); V' = e_V^T A x exactly.
* Upper bound: linear interpolation error, V(s) <= max(V(p), V(q)) + M2 w^2/8 (exact max(V(p), V(q))
  when V is monotone on [p, q]).

A (sub)cell is discarded only when V(q) < v_th and its upper bound is < v_th, i.e. when V provably
stays below threshold on it; otherwise it is halved, left half first. Depth-first, left first, this
returns the upper end of the first leaf (width <= BISECTION_WIDTH = 1e-34 s) whose right end has
V >= v_th, after every earlier piece was proven below threshold: the first crossing, to 1e-34 s. This
argument holds for any h and any parameters (h only sets the cost: with the choice above, M2 h^2/8 is a
few percent of ||x||, so only cells where V comes that close to threshold, or holds a maximum of V near
it, are cut further; the cuts shrink quadratically). Unlike a test on V' sign changes it needs no
assumption on the number of extrema per cell. Oscillating V with several up- and
down-crossings in one interval, grazing peaks strictly inside a cell, and coincident eigenvalues are
all covered by the same bound. What is not rigorous, honestly: the bounds are evaluated in DPS-digit
arithmetic (a peak exceeding v_th by less than ~1e-45, or staying above it for less than 1e-34 s,
could be missed; the margin below is then ~0, so tests skip such cases), and a crossing of the last
cell that lies within 1e-34 s after the interval end is decided by V at the interval end.

The maximum of V over an interval (for the margin) is found by branch and bound on the same cells with
the same bounds (best-first), to an accuracy of 1e-18 |max V - v_th| + 1e-45.

Scheduling (as in reference.py): per sample and layer, a loop takes in time order the earliest of the
pending arrivals (a heap) and every neuron's predicted first crossing of its free trajectory. The
prediction of neuron j is searched on [free start, its next pending arrival] (t_max when none): the
neuron's state cannot change before that arrival unless a new, earlier arrival is scheduled, which
triggers a new prediction anyway. A crossing found at s = 0 (V >= v_th at a free start, possible only
within 1e-34 s of a genuine crossing) fires immediately.

Ambiguity margin, exactly as in reference.py: for every interval during which a neuron evolves freely
between two of its own state changes [a, b] (b: its next arrival, or t_max) the oracle records
|max_{[a, b]} V - v_th|; for an interval that ends in a spike the maximum is over the free trajectory up
to the neuron's next pending arrival (or t_max) as if it had not spiked. ``margin`` is the smallest such
value; a small margin flags a near-tangent peak or a crossing next to an event or to t_max.
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
from reference import DPS, ReferenceRunawayError

BISECTION_WIDTH = mpf("1e-34")  # crossing times are bracketed to this width (seconds)
MAX_REL_TOL = mpf("1e-18")  # the max of V (margins) is resolved to MAX_REL_TOL |max V - v_th| + MAX_ABS_TOL
MAX_ABS_TOL = mpf("1e-45")
# grid cell h: largest power of two <= min(tau_mem, tau_w, tau_syn)/H_TAU, 1/(H_OMEGA omega), 1/(H_NORM ||A||)
H_TAU, H_OMEGA, H_NORM = 8, 4, 2
MAX_LEVELS = 190  # deepest dyadic level of the max search (cells of h/2^190 < 1e-60 s)
FREE_LEVELS = 24  # free(): dyadic propagators down to h/2^24, then a Taylor series

__all__ = [
    "AdlifMaths",
    "AdlifReferenceResult",
    "DPS",
    "ReferenceRunawayError",
    "adlif_maths",
    "reference_adlif_simulate",
]

Vec = tuple  # (V, w, I) as a tuple of three mpf


def _mv(P: tuple, x: Vec) -> Vec:
    return (
        P[0][0] * x[0] + P[0][1] * x[1] + P[0][2] * x[2],
        P[1][0] * x[0] + P[1][1] * x[1] + P[1][2] * x[2],
        P[2][0] * x[0] + P[2][1] * x[1] + P[2][2] * x[2],
    )


def _dot(r: tuple, x: Vec) -> mpf:
    return r[0] * x[0] + r[1] * x[1] + r[2] * x[2]


def _as_tuple(M: mpmath.matrix) -> tuple:
    return tuple(tuple(M[i, j] for j in range(3)) for i in range(3))


@dataclass(frozen=True)
class _Pt:
    """A point of a free trajectory: offset u from its start, state x, and V, V', V'' there."""

    u: mpf
    x: Vec
    V: mpf
    d1: mpf
    d2: mpf


class AdlifMaths:
    """Free evolution, refractory window, first crossing and maximum for one parameter set, in mpmath.

    All methods must run inside ``mpmath.workdps(DPS)`` (the public entry points of this module do)."""

    def __init__(self, tau_mem: float, tau_syn: float, tau_w: float, a: float) -> None:
        with mpmath.workdps(DPS):
            tm, ts, tw, aa = mpf(tau_mem), mpf(tau_syn), mpf(tau_w), mpf(a)
            self.tm, self.ts, self.tw, self.a = tm, ts, tw, aa
            z = mpf(0)
            rows = ((-1 / tm, -1 / tm, 1 / tm), (aa / tw, -1 / tw, z), (z, z, -1 / ts))
            self.A = mpmath.matrix([list(r) for r in rows])
            self.A_t = rows
            A2 = self.A * self.A
            A3 = A2 * self.A
            self.r1 = rows[0]  # V' = r1 . x
            self.r2 = tuple(A2[0, j] for j in range(3))  # V'' = r2 . x
            c3 = sum(abs(A3[0, j]) for j in range(3))  # |V'''| <= c3 ||x(s)||
            self.norm = max(sum(abs(v) for v in r) for r in rows)  # ||A||_inf
            # eigenvalues: -1/tau_syn and those of the (V, w) block, -g +- sqrt(g^2 - (1 + a)/(tm tw))
            g = (1 / tm + 1 / tw) / 2
            disc = g * g - (1 + aa) / (tm * tw)
            self.omega = mpmath.sqrt(-disc) if disc < 0 else z
            h_max = min(tm, tw, ts) / H_TAU
            if self.omega > 0:
                h_max = min(h_max, 1 / (H_OMEGA * self.omega))
            h_max = min(h_max, 1 / (H_NORM * self.norm))
            self.h = mpf(2) ** int(mpmath.floor(mpmath.log(h_max, 2)))
            assert self.h <= h_max
            self.m3_factor = c3 * mpmath.exp(self.norm * self.h)  # M3 = m3_factor * ||x(cell start)||_inf
            self.k_cross = int(mpmath.ceil(mpmath.log(self.h / BISECTION_WIDTH, 2)))
            self.widths = [self.h * mpf(2) ** (-k) for k in range(MAX_LEVELS + 2)]
        self._levels: dict[int, tuple] = {}

    # ------------------------------------------------------------------ propagators
    def level(self, k: int) -> tuple:
        """expm(A h 2^-k) as nested tuples (cached; k < 0 gives cells longer than h)."""
        P = self._levels.get(k)
        if P is None:
            P = self._levels[k] = _as_tuple(mpmath.expm(self.A * mpmath.ldexp(self.h, -k)))
        return P

    def free(self, x: Vec, s: mpf) -> Vec:
        """State after s >= 0 seconds of free evolution, expm(A s) x, by the semigroup property: s is split
        greedily into dyadic lengths h 2^-k (k >= some k0, each used at most once: the binary digits of s,
        exact in mpf), down to k = FREE_LEVELS, each applied with the cached expm; what is left,
        r < h 2^-FREE_LEVELS (||A r|| < 2^-(FREE_LEVELS + 1)), goes by the Taylor series of expm(A r) x, summed
        until a term is below 2^-(prec + 20) of ||x|| (its tail is smaller still)."""
        if s == 0:
            return x
        assert s > 0
        k = -int(mpmath.floor(mpmath.log(s / self.h, 2)))
        while mpmath.ldexp(self.h, -k) > s:
            k += 1
        while mpmath.ldexp(self.h, -(k - 1)) <= s:
            k -= 1
        rem = s
        for kk in range(k, FREE_LEVELS + 1):
            w = mpmath.ldexp(self.h, -kk)
            if rem >= w:  # invariant rem < 2 w: the subtraction is exact
                x = _mv(self.level(kk), x)
                rem -= w
        if rem > 0:
            tol = mpmath.ldexp(max(abs(x[0]), abs(x[1]), abs(x[2])), -(mpmath.mp.prec + 20))
            y, term, n = x, x, 1
            while max(abs(term[0]), abs(term[1]), abs(term[2])) > tol:
                term = tuple(v * rem / n for v in _mv(self.A_t, term))
                y = (y[0] + term[0], y[1] + term[1], y[2] + term[2])
                n += 1
            x = y
        return x

    def free_expm(self, x: Vec, s: mpf) -> Vec:
        """expm(A s) x with one direct ``mpmath.expm`` call (for cross-checks; :meth:`free` is faster)."""
        return _mv(_as_tuple(mpmath.expm(self.A * s)), x)

    def window(self, x: Vec, s: mpf, v_reset: mpf) -> Vec:
        """State after s >= 0 seconds of refractory hold: V = v_reset, w relaxes to a v_reset, I decays."""
        w_inf = self.a * v_reset
        return (v_reset, w_inf + (x[1] - w_inf) * mpmath.exp(-s / self.tw), x[2] * mpmath.exp(-s / self.ts))

    def _pt(self, u: mpf, x: Vec) -> _Pt:
        return _Pt(u, x, x[0], _dot(self.r1, x), _dot(self.r2, x))

    def _m3(self, x: Vec) -> mpf:
        return self.m3_factor * max(abs(x[0]), abs(x[1]), abs(x[2]))

    def _m2(self, p: _Pt, q: _Pt, w: mpf, m3: mpf) -> mpf:
        return (abs(p.d2) + abs(q.d2) + m3 * w) / 2

    # ------------------------------------------------------------------ first crossing
    def first_crossing(self, x0: Vec, S: mpf, v_th: mpf) -> mpf | None:
        """Smallest s in [0, S] with V(s) >= v_th on the free trajectory from x0 (upper end of a bracket of
        width <= BISECTION_WIDTH); 0 if V(0) >= v_th already; None if V < v_th on all of [0, S]."""
        r = self.first_crossing_state(x0, S, v_th)
        return None if r is None else r[0]

    def first_crossing_state(self, x0: Vec, S: mpf, v_th: mpf) -> tuple[mpf, Vec] | None:
        """:meth:`first_crossing` and the state x(s) there (before any reset)."""
        if x0[0] >= v_th:
            return mpf(0), x0
        if S <= 0:
            return None
        P = self.level(0)
        p = self._pt(mpf(0), x0)
        while p.u < S:
            q = self._pt(p.u + self.h, _mv(P, p.x))
            r = self._fc(p, q, 0, self._m3(p.x), v_th)
            if r is not None:
                if r.u <= S:
                    return r.u, r.x
                # the first crossing is in the bracket (r - width, r]; only [.., S] counts
                xS = self.free(x0, S)
                return (S, xS) if xS[0] >= v_th else None
            p = q
        return None

    def _fc(self, p: _Pt, q: _Pt, k: int, m3: mpf, v_th: mpf) -> _Pt | None:
        """First crossing in the dyadic cell [p, q] of level k, given V(p) < v_th: the point ending the
        first leaf with V >= v_th; None if V < v_th on [p, q]. Returns non-None whenever V(q) >= v_th."""
        w = self.widths[k]
        if q.V < v_th:
            M2 = self._m2(p, q, w, m3)
            s1 = p.d1 + q.d1
            if s1 > M2 * w or s1 < -M2 * w:
                return None  # V monotone on [p, q], both ends below threshold
            if max(p.V, q.V) + M2 * w * w / 8 < v_th:
                return None  # provably below threshold on [p, q]
        if k >= self.k_cross:
            return q if q.V >= v_th else None
        m = self._pt(p.u + self.widths[k + 1], _mv(self.level(k + 1), p.x))
        r = self._fc(p, m, k + 1, m3, v_th)
        if r is not None:
            return r
        assert m.V < v_th
        return self._fc(m, q, k + 1, m3, v_th)

    # ------------------------------------------------------------------ maximum
    def max_on(self, x0: Vec, S: mpf, v_th: mpf) -> tuple[mpf, mpf]:
        """(lo, hi) with lo <= max_{[0, S]} V <= hi for the free trajectory from x0, hi - lo <=
        MAX_REL_TOL |lo - v_th| + MAX_ABS_TOL (unless MAX_LEVELS was reached)."""
        V0 = x0[0]
        if S <= 0:
            return V0, V0
        P = self.level(0)
        lb = V0
        heap: list = []
        seq = 0
        p = self._pt(mpf(0), x0)
        VS = None
        while p.u < S:
            q = self._pt(p.u + self.h, _mv(P, p.x))
            if q.u <= S:
                lb = max(lb, q.V)
            else:
                VS = self.free(x0, S)[0]  # from x0 (not p): the same propagator as the state at S
                lb = max(lb, VS)
            m3 = self._m3(p.x)
            heap.append((-self._cell_ub(p, q, 0, m3, S, VS), seq, p, q, 0, m3))
            seq += 1
            p = q
        heapq.heapify(heap)
        capped = lb
        while heap:
            ub = -heap[0][0]
            if ub - lb <= MAX_REL_TOL * abs(v_th - lb) + MAX_ABS_TOL:
                return lb, max(ub, capped)
            _, _, p, q, k, m3 = heapq.heappop(heap)
            if k >= MAX_LEVELS:
                capped = max(capped, ub)
                continue
            m = self._pt(p.u + self.widths[k + 1], _mv(self.level(k + 1), p.x))
            if m.u <= S:
                lb = max(lb, m.V)
            for a, b in ((p, m), (m, q)):
                if a.u < S:
                    heapq.heappush(heap, (-self._cell_ub(a, b, k + 1, m3, S, VS), seq, a, b, k + 1, m3))
                    seq += 1
        return lb, capped

    def _cell_ub(self, p: _Pt, q: _Pt, k: int, m3: mpf, S: mpf, VS: mpf | None) -> mpf:
        """Upper bound of V on [p, min(q, S)] (p < S; VS = V(S), needed when q > S)."""
        w = self.widths[k]
        M2 = self._m2(p, q, w, m3)
        s1 = p.d1 + q.d1
        if s1 > M2 * w:  # increasing: max at the right end
            return q.V if q.u <= S else VS
        if s1 < -M2 * w:  # decreasing: max at p
            return p.V
        return max(p.V, q.V) + M2 * w * w / 8  # valid on all of [p, q], a superset


_MATHS: dict[tuple[float, float, float, float], AdlifMaths] = {}


def adlif_maths(tau_mem: float, tau_syn: float, tau_w: float, a: float) -> AdlifMaths:
    """Cached :class:`AdlifMaths` (its propagator caches then survive between calls)."""
    key = (float(tau_mem), float(tau_syn), float(tau_w), float(a))
    m = _MATHS.get(key)
    if m is None:
        if len(_MATHS) > 64:
            _MATHS.clear()
        m = _MATHS[key] = AdlifMaths(*key)
    return m


@dataclass
class _Segment:
    """A neuron's state from time ``t`` on: x = (V, w, I) at t, and the end of a refractory hold (if > t)."""

    t: mpf
    x: Vec
    ref_end: mpf


@dataclass
class _LayerRun:
    spikes: list[tuple[mpf, int]]
    segments: list[list[_Segment]]
    margin: float


def _state_at(sg: _Segment, t: mpf, m: AdlifMaths, v_reset: mpf) -> Vec:
    """(V, w, I) at time t >= sg.t."""
    if sg.ref_end > sg.t:
        if t <= sg.ref_end:
            return m.window(sg.x, t - sg.t, v_reset)
        xr = m.window(sg.x, sg.ref_end - sg.t, v_reset)
        return m.free(xr, t - sg.ref_end)
    return m.free(sg.x, t - sg.t)


def _free_start(sg: _Segment, m: AdlifMaths, v_reset: mpf) -> tuple[mpf, Vec]:
    """(time, state) from which the neuron of segment sg evolves freely."""
    if sg.ref_end > sg.t:
        return sg.ref_end, m.window(sg.x, sg.ref_end - sg.t, v_reset)
    return sg.t, sg.x


@dataclass
class AdlifReferenceResult:
    """Output of :func:`reference_adlif_simulate` (same shape as reference.ReferenceResult).

    ``spikes[l][b]``: ``(times, units)`` lists of layer l, sample b, sorted by (time, unit); times are
    the nearest floats to the high-precision ``spikes_mp[l][b]`` times. ``margin``: smallest threshold
    margin seen anywhere (see the module docstring); ``margins[l][b]`` per layer and sample.
    """

    spikes: list[list[tuple[list[float], list[int]]]]
    spikes_mp: list[list[list[tuple[mpf, int]]]]
    margins: list[list[float]]
    _segments: list[list[list[list[_Segment]]]] = field(repr=False)
    _maths: list[AdlifMaths] = field(repr=False)
    _v_reset: list[mpf] = field(repr=False)

    @property
    def margin(self) -> float:
        return min((m for per_layer in self.margins for m in per_layer), default=math.inf)

    def n_spikes(self) -> int:
        return sum(len(t) for per_layer in self.spikes for t, _ in per_layer)

    def state_mp(self, l: int, b: int, t: float | mpf) -> list[Vec]:
        """(V, w, I) of every unit of layer l in sample b at time t, in mpmath (right-continuous)."""
        out = []
        with mpmath.workdps(DPS):
            tq = mpf(t)
            for segs in self._segments[l][b]:
                starts = [sg.t for sg in segs]
                sg = segs[bisect.bisect_right(starts, tq) - 1]
                out.append(_state_at(sg, tq, self._maths[l], self._v_reset[l]))
        return out

    def state(self, l: int, b: int, t: float) -> np.ndarray:
        """(n, 3) array of (V, w, I) of every unit of layer l in sample b at time t (right-continuous:
        at a spike V = v_reset and w already includes the jump b)."""
        return np.array([[float(v) for v in x] for x in self.state_mp(l, b, t)], dtype=np.float64).reshape(-1, 3)

    def voltage(self, l: int, b: int, t: float) -> np.ndarray:
        """V of every unit of layer l in sample b at time t (right-continuous: v_reset at a spike)."""
        return self.state(l, b, t)[:, 0]


def _layer_params(layer: dict) -> dict:
    spiking = bool(layer.get("spiking", True))
    return dict(
        spiking=spiking,
        tau_mem=float(layer["tau_mem"]),
        tau_syn=float(layer["tau_syn"]),
        tau_w=float(layer.get("tau_w", 1.0)),
        a=float(layer.get("a", 0.0)) if spiking else 0.0,
        b=float(layer.get("b", 0.0)) if spiking else 0.0,
        v_th=float(layer.get("v_th", 1.0)) if spiking else 0.0,
        v_reset=float(layer.get("v_reset", 0.0)) if spiking else 0.0,
        t_ref=float(layer.get("t_ref", 0.0)) if spiking else 0.0,
    )


def _run_layer(layer: dict, pre: list[tuple[mpf, int]], t_max: mpf, max_spikes: int) -> _LayerRun:
    W = np.asarray(layer["W"], dtype=np.float64)
    n = W.shape[0]
    D = np.zeros_like(W) if layer.get("D") is None else np.asarray(layer["D"], dtype=np.float64)
    R = None if layer.get("R") is None else np.asarray(layer["R"], dtype=np.float64)
    E = None if layer.get("E") is None else np.asarray(layer["E"], dtype=np.float64)
    if R is not None and E is None:
        E = np.zeros_like(R)
    prm = _layer_params(layer)
    spiking = prm["spiking"]
    m = adlif_maths(prm["tau_mem"], prm["tau_syn"], prm["tau_w"], prm["a"])
    v_th, v_reset, t_ref, b_jump = mpf(prm["v_th"]), mpf(prm["v_reset"]), mpf(prm["t_ref"]), mpf(prm["b"])
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

    zero = (mpf(0), mpf(0), mpf(0))
    segments = [[_Segment(mpf(0), zero, mpf("-inf"))] for _ in range(n)]
    spikes: list[tuple[mpf, int]] = []
    margin = math.inf

    def next_arrival(j: int) -> mpf:
        return min((e[0] for e in heap if e[2] == j), default=t_max)

    def predict(j: int) -> tuple[mpf, Vec] | None:
        """(time, state) of neuron j's first crossing before its next state change, or None."""
        if not spiking:
            return None
        fs, xf = _free_start(segments[j][-1], m, v_reset)
        horizon = min(next_arrival(j), t_max)
        if fs > horizon:
            return None
        r = m.first_crossing_state(xf, horizon - fs, v_th)
        return None if r is None else (fs + r[0], r[1])

    def interval_margin(j: int, end: mpf) -> float:
        """|max V - v_th| over the free part of [current segment start, end]."""
        fs, xf = _free_start(segments[j][-1], m, v_reset)
        if not spiking or fs > end:
            return math.inf
        lo, hi = m.max_on(xf, end - fs, v_th)
        if lo <= v_th <= hi:
            return 0.0
        return float(min(abs(lo - v_th), abs(hi - v_th)))

    pred = [predict(j) for j in range(n)]
    while True:
        t_arr = heap[0][0] if heap else mpf("inf")
        live = [p[0] for p in pred if p is not None]
        t_c = min(live) if live else mpf("inf")
        if t_c <= t_arr and t_c <= t_max:
            spikers = [j for j in range(n) if pred[j] is not None and pred[j][0] == t_c]
            for j in spikers:  # before any arrival this batch of spikes schedules
                margin = min(margin, interval_margin(j, min(next_arrival(j), t_max)))
            for j in spikers:
                V, w, I = pred[j][1]  # the state at the crossing, from the crossing search
                segments[j].append(_Segment(t_c, (v_reset, w + b_jump, I), t_c + t_ref))
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
            # (a new arrival before another neuron's horizon re-predicts it when it is processed)
            for j in spikers:
                pred[j] = predict(j)
        elif t_arr <= t_max:
            hits: dict[int, mpf] = {}
            while heap and heap[0][0] == t_arr:
                _, _, j, wt = heapq.heappop(heap)
                hits[j] = hits.get(j, mpf(0)) + wt
            for j, wt in hits.items():
                margin = min(margin, interval_margin(j, t_arr))
                sg = segments[j][-1]
                V, w, I = _state_at(sg, t_arr, m, v_reset)
                segments[j].append(_Segment(t_arr, (V, w, I + wt), sg.ref_end))
                pred[j] = predict(j)
        else:
            break
    for j in range(n):
        margin = min(margin, interval_margin(j, t_max))
    spikes.sort(key=lambda x: (x[0], x[1]))
    return _LayerRun(spikes, segments, margin)


def reference_adlif_simulate(
    n_inputs: int,
    layers: Sequence[dict],
    inputs: Sequence[tuple[Sequence[float], Sequence[int]]],
    t_max: float,
    max_spikes: int = 2000,
) -> AdlifReferenceResult:
    """Simulate every sample of ``inputs`` through adLIF ``layers`` with DPS-digit arithmetic.

    ``layers[l]``: dict with W (n_post, n_pre), D (same shape, seconds, or None for zeros), R and E
    ((n, n) or None), tau_mem, tau_syn, tau_w (default 1.0), a (default 0), b (default 0), v_th, v_reset,
    t_ref, spiking (bool; a non-spiking layer is LI: a = b = 0 whatever the dict says). ``inputs``: per
    sample ``(times, units)`` with units in [0, n_inputs). Raises :class:`ReferenceRunawayError` when a
    layer of a sample emits more than ``max_spikes`` spikes.
    """
    with mpmath.workdps(DPS):
        T = mpf(t_max)
        maths = []
        v_resets = []
        for ly in layers:
            prm = _layer_params(ly)
            maths.append(adlif_maths(prm["tau_mem"], prm["tau_syn"], prm["tau_w"], prm["a"]))
            v_resets.append(mpf(prm["v_reset"]))
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
    return AdlifReferenceResult(spikes, spikes_mp, margins, segs, maths, v_resets)
