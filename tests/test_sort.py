"""The kernels' stable argsort equals NumPy's stable argsort, ties (many) included."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from exactsnn.engine.cpu.sort import stable_argsort


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([-np.inf, -1.0, -0.0, 0.0, 1e-300, 0.5, 0.5 + 1e-16, 2.0, np.inf]), max_size=80))
def test_stable_argsort_matches_numpy_with_ties(values: list[float]):
    keys = np.array(values, dtype=np.float64)
    assert np.array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))


def test_stable_argsort_long_random_arrays():
    rng = np.random.default_rng(0)
    for n in (0, 1, 15, 16, 17, 33, 1000, 4099):
        keys = np.round(rng.uniform(0, 1, n), 2)  # many ties
        assert np.array_equal(stable_argsort(keys), np.argsort(keys, kind="stable")), n
        keys = rng.uniform(0, 1, n)
        assert np.array_equal(stable_argsort(keys), np.argsort(keys, kind="stable")), n


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from([-np.inf, -0.0, 0.0, 0.5, 0.5 + 1e-16, np.inf]),
                          st.floats(-1e3, 1e3, allow_nan=False)), min_size=256, max_size=1500))
def test_stable_argsort_bucket_path_matches_numpy(values: list[float]):
    """Arrays of 256 keys or more take the bucket path: infinities, signed zeros, ties and clusters included."""
    keys = np.array(values, dtype=np.float64)
    assert np.array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))


def test_stable_argsort_bucket_path_with_clustered_and_extreme_keys():
    """A cluster far denser than the buckets (one bucket holds most keys: merge-sorted on its own), keys a
    hair apart, all-equal and all-infinite arrays."""
    rng = np.random.default_rng(1)
    cases = [
        np.r_[rng.uniform(0, 1e-9, 5000), [1e9], rng.uniform(size=100)],
        np.r_[np.full(3000, 0.25), rng.uniform(size=3000)],
        0.5 + np.arange(2000) * 1e-16 * rng.choice([-1, 1], 2000),
        np.full(1000, np.inf),
        np.r_[np.full(1000, -np.inf), [0.0], np.full(10, np.inf)],
        rng.uniform(0, 0.5, 200_000),
    ]
    for keys in cases:
        assert np.array_equal(stable_argsort(keys), np.argsort(keys, kind="stable"))
