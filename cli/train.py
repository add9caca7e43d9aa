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

from exactsnn_cli.simulate import user_errors


class EpochBar:
    """A per-epoch progress bar on stderr (hidden when stderr is not a terminal)."""

    def __init__(self, n_epochs: int) -> None:
        self.n_epochs = n_epochs
        self.bar: Any = None
        self.epoch = -1
        self.done = 0
        self.text = ""

    def __call__(self, epoch: int, batch: int, n_batches: int, loss: float, acc: float) -> None:
        self.text = f"loss {loss:.4f} acc {100 * acc:.1f} %"
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


def _shortcuts(**opts: Any) -> list[str]:
    """``section.key=value`` overrides for the shortcut options that were given."""
    keys = {
        "dataset": "data.dataset", "data_dir": "data.data_dir", "epochs": "train.epochs",
        "batch_size": "train.batch_size", "lr": "train.lr", "seed": "train.seed", "loss": "loss.name",
        "patience": "train.patience", "recurrent": "network.recurrent", "delays": "network.delays",
        "check_md5": "data.check_md5", "neuron": "network.neuron",
    }
    out = []
    for name, key in keys.items():
        v = opts.get(name)
        if v is None:
            continue
        if isinstance(v, bool):
            out.append(f"{key}={'true' if v else 'false'}")
        elif isinstance(v, str):
            out.append(f'{key}="{v}"' if name != "data_dir" else f"{key}={_toml_str(v)}")
        else:
            out.append(f"{key}={v!r}")
    if opts.get("hidden"):
        sizes = [s.strip() for s in opts["hidden"].split(",") if s.strip()]
        if not sizes or not all(s.isdigit() and int(s) > 0 for s in sizes):
            raise typer.BadParameter(f"expected layer sizes like 256 or 256,128, got {opts['hidden']!r}",
                                     param_hint="'--hidden'")
        out.append(f"network.hidden=[{', '.join(sizes)}]")
    if opts.get("learn") is not None:
        names = [s.strip() for s in opts["learn"].split(",") if s.strip()]
        out.append(f"network.learn=[{', '.join(_toml_str(n) for n in names)}]")
    return out


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def train(
    config: Annotated[Path | None, typer.Option("--config", "-c", help="TOML configuration file.")] = None,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", metavar="SECTION.KEY=VALUE",
        help="Override one option (value in TOML syntax), repeatable.")] = None,
    dataset: Annotated[str | None, typer.Option(help="yinyang | shd | ssc | files.")] = None,
    data_dir: Annotated[str | None, typer.Option(help="Folder with the SHD/SSC .h5 files.")] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Number of epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Samples per batch.")] = None,
    lr: Annotated[float | None, typer.Option(min=0.0, help="Adam learning rate.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random draw.")] = None,
    hidden: Annotated[str | None, typer.Option(help="Hidden layer sizes, e.g. 256 or 256,128.")] = None,
    loss: Annotated[str | None, typer.Option(help="max | sum | sum_exp | sum_gaussian | first_spike.")] = None,
    neuron: Annotated[str | None, typer.Option(help="Hidden neuron model: lif | adlif.")] = None,
    learn: Annotated[str | None, typer.Option(
        help="Neuron parameters to learn per neuron, e.g. tau_mem,tau_syn (adlif also tau_w,a,b).")] = None,
    recurrent: Annotated[bool | None, typer.Option(
        "--recurrent/--no-recurrent", help="Recurrent hidden layers.")] = None,
    delays: Annotated[bool | None, typer.Option("--delays/--no-delays", help="Learned synaptic delays.")] = None,
    patience: Annotated[int | None, typer.Option(min=0, help="Early stopping patience in epochs (0: off).")] = None,
    check_md5: Annotated[bool | None, typer.Option(
        "--check-md5/--no-check-md5", help="Verify the SHD/SSC files against their published md5 sums.")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Run directory (default runs/<dataset>-<time>).")] = None,
    resume: Annotated[Path | None, typer.Option(help="Continue a run: its directory or a checkpoint.")] = None,
    threads: Annotated[int | None, typer.Option(min=1, help="Numba threads (default: all cores).")] = None,
) -> None:
    """Train a network with exact EventProp gradients and report its test accuracy."""
    overrides = _shortcuts(dataset=dataset, data_dir=data_dir, epochs=epochs, batch_size=batch_size, lr=lr,
                           seed=seed, loss=loss, patience=patience, recurrent=recurrent, delays=delays,
                           hidden=hidden, check_md5=check_md5, neuron=neuron, learn=learn) + list(set_ or [])
    with user_errors():
        from exactsnn.config import apply_overrides, load_config
        from exactsnn.train import TrainingInterrupted, resume_config
        from exactsnn.train import train as run_training

        if threads is not None:
            import numba

            numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        if resume is not None:
            if config is not None:
                raise typer.BadParameter("a resumed run keeps its own configuration", param_hint="'--config'")
            ckpt, cfg = resume_config(resume)
            cfg = apply_overrides(cfg, overrides)
            run_dir = out if out is not None else ckpt.parent
        else:
            cfg = load_config(config) if config is not None else None
            from exactsnn.config import Config

            cfg = apply_overrides(cfg or Config(), overrides)
            run_dir = out if out is not None else Path("runs") / f"{cfg.data.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
            ckpt = None
        typer.echo(f"run directory: {run_dir}")
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
