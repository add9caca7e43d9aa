"""Tests for exactsnn.plotting: metrics parsing and PNG output (skipped without matplotlib)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib")

from exactsnn.events import SpikeBatch  # noqa: E402
from exactsnn.plotting import plot_learning_curves, plot_raster, plot_voltage, read_metrics  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    data = path.read_bytes()
    return len(data) > len(PNG_MAGIC) and data[:8] == PNG_MAGIC


def _epoch(e, val=True):
    return {
        "kind": "epoch", "epoch": e, "train_loss": 2.0 / e, "train_acc": 0.3 + 0.1 * e,
        "val_loss": 2.2 / e if val else None, "val_acc": 0.25 + 0.1 * e if val else None,
        "lr": 1e-3 * 0.5 ** (e - 1), "rate_hz": [12.0 + e, 5.0 - 0.5 * e],
        "epoch_time_s": 1.5, "wall_s": 1.5 * e,
    }


@pytest.fixture
def run_dir(tmp_path):
    lines = [json.dumps({"kind": "config", "seed": 0})]
    lines += [json.dumps(_epoch(e)) for e in (1, 2, 3)]
    lines.append("")  # a blank line in the middle is fine
    lines.append(json.dumps({"kind": "test", "loss": 0.9, "acc": 0.61, "rate_hz": [14.0, 3.0],
                             "checkpoint": "best.npz"}))
    text = "\n".join(lines) + "\n" + '{"kind": "epoch", "epoch": 4, "train_lo'  # killed mid-write
    (tmp_path / "metrics.jsonl").write_text(text)
    return tmp_path


def test_read_metrics_tolerates_truncated_last_line(run_dir):
    recs = read_metrics(run_dir / "metrics.jsonl")
    assert [r["kind"] for r in recs] == ["config", "epoch", "epoch", "epoch", "test"]
    assert read_metrics(run_dir) == recs  # a run directory works too


def test_read_metrics_errors(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        read_metrics(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(_epoch(1)) + "\n{not json\n" + json.dumps(_epoch(2)) + "\n")
    with pytest.raises(ValueError, match=r"bad\.jsonl:2.*malformed"):
        read_metrics(bad)
    bad.write_text(json.dumps(_epoch(1)) + "\n[1, 2]\n" + json.dumps(_epoch(2)) + "\n")
    with pytest.raises(ValueError, match=r":2: expected a JSON object"):
        read_metrics(bad)
    rec = _epoch(2)
    rec["train_loss"] = "high"
    bad.write_text(json.dumps(_epoch(1)) + "\n" + json.dumps(rec) + "\n")
    with pytest.raises(ValueError, match=r":2: .*train_loss"):
        read_metrics(bad)
    rec = _epoch(1)
    del rec["epoch"]
    bad.write_text(json.dumps(rec) + "\n")
    with pytest.raises(ValueError, match=r":1: .*epoch"):
        read_metrics(bad)


def test_learning_curves_png(run_dir, tmp_path):
    out = plot_learning_curves(read_metrics(run_dir), tmp_path / "sub" / "curves.png")
    assert out.exists() and _is_png(out)


def test_learning_curves_without_val_or_test(tmp_path):
    out = plot_learning_curves([_epoch(1, val=False)], tmp_path / "one.png")
    assert _is_png(out)
    with pytest.raises(ValueError, match="no epoch"):
        plot_learning_curves([{"kind": "test", "acc": 0.5}], tmp_path / "none.png")


def test_raster_png(tmp_path):
    inp = SpikeBatch.from_lists([([0.001, 0.002, 0.01], [0, 5, 3]), ([0.003], [1])], n_units=8)
    hid = SpikeBatch.from_lists([([0.004, 0.02], [2, 2]), ([], [])], n_units=4)
    out_layer = SpikeBatch.empty(2, n_units=3)
    out = plot_raster([inp, hid, out_layer], [8, 4, 3], ["input", "hidden", "output"], sample=0, t_max=0.03,
                      out_png=tmp_path / "raster.png", title="sample 0")
    assert _is_png(out)
    with pytest.raises(ValueError, match="sizes"):
        plot_raster([inp], [8, 4], ["input"], 0, 0.03, tmp_path / "x.png")
    with pytest.raises(ValueError, match="unit 5"):
        plot_raster([inp], [4], ["input"], 0, 0.03, tmp_path / "x.png")
    with pytest.raises(ValueError, match="t_max"):
        plot_raster([inp], [8], ["input"], 0, 0.0, tmp_path / "x.png")
    with pytest.raises(ValueError, match="sample 5"):
        plot_raster([inp], [8], ["input"], 5, 0.03, tmp_path / "x.png")


def test_voltage_png(tmp_path):
    t = np.linspace(0.0, 0.05, 50)
    v = np.stack([np.sin(40 * t), np.cos(40 * t)], axis=1)
    assert _is_png(plot_voltage(t, v, tmp_path / "v.png", labels=["a", "b"]))
    with pytest.raises(ValueError, match="shape"):
        plot_voltage(t, v[:-1], tmp_path / "v2.png")


def test_missing_matplotlib_message(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError) as info:
        plot_learning_curves([_epoch(1)], tmp_path / "c.png")
    assert str(info.value) == 'exactsnn plot needs matplotlib: pip install "exactsnn[plot]"'
    assert not (tmp_path / "c.png").exists()
