"""Reverse replay of LIF layers with feedforward-only delays (``exactsnn/engine/cpu/ff_delays_backward.py``).

The kernel replays the layer's own events on the shared clock and then adds every arrival's gradient
in any order. Its independent reference is the general delay replay (``queue_backward_sample``: every
arrival listed, sorted and replayed one by one), which a layer built with ``delays=True`` and zero
recurrent delays runs on the same forward recording: gradients (weights, delays, recurrent weights,
input times) must agree to rounding (1e-11 of each group's largest entry; observed ~1e-14), in both
evaluation forms of the arrival pass (modal factors, and lif_factors per arrival, which serves
tau_mem ~ tau_syn and long windows), serially and on 2 threads. Finite differences of the same
layers are in ``tests/test_engine_plan.py``.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exactsnn as es
from exactsnn import grad as grad_module
from exactsnn.engine.cpu import ff_delays_backward as ffb

TOL = 1e-11
TAUS = [(20e-3, 5e-3), (10e-3, 5e-3), (5e-3, 10e-3), (8e-3, 8e-3), (8e-3, 7.9e-3)]


def _case(seed: int, recurrent: bool, t_ref: float, v_reset: float, taus: tuple[float, float], d_max: float):
    rng = np.random.default_rng(seed)
    n_in, n, t_max = int(rng.integers(3, 8)), int(rng.integers(2, 7)), 0.1
    lif = es.LIF(tau_mem=taus[0], tau_syn=taus[1], t_ref=t_ref, v_reset=v_reset)

    def make(delays: object) -> es.Network:
        return es.Network(n_in, [es.Layer(n, lif, recurrent=recurrent, delays=delays, delay_max=d_max),
                                 es.Layer(3, es.LI(*taus))])

    net, full = make("feedforward" if recurrent else True), make(True)
    params = net.init(seed=seed)
    params.weights[0][:] = rng.normal(2.5 / n_in * (5e-3 / taus[1]) * 3.0, 1.0, params.weights[0].shape)
    if recurrent:
        r = rng.normal(0.0, 0.5, (n, n))
        np.fill_diagonal(r, 0.0)
        params.recurrent_weights[0][:] = r
    samples = []
    for _ in range(3):
        k = int(rng.integers(0, 25))
        t = np.sort(rng.uniform(0.0, t_max, k))
        if k > 4:
            t[2] = t[1]  # a coinciding input pair (SHD-like)
        samples.append((t, rng.integers(0, n_in, k)))
    return net, full, params, es.SpikeBatch.from_lists(samples, n_in), rng.integers(0, 3, 3), t_max


def _compare(seed, recurrent, t_ref, v_reset, taus, d_max, force_direct=False, monkeypatch=None):
    net, full, params, batch, labels, t_max = _case(seed, recurrent, t_ref, v_reset, taus, d_max)
    if force_direct:
        monkeypatch.setattr(grad_module, "modal_ok", lambda *a, **k: False)
    loss, g, up = es.loss_and_grad(net, params, batch, labels, t_max=t_max, input_grad=True)
    loss_q, g_q, up_q = es.loss_and_grad(full, params, batch, labels, t_max=t_max, input_grad=True)
    assert loss == loss_q
    names = ["weights[0]", "delays[0]", "weights[1]"] + (["recurrent_weights[0]"] if recurrent else [])
    for name in names:
        a, b = g.groups()[name], g_q.groups()[name]
        np.testing.assert_allclose(a, b, rtol=0, atol=TOL * max(np.abs(b).max(), 1e-300), err_msg=name)
    np.testing.assert_allclose(up, up_q, rtol=0, atol=TOL * max(np.abs(up_q).max(), 1e-300))
    if recurrent:
        assert np.all(g.recurrent_delays[0] == 0)
    return g


@pytest.fixture(autouse=True)
def _serial():
    n = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(n)


@settings(max_examples=30)
@given(seed=st.integers(0, 2**31 - 1), recurrent=st.booleans(), t_ref=st.sampled_from([0.0, 2e-3]),
       v_reset=st.sampled_from([0.0, 0.1, -0.2]), taus=st.sampled_from(TAUS), d_max=st.sampled_from([5e-3, 25e-3]))
def test_matches_general_delay_replay(seed, recurrent, t_ref, v_reset, taus, d_max):
    _compare(seed, recurrent, t_ref, v_reset, taus, d_max)


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("taus", [(20e-3, 5e-3), (5e-3, 10e-3)])
def test_direct_form_matches_too(seed, taus, monkeypatch):
    g = _compare(seed, True, 1e-3, 0.0, taus, 25e-3, force_direct=True, monkeypatch=monkeypatch)
    assert np.any(g.delays[0] != 0) or seed > 3  # most cases are not silent


def test_modal_form_is_chosen_where_safe():
    assert ffb.modal_ok(1.0, 25e-3, 20e-3, 5e-3)
    assert not ffb.modal_ok(1.0, 25e-3, 8e-3, 8e-3)  # equal taus: c(h) = (h/tau) e^{-h/tau}
    assert not ffb.modal_ok(1.0, 25e-3, 8e-3, 7.9e-3)  # nearly equal: cancellation
    assert not ffb.modal_ok(10.0, 25e-3, 20e-3, 5e-3)  # e^{T/tau_syn} out of range
    assert not ffb.modal_ok(1.0, 25e-3, 20e-3, 5e-3, force_direct=True)


def test_two_threads_equal_one(monkeypatch):
    net, _, params, batch, labels, t_max = _case(7, True, 2e-3, 0.0, (20e-3, 5e-3), 25e-3)
    batch = es.SpikeBatch.from_lists([batch.sample(b) for b in (0, 1, 2, 0, 2, 1, 1)], net.n_inputs)
    labels = np.arange(len(batch)) % 3
    _, g1 = es.loss_and_grad(net, params, batch, labels, t_max=t_max)
    numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
    _, g2 = es.loss_and_grad(net, params, batch, labels, t_max=t_max)
    for name, a in g1.groups().items():
        b = g2.groups()[name]
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * max(np.abs(a).max(), 1e-300), err_msg=name)


def test_silent_layer_and_late_arrivals():
    """No hidden spike: every hidden gradient is zero; arrivals after t_max contribute nothing."""
    net = es.Network(3, [es.Layer(2, recurrent=True, delays="feedforward", delay_max=0.5), es.Layer(2, es.LI())])
    params = net.init(seed=1)
    params.weights[0][:] = 0.01
    batch = es.SpikeBatch.from_lists([(np.array([0.01, 0.05]), np.array([0, 2]))], 3)
    _, g = es.loss_and_grad(net, params, batch, np.array([1]), t_max=0.1)
    assert np.all(g.weights[0] == 0) and np.all(g.delays[0] == 0) and np.all(g.recurrent_weights[0] == 0)
