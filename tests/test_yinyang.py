"""Yin-Yang generator against the published arrays, and its latency code."""

from pathlib import Path

import numpy as np
import pytest

from exactsnn.data.yinyang import SPLITS, YinYangEncoding, encode, yinyang_points, yinyang_split

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "yinyang"


@pytest.mark.parametrize("split", ["train", "validation", "test"])
def test_generator_reproduces_published_arrays(split):
    if not (SHARED / f"{split}_samples.npy").exists():
        pytest.skip("published Yin-Yang arrays not present beside the checkout")
    feats, labels = yinyang_split(split)
    assert np.array_equal(feats, np.load(SHARED / f"{split}_samples.npy"))
    assert np.array_equal(labels, np.load(SHARED / f"{split}_labels.npy"))


def test_split_sizes_and_class_balance():
    feats, labels = yinyang_split("validation")
    assert feats.shape == (SPLITS["validation"][0], 4)
    assert np.array_equal(np.bincount(labels), [316, 336, 348])
    assert np.allclose(feats[:, 2], 1 - feats[:, 0]) and np.allclose(feats[:, 3], 1 - feats[:, 1])
    # every point lies in the big circle
    assert np.all((feats[:, 0] - 0.5) ** 2 + (feats[:, 1] - 0.5) ** 2 <= 0.25)


def test_regions_are_the_yin_yang_symbol():
    feats, labels = yinyang_points(2000, seed=3)
    x, y = feats[:, 0], feats[:, 1]
    dot = (np.hypot(x - 0.75, y - 0.5) < 0.1) | (np.hypot(x - 0.25, y - 0.5) < 0.1)
    assert np.array_equal(labels == 2, dot)
    # the top half, away from the right half-disc and the dots, is yin (label 1)
    top = (y > 0.5) & (np.hypot(x - 0.75, y - 0.5) > 0.25) & ~dot
    assert np.all(labels[top] == 1)


def test_encoding_times_and_units():
    feats = np.array([[0.0, 1.0, 1.0, 0.0], [0.25, 0.5, 0.75, 0.5]])
    enc = YinYangEncoding(t_early=2e-3, t_late=12e-3, t_bias=5e-3)
    b = encode(feats, enc)
    assert b.n_units == 5 and len(b) == 2 and np.array_equal(b.counts(), [5, 5])
    for i in range(2):
        t, u = b.sample(i)
        expect = np.append(2e-3 + feats[i] * 10e-3, 5e-3)
        assert np.allclose(t, expect[u], rtol=0, atol=1e-18)
        assert np.all(np.diff(t) >= 0)


@pytest.mark.parametrize(
    "bad",
    [np.zeros((3, 3)), np.full((2, 4), 1.5), np.full((2, 4), np.nan)],
)
def test_encode_rejects_bad_features(bad):
    with pytest.raises(ValueError):
        encode(bad)


def test_bad_arguments():
    with pytest.raises(ValueError):
        YinYangEncoding(t_early=5e-3, t_late=1e-3)
    with pytest.raises(ValueError):
        YinYangEncoding(t_bias=-1.0)
    with pytest.raises(ValueError):
        yinyang_split("valid")
    with pytest.raises(ValueError):
        yinyang_points(-1, 0)
