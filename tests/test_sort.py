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
