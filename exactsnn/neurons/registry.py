"""The one table of neuron models: what config, checkpoints, the CLI, ``Layer`` and the optimiser know.

Each model module (``lif.py``, ``adlif.py``) defines its frozen dataclass, its scalar maths and a
:class:`ModelSpec`; this module collects the specs. Everything outside the model modules asks the
registry instead of naming model classes, so a new model is one module plus one line in ``_SPECS``.

A spec says:

* ``name``: the class name stored in checkpoints (``"LIF"``); ``key``: the config / CLI name (``"lif"``);
* ``learnable``: the per-neuron parameters ``Layer(learn=...)`` may train, with ``bounds`` (the interval
  the optimiser projects each onto after a step) and which of them are ``time_constants`` (seconds:
  they step with ``train.tau_lr``);
* ``family``: the kernel family the layer plan (:mod:`exactsnn.engine.plan`) runs the model on:
  ``"lif"`` (two-state closed forms), ``"linear"`` (three-state linear system) or ``"readout"``
  (non-spiking, integrated by the loss).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exactsnn.neurons.adlif import ADLIF_SPEC
from exactsnn.neurons.lif import LI_SPEC, LIF_SPEC
from exactsnn.neurons.spec import ModelSpec

__all__ = [
    "ModelSpec", "MODELS", "spec_of", "spec_by_key", "model_keys", "make_neuron", "LearnableParameter",
    "learnable_parameter",
]

_SPECS: tuple[ModelSpec, ...] = (LIF_SPEC, LI_SPEC, ADLIF_SPEC)

# by checkpoint name ("LIF") and by config key ("lif")
MODELS: dict[str, ModelSpec] = {s.name: s for s in _SPECS}
_BY_KEY: dict[str, ModelSpec] = {s.key: s for s in _SPECS}


@dataclass(frozen=True)
class LearnableParameter:
    """A learned per-neuron parameter as the optimiser sees it: bounds and whether it is a time constant."""

    lower: float
    upper: float
    time_constant: bool


def spec_of(neuron: Any) -> ModelSpec:
    """The spec of a neuron instance; ``ValueError`` for an object that is not a registered model."""
    spec = MODELS.get(type(neuron).__name__)
    if spec is None or spec.cls is not type(neuron):
        known = ", ".join(f"es.{s.name}()" for s in _SPECS)
        raise ValueError(f"Layer.neuron must be a neuron model ({known}), got {neuron!r}")
    return spec


def spec_by_key(key: str) -> ModelSpec:
    """The spec of a config / CLI name such as ``"adlif"``; ``ValueError`` naming the choices otherwise."""
    spec = _BY_KEY.get(key) if isinstance(key, str) else None
    if spec is None:
        raise ValueError(f"neuron must be one of {', '.join(model_keys())}, got {key!r}")
    return spec


def model_keys(spiking_only: bool = True) -> tuple[str, ...]:
    """Config / CLI names of the registered models (hidden-layer models by default)."""
    return tuple(s.key for s in _SPECS if s.spiking or not spiking_only)


def make_neuron(key: str, values: Mapping[str, Any] | None = None) -> Any:
    """An instance of model ``key`` from the fields found in ``values`` (missing or None: the model's default).

    Keys of ``values`` that are not fields of the model are ignored, so one mapping of options
    (a config section, CLI options) serves every model.
    """
    spec = spec_by_key(key)
    values = values or {}
    kw = {f.name: values[f.name] for f in dataclasses.fields(spec.cls) if values.get(f.name) is not None}
    return spec.cls(**kw)


def learnable_parameter(name: str) -> LearnableParameter:
    """How the optimiser treats the learned parameter ``name`` (same bounds in every model that has it)."""
    for spec in _SPECS:
        if name in spec.learnable:
            lo, hi = spec.bounds.get(name, (-math.inf, math.inf))
            return LearnableParameter(lo, hi, name in spec.time_constants)
    raise ValueError(f"{name!r} is not a learnable neuron parameter of any model")
