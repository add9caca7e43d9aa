"""``exactsnn data ...``: dataset utilities (``synth-shd``: synthetic data in the SHD file layout)."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from exactsnn_cli.options import check_output_dir, positive, user_errors

data_app = typer.Typer(
    help="Dataset utilities.", no_args_is_help=True, add_completion=False, rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@data_app.command("synth-shd")
def synth_shd(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for shd_train.h5 and shd_test.h5.")],
    n_train: Annotated[int, typer.Option(min=1, help="Training samples (SHD: 8156).")] = 8156,
    n_test: Annotated[int, typer.Option(min=1, help="Test samples (SHD: 2264).")] = 2264,
    seed: Annotated[int, typer.Option(min=0, help="Seed of the samples (the classes are fixed).")] = 0,
    rate_scale: Annotated[float, typer.Option(
        callback=positive, help="Scales every firing rate (spikes per sample); > 0.")] = 1.0,
    force: Annotated[bool, typer.Option(help="Overwrite existing files.")] = False,
) -> None:
    """Write synthetic SHD-shaped data (700 channels, ~1 s, 20 classes, 12 speakers) in the SHD layout."""
    with user_errors():
        from exactsnn.data.synthetic import SynthSHD, write_synth_shd

        check_output_dir(out, "--out")
        cfg = SynthSHD(rate_scale=rate_scale)
        for name in ("shd_train.h5", "shd_test.h5"):
            if (out / name).exists() and not force:
                raise ValueError(f"{out / name} exists; use --force to overwrite it")
        out.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        with typer.progressbar(length=n_train + n_test, label="writing", file=sys.stderr,
                               hidden=not sys.stderr.isatty()) as bar:
            done = [0]

            def progress(n_done: int, n_total: int) -> None:  # n_done counts over both files
                bar.update(n_done - done[0])
                done[0] = n_done

            paths = write_synth_shd(out, cfg, n_train=n_train, n_test=n_test, seed=seed, progress=progress)
    for split, p in paths.items():
        typer.echo(f"{split}: {p} ({p.stat().st_size / 2**20:.1f} MiB)")
    typer.echo(f"done in {time.perf_counter() - t0:.1f} s; train with: exactsnn train --dataset shd --data-dir {out}")
