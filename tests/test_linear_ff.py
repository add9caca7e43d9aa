"""The windowed forward kernel of linear (adLIF) layers with feedforward delays equals the heap kernel.

``exactsnn.engine.cpu.linear_ff`` (arrivals bucketed per window and neuron, a conservative screen, exact probes of
the flagged neurons, the layer brought from spike to spike by the series and the arrivals' moments) and
``exactsnn.engine.cpu.linear.linear_sample`` (every arrival from a heap, each neuron re-predicted at each) simulate
the same layers by different schedules. On random small networks (recurrent or not, refractory windows, v_reset
and a, b zero and not, a low threshold so that neurons fire a lot, tied input times and delays on a grid so that
arrivals tie, arrivals on window starts and at t_max, per-neuron parameters) both give the same spikes: the same
units in the same order, the times to ``TIME_TOL`` relative (both search every stretch exactly; they start their
searches at other points, so the last ulps differ), the currents recorded at the spikes likewise.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import exactsnn as es
from exactsnn.engine import simulate as sim
from exactsnn.engine.cpu.linear_windows import window_grid
from exactsnn.engine.plan import layer_plan
from exactsnn.neurons.series import coefficients, layer_norm

pytestmark = pytest.mark.usefixtures("serial_kernels")

TIME_TOL = 1e-13  # relative: a few tens of ulps of the spike times
N_IN = 5
T_MAX = 0.1


def _heap_plan(layer: es.Layer):
    plan = layer_plan(layer)
    return dataclasses.replace(plan, ff_windows=False) if plan.family == "linear" else plan


def _both(net: es.Network, params: es.Params, batch: es.SpikeBatch, monkeypatch: pytest.MonkeyPatch):
    calls = []
    real = sim.run_linear_ff_batch
    monkeypatch.setattr(sim, "run_linear_ff_batch", lambda *a: (calls.append(1), real(*a))[1])
    rec = es.simulate(net, params, batch, T_MAX)
    assert calls, "the windowed kernel ran"
    monkeypatch.setattr(sim, "layer_plan", _heap_plan)
    n_calls = len(calls)
    ref = es.simulate(net, params, batch, T_MAX)
    assert len(calls) == n_calls, "the reference ran on the heap kernel"
    return rec, ref


def _same_spikes(rec, ref, what: str) -> None:
    for l in range(len(ref.spikes)):
        a, b = rec.spikes[l], ref.spikes[l]
        assert np.array_equal(a.offsets, b.offsets), f"{what}: layer {l} spike counts differ"
        assert np.array_equal(a.units, b.units), f"{what}: layer {l} units differ"
        err = np.abs(a.times - b.times) / np.maximum(np.abs(b.times), 1e-300)
        assert np.all(err <= TIME_TOL), f"{what}: layer {l} times differ by {err.max():.3g} relative"
        ia, ib = rec.spike_current[l], ref.spike_current[l]
        scale = max(float(np.max(np.abs(ib), initial=0.0)), 1e-300)
        assert np.max(np.abs(ia - ib), initial=0.0) <= 1e-11 * scale, f"{what}: layer {l} currents at spikes"


def _network(seed: int, neuron: object, recurrent: bool, learn: tuple[str, ...] = (), two: bool = False):
    rng = np.random.default_rng(seed)
    layers = [es.Layer(6, neuron, recurrent=recurrent, delays="feedforward", delay_max=10e-3, learn=learn)]
    if two:
        layers.append(es.Layer(4, neuron, recurrent=not recurrent, delays="feedforward", delay_max=5e-3))
    layers.append(es.Layer(3, es.LI()))
    net = es.Network(N_IN, layers)
    params = net.init(seed=seed)
    for l, layer in enumerate(layers[:-1]):
        params.weights[l][:] = rng.normal(2.0, 2.0, params.weights[l].shape)
        if layer.recurrent:
            params.recurrent_weights[l][:] = rng.normal(0.0, 0.5, params.recurrent_weights[l].shape)
    for name in learn:
        v = params.neuron[0][name]
        v[:] = rng.uniform(0.0, 0.4, v.size) if name == "b" else v * rng.uniform(0.8, 1.2, v.size)
    return net, params, rng


def _inputs(rng: np.random.Generator, tied: bool) -> es.SpikeBatch:
    samples = []
    for i in range(3):
        times = rng.uniform(0.0, T_MAX, 30)
        if tied or i == 1:
            times = np.round(times / 4e-3) * 4e-3  # exactly tied input times (SHD's float16 times)
        units = rng.integers(0, N_IN, times.size)
        order = np.lexsort((units, times))
        samples.append((times[order], units[order]))
    return es.SpikeBatch.from_lists(samples, n_units=N_IN)


@pytest.mark.parametrize("seed", range(24))
def test_windowed_forward_equals_heap(seed: int, monkeypatch: pytest.MonkeyPatch):
    nrn = es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=(0.0, 0.5, 4.0)[seed % 3], b=(0.0, 0.3)[seed % 2],
                   v_th=(1.0, 0.3)[(seed // 3) % 2], v_reset=(0.0, -0.2, 0.1)[(seed // 2) % 3],
                   t_ref=(0.0, 2e-3)[(seed // 4) % 2])
    learn = (("tau_mem", "tau_w", "a", "b"), ())[(seed // 6) % 2]
    net, params, rng = _network(seed, nrn, bool(seed % 2), learn, two=seed % 5 == 0)
    if seed % 3 == 1:  # delays on a 1 ms grid, some zero: arrivals tie
        params.delays[0][:] = np.round(params.delays[0] / 1e-3) * 1e-3
        params.delays[0][:, 0] = 0.0
    batch = _inputs(rng, tied=seed % 4 == 2)
    rec, ref = _both(net, params, batch, monkeypatch)
    assert ref.spikes[0].n_events >= 40, "the hidden layer fires"
    _same_spikes(rec, ref, f"seed {seed}")


@pytest.mark.parametrize("seed", range(4))
def test_arrivals_on_window_edges_and_at_t_max(seed: int, monkeypatch: pytest.MonkeyPatch):
    nrn = es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=0.5, b=0.2, v_th=0.5, t_ref=(0.0, 1e-3)[seed % 2])
    net, params, rng = _network(100 + seed, nrn, recurrent=bool(seed % 2))
    lin = sim.linear_layer(net.layers[0], params.neuron[0])
    H, n_win = window_grid(layer_norm(coefficients(lin.A)), T_MAX)
    assert n_win > 20
    params.delays[0][:] = rng.integers(0, 6, params.delays[0].shape) * H
    edges = np.concatenate([np.arange(n_win) * H, [T_MAX, T_MAX]])
    samples = []
    for _ in range(3):
        times = np.concatenate([rng.choice(edges, 40), rng.uniform(0.0, T_MAX, 10)])
        units = rng.integers(0, N_IN, times.size)
        order = np.lexsort((units, times))
        samples.append((times[order], units[order]))
    batch = es.SpikeBatch.from_lists(samples, n_units=N_IN)
    rec, ref = _both(net, params, batch, monkeypatch)
    assert ref.spikes[0].n_events >= 20
    _same_spikes(rec, ref, f"edges seed {seed}")


@pytest.mark.parametrize("seed", range(4))
def test_lif_learning_taus_with_feedforward_delays(seed: int, monkeypatch: pytest.MonkeyPatch):
    """A LIF layer learning tau_mem, tau_syn with delays runs on the linear kernels (a = b = 0): windowed too."""
    net, params, rng = _network(200 + seed, es.LIF(v_th=0.5, t_ref=(0.0, 1e-3)[seed % 2]), bool(seed % 2),
                                learn=("tau_mem", "tau_syn"))
    assert layer_plan(net.layers[0]).family == "linear" and layer_plan(net.layers[0]).ff_windows
    rec, ref = _both(net, params, _inputs(rng, tied=False), monkeypatch)
    assert ref.spikes[0].n_events >= 20
    _same_spikes(rec, ref, f"lif seed {seed}")


def test_plan():
    """Linear layers with feedforward delays only (and v_th > 0) take the windowed forward kernel."""
    assert layer_plan(es.Layer(3, es.AdLIF(), recurrent=True, delays="feedforward")).ff_windows
    assert layer_plan(es.Layer(3, es.AdLIF(), delays=True)).ff_windows  # no recurrence: feedforward delays only
    assert not layer_plan(es.Layer(3, es.AdLIF(), recurrent=True, delays=True)).ff_windows
    assert not layer_plan(es.Layer(3, es.AdLIF(v_th=0.0, v_reset=-1.0), delays=True)).ff_windows
    assert not layer_plan(es.Layer(3, es.AdLIF(), recurrent=True)).ff_windows  # shared clock
