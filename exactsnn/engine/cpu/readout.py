"""Readout (LI layer without delays) part of an integral loss: z and the gradients, one pass each.

Every presynaptic spike s (unit u_s, sample b_s) reaches all readout units at its own time t_s, so
with the loss's integrals F_s = F(t_s), H_s = H_mem(t_s) (see :mod:`exactsnn.losses`)::

    z[b, o] = sum_{s in b} W[o, u_s] F_s
    lam_I = c[b_s, o] F_s,  lam_V = c[b_s, o] H_s            (c = dL/dz)
    dL/dW[o, u] = sum_{s: u_s = u} lam_I,   x = W[o, u_s] (lam_I/tau_syn - lam_V/tau_mem)
    dL/dD[o, u] = sum_{s: u_s = u} x,       dL/dt_s = sum_o x
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def readout_z(units: np.ndarray, sample: np.ndarray, W: np.ndarray, F: np.ndarray, B: int) -> np.ndarray:
    """z (B, n_out) of an integral loss from the presynaptic spikes."""
    n_out = W.shape[0]
    z = np.zeros((B, n_out))
    for s in range(units.size):
        u = units[s]
        b = sample[s]
        for o in range(n_out):
            z[b, o] += W[o, u] * F[s]
    return z


@njit(cache=True)
def readout_grads(
    units: np.ndarray, sample: np.ndarray, W: np.ndarray, F: np.ndarray, H: np.ndarray, c: np.ndarray,
    tau_mem: float, tau_syn: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dL/dW, dL/dD, dL/dt_s) of the readout given c = dL/dz (B, n_out)."""
    n_out, n_pre = W.shape
    gW = np.zeros((n_out, n_pre))
    gD = np.zeros((n_out, n_pre))
    down = np.zeros(units.size)
    for s in range(units.size):
        u = units[s]
        b = sample[s]
        acc = 0.0
        for o in range(n_out):
            lam_I = c[b, o] * F[s]
            x = W[o, u] * (lam_I / tau_syn - c[b, o] * H[s] / tau_mem)
            gW[o, u] += lam_I
            gD[o, u] += x
            acc += x
        down[s] = acc
    return gW, gD, down
