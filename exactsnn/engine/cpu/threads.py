"""Batch drivers on Python threads: a per-sample kernel that releases the GIL, called once per sample.

Why not a ``prange`` driver. A ``parallel=True`` function that calls a per-sample kernel makes Numba
build a parallel "gufunc" around the loop body, link the per-sample kernel (and every helper it calls)
into it and optimise the whole twice more: for the three-state (adLIF) kernels the two batch drivers
alone took 14 of the 42 s of a cold first ``simulate`` + ``loss_and_grad``, for recurrent LIF 11 of 33 s
(``benchmarks/compile_time.py --detail``, 2-core machine). Even a serial driver looping over samples
(one call per thread) re-optimises the linked per-sample kernel: +4-7 s for LIF. Here the per-sample
kernel is compiled once, as it is, with ``nogil=True``, and Python threads call it: each call spends
~7 us in the dispatcher holding the GIL and the rest of the sample without it, so the threads run in
parallel (even a Yin-Yang sample takes longer than its dispatch).

Scheduling is static and round-robin (thread ``t`` takes samples ``t, t + T, t + 2T, ...``), so a run is
deterministic for a given thread count, as a ``prange`` loop is; ``T`` is ``numba.get_num_threads()``
of the calling thread (``numba.set_num_threads`` and ``--threads`` apply), at most one per sample.
Per-thread gradient buffers keep the ``prange`` convention: a leading axis of ``numba.get_num_threads()``
entries, thread ``t`` adding into entry ``t``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numba

__all__ = ["for_each_sample", "threaded_driver"]


def for_each_sample(work: Callable[[int, int], None], n_samples: int) -> None:
    """Call ``work(b, t)`` for every sample ``b`` in ``range(n_samples)``, ``t`` the index of the calling thread.

    ``work`` must call GIL-releasing kernels for the threads to overlap. The first exception raised in any
    thread is re-raised here after every thread has stopped.
    """
    n_threads = max(1, min(numba.get_num_threads(), n_samples))
    if n_threads == 1:
        for b in range(n_samples):
            work(b, 0)
        return
    errors: list[BaseException] = []

    def run(t: int) -> None:
        try:
            for b in range(t, n_samples, n_threads):
                if errors:  # another thread failed: stop early
                    return
                work(b, t)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(t,), daemon=True) for t in range(1, n_threads)]
    for w in workers:
        w.start()
    run(0)
    for w in workers:
        w.join()
    if errors:
        raise errors[0]


def threaded_driver(func: Callable[..., Any]) -> Callable[..., Any]:
    """Mark ``func`` as a batch driver that runs samples on threads (tests find the drivers by this mark)."""
    func.threaded_driver = True  # type: ignore[attr-defined]
    return func
