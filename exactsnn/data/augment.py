"""Data augmentation for spike datasets, as in the EventProp SHD/SSC recipes.

Source: Nowotny, Turner, Knight, "Loss shaping enhances exact gradient learning with EventProp in
spiking neural networks" (arXiv:2212.01232, Neuromorphic Computing and Engineering 2025), and its
research code ``tnowotny/genn_eventprop`` (``utils.py``: ``random_shift``, ``blend``,
``blend_dataset``; ``simulator_SHD.py``: ``N_INPUT_DELAY``, ``INPUT_DELAY``). All functions are
pure: they take a :class:`~exactsnn.SpikeBatch` (times in seconds) and return a new one, with
randomness only from the ``numpy.random.Generator`` passed in.

Channel shift (:func:`channel_shift`): every spike of sample b moves from channel c to
``c + s_b`` with ``s_b`` drawn uniformly from the integers ``-max_shift..max_shift``; spikes
leaving ``[0, n_units)`` are dropped. (The original draws ``int(uniform(-max_shift, max_shift))``,
which truncates toward zero, so its 0 is twice as likely and +-max_shift never occurs; we draw
uniform integers.)

Blend (:func:`blend`): with probability ``probability`` sample i is replaced by a blend of itself
and a partner j drawn uniformly from the *other* samples of the same class in the batch (a
sample alone in its class is left as it is). Both are first aligned on their common centre: with
mean spike time m_t and mean channel m_c of each sample, sample i is moved by
``(m_t(j) - m_t(i)) / 2`` seconds and ``trunc((m_c(j) - m_c(i)) / 2)`` channels, and j by the
opposite amounts (``trunc`` toward zero as the original's ``int``; if either sample has no spikes
nothing is moved). Then each spike of i is kept with probability ``keep`` and each spike of j with
probability ``1 - keep``, independently, and the survivors are merged. Spikes at negative times,
after ``t_max`` (when given) or outside ``[0, n_units)`` are dropped. This is the original's
``blend`` with ``probs = [keep, 1 - keep]`` for two same-class samples (it uses ``[0.5, 0.5]``),
except that (a) times are shifted exactly instead of by whole milliseconds (the original works
on a 1 ms grid) and (b) the original *appends* ``N_TRAIN - len(X)`` blended examples, made from
randomly chosen same-class samples drawn with replacement, to the training set, whereas here a
blend *replaces* a sample, so the batch size and labels are unchanged.

Delay line (:func:`delay_line`): the input is replicated ``n_delays`` times; copy k
(``k = 0..n_delays-1``) of channel c fires at ``t + k * delay`` as unit ``k * n_units + c``,
so the input grows to ``n_units * n_delays`` channels (:func:`delay_line_size`). Copy 0 is the
original input. This is the original's input population of ``num_input * (N_INPUT_DELAY + 1)``
neurons with delays ``k * INPUT_DELAY`` laid out copy-major, i.e. ``n_delays = N_INPUT_DELAY + 1``.
Events after ``t_max`` are dropped when it is given.

All results are valid SpikeBatches (times sorted per sample, ties in unit order).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from exactsnn.data.shd import _order_ties
from exactsnn.events import SpikeBatch

__all__ = ["channel_shift", "blend", "delay_line", "delay_line_size"]


# ----------------------------------------------------------------------------- checks and helpers
def _check_batch(batch: SpikeBatch, fn: str, need_units: bool) -> None:
    if not isinstance(batch, SpikeBatch):
        raise ValueError(f"{fn}: expected an es.SpikeBatch, got {type(batch).__name__}")
    if need_units and batch.n_units is None:
        raise ValueError(f"{fn}: the batch has no n_units; build it with n_units (the number of channels)")


def _check_rng(rng: np.random.Generator, fn: str) -> None:
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"{fn}: rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                         f"got {type(rng).__name__}")


def _check_int(value: int, name: str, fn: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{fn}: {name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_prob(value: float, name: str, fn: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not 0 <= value <= 1:
        raise ValueError(f"{fn}: {name} must lie in [0, 1], got {value!r}")
    return float(value)


def _check_t_max(t_max: float | None, fn: str) -> float | None:
    if t_max is None:
        return None
    if isinstance(t_max, bool) or not isinstance(t_max, (int, float, np.floating, np.integer)):
        raise ValueError(f"{fn}: t_max must be a positive number of seconds or None, got {t_max!r}")
    if not (math.isfinite(t_max) and t_max > 0):
        raise ValueError(f"{fn}: t_max must be a positive finite number of seconds, got {t_max!r}")
    return float(t_max)


def _sample_of(batch: SpikeBatch) -> np.ndarray:
    """Sample index of every event, shape (n_events,)."""
    return np.repeat(np.arange(len(batch), dtype=np.int64), batch.counts())


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each (s, n), vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    seg_first = np.cumsum(lengths) - lengths  # position of each segment's first element
    return np.arange(total, dtype=np.int64) + np.repeat(starts - seg_first, lengths)


@njit(cache=True)
def _sort_segments(t: np.ndarray, u: np.ndarray, offsets: np.ndarray) -> None:
    """In place: sort each segment ``offsets[b]:offsets[b+1]`` by (time, unit); stable mergesort on time, then ties."""
    for b in range(offsets.size - 1):
        lo, hi = offsets[b], offsets[b + 1]
        if hi - lo < 2:
            continue
        for i in range(lo + 1, hi):
            if t[i] < t[i - 1]:
                order = np.argsort(t[lo:hi], kind="mergesort")
                ts = t[lo:hi][order]
                us = u[lo:hi][order]
                t[lo:hi] = ts
                u[lo:hi] = us
                break
        _order_ties(t[lo:hi], u[lo:hi])


def _assemble(
    times: np.ndarray, units: np.ndarray, sample: np.ndarray, n_samples: int, n_units: int | None
) -> SpikeBatch:
    """A SpikeBatch from events grouped by output sample (``sample`` non-decreasing), sorted within each sample."""
    offsets = np.zeros(n_samples + 1, dtype=np.int64)
    np.cumsum(np.bincount(sample, minlength=n_samples), out=offsets[1:])
    t = np.ascontiguousarray(times, dtype=np.float64)
    u = np.ascontiguousarray(units, dtype=np.int64)
    _sort_segments(t, u, offsets)
    return SpikeBatch.from_arrays(t, u, offsets, n_units)


# ----------------------------------------------------------------------------- augmentations
def channel_shift(batch: SpikeBatch, max_shift: int, rng: np.random.Generator) -> SpikeBatch:
    """Shift each sample's channels by a random integer in ``[-max_shift, max_shift]``; drop spikes leaving the range.

    One shift per sample (drawn in sample order); times (s) are unchanged; ``batch.n_units`` must be set.
    """
    _check_batch(batch, "channel_shift", need_units=True)
    max_shift = _check_int(max_shift, "max_shift", "channel_shift", 0)
    _check_rng(rng, "channel_shift")
    shifts = rng.integers(-max_shift, max_shift + 1, size=len(batch))
    units = batch.units.astype(np.int64) + shifts[_sample_of(batch)]
    keep = (units >= 0) & (units < batch.n_units)
    counts = np.bincount(_sample_of(batch)[keep], minlength=len(batch))
    offsets = np.zeros(len(batch) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    return SpikeBatch.from_arrays(batch.times[keep], units[keep], offsets, batch.n_units)


def blend(
    batch: SpikeBatch,
    labels: np.ndarray,
    probability: float,
    rng: np.random.Generator,
    keep: float = 0.5,
    t_max: float | None = None,
) -> SpikeBatch:
    """Replace each sample, with probability ``probability``, by an aligned blend with a same-class sample.

    The rule (module docstring): partner j uniform among the other samples of the class; both
    centred on their common mean time (s) and channel; spikes of the sample kept with
    probability ``keep``, of the partner with ``1 - keep``; spikes at t < 0, t > ``t_max`` (s)
    or outside the channels dropped. Same number of samples, same labels.
    """
    _check_batch(batch, "blend", need_units=False)
    _check_rng(rng, "blend")
    probability = _check_prob(probability, "probability", "blend")
    keep = _check_prob(keep, "keep", "blend")
    t_max = _check_t_max(t_max, "blend")
    B = len(batch)
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != B:
        raise ValueError(f"blend: labels must have one entry per sample ({B}), got shape {lab.shape}")
    if B and lab.dtype.kind not in "iub":
        raise ValueError(f"blend: labels must be integers, got dtype {lab.dtype}")

    # who is replaced, and by a blend with whom (RNG order: replacement draws, then partners per class)
    replaced = rng.random(B) < probability
    partner = np.full(B, -1, dtype=np.int64)
    for c in np.unique(lab):
        members = np.flatnonzero(lab == c)
        if members.size < 2:
            continue
        pos = np.flatnonzero(replaced[members])
        if pos.size == 0:
            continue
        r = rng.integers(0, members.size - 1, size=pos.size)
        r += r >= pos  # skip the sample itself
        partner[members[pos]] = members[r]
    replaced = partner >= 0

    # centres (mean time in s, mean channel) of every sample; alignment shifts for each pair
    counts = batch.counts()
    sample_of = _sample_of(batch)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_t = np.bincount(sample_of, weights=batch.times, minlength=B) / counts
        mean_u = np.bincount(sample_of, weights=batch.units.astype(np.float64), minlength=B) / counts
    out_idx = np.flatnonzero(replaced)
    j = partner[out_idx]
    both = (counts[out_idx] > 0) & (counts[j] > 0)
    half_dt = np.where(both, 0.5 * (mean_t[j] - mean_t[out_idx]), 0.0)
    half_du = np.where(both, np.trunc(0.5 * (mean_u[j] - mean_u[out_idx])), 0.0).astype(np.int64)

    # segments: every sample's own events, then the partner's events for the replaced ones
    n_rep = out_idx.size
    seg_out = np.concatenate([np.arange(B, dtype=np.int64), out_idx])
    seg_src = np.concatenate([np.arange(B, dtype=np.int64), j])
    seg_dt = np.zeros(B + n_rep)
    seg_du = np.zeros(B + n_rep, dtype=np.int64)
    seg_p = np.ones(B + n_rep)
    seg_dt[out_idx], seg_du[out_idx], seg_p[out_idx] = half_dt, half_du, keep
    seg_dt[B:], seg_du[B:], seg_p[B:] = -half_dt, -half_du, 1.0 - keep
    order = np.argsort(seg_out, kind="stable")  # own segment first, then the partner's
    seg_out, seg_src, seg_dt, seg_du, seg_p = (a[order] for a in (seg_out, seg_src, seg_dt, seg_du, seg_p))

    lengths = counts[seg_src]
    idx = _ranges(batch.offsets[seg_src], lengths)
    which = np.repeat(np.arange(seg_out.size), lengths)
    times = batch.times[idx] + seg_dt[which]
    units = batch.units[idx].astype(np.int64) + seg_du[which]
    draws = rng.random(idx.size) if n_rep else np.zeros(idx.size)
    ok = (draws < seg_p[which]) & (times >= 0) & (units >= 0)
    if batch.n_units is not None:
        ok &= units < batch.n_units
    if t_max is not None:
        ok &= times <= t_max
    return _assemble(times[ok], units[ok], seg_out[which][ok], B, batch.n_units)


def delay_line_size(n_units: int, n_delays: int) -> int:
    """Number of input channels after :func:`delay_line`: ``n_units * n_delays``."""
    n_units = _check_int(n_units, "n_units", "delay_line_size", 1)
    n_delays = _check_int(n_delays, "n_delays", "delay_line_size", 1)
    return n_units * n_delays


def delay_line(batch: SpikeBatch, n_delays: int, delay: float, t_max: float | None = None) -> SpikeBatch:
    """Replicate the input ``n_delays`` times: copy k of channel c at ``t + k * delay`` (s) is unit ``k * n_units + c``.

    Deterministic. Events after ``t_max`` (s) are dropped when given. The result has
    ``n_units * n_delays`` channels; ``batch.n_units`` must be set.
    """
    _check_batch(batch, "delay_line", need_units=True)
    n_delays = _check_int(n_delays, "n_delays", "delay_line", 1)
    if isinstance(delay, bool) or not isinstance(delay, (int, float, np.floating, np.integer)):
        raise ValueError(f"delay_line: delay must be a number of seconds >= 0, got {delay!r}")
    if not (math.isfinite(delay) and delay >= 0):
        raise ValueError(f"delay_line: delay must be a finite number of seconds >= 0, got {delay!r}")
    t_max = _check_t_max(t_max, "delay_line")
    n_units = int(batch.n_units)
    if n_units * n_delays > np.iinfo(np.int32).max:
        raise ValueError(f"delay_line: {n_units} channels x {n_delays} delays exceed the int32 unit range")
    k = np.arange(n_delays, dtype=np.int64)
    times = (batch.times[None, :] + (k * float(delay))[:, None]).reshape(-1)  # copy-major: k * E + e
    units = (batch.units.astype(np.int64)[None, :] + (k * n_units)[:, None]).reshape(-1)
    # gather sample-major (sample b: copy 0, copy 1, ...) so each sample's events are contiguous
    B, E = len(batch), batch.n_events
    starts = (batch.offsets[:-1][:, None] + (k * E)[None, :]).reshape(-1)
    lengths = np.repeat(batch.counts(), n_delays)
    idx = _ranges(starts, lengths)
    times, units = times[idx], units[idx]
    sample = np.repeat(np.arange(B, dtype=np.int64), batch.counts() * n_delays)
    if t_max is not None:
        ok = times <= t_max
        times, units, sample = times[ok], units[ok], sample[ok]
    return _assemble(times, units, sample, B, n_units * n_delays)
