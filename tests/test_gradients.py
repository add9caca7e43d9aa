"""EventProp gradients (``es.loss_and_grad``) against central finite differences (``exactsnn.gradcheck``).

Property tests on random small networks (1-2 hidden LIF layers, with/without recurrence and delays,
t_ref in {0, 2 ms}, v_reset in {0, 0.1, -0.2}, three tau pairs incl. tau_mem = tau_syn, 3-6 inputs,
2-5 hidden, 2-3 outputs, random input spikes on [0, t_max]) for Sum, SumExp, SumGaussian, MaxVoltage,
FirstSpike (spiking output) and the SpikeCount regulariser: EventProp equals central differences to
1e-6 relative to each group's largest gradient, for every parameter group (weights, recurrent weights,
delays of delay layers incl. a delayed readout, input spike times), wherever the spike pattern is
stable. The tolerance is the issue's; the differences themselves reach ~1e-9 here (the checker
measures the loss's rounding noise and enlarges its step where it would dominate), so a genuine error
in a jump term (1e-2..1) cannot hide. A group whose gradients are so small next to the loss that
float64 differences cannot resolve 1e-6 even with the largest step is held to its noise level instead
(``GroupResult.noise_limited``); the fixed cases below have none.

Also: the checker catches deliberately wrong gradients, detects kinks and spike-pattern changes, is
deterministic, the threaded backward equals the serial one, and ``exactsnn gradcheck`` works.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numba
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import exactsnn as es
from exactsnn.data.poisson import poisson_batch
from exactsnn.gradcheck import GradcheckReport, gradcheck, parameter_groups
from exactsnn_cli.main import app

grad_module = importlib.import_module("exactsnn.grad")
losses = importlib.import_module("exactsnn.losses")

TOL = 1e-6
LOSS_NAMES = ["Sum", "SumExp", "SumGaussian", "MaxVoltage"]
TAUS = [(20e-3, 5e-3), (10e-3, 5e-3), (8e-3, 8e-3)]  # (tau_mem, tau_syn), incl. the equal-tau limit
# An example costs ~100 forward runs of a tiny network (~0.3-1 s): 5/8 of the profile's count
# (ci 25, local 37, dev 187).
GRAD_EXAMPLES = max(10, settings.default.max_examples * 5 // 8)


pytestmark = pytest.mark.usefixtures("serial_kernels")  # tiny batches: one thread (conftest.py)


# ----------------------------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Spec:
    """A random small network and batch; ``build_case(spec)`` rebuilds it bit for bit."""

    hidden: tuple[tuple[int, bool, bool], ...]  # (size, recurrent, delays) per hidden layer
    n_in: int
    n_out: int
    t_ref: float
    v_reset: float
    taus: tuple[float, float]
    t_max: float
    seed: int
    readout_delays: bool = False


def build_case(
    spec: Spec, spiking_output: bool = False
) -> tuple[es.Network, es.Params, es.SpikeBatch, np.ndarray, float]:
    """Network, parameters (scaled so that the hidden layers fire a few spikes), 2 input samples, labels.

    The output is an LI readout, or with ``spiking_output`` a feedforward LIF layer (for FirstSpike).
    """
    rng = np.random.default_rng(spec.seed)
    tau_mem, tau_syn = spec.taus
    lif = es.LIF(tau_mem=tau_mem, tau_syn=tau_syn, v_th=1.0, v_reset=spec.v_reset, t_ref=spec.t_ref)
    layers = [es.Layer(n, lif, recurrent=rec, delays=dl) for n, rec, dl in spec.hidden]
    if spiking_output:
        layers.append(es.Layer(spec.n_out, lif, delays=spec.hidden[-1][2]))
    else:
        layers.append(es.Layer(spec.n_out, es.LI(tau_mem=tau_mem, tau_syn=tau_syn), delays=spec.readout_delays))
    net = es.Network(spec.n_in, layers)
    params = net.init(seed=int(rng.integers(1 << 31)))
    samples = []
    for _ in range(2):
        k = int(rng.integers(2 * spec.n_in, 4 * spec.n_in + 1))  # 2-4 spikes per channel
        samples.append((np.sort(rng.uniform(0.0, spec.t_max, k)), rng.integers(0, spec.n_in, k)))
    batch = es.SpikeBatch.from_lists(samples, n_units=spec.n_in)
    for l, layer in enumerate(layers if spiking_output else layers[:-1]):
        # mean drive ~ (1-2) v_th for ~3 presynaptic spikes per channel in ~75 ms
        mu = rng.uniform(0.8, 1.8) * 5.0 / net.fan_in(l) * (5e-3 / tau_syn)
        params.weights[l][:] = rng.normal(mu, mu, params.weights[l].shape)
        if layer.recurrent:
            r = rng.normal(0.0, 0.5, params.recurrent_weights[l].shape)
            np.fill_diagonal(r, 0.0)
            params.recurrent_weights[l][:] = r
    if not spiking_output:
        params.weights[-1][:] = rng.normal(0.0, 1.0, params.weights[-1].shape)
    labels = rng.integers(0, spec.n_out, 2)
    return net, params, batch, labels, spec.t_max


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    n_layers = draw(st.integers(1, 2))
    hidden = tuple((draw(st.integers(2, 5)), draw(st.booleans()), draw(st.booleans())) for _ in range(n_layers))
    return Spec(
        hidden=hidden, n_in=draw(st.integers(3, 6)), n_out=draw(st.integers(2, 3)),
        t_ref=draw(st.sampled_from([0.0, 2e-3])), v_reset=draw(st.sampled_from([0.0, 0.1, -0.2])),
        taus=draw(st.sampled_from(TAUS)), t_max=draw(st.floats(0.05, 0.1)), seed=draw(st.integers(0, 2**31 - 1)),
        readout_delays=draw(st.booleans()),
    )


def make_loss(name: str) -> object:
    return getattr(losses, name)()


def explain(report: GradcheckReport, spec: Spec, loss: str) -> str:
    return f"\n{report.format_table(TOL)}\nreproduce: build_case({spec!r}), loss {loss}"


# A fixed, varied set of cases (deterministic tests).
FIXED = [
    Spec(((4, True, True),), 5, 3, 2e-3, 0.0, TAUS[0], 0.08, 11),
    Spec(((5, True, False), (3, False, True)), 4, 2, 0.0, -0.2, TAUS[1], 0.07, 12),
    Spec(((3, False, True), (4, True, True)), 6, 3, 2e-3, 0.1, TAUS[2], 0.1, 13, readout_delays=True),
    Spec(((5, False, False),), 3, 2, 0.0, 0.1, TAUS[0], 0.06, 14),
    Spec(((4, True, True), (3, True, False)), 5, 3, 2e-3, -0.2, TAUS[0], 0.09, 15),
    Spec(((2, True, True),), 4, 3, 0.0, 0.0, TAUS[2], 0.05, 16, readout_delays=True),
]


# ----------------------------------------------------------------------------------------------- properties
@pytest.mark.parametrize("loss_name", LOSS_NAMES)
@settings(max_examples=GRAD_EXAMPLES)
@given(spec=specs())
def test_eventprop_matches_finite_differences(loss_name, spec):
    net, params, batch, labels, t_max = build_case(spec)
    report = gradcheck(net, params, batch, labels, make_loss(loss_name), t_max, n_checks=2, input_times=True,
                       seed=spec.seed)
    assume(report.n_checked > 0)  # skip only cases where every perturbation changed the pattern
    assert report.ok(TOL), explain(report, spec, loss_name)


@settings(max_examples=GRAD_EXAMPLES)
@given(spec=specs())
def test_first_spike_loss_matches_finite_differences(spec):
    """Spiking output layer; tau1 of the order of t_max keeps the loss O(1) (the default 6.4 ms makes it
    ~1e4 on a 0.1 s window, and the differences' rounding noise with it)."""
    net, params, batch, labels, t_max = build_case(spec, spiking_output=True)
    loss = losses.FirstSpike(tau0=5e-3, tau1=50e-3, alpha=3e-3)
    report = gradcheck(net, params, batch, labels, loss, t_max, n_checks=2, input_times=True, seed=spec.seed)
    assume(report.n_checked > 0)
    assert report.ok(TOL), explain(report, spec, f"{loss!r}, spiking_output=True")


@settings(max_examples=GRAD_EXAMPLES)
@given(spec=specs(), per=st.sampled_from(["neuron", "population"]))
def test_spike_count_regularizer_matches_finite_differences(spec, per):
    regularizers = importlib.import_module("exactsnn.regularizers")
    # targets inside the typical activity (a few spikes per neuron), so both terms act
    reg = regularizers.SpikeCount(nu_lo=3.0, nu_hi=4.0, s_lo=0.05, s_hi=0.05, per=per)
    net, params, batch, labels, t_max = build_case(spec)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=2, input_times=True,
                       seed=spec.seed, regularizer=reg)
    assume(report.n_checked > 0)
    assert report.ok(TOL), explain(report, spec, f"SumExp + SpikeCount(per={per!r})")


def test_fixed_cases_are_mostly_checked():
    """The property tests are not vacuous: on fixed cases nearly every check is compared, in every group kind."""
    kinds: set[str] = set()
    n_checked = n_total = 0
    for i, spec in enumerate(FIXED):
        net, params, batch, labels, t_max = build_case(spec)
        rec = es.simulate(net, params, batch, t_max)
        assert all(s.n_events > 0 for s in rec.spikes[:-1]), f"case {i}: a hidden layer is silent"
        report = gradcheck(net, params, batch, labels, make_loss(LOSS_NAMES[i % 4]), t_max, n_checks=3,
                           input_times=True, seed=i)
        assert report.ok(TOL), explain(report, spec, LOSS_NAMES[i % 4])
        assert not report.noise_limited(TOL), explain(report, spec, LOSS_NAMES[i % 4])
        n_checked += report.n_checked
        n_total += len(report.entries)
        kinds |= {g.name.split("[")[0] for g in report.groups if g.n_checked}
    assert n_checked >= 0.8 * n_total, (n_checked, n_total)
    assert kinds == {"weights", "delays", "recurrent_weights", "recurrent_delays", "input_times"}


def test_threaded_backward_equals_serial():
    """The rest of this module runs on one thread; the per-thread gradient buffers are checked here."""
    spec = FIXED[4]
    net, params, _, _, t_max = build_case(spec)
    batch = poisson_batch(8, spec.n_in, rate=40.0, t_max=t_max, seed=5)
    labels = np.arange(8) % spec.n_out
    serial = es.loss_and_grad(net, params, batch, labels, loss=losses.SumExp(), t_max=t_max, input_grad=True)
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    try:
        threaded = es.loss_and_grad(net, params, batch, labels, loss=losses.SumExp(), t_max=t_max, input_grad=True)
    finally:
        numba.set_num_threads(1)
    assert threaded[0] == serial[0]
    for name, g in serial[1].groups().items():
        np.testing.assert_allclose(threaded[1].groups()[name], g, rtol=1e-12, atol=1e-15, err_msg=name)
    np.testing.assert_allclose(threaded[2], serial[2], rtol=1e-12, atol=1e-15)


def test_every_coordinate_of_one_network():
    """Coordinate mode over every entry of every group (incl. zero-diagonal recurrent weights)."""
    spec = FIXED[2]
    net, params, batch, labels, t_max = build_case(spec)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=10**6, mode="coordinate",
                       input_times=True)
    assert report.ok(TOL), explain(report, spec, "SumExp")
    assert not report.noise_limited(TOL), explain(report, spec, "SumExp")
    sizes = {g.name: g.size - g.n_boundary for g in report.groups}
    assert all(g.n_checked + g.n_skipped == sizes[g.name] for g in report.groups)
    assert report.n_checked >= 0.9 * len(report.entries)


# ----------------------------------------------------------------------------------------------- checker
def _patched(monkeypatch, transform):
    """Make ``loss_and_grad`` return gradients passed through ``transform(name, array)``."""
    real = grad_module.loss_and_grad

    def broken(*args, **kwargs):
        out = real(*args, **kwargs)
        grads = out[1].copy()
        for name, arr in grads.groups().items():
            arr[...] = transform(name, arr)
        return (out[0], grads, *out[2:])

    monkeypatch.setattr(grad_module, "loss_and_grad", broken)


@pytest.mark.parametrize("factor", [1.01, 1 + 1e-5])
def test_checker_fails_on_a_scaled_gradient_group(monkeypatch, factor):
    spec = FIXED[0]
    net, params, batch, labels, t_max = build_case(spec)
    _patched(monkeypatch, lambda name, a: a * factor if name == "delays[0]" else a)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=10**6, mode="coordinate")
    assert report.failed(TOL) == ["delays[0]"], report.format_table(TOL)
    assert report.group("delays[0]").worst_rel_error > 0.5 * (factor - 1)
    assert "FAIL" in report.format_table(TOL)
    assert not report.ok(TOL)


def test_checker_fails_when_a_jump_term_has_the_wrong_sign(monkeypatch):
    """Flip the sign of the readout's term in the hidden neurons' lambda_V jump (sum_o u_ok (lU - lJ)):
    every hidden-layer group goes wrong, the readout's own gradients stay right."""
    assert hasattr(grad_module, "_readout_backward")
    real = grad_module._readout_backward

    def flipped(*args, **kwargs):
        value, gW, gD, down, scores = real(*args, **kwargs)
        return value, gW, gD, -down, scores

    monkeypatch.setattr(grad_module, "_readout_backward", flipped)
    spec = FIXED[0]
    net, params, batch, labels, t_max = build_case(spec)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=3, input_times=True)
    failed = set(report.failed(TOL))
    assert {"weights[0]", "delays[0]", "recurrent_weights[0]", "recurrent_delays[0]", "input_times"} <= failed
    assert "weights[1]" not in failed
    assert report.group("weights[0]").worst_rel_error > 1e-2


def test_wrongly_zero_gradient_fails(monkeypatch):
    """A group whose EventProp gradient is all zero but whose loss moves fails (scale falls back on the FD)."""
    spec = FIXED[0]
    net, params, batch, labels, t_max = build_case(spec)
    _patched(monkeypatch, lambda name, a: 0.0 * a if name == "weights[0]" else a)
    report = gradcheck(net, params, batch, labels, losses.Sum(), t_max, n_checks=2, groups=["weights[0]"])
    assert report.group("weights[0]").worst_rel_error == pytest.approx(1.0)
    assert not report.ok(TOL)


def test_kink_is_detected_and_skipped():
    """An input arriving 1e-7 s after a hidden spike: moving it by +-1e-6 s crosses the spike time, where
    dL/dt jumps (lambda_V jumps at the spike). The checker skips it as a kink. (So are the inputs that
    move that spike by more than 1e-7 s: they too make it cross the arrival.) The rest are compared."""
    spec = Spec(((4, False, False),), 4, 3, 0.0, 0.0, TAUS[0], 0.08, 21)
    net, params, batch, labels, t_max = build_case(spec)
    channel = 0  # free channel 0 of its events, then give it a single event right after a spike
    samples = [(t[u != channel], u[u != channel]) for t, u in (batch.sample(b) for b in range(len(batch)))]
    params.weights[0][:, channel] = 0.0
    batch = es.SpikeBatch.from_lists(samples, n_units=net.n_inputs)
    rec = es.simulate(net, params, batch, t_max)
    t_spk, u_spk = rec.spikes[0].sample(0)
    assert t_spk.size
    t0, target = float(t_spk[0]) + 1e-7, int(u_spk[0])
    params.weights[0][target, channel] = 0.05  # small: the spike pattern survives the move
    times, units = samples[0]
    k = int(np.searchsorted(times, t0))
    samples[0] = (np.insert(times, k, t0), np.insert(units, k, channel))
    batch = es.SpikeBatch.from_lists(samples, n_units=net.n_inputs)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=10**6, mode="coordinate",
                       groups=["input_times"], adaptive=False)
    entry = next(e for e in report.entries if e.index == k)
    assert entry.status == "kink", entry
    assert abs(entry.d_h - entry.d_h4) > 1e-4 * report.group("input_times").scale  # a real kink, not noise
    assert report.n_checked >= len(report.entries) // 2
    assert report.ok(TOL), report.format_table(TOL)


def _one_parameter_loss(monkeypatch, f, df):
    """A network with one meaningful parameter, weights[0][0, 0] = w, whose 'loss' is f(w), gradient df(w)."""
    net = es.Network(1, [es.Layer(2, es.LI())])
    params = es.Params([np.array([[0.3], [0.0]])], [np.zeros((2, 1))])

    def loss_value(net, p, batch, labels, loss=None, t_max=1.0, **kw):
        return f(p.weights[0][0, 0])

    def loss_and_grad(net, p, batch, labels, loss=None, t_max=1.0, **kw):
        w = p.weights[0][0, 0]
        return f(w), es.Params([np.array([[df(w)], [0.0]])], [np.zeros((2, 1))])

    monkeypatch.setattr(grad_module, "loss_value", loss_value)
    monkeypatch.setattr(grad_module, "loss_and_grad", loss_and_grad)
    batch = es.SpikeBatch.from_lists([(np.array([0.01]), np.array([0]))], n_units=1)
    return net, params, batch, np.array([0]), 0.05


@pytest.mark.parametrize("x", [0.02, 0.1, 0.2, 0.3, 4 / 9, 0.5, 0.7, 0.95])
def test_kinks_at_any_offset_inside_the_step_are_skipped(monkeypatch, x):
    """A slope jump at w0 + x h (0 < x < 1) is never mistaken for curvature (with three step sizes only,
    x = 4/9 would pass as smooth here, with a 5e-3 error)."""
    h, w0 = 1e-6, 0.3
    kink = w0 + x * h
    f = lambda w: 2.0 * (w - w0) + (0.5 * (w - kink) if w > kink else 0.0)  # noqa: E731
    net, params, batch, labels, t_max = _one_parameter_loss(monkeypatch, f, lambda w: 2.0)
    report = gradcheck(net, params, batch, labels, None, t_max, n_checks=2, eps=h, mode="coordinate",
                       groups=["weights[0]"], adaptive=False)
    entry = next(e for e in report.entries if e.index == 0)
    assert entry.status == "kink", entry


def test_smooth_curvature_is_not_a_kink(monkeypatch):
    """Large higher derivatives (scale 1e-4 against a step of 1e-6) are resolved, not skipped."""
    f = lambda w: float(np.exp((w - 0.3) / 1e-4))  # noqa: E731
    net, params, batch, labels, t_max = _one_parameter_loss(monkeypatch, f, lambda w: f(w) / 1e-4)
    report = gradcheck(net, params, batch, labels, None, t_max, n_checks=2, eps=1e-6, mode="coordinate",
                       groups=["weights[0]"], adaptive=False)
    entry = next(e for e in report.entries if e.index == 0)
    assert entry.status == "ok" and entry.rel_error < 1e-8, entry


def test_spike_pattern_changes_are_skipped():
    spec = FIXED[3]
    net, params, batch, labels, t_max = build_case(spec)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=6, eps=1.0, adaptive=False,
                       mode="coordinate", groups=["weights[0]"])
    g = report.group("weights[0]")
    assert g.n_skipped_pattern > 0
    assert all(e.status == "pattern" for e in report.entries if e.status not in ("ok", "kink"))


def test_deterministic_and_independent_of_group_selection():
    spec = FIXED[1]
    net, params, batch, labels, t_max = build_case(spec)
    a = gradcheck(net, params, batch, labels, losses.Sum(), t_max, n_checks=2, seed=3, input_times=True)
    b = gradcheck(net, params, batch, labels, losses.Sum(), t_max, n_checks=2, seed=3, input_times=True)
    assert a == b
    c = gradcheck(net, params, batch, labels, losses.Sum(), t_max, n_checks=2, seed=3, groups=["weights[1]"])
    assert c.entries == tuple(e for e in a.entries if e.group == "weights[1]")
    d = gradcheck(net, params, batch, labels, losses.Sum(), t_max, n_checks=2, seed=4, groups=["weights[1]"])
    assert d.entries != c.entries


def test_default_groups_and_validation():
    spec = FIXED[1]  # layer 0 without delays, layer 1 with
    net, params, batch, labels, t_max = build_case(spec)
    names = parameter_groups(net, params)
    assert "delays[0]" not in names and "delays[1]" in names and "delays[2]" not in names
    assert "recurrent_weights[0]" in names and "recurrent_delays[0]" not in names
    assert parameter_groups(net, params, input_times=True)[-1] == "input_times"
    args = (net, params, batch, labels, losses.Sum(), t_max)
    with pytest.raises(ValueError, match="delays=False"):
        gradcheck(*args, groups=["delays[0]"])
    with pytest.raises(ValueError, match="unknown parameter group"):
        gradcheck(*args, groups=["weights[7]"])
    with pytest.raises(ValueError, match="mode"):
        gradcheck(*args, mode="sideways")
    with pytest.raises(ValueError, match="n_checks"):
        gradcheck(*args, n_checks=0)
    with pytest.raises(ValueError, match="eps"):
        gradcheck(*args, eps=-1e-6)
    report = gradcheck(*args, n_checks=1, groups=["weights[0]"])
    with pytest.raises(KeyError):
        report.group("weights[1]")
    table = report.format_table(tol=None)
    assert "weights[0]" in table and "worst rel err" in table and "status" not in table
    assert "ok" in report.format_table(TOL).splitlines()[3]
    assert report.format_table().splitlines()[1].split()[-1] == "status"  # by default, as the CLI prints it


# ----------------------------------------------------------------------------------------------- CLI
runner = CliRunner()
SMALL = ["gradcheck", "--hidden", "4", "--n-inputs", "6", "--n-samples", "2", "--n-checks", "2", "--t-max", "0.06"]


def test_cli_gradcheck_passes_and_prints_the_table():
    result = runner.invoke(app, SMALL + ["--t-ref", "0.002", "--loss", "sum_gaussian", "--regularizer", "spike_count"])
    assert result.exit_code == 0, result.output
    assert "silent" not in result.output
    for text in ("SumGaussian + SpikeCount", "weights[0]", "delays[0]", "recurrent_weights[0]", "recurrent_delays[0]",
                 "weights[1]", "input_times", "worst rel err", "all groups within tolerance"):
        assert text in result.output, result.output


def test_cli_gradcheck_first_spike():
    result = runner.invoke(app, SMALL + ["--hidden", "3", "--readout", "0", "--loss", "first_spike", "--no-delays",
                                         "--no-input-times", "--mode", "coordinate"])
    assert result.exit_code == 0, result.output
    assert "FirstSpike" in result.output and "weights[1]" in result.output and "delays[0]" not in result.output


def test_cli_gradcheck_fails_on_a_broken_gradient(monkeypatch):
    _patched(monkeypatch, lambda name, a: a * 1.01 if name == "recurrent_weights[0]" else a)
    result = runner.invoke(app, SMALL)
    assert result.exit_code == 1, result.output
    assert "silent" not in result.output
    assert "FAILED: recurrent_weights[0]" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["--readout", "0"], "--readout"),
        (["--loss", "first_spike"], "--readout 0"),
        (["--tol", "0"], "--tol"),
        (["--loss", "nope"], "--loss"),
        (["--mode", "diagonal"], "--mode"),
        (["--n-checks", "0"], "--n-checks"),
        (["--readout", "1"], "2 classes"),
    ],
)
def test_cli_gradcheck_bad_options(args, match):
    result = runner.invoke(app, SMALL + args)
    assert result.exit_code == 2, result.output
    assert match in result.output
    assert "Traceback" not in result.output
