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
    """Draw learning_curves.png, raster.png and readout.png (needs: pip install "exactsnn[plot]")."""
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
                rec = simulate(net, params, one, task.t_max)
                names = ["input"] + [f"layer {l} ({type(layer.neuron).__name__})" for l, layer in enumerate(net.layers)]
                sizes = [net.n_inputs] + [layer.size for layer in net.layers]
                label = int(data.labels[sample])
                cls = task.class_names[label] if task.class_names and label < len(task.class_names) else str(label)
                path = plot_raster([one] + list(rec.spikes), sizes, names, 0, task.t_max, dest / "raster.png",
                                   title=f"{task.name} {split} sample {sample} (class {cls}), {ckpt.name}")
                typer.echo(f"wrote {path}")
                if not net.layers[-1].neuron.spiking:
                    # the exact readout voltage, evaluated at display points only
                    t = np.linspace(0.0, task.t_max, 1001)
                    v = rec.voltage(len(net.layers) - 1, t)[0].T
                    names_out = [task.class_names[c] if task.class_names and c < len(task.class_names) else str(c)
                                 for c in range(v.shape[1])]
                    path = plot_voltage(t, v, dest / "readout.png", labels=names_out,
                                        title=f"readout voltage, {task.name} {split} sample {sample} (class {cls})")
                    typer.echo(f"wrote {path}")
        except ImportError as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None
