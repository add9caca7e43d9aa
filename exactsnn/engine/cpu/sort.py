"""Stable argsort for the kernels (ties keep their order in the array).

Numba's ``np.argsort(kind="mergesort")`` is a generic implementation that took ~1.4 s to compile per
run (``benchmarks/compile_time.py --detail``); this one is a plain bottom-up merge sort
(insertion-sorted runs of 16, then merges that take the left element on ties), ~0.2 s to compile. The
keys are sorted together with their indices, so that every pass reads and writes in order (an index-only
merge reads ``keys[idx]`` at random: 1.4 s instead of 0.2 s for 1.5 million keys).
O(n log n) time, O(n) extra memory. Keys must not be NaN.
"""

from __future__ import annotations

import numpy as np

from exactsnn.engine.cpu.jit import kernel

__all__ = ["stable_argsort"]

_RUN = 16


_BUCKET_MIN = 256  # shorter arrays: the merge sort alone
_PER_BUCKET = 4  # keys per bucket on average
_BUCKET_SMALL = 32  # buckets up to this size: insertion sort; larger ones (clustered keys): the merge sort


@kernel
def stable_argsort(keys: np.ndarray) -> np.ndarray:
    """Indices that sort the float64 array ``keys`` ascending; equal keys keep their order (int64 array).

    Long arrays are first distributed (stably, by a counting pass) into n/4 buckets by value between their
    smallest and largest finite key (infinities in the end buckets; the bucket index is a monotone function
    of the key, so equal keys share a bucket), then each bucket is sorted on its own: O(n) for keys spread
    like event times, instead of the merge sort's log2(n) passes."""
    n = keys.size
    if n < _BUCKET_MIN:
        return _merge_argsort(keys)
    lo = np.inf
    hi = -np.inf
    for i in range(n):
        k = keys[i]
        if k != np.inf and k != -np.inf:
            lo = min(lo, k)
            hi = max(hi, k)
    if not hi > lo:
        return _merge_argsort(keys)
    nb = max(n // _PER_BUCKET, 1)
    scale = nb / (hi - lo)
    bucket = np.empty(n, np.int32)
    start = np.zeros(nb + 1, np.int64)
    for i in range(n):
        k = keys[i]
        if k <= lo:
            b = 0
        elif k >= hi:
            b = nb - 1
        else:
            b = min(int((k - lo) * scale), nb - 1)
        bucket[i] = b
        start[b + 1] += 1
    for b in range(nb):
        start[b + 1] += start[b]
    fill = start[:-1].copy()
    idx = np.empty(n, np.int64)
    ks = np.empty(n)
    for i in range(n):
        q = fill[bucket[i]]
        fill[bucket[i]] += 1
        idx[q] = i
        ks[q] = keys[i]
    for b in range(nb):
        a, e = start[b], start[b + 1]
        if e - a <= 1:
            continue
        if e - a > _BUCKET_SMALL:
            sub = _merge_argsort(ks[a:e])
            idx[a:e] = idx[a:e][sub]
            ks[a:e] = ks[a:e][sub]
            continue
        for i in range(a + 1, e):
            v = idx[i]
            kv = ks[i]
            j = i - 1
            while j >= a and ks[j] > kv:
                idx[j + 1] = idx[j]
                ks[j + 1] = ks[j]
                j -= 1
            idx[j + 1] = v
            ks[j + 1] = kv
    return idx


@kernel
def _merge_argsort(keys: np.ndarray) -> np.ndarray:
    """:func:`stable_argsort` by a bottom-up merge sort (the module docstring)."""
    n = keys.size
    src = np.arange(n)
    if n < 2:
        return src
    ks = keys.copy()  # the keys travel with their indices: the merges read both arrays in order
    for lo in range(0, n, _RUN):
        hi = min(lo + _RUN, n)
        for i in range(lo + 1, hi):
            v = src[i]
            kv = ks[i]
            j = i - 1
            while j >= lo and ks[j] > kv:
                src[j + 1] = src[j]
                ks[j + 1] = ks[j]
                j -= 1
            src[j + 1] = v
            ks[j + 1] = kv
    dst = np.empty(n, np.int64)
    kd = np.empty(n)
    width = _RUN
    while width < n:
        for lo in range(0, n, 2 * width):
            mid = min(lo + width, n)
            hi = min(lo + 2 * width, n)
            i, j, k = lo, mid, lo
            if mid < hi and ks[mid - 1] <= ks[mid]:  # already in order: copy the pair of runs
                for q in range(lo, hi):
                    dst[q] = src[q]
                    kd[q] = ks[q]
                continue
            while i < mid and j < hi:
                if ks[j] < ks[i]:
                    dst[k] = src[j]
                    kd[k] = ks[j]
                    j += 1
                else:
                    dst[k] = src[i]
                    kd[k] = ks[i]
                    i += 1
                k += 1
            while i < mid:
                dst[k] = src[i]
                kd[k] = ks[i]
                i += 1
                k += 1
            while j < hi:
                dst[k] = src[j]
                kd[k] = ks[j]
                j += 1
                k += 1
        src, dst = dst, src
        ks, kd = kd, ks
        width *= 2
    return src
