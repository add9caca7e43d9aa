"""Leaky integrate-and-fire neuron with exponential current synapse, and its non-spiking readout.

Model (time in seconds, voltage in units of the threshold scale)::

    tau_mem dV/dt = -V + I        tau_syn dI/dt = -I        input spike of weight w:  I += w
    spike when V reaches v_th from below; then V = v_reset, held there for t_ref (NEST semantics:
    I keeps evolving and keeps receiving input during the refractory window).

Closed form over an event-free stretch of length s (a_m = e^{-s/tau_mem}, a_s = e^{-s/tau_syn})::

    I(s) = a_s I0
    V(s) = a_m V0 + k I0 (a_s - a_m),   k = tau_syn / (tau_syn - tau_mem)
         = a_m [V0 + I0 (s/tau_mem) phi(s delta)],   delta = (tau_syn - tau_mem)/(tau_mem tau_syn),
                                                     phi(x) = expm1(x)/x,  phi(0) = 1

For |s delta| < 1 the second form is evaluated: it has no division by tau_syn - tau_mem, so it is
exact for tau_mem == tau_syn (V = e^{-s/tau}(V0 + I0 s/tau)) and accurate when they are nearly
equal. Beyond, the first form is used: no cancellation there, and no inf * 0 after long gaps.

Extremum. V' = (I - V)/tau_mem is a sum of two exponentials, so V has at most one stationary point.
Solving I(s) = V(s) gives e^{s delta} = (tau_syn/tau_mem)(1 + y), y = -tau_mem delta V0/I0, i.e.::

    s* = tau_syn L((tau_syn - tau_mem)/tau_mem) - tau_mem (V0/I0) L(y),   L(x) = log1p(x)/x, L(0) = 1

which exists when I0 != 0 and y > -1 (again division-free at tau_mem == tau_syn).

First-crossing search (never misses a grazing spike). With V(0) < v_th on [0, h]:
if s* lies in (0, h) and V(s*) >= v_th the (unique) first crossing is in [0, s*], where V rises
monotonically; otherwise V is monotone on [s*, h] (or on all of [0, h]) and a crossing exists iff
V(h) >= v_th, in [s*, h] (or [0, h]). An up-and-down excursion above threshold between two events
is therefore always caught, unlike a test of the interval's end points. The bracket holds exactly
one root; a Newton iteration safeguarded by the bracket and bisection polishes it to a few ulps.

Conservative bound used to skip the search: with I0 >= 0, V(s) <= max(V0, I0) for all s >= 0 (V
relaxes towards I, which decays towards 0); in general V(s) <= max(V0, I0, 0). A neuron whose V
and I are both below v_th (v_th > 0) cannot spike before its next input.

All per-neuron maths below is ``register_jitable`` so CPU and CUDA kernels share it verbatim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from numba.extending import register_jitable

from exactsnn.neurons.spec import TAU_MIN, ModelSpec
from exactsnn.neurons.vexp import SHORT_X, vexp, vexp_phis, vexp_phis_short, vexp_short

__all__ = ["LIF", "LI", "LIF_SPEC", "LI_SPEC"]


def _check_positive(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")


def _check_finite(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")


@dataclass(frozen=True)
class LIF:
    """Spiking LIF neuron: tau_mem, tau_syn, t_ref in seconds; v_th > v_reset (dimensionless)."""

    tau_mem: float = 20e-3
    tau_syn: float = 5e-3
    v_th: float = 1.0
    v_reset: float = 0.0
    t_ref: float = 0.0

    spiking = True

    def __post_init__(self) -> None:
        _check_positive("LIF.tau_mem", self.tau_mem)
        _check_positive("LIF.tau_syn", self.tau_syn)
        _check_finite("LIF.v_th", self.v_th)
        _check_finite("LIF.v_reset", self.v_reset)
        _check_finite("LIF.t_ref", self.t_ref)
        if self.t_ref < 0:
            raise ValueError(f"LIF.t_ref must be >= 0 seconds, got {self.t_ref!r}")
        if not self.v_reset < self.v_th:
            raise ValueError(f"LIF.v_reset ({self.v_reset}) must be below v_th ({self.v_th})")
        for name in ("tau_mem", "tau_syn", "v_th", "v_reset", "t_ref"):
            object.__setattr__(self, name, float(getattr(self, name)))


@dataclass(frozen=True)
class LI:
    """Non-spiking leaky integrator readout (same equations as LIF, no threshold); taus in seconds."""

    tau_mem: float = 20e-3
    tau_syn: float = 5e-3

    spiking = False

    def __post_init__(self) -> None:
        _check_positive("LI.tau_mem", self.tau_mem)
        _check_positive("LI.tau_syn", self.tau_syn)
        for name in ("tau_mem", "tau_syn"):
            object.__setattr__(self, name, float(getattr(self, name)))


_TAUS = ("tau_mem", "tau_syn")
LIF_SPEC = ModelSpec("LIF", "lif", LIF, "lif", learnable=_TAUS, time_constants=_TAUS,
                     bounds={n: (TAU_MIN, math.inf) for n in _TAUS})
LI_SPEC = ModelSpec("LI", "li", LI, "readout")


# ----------------------------------------------------------------------------- scalar maths
@register_jitable
def log1p_ratio(x: float) -> float:
    """log1p(x)/x with its limit 1 at x = 0 (x > -1)."""
    if x == 0.0:
        return 1.0
    return math.log1p(x) / x


@register_jitable
def lif_coupling_from(a_m: float, a_s: float, s: float, tau_mem: float, tau_syn: float) -> float:
    """c(s) from a_m = e^{-s/tau_mem} and a_s = e^{-s/tau_syn}.

    For |s delta| < 1 the expm1 form (no cancellation, exact at tau_mem == tau_syn); beyond, the
    difference form (a_s - a_m)/(tau_mem delta), which cannot overflow where e^{-s/tau_mem}
    underflows and expm1(s delta) overflows (long gaps with tau_syn > tau_mem).
    """
    delta = (tau_syn - tau_mem) / (tau_mem * tau_syn)
    x = s * delta
    if abs(x) < 1.0:
        return _coupling_near(a_m, s, tau_mem, x, math.expm1(x))
    return (a_s - a_m) / (tau_mem * delta)


@register_jitable
def _coupling_near(a_m: float, s: float, tau_mem: float, x: float, em: float) -> float:
    """c(s) = a_m (s/tau_mem) expm1(x)/x for x = s delta, |x| < 1, given em = expm1(x) (limit 1 at x = 0)."""
    return a_m * (s / tau_mem) * (em / x if x != 0.0 else 1.0)


@register_jitable
def lif_coupling(s: float, tau_mem: float, tau_syn: float) -> float:
    """Factor c(s) with V(s) = e^{-s/tau_mem} V0 + c(s) I0 (dimensionless)."""
    return lif_coupling_from(math.exp(-s / tau_mem), math.exp(-s / tau_syn), s, tau_mem, tau_syn)


@register_jitable
def lif_factors(s: float, tau_mem: float, tau_syn: float) -> tuple[float, float, float]:
    """Shared propagation factors over s seconds: (a_m, c, a_s) with V1 = a_m V0 + c I0, I1 = a_s I0."""
    a_m = math.exp(-s / tau_mem)
    a_s = math.exp(-s / tau_syn)
    return a_m, lif_coupling_from(a_m, a_s, s, tau_mem, tau_syn), a_s


@register_jitable
def lif_voltage(V0: float, I0: float, s: float, tau_mem: float, tau_syn: float) -> float:
    """V after an event-free stretch of s seconds from (V0, I0)."""
    a_m, c, _ = lif_factors(s, tau_mem, tau_syn)
    return a_m * V0 + c * I0


@register_jitable
def lif_extremum(V0: float, I0: float, tau_mem: float, tau_syn: float) -> float:
    """Time (s, relative) of V's stationary point, or +inf if there is none at a positive time."""
    if I0 == 0.0:
        return math.inf
    delta = (tau_syn - tau_mem) / (tau_mem * tau_syn)
    y = -tau_mem * delta * V0 / I0
    if y <= -1.0:
        return math.inf
    s = tau_syn * log1p_ratio((tau_syn - tau_mem) / tau_mem) - tau_mem * (V0 / I0) * log1p_ratio(y)
    if not s > 0.0:
        return math.inf
    return s


@register_jitable
def lif_polish_root(
    V0: float, I0: float, lo: float, hi: float, v_lo: float, v_hi: float,
    tau_mem: float, tau_syn: float, v_th: float, t0: float,
) -> float:
    """The root of V(s) = v_th in [lo, hi] (v_lo = V(lo) < v_th <= v_hi = V(hi), exactly one root).

    Starts at the secant point, then Newton steps (V' is closed-form) kept inside the shrinking
    bracket; a bisection replaces any step that would leave it or that does not at least halve
    the previous one (so a flat end, e.g. a peak at hi, cannot stall it). Stops at a few ulps of
    the absolute time t0 + s.
    """
    tol = 4.0 * 2.220446049250313e-16 * max(abs(t0) + hi, 1e-12)
    x = lo + (hi - lo) * ((v_th - v_lo) / (v_hi - v_lo))
    if not lo < x < hi:
        x = 0.5 * (lo + hi)
    dx = hi - lo
    dx_old = 2.0 * dx
    delta = (tau_syn - tau_mem) / (tau_mem * tau_syn)
    for _ in range(200):
        a_m = math.exp(-x / tau_mem)
        y = x * delta
        if abs(y) < 1.0:
            # V exactly as lif_voltage computes it; e^{-x/tau_syn} = a_m e^{y} only steers the
            # Newton step, so it comes from the same expm1 instead of a third exponential
            em = math.expm1(y)
            c = _coupling_near(a_m, x, tau_mem, y, em)
            a_s = a_m + a_m * em
        else:
            a_s = math.exp(-x / tau_syn)
            c = lif_coupling_from(a_m, a_s, x, tau_mem, tau_syn)
        V = a_m * V0 + c * I0
        f = V - v_th
        if f >= 0.0:
            hi = x
        else:
            lo = x
        if f == 0.0:
            return x
        d1 = (a_s * I0 - V) / tau_mem
        newton = x - f / d1 if d1 > 0.0 else math.inf
        if lo < newton < hi and abs(2.0 * f) <= abs(dx_old * d1):
            dx_old = dx
            dx = x - newton
            x = newton
            if abs(dx) <= tol:
                return x
            # Newton's error after this step is C dx^2 with C = |V''| / (2 V'), V'' = -(a_s I0/tau_syn + V')/tau_mem;
            # over a step this short C is constant to ~|dx|/tau, so 4 C dx^2 <= tol saves the confirming evaluation
            c2 = (abs(a_s * I0) / tau_syn + d1) / (2.0 * tau_mem * d1)
            if 4.0 * c2 * dx * dx <= tol:
                return x
        else:
            dx_old = dx
            dx = 0.5 * (hi - lo)
            x = lo + dx
            if dx <= tol:
                return hi
    return hi


@register_jitable
def lif_first_crossing(
    V0: float, I0: float, h: float, tau_mem: float, tau_syn: float, v_th: float, t0: float
) -> float:
    """First s in [0, h] with V(s) >= v_th starting from (V0, I0) without input; -1.0 if none.

    ``t0`` is the absolute time of the start (only used for the stopping tolerance).
    """
    if V0 >= v_th:
        return 0.0
    if not h > 0.0:
        return -1.0
    if not lif_may_reach(V0, I0, h / tau_mem, v_th):
        return -1.0
    s_star = lif_extremum(V0, I0, tau_mem, tau_syn)
    left = 0.0
    v_left = V0
    if s_star < h:
        v_star = lif_voltage(V0, I0, s_star, tau_mem, tau_syn)
        if v_star >= v_th:
            return lif_polish_root(V0, I0, 0.0, s_star, V0, v_star, tau_mem, tau_syn, v_th, t0)
        left = s_star
        v_left = v_star
    v_h = lif_voltage(V0, I0, h, tau_mem, tau_syn)
    if v_h >= v_th:
        return lif_polish_root(V0, I0, left, h, v_left, v_h, tau_mem, tau_syn, v_th, t0)
    return -1.0


@register_jitable
def lif_first_crossing_known(
    V0: float, I0: float, h: float, a_m: float, c: float, a_s: float,
    tau_mem: float, tau_syn: float, v_th: float, t0: float,
) -> float:
    """:func:`lif_first_crossing` when the stretch's factors ``(a_m, c, a_s) = lif_factors(h)`` are known.

    V has at most one stationary point, so V(0) < v_th <= V(h) means exactly one crossing in
    (0, h]: it is polished at once, without locating the extremum. With V(h) < v_th a crossing
    needs an interior maximum, i.e. V rising at 0 (I0 > V0) and falling at h: V'(h) =
    (a_s I0 - V(h))/tau_mem clearly positive (beyond its rounding) rules it out in O(1).
    """
    if V0 >= v_th or not h > 0.0:
        return lif_first_crossing(V0, I0, h, tau_mem, tau_syn, v_th, t0)
    v_h = a_m * V0 + c * I0
    if v_h >= v_th:
        return lif_polish_root(V0, I0, 0.0, h, V0, v_h, tau_mem, tau_syn, v_th, t0)
    if I0 <= V0:
        return -1.0  # V falls first: its maximum on [0, h] is max(V0, V(h)) < v_th
    i_h = a_s * I0
    if i_h - v_h > 1e-12 * (abs(i_h) + abs(v_h)):
        return -1.0  # rising at both ends: monotone, its maximum is V(h) < v_th
    return lif_first_crossing(V0, I0, h, tau_mem, tau_syn, v_th, t0)


@register_jitable
def lif_may_reach(V: float, I: float, k: float, v_th: float) -> bool:
    """Exact screen: False only if V stays below v_th for a stretch of k tau_mem without input.

    V' = (I - V)/tau_mem <= (max(I0, 0) - V)/tau_mem, so V(s) <= V0 + max(max(I0, 0) - V0, 0) s/tau_mem.
    """
    return V + max(max(I, 0.0) - V, 0.0) * k >= v_th


@register_jitable
def lif_may_cross(V: float, I: float, v_th: float) -> bool:
    """Conservative test: False only if V stays below v_th for all time without further input."""
    return V >= v_th or I >= v_th or v_th <= 0.0


@register_jitable
def lif_advance(
    V: float, I: float, t0: float, t1: float, ref_end: float, tau_mem: float, tau_syn: float, v_reset: float
) -> tuple[float, float, float]:
    """State (V, I) at t1 >= t0 from the state at t0 without input, V clamped at v_reset until ref_end.

    Returns ``(V1, I1, I_end)``; ``I_end`` is the current at ``ref_end`` when the refractory
    window ends in (t0, t1], NaN otherwise.
    """
    if ref_end > t0:
        if ref_end > t1:
            return v_reset, I * math.exp(-(t1 - t0) / tau_syn), math.nan
        I_end = I * math.exp(-(ref_end - t0) / tau_syn)
        s = t1 - ref_end
        return lif_voltage(v_reset, I_end, s, tau_mem, tau_syn), I_end * math.exp(-s / tau_syn), I_end
    s = t1 - t0
    return lif_voltage(V, I, s, tau_mem, tau_syn), I * math.exp(-s / tau_syn), math.nan


@register_jitable
def lif_next_spike(
    V: float, I: float, t0: float, t1: float, ref_end: float,
    tau_mem: float, tau_syn: float, v_th: float, v_reset: float,
) -> float:
    """Absolute time of the first threshold crossing in [t0, t1] without input, or -1.0 if none.

    (V, I) is the state at t0; while t < ref_end the neuron is refractory (V held at v_reset).
    """
    if ref_end > t0:
        if ref_end >= t1:
            return -1.0
        I = I * math.exp(-(ref_end - t0) / tau_syn)
        V = v_reset
        t0 = ref_end
    s = lif_first_crossing(V, I, t1 - t0, tau_mem, tau_syn, v_th, t0)
    if s < 0.0:
        return -1.0
    return t0 + s


# ----------------------------------------------------------------------------- per-neuron time constants
# The functions below are inlined into their callers at Numba IR level (inline="always"): LLVM would not inline
# something this size into a loop over neurons, and the call would stop that loop's vectorisation. Their
# selects go through _pick, since Numba's IR inliner mishandles conditional expressions.
@register_jitable
def _pick(c: bool, a: float, b: float) -> float:
    """a if c else b (a select once LLVM has inlined it)."""
    return a if c else b


@register_jitable(inline="always")
def _phi_base(h: float, r_m: float, r_s: float, short: bool) -> tuple[float, float, float, float]:
    """(a_lo, a_hi, e1, e2) for the rates r_m = 1/tau_mem, r_s = 1/tau_syn over h seconds.

    With lo = min(r_m, r_s), hi = max(r_m, r_s) and z = -h (hi - lo) <= 0: a_lo = e^{-h lo} (the slower
    mode), a_hi = e^{-h hi} = a_lo e^z, e1 = a_lo phi1(z) = (a_hi - a_lo)/z and e2 = a_lo phi2(z), with
    phi1(z) = expm1(z)/z, phi2(z) = (e^z - 1 - z)/z^2 (limits 1 and 1/2): no division by hi - lo, so exact
    for equal rates and accurate for nearly equal ones. Branch-free (:mod:`exactsnn.neurons.vexp`), so a
    loop over neurons that calls it vectorises; two exponentials' worth of arithmetic. ``short`` (see
    :func:`lif_short_stretch`; the same for every neuron of a stretch) takes the series alone: the same values,
    at about half the cost.
    """
    x = -h * min(r_m, r_s)
    z = -h * abs(r_m - r_s)
    if short:
        a_lo = vexp_short(x)
        ez, p1, p2 = vexp_phis_short(z)
    else:
        a_lo = vexp(x)
        ez, p1, p2 = vexp_phis(z)
    return a_lo, a_lo * ez, a_lo * p1, a_lo * p2


@register_jitable
def lif_short_stretch(h: float, r_max: float) -> bool:
    """Whether a stretch of h seconds is short for every neuron whose rates are at most r_max: then every
    exponent of :func:`_phi_base` lies in [-SHORT_X, 0] (h min(r_m, r_s) and h |r_m - r_s| are <= h r_max,
    rounding included, as rounding is monotone)."""
    return h * r_max <= SHORT_X


@register_jitable(inline="always")
def lif_rate_factors(h: float, r_m: float, r_s: float, short: bool = False) -> tuple[float, float, float]:
    """:func:`lif_factors` (a_m, c, a_s) over h seconds from the rates r_m = 1/tau_mem, r_s = 1/tau_syn.

    c = r_m h e1 (see :func:`_phi_base`, also for ``short``): one form for every pair of rates, equal included;
    branch-free.
    """
    a_lo, a_hi, e1, _ = _phi_base(h, r_m, r_s, short)
    m_lo = r_m <= r_s
    return _pick(m_lo, a_lo, a_hi), r_m * h * e1, _pick(m_lo, a_hi, a_lo)


@register_jitable(inline="always")
def lif_rate_tangents(
    h: float, r_m: float, r_s: float, short: bool = False
) -> tuple[float, float, float, float, float, float, float]:
    """Propagation factors over h seconds and their derivatives in tau_mem and tau_syn.

    Returns (a_m, c, a_s, da_m/dtau_mem, dc/dtau_mem, dc/dtau_syn, da_s/dtau_syn) with r_m = 1/tau_mem,
    r_s = 1/tau_syn (see :mod:`exactsnn.engine.cpu.backward` for their use). With f(x) = e^{-x h}:
    E = -f[r_m, r_s] = h a_lo phi1(z) and c = r_m E; the second divided differences are
    f[lo, lo, hi] = h^2 a_lo phi2(z) and f[lo, hi, hi] = h^2 a_lo (phi1(z) - phi2(z)), so::

        dc/dtau_mem = -r_m^2 (E - r_m f[r_m, r_m, r_s])     dc/dtau_syn = r_m r_s^2 f[r_m, r_s, r_s]
        da_m/dtau_mem = h r_m^2 a_m                           da_s/dtau_syn = h r_s^2 a_s

    all free of divisions by r_m - r_s (exact at tau_mem == tau_syn); branch-free, like :func:`_phi_base` (also
    for ``short``).
    """
    a_lo, a_hi, e1, e2 = _phi_base(h, r_m, r_s, short)
    m_lo = r_m <= r_s
    a_m = _pick(m_lo, a_lo, a_hi)
    a_s = _pick(m_lo, a_hi, a_lo)
    hh = h * h
    P = hh * _pick(m_lo, e2, e1 - e2)
    Q = hh * _pick(m_lo, e1 - e2, e2)
    E = h * e1
    return a_m, r_m * E, a_s, h * r_m * r_m * a_m, -r_m * r_m * (E - r_m * P), r_m * r_s * r_s * Q, h * r_s * r_s * a_s
