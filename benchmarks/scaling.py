"""How a training step of exactsnn and of snnTorch BPTT scales with input rate, hidden size, duration, batch.

Workload: the network and training step of ``training_step.py`` (see ``peers.py``): 700 Poisson input
channels -> recurrent LIF hidden layer -> 20 LI readout; exactsnn = ``es.loss_and_grad`` (SumExp) +
``adam_step``; snnTorch = BPTT at dt = 1 ms over the binned input + ``torch.optim.Adam``. One quantity
grows while the others stay at the base point:

* base: 700 inputs at 10 Hz, 256 recurrent hidden neurons, t_max 1 s, batch 32 (``--quick``: 10 Hz,
  64 hidden, 0.2 s, batch 4);
* ``rate``: input rate 2, 5, 10, 20, 40 Hz (the number of input spikes; same weights, so the hidden
  rate grows with it);
* ``hidden``: 64, 128, 256, 512 neurons;
* ``duration``: t_max 0.25, 0.5, 1, 2 s (BPTT: 250 ... 2000 time steps);
* ``batch``: 4, 8, 16, 32 samples.

``--quick`` has two points per axis (5, 10 Hz; 32, 64 neurons; 0.1, 0.2 s; batch 2, 4) and at most two
timed steps per point, under a minute. The input-weight gain is calibrated once per hidden size at the base
rate and duration (bisection on 4 samples, exactsnn's hidden layer at ``--target-rate`` = 15 Hz; the
std scales with 1/sqrt(700) as in ``forward.make_net``) and then kept fixed along every axis, or set
for all sizes by ``--weight-scale``. The hidden rate of every point is reported.

Every point runs each framework in its own fresh child process (``peers.spawn``; one after the other,
never concurrently): model and data, one warm-up step on a 1-sample 20 ms batch, then ``--repeats``
timed steps (median reported); memory = peak resident set during the timed steps minus the resident
set before them (VmHWM reset through /proc/self/clear_refs; see ``peers.py``). The base point is
measured once and shared by the axes.

Table per axis:

* ``x``: the quantity on that axis;
* ``exactsnn s``, ``snnTorch s``: median wall time of one training step; ``ratio`` = snnTorch / exactsnn;
* ``exactsnn MiB``, ``snnTorch MiB``: peak memory of the steps above the baseline RSS; ``ex tm MiB``:
  exactsnn's ``tracemalloc`` peak of one step (a step can fit in memory the process already holds,
  then the RSS figure stays near 0);
* ``hidden Hz``: exactsnn's hidden rate (snnTorch's in brackets); ``in spk``, ``hid spk``: input and
  exactsnn hidden spikes per sample;

and the log-log slope of step time against x for each framework (least squares over the axis).
exactsnn's cost follows the events (input spikes x fan-out n_hidden, hidden spikes x (n_hidden + 20)),
BPTT's the dense work: time steps (t_max / dt) x batch x layer size, whatever the spike counts.

Figures (``--png-dir``, default ``benchmarks/results``): ``scaling_<axis>.png`` (log-log time and memory
against x, both frameworks) and ``scaling.png`` (all axes). ``--json [PATH]`` writes every figure
(default path ``benchmarks/results/scaling.json``). The 1-minute load average is printed.

Run: ``python benchmarks/scaling.py [--quick] [--threads 2] [--axes rate,hidden,duration,batch] [--repeats 3]
[--base-batch 32] [--weight-scale G] [--json [PATH]] [--png-dir benchmarks/results] [--no-plot]``.
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
from forward import N_INPUTS, calibrate_gain  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
KEYS = {"rate": "rate", "hidden": "hidden", "duration": "t_max", "batch": "batch"}
LABELS = {"rate": "input rate (Hz)", "hidden": "hidden neurons", "duration": "trial duration (s)",
          "batch": "batch size"}
FULL = {"base": {"rate": 10.0, "hidden": 256, "t_max": 1.0, "batch": 32},
        "rate": [2.0, 5.0, 10.0, 20.0, 40.0], "hidden": [64, 128, 256, 512], "duration": [0.25, 0.5, 1.0, 2.0],
        "batch": [4, 8, 16, 32]}
QUICK = {"base": {"rate": 10.0, "hidden": 64, "t_max": 0.2, "batch": 4},
         "rate": [5.0, 10.0], "hidden": [32, 64], "duration": [0.1, 0.2], "batch": [2, 4]}
WORKER_TIMEOUT_S = 1200


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 tiny points per axis, <= 2 timed steps, < 1 min")
    p.add_argument("--threads", type=int, default=2, help="Numba and torch threads (same for both)")
    p.add_argument("--axes", default="rate,hidden,duration,batch", help=f"comma list from {','.join(KEYS)}")
    p.add_argument("--repeats", type=int, default=3, help="timed steps per point and framework (median)")
    p.add_argument("--base-batch", type=int, default=None, help="batch of the base point (default 32, quick 4); "
                   "the batch axis is unchanged")
    p.add_argument("--target-rate", type=float, default=15.0, help="hidden rate (Hz) the gain is tuned to")
    p.add_argument("--weight-scale", type=float, default=None, help="input-weight gain for every hidden size "
                   "(skips calibration)")
    p.add_argument("--seed", type=int, default=0, help="seed of the inputs and labels")
    p.add_argument("--no-snntorch", action="store_true", help="exactsnn only")
    p.add_argument("--json", nargs="?", const=str(RESULTS / "scaling.json"), default=None,
                   help="write every figure to this JSON file (default path: benchmarks/results/scaling.json)")
    p.add_argument("--png-dir", default=str(RESULTS), help="folder of the PNGs")
    p.add_argument("--no-plot", action="store_true", help="skip the PNGs")
    a = p.parse_args(argv)
    a.axes = [x.strip() for x in a.axes.split(",") if x.strip()]
    bad = [x for x in a.axes if x not in KEYS]
    if bad:
        p.error(f"unknown axis {bad}; choose from {list(KEYS)}")
    if a.quick:
        a.repeats = min(a.repeats, 2)
    a.grid = dict(QUICK if a.quick else FULL)
    a.grid["base"] = dict(a.grid["base"])
    if a.base_batch is not None:
        a.grid["base"]["batch"] = a.base_batch
    return a


def gains(a: argparse.Namespace) -> dict[int, float]:
    """Input-weight gain per hidden size used anywhere (calibrated at the base rate and duration)."""
    base = a.grid["base"]
    sizes = sorted({base["hidden"]} | (set(a.grid["hidden"]) if "hidden" in a.axes else set()))
    if a.weight_scale is not None:
        return dict.fromkeys(sizes, a.weight_scale)
    cal, _ = peers.make_data(4, base["rate"], base["t_max"], a.seed)
    out = {}
    for n in sizes:
        t0 = time.perf_counter()
        g, r = calibrate_gain(n, cal, base["t_max"], a.target_rate)
        out[n] = g
        print(f"  hidden {n}: calibrated gain {g:.4g} -> {r:.1f} Hz on 4 samples ({time.perf_counter() - t0:.1f} s)")
    return out


def measure(a: argparse.Namespace, point: dict, gain: float, with_peer: bool) -> dict:
    spec = point | {"gain": gain, "threads": a.threads, "repeats": a.repeats, "seed": a.seed}
    ex = peers.spawn(__file__, spec | {"framework": "exactsnn"}, timeout=WORKER_TIMEOUT_S)
    pt = (peers.spawn(__file__, spec | {"framework": "snntorch"}, timeout=WORKER_TIMEOUT_S) if with_peer
          else {"framework": "snntorch", "skipped": "not run"})
    return {"point": point, "gain": gain, "exactsnn": ex, "snntorch": pt}


def _v(r: dict, key: str) -> float | None:
    return r.get(key) if "median_s" in r else None


def _s(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def slope(xs: list[float], ys: list[float | None]) -> float | None:
    pts = [(math.log(x), math.log(y)) for x, y in zip(xs, ys, strict=True) if y is not None and y > 0]
    if len(pts) < 2:
        return None
    lx, ly = np.array(pts).T
    return float(np.polyfit(lx, ly, 1)[0])


def print_axis(axis: str, rows: list[dict]) -> dict:
    key = KEYS[axis]
    head = (f"{LABELS[axis]:>18} {'exactsnn s':>10} {'snnTorch s':>10} {'ratio':>7} {'exactsnn MiB':>12} "
            f"{'ex tm MiB':>9} {'snnTorch MiB':>12} {'hidden Hz':>15} {'in spk':>7} {'hid spk':>7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ex, pt = r["exactsnn"], r["snntorch"]
        te, tp = _v(ex, "median_s"), _v(pt, "median_s")
        ratio = tp / te if te and tp else None
        hz = _s(_v(ex, "hidden_rate_hz"), ".1f") + (f" ({_v(pt, 'hidden_rate_hz'):.1f})" if tp else "")
        print(f"{r['point'][key]:>18g} {_s(te, '.3f'):>10} {_s(tp, '.3f'):>10} {_s(ratio, '.1f'):>7} "
              f"{_s(_v(ex, 'peak_mib'), '.1f'):>12} {_s(_v(ex, 'tracemalloc_mib'), '.1f'):>9} "
              f"{_s(_v(pt, 'peak_mib'), '.1f'):>12} {hz:>15} {_s(_v(ex, 'input_spikes_per_sample'), '.0f'):>7} "
              f"{_s(_v(ex, 'hidden_spikes_per_sample'), '.0f'):>7}")
        for fw in ("exactsnn", "snntorch"):
            if "error" in r[fw]:
                print(f"{'':>18} {fw}: {r[fw]['error']}")
    xs = [r["point"][key] for r in rows]
    sl = {fw: slope(xs, [_v(r[fw], "median_s") for r in rows]) for fw in ("exactsnn", "snntorch")}
    print(f"log-log slope of step time vs {axis}: exactsnn {_s(sl['exactsnn'], '.2f')}, "
          f"snnTorch {_s(sl['snntorch'], '.2f')}")
    return sl


def _series(rows: list[dict], fw: str, key: str, xkey: str) -> tuple[list[float], list[float]]:
    pts = [(r["point"][xkey], _v(r[fw], key)) for r in rows]
    pts = [(x, y) for x, y in pts if y is not None and y > 0]
    return [p[0] for p in pts], [p[1] for p in pts]


def draw_axis(ax_t, ax_m, axis: str, rows: list[dict]) -> None:
    k = KEYS[axis]
    for fw, label, color in (("exactsnn", "exactsnn", "tab:blue"), ("snntorch", "snnTorch BPTT", "tab:orange")):
        x, y = _series(rows, fw, "median_s", k)
        if x:
            ax_t.plot(x, y, "o-", color=color, label=label)
        x, y = _series(rows, fw, "peak_mib", k)
        if x:
            ax_m.plot(x, y, "o-", color=color, label=f"{label} (RSS peak)")
    x, y = _series(rows, "exactsnn", "tracemalloc_mib", k)
    if x:
        ax_m.plot(x, y, "s--", color="tab:blue", alpha=0.6, label="exactsnn (tracemalloc)")
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    xs = sorted({r["point"][k] for r in rows})
    for ax, ylab in ((ax_t, "s per training step"), (ax_m, "peak MiB above baseline")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(LABELS[axis])
        ax.set_ylabel(ylab)
        ax.grid(True, which="both", alpha=0.3)
    ax_t.legend(fontsize=8)
    ax_m.legend(fontsize=8)


def plot(a: argparse.Namespace, results: dict[str, list[dict]], title: str) -> None:
    plt = peers.pyplot(a.no_plot)
    if plt is None:
        return
    out = Path(a.png_dir)
    out.mkdir(parents=True, exist_ok=True)
    for axis, rows in results.items():
        fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(10, 4))
        draw_axis(ax_t, ax_m, axis, rows)
        fig.suptitle(f"{LABELS[axis]}; {title}", fontsize=9)
        fig.tight_layout()
        path = out / f"scaling_{axis}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        print(f"wrote {path}")
    n = len(results)
    fig, axs = plt.subplots(2, n, figsize=(4.2 * n, 7.5), squeeze=False)
    for j, (axis, rows) in enumerate(results.items()):
        draw_axis(axs[0, j], axs[1, j], axis, rows)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path = out / "scaling.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--worker":
        return peers.worker_main(argv[1:])
    a = parse(argv)
    load0 = os.getloadavg()[0]
    base = a.grid["base"]
    t_start = time.perf_counter()
    print("scaling of one training step: exactsnn vs snnTorch BPTT (dt 1 ms)" + ("  [--quick]" if a.quick else ""))
    print(f"base: {N_INPUTS} inputs at {base['rate']:g} Hz, {base['hidden']} recurrent hidden, "
          f"t_max {base['t_max']:g} s, batch {base['batch']}; {a.threads} threads each; "
          f"{a.repeats} timed step(s) per point")
    print(peers.load_line())
    missing = None if not a.no_snntorch else "--no-snntorch"
    missing = missing or peers.snntorch_available()
    if missing:
        print(f"snnTorch skipped: {missing}" + ("" if a.no_snntorch else f" (install with {peers.INSTALL_HINT})"))
    g = gains(a)
    cache: dict[tuple, dict] = {}
    results: dict[str, list[dict]] = {}
    for axis in a.axes:
        rows = []
        for x in a.grid[axis]:
            point = base | {KEYS[axis]: x}
            key = tuple(sorted(point.items()))
            if key not in cache:
                t0 = time.perf_counter()
                cache[key] = measure(a, point, g[point["hidden"]], missing is None)
                print(f"  {axis} = {x:g}: {time.perf_counter() - t0:.1f} s (load {os.getloadavg()[0]:.2f})", flush=True)
            rows.append(cache[key])
        results[axis] = rows
    slopes = {}
    for axis, rows in results.items():
        print()
        slopes[axis] = print_axis(axis, rows)
    print()
    print("exactsnn: cost ~ events (input spikes x n_hidden + hidden spikes x (n_hidden + 20)); snnTorch BPTT: "
          "cost ~ time steps x batch x layer size (dense), independent of the spike counts")
    title = (f"base {base['rate']:g} Hz, {base['hidden']} hidden, {base['t_max']:g} s, batch {base['batch']}; "
             f"{a.threads} threads; load {os.getloadavg()[0]:.2f}")
    plot(a, results, title)
    tl = next((r["exactsnn"].get("numba_threading_layer") for r in cache.values()
               if "numba_threading_layer" in r["exactsnn"]), None)
    mach = peers.machine(load0, tl)
    print(f"machine: {mach['processor']}, {mach['cpus']} CPUs, python {mach['python']}, numba {mach['numba']} "
          f"({mach['threading_layer']}), numpy {mach['numpy']}")
    print(f"load average (1 min): before {load0:.2f}, now {os.getloadavg()[0]:.2f}; "
          f"total {time.perf_counter() - t_start:.0f} s")
    if a.json:
        doc = {"machine": mach, "base": base, "grid": {k: v for k, v in a.grid.items() if k != "base"},
               "threads": a.threads, "repeats": a.repeats, "gains": {str(k): v for k, v in g.items()},
               "snntorch_weight_factor": peers.weight_factor(), "axes": results, "slopes": slopes,
               "quick": a.quick}
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
