"""``exactsnn gradcheck``: compare EventProp gradients with central finite differences.

Builds a small random network from options (LIF hidden layers and an LI readout, as ``simulate``
does), draws Poisson input and random labels, runs :func:`exactsnn.gradcheck.gradcheck` and prints
one row per parameter group: checks compared and skipped (spike-pattern changes and kinks), the
group's scale (largest |gradient|), the step and rounding noise of the differences, and the worst
relative error. Exit code 0 when every checked group is within ``--tol`` (a group whose differences
are noise-limited above ``--tol``, marked ``*``, within its noise), 1 otherwise or when no check at
all could be compared.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import Annotated

import numpy as np
import typer

from exactsnn_cli import options as opt
from exactsnn_cli.options import NEURON_DEFAULTS, finite, non_negative, positive, user_errors
from exactsnn_cli.simulate import _describe, network_from_options

# Small-network defaults: ~5 input spikes per channel in 0.1 s.
DEFAULT_HIDDEN = (8,)
DEFAULT_N_INPUTS = 10
DEFAULT_READOUT = 3
DEFAULT_RATE_HZ = 50.0
# Hidden feedforward weights ~ N(mu, mu^2) * scale with mu = DRIVE v_th / (fan_in rate tau_syn): the mean
# synaptic current is then DRIVE v_th when the presynaptic units fire at the input rate, so the hidden
# layers fire a few spikes per sample (a silent layer would make its check trivial).
DRIVE = 1.5


class LossName(str, Enum):
    """Loss names of the CLI and the :mod:`exactsnn.losses` classes they map to."""

    sum = "sum"
    sum_exp = "sum_exp"
    sum_gaussian = "sum_gaussian"
    max = "max"
    first_spike = "first_spike"


LOSS_CLASSES = {
    "sum": "Sum", "sum_exp": "SumExp", "sum_gaussian": "SumGaussian", "max": "MaxVoltage",
    "first_spike": "FirstSpike",
}


class RegularizerName(str, Enum):
    """Regulariser names of the CLI."""

    none = "none"
    spike_count = "spike_count"


class Mode(str, Enum):
    """Finite-difference directions: random unit directions or single coordinates."""

    random = "random"
    coordinate = "coordinate"


def make_loss(name: str) -> object:
    """The :mod:`exactsnn.losses` object (default settings) for a CLI loss name; ``ValueError`` if unavailable."""
    try:
        from exactsnn import losses
    except ImportError:
        raise ValueError("exactsnn.losses is not available in this installation") from None
    cls = getattr(losses, LOSS_CLASSES[name], None)
    if cls is None:
        raise ValueError(f"loss {name!r} ({LOSS_CLASSES[name]}) is not available in this version of exactsnn")
    return cls()


def make_regularizer(name: str) -> object | None:
    """The regulariser for a CLI name (None for ``none``); ``ValueError`` if unavailable."""
    if name == "none":
        return None
    try:
        from exactsnn.regularizers import SpikeCount
    except ImportError:
        raise ValueError("the spike_count regularizer needs exactsnn.regularizers, which this version lacks") from None
    # Targets around the small network's activity, so that both penalty terms act.
    return SpikeCount(nu_lo=2.0, nu_hi=4.0, s_lo=1e-2, s_hi=1e-2)


def gradcheck(
    hidden: opt.hidden_option(DEFAULT_HIDDEN) = None,
    recurrent: opt.recurrent_option(True) = None,
    delays: opt.delays_option(True) = None,
    neuron: opt.Neuron = None,
    tau_mem: opt.TauMem = None,
    tau_syn: opt.TauSyn = None,
    v_th: opt.VTh = None,
    v_reset: opt.VReset = None,
    t_ref: opt.TRef = None,
    tau_w: opt.TauW = None,
    a: opt.A = None,
    b: opt.B = None,
    learn: opt.Learn = None,
    readout: Annotated[
        int, typer.Option(min=0, help="Size of the LI readout (classes); 0 with --loss first_spike (the last "
                          "hidden layer is then the spiking output).")
    ] = DEFAULT_READOUT,
    n_inputs: Annotated[int, typer.Option(min=1, help="Input channels.")] = DEFAULT_N_INPUTS,
    input_rate: Annotated[float, typer.Option(help="Poisson input rate per channel, Hz (>= 0).",
                                              callback=non_negative)] = DEFAULT_RATE_HZ,
    weight_scale: Annotated[
        float, typer.Option(help=f"Scale of the hidden feedforward weights; 1 gives a mean drive of {DRIVE:g} v_th "
                            "at the input rate.", callback=finite)
    ] = 1.0,
    loss: Annotated[LossName, typer.Option(help="Loss (es.losses: Sum, SumExp, SumGaussian, MaxVoltage, "
                                           "FirstSpike) with its default settings.")] = LossName.sum_exp,
    regularizer: Annotated[
        RegularizerName, typer.Option(help="Spike-count regulariser (targets 2-4 spikes per neuron).")
    ] = RegularizerName.none,
    seed: opt.Seed = None,
    threads: opt.threads_option("1: its tiny batches run faster serially") = None,
    n_checks: Annotated[int, typer.Option(min=1, help="Checks per parameter group.")] = 20,
    n_samples: Annotated[int, typer.Option(min=1, help="Samples in the batch.")] = 4,
    t_max: Annotated[float, typer.Option(help="Simulated time per sample, s (> 0).", callback=positive)] = 0.1,
    tol: Annotated[float, typer.Option(help="Largest accepted error, relative to each group's largest "
                                       "|gradient| (> 0).", callback=positive)] = 1e-6,
    eps: Annotated[float, typer.Option(help="Finite-difference step (absolute; seconds for delays and input "
                                       "times; > 0).", callback=positive)] = 1e-6,
    mode: Annotated[Mode, typer.Option(help="random: random unit directions per group; coordinate: single "
                                       "entries.")] = Mode.random,
    input_times: Annotated[
        bool, typer.Option("--input-times/--no-input-times", help="Also check dL/d(input spike times).")
    ] = True,
) -> None:
    """Check EventProp gradients against central finite differences on a small random network."""
    import numba

    from exactsnn.data.poisson import poisson_batch
    from exactsnn.engine.simulate import simulate
    from exactsnn.gradcheck import gradcheck as run_gradcheck

    # the options not given take the defaults every command shares (see exactsnn_cli.options)
    d = NEURON_DEFAULTS
    neuron = d["neuron"] if neuron is None else neuron
    tau_mem = d["tau_mem"] if tau_mem is None else tau_mem
    tau_syn = d["tau_syn"] if tau_syn is None else tau_syn
    v_th = d["v_th"] if v_th is None else v_th
    v_reset = d["v_reset"] if v_reset is None else v_reset
    t_ref = d["t_ref"] if t_ref is None else t_ref
    tau_w = d["tau_w"] if tau_w is None else tau_w
    a = d["a"] if a is None else a
    b = d["b"] if b is None else b
    recurrent = True if recurrent is None else recurrent
    delays = True if delays is None else delays
    seed = 0 if seed is None else seed
    spiking_output = loss == LossName.first_spike
    if spiking_output and readout != 0:
        raise typer.BadParameter("--loss first_spike needs --readout 0 (the last hidden layer is the output)",
                                 param_hint="'--readout'")
    if not spiking_output and readout == 0:
        raise typer.BadParameter(f"--loss {loss.value} needs an LI readout: --readout must be >= 1",
                                 param_hint="'--readout'")
    sizes = list(hidden) if hidden else list(DEFAULT_HIDDEN)
    n_classes = sizes[-1] if spiking_output else readout
    if n_classes < 2:
        raise typer.BadParameter(f"the output needs at least 2 classes, got {n_classes}",
                                 param_hint="'--readout'" if not spiking_output else "'--hidden'")
    t0 = time.perf_counter()
    # Hundreds of forward passes of a tiny batch: the parallel launch of each kernel costs more than the
    # work (3x slower with 2 threads on 2 cores), so run them serially. Results do not depend on it.
    previous_threads = numba.get_num_threads()
    numba.set_num_threads(1)
    opt.set_threads(threads)
    from exactsnn.train import describe_hardware

    hardware = describe_hardware()
    try:
        with user_errors():
            loss_obj = make_loss(loss.value)
            reg = make_regularizer(regularizer.value)
            net = network_from_options(
                n_inputs, hidden=sizes, recurrent=recurrent, delays=delays, tau_mem=tau_mem, tau_syn=tau_syn,
                v_th=v_th, v_reset=v_reset, t_ref=t_ref, readout=readout, neuron=neuron, tau_w=tau_w, a=a, b=b,
                learn=learn or (),
            )
            params = net.init(seed=seed)
            w_rng = np.random.default_rng(seed + 3)
            rate = max(input_rate, 1e-9)
            for l in range(len(sizes)):
                # adaptation damps the response (by 1 + a at steady state): drive adLIF neurons harder
                gain = (1.0 + max(a, 0.0)) ** 0.5 if neuron == "adlif" else 1.0
                mu = gain * DRIVE * v_th / (net.fan_in(l) * rate * tau_syn)
                params.weights[l][:] = weight_scale * mu * (1.0 + w_rng.standard_normal(params.weights[l].shape))
            batch = poisson_batch(n_samples, n_inputs, rate=input_rate, t_max=t_max, seed=seed + 1)
            labels = np.random.default_rng(seed + 2).integers(0, n_classes, size=n_samples)
            rec = simulate(net, params, batch, t_max=t_max)
            report = run_gradcheck(
                net, params, batch, labels, loss_obj, t_max, n_checks=n_checks, eps=eps, seed=seed,
                mode=mode.value, regularizer=reg, input_times=input_times, warn=False,
            )
    finally:
        numba.set_num_threads(previous_threads)
    wall = time.perf_counter() - t0

    typer.echo(hardware)
    typer.echo(f"network: {_describe(net)}")
    typer.echo(f"input:   {n_samples} samples, Poisson {input_rate:g} Hz x {n_inputs} channels, "
               f"{batch.n_events} events, t_max {t_max:g} s")
    typer.echo(f"loss:    {type(loss_obj).__name__}" + (f" + {type(reg).__name__}" if reg is not None else ""))
    for l, layer in enumerate(net.layers):
        if layer.neuron.spiking:
            n = rec.spikes[l].n_events
            note = "   (silent: its gradients vanish, the check is trivial)" if n == 0 else ""
            typer.echo(f"layer {l}: {n} spikes ({n / (n_samples * layer.size):.1f} per neuron and sample){note}")
    typer.echo("")
    typer.echo(report.format_table(tol=tol))
    if report.warning is not None:  # the library's SilentNetworkWarning, printed once
        typer.echo(f"Warning: {report.warning}", err=True)
    typer.echo(f"wall time {wall:.2f} s")
    if report.n_checked == 0:
        typer.echo("Error: no check could be compared (every perturbation changed the spike pattern)", err=True)
        raise typer.Exit(1)
    if not report.ok(tol):
        worst = max((g for g in report.groups if not g.ok(tol)), key=lambda g: g.worst_rel_error)
        typer.echo(f"FAILED: {', '.join(report.failed(tol))} (worst {worst.name}: relative error "
                   f"{worst.worst_rel_error:.2e} > tol {tol:g})", err=True)
        raise typer.Exit(1)
