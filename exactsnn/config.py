"""Training configuration: nested frozen dataclasses, read from TOML, overridable, saved with every run.

A configuration file has one table per section; every key is optional (defaults below train the
built-in Yin-Yang task)::

    [data]       dataset = "yinyang" | "shd" | "ssc" | "files";  data_dir, train_file, ...
    [network]    hidden = [600], tau_mem = 0.02, recurrent = false, delays = false, ...
    [loss]       name = "max" | "sum" | "sum_exp" | "sum_gaussian" | "first_spike", plus its options
    [regularizer]  s_lo, nu_lo, s_hi, nu_hi, per  (off while s_lo = s_hi = 0)
    [augment]    shift, blend, delay_line, delay_line_step
    [train]      epochs, batch_size, lr, delay_lr, warmup_epochs, decay, patience, seed, ...

Overrides are ``section.key=value`` strings whose value is parsed as TOML (``train.lr=2e-3``,
``network.hidden=[256]``, ``data.dataset="shd"``; a bare word is taken as a string). Unknown
sections or keys and values of the wrong type are one-line ``ValueError`` s. Times in seconds.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from exactsnn.neurons.registry import model_keys, spec_by_key

__all__ = [
    "Config",
    "DataConfig",
    "NetworkConfig",
    "LossConfig",
    "RegularizerConfig",
    "AugmentConfig",
    "TrainConfig",
    "load_config",
    "config_from_dict",
    "config_to_dict",
    "apply_overrides",
    "to_toml",
]

DATASETS = ("yinyang", "shd", "ssc", "files")
NEURONS = model_keys()  # hidden-layer neuron models (exactsnn/neurons/registry.py)
# neuron parameters each model can learn per neuron (network.learn)
LOSS_NAMES = ("max", "sum", "sum_exp", "sum_gaussian", "first_spike")
# first_spike's default initial output drive: the readout weights' mean summed over the presynaptic
# layer, in units of v_th (12 / 600 = 0.02 for the Yin-Yang default; 0, the LI readouts' mean, leaves
# every output silent, so first_spike could not learn)
FIRST_SPIKE_DRIVE = 12.0


def _check(cond: bool, msg: str) -> None:
    if not cond:
        raise ValueError(msg)


@dataclass(frozen=True)
class DataConfig:
    """Where the samples come from.

    ``dataset``: ``yinyang`` (generated), ``shd`` / ``ssc`` (zenkelab files in ``data_dir``) or
    ``files`` (your own files in the SHD layout: ``train_file``, ``test_file``, optional
    ``valid_file``). ``duration`` (s): simulation window; trials are cropped to it (default
    0.06 s for Yin-Yang, 1 s otherwise). ``val_fraction``: share of the training set held out for
    validation when the dataset has no validation split (0: none). Yin-Yang latency code:
    feature f -> spike at ``t_early + f (t_late - t_early)``, bias spike at ``t_bias`` (s).
    """

    dataset: str = "yinyang"
    data_dir: str = ""
    train_file: str = ""
    test_file: str = ""
    valid_file: str = ""
    duration: float | None = None
    check_md5: bool = False
    val_fraction: float = 0.1
    t_early: float = 0.0
    t_late: float = 20e-3
    t_bias: float = 0.0

    def __post_init__(self) -> None:
        _check(self.dataset in DATASETS, f"data.dataset must be one of {', '.join(DATASETS)}, got {self.dataset!r}")
        _check(self.duration is None or (math.isfinite(self.duration) and self.duration > 0),
               f"data.duration must be > 0 seconds, got {self.duration!r}")
        _check(0 <= self.val_fraction < 1, f"data.val_fraction must be in [0, 1), got {self.val_fraction!r}")

    @property
    def t_max(self) -> float:
        """Simulation window (s)."""
        if self.duration is not None:
            return self.duration
        return 0.06 if self.dataset == "yinyang" else 1.0


@dataclass(frozen=True)
class NetworkConfig:
    """Hidden layers (sizes), their neuron model and connectivity, and the LI readout.

    Times in seconds. Initial feedforward weights ~ N(weight_mean, (weight_scale / sqrt(n_pre))^2),
    readout weights ~ N(readout_mean, (readout_scale / sqrt(n_pre))^2). ``readout_mean`` left unset
    (None) depends on the loss (:meth:`readout_init_mean`): 0 for the LI readout of the voltage losses,
    ``FIRST_SPIKE_DRIVE * v_th / n_pre`` for the spiking output of ``first_spike``, whose units must
    fire from the start (a silent output has no first spike, hence no gradient).
    """

    hidden: tuple[int, ...] = (600,)
    neuron: str = "lif"
    tau_mem: float = 20e-3
    tau_syn: float = 5e-3
    tau_w: float = 100e-3
    a: float = 0.5
    b: float = 0.2
    learn: tuple[str, ...] = ()
    v_th: float = 1.0
    v_reset: float = 0.0
    t_ref: float = 0.0
    recurrent: bool = False
    delays: bool | str = False
    delay_max: float = 10e-3
    weight_mean: float = 1.5
    weight_scale: float = 6.7
    recurrent_scale: float = 0.5
    readout_tau_mem: float = 20e-3
    readout_tau_syn: float = 5e-3
    readout_mean: float | None = None
    readout_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        _check(len(self.hidden) >= 1 and all(isinstance(h, int) and h >= 1 for h in self.hidden),
               f"network.hidden must be a list of positive layer sizes, got {list(self.hidden)!r}")
        _check(self.neuron in NEURONS, f"network.neuron must be one of {', '.join(NEURONS)}, got {self.neuron!r}")
        object.__setattr__(self, "learn", tuple(self.learn))
        allowed = spec_by_key(self.neuron).learnable
        _check(isinstance(self.delays, bool) or self.delays == "feedforward",
               f"network.delays must be true, false or \"feedforward\", got {self.delays!r}")
        for name in self.learn:
            _check(name in allowed, f"network.learn: {name!r} is not a learnable parameter of {self.neuron} "
                                    f"(choose from {', '.join(allowed)})")
        for name in ("weight_scale", "recurrent_scale", "readout_scale"):
            v = getattr(self, name)
            _check(math.isfinite(v) and v >= 0, f"network.{name} must be >= 0, got {v!r}")
        for name in ("tau_mem", "tau_syn", "tau_w", "readout_tau_mem", "readout_tau_syn"):
            v = getattr(self, name)
            _check(math.isfinite(v) and v > 0, f"network.{name} must be a finite number > 0 (seconds), got {v!r}")
        for name in ("t_ref", "delay_max"):
            v = getattr(self, name)
            _check(math.isfinite(v) and v >= 0, f"network.{name} must be a finite number >= 0 (seconds), got {v!r}")
        for name in ("v_th", "v_reset", "a", "b", "weight_mean", "readout_mean"):
            v = getattr(self, name)
            _check(v is None and name == "readout_mean" or v is not None and math.isfinite(v),
                   f"network.{name} must be a finite number, got {v!r}")

    def readout_init_mean(self, loss: str, n_pre: int) -> float:
        """Mean initial readout weight for loss ``loss`` with ``n_pre`` presynaptic units: ``readout_mean``
        if set; else 0 for an LI readout and ``FIRST_SPIKE_DRIVE * v_th / n_pre`` for first_spike's
        spiking output (on Yin-Yang every output then fires 1-2 spikes per sample at init)."""
        if self.readout_mean is not None:
            return self.readout_mean
        return FIRST_SPIKE_DRIVE * self.v_th / n_pre if loss == "first_spike" else 0.0


@dataclass(frozen=True)
class LossConfig:
    """Readout loss ``name`` and its options (see :mod:`exactsnn.losses`), e.g. ``mu``, ``sigma``."""

    name: str = "max"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check(self.name in LOSS_NAMES, f"loss.name must be one of {', '.join(LOSS_NAMES)}, got {self.name!r}")
        object.__setattr__(self, "options", dict(self.options))


@dataclass(frozen=True)
class RegularizerConfig:
    """Spike-count penalty of the hidden layers (:class:`exactsnn.regularizers.SpikeCount`); off at 0 strengths.

    ``output_s_lo``, ``output_nu_lo`` (first_spike only, while the penalty above is off): a hypo-activity
    penalty ``output_s_lo relu(output_nu_lo - n)^2`` on each spiking output unit's spike count n per trial.
    A silent output has no first spike, hence no gradient; without this floor the outputs drift into
    silence during training (every unit is pushed later on the 2/3 of the trials it loses) and learning
    stops. 0 turns it off.
    """

    s_lo: float = 0.0
    nu_lo: float = 0.0
    s_hi: float = 0.0
    nu_hi: float = 100.0
    per: str = "neuron"
    output_s_lo: float = 1.0
    output_nu_lo: float = 2.0

    @property
    def enabled(self) -> bool:
        return self.s_lo > 0 or self.s_hi > 0


@dataclass(frozen=True)
class AugmentConfig:
    """Training-set augmentation (SHD recipes): channel shift (channels), same-class blend
    (probability), input delay line (copies, spacing in s; applied to every split)."""

    shift: int = 0
    blend: float = 0.0
    delay_line: int = 0
    delay_line_step: float = 30e-3

    def __post_init__(self) -> None:
        _check(self.shift >= 0, f"augment.shift must be >= 0 channels, got {self.shift!r}")
        _check(0 <= self.blend <= 1, f"augment.blend must be a probability in [0, 1], got {self.blend!r}")
        _check(self.delay_line >= 0, f"augment.delay_line must be >= 0 copies, got {self.delay_line!r}")
        _check(self.delay_line_step >= 0, f"augment.delay_line_step must be >= 0 s, got {self.delay_line_step!r}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation: Adam with warm-up and decay (:mod:`exactsnn.optim`). ``select``: what makes
    the best checkpoint, ``"val_loss"`` (lowest validation loss; steadier than the accuracy of a
    small validation set) or ``"val_acc"``; early stopping after ``patience`` epochs without
    improvement of it (0: off)."""

    epochs: int = 80
    batch_size: int = 16
    lr: float = 2e-3
    delay_lr: float | None = None
    tau_lr: float | None = None
    beta1: float = 0.9
    beta2: float = 0.999
    warmup_epochs: float = 0.0
    decay: str = "cosine"
    gamma: float = 0.95
    min_factor: float = 0.0
    patience: int = 0
    select: str = "val_loss"
    seed: int = 0
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, f"train.epochs must be >= 1, got {self.epochs!r}")
        _check(self.batch_size >= 1, f"train.batch_size must be >= 1, got {self.batch_size!r}")
        _check(self.eval_batch_size >= 1, f"train.eval_batch_size must be >= 1, got {self.eval_batch_size!r}")
        _check(self.patience >= 0, f"train.patience must be >= 0, got {self.patience!r}")
        _check(math.isfinite(self.lr) and self.lr > 0, f"train.lr must be a finite number > 0, got {self.lr!r}")
        for name in ("delay_lr", "tau_lr"):
            v = getattr(self, name)
            _check(v is None or (math.isfinite(v) and v >= 0),
                   f"train.{name} must be a finite number >= 0 (or left out: lr * 1e-2), got {v!r}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            _check(0 <= v < 1, f"train.{name} must be in [0, 1), got {v!r}")
        _check(math.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0,
               f"train.warmup_epochs must be a finite number >= 0, got {self.warmup_epochs!r}")
        _check(self.select in ("val_loss", "val_acc"),
               f"train.select must be 'val_loss' or 'val_acc', got {self.select!r}")


@dataclass(frozen=True)
class Config:
    """A whole training run."""

    data: DataConfig = field(default_factory=DataConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    regularizer: RegularizerConfig = field(default_factory=RegularizerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# ----------------------------------------------------------------------------- dict <-> dataclasses
def _coerce(value: Any, tp: Any, where: str) -> Any:
    """``value`` as the annotated type ``tp`` (ints accepted for floats, lists for tuples)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except ValueError:
                pass
        raise ValueError(f"{where}: expected {tp}, got {value!r}")
    if origin is tuple:
        (elem, _) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            value = [value]
        return tuple(_coerce(v, elem, where) for v in value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a string, got {value!r}")
        return value
    if origin is Mapping or tp is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    return value


def _section_from_dict(cls: type, d: Mapping[str, Any], section: str) -> Any:
    if not isinstance(d, Mapping):
        raise ValueError(f"[{section}] must be a table, got {d!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in d.items():
        if key not in names:
            if cls is LossConfig:  # loss options live beside the name in the [loss] table
                extra[key] = value
                continue
            raise ValueError(f"unknown option {section}.{key} (known: {', '.join(sorted(names))})")
        kwargs[key] = _coerce(value, hints[key], f"{section}.{key}")
    if extra:
        kwargs["options"] = {**dict(kwargs.get("options", {})), **extra}
    try:
        return cls(**kwargs)
    except TypeError as exc:  # pragma: no cover - every field has a default
        raise ValueError(f"[{section}]: {exc}") from None


def config_from_dict(d: Mapping[str, Any]) -> Config:
    """Build a :class:`Config` from nested dicts (a parsed TOML file); missing keys take defaults."""
    if not isinstance(d, Mapping):
        raise ValueError(f"configuration must be a table, got {type(d).__name__}")
    sections = {f.name: f for f in dataclasses.fields(Config)}
    hints = typing.get_type_hints(Config)
    kwargs = {}
    for name, value in d.items():
        if name not in sections:
            raise ValueError(f"unknown configuration section [{name}] (known: {', '.join(sections)})")
        kwargs[name] = _section_from_dict(hints[name], value, name)
    return Config(**kwargs)


def config_to_dict(cfg: Config) -> dict[str, dict[str, Any]]:
    """Nested plain dicts (None values left out; loss options flattened into [loss])."""
    out: dict[str, dict[str, Any]] = {}
    for f in dataclasses.fields(Config):
        sec = getattr(cfg, f.name)
        d: dict[str, Any] = {}
        for sf in dataclasses.fields(sec):
            v = getattr(sec, sf.name)
            if v is None:
                continue
            if sf.name == "options":
                d.update(v)
            else:
                d[sf.name] = list(v) if isinstance(v, tuple) else v
        out[f.name] = d
    return out


def load_config(path: str | Path) -> Config:
    """Read a TOML configuration file."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: no such configuration file")
    try:
        d = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{p}: not valid TOML ({exc})") from None
    try:
        return config_from_dict(d)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None


def _parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare word: a string


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """``cfg`` with ``section.key=value`` overrides applied (value parsed as TOML)."""
    d = config_to_dict(cfg)
    for item in overrides:
        key, sep, text = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot or not name:
            raise ValueError(f"override {item!r} must look like section.key=value, e.g. train.lr=1e-3")
        if section not in d:
            raise ValueError(f"unknown configuration section [{section}] in override {item!r}")
        d[section][name] = _parse_value(text.strip())
    return config_from_dict(d)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {v!r} to TOML")


def to_toml(cfg: Config) -> str:
    """The configuration as TOML text that :func:`load_config` reads back to an equal Config."""
    lines = []
    for section, d in config_to_dict(cfg).items():
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in d.items()]
        lines.append("")
    return "\n".join(lines)
