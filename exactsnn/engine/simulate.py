"""The forward pass: validate, run each layer's kernel over the batch, return a :class:`Recording`.

Layers are simulated one after the other: the spikes of layer l-1 are known before layer l runs.
Per layer the scheme is chosen by its plan (:func:`exactsnn.engine.plan.layer_plan`; see the kernel
modules for why):

* LIF family, shared clock (no delays, recurrent or not): :mod:`exactsnn.engine.cpu.dense` — events
  in time order, all neurons brought to each event together with shared decay factors (per-neuron
  factors, once per stretch, for a layer that learns tau_mem / tau_syn), exact crossing search only
  for the neurons a conservative bound flags.
* LIF family, delays on the feedforward synapses only (zero-delay recurrence or none):
  :mod:`exactsnn.engine.cpu.ff_delays` — order-free accumulation of the arrivals in windows (bookkeeping,
  not a grid), a conservative screen, exact replay of the few neuron-windows it flags.
* LIF family, arrivals (delays on some synapses): :mod:`exactsnn.engine.cpu.queue` — per-synapse
  arrivals sorted once, recurrent arrivals and predicted crossings in an array-backed heap with
  version stamps, lazy per-neuron state.
* linear family (adLIF, and LIF layers with delays that learn neuron parameters): :mod:`exactsnn.engine.cpu.linear`
  — the same two schedules over per-neuron 3-state linear systems (matrix-exponential propagator).

The simulated window is the closed interval [0, t_max]: inputs and arrivals at t <= t_max are applied,
spikes at t <= t_max are recorded. What EventProp needs is recorded per spike (its time, unit, the
synaptic current at the spike and at the end of its refractory window): O(number of spikes).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from exactsnn.engine.cpu.dense import run_dense_batch
from exactsnn.engine.cpu.ff_delays import ff_supported, ff_tables, ff_window, run_ff_delays_batch
from exactsnn.engine.cpu.linear import run_linear_batch
from exactsnn.engine.cpu.linear_ff import run_linear_ff_batch
from exactsnn.engine.cpu.queue import run_queue_batch, sort_delays
from exactsnn.engine.cpu.trace import linear_voltage_batch, voltage_batch
from exactsnn.engine.plan import layer_plan
from exactsnn.events import SpikeBatch, canonical_order
from exactsnn.network import Layer, Network, Params
from exactsnn.neurons.linear import crossing_bounds, system_matrices
from exactsnn.neurons.series import coefficients

__all__ = ["simulate", "Recording"]

# A sample whose layer emits more spikes than this is reported as runaway activity.
MAX_SPIKES_PER_SAMPLE = 50_000_000


@dataclass(frozen=True, eq=False)
class Recording:
    """Result of :func:`simulate`.

    ``spikes[l]``: SpikeBatch of layer l's output spikes (empty for an LI readout).
    ``spike_current[l]``: synaptic current I of the spiking unit at each spike (aligned with
    ``spikes[l].times``); ``refractory_current[l]``: I at the end of that spike's refractory window
    (NaN where t_ref = 0 or the window ends after t_max).
    """

    net: Network
    params: Params
    inputs: SpikeBatch
    t_max: float
    spikes: list[SpikeBatch]
    spike_current: list[np.ndarray]
    refractory_current: list[np.ndarray]

    def layer_input(self, l: int) -> SpikeBatch:
        """The spikes that drive layer ``l`` (the network input for l = 0)."""
        return self.inputs if l == 0 else self.spikes[l - 1]

    def voltage(self, l: int, t: np.ndarray | float) -> np.ndarray:
        """Exact membrane potential of layer ``l`` at times ``t`` (s): array (B, n_l, len(t)).

        Right-continuous: at a spike time the value is the post-reset v_reset.
        """
        if not 0 <= l < len(self.net.layers):
            raise ValueError(f"layer {l} out of range: the network has {len(self.net.layers)} layers")
        tq = np.atleast_1d(np.asarray(t, dtype=np.float64)).reshape(-1)
        if not np.all(np.isfinite(tq)) or np.any(tq < 0) or np.any(tq > self.t_max):
            raise ValueError(f"voltage: query times must lie in [0, t_max = {self.t_max}] seconds")
        layer = self.net.layers[l]
        neuron = layer.neuron
        order = np.argsort(tq, kind="mergesort")
        pre = self.layer_input(l)
        rec_w = self.params.recurrent_weights[l]
        rec_d = self.params.recurrent_delays[l]
        own = self.spikes[l]
        has_rec = rec_w is not None
        n = layer.size
        # what both trace kernels share: the layer's input, its own spikes and recurrent weights
        common = (
            pre.times, pre.units, pre.offsets,
            np.ascontiguousarray(self.params.weights[l]), np.ascontiguousarray(self.params.delays[l]),
            own.times, own.units, own.offsets,
            np.ascontiguousarray(rec_w) if has_rec else np.zeros((n, n)),
            np.ascontiguousarray(rec_d) if has_rec else np.zeros((n, n)),
            has_rec,
        )
        plan = layer_plan(layer)
        if plan.family == "linear":
            lin = linear_layer(layer, self.params.neuron[l])
            out = linear_voltage_batch(*common, lin.A, lin.tau_w, lin.tau_syn, lin.a, lin.b, neuron.v_reset,
                                       neuron.t_ref, self.t_max, tq[order])
        else:
            tm, ts = lif_taus(layer, self.params.neuron[l])
            out = voltage_batch(*common, neuron.spiking, tm, ts, getattr(neuron, "v_reset", 0.0),
                                getattr(neuron, "t_ref", 0.0), self.t_max, tq[order])
        result = np.empty_like(out)
        result[:, :, order] = out
        return result


def _check_t_max(t_max: float) -> float:
    try:
        t = float(t_max)
    except (TypeError, ValueError):
        raise ValueError(f"t_max must be a number of seconds, got {t_max!r}") from None
    if not (math.isfinite(t) and t > 0):
        raise ValueError(f"t_max must be a positive finite number of seconds, got {t_max!r}")
    return t


def check_inputs(net: Network, params: Params, batch: SpikeBatch, t_max: float) -> float:
    """Validate a simulation request; returns t_max as float. Raises one-line ``ValueError`` s."""
    if not isinstance(net, Network):
        raise ValueError(f"expected an es.Network, got {type(net).__name__}")
    if not isinstance(batch, SpikeBatch):
        raise ValueError(f"expected an es.SpikeBatch of inputs, got {type(batch).__name__}")
    net.check_params(params)
    if batch.n_events and int(batch.units.max()) >= net.n_inputs:
        idx = int(np.argmax(batch.units >= net.n_inputs))
        b = int(np.searchsorted(batch.offsets, idx, side="right") - 1)
        raise ValueError(
            f"input sample {b} has unit {batch.units[idx]} out of range for {net.n_inputs} network inputs"
        )
    return _check_t_max(t_max)


@dataclass(frozen=True, eq=False)
class LinearLayer:
    """Per-neuron arrays of a linear-kernel layer: A, Lyapunov P, crossing bounds and the parameters."""

    A: np.ndarray
    P: np.ndarray
    bounds: np.ndarray
    tau_mem: np.ndarray
    tau_w: np.ndarray
    tau_syn: np.ndarray
    a: np.ndarray
    b: np.ndarray
    uniform: bool


def linear_layer(layer: Layer, learned: dict[str, np.ndarray] | None) -> LinearLayer:
    """The kernel arrays of a linear-kernel layer (parameters from ``learned`` where the layer learns them)."""
    tm, tw, ts, a, b = layer.neuron_arrays(learned)
    uniform = all(np.all(v == v[0]) for v in (tm, tw, ts, a, b))
    A = system_matrices(tm[:1], tw[:1], ts[:1], a[:1]) if uniform else system_matrices(tm, tw, ts, a)
    P, bnd = crossing_bounds(A)
    if uniform:
        n = layer.size
        # always a writable copy (a read-only view for n = 1 would compile the kernels a second time)
        A, P, bnd = (np.broadcast_to(v, (n,) + v.shape[1:]).copy() for v in (A, P, bnd))
    return LinearLayer(A, P, bnd, tm, tw, ts, a, b, uniform)


def lif_taus(layer: Layer, learned: dict[str, np.ndarray] | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-neuron (tau_mem, tau_syn) of a LIF-family layer, each (size,) float64 (learned arrays where given)."""
    if not layer.learn:
        n = layer.size
        return np.full(n, float(layer.neuron.tau_mem)), np.full(n, float(layer.neuron.tau_syn))
    tm, _, ts, _, _ = layer.neuron_arrays(learned)
    return tm.copy(), ts.copy()


def _run_layer(
    layer_idx: int, net: Network, params: Params, pre: SpikeBatch, t_max: float
) -> tuple[SpikeBatch, np.ndarray, np.ndarray]:
    """Simulate one spiking layer over the batch; returns (spikes, I at spike, I at refractory end)."""
    layer = net.layers[layer_idx]
    plan = layer_plan(layer)
    nrn = layer.neuron
    n = layer.size
    B = len(pre)
    W = params.weights[layer_idx]
    has_rec = layer.recurrent
    R = params.recurrent_weights[layer_idx] if has_rec else np.zeros((n, n))
    counts_in = pre.counts()
    # Room for a 100 Hz mean rate per sample (bounded); samples that overflow run again with 8x more.
    cap = np.full(B, min(max(64, 4 * n, int(100.0 * n * t_max)), 1 << 16), dtype=np.int64)
    todo = np.arange(B)
    results: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None] = [None] * B
    # what the kernels need besides the batch: computed once, not per overflow retry
    lin = linear_layer(layer, params.neuron[layer_idx]) if plan.family == "linear" else None
    taus = lif_taus(layer, params.neuron[layer_idx]) if plan.family == "lif" else None
    # a layer with recurrent delays that are all zero is a feedforward-delay layer: same kernel, same floats
    windows = plan.family == "lif" and plan.ff_windows or (
        plan.family == "lif" and plan.rec_delays and ff_supported(nrn.tau_mem, nrn.tau_syn, nrn.v_th)
        and not np.any(params.recurrent_delays[layer_idx])
    )
    lin_windows = lin is not None and (plan.ff_windows or (
        plan.rec_delays and nrn.v_th > 0.0 and not np.any(params.recurrent_delays[layer_idx])))
    if windows:
        h = ff_window(nrn.tau_mem, nrn.tau_syn)
        Wc = np.ascontiguousarray(W)
        Dc = np.ascontiguousarray(params.delays[layer_idx])
        # delays past t_max + h only place arrivals after t_max: capping them bounds the accumulator ring
        ff_tabs = ff_tables(Wc, np.minimum(Dc, t_max + h), h, nrn.tau_mem, nrn.tau_syn)
        ff_order = rec_order = np.zeros((1, 1), np.int64)
        ff_delay = rec_delay = np.zeros((1, 1))
    elif plan.schedule == "arrivals" and not lin_windows:
        E = params.recurrent_delays[layer_idx] if has_rec else np.zeros((n, n))
        ff_order, ff_delay = sort_delays(np.ascontiguousarray(params.delays[layer_idx]))
        rec_order, rec_delay = sort_delays(np.ascontiguousarray(E))
    else:  # the shared-clock kernels take no delay tables
        ff_order = rec_order = np.zeros((1, 1), np.int64)
        ff_delay = rec_delay = np.zeros((1, 1))
    while todo.size:
        sub = pre.select(todo) if todo.size != B else pre
        c = int(cap[todo].max())
        out_t = np.empty((todo.size, c))
        out_u = np.empty((todo.size, c), dtype=np.int32)
        out_i = np.empty((todo.size, c))
        out_r = np.empty((todo.size, c))
        counts = np.zeros(todo.size, dtype=np.int64)
        if lin_windows:
            run_linear_ff_batch(
                sub.times, sub.units, sub.offsets, np.ascontiguousarray(W),
                np.ascontiguousarray(params.delays[layer_idx]), np.ascontiguousarray(R.T), has_rec, lin.A, lin.P,
                lin.bounds, coefficients(lin.A), lin.tau_w, lin.tau_syn, lin.a, lin.b, nrn.v_th, nrn.v_reset,
                nrn.t_ref, t_max, out_t, out_u, out_i, out_r, counts,
            )
        elif lin is not None:
            run_linear_batch(
                sub.times, sub.units, sub.offsets, np.ascontiguousarray(W), ff_order, ff_delay,
                np.ascontiguousarray(R), rec_order, rec_delay, has_rec, plan.delays,
                lin.A, lin.P, lin.bounds, lin.tau_w, lin.tau_syn, lin.a, lin.b, lin.uniform,
                nrn.v_th, nrn.v_reset, nrn.t_ref, t_max, out_t, out_u, out_i, out_r, counts,
            )
        elif windows:
            run_ff_delays_batch(
                sub.times, sub.units, sub.offsets, Wc, Dc, np.ascontiguousarray(R.T), has_rec, *ff_tabs, h,
                nrn.tau_mem, nrn.tau_syn, nrn.v_th, nrn.v_reset, nrn.t_ref, t_max,
                out_t, out_u, out_i, out_r, counts,
            )
        elif plan.schedule == "arrivals":
            run_queue_batch(
                sub.times, sub.units, sub.offsets, np.ascontiguousarray(W), ff_order, ff_delay,
                np.ascontiguousarray(R), rec_order, rec_delay, has_rec,
                nrn.tau_mem, nrn.tau_syn, nrn.v_th, nrn.v_reset, nrn.t_ref, t_max,
                out_t, out_u, out_i, out_r, counts,
            )
        else:
            run_dense_batch(
                sub.times, sub.units, sub.offsets,
                np.ascontiguousarray(W.T), np.ascontiguousarray(R.T), has_rec,
                taus[0], taus[1], nrn.v_th, nrn.v_reset, nrn.t_ref, t_max,
                out_t, out_u, out_i, out_r, counts,
            )
        again = []
        for k, b in enumerate(todo):
            if counts[k] < 0:
                again.append(b)
            else:
                m = counts[k]
                results[b] = (out_t[k, :m].copy(), out_u[k, :m].copy(), out_i[k, :m].copy(), out_r[k, :m].copy())
        todo = np.asarray(again, dtype=np.int64)
        if todo.size:
            cap[todo] *= 8
            if cap[todo].max() > MAX_SPIKES_PER_SAMPLE:
                raise ValueError(
                    f"layer {layer_idx}: runaway activity, more than {MAX_SPIKES_PER_SAMPLE} spikes in "
                    f"sample {int(todo[0])} (input events: {int(counts_in[todo[0]])}); check the weights"
                )
    parts = [r for r in results if r is not None]
    times = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0)
    units = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int32)
    icur = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0)
    rcur = np.concatenate([p[3] for p in parts]) if parts else np.zeros(0)
    offsets = np.concatenate([[0], np.cumsum([p[0].size for p in parts])]).astype(np.int64)
    # kernels emit spikes nearly in time order (the feedforward path runs one neuron at a time up to
    # the next input); put them, ties included, in canonical (time, unit) order
    order = canonical_order(times, units, offsets)
    spikes = SpikeBatch(times[order], units[order], offsets, n_units=n)
    return spikes, icur[order], rcur[order]


def simulate(
    net: Network, params: Params, batch: SpikeBatch, t_max: float = 1.0, device: str = "cpu"
) -> Recording:
    """Simulate ``net`` with ``params`` on the input ``batch`` over [0, t_max] seconds, exactly.

    Returns a :class:`Recording` with every layer's spikes and the exact voltage on demand.
    """
    if device != "cpu":
        raise ValueError(f"device must be 'cpu' (CUDA support is not available yet), got {device!r}")
    t_max = check_inputs(net, params, batch, t_max)
    spikes, icur, rcur = [], [], []
    pre = batch
    for l, layer in enumerate(net.layers):
        if layer.neuron.spiking:
            s, i, r = _run_layer(l, net, params, pre, t_max)
        else:
            s, i, r = SpikeBatch.empty(len(batch), layer.size), np.zeros(0), np.zeros(0)
        spikes.append(s)
        icur.append(i)
        rcur.append(r)
        pre = s
    return Recording(net, params, batch, t_max, spikes, icur, rcur)
