"""Loss values and exact EventProp gradients of a network on a labelled batch.

``loss_and_grad`` runs the exact forward pass, evaluates the loss on the readout in closed form
(:mod:`exactsnn.losses`), then replays the recorded events in reverse, layer by layer from the top
(:mod:`exactsnn.engine.cpu.backward`). Each layer's replay receives, for each of its spikes, the
derivative of the loss with respect to that spike's time through everything downstream
(``down``), and hands the same quantity for its own input spikes to the layer below (``up``); for
layer 0 that is the gradient with respect to the input spike times.

Readout (LI, last layer). With the adjoints lam_V, lam_I of the readout at each arrival (from the
loss), an arrival of weight w from presynaptic spike s at t_a = t_s + d gives
dL/dw = lam_I(t_a), dL/dd = dL/dt_s|_this arrival = w (lam_I/tau_syn - lam_V/tau_mem)(t_a).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numba
import numpy as np

from exactsnn.engine.cpu.backward import dense_backward_batch, queue_backward_batch
from exactsnn.engine.cpu.ff_delays_backward import ff_delays_backward_batch, modal_ok
from exactsnn.engine.cpu.linear_backward import linear_backward_batch
from exactsnn.engine.cpu.linear_dense_backward import linear_dense_backward_batch
from exactsnn.engine.cpu.linear_ff_windows import MAX_NEURONS, linear_ff_backward_batch
from exactsnn.engine.cpu.linear_windows import window_tables
from exactsnn.engine.plan import layer_plan
from exactsnn.engine.simulate import Recording, check_inputs, lif_taus, linear_layer, simulate
from exactsnn.events import SpikeBatch
from exactsnn.network import Network, Params
from exactsnn.neurons.series import N_ADJ, adjoint_rows, coefficients

__all__ = ["Outputs", "evaluate_batch", "loss_and_grad", "loss_value"]


def _check_labels(labels: np.ndarray, batch: SpikeBatch, n_out: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.size != len(batch):
        raise ValueError(f"labels must have shape ({len(batch)},), got {lab.shape}")
    if lab.size and (not np.issubdtype(lab.dtype, np.integer) or lab.min() < 0 or lab.max() >= n_out):
        raise ValueError(f"labels must be integers in [0, {n_out})")
    return lab.astype(np.int64)


def _readout_arrivals(rec: Recording) -> tuple[np.ndarray, ...]:
    """All arrivals into the readout: (t_a, w_a, o_a, b_a, s_a) with s_a the presynaptic event index."""
    L = len(rec.net.layers) - 1
    pre = rec.layer_input(L)
    W = rec.params.weights[L]
    Dl = rec.params.delays[L]
    n_out = W.shape[0]
    sample = np.repeat(np.arange(len(pre)), pre.counts())
    t_a = (pre.times[:, None] + Dl[:, pre.units].T).reshape(-1)
    w_a = W[:, pre.units].T.reshape(-1)
    o_a = np.tile(np.arange(n_out), pre.n_events)
    s_a = np.repeat(np.arange(pre.n_events), n_out)
    b_a = sample[s_a] if pre.n_events else np.zeros(0, np.int64)
    keep = t_a <= rec.t_max
    return t_a[keep], w_a[keep], o_a[keep], b_a[keep], s_a[keep]


def _readout_shared_times(
    rec: Recording, labels: np.ndarray, loss: object
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_readout_backward` for a delay-free readout and an integral loss.

    Every presynaptic spike s (unit u_s, sample b_s, time t_s) reaches all readout units at t_s, so
    with the loss's integrals F_s = F(t_s), H_s = H_mem(t_s) (see :mod:`exactsnn.losses`) and
    S[b, u] = sum over the spikes s of unit u in sample b of F_s::

        z = S W^T,   c = dL/dz,   lam_I = c[b_s, o] F_s,   lam_V = c[b_s, o] H_s
        dL/dW = c^T S,   dL/dt_s = (F_s/tau_syn - H_s/tau_mem) (c W)[b_s, u_s]

    (the arrival gradient x = W[o, u_s] (lam_I/tau_syn - lam_V/tau_mem) summed over o). The loss's
    integrals are evaluated once per spike and the rest is two small matrix products. The
    readout's delays are not parameters here (zero, not learned): their gradient is zero.
    """
    from exactsnn.losses import _cross_entropy

    L = len(rec.net.layers) - 1
    nrn = rec.net.layers[L].neuron
    W = rec.params.weights[L]
    n_pre = W.shape[1]
    pre = rec.layer_input(L)
    B = len(pre)
    sample = np.repeat(np.arange(B), pre.counts())
    t = pre.times
    h_mem, _, F = loss.integrals(t, rec.t_max, nrn.tau_mem, nrn.tau_syn) if t.size else (t, t, t)
    h_mem, F = np.asarray(h_mem, dtype=np.float64), np.asarray(F, dtype=np.float64)
    flat = sample * n_pre + pre.units
    S = np.bincount(flat, weights=F, minlength=B * n_pre).reshape(B, n_pre)
    z = S @ W.T
    value, c = _cross_entropy(z, labels)
    gW = c.T @ S
    down = (F / nrn.tau_syn - h_mem / nrn.tau_mem) * (c @ W).ravel()[flat]
    return float(value), gW, np.zeros_like(W), down, z


def _readout_backward(
    rec: Recording, labels: np.ndarray, loss: object
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Loss value, readout gradients (gW, gD), dL/dt of every presynaptic spike and the scores z (B, n_out)."""
    if not rec.net.layers[-1].delays and hasattr(loss, "integrals"):
        return _readout_shared_times(rec, labels, loss)
    L = len(rec.net.layers) - 1
    nrn = rec.net.layers[L].neuron
    W = rec.params.weights[L]
    n_out, n_pre = W.shape
    pre = rec.layer_input(L)
    t_a, w_a, o_a, b_a, s_a = _readout_arrivals(rec)
    value, lam_V, lam_I, z = loss.readout(t_a, w_a, o_a, b_a, labels, n_out, rec.t_max, nrn.tau_mem, nrn.tau_syn)
    x = w_a * (lam_I / nrn.tau_syn - lam_V / nrn.tau_mem)
    u_a = pre.units[s_a]
    flat = o_a * n_pre + u_a
    gW = np.bincount(flat, weights=lam_I, minlength=n_out * n_pre).reshape(n_out, n_pre)
    gD = np.bincount(flat, weights=x, minlength=n_out * n_pre).reshape(n_out, n_pre)
    down = np.bincount(s_a, weights=x, minlength=pre.n_events)
    return float(value), gW, gD, down, z


def first_spike_times(spikes: SpikeBatch, n_units: int) -> tuple[np.ndarray, np.ndarray]:
    """First spike time of every (sample, unit) (inf if none) and its index in ``spikes`` (-1 if none)."""
    B = len(spikes)
    first = np.full((B, n_units), np.inf)
    index = np.full((B, n_units), -1, dtype=np.int64)
    sample = np.repeat(np.arange(B), spikes.counts())
    # spikes are sorted by time within a sample: the first occurrence of (b, unit) is the first spike
    key = sample * n_units + spikes.units
    _, pos = np.unique(key, return_index=True)
    first.reshape(-1)[key[pos]] = spikes.times[pos]
    index.reshape(-1)[key[pos]] = pos
    return first, index


def _first_spike_backward(
    rec: Recording, labels: np.ndarray, loss: object
) -> tuple[float, np.ndarray, np.ndarray]:
    """Loss on the output layer's first spike times, dL/dt of each of its spikes, and the scores."""
    out = rec.spikes[-1]
    first, index = first_spike_times(out, rec.net.layers[-1].size)
    value, d_first = loss.spike_loss(first, labels, rec.t_max)
    down = np.zeros(out.n_events)
    has = index >= 0
    down[index[has]] = d_first[has]
    return float(value), down, _first_spike_scores(first, rec.t_max)


def _first_spike_scores(first: np.ndarray, t_max: float) -> np.ndarray:
    """Scores of a first-spike output: earlier is better; silent units score below every spike."""
    return -np.where(np.isfinite(first), first, 2.0 * t_max + 1.0)


@dataclass(frozen=True, eq=False)
class Outputs:
    """What a forward pass yields besides the loss.

    ``scores`` (B, n_out): the class scores the loss is built on (the readout's z, or minus the first
    spike time), ``argmax`` is the prediction; ``counts[l]`` (B, n_l): spikes per sample and unit of
    every spiking layer (``None`` for an LI readout); ``t_max`` the window (s).
    """

    scores: np.ndarray
    counts: list[np.ndarray | None]
    t_max: float

    def predictions(self) -> np.ndarray:
        """Predicted class of every sample (B,)."""
        return np.argmax(self.scores, axis=1)


def _outputs(rec: Recording, scores: np.ndarray) -> Outputs:
    counts = []
    for l, layer in enumerate(rec.net.layers):
        if not layer.neuron.spiking:
            counts.append(None)
            continue
        sp = rec.spikes[l]
        sample = np.repeat(np.arange(len(sp)), sp.counts())
        c = np.bincount(sample * layer.size + sp.units, minlength=len(sp) * layer.size)
        counts.append(c.reshape(len(sp), layer.size))
    return Outputs(np.asarray(scores, dtype=np.float64), counts, rec.t_max)


def loss_value(
    net: Network, params: Params, batch: SpikeBatch, labels: np.ndarray, loss: object = None, t_max: float = 1.0,
    regularizer: object = None, relaxed: bool = False,
) -> float:
    """The loss (mean over the batch) of ``net`` on ``batch`` with integer ``labels`` (B,).

    With a ``regularizer`` its penalty is added; ``relaxed=True`` adds instead the relaxed penalty
    whose exact gradient :func:`loss_and_grad` returns (for finite-difference checks).
    """
    loss = _default_loss() if loss is None else loss
    t_max = check_inputs(net, params, batch, t_max)
    _check_loss_fits(net, loss)
    lab = _check_labels(labels, batch, net.layers[-1].size)
    value, rec, _ = _forward_loss(net, params, batch, lab, loss, t_max)
    for l in _regularized_layers(net, regularizer):
        n = net.layers[l].size
        if relaxed:
            value += regularizer.relaxed_value(rec.spikes[l], n, t_max)
        else:
            value += regularizer.value(rec.spikes[l], n)
    return value


def _forward_loss(
    net: Network, params: Params, batch: SpikeBatch, lab: np.ndarray, loss: object, t_max: float
) -> tuple[float, Recording, np.ndarray]:
    """Forward pass, the loss (without regulariser) and the class scores (inputs already checked)."""
    rec = simulate(net, params, batch, t_max)
    if net.layers[-1].neuron.spiking:
        first, _ = first_spike_times(rec.spikes[-1], net.layers[-1].size)
        value, _ = loss.spike_loss(first, lab, t_max)
        scores = _first_spike_scores(first, t_max)
    elif not net.layers[-1].delays and hasattr(loss, "integrals"):
        # the same arithmetic as loss_and_grad, so both report bit-identical scores
        value, _, _, _, scores = _readout_shared_times(rec, lab, loss)
    else:
        t_a, w_a, o_a, b_a, _ = _readout_arrivals(rec)
        nrn = net.layers[-1].neuron
        n_out = net.layers[-1].size
        value, _, _, scores = loss.readout(t_a, w_a, o_a, b_a, lab, n_out, t_max, nrn.tau_mem, nrn.tau_syn)
    return float(value), rec, scores


def evaluate_batch(
    net: Network, params: Params, batch: SpikeBatch, labels: np.ndarray, loss: object = None, t_max: float = 1.0,
) -> tuple[float, Outputs]:
    """Forward pass only: the loss (mean over the batch, no regulariser) and the :class:`Outputs`."""
    loss = _default_loss() if loss is None else loss
    t_max = check_inputs(net, params, batch, t_max)
    _check_loss_fits(net, loss)
    lab = _check_labels(labels, batch, net.layers[-1].size)
    value, rec, scores = _forward_loss(net, params, batch, lab, loss, t_max)
    return value, _outputs(rec, scores)


def _regularized_layers(net: Network, regularizer: object) -> list[int]:
    if regularizer is None:
        return []
    if not hasattr(regularizer, "spike_time_grad"):
        raise ValueError(f"regularizer must be e.g. es.regularizers.SpikeCount(), got {regularizer!r}")
    return regularizer.selected(len(net.layers), [layer.neuron.spiking for layer in net.layers])


def _default_loss() -> object:
    from exactsnn.losses import SumExp

    return SumExp()


def _check_loss_fits(net: Network, loss: object) -> None:
    if net.layers[-1].neuron.spiking and not hasattr(loss, "spike_loss"):
        raise ValueError(f"{type(loss).__name__} needs a non-spiking es.LI readout as the last layer")
    if not net.layers[-1].neuron.spiking and not hasattr(loss, "readout"):
        raise ValueError(f"{type(loss).__name__} needs a spiking output layer (es.LIF) as the last layer")


# set by :func:`linear_arrival_replay` only (tests): every linear-kernel layer uses the arrival-list replay
_LINEAR_ARRIVAL_REPLAY = [False]


@contextmanager
def linear_arrival_replay() -> Iterator[None]:
    """Within the block, every linear-kernel layer (delay-free or with feedforward delays) is differentiated by the
    arrival-list replay (:mod:`exactsnn.engine.cpu.linear_backward`), not the shared-clock or windowed one: the
    independent implementation those are compared with in the tests."""
    old = _LINEAR_ARRIVAL_REPLAY[0]
    _LINEAR_ARRIVAL_REPLAY[0] = True
    try:
        yield
    finally:
        _LINEAR_ARRIVAL_REPLAY[0] = old


def _linear_layer_backward(
    rec: Recording, l: int, R: np.ndarray, E: np.ndarray, down: np.ndarray, want_up: bool, n_threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """Reverse replay of a linear-kernel layer: (gW, gD, gR, gE, learned neuron-parameter grads, up).

    A delay-free layer runs on the shared-clock replay (:mod:`exactsnn.engine.cpu.linear_dense_backward`, ``up``
    filled only with ``want_up``), a layer with feedforward delays only on the windowed replay
    (:mod:`exactsnn.engine.cpu.linear_ff_windows`), a layer with recurrent delays on the arrival-list replay
    (:mod:`exactsnn.engine.cpu.linear_backward`).
    """
    from exactsnn.engine.cpu.linear_backward import G_A, G_B, G_TAU_MEM, G_TAU_SYN, G_TAU_W

    net, params = rec.net, rec.params
    layer = net.layers[l]
    nrn = layer.neuron
    n, n_pre = layer.size, net.fan_in(l)
    pre, own = rec.layer_input(l), rec.spikes[l]
    lin = linear_layer(layer, params.neuron[l])
    delays = layer_plan(layer).delays
    want = any(name != "b" for name in layer.learn)
    cols = {"tau_mem": G_TAU_MEM, "tau_w": G_TAU_W, "tau_syn": G_TAU_SYN, "a": G_A, "b": G_B}
    if not delays and not _LINEAR_ARRIVAL_REPLAY[0]:
        bW = np.zeros((n_threads, n_pre, n))
        bR = np.zeros((n_threads, n, n) if layer.recurrent else (n_threads, 1, n))
        bP = np.zeros((n_threads, n, 5))
        up = np.zeros(pre.n_events)
        C = None if lin.uniform and not want else coefficients(lin.A)
        # per-neuron A: the windowed reverse replay's tables (exactsnn.engine.cpu.linear_windows)
        E, P = window_tables(C, rec.t_max) if C is not None else (np.zeros((N_ADJ, 3, 0)), np.zeros((1, 6, 3, 0)))
        linear_dense_backward_batch(
            pre.times, pre.units, pre.offsets, np.ascontiguousarray(params.weights[l].T), np.ascontiguousarray(R.T),
            layer.recurrent, own.times, own.units, own.offsets, np.ascontiguousarray(down), lin.A, lin.tau_mem,
            lin.tau_w, lin.tau_syn, lin.a, lin.b, nrn.v_th, nrn.v_reset, nrn.t_ref, rec.t_max, want_up, want,
            adjoint_rows(layer.learn), C, E, P, bW, bR, bP, up,
        )
        gR = bR.sum(axis=0).T.copy() if layer.recurrent else np.zeros((n, n))
        gP = bP.sum(axis=0)
        learned = {name: gP[:, cols[name]].copy() for name in layer.learn}
        return bW.sum(axis=0).T.copy(), np.zeros((n, n_pre)), gR, np.zeros((n, n)), learned, up
    plan = layer_plan(layer)
    if plan.ff_delays and not plan.rec_delays and n <= MAX_NEURONS and not _LINEAR_ARRIVAL_REPLAY[0]:
        bW, bD = np.zeros((n_threads, n_pre, n)), np.zeros((n_threads, n_pre, n))
        bR = np.zeros((n_threads, n, n) if layer.recurrent else (n_threads, 1, n))
        bP = np.zeros((n_threads, n, 5))
        up = np.zeros(pre.n_events)
        C = coefficients(lin.A)
        E, P = window_tables(C, rec.t_max)
        linear_ff_backward_batch(
            pre.times, pre.units, pre.offsets, np.ascontiguousarray(params.weights[l].T),
            np.ascontiguousarray(params.delays[l].T), np.ascontiguousarray(R.T), layer.recurrent, own.times,
            own.units, own.offsets, np.ascontiguousarray(down), lin.A, lin.tau_mem, lin.tau_w, lin.tau_syn, lin.a,
            lin.b, nrn.v_th, nrn.v_reset, nrn.t_ref, rec.t_max, want_up, want, adjoint_rows(layer.learn), C, E, P,
            bW, bD, bR, bP, up,
        )
        gR = bR.sum(axis=0).T.copy() if layer.recurrent else np.zeros((n, n))
        gP = bP.sum(axis=0)
        learned = {name: gP[:, cols[name]].copy() for name in layer.learn}
        return bW.sum(axis=0).T.copy(), bD.sum(axis=0).T.copy(), gR, np.zeros((n, n)), learned, up
    bW, bR = np.zeros((n_threads, n_pre, n)), np.zeros((n_threads, n, n))
    # a delay-free layer's delays are not parameters: the kernel leaves these buffers alone
    bD = np.zeros((n_threads, n_pre, n) if delays else (n_threads, 1, 1))
    bE = np.zeros((n_threads, n, n) if delays else (n_threads, 1, 1))
    bP = np.zeros((n_threads, n, 5))
    up = np.zeros(pre.n_events)
    # [pre, post] layouts: the arrivals of one presynaptic spike walk along a contiguous row
    linear_backward_batch(
        pre.times, pre.units, pre.offsets, np.ascontiguousarray(params.weights[l].T),
        np.ascontiguousarray(params.delays[l].T), np.ascontiguousarray(R.T), np.ascontiguousarray(E.T),
        layer.recurrent, delays, own.times, own.units, own.offsets, np.ascontiguousarray(down), lin.A,
        lin.tau_mem, lin.tau_w, lin.tau_syn, lin.a, lin.b, lin.uniform, nrn.v_th, nrn.v_reset, nrn.t_ref,
        rec.t_max, want, bW, bD, bR, bE, bP, up,
    )
    gP = bP.sum(axis=0)
    learned = {name: gP[:, cols[name]].copy() for name in layer.learn}
    return (bW.sum(axis=0).T.copy(), bD.sum(axis=0).T.copy(), bR.sum(axis=0).T.copy(), bE.sum(axis=0).T.copy(),
            learned, up)


def _ff_delays_backward(
    rec: Recording, l: int, R: np.ndarray, down: np.ndarray, up: np.ndarray, want_up: bool, n_threads: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Reverse replay of a LIF layer with feedforward delays only: (gW, gD, gR or None); dL/dt of inputs -> up."""
    net, params = rec.net, rec.params
    layer = net.layers[l]
    nrn = layer.neuron
    n, n_pre = layer.size, net.fan_in(l)
    pre, own = rec.layer_input(l), rec.spikes[l]
    Dt = np.ascontiguousarray(params.delays[l].T)
    modal = modal_ok(rec.t_max, float(Dt.max(initial=0.0)), nrn.tau_mem, nrn.tau_syn)
    # per-synapse modal factors e^{D/tau}, once per call ([pre, post] like the weights)
    Fs, Fm = (np.exp(Dt / nrn.tau_syn), np.exp(Dt / nrn.tau_mem)) if modal else (np.zeros((1, 1)),) * 2
    bW, bD = np.zeros((n_threads, n_pre, n)), np.zeros((n_threads, n_pre, n))
    bR = np.zeros((n_threads, n, n) if layer.recurrent else (n_threads, 1, n))
    ff_delays_backward_batch(
        pre.times, pre.units, pre.offsets, np.ascontiguousarray(params.weights[l].T), Dt, Fs, Fm, modal,
        np.ascontiguousarray(R.T), layer.recurrent, own.times, own.units, own.offsets, rec.spike_current[l],
        rec.refractory_current[l], np.ascontiguousarray(down), nrn.tau_mem, nrn.tau_syn, nrn.v_th, nrn.v_reset,
        nrn.t_ref, rec.t_max, want_up, bW, bD, bR, up,
    )
    gR = bR.sum(axis=0).T.copy() if layer.recurrent else None
    return bW.sum(axis=0).T.copy(), bD.sum(axis=0).T.copy(), gR


def loss_and_grad(
    net: Network, params: Params, batch: SpikeBatch, labels: np.ndarray, loss: object = None,
    t_max: float = 1.0, regularizer: object = None, device: str = "cpu", input_grad: bool = False,
    outputs: bool = False,
) -> tuple:
    """Loss (mean over the batch) and its exact gradient with respect to every parameter.

    Returns ``(loss, grads)`` with ``grads`` an :class:`es.Params` of the same structure, or
    ``(loss, grads, dt_in)`` with ``input_grad=True``, ``dt_in`` being dL/d(input spike time)
    aligned with ``batch.times``; ``outputs=True`` appends the forward pass's :class:`Outputs`
    (scores, spike counts). ``labels``: int array (B,). Times in seconds.

    The delays of a layer built with ``delays=False`` are fixed at zero, not parameters: their
    entries in ``grads.delays`` / ``grads.recurrent_delays`` are zeros (build the layer with
    ``delays=True`` to learn them); likewise ``grads.recurrent_delays`` of a layer built with
    ``delays="feedforward"``.
    """
    loss = _default_loss() if loss is None else loss
    t_max = check_inputs(net, params, batch, t_max)
    _check_loss_fits(net, loss)
    lab = _check_labels(labels, batch, net.layers[-1].size)
    rec = simulate(net, params, batch, t_max, device=device)
    n_layers = len(net.layers)
    gW: list[np.ndarray | None] = [None] * n_layers
    gD: list[np.ndarray | None] = [None] * n_layers
    gR: list[np.ndarray | None] = [None] * n_layers
    gE: list[np.ndarray | None] = [None] * n_layers
    gN: list[dict[str, np.ndarray]] = [{} for _ in range(n_layers)]
    if net.layers[-1].neuron.spiking:
        value, down, scores = _first_spike_backward(rec, lab, loss)
        top = n_layers - 1
    else:
        value, gW[-1], gD[-1], down, scores = _readout_backward(rec, lab, loss)
        top = n_layers - 2
    reg_layers = _regularized_layers(net, regularizer)
    for l in reg_layers:
        value += regularizer.value(rec.spikes[l], net.layers[l].size)
    n_threads = numba.get_num_threads()
    for l in range(top, -1, -1):
        if l in reg_layers:
            # the relaxed penalty's dR/dt_s joins the downstream dL/dt_s of each spike
            down = down + regularizer.spike_time_grad(rec.spikes[l], net.layers[l].size, t_max)
        down = np.asarray(down, dtype=np.float64)  # one kernel signature (an integer down compiled a second copy)
        layer = net.layers[l]
        nrn = layer.neuron
        n, n_pre = layer.size, net.fan_in(l)
        pre = rec.layer_input(l)
        own = rec.spikes[l]
        R = params.recurrent_weights[l] if layer.recurrent else np.zeros((n, n))
        E = params.recurrent_delays[l] if layer.recurrent else np.zeros((n, n))
        plan = layer_plan(layer)
        if plan.family == "linear":
            gW[l], gD[l], gr, ge, gN[l], down = _linear_layer_backward(rec, l, R, E, down, l > 0 or input_grad,
                                                                          n_threads)
            if layer.recurrent:
                gR[l], gE[l] = gr, ge
            continue
        up = np.zeros(pre.n_events)
        if plan.schedule == "arrivals" and not plan.rec_delays:
            # feedforward delays only: own-event replay, then the arrivals in any order (no arrival list)
            gW[l], gD[l], gR[l] = _ff_delays_backward(rec, l, R, down, up, l > 0 or input_grad, n_threads)
        elif plan.schedule == "arrivals":
            bW, bD = np.zeros((n_threads, n, n_pre)), np.zeros((n_threads, n, n_pre))
            bR, bE = np.zeros((n_threads, n, n)), np.zeros((n_threads, n, n))
            queue_backward_batch(
                pre.times, pre.units, pre.offsets, np.ascontiguousarray(params.weights[l]),
                np.ascontiguousarray(params.delays[l]), np.ascontiguousarray(R), np.ascontiguousarray(E),
                layer.recurrent, own.times, own.units, own.offsets, rec.spike_current[l], rec.refractory_current[l],
                np.ascontiguousarray(down), nrn.tau_mem, nrn.tau_syn, nrn.v_th, nrn.v_reset, nrn.t_ref, t_max,
                bW, bD, bR, bE, up,
            )
            gW[l], gD[l] = bW.sum(axis=0), bD.sum(axis=0)
            if layer.recurrent:
                gR[l], gE[l] = bR.sum(axis=0), bE.sum(axis=0)
        else:
            # shared-clock kernel: [pre, post] layouts, contiguous per presynaptic unit; no delays to learn;
            # per-neuron tau_mem, tau_syn (and their gradients) for a layer that learns them
            bW = np.zeros((n_threads, n_pre, n))
            bR = np.zeros((n_threads, n, n) if layer.recurrent else (n_threads, 1, n))
            want_taus = bool(layer.learn)
            bT = np.zeros((n_threads, 2, n if want_taus else 0))
            tm, ts = lif_taus(layer, params.neuron[l])
            dense_backward_batch(
                pre.times, pre.units, pre.offsets, np.ascontiguousarray(params.weights[l].T),
                np.ascontiguousarray(R.T), layer.recurrent, own.times, own.units, own.offsets,
                rec.spike_current[l], rec.refractory_current[l], np.ascontiguousarray(down),
                tm, ts, nrn.v_th, nrn.v_reset, nrn.t_ref, t_max, l > 0 or input_grad, want_taus,
                bW, bR, bT, up,
            )
            gW[l] = bW.sum(axis=0).T.copy()
            if layer.recurrent:
                gR[l] = bR.sum(axis=0).T.copy()
            if want_taus:
                gT = bT.sum(axis=0)
                rows = {"tau_mem": 0, "tau_syn": 1}
                gN[l] = {name: gT[rows[name]].copy() for name in layer.learn}
        down = up
    for l, layer in enumerate(net.layers):
        # fixed zero delays are not parameters (see the docstring); some kernels skip them anyway
        if not layer.ff_delays:
            gD[l] = np.zeros_like(params.weights[l])
        if layer.recurrent and not layer.rec_delays:
            gE[l] = np.zeros_like(params.recurrent_weights[l])
    result: tuple = (value, Params(gW, gD, gR, gE, gN))
    if input_grad:
        result += (down,)
    if outputs:
        result += (_outputs(rec, scores),)
    return result
