"""Layer plan: the one place that decides how a layer is simulated, differentiated and traced.

``simulate``, ``loss_and_grad`` and ``Recording.voltage`` all ask :func:`layer_plan` and dispatch on
its two fields:

* ``family`` (from the model's registry spec, :mod:`exactsnn.neurons.registry`): ``"lif"`` runs on the
  two-state closed forms (``neurons/lif.py``), ``"linear"`` on the three-state linear-system numerics
  (``neurons/linear.py``), ``"readout"`` is integrated by the loss and never simulated as spikes. A LIF
  layer that learns per-neuron time constants currently runs on the ``"linear"`` kernels with a = b = 0
  (the same maths; the LIF kernels take shared time constants only).
* ``schedule``: ``"shared_clock"`` for a layer without delays (one clock per layer: every neuron is
  brought to each event together) or ``"arrivals"`` when some synapses have delays (per-synapse
  arrival times, a heap of pending arrivals and predicted crossings).
"""

from __future__ import annotations

from dataclasses import dataclass

from exactsnn.network import Layer
from exactsnn.neurons.registry import spec_of

__all__ = ["LayerPlan", "layer_plan"]


@dataclass(frozen=True)
class LayerPlan:
    """How one layer runs: kernel ``family``, ``schedule`` and which synapses carry delays."""

    family: str
    schedule: str
    recurrent: bool
    ff_delays: bool
    rec_delays: bool

    @property
    def delays(self) -> bool:
        """Whether any synapse of the layer has a delay (the kernels' arrival schedule)."""
        return self.ff_delays or self.rec_delays


def layer_plan(layer: Layer) -> LayerPlan:
    """The plan of ``layer`` (pure function of its description)."""
    family = spec_of(layer.neuron).family
    if family == "lif" and layer.learn:
        family = "linear"  # per-neuron taus: the linear kernels with a = b = 0
    if family == "readout":
        schedule = "none"
    else:
        schedule = "arrivals" if layer.ff_delays or layer.rec_delays else "shared_clock"
    return LayerPlan(family, schedule, layer.recurrent, layer.ff_delays, layer.rec_delays)
