"""SpikeBatch: constructors, access, validation errors and the canonical tie order."""

from __future__ import annotations

import numpy as np
import pytest

import exactsnn as es
from exactsnn.events import SpikeBatch


def _one_line(err: pytest.ExceptionInfo) -> str:
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- construction / access
def test_from_lists_layout_and_dtypes():
    batch = SpikeBatch.from_lists([([0.1, 0.2, 0.3], [0, 2, 1]), ([], []), ([0.05], [3])], n_units=4)
    assert len(batch) == 3
    assert batch.n_events == 4
    assert batch.n_units == 4
    assert batch.times.dtype == np.float64
    assert batch.units.dtype == np.int32
    assert batch.offsets.dtype == np.int64
    np.testing.assert_array_equal(batch.offsets, [0, 3, 3, 4])
    np.testing.assert_array_equal(batch.counts(), [3, 0, 1])
    t, u = batch.sample(0)
    np.testing.assert_array_equal(t, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(u, [0, 2, 1])
    t, u = batch.sample(1)
    assert t.size == 0 and u.size == 0
    t, u = batch.sample(-1)
    np.testing.assert_array_equal(t, [0.05])
    np.testing.assert_array_equal(u, [3])


def test_from_arrays_equals_from_lists():
    a = SpikeBatch.from_lists([([0.0, 0.5], [1, 0]), ([0.25], [2])], n_units=3)
    b = SpikeBatch.from_arrays(np.array([0.0, 0.5, 0.25]), np.array([1, 0, 2]), np.array([0, 2, 3]), n_units=3)
    for x, y in ((a.times, b.times), (a.units, b.units), (a.offsets, b.offsets)):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype
    assert a.n_units == b.n_units == 3


def test_from_lists_accepts_numpy_arrays_and_int32_units():
    batch = SpikeBatch.from_lists([(np.array([0.1, 0.2]), np.array([1, 0], dtype=np.int32))])
    np.testing.assert_array_equal(batch.units, [1, 0])
    assert batch.n_units is None


@pytest.mark.parametrize("n", [0, 1, 5])
def test_empty(n):
    batch = SpikeBatch.empty(n, n_units=7)
    assert len(batch) == n
    assert batch.n_events == 0
    assert batch.n_units == 7
    np.testing.assert_array_equal(batch.counts(), np.zeros(n))
    np.testing.assert_array_equal(batch.offsets, np.zeros(n + 1))
    for b in range(n):
        t, u = batch.sample(b)
        assert t.size == 0 and u.size == 0


def test_from_lists_no_samples():
    batch = SpikeBatch.from_lists([], n_units=3)
    assert len(batch) == 0
    assert batch.n_events == 0
    assert batch.counts().shape == (0,)


def test_sample_index_out_of_range():
    batch = SpikeBatch.from_lists([([0.1], [0]), ([0.2], [1])])
    with pytest.raises(IndexError):
        batch.sample(2)
    with pytest.raises(IndexError):
        batch.sample(-3)


def test_select_order_duplicates_and_negative_indices():
    samples = [([0.1 * (b + 1)] * (b + 1), list(range(b + 1))) for b in range(4)]
    batch = SpikeBatch.from_lists(samples, n_units=4)
    sel = batch.select([3, 0, 3, -3])
    assert len(sel) == 4
    assert sel.n_units == 4
    np.testing.assert_array_equal(sel.counts(), [4, 1, 4, 2])
    for k, b in enumerate([3, 0, 3, 1]):
        t, u = sel.sample(k)
        t0, u0 = batch.sample(b)
        np.testing.assert_array_equal(t, t0)
        np.testing.assert_array_equal(u, u0)


def test_select_empty_and_out_of_range():
    batch = SpikeBatch.from_lists([([0.1], [0]), ([0.2], [1])])
    sel = batch.select([])
    assert len(sel) == 0 and sel.n_events == 0
    with pytest.raises(IndexError):
        batch.select([2])
    with pytest.raises(IndexError):
        batch.select([0, -3])


def test_arrays_are_read_only():
    batch = SpikeBatch.from_lists([([0.1, 0.2], [0, 1])])
    for arr in (batch.times, batch.units, batch.offsets):
        with pytest.raises(ValueError):
            arr[0] = arr[0]


def test_caller_arrays_are_not_aliased():
    """The batch owns its data: the caller's arrays stay writeable and later edits do not leak in."""
    times = np.array([0.1, 0.2, 0.3])
    units = np.array([0, 1, 2], dtype=np.int32)
    offsets = np.array([0, 3], dtype=np.int64)
    batch = SpikeBatch.from_arrays(times, units, offsets, n_units=3)
    assert times.flags.writeable and units.flags.writeable and offsets.flags.writeable
    times[0] = 5.0  # would make the validated batch unsorted if aliased
    units[0] = 99
    np.testing.assert_array_equal(batch.times, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(batch.units, [0, 1, 2])


def test_sorted_across_sample_boundary_is_fine():
    # sample 1 starts earlier than sample 0 ends: not an ordering violation
    batch = SpikeBatch.from_arrays(np.array([0.5, 0.9, 0.1, 0.2]), np.array([0, 0, 0, 0]), np.array([0, 2, 4]))
    np.testing.assert_array_equal(batch.sample(1)[0], [0.1, 0.2])


def test_top_level_export():
    assert es.SpikeBatch is SpikeBatch


# ----------------------------------------------------------------------------- validation
@pytest.mark.parametrize(
    ("samples", "bad_sample", "words"),
    [
        ([([0.1, 0.2], [0, 0]), ([0.3, 0.2], [0, 1])], 1, ["sorted"]),
        ([([0.1], [0]), ([0.0], [0]), ([0.2, -1e-9], [1, 1])], 2, ["negative"]),
        ([([0.1, np.nan], [0, 1])], 0, ["finite"]),
        ([([0.1], [0]), ([np.inf], [0])], 1, ["finite"]),
        ([([0.1], [0]), ([], []), ([-np.inf, 0.3], [0, 1])], 2, ["finite"]),
        ([([0.1], [0]), ([0.2], [-1])], 1, ["negative", "unit"]),
    ],
)
def test_invalid_events_name_sample_and_problem(samples, bad_sample, words):
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_lists(samples, n_units=4)
    msg = _one_line(err)
    assert f"sample {bad_sample}" in msg
    for w in words:
        assert w in msg.lower()


@pytest.mark.parametrize(("unit", "n_units"), [(5, 5), (7, 5), (1, 1)])
def test_unit_out_of_range_names_sample_unit_and_n_units(unit, n_units):
    samples = [([0.1], [0]), ([0.1], [0]), ([0.1, 0.2], [0, unit])]
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_lists(samples, n_units=n_units)
    msg = _one_line(err)
    assert "sample 2" in msg
    assert str(unit) in msg
    assert str(n_units) in msg
    assert "range" in msg


def test_unit_range_not_checked_without_n_units():
    batch = SpikeBatch.from_lists([([0.1], [1000])])
    assert batch.units[0] == 1000


def test_same_errors_from_arrays():
    offsets = np.array([0, 1, 3])
    cases = [
        (np.array([0.1, 0.3, 0.2]), np.array([0, 0, 0]), "sorted"),
        (np.array([0.1, -0.3, 0.2]), np.array([0, 0, 0]), "negative"),
        (np.array([0.1, 0.2, np.nan]), np.array([0, 0, 0]), "finite"),
        (np.array([0.1, 0.2, 0.3]), np.array([0, 0, 9]), "range"),
        (np.array([0.1, 0.2, 0.3]), np.array([0, -2, 0]), "negative"),
    ]
    for times, units, word in cases:
        with pytest.raises(ValueError) as err:
            SpikeBatch.from_arrays(times, units, offsets, n_units=4)
        msg = _one_line(err)
        assert "sample 1" in msg, msg
        assert word in msg.lower(), msg


def test_mismatched_lengths_from_lists_names_sample():
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_lists([([0.1], [0]), ([0.1, 0.2], [0])])
    msg = _one_line(err)
    assert "sample 1" in msg
    assert "2" in msg and "1" in msg


def test_mismatched_lengths_from_arrays():
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_arrays(np.array([0.1, 0.2]), np.array([0]), np.array([0, 2]))
    _one_line(err)


def test_sample_not_a_pair():
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_lists([([0.1], [0]), 3.0])
    assert "sample 1" in _one_line(err)
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_lists([([0.1], [0], [1])])
    assert "sample 0" in _one_line(err)


@pytest.mark.parametrize(
    "offsets",
    [
        [1, 3],  # does not start at 0
        [0, 2],  # ends before the last event
        [0, 4],  # ends after the last event
        [0, 2, 1, 3],  # decreasing
        [],  # no B+1 entries at all
        [0.0, 1.5, 3.0],  # not integers
    ],
)
def test_bad_offsets(offsets):
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_arrays(np.array([0.1, 0.2, 0.3]), np.array([0, 1, 2]), np.array(offsets))
    _one_line(err)


@pytest.mark.parametrize("units", [[0.5], [np.nan], [1.5]])
def test_non_integer_units_rejected_from_arrays(units):
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_arrays(np.array([0.1]), np.array(units), np.array([0, 1]))
    _one_line(err)


@pytest.mark.parametrize("units", [[0.5], [np.nan], [1.5]])
def test_non_integer_units_rejected_from_lists(units):
    """from_lists must not silently truncate a unit such as 1.5 to 1."""
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_lists([([0.1], units)])
    _one_line(err)


def test_integral_float_units_accepted():
    batch = SpikeBatch.from_arrays(np.array([0.1, 0.2]), np.array([1.0, 2.0]), np.array([0, 2]))
    np.testing.assert_array_equal(batch.units, [1, 2])
    assert batch.units.dtype == np.int32


@pytest.mark.parametrize("n_units", [-1, 2.5])
def test_bad_n_units(n_units):
    with pytest.raises(ValueError) as err:
        SpikeBatch.from_lists([([0.1], [0])], n_units=n_units)
    _one_line(err)


def test_zero_time_and_duplicates_are_legal():
    batch = SpikeBatch.from_lists([([0.0, 0.0, 0.1, 0.1], [2, 2, 1, 1])], n_units=3)
    np.testing.assert_array_equal(batch.times, [0.0, 0.0, 0.1, 0.1])
    np.testing.assert_array_equal(batch.units, [2, 2, 1, 1])


# ----------------------------------------------------------------------------- canonical tie order
def test_ties_sorted_by_unit():
    batch = SpikeBatch.from_lists([([0.1, 0.2, 0.2, 0.2, 0.3], [5, 3, 0, 4, 1]), ([0.0, 0.0], [2, 1])], n_units=6)
    np.testing.assert_array_equal(batch.sample(0)[1], [5, 0, 3, 4, 1])
    np.testing.assert_array_equal(batch.sample(0)[0], [0.1, 0.2, 0.2, 0.2, 0.3])
    np.testing.assert_array_equal(batch.sample(1)[1], [1, 2])


def test_tie_across_sample_boundary_does_not_mix_samples():
    # last event of sample 0 and first event of sample 1 share a time; they must stay in their samples
    batch = SpikeBatch.from_arrays(np.array([0.1, 0.2, 0.2, 0.2, 0.5]), np.array([0, 4, 3, 1, 0]), np.array([0, 2, 5]))
    np.testing.assert_array_equal(batch.sample(0)[1], [0, 4])
    np.testing.assert_array_equal(batch.sample(1)[1], [1, 3, 0])
    np.testing.assert_array_equal(batch.sample(1)[0], [0.2, 0.2, 0.5])


def test_tie_order_independent_of_listing_order():
    rng = np.random.default_rng(3)
    base_t = np.sort(rng.choice(np.linspace(0.0, 0.1, 6), size=40))  # many exact ties
    base_u = rng.integers(0, 8, size=40)
    ref = SpikeBatch.from_lists([(base_t, base_u)] * 2, n_units=8)
    for _ in range(10):
        perm = np.lexsort((rng.random(40), base_t))  # shuffle within ties only
        other = SpikeBatch.from_lists([(base_t[perm], base_u[perm]), (base_t, base_u)], n_units=8)
        np.testing.assert_array_equal(other.times, ref.times)
        np.testing.assert_array_equal(other.units, ref.units)
    # canonical: sorted by (time, unit) in each sample
    t, u = ref.sample(0)
    order = np.lexsort((u, t))
    np.testing.assert_array_equal(order, np.arange(40))


def test_select_keeps_canonical_order():
    batch = SpikeBatch.from_lists([([0.1, 0.1], [3, 1]), ([0.2, 0.2, 0.2], [2, 0, 1])])
    sel = batch.select([1, 0])
    np.testing.assert_array_equal(sel.units, [0, 1, 2, 1, 3])
