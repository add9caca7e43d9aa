"""Cold-start (Numba compilation) and warm-start time of the first calls, per model.

exactsnn's kernels are ``@njit(cache=True)`` functions compiled lazily on their first call and
cached on disk (see README "Compilation and the kernel cache"). This script measures what a user
waits for before the first result, per model/variant:

* ``cold``: a fresh child process with an empty, temporary ``NUMBA_CACHE_DIR`` (so nothing is
  cached and no cache of the source tree is touched or wiped) imports exactsnn and runs the first
  ``es.simulate`` and the first ``es.loss_and_grad`` on a tiny input (batch 2, a few spikes);
* ``warm``: a second child process with the same cache directory runs the same calls; it must load
  every kernel from the cache (``compiled`` = 0) and be much faster.

Variants: ``lif_ff`` (LIF feedforward), ``lif_rec`` (LIF recurrent), ``lif_delays`` (LIF recurrent
with learned delays: the queue kernels), ``lif_taus`` (LIF learning tau_mem and tau_syn: the linear
kernels), ``adlif`` (adLIF feedforward), ``adlif_rec_delays`` (adLIF recurrent with delays),
``adlif_line`` (the adLIF research line's layer: recurrent, feedforward delays, learning tau_mem, tau_w, a, b: the
windowed kernels ``linear_ff`` / ``linear_ff_windows``) and ``yinyang_train`` (the first batch of the default
``exactsnn train``: Yin-Yang data, network, one
loss_and_grad and one Adam step, as ``exactsnn.train.train`` does it).

Columns: ``import`` = ``import exactsnn`` (nothing may compile there), ``sim`` = first
``simulate``, ``l&g`` = first ``loss_and_grad`` after it (compiles the backward kernels; for
``yinyang_train`` the whole first training batch incl. data generation and the Adam step),
``total`` = import + sim + l&g (wall clock), ``cpu`` = the child's CPU time over the same span (compilation
is single-threaded, so on an idle machine wall ~ CPU; on a loaded one CPU time is the steadier figure),
``compiled`` = number of (function, signature) compilations
(``numba:compile`` events), ``hits`` = kernels loaded from the on-disk cache. ``--detail`` lists
the functions with the largest own compile CPU time (nested compilations subtracted).

Run: ``python benchmarks/compile_time.py [--quick] [--variants a,b] [--threads N] [--detail]
[--json PATH] [--out PATH]``. Timings depend on the load of the machine: the load average is
printed with them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("lif_ff", "lif_rec", "lif_delays", "lif_taus", "adlif", "adlif_rec_delays", "adlif_line", "yinyang_train")
QUICK_VARIANTS = ("lif_ff", "adlif")


# ----------------------------------------------------------------------------- child side
def _compile_timer():  # noqa: ANN202 - a numba.core.event.Listener, built after numba is imported
    """``numba:compile`` listener: own (exclusive) compile time per function, nested compiles subtracted."""
    from numba.core import event

    class CompileTimer(event.Listener):
        def __init__(self) -> None:
            self.stack: list[list] = []
            self.own: dict[str, float] = {}
            self.sigs: dict[str, list[str]] = {}
            self.count = 0

        def on_start(self, ev) -> None:  # noqa: ANN001 - numba.core.event.Event
            d = ev.data["dispatcher"]
            name = f"{d.py_func.__module__}.{d.py_func.__qualname__}"
            self.sigs.setdefault(name, []).append(str(ev.data["args"]))
            self.stack.append([name, time.process_time(), 0.0])

        def on_end(self, ev) -> None:  # noqa: ANN001
            if not self.stack:
                return
            name, t0, children = self.stack.pop()
            dur = time.process_time() - t0
            self.own[name] = self.own.get(name, 0.0) + dur - children
            self.count += 1
            if self.stack:
                self.stack[-1][2] += dur

    return CompileTimer()


def _tiny_net(variant: str):  # noqa: ANN202
    import exactsnn as es

    if variant.startswith("lif"):
        neuron = es.LIF(tau_mem=20e-3, tau_syn=5e-3, t_ref=1e-3)
    else:
        neuron = es.AdLIF(tau_mem=20e-3, tau_w=100e-3, tau_syn=5e-3, a=0.5, b=0.2, t_ref=1e-3)
    kw = {
        "lif_ff": {}, "lif_rec": {"recurrent": True}, "lif_delays": {"recurrent": True, "delays": True},
        "lif_taus": {"learn": ("tau_mem", "tau_syn")}, "adlif": {},
        "adlif_rec_delays": {"recurrent": True, "delays": True},
        # the adLIF research line's layer: feedforward delays, zero-delay recurrence, learned neuron parameters
        "adlif_line": {"recurrent": True, "delays": "feedforward", "learn": ("tau_mem", "tau_w", "a", "b")},
    }[variant]
    return es.Network(5, [es.Layer(8, neuron, **kw), es.Layer(3, es.LI())])


def _child(variant: str) -> dict:
    """Run in the child process: time import, first simulate and first loss_and_grad of ``variant``."""
    t0 = time.perf_counter()
    import numba
    from numba.core import event

    c0 = time.process_time()

    timer = _compile_timer()
    event.register("numba:compile", timer)
    t1 = time.perf_counter()
    import exactsnn as es

    t_import = time.perf_counter() - t1
    compiled_at_import = timer.count
    import numpy as np

    if variant == "yinyang_train":
        t_sim = 0.0
        t2 = time.perf_counter()
        _first_train_batch()
        t_lg = time.perf_counter() - t2
    else:
        net = _tiny_net(variant)
        params = net.init(seed=0)
        for i, w in enumerate(params.weights[:-1]):
            params.weights[i] = np.abs(w) * 4.0  # make the hidden layer fire, so every path runs
        rng = np.random.default_rng(0)
        samples = []
        for _ in range(2):
            t = np.sort(rng.uniform(0, 0.05, 20))
            samples.append((t, rng.integers(0, 5, 20).astype(np.int32)))
        batch = es.SpikeBatch.from_lists(samples, n_units=5)
        labels = np.array([0, 2])
        t2 = time.perf_counter()
        rec = es.simulate(net, params, batch, t_max=0.06)
        t_sim = time.perf_counter() - t2
        t3 = time.perf_counter()
        es.loss_and_grad(net, params, batch, labels, es.losses.SumExp(), t_max=0.06)
        t_lg = time.perf_counter() - t3
        if rec.spikes[0].n_events == 0:
            raise SystemExit(f"{variant}: the hidden layer did not spike; the measurement would miss kernels")
    hits = 0
    for name, mod in list(sys.modules.items()):
        if not name.startswith("exactsnn"):
            continue
        for obj in vars(mod).values():
            if isinstance(obj, numba.core.dispatcher.Dispatcher) and obj.py_func.__module__ == name:
                hits += sum(obj.stats.cache_hits.values())
    own = sorted(timer.own.items(), key=lambda kv: -kv[1])
    return {
        "variant": variant, "import_s": t_import, "simulate_s": t_sim, "loss_and_grad_s": t_lg,
        "total_s": t_import + t_sim + t_lg, "total_cpu_s": time.process_time() - c0,
        "process_s": time.perf_counter() - t0,
        "compiled": timer.count, "compiled_at_import": compiled_at_import, "cache_hits": hits,
        "own_compile_s": own[:25],
    }


def _first_train_batch() -> None:
    """The first batch of ``exactsnn train`` with the default configuration (as exactsnn.train.train runs it)."""
    import numpy as np

    from exactsnn.config import Config
    from exactsnn.data.tasks import load_task
    from exactsnn.grad import loss_and_grad
    from exactsnn.optim import Adam, adam_init, adam_step
    from exactsnn.train import _augment, build_loss, build_network, build_regularizer

    cfg = Config()
    tc = cfg.train
    task = load_task(cfg.data, cfg.augment, tc.seed)
    net = build_network(cfg, task.n_inputs, task.n_classes)
    loss, reg = build_loss(cfg), build_regularizer(cfg)
    params = net.init(int(np.random.default_rng((tc.seed, 0)).integers(2**63)))
    opt = Adam(lr=tc.lr, beta1=tc.beta1, beta2=tc.beta2, delay_lr=tc.delay_lr, tau_lr=tc.tau_lr)
    idx = np.random.default_rng((tc.seed, 1, 0)).permutation(len(task.train))[:tc.batch_size]
    labels = task.train.labels[idx]
    batch = _augment(cfg, task.train.batch.select(idx), labels, np.random.default_rng((tc.seed, 2, 0, 0)))
    value, grads, _ = loss_and_grad(net, params, batch, labels, loss, task.t_max, regularizer=reg, outputs=True)
    adam_step(opt, adam_init(net, params), net, params, grads, 1.0)


# ----------------------------------------------------------------------------- parent side
def run_child(variant: str, cache_dir: str, threads: int | None, timeout: float = 1800.0) -> dict:
    """One child process measuring ``variant`` with ``NUMBA_CACHE_DIR=cache_dir``; returns its figures."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir, PYTHONPATH=path)
    if threads:
        env["NUMBA_NUM_THREADS"] = str(threads)
    out = subprocess.run([sys.executable, __file__, "--child", variant], env=env, capture_output=True, text=True,
                         timeout=timeout, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"{variant}: child failed\n{out.stdout[-2000:]}\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help=f"only {','.join(QUICK_VARIANTS)} (about 1-2 min)")
    p.add_argument("--variants", default=None, help=f"comma list from {','.join(VARIANTS)} (default: all)")
    p.add_argument("--threads", type=int, default=None, help="NUMBA_NUM_THREADS of the children (default: all)")
    p.add_argument("--detail", action="store_true", help="list the functions with the largest own compile time")
    p.add_argument("--json", default=None, help="write the figures to this JSON file")
    p.add_argument("--out", default=None, help="also write the printed table to this text file")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(_child(a.child)))
        return 0
    names = a.variants.split(",") if a.variants else list(QUICK_VARIANTS if a.quick else VARIANTS)
    bad = [v for v in names if v not in VARIANTS]
    if bad:
        p.error(f"unknown variant(s) {', '.join(bad)}; choose from {', '.join(VARIANTS)}")
    lines: list[str] = []

    def say(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    import numba

    say(f"exactsnn compile time: Python {platform.python_version()}, Numba {numba.__version__}, "
        f"{os.cpu_count()} CPUs, threads {a.threads or 'all'}")
    say(f"load average before: {_load()}")
    head = (f"{'variant':18s} {'phase':5s} {'import s':>8s} {'sim s':>8s} {'l&g s':>8s} {'total s':>8s} "
            f"{'cpu s':>8s} {'compiled':>8s} {'hits':>5s}  load")
    say(head)
    say("-" * len(head))
    rows = []
    for v in names:
        with tempfile.TemporaryDirectory(prefix="exactsnn-numba-") as cache:
            cold = run_child(v, cache, a.threads)
            load_cold = _load()
            warm = run_child(v, cache, a.threads)
            load_warm = _load()
        for phase, r, ld in (("cold", cold, load_cold), ("warm", warm, load_warm)):
            say(f"{v:18s} {phase:5s} {r['import_s']:8.2f} {r['simulate_s']:8.2f} {r['loss_and_grad_s']:8.2f} "
                f"{r['total_s']:8.2f} {r['total_cpu_s']:8.2f} {r['compiled']:8d} {r['cache_hits']:5d}  {ld}")
            if r["compiled_at_import"]:
                say(f"  WARNING: {r['compiled_at_import']} compilations during `import exactsnn`")
        if warm["compiled"]:
            say(f"  WARNING: the warm run compiled {warm['compiled']} functions: the cache was not fully reused")
        if a.detail:
            for name, s in cold["own_compile_s"][:12]:
                say(f"    {s:7.2f} s  {name}")
        rows.append({"variant": v, "cold": cold, "warm": warm, "load_cold": load_cold, "load_warm": load_warm})
    say(f"load average after: {_load()}")
    worst = max(r["cold"]["total_s"] for r in rows)
    worst_cpu = max(r["cold"]["total_cpu_s"] for r in rows)
    say(f"slowest cold start: {worst:.1f} s wall, {worst_cpu:.1f} s CPU (target <= 30 s on 2 idle cores); "
        f"warm/cold: {max(r['warm']['total_s'] / r['cold']['total_s'] for r in rows):.2f} at most")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "load_after": _load()}, indent=1))
    if a.out:
        Path(a.out).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
