"""The training loop: mini-batch EventProp with Adam, augmentation, evaluation, checkpoints and logs.

One run lives in one directory::

    config.toml      the configuration (also stored inside every checkpoint)
    metrics.jsonl    one JSON object per line: {"kind": "epoch", epoch, train_loss, train_acc,
                     val_loss, val_acc, lr, rate_hz (per hidden layer), epoch_time_s, wall_s}
                     per epoch, and {"kind": "test", loss, acc, rate_hz, checkpoint} at the end
    last.h5          checkpoint after the latest epoch (or at the interruption, mid-epoch)
    best.h5          checkpoint of the epoch with the best validation accuracy

Randomness. Every random draw comes from a generator seeded by a tuple: the initial parameters
from ``(seed, 0)``, epoch e's sample order from ``(seed, 1, e)``, the augmentation of its batch k
from ``(seed, 2, e, k)``. The run's RNG state is therefore the counter ``(seed, epoch, batch)``,
stored in every checkpoint, and resuming from any checkpoint (mid-epoch included) replays the
same draws: with the same thread count the resumed run is bit-identical to an uninterrupted one.

Ctrl-C (KeyboardInterrupt) ends the current batch's work unused, writes ``last.h5`` holding the
state after the last completed batch, and raises :class:`TrainingInterrupted`.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from exactsnn.checkpoint import load_checkpoint, load_checkpoint_state, save_checkpoint
from exactsnn.config import Config, config_from_dict, config_to_dict, to_toml
from exactsnn.data.datasets import Split
from exactsnn.data.tasks import Task, load_task
from exactsnn.events import SpikeBatch
from exactsnn.grad import evaluate_batch, loss_and_grad
from exactsnn.network import Layer, Network, Params
from exactsnn.neurons import LI
from exactsnn.neurons.registry import make_neuron
from exactsnn.optim import Adam, AdamState, Schedule, adam_init, adam_step, lr_factor

__all__ = [
    "EvalResult",
    "TrainResult",
    "TrainingInterrupted",
    "build_network",
    "build_loss",
    "build_regularizer",
    "evaluate",
    "train",
    "resume_config",
    "RunPlan",
    "preflight",
    "check_compatible",
    "count_parameters",
    "describe_hardware",
    "format_duration",
]

STATE_FORMAT = "exactsnn-train-1"


class TrainingInterrupted(Exception):  # noqa: N818 - it is not an error: the run stopped on request
    """Raised after Ctrl-C, once ``checkpoint`` holds the state to resume from."""

    def __init__(self, checkpoint: Path) -> None:
        super().__init__(f"interrupted; state saved to {checkpoint}")
        self.checkpoint = checkpoint


# ----------------------------------------------------------------------------- building blocks
def build_network(cfg: Config, n_inputs: int, n_classes: int) -> Network:
    """Hidden LIF or adLIF layers and an LI readout as ``cfg.network`` describes."""
    nc = cfg.network
    # the model's own fields (tau_mem, tau_w, a, ...) are read from the section by name
    neuron = make_neuron(nc.neuron, {f.name: getattr(nc, f.name) for f in dataclasses.fields(nc)})
    layers, n_pre = [], n_inputs
    for size in nc.hidden:
        layers.append(Layer(
            size, neuron, recurrent=nc.recurrent, delays=nc.delays, delay_max=nc.delay_max,
            weight_mean=nc.weight_mean, weight_std=nc.weight_scale / math.sqrt(n_pre),
            recurrent_std=nc.recurrent_scale / math.sqrt(size), learn=nc.learn,
        ))
        n_pre = size
    if cfg.loss.name == "first_spike":
        readout = neuron
    else:
        readout = LI(tau_mem=nc.readout_tau_mem, tau_syn=nc.readout_tau_syn)
    layers.append(Layer(n_classes, readout, weight_mean=nc.readout_init_mean(cfg.loss.name, n_pre),
                        weight_std=nc.readout_scale / math.sqrt(n_pre)))
    return Network(n_inputs, layers)


def build_loss(cfg: Config) -> Any:
    """The loss object ``cfg.loss`` names, with its options."""
    from exactsnn.losses import LOSSES

    cls = LOSSES[cfg.loss.name]
    try:
        return cls(**cfg.loss.options)
    except TypeError as exc:
        opts = sorted(cfg.loss.options)
        raise ValueError(f"[loss] options {opts} do not fit loss {cfg.loss.name!r} ({exc})") from None


def build_regularizer(cfg: Config) -> Any:
    """The spike-count regulariser of the hidden layers; when its strengths are zero, for first_spike the
    output units' spike-count floor (``regularizer.output_s_lo``, ``output_nu_lo``), else None."""
    from exactsnn.regularizers import SpikeCount

    rc = cfg.regularizer
    if rc.enabled:
        return SpikeCount(nu_lo=rc.nu_lo, nu_hi=rc.nu_hi, s_lo=rc.s_lo, s_hi=rc.s_hi, per=rc.per)
    if cfg.loss.name == "first_spike" and rc.output_s_lo > 0 and rc.output_nu_lo > 0:
        return SpikeCount(nu_lo=rc.output_nu_lo, nu_hi=max(rc.output_nu_lo, rc.nu_hi), s_lo=rc.output_s_lo, s_hi=0.0,
                          layers=[len(cfg.network.hidden)])
    return None


def _augment(cfg: Config, batch: SpikeBatch, labels: np.ndarray, rng: np.random.Generator) -> SpikeBatch:
    from exactsnn.data.augment import blend, channel_shift

    aug = cfg.augment
    if aug.blend > 0:
        batch = blend(batch, labels, aug.blend, rng)
    if aug.shift > 0:
        batch = channel_shift(batch, aug.shift, rng)
    return batch


# ----------------------------------------------------------------------------- evaluation
@dataclass(frozen=True, eq=False)
class EvalResult:
    """Loss, accuracy, predictions (N,), confusion matrix [true, predicted] and mean rate (Hz) per
    spiking layer of a network on a split."""

    loss: float
    accuracy: float
    predictions: np.ndarray
    confusion: np.ndarray
    rate_hz: list[float]

    def per_class(self) -> np.ndarray:
        """Accuracy of every class (NaN for a class without samples)."""
        n = self.confusion.sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(n > 0, np.diag(self.confusion) / np.maximum(n, 1), np.nan)


def evaluate(
    net: Network, params: Params, split: Split, loss: Any, t_max: float, batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> EvalResult:
    """Forward pass over ``split`` in batches; ``t_max`` the window (s). ``ValueError`` first if the split's
    channels or labels do not fit the network."""
    n_units = split.batch.n_units or 0
    top = int(split.labels.max()) + 1 if len(split) else 0
    if n_units > net.n_inputs or max(top, split.n_classes or 0) > net.layers[-1].size:
        raise ValueError(_mismatch(net, n_units, max(top, split.n_classes or 0), f"the {split.name} split"))
    n = len(split)
    n_out = net.layers[-1].size
    preds = np.zeros(n, dtype=np.int64)
    total = 0.0
    spiking = [l for l, layer in enumerate(net.layers) if layer.neuron.spiking and l < len(net.layers) - 1]
    spikes = np.zeros(len(spiking))
    for lo in range(0, n, batch_size):
        idx = np.arange(lo, min(lo + batch_size, n))
        value, out = evaluate_batch(net, params, split.batch.select(idx), split.labels[idx], loss, t_max)
        total += value * idx.size
        preds[idx] = out.predictions()
        for j, l in enumerate(spiking):
            spikes[j] += out.counts[l].sum()
        if progress is not None:
            progress(int(idx[-1]) + 1, n)
    confusion = np.zeros((n_out, n_out), dtype=np.int64)
    np.add.at(confusion, (split.labels, preds), 1)
    rates = [float(spikes[j] / (max(n, 1) * net.layers[l].size * t_max)) for j, l in enumerate(spiking)]
    return EvalResult(total / max(n, 1), float(np.mean(preds == split.labels)) if n else float("nan"), preds,
                      confusion, rates)


# ----------------------------------------------------------------------------- checks before any work
def _mismatch(net: Network, n_inputs: int, n_classes: int, what: str) -> str:
    return (f"the network has {net.n_inputs} inputs and {net.layers[-1].size} outputs, {what} {n_inputs} "
            f"channels and {n_classes} classes")


def check_compatible(net: Network, n_inputs: int, n_classes: int, what: str = "the data") -> None:
    """``ValueError`` (one line naming both shapes) unless data with ``n_inputs`` channels and ``n_classes``
    classes fit ``net``: the same number of inputs and at least one output per class."""
    if n_inputs != net.n_inputs or n_classes > net.layers[-1].size:
        raise ValueError(_mismatch(net, n_inputs, n_classes, what))


def count_parameters(net: Network, params: Params) -> dict[str, int]:
    """Trainable parameters per group (``weights[0]``, ``delays[0]``, ``tau_mem[0]``, ...); the delays of a
    layer without learned delays are left out (they are fixed at zero)."""
    out = {}
    for name, a in params.groups().items():
        layer = int(name[name.index("[") + 1:-1])
        learned = net.layers[layer].rec_delays if name.startswith("recurrent_") else net.layers[layer].ff_delays
        if "delays[" in name and not learned:
            continue
        out[name] = int(a.size)
    return out


def format_duration(seconds: float) -> str:
    """``'45 s'``, ``'4 min 10 s'``, ``'2 h 05 min'``."""
    s = max(0.0, float(seconds))
    if s < 60:
        return f"{s:.0f} s" if s >= 9.5 else f"{s:.1f} s"
    if s < 3600:
        m, r = divmod(round(s), 60)
        return f"{m} min {r:02d} s"
    h, r = divmod(round(s / 60), 60)
    return f"{h} h {r:02d} min"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_hardware() -> str:
    """One line: CPU model and cores, the Numba threads a run uses, and the device (CPU)."""
    import numba

    cores = os.cpu_count() or 1
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    core_txt = f"{usable} cores" if usable == cores else f"{usable} of {cores} cores usable"
    return (f"hardware: {_cpu_model()}, {core_txt}; Numba {numba.get_num_threads()} threads "
            f"(of {numba.config.NUMBA_NUM_THREADS}); device cpu")


@dataclass(frozen=True, eq=False)
class RunPlan:
    """What :func:`preflight` resolved: the task, the network, a parameter count per group, batches per epoch
    and the epoch a resumed run starts in (0-based)."""

    cfg: Config
    task: Task
    net: Network
    parameters: dict[str, int]
    n_batches: int
    start_epoch: int = 0

    @property
    def n_parameters(self) -> int:
        return sum(self.parameters.values())

    def describe_data(self) -> str:
        t = self.task
        sizes = ", ".join(f"{name} {len(s)}" for name, s in (("train", t.train), ("valid", t.valid),
                                                              ("test", t.test)) if s is not None)
        return f"{t.name}: {t.n_inputs} channels, {t.n_classes} classes, window {t.t_max:g} s; samples: {sizes}"

    def describe_network(self) -> str:
        return " -> ".join([f"{self.net.n_inputs} inputs"] + [layer.describe() for layer in self.net.layers])

    def describe_parameters(self) -> str:
        return ", ".join(f"{k} {v}" for k, v in self.parameters.items())


def preflight(
    cfg: Config, out_dir: str | os.PathLike | None = None, resume: str | os.PathLike | None = None,
    task: Task | None = None,
) -> RunPlan:
    """Everything :func:`train` checks before its first batch, without training or writing anything: load the
    data, build the network, loss, regulariser, optimiser and schedule, check that ``out_dir`` holds no other
    run and that a ``resume`` checkpoint fits the network. ``ValueError`` on the first problem."""
    tc = cfg.train
    if task is None:
        task = load_task(cfg.data, cfg.augment, tc.seed)
    if task.train is None or len(task.train) == 0:
        raise ValueError("the task has no training samples")
    net = build_network(cfg, task.n_inputs, task.n_classes)
    build_loss(cfg)
    build_regularizer(cfg)
    Adam(lr=tc.lr, beta1=tc.beta1, beta2=tc.beta2, delay_lr=tc.delay_lr, tau_lr=tc.tau_lr)
    Schedule(warmup_epochs=tc.warmup_epochs, decay=tc.decay, gamma=tc.gamma, epochs=tc.epochs,
             min_factor=tc.min_factor)
    start = 0
    if resume is not None:
        st = _load_state(Path(resume), net)
        params, start = st.params, st.epoch
    else:
        out = Path(out_dir) if out_dir is not None else None
        if out is not None and ((out / "last.h5").exists() or (out / "best.h5").exists()):
            raise ValueError(f"{out} already holds a run (last.h5/best.h5); resume it with --resume {out} "
                             "or choose another output directory")
        params = net.init(0)
    return RunPlan(cfg, task, net, count_parameters(net, params), math.ceil(len(task.train) / tc.batch_size),
                   start)


# ----------------------------------------------------------------------------- run state
@dataclass(frozen=True, eq=False)
class _State:
    """Everything a resumed run needs: replaced as a whole after each batch, so Ctrl-C finds it consistent."""

    params: Params
    opt: AdamState
    epoch: int  # 0-based epoch in progress
    batch: int  # batches of this epoch already applied
    sums: tuple[float, float, tuple[float, ...], int]  # loss*B, correct, spikes per hidden layer, samples
    metrics: tuple[dict, ...] = ()
    best_score: float = -math.inf  # higher is better: -loss or accuracy, per train.select
    best_epoch: int = 0
    stale: int = 0  # epochs since the best
    wall: float = 0.0  # seconds spent in earlier sessions of this run


@dataclass(frozen=True, eq=False)
class TrainResult:
    """Outcome of :func:`train`: the run directory, the best checkpoint's parameters (see
    ``train.select``), per-epoch metrics and the test evaluation of the best checkpoint (None
    without a test split)."""

    out_dir: Path
    net: Network
    params: Params
    metrics: list[dict]
    test: EvalResult | None
    best_checkpoint: Path
    best_epoch: int = 0
    stopped_early: bool = False
    extra: dict = field(default_factory=dict)


def _opt_arrays(opt: AdamState) -> dict[str, np.ndarray]:
    out = {f"adam/m/{k}": v for k, v in opt.m.items()}
    out.update({f"adam/v/{k}": v for k, v in opt.v.items()})
    return out


def _save(path: Path, net: Network, cfg: Config, st: _State) -> None:
    extra = {
        "format": STATE_FORMAT,
        "config": config_to_dict(cfg),
        "epoch": st.epoch,
        "batch": st.batch,
        "rng": {"seed": cfg.train.seed, "epoch": st.epoch, "batch": st.batch,
                "scheme": "numpy default_rng((seed, 1, epoch)) order, ((seed, 2, epoch, batch)) augmentation"},
        "adam_step": st.opt.step,
        "sums": [st.sums[0], st.sums[1], list(st.sums[2]), st.sums[3]],
        "metrics": list(st.metrics),
        "best_score": st.best_score,
        "best_epoch": st.best_epoch,
        "stale": st.stale,
        "wall_s": st.wall,
    }
    save_checkpoint(path, net, st.params, extra, state=_opt_arrays(st.opt))


def resume_config(path: str | os.PathLike) -> tuple[Path, Config]:
    """The checkpoint file a ``--resume`` argument names (a file or a run directory) and its config."""
    p = Path(path)
    if p.is_dir():
        p = p / "last.h5"
    _, _, extra = load_checkpoint(p)
    if extra.get("format") != STATE_FORMAT:
        raise ValueError(f"{p}: not a training checkpoint (no training state); cannot resume from it")
    return p, config_from_dict(extra["config"])


def _load_state(path: Path, net: Network) -> _State:
    net2, params, extra = load_checkpoint(path)
    if [layer.size for layer in net2.layers] != [layer.size for layer in net.layers] or net2.n_inputs != net.n_inputs:
        def shape(n: Network) -> str:
            return "-".join(str(x) for x in [n.n_inputs] + [layer.size for layer in n.layers])

        raise ValueError(f"{path}: its network ({shape(net2)}) does not match the configured one ({shape(net)}: "
                         "the data's channels and classes and network.hidden)")
    arrays = load_checkpoint_state(path)
    m = {k[len("adam/m/"):]: v for k, v in arrays.items() if k.startswith("adam/m/")}
    v = {k[len("adam/v/"):]: a for k, a in arrays.items() if k.startswith("adam/v/")}
    s = extra["sums"]
    return _State(
        params, AdamState(int(extra["adam_step"]), m, v), int(extra["epoch"]), int(extra["batch"]),
        (float(s[0]), float(s[1]), tuple(float(x) for x in s[2]), int(s[3])), tuple(extra["metrics"]),
        float(extra["best_score"]), int(extra["best_epoch"]), int(extra["stale"]), float(extra["wall_s"]),
    )


def _score(select: str, record: dict) -> float:
    """The quantity best.h5 maximises: minus the validation loss, or the validation accuracy
    (training figures when there is no validation set)."""
    split = "val" if record["val_loss"] is not None else "train"
    if select == "val_acc":
        return float(record[f"{split}_acc"])
    return -float(record[f"{split}_loss"])


def _write_metrics(path: Path, metrics: tuple[dict, ...] | list[dict]) -> None:
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(json.dumps(m) + "\n" for m in metrics))
    os.replace(tmp, path)


def _append_metrics(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


# ----------------------------------------------------------------------------- the loop
def train(
    cfg: Config,
    out_dir: str | os.PathLike,
    resume: str | os.PathLike | None = None,
    task: Task | None = None,
    log: Callable[[str], None] = print,
    progress: Callable[[int, int, int, float, float], None] | None = None,
) -> TrainResult:
    """Train as ``cfg`` says, writing the run into ``out_dir`` (see the module docstring).

    ``resume``: a checkpoint (or run directory) of this run to continue from. ``task``: the data
    (default: :func:`load_task` of ``cfg.data``). ``progress(epoch, batch, n_batches, loss, acc)``
    is called after every batch.
    """
    out = Path(out_dir)
    tc = cfg.train
    if task is None:
        task = load_task(cfg.data, cfg.augment, tc.seed)
    if task.train is None or len(task.train) == 0:
        raise ValueError("the task has no training samples")
    net = build_network(cfg, task.n_inputs, task.n_classes)
    loss = build_loss(cfg)
    reg = build_regularizer(cfg)
    opt = Adam(lr=tc.lr, beta1=tc.beta1, beta2=tc.beta2, delay_lr=tc.delay_lr, tau_lr=tc.tau_lr)
    schedule = Schedule(warmup_epochs=tc.warmup_epochs, decay=tc.decay, gamma=tc.gamma, epochs=tc.epochs,
                        min_factor=tc.min_factor)
    t_max = task.t_max
    out.mkdir(parents=True, exist_ok=True)
    last, best = out / "last.h5", out / "best.h5"
    metrics_path = out / "metrics.jsonl"
    hidden = list(range(len(net.layers) - 1))
    if resume is not None:
        st = _load_state(Path(resume), net)
        source_best = Path(resume).parent / "best.h5"
        if not best.exists() and source_best.exists():
            shutil.copyfile(source_best, best)  # resuming into a new directory keeps the best so far
        log(f"resuming from {resume}: epoch {st.epoch + 1}, batch {st.batch}")
    else:
        if last.exists() or best.exists():
            raise ValueError(f"{out} already holds a run (last.h5/best.h5); resume it with --resume {out} "
                             "or choose another output directory")
        params = net.init(int(np.random.default_rng((tc.seed, 0)).integers(2**63)))
        st = _State(params, adam_init(net, params), 0, 0, (0.0, 0.0, (0.0,) * len(hidden), 0))
    (out / "config.toml").write_text(to_toml(cfg))
    _write_metrics(metrics_path, st.metrics)

    train_split = task.train
    n = len(train_split)
    n_batches = math.ceil(n / tc.batch_size)
    t_session = time.perf_counter()
    session_epochs: list[float] = []  # epoch times of this session (s), for the whole-run ETA
    stopped_early = False
    silent: str | None = None  # the first batch in which no output unit fired (spiking outputs; reported once)
    silent_reported = False

    def wall() -> float:
        return st.wall + time.perf_counter() - t_session

    try:
        while st.epoch < tc.epochs:
            e = st.epoch
            t_epoch = time.perf_counter()
            order = np.random.default_rng((tc.seed, 1, e)).permutation(n)
            while st.batch < n_batches:
                k = st.batch
                idx = order[k * tc.batch_size:(k + 1) * tc.batch_size]
                labels = train_split.labels[idx]
                batch = _augment(cfg, train_split.batch.select(idx), labels, np.random.default_rng((tc.seed, 2, e, k)))
                try:
                    value, grads, outs = loss_and_grad(net, st.params, batch, labels, loss, t_max, regularizer=reg,
                                                       outputs=True)
                    if not math.isfinite(value):
                        raise ValueError(f"the loss is {value}")
                    factor = lr_factor(schedule, st.opt.step, n_batches)
                    params, opt_state = adam_step(opt, st.opt, net, st.params, grads, factor)
                except ValueError as exc:
                    raise ValueError(f"epoch {e + 1}, batch {k + 1}: {exc} (a lower train.lr may help)") from None
                s_loss, s_corr, s_spk, s_n = st.sums
                correct = float(np.sum(outs.predictions() == labels))
                if silent is None and net.layers[-1].neuron.spiking and not outs.counts[-1].any():
                    silent = f"epoch {e + 1}, batch {k + 1}"  # first_spike: no output spike, no gradient at all
                spk = tuple(s_spk[j] + float(outs.counts[l].sum()) for j, l in enumerate(hidden))
                st = replace(st, params=params, opt=opt_state, batch=k + 1,
                             sums=(s_loss + value * idx.size, s_corr + correct, spk, s_n + idx.size))
                if progress is not None:
                    progress(e, k + 1, n_batches, st.sums[0] / st.sums[3], st.sums[1] / st.sums[3])
            # end of epoch: validate, log, checkpoint
            s_loss, s_corr, s_spk, s_n = st.sums
            record: dict[str, Any] = {
                "kind": "epoch", "epoch": e + 1, "train_loss": s_loss / s_n, "train_acc": s_corr / s_n,
                "val_loss": None, "val_acc": None,
                "lr": opt.lr * lr_factor(schedule, max(st.opt.step - 1, 0), n_batches),
                "rate_hz": [s_spk[j] / (s_n * net.layers[l].size * t_max) for j, l in enumerate(hidden)],
            }
            val = None
            if task.valid is not None and len(task.valid):
                val = evaluate(net, st.params, task.valid, loss, t_max, tc.eval_batch_size)
                record["val_loss"], record["val_acc"] = val.loss, val.accuracy
            score = _score(tc.select, record)
            improved = score > st.best_score
            record["epoch_time_s"] = time.perf_counter() - t_epoch
            record["wall_s"] = wall()
            st = replace(
                st, epoch=e + 1, batch=0, sums=(0.0, 0.0, (0.0,) * len(hidden), 0), metrics=st.metrics + (record,),
                best_score=score if improved else st.best_score, best_epoch=e + 1 if improved else st.best_epoch,
                stale=0 if improved else st.stale + 1,
            )
            _append_metrics(metrics_path, record)
            st_saved = replace(st, wall=wall())
            _save(last, net, cfg, st_saved)
            if improved:
                _save(best, net, cfg, st_saved)
            val_txt = f"  val loss {val.loss:.4f} acc {100 * val.accuracy:.2f} %" if val is not None else ""
            rates = ", ".join(f"{r:.2f}" for r in record["rate_hz"])
            session_epochs.append(record["epoch_time_s"])
            left = tc.epochs - (e + 1)
            timed = session_epochs[1:] if len(session_epochs) > 1 else session_epochs  # first: compilation
            eta = f"; run ETA {format_duration(left * sum(timed) / len(timed))}" if left > 0 else ""
            log(f"epoch {e + 1}/{tc.epochs}  train loss {record['train_loss']:.4f} "
                f"acc {100 * record['train_acc']:.2f} %{val_txt}  rate {rates} Hz  ({record['epoch_time_s']:.1f} s"
                f"{eta})")
            if silent is not None and not silent_reported:
                silent_reported = True
                log(f"warning: no output unit fired in {silent}: without output spikes the {cfg.loss.name} loss has "
                    "no gradient and cannot learn; raise network.readout_mean (or leave it unset) or lower train.lr")
            if tc.patience and st.stale >= tc.patience:
                log(f"early stop: no validation improvement for {tc.patience} epochs (best epoch {st.best_epoch})")
                stopped_early = True
                break
    except KeyboardInterrupt:
        _save(last, net, cfg, replace(st, wall=wall()))
        raise TrainingInterrupted(last) from None

    best_params = load_checkpoint(best)[1] if best.exists() else st.params
    test = None
    if task.test is not None and len(task.test):
        test = evaluate(net, best_params, task.test, loss, t_max, tc.eval_batch_size)
        _append_metrics(metrics_path, {"kind": "test", "loss": test.loss, "acc": test.accuracy,
                                       "rate_hz": test.rate_hz, "checkpoint": str(best),
                                       "best_epoch": st.best_epoch, "wall_s": wall()})
    return TrainResult(out, net, best_params, list(st.metrics), test, best, st.best_epoch, stopped_early,
                       {"wall_s": wall()})

