"""Adam on :class:`~exactsnn.network.Params`, with a warm-up / decay learning-rate schedule.

Adam (Kingma & Ba 2015), per array ``p`` with gradient ``g`` at step ``k = 1, 2, ...``::

    m <- b1 m + (1 - b1) g,    v <- b2 v + (1 - b2) g^2
    p <- p - lr_k * (m / (1 - b1^k)) / (sqrt(v / (1 - b2^k)) + eps)

Delays (seconds) have their own base learning rate ``delay_lr`` (their gradients are in 1/s, the
weights' in units of the loss) and are projected back onto [0, delay_max] after each step, so they
stay legal. Only the arrays a layer trains are touched: delays of a delay-free layer stay zero, and
the diagonal of a recurrent weight matrix (self-connections, zero at initialisation) stays zero.

Learned neuron parameters (``Layer.learn``): time constants (seconds) step with ``tau_lr``
(default ``lr * 1e-2``, like delays) and are kept >= ``TAU_MIN``; the adaptation coupling ``a`` and
increment ``b`` step with ``lr``; ``a`` is kept >= ``A_MIN`` so the neuron stays stable (a > -1).

Schedule (``epoch`` is fractional: step / steps-per-epoch)::

    lr(epoch) = base * min(1, (epoch + 1/steps) / warmup_epochs) * decay(epoch)
    decay = 1 | gamma^epoch (exponential) | cosine from 1 to min_factor over `epochs`
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from exactsnn.network import Network, Params
from exactsnn.neurons.registry import learnable_parameter
from exactsnn.neurons.spec import A_MIN, TAU_MIN

# TAU_MIN and A_MIN are re-exported: the bounds the model specs give learned time constants and a
__all__ = ["Adam", "AdamState", "Schedule", "adam_init", "adam_step", "lr_factor", "TAU_MIN", "A_MIN"]

_DECAYS = ("none", "exponential", "cosine")


@dataclass(frozen=True)
class Schedule:
    """Learning-rate multiplier: linear warm-up over ``warmup_epochs``, then ``decay``.

    ``decay``: ``"none"``, ``"exponential"`` (factor ``gamma`` per epoch) or ``"cosine"`` (from 1
    down to ``min_factor`` at ``epochs``).
    """

    warmup_epochs: float = 0.0
    decay: str = "none"
    gamma: float = 0.95
    epochs: int = 1
    min_factor: float = 0.0

    def __post_init__(self) -> None:
        if self.decay not in _DECAYS:
            raise ValueError(f"Schedule.decay must be one of {', '.join(_DECAYS)}, got {self.decay!r}")
        if not (np.isfinite(self.warmup_epochs) and self.warmup_epochs >= 0):
            raise ValueError(f"Schedule.warmup_epochs must be >= 0, got {self.warmup_epochs!r}")
        if not (0 < self.gamma <= 1):
            raise ValueError(f"Schedule.gamma must be in (0, 1], got {self.gamma!r}")
        if not (0 <= self.min_factor <= 1):
            raise ValueError(f"Schedule.min_factor must be in [0, 1], got {self.min_factor!r}")
        if self.epochs < 1:
            raise ValueError(f"Schedule.epochs must be >= 1, got {self.epochs!r}")


def lr_factor(schedule: Schedule, step: int, steps_per_epoch: int) -> float:
    """Multiplier of the base learning rate at optimiser step ``step`` (0-based)."""
    epoch = step / max(steps_per_epoch, 1)
    f = 1.0
    if schedule.warmup_epochs > 0:
        f = min(1.0, (step + 1) / (schedule.warmup_epochs * max(steps_per_epoch, 1)))
    if schedule.decay == "exponential":
        f *= schedule.gamma**epoch
    elif schedule.decay == "cosine":
        x = min(epoch / schedule.epochs, 1.0)
        f *= schedule.min_factor + (1 - schedule.min_factor) * 0.5 * (1 + np.cos(np.pi * x))
    return float(f)


@dataclass(frozen=True)
class Adam:
    """Adam hyper-parameters; ``delay_lr`` and ``tau_lr`` (s per unit step) default to ``lr * 1e-2``."""

    lr: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    delay_lr: float | None = None
    tau_lr: float | None = None

    def __post_init__(self) -> None:
        for name in ("lr", "eps"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"Adam.{name} must be > 0, got {v!r}")
        for name in ("beta1", "beta2"):
            v = getattr(self, name)
            if not (0 <= v < 1):
                raise ValueError(f"Adam.{name} must be in [0, 1), got {v!r}")
        for name in ("delay_lr", "tau_lr"):
            v = getattr(self, name)
            if v is not None and not (np.isfinite(v) and v >= 0):
                raise ValueError(f"Adam.{name} must be >= 0, got {v!r}")

    @property
    def delay_rate(self) -> float:
        return self.lr * 1e-2 if self.delay_lr is None else self.delay_lr

    @property
    def tau_rate(self) -> float:
        return self.lr * 1e-2 if self.tau_lr is None else self.tau_lr


@dataclass(frozen=True, eq=False)
class AdamState:
    """Step count and first / second moments, keyed like :meth:`Params.groups`."""

    step: int
    m: dict[str, np.ndarray]
    v: dict[str, np.ndarray]


def _trained(net: Network, params: Params) -> dict[str, np.ndarray]:
    """The arrays the optimiser updates (see the module docstring)."""
    out = {}
    for name, a in params.groups().items():
        layer = net.layers[int(name[name.index("[") + 1 : -1])]
        if name.startswith("delays") and not layer.ff_delays:
            continue
        if name.startswith("recurrent_delays") and not layer.rec_delays:
            continue
        out[name] = a
    return out


def adam_init(net: Network, params: Params) -> AdamState:
    """Zero moments for every trained array of ``params``."""
    net.check_params(params)
    trained = _trained(net, params)
    zeros = {k: np.zeros_like(a) for k, a in trained.items()}
    return AdamState(0, zeros, {k: z.copy() for k, z in zeros.items()})


@njit(cache=True)
def _adam_update(
    p: np.ndarray, g: np.ndarray, m: np.ndarray, v: np.ndarray, b1: float, b2: float, lr: float,
    bc1: float, bc2: float, eps: float, lo: float, hi: float, diag: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One fused Adam update of the flat array ``p`` in place; returns the new (m, v).

    The same operations in the same order as the NumPy expressions of the module docstring (the
    results are bit-identical), in one pass instead of a dozen temporaries. ``diag`` > 0: ``p`` is a
    (diag, diag) matrix whose diagonal gradient counts as zero. The result is clipped to [lo, hi].
    """
    m_out = np.empty_like(m)
    v_out = np.empty_like(v)
    for i in range(p.size):
        gi = g[i]
        if diag > 0 and i // diag == i % diag:
            gi = 0.0
        mi = b1 * m[i] + (1 - b1) * gi
        vi = b2 * v[i] + (1 - b2) * gi * gi
        m_out[i] = mi
        v_out[i] = vi
        x = p[i] - lr * (mi / bc1) / (math.sqrt(vi / bc2) + eps)
        p[i] = min(max(x, lo), hi)
    return m_out, v_out


def adam_step(
    opt: Adam, state: AdamState, net: Network, params: Params, grads: Params, factor: float = 1.0
) -> tuple[Params, AdamState]:
    """One Adam step with the learning rates scaled by ``factor``: ``(new params, new state)``."""
    new = params.copy()
    g_all = grads.groups()
    p_all = new.groups()
    k = state.step + 1
    m_out, v_out = {}, {}
    for name, m in state.m.items():
        if name not in g_all:
            raise ValueError(f"adam_step: gradient for {name} is missing")
        g = g_all[name]
        if not np.all(np.isfinite(g)):
            raise ValueError(f"adam_step: non-finite gradient in {name}")
        group = name.partition("[")[0]
        is_delay = "delays" in group
        if is_delay:
            lr, lo, hi = opt.delay_rate, 0.0, net.layers[int(name[name.index("[") + 1 : -1])].delay_max
        elif group in ("weights", "recurrent_weights"):
            lr, lo, hi = opt.lr, -math.inf, math.inf
        else:  # a learned neuron parameter: bounds and rate from its model spec
            spec = learnable_parameter(group)
            lr, lo, hi = (opt.tau_rate if spec.time_constant else opt.lr), spec.lower, spec.upper
        lr *= factor
        p = p_all[name]
        buf = np.ascontiguousarray(p)  # p itself (a fresh copy) unless it is strided
        diag = p.shape[0] if name.startswith("recurrent_weights") else 0
        mk, vk = _adam_update(
            buf.reshape(-1), np.ascontiguousarray(g, dtype=np.float64).reshape(-1),
            np.ascontiguousarray(m, dtype=np.float64).reshape(-1),
            np.ascontiguousarray(state.v[name], dtype=np.float64).reshape(-1),
            opt.beta1, opt.beta2, lr, 1 - opt.beta1**k, 1 - opt.beta2**k, opt.eps, lo, hi, diag,
        )
        if buf is not p:
            p[...] = buf
        m_out[name], v_out[name] = mk.reshape(p.shape), vk.reshape(p.shape)
    return new, AdamState(k, m_out, v_out)
