"""The speed table of issue 12 ("Engine v2"): one training step (``es.loss_and_grad``) of each network
variant against the delay-free LIF step, measured in the same process on the same input.

Workload: 700 Poisson input channels at 10 Hz (``exactsnn.data.poisson.poisson_batch``, seeded; SHD-like),
a recurrent hidden layer of 256 neurons, a 20-unit LI readout, ``es.loss_and_grad`` with
``es.losses.SumExp()`` and random labels in [0, 20), batch ``--batch`` (8) of ``--duration`` (0.5 s).
Input weights: N(0.5 g / sqrt(700), (g / sqrt(700))^2) (``forward.py``'s distribution); recurrent
N(0, (0.5/sqrt(256))^2); feedforward delays U(0, 25 ms) where on.

Variants (rows; ``--variants`` selects, the baseline always runs):

* ``baseline``            LIF, no delays: the delay-free LIF step every ratio is taken against
* ``lif_delays``          1. LIF + feedforward delays                                  target <= 4x
* ``lif_taus``            2. LIF learning tau_mem, tau_syn                             target <= 2x
* ``adlif``               3. adLIF (shared parameters: tau_w 100 ms, a 0.5, b 0.2)     target <= 3x
* ``adlif_learn``         4. adLIF learning tau_mem, tau_w, a, b                       target <= 4x
* ``adlif_delays_learn``  5. adLIF + feedforward delays + learning tau_mem, tau_w, a, b target <= 6x

"Feedforward delays" means ``Layer(..., delays="feedforward")`` where this exactsnn has it (checked at
run time); otherwise ``delays=True`` with ``params.recurrent_delays`` set to zero (the table says which).
Learned parameters are spread per neuron around the model's shared values (each times U(0.8, 1.2),
seed 1), as they are after training: a kernel with a fast path for equal values must not be flattered.

Calibration: every variant gets its own global scale g of the input weight matrix, found by a short
search (log-log secant inside a bracket) on a calibration batch with another seed, so that its hidden
layer fires at ``--target-rate`` +- ``--rate-tol`` Hz (15 +- 1.5): a quieter variant is cheaper and
would flatter it. The table reports each variant's rate on the timed batch.

Measurement: each variant runs in its own child process (so ``--max-seconds`` can stop it, and each
peak memory is its own), together with the baseline: a warm-up call of each on one calibration sample
(compiles every kernel), the calibration, then ``--repeats`` rounds of (3 baseline calls, 1 variant
call), so that drifts of the machine's load hit both; time = median wall time of the calls; ratio =
variant median / baseline median of the same process. The baseline's own row times the baseline calls
alone (ratio 1). Memory: one extra call of each, ``tracemalloc`` peak (Numba's runtime allocates
through Python's allocator, so it covers the kernels' arrays) and ``ru_maxrss`` growth with the peak
mark reset first (``forward._memory``); the memory ratio uses the tracemalloc peaks. ``--max-seconds``
counts from the end of the warm-up (start-up and compilation are not capped): a child that passes it is
stopped and its row shows ``> cap`` (or the timed calls done so far, marked ``*``); before that, the
child skips further rounds (and the memory call) that would not fit in the cap.

Run: ``python benchmarks/engine_table.py [--quick] [--batch 8] [--duration 0.5] [--repeats 3]
[--threads N] [--variants lif_taus,adlif] [--max-seconds S] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import queue
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numba
import numpy as np

import exactsnn as es
from exactsnn.data.poisson import poisson_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for forward.py / peers.py, this script's siblings
from forward import MEAN_REL, N_INPUTS, N_READOUT, _memory, hidden_rate  # noqa: E402
from peers import load_line, machine  # noqa: E402

N_HIDDEN = 256
RATE_HZ = 10.0
DELAY_MAX = 25e-3
BASE_CALLS_PER_ROUND = 3
TAG = "@@engine-table "
COMPILE_TIMEOUT = 900.0  # s: a child's start, import and warm-up (compilation), before --max-seconds counts
LIF_LEARN = ("tau_mem", "tau_syn")
ADLIF_LEARN = ("tau_mem", "tau_w", "a", "b")


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    neuron: str  # "lif" | "adlif"
    delays: bool = False  # feedforward delays U(0, DELAY_MAX)
    learn: tuple[str, ...] = ()
    target: float | None = None  # speed ratio target (x baseline)
    mem_target: float | None = None  # peak-memory ratio target
    gain_guess: float = 1.5  # first guess of the input-weight scale


VARIANTS = {v.key: v for v in (
    Variant("baseline", "baseline: LIF, no delays", "lif"),
    Variant("lif_delays", "1. LIF + ff delays", "lif", delays=True, target=4.0, mem_target=2.0),
    Variant("lif_taus", "2. LIF learn tau_mem,tau_syn", "lif", learn=LIF_LEARN, target=2.0),
    Variant("adlif", "3. adLIF (shared params)", "adlif", target=3.0, gain_guess=3.0),
    Variant("adlif_learn", "4. adLIF learn tau_mem,tau_w,a,b", "adlif", learn=ADLIF_LEARN, target=4.0,
            gain_guess=3.0),
    Variant("adlif_delays_learn", "5. adLIF + ff delays + learn", "adlif", delays=True, learn=ADLIF_LEARN,
            target=6.0, mem_target=2.0, gain_guess=3.0),
)}


# ----------------------------------------------------------------------------- networks
def feedforward_delay_mode() -> bool:
    """Whether ``es.Layer(..., delays="feedforward")`` exists here: delayed input synapses with zero-delay
    recurrence (checked on a small network: accepted, and it initialises non-zero feedforward delays and
    no recurrent ones)."""
    try:
        net = es.Network(3, [es.Layer(4, es.LIF(), recurrent=True, delays="feedforward", delay_max=1e-3),
                             es.Layer(2, es.LI())])
        p = net.init(seed=0)
    except (ValueError, TypeError):
        return False
    rd = p.recurrent_delays[0]
    return bool(np.any(p.delays[0] > 0)) and (rd is None or not np.any(rd))


def build(v: Variant, ff_mode: bool) -> tuple[es.Network, es.Params]:
    """The variant's network and its parameters at input-weight scale 1 (seed 0)."""
    std = 1.0 / math.sqrt(N_INPUTS)
    neuron = es.LIF() if v.neuron == "lif" else es.AdLIF()
    delays: bool | str = ("feedforward" if ff_mode else True) if v.delays else False
    hidden = es.Layer(N_HIDDEN, neuron, recurrent=True, delays=delays, delay_max=DELAY_MAX,
                      weight_mean=MEAN_REL * std, weight_std=std, learn=v.learn)
    net = es.Network(N_INPUTS, [hidden, es.Layer(N_READOUT, es.LI())])
    params = net.init(seed=0)
    rng = np.random.default_rng(1)
    for name, arr in params.neuron[0].items():  # per-neuron values, as after training (see the docstring)
        params.neuron[0][name] = arr * rng.uniform(0.8, 1.2, arr.shape)
    if v.delays and not ff_mode:  # delays=True puts delays on the recurrent synapses too: zero them
        rd = list(params.recurrent_delays)
        rd[0] = np.zeros_like(rd[0])
        params = replace(params, recurrent_delays=rd)
    return net, params


def scaled(params: es.Params, g: float) -> es.Params:
    """``params`` with the input weight matrix (layer 0) multiplied by ``g``."""
    w = list(params.weights)
    w[0] = w[0] * g
    return replace(params, weights=w)


def calibrate(net: es.Network, params: es.Params, cal: es.SpikeBatch, t_max: float, target: float, tol: float,
              g0: float, max_evals: int = 14) -> tuple[float, float, int]:
    """Scale g of the input weights at which the hidden layer fires at target +- tol Hz on ``cal``:
    bracket by factors of 1.5, then secant steps on log(rate) vs log(g), kept inside the bracket's
    middle 80 %. Returns (g, rate, evaluations)."""
    lo = hi = None  # (g, rate) below / above the target
    g, best = g0, None
    for n in range(1, max_evals + 1):
        r = hidden_rate(net, scaled(params, g), cal, t_max)
        if best is None or abs(r - target) < abs(best[1] - target):
            best = (g, r)
        if abs(r - target) <= tol:
            return g, r, n
        if r < target:
            lo = (g, r)
        else:
            hi = (g, r)
        if lo is None:
            g = hi[0] / 1.5
        elif hi is None:
            g = lo[0] * 1.5
        else:
            a, b = math.log(lo[0]), math.log(hi[0])
            if lo[1] > 0:
                s = (math.log(target) - math.log(lo[1])) / (math.log(hi[1]) - math.log(lo[1]))
                s = min(max(s, 0.1), 0.9)
            else:
                s = 0.5
            g = math.exp(a + s * (b - a))
    return best[0], best[1], max_evals


# ----------------------------------------------------------------------------- child process
def _emit(event: str, **kw) -> None:
    print(TAG + json.dumps({"event": event, **kw}), flush=True)


def worker(spec: dict) -> dict:
    """Measure one variant and the baseline in this process (see the module docstring)."""
    cap = spec["max_seconds"]
    numba.set_num_threads(spec["threads"])
    B, T = spec["batch"], spec["duration"]
    batch = poisson_batch(B, N_INPUTS, RATE_HZ, T, seed=spec["seed"])
    labels = np.random.default_rng(spec["seed"]).integers(0, N_READOUT, size=B)
    cal = poisson_batch(spec["cal_batch"], N_INPUTS, RATE_HZ, T, seed=spec["seed"] + 1000)
    warm = cal.select(np.arange(1))
    warm_labels = np.zeros(1, dtype=np.int64)
    loss = es.losses.SumExp()
    ff_mode = feedforward_delay_mode()
    v = VARIANTS[spec["variant"]]
    base_net, base_p0 = build(VARIANTS["baseline"], ff_mode)
    net, p0 = build(v, ff_mode)

    out: dict = {"variant": v.key, "ff_delay_mode": ff_mode, "threads": spec["threads"]}
    # warm-up: one calibration sample through both steps at a first-guess gain (compiles every kernel)
    t0 = time.perf_counter()
    g_guess = spec.get("gain_hint") or v.gain_guess
    es.loss_and_grad(base_net, scaled(base_p0, spec.get("base_gain") or VARIANTS["baseline"].gain_guess), warm,
                     warm_labels, loss=loss, t_max=T)
    es.loss_and_grad(net, scaled(p0, g_guess), warm, warm_labels, loss=loss, t_max=T)
    out["warmup_seconds"] = time.perf_counter() - t0
    _emit("compiled", **out)
    t_start = time.perf_counter()  # --max-seconds counts from here

    t0 = time.perf_counter()
    g_base = spec.get("base_gain")
    if g_base is None or v.key == "baseline":
        g_base, r, n = calibrate(base_net, base_p0, cal, T, spec["target_rate"], spec["rate_tol"],
                                 VARIANTS["baseline"].gain_guess)
        g = g_base
    else:
        g, r, n = calibrate(net, p0, cal, T, spec["target_rate"], spec["rate_tol"], g_guess)
    out.update(base_gain=g_base, gain=g, cal_rate=r, cal_evals=n)
    out["cal_seconds"] = time.perf_counter() - t0
    _emit("progress", **out)

    base_p, params = scaled(base_p0, g_base), scaled(p0, g)

    def base_call():
        return es.loss_and_grad(base_net, base_p, batch, labels, loss=loss, t_max=T, outputs=True)

    def var_call():
        return es.loss_and_grad(net, params, batch, labels, loss=loss, t_max=T, outputs=True)

    def fits(est: float) -> bool:
        return cap is None or time.perf_counter() - t_start + 1.1 * est <= cap

    is_base = v.key == "baseline"  # its row: the baseline calls alone, ratio 1 by definition
    base_s: list[float] = []
    var_s: list[float] = []
    base_c: list[float] = []  # process CPU seconds (all threads) of the same calls
    var_c: list[float] = []

    def timed(fn, wall: list[float], cpu: list[float]):
        c0, t0 = time.process_time(), time.perf_counter()
        r = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        return r

    for i in range(spec["repeats"]):
        if i > 0 and not fits((0.0 if is_base else var_s[-1]) + sum(base_s[-BASE_CALLS_PER_ROUND:])):
            out["note"] = f"{i} of {spec['repeats']} rounds (the next would pass --max-seconds)"
            break
        for _ in range(BASE_CALLS_PER_ROUND):
            res = timed(base_call, base_s, base_c)
        if not is_base:
            res = timed(var_call, var_s, var_c)
        spikes = float(res[2].counts[0].sum())
        secs, cpus = (base_s, base_c) if is_base else (var_s, var_c)
        out.update(seconds=secs, base_seconds=base_s, median_s=statistics.median(secs),
                   base_median_s=statistics.median(base_s), cpu_seconds=cpus, base_cpu_seconds=base_c,
                   rate_hz=spikes / (B * N_HIDDEN * T), hidden_spikes_per_sample=spikes / B)
        out["ratio"] = out["median_s"] / out["base_median_s"]
        out["cpu_ratio"] = statistics.median(cpus) / statistics.median(base_c)
        _emit("progress", **out)
    if spec["memory"] and fits(out["median_s"] + out["base_median_s"]):
        out["base_tracemalloc_mib"], out["base_rss_mib"], out["peak_rss_reset"] = _memory(base_call)
        if is_base:
            out["tracemalloc_mib"], out["rss_mib"] = out["base_tracemalloc_mib"], out["base_rss_mib"]
        else:
            out["tracemalloc_mib"], out["rss_mib"], _ = _memory(var_call)
        out["mem_ratio"] = out["tracemalloc_mib"] / out["base_tracemalloc_mib"]
    elif spec["memory"]:
        out["note"] = (out.get("note", "") + "; " if "note" in out else "") + "memory call skipped (--max-seconds)"
    out["threading_layer"] = numba.threading_layer()
    out["load_avg_1min"] = os.getloadavg()[0]
    out["child_seconds"] = time.perf_counter() - t_start
    return out


def worker_main(arg: str) -> int:
    """Entry of a child process: run :func:`worker` on the JSON spec, print the result as a tagged line."""
    spec = json.loads(arg)
    try:
        _emit("result", **worker(spec))
    except Exception as e:  # reported as the row's error rather than a traceback in the table
        _emit("error", variant=spec.get("variant"), error=f"{type(e).__name__}: {e}")
        return 1
    return 0


def spawn(spec: dict, timeout: float | None, log) -> dict:
    """Run ``spec`` in a child; its result, or the last progress it reported plus ``capped``/``error``."""
    p = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)],
                         stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        for line in p.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    t0 = time.perf_counter()
    deadline = t0 + COMPILE_TIMEOUT  # until the child reports its kernels compiled
    last: dict = {"variant": spec["variant"]}
    while True:
        left = None if (timeout is None and "warmup_seconds" in last) else deadline - time.perf_counter()
        try:
            line = lines.get(timeout=None if left is None else max(left, 0.0))
        except queue.Empty:
            p.kill()
            p.wait()
            what = {"capped": True} if "warmup_seconds" in last else {"error": "no compiled kernels after "
                                                                                f"{COMPILE_TIMEOUT:g} s"}
            return last | what | {"child_seconds": time.perf_counter() - t0}
        if line is None:
            p.wait()
            return last | {"error": f"child exited with {p.returncode} without a result"}
        if not line.startswith(TAG):
            continue
        msg = json.loads(line[len(TAG):])
        event = msg.pop("event")
        if event == "result":
            p.wait()
            return msg
        if event == "error":
            p.wait()
            return last | msg
        if event == "compiled" and timeout is not None:
            deadline = time.perf_counter() + timeout
        if "gain" in msg and "gain" not in last:
            log(f"  {spec['variant']}: gain {msg['gain']:.4g} -> {msg['cal_rate']:.1f} Hz on the calibration batch "
                f"({msg['cal_evals']} forward calls, {msg['cal_seconds']:.1f} s)")
        last = {"variant": spec["variant"]} | msg


# ----------------------------------------------------------------------------- table
def _verdict(value: float | None, target: float | None, capped_lower: float | None = None) -> str:
    if target is None:
        return "-"
    if value is None:
        return "MISS" if capped_lower is not None and capped_lower > target else "?"
    return "PASS" if value <= target else "MISS"


def _ratio(x: float) -> str:
    return f"{x:.2f}x" if x < 100 else f"{x:.0f}x"


def _secs(x: float) -> str:
    return f"{x:.4f}" if x < 10 else f"{x:.2f}"


def table_rows(results: list[dict], cap: float | None) -> list[list[str]]:
    """The table's cells, one list per variant."""
    rows = []
    base_row = next((r for r in results if r["variant"] == "baseline" and "median_s" in r), None)
    for res in results:
        v = VARIANTS[res["variant"]]
        rate = f"{res['rate_hz']:.1f}" if "rate_hz" in res else (
            f"({res['cal_rate']:.1f})" if "cal_rate" in res else "-")
        lower = None
        base_s = res.get("base_median_s")
        if "median_s" in res:  # complete, or capped after some timed rounds (marked with *)
            n = len(res["seconds"])
            time_s, ratio = f"{_secs(res['median_s'])} ({n}{'*' if res.get('capped') else ''})", res["ratio"]
            ratio_s = _ratio(ratio)
        elif res.get("capped"):
            time_s, ratio, ratio_s = f"> cap {cap:g}s", None, "> cap"
            base = base_s or (base_row or {}).get("median_s")
            lower = cap / base if base else None
        else:
            time_s, ratio, ratio_s = "error", None, "-"
        tm = res.get("tracemalloc_mib")
        mr = res.get("mem_ratio")
        rows.append([
            v.label, rate, time_s, "-" if base_s is None else _secs(base_s), ratio_s,
            "-" if res.get("cpu_ratio") is None else _ratio(res["cpu_ratio"]),
            "-" if v.target is None else f"<= {v.target:g}x",
            _verdict(ratio, v.target, lower),
            "-" if tm is None else f"{tm:.1f}", "-" if res.get("rss_mib") is None else f"{res['rss_mib']:.1f}",
            "-" if mr is None else f"{mr:.2f}x", "-" if v.mem_target is None else f"<= {v.mem_target:g}x",
            _verdict(mr, v.mem_target),
        ])
    return rows


HEAD = ["variant", "rate Hz", "l&g s (n)", "base s", "ratio", "cpu ratio", "target", "speed", "tm MiB", "rss MiB",
        "mem ratio", "mem target", "memory"]


def print_table(cells: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(HEAD)]
    line = "  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(HEAD, widths, strict=True)))
    print(line)
    print("-" * len(line))
    for r in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True))))


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smoke run: batch 2, 0.25 s, 1 repeat, cap 60 s")
    p.add_argument("--batch", type=int, default=8, help="samples per batch")
    p.add_argument("--duration", type=float, default=0.5, help="sample duration, s")
    p.add_argument("--repeats", type=int, default=3, help="timed variant calls (median reported)")
    p.add_argument("--threads", type=int, default=None, help="Numba threads (default: all)")
    p.add_argument("--variants", default=",".join(k for k in VARIANTS if k != "baseline"),
                   help=f"comma list from {','.join(VARIANTS)} (the baseline always runs)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="time cap per variant after its warm-up (calibration included); '> cap' past it "
                        "(default 900, 60 with --quick)")
    p.add_argument("--target-rate", type=float, default=15.0, help="hidden rate (Hz) every variant is tuned to")
    p.add_argument("--rate-tol", type=float, default=1.5, help="accepted distance from --target-rate, Hz")
    p.add_argument("--cal-batch", type=int, default=4, help="samples of the calibration batch")
    p.add_argument("--no-memory", action="store_true", help="skip the memory calls")
    p.add_argument("--seed", type=int, default=0, help="seed of the Poisson inputs and labels")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    a = p.parse_args(argv)
    if a.quick:
        a.batch, a.duration, a.repeats = min(a.batch, 2), min(a.duration, 0.25), 1
        a.cal_batch = min(a.cal_batch, 2)
    if a.max_seconds is None:
        a.max_seconds = 60.0 if a.quick else 900.0
    chosen = [x.strip() for x in a.variants.split(",") if x.strip()]
    bad = [x for x in chosen if x not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {bad}; choose from {','.join(VARIANTS)}")
    a.chosen = ["baseline"] + [x for x in dict.fromkeys(chosen) if x != "baseline"]
    max_threads = numba.config.NUMBA_NUM_THREADS
    a.threads = max_threads if a.threads is None else a.threads
    if not 1 <= a.threads <= max_threads:
        p.error(f"--threads must be in [1, {max_threads}] (NUMBA_NUM_THREADS)")
    for name in ("batch", "repeats", "cal_batch"):
        if getattr(a, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if not (a.duration > 0 and a.max_seconds > 0):
        p.error("--duration and --max-seconds must be > 0")
    return a


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def code_version() -> str:
    """The commit of the checkout that holds the imported exactsnn and whether its exactsnn/ differs from it
    (so saved tables can be traced)."""
    root = Path(es.__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "exactsnn"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" + uncommitted changes in exactsnn/" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv[:1] == ["--worker"]:
        return worker_main(argv[1])
    a = parse(argv)
    load0 = os.getloadavg()
    ff_mode = feedforward_delay_mode()
    print(f"exactsnn engine table (issue 12)  (python {platform.python_version()}, numba {numba.__version__}, "
          f"numpy {np.__version__})")
    version = code_version()
    print(f"exactsnn at {version} ({Path(es.__file__).resolve().parent})")
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical CPUs; numba threads: "
          f"{a.threads}; {load_line()}")
    print(f"workload: batch {a.batch} x {a.duration:g} s, {N_INPUTS} Poisson inputs at {RATE_HZ:g} Hz (seed {a.seed}), "
          f"{N_HIDDEN} recurrent hidden, {N_READOUT} LI readout, es.loss_and_grad with SumExp; ff delays "
          f"U(0, {DELAY_MAX * 1e3:g} ms); hidden rate tuned to {a.target_rate:g} +- {a.rate_tol:g} Hz per variant")
    spec = {"batch": a.batch, "duration": a.duration, "repeats": a.repeats, "threads": a.threads, "seed": a.seed,
            "cal_batch": a.cal_batch, "target_rate": a.target_rate, "rate_tol": a.rate_tol,
            "memory": not a.no_memory, "max_seconds": a.max_seconds}
    timeout = None if a.max_seconds is None else a.max_seconds + 10.0  # the child stops itself before
    results: list[dict] = []
    hints: dict[str, float] = {}
    base_gain = None
    for key in a.chosen:
        t0 = time.perf_counter()
        v = VARIANTS[key]
        res = spawn(spec | {"variant": key, "base_gain": base_gain, "gain_hint": hints.get(v.neuron)},
                    timeout, print)
        if key == "baseline":
            if "gain" not in res:
                print(f"baseline failed: {res.get('error', 'capped')}")
                return 1
            base_gain = res["gain"]
        if "gain" in res:
            hints.setdefault(v.neuron, res["gain"])
        state = ("> cap" if res.get("capped") else res.get("error", f"{res.get('ratio', float('nan')):.2f}x"))
        print(f"  {key}: {state} ({time.perf_counter() - t0:.1f} s)", flush=True)
        results.append(res)
    print()
    print_table(table_rows(results, a.max_seconds))
    print()
    print("rate Hz    = hidden rate on the timed batch (in brackets: on the calibration batch, if the run was capped)")
    print("l&g s (n)  = median wall time of one es.loss_and_grad call on the whole batch, over n timed calls")
    print("base s     = median of the baseline's calls in the same process (3 per timed round, interleaved)")
    print("ratio      = l&g s / base s; target and speed: the issue's target and PASS/MISS against it")
    print("cpu ratio  = the same ratio of median process CPU times (all threads): less sensitive to other load")
    print("tm MiB     = tracemalloc peak of one extra call; rss MiB: ru_maxrss growth during it (peak mark reset)")
    print("mem ratio  = tracemalloc peak / the baseline's, same process (target for the delay rows: <= 2x)")
    print("(n*)       = stopped by --max-seconds after n timed calls; '> cap': stopped before the first")
    if ff_mode:
        print("ff delays  = es.Layer(..., delays='feedforward'): delayed input synapses, instantaneous recurrence")
    else:
        print("note: this exactsnn has no Layer(delays='feedforward'): the ff-delay rows use delays=True with the "
              "recurrent delays set to zero (recurrent arrivals still take the delay kernel's path)")
    learn = {k: VARIANTS[k].learn for k in a.chosen if VARIANTS[k].learn}
    if learn:
        print("learned (per neuron, shared values times U(0.8, 1.2)): "
              + "; ".join(f"{k} {', '.join(x)}" for k, x in learn.items()))
    for r in results:
        if r.get("note") or r.get("error"):
            print(f"{r['variant']}: {r.get('error') or r.get('note')}")
    mach = machine(load0[0], next((r["threading_layer"] for r in results if "threading_layer" in r), None))
    mach["cpu_model"] = cpu_name()
    print("gains: " + ", ".join(f"{r['variant']} {r['gain']:.4g}" for r in results if "gain" in r))
    print(f"load average before/after: {load0[0]:.2f} / {mach['loadavg_1min_before_after'][1]:.2f} (1 min); "
          f"{load_line()}")
    if a.json:
        doc = {"machine": mach,
               "exactsnn": version,
               "workload": {"batch": a.batch, "duration_s": a.duration, "n_inputs": N_INPUTS, "rate_hz": RATE_HZ,
                            "hidden": N_HIDDEN, "readout": N_READOUT, "delay_max_s": DELAY_MAX,
                            "repeats": a.repeats, "seed": a.seed, "target_rate_hz": a.target_rate,
                            "rate_tol_hz": a.rate_tol, "cal_batch": a.cal_batch, "max_seconds": a.max_seconds,
                            "feedforward_delay_mode": ff_mode},
               "variants": [r | {"label": VARIANTS[r["variant"]].label, "target": VARIANTS[r["variant"]].target,
                                 "mem_target": VARIANTS[r["variant"]].mem_target} for r in results]}
        with open(a.json, "w") as f:
            json.dump(doc, f, indent=2)
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
