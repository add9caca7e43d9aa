"""Canonical (time, unit) order of a batch's events (exactsnn.events.canonical_order) against np.lexsort."""

import numpy as np
import pytest

from exactsnn.events import canonical_order


def _lexsort(times, units, offsets):
    sample = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    return np.lexsort((units, times, sample))


@pytest.mark.parametrize("seed", range(20))
def test_matches_lexsort_on_random_batches(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 40, size=rng.integers(1, 6))
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # few distinct times and units: many exact ties and duplicate (time, unit) pairs
    times = rng.integers(0, 6, offsets[-1]).astype(np.float64)
    units = rng.integers(0, 4, offsets[-1]).astype(np.int32)
    np.testing.assert_array_equal(canonical_order(times, units, offsets), _lexsort(times, units, offsets))


def test_nearly_sorted_record_as_the_kernels_emit_it():
    """Time-ordered except within stretches (the feedforward kernel runs one neuron's spikes at a time)."""
    rng = np.random.default_rng(1)
    chunks = []
    for k in range(200):
        t = np.sort(rng.uniform(k, k + 1, 6))
        chunks.append(rng.permutation(t))  # disorder within one stretch only
    times = np.concatenate(chunks)
    units = rng.integers(0, 50, times.size).astype(np.int64)
    offsets = np.array([0, 500, times.size], dtype=np.int64)
    order = canonical_order(times, units, offsets)
    np.testing.assert_array_equal(order, _lexsort(times, units, offsets))
    assert np.all(np.diff(times[order][:500]) >= 0) and np.all(np.diff(times[order][500:]) >= 0)


def test_empty_and_single():
    assert canonical_order(np.zeros(0), np.zeros(0, np.int32), np.zeros(3, np.int64)).size == 0
    np.testing.assert_array_equal(canonical_order(np.ones(1), np.zeros(1, np.int32), np.array([0, 1])), [0])
