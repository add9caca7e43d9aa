"""The shared-clock forward kernel with per-neuron parameters (``_shared_pass_each`` in
:mod:`exactsnn.engine.cpu.linear`): the layer goes over each stretch by one Taylor series for all neurons
(:func:`exactsnn.neurons.series.propagate_layer`) instead of a matrix exponential per neuron, so its states
differ from the per-neuron maths by a few ulps. The spikes must not: same counts, units and order as the
arrival-list kernel (``linear_sample``, which advances each neuron by its own exponential; forced here by
``delays=True`` with every delay zero), times within 1e-14 s, and the currents recorded for the backward pass
likewise.
"""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit

import exactsnn as es
from exactsnn.engine.cpu.linear import _may_cross_each, _screen_rows, run_linear_batch
from exactsnn.engine.cpu.maths import may_cross_before
from exactsnn.engine.plan import layer_plan
from exactsnn.engine.simulate import LinearLayer, linear_layer
from exactsnn.neurons.linear import crossing_bounds, system_matrices

pytestmark = pytest.mark.usefixtures("serial_kernels")  # tiny batches: one thread (conftest.py)

T_MAX = 0.1
N_IN = 5
N = 8
ALL = ("tau_mem", "tau_w", "tau_syn", "a", "b")
TIME_TOL = 1e-14  # s, on spike times up to T_MAX (measured: 1e-16)
CUR_TOL = 1e-12  # relative to the largest |I| recorded (measured: 5e-15)


def _case(seed: int) -> dict:
    """Model and architecture of case ``seed``: every combination of each option recurs over the seeds."""
    return dict(
        recurrent=bool(seed % 2), t_ref=(0.0, 2e-3)[(seed // 2) % 2], v_reset=(0.0, -0.2)[(seed // 4) % 2],
        a=(0.0, 0.5, -0.3, 2.0)[seed % 4], b=(0.0, 0.2)[(seed // 3) % 2],
    )


def _batch(rng: np.random.Generator) -> es.SpikeBatch:
    """Two samples: Poisson inputs (~300 Hz in all), and one with a 60 ms silence (a stretch long enough for the
    per-neuron exponential branch of the pass) and a group of exactly tied input times."""
    k = rng.poisson(300.0 * T_MAX)
    t0 = np.sort(rng.uniform(0.0, T_MAX, k))
    t1 = np.concatenate([np.sort(rng.uniform(0.0, 0.02, 12)), np.full(4, 0.03), np.sort(rng.uniform(0.09, T_MAX, 6))])
    samples = [(t0, rng.integers(0, N_IN, t0.size)), (t1, rng.integers(0, N_IN, t1.size))]
    samples = [(t[np.lexsort((u, t))], u[np.lexsort((u, t))]) for t, u in samples]
    return es.SpikeBatch.from_lists(samples, n_units=N_IN)


def build(seed: int, recurrent: bool, t_ref: float, v_reset: float, a: float, b: float) -> tuple:
    """The same per-neuron adLIF layer (every parameter spread x U(0.8, 1.2)) on the shared-clock kernel and on
    the arrival-list kernel (delays on, all zero), and an input batch."""
    rng = np.random.default_rng(seed)
    nrn = es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=a, b=b, v_reset=v_reset, t_ref=t_ref)
    nets, params = [], None
    for delays in (False, True):
        net = es.Network(N_IN, [es.Layer(N, nrn, recurrent=recurrent, delays=delays, learn=ALL),
                                es.Layer(2, es.LI())])
        p = net.init(seed=seed)
        if params is None:
            p.weights[0][:] = rng.normal(1.5, 1.5, p.weights[0].shape)
            if recurrent:
                p.recurrent_weights[0][:] = rng.normal(0.0, 0.6, p.recurrent_weights[0].shape)
            for v in p.neuron[0].values():
                v[:] = v * rng.uniform(0.8, 1.2, v.size)
            params = p
        else:
            p = es.Params(params.weights, [np.zeros_like(d) if d is not None else d for d in p.delays],
                          params.recurrent_weights,
                          [np.zeros_like(d) if d is not None else d for d in p.recurrent_delays], params.neuron)
        nets.append((net, p))
    return nets, _batch(rng)


def _assert_close(r1: es.Recording, r2: es.Recording) -> float:
    """Same spikes (counts, units, order), times within TIME_TOL; returns the largest time difference."""
    s1, s2 = r1.spikes[0], r2.spikes[0]
    np.testing.assert_array_equal(s1.offsets, s2.offsets)
    np.testing.assert_array_equal(s1.units, s2.units)
    dt = float(np.max(np.abs(s1.times - s2.times), initial=0.0))
    assert dt <= TIME_TOL, dt
    scale = max(float(np.max(np.abs(r2.spike_current[0]), initial=0.0)), 1.0)
    np.testing.assert_allclose(r1.spike_current[0], r2.spike_current[0], rtol=0.0, atol=CUR_TOL * scale)
    np.testing.assert_array_equal(np.isnan(r1.refractory_current[0]), np.isnan(r2.refractory_current[0]))
    np.testing.assert_allclose(r1.refractory_current[0], r2.refractory_current[0], rtol=0.0, atol=CUR_TOL * scale)
    return dt


@pytest.mark.parametrize("seed", range(24))
def test_per_neuron_pass_matches_arrival_list_kernel(seed: int) -> None:
    kw = _case(seed)
    ((net, params), (net_q, params_q)), batch = build(seed, **kw)
    layer = net.layers[0]
    assert layer_plan(layer).schedule != "arrivals" and layer_plan(net_q.layers[0]).schedule == "arrivals"
    assert not linear_layer(layer, params.neuron[0]).uniform
    rec = es.simulate(net, params, batch, T_MAX)
    ref = es.simulate(net_q, params_q, batch, T_MAX)
    assert rec.spikes[0].n_events >= 15, "the layer fires"
    _assert_close(rec, ref)


def _run_kernel(lin: LinearLayer, net: es.Network, params: es.Params, batch: es.SpikeBatch, uniform: bool) -> tuple:
    layer = net.layers[0]
    nrn = layer.neuron
    n = layer.size
    R = params.recurrent_weights[0] if layer.recurrent else np.zeros((n, n))
    B, cap = len(batch), 4096
    out = (np.empty((B, cap)), np.empty((B, cap), np.int32), np.empty((B, cap)), np.empty((B, cap)))
    counts = np.zeros(B, np.int64)
    z = np.zeros((1, 1))
    run_linear_batch(batch.times, batch.units, batch.offsets, np.ascontiguousarray(params.weights[0]),
                     z.astype(np.int64), z, np.ascontiguousarray(R), z.astype(np.int64), z, layer.recurrent, False,
                     lin.A, lin.P, lin.bounds, lin.tau_w, lin.tau_syn, lin.a, lin.b, uniform, nrn.v_th, nrn.v_reset,
                     nrn.t_ref, T_MAX, *out, counts)
    return counts, out


@pytest.mark.parametrize("seed", range(8))
def test_per_neuron_pass_equals_shared_pass_on_equal_parameters(seed: int) -> None:
    """Neurons that share their parameters, run once as such (one cached propagator) and once as per-neuron
    (the series): the same spikes."""
    kw = _case(seed)
    nrn = es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=kw["a"], b=kw["b"], v_reset=kw["v_reset"],
                   t_ref=kw["t_ref"])
    ((_, params), _), batch = build(seed, **kw)
    net = es.Network(N_IN, [es.Layer(N, nrn, recurrent=kw["recurrent"]), es.Layer(2, es.LI())])
    params = es.Params(params.weights, params.delays, params.recurrent_weights, params.recurrent_delays, [{}, {}])
    lin = linear_layer(net.layers[0], None)
    assert lin.uniform
    (c1, o1), (c2, o2) = (_run_kernel(lin, net, params, batch, u) for u in (True, False))
    np.testing.assert_array_equal(c1, c2)
    assert c1.sum() >= 10
    for b, c in enumerate(c1):
        np.testing.assert_array_equal(o1[1][b, :c], o2[1][b, :c])
        assert np.max(np.abs(o1[0][b, :c] - o2[0][b, :c]), initial=0.0) <= TIME_TOL
        np.testing.assert_allclose(o1[2][b, :c], o2[2][b, :c], rtol=0.0, atol=CUR_TOL * 10.0)
        np.testing.assert_array_equal(np.isnan(o1[3][b, :c]), np.isnan(o2[3][b, :c]))
        np.testing.assert_allclose(o1[3][b, :c], o2[3][b, :c], rtol=0.0, atol=CUR_TOL * 10.0)
    rec = es.simulate(net, params, batch, T_MAX)  # and the public path takes the uniform pass: the same bits
    for b, c in enumerate(c1):  # (the kernel lists a feedforward layer's spikes neuron by neuron: sort)
        np.testing.assert_array_equal(rec.spikes[0].sample(b)[0], np.sort(o1[0][b, :c]))


@njit(cache=False)
def _screens(X: np.ndarray, H: float, A: np.ndarray, P: np.ndarray, bnd: np.ndarray, G: np.ndarray,
             v_th: float) -> tuple:
    n = X.shape[1]
    each = np.empty(n, np.uint8)
    ref = np.empty(n, np.bool_)
    x = np.empty(3)
    for j in range(n):
        each[j] = _may_cross_each(G, j, X[0, j], X[1, j], X[2, j], H, v_th)
        x[0], x[1], x[2] = X[0, j], X[1, j], X[2, j]
        ref[j] = may_cross_before(x, H, A[j], P[j], bnd[j, 0], bnd[j, 1], v_th)
    return each, ref


@pytest.mark.parametrize("v_th", [1.0, 0.3])
def test_screen_table_equals_per_neuron_screen(v_th: float) -> None:
    """The branch-free screen on the per-neuron table G flags exactly the neurons that the per-neuron screen
    :func:`~exactsnn.neurons.linear.may_cross_before` flags (oscillatory neurons included), on random states."""
    rng = np.random.default_rng(7)
    n = 4000
    a = rng.choice([0.0, 0.5, -0.3, 2.0, 40.0], n) * rng.uniform(0.8, 1.2, n)
    A = system_matrices(20e-3 * rng.uniform(0.8, 1.2, n), 100e-3 * rng.uniform(0.8, 1.2, n),
                        5e-3 * rng.uniform(0.8, 1.2, n), a)
    P, bnd = crossing_bounds(A)
    G = np.empty((11, n))
    _screen_rows(A, P, bnd, v_th, G)
    X = np.stack([rng.uniform(-1.0, 1.1, n) * v_th, rng.normal(0.0, 0.5, n), rng.normal(0.5, 2.0, n)])
    for H in (1e-4, 1e-3, 1e-2):
        each, ref = _screens(X, H, A, P, bnd, G, v_th)
        assert 0 < ref.sum() < n
        np.testing.assert_array_equal(each.astype(bool), ref)
