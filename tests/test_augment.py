"""Augmentation: channel shift, same-class blend, input delay lines (rules in exactsnn/data/augment.py)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import exactsnn as es
from exactsnn.data.augment import blend, channel_shift, delay_line, delay_line_size


def random_batch(n_samples=8, n_units=50, seed=0, max_events=30, t_hi=1.0):
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(n_samples):
        k = int(rng.integers(0, max_events))
        samples.append((np.sort(rng.uniform(0, t_hi, size=k)), rng.integers(0, n_units, size=k)))
    return es.SpikeBatch.from_lists(samples, n_units=n_units)


def events(batch, b):
    t, u = batch.sample(b)
    return list(zip(t.tolist(), u.tolist(), strict=True))


def canonical(evs):
    return sorted(evs)  # (time, unit) order: SpikeBatch's tie rule


def assert_valid(batch):
    """Sorted per sample, ties in unit order, units in range (rebuilding must not change anything)."""
    again = es.SpikeBatch.from_arrays(batch.times, batch.units, batch.offsets, batch.n_units)
    np.testing.assert_array_equal(again.times, batch.times)
    np.testing.assert_array_equal(again.units, batch.units)


batches = st.lists(
    st.lists(st.tuples(st.floats(0.0, 1.0, allow_nan=False), st.integers(0, 19)), max_size=15), max_size=6
).map(lambda data: es.SpikeBatch.from_lists([([t for t, _ in sorted(s)], [u for _, u in sorted(s)]) for s in data], 20))


# ----------------------------------------------------------------------------- channel shift
@given(batches, st.integers(0, 25), st.integers(0, 2**32 - 1))
def test_channel_shift_rule(batch, max_shift, seed):
    out = channel_shift(batch, max_shift, np.random.default_rng(seed))
    shifts = np.random.default_rng(seed).integers(-max_shift, max_shift + 1, size=len(batch))
    assert len(out) == len(batch) and out.n_units == batch.n_units
    for b in range(len(batch)):
        want = [(t, u + shifts[b]) for t, u in events(batch, b) if 0 <= u + shifts[b] < batch.n_units]
        assert events(out, b) == canonical(want)
    moved = [batch.sample(b)[1] + shifts[b] for b in range(len(batch))]
    assert out.n_events == batch.n_events - sum(int(np.sum((u < 0) | (u >= 20))) for u in moved)
    assert_valid(out)


def test_channel_shift_seeded_range_and_identity():
    batch = random_batch(40, n_units=700, seed=1)
    a = channel_shift(batch, 40, np.random.default_rng(5))
    b = channel_shift(batch, 40, np.random.default_rng(5))
    np.testing.assert_array_equal(a.units, b.units)
    np.testing.assert_array_equal(a.times, b.times)
    assert a.units.min() >= 0 and a.units.max() < 700
    c = channel_shift(batch, 40, np.random.default_rng(6))
    assert not np.array_equal(np.diff(c.offsets), np.diff(a.offsets)) or not np.array_equal(c.units, a.units)
    same = channel_shift(batch, 0, np.random.default_rng(0))
    np.testing.assert_array_equal(same.units, batch.units)
    np.testing.assert_array_equal(same.times, batch.times)
    # shifts are uniform over -max_shift..max_shift, both ends included
    one = es.SpikeBatch.from_lists([([0.5], [10])] * 400, n_units=21)
    seen = channel_shift(one, 3, np.random.default_rng(0)).units - 10
    assert set(seen.tolist()) == set(range(-3, 4))


def test_channel_shift_errors():
    batch = random_batch(2)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="max_shift must be an integer >= 0"):
        channel_shift(batch, -1, rng)
    with pytest.raises(ValueError, match="max_shift"):
        channel_shift(batch, 1.5, rng)
    with pytest.raises(ValueError, match="numpy.random.Generator"):
        channel_shift(batch, 2, 0)
    with pytest.raises(ValueError, match="no n_units"):
        channel_shift(es.SpikeBatch.from_lists([([0.1], [1])]), 2, rng)


# ----------------------------------------------------------------------------- blend
def centre(batch, b):
    t, u = batch.sample(b)
    return t.mean(), u.astype(float).mean()


def aligned(batch, src, other, n_units, t_max=None):
    """Events of ``src`` moved half-way towards ``other``'s centre (the documented alignment)."""
    (ts, us), (to, uo) = centre(batch, src), centre(batch, other)
    dt, du = 0.5 * (to - ts), int(np.trunc(0.5 * (uo - us)))
    t, u = batch.sample(src)
    return [
        (x + dt, y + du)
        for x, y in zip(t.tolist(), u.tolist(), strict=True)
        if x + dt >= 0 and 0 <= y + du < n_units and (t_max is None or x + dt <= t_max)
    ]


def same_events(a, b):
    """Equal event lists up to rounding of the shift (the centres are sums in a different order)."""
    if len(a) != len(b):
        return False
    a, b = np.array(a, dtype=float).reshape(-1, 2), np.array(b, dtype=float).reshape(-1, 2)
    return bool(np.array_equal(a[:, 1], b[:, 1]) and np.allclose(a[:, 0], b[:, 0], rtol=0, atol=1e-12))


def test_blend_probability_zero_is_identity():
    batch = random_batch(10)
    out = blend(batch, np.arange(10) % 3, 0.0, np.random.default_rng(0))
    np.testing.assert_array_equal(out.times, batch.times)
    np.testing.assert_array_equal(out.units, batch.units)
    np.testing.assert_array_equal(out.offsets, batch.offsets)


@pytest.mark.parametrize("keep", [1.0, 0.0])
def test_blend_rule_exact_and_same_class_only(keep):
    """keep=1: a replaced sample is itself, aligned; keep=0: it is a same-class partner, aligned."""
    batch = random_batch(30, n_units=60, seed=2, max_events=25)
    labels = np.random.default_rng(3).integers(0, 4, size=30)
    labels[29] = 9  # alone in its class: never replaced
    out = blend(batch, labels, 1.0, np.random.default_rng(4), keep=keep, t_max=1.0)
    assert len(out) == 30 and out.n_units == 60
    assert_valid(out)
    assert events(out, 29) == events(batch, 29)
    for i in range(29):
        same = [j for j in range(30) if labels[j] == labels[i] and j != i]
        candidates = []
        for j in same:
            if batch.counts()[i] and batch.counts()[j]:
                candidates.append(aligned(batch, i if keep else j, j if keep else i, 60, t_max=1.0))
            else:  # an empty sample: nothing is moved
                candidates.append(events(batch, i if keep else j))
        assert any(same_events(events(out, i), canonical(c)) for c in candidates), i


def rounded(evs):
    return {(round(float(t), 9), int(u)) for t, u in evs}


def test_blend_mixes_both_and_thins():
    """keep=0.5: about half of each sample's spikes, all of them within the two samples' aligned spikes."""
    rng = np.random.default_rng(0)
    samples = [(np.sort(rng.uniform(0.2, 0.6, 400)), rng.integers(100, 140, 400)) for _ in range(2)]
    batch = es.SpikeBatch.from_lists(samples, n_units=300)
    out = blend(batch, [1, 1], 1.0, np.random.default_rng(1))
    for i, j in ((0, 1), (1, 0)):
        own, other = rounded(aligned(batch, i, j, 300)), rounded(aligned(batch, j, i, 300))
        got = rounded(events(out, i))
        assert len(got) == out.counts()[i] and got <= own | other
        assert 300 < len(got) < 500  # binomial(400, 1/2) twice: mean 400
        assert 120 < len(got & own) < 280 and 120 < len(got & other) < 280


def test_blend_seeded_and_labels_unchanged():
    batch = random_batch(20, seed=5)
    labels = np.arange(20) % 2
    a = blend(batch, labels, 0.5, np.random.default_rng(7))
    b = blend(batch, labels, 0.5, np.random.default_rng(7))
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.units, b.units)
    c = blend(batch, labels, 0.5, np.random.default_rng(8))
    assert not (np.array_equal(a.offsets, c.offsets) and np.array_equal(a.times, c.times))
    assert len(a) == len(batch) and labels.tolist() == (np.arange(20) % 2).tolist()


def test_blend_drops_out_of_window():
    # centres (0.2 s, ch 5) and (0.1 s, ch 1): sample 0 moves by -0.05 s, -2 channels; sample 1 by +0.05 s, +2
    batch = es.SpikeBatch.from_lists([([0.0, 0.4], [0, 10]), ([0.1, 0.1], [1, 1])], n_units=12)
    out = blend(batch, [0, 0], 1.0, np.random.default_rng(0), keep=1.0)
    assert_valid(out)
    np.testing.assert_allclose(out.sample(0)[0], [0.35])  # (-0.05 s, ch -2) dropped
    assert out.sample(0)[1].tolist() == [8]
    np.testing.assert_allclose(out.sample(1)[0], [0.15, 0.15])
    assert out.sample(1)[1].tolist() == [3, 3]
    cropped = blend(batch, [0, 0], 1.0, np.random.default_rng(0), keep=1.0, t_max=0.3)
    assert cropped.counts().tolist() == [0, 2]


def test_blend_errors():
    batch = random_batch(4)
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="one entry per sample"):
        blend(batch, [0, 1], 0.5, rng)
    with pytest.raises(ValueError, match="integers"):
        blend(batch, np.zeros(4), 0.5, rng)
    for name, kw in (("probability", {"probability": 1.5}), ("keep", {"probability": 0.5, "keep": -0.1})):
        with pytest.raises(ValueError, match=rf"{name} must lie in \[0, 1\]"):
            blend(batch, np.zeros(4, int), rng=rng, **kw)
    with pytest.raises(ValueError, match="t_max"):
        blend(batch, np.zeros(4, int), 0.5, rng, t_max=0.0)
    with pytest.raises(ValueError, match="Generator"):
        blend(batch, np.zeros(4, int), 0.5, np.random.RandomState(0))


# ----------------------------------------------------------------------------- delay line
@given(batches, st.integers(1, 4), st.sampled_from([0.0, 1e-3, 0.05, 0.3]), st.sampled_from([None, 0.5, 1.2]))
def test_delay_line_mapping_exact(batch, n_delays, delay, t_max):
    out = delay_line(batch, n_delays, delay, t_max=t_max)
    n = batch.n_units
    assert out.n_units == n * n_delays == delay_line_size(n, n_delays) and len(out) == len(batch)
    for b in range(len(batch)):
        want = [(t + k * delay, k * n + c) for k in range(n_delays) for t, c in events(batch, b)]
        want = [(t, u) for t, u in want if t_max is None or t <= t_max]
        assert events(out, b) == canonical(want)
    assert_valid(out)


def test_delay_line_simple_and_identity():
    batch = es.SpikeBatch.from_lists([([0.1, 0.4], [2, 0]), ([], [])], n_units=3)
    out = delay_line(batch, 3, 0.25, t_max=0.8)
    assert out.n_units == 9
    assert events(out, 0) == [(0.1, 2), (0.35, 5), (0.4, 0), (0.6, 8), (0.65, 3)]
    assert out.counts().tolist() == [5, 0]
    one = delay_line(batch, 1, 0.5)
    np.testing.assert_array_equal(one.times, batch.times)
    np.testing.assert_array_equal(one.units, batch.units)
    assert one.n_units == 3


def test_delay_line_errors():
    batch = random_batch(2)
    with pytest.raises(ValueError, match="n_delays must be an integer >= 1"):
        delay_line(batch, 0, 0.1)
    with pytest.raises(ValueError, match="delay must be a finite number of seconds >= 0"):
        delay_line(batch, 2, -0.1)
    with pytest.raises(ValueError, match="delay"):
        delay_line(batch, 2, float("nan"))
    with pytest.raises(ValueError, match="t_max"):
        delay_line(batch, 2, 0.1, t_max=-1.0)
    with pytest.raises(ValueError, match="no n_units"):
        delay_line(es.SpikeBatch.from_lists([([0.1], [1])]), 2, 0.1)
    with pytest.raises(ValueError, match="n_units must be an integer >= 1"):
        delay_line_size(0, 2)
    assert delay_line_size(700, 4) == 2800
