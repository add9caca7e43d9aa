"""Homogeneous Poisson spike trains as a SpikeBatch (demo inputs, benchmarks, tests)."""

from __future__ import annotations

import numpy as np

from exactsnn.events import SpikeBatch

__all__ = ["poisson_batch"]


def poisson_batch(
    n_samples: int, n_units: int, rate: float, t_max: float = 1.0, seed: int = 0
) -> SpikeBatch:
    """``n_samples`` samples of ``n_units`` independent Poisson trains at ``rate`` Hz on [0, t_max) s."""
    if n_samples < 0 or n_units < 1:
        raise ValueError("poisson_batch: need n_samples >= 0 and n_units >= 1")
    if not (np.isfinite(rate) and rate >= 0 and np.isfinite(t_max) and t_max > 0):
        raise ValueError("poisson_batch: rate must be >= 0 Hz and t_max > 0 s")
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_samples):
        k = rng.poisson(rate * n_units * t_max)
        t = rng.uniform(0.0, t_max, size=k)
        u = rng.integers(0, n_units, size=k)
        order = np.argsort(t, kind="mergesort")
        samples.append((t[order], u[order]))
    return SpikeBatch.from_lists(samples, n_units=n_units)
