"""Stable argsort for the kernels (ties keep their order in the array).

Numba's ``np.argsort(kind="mergesort")`` is a generic implementation that took ~1.4 s to compile per
run (``benchmarks/compile_time.py --detail``); this one is a plain bottom-up merge sort over indices
(insertion-sorted runs of 16, then merges that take the left element on ties), ~0.2 s to compile.
O(n log n) time, O(n) extra memory. Keys must not be NaN.
"""

from __future__ import annotations

import numpy as np

from exactsnn.engine.cpu.jit import kernel

__all__ = ["stable_argsort"]

_RUN = 16


@kernel
def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """Indices that sort the float64 array ``keys`` ascending; equal keys keep their order (int64 array)."""
    n = keys.size
    src = np.arange(n)
    if n < 2:
        return src
    for lo in range(0, n, _RUN):
        hi = min(lo + _RUN, n)
        for i in range(lo + 1, hi):
            v = src[i]
            kv = keys[v]
            j = i - 1
            while j >= lo and keys[src[j]] > kv:
                src[j + 1] = src[j]
                j -= 1
            src[j + 1] = v
    dst = np.empty(n, np.int64)
    width = _RUN
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            while i < mid and j < hi:
                if keys[src[j]] < keys[src[i]]:
                    dst[k] = src[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                j += 1
                k += 1
        src, dst = dst, src
        width *= 2
    return src
