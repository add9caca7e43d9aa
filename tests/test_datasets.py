"""SHD/SSC loading (zenkelab layout written here with h5py), users' own files, stratified holdout."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shd_files import write_shd_layout

import exactsnn as es
from exactsnn.data import datasets
from exactsnn.data.datasets import (
    DATASET_FILES,
    KNOWN_ARCHIVE_MD5,
    KNOWN_MD5,
    N_CLASSES,
    Split,
    holdout,
    load_dataset,
    load_files,
    md5_file,
)
from exactsnn.data.shd import NonFiniteSpikesWarning, write_spikes_h5


def write_zenke_file(path, samples, labels=None, speakers=None, keys=None, times_dtype=np.float16):
    """``samples`` [(times, units), ...] in the published layout: vlen float16 times, vlen uint16 units."""
    write_shd_layout(path, samples, labels, times_dtype, speakers=speakers, keys=keys)


def random_samples(n, seed, t_hi=1.3, n_units=700):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        k = int(rng.integers(0, 40))
        out.append((np.sort(rng.uniform(0, t_hi, size=k)), rng.integers(0, n_units, size=k)))
    return out


def make_dataset_dir(root, name="shd", n=6, seed=0, skip=()):
    """Every file of dataset ``name`` under ``root`` (except those in ``skip``); returns what was written."""
    n_classes = N_CLASSES[name]
    keys = [f"{name}-word-{c}" for c in range(n_classes)]
    written = {}
    for k, (split, fname) in enumerate(DATASET_FILES[name].items()):
        if split in skip:
            continue
        samples = random_samples(n, seed + k)
        labels = (np.arange(n) * 7 + k) % n_classes
        speakers = np.arange(n) % 2
        write_zenke_file(root / fname, samples, labels, speakers, keys)
        written[split] = (samples, labels, speakers)
    return written


def expected_sample(t, u, duration):
    """What the loader must return for one raw sample: float16 -> float64, cropped, (time, unit) order."""
    t64 = np.asarray(t, dtype=np.float16).astype(np.float64)
    u = np.asarray(u, dtype=np.int64)
    keep = t64 <= duration
    t64, u = t64[keep], u[keep]
    order = np.lexsort((u, t64))
    return t64[order], u[order]


def one_line(exc_info):
    msg = str(exc_info.value)
    assert "\n" not in msg
    return msg


# ----------------------------------------------------------------------------- SHD / SSC
def test_load_shd_float16_extras_and_crop(tmp_path):
    written = make_dataset_dir(tmp_path, "shd")
    data = load_dataset("shd", tmp_path)
    assert list(data) == ["train", "test"]
    for split, (samples, labels, speakers) in written.items():
        s = data[split]
        assert isinstance(s, Split) and s.name == split and len(s) == len(samples)
        assert s.n_classes == 20 and s.duration == 1.0
        assert s.batch.n_units == 700 and s.batch.times.dtype == np.float64
        assert s.labels.dtype == np.int64 and s.labels.tolist() == labels.tolist()
        assert s.speakers.tolist() == speakers.tolist()
        assert s.class_names == tuple(f"shd-word-{c}" for c in range(20))
        for b, (t, u) in enumerate(samples):
            et, eu = expected_sample(t, u, 1.0)
            tb, ub = s.batch.sample(b)
            np.testing.assert_array_equal(tb, et)
            np.testing.assert_array_equal(ub, eu)
        assert s.batch.times.max() <= 1.0


def test_crop_to_duration_is_inclusive(tmp_path):
    write_zenke_file(tmp_path / "shd_train.h5", [([0.25, 0.5, 0.75, 1.25], [1, 2, 3, 4]), ([0.9], [5])], [0, 1])
    write_zenke_file(tmp_path / "shd_test.h5", [([1.5], [6])], [2])
    data = load_dataset("shd", tmp_path, duration=0.5)
    assert data["train"].batch.counts().tolist() == [2, 0]
    assert data["train"].batch.times.tolist() == [0.25, 0.5]
    assert data["test"].batch.n_events == 0 and data["test"].duration == 0.5
    long = load_dataset("shd", tmp_path, duration=2.0)
    assert long["train"].batch.counts().tolist() == [4, 1]


def test_ssc_three_splits_and_subset_of_splits(tmp_path):
    written = make_dataset_dir(tmp_path, "ssc", n=5)
    data = load_dataset("SSC", tmp_path)
    assert list(data) == ["train", "valid", "test"]
    for split, (_, labels, _) in written.items():
        assert data[split].n_classes == 35 and data[split].labels.tolist() == labels.tolist()
        assert len(data[split].class_names) == 35
    only = tmp_path / "only_valid"
    only.mkdir()
    make_dataset_dir(only, "ssc", n=3, skip=("train", "test"))
    part = load_dataset("ssc", only, splits=["valid"])
    assert list(part) == ["valid"] and len(part["valid"]) == 3
    assert list(load_dataset("ssc", only, splits="valid")) == ["valid"]


def test_non_finite_time_warns_with_count(tmp_path):
    write_zenke_file(tmp_path / "shd_train.h5", [([0.1, np.nan, 0.3], [1, 2, 3]), ([0.2], [4])], [0, 1])
    write_zenke_file(tmp_path / "shd_test.h5", [([0.2], [4])], [3])
    with pytest.warns(NonFiniteSpikesWarning, match="dropped 1 event") as rec:
        data = load_dataset("shd", tmp_path)
    assert rec[0].message.n_dropped == 1 and rec[0].message.n_samples == 1
    assert str(tmp_path / "shd_train.h5") in str(rec[0].message)
    assert data["train"].batch.counts().tolist() == [2, 1]


def test_missing_directory_names_files_and_zenkelab(tmp_path):
    with pytest.raises(ValueError) as exc:
        load_dataset("shd", tmp_path / "nowhere")
    msg = one_line(exc)
    for part in (str(tmp_path / "nowhere"), "shd_train.h5", "shd_test.h5", "https://zenkelab.org/datasets/", "gunzip"):
        assert part in msg


def test_missing_file_and_gz_hint(tmp_path):
    make_dataset_dir(tmp_path, "shd", skip=("test",))
    with pytest.raises(ValueError) as exc:
        load_dataset("shd", tmp_path)
    msg = one_line(exc)
    assert "missing shd_test.h5" in msg and "zenkelab.org/datasets" in msg and "gunzip shd_test.h5.gz" in msg
    (tmp_path / "shd_test.h5.gz").write_bytes(b"\x1f\x8b")
    with pytest.raises(ValueError, match=r"found shd_test.h5.gz: decompress with gunzip"):
        load_dataset("shd", tmp_path)
    assert list(load_dataset("shd", tmp_path, splits=["train"])) == ["train"]


def test_ssc_missing_lists_all_missing(tmp_path):
    with pytest.raises(ValueError) as exc:
        load_dataset("ssc", tmp_path)
    assert "missing ssc_train.h5, ssc_valid.h5, ssc_test.h5" in one_line(exc)


def _only_train(tmp_path):
    make_dataset_dir(tmp_path, "shd", skip=("train",))
    return tmp_path / "shd_train.h5"


def test_not_hdf5(tmp_path):
    path = _only_train(tmp_path)
    path.write_text("this is not hdf5\n")
    with pytest.raises(ValueError) as exc:
        load_dataset("shd", tmp_path)
    assert str(path) in one_line(exc) and "not an HDF5 file" in str(exc.value)


def test_missing_spikes_group(tmp_path):
    path = _only_train(tmp_path)
    with h5py.File(path, "w") as f:
        f.create_dataset("labels", data=np.zeros(2, np.uint16))
    with pytest.raises(ValueError, match="missing group 'spikes'") as exc:
        load_dataset("shd", tmp_path)
    assert str(path) in one_line(exc)


def test_missing_labels(tmp_path):
    path = _only_train(tmp_path)
    write_zenke_file(path, [([0.1], [1])], labels=None)
    with pytest.raises(ValueError, match="no 'labels' dataset") as exc:
        load_dataset("shd", tmp_path)
    assert str(path) in one_line(exc)


def test_labels_out_of_range(tmp_path):
    path = _only_train(tmp_path)
    write_zenke_file(path, [([0.1], [1]), ([0.2], [2])], labels=[3, 20])
    with pytest.raises(ValueError, match=r"label 20 out of range \[0, 20\) for SHD") as exc:
        load_dataset("shd", tmp_path)
    assert str(path) in one_line(exc)
    # the same labels are fine for SSC's 35 classes
    ssc = tmp_path / "ssc"
    ssc.mkdir()
    write_zenke_file(ssc / "ssc_train.h5", [([0.1], [1]), ([0.2], [2])], labels=[3, 20])
    assert load_dataset("ssc", ssc, splits=["train"])["train"].labels.tolist() == [3, 20]


def test_too_many_channels(tmp_path):
    path = _only_train(tmp_path)
    write_zenke_file(path, [([0.1], [1]), ([0.2, 0.3], [699, 700])], labels=[0, 1])
    with pytest.raises(ValueError, match=r"sample 1 has unit 700 out of range \[0, 700\)") as exc:
        load_dataset("shd", tmp_path)
    assert str(path) in one_line(exc)


def test_md5(tmp_path, monkeypatch):
    make_dataset_dir(tmp_path, "shd")
    path = tmp_path / "shd_train.h5"
    true = hashlib.md5(path.read_bytes()).hexdigest()
    assert md5_file(path) == true == md5_file(path, chunk_size=7)
    # the real published sums do not match these synthetic files, but are only checked on request
    assert load_dataset("shd", tmp_path)["train"].n_classes == 20
    with pytest.raises(ValueError, match="md5 mismatch"):
        load_dataset("shd", tmp_path, check_md5=True)
    monkeypatch.setattr(datasets, "KNOWN_MD5", {"shd_train.h5": "0" * 32})
    with pytest.raises(ValueError) as exc:
        load_dataset("shd", tmp_path, check_md5=True)
    msg = one_line(exc)
    assert str(path) in msg and "expected " + "0" * 32 in msg and f"found {true}" in msg
    monkeypatch.setattr(datasets, "KNOWN_MD5", {"shd_train.h5": true})  # shd_test.h5: no known sum, not checked
    assert len(load_dataset("shd", tmp_path, check_md5=True)["train"]) == 6


def test_known_md5_tables_are_well_formed():
    for table in (KNOWN_MD5, KNOWN_ARCHIVE_MD5):
        for fname, digest in table.items():
            assert len(digest) == 32 and int(digest, 16) >= 0
            assert fname.split(".")[0] in {f.split(".")[0] for d in DATASET_FILES.values() for f in d.values()}
    assert set(KNOWN_MD5) <= {f for d in DATASET_FILES.values() for f in d.values()}


def test_bad_arguments(tmp_path):
    make_dataset_dir(tmp_path, "shd")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        load_dataset("mnist", tmp_path)
    with pytest.raises(ValueError, match="SHD has splits train, test; got valid"):
        load_dataset("shd", tmp_path, splits=["valid"])
    for bad in (0.0, -1.0, float("inf"), float("nan"), "1"):
        with pytest.raises(ValueError, match="duration"):
            load_dataset("shd", tmp_path, duration=bad)


# ----------------------------------------------------------------------------- users' own files
def test_load_files(tmp_path):
    train = es.SpikeBatch.from_lists([([0.1, 0.5], [0, 3]), ([0.2], [1]), ([1.5], [2])])
    test = es.SpikeBatch.from_lists([([0.3], [9])])
    write_spikes_h5(tmp_path / "train.h5", train, labels=[0, 4, 2])
    write_spikes_h5(tmp_path / "test.h5", test, labels=[1], extra={"speaker": np.array([7])})
    data = load_files(tmp_path / "train.h5", test=tmp_path / "test.h5", duration=1.0)
    assert list(data) == ["train", "test"]
    assert data["train"].n_classes == data["test"].n_classes == 5
    assert data["train"].batch.n_units == data["test"].batch.n_units == 10  # the largest over the files
    assert data["train"].batch.counts().tolist() == [2, 1, 0]  # 1.5 s cropped
    assert data["test"].speakers.tolist() == [7] and data["train"].speakers is None
    valid = tmp_path / "valid.h5"
    write_spikes_h5(valid, es.SpikeBatch.from_lists([([0.1], [1])]), labels=[6])
    data = load_files(tmp_path / "train.h5", valid=valid, n_units=32, duration=2.0)
    assert list(data) == ["train", "valid"] and data["valid"].n_classes == 7
    assert data["train"].batch.n_units == 32 and data["train"].batch.counts().tolist() == [2, 1, 1]
    # the zenkelab layout works too (float16 times, uint16 units, bytes keys)
    write_zenke_file(tmp_path / "z.h5", random_samples(4, 3), [0, 1, 2, 1], keys=["a", "b", "c"])
    z = load_files(tmp_path / "z.h5")["train"]
    assert z.class_names == ("a", "b", "c") and z.n_classes == 3


def test_load_files_errors(tmp_path):
    write_spikes_h5(tmp_path / "nolabels.h5", es.SpikeBatch.from_lists([([0.1], [1])]))
    write_spikes_h5(tmp_path / "ok.h5", es.SpikeBatch.from_lists([([0.1], [1])]), labels=[0])
    with pytest.raises(ValueError, match="no 'labels' dataset") as exc:
        load_files(tmp_path / "ok.h5", test=tmp_path / "nolabels.h5")
    assert str(tmp_path / "nolabels.h5") in one_line(exc)
    with pytest.raises(ValueError, match="no such file"):
        load_files(tmp_path / "missing.h5")
    with pytest.raises(ValueError, match=r"unit 1 out of range \[0, 1\)"):
        load_files(tmp_path / "ok.h5", n_units=1)
    write_spikes_h5(tmp_path / "neg.h5", es.SpikeBatch.from_lists([([0.1], [1])]), labels=[-1])
    with pytest.raises(ValueError, match="negative label -1"):
        load_files(tmp_path / "neg.h5")
    write_spikes_h5(tmp_path / "empty.h5", es.SpikeBatch.empty(2), labels=[0, 1])
    with pytest.raises(ValueError, match="pass n_units"):
        load_files(tmp_path / "empty.h5")
    assert load_files(tmp_path / "empty.h5", n_units=4)["train"].batch.n_units == 4


# ----------------------------------------------------------------------------- holdout
def _split(labels, seed=0):
    labels = np.asarray(labels)
    batch = es.SpikeBatch.from_lists([([0.01 * i], [i % 7]) for i in range(labels.size)], n_units=7)
    return Split(batch, labels, "train", int(labels.max()) + 1, speakers=np.arange(labels.size) % 3, duration=1.0)


def test_holdout_stratified_disjoint_ordered():
    labels = np.repeat(np.arange(4), [10, 20, 5, 1])
    split = _split(np.random.default_rng(0).permutation(labels))
    train, valid = holdout(split, 0.2, seed=3)
    assert train.name == "train" and valid.name == "valid"
    assert len(train) + len(valid) == len(split)
    for c, want in zip(range(4), [2, 4, 1, 0], strict=True):
        assert int(np.sum(valid.labels == c)) == want
        assert int(np.sum(train.labels == c)) == int(np.sum(split.labels == c)) - want
    # samples keep their original order; the events and speakers follow their samples
    t_all = split.batch.times
    for part in (train, valid):
        idx = np.round(part.batch.times / 0.01).astype(int)
        assert np.all(np.diff(idx) > 0)
        np.testing.assert_array_equal(part.labels, split.labels[idx])
        np.testing.assert_array_equal(part.speakers, split.speakers[idx])
        np.testing.assert_array_equal(part.batch.times, t_all[idx])
    assert train.n_classes == valid.n_classes == 4 and valid.duration == 1.0
    ids = [set(np.round(part.batch.times / 0.01).astype(int).tolist()) for part in (train, valid)]
    assert ids[0].isdisjoint(ids[1])


def test_holdout_seeded():
    split = _split(np.arange(200) % 5)
    a, b = holdout(split, 0.25, seed=11), holdout(split, 0.25, seed=11)
    np.testing.assert_array_equal(a[1].batch.times, b[1].batch.times)
    c = holdout(split, 0.25, seed=12)
    assert not np.array_equal(a[1].batch.times, c[1].batch.times)


@given(st.lists(st.integers(0, 5), min_size=2, max_size=60), st.floats(0.05, 0.95), st.integers(0, 2**32 - 1))
def test_holdout_counts_property(labels, fraction, seed):
    labels = np.asarray(labels)
    split = _split(labels)
    classes, sizes = np.unique(labels, return_counts=True)
    n_val = {c: min(int(np.floor(fraction * n + 0.5)), n - 1) for c, n in zip(classes, sizes, strict=True)}
    if sum(n_val.values()) == 0:
        with pytest.raises(ValueError, match="no validation sample"):
            holdout(split, fraction, seed)
        return
    train, valid = holdout(split, fraction, seed)
    for c, k in n_val.items():
        assert int(np.sum(valid.labels == c)) == k
        assert int(np.sum(train.labels == c)) >= 1


def test_holdout_and_split_errors():
    split = _split(np.arange(10) % 2)
    for bad in (0, 1, 1.5, -0.1, True):
        with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\)"):
            holdout(split, bad, seed=0)
    batch = split.batch
    with pytest.raises(ValueError, match="one entry per sample"):
        Split(batch, np.zeros(3, np.int64), "train", 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)"):
        Split(batch, np.full(10, 2), "train", 2)
    with pytest.raises(ValueError, match="integers"):
        Split(batch, np.zeros(10), "train", 2)
    with pytest.raises(ValueError, match="speakers"):
        Split(batch, np.zeros(10, np.int64), "train", 2, speakers=np.zeros(3))
    assert split.labels.flags.writeable is False
