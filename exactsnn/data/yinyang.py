"""The Yin-Yang dataset (Kriener, Göltz, Petrovici 2022), generated exactly, and its latency code.

Points (x, y) in the square [0, 1]^2 are classified by the region of a yin-yang symbol of radius
``r_big`` = 0.5 centred at (0.5, 0.5), with dots of radius ``r_small`` = 0.1: label 0 "yang",
1 "yin", 2 "dot" (the original code's numbering; its ``class_names`` list reads
``['yin', 'yang', 'dot']``). The generator follows the original exactly: a legacy
``np.random.RandomState(seed)``; per sample the class is drawn with ``randint(3)``, then points
``rand(2) * 2 * r_big`` are rejection-sampled until one lies in the big circle and in that class.
Seeds 42 / 41 / 40 give the published 5000 / 1000 / 1000 train / validation / test sets.

Features are ``(x, y, 1-x, 1-y)``. :func:`encode` turns each feature f in [0, 1] into one input
spike at the latency ``t_early + f (t_late - t_early)`` (seconds), plus a bias spike on a fifth
input at ``t_bias``, so every sample has exactly five input spikes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from exactsnn.events import SpikeBatch

__all__ = ["SPLITS", "CLASS_NAMES", "YinYangEncoding", "yinyang_points", "yinyang_split", "encode"]

#: split name -> (number of samples, generator seed), as published
SPLITS: dict[str, tuple[int, int]] = {"train": (5000, 42), "validation": (1000, 41), "test": (1000, 40)}
#: label -> region name (label 1 is the "yin" region in the original generator)
CLASS_NAMES: tuple[str, ...] = ("yang", "yin", "dot")


def _which_class(x: float, y: float, r_big: float, r_small: float) -> int:
    """Region of the point (x, y): 0 yang, 1 yin, 2 dot (the original ``which_class``)."""

    def dist(x1: float, y1: float, x2: float, y2: float) -> float:
        return float(np.sqrt((x1 - x2) ** 2 + (y1 - y2) ** 2))

    d_right = dist(x, y, 1.5 * r_big, r_big)
    d_left = dist(x, y, 0.5 * r_big, r_big)
    criterion1 = d_right <= r_small
    criterion2 = d_left > r_small and d_left <= 0.5 * r_big
    criterion3 = y > r_big and d_right > 0.5 * r_big
    is_yin = criterion1 or criterion2 or criterion3
    is_circles = d_right < r_small or d_left < r_small
    if is_circles:
        return 2
    return int(is_yin)


def yinyang_points(n: int, seed: int, r_big: float = 0.5, r_small: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples ``(features (n, 4) float64 [x, y, 1-x, 1-y], labels (n,) int64)`` for ``seed``."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"yinyang_points: n must be an integer >= 0, got {n!r}")
    if not (0 < r_small < r_big / 2):
        raise ValueError(f"yinyang_points: need 0 < r_small < r_big/2, got r_small={r_small}, r_big={r_big}")
    rng = np.random.RandomState(seed)  # legacy generator: the published arrays depend on its stream
    feats = np.empty((n, 4))
    labels = np.empty(n, dtype=np.int64)
    for i in range(n):
        goal = rng.randint(3)
        while True:
            x, y = rng.rand(2) * 2.0 * r_big
            # inside the big circle and in the goal region
            if np.sqrt((x - r_big) ** 2 + (y - r_big) ** 2) <= r_big and _which_class(x, y, r_big, r_small) == goal:
                break
        feats[i] = (x, y, 1.0 - x, 1.0 - y)
        labels[i] = goal
    return feats, labels


def yinyang_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The published ``'train'``, ``'validation'`` or ``'test'`` split: ``(features, labels)``."""
    if split not in SPLITS:
        raise ValueError(f"unknown Yin-Yang split {split!r}; choose one of {', '.join(SPLITS)}")
    n, seed = SPLITS[split]
    return yinyang_points(n, seed)


@dataclass(frozen=True)
class YinYangEncoding:
    """Latency code: feature f -> spike at ``t_early + f (t_late - t_early)``; bias spike at ``t_bias`` (s)."""

    t_early: float = 0.0
    t_late: float = 20e-3
    t_bias: float = 0.0

    def __post_init__(self) -> None:
        for name in ("t_early", "t_late", "t_bias"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v >= 0):
                raise ValueError(f"YinYangEncoding.{name} must be a finite time >= 0 s, got {v!r}")
        if self.t_late <= self.t_early:
            raise ValueError(f"YinYangEncoding: need t_late > t_early, got {self.t_late} <= {self.t_early}")

    @property
    def t_end(self) -> float:
        """Latest input spike time (s)."""
        return max(self.t_late, self.t_bias)


def encode(features: np.ndarray, encoding: YinYangEncoding | None = None) -> SpikeBatch:
    """Five-input latency code of ``features`` (n, 4) in [0, 1]: inputs 0-3 the features, input 4 the bias."""
    enc = YinYangEncoding() if encoding is None else encoding
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or f.shape[1] != 4:
        raise ValueError(f"Yin-Yang features must have shape (n, 4), got {f.shape}")
    if f.size and not (np.all(np.isfinite(f)) and f.min() >= 0.0 and f.max() <= 1.0):
        raise ValueError("Yin-Yang features must be finite and lie in [0, 1]")
    n = f.shape[0]
    times = np.empty((n, 5))
    times[:, :4] = enc.t_early + f * (enc.t_late - enc.t_early)
    times[:, 4] = enc.t_bias
    units = np.broadcast_to(np.arange(5, dtype=np.int32), (n, 5))
    order = np.argsort(times, axis=1, kind="stable")
    t = np.take_along_axis(times, order, axis=1).reshape(-1)
    u = np.take_along_axis(units, order, axis=1).reshape(-1)
    return SpikeBatch.from_arrays(t, u, np.arange(n + 1, dtype=np.int64) * 5, n_units=5)
