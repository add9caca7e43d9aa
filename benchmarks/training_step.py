"""One training step (forward + backward + Adam) of exactsnn against snnTorch BPTT: time and peak memory.

Workload: the SHD-shaped network of ``forward.py``: 700 Poisson input channels at ``--rate`` Hz
(``poisson_batch``; ~7000 input spikes per 1 s sample at 10 Hz), a recurrent hidden layer of 256 LIF
neurons (tau_mem 20 ms, tau_syn 5 ms), a 20-unit LI readout, batch 32, random labels in [0, 20).
The input-weight gain is calibrated (bisection on 4 samples) so exactsnn's hidden layer fires at
``--target-rate`` Hz (15), unless ``--weight-scale`` gives it (1.542 is the calibrated value for 700
inputs at 10 Hz and 256 hidden neurons).

* exactsnn: ``es.loss_and_grad(..., loss=es.losses.SumExp())`` (exact event-driven forward pass and
  EventProp backward) + ``exactsnn.optim.adam_step``; Numba threads = ``--threads``.
* snnTorch: the same network at dt = 1 ms (``Linear`` -> ``snn.RSynaptic`` with all-to-all recurrence
  -> ``Linear`` -> ``snn.Synaptic`` that never fires; exactsnn's weights rescaled to equal PSP areas),
  binned 0/1 input (T, B, 700), cross-entropy on the time-averaged readout membrane, backpropagation
  through time, ``torch.optim.Adam``; ``torch.set_num_threads(--threads)``. Details in ``peers.py``.

Each framework runs in its own child process, one after the other (``peers.spawn``): build model and
data, one warm-up step on a 1-sample 20 ms batch, then ``--repeats`` timed full-size steps.

Columns:

* ``step s``: median wall time of one training step (all repeats are in the JSON); ``cpu s``: median
  process CPU time of one step (all threads; robust to other load on the machine, but includes OpenMP
  spin-waiting);
* ``peak MiB``: peak resident set during the timed steps minus the resident set before them (VmHWM
  reset through /proc/self/clear_refs after the warm-up, read from /proc/self/status): the memory the
  steps need on top of the model, the optimiser state and the input data;
* ``tracemalloc``: exactsnn only, ``tracemalloc`` peak of one extra step (NumPy arrays and the arrays
  that Numba kernels allocate, which go through Python's allocator);
* ``input MiB``: size of the batch as the framework holds it (SpikeBatch arrays / dense float32 tensor);
* ``hidden Hz``, ``spk/sample``: hidden-layer spikes per neuron per second and per sample in the last
  timed step; ``loss``: its loss (SumExp for exactsnn, cross-entropy for snnTorch: not comparable).

Then the ratios snnTorch / exactsnn of step time and of peak memory against the issue's targets
(exactsnn at least 20x faster, at least 4x less peak memory), with PASS/MISS. The memory ratio takes
exactsnn's larger figure of (peak MiB, tracemalloc), so a step that fits into memory the process
already held cannot pass on a near-zero denominator.

``--epoch``: also an SHD-sized epoch for exactsnn alone (its own child process): 8156 Poisson samples
(700 channels, ``--rate`` Hz, 1 s, generated in chunks of 512, not timed) in batches of 32 = 255 training
steps; total step seconds and samples/s against the target of at most 20 s per epoch (on 2 cores).
With ``--quick``, 256 samples (8 steps) extrapolated to 8156, said so in the output.

Outputs: a two-panel bar chart (time, memory; ``--png``, default ``benchmarks/results/training_step.png``)
and, with ``--json PATH``, every figure. The 1-minute load average is printed: the machine is shared.

Run: ``python benchmarks/training_step.py [--quick] [--threads 2] [--batch 32] [--hidden 256] [--t-max 1.0]
[--rate 10] [--repeats 3] [--weight-scale G] [--epoch] [--json PATH] [--png PATH] [--no-plot]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for forward.py and peers.py, this script's siblings
import peers  # noqa: E402
from forward import MEAN_REL, N_INPUTS, N_READOUT, calibrate_gain  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TARGET_SPEEDUP = 20.0
TARGET_MEMORY = 4.0
SHD_SAMPLES = 8156
EPOCH_BATCH = 32
EPOCH_TARGET_S = 20.0


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="batch 4, 0.25 s, <= 2 repeats; epoch of 256 samples")
    p.add_argument("--threads", type=int, default=2, help="Numba and torch threads (same for both)")
    p.add_argument("--batch", type=int, default=32, help="samples per batch")
    p.add_argument("--hidden", type=int, default=256, help="recurrent hidden neurons")
    p.add_argument("--t-max", type=float, default=1.0, help="sample duration, s")
    p.add_argument("--rate", type=float, default=10.0, help="Poisson rate per input channel, Hz")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per framework (median reported)")
    p.add_argument("--target-rate", type=float, default=15.0, help="hidden rate (Hz) the gain is tuned to")
    p.add_argument("--weight-scale", type=float, default=None, help="input-weight gain (skips calibration)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and labels")
    p.add_argument("--epoch", action="store_true", help="also time an SHD-sized epoch (8156 samples) of exactsnn")
    p.add_argument("--json", default=None, help="write every figure to this JSON file")
    p.add_argument("--png", default=str(RESULTS / "training_step.png"), help="bar chart path")
    p.add_argument("--no-plot", action="store_true", help="skip the PNG")
    a = p.parse_args(argv)
    if a.quick:
        a.batch, a.t_max, a.repeats = min(a.batch, 4), min(a.t_max, 0.25), min(a.repeats, 2)
    if a.threads < 1 or a.repeats < 1 or a.batch < 1:
        p.error("--threads, --repeats and --batch must be >= 1")
    return a


def resolve_gain(a: argparse.Namespace) -> float:
    if a.weight_scale is not None:
        return a.weight_scale
    t0 = time.perf_counter()
    cal, _ = peers.make_data(min(a.batch, 4), a.rate, a.t_max, a.seed)
    gain, rate = calibrate_gain(a.hidden, cal, a.t_max, a.target_rate)
    print(f"calibrated input-weight gain {gain:.4g} -> {rate:.1f} Hz on {len(cal)} samples "
          f"(target {a.target_rate:g} Hz; {time.perf_counter() - t0:.1f} s)")
    return gain


def _f(r: dict, key: str, spec: str) -> str:
    v = r.get(key)
    return "-" if v is None else format(v, spec)


def print_table(rows: list[dict]) -> None:
    head = (f"{'framework':<10} {'thr':>3} {'step s':>8} {'cpu s':>8} {'peak MiB':>9} {'tracemalloc':>11} "
            f"{'input MiB':>9} {'hidden Hz':>9} {'spk/sample':>10} {'loss':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "median_s" not in r:
            why = f"skipped: {r['skipped']}" if "skipped" in r else f"FAILED: {r.get('error')}"
            print(f"{r['framework']:<10} {why}")
            continue
        print(f"{r['framework']:<10} {r['threads']:>3} {r['median_s']:>8.3f} {r['cpu_median_s']:>8.3f} "
              f"{r['peak_mib']:>9.1f} {_f(r, 'tracemalloc_mib', '.1f'):>11} {r['input_mib']:>9.1f} "
              f"{r['hidden_rate_hz']:>9.1f} {r['hidden_spikes_per_sample']:>10.0f} {r['loss']:>7.3f}")


def ratios(ex: dict, pt: dict) -> dict:
    """snnTorch / exactsnn for time (wall and CPU) and peak memory, and the PASS/MISS verdicts."""
    ex_mem = max(ex["peak_mib"], ex.get("tracemalloc_mib") or 0.0)
    out = {"time": pt["median_s"] / ex["median_s"], "cpu_time": pt["cpu_median_s"] / ex["cpu_median_s"],
           "memory": pt["peak_mib"] / ex_mem if ex_mem > 0 else math.inf,
           "memory_vs_rss_peak": pt["peak_mib"] / ex["peak_mib"] if ex["peak_mib"] > 0 else math.inf}
    out["time_pass"] = out["time"] >= TARGET_SPEEDUP
    out["memory_pass"] = out["memory"] >= TARGET_MEMORY
    return out


def print_ratios(r: dict) -> None:
    def verdict(ok: bool) -> str:
        return "PASS" if ok else "MISS"

    print(f"speed-up  snnTorch / exactsnn step time   {r['time']:7.2f}x  (CPU time {r['cpu_time']:.2f}x)   "
          f"target >= {TARGET_SPEEDUP:g}x: {verdict(r['time_pass'])}")
    print(f"memory    snnTorch / exactsnn peak        {r['memory']:7.2f}x  (vs exactsnn's RSS peak alone "
          f"{r['memory_vs_rss_peak']:.2f}x)   target >= {TARGET_MEMORY:g}x: {verdict(r['memory_pass'])}")


def run_epoch(a: argparse.Namespace, gain: float) -> dict:
    n = 256 if a.quick else SHD_SAMPLES
    spec = {"framework": "exactsnn", "mode": "epoch", "n_samples": n, "batch": EPOCH_BATCH, "hidden": a.hidden,
            "t_max": 1.0, "rate": a.rate, "gain": gain, "threads": a.threads, "seed": a.seed + 100}
    r = peers.spawn(__file__, spec)
    if "error" in r:
        print(f"epoch: {r['error']}")
        return r
    full_steps = math.ceil(SHD_SAMPLES / EPOCH_BATCH)
    r["epoch_seconds"] = r["step_seconds"] * (full_steps / r["steps"] if n != SHD_SAMPLES else 1.0)
    r["extrapolated"] = n != SHD_SAMPLES
    r["samples_per_s"] = n / r["step_seconds"]
    r["pass"] = r["epoch_seconds"] <= EPOCH_TARGET_S
    how = (f"EXTRAPOLATED from {n} samples ({r['steps']} steps) to {SHD_SAMPLES} ({full_steps} steps)"
           if r["extrapolated"] else f"{n} samples, {r['steps']} steps")
    print(f"epoch (exactsnn, {how}; 700 ch at {a.rate:g} Hz, 1 s, batch {EPOCH_BATCH}, {r['threads']} threads):")
    print(f"  training steps {r['step_seconds']:.1f} s -> epoch {r['epoch_seconds']:.1f} s, {r['samples_per_s']:.1f} "
          f"samples/s, hidden {r['hidden_rate_hz']:.1f} Hz, last loss {r['loss']:.3f}; data generation "
          f"{r['data_seconds']:.1f} s (not counted)")
    print(f"  target <= {EPOCH_TARGET_S:g} s per epoch on 2 cores: {'PASS' if r['pass'] else 'MISS'}")
    return r


def plot(a: argparse.Namespace, rows: list[dict], rat: dict | None) -> None:
    plt = peers.pyplot(a.no_plot)
    if plt is None:
        return
    ok = [r for r in rows if "median_s" in r]
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    for i, label in enumerate(("time per training step (s)", "peak memory above baseline (MiB)")):
        names, vals, colors = [], [], []
        for r in ok:
            ex = r["framework"] == "exactsnn"
            names.append("exactsnn" if ex else "snnTorch BPTT")
            vals.append(r["median_s"] if i == 0 else r["peak_mib"])
            colors.append("tab:blue" if ex else "tab:orange")
            if i == 1 and ex and r.get("tracemalloc_mib") is not None:
                names.append("exactsnn\n(tracemalloc)")
                vals.append(r["tracemalloc_mib"])
                colors.append("lightsteelblue")
        bars = ax[i].bar(names, vals, color=colors)
        ax[i].bar_label(bars, fmt="%.3g")
        ax[i].set_ylabel(label)
        if rat:
            k, t = ("time", TARGET_SPEEDUP) if i == 0 else ("memory", TARGET_MEMORY)
            ax[i].set_title(f"ratio {rat[k]:.1f}x (target >= {t:g}x)", fontsize=10)
    fig.suptitle(f"700-{a.hidden}(rec)-20, batch {a.batch}, {a.t_max:g} s at {a.rate:g} Hz, {a.threads} threads, "
                 f"load {os.getloadavg()[0]:.2f}", fontsize=10)
    fig.tight_layout()
    Path(a.png).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(a.png, dpi=120)
    plt.close(fig)
    print(f"wrote {a.png}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return peers.worker_main(argv[1:])
    a = parse(argv)
    load0 = os.getloadavg()[0]
    print("exactsnn vs snnTorch BPTT: one training step (forward + backward + Adam)")
    print(f"workload: batch {a.batch}, {N_INPUTS} Poisson inputs at {a.rate:g} Hz, t_max {a.t_max:g} s, hidden "
          f"{a.hidden} recurrent LIF, readout {N_READOUT} LI; snnTorch dt 1 ms ({round(a.t_max / peers.DT)} steps); "
          f"{a.threads} threads each; {a.repeats} timed steps" + ("  [--quick]" if a.quick else ""))
    print(peers.load_line())
    gain = resolve_gain(a)
    std = gain / math.sqrt(N_INPUTS)
    print(f"input weights ~ N({MEAN_REL * std:.4g}, {std:.4g}^2) in exactsnn (gain {gain:.4g}); snnTorch weights "
          f"x {peers.weight_factor():.4g}")

    spec = {"batch": a.batch, "hidden": a.hidden, "t_max": a.t_max, "rate": a.rate, "gain": gain,
            "threads": a.threads, "repeats": a.repeats, "seed": a.seed}
    rows = []
    t0 = time.perf_counter()
    rows.append(peers.spawn(__file__, spec | {"framework": "exactsnn"}))
    print(f"  exactsnn worker done in {time.perf_counter() - t0:.1f} s", flush=True)
    missing = peers.snntorch_available()
    if missing:
        print(f"  snnTorch skipped: {missing} (install with {peers.INSTALL_HINT})")
        rows.append({"framework": "snntorch", "skipped": missing})
    else:
        t0 = time.perf_counter()
        rows.append(peers.spawn(__file__, spec | {"framework": "snntorch"}))
        print(f"  snnTorch worker done in {time.perf_counter() - t0:.1f} s", flush=True)
    ex, pt = rows
    print()
    print_table(rows)
    rat = None
    if "median_s" in ex and "median_s" in pt:
        print()
        rat = ratios(ex, pt)
        print_ratios(rat)
    elif "median_s" in pt or "median_s" not in ex:
        print("no ratios: a worker failed")
    else:
        print(f"no ratios: snnTorch {'skipped' if 'skipped' in pt else 'failed'}")
    if "median_s" in pt:
        print(f"snnTorch {pt['snntorch']}, torch {pt['torch']}: {pt['time_steps']} time steps of {pt['dt'] * 1e3:g} ms")
    print("per-step seconds: " + "; ".join(f"{r['framework']} " + ", ".join(f"{s:.3f}" for s in r["seconds"])
                                           for r in rows if "seconds" in r))
    epoch = None
    if a.epoch:
        print()
        epoch = run_epoch(a, gain)
    print()
    plot(a, rows, rat)
    mach = peers.machine(load0, ex.get("numba_threading_layer"))
    worker_loads = [r["load_avg_1min"] for r in rows if "load_avg_1min" in r]
    print(f"machine: {mach['processor']}, {mach['cpus']} CPUs, python {mach['python']}, numba {mach['numba']} "
          f"({mach['threading_layer']}), numpy {mach['numpy']}")
    print(f"load average (1 min): before {load0:.2f}, at the end of the workers "
          f"{', '.join(f'{x:.2f}' for x in worker_loads)}, now {os.getloadavg()[0]:.2f}")
    if a.json:
        doc = {"machine": mach, "workload": spec | {"n_inputs": N_INPUTS, "readout": N_READOUT,
                                                     "input_weight_mean": MEAN_REL * std, "input_weight_std": std,
                                                     "snntorch_weight_factor": peers.weight_factor(),
                                                     "dt": peers.DT, "quick": a.quick},
               "results": rows, "ratios": rat, "targets": {"speedup": TARGET_SPEEDUP, "memory": TARGET_MEMORY,
                                                           "epoch_s": EPOCH_TARGET_S},
               "epoch": epoch}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2, default=lambda o: o.item() if isinstance(o, np.generic) else str(o))
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
