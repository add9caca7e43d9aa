""":class:`ModelSpec`: what a neuron model module declares about itself (see :mod:`exactsnn.neurons.registry`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["ModelSpec", "FAMILIES", "TAU_MIN", "A_MIN"]

TAU_MIN = 1e-4  # s: learned time constants stay at or above 0.1 ms
A_MIN = -0.9  # learned adaptation couplings stay clear of the instability at a = -1

# kernel families the layer plan knows (exactsnn/engine/plan.py)
FAMILIES = ("lif", "linear", "readout")


@dataclass(frozen=True, eq=False)
class ModelSpec:
    """One neuron model as the rest of the package sees it.

    ``name``: class name stored in checkpoints; ``key``: config / CLI name; ``cls``: the frozen
    dataclass; ``family``: kernel family (one of ``FAMILIES``); ``learnable``: per-neuron parameters
    ``Layer(learn=...)`` accepts; ``time_constants``: those of them in seconds (stepped with
    ``train.tau_lr``); ``bounds``: name -> (lower, upper) the optimiser projects a learned value onto.
    """

    name: str
    key: str
    cls: type
    family: str
    learnable: tuple[str, ...] = ()
    time_constants: tuple[str, ...] = ()
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"ModelSpec {self.name}: family must be one of {FAMILIES}, got {self.family!r}")
        missing = [n for n in (*self.time_constants, *self.bounds) if n not in self.learnable]
        if missing:
            raise ValueError(f"ModelSpec {self.name}: {missing} are not in learnable")

    @property
    def spiking(self) -> bool:
        """Whether the model emits spikes (everything but a readout)."""
        return self.family != "readout"
