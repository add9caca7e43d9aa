"""The windowed reverse replay of linear layers with feedforward delays equals the arrival-list replay.

``exactsnn.engine.cpu.linear_ff_windows`` (``linear_ff_backward_batch``: the reverse replay of adLIF layers, and of
LIF layers learning tau_mem / tau_syn, whose feedforward synapses have delays and whose recurrent ones, if any, have
none) and ``exactsnn.engine.cpu.linear_backward`` (every arrival listed, sorted and replayed with lazy per-neuron
adjoints; what every linear-kernel layer runs inside ``exactsnn.grad.linear_arrival_replay()``) implement the same
EventProp maths with different schedules. On random small networks (one or two hidden layers, feedforward and
recurrent, t_ref 0 and > 0, v_reset != 0, a and b zero and not, a low threshold so that neurons fire a lot, delays
U(0, 10 ms) or on a 1 ms grid with zeros so that arrivals tie, inputs with exactly tied times, arrivals after T, no
neuron parameter learned, b learned or all of tau_mem, tau_w, tau_syn, a, b learned with per-neuron spreads)
every gradient (weights, delays, recurrent weights, neuron parameters, input times) agrees to ``TOL`` of its group's
largest entry: only rounding differs. Arrivals exactly on the windows' starts, at T and tied there are tested
separately, as is the layer -> kernel dispatch.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import exactsnn as es
from exactsnn.engine.cpu.linear_windows import window_grid
from exactsnn.engine.plan import layer_plan
from exactsnn.engine.simulate import linear_layer
from exactsnn.neurons.series import coefficients, layer_norm

grad_module = importlib.import_module("exactsnn.grad")

pytestmark = pytest.mark.usefixtures("serial_kernels")  # tiny batches: one thread (conftest.py)

TOL = 1e-12  # relative to the group's largest |gradient|
T_MAX = 0.1
N_IN = 5
D_MAX = 10e-3  # feedforward delays U(0, D_MAX) s
ALL = ("tau_mem", "tau_w", "tau_syn", "a", "b")
LEARN = ((), ("b",), ALL)


def _case(seed: int) -> dict:
    """Model and architecture of case ``seed``: every combination recurs over the seeds."""
    return dict(
        recurrent=bool(seed % 2), t_ref=(0.0, 2e-3)[(seed // 2) % 2], v_reset=(0.0, -0.2, 0.1)[seed % 3],
        a=(0.0, 0.5, 4.0)[(seed // 3) % 3], b=(0.0, 0.3)[(seed // 5) % 2], v_th=(1.0, 0.3)[(seed // 7) % 2],
        learn=LEARN[(seed // 4) % 3], two_layers=seed % 5 == 0, tied=(seed // 3) % 2 == 1,
    )


def _spread(params: es.Params, l: int, learn: tuple[str, ...], rng: np.random.Generator) -> None:
    """Per-neuron values of the learned parameters of layer ``l``: x U(0.8, 1.2), b ~ U(0, 0.4)."""
    for name in learn:
        v = params.neuron[l][name]
        v[:] = rng.uniform(0.0, 0.4, v.size) if name == "b" else v * rng.uniform(0.8, 1.2, v.size)


def _samples(rng: np.random.Generator) -> es.SpikeBatch:
    """3 samples of 30 input spikes over [0, T_MAX], the second with times on a 4 ms grid (exactly tied)."""
    samples = []
    for i in range(3):
        times = rng.uniform(0.0, T_MAX, 30)
        if i == 1:
            times = np.round(times / 4e-3) * 4e-3  # exactly tied input times (SHD's float16 times)
        units = rng.integers(0, N_IN, times.size)
        order = np.lexsort((units, times))
        samples.append((times[order], units[order]))
    return es.SpikeBatch.from_lists(samples, n_units=N_IN)


def build(seed: int, recurrent: bool, t_ref: float, v_reset: float, a: float, b: float, v_th: float,
          learn: tuple[str, ...], two_layers: bool, tied: bool):
    """Network (hidden adLIF layers with feedforward delays), parameters, 3 input samples, labels.

    ``tied``: delays on a 1 ms grid, a fifth of them exactly 0 (with the 4 ms input grid of the second sample,
    arrivals of different synapses and spikes tie exactly, up to the rounding of t + d)."""
    rng = np.random.default_rng(seed)
    nrn = es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=a, b=b, v_th=v_th, v_reset=v_reset, t_ref=t_ref)
    layers = [es.Layer(6, nrn, delays="feedforward", recurrent=recurrent, learn=learn)]
    if two_layers:
        layers.append(es.Layer(4, nrn, delays="feedforward", recurrent=not recurrent, learn=learn))
    layers.append(es.Layer(3, es.LI()))
    net = es.Network(N_IN, layers)
    params = net.init(seed=seed)
    for l, layer in enumerate(layers[:-1]):
        params.weights[l][:] = rng.normal(2.0, 2.0, params.weights[l].shape)
        d = rng.uniform(0.0, D_MAX, params.delays[l].shape)  # (n_l, n_{l-1}): [post, pre]
        if tied:
            d = np.round(d / 1e-3) * 1e-3
            d[rng.random(d.shape) < 0.2] = 0.0
        params.delays[l][:] = d
        if layer.recurrent:
            params.recurrent_weights[l][:] = rng.normal(0.0, 0.5, params.recurrent_weights[l].shape)
        _spread(params, l, learn, rng)
    params.weights[-1][:] = rng.normal(0.0, 1.0, params.weights[-1].shape)
    return net, params, _samples(rng), rng.integers(0, 3, 3)


def _rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.max(np.abs(ref), initial=0.0))
    return float(np.max(np.abs(x - ref), initial=0.0)) / scale if scale > 0.0 else float(np.max(np.abs(x), initial=0.0))


def _spy(monkeypatch: pytest.MonkeyPatch, name: str, calls: list) -> None:
    """Replace ``exactsnn.grad.<name>`` by a wrapper that records its calls in ``calls``."""
    real = getattr(grad_module, name)

    def spy(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(grad_module, name, spy)


def _compare(net: es.Network, params: es.Params, batch: es.SpikeBatch, labels: np.ndarray, what: str,
             monkeypatch: pytest.MonkeyPatch) -> es.Params:
    """Gradients of the windowed replay (spied) == those of the arrival-list replay; returns the former."""
    calls: list = []
    _spy(monkeypatch, "linear_ff_backward_batch", calls)  # spy
    value, grads, dt_in = es.loss_and_grad(net, params, batch, labels, t_max=T_MAX, input_grad=True)
    n_new = len(calls)
    with grad_module.linear_arrival_replay():
        ref_value, ref, ref_dt = es.loss_and_grad(net, params, batch, labels, t_max=T_MAX, input_grad=True)
    n_hidden = len(net.layers) - 1
    assert n_new == n_hidden and len(calls) == n_new, "every hidden layer on the windowed replay, none inside"  # spy
    assert value == ref_value
    groups, ref_groups = grads.groups(), ref.groups()
    assert groups.keys() == ref_groups.keys()
    for name, r in ref_groups.items():
        assert _rel_err(groups[name], r) <= TOL, f"{name}: {_rel_err(groups[name], r):.3g} ({what})"
    assert _rel_err(dt_in, ref_dt) <= TOL, f"input times: {_rel_err(dt_in, ref_dt):.3g} ({what})"
    assert np.any(dt_in != 0.0)
    return grads


@pytest.mark.parametrize("seed", range(24))
def test_ff_delays_equal_arrival_list_replay(seed: int, monkeypatch: pytest.MonkeyPatch):
    kw = _case(seed)
    net, params, batch, labels = build(seed, **kw)
    for layer in net.layers[:-1]:
        plan = layer_plan(layer)
        assert plan.family == "linear" and plan.ff_delays and not plan.rec_delays
    rec = es.simulate(net, params, batch, T_MAX)
    assert rec.spikes[0].n_events >= 40, "the first hidden layer fires"
    grads = _compare(net, params, batch, labels, str(kw), monkeypatch)
    assert np.any(grads.delays[0] != 0.0) and np.any(grads.weights[0] != 0.0)
    if kw["two_layers"] and rec.spikes[1].n_events > 0:
        assert np.any(grads.delays[1] != 0.0)
    for name in kw["learn"]:
        assert np.any(grads.neuron[0][name] != 0.0), name


def _on_edges_case(seed: int):
    """One hidden adLIF layer with delays on the window grid (some 0) and inputs timed so that arrivals land
    exactly on window starts, at T (tied there), and after T."""
    kw = {**_case(seed), "two_layers": False, "tied": False, "learn": ALL if seed < 4 else ((), ("b",))[seed % 2]}
    net, params, _, labels = build(seed, **kw)
    rng = np.random.default_rng(300 + seed)
    H, n_win = window_grid(layer_norm(coefficients(linear_layer(net.layers[0], params.neuron[0]).A)), T_MAX)
    assert n_win > 20
    D = rng.integers(0, 8, params.delays[0].shape) * H  # [post, pre], whole windows
    D[rng.random(D.shape) < 0.25] = 0.0
    params.delays[0][:] = D
    edges = np.concatenate([np.arange(n_win) * H, [T_MAX, T_MAX]])
    samples = []
    for _ in range(3):
        times = [rng.choice(edges, 30), rng.uniform(0.0, T_MAX, 8)]
        units = [rng.integers(0, N_IN, 30), rng.integers(0, N_IN, 8)]
        post, u = rng.integers(0, 6, 10), rng.integers(0, N_IN, 10)
        times.append(T_MAX - D[post, u])  # arrive at (about) T at neuron post, tied with one another
        units.append(u)
        times, units = np.concatenate(times), np.concatenate(units)
        order = np.lexsort((units, times))
        samples.append((times[order], units[order]))
    batch = es.SpikeBatch.from_lists(samples, n_units=N_IN)
    arrivals = batch.times[:, None] + D.T[batch.units]  # (event, post)
    k = np.round(arrivals / H)
    assert np.sum(np.abs(arrivals - k * H) <= 4e-16 * T_MAX) >= 100, "arrivals on window starts"
    assert np.sum(np.abs(arrivals - T_MAX) <= 4e-16 * T_MAX) >= 10, "arrivals at T"
    assert np.sum(arrivals > T_MAX + 1e-9) >= 20, "arrivals after T"
    return kw, net, params, batch, labels


@pytest.mark.parametrize("seed", range(6))
def test_ff_delays_with_arrivals_on_window_edges(seed: int, monkeypatch: pytest.MonkeyPatch):
    """Arrivals (input time + delay) exactly on the window starts of :mod:`exactsnn.engine.cpu.linear_windows`,
    at T and tied there (up to the rounding of t + d), and after T: the same gradients as the arrival-list replay."""
    kw, net, params, batch, labels = _on_edges_case(seed)
    assert es.simulate(net, params, batch, T_MAX).spikes[0].n_events >= 20, "the hidden layer fires"
    grads = _compare(net, params, batch, labels, str(kw), monkeypatch)
    assert np.any(grads.delays[0] != 0.0)
    for name in kw["learn"]:
        assert np.any(grads.neuron[0][name] != 0.0), name


@pytest.mark.parametrize("seed", range(6))
def test_ff_delays_lif_learning_taus(seed: int, monkeypatch: pytest.MonkeyPatch):
    """A LIF layer with feedforward delays learning per-neuron tau_mem and tau_syn (on the linear kernels, a = b = 0)
    equals the arrival-list replay."""
    kw = _case(seed)
    rng = np.random.default_rng(400 + seed)
    nrn = es.LIF(tau_mem=20e-3, tau_syn=5e-3, v_th=kw["v_th"], v_reset=kw["v_reset"], t_ref=kw["t_ref"])
    layer = es.Layer(6, nrn, delays="feedforward", recurrent=kw["recurrent"], learn=("tau_mem", "tau_syn"))
    assert layer_plan(layer).family == "linear"
    net = es.Network(N_IN, [layer, es.Layer(3, es.LI())])
    params = net.init(seed=seed)
    params.weights[0][:] = rng.normal(2.0, 2.0, params.weights[0].shape)
    d = rng.uniform(0.0, D_MAX, params.delays[0].shape)
    if kw["tied"]:
        d = np.round(d / 1e-3) * 1e-3
        d[rng.random(d.shape) < 0.2] = 0.0
    params.delays[0][:] = d
    if layer.recurrent:
        params.recurrent_weights[0][:] = rng.normal(0.0, 0.5, params.recurrent_weights[0].shape)
    _spread(params, 0, layer.learn, rng)
    params.weights[1][:] = rng.normal(0.0, 1.0, params.weights[1].shape)
    batch, labels = _samples(rng), rng.integers(0, 3, 3)
    assert es.simulate(net, params, batch, T_MAX).spikes[0].n_events >= 40, "the hidden layer fires"
    grads = _compare(net, params, batch, labels, str(kw), monkeypatch)
    assert np.any(grads.delays[0] != 0.0)
    for name in layer.learn:
        assert np.any(grads.neuron[0][name] != 0.0), name


@pytest.mark.parametrize("neuron, learn, delays, recurrent, n_hidden, kernel", [
    ("adlif", (), "feedforward", False, 1, "linear_ff_backward_batch"),
    ("adlif", ("tau_w",), "feedforward", True, 1, "linear_ff_backward_batch"),
    ("adlif", ALL, "feedforward", False, 2, "linear_ff_backward_batch"),
    ("adlif", ("b",), True, False, 1, "linear_ff_backward_batch"),  # no recurrent synapses: no recurrent delays
    ("lif", ("tau_mem",), "feedforward", True, 1, "linear_ff_backward_batch"),
    ("adlif", (), True, True, 1, "linear_backward_batch"),
    ("adlif", ("a",), True, True, 2, "linear_backward_batch"),
    ("lif", ("tau_syn",), True, True, 1, "linear_backward_batch"),
    ("adlif", ("tau_mem",), False, True, 1, "linear_dense_backward_batch"),
])
def test_dispatch(neuron, learn, delays, recurrent, n_hidden, kernel, monkeypatch: pytest.MonkeyPatch):
    """Linear-kernel layers with feedforward delays only take the windowed replay (once per hidden layer), layers
    with recurrent delays the arrival-list one, delay-free layers the shared-clock one; inside
    ``linear_arrival_replay()`` every one of them the arrival-list replay."""
    nrn = es.AdLIF() if neuron == "adlif" else es.LIF()
    layers = [es.Layer(4, nrn, learn=learn, delays=delays, recurrent=recurrent) for _ in range(n_hidden)]
    net = es.Network(N_IN, [*layers, es.Layer(3, es.LI())])
    params = net.init(seed=0)
    for l in range(n_hidden):
        params.weights[l][:] = 3.0
    batch = es.SpikeBatch.from_lists([(np.linspace(0.0, 0.05, 20), np.arange(20) % N_IN)], n_units=N_IN)
    used: list = []
    names = ("linear_ff_backward_batch", "linear_backward_batch", "linear_dense_backward_batch")  # spy
    for name in names:
        _spy(monkeypatch, name, used)
    es.loss_and_grad(net, params, batch, np.array([0]), t_max=T_MAX)
    assert used == [kernel] * n_hidden
    used.clear()
    with grad_module.linear_arrival_replay():
        es.loss_and_grad(net, params, batch, np.array([0]), t_max=T_MAX)
    assert used == ["linear_backward_batch"] * n_hidden
