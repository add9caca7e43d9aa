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

__all__ = ["SpikeBatch"]


def _canonical_ties(times: np.ndarray, units: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reorder events within ties of equal time by unit (times are already sorted per sample)."""
    if times.size < 2:
        return times, units
    same = times[1:] == times[:-1]
    # a tie across a sample boundary is not a tie
    boundaries = offsets[1:-1]
    boundaries = boundaries[(boundaries > 0) & (boundaries < times.size)]
    same[boundaries - 1] = False
    if not (same & (units[1:] < units[:-1])).any():
        return times, units  # ties already in canonical order (the common case)
    sample_id = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    order = np.lexsort((units, times, sample_id))
    return times[order], units[order]


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
        units = units_in.astype(np.int64)  # a copy
        offsets = offsets_in.astype(np.int64)
        if offsets.size < 1 or offsets[0] != 0:
            raise ValueError("SpikeBatch: offsets must start at 0 and have length B+1")
        if times.size != units.size:
            raise ValueError(f"SpikeBatch: times ({times.size}) and units ({units.size}) differ in length")
        if offsets[-1] != times.size:
            raise ValueError(f"SpikeBatch: offsets end at {offsets[-1]} but there are {times.size} events")
        if np.any(np.diff(offsets) < 0):
            raise ValueError("SpikeBatch: offsets must be non-decreasing")
        if self.n_units is not None and (int(self.n_units) != self.n_units or self.n_units < 0):
            raise ValueError(f"SpikeBatch: n_units must be a non-negative integer, got {self.n_units}")
        n_samples = offsets.size - 1
        bad = ~np.isfinite(times)
        if bad.any():
            b = int(np.searchsorted(offsets, np.argmax(bad), side="right") - 1)
            raise ValueError(f"SpikeBatch: sample {b} has a non-finite spike time")
        if (times < 0).any():
            b = int(np.searchsorted(offsets, np.argmax(times < 0), side="right") - 1)
            raise ValueError(f"SpikeBatch: sample {b} has a negative spike time")
        if (units < 0).any():
            b = int(np.searchsorted(offsets, np.argmax(units < 0), side="right") - 1)
            raise ValueError(f"SpikeBatch: sample {b} has a negative unit index")
        if self.n_units is not None and (units >= self.n_units).any():
            idx = int(np.argmax(units >= self.n_units))
            b = int(np.searchsorted(offsets, idx, side="right") - 1)
            raise ValueError(
                f"SpikeBatch: sample {b} has unit {units[idx]} out of range [0, {self.n_units})"
            )
        if units.size and units.max() > np.iinfo(np.int32).max:
            raise ValueError("SpikeBatch: unit index exceeds int32 range")
        if times.size > 1:
            dec = np.diff(times) < 0
            starts = offsets[1:-1]
            starts = starts[(starts > 0) & (starts < times.size)]
            dec[starts - 1] = False  # a new sample may start earlier
            if dec.any():
                b = int(np.searchsorted(offsets, np.argmax(dec) + 1, side="right") - 1)
                raise ValueError(f"SpikeBatch: sample {b} has spike times that are not sorted")
        times, units = _canonical_ties(times, units, offsets)
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "units", np.ascontiguousarray(units.astype(np.int32)))
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
