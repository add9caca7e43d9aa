"""``exactsnn plot``: PNGs of a training run (learning curves, a spike raster of one sample)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from exactsnn_cli.simulate import user_errors


def plot(
    run: Annotated[Path, typer.Argument(help="Run directory written by exactsnn train.")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder for the PNGs (default: the run's).")] = None,
    sample: Annotated[int, typer.Option(min=0, help="Sample of the split shown in the raster.")] = 0,
    split: Annotated[str, typer.Option(help="Split the raster sample comes from: train | valid | test.")] = "test",
    raster: Annotated[bool, typer.Option("--raster/--no-raster", help="Also simulate and draw a raster.")] = True,
) -> None:
    """Draw learning_curves.png, raster.png (spikes of one sample, readout voltages below) and readout.png
    (output voltages of that sample, predicted and true class marked)."""
    with user_errors():
        try:
            from exactsnn.plotting import plot_learning_curves, plot_raster, plot_voltage, read_metrics

            if not run.is_dir():
                raise ValueError(f"{run}: not a run directory")
            dest = out if out is not None else run
            curves = plot_learning_curves(read_metrics(run / "metrics.jsonl"), dest / "learning_curves.png")
            typer.echo(f"wrote {curves}")
            if raster:
                from exactsnn.checkpoint import load_checkpoint
                from exactsnn.config import config_from_dict
                from exactsnn.data.tasks import load_task
                from exactsnn.engine.simulate import simulate
                from exactsnn.grad import evaluate_batch
                from exactsnn.train import build_loss

                ckpt = run / "best.h5" if (run / "best.h5").exists() else run / "last.h5"
                net, params, extra = load_checkpoint(ckpt)
                if "config" not in extra:
                    raise ValueError(f"{ckpt} holds no training configuration")
                cfg = config_from_dict(extra["config"])
                task = load_task(cfg.data, cfg.augment, cfg.train.seed)
                data = task.split(split)
                if sample >= len(data):
                    raise ValueError(f"--sample {sample} out of range: the {split} split has {len(data)} samples")
                one = data.batch.select([sample])
                label = int(data.labels[sample])
                rec = simulate(net, params, one, task.t_max)
                # the prediction as training and evaluation make it (the run's loss decides)
                _, outs = evaluate_batch(net, params, one, data.labels[[sample]], build_loss(cfg), task.t_max)
                predicted = int(outs.predictions()[0])
                out_layer = net.layers[-1]
                n_out = out_layer.size
                classes = [task.class_names[c] if task.class_names and c < len(task.class_names) else str(c)
                           for c in range(n_out)]
                # the exact output voltage, evaluated at display points only
                t = np.linspace(0.0, task.t_max, 1001)
                v = rec.voltage(len(net.layers) - 1, t)[0].T
                spiking_out = out_layer.neuron.spiking
                shown = range(len(net.layers) if spiking_out else len(net.layers) - 1)  # an LI readout has no raster
                names = ["input"] + [f"layer {l} ({type(net.layers[l].neuron).__name__})" for l in shown]
                sizes = [net.n_inputs] + [net.layers[l].size for l in shown]
                where = f"{task.name} {split} sample {sample}"
                path = plot_raster([one] + [rec.spikes[l] for l in shown], sizes, names, 0, task.t_max,
                                   dest / "raster.png", title=f"{where}, {ckpt.name}",
                                   readout=None if spiking_out else (t, v), class_names=classes,
                                   predicted=predicted, true=label)
                typer.echo(f"wrote {path}")
                first = None
                if spiking_out:
                    st, su = rec.spikes[-1].sample(0)
                    first = [float(st[su == c].min()) if (su == c).any() else np.inf for c in range(n_out)]
                path = plot_voltage(t, v, dest / "readout.png", labels=classes,
                                    title=f"{'output' if spiking_out else 'readout'} voltage, {where}",
                                    predicted=predicted, true=label,
                                    threshold=out_layer.neuron.v_th if spiking_out else None, first_spikes=first)
                typer.echo(f"wrote {path}")
        except ImportError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
