"""``exactsnn train``: train a network with EventProp (default: the built-in Yin-Yang task).

Configuration: defaults, then ``--config FILE`` (TOML), then the shortcut options, then every
``--set section.key=value``; the result is written to the run directory (``config.toml``) and into
every checkpoint. ``--resume`` continues a run from its checkpoint (its own configuration; options
given beside it override it, e.g. more ``--epochs``).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from exactsnn_cli import options as opt
from exactsnn_cli.options import check_output_dir, parse_hidden, parse_names, positive, user_errors


class EpochBar:
    """A per-epoch progress bar on stderr (hidden when stderr is not a terminal), with the loss and accuracy
    so far and, from the second epoch on, the estimated time left for the whole run."""

    def __init__(self, n_epochs: int) -> None:
        self.n_epochs = n_epochs
        self.bar: Any = None
        self.epoch = -1
        self.done = 0
        self.text = ""
        self.epoch_start: float | None = None  # when this epoch's first batch was reported
        self.first_batch = 0
        self.durations: list[float] = []  # whole epochs seen here (training and validation), s

    def run_eta(self, epoch: int, batch: int, n_batches: int) -> float | None:
        """Seconds left for the whole run (None before one whole epoch was timed): the mean epoch time (the
        first epoch, which includes Numba compilation, left out once there are others) times the epochs left."""
        if not self.durations:
            return None
        d = self.durations[1:] if len(self.durations) > 1 else self.durations
        return sum(d) / len(d) * max(self.n_epochs - epoch - batch / n_batches, 0.0)

    def __call__(self, epoch: int, batch: int, n_batches: int, loss: float, acc: float) -> None:
        now = time.perf_counter()
        if epoch != self.epoch:
            if self.epoch_start is not None and self.first_batch == 1 and epoch == self.epoch + 1:
                self.durations.append(now - self.epoch_start)
            self.epoch_start, self.first_batch = now, batch
        eta = self.run_eta(epoch, batch, n_batches)
        self.text = f"loss {loss:.4f} acc {100 * acc:.1f} %" + (
            f"  run ETA {_format_duration(eta)}" if eta is not None else "")
        if epoch != self.epoch:
            self.close()
            self.epoch = epoch
            self.bar = typer.progressbar(
                length=n_batches, label=f"epoch {epoch + 1}/{self.n_epochs}", file=sys.stderr, show_pos=True,
                hidden=not sys.stderr.isatty(), item_show_func=lambda _: self.text,
            )
            self.bar.__enter__()
            self.done = batch - 1
        self.bar.update(batch - self.done)
        self.done = batch
        if batch == n_batches:
            self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


class _Termination:
    """SIGTERM handling at a safe point: the handler only records the request, and the per-batch progress
    callback raises KeyboardInterrupt (saved like Ctrl-C) after the batch. Raising from the handler itself
    could land inside Numba while it loads a cached kernel, which turns the interrupt into a SystemError."""

    def __init__(self, bar: EpochBar) -> None:
        self.bar = bar
        self.requested = False

    def handler(self, signum: int, frame: Any) -> None:
        self.requested = True

    def progress(self, epoch: int, batch: int, n_batches: int, loss: float, acc: float) -> None:
        self.bar(epoch, batch, n_batches, loss, acc)
        if self.requested:
            raise KeyboardInterrupt


#: shortcut option -> configuration key (the options override the config file like --set does)
SHORTCUTS = {
    "dataset": "data.dataset", "data_dir": "data.data_dir", "epochs": "train.epochs",
    "batch_size": "train.batch_size", "lr": "train.lr", "seed": "train.seed", "loss": "loss.name",
    "patience": "train.patience", "recurrent": "network.recurrent", "delays": "network.delays",
    "check_md5": "data.check_md5", "neuron": "network.neuron", "hidden": "network.hidden", "learn": "network.learn",
    "tau_mem": "network.tau_mem", "tau_syn": "network.tau_syn", "v_th": "network.v_th",
    "v_reset": "network.v_reset", "t_ref": "network.t_ref", "tau_w": "network.tau_w", "a": "network.a",
    "b": "network.b",
}

#: what train --help shows as defaults: the built-in configuration (exactsnn.config.Config(); a test checks them)
TRAIN_DEFAULTS = {
    "dataset": "yinyang", "epochs": 80, "batch_size": 16, "lr": 2e-3, "seed": 0, "loss": "max", "patience": 0,
    "hidden": (600,), "recurrent": False, "delays": False, "check_md5": False,
}


def _shortcuts(**opts: Any) -> list[str]:
    """``section.key=value`` overrides for the shortcut options that were given."""
    out = []
    for name, key in SHORTCUTS.items():
        v = opts.get(name)
        if v is None:
            continue
        if name == "hidden":
            sizes = parse_hidden([v] if isinstance(v, str) else [str(x) for x in v])
            out.append(f"{key}=[{', '.join(str(x) for x in sizes or [])}]")
        elif name == "learn":
            names = parse_names([v] if isinstance(v, str) else list(v)) or ()
            out.append(f"{key}=[{', '.join(_toml_str(n) for n in names)}]")
        elif isinstance(v, bool):
            out.append(f"{key}={'true' if v else 'false'}")
        elif isinstance(v, str):
            out.append(f"{key}={_toml_str(v)}")
        else:
            out.append(f"{key}={v!r}")
    return out


def _format_duration(seconds: float) -> str:
    from exactsnn.train import format_duration

    return format_duration(seconds)


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


_D = TRAIN_DEFAULTS


def train(
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="TOML configuration file (its values replace the defaults shown here).")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="SECTION.KEY=VALUE",
        help="Override one option (value in TOML syntax), repeatable; applied after the options below.")] = None,
    dataset: Annotated[str | None, typer.Option(
        help=f"yinyang | shd | ssc | files. [default: {_D['dataset']}]")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder with the SHD/SSC .h5 files.")] = None,
    epochs: Annotated[int | None, typer.Option(
        min=1, help=f"Number of epochs (>= 1). [default: {_D['epochs']}]")] = None,
    batch_size: Annotated[int | None, typer.Option(
        min=1, help=f"Samples per batch (>= 1). [default: {_D['batch_size']}]")] = None,
    lr: Annotated[float | None, typer.Option(
        callback=positive, help=f"Adam learning rate (> 0). [default: {_D['lr']}]")] = None,
    seed: opt.Seed = None,
    hidden: opt.hidden_option(_D["hidden"]) = None,
    loss: Annotated[str | None, typer.Option(
        help=f"max | sum | sum_exp | sum_gaussian | first_spike. [default: {_D['loss']}]")] = None,
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
    recurrent: opt.recurrent_option(_D["recurrent"]) = None,
    delays: opt.delays_option(_D["delays"]) = None,
    patience: Annotated[int | None, typer.Option(
        min=0, help=f"Early stopping patience in epochs (>= 0; 0: off). [default: {_D['patience']}]")] = None,
    check_md5: Annotated[bool | None, typer.Option(
        "--check-md5/--no-check-md5",
        help="Verify the SHD/SSC files against their published md5 sums. [default: no-check-md5]")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Run directory. [default: runs/<dataset>-<date>-<time>]")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue a run: its directory or a checkpoint.")] = None,
    threads: opt.threads_option() = None,
    print_config: Annotated[bool, typer.Option(
        "--print-config", help="Print the effective configuration (TOML, after --config, --resume and every "
        "override) and exit; loads no data.")] = False,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Resolve the configuration, load the data, build the network and check that they fit; "
        "print the configuration, the network and its parameter count, and exit without training.")] = False,
) -> None:
    """Train a network with exact EventProp gradients and report its test accuracy.

    Defaults are the built-in configuration's (Yin-Yang); --config, --resume, the options and --set override
    them in that order.
    """
    overrides = _shortcuts(
        dataset=dataset, data_dir=data_dir, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, loss=loss,
        patience=patience, recurrent=recurrent, delays=delays, hidden=hidden, check_md5=check_md5, neuron=neuron,
        learn=learn, tau_mem=tau_mem, tau_syn=tau_syn, v_th=v_th, v_reset=v_reset, t_ref=t_ref, tau_w=tau_w, a=a,
        b=b,
    ) + list(set_ or [])
    if print_config and dry_run:
        raise typer.BadParameter("give --print-config or --dry-run, not both", param_hint="'--dry-run'")
    if resume is not None and config is not None:
        raise typer.BadParameter("a resumed run keeps its own configuration", param_hint="'--config'")
    with user_errors():
        from exactsnn.config import Config, apply_overrides, load_config, to_toml
        from exactsnn.train import (
            TrainingInterrupted,
            describe_hardware,
            format_duration,
            preflight,
            resume_config,
        )
        from exactsnn.train import train as run_training

        if resume is not None:
            ckpt, cfg = resume_config(resume)
            cfg = apply_overrides(cfg, overrides)
            run_dir = out if out is not None else ckpt.parent
        else:
            cfg = load_config(config) if config is not None else Config()
            cfg = apply_overrides(cfg, overrides)
            run_dir = out if out is not None else Path("runs") / f"{cfg.data.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
            ckpt = None
        if print_config:
            typer.echo(to_toml(cfg), nl=False)
            return
        check_output_dir(run_dir, "--out")
        opt.set_threads(threads)
        if dry_run:
            t0 = time.perf_counter()
            plan = preflight(cfg, run_dir, resume=ckpt)
            typer.echo(f"# {describe_hardware()}")
            typer.echo(to_toml(cfg), nl=False)
            typer.echo(f"# data:    {plan.describe_data()}")
            typer.echo(f"# network: {plan.describe_network()}")
            typer.echo(f"# parameters: {plan.n_parameters} trainable ({plan.describe_parameters()})")
            typer.echo(f"# training: {cfg.train.epochs} epochs x {plan.n_batches} batches of {cfg.train.batch_size}"
                       + (f", resuming {ckpt} at epoch {plan.start_epoch + 1}" if ckpt is not None else ""))
            typer.echo(f"# run directory: {run_dir} ({'exists' if run_dir.exists() else 'would be created'})")
            typer.echo(f"# dry run: everything fits ({format_duration(time.perf_counter() - t0)}); "
                       "nothing was trained or written")
            return
        typer.echo(f"run directory: {run_dir}")
        typer.echo(describe_hardware())
        bar = EpochBar(cfg.train.epochs)

        def log(line: str) -> None:
            bar.close()  # a finished epoch's line goes below its bar
            typer.echo(line)

        t0 = time.perf_counter()
        # a batch system's SIGTERM saves like Ctrl-C does, after the batch in progress
        term = _Termination(bar)
        previous = signal.signal(signal.SIGTERM, term.handler)
        try:
            result = run_training(cfg, run_dir, resume=ckpt, progress=term.progress, log=log)
        except TrainingInterrupted as exc:
            bar.close()
            typer.echo(f"\ninterrupted: state saved to {exc.checkpoint}; continue with "
                       f"exactsnn train --resume {exc.checkpoint.parent}", err=True)
            raise typer.Exit(130) from None
        finally:
            signal.signal(signal.SIGTERM, previous)
        bar.close()
    wall = time.perf_counter() - t0
    best = next(m for m in result.metrics if m["epoch"] == result.best_epoch)
    if best["val_acc"] is not None:
        typer.echo(f"validation accuracy: {100 * best['val_acc']:.2f} %, loss {best['val_loss']:.4f} "
                   f"(best epoch {result.best_epoch}, by {cfg.train.select})")
    if result.test is not None:
        typer.echo(f"test accuracy: {100 * result.test.accuracy:.2f} %")
    typer.echo(f"wall time {wall:.1f} s; checkpoints {result.out_dir / 'best.h5'}, {result.out_dir / 'last.h5'}; "
               f"metrics {result.out_dir / 'metrics.jsonl'}")
