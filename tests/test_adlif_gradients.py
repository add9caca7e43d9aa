"""EventProp gradients of adLIF layers and of learned neuron parameters against central finite differences.

Property tests on random small networks (1-2 hidden layers of AdLIF neurons in both eigenvalue
regimes, a in {0.5, 4, 40} (the latter two oscillatory for tau_w = 100 ms), b in {0, 0.3}; or LIF
layers that learn tau_mem and tau_syn), with and without recurrence, delays, a refractory window and
v_reset != 0, and one sample of each batch on a coarse time grid (coinciding inputs, as in SHD); every
parameter group is checked, the neuron parameters (tau_mem, tau_syn, and for
adLIF tau_w, a, b) included: relative error <= 1e-6 of the group's largest gradient wherever the
spike pattern is stable (``exactsnn.gradcheck`` skips perturbations that add or remove a spike or
cross a kink). Layers with feedforward-only delays (``delays="feedforward"``, the windowed reverse replay)
learn a drawn subset of the adLIF parameters. Also: the fixed cases are mostly checked (the tests are not
vacuous), at a = b = 0 the adLIF gradients equal the LIF kernels', and the checker catches a wrong
neuron-parameter gradient and a dropped term of the adLIF jump.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import exactsnn as es
from exactsnn.engine.plan import layer_plan
from exactsnn.gradcheck import GradcheckReport, gradcheck, parameter_groups

grad_module = importlib.import_module("exactsnn.grad")
losses = importlib.import_module("exactsnn.losses")
linear_backward = importlib.import_module("exactsnn.engine.cpu.linear_backward")

TOL = 1e-6
# ~2.5 s an example (every neuron-parameter group, finite differences of adLIF networks): 3/8 of the
# profile's count (ci 15, local 22, dev 112)
GRAD_EXAMPLES = max(10, settings.default.max_examples * 3 // 8)
ADLIF_LEARN = ("tau_mem", "tau_syn", "tau_w", "a", "b")


pytestmark = pytest.mark.usefixtures("serial_kernels")  # tiny batches: one thread (conftest.py)


@dataclass(frozen=True)
class Case:
    """A random small network; ``build(case)`` rebuilds it bit for bit."""

    hidden: tuple[tuple[int, bool, bool | str], ...]  # (size, recurrent, delays: False, True or "feedforward")
    model: str  # "adlif" or "lif" (LIF learning its time constants)
    a: float
    b: float
    t_ref: float
    v_reset: float
    n_in: int
    n_out: int
    t_max: float
    seed: int


def neuron_of(case: Case) -> es.LIF | es.AdLIF:
    if case.model == "lif":
        return es.LIF(tau_mem=20e-3, tau_syn=5e-3, v_reset=case.v_reset, t_ref=case.t_ref)
    return es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=case.a, b=case.b, v_reset=case.v_reset,
                    t_ref=case.t_ref)


def build(case: Case, spiking_output: bool = False, learn: bool | tuple[str, ...] = True):
    """Network, parameters (hidden layers fire a few spikes per neuron), 2 input samples, labels, t_max.

    ``learn``: every neuron parameter of the model (True), none (False) or the names given."""
    rng = np.random.default_rng(case.seed)
    nrn = neuron_of(case)
    if isinstance(learn, tuple):
        names = learn
    else:
        names = (ADLIF_LEARN if case.model == "adlif" else ("tau_mem", "tau_syn")) if learn else ()
    layers = [es.Layer(n, nrn, recurrent=rec, delays=dl, learn=names) for n, rec, dl in case.hidden]
    if spiking_output:
        layers.append(es.Layer(case.n_out, nrn, delays=case.hidden[-1][2], learn=names))
    else:
        layers.append(es.Layer(case.n_out, es.LI()))
    net = es.Network(case.n_in, layers)
    params = net.init(seed=int(rng.integers(1 << 31)))
    samples = []
    for i in range(2):
        k = int(rng.integers(2 * case.n_in, 4 * case.n_in + 1))
        times = rng.uniform(0.0, case.t_max, k)
        if i == 1:
            times = np.round(times / 4e-3) * 4e-3  # coinciding inputs, as SHD's float16 times make them
        units = rng.integers(0, case.n_in, k)
        order = np.lexsort((units, times))
        samples.append((times[order], units[order]))
    batch = es.SpikeBatch.from_lists(samples, n_units=case.n_in)
    gain = np.sqrt(1.0 + case.a) if case.model == "adlif" else 1.0  # adaptation damps the response
    for l, layer in enumerate(layers if spiking_output else layers[:-1]):
        mu = rng.uniform(0.8, 1.8) * 5.0 / net.fan_in(l) * gain
        params.weights[l][:] = rng.normal(mu, mu, params.weights[l].shape)
        if layer.recurrent:
            r = rng.normal(0.0, 0.5, params.recurrent_weights[l].shape)
            np.fill_diagonal(r, 0.0)
            params.recurrent_weights[l][:] = r
        for name, arr in params.neuron[l].items():
            # spread the per-neuron values so that each neuron's own gradient is tested
            arr *= rng.uniform(0.8, 1.25, arr.shape) if name != "b" else 1.0
    if not spiking_output:
        params.weights[-1][:] = rng.normal(0.0, 1.0, params.weights[-1].shape)
    return net, params, batch, rng.integers(0, case.n_out, 2), case.t_max


@st.composite
def cases(draw: st.DrawFn, model: str | None = None, delays: bool | str | None = None) -> Case:
    n_layers = draw(st.integers(1, 2))
    hidden = tuple((draw(st.integers(2, 4)), draw(st.booleans()), draw(st.booleans()) if delays is None else delays)
                   for _ in range(n_layers))
    m = model or draw(st.sampled_from(["adlif", "adlif", "lif"]))
    return Case(
        hidden=hidden, model=m,
        a=draw(st.sampled_from([0.5, 4.0, 40.0])) if m == "adlif" else 0.0,
        b=draw(st.sampled_from([0.0, 0.3])) if m == "adlif" else 0.0,
        t_ref=draw(st.sampled_from([0.0, 2e-3])), v_reset=draw(st.sampled_from([0.0, 0.1, -0.2])),
        n_in=draw(st.integers(3, 5)), n_out=draw(st.integers(2, 3)), t_max=draw(st.floats(0.05, 0.08)),
        seed=draw(st.integers(0, 2**31 - 1)),
    )


def explain(report: GradcheckReport, case: Case, what: str) -> str:
    return f"\n{report.format_table(TOL)}\nreproduce: build({case!r}), {what}"


def all_groups(params: es.Params, net: es.Network) -> list[str]:
    out = [g for g in params.groups() if not ("delays" in g and not net.layers[int(g[g.index("[") + 1])].delays)]
    return out + ["input_times"]


FIXED = [
    Case(((4, True, True),), "adlif", 40.0, 0.3, 2e-3, 0.0, 5, 3, 0.08, 21),
    Case(((4, False, False), (3, True, False)), "adlif", 4.0, 0.0, 0.0, -0.2, 4, 2, 0.07, 22),
    Case(((3, True, False),), "adlif", 0.5, 0.3, 0.0, 0.1, 4, 3, 0.06, 23),
    Case(((4, False, True),), "lif", 0.0, 0.0, 2e-3, 0.1, 5, 2, 0.08, 24),
    Case(((3, True, True), (3, False, False)), "adlif", 40.0, 0.0, 0.0, 0.0, 4, 2, 0.08, 25),
]


# ----------------------------------------------------------------------------------------------- properties
@pytest.mark.parametrize("loss_name", ["SumExp", "MaxVoltage"])
@settings(max_examples=GRAD_EXAMPLES)
@given(case=cases())
def test_adlif_eventprop_matches_finite_differences(loss_name, case):
    net, params, batch, labels, t_max = build(case)
    report = gradcheck(net, params, batch, labels, getattr(losses, loss_name)(), t_max, n_checks=2,
                       groups=all_groups(params, net), seed=case.seed)
    assume(report.n_checked > 0)
    assert report.ok(TOL), explain(report, case, loss_name)


@settings(max_examples=max(GRAD_EXAMPLES // 2, 5))
@given(case=cases(model="adlif"))
def test_adlif_first_spike_output_matches_finite_differences(case):
    net, params, batch, labels, t_max = build(case, spiking_output=True)
    loss = losses.FirstSpike(tau0=5e-3, tau1=50e-3, alpha=3e-3)
    report = gradcheck(net, params, batch, labels, loss, t_max, n_checks=2, groups=all_groups(params, net),
                       seed=case.seed)
    assume(report.n_checked > 0)
    assert report.ok(TOL), explain(report, case, "FirstSpike, spiking_output=True")


@settings(max_examples=max(GRAD_EXAMPLES // 2, 5))
@given(case=cases(model="adlif", delays=False))
def test_adlif_shared_clock_backward_matches_finite_differences(case):
    """Delay-free adLIF layers run the shared-clock reverse replay (``linear_dense_backward``;
    ``test_linear_dense_backward.py`` checks the dispatch), learned neuron parameters through its parameter
    adjoints: against finite differences, learning every parameter or only b."""
    names = ADLIF_LEARN if case.seed % 2 else ("b",)
    net, params, batch, labels, t_max = build(case, learn=names)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=2,
                       groups=all_groups(params, net), seed=case.seed)
    assume(report.n_checked > 0)
    assert report.ok(TOL), explain(report, case, f"SumExp, learning {names}")


@settings(max_examples=max(GRAD_EXAMPLES // 2, 5))
@given(case=cases(model="adlif", delays="feedforward"),
       names=st.lists(st.sampled_from(ADLIF_LEARN), min_size=1, max_size=len(ADLIF_LEARN), unique=True))
def test_adlif_feedforward_delays_match_finite_differences(case, names):
    """Layers with learned feedforward delays and zero-delay recurrence (``delays="feedforward"``) run the windowed
    reverse replay (``linear_ff_backward_batch``; ``test_linear_ff_windows.py`` checks the dispatch): weights,
    feedforward delays (U(0, 10 ms)), recurrent weights and a drawn subset of the neuron parameters."""
    names = tuple(sorted(names))
    net, params, batch, labels, t_max = build(case, learn=names)
    for layer in net.layers[:-1]:
        plan = layer_plan(layer)
        assert plan.family == "linear" and plan.ff_delays and not plan.rec_delays
    groups = parameter_groups(net, params, input_times=True)  # recurrent delays are fixed at zero: not checked
    assert not any(g.startswith("recurrent_delays") for g in groups)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=2, groups=groups,
                       seed=case.seed)
    assume(report.n_checked > 0)
    assert report.ok(TOL), explain(report, case, f"SumExp, learning {names}")


@settings(max_examples=max(GRAD_EXAMPLES // 2, 5))
@given(case=cases(model="adlif"))
def test_adlif_with_spike_count_regularizer(case):
    regularizers = importlib.import_module("exactsnn.regularizers")
    reg = regularizers.SpikeCount(nu_lo=2.0, nu_hi=3.0, s_lo=0.05, s_hi=0.05)
    net, params, batch, labels, t_max = build(case)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=2,
                       groups=all_groups(params, net), seed=case.seed, regularizer=reg)
    assume(report.n_checked > 0)
    assert report.ok(TOL), explain(report, case, "SumExp + SpikeCount")


def test_fixed_cases_are_mostly_checked():
    """Not vacuous: the fixed cases spike, and nearly every check of every group kind is compared."""
    kinds: set[str] = set()
    n_checked = n_total = 0
    for i, case in enumerate(FIXED):
        net, params, batch, labels, t_max = build(case)
        rec = es.simulate(net, params, batch, t_max)
        hidden = zip(rec.spikes[:-1], net.layers[:-1], strict=True)
        assert all(s.n_events >= 2 * layer.size for s, layer in hidden), i
        report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=3,
                           groups=all_groups(params, net), seed=i)
        assert report.ok(TOL), explain(report, case, "SumExp")
        assert not report.noise_limited(TOL), explain(report, case, "SumExp")
        n_checked += report.n_checked
        n_total += len(report.entries)
        kinds |= {g.name.split("[")[0] for g in report.groups if g.n_checked}
    assert n_checked >= 0.8 * n_total, (n_checked, n_total)
    assert kinds >= {"weights", "delays", "recurrent_weights", "recurrent_delays", "input_times",
                     "tau_mem", "tau_syn", "tau_w", "a", "b"}


def test_oscillatory_case_has_several_crossings_per_interval_and_checks_out():
    """A strongly oscillating adLIF (a = 40) driven hard: V crosses threshold again on later swings of
    one free stretch, and the gradients of every group still match."""
    case = FIXED[0]
    net, params, batch, labels, t_max = build(case)
    assert net.layers[0].neuron.oscillatory
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=10**6, mode="coordinate",
                       groups=all_groups(params, net))
    assert report.ok(TOL), explain(report, case, "SumExp, coordinate mode")
    assert report.n_checked >= 0.8 * len(report.entries)


def test_adlif_at_zero_adaptation_equals_lif_gradients():
    """a = b = 0 reduces the adLIF jump and flow to LIF's: the linear kernels give the LIF kernels' gradients."""
    case = Case(((4, True, True), (3, False, False)), "lif", 0.0, 0.0, 2e-3, 0.1, 4, 2, 0.08, 31)
    net, params, batch, labels, t_max = build(case, learn=False)
    ad = es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=0.0, b=0.0, v_reset=0.1, t_ref=2e-3)
    net_ad = es.Network(net.n_inputs, [es.Layer(ly.size, ad, recurrent=ly.recurrent, delays=ly.delays)
                                       for ly in net.layers[:-1]] + [net.layers[-1]])
    v1, g1, d1 = es.loss_and_grad(net, params, batch, labels, losses.SumExp(), t_max, input_grad=True)
    v2, g2, d2 = es.loss_and_grad(net_ad, params, batch, labels, losses.SumExp(), t_max, input_grad=True)
    assert v2 == pytest.approx(v1, rel=1e-12)
    for name, g in g1.groups().items():
        np.testing.assert_allclose(g2.groups()[name], g, rtol=1e-9, atol=1e-12 * np.abs(g).max(), err_msg=name)
    np.testing.assert_allclose(d2, d1, rtol=1e-9, atol=1e-12 * np.abs(d1).max())


# ----------------------------------------------------------------------------------------------- checker
def test_checker_catches_a_scaled_neuron_parameter_gradient(monkeypatch):
    case = FIXED[2]
    net, params, batch, labels, t_max = build(case)
    real = grad_module.loss_and_grad

    def broken(*args, **kwargs):
        out = real(*args, **kwargs)
        grads = out[1].copy()
        grads.neuron[0]["tau_w"] *= 1.01
        return (out[0], grads, *out[2:])

    monkeypatch.setattr(grad_module, "loss_and_grad", broken)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=10**6, mode="coordinate",
                       groups=all_groups(params, net))
    assert report.failed(TOL) == ["tau_w[0]"], report.format_table(TOL)


def test_checker_catches_a_backward_that_ignores_spike_triggered_adaptation(monkeypatch):
    """A reverse replay run with b = 0 (replayed w misses its jumps, the jump's b terms vanish) is caught."""
    case = FIXED[0]
    net, params, batch, labels, t_max = build(case)
    real = linear_backward.linear_backward_batch

    def no_w_term(*args):
        args = list(args)
        args[18] = args[18] * 0.0  # b per neuron
        return real(*args)

    monkeypatch.setattr(grad_module, "linear_backward_batch", no_w_term)
    report = gradcheck(net, params, batch, labels, losses.SumExp(), t_max, n_checks=3,
                       groups=all_groups(params, net))
    assert not report.ok(TOL), report.format_table(TOL)


def test_cli_gradcheck_adlif_with_learned_parameters():
    from typer.testing import CliRunner

    from exactsnn_cli.main import app

    res = CliRunner().invoke(app, ["gradcheck", "--neuron", "adlif", "--a", "4", "--b", "0.3", "--learn",
                                   "tau_mem,tau_syn,tau_w,a,b", "--no-delays", "--n-checks", "4", "--hidden", "4"])
    assert res.exit_code == 0, res.output
    assert "AdLIF" in res.output
    for group in ("tau_mem[0]", "tau_syn[0]", "tau_w[0]", "a[0]", "b[0]"):
        assert group in res.output
    assert "all groups within tolerance" in res.output
    res = CliRunner().invoke(app, ["gradcheck", "--learn", "a"])
    assert res.exit_code != 0 and "not a learnable parameter of LIF" in res.output
