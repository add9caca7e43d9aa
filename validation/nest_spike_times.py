"""Compare exactsnn spike times with NEST's precise-spike-timing LIF model ``iaf_psc_exp_ps``.

Random LIF networks (10-50 neurons, 5-20 Poisson input channels, refractoriness, one or two layers,
recurrent or feedforward, with or without delays) are simulated by exactsnn and by NEST 3.x from
the same input spike trains; every output spike must appear in both, at the same time to within
1e-12 s. Exit status 0 when that holds for every network, 1 when it does not (a network without any
spike also fails: it would check nothing), 2 when NEST is not installed.

Run::

    PYTHONPATH=. python validation/nest_spike_times.py [--networks 20] [--seed 0] [--t-max 1.0] [--quick]
                                                       [--resolution 0.1]

Model and unit mapping
----------------------
exactsnn (seconds, dimensionless voltage)::

    tau_mem dV/dt = -V + I,   tau_syn dI/dt = -I,   input spike of weight w: I += w,
    spike when V reaches v_th; V = v_reset, held for t_ref while I keeps evolving and receiving input.

NEST ``iaf_psc_exp_ps`` (ms, mV, pA, pF)::

    C_m dV/dt = -(V - E_L) C_m/tau_m + I_syn,   tau_syn dI_syn/dt = -I_syn,   spike of weight w_pA: I_syn += w_pA,

with the same refractory semantics (V clamped to V_reset for t_ref, the synaptic current evolves).
With a voltage scale ``SCALE_MV`` (mV per exactsnn unit) the mapping is::

    E_L = 0, V_m(0) = 0, I_e = 0, V_min = -inf
    V_th    = v_th * SCALE_MV            V_reset    = v_reset * SCALE_MV
    tau_m   = tau_mem * 1e3 ms           tau_syn_ex = tau_syn_in = tau_syn * 1e3 ms
    t_ref   = t_ref * 1e3 ms             C_m        = C_M_PF (arbitrary)
    w_pA    = w * SCALE_MV * C_m / tau_m     (pF * mV / ms = pA)
    delay   = d * 1e3 ms

(NEST routes negative weights to its inhibitory synapse: both synaptic time constants are set equal,
so the split is invisible.) The mapping is checked numerically at start-up: the NEST membrane
potential after one input spike must equal SCALE_MV times exactsnn's closed-form PSP.

Restrictions imposed by NEST, not by exactsnn
---------------------------------------------
* NEST's delays live on its simulation grid and must be at least one step, so every delay drawn here
  is an integer multiple k >= 1 of 0.1 ms (``GRID_S``; ``--resolution`` must divide it, so a finer
  NEST grid simulates the very same networks). exactsnn itself takes any real delay >= 0.
  ``iaf_psc_exp_ps`` carries the precise offset of each spike inside a step, so arrival times are
  exact (spike time + delay) in both simulators.
* NEST cannot express zero delays. Networks "without delays" (exactsnn ``delays=False``) are therefore
  single feedforward layers: NEST's spike generators fire one resolution step early and their
  connections carry a delay of one step, so the inputs arrive at exactly the times exactsnn sees.
  Zero-delay recurrence has no NEST counterpart and is not compared here.
* ``t_ref`` must be a positive multiple of the resolution in NEST; it is drawn from 0.5-5 ms.
* ``iaf_psc_exp_ps`` tests the threshold only at the end of each interval between incoming events
  and grid points (at most one resolution step long). An excursion above threshold that starts and
  ends inside one such interval is invisible to NEST, while exactsnn's crossing search brackets the
  voltage maximum and finds it; in recurrent networks everything after such a spike differs. These
  misses are rare (about one per 3e4 spikes at 0.1 ms, V above threshold for 5e-6 to 8e-5 s; a finer
  ``--resolution`` makes them rarer but lets NEST's rounding drift grow) and they do fail the
  acceptance criterion, which is not loosened for them.
* NEST's regula falsi stops at |V - V_th| < 1e-14 mV. Beyond that, both simulators round in float64,
  and a recurrent network amplifies these roundings from spike to spike (most strongly through
  crossings with small dV/dt): over 3 s the referee below found exactsnn up to 2.5e-13 s and NEST up
  to 1.1e-12 s from the exact solution, so on long runs the 1e-12 s criterion has little margin.

Arbitration
-----------
When a network fails, ``referee`` replays the whole network with 34-digit mpmath arithmetic (an
independent event-driven simulator sharing only the inputs and parameters) up to just past the
offending time, and the report gives, for the first unpaired spike: whether the referee has it, how
long the voltage would stay above threshold, when NEST next tests the threshold, and the verdict
(NEST cannot see the crossing / exactsnn missed a spike / a spurious spike); for the worst |dt|:
each simulator's distance from the referee; and each simulator's overall distance from the referee.
It needs ``mpmath`` (in the ``[test]`` extra) and takes seconds to minutes.

Matching: per neuron, spikes are paired in time order; two spikes more than ``MATCH_WINDOW_S`` apart
are different spikes, one unpaired on each side. "missing" counts NEST spikes without an exactsnn
partner, "extra" the reverse; max |dt| is taken over the pairs before a network's first unpaired
spike (after it the two runs follow different trajectories). Input spike times are arbitrary floats
(``spike_generator`` with ``precise_times=True``). NEST runs for t_max + one step so that spikes up
to t_max are flushed; spikes are compared on [0, t_max].

Process note: the nest-simulator wheel bundles its own libgomp; with Numba's default OpenMP threading
layer (the system libgomp) the process segfaults in ``nest.Simulate`` once both runtimes are active
(seen with NEST 3.10, Numba's "omp" layer, NEST imported first). This script therefore selects Numba's
"workqueue" threading layer unless NUMBA_THREADING_LAYER is already set; exactsnn runs one sample
here, so nothing is lost.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")  # see the process note above

RESOLUTION_MS = 0.1  # default NEST grid step (ms); GRID_S must be a multiple of it
GRID_S = 1e-4  # delays and t_ref are drawn as multiples of 0.1 ms
SCALE_MV = 10.0  # mV per exactsnn voltage unit
C_M_PF = 250.0  # membrane capacitance in NEST (pF); any positive value works
TOL_S = 1e-12  # acceptance: max |spike-time difference| in seconds
MATCH_WINDOW_S = 1e-6  # spikes further apart than this are different spikes (one missing, one extra)


def import_nest():
    """Import NEST quietly, or explain how to install it and exit with status 2."""
    os.environ.setdefault("PYNEST_QUIET", "1")
    try:
        import nest
    except ImportError as exc:
        print(f"NEST is not importable ({exc}).", file=sys.stderr)
        print('Install it with:  pip install -e ".[nest]"   (the nest-simulator wheel, NEST >= 3.8)', file=sys.stderr)
        sys.exit(2)
    if hasattr(nest, "VerbosityLevel"):
        nest.verbosity = nest.VerbosityLevel.ERROR
    else:  # older NEST 3.x
        nest.set_verbosity("M_ERROR")
    return nest


# --------------------------------------------------------------------------------------------
# Random networks


@dataclass
class Case:
    """One random network with its inputs (exactsnn units: seconds, dimensionless)."""

    index: int
    sizes: list[int]
    recurrent: list[bool]
    delays: bool
    tau_mem: float
    tau_syn: float
    v_th: float
    v_reset: float
    t_ref: float
    n_in: int
    rate: float
    in_times: np.ndarray
    in_units: np.ndarray
    W: list[np.ndarray]
    D: list[np.ndarray]
    R: list[np.ndarray | None]
    E: list[np.ndarray | None]

    @property
    def n_neurons(self) -> int:
        return sum(self.sizes)


def grid_delays(rng: np.random.Generator, shape: tuple[int, int], k_max: int) -> np.ndarray:
    """Delays k * GRID_S (seconds), k uniform in 1..k_max."""
    return rng.integers(1, k_max + 1, size=shape) * GRID_S


def make_case(rng: np.random.Generator, index: int, t_max: float, quick: bool) -> Case:
    """Draw network ``index``; its kind cycles through five templates.

    0: one recurrent layer with delays; 1: one feedforward layer with delays; 2: one feedforward layer
    without delays; 3: a recurrent layer feeding a feedforward layer, with delays; 4: as 0 with
    tau_syn = tau_mem (exactly or nearly).
    """
    kind = index % 5
    n_in = int(rng.integers(5, 21))
    rate = float(rng.uniform(20.0, 100.0))
    tau_mem = float(rng.uniform(10e-3, 30e-3))
    tau_syn = float(rng.uniform(2e-3, 10e-3))
    if kind == 4:  # the degenerate tau_syn = tau_mem case, exactly or nearly (relative gap 1e-3 or 1e-7)
        tau_syn = tau_mem * float(rng.choice([1.0, 1.0, 1.0 + 1e-3, 1.0 - 1e-7]))
    v_th = 1.0
    v_reset = float(rng.choice([0.0, -0.3, 0.4, float(rng.uniform(-0.5, 0.5))]))
    t_ref = float(rng.choice([5, 10, 20, 30, 50])) * GRID_S
    n_hi = 20 if quick else 50
    if kind == 3:
        sizes = [int(rng.integers(10, n_hi + 1)), int(rng.integers(5, 16))]
        recurrent = [True, False]
    else:
        sizes = [int(rng.integers(10, n_hi + 1))]
        recurrent = [kind in (0, 4)]
    delays = kind != 2
    k_max = int(rng.choice([10, 50, 100]))  # up to 1, 5 or 10 ms

    # Poisson inputs on (2h, t_max): the "no delay" trick needs room for the one-step shift.
    k = rng.poisson(rate * n_in * t_max)
    in_times = rng.uniform(2 * GRID_S, t_max, size=k)
    in_units = rng.integers(0, n_in, size=k).astype(np.int32)
    order = np.argsort(in_times, kind="mergesort")
    in_times, in_units = in_times[order], in_units[order]

    W, D, R, E = [], [], [], []
    n_pre, pre_rate = n_in, rate
    for l, n in enumerate(sizes):
        # Mean drive sum_i w_i r_i tau_syn around threshold, wide spread incl. inhibitory weights.
        drive = float(rng.uniform(0.6, 1.4))
        mu = drive * v_th / (n_pre * pre_rate * tau_syn)
        W.append(rng.normal(mu, 1.2 * mu, size=(n, n_pre)))
        D.append(grid_delays(rng, (n, n_pre), k_max) if delays else np.zeros((n, n_pre)))
        if recurrent[l]:
            r = rng.normal(-0.1, 0.6, size=(n, n)) / np.sqrt(n)
            np.fill_diagonal(r, 0.0)
            R.append(r)
            E.append(grid_delays(rng, (n, n), k_max) if delays else np.zeros((n, n)))
        else:
            R.append(None)
            E.append(None)
        n_pre, pre_rate = n, 20.0
    return Case(index, sizes, recurrent, delays, tau_mem, tau_syn, v_th, v_reset, t_ref, n_in, rate,
                in_times, in_units, W, D, R, E)


# --------------------------------------------------------------------------------------------
# Simulators


def run_exactsnn(case: Case, t_max: float) -> list[list[np.ndarray]]:
    """Simulate ``case`` with exactsnn; per layer, per neuron spike times (s)."""
    import exactsnn as es

    neuron = es.LIF(tau_mem=case.tau_mem, tau_syn=case.tau_syn, v_th=case.v_th, v_reset=case.v_reset,
                    t_ref=case.t_ref)
    layers = [es.Layer(n, neuron, recurrent=rec, delays=case.delays)
              for n, rec in zip(case.sizes, case.recurrent, strict=True)]
    net = es.Network(n_inputs=case.n_in, layers=layers)
    params = es.Params(weights=case.W, delays=case.D, recurrent_weights=case.R, recurrent_delays=case.E)
    batch = es.SpikeBatch.from_lists([(case.in_times, case.in_units)], n_units=case.n_in)
    rec = es.simulate(net, params, batch, t_max=t_max)
    out = []
    for l, n in enumerate(case.sizes):
        t, u = rec.spikes[l].sample(0)
        out.append([np.sort(t[u == j]) for j in range(n)])
    return out


def nest_params(case: Case) -> dict:
    """iaf_psc_exp_ps parameters equivalent to the exactsnn LIF of ``case``."""
    return {
        "E_L": 0.0,
        "V_m": 0.0,
        "I_e": 0.0,
        "V_min": -np.inf,
        "C_m": C_M_PF,
        "tau_m": case.tau_mem * 1e3,
        "tau_syn_ex": case.tau_syn * 1e3,
        "tau_syn_in": case.tau_syn * 1e3,
        "t_ref": case.t_ref * 1e3,
        "V_th": case.v_th * SCALE_MV,
        "V_reset": case.v_reset * SCALE_MV,
    }


def weight_pa(w: np.ndarray, tau_mem: float) -> np.ndarray:
    """exactsnn weight (jump of I, voltage units) -> NEST weight (jump of I_syn, pA)."""
    return w * SCALE_MV * C_M_PF / (tau_mem * 1e3)


def connect_dense(nest, pre_ids: np.ndarray, post_ids: np.ndarray, W: np.ndarray, D: np.ndarray,
                  tau_mem: float, res_ms: float) -> None:
    """Connect pre -> post with W[post, pre] (exactsnn units) and delays D[post, pre] (s); skips w = 0."""
    post_idx, pre_idx = np.nonzero(W)
    if post_idx.size == 0:
        return
    delay_ms = np.round(D[post_idx, pre_idx] * 1e3 / res_ms) * res_ms
    nest.Connect(
        pre_ids[pre_idx].astype(np.int64), post_ids[post_idx].astype(np.int64), "one_to_one",
        {"synapse_model": "static_synapse", "weight": weight_pa(W[post_idx, pre_idx], tau_mem),
         "delay": delay_ms},
    )


def run_nest(nest, case: Case, t_max: float, res_ms: float) -> list[list[np.ndarray]]:
    """Simulate ``case`` with NEST's iaf_psc_exp_ps; per layer, per neuron spike times (s)."""
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": res_ms, "local_num_threads": 1})
    # Without delays, generators fire one step early and connections carry a one-step delay.
    shift_ms = 0.0 if case.delays else res_ms
    gens = nest.Create("spike_generator", case.n_in)
    for i in range(case.n_in):
        t_ms = case.in_times[case.in_units == i] * 1e3 - shift_ms
        gens[i].set({"spike_times": t_ms, "precise_times": True})
    gen_ids = np.asarray(gens.tolist())
    pops = [nest.Create("iaf_psc_exp_ps", n, params=nest_params(case)) for n in case.sizes]
    ids = [np.asarray(p.tolist()) for p in pops]
    recorder = nest.Create("spike_recorder", {"time_in_steps": False})
    pre_ids = gen_ids
    for l in range(len(case.sizes)):
        D = case.D[l] if case.delays else np.full(case.W[l].shape, res_ms * 1e-3)
        connect_dense(nest, pre_ids, ids[l], case.W[l], D, case.tau_mem, res_ms)
        if case.R[l] is not None:
            connect_dense(nest, ids[l], ids[l], case.R[l], case.E[l], case.tau_mem, res_ms)
        nest.Connect(pops[l], recorder)
        pre_ids = ids[l]
    nest.Simulate(t_max * 1e3 + res_ms)
    ev = recorder.get("events")
    senders = np.asarray(ev["senders"], dtype=np.int64)
    times = np.asarray(ev["times"], dtype=np.float64) * 1e-3
    keep = times <= t_max
    senders, times = senders[keep], times[keep]
    return [[np.sort(times[senders == g]) for g in layer_ids] for layer_ids in ids]


def check_unit_mapping(nest, res_ms: float) -> float:
    """One input spike into NEST vs exactsnn's closed-form PSP (times SCALE_MV); returns max rel. error."""
    worst = 0.0
    for tau_mem, tau_syn in ((20e-3, 5e-3), (10e-3, 10e-3), (15e-3, 30e-3)):
        w, t_in = 0.7, 1.2345e-3
        nest.ResetKernel()
        nest.SetKernelStatus({"resolution": res_ms})
        case = Case(0, [1], [False], True, tau_mem, tau_syn, 1e9, 0.0, GRID_S, 1, 0.0,
                    np.array([t_in]), np.zeros(1, np.int32), [], [], [], [])
        gen = nest.Create("spike_generator", {"spike_times": [t_in * 1e3], "precise_times": True})
        nrn = nest.Create("iaf_psc_exp_ps", params=nest_params(case))
        mm = nest.Create("multimeter", {"record_from": ["V_m"], "interval": res_ms})
        nest.Connect(gen, nrn, syn_spec={"weight": float(weight_pa(np.array(w), tau_mem)), "delay": res_ms})
        nest.Connect(mm, nrn)
        nest.Simulate(60.0)
        ev = mm.get("events")
        t = np.asarray(ev["times"]) * 1e-3
        v = np.asarray(ev["V_m"])
        s = t - (t_in + res_ms * 1e-3)
        s_pos = np.clip(s, 0.0, None)
        am, asyn = np.exp(-s_pos / tau_mem), np.exp(-s_pos / tau_syn)
        if tau_mem == tau_syn:
            psp = w * (s_pos / tau_mem) * am
        else:
            psp = w * tau_syn / (tau_syn - tau_mem) * (asyn - am)
        expect = np.where(s > 0, SCALE_MV * psp, 0.0)
        worst = max(worst, float(np.max(np.abs(v - expect)) / np.max(np.abs(expect))))
    return worst


# --------------------------------------------------------------------------------------------
# Comparison


@dataclass
class Result:
    n_es: int = 0
    n_nest: int = 0
    missing: int = 0
    extra: int = 0
    max_dt: float = 0.0
    worst: tuple | None = None  # (layer, neuron, t_exactsnn, t_nest)
    first_mismatch: tuple | None = None  # (layer, neuron, time, side)


def match_spikes(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pair two sorted spike trains in order; a spike with no partner within MATCH_WINDOW_S is unpaired.

    Returns (index pairs (k, 2), unpaired indices of a, unpaired indices of b).
    """
    pairs, only_a, only_b = [], [], []
    i = k = 0
    while i < a.size and k < b.size:
        if abs(a[i] - b[k]) <= MATCH_WINDOW_S:
            pairs.append((i, k))
            i += 1
            k += 1
        elif a[i] < b[k]:
            only_a.append(i)
            i += 1
        else:
            only_b.append(k)
            k += 1
    only_a.extend(range(i, a.size))
    only_b.extend(range(k, b.size))
    return np.array(pairs, dtype=np.int64).reshape(-1, 2), np.array(only_a, np.int64), np.array(only_b, np.int64)


def compare(es_spikes: list[list[np.ndarray]], nest_spikes: list[list[np.ndarray]]) -> Result:
    """Match spikes per neuron in order (see :func:`match_spikes`) and count the unpaired ones.

    max |dt| is taken over the pairs before the network's first unpaired spike: after a divergence the
    two trajectories are different and their time differences mean nothing.
    """
    res = Result()
    matched = []
    for l, (es_layer, nest_layer) in enumerate(zip(es_spikes, nest_spikes, strict=True)):
        for j, (a, b) in enumerate(zip(es_layer, nest_layer, strict=True)):
            res.n_es += a.size
            res.n_nest += b.size
            pairs, only_a, only_b = match_spikes(a, b)
            res.extra += only_a.size
            res.missing += only_b.size
            for side, idx, src in (("exactsnn only", only_a, a), ("NEST only", only_b, b)):
                if idx.size and (res.first_mismatch is None or src[idx[0]] < res.first_mismatch[2]):
                    res.first_mismatch = (l, j, float(src[idx[0]]), side)
            matched.append((l, j, a[pairs[:, 0]], b[pairs[:, 1]]))
    t_cut = res.first_mismatch[2] if res.first_mismatch is not None else np.inf
    for l, j, ta, tb in matched:
        keep = np.maximum(ta, tb) < t_cut
        if keep.any():
            dt = np.abs(ta[keep] - tb[keep])
            k = int(np.argmax(dt))
            if dt[k] > res.max_dt:
                res.max_dt = float(dt[k])
                res.worst = (l, j, float(ta[keep][k]), float(tb[keep][k]))
    return res


def referee(case: Case, t_end: float, dps: int = 34) -> dict:
    """Replay the whole network of ``case`` on [0, t_end] with ``dps``-digit mpmath arithmetic.

    An arbiter independent of both simulators (it only shares the inputs, weights and delays): event
    driven, every arrival in time order from a heap, each neuron's next crossing predicted in closed form
    (bracketed on the monotone pieces around the voltage maximum, bisection then Newton), stale
    predictions skipped by version stamps. Float64 rounding, amplified by the network's dynamics, is
    what it exposes. Returns ``spikes[(l, j)]``: list of (t, I at the spike) as mpf,
    ``arrivals[(l, j)]``: the arrival times at that neuron, ``peaks[(l, j)]``: subthreshold maxima within
    1e-6 of v_th as (t, V - v_th) floats.
    """
    import heapq

    import mpmath as mp

    with mp.workdps(dps):
        sizes = case.sizes
        base = np.concatenate([[0], np.cumsum(sizes)]).astype(int)
        where = [(l, j) for l, n in enumerate(sizes) for j in range(n)]
        N = int(base[-1])
        tm, ts, vth, vr, tref = (mp.mpf(x) for x in (case.tau_mem, case.tau_syn, case.v_th, case.v_reset,
                                                     case.t_ref))
        T = mp.mpf(t_end)
        eq = tm == ts
        k_c = None if eq else ts / (ts - tm)
        V, I, tl = [mp.mpf(0)] * N, [mp.mpf(0)] * N, [mp.mpf(0)] * N
        ref_end, version = [mp.mpf(-1)] * N, [0] * N
        spikes = {w: [] for w in where}
        arrivals = {w: [] for w in where}
        peaks = {w: [] for w in where}
        heap, seq = [], 0
        for t, u in zip(case.in_times, case.in_units, strict=True):  # arrival times as exactsnn computes them
            col, arr = case.W[0][:, u], t + case.D[0][:, u]
            for j in np.nonzero(col)[0]:
                if arr[j] <= t_end:
                    heap.append((mp.mpf(float(arr[j])), seq, 0, int(j), mp.mpf(float(col[j]))))
                    seq += 1
        heapq.heapify(heap)

        def volt(V0: mp.mpf, I0: mp.mpf, s: mp.mpf) -> mp.mpf:
            if eq:
                return mp.exp(-s / tm) * (V0 + I0 * s / tm)
            return mp.exp(-s / tm) * V0 + k_c * I0 * (mp.exp(-s / ts) - mp.exp(-s / tm))

        def s_peak(V0: mp.mpf, I0: mp.mpf) -> mp.mpf | None:  # stationary point of V, if at s > 0
            if I0 == 0:
                return None
            if eq:
                s = tm * (I0 - V0) / I0
            else:
                ratio = (k_c * I0 - V0) * ts / (k_c * I0 * tm)
                if ratio <= 0:
                    return None
                s = mp.log(ratio) / (1 / tm - 1 / ts)
            return s if s > 0 else None

        def root(V0: mp.mpf, I0: mp.mpf, lo: mp.mpf, hi: mp.mpf, rising: bool = True) -> mp.mpf:
            for _ in range(40):
                mid = (lo + hi) / 2
                if (volt(V0, I0, mid) >= vth) == rising:
                    hi = mid
                else:
                    lo = mid
            x = (lo + hi) / 2
            for _ in range(8):  # V is monotone on [lo, hi]: Newton from inside the bracket
                f = volt(V0, I0, x) - vth
                d = (I0 * mp.exp(-x / ts) - volt(V0, I0, x)) / tm
                xn = x - f / d if d != 0 else x
                if not lo <= xn <= hi or xn == x:
                    break
                x = xn
            return x

        def advance(n: int, t: mp.mpf) -> None:
            if t <= tl[n]:
                return
            if ref_end[n] > tl[n]:
                if t <= ref_end[n]:
                    I[n] *= mp.exp(-(t - tl[n]) / ts)
                    tl[n] = t
                    return
                I[n] *= mp.exp(-(ref_end[n] - tl[n]) / ts)
                tl[n], V[n] = ref_end[n], vr
            s = t - tl[n]
            if max(V[n], I[n]) > vth - mp.mpf("1e-6"):
                sp = s_peak(V[n], I[n])
                if sp is not None and sp < s:
                    peaks[where[n]].append((float(tl[n] + sp), float(volt(V[n], I[n], sp) - vth)))
            V[n] = volt(V[n], I[n], s)
            I[n] *= mp.exp(-s / ts)
            tl[n] = t

        def predict(n: int) -> None:
            nonlocal seq
            version[n] += 1
            if ref_end[n] > tl[n]:
                start, I0, V0 = ref_end[n], I[n] * mp.exp(-(ref_end[n] - tl[n]) / ts), vr
            else:
                start, I0, V0 = tl[n], I[n], V[n]
            if start >= T or max(V0, I0) < vth:  # V(s) <= max(V0, I0, 0): no crossing possible
                return
            h = T - start
            sp = s_peak(V0, I0)
            sp_in = sp is not None and sp < h
            if sp_in and volt(V0, I0, sp) >= vth:
                s = root(V0, I0, mp.mpf(0), sp)
            elif volt(V0, I0, h) >= vth:
                s = root(V0, I0, sp if sp_in else mp.mpf(0), h)
            else:
                return
            heapq.heappush(heap, (start + s, seq, 1, n, version[n]))
            seq += 1

        while heap:
            t, _, kind, n, x = heapq.heappop(heap)
            l, j = where[n]
            if kind == 0:
                advance(n, t)
                I[n] += x
                arrivals[l, j].append(t)
                predict(n)
                continue
            if x != version[n]:
                continue
            advance(n, t)
            spikes[l, j].append((t, I[n]))
            V[n], ref_end[n] = vr, t + tref
            targets = []
            if case.R[l] is not None:
                targets.append((base[l], case.R[l][:, j], case.E[l][:, j]))
            if l + 1 < len(sizes):
                targets.append((base[l + 1], case.W[l + 1][:, j], case.D[l + 1][:, j]))
            for b0, wcol, dcol in targets:
                for k in np.nonzero(wcol)[0]:
                    ta = t + mp.mpf(float(dcol[k]))
                    if ta <= T:
                        heapq.heappush(heap, (ta, seq, 0, int(b0 + k), mp.mpf(float(wcol[k]))))
                        seq += 1
            predict(n)
        return {"spikes": spikes, "arrivals": arrivals, "peaks": peaks, "dps": dps, "tm": tm, "ts": ts,
                "vth": vth, "volt": volt, "s_peak": s_peak, "root": root}


def diagnose(case: Case, res: Result, es_spikes: list, nest_spikes: list, t_max: float, res_ms: float) -> list[str]:
    """Explain a failure: arbitrate the first unpaired spike and the worst |dt| with :func:`referee`."""
    try:
        import mpmath as mp
    except ImportError:
        return ["    (install mpmath, part of the [test] extra, for an arbitrated explanation)"]
    times = [res.first_mismatch[2]] if res.first_mismatch is not None else []
    if res.worst is not None and res.max_dt > TOL_S:
        times.append(max(res.worst[2:]))
    if not times:
        return []
    t_end = min(t_max, max(times) + 1e-3)
    t0_ref = time.perf_counter()
    ref = referee(case, t_end)
    lines = [f"    referee: {ref['dps']}-digit replay of the whole network up to {t_end:.4g} s "
             f"({time.perf_counter() - t0_ref:.1f} s)"]
    with mp.workdps(ref["dps"]):
        vth, tm, H = ref["vth"], ref["tm"], mp.mpf(res_ms) / 1000

        def nearest(l: int, j: int, t0: float) -> tuple | None:
            sp = [x for x in ref["spikes"][l, j] if abs(float(x[0]) - t0) <= MATCH_WINDOW_S]
            return min(sp, key=lambda x: abs(float(x[0]) - t0)) if sp else None

        if res.first_mismatch is not None:
            l, j, t0, side = res.first_mismatch
            lines.append(f"    first unpaired spike: layer {l} neuron {j}, t = {t0:.15g} s, {side}")
            hit = nearest(l, j, t0)
            if hit is None:
                pk = [p for p in ref["peaks"][l, j] if abs(p[0] - t0) <= 1e-3]
                pk_txt = f" (its V peaks at v_th {pk[0][1]:+.2e} there)" if pk else ""
                who = "exactsnn's spike is spurious" if side == "exactsnn only" else "NEST's spike is spurious"
                lines.append(f"    referee: no spike there{pk_txt} -> {who}")
            else:
                t_s, I_s = hit
                sp = ref["s_peak"](vth, I_s)
                back = t_s + ref["root"](vth, I_s, sp, sp + 20 * tm, rising=False) if sp is not None else t_s
                nxt = [a for a in ref["arrivals"][l, j] if a > t_s]
                check = min(min(nxt) if nxt else mp.inf, (mp.floor(t_s / H) + 1) * H)
                lines.append(
                    f"    referee: spike at {float(t_s):.15g} s, dV/dt {float((I_s - vth) / tm):.2e} /s; "
                    f"without reset V would stay above v_th for {float(back - t_s):.2e} s; NEST's next threshold "
                    f"test (next input or grid point) at {float(check):.12g} s"
                )
                if side == "NEST only":
                    verdict = "exactsnn MISSED this spike"
                elif back < check:
                    verdict = ("the excursion above threshold starts and ends between two NEST threshold tests: "
                               "iaf_psc_exp_ps cannot see it (a NEST limitation)")
                else:
                    verdict = "NEST should have seen this crossing"
                lines.append(f"    -> {verdict}")
        if res.worst is not None and res.max_dt > TOL_S:
            l, j, ta, tb = res.worst
            hit = nearest(l, j, ta)
            if hit is None:
                lines.append(f"    worst |dt|: layer {l} neuron {j}: the referee has no spike at {ta:.15g} s")
            else:
                t_s, I_s = hit
                da, db = float(mp.mpf(ta) - t_s), float(mp.mpf(tb) - t_s)
                lines.append(
                    f"    worst |dt|: layer {l} neuron {j} at {ta:.12g} s: exactsnn - referee {da:+.2e} s, NEST - "
                    f"referee {db:+.2e} s (dV/dt there {float((I_s - vth) / tm):.2e} /s)"
                )
    # Overall distance of each simulator from the referee, before the first unpaired spike.
    ref_times = [[np.array([float(x[0]) for x in ref["spikes"][l, j]]) for j in range(n)]
                 for l, n in enumerate(case.sizes)]
    for name, sp in (("exactsnn", es_spikes), ("NEST", nest_spikes)):
        cut = [[x[x <= t_end] for x in layer] for layer in sp]
        r = compare(cut, ref_times)
        lines.append(f"    {name} vs referee on [0, {t_end:.4g}] s: max |dt| {r.max_dt:.2e} s before the first "
                     f"unpaired spike, {r.extra} spikes the referee lacks, {r.missing} it has and {name} lacks")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--networks", type=int, default=None, help="number of random networks (default 20, quick 5)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the numpy Generator drawing everything")
    ap.add_argument("--t-max", type=float, default=None, help="simulated time in seconds (default 1.0, quick 0.5)")
    ap.add_argument("--quick", action="store_true", help="few, small networks over a short time")
    ap.add_argument("--resolution", type=float, default=RESOLUTION_MS,
                    help="NEST grid step in ms; 0.1 ms must be a multiple of it (the networks do not change)")
    args = ap.parse_args(argv)
    n_networks = args.networks if args.networks is not None else (5 if args.quick else 20)
    t_max = args.t_max if args.t_max is not None else (0.5 if args.quick else 1.0)
    if n_networks < 1 or not t_max > 0:
        ap.error("--networks must be >= 1 and --t-max > 0")
    res_ms = args.resolution
    if not (res_ms > 0 and abs(GRID_S * 1e3 / res_ms - round(GRID_S * 1e3 / res_ms)) < 1e-9):
        ap.error("--resolution must divide 0.1 ms (e.g. 0.1, 0.05, 0.01)")

    nest = import_nest()
    t_start = time.perf_counter()
    map_err = check_unit_mapping(nest, res_ms)
    print(f"unit mapping: NEST PSP vs exactsnn closed form x {SCALE_MV} mV, max relative error {map_err:.1e}")
    if map_err > 1e-10:
        print("FAIL: the unit mapping is wrong; the comparison below would be meaningless")
        return 1

    rng = np.random.default_rng(args.seed)
    header = (f"{'net':>3} {'n':>7} {'rec':>3} {'delay':>5} {'t_ref ms':>8} {'tau_m/s ms':>10} "
              f"{'inputs':>6} {'exactsnn':>8} {'NEST':>8} {'missing':>7} {'extra':>5} {'max|dt| s':>10}")
    print(f"{n_networks} networks, t_max = {t_max} s, NEST resolution {res_ms} ms, seed {args.seed}")
    print(header)
    print("-" * len(header))
    max_dt, missing, extra, total_es, total_nest = 0.0, 0, 0, 0, 0
    t_es = t_nest = 0.0
    failed = 0
    for idx in range(n_networks):
        case = make_case(rng, idx, t_max, args.quick)
        t0 = time.perf_counter()
        es_spikes = run_exactsnn(case, t_max)
        t1 = time.perf_counter()
        nest_spikes = run_nest(nest, case, t_max, res_ms)
        t2 = time.perf_counter()
        t_es += t1 - t0
        t_nest += t2 - t1
        res = compare(es_spikes, nest_spikes)
        max_dt = max(max_dt, res.max_dt)
        missing += res.missing
        extra += res.extra
        total_es += res.n_es
        total_nest += res.n_nest
        sizes = "+".join(str(n) for n in case.sizes)
        taus = f"{case.tau_mem * 1e3:.1f}/{case.tau_syn * 1e3:.1f}"
        print(f"{idx:>3} {sizes:>7} {'yes' if any(case.recurrent) else 'no':>3} "
              f"{'yes' if case.delays else 'no':>5} {case.t_ref * 1e3:>8.1f} {taus:>10} {case.in_times.size:>6} "
              f"{res.n_es:>8} {res.n_nest:>8} {res.missing:>7} {res.extra:>5} {res.max_dt:>10.2e}", flush=True)
        bad = res.missing or res.extra or res.max_dt > TOL_S or res.n_es == 0
        if bad:
            failed += 1
            if res.n_es == 0:
                print("    no spikes at all: this network checks nothing")
            for line in diagnose(case, res, es_spikes, nest_spikes, t_max, res_ms):
                print(line)
    elapsed = time.perf_counter() - t_start
    ok = failed == 0 and max_dt <= TOL_S and missing == 0 and extra == 0
    print("-" * len(header))
    print(f"SUMMARY {'PASS' if ok else 'FAIL'}: {n_networks} networks, {total_es} exactsnn / {total_nest} NEST spikes, "
          f"max |dt| = {max_dt:.2e} s (tolerance {TOL_S:.0e} s), missing {missing}, extra {extra}; "
          f"exactsnn {t_es:.1f} s, NEST {t_nest:.1f} s, total {elapsed:.1f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
