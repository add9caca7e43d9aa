"""Backward-pass (EventProp) speed and memory of exactsnn on the SHD-shaped workload of ``forward.py``.

Workload (as in ``forward.py``, whose helpers this script imports): 700 Poisson input channels at
``--rate`` Hz (about 7000 input spikes per 1 s sample), a hidden layer of 256 LIF neurons, a 20-unit
LI readout, batch 32, input weights scaled by a gain calibrated (bisection) so the recurrent hidden
layer fires at ``--target-rate`` Hz. Labels are random integers in [0, 20).

Variants:

* ``recurrent``   recurrent hidden layer, no delays   (dense forward and backward kernels)
* ``feedforward`` feedforward hidden layer, no delays (dense kernels, recurrence off)
* ``delays``      recurrent hidden layer, delays=True (queue kernels; slow: ``--slow-repeats`` calls)

For each variant and thread count, in the same process and on the same batch:

* ``fwd``: wall time of ``es.simulate(net, params, batch, t_max)``;
* ``l&g``: wall time of ``es.loss_and_grad(net, params, batch, labels, loss=es.losses.SumExp(),
  t_max)``, i.e. forward + loss + backward;
* ``bwd`` = l&g - fwd (medians), and the ratio bwd / fwd (target: at most 2);
* synaptic events per second per core of the forward and of the backward: (input events x n_hidden
  + hidden spikes x (n_hidden if recurrent + 20 readout units)) / seconds / threads;
* a breakdown of the l&g calls, from timing wrappers put around what ``exactsnn.grad`` calls
  (``simulate``, ``_readout_backward``, ``dense_backward_batch`` / ``queue_backward_batch``, and the
  loss's ``readout`` / ``integrals`` methods): the forward inside l&g; the readout part (loss value and adjoints,
  readout gradients, dL/dt of the hidden spikes), of which the loss's own methods; the hidden
  layer's reverse-replay kernel; what is left (checks, per-thread gradient buffers, their sums);
* memory of one extra call of each: ``tracemalloc`` peak and ``ru_maxrss`` growth (peak mark reset
  first through /proc/self/clear_refs), as in ``forward.py``.

Timed calls alternate (fwd, l&g, fwd, l&g, ...) so that slow drifts of the machine's load hit both.
Every figure is taken with the chosen number of Numba threads and again with one thread.

Run: ``python benchmarks/backward.py [--quick] [--batch 32] [--hidden 256] [--rate 10] [--t-max 1.0]
[--repeats 3] [--slow-repeats 1] [--threads N] [--variants recurrent,feedforward,delays] [--json PATH]
[--png PATH]``. With ``--png`` the bare shared-decay loop of ``forward.py`` is also timed and drawn as the
reference line of the throughput chart.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numba
import numpy as np

import exactsnn as es
import exactsnn.grad as es_grad
from exactsnn.data.poisson import poisson_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for forward.py, this script's sibling
from forward import (  # noqa: E402
    MEAN_REL,
    N_INPUTS,
    N_READOUT,
    _memory,
    machine_info,
    make_net,
    parse_workload,
    resolve_gain,
    run_baseline,
    workload_parser,
)

VARIANTS = ("recurrent", "feedforward", "delays")
SLOW = ("delays",)
PARTS = ("fwd", "readout", "loss", "kernel", "other")


def _sum_exp_loss() -> object:
    try:
        from exactsnn.losses import SumExp
    except ImportError as exc:  # the losses module is not there yet
        raise SystemExit(f"backward.py needs exactsnn.losses.SumExp: {exc}") from exc
    return SumExp()


# ----------------------------------------------------------------------------- breakdown
LOSS_METHODS = ("readout", "integrals")  # what loss_and_grad may call on an LI-readout loss


class _TimedLoss:
    """Delegates to ``loss``; adds the wall time of its ``readout``/``integrals`` calls into ``acc['loss']``."""

    def __init__(self, loss, acc: dict):
        self._loss = loss
        self._acc = acc

    def __getattr__(self, name: str):
        attr = getattr(self._loss, name)
        if name not in LOSS_METHODS or not callable(attr):
            return attr

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self._acc["loss"] += time.perf_counter() - t0
        return timed


# functions of exactsnn.grad whose time is reported (wrapped only where the module has them)
GRAD_FUNCTIONS = {"simulate": "fwd", "_readout_backward": "readout", "dense_backward_batch": "kernel",
                  "queue_backward_batch": "kernel"}


@contextlib.contextmanager
def _timed_grad_module(acc: dict):
    """Wrap the functions ``exactsnn.grad.loss_and_grad`` looks up in its module (GRAD_FUNCTIONS), adding
    their wall time into ``acc`` (a defaultdict(float)); restore them on exit."""
    saved = {n: getattr(es_grad, n) for n in GRAD_FUNCTIONS if hasattr(es_grad, n)}

    def wrap(fn, key):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                acc[key] += time.perf_counter() - t0
        return timed

    try:
        for n, fn in saved.items():
            setattr(es_grad, n, wrap(fn, GRAD_FUNCTIONS[n]))
        yield
    finally:
        for n, fn in saved.items():
            setattr(es_grad, n, fn)


def _split(acc: dict, total: float) -> dict:
    """Per-part seconds of one l&g call from the wrapper sums (``loss`` is part of ``readout``)."""
    parts = {k: acc[k] for k in ("fwd", "readout", "loss", "kernel")}
    parts["other"] = total - parts["fwd"] - parts["readout"] - parts["kernel"]
    return parts


# ----------------------------------------------------------------------------- rows
@dataclass
class Row:
    name: str
    threads: int
    fwd_s: list[float]
    lag_s: list[float]
    fwd_cpu_s: list[float]
    lag_cpu_s: list[float]
    parts: list[dict]
    batch: int
    input_events: int
    hidden_spikes: int
    n_hidden: int
    t_max: float
    loss: float
    mem: dict = field(default_factory=dict)

    @property
    def fwd(self) -> float:
        return statistics.median(self.fwd_s)

    @property
    def lag(self) -> float:
        return statistics.median(self.lag_s)

    @property
    def bwd(self) -> float:
        return self.lag - self.fwd

    @property
    def ratio(self) -> float:
        return self.bwd / self.fwd

    @property
    def cpu_ratio(self) -> float:
        f = statistics.median(self.fwd_cpu_s)
        return (statistics.median(self.lag_cpu_s) - f) / f

    def part(self, key: str) -> float:
        return statistics.median(p[key] for p in self.parts)

    @property
    def syn_events(self) -> int:
        """Synaptic events of the batch: input events x n_hidden + hidden spikes x (recurrent fan-out + readout)."""
        fan_out = (self.n_hidden if self.name in ("recurrent", "delays") else 0) + N_READOUT
        return self.input_events * self.n_hidden + self.hidden_spikes * fan_out

    def events_per_core(self, seconds: float) -> float:
        return self.syn_events / seconds / self.threads

    @property
    def rate_hz(self) -> float:
        return self.hidden_spikes / (self.batch * self.n_hidden * self.t_max)

    def as_dict(self) -> dict:
        return {
            "variant": self.name, "threads": self.threads,
            "forward_s": self.fwd_s, "loss_and_grad_s": self.lag_s,
            "forward_cpu_s": self.fwd_cpu_s, "loss_and_grad_cpu_s": self.lag_cpu_s,
            "forward_median_s": self.fwd, "loss_and_grad_median_s": self.lag,
            "backward_s": self.bwd, "backward_over_forward": self.ratio,
            "backward_over_forward_cpu": self.cpu_ratio,
            "loss_and_grad_parts_median_s": {k: self.part(k) for k in PARTS},
            "loss_and_grad_parts_s": self.parts,
            "input_events": self.input_events, "hidden_spikes": self.hidden_spikes,
            "hidden_rate_hz": self.rate_hz, "loss": self.loss, "synaptic_events": self.syn_events,
            "forward_syn_events_per_s_per_core": self.events_per_core(self.fwd),
            "backward_syn_events_per_s_per_core": self.events_per_core(self.bwd),
            "memory": self.mem,
        }


def _timed(fn) -> tuple[float, float, object]:
    c0 = time.process_time()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def run_variant(variant, n_hidden, gain, batch, labels, warm, warm_labels, t_max, threads_list, repeats,
                measure_memory=True, neuron="lif"):
    net, params = make_net(variant, n_hidden, gain, neuron)
    loss = _sum_exp_loss()
    rows = []
    for nt in threads_list:
        numba.set_num_threads(nt)
        # warm-up on a tiny batch: compiles (or loads from cache) every kernel, starts the thread pool
        es.simulate(net, params, warm, t_max=t_max)
        es.loss_and_grad(net, params, warm, warm_labels, loss=loss, t_max=t_max)
        fwd_s, fwd_c, lag_s, lag_c, parts = [], [], [], [], []
        spikes, value = 0, float("nan")
        for _ in range(repeats):
            w, c, rec = _timed(lambda: es.simulate(net, params, batch, t_max=t_max))
            fwd_s.append(w)
            fwd_c.append(c)
            spikes = int(rec.spikes[0].n_events)
            del rec
            acc = defaultdict(float)
            tl = _TimedLoss(loss, acc)
            with _timed_grad_module(acc):
                w, c, out = _timed(lambda tl=tl: es.loss_and_grad(net, params, batch, labels, loss=tl, t_max=t_max))
            lag_s.append(w)
            lag_c.append(c)
            parts.append(_split(acc, w))
            value = float(out[0])
            del out
        row = Row(variant, nt, fwd_s, lag_s, fwd_c, lag_c, parts, len(batch), int(batch.n_events), spikes,
                  n_hidden, t_max, value)
        if measure_memory:
            tm_f, rss_f, reset = _memory(lambda: es.simulate(net, params, batch, t_max=t_max))
            tm_b, rss_b, _ = _memory(lambda: es.loss_and_grad(net, params, batch, labels, loss=loss, t_max=t_max))
            row.mem = {"forward_tracemalloc_mib": tm_f, "forward_maxrss_delta_mib": rss_f,
                       "loss_and_grad_tracemalloc_mib": tm_b, "loss_and_grad_maxrss_delta_mib": rss_b,
                       "peak_rss_reset": reset}
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- output
def _mib(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def print_table(rows: list[Row]) -> None:
    head = (f"{'variant':<12} {'thr':>3} {'fwd s':>8} {'l&g s':>8} {'bwd s':>8} {'bwd/fwd':>8} {'(cpu)':>6} "
            f"{'rate Hz':>7} {'fwd ev/s/c':>10} {'bwd ev/s/c':>10} | "
            f"{'readout':>7} {'(loss)':>7} {'kernel':>7} {'other':>7} | "
            f"{'fwd tm':>7} {'l&g tm':>7} {'fwd rss':>7} {'l&g rss':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        m = r.mem
        print(f"{r.name:<12} {r.threads:>3} {r.fwd:>8.3f} {r.lag:>8.3f} {r.bwd:>8.3f} {r.ratio:>8.2f} "
              f"{r.cpu_ratio:>6.2f} {r.rate_hz:>7.1f} {r.events_per_core(r.fwd):>10.3e} "
              f"{r.events_per_core(r.bwd):>10.3e} | {r.part('readout'):>7.3f} {r.part('loss'):>7.3f} "
              f"{r.part('kernel'):>7.3f} {r.part('other'):>7.3f} | "
              f"{_mib(m.get('forward_tracemalloc_mib')):>7} {_mib(m.get('loss_and_grad_tracemalloc_mib')):>7} "
              f"{_mib(m.get('forward_maxrss_delta_mib')):>7} {_mib(m.get('loss_and_grad_maxrss_delta_mib')):>7}")


def write_png(rows: list[Row], bare: dict[int, float], path: str) -> None:
    """Bar chart: forward and backward synaptic events/s per core per variant and thread count, with
    the bare shared-decay loop (input-layer updates/s per core) and the 1e9 target as lines."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG (pip install -e '.[bench]')")
        return
    labels = [f"{r.name}\n{r.threads} thr" for r in rows]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(rows), 4.2))
    ax.bar(x - 0.2, [r.events_per_core(r.fwd) for r in rows], 0.4, label="forward")
    ax.bar(x + 0.2, [r.events_per_core(r.bwd) for r in rows], 0.4, label="backward")
    for i, (nt, v) in enumerate(sorted(bare.items())):
        ax.axhline(v, color="0.4", ls=":" if i else "--", lw=1, label=f"bare shared-decay loop, {nt} thr")
    ax.axhline(1e9, color="tab:red", lw=1, label="target 1e9 /s/core")
    ax.set_yscale("log")
    ax.set_ylim(top=6 * max(max(bare.values(), default=1e9), 1e9))
    ax.set_xticks(x, labels)
    ax.set_ylabel("synaptic events / s / core")
    ax.set_title("exactsnn throughput, SHD-shaped workload")
    ax.legend(fontsize=7, loc="upper center", ncol=2)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    p = workload_parser(__doc__, VARIANTS, "timed (fwd, l&g) pairs", "the queue-kernel variant delays")
    p.add_argument("--no-memory", action="store_true", help="skip the (untimed) memory calls")
    p.add_argument("--png", default=None, help="write a throughput bar chart here (with the bare loop), "
                   "e.g. benchmarks/results/throughput.png")
    a, variants, threads_list = parse_workload(p, VARIANTS, argv)
    _sum_exp_loss()  # fail early if the losses module is missing

    batch = poisson_batch(a.batch, N_INPUTS, a.rate, a.t_max, seed=a.seed)
    warm = poisson_batch(2, N_INPUTS, a.rate, min(a.t_max, 0.02), seed=a.seed + 1)
    rng = np.random.default_rng(a.seed)
    labels = rng.integers(0, N_READOUT, size=len(batch))
    warm_labels = rng.integers(0, N_READOUT, size=len(warm))
    counts = batch.counts()
    print(f"exactsnn backward benchmark  (python {platform.python_version()}, numba {numba.__version__}, "
          f"numpy {np.__version__})")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; "
          f"numba threads: {threads_list}")
    print(f"workload: batch {a.batch}, {N_INPUTS} inputs at {a.rate:g} Hz, t_max {a.t_max:g} s -> "
          f"{counts.mean():.0f} input spikes/sample; hidden {a.hidden} {a.neuron}, readout {N_READOUT} LI; "
          f"loss SumExp, random labels in [0, {N_READOUT})")

    load0 = os.getloadavg()
    gain, std = resolve_gain(a, batch)
    print(f"input weights ~ N({MEAN_REL * std:.4g}, {std:.4g}^2); delays U(0, 10 ms) where on")

    rows: list[Row] = []
    for v in variants:
        t1 = time.perf_counter()
        reps = min(a.repeats, a.slow_repeats) if v in SLOW else a.repeats
        rows += run_variant(v, a.hidden, gain, batch, labels, warm, warm_labels, a.t_max, threads_list,
                            max(reps, 1), measure_memory=not a.no_memory, neuron=a.neuron)
        print(f"  {v}: done in {time.perf_counter() - t1:.1f} s", flush=True)
    print(f"numba threading layer: {numba.threading_layer()}")
    print()
    rows.sort(key=lambda r: -r.threads)
    print_table(rows)
    print()
    print("fwd s     = median wall time of es.simulate on the batch; l&g s = of es.loss_and_grad (SumExp)")
    print("bwd s     = l&g s - fwd s; bwd/fwd = bwd s / fwd s (target <= 2); (cpu) = same ratio on process")
    print("            CPU time (all threads; robust to other load, includes OpenMP spin-waiting)")
    print("ev/s/c    = synaptic events (input events x hidden + hidden spikes x (recurrent fan-out + 20 readout))")
    print("            per second per core, of the forward (fwd s) and of the backward alone (bwd s)")
    print("breakdown = median seconds inside one l&g call: readout = _readout_backward (loss value, its")
    print("            adjoints, readout gradients, dL/dt of the hidden spikes), (loss) = the part of it spent")
    print("            in the loss's own readout/integrals methods, kernel = dense_/queue_backward_batch")
    print("            (hidden layer's reverse replay), other = l&g - its forward - readout - kernel")
    print("            (checks, buffers, sums)")
    print("tm        = tracemalloc peak (MiB) of one call; rss = ru_maxrss growth (MiB) during one call"
          + (", peak mark reset first" if rows and rows[0].mem.get("peak_rss_reset") else ""))
    machine = machine_info(load0[0])
    print(f"load average before/after: {load0[0]:.2f} / {machine['loadavg_1min_before_after'][1]:.2f} (1 min) "
          f"on {os.cpu_count()} CPUs")
    bare: dict[int, float] = {}
    if a.png:
        bare = {r.threads: r.input_updates_per_core for r in run_baseline(a.hidden, batch, threads_list, a.repeats)}
        print("bare shared-decay loop: " + ", ".join(f"{v:.3e} updates/s/core at {nt} thr" for nt, v in bare.items()))
        write_png(rows, bare, a.png)
    if a.json:
        doc = {
            "machine": machine,
            "workload": {"batch": a.batch, "n_inputs": N_INPUTS, "rate_hz": a.rate, "t_max": a.t_max,
                         "hidden": a.hidden, "readout": N_READOUT, "repeats": a.repeats,
                         "slow_repeats": a.slow_repeats, "seed": a.seed, "loss": "SumExp",
                         "input_events": int(batch.n_events), "input_weight_gain": gain,
                         "input_weight_mean": MEAN_REL * std, "input_weight_std": std},
            "variants": [r.as_dict() for r in rows],
            "bare_loop_updates_per_s_per_core": bare,
        }
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
