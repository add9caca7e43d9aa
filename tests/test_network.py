"""Layer / Network / Params: validation (one-line ValueErrors) and seeded initialisation."""

from __future__ import annotations

import math

import numpy as np
import pytest

import exactsnn as es


def _raises_one_line(fn, *args, match: str | None = None, **kwargs) -> str:
    with pytest.raises(ValueError) as err:
        fn(*args, **kwargs)
    msg = str(err.value)
    assert "\n" not in msg, msg
    assert msg.strip(), "empty error message"
    if match is not None:
        assert match.lower() in msg.lower(), msg
    return msg


def _net(recurrent: bool = True, delays: bool = True) -> es.Network:
    return es.Network(
        n_inputs=7,
        layers=[
            es.Layer(5, es.LIF(), recurrent=recurrent, delays=delays),
            es.Layer(4, es.LIF(), recurrent=False, delays=False),
            es.Layer(3, es.LI()),
        ],
    )


def _batch(n_units: int = 7) -> es.SpikeBatch:
    return es.SpikeBatch.from_lists([([0.01, 0.02], [0, n_units - 1])], n_units=n_units)


# ----------------------------------------------------------------------------- neuron models
@pytest.mark.parametrize("name", ["tau_mem", "tau_syn"])
@pytest.mark.parametrize("value", [0.0, -1e-3, math.nan, math.inf, -math.inf])
def test_lif_time_constants_positive_finite(name, value):
    _raises_one_line(es.LIF, **{name: value}, match=name)


@pytest.mark.parametrize("name", ["tau_mem", "tau_syn"])
@pytest.mark.parametrize("value", [0.0, -1e-3, math.nan, math.inf])
def test_li_time_constants_positive_finite(name, value):
    _raises_one_line(es.LI, **{name: value}, match=name)


@pytest.mark.parametrize(("v_th", "v_reset"), [(1.0, 1.0), (1.0, 1.5), (0.0, 0.0), (-1.0, 0.0)])
def test_lif_reset_below_threshold(v_th, v_reset):
    _raises_one_line(es.LIF, v_th=v_th, v_reset=v_reset)


@pytest.mark.parametrize("value", [-1e-3, -1e-300, math.nan, math.inf])
def test_lif_refractory_non_negative_finite(value):
    _raises_one_line(es.LIF, t_ref=value, match="t_ref")


@pytest.mark.parametrize("name", ["v_th", "v_reset"])
def test_lif_voltages_finite(name):
    _raises_one_line(es.LIF, **{name: math.nan})


def test_lif_defaults_and_accepted_values():
    n = es.LIF()
    assert (n.tau_mem, n.tau_syn, n.v_th, n.v_reset, n.t_ref) == (20e-3, 5e-3, 1.0, 0.0, 0.0)
    m = es.LIF(tau_mem=5e-3, tau_syn=5e-3, v_th=0.5, v_reset=-0.2, t_ref=2e-3)
    assert m.tau_mem == m.tau_syn
    li = es.LI()
    assert (li.tau_mem, li.tau_syn) == (20e-3, 5e-3)


# ----------------------------------------------------------------------------- layers and networks
@pytest.mark.parametrize("size", [0, -3, True, 2.0, "4", None])
def test_layer_size_positive_int(size):
    _raises_one_line(es.Layer, size, match="size")


def test_layer_neuron_must_be_a_model():
    _raises_one_line(es.Layer, 3, "LIF")


def test_li_layer_cannot_be_recurrent():
    _raises_one_line(es.Layer, 3, es.LI(), recurrent=True)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"delay_max": -1e-3},
        {"delay_max": math.nan},
        {"weight_mean": math.inf},
        {"weight_std": -0.1},
        {"weight_std": math.nan},
        {"recurrent_std": -0.1},
    ],
)
def test_layer_hyper_parameters(kwargs):
    _raises_one_line(es.Layer, 3, es.LIF(), **kwargs)


@pytest.mark.parametrize("n_inputs", [0, -1, True, 1.5])
def test_network_n_inputs_at_least_one(n_inputs):
    _raises_one_line(es.Network, n_inputs=n_inputs, layers=[es.Layer(2)], match="n_inputs")


def test_network_needs_layers():
    _raises_one_line(es.Network, n_inputs=3, layers=[])
    _raises_one_line(es.Network, n_inputs=3, layers=[es.Layer(2), "layer"])


@pytest.mark.parametrize("pos", [0, 1])
def test_li_readout_must_be_last(pos):
    layers = [es.Layer(3), es.Layer(3), es.Layer(2)]
    layers[pos] = es.Layer(3, es.LI())
    msg = _raises_one_line(es.Network, n_inputs=4, layers=layers)
    assert f"layer {pos}" in msg


def test_network_accepts_li_last_and_tuple_of_layers():
    net = es.Network(n_inputs=1, layers=(es.Layer(2), es.Layer(1, es.LI())))
    assert len(net.layers) == 2
    assert net.fan_in(0) == 1 and net.fan_in(1) == 2


# ----------------------------------------------------------------------------- init
def test_init_shapes_and_dtypes():
    net = _net()
    p = net.init(seed=0)
    assert len(p) == 3
    expected = [(5, 7), (4, 5), (3, 4)]
    for l, shape in enumerate(expected):
        assert p.weights[l].shape == shape and p.weights[l].dtype == np.float64
        assert p.delays[l].shape == shape and p.delays[l].dtype == np.float64
    assert p.recurrent_weights[0].shape == (5, 5)
    assert p.recurrent_delays[0].shape == (5, 5)
    assert p.recurrent_weights[1] is None and p.recurrent_delays[1] is None
    assert p.recurrent_weights[2] is None and p.recurrent_delays[2] is None
    net.check_params(p)


def _all_bytes(p: es.Params) -> list[bytes | None]:
    out = []
    for name in ("weights", "delays", "recurrent_weights", "recurrent_delays"):
        out += [None if a is None else a.tobytes() for a in getattr(p, name)]
    return out


def test_init_same_seed_same_bits():
    net = _net()
    assert _all_bytes(net.init(seed=123)) == _all_bytes(net.init(seed=123))
    # an equal but separately built network gives the same bits too
    assert _all_bytes(_net().init(seed=123)) == _all_bytes(net.init(seed=123))


def test_init_default_seed_is_deterministic():
    net = _net()
    assert _all_bytes(net.init()) == _all_bytes(net.init())


def test_init_different_seed_different_values():
    net = _net()
    a, b = net.init(seed=1), net.init(seed=2)
    for name in ("weights", "delays"):
        for x, y in zip(getattr(a, name)[:1], getattr(b, name)[:1], strict=True):
            assert not np.array_equal(x, y)
    for x, y in zip(a.weights, b.weights, strict=True):
        assert not np.array_equal(x, y)
    assert not np.array_equal(a.recurrent_weights[0], b.recurrent_weights[0])
    assert not np.array_equal(a.recurrent_delays[0], b.recurrent_delays[0])


def test_init_recurrent_zero_diagonal():
    net = es.Network(n_inputs=3, layers=[es.Layer(50, recurrent=True), es.Layer(20, recurrent=True, delays=True)])
    for seed in range(3):
        p = net.init(seed=seed)
        for l in range(2):
            r = p.recurrent_weights[l]
            np.testing.assert_array_equal(np.diag(r), 0.0)
            off = r[~np.eye(r.shape[0], dtype=bool)]
            assert np.all(off != 0.0)


def test_init_delays():
    net = es.Network(
        n_inputs=40,
        layers=[
            es.Layer(30, recurrent=True, delays=False),
            es.Layer(30, recurrent=True, delays=True, delay_max=3e-3),
            es.Layer(5, delays=True),
        ],
    )
    p = net.init(seed=4)
    np.testing.assert_array_equal(p.delays[0], 0.0)
    np.testing.assert_array_equal(p.recurrent_delays[0], 0.0)
    for d, dmax in ((p.delays[1], 3e-3), (p.recurrent_delays[1], 3e-3), (p.delays[2], 10e-3)):
        assert np.all(d >= 0.0) and np.all(d <= dmax)
        assert d.max() > 0.8 * dmax  # actually spread over the range
        assert np.unique(d).size == d.size


def test_init_weight_statistics():
    net = es.Network(
        n_inputs=400,
        layers=[es.Layer(300), es.Layer(200, weight_mean=0.5, weight_std=0.1, recurrent=True, recurrent_std=0.2)],
    )
    p = net.init(seed=0)
    w0 = p.weights[0]
    # default of a spiking layer (Layer.weight_init): mean drive at v_th for 10 Hz input, spread 20 % of v_th
    mu, sd = 1.0 / (400 * 10.0 * 5e-3), 0.2 * 1.0 / (math.sqrt(400) * 10.0 * 5e-3)
    assert net.layers[0].weight_init(400) == pytest.approx((mu, sd), rel=1e-12)
    assert abs(w0.mean() - mu) < 5 * sd / math.sqrt(w0.size)
    assert abs(w0.std() - sd) < 0.02 * sd
    w1 = p.weights[1]
    assert abs(w1.mean() - 0.5) < 0.01
    assert abs(w1.std() - 0.1) < 0.005
    r = p.recurrent_weights[1]
    off = r[~np.eye(200, dtype=bool)]
    assert abs(off.std() - 0.2) < 0.01


def test_init_defaults_scale_with_the_model_and_keep_the_readout():
    lif, ad = es.Layer(8, es.LIF(tau_syn=10e-3, v_th=2.0)), es.Layer(8, es.AdLIF(a=0.5))
    # mean drive n_pre r tau_syn mu / (1 + a) = v_th at r = 10 Hz; drive spread 0.2 v_th across neurons
    assert lif.weight_init(100) == pytest.approx((2.0 / (100 * 10 * 10e-3), 0.2 * 2.0 / (10 * 10 * 10e-3)))
    assert ad.weight_init(100) == pytest.approx((1.5 / (100 * 10 * 5e-3), 0.2 * 1.5 / (10 * 10 * 5e-3)))
    assert es.Layer(8, weight_mean=0.3).weight_init(100) == (0.3, 0.1)  # std 1/sqrt(n_pre), as it always was
    assert es.Layer(8, weight_std=0.5).weight_init(100) == pytest.approx((1 / (100 * 10 * 5e-3), 0.5))
    assert es.Layer(8, es.LI()).weight_init(100) == (0.0, 0.1)  # readout: N(0, 1/n_pre) as before


def test_train_config_sets_its_own_init():
    """``exactsnn train`` passes every init value from its config (Yin-Yang's tuned defaults), so the
    Layer defaults never reach it."""
    from exactsnn.config import Config
    from exactsnn.train import build_network

    cfg = Config()
    net = build_network(cfg, 5, 3)
    nc = cfg.network
    hidden, readout = net.layers[0], net.layers[-1]
    assert (hidden.weight_mean, hidden.weight_std) == (nc.weight_mean, nc.weight_scale / math.sqrt(5))
    assert hidden.recurrent_std == nc.recurrent_scale / math.sqrt(hidden.size)
    assert nc.readout_mean is None  # resolved per loss: 0 for the LI readout, 12 v_th/n_pre for first_spike
    assert (readout.weight_mean, readout.weight_std) == (0.0, nc.readout_scale / math.sqrt(hidden.size))


@pytest.mark.parametrize("neuron", [es.LIF(tau_mem=20e-3, tau_syn=5e-3, v_th=1.0), es.AdLIF()], ids=["lif", "adlif"])
def test_default_init_fires_on_shd_like_input(neuron):
    """A 700-256 recurrent network with the default init fires at a few to tens of Hz on SHD-like input
    (700 Poisson channels at 10 Hz for 1 s; measured ~19-20 Hz); the old N(0, 1/fan-in) was silent."""
    from exactsnn.data.poisson import poisson_batch

    net = es.Network(700, [es.Layer(256, neuron, recurrent=True), es.Layer(20, es.LI())])
    batch = poisson_batch(2, 700, rate=10.0, t_max=1.0, seed=3)
    rec = es.simulate(net, net.init(seed=0), batch, t_max=1.0)
    s = rec.spikes[0]
    hz = s.n_events / (2 * 256 * 1.0)
    assert 2.0 <= hz <= 50.0, hz
    active = np.unique(np.repeat(np.arange(2), s.counts()) * 256 + s.units).size / (2 * 256)
    assert active > 0.5, active  # the layer as a whole works, not a few runaway neurons


def test_params_copy_is_deep():
    p = _net().init(seed=0)
    q = p.copy()
    q.weights[0][0, 0] += 1.0
    q.recurrent_weights[0][0, 1] += 1.0
    assert q.weights[0][0, 0] != p.weights[0][0, 0]
    assert q.recurrent_weights[0][0, 1] != p.recurrent_weights[0][0, 1]


def test_params_does_not_alias_caller_arrays():
    w = np.ones((2, 3))
    p = es.Params(weights=[w], delays=[np.zeros((2, 3))])
    w[0, 0] = 7.0
    assert p.weights[0][0, 0] == 1.0


def test_params_defaults_no_recurrence():
    p = es.Params(weights=[np.ones((2, 3))], delays=[np.zeros((2, 3))])
    assert p.recurrent_weights == [None] and p.recurrent_delays == [None]


# ----------------------------------------------------------------------------- Params construction errors
def test_params_constructor_errors():
    w = [np.ones((2, 3))]
    _raises_one_line(es.Params, weights=w, delays=[])
    _raises_one_line(es.Params, weights=w, delays=[np.zeros((2, 3))], recurrent_weights=[None, None])
    _raises_one_line(es.Params, weights=[np.ones(3)], delays=[np.zeros(3)])
    _raises_one_line(es.Params, weights=[np.ones((1, 2, 3))], delays=[np.zeros((1, 2, 3))])


# ----------------------------------------------------------------------------- Params vs network (through simulate)
def _bad_params(kind: str) -> tuple[es.Network, es.Params, str]:
    net = _net(recurrent=True, delays=False)
    p = net.init(seed=0)
    W, D, RW, RD = (list(x) for x in (p.weights, p.delays, p.recurrent_weights, p.recurrent_delays))
    word = ""
    if kind == "nan_weight":
        W[1] = W[1].copy()
        W[1][2, 3] = np.nan
        word = "weights[1]"
    elif kind == "inf_weight":
        W[0] = W[0].copy()
        W[0][0, 0] = np.inf
        word = "weights[0]"
    elif kind == "nan_recurrent_weight":
        RW[0] = RW[0].copy()
        RW[0][1, 0] = -np.inf
        word = "recurrent_weights[0]"
    elif kind == "negative_delay":
        net = _net(recurrent=True, delays=True)
        p = net.init(seed=0)
        W, D, RW, RD = (list(x) for x in (p.weights, p.delays, p.recurrent_weights, p.recurrent_delays))
        D[0] = D[0].copy()
        D[0][1, 1] = -1e-6
        word = "delays[0]"
    elif kind == "negative_recurrent_delay":
        net = _net(recurrent=True, delays=True)
        p = net.init(seed=0)
        W, D, RW, RD = (list(x) for x in (p.weights, p.delays, p.recurrent_weights, p.recurrent_delays))
        RD[0] = RD[0].copy()
        RD[0][1, 2] = -1e-6
        word = "recurrent_delays[0]"
    elif kind == "nan_delay":
        net = _net(recurrent=True, delays=True)
        p = net.init(seed=0)
        W, D, RW, RD = (list(x) for x in (p.weights, p.delays, p.recurrent_weights, p.recurrent_delays))
        D[0] = D[0].copy()
        D[0][0, 0] = np.nan
        word = "delays[0]"
    elif kind == "wrong_shape":
        W[1] = np.ones((5, 4))  # transposed
        word = "weights[1]"
    elif kind == "wrong_delay_shape":
        D[2] = np.zeros((3, 5))
        word = "delays[2]"
    elif kind == "wrong_recurrent_shape":
        RW[0] = np.zeros((5, 4))
        word = "recurrent_weights[0]"
    elif kind == "missing_recurrent_weights":
        RW[0] = None
        word = "recurrent_weights[0]"
    elif kind == "missing_recurrent_delays":
        RD[0] = None
        word = "recurrent_delays[0]"
    elif kind == "nonzero_delays_without_delays":
        D[0] = np.full(D[0].shape, 1e-3)
        word = "delays[0]"
    elif kind == "nonzero_recurrent_delays_without_delays":
        RD[0] = np.full(RD[0].shape, 1e-3)
        word = "recurrent_delays[0]"
    elif kind == "recurrent_weights_on_feedforward_layer":
        RW[1] = np.ones((4, 4))
        RD[1] = np.zeros((4, 4))
        word = "recurrent_weights[1]"
    elif kind == "too_few_layers":
        W, D, RW, RD = W[:2], D[:2], RW[:2], RD[:2]
    else:  # pragma: no cover
        raise AssertionError(kind)
    return net, es.Params(W, D, RW, RD), word


@pytest.mark.parametrize(
    "kind",
    [
        "nan_weight",
        "inf_weight",
        "nan_recurrent_weight",
        "negative_delay",
        "negative_recurrent_delay",
        "nan_delay",
        "wrong_shape",
        "wrong_delay_shape",
        "wrong_recurrent_shape",
        "missing_recurrent_weights",
        "missing_recurrent_delays",
        "nonzero_delays_without_delays",
        "nonzero_recurrent_delays_without_delays",
        "recurrent_weights_on_feedforward_layer",
        "too_few_layers",
    ],
)
def test_bad_params_rejected(kind):
    net, params, word = _bad_params(kind)
    msg = _raises_one_line(net.check_params, params)
    assert word in msg
    msg = _raises_one_line(es.simulate, net, params, _batch(), t_max=0.1)
    assert word in msg


def test_check_params_accepts_init_and_zero_delays_on_delay_layer():
    net = _net(recurrent=True, delays=True)
    p = net.init(seed=0)
    net.check_params(p)
    q = es.Params(
        p.weights,
        [np.zeros_like(d) for d in p.delays],
        p.recurrent_weights,
        [None if d is None else np.zeros_like(d) for d in p.recurrent_delays],
    )
    net.check_params(q)


def test_params_of_wrong_type():
    net = _net()
    _raises_one_line(net.check_params, {"weights": []})
    _raises_one_line(es.simulate, net, [np.ones((5, 7))], _batch(), t_max=0.1)


@pytest.mark.parametrize("t_max", [0.0, -1.0, math.nan, math.inf, "soon", None])
def test_simulate_t_max(t_max):
    net = _net(recurrent=False, delays=False)
    _raises_one_line(es.simulate, net, net.init(seed=0), _batch(), t_max=t_max, match="t_max")


def test_simulate_input_unit_out_of_range():
    net = _net(recurrent=False, delays=False)  # 7 inputs
    batch = es.SpikeBatch.from_lists([([0.01], [0]), ([0.01, 0.02], [3, 7])])  # no n_units given
    msg = _raises_one_line(es.simulate, net, net.init(seed=0), batch, t_max=0.1)
    assert "sample 1" in msg and "7" in msg
    batch = es.SpikeBatch.from_lists([([0.01], [100])], n_units=200)
    _raises_one_line(es.simulate, net, net.init(seed=0), batch, t_max=0.1)


@pytest.mark.parametrize("device", ["cuda", "gpu", "CPU", None])
def test_simulate_device(device):
    net = _net(recurrent=False, delays=False)
    _raises_one_line(es.simulate, net, net.init(seed=0), _batch(), t_max=0.1, device=device, match="device")


def test_simulate_rejects_non_batch_and_non_network():
    net = _net(recurrent=False, delays=False)
    p = net.init(seed=0)
    _raises_one_line(es.simulate, net, p, [([0.01], [0])], t_max=0.1)
    _raises_one_line(es.simulate, "net", p, _batch(), t_max=0.1)
