"""Training configuration: TOML round trip, overrides, and one-line errors."""

import pytest

from exactsnn.config import Config, apply_overrides, config_from_dict, config_to_dict, load_config, to_toml
from exactsnn.train import build_loss, build_network, build_regularizer


def test_defaults_round_trip_through_toml(tmp_path):
    cfg = apply_overrides(Config(), [
        "network.hidden=[32, 16]", "loss.name=\"sum_gaussian\"", "loss.mu=0.5", "loss.sigma=0.1",
        "data.duration=0.5", "train.delay_lr=1e-5", "data.data_dir='C:\\\\data \"x\"'", "regularizer.s_hi=1e-3",
    ])
    path = tmp_path / "c.toml"
    path.write_text(to_toml(cfg))
    back = load_config(path)
    assert back == cfg
    assert back.network.hidden == (32, 16)
    assert back.loss.options == {"mu": 0.5, "sigma": 0.1}
    assert back.data.data_dir == 'C:\\\\data "x"'  # a TOML literal string keeps both backslashes
    assert config_from_dict(config_to_dict(cfg)) == cfg


def test_overrides_parse_toml_values_and_bare_words():
    cfg = apply_overrides(Config(), ["train.epochs=3", "data.dataset=shd", "network.recurrent=true", "train.lr=1"])
    assert cfg.train.epochs == 3 and cfg.data.dataset == "shd" and cfg.network.recurrent is True
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)


@pytest.mark.parametrize(
    "override, match",
    [
        ("train.lrr=1", "unknown option train.lrr"),
        ("nosuch.x=1", "unknown configuration section"),
        ("train.epochs=1.5", "train.epochs: expected an integer"),
        ("train.epochs=0", "train.epochs must be >= 1"),
        ("network.recurrent=1", "expected true or false"),
        ("network.hidden=[0]", "network.hidden"),
        ("data.dataset=mnist", "data.dataset must be one of"),
        ("loss.name=l2", "loss.name must be one of"),
        ("augment.blend=2", "augment.blend"),
        ("epochs=3", "section.key=value"),
        ("data.duration=-1", "data.duration"),
        ("train.lr=0", "train.lr must be a finite number > 0"),
        ("train.lr=-1e-3", "train.lr must be a finite number > 0"),
        ("train.lr=nan", "train.lr must be a finite number > 0"),
        ("train.lr=inf", "train.lr must be a finite number > 0"),
        ("train.delay_lr=-1", "train.delay_lr must be a finite number >= 0"),
        ("train.beta2=1", "train.beta2 must be in"),
        ("network.tau_mem=0", "network.tau_mem must be a finite number > 0"),
        ("network.tau_syn=nan", "network.tau_syn must be a finite number > 0"),
        ("network.t_ref=-1e-3", "network.t_ref must be a finite number >= 0"),
        ("network.v_th=inf", "network.v_th must be a finite number"),
    ],
)
def test_bad_overrides(override, match):
    with pytest.raises(ValueError, match=match):
        apply_overrides(Config(), [override])


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="no such configuration file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nepochs = 'many'\n")
    with pytest.raises(ValueError, match="bad.toml: train.epochs"):
        load_config(bad)


def test_building_blocks_follow_the_config():
    cfg = apply_overrides(Config(), ["network.hidden=[7]", "network.recurrent=true", "network.t_ref=0.002",
                                     "loss.name=\"sum_exp\"", "regularizer.s_hi=0.1", "regularizer.nu_hi=3"])
    net = build_network(cfg, 5, 3)
    assert [layer.size for layer in net.layers] == [7, 3]
    assert net.layers[0].recurrent and net.layers[0].neuron.t_ref == 0.002
    assert not net.layers[1].neuron.spiking
    assert type(build_loss(cfg)).__name__ == "SumExp"
    reg = build_regularizer(cfg)
    assert reg.s_hi == 0.1 and reg.nu_hi == 3
    assert build_regularizer(Config()) is None
    fs = apply_overrides(Config(), ["loss.name=\"first_spike\"", "loss.tau0=1e-3"])
    assert build_network(fs, 5, 3).layers[-1].neuron.spiking
    assert build_loss(fs).tau0 == 1e-3
    with pytest.raises(ValueError, match="do not fit loss"):
        build_loss(apply_overrides(Config(), ["loss.bogus=1"]))
