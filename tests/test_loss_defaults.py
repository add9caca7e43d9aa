"""Every loss ``exactsnn train --loss`` offers learns from the defaults on the default task (Yin-Yang).

A loss whose outputs are silent at initialisation has no gradient: first_spike used to start with an LI
readout's zero-mean weights on a spiking output layer, so no output fired and the loss never moved.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from exactsnn.config import LOSS_NAMES, Config, apply_overrides
from exactsnn.data.datasets import Split
from exactsnn.data.tasks import Task, load_task
from exactsnn.grad import loss_and_grad
from exactsnn.regularizers import SpikeCount
from exactsnn.train import build_loss, build_network, build_regularizer, train


@pytest.fixture(scope="module")
def yinyang():
    return load_task(Config().data)


def _cut(s: Split, n: int) -> Split:
    idx = np.arange(n)
    return replace(s, batch=s.batch.select(idx), labels=s.labels[idx])


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_every_loss_has_a_gradient_at_init(yinyang, name):
    """Default network and init (the run's seed draw), 32 training samples: every parameter group that
    feeds the outputs gets a non-zero gradient, and a spiking output fires in every sample."""
    cfg = apply_overrides(Config(), [f'loss.name="{name}"'])
    net = build_network(cfg, yinyang.n_inputs, yinyang.n_classes)
    params = net.init(int(np.random.default_rng((cfg.train.seed, 0)).integers(2**63)))
    idx = np.arange(32)
    value, grads, out = loss_and_grad(net, params, yinyang.train.batch.select(idx), yinyang.train.labels[idx],
                                      build_loss(cfg), yinyang.t_max, outputs=True)
    assert np.isfinite(value)
    for l, g in enumerate(grads.weights):
        assert np.isfinite(g).all() and np.abs(g).max() > 0, f"{name}: weights[{l}] has no gradient"
    if net.layers[-1].neuron.spiking:
        counts = out.counts[-1]  # (B, n_out) output spikes
        assert (counts.sum(axis=1) > 0).all(), f"{name}: some samples have silent outputs"
        assert (counts > 0).mean() > 0.9, f"{name}: {(counts == 0).mean():.0%} of the outputs are silent"


@pytest.mark.parametrize("override", [[], ["network.tau_mem=0.01"]], ids=["defaults", "tau_mem=10ms"])
def test_first_spike_outputs_fire_at_init(yinyang, override):
    """The case of the report (``--loss first_spike --set network.tau_mem=0.01``) and the defaults."""
    cfg = apply_overrides(Config(), ['loss.name="first_spike"', *override])
    net = build_network(cfg, yinyang.n_inputs, yinyang.n_classes)
    assert net.layers[-1].weight_mean == pytest.approx(12.0 / 600)
    params = net.init(0)
    idx = np.arange(64)
    _, grads, out = loss_and_grad(net, params, yinyang.train.batch.select(idx), yinyang.train.labels[idx],
                                  build_loss(cfg), yinyang.t_max, outputs=True)
    assert (out.counts[-1] > 0).all()
    assert np.abs(grads.weights[0]).max() > 0 and np.abs(grads.weights[1]).max() > 0


def test_explicit_readout_mean_is_kept(yinyang):
    for name in ("first_spike", "max"):
        cfg = apply_overrides(Config(), [f'loss.name="{name}"', "network.readout_mean=0.25"])
        assert build_network(cfg, 5, 3).layers[-1].weight_mean == 0.25
    assert build_network(Config(), 5, 3).layers[-1].weight_mean == 0.0  # LI readout: zero mean as before
    with pytest.raises(ValueError, match="readout_mean"):
        apply_overrides(Config(), ["network.readout_mean=nan"])


def test_silent_outputs_are_reported(yinyang, tmp_path):
    """Outputs forced silent (zero readout weights): the run says why nothing is learnt."""
    task = Task("yinyang", yinyang.n_inputs, yinyang.n_classes, yinyang.t_max, _cut(yinyang.train, 32),
                _cut(yinyang.valid, 16), None, yinyang.class_names)
    cfg = apply_overrides(Config(), ['loss.name="first_spike"', "network.readout_mean=0.0",
                                     "network.readout_scale=0.0", "network.hidden=[32]", "train.epochs=1"])
    lines: list[str] = []
    train(cfg, tmp_path / "run", task=task, log=lines.append)
    warnings = [s for s in lines if "no output unit fired" in s]
    assert len(warnings) == 1 and "readout_mean" in warnings[0]


def test_first_spike_trains_from_the_defaults(yinyang, tmp_path):
    """Two short epochs of the default first_spike run (600 hidden, lr 2e-3 cosine) on 480 Yin-Yang
    samples: the loss falls and the validation accuracy leaves chance (1/3) well behind."""
    task = Task("yinyang", yinyang.n_inputs, yinyang.n_classes, yinyang.t_max, _cut(yinyang.train, 480),
                _cut(yinyang.valid, 300), None, yinyang.class_names)
    cfg = apply_overrides(Config(), ['loss.name="first_spike"', "train.epochs=2"])
    lines: list[str] = []
    res = train(cfg, tmp_path / "run", task=task, log=lines.append)
    assert not any("no output unit fired" in s for s in lines)
    first, last = res.metrics[0], res.metrics[-1]
    assert last["train_loss"] < 0.8 * first["train_loss"]
    assert last["val_acc"] > 0.6


def test_cli_reports_silent_outputs_without_breaking_the_progress_bar(tmp_path):
    """The warning comes with the epoch line (a log line in mid-epoch used to break the CLI's bar)."""
    from typer.testing import CliRunner

    from exactsnn_cli.main import app

    res = CliRunner().invoke(app, ["train", "--hidden", "8", "--epochs", "1", "--loss", "first_spike",
                                   "--set", "train.batch_size=256", "--set", "network.readout_mean=0",
                                   "--set", "network.readout_scale=0", "--out", str(tmp_path / "run")])
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    assert res.output.count("no output unit fired in epoch 1, batch 1") == 1
    assert "test accuracy" in res.output


def test_first_spike_gets_an_output_spike_floor():
    """first_spike's outputs drift into silence without a floor (measured: all silent after ~250 batches
    of the full Yin-Yang set with readout_mean=0.05, or 75 with tau_mem=0.01); the floor is a
    hypo-activity penalty on the output layer only, and only while the hidden-layer penalty is off."""
    reg = build_regularizer(apply_overrides(Config(), ['loss.name="first_spike"']))
    assert isinstance(reg, SpikeCount)
    assert (reg.layers, reg.nu_lo, reg.s_lo, reg.s_hi) == ((1,), 2.0, 1.0, 0.0)
    two = build_regularizer(apply_overrides(Config(), ['loss.name="first_spike"', "network.hidden=[16, 8]"]))
    assert two.layers == (2,)
    off = apply_overrides(Config(), ['loss.name="first_spike"', "regularizer.output_s_lo=0"])
    assert build_regularizer(off) is None
    for name in ("max", "sum", "sum_exp", "sum_gaussian"):
        assert build_regularizer(apply_overrides(Config(), [f'loss.name="{name}"'])) is None
    hidden = build_regularizer(apply_overrides(Config(), ['loss.name="first_spike"', "regularizer.s_hi=1e-3"]))
    assert hidden.s_hi == 1e-3 and hidden.layers is None


@pytest.mark.slow
@pytest.mark.parametrize("override", [[], ["network.tau_mem=0.01"], ["network.readout_mean=0.05"]],
                         ids=["defaults", "tau_mem=10ms", "readout_mean=0.05"])
def test_first_spike_outputs_stay_alive(yinyang, tmp_path, override):
    """Three epochs on the full Yin-Yang set (about 3 min each on 2 cores): no batch with silent outputs,
    validation accuracy above 90 % (without the floor the last two collapsed to chance)."""
    cfg = apply_overrides(Config(), ['loss.name="first_spike"', "train.epochs=3", *override])
    task = Task("yinyang", yinyang.n_inputs, yinyang.n_classes, yinyang.t_max, yinyang.train,
                _cut(yinyang.valid, 500), None, yinyang.class_names)
    lines: list[str] = []
    res = train(cfg, tmp_path / "run", task=task, log=lines.append)
    assert not any("no output unit fired" in s for s in lines)
    assert res.metrics[-1]["val_acc"] > 0.9
