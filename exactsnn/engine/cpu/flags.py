"""Screen flags: the list of the few neurons a vectorised screen flagged.

The shared-clock kernels (``dense.py`` for LIF, ``linear.py`` for the 3-state neurons) screen every neuron in a
branch-free pass that stores one uint8 flag per neuron (a branch per neuron would stop the pass from
vectorising). A flagged neuron is rare, so the flags are read eight at a time as uint64 words and only a
non-zero word is looked into. The flag array is padded with zeros to a multiple of 8 entries. The feedforward-
delay kernel (``ff_delays.py``) keeps its flags across passes, so it appends and clears them.
"""

from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

__all__ = ["read_flags"]


@register_jitable
def read_flags(flags: np.ndarray, cand: np.ndarray, n_cand: int, clear: bool) -> int:
    """Write the indices j with ``flags[j] != 0`` to ``cand[n_cand:]`` in increasing order, with ``clear`` setting
    those flags back to 0; returns the new length of ``cand``."""
    words = flags.view(np.uint64)
    for w in range(words.size):
        if words[w] != 0:
            for j in range(8 * w, 8 * w + 8):
                if flags[j]:
                    cand[n_cand] = j
                    n_cand += 1
                    if clear:
                        flags[j] = 0
    return n_cand
