"""Forward time of a LIF layer with feedforward-only delays: windowed kernel vs. queue kernel vs. delay-free dense.

Workload (issue 12): 700 Poisson inputs at 10 Hz, 256 recurrent LIF neurons (zero-delay recurrence), batch 8 x
0.5 s, feedforward delays U(0, 25 ms) (``Layer(..., delays="feedforward")``). Input weights
N(0.5 g/sqrt(700), (g/sqrt(700))^2), recurrent N(0, (0.5/sqrt(256))^2) without self-connections; the gain g of
each variant is calibrated (bisection on two samples) so that its hidden layer fires at ``--target-rate`` Hz, so a
quieter variant does not look cheaper. Timed in one process: ``es.simulate`` with the windowed kernel, the heap
kernel (``run_queue_batch``, the previous path for this layer) on the same parameters, and ``es.simulate`` on the
same layer without delays (dense shared-clock kernel). Median of ``--repeats`` calls after a warm-up.

Run: ``PYTHONPATH=. python benchmarks/ff_delays_forward.py [--threads 1] [--repeats 3] [--batch 8] [--t-max 0.5]``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import time

import numba
import numpy as np

import exactsnn as es
from exactsnn.data.poisson import poisson_batch
from exactsnn.engine.cpu.queue import run_queue_batch, sort_delays
from exactsnn.engine.plan import layer_plan

N_IN, N_HID = 700, 256


def make(gain: float, delays: bool, dmax: float, seed: int = 0) -> tuple[es.Network, es.Params]:
    """The 700-256 recurrent layer (+ 20 LI readout) with input-weight gain ``gain``."""
    rng = np.random.default_rng(seed)
    layer = es.Layer(N_HID, es.LIF(), recurrent=True, delays="feedforward" if delays else False)
    net = es.Network(N_IN, [layer, es.Layer(20, es.LI())])
    params = net.init(seed=seed)
    std = gain / math.sqrt(N_IN)
    params.weights[0][:] = rng.normal(0.5 * std, std, (N_HID, N_IN))
    R = rng.normal(0.0, 0.5 / math.sqrt(N_HID), (N_HID, N_HID))
    np.fill_diagonal(R, 0.0)
    params.recurrent_weights[0][:] = R
    if delays:
        params.delays[0][:] = rng.uniform(0.0, dmax, (N_HID, N_IN))
    return net, params


def rate(net: es.Network, params: es.Params, batch: es.SpikeBatch, t_max: float) -> float:
    rec = es.simulate(net, params, batch, t_max=t_max)
    return rec.spikes[0].n_events / (len(batch) * N_HID * t_max)


def calibrate(delays: bool, dmax: float, batch: es.SpikeBatch, t_max: float, target: float) -> float:
    lo, hi = 0.5, 64.0
    g = 8.0
    for _ in range(18):
        g = math.sqrt(lo * hi)
        r = rate(*make(g, delays, dmax), batch, t_max)
        if abs(r - target) <= 0.05 * target:
            break
        lo, hi = (g, hi) if r < target else (lo, g)
    return g


def timed_pair(fa, fb, repeats: int) -> tuple[float, float, float, float]:
    """Interleaved calls of fa and fb (the machine may be shared): median wall and min CPU time of each (s)."""
    fa()
    fb()
    wa, wb, ca, cb = [], [], [], []
    for _ in range(repeats):
        for f, w, c in ((fa, wa, ca), (fb, wb, cb)):
            t0, c0 = time.perf_counter(), time.process_time()
            f()
            w.append(time.perf_counter() - t0)
            c.append(time.process_time() - c0)
    return statistics.median(wa), statistics.median(wb), min(ca), min(cb)


def timed(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def queue_call(net: es.Network, params: es.Params, batch: es.SpikeBatch, t_max: float, cap: int = 1 << 16):
    """The heap kernel on the hidden layer (zero recurrent delays): returns the spike counts per sample."""
    W, D, R = (np.ascontiguousarray(x[0]) for x in (params.weights, params.delays, params.recurrent_weights))
    fo, fd = sort_delays(D)
    ro, rd = sort_delays(np.zeros((N_HID, N_HID)))
    nrn = net.layers[0].neuron
    B = len(batch)
    out = [np.empty((B, cap)), np.empty((B, cap), np.int32), np.empty((B, cap)), np.empty((B, cap))]
    counts = np.zeros(B, np.int64)
    run_queue_batch(batch.times, batch.units, batch.offsets, W, fo, fd, R, ro, rd, True, nrn.tau_mem, nrn.tau_syn,
                    nrn.v_th, nrn.v_reset, nrn.t_ref, t_max, *out, counts)
    return counts


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--t-max", type=float, default=0.5)
    p.add_argument("--dmax", type=float, default=25e-3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--target-rate", type=float, default=15.0)
    p.add_argument("--skip-queue", action="store_true")
    a = p.parse_args()
    numba.set_num_threads(a.threads)
    batch = poisson_batch(a.batch, N_IN, 10.0, a.t_max, seed=1)
    cal = batch.select(np.arange(min(2, a.batch)))
    g_ff = calibrate(True, a.dmax, cal, a.t_max, a.target_rate)
    g_dense = calibrate(False, a.dmax, cal, a.t_max, a.target_rate)
    net_ff, par_ff = make(g_ff, True, a.dmax)
    net_d, par_d = make(g_dense, False, a.dmax)
    assert layer_plan(net_ff.layers[0]).ff_windows
    t_ff, t_d, c_ff, c_d = timed_pair(lambda: es.simulate(net_ff, par_ff, batch, t_max=a.t_max),
                                      lambda: es.simulate(net_d, par_d, batch, t_max=a.t_max), a.repeats)
    r_ff = rate(net_ff, par_ff, batch, a.t_max)
    r_d = rate(net_d, par_d, batch, a.t_max)
    print(f"batch {a.batch} x {a.t_max} s, {N_IN}-{N_HID} recurrent LIF, delays U(0, {a.dmax * 1e3:g} ms), "
          f"{a.threads} thread(s)")
    print(f"dense, no delays      : {t_d * 1e3:9.1f} ms (cpu {c_d * 1e3:7.1f})   rate {r_d:5.1f} Hz   "
          f"(gain {g_dense:.3g})")
    print(f"windowed, ff delays   : {t_ff * 1e3:9.1f} ms (cpu {c_ff * 1e3:7.1f})   rate {r_ff:5.1f} Hz   "
          f"(gain {g_ff:.3g})   {t_ff / t_d:6.2f}x dense (cpu {c_ff / c_d:5.2f}x)")
    if not a.skip_queue:
        rec = es.simulate(net_ff, par_ff, batch, t_max=a.t_max)
        counts = queue_call(net_ff, par_ff, batch, a.t_max)
        same = np.array_equal(counts, rec.spikes[0].counts())
        t_q = timed(lambda: queue_call(net_ff, par_ff, batch, a.t_max), max(1, a.repeats // 3))
        print(f"queue (heap), ff delays: {t_q * 1e3:9.1f} ms   same spike counts as windowed: {same}   "
              f"{t_q / t_d:6.1f}x dense, {t_q / t_ff:5.1f}x windowed")


if __name__ == "__main__":
    main()
