"""Per-neuron LIF time constants on the shared-clock LIF kernels (a delay-free LIF layer that learns tau_mem
and/or tau_syn).

Such a layer runs on ``engine/cpu/dense.py`` (forward), ``engine/cpu/backward.py`` (reverse replay with
dL/dtau_mem and dL/dtau_syn from the augmented adjoint) and ``engine/cpu/trace.py`` (voltage). Checked here:

* the propagation factors and their tau derivatives (``lif_rate_factors``, ``lif_rate_tangents``) against
  50-digit values, across tau_mem < tau_syn, tau_mem > tau_syn, equal and nearly equal, short and long gaps;
* the per-neuron screen factor is never below h / tau_mem (the screen stays conservative);
* forward, voltage and every gradient group against the independent linear-system kernels (a = b = 0, forced
  with ``learned_lif_on_linear``) on random small networks: feedforward and recurrent, t_ref 0 and 2 ms,
  v_reset != 0, learning tau_mem, tau_syn or both, with per-neuron values far apart or nearly equal: identical
  spike counts and units, spike times within 1e-12 s, voltages within 1e-11, every gradient group within
  1e-9 of its largest entry;
* learned time constants that happen to be equal take the shared-factor path and reproduce a layer that
  learns nothing (spikes bitwise, weight gradients to 1e-12);
* hypothesis property test: EventProp (including the time-constant groups) equals central finite
  differences to 1e-6 relative to each group's largest gradient (the pattern of ``test_gradients.py``:
  ``exactsnn.gradcheck`` skips perturbations that change the spike pattern or straddle a kink).
"""

from __future__ import annotations

from dataclasses import dataclass

import mpmath as mp
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import exactsnn as es
from exactsnn.engine.plan import layer_plan, learned_lif_on_linear
from exactsnn.gradcheck import gradcheck
from exactsnn.losses import SumExp
from exactsnn.neurons.lif import lif_factors, lif_rate_factors, lif_rate_tangents

TOL = 1e-6  # finite differences (as in test_gradients.py)
GRAD_EXAMPLES = settings.default.max_examples


pytestmark = pytest.mark.usefixtures("serial_kernels")  # tiny batches: one thread (conftest.py)


# ----------------------------------------------------------------------------------------------- factors
def _reference_factors(h: float, tau_mem: float, tau_syn: float) -> list[float]:
    """(a_m, c, a_s, da_m/dtau_mem, dc/dtau_mem, dc/dtau_syn, da_s/dtau_syn) to 50 digits."""
    with mp.workdps(50):
        h, tm, ts = mp.mpf(h), mp.mpf(tau_mem), mp.mpf(tau_syn)

        def c(tm: mp.mpf, ts: mp.mpf) -> mp.mpf:
            a, b = 1 / tm, 1 / ts
            return a * mp.quad(lambda s: mp.exp(-a * (h - s) - b * s), [0, h])

        am, as_ = mp.exp(-h / tm), mp.exp(-h / ts)
        return [float(x) for x in (am, c(tm, ts), as_, h / tm**2 * am, mp.diff(lambda x: c(x, ts), tm),
                                   mp.diff(lambda x: c(tm, x), ts), h / ts**2 * as_)]


@pytest.mark.parametrize(
    ("h", "tau_mem", "tau_syn"),
    [(1e-3, 20e-3, 5e-3), (0.3, 20e-3, 5e-3), (0.3, 5e-3, 20e-3), (2e-3, 10e-3, 10e-3 * (1 + 1e-7)),
     (5e-3, 10e-3, 10e-3), (1e-2, 10e-3, 9e-3), (1e-2, 10e-3, 11e-3), (0.04, 10e-3, 12e-3), (12e-3, 10e-3, 5e-3),
     (8e-3, 10e-3, 5e-3), (0.0, 10e-3, 20e-3), (3e-3, 10e-3 * (1 + 1e-12), 10e-3)],
)
def test_factors_and_tangents_match_50_digits(h, tau_mem, tau_syn):
    ref = _reference_factors(h, tau_mem, tau_syn)
    got = lif_rate_tangents(h, 1.0 / tau_mem, 1.0 / tau_syn)
    for name, g, r in zip(("a_m", "c", "a_s", "da_m", "dc_m", "dc_s", "da_s"), got, ref, strict=True):
        assert abs(g - r) <= 1e-13 * abs(r) + 1e-300, (name, g, r)
    for g, r in zip(lif_rate_factors(h, 1.0 / tau_mem, 1.0 / tau_syn), ref[:3], strict=True):
        assert abs(g - r) <= 1e-14 * abs(r), (g, r)
    for g, r in zip(lif_factors(h, tau_mem, tau_syn), ref[:3], strict=True):
        assert abs(g - r) <= 1e-14 * abs(r), (g, r)


def test_long_gaps_do_not_overflow():
    """e^{-h/tau} underflows long before the expm1 of the rate difference could overflow: finite, >= 0."""
    for tm, ts in ((5e-3, 20e-3), (20e-3, 5e-3), (10e-3, 10e-3)):
        for h in (1.0, 10.0, 1e3):
            out = lif_rate_tangents(h, 1.0 / tm, 1.0 / ts)
            assert all(np.isfinite(out)), (tm, ts, h, out)


def test_per_neuron_screen_factor_is_conservative():
    """k * inv_m[j] (the dense kernel's per-neuron screen) is never below h / tau_mem[j]."""
    from exactsnn.engine.cpu.dense import _screen_k

    rng = np.random.default_rng(0)
    tm = rng.uniform(1e-3, 0.2, 100_000) * np.exp(rng.uniform(-3, 3, 100_000))
    h = rng.uniform(0.0, 0.1, tm.size)
    k = np.array([_screen_k(x, False, tm) for x in h[:2000]])
    assert np.all(k * (1.0 / tm[:2000]) >= h[:2000] / tm[:2000])
    k_all = h * (1.0 + 1e-15)
    assert np.all(k_all * (1.0 / tm) >= h / tm)


# ----------------------------------------------------------------------------------------------- networks
@dataclass(frozen=True)
class Case:
    """A random small network whose hidden layer(s) learn time constants; ``build(case)`` rebuilds it."""

    hidden: tuple[tuple[int, bool], ...]  # (size, recurrent) per hidden layer
    learn: tuple[str, ...]
    t_ref: float
    v_reset: float
    seed: int
    near: bool = False  # tau_syn within 1e-9..1e-3 relative of tau_mem (some neurons exactly equal)
    n_in: int = 4
    n_out: int = 3
    t_max: float = 0.08
    n_samples: int = 2


def build(case: Case) -> tuple[es.Network, es.Params, es.SpikeBatch, np.ndarray, float]:
    rng = np.random.default_rng(case.seed)
    lif = es.LIF(tau_mem=20e-3, tau_syn=5e-3, v_th=1.0, v_reset=case.v_reset, t_ref=case.t_ref)
    layers = [es.Layer(n, lif, recurrent=rec, learn=case.learn) for n, rec in case.hidden]
    layers.append(es.Layer(case.n_out, es.LI()))
    net = es.Network(case.n_in, layers)
    params = net.init(seed=int(rng.integers(1 << 31)))
    for l, (n, rec) in enumerate(case.hidden):
        learned = params.neuron[l]
        if "tau_mem" in learned:
            learned["tau_mem"][:] = 20e-3 * rng.uniform(0.4, 1.6, n)
        if "tau_syn" in learned:
            learned["tau_syn"][:] = 5e-3 * rng.uniform(0.5, 2.5, n)
        if case.near:
            tm = learned.get("tau_mem", np.full(n, 20e-3))
            learned["tau_syn" if "tau_syn" in learned else "tau_mem"][:] = (
                tm * (1.0 + rng.choice([0.0, 1e-9, 1e-6, 1e-3], n)) if "tau_syn" in learned
                else 5e-3 * (1.0 + rng.choice([0.0, 1e-9, 1e-6, 1e-3], n)))
        ts = learned.get("tau_syn", np.full(n, 5e-3))
        mu = rng.uniform(0.8, 1.8) * 5.0 / net.fan_in(l) * (5e-3 / ts.mean())
        params.weights[l][:] = rng.normal(mu, mu, params.weights[l].shape)
        if rec:
            r = rng.normal(0.0, 0.5, (n, n))
            np.fill_diagonal(r, 0.0)
            params.recurrent_weights[l][:] = r
    params.weights[-1][:] = rng.normal(0.0, 1.0, params.weights[-1].shape)
    samples = []
    for _ in range(case.n_samples):
        k = int(rng.integers(3 * case.n_in, 6 * case.n_in + 1))
        samples.append((np.sort(rng.uniform(0.0, case.t_max, k)), rng.integers(0, case.n_in, k)))
    batch = es.SpikeBatch.from_lists(samples, n_units=case.n_in)
    labels = rng.integers(0, case.n_out, case.n_samples)
    return net, params, batch, labels, case.t_max


LEARN = [("tau_mem",), ("tau_syn",), ("tau_mem", "tau_syn")]
VS_LINEAR = [
    Case(hidden, learn, t_ref, v_reset, seed, near)
    for seed, (hidden, t_ref, v_reset) in enumerate([
        (((6, False),), 0.0, 0.1), (((6, True),), 0.0, -0.2), (((5, False),), 2e-3, 0.1), (((6, True),), 2e-3, 0.1),
        (((4, True), (3, False)), 1e-3, 0.0),
    ])
    for learn in LEARN
    for near in ((False, True) if len(learn) == 2 else (False,))
]


def _case_id(c: Case) -> str:
    layers = "-".join(f"{n}{'r' if r else 'f'}" for n, r in c.hidden)
    return f"{layers}_tref{c.t_ref * 1e3:g}_{'+'.join(c.learn)}{'_near' if c.near else ''}"


@pytest.mark.parametrize("case", VS_LINEAR, ids=_case_id)
def test_matches_linear_kernels(case: Case):
    """Forward, voltage and gradients of the LIF per-neuron-tau kernels equal those of the linear kernels."""
    net, params, batch, labels, t_max = build(case)
    assert all(layer_plan(ly).family == "lif" for ly in net.layers[:-1])
    rec = es.simulate(net, params, batch, t_max)
    tq = np.linspace(0.0, t_max, 41)
    volts = [rec.voltage(l, tq) for l in range(len(case.hidden))]
    value, grads, dt_in = es.loss_and_grad(net, params, batch, labels, SumExp(), t_max, input_grad=True)
    with learned_lif_on_linear():
        assert all(layer_plan(ly).family == "linear" for ly in net.layers[:-1])
        rec_lin = es.simulate(net, params, batch, t_max)
        volts_lin = [rec_lin.voltage(l, tq) for l in range(len(case.hidden))]
        value_lin, grads_lin, dt_lin = es.loss_and_grad(net, params, batch, labels, SumExp(), t_max, input_grad=True)
    for l in range(len(case.hidden)):
        a, b = rec.spikes[l], rec_lin.spikes[l]
        assert np.array_equal(a.offsets, b.offsets), f"layer {l}: spike counts per sample differ"
        assert np.array_equal(a.units, b.units), f"layer {l}: spiking units differ"
        assert np.max(np.abs(a.times - b.times), initial=0.0) <= 1e-12
        assert np.max(np.abs(volts[l] - volts_lin[l])) <= 1e-11
    assert a.n_events >= 5, "the hidden layer is nearly silent: the case checks little"
    assert value == pytest.approx(value_lin, rel=1e-12)
    g, r = grads.groups(), grads_lin.groups()
    assert g.keys() == r.keys()
    r["input_times"], g["input_times"] = dt_lin, dt_in
    for name in r:
        scale = float(np.max(np.abs(r[name]), initial=0.0))
        err = float(np.max(np.abs(g[name] - r[name]), initial=0.0))
        assert err <= 1e-9 * scale, f"{name}: differs by {err:.3g} (group max {scale:.3g})"
    for l in range(len(case.hidden)):
        for name in case.learn:
            assert np.max(np.abs(grads.neuron[l][name])) > 0.0, f"{name}[{l}] gradient is zero"


@pytest.mark.parametrize("rec", [False, True])
def test_equal_learned_taus_reproduce_the_shared_layer(rec: bool):
    """Learned time constants that are all equal take the shared-factor path: the forward pass is bitwise that of
    a layer learning nothing, the weight gradients agree to rounding."""
    case = Case(((5, rec),), ("tau_mem", "tau_syn"), 1e-3, 0.1, 3)
    net, params, batch, labels, t_max = build(case)
    params.neuron[0]["tau_mem"][:] = 20e-3
    params.neuron[0]["tau_syn"][:] = 5e-3
    plain = es.Network(net.n_inputs, [es.Layer(5, net.layers[0].neuron, recurrent=rec), net.layers[1]])
    pp = es.Params(params.weights, params.delays, params.recurrent_weights, params.recurrent_delays, [{}, {}])
    a, b = es.simulate(net, params, batch, t_max), es.simulate(plain, pp, batch, t_max)
    assert np.array_equal(a.spikes[0].times, b.spikes[0].times) and a.spikes[0].n_events > 0
    assert np.array_equal(a.spike_current[0], b.spike_current[0], equal_nan=True)
    _, g, dt = es.loss_and_grad(net, params, batch, labels, SumExp(), t_max, input_grad=True)
    _, gp, dtp = es.loss_and_grad(plain, pp, batch, labels, SumExp(), t_max, input_grad=True)
    for name, ref in gp.groups().items():
        np.testing.assert_allclose(g.groups()[name], ref, rtol=0, atol=1e-12 * np.abs(ref).max(), err_msg=name)
    np.testing.assert_allclose(dt, dtp, rtol=0, atol=1e-12 * np.abs(dtp).max())
    assert set(g.neuron[0]) == {"tau_mem", "tau_syn"}
    # and the shared-factor gradients of the time constants equal the linear kernels'
    with learned_lif_on_linear():
        _, gl = es.loss_and_grad(net, params, batch, labels, SumExp(), t_max)
    for name in ("tau_mem", "tau_syn"):
        ref = gl.neuron[0][name]
        assert np.max(np.abs(g.neuron[0][name] - ref)) <= 1e-9 * np.abs(ref).max(), name


# ----------------------------------------------------------------------------------------------- finite differences
def _all_groups(params: es.Params) -> list[str]:
    return [name for name in params.groups() if "delays" not in name] + ["input_times"]


@st.composite
def cases(draw: st.DrawFn) -> Case:
    n_layers = draw(st.integers(1, 2))
    hidden = tuple((draw(st.integers(2, 5)), draw(st.booleans())) for _ in range(n_layers))
    return Case(hidden, draw(st.sampled_from(LEARN)), draw(st.sampled_from([0.0, 2e-3])),
                draw(st.sampled_from([0.0, 0.1, -0.2])), draw(st.integers(0, 2**31 - 1)), near=draw(st.booleans()),
                n_in=draw(st.integers(3, 5)), t_max=draw(st.floats(0.05, 0.1)))


@settings(max_examples=GRAD_EXAMPLES, deadline=None)
@given(case=cases())
def test_time_constant_gradients_match_finite_differences(case: Case):
    net, params, batch, labels, t_max = build(case)
    report = gradcheck(net, params, batch, labels, SumExp(), t_max, n_checks=2, seed=case.seed,
                       groups=_all_groups(params))
    assume(report.n_checked > 0)
    assert report.ok(TOL), f"\n{report.format_table(TOL)}\nreproduce: build({case!r})"


FIXED = [
    Case(((5, True),), ("tau_mem", "tau_syn"), 2e-3, 0.1, 11),
    Case(((4, False), (3, True)), ("tau_mem", "tau_syn"), 0.0, -0.2, 12),
    Case(((5, True),), ("tau_syn",), 0.0, 0.1, 13, near=True),
    Case(((4, False),), ("tau_mem",), 1e-3, 0.1, 14),
]


def test_fixed_cases_check_the_time_constant_groups():
    """The property test is not vacuous: on fixed cases the time-constant groups are mostly compared, and pass."""
    checked = set()
    for case in FIXED:
        net, params, batch, labels, t_max = build(case)
        report = gradcheck(net, params, batch, labels, SumExp(), t_max, n_checks=3, seed=case.seed,
                           groups=_all_groups(params))
        assert report.ok(TOL), f"\n{report.format_table(TOL)}\nreproduce: build({case!r})"
        checked |= {g.name.split("[")[0] for g in report.groups if g.n_checked}
    assert {"tau_mem", "tau_syn", "weights", "recurrent_weights", "input_times"} <= checked
