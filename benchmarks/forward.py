"""Forward-pass speed and memory of exactsnn on an SHD-shaped workload, against a bare Numba loop.

Workload: 700 Poisson input channels (``exactsnn.data.poisson.poisson_batch``, ~10 Hz each, so about
7000 input spikes per 1 s sample), a hidden layer of 256 LIF neurons, a 20-unit LI readout, batch 32.
The input weights are scaled (by a bisection on one gain, unless ``--weight-scale`` is given) so the
recurrent hidden layer fires at ``--target-rate`` Hz, a realistic 5-30 Hz; the measured rate of
every variant is printed.

Variants (each is one kernel path of ``es.simulate``):

* ``recurrent``   recurrent hidden layer, no delays      (dense kernel, recurrence on)
* ``feedforward`` feedforward hidden layer, no delays    (dense kernel, recurrence off)
* ``delays``      recurrent hidden layer, delays=True    (queue kernel)
* ``delays_ff``   feedforward hidden layer, delays=True  (queue kernel, no recurrence)
* ``silent``      feedforward, input weights scaled down so no hidden neuron spikes: the pure
                  cost of integrating the inputs plus the "can it spike?" checks (diagnostic)

Figures (median over ``--repeats`` timed calls, after a warm-up call on a tiny batch that compiles
the kernels; the queue-kernel variants ``delays``/``delays_ff`` use ``--slow-repeats``, default 1,
because one of their calls takes about a minute here):

* samples/s;
* input-layer synaptic updates/s per core: input events x n_hidden / time / threads;
* total synaptic events/s per core: (input events x n_hidden + hidden spikes x (n_hidden if
  recurrent + 20 readout)) / time / threads. ``es.simulate`` does not integrate the LI readout
  (losses and ``Recording.voltage`` evaluate it in closed form on demand), so the readout term is
  counted as work the event stream implies, not work the timed call does;
* hidden spikes per sample and the mean hidden rate;
* ratio of exactsnn's input-layer updates/s to the bare loop's at the same thread count, from
  wall-clock time and from process CPU time (the latter is robust to other load on the machine);
* memory of one extra (untimed) call: ``tracemalloc`` peak = allocations made through Python's
  allocators during the call: NumPy arrays of the driver code AND arrays allocated inside @njit
  kernels (Numba's runtime allocates through PyMem_RawMalloc, which tracemalloc traces), but not
  the interpreter, Numba's compiled code or the OpenMP runtime; and the ``resource.getrusage``
  ru_maxrss delta = growth of the process's peak resident set during the call (the peak mark is
  reset first through /proc/self/clear_refs where the OS allows it, so the delta is this call's
  own peak above the RSS at its start; without the reset it would only show a new process-wide
  peak).

Every timed figure is taken twice: with the chosen number of Numba threads and with one thread
(``numba.set_num_threads(1)``), the true single-core figure.

Baseline: a bare Numba shared-decay loop over the same input events (prange over samples, like
exactsnn): per event one pair of exponentials, then for all n neurons ``V = a V + c I;
I = b I + Wt[unit, j]`` with the weights contiguous per input unit. No threshold, no spikes.

Run: ``PYTHONPATH=. python benchmarks/forward.py [--quick] [--batch 32] [--hidden 256] [--rate 10]
[--t-max 1.0] [--repeats 3] [--threads N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field

import numba
import numpy as np
from numba import njit, prange

import exactsnn as es
from exactsnn.data.poisson import poisson_batch

N_INPUTS = 700
N_READOUT = 20
VARIANTS = ("recurrent", "feedforward", "delays", "delays_ff", "silent")
# Input weights: N(gain * MEAN_REL / sqrt(n_in), (gain / sqrt(n_in))^2); the gain is calibrated.
MEAN_REL = 0.5
SILENT_GAIN = 0.05  # gain of the "silent" diagnostic variant (far below threshold)


# ----------------------------------------------------------------------------- baseline
@njit(parallel=True, cache=False)
def bare_shared_decay(times, units, offsets, Wt, tau_mem, tau_syn):
    """Per sample: V, I of all neurons brought to each input event with shared decay factors."""
    n_samples = offsets.size - 1
    n = Wt.shape[1]
    k = tau_syn / (tau_syn - tau_mem)
    out = np.zeros(n_samples)
    for b in prange(n_samples):
        V = np.zeros(n)
        I = np.zeros(n)
        t_last = 0.0
        for e in range(offsets[b], offsets[b + 1]):
            dt = times[e] - t_last
            t_last = times[e]
            a = math.exp(-dt / tau_mem)
            d = math.exp(-dt / tau_syn)
            c = k * (d - a)
            u = units[e]
            for j in range(n):
                V[j] = a * V[j] + c * I[j]
                I[j] = d * I[j] + Wt[u, j]
        s = 0.0
        for j in range(n):
            s += V[j] + I[j]
        out[b] = s
    return out


# ----------------------------------------------------------------------------- measurement helpers
def _clear_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM, which ru_maxrss reads) to the current RSS."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_bytes() -> int:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(r) if sys.platform == "darwin" else int(r) * 1024  # Linux reports KiB


def _time_calls(fn, repeats: int) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU seconds (all threads) of ``repeats`` calls."""
    wall, cpu = [], []
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def _memory(fn) -> tuple[float, float, bool]:
    """(tracemalloc peak MiB, ru_maxrss delta MiB, whether the peak mark was reset) of one call."""
    reset = _clear_peak_rss()
    rss0 = _maxrss_bytes()
    tracemalloc.start()
    try:
        fn()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss1 = _maxrss_bytes()
    return peak / 2**20, (rss1 - rss0) / 2**20, reset


@dataclass
class Row:
    name: str
    threads: int
    seconds: list[float]
    cpu_seconds: list[float]
    batch: int
    input_events: int
    n_hidden: int
    recurrent: bool
    hidden_spikes: int = 0
    t_max: float = 1.0
    baseline: bool = False
    tracemalloc_mib: float | None = None
    maxrss_delta_mib: float | None = None
    extra: dict = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def input_updates_per_cpu_s(self) -> float:
        return self.input_events * self.n_hidden / self.cpu_median

    @property
    def samples_per_s(self) -> float:
        return self.batch / self.median

    @property
    def input_updates_per_core(self) -> float:
        return self.input_events * self.n_hidden / self.median / self.threads

    @property
    def synaptic_events_per_core(self) -> float:
        fanout = (self.n_hidden if self.recurrent else 0) + N_READOUT
        total = self.input_events * self.n_hidden + self.hidden_spikes * fanout
        return total / self.median / self.threads

    @property
    def spikes_per_sample(self) -> float:
        return self.hidden_spikes / self.batch

    @property
    def rate_hz(self) -> float:
        return self.hidden_spikes / (self.batch * self.n_hidden * self.t_max)

    @property
    def cpu_median(self) -> float:
        return statistics.median(self.cpu_seconds)

    def as_dict(self) -> dict:
        d = {
            "variant": self.name,
            "threads": self.threads,
            "seconds": self.seconds,
            "median_s": self.median,
            "cpu_seconds": self.cpu_seconds,
            "input_updates_per_cpu_s": self.input_updates_per_cpu_s,
            "samples_per_s": self.samples_per_s,
            "input_updates_per_s_per_core": self.input_updates_per_core,
            "input_events": self.input_events,
        }
        if not self.baseline:
            d.update(
                synaptic_events_per_s_per_core=self.synaptic_events_per_core,
                hidden_spikes=self.hidden_spikes,
                hidden_spikes_per_sample=self.spikes_per_sample,
                hidden_rate_hz=self.rate_hz,
                tracemalloc_peak_mib=self.tracemalloc_mib,
                maxrss_delta_mib=self.maxrss_delta_mib,
            )
        d.update(self.extra)
        return d


# ----------------------------------------------------------------------------- networks
NEURONS = {"lif": es.LIF, "adlif": es.AdLIF}


def make_net(variant: str, n_hidden: int, gain: float, neuron: str = "lif") -> tuple[es.Network, es.Params]:
    recurrent = variant in ("recurrent", "delays")
    delays = variant in ("delays", "delays_ff")
    g = SILENT_GAIN if variant == "silent" else gain
    std = g / math.sqrt(N_INPUTS)
    hidden = es.Layer(n_hidden, NEURONS[neuron](), recurrent=recurrent, delays=delays,
                      weight_mean=MEAN_REL * std, weight_std=std)
    net = es.Network(N_INPUTS, [hidden, es.Layer(N_READOUT, es.LI())])
    return net, net.init(seed=0)


def hidden_rate(net: es.Network, params: es.Params, batch: es.SpikeBatch, t_max: float) -> float:
    rec = es.simulate(net, params, batch, t_max=t_max)
    return rec.spikes[0].n_events / (len(batch) * net.layers[0].size * t_max)


def calibrate_gain(
    n_hidden: int, batch: es.SpikeBatch, t_max: float, target: float, neuron: str = "lif"
) -> tuple[float, float]:
    """Gain of the input weights at which the recurrent hidden layer fires at ~target Hz."""
    lo, hi = None, None
    g = 4.0
    rate = float("nan")
    for _ in range(12):  # bracket by doubling / halving
        rate = hidden_rate(*make_net("recurrent", n_hidden, g, neuron), batch, t_max)
        if rate < target:
            lo = g
            if hi is not None:
                break
            g *= 2.0
        else:
            hi = g
            if lo is not None:
                break
            g /= 2.0
        if lo is not None and hi is not None:
            break
    if lo is None or hi is None:
        return g, rate
    for _ in range(14):  # bisect in log(gain)
        g = math.sqrt(lo * hi)
        rate = hidden_rate(*make_net("recurrent", n_hidden, g, neuron), batch, t_max)
        if abs(rate - target) <= 0.1 * target:
            break
        if rate < target:
            lo = g
        else:
            hi = g
    return g, rate


# ----------------------------------------------------------------------------- runs
def run_variant(variant, n_hidden, gain, batch, warm, t_max, threads_list, repeats, measure_memory=True,
                neuron="lif"):
    net, params = make_net(variant, n_hidden, gain, neuron)
    n_events = int(batch.n_events)
    rows = []
    for nt in threads_list:
        numba.set_num_threads(nt)
        es.simulate(net, params, warm, t_max=t_max)  # warm-up: compiles, starts the thread pool
        last = []

        def call(net=net, params=params, last=last):
            last[:] = [es.simulate(net, params, batch, t_max=t_max)]

        secs, cpu = _time_calls(call, repeats)
        spikes = int(last[0].spikes[0].n_events)
        rows.append(Row(variant, nt, secs, cpu, len(batch), n_events, n_hidden, net.layers[0].recurrent,
                        hidden_spikes=spikes, t_max=t_max))
    if measure_memory:
        numba.set_num_threads(threads_list[0])
        tm, rss, reset = _memory(lambda: es.simulate(net, params, batch, t_max=t_max))
        for r in rows:
            r.tracemalloc_mib, r.maxrss_delta_mib = tm, rss
            r.extra["peak_rss_reset"] = reset
    return rows


def run_baseline(n_hidden, batch, threads_list, repeats, tau_mem=20e-3, tau_syn=5e-3):
    rng = np.random.default_rng(1)
    Wt = np.ascontiguousarray(rng.normal(0.0, 1.0 / math.sqrt(N_INPUTS), size=(N_INPUTS, n_hidden)))
    times = np.ascontiguousarray(batch.times)
    units = np.ascontiguousarray(batch.units)
    offsets = np.ascontiguousarray(batch.offsets)
    rows = []
    for nt in threads_list:
        numba.set_num_threads(nt)
        bare_shared_decay(times, units, offsets, Wt, tau_mem, tau_syn)  # compile / warm
        secs, cpu = _time_calls(lambda: bare_shared_decay(times, units, offsets, Wt, tau_mem, tau_syn), repeats)
        rows.append(Row("bare loop", nt, secs, cpu, len(batch), int(batch.n_events), n_hidden, False,
                        baseline=True))
    return rows


def machine_info(load_before: float) -> dict:
    """The machine, library versions and the 1-minute load average before and now (for the JSON report)."""
    return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(), "numba": numba.__version__,
            "numpy": np.__version__, "threading_layer": numba.threading_layer(),
            "loadavg_1min_before_after": [load_before, os.getloadavg()[0]]}


def _fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def print_table(rows: list[Row], base: dict[int, Row]) -> None:
    head = (f"{'variant':<12} {'thr':>3} {'median s':>9} {'samples/s':>10} {'in-upd/s/core':>14} "
            f"{'syn-ev/s/core':>14} {'vs bare':>8} {'in-upd/cpu-s':>13} {'vs bare':>8} "
            f"{'spk/sample':>11} {'rate Hz':>8} "
            f"{'tracemalloc':>11} {'maxrss d':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        b = base.get(r.threads)
        ratio = r.input_updates_per_core / b.input_updates_per_core if (b and not r.baseline) else None
        ratio_cpu = r.input_updates_per_cpu_s / b.input_updates_per_cpu_s if (b and not r.baseline) else None
        print(f"{r.name:<12} {r.threads:>3} {r.median:>9.4f} {r.samples_per_s:>10.1f} "
              f"{r.input_updates_per_core:>14.3e} "
              f"{'-' if r.baseline else format(r.synaptic_events_per_core, '.3e'):>14} "
              f"{_fmt(ratio, '.3f'):>8} {r.input_updates_per_cpu_s:>13.3e} {_fmt(ratio_cpu, '.3f'):>8} "
              f"{'-' if r.baseline else format(r.spikes_per_sample, '.0f'):>11} "
              f"{'-' if r.baseline else format(r.rate_hz, '.1f'):>8} "
              f"{_fmt(r.tracemalloc_mib, '.1f') + ' MiB' if r.tracemalloc_mib is not None else '-':>11} "
              f"{_fmt(r.maxrss_delta_mib, '.1f') + ' MiB' if r.maxrss_delta_mib is not None else '-':>9}")


def resolve_gain(a: argparse.Namespace, batch: es.SpikeBatch) -> tuple[float, float]:
    """Input-weight gain (--weight-scale, or calibrated to --target-rate) and the weight std it gives."""
    t0 = time.perf_counter()
    if a.weight_scale is None:
        cal = batch.select(np.arange(min(len(batch), 4)))
        gain, cal_rate = calibrate_gain(a.hidden, cal, a.t_max, a.target_rate, a.neuron)
        print(f"calibrated input-weight gain {gain:.4g} -> {cal_rate:.1f} Hz on {len(cal)} samples "
              f"(target {a.target_rate:g} Hz; includes compilation: {time.perf_counter() - t0:.1f} s)")
    else:
        gain = a.weight_scale
    return gain, gain / math.sqrt(N_INPUTS)


def workload_parser(doc: str, variants: tuple[str, ...], per_call: str, slow: str) -> argparse.ArgumentParser:
    """The command-line options shared by the benchmark scripts (workload, repeats, threads, output)."""
    p = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="small run (batch 4, 0.25 s, 2 repeats), < 1 min")
    p.add_argument("--batch", type=int, default=32, help="samples per batch")
    p.add_argument("--hidden", type=int, default=256, help="hidden neurons")
    p.add_argument("--neuron", choices=sorted(NEURONS), default="lif", help="hidden neuron model (adlif: defaults "
                   "tau_w 100 ms, a 0.5, b 0.2)")
    p.add_argument("--rate", type=float, default=10.0, help="Poisson rate per input channel, Hz")
    p.add_argument("--t-max", type=float, default=1.0, help="sample duration, s")
    p.add_argument("--repeats", type=int, default=3, help=f"{per_call} per figure (median reported)")
    p.add_argument("--slow-repeats", type=int, default=1, help=f"{per_call} for {slow} (at most --repeats)")
    p.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    p.add_argument("--no-single", action="store_true", help="skip the 1-thread figures")
    p.add_argument("--variants", default=",".join(variants), help=f"comma list from {','.join(variants)}")
    p.add_argument("--target-rate", type=float, default=15.0, help="hidden rate (Hz) the gain is tuned to")
    p.add_argument("--weight-scale", type=float, default=None, help="input weight gain (skips calibration)")
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson inputs (and labels)")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    return p


def parse_workload(
    p: argparse.ArgumentParser, variants: tuple[str, ...], argv: list[str] | None
) -> tuple[argparse.Namespace, list[str], list[int]]:
    """Parse and check the options; returns (args, chosen variants, thread counts to run)."""
    a = p.parse_args(argv)
    if a.quick:
        a.batch, a.t_max, a.repeats = min(a.batch, 4), min(a.t_max, 0.25), min(a.repeats, 2)
    chosen = [v.strip() for v in a.variants.split(",") if v.strip()]
    bad = [v for v in chosen if v not in variants]
    if bad:
        p.error(f"unknown variant(s) {bad}; choose from {variants}")
    max_threads = numba.config.NUMBA_NUM_THREADS
    nt = max_threads if a.threads is None else a.threads
    if not 1 <= nt <= max_threads:
        p.error(f"--threads must be in [1, {max_threads}] (NUMBA_NUM_THREADS)")
    return a, chosen, [nt] if (a.no_single or nt == 1) else [nt, 1]


def main(argv: list[str] | None = None) -> int:
    p = workload_parser(__doc__, VARIANTS, "timed calls", "the queue-kernel variants delays, delays_ff")
    a, variants, threads_list = parse_workload(p, VARIANTS, argv)

    batch = poisson_batch(a.batch, N_INPUTS, a.rate, a.t_max, seed=a.seed)
    warm = poisson_batch(1, N_INPUTS, a.rate, min(a.t_max, 0.02), seed=a.seed + 1)
    counts = batch.counts()
    print(f"exactsnn forward benchmark  (python {platform.python_version()}, numba {numba.__version__}, "
          f"numpy {np.__version__})")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs; "
          f"numba threads: {threads_list}")
    print(f"workload: batch {a.batch}, {N_INPUTS} inputs at {a.rate:g} Hz, t_max {a.t_max:g} s -> "
          f"{counts.mean():.0f} input spikes/sample (min {counts.min()}, max {counts.max()}); "
          f"hidden {a.hidden} {a.neuron}, readout {N_READOUT} LI")

    load0 = os.getloadavg()
    gain, std = resolve_gain(a, batch)
    print(f"input weights ~ N({MEAN_REL * std:.4g}, {std:.4g}^2); recurrent N(0, (0.5/sqrt(n))^2); "
          f"delays U(0, 10 ms) where on")

    base_rows = run_baseline(a.hidden, batch, threads_list, a.repeats)
    base = {r.threads: r for r in base_rows}
    rows: list[Row] = []
    for v in variants:
        t1 = time.perf_counter()
        reps = min(a.repeats, a.slow_repeats) if v in ("delays", "delays_ff") else a.repeats
        rows += run_variant(v, a.hidden, gain, batch, warm, a.t_max, threads_list, max(reps, 1), neuron=a.neuron)
        print(f"  {v}: done in {time.perf_counter() - t1:.1f} s", flush=True)
    print(f"numba threading layer: {numba.threading_layer()}")
    print()
    all_rows = sorted(rows + base_rows, key=lambda r: -r.threads)
    print_table(all_rows, base)
    print()
    print("in-upd/s/core  = input events x n_hidden / median time / threads")
    print("syn-ev/s/core  = (input events x n_hidden + hidden spikes x (n_hidden if recurrent + 20)) / time"
          " / threads; the readout term is implied work: es.simulate does not integrate the LI readout")
    print("vs bare        = in-upd/s/core relative to the bare shared-decay Numba loop at the same threads")
    print("in-upd/cpu-s   = input events x n_hidden / median process CPU time (all threads; robust to other")
    print("                 load on the machine, but includes OpenMP spin-waiting when threads > 1);")
    print("                 the second 'vs bare' is the same ratio on this CPU-time basis")
    print("tracemalloc    = peak of allocations through Python's allocators during one call: NumPy arrays "
          "and arrays allocated inside @njit kernels (Numba allocates via PyMem_RawMalloc)")
    print("maxrss d       = growth of ru_maxrss (peak resident set) during one call"
          + (", peak mark reset first" if rows and rows[0].extra.get("peak_rss_reset") else
             " (peak mark could not be reset: 0 means no new process-wide peak)"))
    machine = machine_info(load0[0])
    print(f"load average before/after: {load0[0]:.2f} / {machine['loadavg_1min_before_after'][1]:.2f} (1 min) "
          f"on {os.cpu_count()} CPUs")
    if a.json:
        doc = {
            "machine": machine,
            "workload": {"batch": a.batch, "n_inputs": N_INPUTS, "rate_hz": a.rate, "t_max": a.t_max,
                         "hidden": a.hidden, "readout": N_READOUT, "repeats": a.repeats,
                         "slow_repeats": a.slow_repeats, "seed": a.seed,
                         "input_events": int(batch.n_events), "input_weight_gain": gain,
                         "input_weight_mean": MEAN_REL * std, "input_weight_std": std},
            "baseline": [r.as_dict() for r in base_rows],
            "variants": [
                r.as_dict() | {
                    "vs_bare": r.input_updates_per_core / base[r.threads].input_updates_per_core,
                    "vs_bare_cpu": r.input_updates_per_cpu_s / base[r.threads].input_updates_per_cpu_s,
                }
                for r in rows
            ],
        }
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
