"""``exactsnn simulate``: run a network on spike input and write every layer's spikes.

Input is an SHD-layout HDF5 file (or, without one, a Poisson demo input of SHD shape); the network
comes from a checkpoint or from options. Output: :func:`exactsnn.data.shd.write_layers_h5` layout.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import numpy as np
import typer

from exactsnn.neurons.registry import make_neuron
from exactsnn_cli import options as opt
from exactsnn_cli.options import NEURON_DEFAULTS, check_output_file, finite, non_negative, positive, user_errors

if TYPE_CHECKING:  # the library (and Numba) is imported only when a command runs: fast --help
    from exactsnn.events import SpikeBatch
    from exactsnn.network import Network

# Defaults of the network options (used when no --checkpoint is given).
DEFAULT_HIDDEN = (256,)
DEFAULT_READOUT = 20
# Hidden-layer feedforward init: with SHD-like input (~12 Hz on 700 channels) the mean drive is
# about 0.03 * 8400 Hz * tau_syn ~ 1.3 v_th, so the demo network fires at tens of Hz. (The
# library's default, N(0, 1/fan_in), leaves such a network silent.)
DEFAULT_WEIGHT_MEAN = 0.03
DEFAULT_WEIGHT_STD = 0.01
DEMO_SAMPLES = 16
DEMO_CHANNELS = 700
DEMO_RATE_HZ = 12.0


# kept for modules that import them from here
_positive, _non_negative, _finite = positive, non_negative, finite


def _describe(net: Network) -> str:
    return " -> ".join([f"{net.n_inputs} inputs"] + [layer.describe() for layer in net.layers])


def simulate(
    input: Annotated[
        Path | None,
        typer.Argument(metavar="INPUT", help="Input spikes, SHD-layout HDF5 (spikes/times, spikes/units, labels). "
                       "Omit to simulate a Poisson demo input."),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Output HDF5 file with every layer's spikes.")] = ...,
    checkpoint: Annotated[
        Path | None, typer.Option("--checkpoint", "-c", help="Take network and parameters from this checkpoint.")
    ] = None,
    hidden: opt.hidden_option(DEFAULT_HIDDEN) = None,
    recurrent: opt.recurrent_option(True) = None,
    delays: opt.delays_option(False) = None,
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
        int | None, typer.Option(min=0, help="Size of the LI readout layer; 0 for none. [default: 20]")
    ] = None,
    weight_mean: Annotated[
        float | None,
        typer.Option(help=f"Mean of hidden feedforward weights. [default: {DEFAULT_WEIGHT_MEAN}]", callback=finite),
    ] = None,
    weight_std: Annotated[
        float | None,
        typer.Option(help=f"Std of hidden feedforward weights (>= 0). [default: {DEFAULT_WEIGHT_STD}]",
                     callback=non_negative),
    ] = None,
    seed: opt.Seed = None,
    threads: opt.threads_option() = None,
    t_max: Annotated[float, typer.Option(help="Simulated time per sample, s (> 0).", callback=positive)] = 1.0,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per simulate() call.")] = 64,
    n_inputs: Annotated[
        int | None,
        typer.Option(min=1, help="Input channels. [default: the file's n_units, else max unit + 1, else 700]"),
    ] = None,
    demo: Annotated[
        int | None,
        typer.Option(min=1, help=f"Without INPUT: number of Poisson demo samples ({DEMO_RATE_HZ:g} Hz x "
                     f"{DEMO_CHANNELS} channels). [default: {DEMO_SAMPLES}]"),
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Use only the first N samples of INPUT.")] = None,
    save_checkpoint: Annotated[
        Path | None, typer.Option("--save-checkpoint", help="Also save the network and parameters used here.")
    ] = None,
) -> None:
    """Simulate a spiking network exactly and write every layer's output spikes (HDF5)."""
    import exactsnn as es
    from exactsnn.checkpoint import load_checkpoint
    from exactsnn.checkpoint import save_checkpoint as write_checkpoint
    from exactsnn.data.poisson import poisson_batch
    from exactsnn.data.shd import LayerSpikesWriter, NonFiniteSpikesWarning, read_spikes_h5
    from exactsnn.train import describe_hardware

    t_start = time.perf_counter()
    seed = 0 if seed is None else seed
    net_options = {
        "hidden": hidden or None, "recurrent": recurrent, "delays": delays, "tau_mem": tau_mem,
        "tau_syn": tau_syn, "v_th": v_th, "v_reset": v_reset, "t_ref": t_ref, "readout": readout,
        "weight_mean": weight_mean, "weight_std": weight_std, "neuron": neuron, "tau_w": tau_w, "a": a, "b": b,
        "learn": learn,
    }
    if checkpoint is not None:
        given = ["--" + name.replace("_", "-") for name, v in net_options.items() if v is not None]
        if given:
            raise typer.BadParameter(
                f"{', '.join(given)} cannot be combined with --checkpoint", param_hint="'--checkpoint'"
            )
    if input is not None and demo is not None:
        raise typer.BadParameter("--demo generates the input: give either INPUT or --demo", param_hint="'--demo'")
    if input is None and limit is not None:
        raise typer.BadParameter(
            "--limit needs an INPUT file (use --demo N for the demo size)", param_hint="'--limit'"
        )
    _check_distinct_paths(out, input, checkpoint, save_checkpoint)

    with user_errors():
        # ---- output paths, before any work
        check_output_file(out, "--out")
        if save_checkpoint is not None:
            check_output_file(save_checkpoint, "--save-checkpoint")
        opt.set_threads(threads)
        # ---- network
        if checkpoint is not None:
            net, params, _ = load_checkpoint(checkpoint)
            if n_inputs is not None and n_inputs != net.n_inputs:
                raise ValueError(f"--n-inputs {n_inputs} disagrees with the checkpoint's {net.n_inputs} inputs")

        # ---- input
        n_dropped = 0
        labels = None
        if input is not None:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", NonFiniteSpikesWarning)
                batch, labels = read_spikes_h5(
                    input, n_units=n_inputs, t_max=t_max, indices=None if limit is None else slice(0, limit)
                )
            for w in caught:
                if isinstance(w.message, NonFiniteSpikesWarning):
                    n_dropped += w.message.n_dropped
                    typer.echo(f"Warning: {w.message}", err=True)
                else:
                    warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
            source = str(input)
            if checkpoint is None:
                n_in = n_inputs or batch.n_units or DEMO_CHANNELS
        else:
            n_demo = demo if demo is not None else DEMO_SAMPLES
            n_in_demo = n_inputs or (net.n_inputs if checkpoint is not None else DEMO_CHANNELS)
            batch = poisson_batch(n_demo, n_in_demo, rate=DEMO_RATE_HZ, t_max=t_max, seed=seed + 1)
            source = f"demo: Poisson {DEMO_RATE_HZ:g} Hz x {n_in_demo} channels, seed {seed + 1}"
            n_in = n_in_demo

        if checkpoint is None:
            net = network_from_options(n_in, **net_options)
            params = net.init(seed=seed)

        if save_checkpoint is not None:
            write_checkpoint(save_checkpoint, net, params, extra={"created_by": "exactsnn simulate", "seed": seed})
        typer.echo(describe_hardware())

        # ---- simulate, streaming batches into the output file
        B = len(batch)
        starts = list(range(0, B, batch_size)) or [0]
        spike_counts = np.zeros(len(net.layers), dtype=np.int64)
        t_sim = 0.0
        try:
            with LayerSpikesWriter(out, net, t_max, include_input=input is None) as writer:
                with typer.progressbar(
                    starts, label="simulating", file=sys.stderr, show_pos=True,
                    hidden=len(starts) < 2 or not sys.stderr.isatty(),
                ) as bar:
                    for lo in bar:
                        idx = np.arange(lo, min(lo + batch_size, B))
                        sub = batch.select(idx) if len(idx) != B else batch
                        t0 = time.perf_counter()
                        rec = es.simulate(net, params, sub, t_max=t_max)
                        t_sim += time.perf_counter() - t0
                        writer.append(rec, None if labels is None else labels[idx])
                        spike_counts += [s.n_events for s in rec.spikes]
        except BaseException:
            out.unlink(missing_ok=True)  # no half-written result file
            raise
        wall = time.perf_counter() - t_start

    _print_summary(net, batch, spike_counts, t_max, source, n_dropped, wall, t_sim, out,
                   f"from {checkpoint}" if checkpoint else f"seed {seed}", save_checkpoint)


def network_from_options(
    n_inputs: int,
    hidden: list[int] | None = None,
    recurrent: bool | None = None,
    delays: bool | None = None,
    tau_mem: float | None = None,
    tau_syn: float | None = None,
    v_th: float | None = None,
    v_reset: float | None = None,
    t_ref: float | None = None,
    readout: int | None = None,
    weight_mean: float | None = None,
    weight_std: float | None = None,
    neuron: str | None = None,
    tau_w: float | None = None,
    a: float | None = None,
    b: float | None = None,
    learn: tuple[str, ...] | None = (),
) -> Network:
    """The network the options describe (None: the CLI default): LIF or adLIF hidden layers, optional LI readout."""
    import exactsnn as es

    d = NEURON_DEFAULTS
    common = {"tau_mem": _or(tau_mem, d["tau_mem"]), "tau_syn": _or(tau_syn, d["tau_syn"]),
              "v_th": _or(v_th, d["v_th"]), "v_reset": _or(v_reset, d["v_reset"]), "t_ref": _or(t_ref, d["t_ref"])}
    model = make_neuron(_or(neuron, d["neuron"]),
                        {**common, "tau_w": _or(tau_w, d["tau_w"]), "a": _or(a, d["a"]), "b": _or(b, d["b"])})
    layers = [
        es.Layer(
            size, model, recurrent=_or(recurrent, True), delays=_or(delays, False),
            weight_mean=_or(weight_mean, DEFAULT_WEIGHT_MEAN), weight_std=_or(weight_std, DEFAULT_WEIGHT_STD),
            learn=tuple(learn or ()),
        )
        for size in (hidden or DEFAULT_HIDDEN)
    ]
    n_readout = _or(readout, DEFAULT_READOUT)
    if n_readout:
        layers.append(es.Layer(n_readout, es.LI(tau_mem=model.tau_mem, tau_syn=model.tau_syn)))
    return es.Network(n_inputs=n_inputs, layers=layers)


def _check_distinct_paths(out: Path, input: Path | None, checkpoint: Path | None, save: Path | None) -> None:
    """Refuse to overwrite an input (spikes or checkpoint) with an output."""
    ins = {"INPUT": input, "--checkpoint": checkpoint}
    outs = {"--out": out, "--save-checkpoint": save}
    for oname, o in outs.items():
        for iname, i in ins.items():
            if o is not None and i is not None and not (oname == "--save-checkpoint" and iname == "--checkpoint"):
                if o.resolve() == i.resolve():
                    raise typer.BadParameter(f"{oname} must differ from {iname}", param_hint=f"'{oname}'")
    if save is not None and save.resolve() == out.resolve():
        raise typer.BadParameter("--save-checkpoint must differ from --out", param_hint="'--save-checkpoint'")


def _print_summary(
    net: Network, batch: SpikeBatch, spike_counts: np.ndarray, t_max: float, source: str, n_dropped: int,
    wall: float, t_sim: float, out: Path, origin: str, save_checkpoint: Path | None,
) -> None:
    B = len(batch)
    typer.echo(f"input:   {source}")
    typer.echo(f"network: {_describe(net)} ({origin})")
    n_ch = net.n_inputs
    in_rate = batch.n_events / (max(B, 1) * n_ch * t_max)
    typer.echo(
        f"samples: {B}   t_max: {t_max:g} s   input events: {batch.n_events} ({in_rate:.2f} Hz per channel)"
        + (f"   dropped non-finite: {n_dropped}" if n_dropped else "")
    )
    for l, layer in enumerate(net.layers):
        kind = type(layer.neuron).__name__
        if layer.neuron.spiking:
            rate = spike_counts[l] / (max(B, 1) * layer.size * t_max)
            typer.echo(f"layer {l} ({layer.size} {kind}): {spike_counts[l]} spikes, mean rate {rate:.2f} Hz")
        else:
            typer.echo(f"layer {l} ({layer.size} {kind} readout): non-spiking")
    if save_checkpoint is not None:
        typer.echo(f"checkpoint: {save_checkpoint}")
    typer.echo(f"wrote {out}   wall time {wall:.2f} s (simulation {t_sim:.2f} s)")


def _or(value: object, default: object) -> object:
    return default if value is None else value

