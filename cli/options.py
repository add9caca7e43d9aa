"""Options shared by ``train``, ``simulate`` and ``gradcheck``, defined once so the commands cannot drift apart.

Every shared option has the same name, syntax, help text and accepted values in each command. Its
parameter default is ``None`` ("not given"): each command then falls back to its own default
(``train``: the configuration file, else the built-in configuration; ``simulate`` / ``gradcheck``:
the values below), and ``simulate`` can tell whether a network option was given beside
``--checkpoint``. The neuron defaults are those of :class:`exactsnn.config.NetworkConfig`
(``tests/test_cli_train.py`` checks they agree). The defaults of ``--hidden``, ``--recurrent``,
``--delays`` and ``--threads`` depend on what a command is for (a trained Yin-Yang network, an
SHD-sized demo, a tiny network for finite differences), so those options are made per command by
small factories; each command's ``--help`` shows its own.

Numeric options are checked when parsed: a value outside the range the help text states (zero,
negative, ``nan`` or ``inf`` where they make no sense) is a one-line usage error.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

__all__ = [
    "NEURON_DEFAULTS", "user_errors", "positive", "non_negative", "finite", "parse_hidden", "parse_names",
    "hidden_option", "recurrent_option", "delays_option", "threads_option", "set_threads",
    "Neuron", "TauMem", "TauSyn", "VTh", "VReset", "TRef", "TauW", "A", "B", "Learn", "Seed",
    "check_output_file", "check_output_dir",
]

#: Neuron-model defaults of every command (the same as exactsnn.config.NetworkConfig's).
NEURON_DEFAULTS: dict[str, Any] = {
    "neuron": "lif", "tau_mem": 20e-3, "tau_syn": 5e-3, "v_th": 1.0, "v_reset": 0.0, "t_ref": 0.0,
    "tau_w": 100e-3, "a": 0.5, "b": 0.2,
}


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn ``ValueError`` / ``OSError`` from the library into ``Error: ...`` and exit code 1."""
    try:
        yield
    except (ValueError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        typer.echo(f"Error: {msg}", err=True)
        raise typer.Exit(1) from None


# ----------------------------------------------------------------------------- value checks (typer callbacks)
def positive(value: float | None) -> float | None:
    """A finite number > 0 (or None: not given)."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"must be a finite number > 0, got {value}")
    return value


def non_negative(value: float | None) -> float | None:
    """A finite number >= 0 (or None)."""
    if value is not None and not (math.isfinite(value) and value >= 0):
        raise typer.BadParameter(f"must be a finite number >= 0, got {value}")
    return value


def finite(value: float | None) -> float | None:
    """A finite number (or None)."""
    if value is not None and not math.isfinite(value):
        raise typer.BadParameter(f"must be a finite number, got {value}")
    return value


def parse_hidden(values: Sequence[str] | None) -> list[int] | None:
    """Hidden layer sizes from ``--hidden`` values: comma-separated, repeated, or both (``["256,128", "64"]``
    gives ``[256, 128, 64]``); None when the option was not given."""
    if not values:
        return None
    sizes = []
    for text in values:
        for part in str(text).split(","):
            s = part.strip()
            if not (s.isdigit() and int(s) > 0):
                raise typer.BadParameter(
                    f"expected layer sizes (positive integers) like 256, 256,128 or --hidden 256 --hidden 128, "
                    f"got {text!r}", param_hint="'--hidden'")
            sizes.append(int(s))
    return sizes


def parse_names(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """Names from a comma-separated and/or repeated option (``--learn tau_mem,a --learn b``); None if not given."""
    if values is None:
        return None
    return tuple(s.strip() for text in values for s in str(text).split(",") if s.strip())


def _hidden_callback(values: list[str] | None) -> list[int] | None:
    return parse_hidden(values)


def _names_callback(values: list[str] | None) -> tuple[str, ...] | None:
    return parse_names(values)


# ----------------------------------------------------------------------------- per-command factories
def hidden_option(default: Sequence[int]) -> Any:
    """``--hidden``: hidden layer sizes, comma-separated or repeated; ``default`` shown in --help."""
    shown = ",".join(str(s) for s in default)
    return Annotated[list[str] | None, typer.Option(
        "--hidden", metavar="N[,N...]", callback=_hidden_callback,
        help=f"Hidden layer sizes: --hidden 256,128 or --hidden 256 --hidden 128 (the same). [default: {shown}]")]


def recurrent_option(default: bool) -> Any:
    """``--recurrent/--no-recurrent``: recurrent connections within each hidden layer."""
    return Annotated[bool | None, typer.Option(
        "--recurrent/--no-recurrent",
        help=f"Recurrent hidden layers. [default: {'recurrent' if default else 'no-recurrent'}]")]


DELAY_MODES = {"all": True, "feedforward": "feedforward", "none": False}


def _delays_callback(value: str | None) -> bool | str | None:
    if value is None:
        return None
    mode = DELAY_MODES.get(value.strip().lower())
    if mode is None:
        raise typer.BadParameter(f"expected all, feedforward or none, got {value!r}", param_hint="'--delays'")
    return mode


def normalize_delays_args(args: Sequence[str]) -> list[str]:
    """Command-line tokens with the flag forms of ``--delays`` spelled out for the parser.

    ``--delays`` takes an optional mode: alone it means ``all`` (as it always has), ``--delays
    feedforward`` names one, and ``--no-delays`` means ``none``. Click options cannot take an optional
    value, so the bare flag is rewritten to ``--delays=all`` before parsing.
    """
    out, k = [], 0
    while k < len(args):
        tok = args[k]
        if tok == "--delays" and not (k + 1 < len(args) and str(args[k + 1]).lower() in DELAY_MODES):
            out.append("--delays=all")
        elif tok == "--no-delays":
            out.append("--delays=none")
        else:
            out.append(tok)
        k += 1
    return out


def delays_option(default: bool) -> Any:
    """``--delays [all|feedforward|none]`` (bare ``--delays``: all; ``--no-delays``: none): learnable delays."""
    return Annotated[str | None, typer.Option(
        "--delays", metavar="[all|feedforward|none]", callback=_delays_callback,
        help="Per-synapse learnable delays in the hidden layers: --delays (all: feedforward and recurrent "
             "synapses), --delays feedforward (feedforward synapses only, instantaneous recurrence) or "
             f"--no-delays. [default: {'all' if default else 'none'}]")]


def threads_option(default: str = "all cores") -> Any:
    """``--threads N``: Numba threads (capped at the threads Numba was started with)."""
    return Annotated[int | None, typer.Option(
        "--threads", min=1, help=f"Numba threads (>= 1; at most the cores Numba sees). [default: {default}]")]


def set_threads(threads: int | None) -> None:
    """Apply ``--threads`` (None: leave Numba's setting)."""
    if threads is None:
        return
    import numba

    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))


# ----------------------------------------------------------------------------- neuron options (same everywhere)
_D = NEURON_DEFAULTS
Neuron = Annotated[str | None, typer.Option(
    "--neuron", help=f"Hidden neuron model: lif | adlif. [default: {_D['neuron']}]")]
TauMem = Annotated[float | None, typer.Option(
    "--tau-mem", callback=positive, help=f"Membrane time constant, s (> 0). [default: {_D['tau_mem']}]")]
TauSyn = Annotated[float | None, typer.Option(
    "--tau-syn", callback=positive, help=f"Synaptic time constant, s (> 0). [default: {_D['tau_syn']}]")]
VTh = Annotated[float | None, typer.Option(
    "--v-th", callback=finite, help=f"Firing threshold (finite). [default: {_D['v_th']}]")]
VReset = Annotated[float | None, typer.Option(
    "--v-reset", callback=finite, help=f"Reset potential (below --v-th). [default: {_D['v_reset']}]")]
TRef = Annotated[float | None, typer.Option(
    "--t-ref", callback=non_negative, help=f"Refractory period, s (>= 0). [default: {_D['t_ref']}]")]
TauW = Annotated[float | None, typer.Option(
    "--tau-w", callback=positive, help=f"adLIF adaptation time constant, s (> 0). [default: {_D['tau_w']}]")]
A = Annotated[float | None, typer.Option(
    "--a", callback=finite, help="adLIF sub-threshold coupling a (> -1; oscillating above "
    f"(tau_w - tau_mem)^2 / (4 tau_mem tau_w)). [default: {_D['a']}]")]
B = Annotated[float | None, typer.Option(
    "--b", callback=finite, help=f"adLIF spike-triggered adaptation b. [default: {_D['b']}]")]
Learn = Annotated[list[str] | None, typer.Option(
    "--learn", metavar="NAME[,NAME...]", callback=_names_callback,
    help="Per-neuron parameters to learn, comma-separated or repeated: tau_mem, tau_syn (adlif also tau_w, a, "
         "b). [default: none]")]
Seed = Annotated[int | None, typer.Option(
    "--seed", help="Seed of every random draw (initial parameters, data order or input). [default: 0]")]


# ----------------------------------------------------------------------------- output paths, checked before any work
def check_output_file(path: Path, option: str) -> None:
    """``ValueError`` (one line) unless ``path`` can be created or overwritten as a file."""
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name, e.g. {path / 'out.h5'}")
    parent = path.parent
    if not parent.exists():
        raise ValueError(f"{option} {path}: folder {parent} does not exist (create it first)")
    if not parent.is_dir():
        raise ValueError(f"{option} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ValueError(f"{option} {path}: not writable")


def check_output_dir(path: Path, option: str) -> None:
    """``ValueError`` (one line) unless ``path`` is, or can be created as, a writable folder."""
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder")
    p = path
    while not p.exists():  # the nearest existing ancestor decides whether the folders can be made
        if p.parent == p:
            break
        p = p.parent
    if p.exists() and not p.is_dir():
        raise ValueError(f"{option} {path}: {p} is a file, not a folder")
    if p.exists() and not os.access(p, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {p} is not writable")
