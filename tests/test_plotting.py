"""Tests for exactsnn.plotting and ``exactsnn plot``: metrics parsing, PNG output, what the panels show."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import exactsnn.plotting as plotting
from exactsnn.events import SpikeBatch
from exactsnn.plotting import learning_curves_figure, plot_learning_curves, plot_raster, plot_voltage, read_metrics

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
    assert str(info.value) == "exactsnn plot needs matplotlib (a dependency of exactsnn): pip install matplotlib"
    assert not (tmp_path / "c.png").exists()


@pytest.fixture
def figures(monkeypatch):
    """The Figure objects the plotting functions save, by file name."""
    saved = {}
    real = plotting._save

    def keep(fig, out_png):
        saved[str(getattr(out_png, "name", out_png))] = fig
        return real(fig, out_png)

    monkeypatch.setattr(plotting, "_save", keep)
    return saved


def _cosine_run(n=80, lr=2e-3, steps=313):
    """Epoch records as the trainer writes them for the default cosine schedule to 0 (Yin-Yang: 313
    steps per epoch): the rate of the last step of the last epoch is ~1e-11."""
    from exactsnn.optim import Schedule, lr_factor

    schedule = Schedule(decay="cosine", epochs=n)
    return [dict(_epoch(1), epoch=e, lr=lr * lr_factor(schedule, e * steps - 1, steps)) for e in range(1, n + 1)]


def test_lr_panel_is_not_stretched_by_a_cosine_tail():
    recs = _cosine_run()
    last = recs[-1]["lr"]
    assert 0 < last < 1e-8 * recs[0]["lr"]  # the negligible tail (7.9e-12) that stretched the log axis
    ax = learning_curves_figure(recs).axes[3]
    assert ax.get_yscale() == "linear"
    lo, hi = ax.get_ylim()
    peak = max(r["lr"] for r in recs)
    assert lo == 0.0 and peak < hi < 1.2 * peak
    assert ax.get_legend().get_texts()[0].get_text() == f"last {last:.3g}"


def test_lr_panel_is_logarithmic_for_a_moderate_decay():
    recs = [_epoch(e) for e in range(1, 9)]  # halves every epoch: 1e-3 .. 7.8e-6, within 1000x
    ax = learning_curves_figure(recs).axes[3]
    assert ax.get_yscale() == "log"
    constant = [dict(_epoch(e), lr=1e-3) for e in (1, 2, 3)]
    assert learning_curves_figure(constant).axes[3].get_yscale() == "linear"


def _legend(ax):
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_raster_draws_the_li_readout_as_traces(tmp_path, figures):
    inp = SpikeBatch.from_lists([([0.001, 0.002], [0, 1])], n_units=5)
    hid = SpikeBatch.from_lists([([0.004, 0.02], [2, 3])], n_units=4)
    t = np.linspace(0.0, 0.03, 31)
    v = np.stack([np.sin(100 * t), 0.5 * t, -t], axis=1)
    plot_raster([inp, hid], [5, 4], ["input", "hidden"], 0, 0.03, tmp_path / "raster.png", title="yy 0",
                readout=(t, v), class_names=["yang", "yin", "dot"], predicted=1, true=0)
    fig = figures["raster.png"]
    assert len(fig.axes) == 3  # input, hidden, readout voltages: no empty LI raster
    traces = fig.axes[2]
    assert len(traces.get_lines()) == 3
    assert fig.axes[2].get_position().height < 0.8 * fig.axes[1].get_position().height  # the small panel
    widths = [line.get_linewidth() for line in traces.get_lines()]
    assert widths[1] > 2 * widths[0] and widths[1] > 2 * widths[2]  # the predicted class is bold
    assert _legend(traces) == ["yang (true)", "yin (predicted)", "dot"]
    assert fig._suptitle.get_text() == "yy 0, predicted yin, true yang (wrong)"
    with pytest.raises(ValueError, match="predicted"):
        plot_raster([inp, hid], [5, 4], ["input", "hidden"], 0, 0.03, tmp_path / "x.png", readout=(t, v),
                    predicted=3)
    with pytest.raises(ValueError, match="class names"):
        plot_raster([inp, hid], [5, 4], ["input", "hidden"], 0, 0.03, tmp_path / "x.png", readout=(t, v),
                    class_names=["a", "b"])
    with pytest.raises(ValueError, match="shape"):
        plot_raster([inp, hid], [5, 4], ["input", "hidden"], 0, 0.03, tmp_path / "x.png", readout=(t, v[:-1]))


def test_readout_marks_prediction_and_label(tmp_path, figures):
    t = np.linspace(0.0, 0.05, 50)
    v = np.stack([np.sin(40 * t), np.cos(40 * t), 0.1 * t], axis=1)
    plot_voltage(t, v, tmp_path / "readout.png", labels=["yang", "yin", "dot"], title="readout", predicted=2, true=2)
    ax = figures["readout.png"].axes[0]
    assert _legend(ax) == ["yang", "yin", "dot (predicted, true)"]
    assert ax.get_title() == "readout, predicted dot, true dot (correct)"
    assert ax.get_lines()[2].get_linewidth() > 2 * ax.get_lines()[0].get_linewidth()
    # spiking output: threshold line and first-spike marks (one per unit that fired)
    plot_voltage(t, v, tmp_path / "out.png", labels=["yang", "yin", "dot"], predicted=0, true=1, threshold=1.0,
                 first_spikes=[0.01, np.inf, 0.02])
    ax = figures["out.png"].axes[0]
    assert _legend(ax) == ["yang (predicted)", "yin (true)", "dot", "threshold"]
    assert len(ax.get_lines()) == 3 + 1 + 2
    with pytest.raises(ValueError, match="true"):
        plot_voltage(t, v, tmp_path / "x.png", true=-1)
    with pytest.raises(ValueError, match="first-spike"):
        plot_voltage(t, v, tmp_path / "x.png", threshold=1.0, first_spikes=[0.01])


@pytest.mark.parametrize("loss", ["max", "first_spike"])
def test_cli_plot_panels(tmp_path, figures, loss):
    """``exactsnn plot`` on a tiny run: an LI readout is drawn as voltages under the raster, a spiking
    output as a raster panel; readout.png names the prediction the run's loss makes and the true class."""
    from dataclasses import replace

    from typer.testing import CliRunner

    from exactsnn.config import Config, apply_overrides
    from exactsnn.data.tasks import Task, load_task
    from exactsnn.train import train
    from exactsnn_cli.main import app

    full = load_task(Config().data)
    tiny = [replace(s, batch=s.batch.select(np.arange(32)), labels=s.labels[:32]) for s in (full.train, full.valid)]
    task = Task(full.name, full.n_inputs, full.n_classes, full.t_max, *tiny, None, full.class_names)
    run = tmp_path / "run"
    train(apply_overrides(Config(), ["network.hidden=[8]", "train.epochs=1", f'loss.name="{loss}"']), run,
          task=task, log=lambda _: None)
    res = CliRunner().invoke(app, ["plot", str(run), "--out", str(tmp_path / "png"), "--sample", "3"])
    assert res.exit_code == 0, res.output
    raster, readout = figures["raster.png"], figures["readout.png"]
    labels = [ax.get_ylabel() for ax in raster.axes]
    if loss == "max":
        assert labels == ["input\nunit", "layer 0 (LIF)\nunit", "readout\nvoltage"]
    else:
        assert labels == ["input\nunit", "layer 0 (LIF)\nunit", "layer 1 (LIF)\nunit"]
        assert "threshold" in _legend(readout.axes[0])
    title = readout.axes[0].get_title()
    assert "test sample 3, predicted " in title and ", true " in title
    assert ("predicted" in raster._suptitle.get_text())
    assert sum("(predicted" in s for s in _legend(readout.axes[0])) == 1
    assert sum("true)" in s for s in _legend(readout.axes[0])) == 1
