"""The training loop: loss goes down, resume is bit-identical, Ctrl-C saves, logs and checkpoints."""

import json
from dataclasses import replace

import numpy as np
import pytest

from exactsnn.checkpoint import load_checkpoint, load_checkpoint_state
from exactsnn.config import Config, apply_overrides
from exactsnn.data.datasets import Split
from exactsnn.data.tasks import Task, load_task
from exactsnn.train import TrainingInterrupted, build_loss, evaluate, resume_config, train


def _small_task(n_train=96, n_valid=64):
    """Yin-Yang cut down to a few samples, so a run takes a second."""
    full = load_task(Config().data)

    def cut(s: Split, n: int) -> Split:
        idx = np.arange(n)
        return replace(s, batch=s.batch.select(idx), labels=s.labels[idx])

    return Task("yinyang", full.n_inputs, full.n_classes, full.t_max, cut(full.train, n_train),
                cut(full.valid, n_valid), cut(full.test, n_valid), full.class_names)


def _cfg(*extra):
    return apply_overrides(Config(), ["network.hidden=[16]", "train.batch_size=16", "train.epochs=3",
                                      "train.lr=1e-2", "train.decay=\"none\"", *extra])


def _quiet(_):
    pass


def test_short_training_lowers_the_loss(tmp_path):
    task = _small_task()
    cfg = _cfg("train.epochs=4", "network.hidden=[48]", "train.lr=3e-2", "train.batch_size=8")
    res = train(cfg, tmp_path / "run", task=task, log=_quiet)
    losses = [m["train_loss"] for m in res.metrics]
    assert len(losses) == 4
    assert all(b < a for a, b in zip(losses, losses[1:], strict=False))
    assert losses[-1] < 0.9 * losses[0]
    # the readout evaluation agrees with the logged validation figures
    ev = evaluate(res.net, res.params, task.valid, build_loss(cfg), task.t_max)
    best = min(res.metrics, key=lambda m: m["val_loss"])  # train.select = "val_loss"
    assert res.best_epoch == best["epoch"]
    assert ev.accuracy == best["val_acc"] and ev.loss == pytest.approx(best["val_loss"], rel=1e-12)
    assert res.test is not None and 0 <= res.test.accuracy <= 1


def test_run_directory_contents(tmp_path):
    task = _small_task()
    out = tmp_path / "run"
    res = train(_cfg("train.epochs=2"), out, task=task, log=_quiet)
    assert {p.name for p in out.iterdir()} == {"config.toml", "metrics.jsonl", "best.h5", "last.h5"}
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["kind"] for x in lines] == ["epoch", "epoch", "test"]
    for key in ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "rate_hz", "epoch_time_s", "wall_s"):
        assert key in lines[0]
    assert lines[-1]["acc"] == res.test.accuracy
    _, _, extra = load_checkpoint(out / "last.h5")
    assert extra["epoch"] == 2 and extra["batch"] == 0
    assert extra["rng"]["seed"] == 0
    assert extra["config"]["network"]["hidden"] == [16]
    state = load_checkpoint_state(out / "last.h5")
    assert any(k.startswith("adam/m/") for k in state) and any(k.startswith("adam/v/") for k in state)
    # the saved config reads back to the same configuration
    ckpt, cfg = resume_config(out)
    assert ckpt == out / "last.h5" and cfg == _cfg("train.epochs=2")
    # a second run into the same directory is refused, nothing is overwritten
    with pytest.raises(ValueError, match="already holds a run"):
        train(_cfg(), out, task=task, log=_quiet)


class _StopAfter:
    """A progress callback that presses Ctrl-C after ``n`` batches."""

    def __init__(self, n):
        self.n = n

    def __call__(self, epoch, batch, n_batches, loss, acc):
        self.n -= 1
        if self.n == 0:
            raise KeyboardInterrupt


def _strip_times(metrics):
    return [{k: v for k, v in m.items() if k not in ("epoch_time_s", "wall_s")} for m in metrics]


@pytest.mark.parametrize("stop_after", [4, 6, 13])  # mid-epoch, at an epoch's last batch, in the last epoch
def test_resume_is_bit_identical(tmp_path, stop_after):
    task = _small_task()
    cfg = _cfg("augment.shift=1")  # augmentation draws random numbers too
    full = train(cfg, tmp_path / "full", task=task, log=_quiet)
    with pytest.raises(TrainingInterrupted) as info:
        train(cfg, tmp_path / "cut", task=task, log=_quiet, progress=_StopAfter(stop_after))
    assert info.value.checkpoint == tmp_path / "cut" / "last.h5"
    _, _, extra = load_checkpoint(info.value.checkpoint)
    assert extra["epoch"] * 6 + extra["batch"] == stop_after  # 96 samples / 16 = 6 batches per epoch
    resumed = train(cfg, tmp_path / "cut", resume=info.value.checkpoint, task=task, log=_quiet)
    for a, b in zip(full.params.groups().values(), resumed.params.groups().values(), strict=True):
        assert np.array_equal(a, b)
    assert _strip_times(full.metrics) == _strip_times(resumed.metrics)
    _, last_full, _ = load_checkpoint(tmp_path / "full" / "last.h5")
    _, last_cut, _ = load_checkpoint(tmp_path / "cut" / "last.h5")
    for a, b in zip(last_full.groups().values(), last_cut.groups().values(), strict=True):
        assert np.array_equal(a, b)
    assert full.test.accuracy == resumed.test.accuracy
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(x)["kind"] for x in lines] == ["epoch"] * 3 + ["test"]


def test_resume_rejects_a_plain_checkpoint(tmp_path):
    import exactsnn as es
    from exactsnn.checkpoint import save_checkpoint

    net = es.Network(5, [es.Layer(3, es.LI())])
    save_checkpoint(tmp_path / "plain.h5", net, net.init(0))
    with pytest.raises(ValueError, match="not a training checkpoint"):
        resume_config(tmp_path / "plain.h5")


def test_early_stopping(tmp_path):
    task = _small_task()
    # a zero learning rate cannot improve validation accuracy after the first epoch
    res = train(_cfg("train.epochs=10", "train.patience=2", "train.lr=1e-12", 'train.select="val_acc"'),
                tmp_path / "run", task=task, log=_quiet)
    assert res.stopped_early and len(res.metrics) == 3


@pytest.mark.parametrize("failure", ["nan", "error"])
def test_a_failing_batch_is_reported_with_its_place(tmp_path, monkeypatch, failure):
    import exactsnn.train as train_module

    real = train_module.loss_and_grad
    calls = []

    def flaky(*args, **kwargs):
        calls.append(1)
        value, grads, outs = real(*args, **kwargs)
        if len(calls) == 8:
            if failure == "error":
                raise ValueError("layer 0: runaway activity")
            return float("nan"), grads, outs
        return value, grads, outs

    monkeypatch.setattr(train_module, "loss_and_grad", flaky)
    with pytest.raises(ValueError, match=r"epoch 2, batch 2: .*(runaway|nan).*lower train.lr"):
        train(_cfg(), tmp_path / "run", task=_small_task(), log=_quiet)


@pytest.mark.parametrize("loss", ["first_spike", "sum_gaussian"])
def test_other_losses_train(tmp_path, loss):
    extra = ["network.readout_mean=3.0"] if loss == "first_spike" else []  # outputs must fire to learn
    res = train(_cfg(f"loss.name=\"{loss}\"", "train.epochs=1", *extra), tmp_path / "run", task=_small_task(),
                log=_quiet)
    m = res.metrics[0]
    assert np.isfinite(m["train_loss"]) and 0 <= m["val_acc"] <= 1
    assert res.test.predictions.shape == (64,)


def test_learned_delays_move_and_stay_legal(tmp_path):
    cfg = _cfg("network.delays=true", "network.delay_max=0.005", "train.epochs=1", "train.delay_lr=1e-3",
               "network.recurrent=true")
    res = train(cfg, tmp_path / "run", task=_small_task(), log=_quiet)
    init = res.net.init(int(np.random.default_rng((cfg.train.seed, 0)).integers(2**63)))
    for name in ("delays[0]", "recurrent_delays[0]"):
        d, d0 = res.params.groups()[name], init.groups()[name]
        assert not np.array_equal(d, d0), name
        assert d.min() >= 0 and d.max() <= 0.005
    assert np.all(np.diag(res.params.recurrent_weights[0]) == 0)
    assert np.all(res.params.delays[1] == 0)  # the readout has no delays


def test_resume_into_another_directory(tmp_path):
    task = _small_task()
    cfg = _cfg()
    with pytest.raises(TrainingInterrupted):
        train(cfg, tmp_path / "a", task=task, log=_quiet, progress=_StopAfter(8))
    res = train(cfg, tmp_path / "b", resume=tmp_path / "a" / "last.h5", task=task, log=_quiet)
    assert (tmp_path / "b" / "best.h5").exists() and len(res.metrics) == 3
    full = train(cfg, tmp_path / "full", task=task, log=_quiet)
    for a, b in zip(full.params.groups().values(), res.params.groups().values(), strict=True):
        assert np.array_equal(a, b)
