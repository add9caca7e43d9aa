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
    # the validation split evaluate draws is the run's hold-out (checked after the data/network fit)
    from exactsnn.config import load_config
    from exactsnn.data.tasks import load_task

    cfg = load_config(tmp_path / "run" / "config.toml")
    valid = load_task(cfg.data, cfg.augment, cfg.train.seed).valid
    res = invoke("evaluate", tmp_path / "run", "--split", "valid")
    assert res.exit_code == 0 and f"shd valid, {len(valid)} samples" in res.output
    metrics = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    acc = next(x for x in res.output.splitlines() if x.startswith("accuracy:")).split()[1]
    assert acc == f"{100 * metrics[0]['val_acc']:.2f}"  # the same samples as during training


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


# ----------------------------------------------------------------------------- issue 13: options, config, dry run
def _config_of(output):
    import tomllib

    from exactsnn.config import config_from_dict

    return config_from_dict(tomllib.loads(output))


def test_train_hidden_repeated_equals_comma_separated():
    a = invoke("train", "--hidden", "256", "--hidden", "128", "--print-config")
    b = invoke("train", "--hidden", "256,128", "--print-config")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert a.output == b.output
    assert _config_of(a.output).network.hidden == (256, 128)
    assert _config_of(invoke("train", "--hidden", "64,32", "--hidden", "16", "--print-config").output
                      ).network.hidden == (64, 32, 16)


def test_train_neuron_options_map_onto_the_config(tmp_path):
    res = invoke("train", "--neuron", "adlif", "--tau-mem", 0.01, "--tau-syn", 0.002, "--v-th", 1.5, "--v-reset",
                 -0.1, "--t-ref", 0.001, "--tau-w", 0.2, "--a", 2, "--b", 0.1, "--learn", "tau_mem,a", "--learn", "b",
                 "--recurrent", "--delays", "--seed", 3, "--threads", 1, "--lr", 1e-4, "--print-config")
    assert res.exit_code == 0, res.output
    cfg = _config_of(res.output)
    nc = cfg.network
    assert (nc.neuron, nc.tau_mem, nc.tau_syn, nc.v_th, nc.v_reset, nc.t_ref, nc.tau_w, nc.a, nc.b) == (
        "adlif", 0.01, 0.002, 1.5, -0.1, 0.001, 0.2, 2.0, 0.1)
    assert nc.learn == ("tau_mem", "a", "b") and nc.recurrent and nc.delays
    assert cfg.train.seed == 3 and cfg.train.lr == 1e-4
    # the options override the config file, --set overrides the options
    file = tmp_path / "c.toml"
    file.write_text("[network]\ntau_mem = 0.05\ntau_syn = 0.003\n")
    cfg = _config_of(invoke("train", "-c", file, "--tau-mem", 0.01, "--print-config").output)
    assert cfg.network.tau_mem == 0.01 and cfg.network.tau_syn == 0.003
    cfg = _config_of(invoke("train", "--tau-mem", 0.01, "--set", "network.tau_mem=0.03", "--print-config").output)
    assert cfg.network.tau_mem == 0.03


def test_train_help_shows_the_config_defaults():
    from exactsnn.config import Config
    from exactsnn_cli.train import SHORTCUTS, TRAIN_DEFAULTS

    cfg = Config()
    for name, value in TRAIN_DEFAULTS.items():
        section, key = SHORTCUTS[name].split(".")
        assert getattr(getattr(cfg, section), key) == value, name
    res = invoke("train", "--help")
    assert res.exit_code == 0
    flat = " ".join(res.output.split())
    for text in ("[default: yinyang]", "[default: 80]", "[default: 16]", "[default: 0.002]", "[default: 600]",
                 "[default: max]", "[default: 0.02]", "[default: no-recurrent]", "[default: lif]"):
        assert text in flat.replace("no- recurrent", "no-recurrent"), text


def test_print_config_loads_no_data_and_round_trips(tmp_path):
    from exactsnn.config import Config, apply_overrides, load_config

    res = invoke("train", "--dataset", "shd", "--data-dir", tmp_path / "nowhere", "--epochs", 3,
                 "--set", "train.lr=1e-3", "--print-config")
    assert res.exit_code == 0, res.output  # the missing data is not noticed: nothing is loaded
    path = tmp_path / "c.toml"
    path.write_text(res.output)
    expected = apply_overrides(Config(), ["data.dataset=\"shd\"", f"data.data_dir=\"{tmp_path / 'nowhere'}\"",
                                          "train.epochs=3", "train.lr=1e-3"])
    assert load_config(path) == expected
    assert not (tmp_path / "nowhere").exists() and not list(tmp_path.glob("runs*"))
    assert_user_error(invoke("train", "--set", "train.lr=0", "--print-config"), "train.lr must be a finite number > 0")


def test_dry_run_checks_and_describes_without_training(tmp_path):
    run = tmp_path / "r"
    res = invoke("train", "--hidden", "8,4", "--delays", "--dry-run", "--out", run)
    assert res.exit_code == 0, res.output
    assert "# network: 5 inputs -> 8 LIF (delays) -> 4 LIF (delays) -> 3 LI" in res.output
    # weights 5*8 + 8*4 + 4*3 = 84, learned delays of the two hidden layers 40 + 32
    assert "# parameters: 156 trainable" in res.output
    assert "# data:    yinyang: 5 channels, 3 classes" in res.output
    assert "hardware: " in res.output and "device cpu" in res.output
    assert "epoch" not in res.output.replace("epochs", "")  # nothing trained
    assert _config_of(res.output).network.hidden == (8, 4)  # the whole output is the config (plus comments)
    assert not run.exists()
    assert_user_error(invoke("train", "--dry-run", "--dataset", "shd", "--data-dir", tmp_path / "nowhere"),
                      "shd_train.h5")


def test_dry_run_and_resume_report_a_mismatch(yinyang_run, tmp_path):
    out, _ = yinyang_run
    assert_user_error(invoke("train", "--dry-run", "--out", out), "already holds a run")
    res = invoke("train", "--resume", out, "--epochs", 3, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "resuming" in res.output and "at epoch 2" in res.output
    res = invoke("train", "--resume", out, "--hidden", 5, "--dry-run")
    assert_user_error(res, "(5-8-3) does not match the configured one (5-5-3")
    cfg = _config_of(invoke("train", "--resume", out, "--epochs", 5, "--print-config").output)
    assert cfg.train.epochs == 5 and cfg.network.hidden == (8,)  # the run's config plus the override


def test_output_folders_are_checked_before_any_work(tmp_path):
    file = tmp_path / "a_file"
    file.write_text("x")
    res = invoke("train", "--out", file, "--hidden", 4)
    assert_user_error(res, "is a file, not a folder")
    assert "epoch" not in res.output and "Errno" not in res.output
    assert_user_error(invoke("train", "--out", file / "run", "--dry-run"), "is a file, not a folder")
    assert_user_error(invoke("data", "synth-shd", "--out", file), "is a file, not a folder")


def test_train_prints_hardware_and_a_whole_run_eta(tmp_path):
    res = invoke("train", "--hidden", 4, "--epochs", 2, "--set", "train.batch_size=256", "--out", tmp_path / "r",
                 "--threads", 1)
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    hw = next(x for x in lines if x.startswith("hardware: "))
    assert "cores" in hw and "Numba 1 threads" in hw and "device cpu" in hw
    first = next(x for x in lines if x.startswith("epoch 1/2"))
    last = next(x for x in lines if x.startswith("epoch 2/2"))
    assert "run ETA " in first and "run ETA" not in last


def test_epoch_bar_shows_the_run_eta_after_one_epoch(monkeypatch):
    import exactsnn_cli.train as cli_train

    clock = [0.0]
    monkeypatch.setattr(cli_train.time, "perf_counter", lambda: clock[0])
    bar = cli_train.EpochBar(5)
    for epoch in range(3):
        for k in range(1, 5):
            clock[0] += 2.5 + (10 if epoch == 0 and k == 1 else 0)  # the first batch compiles
            bar(epoch, k, 4, 1.0, 0.5)
            if epoch == 0:
                assert "run ETA" not in bar.text
    # epochs of 10 s (the first one's 10 s of compilation fell before its first report): 2 epochs left
    assert bar.durations == [10.0, 10.0]
    assert bar.run_eta(2, 4, 4) == 20.0 and "run ETA 20 s" in bar.text
    from exactsnn.train import format_duration

    assert [format_duration(s) for s in (3.21, 45, 250, 7500)] == ["3.2 s", "45 s", "4 min 10 s", "2 h 05 min"]


def test_evaluate_reports_the_real_mismatch_first(yinyang_run, tmp_path):
    """A Yin-Yang network evaluated on a tiny SHD folder: the 5-input / 3-class vs 700-channel / 20-class
    mismatch is the error (not the validation hold-out that such a small training file cannot give)."""
    out, _ = yinyang_run
    data = tmp_path / "tiny"
    assert invoke("data", "synth-shd", "--out", data, "--n-train", 3, "--n-test", 3, "--rate-scale", 0.1).exit_code == 0
    for split in ("test", "valid", "train"):
        res = invoke("evaluate", out, "--dataset", "shd", "--data-dir", data, "--split", split)
        assert_user_error(res, "the network has 5 inputs and 3 outputs, the shd data 700 channels and 20 classes")
        assert "holdout" not in res.output and "fraction" not in res.output


def test_readme_config_examples_work(tmp_path, monkeypatch):
    """The README's --print-config / --dry-run lines, run in order as written (output redirection included)."""
    import shlex
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("## Training", 1)[1].split("```", 2)[1]
    lines = [x.split("#", 1)[0].strip() for x in block.splitlines()
             if "--print-config" in x or "--dry-run" in x]
    assert len(lines) >= 2, block
    monkeypatch.chdir(tmp_path)
    for line in lines:
        words = shlex.split(line)
        target = None
        if ">" in words:
            target, words = words[words.index(">") + 1], words[:words.index(">")]
        assert words[0] == "exactsnn", line
        res = runner.invoke(app, words[1:])
        assert res.exit_code == 0, (line, res.output)
        if target:
            (tmp_path / target).write_text(res.stdout)
    assert "dry run: everything fits" in res.output
    assert not (tmp_path / "runs").exists()


def test_library_evaluate_checks_the_data_fits_first():
    import exactsnn as es
    from exactsnn.data.datasets import Split
    from exactsnn.losses import MaxVoltage
    from exactsnn.train import evaluate

    net = es.Network(5, [es.Layer(4), es.Layer(3, es.LI())])
    params = net.init(0)
    wide = es.SpikeBatch.from_lists([(np.array([0.01]), np.array([600]))], n_units=700)
    with pytest.raises(ValueError, match="the network has 5 inputs and 3 outputs, the test split 700 channels"):
        evaluate(net, params, Split(wide, np.array([0]), "test", 20), MaxVoltage(), 0.05)
    narrow = es.SpikeBatch.from_lists([(np.array([0.01]), np.array([2]))], n_units=5)
    with pytest.raises(ValueError, match="5 channels and 20 classes"):
        evaluate(net, params, Split(narrow, np.array([7]), "test", 20), MaxVoltage(), 0.05)
    res = evaluate(net, params, Split(narrow, np.array([1]), "test", 3), MaxVoltage(), 0.05)
    assert res.predictions.shape == (1,)
