"""Checkpoints: exact round trip of network and parameters, clear errors for bad files."""

from __future__ import annotations

import json
import os

import h5py
import numpy as np
import pytest

import exactsnn as es
from exactsnn.checkpoint import (
    CHECKPOINT_FORMAT,
    load_checkpoint,
    network_from_dict,
    network_to_dict,
    save_checkpoint,
)


def make_net():
    return es.Network(
        n_inputs=15,
        layers=[
            es.Layer(
                10,
                es.LIF(tau_mem=15e-3, tau_syn=6e-3, v_th=1.1, v_reset=-0.2, t_ref=2e-3),
                recurrent=True,
                delays=True,
                weight_mean=0.2,
                weight_std=0.3,
                recurrent_std=0.1,
                delay_max=5e-3,
            ),
            es.Layer(7, es.LIF(), weight_mean=0.4),
            es.Layer(4, es.LI(tau_mem=30e-3, tau_syn=1e-3)),
        ],
    )


def assert_params_equal(a, b):
    assert len(a) == len(b)
    for name in ("weights", "delays", "recurrent_weights", "recurrent_delays"):
        for x, y in zip(getattr(a, name), getattr(b, name), strict=True):
            if x is None:
                assert y is None
            else:
                assert x.dtype == y.dtype == np.float64
                np.testing.assert_array_equal(x, y)


def test_network_dict_roundtrip():
    net = make_net()
    d = network_to_dict(net)
    assert json.loads(json.dumps(d)) == d
    assert d["layers"][0]["neuron"]["model"] == "LIF"
    assert d["layers"][2]["neuron"] == {"model": "LI", "tau_mem": 30e-3, "tau_syn": 1e-3}
    assert network_from_dict(json.loads(json.dumps(d))) == net


def test_network_from_dict_defaults_and_errors():
    net = network_from_dict({"n_inputs": 3, "layers": [{"size": 2}]})
    assert net == es.Network(3, [es.Layer(2)])
    with pytest.raises(ValueError, match="unknown neuron model 'adLIF'"):
        network_from_dict({"n_inputs": 3, "layers": [{"size": 2, "neuron": {"model": "adLIF"}}]})
    with pytest.raises(ValueError, match="layer 0: unknown field"):
        network_from_dict({"n_inputs": 3, "layers": [{"size": 2, "colour": "red"}]})
    with pytest.raises(ValueError, match="unknown LIF field"):
        network_from_dict({"n_inputs": 3, "layers": [{"size": 2, "neuron": {"model": "LIF", "tau": 1}}]})
    with pytest.raises(ValueError, match="layer 0: .*tau_mem"):
        network_from_dict({"n_inputs": 3, "layers": [{"size": 2, "neuron": {"model": "LIF", "tau_mem": -1}}]})
    with pytest.raises(ValueError, match="needs 'n_inputs' and 'layers'"):
        network_from_dict({"layers": []})
    with pytest.raises(ValueError, match="n_inputs"):
        network_from_dict({"n_inputs": 0, "layers": [{"size": 2}]})


def test_checkpoint_roundtrip_is_bit_exact(tmp_path):
    net = make_net()
    params = net.init(seed=7)
    path = tmp_path / "ckpt.h5"
    extra = {"epoch": np.int64(3), "loss": np.float64(0.25), "history": np.array([1.0, 0.5]), "note": "hi"}
    save_checkpoint(path, net, params, extra=extra)
    net2, params2, extra2 = load_checkpoint(path)
    assert net2 == net
    assert_params_equal(params, params2)
    assert extra2 == {"epoch": 3, "loss": 0.25, "history": [1.0, 0.5], "note": "hi"}
    with h5py.File(path) as f:
        assert f.attrs["format"] == CHECKPOINT_FORMAT
        assert "params/recurrent_weights/0" in f
        assert "params/recurrent_weights/1" not in f  # None entries are absent
        assert "params/recurrent_delays/2" not in f
    assert not [p for p in os.listdir(tmp_path) if ".tmp" in p]


def test_loaded_checkpoint_simulates_identically(tmp_path):
    from exactsnn.data.poisson import poisson_batch

    net = make_net()
    params = net.init(seed=11)
    save_checkpoint(tmp_path / "c.h5", net, params)
    net2, params2, extra = load_checkpoint(tmp_path / "c.h5")
    assert extra == {}
    batch = poisson_batch(3, 15, rate=50.0, t_max=0.2, seed=5)
    a = es.simulate(net, params, batch, t_max=0.2)
    b = es.simulate(net2, params2, batch, t_max=0.2)
    for sa, sb in zip(a.spikes, b.spikes, strict=True):
        np.testing.assert_array_equal(sa.times, sb.times)
        np.testing.assert_array_equal(sa.units, sb.units)


def test_save_rejects_bad_input(tmp_path):
    net = make_net()
    params = net.init(0)
    with pytest.raises(ValueError, match="extra"):
        save_checkpoint(tmp_path / "x.h5", net, params, extra={"f": object()})
    assert not (tmp_path / "x.h5").exists()
    other = es.Network(15, [es.Layer(3)]).init(0)
    with pytest.raises(ValueError, match="layers"):
        save_checkpoint(tmp_path / "x.h5", net, other)
    assert not os.listdir(tmp_path)


def test_save_overwrites(tmp_path):
    net = make_net()
    save_checkpoint(tmp_path / "c.h5", net, net.init(0))
    save_checkpoint(tmp_path / "c.h5", net, net.init(1), extra={"epoch": 2})
    _, p, extra = load_checkpoint(tmp_path / "c.h5")
    assert_params_equal(p, net.init(1))
    assert extra == {"epoch": 2}


# ----------------------------------------------------------------------------- bad files
def _bad(path, match):
    with pytest.raises(ValueError, match=match) as exc:
        load_checkpoint(path)
    assert "\n" not in str(exc.value)
    assert str(path) in str(exc.value)


@pytest.fixture
def good(tmp_path):
    net = make_net()
    path = tmp_path / "good.h5"
    save_checkpoint(path, net, net.init(0))
    return path


def test_missing_and_not_hdf5(tmp_path):
    _bad(tmp_path / "none.h5", "no such file")
    (tmp_path / "t.h5").write_text("hello")
    _bad(tmp_path / "t.h5", "not an HDF5 file")


def test_foreign_hdf5(tmp_path):
    path = tmp_path / "shd.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=[1, 2])
    _bad(path, "not an exactsnn checkpoint")


def test_wrong_version(good):
    with h5py.File(good, "a") as f:
        f.attrs["format"] = "exactsnn-checkpoint-99"
    _bad(good, "unsupported checkpoint format 'exactsnn-checkpoint-99'")


def test_bad_network_json(good):
    with h5py.File(good, "a") as f:
        f.attrs["network"] = "{not json"
    _bad(good, "'network' attribute is not valid JSON")


def test_missing_params(good):
    with h5py.File(good, "a") as f:
        del f["params/weights/1"]
    _bad(good, "missing dataset 'params/weights/1'")
    with h5py.File(good, "a") as f:
        del f["params"]
    _bad(good, "missing group 'params'")


def test_wrong_shape(good):
    with h5py.File(good, "a") as f:
        del f["params/weights/0"]
        f.create_dataset("params/weights/0", data=np.zeros((3, 3)))
    _bad(good, r"weights\[0\] has shape \(3, 3\)")


def test_missing_recurrent_weights_for_recurrent_layer(good):
    with h5py.File(good, "a") as f:
        del f["params/recurrent_weights/0"]
    _bad(good, "recurrent_weights.*missing")


def test_extra_layers_in_params(good):
    with h5py.File(good, "a") as f:
        f.create_dataset("params/weights/5", data=np.zeros((1, 1)))
    _bad(good, "beyond the network's 3 layers")


def test_unknown_groups_are_ignored(good):
    """Later versions add groups (optimiser state, RNG state); the reader must not trip on them."""
    with h5py.File(good, "a") as f:
        f.create_group("optimizer").create_dataset("step", data=3)
    net, params, _ = load_checkpoint(good)
    assert net == make_net()
