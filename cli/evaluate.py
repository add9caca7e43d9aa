"""``exactsnn evaluate``: accuracy, a per-class table and firing rates of a checkpoint on a dataset."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from exactsnn_cli.options import user_errors


def evaluate(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint (.h5) or run directory (uses best.h5).")],
    dataset: Annotated[str | None, typer.Option(help="yinyang | shd | ssc | files (default: the run's).")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder with the SHD/SSC .h5 files.")] = None,
    split: Annotated[str, typer.Option(help="train | valid | test.")] = "test",
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="SECTION.KEY=VALUE", help="Override a data option (TOML value), repeatable.")] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Samples per forward batch.")] = 256,
) -> None:
    """Evaluate a trained network: accuracy, per-class accuracy and mean firing rate per layer."""
    from exactsnn_cli.train import _shortcuts

    with user_errors():
        from exactsnn.checkpoint import load_checkpoint
        from exactsnn.config import Config, apply_overrides, config_from_dict
        from exactsnn.data.datasets import holdout
        from exactsnn.data.tasks import load_task
        from exactsnn.train import build_loss, check_compatible
        from exactsnn.train import evaluate as run_eval

        path = checkpoint / "best.h5" if checkpoint.is_dir() else checkpoint
        net, params, extra = load_checkpoint(path)
        cfg = config_from_dict(extra["config"]) if isinstance(extra.get("config"), dict) else Config()
        if "config" not in extra and dataset is None:
            raise ValueError(f"{path} has no training configuration: give --dataset")
        overrides = _shortcuts(dataset=dataset, data_dir=data_dir) + list(set_ or [])
        cfg = apply_overrides(cfg, overrides)
        if split not in ("train", "valid", "test"):
            raise typer.BadParameter(f"must be train, valid or test, got {split!r}", param_hint="'--split'")
        # the data as stored (no validation hold-out yet): first check that it fits the network, so that a
        # mismatch is reported as such and not as whatever the hold-out or the simulation then trips over
        task = load_task(replace(cfg.data, val_fraction=0.0), cfg.augment, cfg.train.seed)
        try:
            check_compatible(net, task.n_inputs, task.n_classes, f"the {task.name} data")
        except ValueError as exc:
            raise ValueError(f"{path} does not fit the data: {exc}") from None
        if task.valid is None and split in ("train", "valid") and cfg.data.val_fraction > 0 and task.train:
            # the run's seeded hold-out, as load_task draws it (it picks samples by label only)
            train_part, valid_part = holdout(task.train, cfg.data.val_fraction, cfg.train.seed)
            task = replace(task, train=train_part, valid=valid_part)
        data = task.split(split)
        res = run_eval(net, params, data, build_loss(cfg), task.t_max, batch_size)
    typer.echo(f"checkpoint: {path}")
    typer.echo(f"data:       {task.name} {split}, {len(data)} samples, window {task.t_max:g} s")
    typer.echo(f"loss {res.loss:.4f}")
    typer.echo(f"accuracy: {100 * res.accuracy:.2f} % ({int(res.confusion.trace())}/{len(data)})")
    names = task.class_names or tuple(str(c) for c in range(res.confusion.shape[0]))
    width = max(5, *(len(str(n)) for n in names))
    typer.echo(f"\n{'class':<{width}}  {'n':>6}  {'correct':>7}  {'accuracy':>8}")
    per = res.per_class()
    for c in range(res.confusion.shape[0]):
        n_c = int(res.confusion[c].sum())
        acc = f"{100 * per[c]:7.2f}%" if n_c else "       -"
        name = names[c] if c < len(names) else str(c)
        typer.echo(f"{name:<{width}}  {n_c:>6}  {int(res.confusion[c, c]):>7}  {acc:>8}")
    typer.echo("")
    hidden = [l for l, layer in enumerate(net.layers[:-1]) if layer.neuron.spiking]
    for j, l in enumerate(hidden):
        typer.echo(f"layer {l} ({net.layers[l].size} {type(net.layers[l].neuron).__name__}): "
                   f"mean rate {res.rate_hz[j]:.2f} Hz")
