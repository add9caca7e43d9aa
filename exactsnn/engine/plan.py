"""Layer plan: the one place that decides how a layer is simulated, differentiated and traced.

``simulate``, ``loss_and_grad`` and ``Recording.voltage`` all ask :func:`layer_plan` and dispatch on
its two fields:

* ``family`` (from the model's registry spec, :mod:`exactsnn.neurons.registry`): ``"lif"`` runs on the
  two-state closed forms (``neurons/lif.py``), ``"linear"`` on the three-state linear-system numerics
  (``neurons/linear.py``), ``"readout"`` is integrated by the loss and never simulated as spikes. A LIF
  layer that learns per-neuron time constants stays ``"lif"`` on the shared clock (the dense kernels take
  per-neuron tau_mem, tau_syn); with delays it runs on the ``"linear"`` kernels with a = b = 0 (the same
  maths; the LIF arrival kernels take shared time constants only).
* ``schedule``: ``"shared_clock"`` for a layer without delays (one clock per layer: every neuron is
  brought to each event together) or ``"arrivals"`` when some synapses have delays (per-synapse
  arrival times, a heap of pending arrivals and predicted crossings). The reverse replay follows the
  same schedule, except that a ``"linear"`` layer learning a parameter of its system matrix (tau_mem,
  tau_w, tau_syn, a; b is fine) is differentiated on the per-arrival replay even without delays
  (``exactsnn.grad._linear_layer_backward``).
* ``ff_windows``: an arrivals layer whose delays are on the feedforward synapses only (zero-delay recurrence, or
  none) runs a windowed order-free forward kernel instead of the per-arrival heap kernel: a LIF-family layer
  :mod:`exactsnn.engine.cpu.ff_delays` when its parameters allow it (v_th > 0, tau_mem and tau_syn not nearly
  equal), a linear-family layer :mod:`exactsnn.engine.cpu.linear_ff` when v_th > 0 (its reverse replay is
  :mod:`exactsnn.engine.cpu.linear_ff_windows` whatever v_th).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from exactsnn.network import Layer
from exactsnn.neurons.registry import spec_of

__all__ = ["LayerPlan", "layer_plan", "learned_lif_on_linear"]

# set by :func:`learned_lif_on_linear` only (tests): route every LIF layer that learns neuron parameters to
# the linear kernels, as before they ran on the shared-clock LIF kernels
_LEARNED_LIF_ON_LINEAR = [False]


@contextmanager
def learned_lif_on_linear() -> Iterator[None]:
    """Within the block, LIF layers that learn time constants run on the linear kernels (a = b = 0), delays
    or not: the independent implementation the per-neuron-tau LIF kernels are compared with in the tests."""
    old = _LEARNED_LIF_ON_LINEAR[0]
    _LEARNED_LIF_ON_LINEAR[0] = True
    try:
        yield
    finally:
        _LEARNED_LIF_ON_LINEAR[0] = old


@dataclass(frozen=True)
class LayerPlan:
    """How one layer runs: kernel ``family``, ``schedule`` and which synapses carry delays."""

    family: str
    schedule: str
    recurrent: bool
    ff_delays: bool
    rec_delays: bool
    ff_windows: bool = False

    @property
    def delays(self) -> bool:
        """Whether any synapse of the layer has a delay (the kernels' arrival schedule)."""
        return self.ff_delays or self.rec_delays


def layer_plan(layer: Layer) -> LayerPlan:
    """The plan of ``layer`` (pure function of its description)."""
    family = spec_of(layer.neuron).family
    if family == "lif" and layer.learn and (layer.ff_delays or layer.rec_delays or _LEARNED_LIF_ON_LINEAR[0]):
        family = "linear"  # per-neuron taus with delays: the linear kernels with a = b = 0
    if family == "readout":
        schedule = "none"
    else:
        schedule = "arrivals" if layer.ff_delays or layer.rec_delays else "shared_clock"
    ff_windows = False
    if family == "lif" and schedule == "arrivals" and not layer.rec_delays:
        from exactsnn.engine.cpu.ff_delays import ff_supported

        nrn = layer.neuron
        ff_windows = ff_supported(nrn.tau_mem, nrn.tau_syn, nrn.v_th)
    elif family == "linear" and schedule == "arrivals" and not layer.rec_delays:
        ff_windows = layer.neuron.v_th > 0.0
    return LayerPlan(family, schedule, layer.recurrent, layer.ff_delays, layer.rec_delays, ff_windows)
