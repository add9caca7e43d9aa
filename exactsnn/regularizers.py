"""Spike-count (hypo- and hyper-activity) regularisation for EventProp.

Penalty per sample and per neuron (``per="neuron"``) or per layer population (``per="population"``,
n = mean count over the layer's neurons), with n the number of spikes in [0, T]::

    phi(n) = s_lo relu(nu_lo - n)^2 + s_hi relu(n - nu_hi)^2

averaged over the batch and summed over the regularised layers. This value is what
:func:`exactsnn.loss_and_grad` adds to the task loss.

Gradient. A spike count is piecewise constant in the parameters, so its true gradient is zero
wherever it exists. What EventProp propagates is the exact gradient of the *relaxed* penalty in
which each spike's contribution fades linearly as it moves towards the end of the window::

    R = sum_groups phi'(n) * (-sum_{spikes s of the group} t_s / T)     with phi'(n) held at the current counts

so every spike receives dR/dt_s = -phi'(n) / (T * group size), entering the reverse replay as an
extra term of dL/dt_s (hence of the lam_V jump at that spike, exactly like a downstream arrival).
Hyper-activity (phi' > 0) thus pushes spikes later, towards and out of the window; hypo-activity
pushes them earlier. Silent neurons get no gradient (inherent to EventProp). ``relaxed_value``
returns R so that finite differences can verify the gradient exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from exactsnn.events import SpikeBatch

__all__ = ["SpikeCount"]


@dataclass(frozen=True)
class SpikeCount:
    """Hypo/hyper-activity penalty on spike counts per trial.

    ``nu_lo``, ``nu_hi``: lower and upper targets (spikes per trial; per neuron, or mean per neuron
    of the layer with ``per="population"``); ``s_lo``, ``s_hi``: strengths (>= 0); ``layers``:
    indices of the spiking layers to regularise (None: every spiking layer).
    """

    nu_lo: float = 0.0
    nu_hi: float = 20.0
    s_lo: float = 0.0
    s_hi: float = 1e-3
    per: str = "neuron"
    layers: Sequence[int] | None = None

    def __post_init__(self) -> None:
        for name in ("nu_lo", "nu_hi", "s_lo", "s_hi"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and np.isfinite(v) and v >= 0):
                raise ValueError(f"SpikeCount.{name} must be a finite number >= 0, got {v!r}")
        if self.nu_lo > self.nu_hi:
            raise ValueError(f"SpikeCount.nu_lo ({self.nu_lo}) must not exceed nu_hi ({self.nu_hi})")
        if self.per not in ("neuron", "population"):
            raise ValueError(f"SpikeCount.per must be 'neuron' or 'population', got {self.per!r}")
        if self.layers is not None:
            object.__setattr__(self, "layers", tuple(int(i) for i in self.layers))

    def phi(self, n: np.ndarray) -> np.ndarray:
        """The penalty of counts ``n``."""
        return self.s_lo * np.maximum(self.nu_lo - n, 0.0) ** 2 + self.s_hi * np.maximum(n - self.nu_hi, 0.0) ** 2

    def dphi(self, n: np.ndarray) -> np.ndarray:
        """d phi / d n."""
        return -2.0 * self.s_lo * np.maximum(self.nu_lo - n, 0.0) + 2.0 * self.s_hi * np.maximum(n - self.nu_hi, 0.0)

    def selected(self, n_layers: int, spiking: Sequence[bool]) -> list[int]:
        """Indices of the layers this regulariser applies to."""
        if self.layers is None:
            return [l for l in range(n_layers) if spiking[l]]
        for l in self.layers:
            if not (0 <= l < n_layers) or not spiking[l]:
                raise ValueError(f"SpikeCount.layers: {l} is not a spiking layer of this network")
        return list(self.layers)

    def _counts(self, spikes: SpikeBatch, n_units: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Group counts (B, groups), each spike's group column, and the group size."""
        B = len(spikes)
        sample = np.repeat(np.arange(B), spikes.counts())
        if self.per == "neuron":
            counts = np.zeros((B, n_units))
            np.add.at(counts, (sample, spikes.units), 1.0)
            return counts, spikes.units.astype(np.int64), 1.0
        counts = (spikes.counts() / n_units).reshape(B, 1)
        return counts, np.zeros(spikes.n_events, np.int64), float(n_units)

    def value(self, spikes: SpikeBatch, n_units: int) -> float:
        """Penalty of one layer's spikes, mean over the batch."""
        counts, _, _ = self._counts(spikes, n_units)
        return float(self.phi(counts).sum() / max(len(spikes), 1))

    def spike_time_grad(self, spikes: SpikeBatch, n_units: int, t_max: float) -> np.ndarray:
        """dR/dt_s of the relaxed penalty for every spike of one layer (aligned with spikes.times)."""
        counts, col, size = self._counts(spikes, n_units)
        B = max(len(spikes), 1)
        sample = np.repeat(np.arange(len(spikes)), spikes.counts())
        return -self.dphi(counts)[sample, col] / (t_max * size * B)

    def relaxed_value(self, spikes: SpikeBatch, n_units: int, t_max: float) -> float:
        """The relaxed penalty R whose exact gradient EventProp propagates (for finite differences)."""
        return float(np.sum(self.spike_time_grad(spikes, n_units, t_max) * spikes.times))
