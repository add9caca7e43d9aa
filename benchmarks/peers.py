"""Shared pieces of the peer comparisons (``training_step.py``, ``scaling.py``): exactsnn against snnTorch BPTT.

Not a benchmark by itself: it holds the two training steps, the child-process workers that time them,
and the memory probes.

Network (both frameworks): 700 inputs -> 256 recurrent current-based LIF (tau_mem 20 ms, tau_syn 5 ms,
threshold 1; exactsnn resets to 0, snnTorch subtracts the threshold) -> 20 LI readout (same time
constants, no spikes).

* exactsnn: ``forward.make_net("recurrent", n_hidden, gain)`` (input weights N(0.5 g/sqrt(700),
  (g/sqrt(700))^2), recurrent N(0, (0.5/sqrt(n))^2), readout N(0, 1/n)); one training step is
  ``es.loss_and_grad(net, params, batch, labels, loss=es.losses.SumExp(), t_max=t_max, outputs=True)``
  (exact event-driven forward pass + EventProp backward; ``outputs=True`` only adds the hidden spike
  counts, from the recording) followed by ``exactsnn.optim.adam_step`` (lr 1e-3). Inputs are
  ``SpikeBatch``es from ``poisson_batch`` (~7000 spikes per 1 s sample at 10 Hz, like SHD).
* snnTorch (:func:`snntorch_model`): ``Linear(700, 256, bias=False)`` -> ``snn.RSynaptic`` (snnTorch's
  recurrent current-based LIF: ``syn = alpha syn + in + Linear(256, 256)(spk)``, ``mem = beta mem + syn
  - reset``, with ``alpha = exp(-dt/tau_syn)``, ``beta = exp(-dt/tau_mem)``, threshold 1, reset by
  subtraction, surrogate ``snntorch.surrogate.fast_sigmoid()``; its all-to-all ``recurrent`` Linear is
  replaced by a bias-free one) -> ``Linear(256, 20, bias=False)`` -> ``snn.Synaptic`` with
  ``reset_mechanism="none"`` and threshold 1e9 (a leaky integrator that never fires). dt = 1 ms. The
  input projection ``Linear(700, 256)`` is applied to the whole (T, B, 700) input in one matrix product
  before the time loop (it does not depend on the state; this is the fast way to write it), the rest
  runs step by step (the time loop walks ``unbind(0)`` of that product: indexing it as ``cur[t]``
  would make every step's backward build a full (T, B, 256) zero gradient, O(T^2), ~10x slower at
  T = 1000). The weights are exactsnn's times ``c = (1 - alpha)(1 - beta) tau_syn / dt`` (snnTorch adds
  ``syn`` to ``mem`` unscaled each step; with this factor the discrete PSP has the area and, within 1%,
  the peak of the continuous one), so the two are the same network up to the time discretisation and
  fire at similar rates (both rates are reported).
  Loss: cross-entropy of the readout membrane averaged over the T time steps (the cost of the step is
  dominated by the recurrent layer, not by the loss). Optimiser ``torch.optim.Adam`` with lr 1e-3 x c
  (Adam's step does not scale with the gradient, so this makes its steps the same in exactsnn's units;
  with lr 1e-3 one step would move the ~c-times-smaller weights by most of their size). The
  input is the ``SpikeBatch`` binned at dt into a dense float32 (T, B, 700) tensor of 0/1 spikes
  (:func:`bin_batch`; two spikes of one channel in one bin count once).

Workers. Each framework is measured in its own child process (:func:`spawn`: ``[sys.executable, script,
"--worker", JSON]``; the script hands ``--worker`` to :func:`worker_main`, which prints one JSON line),
so that its peak memory is its own. In the worker: build the model and the data, run one warm-up step
on a tiny batch (batch 1, 20 ms: compiles / initialises, allocates the optimiser state), read the
current resident set (VmRSS in /proc/self/status) as the baseline, reset the kernel's peak mark
(``/proc/self/clear_refs`` <- 5 resets VmHWM to the current RSS), run ``repeats`` timed full-size steps,
then peak = VmHWM - baseline: the memory the training steps needed on top of the model, its optimiser
state and the input data (whose own size is reported separately as ``input_mib``). The exactsnn worker
also reports the ``tracemalloc`` peak of one extra step (Numba's runtime allocates through Python's
allocator, so tracemalloc sees the kernels' arrays). Both report the threads used (``numba.set_num_threads``
/ ``torch.set_num_threads``), the hidden spike rate and spikes per sample, and the loss of the last step.
If torch or snntorch cannot be imported, the snnTorch worker reports ``skipped`` (install them with
``pip install -e ".[bench]"``).
"""

from __future__ import annotations

import gc
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import exactsnn as es
from exactsnn.data.poisson import poisson_batch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # for forward.py, this module's sibling
from forward import N_INPUTS, N_READOUT, _clear_peak_rss, machine_info, make_net  # noqa: E402

TAU_MEM = 20e-3
TAU_SYN = 5e-3
DT = 1e-3
LR = 1e-3
WARM_T = 0.02  # s: duration of the warm-up sample
RESULT_TAG = "@@peers-result "
INSTALL_HINT = 'pip install -e ".[bench]"'


# ----------------------------------------------------------------------------- memory probes
def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def rss_mib() -> float:
    """Current resident set (VmRSS), MiB."""
    return _status_kib("VmRSS") / 1024


def hwm_mib() -> float:
    """Peak resident set since start or since the last :func:`reset_peak` (VmHWM), MiB."""
    return _status_kib("VmHWM") / 1024


reset_peak = _clear_peak_rss  # resets VmHWM to the current RSS (Linux /proc/self/clear_refs); False where not allowed


def snntorch_available() -> str | None:
    """None if torch and snntorch can be found, else the reason they cannot."""
    missing = []
    for m in ("torch", "snntorch"):
        try:
            if importlib.util.find_spec(m) is None:
                missing.append(m)
        except (ImportError, ValueError):
            missing.append(m)
    return f"{', '.join(missing)} not installed" if missing else None


# ----------------------------------------------------------------------------- data
def make_data(batch: int, rate: float, t_max: float, seed: int) -> tuple[es.SpikeBatch, np.ndarray]:
    """Poisson inputs (700 channels) and random labels in [0, 20), both from ``seed``."""
    spikes = poisson_batch(batch, N_INPUTS, rate, t_max, seed=seed)
    labels = np.random.default_rng(seed + 1000).integers(0, N_READOUT, size=batch)
    return spikes, labels


def bin_batch(batch: es.SpikeBatch, t_max: float, dt: float = DT):
    """Dense float32 torch tensor (T, B, n_units), T = round(t_max/dt), 1 where a channel spiked in a bin."""
    import torch

    n_t = max(int(round(t_max / dt)), 1)
    n_units = batch.n_units if batch.n_units is not None else int(batch.units.max()) + 1
    sample = np.repeat(np.arange(len(batch)), batch.counts())
    step = np.minimum((batch.times / dt).astype(np.int64), n_t - 1)
    x = np.zeros((n_t, len(batch), n_units), dtype=np.float32)
    x[step, sample, batch.units] = 1.0
    return torch.from_numpy(x)


# ----------------------------------------------------------------------------- snnTorch
def snntorch_model(n_in: int = N_INPUTS, n_hidden: int = 256, n_out: int = N_READOUT, tau_mem: float = TAU_MEM,
                   tau_syn: float = TAU_SYN, dt: float = DT, recurrent: bool = True):
    """The 700-256(recurrent)-20 network in snnTorch (see the module docstring), random weights."""
    import snntorch as snn
    import torch
    from snntorch import surrogate

    alpha, beta = math.exp(-dt / tau_syn), math.exp(-dt / tau_mem)

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(n_in, n_hidden, bias=False)
            if recurrent:
                self.lif1 = snn.RSynaptic(alpha, beta, linear_features=n_hidden, threshold=1.0,
                                          spike_grad=surrogate.fast_sigmoid(), reset_mechanism="subtract")
                self.lif1.recurrent = torch.nn.Linear(n_hidden, n_hidden, bias=False)
            else:
                self.lif1 = snn.Synaptic(alpha, beta, threshold=1.0, spike_grad=surrogate.fast_sigmoid(),
                                         reset_mechanism="subtract")
            self.fc2 = torch.nn.Linear(n_hidden, n_out, bias=False)
            self.out = snn.Synaptic(alpha, beta, threshold=1e9, reset_mechanism="none")
            self.recurrent = recurrent

        def forward(self, x):
            """x (T, B, n_in) -> (readout membrane averaged over T (B, n_out), hidden spike count)."""
            cur = self.fc1(x)  # the input projection of every time step in one product
            b = x.shape[1]
            h = cur.new_zeros((b, n_hidden))
            syn1, mem1 = h, h
            spk1 = h
            syn2 = mem2 = cur.new_zeros((b, n_out))
            acc = cur.new_zeros((b, n_out))
            n_spk = cur.new_zeros(())
            # unbind, not cur[t]: the backward of cur[t] would build a full (T, B, n) zero tensor per step
            for c in cur.unbind(0):
                if self.recurrent:
                    spk1, syn1, mem1 = self.lif1(c, spk1, syn1, mem1)
                else:
                    spk1, syn1, mem1 = self.lif1(c, syn1, mem1)
                _, syn2, mem2 = self.out(self.fc2(spk1), syn2, mem2)
                acc = acc + mem2
                n_spk += spk1.detach().sum()
            return acc / x.shape[0], n_spk

    return Net()


def weight_factor(tau_mem: float = TAU_MEM, tau_syn: float = TAU_SYN, dt: float = DT) -> float:
    """c = (1 - alpha)(1 - beta) tau_syn / dt: exactsnn weight -> snnTorch weight with equal PSP area.

    A weight-w input gives exactsnn a PSP of area w tau_syn (tau_mem dV/dt = -V + I, I += w) and
    snnTorch (syn = alpha syn + c w, mem = beta mem + syn) one of area c w dt / ((1 - alpha)(1 - beta)).
    """
    alpha, beta = math.exp(-dt / tau_syn), math.exp(-dt / tau_mem)
    return (1.0 - alpha) * (1.0 - beta) * tau_syn / dt


def load_exactsnn_weights(model, params: es.Params, dt: float = DT) -> None:
    """Copy exactsnn's weights into ``model``, times :func:`weight_factor`."""
    import torch

    c = weight_factor(dt=dt)
    with torch.no_grad():
        model.fc1.weight.copy_(torch.from_numpy(params.weights[0] * c))
        model.fc2.weight.copy_(torch.from_numpy(params.weights[1] * c))
        if params.recurrent_weights[0] is not None:
            model.lif1.recurrent.weight.copy_(torch.from_numpy(params.recurrent_weights[0] * c))


def snntorch_step(model, opt, x, labels) -> tuple[float, float]:
    """One BPTT training step (forward over all T steps, loss, backward, Adam): (loss, hidden spikes)."""
    import torch

    scores, n_spk = model(x)
    loss = torch.nn.functional.cross_entropy(scores, labels)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return float(loss.detach()), float(n_spk)


# ----------------------------------------------------------------------------- exactsnn
@dataclass
class ExactsnnRun:
    """What one exactsnn training step needs; ``params`` and ``state`` are advanced by every step."""

    net: es.Network
    params: es.Params
    opt: object
    state: object
    loss: object
    t_max: float


def exactsnn_setup(n_hidden: int, gain: float, t_max: float, lr: float = LR) -> ExactsnnRun:
    """Recurrent network of ``forward.make_net`` with input-weight gain ``gain``, its Adam state, SumExp loss."""
    from exactsnn.optim import Adam, adam_init

    net, params = make_net("recurrent", n_hidden, gain)
    return ExactsnnRun(net, params, Adam(lr=lr), adam_init(net, params), es.losses.SumExp(), t_max)


def exactsnn_step(run: ExactsnnRun, batch: es.SpikeBatch, labels: np.ndarray) -> tuple[float, float]:
    """One training step: loss_and_grad (exact forward + EventProp) and adam_step: (loss, hidden spikes)."""
    from exactsnn.optim import adam_step

    value, grads, out = es.loss_and_grad(run.net, run.params, batch, labels, loss=run.loss, t_max=run.t_max,
                                         outputs=True)
    run.params, run.state = adam_step(run.opt, run.state, run.net, run.params, grads)
    return float(value), float(out.counts[0].sum())


# ----------------------------------------------------------------------------- workers
def _timed(step, repeats: int) -> tuple[list[float], list[float], tuple]:
    wall, cpu, last = [], [], ()
    for _ in range(repeats):
        c0 = time.process_time()
        t0 = time.perf_counter()
        last = step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu, last


def _result(spec: dict, wall: list[float], cpu: list[float], baseline: float, peak: float, reset: bool,
            loss: float, spikes: float, threads: int, input_events: int, input_mib: float) -> dict:
    b, n, t = spec["batch"], spec["hidden"], spec["t_max"]
    return {
        "framework": spec["framework"], "batch": b, "hidden": n, "t_max": t, "rate": spec["rate"],
        "threads": threads, "seconds": wall, "cpu_seconds": cpu, "median_s": statistics.median(wall),
        "cpu_median_s": statistics.median(cpu), "baseline_rss_mib": baseline, "peak_mib": peak,
        "peak_reset": reset, "loss": loss, "hidden_spikes_per_sample": spikes / b,
        "hidden_rate_hz": spikes / (b * n * t), "input_spikes_per_sample": input_events / b,
        "input_mib": input_mib,
    }


def _worker_exactsnn(spec: dict) -> dict:
    import numba

    threads = min(spec["threads"], numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(threads)
    run = exactsnn_setup(spec["hidden"], spec["gain"], spec["t_max"])
    batch, labels = make_data(spec["batch"], spec["rate"], spec["t_max"], spec["seed"])
    warm, warm_labels = make_data(1, spec["rate"], WARM_T, spec["seed"] + 1)
    exactsnn_step(run, warm, warm_labels)  # loads / compiles the kernels, starts the thread pool
    gc.collect()
    baseline = rss_mib()
    reset = reset_peak()
    h0 = hwm_mib()
    wall, cpu, (loss, spikes) = _timed(lambda: exactsnn_step(run, batch, labels), spec["repeats"])
    peak = max(hwm_mib() - (baseline if reset else h0), 0.0)
    gc.collect()
    tracemalloc.start()
    try:
        exactsnn_step(run, batch, labels)
        _, tm_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    input_mib = (batch.times.nbytes + batch.units.nbytes + batch.offsets.nbytes) / 2**20
    out = _result(spec, wall, cpu, baseline, peak, reset, loss, spikes, threads, int(batch.n_events), input_mib)
    out["tracemalloc_mib"] = tm_peak / 2**20
    out["numba_threading_layer"] = numba.threading_layer()
    return out


def _worker_snntorch(spec: dict) -> dict:
    try:
        import snntorch  # noqa: F401
        import torch
    except ImportError as exc:
        return {"framework": "snntorch", "skipped": f"{exc} (install with {INSTALL_HINT})"}
    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    dt = spec.get("dt", DT)
    _, params = make_net("recurrent", spec["hidden"], spec["gain"])
    model = snntorch_model(n_hidden=spec["hidden"], dt=dt)
    load_exactsnn_weights(model, params, dt=dt)
    opt = torch.optim.Adam(model.parameters(), lr=LR * weight_factor(dt=dt))
    batch, labels = make_data(spec["batch"], spec["rate"], spec["t_max"], spec["seed"])
    x, y = bin_batch(batch, spec["t_max"], dt), torch.from_numpy(labels)
    warm, warm_labels = make_data(1, spec["rate"], WARM_T, spec["seed"] + 1)
    snntorch_step(model, opt, bin_batch(warm, WARM_T, dt), torch.from_numpy(warm_labels))  # also creates Adam's state
    gc.collect()
    baseline = rss_mib()
    reset = reset_peak()
    h0 = hwm_mib()
    wall, cpu, (loss, spikes) = _timed(lambda: snntorch_step(model, opt, x, y), spec["repeats"])
    peak = max(hwm_mib() - (baseline if reset else h0), 0.0)
    out = _result(spec, wall, cpu, baseline, peak, reset, loss, spikes, torch.get_num_threads(),
                  int(batch.n_events), x.element_size() * x.nelement() / 2**20)
    out.update(dt=dt, time_steps=int(x.shape[0]), torch=torch.__version__, snntorch=snntorch.__version__)
    return out


def _worker_epoch(spec: dict) -> dict:
    """exactsnn over ``n_samples`` Poisson samples in batches (data generated in chunks, not timed)."""
    import numba

    threads = min(spec["threads"], numba.config.NUMBA_NUM_THREADS)
    numba.set_num_threads(threads)
    run = exactsnn_setup(spec["hidden"], spec["gain"], spec["t_max"])
    warm, warm_labels = make_data(1, spec["rate"], WARM_T, spec["seed"] + 1)
    exactsnn_step(run, warm, warm_labels)
    n, bsz, chunk = spec["n_samples"], spec["batch"], spec["batch"] * spec.get("chunk_batches", 16)
    step_s = gen_s = 0.0
    steps, spikes, events = 0, 0.0, 0
    loss = float("nan")
    t_all = time.perf_counter()
    for c0 in range(0, n, chunk):
        t0 = time.perf_counter()
        data, labels = make_data(min(chunk, n - c0), spec["rate"], spec["t_max"], spec["seed"] + 7919 * (c0 // chunk))
        gen_s += time.perf_counter() - t0
        for b0 in range(0, len(data), bsz):
            idx = np.arange(b0, min(b0 + bsz, len(data)))
            t0 = time.perf_counter()
            sub = data.select(idx)
            gen_s += time.perf_counter() - t0
            t0 = time.perf_counter()
            loss, s = exactsnn_step(run, sub, labels[idx])
            step_s += time.perf_counter() - t0
            steps += 1
            spikes += s
            events += int(sub.n_events)
    return {"framework": "exactsnn", "mode": "epoch", "n_samples": n, "batch": bsz, "steps": steps,
            "threads": threads, "step_seconds": step_s, "data_seconds": gen_s,
            "wall_seconds": time.perf_counter() - t_all, "loss": loss,
            "hidden_rate_hz": spikes / (n * spec["hidden"] * spec["t_max"]), "input_spikes_per_sample": events / n}


WORKERS = {"exactsnn": _worker_exactsnn, "snntorch": _worker_snntorch, "epoch": _worker_epoch}


def worker_main(argv: list[str]) -> int:
    """Entry of a child process: ``argv = [JSON spec]``; prints the result as one tagged JSON line."""
    spec = json.loads(argv[0])
    out = WORKERS[spec.get("mode", spec["framework"])](spec)
    out["load_avg_1min"] = os.getloadavg()[0]
    print(RESULT_TAG + json.dumps(out), flush=True)
    return 0


def spawn(script: str, spec: dict, timeout: float | None = None) -> dict:
    """Run ``spec`` in a fresh ``python script --worker JSON`` child; its result, or {"error": ...}."""
    try:
        p = subprocess.run([sys.executable, script, "--worker", json.dumps(spec)], capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"framework": spec.get("framework"), "error": f"timed out after {timeout} s"}
    for line in reversed(p.stdout.splitlines()):
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    tail = (p.stderr or p.stdout).strip().splitlines()[-5:]
    return {"framework": spec.get("framework"), "error": f"worker exited with {p.returncode}: " + " | ".join(tail)}


def load_line() -> str:
    """The 1/5/15-minute load averages and the CPU count, for the reports."""
    l1, l5, l15 = os.getloadavg()
    return f"load average {l1:.2f} (1 min), {l5:.2f} (5 min), {l15:.2f} (15 min) on {os.cpu_count()} CPUs"


def machine(load_before: float, threading_layer: str | None = None) -> dict:
    """``forward.machine_info``, also where this process never started Numba's thread pool (then the
    threading layer is the one a worker reported)."""
    try:
        return machine_info(load_before)
    except ValueError:  # numba.threading_layer() before any parallel kernel ran here
        import platform

        import numba

        return {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                "python": platform.python_version(), "numba": numba.__version__, "numpy": np.__version__,
                "threading_layer": threading_layer or "not started in the parent",
                "loadavg_1min_before_after": [load_before, os.getloadavg()[0]]}


def pyplot(no_plot: bool):
    """matplotlib.pyplot with the Agg backend, or None (with a printed note) under --no-plot / without it."""
    if no_plot:
        print("plots skipped (--no-plot)")
        return None
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("plots skipped: matplotlib is not installed (pip install matplotlib)")
        return None
    return plt
