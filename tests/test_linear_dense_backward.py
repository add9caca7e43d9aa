"""The shared-clock reverse replay of delay-free linear layers equals the arrival-list replay.

``exactsnn.engine.cpu.linear_dense_backward`` (the layer's adjoint carried from event to event together) and
``exactsnn.engine.cpu.linear_backward`` (every arrival listed, sorted and replayed with lazy per-neuron adjoints)
implement the same EventProp maths with different schedules: on random small adLIF networks (feedforward and
recurrent, one or two hidden layers, t_ref 0 and > 0, v_reset != 0, a and b zero and not, a low threshold so
that neurons fire a lot, inputs with exactly tied times, several samples, b learned or not) every gradient
(weights, recurrent weights, b, input times) agrees to ``TOL`` of its group's largest entry: only rounding
differs (stretches are split at other neurons' events, sums run in another order). Learned per-neuron
tau_mem, tau_w, tau_syn, a, b (the parameter adjoints of ``exactsnn.neurons.series``: a second, independent
derivation of the same gradients) are compared through ``es.loss_and_grad``, per-neuron parameters that are
not learned by calling both batch kernels directly on a recording.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import exactsnn as es
from exactsnn.engine.cpu.linear_backward import linear_backward_batch
from exactsnn.engine.cpu.linear_dense_backward import linear_dense_backward_batch
from exactsnn.engine.cpu.linear_windows import window_tables
from exactsnn.engine.simulate import linear_layer
from exactsnn.neurons.series import adjoint_rows, coefficients

grad_module = importlib.import_module("exactsnn.grad")

pytestmark = pytest.mark.usefixtures("serial_kernels")  # tiny batches: one thread (conftest.py)

TOL = 1e-12  # relative to the group's largest |gradient|
T_MAX = 0.1
N_IN = 5


def _case(seed: int) -> dict:
    """Model and architecture of case ``seed``: every combination recurs over the seeds."""
    return dict(
        recurrent=bool(seed % 2), t_ref=(0.0, 2e-3)[(seed // 2) % 2], v_reset=(0.0, -0.2, 0.1)[seed % 3],
        a=(0.0, 0.5, 4.0)[(seed // 3) % 3], b=(0.0, 0.3)[(seed // 5) % 2], v_th=(1.0, 0.3)[(seed // 7) % 2],
        learn_b=seed % 4 == 3, two_layers=seed % 5 == 0,
    )


def build(seed: int, recurrent: bool, t_ref: float, v_reset: float, a: float, b: float, v_th: float, learn_b: bool,
          two_layers: bool):
    """Network, parameters (hidden layers fire often), 3 input samples (one with tied times), labels."""
    rng = np.random.default_rng(seed)
    nrn = es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=a, b=b, v_th=v_th, v_reset=v_reset, t_ref=t_ref)
    layers = [es.Layer(6, nrn, recurrent=recurrent, learn=("b",) if learn_b else ())]
    if two_layers:
        layers.append(es.Layer(4, nrn, recurrent=not recurrent))
    layers.append(es.Layer(3, es.LI()))
    net = es.Network(N_IN, layers)
    params = net.init(seed=seed)
    for l, layer in enumerate(layers[:-1]):
        params.weights[l][:] = rng.normal(2.0, 2.0, params.weights[l].shape)
        if layer.recurrent:
            params.recurrent_weights[l][:] = rng.normal(0.0, 0.5, params.recurrent_weights[l].shape)
    if learn_b:
        params.neuron[0]["b"][:] = rng.uniform(0.0, 0.5, layers[0].size)  # per neuron: A is still shared
    params.weights[-1][:] = rng.normal(0.0, 1.0, params.weights[-1].shape)
    samples = []
    for i in range(3):
        times = rng.uniform(0.0, T_MAX, 30)
        if i == 1:
            times = np.round(times / 4e-3) * 4e-3  # exactly tied input times (SHD's float16 times)
        units = rng.integers(0, N_IN, times.size)
        order = np.lexsort((units, times))
        samples.append((times[order], units[order]))
    batch = es.SpikeBatch.from_lists(samples, n_units=N_IN)
    return net, params, batch, rng.integers(0, 3, 3)


def _rel_err(x: np.ndarray, ref: np.ndarray) -> float:
    scale = float(np.max(np.abs(ref), initial=0.0))
    return float(np.max(np.abs(x - ref), initial=0.0)) / scale if scale > 0.0 else float(np.max(np.abs(x), initial=0.0))


@pytest.mark.parametrize("seed", range(30))
def test_shared_clock_replay_equals_arrival_list_replay(seed: int, monkeypatch: pytest.MonkeyPatch):
    kw = _case(seed)
    net, params, batch, labels = build(seed, **kw)
    calls = []
    real = grad_module.linear_dense_backward_batch

    def spy(*args):
        calls.append(1)
        return real(*args)

    monkeypatch.setattr(grad_module, "linear_dense_backward_batch", spy)
    value, grads, dt_in = es.loss_and_grad(net, params, batch, labels, t_max=T_MAX, input_grad=True)
    n_new = len(calls)
    with grad_module.linear_arrival_replay():
        ref_value, ref, ref_dt = es.loss_and_grad(net, params, batch, labels, t_max=T_MAX, input_grad=True)
    assert n_new == len(net.layers) - 1 and len(calls) == n_new, "every hidden layer on the shared-clock replay"
    rec = es.simulate(net, params, batch, T_MAX)
    assert rec.spikes[0].n_events >= 40, "the first hidden layer fires"
    assert value == ref_value
    groups, ref_groups = grads.groups(), ref.groups()
    assert groups.keys() == ref_groups.keys()
    for name, r in ref_groups.items():
        assert np.any(r != 0.0) or name.startswith("delays") or name.startswith("recurrent_delays"), name
        assert _rel_err(groups[name], r) <= TOL, f"{name}: {_rel_err(groups[name], r):.3g} ({kw})"
    assert _rel_err(dt_in, ref_dt) <= TOL, f"input times: {_rel_err(dt_in, ref_dt):.3g} ({kw})"
    if kw["learn_b"]:
        assert np.any(grads.neuron[0]["b"] != 0.0)


@pytest.mark.parametrize("seed", range(8))
def test_per_neuron_parameters(seed: int):
    """Per-neuron tau_mem, tau_w, tau_syn, a, b (not learned: both kernels called directly on a recording)."""
    kw = _case(seed)
    rng = np.random.default_rng(100 + seed)
    names = ("tau_mem", "tau_w", "tau_syn", "a", "b")
    nrn = es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=kw["a"], b=kw["b"], v_th=kw["v_th"],
                   v_reset=kw["v_reset"], t_ref=kw["t_ref"])
    layer = es.Layer(6, nrn, recurrent=kw["recurrent"], learn=names)
    net = es.Network(N_IN, [layer, es.Layer(3, es.LI())])
    _, params, batch, _ = build(seed, **{**kw, "two_layers": False, "learn_b": False})
    params = es.Params(params.weights, params.delays, params.recurrent_weights, params.recurrent_delays,
                       [{k: v * rng.uniform(0.8, 1.25, v.shape) + (0.1 if k in ("a", "b") else 0.0)
                         for k, v in net.init(seed=seed).neuron[0].items()}, {}])
    rec = es.simulate(net, params, batch, T_MAX)
    own = rec.spikes[0]
    assert own.n_events >= 20
    lin = linear_layer(layer, params.neuron[0])
    assert not lin.uniform
    n, n_pre = layer.size, N_IN
    Wt = np.ascontiguousarray(params.weights[0].T)
    R = params.recurrent_weights[0] if layer.recurrent else np.zeros((n, n))
    Rt = np.ascontiguousarray(R.T)
    down = rng.normal(0.0, 1.0, own.n_events)
    common = (batch.times, batch.units, batch.offsets)
    gW, gR, gP, up = np.zeros((1, n_pre, n)), np.zeros((1, n, n)), np.zeros((1, n, 5)), np.zeros(batch.n_events)
    linear_dense_backward_batch(*common, Wt, Rt, layer.recurrent, own.times, own.units, own.offsets, down, lin.A,
                                lin.tau_mem, lin.tau_w, lin.tau_syn, lin.a, lin.b, nrn.v_th, nrn.v_reset, nrn.t_ref,
                                T_MAX, True, True, adjoint_rows(names), coefficients(lin.A),
                                *window_tables(coefficients(lin.A), T_MAX), gW, gR, gP, up)
    rW, rD, rR, rE, rP = (np.zeros((1, n_pre, n)), np.zeros((1, 1, 1)), np.zeros((1, n, n)), np.zeros((1, 1, 1)),
                          np.zeros((1, n, 5)))
    r_up = np.zeros(batch.n_events)
    linear_backward_batch(*common, Wt, np.zeros_like(Wt), Rt, np.zeros_like(Rt), layer.recurrent, False, own.times,
                          own.units, own.offsets, down, lin.A, lin.tau_mem, lin.tau_w, lin.tau_syn, lin.a, lin.b,
                          lin.uniform, nrn.v_th, nrn.v_reset, nrn.t_ref, T_MAX, True, rW, rD, rR, rE, rP, r_up)
    assert _rel_err(gW, rW) <= TOL
    for col in range(5):  # tau_mem, tau_w, tau_syn, a, b
        assert _rel_err(gP[0, :, col], rP[0, :, col]) <= TOL, col
    assert _rel_err(up, r_up) <= TOL
    if layer.recurrent:
        assert _rel_err(gR, rR) <= TOL
    assert np.any(gW != 0.0) and np.any(up != 0.0)


ALL = ("tau_mem", "tau_w", "tau_syn", "a", "b")


@pytest.mark.parametrize("seed", range(30))
def test_learned_neuron_parameters_equal_arrival_list_replay(seed: int, monkeypatch: pytest.MonkeyPatch):
    """Every adLIF layer learns tau_mem, tau_w, tau_syn, a, b, spread per neuron x U(0.8, 1.2): all gradients
    (parameters included) of the shared-clock replay equal those of the arrival-list replay."""
    kw = _case(seed)
    net0, params0, batch, labels = build(seed, **kw)
    layers = [es.Layer(L.size, L.neuron, recurrent=L.recurrent, learn=ALL if isinstance(L.neuron, es.AdLIF) else ())
              for L in net0.layers]
    net = es.Network(N_IN, layers)
    params = net.init(seed=seed)
    rng = np.random.default_rng(200 + seed)
    for l, layer in enumerate(layers):
        params.weights[l][:] = params0.weights[l]
        if layer.recurrent:
            params.recurrent_weights[l][:] = params0.recurrent_weights[l]
        for name in layer.learn:
            v = params.neuron[l][name]
            v[:] = rng.uniform(0.0, 0.4, v.size) if name == "b" else v * rng.uniform(0.8, 1.2, v.size)
    calls = []
    real = grad_module.linear_dense_backward_batch
    monkeypatch.setattr(grad_module, "linear_dense_backward_batch", lambda *a: (calls.append(1), real(*a))[1])
    value, grads, dt_in = es.loss_and_grad(net, params, batch, labels, t_max=T_MAX, input_grad=True)
    assert len(calls) == len(layers) - 1, "every hidden layer on the shared-clock replay"
    with grad_module.linear_arrival_replay():
        ref_value, ref, ref_dt = es.loss_and_grad(net, params, batch, labels, t_max=T_MAX, input_grad=True)
    assert es.simulate(net, params, batch, T_MAX).spikes[0].n_events >= 40, "the first hidden layer fires"
    assert value == ref_value
    groups, ref_groups = grads.groups(), ref.groups()
    assert groups.keys() == ref_groups.keys()
    for name, r in ref_groups.items():
        assert _rel_err(groups[name], r) <= TOL, f"{name}: {_rel_err(groups[name], r):.3g} ({kw})"
    for name in ALL:
        assert np.any(grads.neuron[0][name] != 0.0), name
    assert _rel_err(dt_in, ref_dt) <= TOL, f"input times: {_rel_err(dt_in, ref_dt):.3g} ({kw})"


@pytest.mark.parametrize("learn, delays, recurrent, kernel", [
    (("tau_mem",), False, False, "linear_dense_backward_batch"),
    (("a", "b"), False, True, "linear_dense_backward_batch"),
    ((), True, True, "linear_backward_batch"), (("tau_w",), True, True, "linear_backward_batch"),
    ((), True, False, "linear_ff_backward_batch"), (("tau_w",), "feedforward", True, "linear_ff_backward_batch"),
])
def test_dispatch(learn, delays, recurrent, kernel, monkeypatch: pytest.MonkeyPatch):
    """Delay-free layers (learning neuron parameters or not) take the shared-clock replay, layers with recurrent
    delays the arrival-list one, layers with feedforward delays only the windowed one."""
    net = es.Network(N_IN, [es.Layer(4, es.AdLIF(), learn=learn, delays=delays, recurrent=recurrent),
                            es.Layer(3, es.LI())])
    params = net.init(seed=0)
    params.weights[0][:] = 3.0
    batch = es.SpikeBatch.from_lists([(np.linspace(0.0, 0.05, 20), np.arange(20) % N_IN)], n_units=N_IN)
    used = []
    for name in ("linear_dense_backward_batch", "linear_backward_batch", "linear_ff_backward_batch"):
        real = getattr(grad_module, name)
        monkeypatch.setattr(grad_module, name, lambda *a, _r=real, _n=name: (used.append(_n), _r(*a))[1])
    es.loss_and_grad(net, params, batch, np.array([0]), t_max=T_MAX)
    assert used == [kernel]


@pytest.mark.parametrize("subset", [("tau_mem",), ("a",), ("tau_w", "b"), ("tau_syn",), ("tau_mem", "tau_syn")])
def test_learning_a_subset_computes_the_same_gradients(subset: tuple[str, ...]):
    """A layer learning some parameters runs only their adjoint rows (``series.adjoint_rows``): its gradients equal,
    bit for bit, those of the same layer learning every parameter (the others at their shared values)."""
    kw = {**_case(3), "two_layers": False}
    net0, params0, batch, labels = build(3, **kw)
    nrn = net0.layers[0].neuron
    rng = np.random.default_rng(3)
    spread = {name: rng.uniform(0.0, 0.4, 6) if name == "b" else getattr(nrn, name) * rng.uniform(0.8, 1.2, 6)
              for name in subset}
    out = {}
    for learn in (subset, ALL):
        net = es.Network(N_IN, [es.Layer(6, nrn, recurrent=True, learn=learn), es.Layer(3, es.LI())])
        params = net.init(seed=3)
        params.weights[0][:] = params0.weights[0]
        params.weights[1][:] = params0.weights[-1]
        params.recurrent_weights[0][:] = params0.recurrent_weights[0]
        for name in learn:
            params.neuron[0][name][:] = spread[name] if name in subset else getattr(nrn, name)
        out[learn] = es.loss_and_grad(net, params, batch, labels, t_max=T_MAX)
    assert out[subset][0] == out[ALL][0]
    for name in subset:
        g = out[subset][1].neuron[0][name]
        assert np.any(g != 0.0) and np.array_equal(g, out[ALL][1].neuron[0][name]), name
    assert np.array_equal(out[subset][1].weights[0], out[ALL][1].weights[0])


@pytest.mark.parametrize("seed", range(4))
def test_learned_parameters_with_events_on_window_edges(seed: int):
    """The windowed reverse replay (:mod:`exactsnn.engine.cpu.linear_windows`) with inputs exactly at window
    starts, at T and tied there, and spikes near them: the same gradients as the arrival-list replay."""
    from exactsnn.engine.cpu.linear_windows import window_grid
    from exactsnn.neurons.series import layer_norm

    kw = {**_case(seed), "two_layers": False, "learn_b": False}
    net0, params0, _, labels = build(seed, **kw)
    layer0 = net0.layers[0]
    net = es.Network(N_IN, [es.Layer(layer0.size, layer0.neuron, recurrent=layer0.recurrent, learn=ALL),
                            es.Layer(3, es.LI())])
    params = net.init(seed=seed)
    rng = np.random.default_rng(300 + seed)
    params.weights[0][:] = params0.weights[0]
    if layer0.recurrent:
        params.recurrent_weights[0][:] = params0.recurrent_weights[0]
    params.weights[1][:] = params0.weights[-1]
    for name in ALL:
        v = params.neuron[0][name]
        v[:] = v * rng.uniform(0.8, 1.2, v.size)
    H, n_win = window_grid(layer_norm(coefficients(linear_layer(net.layers[0], params.neuron[0]).A)), T_MAX)
    assert n_win > 20
    edges = np.concatenate([np.arange(n_win) * H, [T_MAX, T_MAX]])
    samples = []
    for _ in range(3):
        times = np.concatenate([rng.choice(edges, 40), rng.uniform(0.0, T_MAX, 10)])
        units = rng.integers(0, N_IN, times.size)
        order = np.lexsort((units, times))
        samples.append((times[order], units[order]))
    batch = es.SpikeBatch.from_lists(samples, n_units=N_IN)
    value, grads, dt_in = es.loss_and_grad(net, params, batch, labels, t_max=T_MAX, input_grad=True)
    with grad_module.linear_arrival_replay():
        ref_value, ref, ref_dt = es.loss_and_grad(net, params, batch, labels, t_max=T_MAX, input_grad=True)
    assert es.simulate(net, params, batch, T_MAX).spikes[0].n_events >= 20, "the hidden layer fires"
    assert value == ref_value
    for name, r in ref.groups().items():
        assert _rel_err(grads.groups()[name], r) <= TOL, f"{name}: {_rel_err(grads.groups()[name], r):.3g} ({kw})"
    assert _rel_err(dt_in, ref_dt) <= TOL, f"input times: {_rel_err(dt_in, ref_dt):.3g} ({kw})"
