"""A whole layer of linear 3-state neurons with per-neuron parameters brought over one stretch at once.

With per-neuron A (learned tau_mem, tau_w, tau_syn, a) there is no shared propagator; calling
:func:`~exactsnn.neurons.linear.expm_block_into` per neuron per stretch costs ~250 ns each. On a shared clock
every neuron goes over the same stretch h, so the Taylor series of expm(A h) x can be summed for all neurons
together, term by term, in loops the compiler vectorises (Horner form, one matrix-vector product per term)::

    expm(A h) x = x + h A (x + h A/2 (x + ... (x + h A/k x)))

with one term count k for the whole layer, chosen from L = max_j ||A_j||_inf so that (h L)^k / k! <= 1e-18
(the stopping rule of ``expm_block_into``). A stretch with h L > 1/2 is cut into 2^q equal pieces (exact
halvings) of at most 1/2 each, so k <= 17. Truncation and rounding stay at a few ulps, as for
``expm_block_into``; no eigenvalues, so coincident time constants and complex (oscillating) modes need no
special case.

Each neuron's A is held as four rows of a (4, n) array C: m = 1/tau_mem, wa = a/tau_w, wd = 1/tau_w,
s = 1/tau_syn (A = [[-m, -m, m], [wa, -wd, 0], [0, 0, -s]], units 1/s).

Parameter gradients of the reverse replay (the maths of :mod:`exactsnn.engine.cpu.linear_dense_backward`).
Between a neuron's restarts (t = 0, the end of a reset window, or the spike itself without one) its state is
x(t) = Phi(t, t_r) x(t_r) + sum over arrivals of Phi(t, t_a) W e_I, so with B = dA/dp::

    integral lam^T B x dt = nu(t_r)^T x(t_r) + sum_arrivals W nu_I(t_a),   -nu' = A^T nu + B^T lam, nu = 0 at the
                                                                          next spike (the segment's end)

Going back over a stretch, (nu, lam) follow the block generator [[A^T, B^T], [0, A^T]], whose series is summed
like the one above. B^T lam for the four parameters is a multiple of a fixed pick of lam: dA/dtau_mem gives
m^2 lam_V (1, 1, -1), dA/da gives wd lam_w e_V, dA/dtau_w gives wd lam_w (-wa, wd, 0) and dA/dtau_syn gives
s^2 lam_I e_I. So three adjoint 3-vectors (sources lam_V (1, 1, -1), lam_w e_V, lam_w e_w) and one scalar
(source lam_I e_I: I's flow never changes at spikes, so that one is never reset) serve all four parameters::

    nu_tau_mem = m^2 nu_g     nu_a = wd nu_a1     nu_tau_w = wd (wd nu_b - wa nu_a1)     nu_tau_syn = s^2 nu_d
"""

from __future__ import annotations

import numpy as np
from numba.extending import register_jitable

from exactsnn.neurons.linear import _halvings

__all__ = ["coefficients", "layer_norm", "series_terms", "propagate_layer", "adjoint_layer", "N_ADJ"]

#: rows of the adjoint block of :func:`adjoint_layer`: lam (3), nu_g (3), nu_a1 (3), nu_b (3), nu_d (1)
N_ADJ = 13
TERM_TOL = 1e-18


def coefficients(A: np.ndarray) -> np.ndarray:
    """The (4, n) rows (m, wa, wd, s) of every neuron's A (n, 3, 3), 1/s."""
    return np.ascontiguousarray(np.stack([A[:, 0, 2], A[:, 1, 0], -A[:, 1, 1], -A[:, 2, 2]]))


@register_jitable
def layer_norm(C: np.ndarray) -> float:
    """max_j ||A_j||_inf over the layer (1/s)."""
    nrm = 0.0
    for j in range(C.shape[1]):
        nrm = max(nrm, max(max(3.0 * abs(C[0, j]), abs(C[1, j]) + abs(C[2, j])), abs(C[3, j])))
    return nrm


@register_jitable
def series_terms(x: float) -> int:
    """Terms k after the first so that x^k / k! <= 1e-18 (x = h L <= 1/2: k <= 17)."""
    t = 1.0
    k = 0
    while t > TERM_TOL:
        k += 1
        t *= x / k
    return k


@register_jitable
def _pieces(h: float, nrm: float) -> tuple[float, int, int]:
    """(piece length, number of pieces, terms per piece) of a stretch of h seconds."""
    hp, sq = _halvings(nrm * h, h)
    return hp, 1 << sq, series_terms(nrm * hp)


@register_jitable
def propagate_layer(X: np.ndarray, h: float, C: np.ndarray, nrm: float, Y: np.ndarray) -> None:
    """X (3, n) rows V, w, I <- expm(A_j h) X[:, j] for every neuron j. ``nrm``: :func:`layer_norm`;
    Y: (3, n) scratch."""
    if h <= 0.0:
        return
    hp, pieces, k = _pieces(h, nrm)
    n = X.shape[1]
    m, wa, wd, s = C[0], C[1], C[2], C[3]
    V, W, I = X[0], X[1], X[2]
    Yv, Yw, Yi = Y[0], Y[1], Y[2]
    for _ in range(pieces):
        for j in range(n):
            Yv[j] = V[j]
            Yw[j] = W[j]
            Yi[j] = I[j]
        for i in range(k, 0, -1):
            f = hp / i
            for j in range(n):
                yv, yw, yi = Yv[j], Yw[j], Yi[j]
                Yv[j] = V[j] + f * (m[j] * (yi - yv - yw))
                Yw[j] = W[j] + f * (wa[j] * yv - wd[j] * yw)
                Yi[j] = I[j] - f * (s[j] * yi)
        for j in range(n):
            V[j] = Yv[j]
            W[j] = Yw[j]
            I[j] = Yi[j]


@register_jitable
def adjoint_layer(Z: np.ndarray, h: float, C: np.ndarray, nrm: float, Y: np.ndarray, params: bool) -> None:
    """Z (N_ADJ, n) back over a stretch of h seconds for every neuron: rows 0-2 lam <- expm(A^T h) lam and,
    with ``params``, rows 3-12 the parameter adjoints (module docstring) <- their block series. Y: scratch
    of Z's shape."""
    if h <= 0.0:
        return
    hp, pieces, k = _pieces(h, nrm)
    n = Z.shape[1]
    rows = N_ADJ if params else 3
    m, wa, wd, s = C[0], C[1], C[2], C[3]
    for _ in range(pieces):
        for r in range(rows):
            for j in range(n):
                Y[r, j] = Z[r, j]
        for i in range(k, 0, -1):
            f = hp / i
            if params:
                for j in range(n):
                    mj, waj, wdj, sj = m[j], wa[j], wd[j], s[j]
                    lv, lw, li = Y[0, j], Y[1, j], Y[2, j]
                    Y[0, j] = Z[0, j] + f * (waj * lw - mj * lv)
                    Y[1, j] = Z[1, j] - f * (mj * lv + wdj * lw)
                    Y[2, j] = Z[2, j] + f * (mj * lv - sj * li)
                    gv, gw, gi = Y[3, j], Y[4, j], Y[5, j]
                    Y[3, j] = Z[3, j] + f * (waj * gw - mj * gv + lv)
                    Y[4, j] = Z[4, j] - f * (mj * gv + wdj * gw - lv)
                    Y[5, j] = Z[5, j] + f * (mj * gv - sj * gi - lv)
                    av, aw, ai = Y[6, j], Y[7, j], Y[8, j]
                    Y[6, j] = Z[6, j] + f * (waj * aw - mj * av + lw)
                    Y[7, j] = Z[7, j] - f * (mj * av + wdj * aw)
                    Y[8, j] = Z[8, j] + f * (mj * av - sj * ai)
                    bv, bw, bi = Y[9, j], Y[10, j], Y[11, j]
                    Y[9, j] = Z[9, j] + f * (waj * bw - mj * bv)
                    Y[10, j] = Z[10, j] - f * (mj * bv + wdj * bw - lw)
                    Y[11, j] = Z[11, j] + f * (mj * bv - sj * bi)
                    Y[12, j] = Z[12, j] + f * (li - sj * Y[12, j])
            else:
                for j in range(n):
                    mj = m[j]
                    lv, lw, li = Y[0, j], Y[1, j], Y[2, j]
                    Y[0, j] = Z[0, j] + f * (wa[j] * lw - mj * lv)
                    Y[1, j] = Z[1, j] - f * (mj * lv + wd[j] * lw)
                    Y[2, j] = Z[2, j] + f * (mj * lv - s[j] * li)
        for r in range(rows):
            for j in range(n):
                Z[r, j] = Y[r, j]
