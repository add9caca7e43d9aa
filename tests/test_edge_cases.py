"""Named edge cases of the forward pass, through ``es.simulate``.

Both kernels are exercised: a layer with ``delays=False`` runs the dense shared-clock kernel, one with
``delays=True`` the per-neuron queue kernel; each also with ``recurrent=True`` (recurrent weights zero
unless a test says otherwise). Expected spike times come from a small 50-digit mpmath simulation of a
single neuron (closed form between events, first crossing bracketed by the exact stationary point and
bisected), independent of the package code.

Tolerances: 1e-12 s against the mpmath oracle (the crossings used have slopes >~ 1/s, so double
evaluation error of V, ~1e-15, moves them by far less; grazing crossings are sqrt-conditioned,
see the test). Kernels and runs that compute the same crossing along different float paths are held
to 1e-13 s. Runs that must follow the same float path (sample order, tie order, capacity growth)
must agree bit for bit.
"""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

import exactsnn as es
from exactsnn.data.poisson import poisson_batch

MP_DPS = 50
KINDS = ["dense", "dense_rec", "queue", "queue_rec"]


# ----------------------------------------------------------------------------- helpers
def layer_of(kind: str, n: int, neuron: es.LIF | es.LI | None = None) -> es.Layer:
    return es.Layer(n, neuron or es.LIF(), recurrent=kind.endswith("rec"), delays=kind.startswith("queue"))


def params_for(net: es.Network, weights, delays=None, rec_weights=None, rec_delays=None) -> es.Params:
    """Params from explicit matrices; missing delays / recurrent matrices are zeros where the layer needs them."""
    n_layers = len(net.layers)
    delays = delays or [None] * n_layers
    rec_weights = rec_weights or [None] * n_layers
    rec_delays = rec_delays or [None] * n_layers
    W, D, RW, RD = [], [], [], []
    for l, layer in enumerate(net.layers):
        w = np.asarray(weights[l], dtype=np.float64)
        W.append(w)
        D.append(np.zeros_like(w) if delays[l] is None else np.asarray(delays[l], dtype=np.float64))
        if layer.recurrent:
            n = layer.size
            RW.append(np.zeros((n, n)) if rec_weights[l] is None else np.asarray(rec_weights[l], dtype=np.float64))
            RD.append(np.zeros((n, n)) if rec_delays[l] is None else np.asarray(rec_delays[l], dtype=np.float64))
        else:
            RW.append(None)
            RD.append(None)
    return es.Params(W, D, RW, RD)


def single(kind: str, w, neuron: es.LIF | None = None, n_inputs: int | None = None) -> tuple[es.Network, es.Params]:
    """A one-layer network of len(w) neurons (rows of w) of the given kernel kind."""
    w = np.atleast_2d(np.asarray(w, dtype=np.float64))
    net = es.Network(n_inputs=n_inputs or w.shape[1], layers=[layer_of(kind, w.shape[0], neuron)])
    return net, params_for(net, [w])


def spikes_of(rec: es.Recording, l: int = 0, b: int = 0) -> tuple[np.ndarray, np.ndarray]:
    t, u = rec.spikes[l].sample(b)
    return np.array(t), np.array(u)


def unit_times(rec: es.Recording, j: int, l: int = 0, b: int = 0) -> np.ndarray:
    t, u = spikes_of(rec, l, b)
    return t[u == j]


def assert_same_spikes(a: es.SpikeBatch, b: es.SpikeBatch, atol: float = 0.0) -> None:
    assert len(a) == len(b)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(a.units, b.units)
    if atol == 0.0:
        np.testing.assert_array_equal(a.times, b.times)
    else:
        np.testing.assert_allclose(a.times, b.times, rtol=0, atol=atol)


# ----------------------------------------------------------------------------- mpmath single-neuron oracle
def _v(V0, I0, s, tm, ts):
    if tm == ts:
        return mp.exp(-s / tm) * (V0 + I0 * s / tm)
    return mp.exp(-s / tm) * (V0 + ts / (ts - tm) * I0 * mp.expm1(s * (1 / tm - 1 / ts)))


def _s_star(V0, I0, tm, ts):
    if I0 == 0:
        return mp.inf
    if tm == ts:
        s = tm * (1 - V0 / I0)
    else:
        R = ts / tm - V0 * (ts - tm) / (tm * I0)
        if R <= 0:
            return mp.inf
        s = mp.log(R) / (1 / tm - 1 / ts)
    return s if s > 0 else mp.inf


def _first_crossing(V0, I0, h, tm, ts, v_th):
    """Exact first s in [0, h] with V(s) >= v_th, or None."""
    if V0 >= v_th:
        return mp.mpf(0)
    s_star = _s_star(V0, I0, tm, ts)
    pieces = [(mp.mpf(0), s_star), (s_star, h)] if s_star < h else [(mp.mpf(0), h)]
    for lo, hi in pieces:
        if _v(V0, I0, hi, tm, ts) >= v_th:  # monotone piece, V(lo) < v_th: bisect
            for _ in range(220):
                mid = (lo + hi) / 2
                if _v(V0, I0, mid, tm, ts) >= v_th:
                    hi = mid
                else:
                    lo = mid
            return hi
    return None


def mp_neuron(inputs, tau_mem, tau_syn, v_th=1.0, v_reset=0.0, t_ref=0.0, t_max=1.0) -> list[float]:
    """Spike times (floats) of one LIF neuron driven by ``inputs = [(t, w), ...]``, in 50 digits."""
    with mp.workdps(MP_DPS):
        tm, ts, v_th, v_reset, t_ref = (mp.mpf(x) for x in (tau_mem, tau_syn, v_th, v_reset, t_ref))
        t_max = mp.mpf(t_max)
        events = sorted((mp.mpf(t), mp.mpf(w)) for t, w in inputs if t <= t_max)
        t, V, I = mp.mpf(0), mp.mpf(0), mp.mpf(0)
        ref_end = mp.mpf(-1)
        spikes = []
        k = 0
        while True:
            t_next = events[k][0] if k < len(events) else t_max
            while True:
                if ref_end > t:  # held at v_reset; I keeps decaying
                    if ref_end >= t_next:
                        I *= mp.exp(-(t_next - t) / ts)
                        V, t = v_reset, t_next
                        break
                    I *= mp.exp(-(ref_end - t) / ts)
                    V, t = v_reset, ref_end
                s = _first_crossing(V, I, t_next - t, tm, ts, v_th)
                if s is None:
                    V, I, t = _v(V, I, t_next - t, tm, ts), I * mp.exp(-(t_next - t) / ts), t_next
                    break
                t = t + s
                I *= mp.exp(-s / ts)
                V = v_reset
                ref_end = t + t_ref
                spikes.append(float(t))
                if len(spikes) > 10_000:
                    raise RuntimeError("oracle: runaway")
            if k >= len(events):
                return spikes
            while k < len(events) and events[k][0] == t_next:
                I += events[k][1]
                k += 1


def psp_peak(tau_mem, tau_syn):
    """(s*, c(s*)): time and height of the PSP of a unit weight from rest (mpf)."""
    with mp.workdps(MP_DPS):
        tm, ts = mp.mpf(tau_mem), mp.mpf(tau_syn)
        s = _s_star(mp.mpf(0), mp.mpf(1), tm, ts)
        return s, _v(mp.mpf(0), mp.mpf(1), s, tm, ts)


def assert_times_match(got, expected, atol=1e-12):
    got = np.asarray(got, dtype=np.float64)
    assert got.size == len(expected), f"spike count {got.size} != expected {len(expected)}: {got} vs {expected}"
    np.testing.assert_allclose(got, np.asarray(expected, dtype=np.float64), rtol=0, atol=atol)


# ----------------------------------------------------------------------------- no input / no spike
@pytest.mark.parametrize("kind", KINDS)
def test_no_input_events(kind):
    net = es.Network(n_inputs=5, layers=[layer_of(kind, 4), layer_of(kind, 3), es.Layer(2, es.LI())])
    # strong positive weights everywhere: still nothing may happen without input
    p = params_for(
        net,
        [np.full((4, 5), 5.0), np.full((3, 4), 5.0), np.full((2, 3), 5.0)],
        rec_weights=[
            np.full((4, 4), 2.0) - 2.0 * np.eye(4) if net.layers[0].recurrent else None,
            np.full((3, 3), 2.0) - 2.0 * np.eye(3) if net.layers[1].recurrent else None,
            None,
        ],
    )
    batch = es.SpikeBatch.empty(3, n_units=5)
    rec = es.simulate(net, p, batch, t_max=0.5)
    tq = np.linspace(0.0, 0.5, 11)
    for l, layer in enumerate(net.layers):
        assert len(rec.spikes[l]) == 3
        assert rec.spikes[l].n_events == 0
        v = rec.voltage(l, tq)
        assert v.shape == (3, layer.size, tq.size)
        np.testing.assert_array_equal(v, 0.0)


@pytest.mark.parametrize("kind", ["dense", "queue_rec"])
def test_batch_of_zero_samples(kind):
    net = es.Network(n_inputs=3, layers=[layer_of(kind, 4), es.Layer(2, es.LI())])
    rec = es.simulate(net, net.init(seed=0), es.SpikeBatch.empty(0, n_units=3), t_max=0.1)
    assert all(len(s) == 0 for s in rec.spikes)
    assert rec.voltage(0, [0.0, 0.05]).shape == (0, 4, 2)
    assert rec.voltage(1, [0.05]).shape == (0, 2, 1)


@pytest.mark.parametrize("kind", KINDS)
def test_mixed_empty_and_busy_samples(kind):
    net = es.Network(n_inputs=20, layers=[layer_of(kind, 8, es.LIF(t_ref=1e-3)), es.Layer(3, es.LI())])
    p = net.init(seed=1)
    p.weights[0][:] = np.abs(p.weights[0]) * 3.0
    busy = poisson_batch(2, 20, 30.0, 0.3, seed=3)
    batch = es.SpikeBatch.from_lists([busy.sample(0), ([], []), busy.sample(1), ([], [])], n_units=20)
    rec = es.simulate(net, p, batch, t_max=0.3)
    assert rec.spikes[0].counts()[0] > 0 and rec.spikes[0].counts()[2] > 0
    assert rec.spikes[0].counts()[1] == 0 and rec.spikes[0].counts()[3] == 0
    tq = np.linspace(0, 0.3, 31)
    v_all = rec.voltage(1, tq)
    np.testing.assert_array_equal(v_all[1], 0.0)
    for b in range(4):
        one = es.simulate(net, p, batch.select([b]), t_max=0.3)
        assert_same_spikes(one.spikes[0], rec.spikes[0].select([b]))
        np.testing.assert_array_equal(one.voltage(1, tq)[0], v_all[b])


@pytest.mark.parametrize("kind", KINDS)
def test_network_that_never_spikes(kind):
    net = es.Network(n_inputs=30, layers=[layer_of(kind, 10), layer_of(kind, 5), es.Layer(2, es.LI())])
    rng = np.random.default_rng(0)
    W0 = -np.abs(rng.normal(size=(10, 30)))  # inhibitory input only
    W0[:, :5] = 0.02  # a few weak excitatory synapses: V moves, but stays far below v_th
    p = params_for(net, [W0, np.full((5, 10), 10.0), np.ones((2, 5))])
    batch = poisson_batch(3, 30, 20.0, 0.5, seed=1)
    rec = es.simulate(net, p, batch, t_max=0.5)
    for l in range(3):
        assert rec.spikes[l].n_events == 0
    tq = np.linspace(0, 0.5, 501)
    v0 = rec.voltage(0, tq)
    assert np.all(v0 < 1.0) and np.any(v0 != 0.0)
    np.testing.assert_array_equal(rec.voltage(1, tq), 0.0)
    np.testing.assert_array_equal(rec.voltage(2, tq), 0.0)


# ----------------------------------------------------------------------------- grazing threshold
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("margin", [1e-6, 1e-9, -1e-9, -1e-6])
@pytest.mark.parametrize(("tau_mem", "tau_syn"), [(20e-3, 5e-3), (5e-3, 20e-3)])
def test_grazing_threshold(kind, margin, tau_mem, tau_syn):
    """One input tuned so that V's peak is v_th (1 + margin); a later zero-weight and a weak input
    bound the stretch, with V back below v_th at both: an end-point test would miss the spike."""
    s_star, c_peak = psp_peak(tau_mem, tau_syn)
    with mp.workdps(MP_DPS):
        w = float(mp.mpf(1 + margin) / c_peak)
        # the float weight keeps the peak on the intended side of threshold
        assert (_v(mp.mpf(0), mp.mpf(w), s_star, mp.mpf(tau_mem), mp.mpf(tau_syn)) > 1) == (margin > 0)
    t0 = 0.1
    t1 = t0 + 3 * float(s_star)  # zero-weight input
    t2 = t0 + 5 * float(s_star)  # weak input
    inputs = [(t0, w), (t1, 0.0), (t2, 0.05)]
    expected = mp_neuron(inputs, tau_mem, tau_syn, t_max=0.5)
    assert len(expected) == (1 if margin > 0 else 0)
    net, p = single(kind, [[w, 0.0, 0.05]], es.LIF(tau_mem=tau_mem, tau_syn=tau_syn))
    batch = es.SpikeBatch.from_lists([([t0, t1, t2], [0, 1, 2])], n_units=3)
    rec = es.simulate(net, p, batch, t_max=0.5)
    t, _ = spikes_of(rec)
    # sqrt-conditioned: the crossing sits sqrt(2 margin / |V''|) before the peak; a 1e-15 error of V
    # moves it by 1e-15 / V'(crossing), below 1e-12 s for margins >= 1e-9
    assert_times_match(t, expected, atol=1e-11)
    if margin > 0:
        assert t0 < t[0] < t0 + float(s_star)


# ----------------------------------------------------------------------------- simultaneous inputs
@pytest.mark.parametrize("kind", KINDS)
def test_simultaneous_inputs_sum(kind):
    w = np.array([[1.9, 3.7, 4.3, -0.4], [6.1, 0.2, 1.0, 0.5]])
    net, p = single(kind, w)
    t_in = 0.02
    listing = [([t_in, t_in, t_in, t_in], [2, 0, 3, 1]), ([t_in] * 4, [0, 1, 2, 3]), ([t_in] * 4, [3, 2, 1, 0])]
    rec = es.simulate(net, p, es.SpikeBatch.from_lists(listing, n_units=4), t_max=0.2)
    for b in (1, 2):  # input order within the tie is irrelevant, bit for bit
        np.testing.assert_array_equal(rec.spikes[0].sample(b)[0], rec.spikes[0].sample(0)[0])
        np.testing.assert_array_equal(rec.spikes[0].sample(b)[1], rec.spikes[0].sample(0)[1])
    for j in range(2):
        expected = mp_neuron([(t_in, w[j].sum())], 20e-3, 5e-3, t_max=0.2)
        assert len(expected) >= 1
        assert_times_match(unit_times(rec, j), expected)
    # equal to one input carrying the summed weight (different float summation order only)
    net1, p1 = single(kind, w.sum(axis=1, keepdims=True))
    rec1 = es.simulate(net1, p1, es.SpikeBatch.from_lists([([t_in], [0])], n_units=1), t_max=0.2)
    assert_same_spikes(rec1.spikes[0], rec.spikes[0].select([0]), atol=1e-13)


@pytest.mark.parametrize("kind", KINDS)
def test_duplicated_events(kind):
    net, p = single(kind, [[3.5, 0.5]])
    t_in = [0.01, 0.01, 0.01, 0.05, 0.05]
    u_in = [0, 0, 1, 0, 0]
    rec = es.simulate(net, p, es.SpikeBatch.from_lists([(t_in, u_in)], n_units=2), t_max=0.2)
    expected = mp_neuron([(0.01, 7.5), (0.05, 7.0)], 20e-3, 5e-3, t_max=0.2)
    assert len(expected) >= 1
    assert_times_match(unit_times(rec, 0), expected)


@pytest.mark.parametrize("kind", KINDS)
def test_simultaneous_output_spikes_in_unit_order(kind):
    net, p = single(kind, [[8.0], [8.0], [8.0]])
    rec = es.simulate(net, p, es.SpikeBatch.from_lists([([0.01], [0])], n_units=1), t_max=0.1)
    t, u = spikes_of(rec)
    assert t.size % 3 == 0 and t.size > 0
    np.testing.assert_array_equal(u[:3], [0, 1, 2])
    assert t[0] == t[1] == t[2]


# ----------------------------------------------------------------------------- tau_mem == tau_syn
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("tau", [5e-3, 20e-3])
def test_equal_time_constants(kind, tau):
    neuron = es.LIF(tau_mem=tau, tau_syn=tau, t_ref=1e-3)
    inputs = [(0.01, 4.0), (0.013, 2.5), (0.05, -1.0), (0.051, 6.0)]
    expected = mp_neuron(inputs, tau, tau, t_ref=1e-3, t_max=0.2)
    assert len(expected) >= 2
    net, p = single(kind, [[4.0, 2.5, -1.0, 6.0]], neuron)
    batch = es.SpikeBatch.from_lists([([0.01, 0.013, 0.05, 0.051], [0, 1, 2, 3])], n_units=4)
    rec = es.simulate(net, p, batch, t_max=0.2)
    assert_times_match(unit_times(rec, 0), expected)
    # voltage before the first spike: V = w (s/tau) e^{-s/tau} (+ second input)
    tq = np.linspace(0.0, expected[0] - 1e-6, 50)
    v = rec.voltage(0, tq)[0, 0]
    s1, s2 = np.maximum(tq - 0.01, 0), np.maximum(tq - 0.013, 0)
    ref = 4.0 * (s1 / tau) * np.exp(-s1 / tau) + 2.5 * (s2 / tau) * np.exp(-s2 / tau)
    np.testing.assert_allclose(v, ref, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("kind", ["dense", "queue"])
def test_nearly_equal_time_constants_are_continuous(kind):
    batch = poisson_batch(1, 10, 50.0, 0.3, seed=5)
    w = np.full((3, 10), 0.6)
    times = []
    for ts in (10e-3, 10e-3 * (1 + 1e-12), 10e-3 * (1 - 1e-12)):
        net, p = single(kind, w, es.LIF(tau_mem=10e-3, tau_syn=ts))
        times.append(es.simulate(net, p, batch, t_max=0.3).spikes[0])
    assert times[0].n_events > 3
    for other in times[1:]:
        assert_same_spikes(other, times[0], atol=1e-12)


# ----------------------------------------------------------------------------- t = 0 and t = t_max
@pytest.mark.parametrize("kind", KINDS)
def test_input_at_zero(kind):
    net, p = single(kind, [[8.0], [0.5]])
    rec = es.simulate(net, p, es.SpikeBatch.from_lists([([0.0], [0])], n_units=1), t_max=0.1)
    expected = mp_neuron([(0.0, 8.0)], 20e-3, 5e-3, t_max=0.1)
    assert len(expected) == 1
    assert_times_match(unit_times(rec, 0), expected)
    assert unit_times(rec, 1).size == 0
    assert rec.voltage(0, 0.0)[0, 0, 0] == 0.0  # V is continuous: the input only sets I


@pytest.mark.parametrize("kind", KINDS)
def test_input_at_t_max_cannot_spike(kind):
    net, p = single(kind, [[100.0], [100.0]])
    t_max = 0.25
    batch = es.SpikeBatch.from_lists([([t_max], [0]), ([0.1, t_max], [0, 0])], n_units=1)
    rec = es.simulate(net, p, batch, t_max=t_max)
    assert rec.spikes[0].counts()[0] == 0
    t1 = rec.spikes[0].sample(1)[0]
    assert t1.size >= 2 and np.all(t1 < t_max) and np.all(t1 > 0.1)
    # inputs after t_max are ignored altogether
    late = es.SpikeBatch.from_lists([([0.3, 0.4], [0, 0])], n_units=1)
    assert es.simulate(net, p, late, t_max=t_max).spikes[0].n_events == 0


@pytest.mark.parametrize("kind", KINDS)
def test_spike_near_t_max_inclusive_window(kind):
    net, p = single(kind, [[8.0]])
    batch = es.SpikeBatch.from_lists([([0.05], [0])], n_units=1)
    t_s = es.simulate(net, p, batch, t_max=0.2).spikes[0].times
    assert t_s.size == 1
    t_s = float(t_s[0])
    # the crossing is steep (V' ~ 100/s), so 1e-12 s is ~1e-10 in V: far beyond rounding
    after = es.simulate(net, p, batch, t_max=t_s + 1e-12).spikes[0].times
    assert_times_match(after, [t_s], atol=1e-14)
    assert es.simulate(net, p, batch, t_max=t_s - 1e-12).spikes[0].n_events == 0


@pytest.mark.parametrize("kind", KINDS)
def test_shorter_window_is_a_prefix(kind):
    net = es.Network(n_inputs=20, layers=[layer_of(kind, 10), layer_of(kind, 6)])
    p = net.init(seed=2)
    p.weights[0][:] = np.abs(p.weights[0]) * 2.5
    p.weights[1][:] = np.abs(p.weights[1]) * 2.5
    if net.layers[0].recurrent:
        p.recurrent_weights[0][:] *= 2.0
    batch = poisson_batch(3, 20, 40.0, 0.4, seed=7)
    long = es.simulate(net, p, batch, t_max=0.4)
    short = es.simulate(net, p, batch, t_max=0.23)
    assert long.spikes[1].n_events > 10
    for l in range(2):
        for b in range(3):
            tl, ul = long.spikes[l].sample(b)
            keep = tl <= 0.23
            ts_, us_ = short.spikes[l].sample(b)
            np.testing.assert_array_equal(us_, ul[keep])
            np.testing.assert_allclose(ts_, tl[keep], rtol=0, atol=1e-13)


def test_spikes_at_time_zero_when_rest_is_above_threshold():
    """v_th < 0 = rest: the neuron is at threshold at t = 0 and fires periodically without input,
    at k tau_mem ln 2 (after a reset to -1, V = -e^{-s/tau_mem} reaches -0.5 at s = tau_mem ln 2)."""
    neuron = es.LIF(v_th=-0.5, v_reset=-1.0)
    expected = mp_neuron([], 20e-3, 5e-3, v_th=-0.5, v_reset=-1.0, t_max=0.1)
    assert expected[0] == 0.0 and len(expected) == 8
    for kind in KINDS:
        net, p = single(kind, [[1.0], [1.0]], neuron)
        rec = es.simulate(net, p, es.SpikeBatch.empty(1, n_units=1), t_max=0.1)
        for j in range(2):
            assert_times_match(unit_times(rec, j), expected)


# ----------------------------------------------------------------------------- delays reorder arrivals
@pytest.mark.parametrize("recurrent", [False, True])
def test_delays_reorder_arrivals(recurrent):
    # input 0 is sent first but arrives last: sent first, it would fire the neuron at once; arriving
    # after the inhibition it fires it later
    neuron = es.LIF()
    w = np.array([[10.0, -6.0, 3.0]])
    d = np.array([[0.03, 0.0, 0.0]])
    net = es.Network(n_inputs=3, layers=[es.Layer(1, neuron, recurrent=recurrent, delays=True)])
    p = params_for(net, [w], delays=[d])
    batch = es.SpikeBatch.from_lists([([0.01, 0.02, 0.021], [0, 1, 2])], n_units=3)
    rec = es.simulate(net, p, batch, t_max=0.2)
    # arrivals: 0.02 (-6.0), 0.021 (3.0), 0.04 (10.0)
    expected = mp_neuron([(0.02, -6.0), (0.021, 3.0), (0.04, 10.0)], 20e-3, 5e-3, t_max=0.2)
    assert len(expected) >= 1 and expected[0] > 0.04
    assert_times_match(unit_times(rec, 0), expected)
    # the same as the delay-free kernel fed the arrival times
    net0, p0 = single("dense", [[-6.0, 3.0, 10.0]])
    shifted = es.SpikeBatch.from_lists([([0.02, 0.021, 0.04], [0, 1, 2])], n_units=3)
    assert_same_spikes(es.simulate(net0, p0, shifted, t_max=0.2).spikes[0], rec.spikes[0], atol=1e-13)


def test_feedforward_delays_equal_shifted_inputs():
    """A delays=True feedforward layer equals, neuron by neuron, a delay-free neuron fed t + D[j, u]."""
    n_in, n, t_max = 15, 5, 0.4
    net = es.Network(n_inputs=n_in, layers=[es.Layer(n, es.LIF(t_ref=1e-3), delays=True, delay_max=0.05)])
    p = net.init(seed=3)
    p.weights[0][:] = np.abs(p.weights[0]) * 3.0
    batch = poisson_batch(2, n_in, 30.0, t_max, seed=9)
    rec = es.simulate(net, p, batch, t_max=t_max)
    assert rec.spikes[0].n_events > 10
    assert np.any(np.diff(p.delays[0], axis=1) != 0)
    for b in range(2):
        tin, uin = batch.sample(b)
        for j in range(n):
            ta = tin + p.delays[0][j, uin]
            order = np.lexsort((uin, ta))
            net1, p1 = single("dense", p.weights[0][j : j + 1], es.LIF(t_ref=1e-3))
            shifted = es.SpikeBatch.from_lists([(ta[order], uin[order])], n_units=n_in)
            got = unit_times(rec, j, b=b)
            want = es.simulate(net1, p1, shifted, t_max=t_max).spikes[0].times
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-13)


@pytest.mark.parametrize("t_ref", [0.0, 2e-3])
def test_recurrent_delay(t_ref):
    """Neuron 0 fires once (input-driven); its spike reaches neuron 1 after the recurrent delay d."""
    neuron = es.LIF(t_ref=t_ref)
    d = 0.0137
    w_in, w_rec = 8.0, 9.0
    net = es.Network(n_inputs=1, layers=[es.Layer(2, neuron, recurrent=True, delays=True)])
    p = params_for(
        net, [[[w_in], [0.0]]], rec_weights=[[[0.0, 0.0], [w_rec, 0.0]]], rec_delays=[[[0.0, 0.0], [d, 0.0]]]
    )
    rec = es.simulate(net, p, es.SpikeBatch.from_lists([([0.01], [0])], n_units=1), t_max=0.2)
    t0 = mp_neuron([(0.01, w_in)], 20e-3, 5e-3, t_ref=t_ref, t_max=0.2)
    assert len(t0) == 1
    assert_times_match(unit_times(rec, 0), t0)
    t1 = mp_neuron([(unit_times(rec, 0)[0] + d, w_rec)], 20e-3, 5e-3, t_ref=t_ref, t_max=0.2)
    assert len(t1) >= 1
    assert_times_match(unit_times(rec, 1), t1)


# ----------------------------------------------------------------------------- order independence
@pytest.mark.parametrize("kind", KINDS)
def test_independent_of_sample_order(kind):
    net = es.Network(n_inputs=25, layers=[layer_of(kind, 12, es.LIF(t_ref=1e-3)), es.Layer(3, es.LI())])
    p = net.init(seed=4)
    p.weights[0][:] = np.abs(p.weights[0]) * 2.0
    batch = poisson_batch(5, 25, 30.0, 0.3, seed=2)
    rec = es.simulate(net, p, batch, t_max=0.3)
    assert rec.spikes[0].n_events > 10
    perm = [3, 0, 4, 2, 1]
    rec_p = es.simulate(net, p, batch.select(perm), t_max=0.3)
    assert_same_spikes(rec_p.spikes[0], rec.spikes[0].select(perm))
    tq = np.linspace(0, 0.3, 17)
    np.testing.assert_array_equal(rec_p.voltage(1, tq), rec.voltage(1, tq)[perm])
    for b in range(5):
        one = es.simulate(net, p, batch.select([b]), t_max=0.3)
        assert_same_spikes(one.spikes[0], rec.spikes[0].select([b]))


@pytest.mark.parametrize("kind", KINDS)
def test_independent_of_listing_order_within_ties(kind):
    rng = np.random.default_rng(6)
    n_in = 12
    slots = np.round(np.linspace(0.0, 0.2, 21), 6)
    t = np.sort(rng.choice(slots, size=80))  # many exact ties, also duplicated (time, unit) pairs
    u = rng.integers(0, n_in, size=80)
    net = es.Network(n_inputs=n_in, layers=[layer_of(kind, 6)])
    p = net.init(seed=5)
    p.weights[0][:] = np.abs(p.weights[0]) * 4.0
    ref = es.simulate(net, p, es.SpikeBatch.from_lists([(t, u)], n_units=n_in), t_max=0.25)
    assert ref.spikes[0].n_events > 0
    for _ in range(3):
        perm = np.lexsort((rng.random(t.size), t))  # shuffle within ties only
        other = es.simulate(net, p, es.SpikeBatch.from_lists([(t[perm], u[perm])], n_units=n_in), t_max=0.25)
        assert_same_spikes(other.spikes[0], ref.spikes[0])


# ----------------------------------------------------------------------------- the two kernels agree
@pytest.mark.parametrize("recurrent", [False, True])
@pytest.mark.parametrize("t_ref", [0.0, 2e-3])
def test_kernels_agree_with_zero_delays(recurrent, t_ref):
    n_in, t_max = 40, 0.5
    neuron = es.LIF(t_ref=t_ref)
    mk = lambda delays: es.Network(  # noqa: E731
        n_inputs=n_in,
        layers=[
            # weights N(0, 1/fan-in) (the library default before issue 13), then made positive below
            es.Layer(25, neuron, recurrent=recurrent, delays=delays, weight_mean=0.0, weight_std=1 / np.sqrt(n_in)),
            es.Layer(10, neuron, recurrent=recurrent, delays=delays, weight_mean=0.0, weight_std=1 / np.sqrt(25)),
        ],
    )
    net_dense, net_queue = mk(False), mk(True)
    p = net_dense.init(seed=8)
    p.weights[0][:] = np.abs(p.weights[0]) * 2.0
    p.weights[1][:] = np.abs(p.weights[1]) * 2.0
    net_dense.check_params(p)
    net_queue.check_params(p)  # zero delays are legal for a delays=True layer
    batch = poisson_batch(4, n_in, 25.0, t_max, seed=12)
    a = es.simulate(net_dense, p, batch, t_max=t_max)
    b = es.simulate(net_queue, p, batch, t_max=t_max)
    assert a.spikes[0].n_events > 100 and a.spikes[1].n_events > 20
    for l in range(2):
        assert_same_spikes(a.spikes[l], b.spikes[l], atol=1e-13)
        np.testing.assert_allclose(a.spike_current[l], b.spike_current[l], rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(a.refractory_current[l], b.refractory_current[l], rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------------------- refractory period
@pytest.mark.parametrize("kind", KINDS)
def test_refractory_period(kind):
    t_ref, v_reset, t_max = 3e-3, -0.2, 0.3
    neuron = es.LIF(t_ref=t_ref, v_reset=v_reset)
    net = es.Network(n_inputs=10, layers=[layer_of(kind, 4, neuron)])
    p = params_for(net, [np.full((4, 10), 1.5) * np.array([[1.0], [2.0], [3.0], [0.3]])])
    batch = poisson_batch(2, 10, 100.0, t_max, seed=3)
    rec = es.simulate(net, p, batch, t_max=t_max)
    tq = np.linspace(0, t_max, 6001)
    V = rec.voltage(0, tq)
    n_windows = 0
    for b in range(2):
        for j in range(4):
            ts_ = unit_times(rec, j, b=b)
            if ts_.size > 1:
                assert np.all(np.diff(ts_) >= t_ref * (1 - 1e-12)), np.diff(ts_).min()
            inside = np.zeros(tq.size, bool)
            near = np.zeros(tq.size, bool)
            for s in ts_:
                inside |= (tq >= s) & (tq < s + t_ref)
                near |= np.abs(tq - s) < 1e-12
            n_windows += inside.sum()
            np.testing.assert_array_equal(V[b, j, inside], v_reset)
            assert np.all(V[b, j, ~inside & ~near] < 1.0)
            if ts_.size:
                # right-continuous: at a spike time and just inside its window V is v_reset
                np.testing.assert_array_equal(rec.voltage(0, ts_)[b, j], v_reset)
                mid = np.minimum(ts_ + 0.5 * t_ref, t_max)
                np.testing.assert_array_equal(rec.voltage(0, mid)[b, j], v_reset)
    assert n_windows > 100
    # spikes bunch up against the refractory limit for the strongly driven neuron
    assert np.diff(unit_times(rec, 2)).min() < 1.5 * t_ref


@pytest.mark.parametrize("kind", KINDS)
def test_refractory_current_keeps_evolving(kind):
    """Inputs during the window raise I; V is released from v_reset at the window's end."""
    t_ref = 5e-3
    inputs = [(0.01, 20.0), (0.012, 6.0), (0.013, 6.0), (0.03, 2.0)]
    expected = mp_neuron(inputs, 20e-3, 5e-3, t_ref=t_ref, t_max=0.1)
    assert len(expected) >= 2
    # the second spike follows the end of the first window after inputs arrived inside it
    assert expected[0] < 0.012 and expected[0] + t_ref > 0.013
    net, p = single(kind, [[20.0, 6.0, 6.0, 2.0]], es.LIF(t_ref=t_ref))
    batch = es.SpikeBatch.from_lists([([0.01, 0.012, 0.013, 0.03], [0, 1, 2, 3])], n_units=4)
    rec = es.simulate(net, p, batch, t_max=0.1)
    assert_times_match(unit_times(rec, 0), expected)


# ----------------------------------------------------------------------------- LI readout voltage
def _psp(s, w, tm, ts):
    s = np.asarray(s, dtype=np.float64)
    out = np.zeros_like(s)
    pos = s >= 0
    if tm == ts:
        out[pos] = w * (s[pos] / tm) * np.exp(-s[pos] / tm)
    else:
        out[pos] = w * ts / (ts - tm) * (np.exp(-s[pos] / ts) - np.exp(-s[pos] / tm))
    return out


@pytest.mark.parametrize(("tm", "ts"), [(20e-3, 5e-3), (5e-3, 20e-3), (10e-3, 10e-3)])
def test_li_readout_voltage_single_spike(tm, ts):
    net = es.Network(n_inputs=2, layers=[es.Layer(2, es.LI(tau_mem=tm, tau_syn=ts))])
    w = np.array([[1.7, 0.0], [-0.6, 0.0]])
    p = params_for(net, [w])
    t0 = 0.031
    rec = es.simulate(net, p, es.SpikeBatch.from_lists([([t0], [0])], n_units=2), t_max=0.2)
    tq = np.concatenate([[0.0, t0], np.linspace(0, 0.2, 401)])
    V = rec.voltage(0, tq)
    assert V.shape == (1, 2, tq.size)
    for j in range(2):
        ref = _psp(tq - t0, w[j, 0], tm, ts)
        np.testing.assert_allclose(V[0, j], ref, rtol=0, atol=1e-13 * abs(w[j, 0]))
    assert V[0, 0, 1] == 0.0  # at the input time V is still continuous (0)


def test_li_readout_after_hidden_layer_is_superposition():
    tm, ts = 15e-3, 4e-3
    net = es.Network(n_inputs=20, layers=[es.Layer(8, es.LIF(t_ref=1e-3)), es.Layer(3, es.LI(tau_mem=tm, tau_syn=ts))])
    p = net.init(seed=6)
    p.weights[0][:] = np.abs(p.weights[0]) * 3.0
    batch = poisson_batch(2, 20, 30.0, 0.3, seed=4)
    rec = es.simulate(net, p, batch, t_max=0.3)
    tq = np.linspace(0, 0.3, 301)
    V = rec.voltage(1, tq)
    assert rec.spikes[0].n_events > 10
    for b in range(2):
        th, uh = rec.spikes[0].sample(b)
        for o in range(3):
            ref = np.zeros(tq.size)
            for t_s, u in zip(th, uh, strict=True):
                ref += _psp(tq - t_s, p.weights[1][o, u], tm, ts)
            scale = np.abs(p.weights[1][o]).sum() + 1.0
            np.testing.assert_allclose(V[b, o], ref, rtol=0, atol=1e-12 * scale * max(1, th.size))


# ----------------------------------------------------------------------------- large activity
@pytest.mark.parametrize("kind", KINDS)
def test_large_activity_matches_per_sample_runs(kind):
    n, n_in, t_max = 4, 3, 0.3
    neuron = es.LIF(t_ref=0.2e-3)
    net = es.Network(n_inputs=n_in, layers=[layer_of(kind, n, neuron)])
    W = np.array([[6.0, 0.5, 0.0], [4.0, 0.0, 0.5], [0.5, 6.0, 0.0], [0.1, 0.1, 0.1]])
    rec_w = [np.full((n, n), -0.05) + 0.05 * np.eye(n)] if net.layers[0].recurrent else None
    p = params_for(net, [W], rec_weights=rec_w)
    dense_in = poisson_batch(2, n_in, 800.0, t_max, seed=1)
    batch = es.SpikeBatch.from_lists([dense_in.sample(0), ([0.01], [1]), ([], []), dense_in.sample(1)], n_units=n_in)
    rec = es.simulate(net, p, batch, t_max=t_max)
    counts = rec.spikes[0].counts()
    assert counts[0] > max(64, 4 * n) * 8 and counts[3] > max(64, 4 * n) * 8  # two capacity growths
    assert counts[2] == 0
    for b in range(4):
        one = es.simulate(net, p, batch.select([b]), t_max=t_max)
        assert_same_spikes(one.spikes[0], rec.spikes[0].select([b]))
        np.testing.assert_array_equal(
            one.spike_current[0], rec.spike_current[0][rec.spikes[0].offsets[b] : rec.spikes[0].offsets[b + 1]]
        )


def test_large_activity_against_oracle():
    """One strongly driven neuron (hundreds of spikes) against the mpmath oracle."""
    t_max = 0.1
    batch = poisson_batch(1, 1, 1000.0, t_max, seed=2)
    tin, _ = batch.sample(0)
    expected = mp_neuron([(t, 5.0) for t in tin], 20e-3, 5e-3, t_ref=0.1e-3, t_max=t_max)
    assert len(expected) > 64
    for kind in KINDS:
        net, p = single(kind, [[5.0]], es.LIF(t_ref=0.1e-3))
        rec = es.simulate(net, p, batch, t_max=t_max)
        assert_times_match(unit_times(rec, 0), expected, atol=1e-11)


# ----------------------------------------------------------------------------- long silent gaps
@pytest.mark.parametrize("kind", KINDS)
def test_long_gap_with_fast_membrane(kind):
    """tau_syn > tau_mem and a ~1 s silence: e^{-s/tau_mem} underflows while expm1(s delta) overflows,
    yet the exact state is finite (tiny) and the neuron must still respond to the next input."""
    tm, ts = 1e-3, 10e-3
    inputs = [(0.0, 0.5), (0.95, 3.0)]
    expected = mp_neuron(inputs, tm, ts, t_max=1.0)
    assert len(expected) >= 1 and expected[0] > 0.95
    net, p = single(kind, [[0.5, 3.0]], es.LIF(tau_mem=tm, tau_syn=ts))
    batch = es.SpikeBatch.from_lists([([0.0, 0.95], [0, 1])], n_units=2)
    rec = es.simulate(net, p, batch, t_max=1.0)
    assert_times_match(unit_times(rec, 0), expected)
    tq = np.array([0.5, 0.9, 0.949])
    V = rec.voltage(0, tq)[0, 0]
    assert np.all(np.isfinite(V)), V
    with mp.workdps(MP_DPS):
        ref = [_v(mp.mpf(0), mp.mpf(0.5), mp.mpf(t), mp.mpf(tm), mp.mpf(ts)) for t in tq]
    np.testing.assert_allclose(V, np.array(ref, dtype=np.float64), rtol=1e-12)


def test_voltage_queries_at_window_ends_and_outside():
    net, p = single("dense", [[8.0]])
    rec = es.simulate(net, p, es.SpikeBatch.from_lists([([0.01], [0])], n_units=1), t_max=0.1)
    v = rec.voltage(0, [0.0, 0.1])
    assert v.shape == (1, 1, 2) and v[0, 0, 0] == 0.0 and np.isfinite(v[0, 0, 1])
    # unsorted queries come back in the order asked
    tq = np.array([0.05, 0.0, 0.1, 0.02])
    np.testing.assert_array_equal(rec.voltage(0, tq)[0, 0], [rec.voltage(0, t)[0, 0, 0] for t in tq])
    for bad in (-1e-3, 0.1 + 1e-9, np.nan):
        with pytest.raises(ValueError) as err:
            rec.voltage(0, [0.05, bad])
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError):
        rec.voltage(1, [0.05])


def test_candidate_listing_counts_neurons_whose_voltage_was_patched():
    """_advance lists candidates after patching the refractory neurons' V: a patched neuron that only
    becomes a candidate then is listed, and so is the neuron the shared pass flagged."""
    import numpy as np

    from exactsnn.engine.cpu.dense import _advance
    from exactsnn.neurons.lif import lif_factors

    tm, ts, v_th, v_reset, t_ref = 20e-3, 5e-3, 1.0, 0.95, 5e-3
    t0, t1, t2 = 0.0, 10e-3, 11e-3
    V = np.array([v_reset, 0.0, 0.99])  # neuron 0 held at v_reset (window ends just before t1)
    I = np.array([0.1, 0.0, 2.0])
    row = np.array([3.0, 0.0, 3.0])
    aV, cI, aI = lif_factors(t1 - t0, tm, ts)
    ref_list = np.array([0, 0, 0])
    ref_end = np.array([t1 - 1e-4, -np.inf, -np.inf])
    ref_spike = np.zeros(3, np.int64)
    in_ref = np.array([True, False, False])
    cand = np.empty(7, np.int64)
    keep, n_cand = _advance(V, I, row, t0, t1, aV, cI, aI, ref_list, 1, ref_end, ref_spike, in_ref,
                            np.empty(3), np.zeros(8, np.uint8), tm, ts, v_reset, np.zeros(1), np.zeros(1), t_ref,
                            True, t2, v_th, cand)
    assert keep == 0
    assert sorted(cand[:n_cand]) == [0, 2]
