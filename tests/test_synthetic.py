"""Synthetic SHD-like data: SHD file layout, loader round trip, determinism, speaker split, learnability."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from exactsnn.data.shd import read_extra_h5, read_spikes_h5
from exactsnn.data.synthetic import SynthSHD, class_names, speaker_split, synth_shd_samples, write_synth_shd
from exactsnn.events import SpikeBatch


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    calls = []
    paths = write_synth_shd(out, SynthSHD(), n_train=80, n_test=60, seed=3, progress=lambda a, b: calls.append((a, b)))
    return paths, calls


def _vlen_base(ds):
    return np.dtype(h5py.check_vlen_dtype(ds.dtype))


# ----------------------------------------------------------------------------- file layout
def test_layout_is_the_published_shd_layout(files):
    paths, _ = files
    assert paths["train"].name == "shd_train.h5" and paths["test"].name == "shd_test.h5"
    for split, n in (("train", 80), ("test", 60)):
        with h5py.File(paths[split], "r") as f:
            assert set(f.keys()) == {"spikes", "labels", "extra"}
            assert set(f["spikes"].keys()) == {"times", "units"}
            assert f["spikes/times"].shape == (n,) and f["spikes/units"].shape == (n,)
            assert _vlen_base(f["spikes/times"]) == np.float16
            assert _vlen_base(f["spikes/units"]) == np.uint16
            assert f["labels"].dtype == np.uint16 and f["labels"].shape == (n,)
            assert set(f["extra"].keys()) == {"speaker", "keys", "meta_info"}
            assert f["extra/speaker"].dtype == np.uint16 and f["extra/speaker"].shape == (n,)
            keys = f["extra/keys"][()]
            assert keys.dtype.kind == "S" and keys.tolist() == [f"synth-{k}".encode() for k in range(20)]
            meta = f["extra/meta_info"]
            assert set(meta.keys()) == {"gender", "age", "body_height"}
            assert meta["gender"].shape == meta["age"].shape == meta["body_height"].shape == (12,)
            assert set(meta["gender"][()].tolist()) <= {b"female", b"male"}
            height = meta["body_height"][()]
            assert np.all(meta["age"][()] > 0) and np.all((height > 1.3) & (height < 2.2))
            # times stay in [0, duration) after float16 rounding, and are sorted within each sample
            for t in f["spikes/times"][()]:
                assert t.size and t.min() >= 0 and t.max() < 1.0 and np.all(np.diff(t.astype(np.float64)) >= 0)


def test_files_read_back_with_the_shd_loader(files):
    paths, _ = files
    batch, labels = read_spikes_h5(paths["train"], n_units=700)
    assert len(batch) == 80 and batch.n_units == 700
    assert labels.dtype == np.int64 and labels.min() >= 0 and labels.max() < 20
    assert batch.times.max() < 1.0 and batch.units.max() < 700
    with h5py.File(paths["train"], "r") as f:
        np.testing.assert_array_equal(batch.counts(), [len(t) for t in f["spikes/times"][()]])
    extra = read_extra_h5(paths["test"])
    assert extra["keys"] == class_names(SynthSHD())
    assert set(extra) == {"speaker", "keys", "meta_info"}


def test_progress_reports_every_sample(files):
    _, calls = files
    assert calls[-1] == (140, 140)
    done = [a for a, _ in calls]
    assert done == sorted(done) and all(b == 140 for _, b in calls)


def test_held_out_speakers_only_in_test(files):
    paths, _ = files
    train_spk, test_spk = speaker_split(SynthSHD())
    assert train_spk.tolist() == list(range(10)) and test_spk.tolist() == list(range(12))
    with h5py.File(paths["train"], "r") as f:
        s_train = set(f["extra/speaker"][()].tolist())
    with h5py.File(paths["test"], "r") as f:
        s_test = set(f["extra/speaker"][()].tolist())
    assert s_train <= set(range(10))
    assert {10, 11} <= s_test  # the two held-out speakers appear in the test file


def test_write_is_deterministic(tmp_path):
    cfg = SynthSHD(n_channels=50, n_classes=4, n_speakers=3, n_heldout_speakers=1)
    a = write_synth_shd(tmp_path / "a", cfg, n_train=10, n_test=5, seed=7)
    b = write_synth_shd(tmp_path / "b", cfg, n_train=10, n_test=5, seed=7)
    c = write_synth_shd(tmp_path / "c", cfg, n_train=10, n_test=5, seed=8)
    for split in ("train", "test"):
        ba, la = read_spikes_h5(a[split])
        bb, lb = read_spikes_h5(b[split])
        bc, _ = read_spikes_h5(c[split])
        np.testing.assert_array_equal(ba.times, bb.times)
        np.testing.assert_array_equal(ba.units, bb.units)
        np.testing.assert_array_equal(la, lb)
        assert ba.n_events != bc.n_events or not np.array_equal(ba.times, bc.times)


# ----------------------------------------------------------------------------- in-memory samples
def test_samples_shape_labels_and_counts():
    cfg = SynthSHD()
    batch, labels, speakers = synth_shd_samples(cfg, 200, seed=0)
    assert isinstance(batch, SpikeBatch) and len(batch) == 200 and batch.n_units == 700
    assert labels.dtype == np.int64 and speakers.dtype == np.int64
    assert sorted(set(labels.tolist())) == list(range(20))
    assert np.bincount(labels).tolist() == [10] * 20  # balanced
    assert speakers.min() >= 0 and speakers.max() < 12
    assert batch.times.min() >= 0 and batch.times.max() < cfg.duration
    counts = batch.counts()
    assert 2000 < counts.mean() < 12000
    assert counts.min() > 500 and counts.max() < 40000
    # spikes cover the channel axis (background) but concentrate in bands
    hist = np.bincount(batch.units, minlength=700)
    assert np.all(hist > 0)
    assert hist.max() > 5 * np.median(hist) / 2


def test_samples_deterministic_and_seed_dependent():
    cfg = SynthSHD()
    a, la, sa = synth_shd_samples(cfg, 30, seed=11)
    b, lb, sb = synth_shd_samples(cfg, 30, seed=11)
    c, lc, _ = synth_shd_samples(cfg, 30, seed=12)
    np.testing.assert_array_equal(a.times, b.times)
    np.testing.assert_array_equal(a.units, b.units)
    np.testing.assert_array_equal(a.offsets, b.offsets)
    np.testing.assert_array_equal(la, lb)
    np.testing.assert_array_equal(sa, sb)
    assert a.n_events != c.n_events or not np.array_equal(a.times, c.times)
    assert not np.array_equal(la, lc)


def test_speakers_argument_and_small_configs():
    cfg = SynthSHD(n_channels=64, n_classes=5, n_speakers=4, n_heldout_speakers=1, duration=0.2)
    batch, labels, speakers = synth_shd_samples(cfg, 40, seed=1, speakers=[2, 3])
    assert set(speakers.tolist()) <= {2, 3} and batch.n_units == 64
    assert batch.units.max() < 64 and batch.times.max() < 0.2
    assert sorted(set(labels.tolist())) == list(range(5))
    empty, l0, s0 = synth_shd_samples(cfg, 0, seed=1)
    assert len(empty) == 0 and l0.shape == (0,) and s0.shape == (0,)


def test_rate_scale_scales_counts():
    base, _, _ = synth_shd_samples(SynthSHD(), 60, seed=4)
    half, _, _ = synth_shd_samples(SynthSHD(rate_scale=0.5), 60, seed=4)
    ratio = half.n_events / base.n_events
    assert 0.4 < ratio < 0.6


def _histograms(batch: SpikeBatch, n_channels: int, duration: float, cb: int = 25, tb: int = 10) -> np.ndarray:
    sample = np.repeat(np.arange(len(batch)), batch.counts())
    ti = np.minimum((batch.times / duration * tb).astype(np.int64), tb - 1)
    ci = batch.units.astype(np.int64) * cb // n_channels
    F = np.zeros((len(batch), tb * cb))
    np.add.at(F, (sample, ti * cb + ci), 1.0)
    return F / np.maximum(F.sum(1, keepdims=True), 1.0)


def test_class_structure_is_learnable():
    """Nearest class mean on (channel, time) histograms, trained on train speakers, far above chance (5 %)."""
    cfg = SynthSHD()
    train_spk, _ = speaker_split(cfg)
    btr, ltr, _ = synth_shd_samples(cfg, 300, seed=21, speakers=train_spk)
    bte, lte, _ = synth_shd_samples(cfg, 200, seed=22)
    ftr, fte = _histograms(btr, 700, 1.0), _histograms(bte, 700, 1.0)
    centroids = np.stack([ftr[ltr == k].mean(0) for k in range(20)])
    pred = ((fte[:, None, :] - centroids[None]) ** 2).sum(-1).argmin(1)
    acc = float((pred == lte).mean())
    assert acc > 0.35, acc
    # but not trivial: the class means overlap (some pairs of classes are close)
    d = ((centroids[:, None] - centroids[None]) ** 2).sum(-1)
    within = np.mean([((ftr[ltr == k] - centroids[k]) ** 2).sum(-1).mean() for k in range(20)])
    assert d[~np.eye(20, dtype=bool)].min() < within


# ----------------------------------------------------------------------------- bad arguments
@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_channels": 0},
        {"n_channels": 70000},
        {"n_classes": 0},
        {"n_classes": 2.5},
        {"n_speakers": True},
        {"n_heldout_speakers": 12},
        {"n_heldout_speakers": -1},
        {"duration": 0.0},
        {"duration": float("nan")},
        {"duration": 1e6},
        {"rate_scale": 0.0},
        {"peak_rate": -1.0},
        {"noise_rate": -0.1},
        {"onset": 0.95},
        {"jitter": float("inf")},
        {"tempo_range": (1.2, 0.8)},
        {"tempo_range": (0.0, 1.0)},
        {"tempo_range": [0.8, 1.2]},
        {"loudness_range": (0.5,)},
        {"pitch_std": -0.1},
        {"band_width": (0.0, 0.1)},
        {"n_syllable_pool": 0},
        {"template_seed": -1},
    ],
)
def test_bad_config_raises(kwargs):
    with pytest.raises(ValueError, match="SynthSHD"):
        SynthSHD(**kwargs)


def test_bad_call_arguments_raise(tmp_path):
    cfg = SynthSHD()
    with pytest.raises(ValueError, match="n must be"):
        synth_shd_samples(cfg, -1, seed=0)
    with pytest.raises(ValueError, match="seed must be"):
        synth_shd_samples(cfg, 2, seed=-1)
    with pytest.raises(ValueError, match="speakers"):
        synth_shd_samples(cfg, 2, seed=0, speakers=[12])
    with pytest.raises(ValueError, match="speakers"):
        synth_shd_samples(cfg, 2, seed=0, speakers=[])
    with pytest.raises(ValueError, match="speakers"):
        synth_shd_samples(cfg, 2, seed=0, speakers=[0.5])
    with pytest.raises(ValueError, match="SynthSHD"):
        synth_shd_samples({"n_channels": 700}, 2, seed=0)
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(ValueError, match="not a directory"):
        write_synth_shd(not_a_dir, cfg, n_train=1, n_test=1)
    with pytest.raises(ValueError, match="n_train"):
        write_synth_shd(tmp_path / "o", cfg, n_train=-1, n_test=1)
    with pytest.raises(ValueError, match="progress"):
        write_synth_shd(tmp_path / "o", cfg, n_train=1, n_test=1, progress=3)
