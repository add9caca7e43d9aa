"""Every CPU kernel run with two threads equals the same kernel run with one thread and run sample by sample.

The batch kernels (``exactsnn.engine.cpu``: dense, queue, linear forwards; dense/queue and linear reverse
replays; the voltage traces) run samples in parallel (``prange`` loops, or Python threads calling GIL-free
per-sample kernels: ``exactsnn.engine.cpu.threads``); the reverse replays accumulate gradients in per-thread
buffers (a leading axis of size ``numba.get_num_threads()``, one entry per thread).
Most other tests pin one thread (the gradient tests do so on purpose), so the two-thread paths, the adLIF
per-thread gradient buffers in particular, are exercised here, for every layer kind: LIF feedforward,
recurrent, with delays (feedforward and recurrent), learning tau_mem/tau_syn (per-neuron values on the shared-clock
LIF kernels, with and without refractoriness, and on the linear kernels with delays), adLIF feedforward / recurrent /
with delays / learning tau_mem, tau_w, a, b, refractory windows, delay-free adLIF on the shared-clock reverse replay
(two layers, learned b), a spiking first-spike output and the spike-count regulariser.

The batch has more samples than threads, of uneven sizes, some empty. What must hold, and why:

* spike trains (times, units, and the currents recorded for the backward pass) and voltage traces are
  bitwise identical with 1 thread, 2 threads and batches of one sample: the forward kernels are per-sample
  algorithms (a sample never sees another sample's data or the thread count);
* the loss equals the mean of the per-sample losses to 1e-12 relative (numpy sums in a different order);
* gradients (and dL/d input time) with 2 threads equal those with 1 thread and the mean of the per-sample
  gradients to ``GRAD_TOL`` times the group's largest entry: only the order of the per-thread sums
  differs, so the difference is a few ulps of the summed magnitudes; an entry that is small because
  terms cancel is compared on the scale of its group.

A kernel that shared scratch between samples or threads, wrote another thread's buffer, or dropped a
sample at a chunk boundary breaks one of these. ``test_backward_kernels_fill_both_thread_buffers``
checks that the two-thread runs really split the work: each reverse-replay kernel's per-thread buffers
both receive gradient.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field

import numba
import numpy as np
import pytest

import exactsnn as es

grad_module = importlib.import_module("exactsnn.grad")

GRAD_TOL = 1e-12  # relative to the group's largest |gradient| (summation order only)
LOSS_TOL = 1e-12  # relative (mean of per-sample losses vs the batch's)
T_MAX = 0.08
N_IN = 6

ENOUGH_THREADS = numba.config.NUMBA_NUM_THREADS >= 2
needs_two = pytest.mark.skipif(
    not ENOUGH_THREADS,
    reason=f"numba.config.NUMBA_NUM_THREADS = {numba.config.NUMBA_NUM_THREADS} < 2 (one-core machine): "
    "test_rerun_with_two_numba_threads runs this file again with NUMBA_NUM_THREADS=2",
)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` Numba threads (and check that the setting took effect)."""
    old = numba.get_num_threads()
    numba.set_num_threads(n)
    try:
        assert numba.get_num_threads() == n
        yield
    finally:
        numba.set_num_threads(old)


# ----------------------------------------------------------------------------- cases
@dataclass(frozen=True)
class Kind:
    name: str
    hidden: tuple[es.Layer, ...]
    spiking_output: bool = False
    regularizer: object = None
    loss: object = None
    extra: dict = field(default_factory=dict)


def _lif(**kw: float) -> es.LIF:
    return es.LIF(tau_mem=20e-3, tau_syn=5e-3, **kw)


def _adlif(**kw: float) -> es.AdLIF:
    return es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=kw.pop("a", 4.0), b=kw.pop("b", 0.3), **kw)


ADLIF_LEARN = ("tau_mem", "tau_w", "a", "b")
KINDS = [
    Kind("lif_ff", (es.Layer(5, _lif()), es.Layer(4, _lif()))),
    Kind("lif_rec", (es.Layer(5, _lif(), recurrent=True),)),
    Kind("lif_delays_ff", (es.Layer(5, _lif(), delays=True, delay_max=8e-3),)),
    Kind("lif_delays_rec", (es.Layer(5, _lif(), recurrent=True, delays=True, delay_max=8e-3),)),
    Kind("lif_learn_taus", (es.Layer(5, _lif(), recurrent=True, learn=("tau_mem", "tau_syn")),)),
    Kind("lif_learn_taus_delays", (es.Layer(4, _lif(), delays=True, learn=("tau_mem", "tau_syn")),)),
    # per-neuron time constants on the shared-clock LIF kernels: refractory windows, v_reset != 0, a layer above
    # another (dL/d input time through per-neuron taus), one learning tau_syn only
    Kind("lif_learn_taus_refractory", (es.Layer(5, _lif(t_ref=2e-3, v_reset=0.1), learn=("tau_mem", "tau_syn")),
                                       es.Layer(4, _lif(t_ref=1e-3), recurrent=True, learn=("tau_syn",)))),
    Kind("lif_refractory", (es.Layer(5, _lif(t_ref=2e-3, v_reset=0.1), recurrent=True),
                            es.Layer(4, _lif(t_ref=1e-3), delays=True))),
    Kind("adlif_ff", (es.Layer(5, _adlif()),)),
    Kind("adlif_rec", (es.Layer(5, _adlif(a=40.0), recurrent=True),)),
    Kind("adlif_delays", (es.Layer(5, _adlif(), recurrent=True, delays=True, delay_max=8e-3),)),
    Kind("adlif_learn", (es.Layer(5, _adlif(), recurrent=True, learn=ADLIF_LEARN),
                         es.Layer(3, _adlif(a=0.5), delays=True, learn=ADLIF_LEARN))),
    Kind("adlif_refractory", (es.Layer(5, _adlif(t_ref=2e-3, v_reset=-0.2), recurrent=True, learn=("b",)),)),
    # delay-free adLIF on the shared-clock replay (linear_dense_backward): a layer above another (dL/d input time),
    # a refractory window, v_reset != 0, learned b
    Kind("adlif_shared_clock", (es.Layer(5, _adlif(t_ref=1e-3, v_reset=0.1)),
                                es.Layer(4, _adlif(a=0.5), recurrent=True, learn=("b",)))),
    # delay-free adLIF learning neuron parameters (the parameter adjoints of linear_dense_backward): refractory
    # windows, v_reset != 0, a layer above another, every parameter including tau_syn
    Kind("adlif_learn_shared_clock", (
        es.Layer(5, _adlif(t_ref=1e-3, v_reset=0.1), learn=("tau_mem", "tau_w", "tau_syn", "a", "b")),
        es.Layer(4, _adlif(a=0.5, t_ref=1e-3), recurrent=True, learn=ADLIF_LEARN))),
    Kind("first_spike", (es.Layer(5, _lif(), recurrent=True),), spiking_output=True, loss=es.losses.FirstSpike()),
    Kind("first_spike_adlif_delays", (es.Layer(5, _adlif(), delays=True),), spiking_output=True,
         loss=es.losses.FirstSpike()),
    Kind("regularizer", (es.Layer(5, _lif(), recurrent=True), es.Layer(4, _adlif(), delays=True)),
         regularizer=es.regularizers.SpikeCount(nu_lo=1.0, nu_hi=2.0, s_lo=1e-2, s_hi=1e-2)),
]

def _ff_only_delays() -> bool:
    """Whether this engine knows Layer(delays="feedforward") (learned feedforward delays, zero-delay recurrence)."""
    try:
        es.Layer(2, delays="feedforward")
    except (TypeError, ValueError):
        return False
    return True


if _ff_only_delays():
    KINDS += [
        Kind("lif_ffdelays_rec", (es.Layer(5, _lif(t_ref=1e-3), recurrent=True, delays="feedforward",
                                           delay_max=8e-3),)),
        Kind("adlif_ffdelays_rec_learn", (es.Layer(5, _adlif(), recurrent=True, delays="feedforward", delay_max=8e-3,
                                                   learn=ADLIF_LEARN),)),
    ]
# uneven sample sizes, two empty samples, more samples than threads
SAMPLE_SIZES = (0, 14, 3, 30, 0, 1, 22, 9)


def build(kind: Kind, seed: int = 3):
    """Network, parameters (every hidden layer active at a few spikes per neuron), batch, labels."""
    rng = np.random.default_rng(seed)
    layers = list(kind.hidden)
    n_out = 3
    if kind.spiking_output:
        last = layers[-1]
        layers.append(es.Layer(n_out, last.neuron, delays=last.delays, delay_max=last.delay_max))
    else:
        layers.append(es.Layer(n_out, es.LI()))
    net = es.Network(N_IN, layers)
    params = net.init(seed=seed)
    spiking = [ly for ly in layers if ly.neuron.spiking]
    for l, layer in enumerate(spiking):
        gain = np.sqrt(1.0 + getattr(layer.neuron, "a", 0.0))
        mu = (6.0 if l < len(kind.hidden) else 12.0) / net.fan_in(l) * gain
        params.weights[l][:] = rng.normal(mu, mu, params.weights[l].shape)
        for name, arr in params.neuron[l].items():
            if name != "b":
                arr *= rng.uniform(0.8, 1.25, arr.shape)
    if not kind.spiking_output:
        params.weights[-1][:] = rng.normal(0.0, 1.0, params.weights[-1].shape)
    samples = []
    for i, k in enumerate(SAMPLE_SIZES):
        times = rng.uniform(0.0, T_MAX, k)
        if i % 3 == 1:
            times = np.round(times / 4e-3) * 4e-3  # coinciding inputs (SHD's float16 times)
        units = rng.integers(0, N_IN, k)
        order = np.lexsort((units, times))
        samples.append((times[order], units[order]))
    batch = es.SpikeBatch.from_lists(samples, n_units=N_IN)
    labels = rng.integers(0, n_out, len(SAMPLE_SIZES))
    return net, params, batch, labels


def run(kind: Kind, net, params, batch, labels):
    """simulate + loss_and_grad (with input gradient and outputs) + voltage traces of every layer."""
    rec = es.simulate(net, params, batch, T_MAX)
    value, grads, dt_in, outs = es.loss_and_grad(
        net, params, batch, labels, loss=kind.loss, t_max=T_MAX, regularizer=kind.regularizer,
        input_grad=True, outputs=True,
    )
    tq = np.linspace(0.0, T_MAX, 23)
    volts = [rec.voltage(l, tq) for l in range(len(net.layers))]
    return rec, value, grads, dt_in, outs, volts


def assert_grads_close(g: es.Params, ref: es.Params, what: str) -> None:
    gg, rr = g.groups(), ref.groups()
    assert gg.keys() == rr.keys()
    for name in rr:
        scale = float(np.max(np.abs(rr[name]), initial=0.0))
        err = float(np.max(np.abs(gg[name] - rr[name]), initial=0.0))
        assert err <= GRAD_TOL * scale, f"{what}: {name} differs by {err:.3g} (group max {scale:.3g})"


def assert_same_spikes(a: es.SpikeBatch, b: es.SpikeBatch, what: str) -> None:
    assert np.array_equal(a.offsets, b.offsets), f"{what}: spike counts per sample differ"
    assert np.array_equal(a.units, b.units), f"{what}: spiking units differ"
    assert np.array_equal(a.times, b.times), f"{what}: spike times differ (max {np.max(np.abs(a.times - b.times))})"


# ----------------------------------------------------------------------------- tests
def test_two_threads_available():
    """The machine gives Numba >= 2 threads, and a prange loop really runs on two of them."""
    if not ENOUGH_THREADS:
        pytest.skip(needs_two.kwargs["reason"])
    from numba import get_thread_id, njit, prange

    @njit(parallel=True)
    def who(n: int) -> np.ndarray:
        out = np.empty(n, np.int64)
        for i in prange(n):
            # enough work per iteration that one thread cannot drain the whole range alone
            acc = 0.0
            for k in range(50_000):
                acc += np.sin(k * 1e-3 + i)
            out[i] = get_thread_id() + (0 if acc < 1e300 else 1)
        return out

    with threads(2):
        ids = who(8)
    assert set(ids.tolist()) == {0, 1}, ids


@needs_two
@pytest.mark.parametrize("kind", KINDS, ids=[k.name for k in KINDS])
def test_threads_and_per_sample_agree(kind: Kind):
    net, params, batch, labels = build(kind)
    with threads(1):
        rec1, v1, g1, dt1, o1, volt1 = run(kind, net, params, batch, labels)
    with threads(2):
        rec2, v2, g2, dt2, o2, volt2 = run(kind, net, params, batch, labels)
    spiking = [l for l, ly in enumerate(net.layers) if ly.neuron.spiking]
    # the test is not vacuous: every spiking layer fires in several samples
    for l in spiking:
        assert np.count_nonzero(rec1.spikes[l].counts()) >= 3, f"layer {l} nearly silent"
    # forward: bitwise identical
    for l in spiking:
        assert_same_spikes(rec2.spikes[l], rec1.spikes[l], f"layer {l}, 2 vs 1 threads")
        assert np.array_equal(rec2.spike_current[l], rec1.spike_current[l], equal_nan=True)
        assert np.array_equal(rec2.refractory_current[l], rec1.refractory_current[l], equal_nan=True)
    for l in range(len(net.layers)):
        assert np.array_equal(volt2[l], volt1[l]), f"voltage trace of layer {l}, 2 vs 1 threads"
    assert np.array_equal(o2.scores, o1.scores)
    # backward: the same up to summation order
    assert v2 == pytest.approx(v1, rel=LOSS_TOL, abs=0.0)
    assert_grads_close(g2, g1, "2 vs 1 threads")
    scale = float(np.max(np.abs(dt1), initial=0.0))
    assert np.max(np.abs(dt2 - dt1), initial=0.0) <= GRAD_TOL * scale
    assert scale > 0.0

    # batches of one sample (two threads: the single-sample path of every kernel)
    B = len(batch)
    values, parts, dts = [], [], []
    with threads(2):
        for b in range(B):
            sub = batch.select([b])
            rec_b, v_b, g_b, dt_b, o_b, volt_b = run(kind, net, params, sub, labels[b:b + 1])
            for l in spiking:
                assert_same_spikes(rec_b.spikes[l], rec1.spikes[l].select([b]), f"layer {l}, sample {b} alone")
                lo, hi = rec1.spikes[l].offsets[b], rec1.spikes[l].offsets[b + 1]
                assert np.array_equal(rec_b.spike_current[l], rec1.spike_current[l][lo:hi], equal_nan=True)
                assert np.array_equal(rec_b.refractory_current[l], rec1.refractory_current[l][lo:hi], equal_nan=True)
            for l in range(len(net.layers)):
                assert np.array_equal(volt_b[l][0], volt1[l][b]), f"voltage of layer {l}, sample {b} alone"
            # scores come from numpy (a matrix product blocked by batch size): equal to rounding
            assert np.allclose(o_b.scores[0], o1.scores[b], rtol=LOSS_TOL, atol=LOSS_TOL * np.abs(o1.scores).max())
            values.append(v_b)
            parts.append(g_b)
            dts.append(dt_b)
    assert np.mean(values) == pytest.approx(v1, rel=LOSS_TOL, abs=0.0)
    def mean_of(f: str) -> list:
        return [None if getattr(parts[0], f)[l] is None else sum(getattr(p, f)[l] for p in parts) / B
                for l in range(len(net.layers))]

    mean = es.Params(
        mean_of("weights"), mean_of("delays"), mean_of("recurrent_weights"), mean_of("recurrent_delays"),
        [{k: sum(p.neuron[l][k] for p in parts) / B for k in parts[0].neuron[l]} for l in range(len(net.layers))],
    )
    assert_grads_close(g2, mean, "2 threads vs mean of per-sample gradients")
    # a per-sample run's dL/dt is that of the sample's own loss; the batch mean divides it by B
    dt_mean = np.concatenate(dts) / B
    assert np.max(np.abs(dt2 - dt_mean), initial=0.0) <= GRAD_TOL * scale


def _parallel_kernels() -> list[tuple[object, str, object]]:
    """(module, name, driver) of every batch driver bound to a name in an exactsnn module: ``parallel=True``
    Numba kernels and the drivers that run a per-sample kernel on Python threads (``exactsnn.engine.cpu.threads``)."""
    from numba.core.registry import CPUDispatcher

    found = []
    for mod_name, mod in list(sys.modules.items()):
        if mod is None or not (mod_name == "exactsnn" or mod_name.startswith("exactsnn.")):
            continue
        for name, obj in list(vars(mod).items()):
            if isinstance(obj, CPUDispatcher) and obj.targetoptions.get("parallel"):
                found.append((mod, name, obj))
            elif getattr(obj, "threaded_driver", False):
                found.append((mod, name, obj))
    return found


@needs_two
@pytest.mark.parametrize("kind_name", [k.name for k in KINDS if k.name in (
    "lif_rec", "lif_delays_ff", "lif_delays_rec", "adlif_learn", "regularizer", "lif_ffdelays_rec", "lif_learn_taus",
    "lif_learn_taus_refractory", "adlif_shared_clock", "adlif_learn_shared_clock", "adlif_ffdelays_rec_learn")])
def test_kernels_run_with_two_threads_and_fill_both_thread_buffers(kind_name: str, monkeypatch: pytest.MonkeyPatch):
    """Spy on every parallel kernel called by simulate / loss_and_grad / Recording.voltage: each runs with two
    Numba threads in effect, and each reverse replay gets a gradient buffer per thread (leading axis 2) and both
    threads add into theirs, i.e. the samples really were split between the threads."""
    kind = next(k for k in KINDS if k.name == kind_name)
    net, params, batch, labels = build(kind)
    calls: list[tuple[str, int, list[list[bool]]]] = []

    def spy(name: str, kernel: object):
        def wrapper(*args):
            out = kernel(*args)
            # per-thread buffers: float arrays with a leading axis of one entry per thread
            bufs = [a for a in args if isinstance(a, np.ndarray) and a.ndim == 3 and a.dtype == np.float64
                    and a.shape[0] == numba.get_num_threads()]
            written = [[bool(np.any(b[t] != 0.0)) for b in bufs] for t in range(numba.get_num_threads())]
            calls.append((name, numba.get_num_threads(), written if bufs else []))
            return out
        return wrapper

    kernels = _parallel_kernels()
    assert kernels, "no parallel kernels found in exactsnn's modules"
    for mod, name, kernel in kernels:
        monkeypatch.setattr(mod, name, spy(name, kernel))
    with threads(2):
        rec = es.simulate(net, params, batch, T_MAX)
        for l in range(len(net.layers)):
            rec.voltage(l, np.linspace(0.0, T_MAX, 5))
        es.loss_and_grad(net, params, batch, labels, t_max=T_MAX, regularizer=kind.regularizer)
    names = {c[0] for c in calls}
    assert len(names) >= 3, f"expected forward, trace and backward kernels, saw {sorted(names)}"
    assert all(c[1] == 2 for c in calls)
    replays = [c for c in calls if c[2]]
    assert replays, f"no kernel with per-thread gradient buffers among {sorted(names)}"
    for name, _, written in replays:
        # each thread wrote into at least one of its buffers (the weight buffer; others may stay zero)
        assert all(any(w) for w in written), f"{name}: per-thread buffers written {written}"


def test_rerun_with_two_numba_threads():
    """On a one-core machine Numba defaults to one thread: run this file again with NUMBA_NUM_THREADS=2."""
    if ENOUGH_THREADS:
        pytest.skip("NUMBA_NUM_THREADS >= 2 here: the tests above ran with two threads")
    env = dict(os.environ, NUMBA_NUM_THREADS="2")
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", __file__,
         "-k", "not test_rerun_with_two_numba_threads"],
        env=env, capture_output=True, text=True, timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
