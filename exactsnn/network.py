"""Network description (layers of neurons), its parameters and their initialisers.

A :class:`Network` has ``n_inputs`` input channels and a list of :class:`Layer` s. Layer ``l``
receives the spikes of layer ``l-1`` (of the input for ``l = 0``) through dense feedforward
weights ``W_l`` of shape ``(n_l, n_{l-1})`` indexed ``[post, pre]``; a recurrent layer also
receives its own spikes through ``R_l`` of shape ``(n_l, n_l)``. A layer with ``delays=True``
has a continuous, non-negative transmission delay (seconds) per synapse, feedforward and
recurrent; ``delays="feedforward"`` gives delays to the feedforward synapses only (the recurrent
ones stay instantaneous); otherwise every delay is zero. A spike of unit i at time t reaches unit j at
``t + D[j, i]`` and adds ``W[j, i]`` to j's synaptic current.

A non-spiking readout (:class:`~exactsnn.neurons.LI`) can only be the last layer.

Neuron parameters are the layer's (scalars of its neuron model) unless the layer lists some of them
in ``learn``: those become per-neuron arrays in :class:`Params` (``params.neuron[l]["tau_mem"]``,
shape (n_l,)), initialised to the model's value, with exact gradients like every other group.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from exactsnn.neurons import LI, LIF, AdLIF
from exactsnn.neurons.registry import MODELS, spec_of

__all__ = ["Layer", "Network", "Params"]

NeuronModel = LIF | LI | AdLIF
# default initialisation (Layer.weight_init): assumed presynaptic rate (Hz) and the spread of the
# mean drive across neurons (fraction of v_th)
INIT_RATE_HZ = 10.0
INIT_SPREAD = 0.2
# learned neuron parameters in seconds (from the model registry)
TIME_CONSTANTS = tuple(dict.fromkeys(n for s in MODELS.values() for n in s.time_constants))


@dataclass(frozen=True)
class Layer:
    """A layer of ``size`` neurons of one model.

    ``recurrent``: all-to-all connections within the layer. ``delays``: per-synapse delays
    (``True``: feedforward and recurrent; ``"feedforward"``: feedforward only, the recurrent
    connections stay instantaneous; ``False``: none). Initialisation: feedforward weights ~ N(weight_mean,
    weight_std^2), by default (``None``) those of :meth:`weight_init` (a spiking layer is put at
    its firing threshold for ~10 Hz input; an LI readout, or a layer that sets only ``weight_mean``, gets
    std 1/sqrt(n_pre)); recurrent weights ~
    N(0, recurrent_std^2), default 0.5/sqrt(size), zero diagonal; delays ~ U(0, delay_max) s.
    ``learn``: names of neuron parameters to learn per neuron (LIF: tau_mem, tau_syn; AdLIF also
    tau_w, a, b).
    """

    size: int
    neuron: NeuronModel = field(default_factory=LIF)
    recurrent: bool = False
    delays: bool | str = False
    weight_mean: float | None = None
    weight_std: float | None = None
    recurrent_std: float | None = None
    delay_max: float = 10e-3
    learn: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, (int, np.integer)) or self.size < 1:
            raise ValueError(f"Layer.size must be a positive integer, got {self.size!r}")
        object.__setattr__(self, "size", int(self.size))
        spec = spec_of(self.neuron)
        if isinstance(self.delays, (bool, np.bool_)):
            object.__setattr__(self, "delays", bool(self.delays))
        elif self.delays != "feedforward":
            raise ValueError(f"Layer.delays must be True, False or 'feedforward', got {self.delays!r}")
        if isinstance(self.learn, str):
            learn = (self.learn,)
        elif isinstance(self.learn, (tuple, list)) and all(isinstance(x, str) for x in self.learn):
            learn = tuple(self.learn)
        else:
            raise ValueError(f"Layer.learn must be a tuple of parameter names such as ('tau_mem',), got {self.learn!r}")
        allowed = spec.learnable
        for name in learn:
            if name not in allowed:
                model = spec.name
                raise ValueError(
                    f"Layer.learn: {name!r} is not a learnable parameter of {model} "
                    f"(choose from {', '.join(allowed) or 'none'})"
                )
        object.__setattr__(self, "learn", tuple(dict.fromkeys(learn)))
        if not self.neuron.spiking and self.recurrent:
            raise ValueError("a non-spiking LI readout layer cannot be recurrent")
        for name in ("weight_mean", "delay_max"):
            v = getattr(self, name)
            if v is not None and not np.isfinite(v):
                raise ValueError(f"Layer.{name} must be finite, got {v!r}")
        if self.delay_max < 0:
            raise ValueError(f"Layer.delay_max must be >= 0 seconds, got {self.delay_max!r}")
        for name in ("weight_std", "recurrent_std"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v >= 0):
                raise ValueError(f"Layer.{name} must be a finite number >= 0, got {v!r}")

    def weight_init(self, n_pre: int) -> tuple[float, float]:
        """(mean, std) of the initial feedforward weights for ``n_pre`` inputs: the layer's own where set, else:

        Spiking layer: a working point for input of ``INIT_RATE_HZ`` (10 Hz, SHD's mean rate per channel)
        on every presynaptic unit. A spike train of rate r through weight w adds a mean synaptic current
        r w tau_syn, and V follows I with DC gain 1 (LIF) or 1/(1 + a) (adLIF: the adaptation current
        settles at a V). With ``n_pre`` inputs of mean weight mu the mean free membrane potential is
        therefore n_pre r tau_syn mu / (1 + a); the default mean puts it at the threshold,
        ``mu = (1 + a) v_th / (n_pre r tau_syn)`` (v_th measured from rest, 0; v_th - v_reset if
        v_th <= 0). The default std spreads that mean drive across the neurons by ``INIT_SPREAD``
        (20 %) of v_th, ``std = INIT_SPREAD (1 + a) v_th / (sqrt(n_pre) r tau_syn)`` (the Poisson
        fluctuations of V are then of the same order), so that the layer fires around threshold
        instead of all-or-nothing: a 700-256 recurrent LIF layer (tau 20/5 ms) on 10 Hz Poisson input
        fires at ~20 Hz (7 Hz input: ~6 Hz, 15 Hz: ~45 Hz). For 700 inputs and tau_syn = 5 ms:
        mu = 0.0286, std = 0.151. Non-spiking (LI) readout: mean 0, std 1/sqrt(n_pre).
        ``weight_mean`` / ``weight_std`` set on the layer replace the respective default; a layer that sets
        only ``weight_mean`` keeps the std 1/sqrt(n_pre) it always had (the spread above belongs to the
        default mean).
        """
        nrn = self.neuron
        if nrn.spiking:
            v_th = float(nrn.v_th)
            theta = v_th if v_th > 0 else v_th - float(nrn.v_reset)
            gain = 1.0 + float(getattr(nrn, "a", 0.0))
            unit = gain * theta / (INIT_RATE_HZ * float(nrn.tau_syn))  # total weight that drives V to v_th
            mean, std = unit / n_pre, INIT_SPREAD * unit / np.sqrt(n_pre)
            if self.weight_mean is not None:
                std = 1.0 / np.sqrt(n_pre)
        else:
            mean, std = 0.0, 1.0 / np.sqrt(n_pre)
        if self.weight_mean is not None:
            mean = self.weight_mean
        if self.weight_std is not None:
            std = self.weight_std
        return float(mean), float(std)

    def describe(self) -> str:
        """One line such as ``256 LIF (recurrent, feedforward delays, learns tau_mem)``."""
        flags = ["recurrent"] if self.recurrent else []
        if self.delays:
            flags.append("feedforward delays" if self.delays == "feedforward" else "delays")
        if self.learn:
            flags.append("learns " + ",".join(self.learn))
        return f"{self.size} {type(self.neuron).__name__}" + (f" ({', '.join(flags)})" if flags else "")

    @property
    def ff_delays(self) -> bool:
        """Whether the feedforward synapses have (learnable) delays."""
        return bool(self.delays)

    @property
    def rec_delays(self) -> bool:
        """Whether the recurrent synapses have (learnable) delays (``delays=True`` on a recurrent layer)."""
        return self.delays is True and self.recurrent

    @property
    def linear_kernel(self) -> bool:
        """True when the layer runs on the 3-state linear-neuron kernels (see :mod:`exactsnn.engine.plan`)."""
        from exactsnn.engine.plan import layer_plan

        return layer_plan(self).family == "linear"

    def neuron_arrays(self, learned: dict[str, np.ndarray] | None) -> tuple[np.ndarray, ...]:
        """Per-neuron (tau_mem, tau_w, tau_syn, a, b), each (size,): learned arrays where given.

        A LIF neuron is the linear system with a = b = 0 (its w stays 0; tau_w is then irrelevant).
        """
        nrn = self.neuron
        base = {"tau_mem": nrn.tau_mem, "tau_w": getattr(nrn, "tau_w", 1.0), "tau_syn": nrn.tau_syn,
                "a": getattr(nrn, "a", 0.0), "b": getattr(nrn, "b", 0.0)}
        out = []
        for name in ("tau_mem", "tau_w", "tau_syn", "a", "b"):
            if learned is not None and name in learned:
                out.append(np.ascontiguousarray(learned[name], dtype=np.float64))
            else:
                out.append(np.full(self.size, float(base[name])))
        return tuple(out)


@dataclass(frozen=True, eq=False)
class Params:
    """Trainable parameters, one entry per layer.

    ``weights[l]``: (n_l, n_{l-1}) float64; ``delays[l]``: same shape, seconds (zeros without
    delays); ``recurrent_weights[l]`` and ``recurrent_delays[l]``: (n_l, n_l) or ``None`` for a
    feedforward layer. ``neuron[l]``: the layer's learned neuron parameters, name -> (n_l,) array
    (empty dict when it learns none).
    """

    weights: list[np.ndarray]
    delays: list[np.ndarray]
    recurrent_weights: list[np.ndarray | None] = None  # type: ignore[assignment]
    recurrent_delays: list[np.ndarray | None] = None  # type: ignore[assignment]
    neuron: list[dict[str, np.ndarray]] = None  # type: ignore[assignment]

    def __post_init__(self) -> None:
        n = len(self.weights)
        if len(self.delays) != n:
            raise ValueError(f"Params: {n} weight matrices but {len(self.delays)} delay matrices")
        rw = [None] * n if self.recurrent_weights is None else list(self.recurrent_weights)
        rd = [None] * n if self.recurrent_delays is None else list(self.recurrent_delays)
        if len(rw) != n or len(rd) != n:
            raise ValueError("Params: recurrent_weights and recurrent_delays need one entry per layer")

        def as_f64(a: np.ndarray | None, what: str) -> np.ndarray | None:
            if a is None:
                return None
            arr = np.array(a, dtype=np.float64, copy=True)
            if arr.ndim != 2:
                raise ValueError(f"Params: {what} must be a 2-D array, got shape {arr.shape}")
            return arr

        object.__setattr__(self, "weights", [as_f64(w, f"weights[{i}]") for i, w in enumerate(self.weights)])
        object.__setattr__(self, "delays", [as_f64(d, f"delays[{i}]") for i, d in enumerate(self.delays)])
        object.__setattr__(self, "recurrent_weights", [as_f64(w, f"recurrent_weights[{i}]") for i, w in enumerate(rw)])
        object.__setattr__(self, "recurrent_delays", [as_f64(d, f"recurrent_delays[{i}]") for i, d in enumerate(rd)])
        nd = [{} for _ in range(n)] if self.neuron is None else list(self.neuron)
        if len(nd) != n:
            raise ValueError("Params: neuron needs one dict of learned neuron parameters per layer")
        neuron = []
        for i, d in enumerate(nd):
            if d is not None and not isinstance(d, dict):
                raise ValueError(f"Params: neuron[{i}] must be a dict of name -> array, got {type(d).__name__}")
            entry = {}
            for name, arr in (d or {}).items():
                a = np.array(arr, dtype=np.float64, copy=True)
                if a.ndim != 1:
                    raise ValueError(f"Params: neuron[{i}][{name!r}] must be a 1-D array, got shape {a.shape}")
                entry[str(name)] = a
            neuron.append(entry)
        object.__setattr__(self, "neuron", neuron)

    def __len__(self) -> int:
        return len(self.weights)

    def copy(self) -> Params:
        """A deep copy."""
        return Params(self.weights, self.delays, self.recurrent_weights, self.recurrent_delays, self.neuron)

    def groups(self) -> dict[str, np.ndarray]:
        """Flat name -> array view of every present array, e.g. ``{"weights[0]": ..., "tau_mem[0]": ...}``."""
        out: dict[str, np.ndarray] = {}
        for name in ("weights", "delays", "recurrent_weights", "recurrent_delays"):
            for i, a in enumerate(getattr(self, name)):
                if a is not None:
                    out[f"{name}[{i}]"] = a
        for i, d in enumerate(self.neuron):
            for name, a in d.items():
                out[f"{name}[{i}]"] = a
        return out


@dataclass(frozen=True)
class Network:
    """``n_inputs`` input channels feeding a stack of layers (the last may be an LI readout)."""

    n_inputs: int
    layers: Sequence[Layer]

    def __post_init__(self) -> None:
        if isinstance(self.n_inputs, bool) or not isinstance(self.n_inputs, (int, np.integer)) or self.n_inputs < 1:
            raise ValueError(f"Network.n_inputs must be a positive integer, got {self.n_inputs!r}")
        object.__setattr__(self, "n_inputs", int(self.n_inputs))
        layers = list(self.layers)
        if not layers:
            raise ValueError("Network needs at least one layer")
        for i, layer in enumerate(layers):
            if not isinstance(layer, Layer):
                raise ValueError(f"Network.layers[{i}] must be an es.Layer, got {type(layer).__name__}")
            if not layer.neuron.spiking and i != len(layers) - 1:
                raise ValueError(f"layer {i}: a non-spiking LI readout can only be the last layer")
        object.__setattr__(self, "layers", tuple(layers))

    def fan_in(self, l: int) -> int:
        """Number of feedforward inputs of layer ``l``."""
        return self.n_inputs if l == 0 else self.layers[l - 1].size

    def init(self, seed: int = 0) -> Params:
        """Random parameters drawn from ``numpy.random.default_rng(seed)`` (see :class:`Layer`).

        Feedforward weights ~ N(mean, std^2) from :meth:`Layer.weight_init`: unless the layer sets them,
        a spiking layer's mean drive sits at its threshold for 10 Hz presynaptic input (a 700-256 LIF
        layer fires at a few to tens of Hz on SHD-like input), an LI readout gets N(0, 1/n_pre).
        """
        rng = np.random.default_rng(seed)
        weights, delays, rweights, rdelays, neuron = [], [], [], [], []
        for l, layer in enumerate(self.layers):
            n_pre = self.fan_in(l)
            mean, std = layer.weight_init(n_pre)
            weights.append(rng.normal(mean, std, size=(layer.size, n_pre)))
            if layer.delays:
                delays.append(rng.uniform(0.0, layer.delay_max, size=(layer.size, n_pre)))
            else:
                delays.append(np.zeros((layer.size, n_pre)))
            if layer.recurrent:
                rstd = layer.recurrent_std if layer.recurrent_std is not None else 0.5 / np.sqrt(layer.size)
                r = rng.normal(0.0, rstd, size=(layer.size, layer.size))
                np.fill_diagonal(r, 0.0)
                rweights.append(r)
                if layer.rec_delays:
                    rdelays.append(rng.uniform(0.0, layer.delay_max, size=(layer.size, layer.size)))
                else:
                    rdelays.append(np.zeros((layer.size, layer.size)))
            else:
                rweights.append(None)
                rdelays.append(None)
            neuron.append({name: np.full(layer.size, float(getattr(layer.neuron, name))) for name in layer.learn})
        return Params(weights, delays, rweights, rdelays, neuron)

    def check_params(self, params: Params) -> None:
        """Raise ``ValueError`` naming the first array whose shape or values do not fit this network."""
        if not isinstance(params, Params):
            raise ValueError(f"expected es.Params, got {type(params).__name__}")
        if len(params) != len(self.layers):
            raise ValueError(f"Params has {len(params)} layers but the network has {len(self.layers)}")
        for l, layer in enumerate(self.layers):
            shape = (layer.size, self.fan_in(l))
            _check_array(params.weights[l], f"weights[{l}]", shape)
            _check_array(params.delays[l], f"delays[{l}]", shape, delay=True, allowed=layer.ff_delays)
            rw, rd = params.recurrent_weights[l], params.recurrent_delays[l]
            if layer.recurrent:
                if rw is None:
                    raise ValueError(f"recurrent_weights[{l}] is missing for recurrent layer {l}")
                _check_array(rw, f"recurrent_weights[{l}]", (layer.size, layer.size))
                if rd is None:
                    raise ValueError(f"recurrent_delays[{l}] is missing for recurrent layer {l}")
                _check_array(rd, f"recurrent_delays[{l}]", (layer.size, layer.size), delay=True,
                             allowed=layer.rec_delays)
            else:
                if rw is not None and np.any(rw != 0):
                    raise ValueError(f"recurrent_weights[{l}] given but layer {l} is not recurrent")
                if rd is not None and np.any(rd != 0):
                    raise ValueError(f"recurrent_delays[{l}] given but layer {l} is not recurrent")
            _check_neuron(params.neuron[l], layer, l)


def _check_neuron(learned: dict[str, np.ndarray], layer: Layer, l: int) -> None:
    if set(learned) != set(layer.learn):
        raise ValueError(
            f"neuron parameters of layer {l}: got {sorted(learned)}, the layer learns {sorted(layer.learn)}"
        )
    for name, a in learned.items():
        where = f"{name}[{l}]"
        if a.shape != (layer.size,):
            raise ValueError(f"{where} has shape {a.shape}, expected ({layer.size},)")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where} contains NaN or infinite values")
        if name in TIME_CONSTANTS and np.any(a <= 0):
            raise ValueError(f"{where} must be positive (seconds)")
        if name == "a" and np.any(a <= -1):
            raise ValueError(f"{where} must be > -1 (otherwise V and w diverge)")


def _check_array(
    a: np.ndarray, name: str, shape: tuple[int, int], delay: bool = False, allowed: bool = True
) -> None:
    if a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} contains NaN or infinite values")
    if delay:
        if np.any(a < 0):
            raise ValueError(f"{name} contains negative delays")
        if not allowed and np.any(a != 0):
            raise ValueError(f"{name} is non-zero but the layer has no delays there (built with delays=False, "
                             "or delays='feedforward' for recurrent delays)")
