"""The model registry, the layer plan and feedforward-only delays (``Layer(delays="feedforward")``).

* Registry: every model class the package exports has exactly one spec; names, keys, learnable
  parameters, bounds and families are what config, checkpoints, ``Layer`` and Adam read.
* Plan: the family and schedule of every layer kind (the one place the kernel choice is made).
* Feedforward delays: learned delays on the feedforward synapses, instantaneous recurrence. Same
  results as ``delays=True`` with the recurrent delays at zero (the arrivals schedule runs both), the
  recurrent delays are neither initialised, accepted non-zero, differentiated nor trained, and the
  feedforward delay gradients agree with central finite differences.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import exactsnn as es
from exactsnn.checkpoint import NEURON_MODELS, network_from_dict, network_to_dict
from exactsnn.engine.plan import layer_plan
from exactsnn.gradcheck import gradcheck, parameter_groups
from exactsnn.neurons import registry
from exactsnn.neurons.spec import ModelSpec
from exactsnn.optim import A_MIN, TAU_MIN, Adam, adam_init, adam_step

pytestmark = pytest.mark.usefixtures("serial_kernels")  # tiny batches: one thread (conftest.py)


# ----------------------------------------------------------------------------------------------- registry
def test_every_exported_model_has_one_spec():
    for cls in (es.LIF, es.LI, es.AdLIF):
        spec = registry.spec_of(cls())
        assert spec.cls is cls and spec.name == cls.__name__
        assert registry.spec_by_key(spec.key) is spec
        assert spec.spiking == cls.spiking
    assert NEURON_MODELS == {"LIF": es.LIF, "LI": es.LI, "AdLIF": es.AdLIF}
    assert registry.model_keys() == ("lif", "adlif")
    assert registry.model_keys(spiking_only=False) == ("lif", "li", "adlif")


def test_spec_contents():
    lif, adlif, li = (registry.MODELS[n] for n in ("LIF", "AdLIF", "LI"))
    assert lif.learnable == ("tau_mem", "tau_syn") and lif.family == "lif"
    assert adlif.learnable == ("tau_mem", "tau_syn", "tau_w", "a", "b") and adlif.family == "linear"
    assert li.learnable == () and li.family == "readout"
    assert registry.learnable_parameter("tau_w") == registry.LearnableParameter(TAU_MIN, math.inf, True)
    assert registry.learnable_parameter("a") == registry.LearnableParameter(A_MIN, math.inf, False)
    assert registry.learnable_parameter("b") == registry.LearnableParameter(-math.inf, math.inf, False)
    with pytest.raises(ValueError, match="not a learnable"):
        registry.learnable_parameter("v_th")
    with pytest.raises(ValueError, match="family"):
        ModelSpec("X", "x", object, "heap")
    with pytest.raises(ValueError, match="not in learnable"):
        ModelSpec("X", "x", object, "lif", learnable=("a",), time_constants=("tau",))


def test_make_neuron_and_errors():
    n = registry.make_neuron("adlif", {"a": 2.0, "tau_syn": None, "hidden": [3], "b": 0.1})
    assert n == es.AdLIF(a=2.0, b=0.1)
    assert registry.make_neuron("lif", {"a": 2.0, "tau_mem": 0.01}) == es.LIF(tau_mem=0.01)
    with pytest.raises(ValueError, match="neuron must be one of lif, adlif"):
        registry.spec_by_key("izhikevich")
    with pytest.raises(ValueError, match="Layer.neuron must be a neuron model"):
        es.Layer(3, neuron="lif")
    with pytest.raises(ValueError, match="not a learnable parameter of LIF"):
        es.Layer(3, es.LIF(), learn=("a",))


# ----------------------------------------------------------------------------------------------- plan
@pytest.mark.parametrize(
    ("layer", "family", "schedule", "ff", "rec"),
    [
        (es.Layer(3), "lif", "shared_clock", False, False),
        (es.Layer(3, recurrent=True, delays=True), "lif", "arrivals", True, True),
        (es.Layer(3, recurrent=True, delays="feedforward"), "lif", "arrivals", True, False),
        (es.Layer(3, delays=True), "lif", "arrivals", True, False),
        (es.Layer(3, es.LIF(), learn=("tau_syn",)), "lif", "shared_clock", False, False),
        (es.Layer(3, es.LIF(), recurrent=True, learn=("tau_mem", "tau_syn")), "lif", "shared_clock", False, False),
        (es.Layer(3, es.LIF(), delays=True, learn=("tau_syn",)), "linear", "arrivals", True, False),
        (es.Layer(3, es.LIF(), recurrent=True, delays="feedforward", learn=("tau_mem",)), "linear", "arrivals", True,
         False),
        (es.Layer(3, es.AdLIF(), recurrent=True, delays="feedforward"), "linear", "arrivals", True, False),
        (es.Layer(3, es.LI()), "readout", "none", False, False),
    ],
)
def test_layer_plan(layer, family, schedule, ff, rec):
    plan = layer_plan(layer)
    assert (plan.family, plan.schedule, plan.ff_delays, plan.rec_delays) == (family, schedule, ff, rec)
    assert layer.linear_kernel == (family == "linear")


def test_delays_values():
    assert es.Layer(3, delays=np.bool_(True)).delays is True
    with pytest.raises(ValueError, match="Layer.delays must be True, False or 'feedforward'"):
        es.Layer(3, delays="both")


# ----------------------------------------------------------------------------------------------- feedforward delays
def _case(neuron: object, seed: int = 3) -> tuple[es.Network, es.Params, es.SpikeBatch, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    n_in, t_max = 5, 0.08
    net = es.Network(n_in, [
        es.Layer(4, neuron, recurrent=True, delays="feedforward", delay_max=15e-3),
        es.Layer(3, es.LI()),
    ])
    params = net.init(seed=seed)
    gain = 1.0 + getattr(neuron, "a", 0.0)  # adaptation damps the response by 1 + a
    params.weights[0][:] = rng.normal(1.2 * gain, 1.0, params.weights[0].shape)
    r = rng.normal(0.0, 0.5, params.recurrent_weights[0].shape)
    np.fill_diagonal(r, 0.0)
    params.recurrent_weights[0][:] = r
    samples = [(np.sort(rng.uniform(0, t_max, 15)), rng.integers(0, n_in, 15)) for _ in range(2)]
    return net, params, es.SpikeBatch.from_lists(samples, n_in), rng.integers(0, 3, 2), t_max


@pytest.mark.parametrize("neuron", [es.LIF(t_ref=1e-3), es.AdLIF(a=4.0, b=0.3, t_ref=1e-3)])
def test_feedforward_delays_equal_full_delays_with_zero_recurrent_delays(neuron):
    net, params, batch, labels, t_max = _case(neuron)
    assert np.all(params.recurrent_delays[0] == 0) and params.delays[0].max() > 0
    full = es.Network(net.n_inputs, [es.Layer(4, neuron, recurrent=True, delays=True), net.layers[1]])
    rec = es.simulate(net, params, batch, t_max)
    assert rec.spikes[0].n_events > 4  # the case is not silent
    rec_full = es.simulate(full, params, batch, t_max)
    np.testing.assert_array_equal(rec.spikes[0].times, rec_full.spikes[0].times)
    loss, g = es.loss_and_grad(net, params, batch, labels, t_max=t_max)
    loss_full, g_full = es.loss_and_grad(full, params, batch, labels, t_max=t_max)
    assert loss == loss_full
    # LIF: a different reverse replay (exactsnn/engine/cpu/ff_delays_backward.py); summation order differs
    for name in ("weights", "delays", "recurrent_weights"):
        a, b = getattr(g, name)[0], getattr(g_full, name)[0]
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12 * np.abs(b).max(), err_msg=name)
    assert np.any(g.delays[0] != 0) and np.any(g_full.recurrent_delays[0] != 0)
    assert np.all(g.recurrent_delays[0] == 0)  # not parameters of a feedforward-delay layer


def test_feedforward_delays_refuse_recurrent_delays_and_are_not_trained():
    net, params, batch, labels, t_max = _case(es.LIF())
    bad = params.copy()
    bad.recurrent_delays[0][0, 1] = 1e-3
    with pytest.raises(ValueError, match="recurrent_delays\\[0\\] is non-zero"):
        es.simulate(net, bad, batch, t_max)
    state = adam_init(net, params)
    assert "delays[0]" in state.m and "recurrent_delays[0]" not in state.m
    _, g = es.loss_and_grad(net, params, batch, labels, t_max=t_max)
    new, _ = adam_step(Adam(lr=1e-2), state, net, params, g)
    assert np.all(new.recurrent_delays[0] == 0) and np.any(new.delays[0] != params.delays[0])
    assert "recurrent_delays[0]" not in parameter_groups(net, params)
    assert "delays[0]" in parameter_groups(net, params)
    assert network_from_dict(network_to_dict(net)) == net


@pytest.mark.parametrize("neuron", [es.LIF(t_ref=1e-3), es.AdLIF(a=4.0, b=0.3)])
def test_feedforward_delay_gradients_match_finite_differences(neuron):
    net, params, batch, labels, t_max = _case(neuron, seed=5)
    report = gradcheck(net, params, batch, labels, es.losses.SumExp(), t_max, n_checks=8, seed=1)
    names = {g.name for g in report.groups}
    assert "delays[0]" in names and "recurrent_delays[0]" not in names
    assert report.ok(1e-6), report.format_table(1e-6)


# ----------------------------------------------------------------------------------------------- config and CLI
def test_config_and_cli_spell_feedforward_delays(tmp_path):
    from typer.testing import CliRunner

    from exactsnn.config import Config, apply_overrides
    from exactsnn.train import build_network
    from exactsnn_cli.main import app

    cfg = apply_overrides(Config(), ["network.delays=feedforward", "network.recurrent=true", "network.neuron=adlif"])
    net = build_network(cfg, n_inputs=5, n_classes=3)
    assert net.layers[0].delays == "feedforward" and net.layers[0].neuron == es.AdLIF()
    assert net.layers[0].describe() == "600 AdLIF (recurrent, feedforward delays)"
    with pytest.raises(ValueError, match='network.delays must be true, false or "feedforward"'):
        apply_overrides(Config(), ["network.delays=both"])
    runner = CliRunner()
    for flags, shown in ((["--delays", "feedforward"], 'delays = "feedforward"'), (["--delays"], "delays = true"),
                         (["--delays", "all"], "delays = true"), (["--no-delays"], "delays = false")):
        res = runner.invoke(app, ["train", *flags, "--print-config"])
        assert res.exit_code == 0 and shown in res.output, (flags, res.output)
    res = runner.invoke(app, ["simulate", "--demo", "2", "--hidden", "8", "--delays", "feedforward", "--t-max", "0.05",
                              "--out", str(tmp_path / "o.h5")])
    assert res.exit_code == 0, res.output
    assert "8 LIF (recurrent, feedforward delays)" in res.output


@pytest.mark.parametrize("recipe", ["shd_recipe.toml", "adlif_recipe.toml"])
def test_validation_recipes_load_and_build(recipe):
    from pathlib import Path

    from exactsnn.config import load_config
    from exactsnn.train import build_network

    cfg = load_config(Path(__file__).resolve().parents[1] / "validation" / recipe)
    net = build_network(cfg, n_inputs=700, n_classes=20)
    hidden = net.layers[0]
    assert hidden.size == 256 and hidden.recurrent and net.layers[-1].neuron == es.LI()
    if recipe == "adlif_recipe.toml":
        assert isinstance(hidden.neuron, es.AdLIF) and hidden.neuron.t_ref == 1e-3
        assert hidden.delays == "feedforward" and hidden.delay_max == 0.1
        assert set(hidden.learn) == {"tau_mem", "tau_w", "a", "b"}
        assert layer_plan(hidden).ff_delays and not layer_plan(hidden).rec_delays
