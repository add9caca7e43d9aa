"""Losses of small networks in 50-digit arithmetic, from the reference simulators' maths: a gradient oracle.

Independent of ``exactsnn`` on purpose (it imports nothing from it). Central differences of these
losses at a step of ~1e-20 with DPS = 50 digits give every gradient of a small network to ~12 digits
or better, with no float64 noise and no kink-skipping: a kink (a spike appearing, or an arrival
crossing a spike time or a refractory end) is met only if it lies within ~1e-20 of the parameter value
(callers check that the spike counts at +-eps agree, and that steps eps and 2 eps give the same slope).

Networks are lists of layer dicts like those of ``reference.py`` / ``reference_adlif.py``, with every
parameter either a float or an mpf (so that a parameter can be moved by 1e-20, which float64 cannot
represent) and with *per-neuron* neuron parameters::

    {"model": "lif" | "adlif" | "li", "W": (n, n_pre), "D": (n, n_pre) or None, "R": (n, n) or None,
     "E": (n, n) or None, "tau_mem": (n,), "tau_syn": (n,), "tau_w": (n,), "a": (n,), "b": (n,),
     "v_th": float, "v_reset": float, "t_ref": float}

(``tau_w``, ``a``, ``b`` only for adLIF; arrays are numpy object arrays or float arrays.) The model and
the event rules are those of the two reference simulators (closed window [0, t_max], delays
``t + D[j, i]``, crossings before arrivals on exact ties, V held at v_reset for t_ref while I decays and
w relaxes to a v_reset). Per neuron the free evolution and the first-crossing search are exactly the
references' own: ``reference.LifMaths`` (closed form, bracketed Newton/bisection to 1e-34 s) for LIF and
LI, ``reference_adlif.AdlifMaths`` (expm propagators, rigorous crossing bounds) for adLIF; the crossing
they bracket to 1e-34 s is then polished by Newton steps inside the bracket (a step of 1e-20 in a
parameter would otherwise see the bracket as ~1e-14 relative noise). Only the event
loop is repeated here, because the references take one parameter set per layer: here each neuron has
its own (learned neuron parameters are per neuron), and the loop keeps no margins or trajectories.
``tests/test_mp_gradients.py`` checks that this loop reproduces both references' spike times.

Losses, all in closed form per inter-event interval of the LI readout (state (V, I), V(0) = I(0) = 0):

* ``sum_exp``: z_o = (1/T) int_0^T e^{-t/T} V_o dt;  ``sum``: z_o = int_0^T V_o dt. Over an interval
  [t0, t0 + h] with (V0, I0) at t0, V(s) = V0 e^{-s/tm} + k I0 (e^{-s/ts} - e^{-s/tm}), k = ts/(ts - tm),
  so int e^{-beta (t0 + s)} V ds = e^{-beta t0} [V0 G(1/tm) + k I0 (G(1/ts) - G(1/tm))] with
  G(r) = (1 - e^{-(r + beta) h})/(r + beta) (beta = 1/T or 0); for tm = ts = tau the limit
  e^{-beta t0} [V0 G(1/tau) + (I0/tau) (1 - e^{-c h}(1 + c h))/c^2], c = 1/tau + beta.
  L = mean over samples of logsumexp(z) - z_label.
* ``first_spike`` (spiking output): L = mean_b [-log softmax(-t_b/tau0)_label + alpha (e^{t_label/tau1} - 1)],
  t = T for a silent unit.
* Spike-count regulariser (``reg``, per neuron): the relaxed penalty whose gradient EventProp returns,
  R = sum over spikes s of layer l of -phi'(n) t_s/(T B), phi'(n) = -2 s_lo relu(nu_lo - n) + 2 s_hi relu(n - nu_hi)
  at the spike's neuron's count n (constant while no spike appears or vanishes).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import mpmath
import numpy as np
from mpmath import mpf
from reference import BISECTION_WIDTH, DPS, LifMaths
from reference_adlif import AdlifMaths

__all__ = ["DPS", "MpRun", "mp_loss", "mp_simulate", "as_mp"]

Vec = tuple  # (V, w, I)


def as_mp(a: object) -> np.ndarray:
    """A float / mpf array (or None) as a numpy object array of mpf (inside the caller's precision)."""
    arr = np.asarray(a, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    for idx in np.ndindex(arr.shape):
        out[idx] = mpf(arr[idx])
    return out


class _LifNeuron:
    """One LIF (or LI) neuron's free evolution and first crossing, on the state (V, w = 0, I)."""

    def __init__(self, tau_mem: mpf, tau_syn: mpf) -> None:
        self.m = LifMaths(tau_mem, tau_syn)
        self.ts = self.m.ts

    def free(self, x: Vec, s: mpf) -> Vec:
        V, _, I = x
        return self.m.voltage(V, I, s), mpf(0), self.m.current(I, s)

    def window(self, x: Vec, s: mpf, v_reset: mpf) -> Vec:
        return v_reset, mpf(0), x[2] * mpmath.exp(-s / self.ts)

    def first_crossing_state(self, x: Vec, S: mpf, v_th: mpf) -> tuple[mpf, Vec] | None:
        if x[0] >= v_th:
            return mpf(0), x
        # I stays between 0 and I0 and V relaxes towards I, so V <= max(V0, I0, 0) on the whole interval
        if max(x[0], x[2], 0) < v_th:
            return None
        s = self.m.first_crossing(x[0], x[2], S, v_th)
        if s is None:
            return None
        return _polish(s, lambda u: self.free(x, u), lambda y: (y[2] - y[0]) / self.m.tm, v_th)


def _polish(s: mpf, state: object, slope: object, v_th: mpf) -> tuple[mpf, Vec]:
    """Newton steps on V(s) = v_th from the upper end s of the references' 1e-34 s crossing bracket, kept
    inside the bracket: the crossing time to ~DPS digits, so that parameter steps of 1e-20 see no bracket
    noise (1e-34 / 1e-20 would be ~1e-14 of the loss's time derivative)."""
    lo = s - 2 * BISECTION_WIDTH
    x = state(s)
    for _ in range(3):
        d = slope(x)
        if not d > 0:
            break
        s_new = s - (x[0] - v_th) / d
        if not lo < s_new <= s + BISECTION_WIDTH or s_new == s:
            break
        s = s_new
        x = state(s)
    return s, x


class _AdlifNeuron:
    """One adLIF neuron: ``reference_adlif.AdlifMaths`` with the crossing time polished by Newton."""

    def __init__(self, tau_mem: mpf, tau_syn: mpf, tau_w: mpf, a: mpf) -> None:
        self.m = AdlifMaths(tau_mem, tau_syn, tau_w, a)
        self.free = self.m.free
        self.window = self.m.window

    def first_crossing_state(self, x: Vec, S: mpf, v_th: mpf) -> tuple[mpf, Vec] | None:
        r = self.m.first_crossing_state(x, S, v_th)
        if r is None or r[0] == 0:
            return r
        r1 = self.m.r1
        return _polish(r[0], lambda u: self.m.free(x, u), lambda y: r1[0] * y[0] + r1[1] * y[1] + r1[2] * y[2],
                       v_th)


_ADLIF: dict[tuple, _AdlifNeuron] = {}


def _adlif_neuron(tau_mem: mpf, tau_syn: mpf, tau_w: mpf, a: mpf) -> _AdlifNeuron:
    key = (tau_mem, tau_syn, tau_w, a)
    m = _ADLIF.get(key)
    if m is None:
        if len(_ADLIF) > 256:
            _ADLIF.clear()
        m = _ADLIF[key] = _AdlifNeuron(tau_mem, tau_syn, tau_w, a)
    return m


def _neurons(layer: dict) -> list:
    n = len(layer["W"])
    if layer["model"] == "adlif":
        return [_adlif_neuron(mpf(layer["tau_mem"][j]), mpf(layer["tau_syn"][j]), mpf(layer["tau_w"][j]),
                              mpf(layer["a"][j])) for j in range(n)]
    return [_LifNeuron(mpf(layer["tau_mem"][j]), mpf(layer["tau_syn"][j])) for j in range(n)]


@dataclass
class _Seg:
    t: mpf
    x: Vec
    ref_end: mpf


def _state_at(sg: _Seg, t: mpf, m: object, v_reset: mpf) -> Vec:
    if sg.ref_end > sg.t:
        if t <= sg.ref_end:
            return m.window(sg.x, t - sg.t, v_reset)
        return m.free(m.window(sg.x, sg.ref_end - sg.t, v_reset), t - sg.ref_end)
    return m.free(sg.x, t - sg.t)


def _free_start(sg: _Seg, m: object, v_reset: mpf) -> tuple[mpf, Vec]:
    if sg.ref_end > sg.t:
        return sg.ref_end, m.window(sg.x, sg.ref_end - sg.t, v_reset)
    return sg.t, sg.x


def _arrivals(layer: dict, pre: list[tuple[mpf, int]], T: mpf) -> list[tuple[mpf, int, int, mpf]]:
    W, D = layer["W"], layer.get("D")
    out = []
    seq = 0
    for t_pre, i in pre:
        for j in range(len(W)):
            ta = t_pre + (mpf(D[j][i]) if D is not None else 0)
            if ta <= T:
                out.append((ta, seq, j, mpf(W[j][i])))
                seq += 1
    return out


def _run_spiking(layer: dict, pre: list[tuple[mpf, int]], T: mpf, max_spikes: int) -> list[tuple[mpf, int]]:
    """The spikes (time, unit) of one spiking layer in one sample, sorted by (time, unit)."""
    ms = _neurons(layer)
    n = len(ms)
    R, E = layer.get("R"), layer.get("E")
    v_th, v_reset, t_ref = mpf(layer["v_th"]), mpf(layer["v_reset"]), mpf(layer["t_ref"])
    b_jump = [mpf(layer["b"][j]) if layer["model"] == "adlif" else mpf(0) for j in range(n)]
    heap = _arrivals(layer, pre, T)
    seq = len(heap)
    heapq.heapify(heap)
    zero = (mpf(0), mpf(0), mpf(0))
    segs = [_Seg(mpf(0), zero, mpf("-inf")) for _ in range(n)]
    spikes: list[tuple[mpf, int]] = []

    def predict(j: int) -> tuple[mpf, Vec] | None:
        fs, xf = _free_start(segs[j], ms[j], v_reset)
        horizon = min(min((e[0] for e in heap if e[2] == j), default=T), T)
        if fs > horizon:
            return None
        r = ms[j].first_crossing_state(xf, horizon - fs, v_th)
        return None if r is None else (fs + r[0], r[1])

    pred = [predict(j) for j in range(n)]
    while True:
        t_arr = heap[0][0] if heap else mpf("inf")
        live = [p[0] for p in pred if p is not None]
        t_c = min(live) if live else mpf("inf")
        if t_c <= t_arr and t_c <= T:
            spikers = [j for j in range(n) if pred[j] is not None and pred[j][0] == t_c]
            for j in spikers:
                _, w, I = pred[j][1]
                segs[j] = _Seg(t_c, (v_reset, w + b_jump[j], I), t_c + t_ref)
                spikes.append((t_c, j))
                if R is not None:
                    for k in range(n):
                        if R[k][j] != 0:
                            ta = t_c + (mpf(E[k][j]) if E is not None else 0)
                            if ta <= T:
                                heapq.heappush(heap, (ta, seq, k, mpf(R[k][j])))
                                seq += 1
            if len(spikes) > max_spikes:
                raise RuntimeError(f"more than {max_spikes} spikes in one layer and sample")
            for j in spikers:
                pred[j] = predict(j)
        elif t_arr <= T:
            hits: dict[int, mpf] = {}
            while heap and heap[0][0] == t_arr:
                _, _, j, wt = heapq.heappop(heap)
                hits[j] = hits.get(j, mpf(0)) + wt
            for j, wt in hits.items():
                sg = segs[j]
                V, w, I = _state_at(sg, t_arr, ms[j], v_reset)
                segs[j] = _Seg(t_arr, (V, w, I + wt), sg.ref_end)
                pred[j] = predict(j)
        else:
            break
    spikes.sort(key=lambda x: (x[0], x[1]))
    return spikes


def _readout_scores(layer: dict, pre: list[tuple[mpf, int]], T: mpf, beta: mpf, scale: mpf) -> list[mpf]:
    """z_o = scale * int_0^T e^{-beta t} V_o dt of an LI readout, interval by interval in closed form."""
    n = len(layer["W"])
    per_unit: list[list[tuple[mpf, mpf]]] = [[] for _ in range(n)]
    for ta, _, j, w in _arrivals(layer, pre, T):
        per_unit[j].append((ta, w))
    z = []
    for j in range(n):
        tm, ts = mpf(layer["tau_mem"][j]), mpf(layer["tau_syn"][j])
        m = LifMaths(tm, ts)

        def g(r: mpf, h: mpf) -> mpf:
            c = r + beta
            return -mpmath.expm1(-c * h) / c

        total = mpf(0)
        V = I = mpf(0)
        t0 = mpf(0)
        events = sorted(per_unit[j], key=lambda e: e[0]) + [(T, mpf(0))]
        for t1, w in events:
            h = t1 - t0
            if h > 0:
                if m.equal:
                    c = 1 / tm + beta
                    part = V * g(1 / tm, h) + I / tm * (1 - mpmath.exp(-c * h) * (1 + c * h)) / (c * c)
                else:
                    part = V * g(1 / tm, h) + m.k * I * (g(1 / ts, h) - g(1 / tm, h))
                total += mpmath.exp(-beta * t0) * part
                V, I = m.voltage(V, I, h), m.current(I, h)
                t0 = t1
            I += w
        z.append(scale * total)
    return z


@dataclass
class MpRun:
    """Per layer and sample, the spikes [(time, unit)] (empty for a readout)."""

    spikes: list[list[list[tuple[mpf, int]]]]


def mp_simulate(
    layers: Sequence[dict], inputs: Sequence[tuple[Sequence[float], Sequence[int]]], t_max: float,
    start: int = 0, below: MpRun | None = None, max_spikes: int = 400,
) -> MpRun:
    """Spikes of every spiking layer in DPS digits; layers below ``start`` are taken from ``below``."""
    with mpmath.workdps(DPS):
        T = mpf(t_max)
        out: list[list[list[tuple[mpf, int]]]] = []
        for l, ly in enumerate(layers):
            if l < start:
                out.append(below.spikes[l])
                continue
            per_sample = []
            for b, (times, units) in enumerate(inputs):
                pre = [(mpf(float(t)), int(u)) for t, u in zip(times, units, strict=True)] if l == 0 else out[l - 1][b]
                per_sample.append([] if ly["model"] == "li" else _run_spiking(ly, pre, T, max_spikes))
            out.append(per_sample)
    return MpRun(out)


def mp_loss(
    layers: Sequence[dict], inputs: Sequence[tuple[Sequence[float], Sequence[int]]], labels: Sequence[int],
    t_max: float, loss: dict, reg: dict | None = None, start: int = 0, below: MpRun | None = None,
) -> tuple[mpf, MpRun]:
    """Loss (mean over samples) in DPS digits and the run. ``loss``: {"name": "sum_exp" | "sum"} or
    {"name": "first_spike", "tau0", "tau1", "alpha"}; ``reg``: {"layers", "nu_lo", "nu_hi", "s_lo", "s_hi"}
    (per-neuron spike-count penalty, relaxed form) or None."""
    run = mp_simulate(layers, inputs, t_max, start=start, below=below)
    with mpmath.workdps(DPS):
        T = mpf(t_max)
        B = len(inputs)
        last = layers[-1]
        total = mpf(0)
        for b in range(B):
            if loss["name"] in ("sum_exp", "sum"):
                pre = run.spikes[-2][b] if len(layers) > 1 else [
                    (mpf(float(t)), int(u)) for t, u in zip(*inputs[b], strict=True)]
                beta, scale = (1 / T, 1 / T) if loss["name"] == "sum_exp" else (mpf(0), mpf(1))
                z = _readout_scores(last, pre, T, beta, scale)
                total += mpmath.log(mpmath.fsum(mpmath.exp(v) for v in z)) - z[int(labels[b])]
            elif loss["name"] == "first_spike":
                n = len(last["W"])
                first = [T] * n
                for t, u in reversed(run.spikes[-1][b]):
                    first[u] = t
                x = [-t / mpf(loss["tau0"]) for t in first]
                lab = int(labels[b])
                total += mpmath.log(mpmath.fsum(mpmath.exp(v) for v in x)) - x[lab]
                total += mpf(loss["alpha"]) * mpmath.expm1(first[lab] / mpf(loss["tau1"]))
            else:
                raise ValueError(f"unknown loss {loss['name']!r}")
        total /= B
        if reg is not None:
            for l in reg["layers"]:
                n = len(layers[l]["W"])
                for b in range(B):
                    counts = [0] * n
                    for _, u in run.spikes[l][b]:
                        counts[u] += 1
                    for t, u in run.spikes[l][b]:
                        c = counts[u]
                        dphi = (-2 * mpf(reg["s_lo"]) * max(mpf(reg["nu_lo"]) - c, 0)
                                + 2 * mpf(reg["s_hi"]) * max(c - mpf(reg["nu_hi"]), 0))
                        total += -dphi * t / (T * B)
    return total, run
