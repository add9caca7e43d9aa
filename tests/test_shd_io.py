"""SHD/SSC HDF5 layout: reading files made exactly like the published ones, writing, layer output."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shd_files import write_shd_layout

import exactsnn as es
from exactsnn.data.shd import (
    LAYERS_FORMAT,
    LayerSpikesWriter,
    NonFiniteSpikesWarning,
    read_extra_h5,
    read_spikes_h5,
    write_layers_h5,
    write_spikes_h5,
)


def make_shd_file(path, samples, labels=None, times_dtype=np.float16, extra=True):
    """Write ``samples`` [(times, units), ...] with h5py directly, in the zenkelab SHD layout."""
    write_shd_layout(path, samples, labels, times_dtype, speakers=np.arange(len(samples)) % 3,
                     keys=["english-zero", "english-one", "german-null"], extra=extra)


def shd_like_samples(n=5, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(0, 60))
        t = np.sort(rng.uniform(0, 1.3, size=k))
        u = rng.integers(0, 700, size=k)
        out.append((t, u))
    return out


# ----------------------------------------------------------------------------- reading SHD files
def test_reads_float16_vlen_layout_exactly(tmp_path):
    path = tmp_path / "shd.h5"
    samples = shd_like_samples(6)
    make_shd_file(path, samples, labels=[3, 0, 19, 7, 7, 1])
    batch, labels = read_spikes_h5(path)
    assert len(batch) == 6
    assert batch.times.dtype == np.float64
    assert labels.dtype == np.int64 and labels.tolist() == [3, 0, 19, 7, 7, 1]
    for b, (t, u) in enumerate(samples):
        tb, ub = batch.sample(b)
        t16 = np.asarray(t, dtype=np.float16).astype(np.float64)
        order = np.lexsort((u, t16))  # float16 rounding can create ties: canonical (time, unit) order
        np.testing.assert_array_equal(tb, t16[order])
        np.testing.assert_array_equal(ub, np.asarray(u)[order])
    assert batch.n_units == int(max(u.max() for _, u in samples if u.size)) + 1


def test_cast_to_float64_before_arithmetic(tmp_path):
    """Times near float16's limit must survive (a loader that scaled in float16 would get inf)."""
    path = tmp_path / "big.h5"
    make_shd_file(path, [([1.0, 60000.0], [0, 1])], labels=[0])
    batch, _ = read_spikes_h5(path)
    assert batch.times.tolist() == [1.0, float(np.float16(60000.0))]
    assert np.all(np.isfinite(batch.times * 1e6))


def test_unsorted_sample_is_sorted(tmp_path):
    path = tmp_path / "unsorted.h5"
    make_shd_file(path, [([0.5, 0.1, 0.3], [1, 2, 3]), ([0.2], [9])], labels=[0, 1])
    batch, _ = read_spikes_h5(path)
    t, u = batch.sample(0)
    assert t.tolist() == [float(np.float16(x)) for x in (0.1, 0.3, 0.5)]
    assert u.tolist() == [2, 3, 1]
    assert batch.sample(1)[1].tolist() == [9]


def test_ties_in_canonical_unit_order(tmp_path):
    """float16 times collide often; simultaneous events come back in unit order, sorted or not."""
    path = tmp_path / "ties.h5"
    make_shd_file(
        path,
        [([0.1, 0.1, 0.1, 0.2], [9, 3, 5, 1]), ([0.3, 0.1, 0.3, 0.1], [7, 8, 2, 4]), ([0.1, 0.09999], [6, 2])],
    )
    batch, _ = read_spikes_h5(path)
    assert batch.sample(0)[1].tolist() == [3, 5, 9, 1]
    assert batch.sample(1)[1].tolist() == [4, 8, 2, 7]
    assert batch.sample(2)[1].tolist() == [2, 6]  # 0.1 and 0.09999 are the same float16
    # the reader's order is exactly SpikeBatch's canonical order
    with h5py.File(path) as f:
        raw = [(f["spikes/times"][i].astype(np.float64), f["spikes/units"][i]) for i in range(3)]
    ref = es.SpikeBatch.from_lists([(t[np.argsort(t, kind="stable")], u[np.argsort(t, kind="stable")]) for t, u in raw])
    np.testing.assert_array_equal(batch.times, ref.times)
    np.testing.assert_array_equal(batch.units, ref.units)


def test_non_finite_times_dropped_with_counted_warning(tmp_path):
    path = tmp_path / "nan.h5"
    make_shd_file(
        path,
        [([0.1, np.nan, 0.3], [1, 2, 3]), ([0.2], [9]), ([np.inf, -np.inf, 0.4], [4, 5, 6])],
        labels=[0, 1, 2],
    )
    with pytest.warns(NonFiniteSpikesWarning, match=r"dropped 3 event") as rec:
        batch, labels = read_spikes_h5(path)
    w = rec[0].message
    assert w.n_dropped == 3 and w.n_samples == 2
    assert batch.counts().tolist() == [2, 1, 1]
    assert batch.sample(2)[1].tolist() == [6]
    assert labels.tolist() == [0, 1, 2]


def test_no_warning_for_clean_file(tmp_path):
    path = tmp_path / "clean.h5"
    make_shd_file(path, shd_like_samples(3), labels=[0, 1, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_spikes_h5(path)


def test_t_max_crops_after_t_max_inclusive(tmp_path):
    path = tmp_path / "crop.h5"
    make_shd_file(
        path,
        [([0.25, 0.5, 0.75, 1.0], [0, 1, 2, 3]), ([0.9], [1]), ([0.75, np.nan, 0.1], [5, 6, 7])],
        times_dtype=np.float64,
    )
    with pytest.warns(NonFiniteSpikesWarning, match="dropped 1 event"):
        batch, labels = read_spikes_h5(path, t_max=0.5)
    assert labels is None
    assert batch.counts().tolist() == [2, 0, 1]
    assert batch.times.tolist() == [0.25, 0.5, 0.1]
    assert batch.units.tolist() == [0, 1, 7]
    with pytest.raises(ValueError, match="t_max"):
        read_spikes_h5(path, t_max=0.0)


def test_indices_order_repeats_and_slices(tmp_path):
    path = tmp_path / "idx.h5"
    samples = shd_like_samples(5, seed=3)
    make_shd_file(path, samples, labels=[10, 11, 12, 13, 14])
    full, _ = read_spikes_h5(path, n_units=700)
    batch, labels = read_spikes_h5(path, n_units=700, indices=[3, 0, 3, -1])
    assert labels.tolist() == [13, 10, 13, 14]
    for k, b in enumerate([3, 0, 3, 4]):
        np.testing.assert_array_equal(batch.sample(k)[0], full.sample(b)[0])
        np.testing.assert_array_equal(batch.sample(k)[1], full.sample(b)[1])
    sl, lab = read_spikes_h5(path, n_units=700, indices=slice(0, 100))
    assert len(sl) == 5 and lab.tolist() == [10, 11, 12, 13, 14]
    empty, lab = read_spikes_h5(path, n_units=700, indices=[])
    assert len(empty) == 0 and lab.size == 0
    with pytest.raises(ValueError, match="index 5 out of range"):
        read_spikes_h5(path, indices=[5])


def test_n_units_explicit_inferred_declared(tmp_path):
    path = tmp_path / "units.h5"
    make_shd_file(path, [([0.1, 0.2], [3, 41])])
    assert read_spikes_h5(path)[0].n_units == 42
    assert read_spikes_h5(path, n_units=700)[0].n_units == 700
    with pytest.raises(ValueError, match=r"unit 41 out of range \[0, 10\)"):
        read_spikes_h5(path, n_units=10)
    declared = tmp_path / "declared.h5"
    write_spikes_h5(declared, es.SpikeBatch.from_lists([([0.1], [3])], n_units=700))
    assert read_spikes_h5(declared)[0].n_units == 700


def test_empty_file_and_empty_samples(tmp_path):
    path = tmp_path / "empty.h5"
    make_shd_file(path, [([], []), ([], [])], labels=[1, 2], extra=False)
    batch, labels = read_spikes_h5(path)
    assert len(batch) == 2 and batch.n_events == 0 and batch.n_units is None
    zero = tmp_path / "zero.h5"
    make_shd_file(zero, [], labels=[], extra=False)
    batch, labels = read_spikes_h5(zero)
    assert len(batch) == 0 and labels.size == 0


def test_read_extra(tmp_path):
    path = tmp_path / "extra.h5"
    make_shd_file(path, shd_like_samples(4), labels=[0, 1, 2, 0])
    extra = read_extra_h5(path)
    assert extra["keys"] == ["english-zero", "english-one", "german-null"]
    assert extra["speaker"].tolist() == [0, 1, 2, 0]
    assert extra["meta_info"]["gender"] == ["female", "male", "female"]
    assert extra["meta_info"]["age"].tolist() == [25, 31, 40]
    no_extra = tmp_path / "noextra.h5"
    make_shd_file(no_extra, shd_like_samples(1), extra=False)
    assert read_extra_h5(no_extra) == {}


# ----------------------------------------------------------------------------- malformed files
def _one_line_error(path, match, **kw):
    with pytest.raises(ValueError, match=match) as exc:
        read_spikes_h5(path, **kw)
    msg = str(exc.value)
    assert "\n" not in msg
    assert str(path) in msg
    return msg


def test_missing_file(tmp_path):
    _one_line_error(tmp_path / "nope.h5", "no such file")


def test_not_hdf5(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("times,units\n0.1,3\n")
    _one_line_error(path, "not an HDF5 file")


def test_directory(tmp_path):
    _one_line_error(tmp_path, "directory")


def test_missing_spikes_group(tmp_path):
    path = tmp_path / "nospikes.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=np.zeros(3, np.uint16))
    _one_line_error(path, "missing group 'spikes'")


def test_missing_units(tmp_path):
    path = tmp_path / "nounits.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", shape=(1,), dtype=h5py.vlen_dtype(np.float16))
    _one_line_error(path, "missing dataset 'spikes/units'")


def test_mismatched_sample_counts(tmp_path):
    path = tmp_path / "mismatch.h5"
    make_shd_file(path, shd_like_samples(3))
    with h5py.File(path, "a") as f:
        del f["spikes/units"]
        f.create_dataset("spikes/units", shape=(2,), dtype=h5py.vlen_dtype(np.uint16))
    _one_line_error(path, "3 samples but spikes/units has 2")


def test_mismatched_event_counts_in_a_sample(tmp_path):
    path = tmp_path / "ragged.h5"
    make_shd_file(path, [([0.1], [1]), ([0.1, 0.2], [1, 2])])
    with h5py.File(path, "a") as f:
        f["spikes/units"][1] = np.array([5], dtype=np.uint16)
    _one_line_error(path, "sample 1 has 2 spike times but 1 units")


def test_labels_length_mismatch(tmp_path):
    path = tmp_path / "labels.h5"
    make_shd_file(path, shd_like_samples(3), labels=[1, 2])
    _one_line_error(path, "'labels' has 2 entries but there are 3 samples")


def test_not_variable_length(tmp_path):
    path = tmp_path / "dense.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", data=np.zeros((2, 3)))
        f.create_dataset("spikes/units", data=np.zeros((2, 3), np.uint16))
    _one_line_error(path, "must be 1-D")
    with h5py.File(path, "w") as f:
        f.create_dataset("spikes/times", data=np.zeros(2))
        f.create_dataset("spikes/units", data=np.zeros(2, np.uint16))
    _one_line_error(path, "not a variable-length array")


def test_negative_time(tmp_path):
    path = tmp_path / "neg.h5"
    make_shd_file(path, [([0.1], [1]), ([-0.5, 0.2], [1, 2])])
    _one_line_error(path, "sample 1 has a negative spike time")


# ----------------------------------------------------------------------------- writing
batches = st.lists(
    st.lists(
        st.tuples(st.floats(0.0, 2.0, allow_nan=False, allow_subnormal=False), st.integers(0, 699)),
        max_size=12,
    ),
    max_size=6,
)


@given(batches, st.booleans())
def test_float64_roundtrip_is_bit_exact(tmp_path_factory, data, with_labels):
    path = tmp_path_factory.mktemp("rt") / "rt.h5"
    samples = []
    for ev in data:
        ev = sorted(ev)
        samples.append(([t for t, _ in ev], [u for _, u in ev]))
    batch = es.SpikeBatch.from_lists(samples, n_units=700)
    labels = np.arange(len(batch)) % 20 if with_labels else None
    write_spikes_h5(path, batch, labels=labels)
    back, lab = read_spikes_h5(path)
    assert back.n_units == 700
    np.testing.assert_array_equal(back.times, batch.times)
    np.testing.assert_array_equal(back.units, batch.units)
    np.testing.assert_array_equal(back.offsets, batch.offsets)
    if with_labels:
        np.testing.assert_array_equal(lab, labels)
    else:
        assert lab is None


def test_equal_length_rows_write(tmp_path):
    """Every sample with the same number of events (h5py would otherwise see a 2-D array)."""
    batch = es.SpikeBatch.from_lists([([0.1, 0.2], [1, 2])] * 3 + [([0.3, 0.4], [0, 0])], n_units=4)
    write_spikes_h5(tmp_path / "eq.h5", batch)
    back, _ = read_spikes_h5(tmp_path / "eq.h5")
    np.testing.assert_array_equal(back.times, batch.times)
    empty = es.SpikeBatch.empty(3, n_units=4)
    write_spikes_h5(tmp_path / "e.h5", empty)
    assert read_spikes_h5(tmp_path / "e.h5")[0].counts().tolist() == [0, 0, 0]


def test_float16_write_mimics_shd(tmp_path):
    path = tmp_path / "f16.h5"
    batch = es.SpikeBatch.from_lists([([0.1, 0.7], [1, 699]), ([0.3], [5])], n_units=700)
    extra = {"keys": ["a", "b"], "speaker": np.array([1, 2], np.uint16), "meta_info": {"age": [20, 30]}}
    write_spikes_h5(path, batch, labels=[4, 5], extra=extra, times_dtype=np.float16)
    with h5py.File(path) as f:
        assert h5py.check_vlen_dtype(f["spikes/times"].dtype) == np.float16
        assert h5py.check_vlen_dtype(f["spikes/units"].dtype) == np.uint16
        assert f["extra/keys"][()].tolist() == [b"a", b"b"]
    back, lab = read_spikes_h5(path)
    np.testing.assert_array_equal(back.times, batch.times.astype(np.float16).astype(np.float64))
    assert lab.tolist() == [4, 5]
    assert read_extra_h5(path)["keys"] == ["a", "b"]
    with pytest.raises(ValueError, match="overflow"):
        write_spikes_h5(path, es.SpikeBatch.from_lists([([70000.0], [0])]), times_dtype=np.float16)


def test_write_rejects_bad_labels(tmp_path):
    batch = es.SpikeBatch.from_lists([([0.1], [1]), ([0.3], [5])])
    with pytest.raises(ValueError, match="one entry per sample"):
        write_spikes_h5(tmp_path / "x.h5", batch, labels=[1])
    with pytest.raises(ValueError, match="integers"):
        write_spikes_h5(tmp_path / "x.h5", batch, labels=[0.5, 1.5])


# ----------------------------------------------------------------------------- layer output
def small_net(delays=False):
    return es.Network(
        n_inputs=20,
        layers=[
            es.Layer(12, es.LIF(), recurrent=True, delays=delays, weight_mean=0.3, weight_std=0.2),
            es.Layer(6, es.LIF(t_ref=2e-3), weight_mean=0.5, weight_std=0.3),
            es.Layer(3, es.LI()),
        ],
    )


def test_write_layers_h5_roundtrip(tmp_path):
    from exactsnn.data.poisson import poisson_batch

    net = small_net()
    params = net.init(seed=1)
    batch = poisson_batch(5, 20, rate=40.0, t_max=0.3, seed=2)
    rec = es.simulate(net, params, batch, t_max=0.3)
    assert rec.spikes[0].n_events > 0 and rec.spikes[1].n_events > 0
    path = tmp_path / "layers.h5"
    write_layers_h5(path, rec, labels=[0, 1, 2, 0, 1])
    with h5py.File(path) as f:
        assert f.attrs["format"] == LAYERS_FORMAT
        assert f.attrs["n_inputs"] == 20
        assert f.attrs["layer_sizes"].tolist() == [12, 6, 3]
        assert f.attrs["t_max"] == 0.3
        assert f.attrs["n_samples"] == 5
        assert f["layer_2"].attrs["model"] == "LI" and not f["layer_2"].attrs["spiking"]
        assert "input" not in f
    for l in range(3):
        back, lab = read_spikes_h5(path, group=f"layer_{l}")
        assert back.n_units == net.layers[l].size
        np.testing.assert_array_equal(back.times, rec.spikes[l].times)
        np.testing.assert_array_equal(back.units, rec.spikes[l].units)
        np.testing.assert_array_equal(back.offsets, rec.spikes[l].offsets)
        assert lab.tolist() == [0, 1, 2, 0, 1]


def test_write_layers_from_several_recordings_and_input(tmp_path):
    from exactsnn.data.poisson import poisson_batch

    net = small_net(delays=True)
    params = net.init(seed=3)
    batch = poisson_batch(7, 20, rate=40.0, t_max=0.2, seed=4)
    whole = es.simulate(net, params, batch, t_max=0.2)
    parts = [es.simulate(net, params, batch.select(ix), t_max=0.2) for ix in ([0, 1, 2], [3], [4, 5, 6])]
    path = tmp_path / "parts.h5"
    write_layers_h5(path, parts, labels=np.arange(7), include_input=True)
    for l in range(2):
        back, lab = read_spikes_h5(path, group=f"layer_{l}")
        np.testing.assert_array_equal(back.times, whole.spikes[l].times)
        np.testing.assert_array_equal(back.offsets, whole.spikes[l].offsets)
        assert lab.tolist() == list(range(7))
    inp, _ = read_spikes_h5(path, group="input")
    np.testing.assert_array_equal(inp.times, batch.times)
    with pytest.raises(ValueError, match="no group 'layer_9'"):
        read_spikes_h5(path, group="layer_9")


def test_layer_writer_rejects_mixed_labels_and_other_network(tmp_path):
    from exactsnn.data.poisson import poisson_batch

    net = small_net()
    params = net.init(seed=1)
    rec = es.simulate(net, params, poisson_batch(2, 20, rate=10.0, t_max=0.1, seed=0), t_max=0.1)
    with LayerSpikesWriter(tmp_path / "w.h5", net, 0.1) as w:
        w.append(rec, [0, 1])
        with pytest.raises(ValueError, match="labels for every batch"):
            w.append(rec)
    other = es.Network(20, [es.Layer(5)])
    rec2 = es.simulate(other, other.init(0), poisson_batch(2, 20, rate=10.0, t_max=0.1), t_max=0.1)
    with LayerSpikesWriter(tmp_path / "w2.h5", net, 0.1) as w:
        with pytest.raises(ValueError, match="different network"):
            w.append(rec2)
