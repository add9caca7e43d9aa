"""Reverse merge of a delay-free layer's three event streams, shared by the shared-clock reverse replays
(:mod:`exactsnn.engine.cpu.backward` for LIF, :mod:`exactsnn.engine.cpu.linear_dense_backward` for 3-state neurons).

Going back from T, the replay visits the layer's inputs ``tin``, the ends ``ts[k] + t_ref`` of its refractory
windows (in the order of the spikes: a neuron's window ends before its next spike, so they are in time order too)
and its own spikes ``ts``, each stream through a cursor on its last index not yet replayed. Every step takes the
latest time te among the three cursors and the whole block of each stream at te; the caller replays the blocks
in the reverse of the forward order at equal times.
"""

from __future__ import annotations

import math

import numpy as np
from numba.extending import register_jitable

__all__ = ["last_window_end", "next_block"]


@register_jitable
def last_window_end(ts: np.ndarray, t_ref: float, T: float) -> int:
    """Index of the last spike whose refractory window ends before T (the windows' cursor at T); -1 if none
    (or t_ref = 0: no windows)."""
    i_r = -1
    if t_ref > 0.0:
        for k in range(ts.size):
            if ts[k] + t_ref < T:
                i_r = k
    return i_r


@register_jitable
def next_block(
    tin: np.ndarray, ie: int, ts: np.ndarray, i_r: int, i_s: int, t_ref: float
) -> tuple[float, int, int, int]:
    """(te, e0, r0, s0): the latest event time te at the cursors ie (inputs), i_r (window ends), i_s (spikes), and
    each stream's index just before its block at te (its block is e0 + 1 .. ie, and so on; empty if none at te)."""
    te = -math.inf
    if ie >= 0:
        te = tin[ie]
    if i_r >= 0 and ts[i_r] + t_ref > te:
        te = ts[i_r] + t_ref
    if i_s >= 0 and ts[i_s] > te:
        te = ts[i_s]
    e0 = ie
    while e0 >= 0 and tin[e0] == te:
        e0 -= 1
    r0 = i_r
    while r0 >= 0 and ts[r0] + t_ref == te:
        r0 -= 1
    s0 = i_s
    while s0 >= 0 and ts[s0] == te:
        s0 -= 1
    return te, e0, r0, s0
