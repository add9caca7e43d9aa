"""Forward simulation time of exactsnn against NEST's precise-spike-timing LIF ``iaf_psc_exp_ps``.

Workload (as in ``forward.py``, whose helpers this script imports): 700 Poisson input channels
(``exactsnn.data.poisson.poisson_batch``; 10 Hz gives ~7000 input spikes per 1 s sample) drive a
layer of 256 LIF neurons (``es.LIF()`` defaults: tau_mem 20 ms, tau_syn 5 ms, v_th 1, v_reset 0,
except t_ref, see below), batch 8. Input weights are those of ``forward.make_net`` (seed 0):
N(0.5 g / sqrt(700), (g / sqrt(700))^2) with the gain g = ``--weight-scale`` (default 1.542, which
gives ~15 Hz). There is no readout layer: ``es.simulate`` does not integrate an LI readout anyway,
and NEST has no counterpart of it. Both simulators get the same network and the same input spikes.

Variants:

* ``feedforward``: no recurrence. NEST needs a synaptic delay of at least one resolution step; a
  uniform delay d (= one step, 0.1 ms) on every input synapse is the same as shifting every input
  spike by d, so exactsnn simulates the inputs shifted by d without delays (its dense kernel) and
  NEST uses delay d.
* ``recurrent``: plus recurrent weights (``forward.make_net``'s: N(0, (0.5/sqrt(n))^2), zero
  diagonal). NEST cannot express zero-delay recurrence, so every recurrent synapse gets a delay of
  one resolution step in both simulators, and every input synapse delay d as above. exactsnn then
  needs ``Layer(delays=True)`` and runs its event-queue kernel, which is much slower than the dense
  kernel exactsnn uses for zero-delay recurrence (see ``forward.py``: ``recurrent`` vs ``delays``).

Restriction imposed by NEST: ``iaf_psc_exp_ps`` refuses t_ref < one resolution step, so both
simulators use t_ref = one step (0.1 ms) instead of exactsnn's default 0.

Unit mapping (from ``validation/nest_spike_times.py``, which also checks it numerically): E_L = 0,
V_th = 10 mV x v_th, V_reset = 10 mV x v_reset, tau_m / tau_syn / t_ref in ms, C_m = 250 pF,
weight_pA = w x 10 mV x C_m / tau_m, delay in ms; NEST's spike generators use ``precise_times``.

Timing (per figure the median over repeated runs of the whole batch):

* exactsnn: one ``es.simulate(net, params, batch, t_max)`` call on the whole batch with Numba at
  ``--threads`` threads (prange over samples), after a warm-up call on a tiny batch that compiles.
  Median of ``--repeats`` (default 3) calls; the queue-kernel ``recurrent`` variant uses
  ``--slow-repeats`` (default 1).
* NEST runs in a child process (``sys.executable``, JSON on stdout): the nest-simulator wheel bundles
  its own libgomp, which segfaults alongside Numba's OpenMP threading layer in one process. NEST has
  no batch axis: per sample ``ResetKernel``, ``SetKernelStatus({"local_num_threads": threads,
  "resolution": res})``, build the network (700 ``spike_generator`` s, the neurons, a
  ``spike_recorder``, the connections), ``Simulate(t_max + one step)`` (so spikes up to t_max are
  flushed), read the spikes. ``NEST sim`` is the time in ``nest.Simulate`` only, ``NEST total`` the
  whole per-sample loop (reset, construction, simulation, read-out); NEST's import is not counted.
  Median of ``--nest-repeats`` (default 1) runs of the batch, each summed over its samples. NEST uses
  ``--nest-threads`` (default ``--threads``) threads.

Load: NEST synchronises its threads with an OpenMP barrier every min-delay interval (here one
resolution step, 10^4 per simulated second). When other processes occupy a core, libgomp's spinning
threads waste whole time slices at each barrier and 2-thread NEST slows down by 10-100x (seen here on
2 cores with one busy), far more than exactsnn (one parallel region per call). The script prints the
1-min load average before and after; compare ``--nest-threads 1`` or ``--omp-wait-policy passive``
(OMP_WAIT_POLICY of the NEST child) on a loaded machine.

Columns: ``s/sample`` = batch time / batch size; ``samples/s`` its inverse; ``vs exactsnn`` = NEST
time / exactsnn time (> 1: exactsnn is faster); ``rate Hz`` = hidden spikes / (batch x n x t_max) as
measured by each simulator; ``spikes`` = hidden spikes in the batch; ``miss/extra`` = NEST spikes
without an exactsnn partner within 1 us and the reverse; ``max|dt| s`` = largest spike-time
difference over the matched pairs before a sample's first unpaired spike (``validation``'s
``compare``).

Run::

    python benchmarks/nest_forward.py --quick                 # smoke run, well under a minute
    python benchmarks/nest_forward.py                         # full run (batch 8, 256 hidden, 1 s)
    python benchmarks/nest_forward.py --threads 2 --hidden 256 --rate 10 --t-max 1.0 --batch 8 \\
        --resolution 0.1 --json nest_forward.json --png benchmarks/results/nest_forward.png
    python benchmarks/nest_forward.py --nest-threads 1 --omp-wait-policy passive --no-plot

Without NEST (``pip install -e ".[nest]"``) only exactsnn is timed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

import numba
import numpy as np

import exactsnn as es
from exactsnn.data.poisson import poisson_batch

_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE))  # forward.py, this script's sibling
sys.path.insert(0, str(_HERE.parent))  # the repository root, for validation/
_LAYER_ENV = os.environ.get("NUMBA_THREADING_LAYER")
from forward import MEAN_REL, N_INPUTS, machine_info, make_net  # noqa: E402

import validation.nest_spike_times as nst  # noqa: E402  (sets NUMBA_THREADING_LAYER=workqueue by default)

if _LAYER_ENV is None:  # the parent keeps Numba's default threading layer: it never imports NEST
    os.environ.pop("NUMBA_THREADING_LAYER", None)

VARIANTS = ("feedforward", "recurrent")
DEFAULT_GAIN = 1.542
DEFAULT_PNG = _HERE / "results" / "nest_forward.png"


# ----------------------------------------------------------------------------- network
def build(variant: str, n_hidden: int, gain: float, res_s: float) -> dict:
    """Weights and delays (exactsnn units) of one variant; input delays d = res_s, recurrent res_s."""
    _, p = make_net("recurrent" if variant == "recurrent" else "feedforward", n_hidden, gain)
    W = p.weights[0]
    R = p.recurrent_weights[0] if variant == "recurrent" else None
    return {"W": W, "R": R, "d": res_s, "neuron": es.LIF(t_ref=res_s)}


def exactsnn_model(variant: str, spec: dict) -> tuple[es.Network, es.Params]:
    W, R, d, neuron = spec["W"], spec["R"], spec["d"], spec["neuron"]
    n = W.shape[0]
    if variant == "feedforward":  # inputs shifted by d, no delays: the dense kernel
        layer = es.Layer(n, neuron)
        params = es.Params([W], [np.zeros_like(W)])
    else:  # delays d on inputs, one step on recurrent synapses: the queue kernel
        layer = es.Layer(n, neuron, recurrent=True, delays=True)
        params = es.Params([W], [np.full_like(W, d)], [R], [np.full_like(R, d)])
    return es.Network(N_INPUTS, [layer]), params


def shifted(batch: es.SpikeBatch, d: float) -> es.SpikeBatch:
    return es.SpikeBatch.from_arrays(batch.times + d, batch.units, batch.offsets, n_units=batch.n_units)


def per_neuron(times: np.ndarray, units: np.ndarray, n: int, t_max: float) -> list[np.ndarray]:
    keep = times <= t_max
    times, units = times[keep], units[keep]
    return [np.sort(times[units == j]) for j in range(n)]


# ----------------------------------------------------------------------------- exactsnn
def time_exactsnn(variant: str, spec: dict, batch, warm, t_max: float, threads: int, repeats: int) -> dict:
    net, params = exactsnn_model(variant, spec)
    if variant == "feedforward":
        batch, warm = shifted(batch, spec["d"]), shifted(warm, spec["d"])
    numba.set_num_threads(threads)
    es.simulate(net, params, warm, t_max=t_max)  # warm-up: compiles (or loads the cache), starts the pool
    secs, rec = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        rec = es.simulate(net, params, batch, t_max=t_max)
        secs.append(time.perf_counter() - t0)
    n = net.layers[0].size
    spikes = [per_neuron(*rec.spikes[0].sample(b), n, t_max) for b in range(len(batch))]
    return {"seconds": secs, "median_s": statistics.median(secs), "spikes": spikes,
            "n_spikes": int(sum(x.size for s in spikes for x in s))}


# ----------------------------------------------------------------------------- NEST (child process)
def nest_child(path: str) -> int:
    """Child mode: simulate every sample of the .npz at ``path`` with NEST; JSON on stdout."""
    z = np.load(path)
    threads, res_ms, t_max, repeats = int(z["threads"]), float(z["res_ms"]), float(z["t_max"]), int(z["repeats"])
    tau_mem, tau_syn, v_th, v_reset, t_ref = (float(x) for x in z["neuron"])
    W, R, d = z["W"], (z["R"] if z["R"].size else None), float(z["d"])
    times, units, offsets = z["times"], z["units"], z["offsets"]
    n = W.shape[0]
    case = types.SimpleNamespace(tau_mem=tau_mem, tau_syn=tau_syn, v_th=v_th, v_reset=v_reset, t_ref=t_ref)
    nest = nst.import_nest()
    D = np.full(W.shape, d)
    E = None if R is None else np.full(R.shape, d)
    runs = []
    for _ in range(repeats):
        sim, total, out = [], [], []
        for b in range(offsets.size - 1):
            t0 = time.perf_counter()
            nest.ResetKernel()
            nest.SetKernelStatus({"local_num_threads": threads, "resolution": res_ms})
            t_b, u_b = times[offsets[b]:offsets[b + 1]], units[offsets[b]:offsets[b + 1]]
            gens = nest.Create("spike_generator", N_INPUTS)
            order = np.argsort(u_b, kind="stable")
            bounds = np.searchsorted(u_b[order], np.arange(N_INPUTS + 1))
            gens.set([{"spike_times": t_b[order[bounds[i]:bounds[i + 1]]] * 1e3, "precise_times": True}
                      for i in range(N_INPUTS)])
            pop = nest.Create("iaf_psc_exp_ps", n, params=nst.nest_params(case))
            ids = np.asarray(pop.tolist())
            rec = nest.Create("spike_recorder", {"time_in_steps": False})
            nst.connect_dense(nest, np.asarray(gens.tolist()), ids, W, D, tau_mem, res_ms)
            if R is not None:
                nst.connect_dense(nest, ids, ids, R, E, tau_mem, res_ms)
            nest.Connect(pop, rec)
            t1 = time.perf_counter()
            nest.Simulate(t_max * 1e3 + res_ms)
            t2 = time.perf_counter()
            ev = rec.get("events")
            senders = np.asarray(ev["senders"], dtype=np.int64) - int(ids[0])
            spk = np.asarray(ev["times"], dtype=np.float64) * 1e-3
            t3 = time.perf_counter()
            sim.append(t2 - t1)
            total.append(t3 - t0)
            out.append({"times": spk.tolist(), "units": senders.tolist()})
        runs.append({"sim_s": sim, "total_s": total, "spikes": out})
    info = {"nest": getattr(nest, "__version__", "?"), "num_threads": nest.GetKernelStatus("local_num_threads")}
    json.dump({"runs": runs, "info": info}, sys.stdout)
    return 0


def time_nest(spec: dict, batch, t_max: float, threads: int, res_ms: float, repeats: int,
              wait_policy: str | None = None) -> dict:
    """Run :func:`nest_child` in a child process; per-repeat batch times and the spikes of the last run."""
    nrn = spec["neuron"]
    R = spec["R"] if spec["R"] is not None else np.zeros((0, 0))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "workload.npz")
        np.savez(path, W=spec["W"], R=R, d=spec["d"], times=batch.times, units=batch.units,
                 offsets=batch.offsets, threads=threads, res_ms=res_ms, t_max=t_max, repeats=repeats,
                 neuron=[nrn.tau_mem, nrn.tau_syn, nrn.v_th, nrn.v_reset, nrn.t_ref])
        env = dict(os.environ, PYNEST_QUIET="1")
        if wait_policy:
            env["OMP_WAIT_POLICY"] = wait_policy
        p = subprocess.run([sys.executable, __file__, "--nest-child", path], capture_output=True, text=True,
                           env=env)
    if p.returncode != 0:
        tail = "\n".join(p.stderr.strip().splitlines()[-8:])
        raise RuntimeError(f"NEST child process exited with status {p.returncode}:\n{tail}")
    doc = json.loads(p.stdout)
    n = spec["W"].shape[0]
    sim = [sum(r["sim_s"]) for r in doc["runs"]]
    total = [sum(r["total_s"]) for r in doc["runs"]]
    spikes = [per_neuron(np.asarray(s["times"]), np.asarray(s["units"], dtype=np.int64), n, t_max)
              for s in doc["runs"][-1]["spikes"]]
    return {"sim_seconds": sim, "total_seconds": total, "sim_median_s": statistics.median(sim),
            "total_median_s": statistics.median(total), "spikes": spikes,
            "n_spikes": int(sum(x.size for s in spikes for x in s)), "info": doc["info"]}


def agreement(es_spikes: list, nest_spikes: list) -> dict:
    """Spike matching per sample (``validation``'s ``compare``), summed; the first unpaired spike per sample."""
    missing = extra = 0
    max_dt = 0.0
    first = []  # (sample, neuron, time, side) of each diverging sample's first unpaired spike
    for b, (a, n) in enumerate(zip(es_spikes, nest_spikes, strict=True)):
        r = nst.compare([a], [n])
        missing, extra, max_dt = missing + r.missing, extra + r.extra, max(max_dt, r.max_dt)
        if r.first_mismatch is not None:
            first.append((b, r.first_mismatch[1], r.first_mismatch[2], r.first_mismatch[3]))
    return {"missing": missing, "extra": extra, "max_dt_s": max_dt, "first_unpaired": first}


# ----------------------------------------------------------------------------- output
def print_table(rows: list[dict]) -> None:
    head = (f"{'variant':<12} {'simulator':<18} {'thr':>3} {'s/sample':>9} {'samples/s':>9} {'vs exactsnn':>11} "
            f"{'rate Hz':>7} {'spikes':>7} {'miss/extra':>10} {'max|dt| s':>9}")
    print(head)
    print("-" * len(head))
    for r in rows:
        ratio = "-" if r.get("ratio") is None else f"{r['ratio']:.2f}"
        agree = r.get("agree")
        me = "-" if agree is None else f"{agree['missing']}/{agree['extra']}"
        dt = "-" if agree is None else f"{agree['max_dt_s']:.1e}"
        sim = f"{r['simulator']} ({r['kernel']})" if "kernel" in r else r["simulator"]
        print(f"{r['variant']:<12} {sim:<18} {r['threads']:>3} {r['s_per_sample']:>9.4f} "
              f"{1 / r['s_per_sample']:>9.2f} {ratio:>11} {r['rate_hz']:>7.2f} {r['spikes']:>7} {me:>10} {dt:>9}")


def plot(rows: list[dict], path: Path, title: str) -> str:
    try:
        import matplotlib
    except ImportError:
        return "matplotlib is not installed: no plot (pip install matplotlib)"
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    variants = list(dict.fromkeys(r["variant"] for r in rows))
    kernels = {r["variant"]: r["kernel"] for r in rows if "kernel" in r}
    sims = list(dict.fromkeys(r["simulator"] for r in rows))
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    width = 0.8 / len(sims)
    for k, s in enumerate(sims):
        xs, ys = [], []
        for i, v in enumerate(variants):
            hit = [r for r in rows if r["variant"] == v and r["simulator"] == s]
            if hit:
                xs.append(i + (k - (len(sims) - 1) / 2) * width)
                ys.append(hit[0]["s_per_sample"])
        bars = ax.bar(xs, ys, width, label=s)
        ax.bar_label(bars, fmt="%.3g", fontsize=7)
    ax.set_xticks(range(len(variants)), [f"{v}\n(exactsnn {kernels.get(v, '?')} kernel)" for v in variants])
    ax.set_yscale("log")
    ax.set_ylabel("seconds per sample (log)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f"wrote {path}"


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 2 and argv[0] == "--nest-child":
        return nest_child(argv[1])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2 samples, 0.25 s, 64 hidden, 2 repeats: < 1 min")
    p.add_argument("--batch", type=int, default=8, help="samples")
    p.add_argument("--hidden", type=int, default=256, help="hidden LIF neurons")
    p.add_argument("--rate", type=float, default=10.0, help="Poisson rate per input channel, Hz")
    p.add_argument("--t-max", type=float, default=1.0, help="sample duration, s")
    p.add_argument("--resolution", type=float, default=0.1, help="NEST grid step in ms (= input and recurrent "
                   "delay and t_ref of both simulators)")
    p.add_argument("--threads", type=int, default=2, help="threads of Numba and of NEST")
    p.add_argument("--nest-threads", type=int, default=None, help="NEST's local_num_threads (default --threads)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of the whole batch (median reported)")
    p.add_argument("--nest-repeats", type=int, default=1, help="timed NEST runs of the whole batch (median)")
    p.add_argument("--omp-wait-policy", choices=("passive", "active"), default=None,
                   help="OMP_WAIT_POLICY of the NEST child (default: inherited, i.e. libgomp's spin-then-sleep)")
    p.add_argument("--slow-repeats", type=int, default=1, help="timed exactsnn calls of the queue-kernel "
                   "recurrent variant (at most --repeats)")
    p.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list from {','.join(VARIANTS)}")
    p.add_argument("--weight-scale", type=float, default=DEFAULT_GAIN, help="input weight gain g")
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson inputs")
    p.add_argument("--no-nest", action="store_true", help="time exactsnn only")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    p.add_argument("--png", default=str(DEFAULT_PNG), help="bar chart path")
    p.add_argument("--no-plot", action="store_true", help="no bar chart")
    a = p.parse_args(argv)
    if a.quick:
        a.batch, a.t_max, a.hidden, a.repeats = min(a.batch, 2), min(a.t_max, 0.25), min(a.hidden, 64), 2
    variants = [v.strip() for v in a.variants.split(",") if v.strip()]
    if any(v not in VARIANTS for v in variants):
        p.error(f"--variants: choose from {','.join(VARIANTS)}")
    if not 1 <= a.threads <= numba.config.NUMBA_NUM_THREADS:
        p.error(f"--threads must be in [1, {numba.config.NUMBA_NUM_THREADS}] (NUMBA_NUM_THREADS)")
    if a.batch < 1 or a.hidden < 1 or not a.t_max > 0 or not a.resolution > 0 or min(a.repeats, a.nest_repeats) < 1:
        p.error("--batch, --hidden, --repeats, --nest-repeats must be >= 1, --t-max and --resolution > 0")
    res_s = a.resolution * 1e-3
    nest_threads = a.threads if a.nest_threads is None else a.nest_threads
    if nest_threads < 1:
        p.error("--nest-threads must be >= 1")

    load0 = os.getloadavg()[0]
    batch = poisson_batch(a.batch, N_INPUTS, a.rate, a.t_max, seed=a.seed)
    warm = poisson_batch(1, N_INPUTS, a.rate, min(a.t_max, 0.02), seed=a.seed + 1)
    counts = batch.counts()
    have_nest = not a.no_nest and importlib.util.find_spec("nest") is not None
    std = a.weight_scale / np.sqrt(N_INPUTS)
    nrn = es.LIF(t_ref=res_s)
    print("exactsnn vs NEST iaf_psc_exp_ps forward benchmark")
    print(f"workload: batch {a.batch}, {N_INPUTS} inputs at {a.rate:g} Hz, t_max {a.t_max:g} s -> "
          f"{counts.mean():.0f} input spikes/sample; hidden {a.hidden} LIF (tau_mem {nrn.tau_mem * 1e3:g} ms, "
          f"tau_syn {nrn.tau_syn * 1e3:g} ms, v_th {nrn.v_th:g}, v_reset {nrn.v_reset:g}, t_ref {a.resolution:g} ms)")
    print(f"input weights ~ N({MEAN_REL * std:.4g}, {std:.4g}^2) (gain {a.weight_scale:g}); recurrent N(0, "
          f"(0.5/sqrt(n))^2); input delay = recurrent delay = {a.resolution:g} ms; Numba threads {a.threads}, "
          f"NEST threads {nest_threads}, repeats {a.repeats} (NEST {a.nest_repeats})"
          + (f", NEST OMP_WAIT_POLICY={a.omp_wait_policy}" if a.omp_wait_policy else ""))
    if load0 > 0.5:
        print(f"note: 1-min load average {load0:.2f} on {os.cpu_count()} CPUs before the run: with other work on "
              "the cores, multi-threaded NEST (an OpenMP barrier every resolution step) slows down far more "
              "than exactsnn; compare --nest-threads 1 or --omp-wait-policy passive")
    if a.no_nest:
        print("NEST skipped (--no-nest)")
    elif not have_nest:
        print('NEST is not importable: NEST is skipped, only exactsnn is timed (pip install -e ".[nest]")')

    rows, doc_variants = [], []
    n_rate = a.batch * a.hidden * a.t_max
    for v in variants:
        spec = build(v, a.hidden, a.weight_scale, res_s)
        reps = max(1, min(a.repeats, a.slow_repeats)) if v == "recurrent" else a.repeats
        t0 = time.perf_counter()
        ex = time_exactsnn(v, spec, batch, warm, a.t_max, a.threads, reps)
        kernel = "queue" if v == "recurrent" else "dense"
        print(f"  {v}: exactsnn ({kernel} kernel) {ex['median_s']:.3f} s per batch "
              f"({time.perf_counter() - t0:.1f} s with warm-up)", flush=True)
        es_row = {"variant": v, "simulator": "exactsnn", "kernel": kernel, "threads": a.threads,
                  "s_per_sample": ex["median_s"] / a.batch, "seconds": ex["seconds"], "ratio": None,
                  "rate_hz": ex["n_spikes"] / n_rate, "spikes": ex["n_spikes"]}
        rows.append(es_row)
        entry = {"variant": v, "exactsnn": {k: es_row[k] for k in ("s_per_sample", "seconds", "rate_hz", "spikes")}}
        if have_nest:
            t0 = time.perf_counter()
            try:
                ne = time_nest(spec, batch, a.t_max, nest_threads, a.resolution, a.nest_repeats,
                               a.omp_wait_policy)
            except RuntimeError as exc:
                print(f"  {v}: NEST failed: {exc}")
                doc_variants.append(entry)
                continue
            print(f"  {v}: NEST simulate {ne['sim_median_s']:.3f} s, total {ne['total_median_s']:.3f} s per batch "
                  f"({time.perf_counter() - t0:.1f} s with start-up)", flush=True)
            agree = agreement(ex["spikes"], ne["spikes"])
            for name, key, secs in (("sim", "sim_median_s", "sim_seconds"), ("total", "total_median_s",
                                                                               "total_seconds")):
                rows.append({"variant": v, "simulator": f"NEST {name}", "threads": nest_threads,
                             "s_per_sample": ne[key] / a.batch, "seconds": ne[secs],
                             "ratio": ne[key] / ex["median_s"], "rate_hz": ne["n_spikes"] / n_rate,
                             "spikes": ne["n_spikes"], "agree": agree})
            entry["nest"] = {"sim_s_per_sample": ne["sim_median_s"] / a.batch,
                             "total_s_per_sample": ne["total_median_s"] / a.batch,
                             "sim_seconds": ne["sim_seconds"], "total_seconds": ne["total_seconds"],
                             "rate_hz": ne["n_spikes"] / n_rate, "spikes": ne["n_spikes"],
                             "ratio_sim": ne["sim_median_s"] / ex["median_s"],
                             "ratio_total": ne["total_median_s"] / ex["median_s"], "agreement": agree,
                             **ne["info"]}
        doc_variants.append(entry)

    print()
    print_table(rows)
    for e in doc_variants:
        first = e.get("nest", {}).get("agreement", {}).get("first_unpaired")
        if first:
            b, j, t, side = min(first, key=lambda f: f[2])
            print(f"{e['variant']}: the simulators diverge in {len(first)} of {a.batch} samples; earliest first "
                  f"unpaired spike: sample {b}, neuron {j}, t = {t:.9f} s ({side}); after it the trajectories differ")
    print()
    print("s/sample = median batch time / batch; vs exactsnn = NEST time / exactsnn time (> 1: exactsnn faster)")
    print("NEST sim = nest.Simulate only; NEST total = ResetKernel + construction + Simulate + read-out, per sample")
    print("miss/extra = NEST spikes without an exactsnn partner (1 us window) / the reverse; max|dt| over matched")
    print("             pairs before a sample's first unpaired spike")
    machine = machine_info(load0)
    print(f"machine: {json.dumps(machine)}")
    print(f"load average (1 min) before/after: {load0:.2f} / {machine['loadavg_1min_before_after'][1]:.2f} "
          f"on {os.cpu_count()} CPUs")
    title = (f"exactsnn vs NEST iaf_psc_exp_ps: {a.hidden} LIF, {N_INPUTS} inputs at {a.rate:g} Hz, "
             f"{a.t_max:g} s, batch {a.batch}, {a.threads} threads")
    if not a.no_plot:
        print(plot(rows, Path(a.png), title))
    if a.json:
        doc = {"machine": machine,
               "workload": {"batch": a.batch, "n_inputs": N_INPUTS, "rate_hz": a.rate, "t_max": a.t_max,
                            "hidden": a.hidden, "resolution_ms": a.resolution, "threads": a.threads,
                            "nest_threads": nest_threads, "repeats": a.repeats, "slow_repeats": a.slow_repeats,
                            "nest_repeats": a.nest_repeats, "omp_wait_policy": a.omp_wait_policy,
                            "seed": a.seed,
                            "input_events": int(batch.n_events), "input_weight_gain": a.weight_scale},
               "variants": doc_variants}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
