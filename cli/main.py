"""The ``exactsnn`` command: a thin Typer front end over the library.

Each sub-command lives in its own module of this package and is registered here; the module
parses options and calls into :mod:`exactsnn`. Errors users can cause are reported as one-line
``Error: ...`` messages (exit code 1) or Typer usage errors (exit code 2), never tracebacks.
"""

from __future__ import annotations

from typing import Annotated

import typer
from typer.core import TyperGroup

from exactsnn_cli.data import data_app
from exactsnn_cli.evaluate import evaluate
from exactsnn_cli.gradcheck import gradcheck
from exactsnn_cli.options import normalize_delays_args
from exactsnn_cli.plot import plot
from exactsnn_cli.simulate import simulate
from exactsnn_cli.train import train


class _Group(TyperGroup):
    """The command group; ``--delays`` takes an optional mode (see :func:`options.normalize_delays_args`)."""

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, normalize_delays_args(args))


app = typer.Typer(
    cls=_Group,
    name="exactsnn",
    help="Exact event-driven simulation and EventProp training of spiking neural networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain help and one-line usage errors (no panels, no truncated option names)
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        from exactsnn import __version__

        typer.echo(f"exactsnn {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """Exact event-driven simulation of spiking neural networks.

    Time is in seconds everywhere. Spike files use the SHD/SSC HDF5 layout.
    """


app.command("train")(train)
app.command("evaluate")(evaluate)
app.command("simulate")(simulate)
app.command("gradcheck")(gradcheck)
app.command("plot")(plot)
app.add_typer(data_app, name="data")


if __name__ == "__main__":  # pragma: no cover
    app()
