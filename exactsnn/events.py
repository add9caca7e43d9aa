"""Ragged batches of spike trains in CSR layout.

A :class:`SpikeBatch` holds B samples. Sample ``b`` owns the slice
``offsets[b]:offsets[b + 1]`` of the flat arrays ``times`` (seconds, float64) and
``units`` (int32). Within a sample, events are sorted by time.

Tie rule (simultaneous events): events with equal times are ordered by unit index
(stable for equal ``(time, unit)`` pairs). The constructors enforce this canonical
order, so every computation downstream sees the same bits whatever order the caller
listed simultaneous events in.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from numba import njit

__all__ = ["SpikeBatch"]


# _scan's verdicts (the first problem found, in this order of precedence)
_OK, _NONFINITE, _NEGATIVE_TIME, _NEGATIVE_UNIT, _UNIT_RANGE, _UNIT_INT32, _UNSORTED = range(7)


@njit(cache=True)
def _scan(times: np.ndarray, units: np.ndarray, offsets: np.ndarray, n_units: int) -> tuple[int, int, bool]:
    """One pass over a batch: (verdict, index of the first offending event, ties out of canonical order).

    ``n_units`` < 0: no upper bound on the unit indices. Replaces a dozen whole-array NumPy passes
    (a SpikeBatch is built several times per training step).
    """
    first = np.full(7, -1, np.int64)
    ties = False
    i32 = np.iinfo(np.int32).max
    for b in range(offsets.size - 1):
        for e in range(offsets[b], offsets[b + 1]):
            t = times[e]
            u = units[e]
            if not np.isfinite(t):
                if first[_NONFINITE] < 0:
                    first[_NONFINITE] = e
            elif t < 0.0 and first[_NEGATIVE_TIME] < 0:
                first[_NEGATIVE_TIME] = e
            if u < 0:
                if first[_NEGATIVE_UNIT] < 0:
                    first[_NEGATIVE_UNIT] = e
            elif n_units >= 0 and u >= n_units:
                if first[_UNIT_RANGE] < 0:
                    first[_UNIT_RANGE] = e
            elif u > i32 and first[_UNIT_INT32] < 0:
                first[_UNIT_INT32] = e
            if e > offsets[b]:
                if t < times[e - 1]:
                    if first[_UNSORTED] < 0:
                        first[_UNSORTED] = e
                elif t == times[e - 1] and u < units[e - 1]:
                    ties = True
    for code in range(1, 7):
        if first[code] >= 0:
            return code, first[code], ties
    return _OK, -1, ties


@njit(cache=True)
def _before(ta: float, ua: int, tb: float, ub: int) -> bool:
    return ta < tb or (ta == tb and ua < ub)


@njit(cache=True)
def canonical_order(times: np.ndarray, units: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Permutation that sorts each sample's events by (time, unit) (stable; samples stay in place).

    An insertion sort per sample: O(events + displacements), so O(events) for the nearly sorted
    inputs it gets (ties out of unit order here; the kernels' records, whose disorder stays within
    one inter-input stretch), where a global lexsort took a sixth of a batch-32 forward pass.
    """
    order = np.arange(times.size)
    for b in range(offsets.size - 1):
        lo, hi = offsets[b], offsets[b + 1]
        for i in range(lo + 1, hi):
            k = order[i]
            if not _before(times[k], units[k], times[order[i - 1]], units[order[i - 1]]):
                continue
            j = i
            while j > lo and _before(times[k], units[k], times[order[j - 1]], units[order[j - 1]]):
                order[j] = order[j - 1]
                j -= 1
            order[j] = k
    return order


@dataclass(frozen=True, eq=False)
class SpikeBatch:
    """B spike trains: ``times`` (s, float64), ``units`` (int32), ``offsets`` (int64, length B+1).

    Build it with :meth:`from_lists` or :meth:`from_arrays`; both validate and put
    simultaneous events in canonical (time, unit) order. ``n_units``, when given, is the
    number of channels; units must lie in ``[0, n_units)``.
    """

    times: np.ndarray
    units: np.ndarray
    offsets: np.ndarray
    n_units: int | None = None

    def __post_init__(self) -> None:
        times = np.array(self.times, dtype=np.float64, copy=True).reshape(-1)  # never alias the caller's data
        units_in = np.asarray(self.units).reshape(-1)
        offsets_in = np.asarray(self.offsets).reshape(-1)
        if units_in.size and not np.issubdtype(units_in.dtype, np.integer):
            if not np.all(np.isfinite(units_in)) or np.any(units_in != np.round(units_in)):
                raise ValueError("SpikeBatch: units must be integers")
        if offsets_in.size and not np.issubdtype(offsets_in.dtype, np.integer):
            raise ValueError("SpikeBatch: offsets must be integers")
        offsets = np.array(offsets_in, dtype=np.int64, copy=True)  # read-only below: never the caller's array
        if offsets.size < 1 or offsets[0] != 0:
            raise ValueError("SpikeBatch: offsets must start at 0 and have length B+1")
        if times.size != units_in.size:
            raise ValueError(f"SpikeBatch: times ({times.size}) and units ({units_in.size}) differ in length")
        if offsets[-1] != times.size:
            raise ValueError(f"SpikeBatch: offsets end at {offsets[-1]} but there are {times.size} events")
        if np.any(np.diff(offsets) < 0):
            raise ValueError("SpikeBatch: offsets must be non-decreasing")
        if self.n_units is not None and (int(self.n_units) != self.n_units or self.n_units < 0):
            raise ValueError(f"SpikeBatch: n_units must be a non-negative integer, got {self.n_units}")
        n_samples = offsets.size - 1
        units_scan = units_in.astype(np.int64, copy=False)  # one _scan signature (int32 and int64 inputs)
        verdict, idx, ties = _scan(times, np.ascontiguousarray(units_scan), offsets,
                                   -1 if self.n_units is None else int(self.n_units))
        if verdict != _OK:
            b = int(np.searchsorted(offsets, idx, side="right") - 1)
            messages = {
                _NONFINITE: "has a non-finite spike time",
                _NEGATIVE_TIME: "has a negative spike time",
                _NEGATIVE_UNIT: "has a negative unit index",
                _UNIT_RANGE: f"has unit {units_scan[idx]} out of range [0, {self.n_units})",
                _UNSORTED: "has spike times that are not sorted",
            }
            if verdict == _UNIT_INT32:
                raise ValueError("SpikeBatch: unit index exceeds int32 range")
            raise ValueError(f"SpikeBatch: sample {b} {messages[verdict]}")
        units = units_scan.astype(np.int32)  # a copy: never alias the caller's data
        if ties:
            order = canonical_order(times, units, offsets)
            times, units = times[order], units[order]
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "units", np.ascontiguousarray(units))
        object.__setattr__(self, "offsets", offsets)
        object.__setattr__(self, "n_units", None if self.n_units is None else int(self.n_units))
        for arr in (self.times, self.units, self.offsets):
            arr.setflags(write=False)
        assert n_samples == len(self)

    # ----------------------------------------------------------------- constructors
    @classmethod
    def from_lists(
        cls, samples: Iterable[tuple[Sequence[float], Sequence[int]]], n_units: int | None = None
    ) -> SpikeBatch:
        """Build from ``[(times_0, units_0), (times_1, units_1), ...]`` (times in s, sorted per sample)."""
        times_list, units_list, counts = [], [], [0]
        for b, sample in enumerate(samples):
            try:
                t, u = sample
            except (TypeError, ValueError):
                raise ValueError(f"SpikeBatch: sample {b} is not a (times, units) pair") from None
            t = np.asarray(t, dtype=np.float64).reshape(-1)
            u = np.asarray(u).reshape(-1)
            if t.size != u.size:
                raise ValueError(f"SpikeBatch: sample {b} has {t.size} times but {u.size} units")
            if u.size and not np.issubdtype(u.dtype, np.integer):
                if not np.issubdtype(u.dtype, np.number) or not np.all(np.isfinite(u)) or np.any(u != np.round(u)):
                    raise ValueError(f"SpikeBatch: sample {b} has non-integer unit indices")
            times_list.append(t)
            units_list.append(u.astype(np.int64) if u.size else np.zeros(0, np.int64))
            counts.append(t.size)
        offsets = np.cumsum(counts, dtype=np.int64)
        times = np.concatenate(times_list) if times_list else np.zeros(0)
        units = np.concatenate(units_list) if units_list else np.zeros(0, np.int64)
        return cls(times, units, offsets, n_units)

    @classmethod
    def from_arrays(
        cls, times: np.ndarray, units: np.ndarray, offsets: np.ndarray, n_units: int | None = None
    ) -> SpikeBatch:
        """Build from flat CSR arrays (``offsets`` has length B+1 and starts at 0)."""
        return cls(times, units, offsets, n_units)

    @classmethod
    def empty(cls, n_samples: int, n_units: int | None = None) -> SpikeBatch:
        """A batch of ``n_samples`` samples without events."""
        return cls(np.zeros(0), np.zeros(0, np.int32), np.zeros(n_samples + 1, np.int64), n_units)

    # ----------------------------------------------------------------- access
    def __len__(self) -> int:
        return int(self.offsets.size - 1)

    @property
    def n_events(self) -> int:
        """Total number of events in the batch."""
        return int(self.times.size)

    def sample(self, b: int) -> tuple[np.ndarray, np.ndarray]:
        """``(times, units)`` of sample ``b`` (read-only views)."""
        if not -len(self) <= b < len(self):
            raise IndexError(f"sample {b} out of range for a batch of {len(self)}")
        b = b % len(self)
        lo, hi = self.offsets[b], self.offsets[b + 1]
        return self.times[lo:hi], self.units[lo:hi]

    def counts(self) -> np.ndarray:
        """Number of events per sample, shape (B,)."""
        return np.diff(self.offsets)

    def select(self, indices: Sequence[int] | np.ndarray) -> SpikeBatch:
        """A new batch made of the given samples, in the given order."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise IndexError("SpikeBatch.select: index out of range")
        idx = idx % max(len(self), 1)
        lo, hi = self.offsets[idx], self.offsets[idx + 1]
        counts = hi - lo
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        take = np.concatenate([np.arange(a, b) for a, b in zip(lo, hi, strict=True)]) if idx.size else []
        take = np.asarray(take, dtype=np.int64)
        return SpikeBatch(self.times[take], self.units[take], offsets, self.n_units)

    def __repr__(self) -> str:
        return f"SpikeBatch(n_samples={len(self)}, n_events={self.n_events}, n_units={self.n_units})"
