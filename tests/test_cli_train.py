"""``exactsnn train / evaluate / plot / data synth-shd`` end to end on small runs; user errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from exactsnn_cli.main import app

runner = CliRunner()
TINY = ["--hidden", "8", "--epochs", "1", "--set", "train.batch_size=64"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, match):
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert match in result.output, result.output


@pytest.fixture(scope="module")
def yinyang_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "yy"
    res = invoke("train", *TINY, "--out", out)
    assert res.exit_code == 0, res.output
    return out, res.output


def test_train_prints_accuracy_and_writes_the_run(yinyang_run):
    out, output = yinyang_run
    assert "test accuracy: " in output and " %" in output
    assert "epoch 1/1" in output
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["epoch", "test"]
    assert (out / "best.h5").exists() and (out / "last.h5").exists()
    assert 'hidden = [8]' in (out / "config.toml").read_text()


def test_evaluate_prints_accuracy_table_and_rates(yinyang_run):
    out, output = yinyang_run
    res = invoke("evaluate", out)
    assert res.exit_code == 0, res.output
    acc_line = next(x for x in res.output.splitlines() if x.startswith("accuracy:"))
    test_line = next(x for x in output.splitlines() if x.startswith("test accuracy:"))
    assert acc_line.split()[1] == test_line.split()[2]  # same figure as at the end of training
    for name in ("yang", "yin", "dot"):
        assert any(x.startswith(name) for x in res.output.splitlines())
    assert "Hz" in res.output
    res = invoke("evaluate", out / "best.h5", "--split", "valid")
    assert res.exit_code == 0 and "yinyang valid, 1000 samples" in res.output


def test_resume_a_finished_run_for_more_epochs(yinyang_run, tmp_path):
    import shutil

    out, _ = yinyang_run
    run = tmp_path / "copy"
    shutil.copytree(out, run)
    res = invoke("train", "--resume", run, "--epochs", "2")
    assert res.exit_code == 0, res.output
    assert "epoch 2/2" in res.output and "epoch 1/2" not in res.output
    kinds = [json.loads(x)["kind"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert kinds == ["epoch", "epoch", "test"]


def test_plot_writes_pngs(yinyang_run, tmp_path):
    pytest.importorskip("matplotlib")
    out, _ = yinyang_run
    res = invoke("plot", out, "--out", tmp_path)
    assert res.exit_code == 0, res.output
    for name in ("learning_curves.png", "raster.png", "readout.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_synthetic_shd_end_to_end(tmp_path):
    data = tmp_path / "synth"
    res = invoke("data", "synth-shd", "--out", data, "--n-train", 48, "--n-test", 16, "--rate-scale", 0.2)
    assert res.exit_code == 0, res.output
    assert (data / "shd_train.h5").exists() and (data / "shd_test.h5").exists()
    assert_user_error(invoke("data", "synth-shd", "--out", data, "--n-train", 4, "--n-test", 4), "--force")
    res = invoke("train", "--dataset", "shd", "--data-dir", data, "--hidden", 8, "--epochs", 1,
                 "--set", "data.duration=0.3", "--set", "train.batch_size=16", "--set", "data.val_fraction=0.5",
                 "--out", tmp_path / "run")
    assert res.exit_code == 0, res.output
    assert "test accuracy: " in res.output
    res = invoke("evaluate", tmp_path / "run")
    assert res.exit_code == 0 and "shd test, 16 samples, window 0.3 s" in res.output


def test_user_errors(tmp_path):
    assert_user_error(invoke("train", "--dataset", "shd", "--data-dir", tmp_path / "nowhere", "--out", tmp_path / "r"),
                      "shd_train.h5")
    assert_user_error(invoke("train", "--set", "train.lrr=1", "--out", tmp_path / "r"), "unknown option train.lrr")
    assert_user_error(invoke("train", "--set", "oops", "--out", tmp_path / "r"), "section.key=value")
    assert_user_error(invoke("train", "--hidden", "8,x", "--out", tmp_path / "r"), "layer sizes")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nlr = 1")
    assert_user_error(invoke("train", "--config", bad, "--out", tmp_path / "r"), "not valid TOML")
    assert_user_error(invoke("evaluate", tmp_path / "missing.h5"), "no such file")
    assert_user_error(invoke("train", "--resume", tmp_path / "nothing"), "no such file")
    assert_user_error(invoke("plot", tmp_path / "nothing"), "not a run directory")


def test_sigterm_saves_and_resume_finishes(tmp_path):
    """A batch system's SIGTERM (like Ctrl-C) writes last.h5; --resume then completes the run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "exactsnn_cli.main", "train", "--hidden", "8", "--epochs", "40", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ)
    try:
        deadline = time.time() + 120
        while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted: state saved to" in err and "--resume" in err
    from exactsnn.checkpoint import load_checkpoint

    _, _, extra = load_checkpoint(out / "last.h5")
    assert 1 <= extra["epoch"] < 40
    res = invoke("train", "--resume", out, "--epochs", extra["epoch"] + 1)
    assert res.exit_code == 0, res.output
    assert "test accuracy: " in res.output


def test_epoch_bar_on_a_terminal(monkeypatch):
    """The progress bar as a terminal shows it (hidden otherwise, so CliRunner never draws it)."""
    import io
    import sys

    from exactsnn_cli.train import EpochBar

    class Tty(io.StringIO):
        def isatty(self):
            return True

    err = Tty()
    monkeypatch.setattr(sys, "stderr", err)
    bar = EpochBar(2)
    for epoch in range(2):
        for k in range(1, 4):
            bar(epoch, k, 3, 1.0 / k, 0.25 * k)
    bar.close()
    text = err.getvalue()
    assert "epoch 1/2" in text and "epoch 2/2" in text and "3/3" in text and "acc 75.0 %" in text


def test_adlif_with_learned_neuron_parameters_end_to_end(tmp_path):
    """--neuron adlif --learn ...: trains, the learned parameters move and land in the checkpoint, evaluate works,
    and resuming continues from the saved adaptation parameters."""
    from exactsnn.checkpoint import load_checkpoint

    data = tmp_path / "synth"
    assert invoke("data", "synth-shd", "--out", data, "--n-train", 48, "--n-test", 16,
                  "--rate-scale", 0.2).exit_code == 0
    run = tmp_path / "run"
    res = invoke("train", "--dataset", "shd", "--data-dir", data, "--hidden", 8, "--epochs", 1, "--recurrent",
                 "--neuron", "adlif", "--learn", "tau_mem,tau_w,a,b", "--set", "data.duration=0.3",
                 "--set", "train.batch_size=16", "--set", "data.val_fraction=0.5", "--out", run)
    assert res.exit_code == 0, res.output
    assert "test accuracy: " in res.output
    net, params, _ = load_checkpoint(run / "last.h5")
    assert type(net.layers[0].neuron).__name__ == "AdLIF"
    assert net.layers[0].learn == ("tau_mem", "tau_w", "a", "b")
    learned = params.neuron[0]
    assert set(learned) == {"tau_mem", "tau_w", "a", "b"}
    assert np.any(learned["a"] != net.layers[0].neuron.a) and np.any(learned["b"] != net.layers[0].neuron.b)
    assert np.all(learned["tau_mem"] >= 1e-4)
    res = invoke("evaluate", run)
    assert res.exit_code == 0, res.output
    assert "AdLIF" in res.output
    res = invoke("train", "--resume", run, "--epochs", 2)
    assert res.exit_code == 0, res.output
    _, params2, _ = load_checkpoint(run / "last.h5")
    assert np.any(params2.neuron[0]["a"] != learned["a"])


def test_adlif_user_errors(tmp_path):
    assert_user_error(invoke("train", "--neuron", "izhikevich", "--out", tmp_path / "r"), "network.neuron")
    assert_user_error(invoke("train", "--learn", "a", "--out", tmp_path / "r"), "not a learnable parameter of lif")
    assert_user_error(invoke("train", "--neuron", "adlif", "--set", "network.a=-2", "--out", tmp_path / "r"),
                      "a must be > -1")
