"""The windowed feedforward-delay kernel (exactsnn/engine/cpu/ff_delays.py) against the queue kernel and the oracle.

The windowed kernel runs LIF layers with delays on the feedforward synapses only (``delays="feedforward"``
on a recurrent layer, ``delays=True`` on a feedforward one, or recurrent delays all zero). It must
reproduce the per-arrival heap kernel (``run_queue_batch``), the reference implementation of the same
model: for every unit the same number of spikes, at times within ``SPIKE_TOL``, with the same current
at each spike and at each refractory end (NaN where there is none). Cases: random small and medium
networks (recurrent or not, self-connections, t_ref 0 / 2 ms, several v_reset, tau_mem above and below
tau_syn, delays up to 25 and 100 ms, delays and input times on window edges, coinciding input times,
inputs at and after t_max), silent and bursting layers, and grazing peaks 1e-9 above and below
threshold built in 50-digit arithmetic; plus the 50-digit oracle (tests/reference.py) on small networks.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
from hypothesis import assume, event, given, note, settings
from hypothesis import strategies as st
from reference import DPS, LifMaths, reference_simulate
from test_forward_reference import (
    SPIKE_TOL,
    Case,
    LayerSpec,
    _graze_weight,
    assert_spikes_match,
    assert_voltage_matches,
    cases,
    run_reference,
)

import exactsnn as es
from exactsnn.engine.cpu.ff_delays import ff_supported, ff_tables, ff_window, run_ff_delays_batch
from exactsnn.engine.cpu.queue import run_queue_batch, sort_delays
from exactsnn.engine.plan import layer_plan
from exactsnn.events import canonical_order

CURRENT_TOL = 1e-9  # I at a spike / at a refractory end: O(1-100) values after O(100) updates, two float paths


pytestmark = pytest.mark.usefixtures("serial_kernels")  # tiny batches: one thread (conftest.py)


# ----------------------------------------------------------------------------- helpers
def queue_run(W, D, R, neuron: es.LIF, batch: es.SpikeBatch, t_max: float):
    """The heap kernel on one layer (zero-delay recurrence when R is given): canonical (t, u, I, I_ref) per sample."""
    n = W.shape[0]
    has_rec = R is not None
    R = np.zeros((n, n)) if R is None else R
    fo, fd = sort_delays(np.ascontiguousarray(D))
    ro, rd = sort_delays(np.zeros((n, n)))
    B = len(batch)
    cap = 200_000
    out = [np.empty((B, cap)), np.empty((B, cap), np.int32), np.empty((B, cap)), np.empty((B, cap))]
    counts = np.zeros(B, np.int64)
    run_queue_batch(batch.times, batch.units, batch.offsets, np.ascontiguousarray(W), fo, fd,
                    np.ascontiguousarray(R), ro, rd, has_rec, neuron.tau_mem, neuron.tau_syn, neuron.v_th,
                    neuron.v_reset, neuron.t_ref, t_max, *out, counts)
    assert np.all(counts >= 0)
    res = []
    for b in range(B):
        c = counts[b]
        t, u, i, r = (o[b, :c] for o in out)
        k = canonical_order(t, u, np.array([0, c], np.int64))
        res.append((t[k], u[k], i[k], r[k]))
    return res


def ff_run(W, D, R, neuron: es.LIF, batch: es.SpikeBatch, t_max: float, feedforward: bool = True):
    """``es.simulate`` of one layer with feedforward delays (asserting that it takes the windowed kernel)."""
    n, n_in = W.shape
    rec = R is not None
    layer = es.Layer(n, neuron, recurrent=rec, delays="feedforward" if feedforward and rec else True)
    assert layer_plan(layer).ff_windows or (rec and not feedforward)
    net = es.Network(n_in, [layer])
    params = es.Params([W], [D], [R], [np.zeros((n, n)) if rec else None])
    r = es.simulate(net, params, batch, t_max=t_max)
    res = []
    for b in range(len(batch)):
        lo, hi = r.spikes[0].offsets[b], r.spikes[0].offsets[b + 1]
        res.append((r.spikes[0].times[lo:hi], r.spikes[0].units[lo:hi], r.spike_current[0][lo:hi],
                    r.refractory_current[0][lo:hi]))
    return res


def ff_direct(W, D, R, neuron: es.LIF, batch: es.SpikeBatch, t_max: float, cap: int = 20_000):
    """The windowed kernel called directly with room for ``cap`` spikes per sample; None when a sample overflows."""
    n = W.shape[0]
    has_rec = R is not None
    Rt = np.zeros((n, n)) if R is None else np.ascontiguousarray(R.T)
    h = ff_window(neuron.tau_mem, neuron.tau_syn)
    tabs = ff_tables(np.ascontiguousarray(W), np.minimum(D, t_max + h), h, neuron.tau_mem, neuron.tau_syn)
    B = len(batch)
    out = [np.empty((B, cap)), np.empty((B, cap), np.int32), np.empty((B, cap)), np.empty((B, cap))]
    counts = np.zeros(B, np.int64)
    run_ff_delays_batch(batch.times, batch.units, batch.offsets, np.ascontiguousarray(W), np.ascontiguousarray(D),
                        Rt, has_rec, *tabs, h, neuron.tau_mem, neuron.tau_syn, neuron.v_th, neuron.v_reset,
                        neuron.t_ref, t_max, *out, counts)
    if np.any(counts < 0):
        return None
    res = []
    for b in range(B):
        c = counts[b]
        t, u, i, r = (o[b, :c] for o in out)
        k = canonical_order(t, u, np.array([0, c], np.int64))
        res.append((t[k], u[k], i[k], r[k]))
    return res


def assert_same(ff, qu, n: int) -> tuple[float, int]:
    """Per sample and unit: same spike count, times within SPIKE_TOL, currents close. Returns (max |dt|, spikes)."""
    worst = 0.0
    total = 0
    for b, ((tf, uf, i_f, rf), (tq, uq, iq, rq)) in enumerate(zip(ff, qu, strict=True)):
        assert tf.size == tq.size, f"sample {b}: {tf.size} spikes, queue kernel {tq.size}"
        total += tf.size
        for j in range(n):
            a, c = uf == j, uq == j
            assert a.sum() == c.sum(), f"sample {b}, unit {j}: {a.sum()} spikes, queue kernel {c.sum()}"
            if not a.any():
                continue
            dt = np.max(np.abs(tf[a] - tq[c]))
            worst = max(worst, dt)
            assert dt <= SPIKE_TOL, f"sample {b}, unit {j}: spike times differ by {dt:.3g} s\n{tf[a]}\n{tq[c]}"
            np.testing.assert_allclose(i_f[a], iq[c], rtol=CURRENT_TOL, atol=CURRENT_TOL)
            assert np.array_equal(np.isnan(rf[a]), np.isnan(rq[c])), f"sample {b}, unit {j}: refractory ends"
            np.testing.assert_allclose(rf[a], rq[c], rtol=CURRENT_TOL, atol=CURRENT_TOL)
    return worst, total


# ----------------------------------------------------------------------------- random networks vs the queue kernel
@st.composite
def ff_cases(draw: st.DrawFn, medium: bool = False):
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    n_pre = draw(st.integers(1, 80 if medium else 8))
    n = draw(st.integers(1, 60 if medium else 8))
    rec = draw(st.booleans())
    taus = draw(st.sampled_from(["20/5", "5/20", "random"]))
    if taus == "20/5":
        tau_mem, tau_syn = 20e-3, 5e-3
    elif taus == "5/20":
        tau_mem, tau_syn = 5e-3, 20e-3
    else:
        tau_mem, tau_syn = draw(st.floats(3e-3, 30e-3)), draw(st.floats(1e-3, 30e-3))
        if not ff_supported(tau_mem, tau_syn, 1.0):
            tau_syn = 0.5 * tau_mem
    neuron = es.LIF(tau_mem=tau_mem, tau_syn=tau_syn, v_reset=draw(st.sampled_from([0.0, -0.2, 0.1])),
                    t_ref=draw(st.sampled_from([0.0, 2e-3])))
    h = ff_window(tau_mem, tau_syn)
    t_max = draw(st.sampled_from([0.05, 0.1, 0.0503]))
    dmax = draw(st.sampled_from([0.0, 2e-3, 25e-3, 100e-3]))
    dkind = draw(st.sampled_from(["uniform", "edges", "mixed"]))
    D = rng.uniform(0.0, dmax, (n, n_pre))
    if dkind != "uniform":  # delays that are exact multiples of the window length (arrivals on window edges)
        Dq = np.floor(D / h) * h
        D = Dq if dkind == "edges" else np.where(rng.random(D.shape) < 0.5, Dq, D)
    w_mean = draw(st.sampled_from([0.3, 1.0, 2.0, 4.0]))  # from mostly silent to bursting
    scale = 1.0 / math.sqrt(max(n_pre / 4.0, 1.0))
    W = rng.normal(w_mean, 1.0, (n, n_pre)) * scale
    W[rng.random(W.shape) < 0.1] = 0.0
    R = None
    if rec:
        R = rng.normal(0.0, draw(st.sampled_from([0.3, 1.0])), (n, n)) / math.sqrt(max(n / 4.0, 1.0))
        if draw(st.booleans()):
            np.fill_diagonal(R, 0.0)
    inputs = []
    for _ in range(draw(st.integers(1, 3))):
        n_ev = int(rng.integers(0, (200 if medium else 40) + 1))
        tkind = draw(st.sampled_from(["uniform", "edges", "ties"]))
        times = rng.uniform(0.0, 1.1 * t_max, n_ev)
        if tkind == "edges":  # on window edges (and so with coinciding times)
            times = np.floor(times / h) * h
        elif tkind == "ties" and n_ev:
            times = rng.choice(times, n_ev)
        times = np.concatenate([times, [0.0, t_max]])
        units = rng.integers(0, n_pre, times.size)
        o = np.lexsort((units, times))
        inputs.append((times[o], units[o]))
    event(f"delays {dkind} up to {dmax}, recurrent={rec}, t_ref={neuron.t_ref}")
    batch = es.SpikeBatch.from_lists(inputs, n_units=n_pre)
    return W, D, R, neuron, batch, t_max


_N = settings.default.max_examples
RUNAWAY = 20_000  # spikes per sample beyond which a drawn case is discarded (strong recurrence; keeps the run short)


def _not_runaway(ff) -> bool:
    ok = ff is not None
    if not ok:
        event("discarded: runaway activity")
    return ok


@settings(max_examples=_N)
@given(case=ff_cases())
def test_matches_queue_kernel_small(case) -> None:
    W, D, R, neuron, batch, t_max = case
    note(f"neuron={neuron} t_max={t_max}\nW={W.tolist()}\nD={D.tolist()}\nR={None if R is None else R.tolist()}")
    ff = ff_direct(W, D, R, neuron, batch, t_max, cap=RUNAWAY)
    assume(_not_runaway(ff))
    worst, total = assert_same(ff, queue_run(W, D, R, neuron, batch, t_max), W.shape[0])
    event("spikes" if total else "silent")


@settings(max_examples=max(10, _N // 3))
@given(case=ff_cases(medium=True))
def test_matches_queue_kernel_medium(case) -> None:
    W, D, R, neuron, batch, t_max = case
    ff = ff_direct(W, D, R, neuron, batch, t_max, cap=RUNAWAY)
    assume(_not_runaway(ff))
    assert_same(ff, queue_run(W, D, R, neuron, batch, t_max), W.shape[0])


def _poisson(rng, n_in: int, rate: float, t_max: float, B: int) -> es.SpikeBatch:
    samples = []
    for _ in range(B):
        k = rng.poisson(rate * n_in * t_max)
        t = np.sort(rng.uniform(0.0, t_max, k))
        samples.append((t, rng.integers(0, n_in, k)))
    return es.SpikeBatch.from_lists(samples, n_units=n_in)


@pytest.mark.parametrize("dmax", [25e-3, 100e-3])
@pytest.mark.parametrize("t_ref", [0.0, 2e-3])
@pytest.mark.parametrize("rec", [True, False])
def test_fixed_networks_vs_queue(dmax: float, t_ref: float, rec: bool) -> None:
    """A 60-40 layer at ~20-50 Hz on 30 Hz Poisson input, delays U(0, dmax), v_reset = -0.1."""
    rng = np.random.default_rng(int(dmax * 1e4) + int(t_ref * 1e4) + rec)
    n_in, n, t_max = 60, 40, 0.2
    W = rng.normal(0.25, 0.4, (n, n_in))
    D = rng.uniform(0.0, dmax, (n, n_in))
    R = rng.normal(0.0, 0.3, (n, n)) if rec else None
    neuron = es.LIF(v_reset=-0.1, t_ref=t_ref)
    batch = _poisson(rng, n_in, 30.0, t_max, 3)
    worst, total = assert_same(ff_run(W, D, R, neuron, batch, t_max), queue_run(W, D, R, neuron, batch, t_max), n)
    assert total > 100


@pytest.mark.parametrize("kind", ["silent", "bursting", "inhibited"])
def test_silent_and_bursting(kind: str) -> None:
    """No spike at all; runaway-like bursts without refractoriness (strong self-excitation); strong inhibition."""
    rng = np.random.default_rng(7)
    n_in, n, t_max = 20, 10, 0.1
    D = rng.uniform(0.0, 10e-3, (n, n_in))
    if kind == "silent":
        W, R = rng.normal(0.05, 0.02, (n, n_in)), rng.normal(0.0, 0.1, (n, n))
    elif kind == "bursting":
        W, R = rng.normal(3.0, 1.0, (n, n_in)), np.abs(rng.normal(0.5, 0.2, (n, n)))
    else:
        W, R = rng.normal(3.0, 1.0, (n, n_in)), -np.abs(rng.normal(3.0, 1.0, (n, n)))
    neuron = es.LIF(v_reset=0.0 if kind != "bursting" else -0.2)
    batch = _poisson(rng, n_in, 50.0, t_max, 2)
    worst, total = assert_same(ff_run(W, D, R, neuron, batch, t_max), queue_run(W, D, R, neuron, batch, t_max), n)
    if kind == "silent":
        assert total == 0
    elif kind == "bursting":
        assert total > 1000


def test_window_edges_and_t_max() -> None:
    """Input times and delays on exact window edges, coinciding inputs, arrivals exactly at t_max and after."""
    neuron = es.LIF(t_ref=1e-3)
    h = ff_window(neuron.tau_mem, neuron.tau_syn)
    n_in, n = 4, 3
    W = np.array([[1.5, 2.0, -1.0, 3.0], [2.5, 0.0, 1.0, 1.0], [4.0, 4.0, 4.0, 4.0]])
    D = np.array([[0.0, h, 2 * h, 40 * h], [h, h, 0.0, 3 * h], [0.0, 0.0, 0.0, 0.0]])
    R = np.array([[0.0, 1.0, -1.0], [1.0, 0.5, 0.0], [0.3, 0.3, 0.0]])
    t_max = 60 * h
    times = np.array([0.0, 0.0, h, h, 2 * h, 5 * h, 5 * h, 10 * h, 20 * h, 57 * h, t_max - 3 * h, t_max, t_max])
    units = np.array([0, 1, 0, 3, 1, 0, 2, 3, 1, 2, 3, 0, 2])
    o = np.lexsort((units, times))
    times, units = times[o], units[o]
    batch = es.SpikeBatch.from_lists([(times, units), (times[2:], units[2:])], n_units=n_in)
    worst, total = assert_same(ff_run(W, D, R, neuron, batch, t_max), queue_run(W, D, R, neuron, batch, t_max), n)
    assert total > 5


def test_delays_equal_full_delays_with_zero_recurrent_delays_and_fallbacks() -> None:
    """delays=True with all-zero recurrent delays takes the same kernel (bit for bit); near-equal time
    constants and v_th <= 0 fall back to the queue kernel."""
    assert layer_plan(es.Layer(3, recurrent=True, delays="feedforward")).ff_windows
    assert layer_plan(es.Layer(3, delays=True)).ff_windows
    assert not layer_plan(es.Layer(3, recurrent=True, delays=True)).ff_windows
    assert not layer_plan(es.Layer(3, es.LIF(tau_mem=10e-3, tau_syn=10.2e-3), delays=True)).ff_windows
    assert not layer_plan(es.Layer(3, es.LIF(v_th=0.0, v_reset=-1.0), delays=True)).ff_windows
    assert not layer_plan(es.Layer(3, recurrent=True)).ff_windows
    rng = np.random.default_rng(3)
    W, D, R = rng.normal(1.0, 1.0, (5, 6)), rng.uniform(0, 0.02, (5, 6)), rng.normal(0, 0.5, (5, 5))
    batch = _poisson(rng, 6, 50.0, 0.1, 2)
    a = ff_run(W, D, R, es.LIF(), batch, 0.1)
    b = ff_run(W, D, R, es.LIF(), batch, 0.1, feedforward=False)
    for x, y in zip(a, b, strict=True):
        for p, q in zip(x, y, strict=True):
            np.testing.assert_array_equal(p, q)


# ----------------------------------------------------------------------------- the 50-digit oracle
@settings(max_examples=max(10, _N // 2))
@given(data=st.data())
def test_oracle_small_networks(data: st.DataObject) -> None:
    """Random 1-2 layer networks (tests/test_forward_reference.py's strategy) with feedforward delays U(0, 10 ms)
    and zero-delay recurrence on every layer, against the 50-digit reference simulator."""
    case = data.draw(cases(first_mode="queue_delays"))
    for ly in case.layers:
        if not ly.spiking:
            continue
        ly.mode = "queue_delays"
        ly.D = np.random.default_rng(case.seed).uniform(0.0, 10e-3, ly.D.shape)
        if ly.E is not None:
            ly.E = np.zeros_like(ly.E)
        if not ff_supported(ly.tau_mem, ly.tau_syn, ly.v_th):
            ly.tau_syn = 0.5 * ly.tau_mem
    note(case.describe())
    ref = run_reference(case)
    rec = es.simulate(case.network(), case.params(), case.batch(), t_max=case.t_max)
    assert_spikes_match(rec, ref, case)
    assert_voltage_matches(rec, ref, case, np.random.default_rng(case.seed ^ 0x5EED))


@pytest.mark.parametrize("delay_windows", [0.0, 1.0, 0.37, 50.0])
@pytest.mark.parametrize("taus", [(20e-3, 5e-3), (5e-3, 20e-3)], ids=["tm>ts", "tm<ts"])
@pytest.mark.parametrize("delta", [1e-9, -1e-9], ids=lambda d: f"peak{d:+g}")
def test_grazing_peaks_with_delays(delay_windows: float, taus: tuple[float, float], delta: float) -> None:
    """V peaks at v_th (1 + delta) between two arrivals (delayed by a multiple of the window or not), below
    threshold at both; a recurrent partner receives the spike. One spike at the oracle's time iff delta > 0."""
    tau_mem, tau_syn = taus
    h = ff_window(tau_mem, tau_syn)
    delay = delay_windows * h
    t_max = 0.2
    t0 = 40 * h  # on a window edge
    with mpmath.workdps(DPS):
        m = LifMaths(tau_mem, tau_syn)
        w1 = 0.6
        s = mpmath.mpf(4 * h)
        V0, I0 = m.voltage(0, mpmath.mpf(w1), s), m.current(mpmath.mpf(w1), s)
        w = float(_graze_weight(m, V0, I0, 1 + mpmath.mpf(delta), mpmath.mpf(0.06)))
    times = np.array([t0, t0 + 4 * h, t0 + 4 * h + 0.06])
    W = np.array([[w1, w, -0.5], [0.0, 0.0, 0.0]])
    D = np.full((2, 3), delay)
    R = np.array([[0.0, 0.0], [0.7, 0.0]])
    ly = LayerSpec(2, True, True, "queue_delays", tau_mem, tau_syn, 1.0, 0.0, 0.0, W, D, R, np.zeros((2, 2)))
    case = Case(3, [ly], [(times, np.arange(3))], t_max, 0)
    ref = reference_simulate(case.n_inputs, case.reference_layers(), case.inputs, t_max)
    assert abs(ref.margin - abs(delta)) < 1e-3 * abs(delta)
    assert len(ref.spikes[0][0][0]) == (1 if delta > 0 else 0)
    rec = es.simulate(case.network(), case.params(), case.batch(), t_max=t_max)
    assert_spikes_match(rec, ref, case)
