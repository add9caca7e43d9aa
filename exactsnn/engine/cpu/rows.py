"""A row of a layer added into another: the one vector operation every shared-clock kernel repeats.

An input spike adds its weight row to the layer's synaptic currents (forward), and its arrival adds the layer's
lam_I to its row of dL/dW (reverse replay). One compiled helper serves the LIF and 3-state kernels of both
directions (a loop the compiler vectorises).
"""

from __future__ import annotations

import numpy as np

from exactsnn.engine.cpu.jit import helper

__all__ = ["add_row"]


@helper
def add_row(acc: np.ndarray, row: np.ndarray) -> None:
    """acc += row, elementwise (same length)."""
    for j in range(acc.size):
        acc[j] += row[j]
