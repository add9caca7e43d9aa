"""A whole layer of linear 3-state neurons with per-neuron parameters brought over one stretch at once.

With per-neuron A (learned tau_mem, tau_w, tau_syn, a) there is no shared propagator; calling
:func:`~exactsnn.neurons.linear.expm_block_into` per neuron per stretch costs ~250 ns each. On a shared clock
every neuron goes over the same stretch h, so the Taylor series of expm(A h) x can be summed for all neurons
together, term by term, in loops the compiler vectorises (Horner form, one matrix-vector product per term)::

    expm(A h) x = x + h A (x + h A/2 (x + ... (x + h A/k x)))

with one term count k for the whole layer, chosen from L = max_j ||A_j||_inf so that (h L)^k / k! <= 1e-18
(the stopping rule of ``expm_block_into``; the adjoints of the reverse replay, which only make gradients, stop
at the unit roundoff 2^-53 instead: one term fewer on the typical stretch). A stretch with h L > 1/2 is cut
into 2^q equal pieces (exact halvings) of at most 1/2 each, so k <= 17. Truncation and rounding stay at a few
ulps, as for ``expm_block_into``; no eigenvalues, so coincident time constants and complex (oscillating) modes
need no special case.

Each neuron's A is held in the rows of a (8, n) array C: m = 1/tau_mem, wa = a/tau_w, wd = 1/tau_w,
s = 1/tau_syn (A = [[-m, -m, m], [wa, -wd, 0], [0, 0, -s]], units 1/s), then -m, -wd, -s and ones.

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

from exactsnn.neurons.linear import TERM_TOL, _halvings, series_terms

__all__ = ["coefficients", "layer_norm", "series_terms", "propagate_layer", "adjoint_layer", "adjoint_rows", "N_ADJ"]

#: rows of the adjoint block of :func:`adjoint_layer`: lam (3), nu_g (3), nu_a1 (3), nu_b (3), nu_d (1)
N_ADJ = 13
ADJ_TOL = 2.0**-53  # adjoints (gradients only): truncation below the unit roundoff


def coefficients(A: np.ndarray) -> np.ndarray:
    """The (8, n) rows (m, wa, wd, s, -m, -wd, -s, 1) of every neuron's A (n, 3, 3), 1/s (the negated rows and
    the ones serve :func:`adjoint_layer`'s row loops)."""
    m, wa, wd, s = A[:, 0, 2], A[:, 1, 0], -A[:, 1, 1], -A[:, 2, 2]
    return np.ascontiguousarray(np.stack([m, wa, wd, s, -m, -wd, -s, np.ones_like(m)]))


@register_jitable
def layer_norm(C: np.ndarray) -> float:
    """max_j ||A_j||_inf over the layer (1/s)."""
    nrm = 0.0
    for j in range(C.shape[1]):
        nrm = max(nrm, max(max(3.0 * abs(C[0, j]), abs(C[1, j]) + abs(C[2, j])), abs(C[3, j])))
    return nrm


@register_jitable
def _pieces(h: float, nrm: float, tol: float) -> tuple[float, int, int]:
    """(piece length, number of pieces, terms per piece) of a stretch of h seconds."""
    hp, sq = _halvings(nrm * h, h)
    return hp, 1 << sq, series_terms(nrm * hp, tol)


@register_jitable
def propagate_layer(X: np.ndarray, h: float, C: np.ndarray, nrm: float, Y: np.ndarray) -> None:
    """X (3, n) rows V, w, I <- expm(A_j h) X[:, j] for every neuron j. ``nrm``: :func:`layer_norm`;
    Y: (3, n) scratch."""
    if h <= 0.0:
        return
    hp, pieces, k = _pieces(h, nrm, TERM_TOL)
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


#: the rows of one Horner step of adjoint_layer, out = z + f (c1 y1 + c2 y2 + e3 y3), as (out, c1, y1, c2, y2,
#: e3, y3) with c = rows of C (0 m, 1 wa, 2 wd, 3 s, 4 -m, 5 -wd, 6 -s, 7 ones) and y = rows of the adjoint:
#: lam (0-2) by A^T, then nu_g (3-5, source lam_V (1, 1, -1)), nu_a1 (6-8, lam_w e_V), nu_b (9-11, lam_w e_w) and
#: nu_d (12, lam_I) by A^T plus their sources
_ROWS = (
    (0, 1, 1, 4, 0, 0.0, 0), (1, 4, 0, 5, 1, 0.0, 0), (2, 0, 0, 6, 2, 0.0, 0),
    (3, 1, 4, 4, 3, 1.0, 0), (4, 4, 3, 5, 4, 1.0, 0), (5, 0, 3, 6, 5, -1.0, 0),
    (6, 1, 7, 4, 6, 1.0, 1), (7, 4, 6, 5, 7, 0.0, 1), (8, 0, 6, 6, 8, 0.0, 1),
    (9, 1, 10, 4, 9, 0.0, 1), (10, 4, 9, 5, 10, 1.0, 1), (11, 0, 9, 6, 11, 0.0, 1),
    (12, 6, 12, 7, 2, 0.0, 2),
)


def adjoint_rows(learn: tuple[str, ...] | list[str]) -> np.ndarray:
    """Rows of :func:`adjoint_layer` that the learned parameters ``learn`` need: lam always, nu_g for tau_mem,
    nu_a1 for a or tau_w, nu_b for tau_w, nu_d for tau_syn (int64 row indices)."""
    rows = [0, 1, 2]
    if "tau_mem" in learn:
        rows += [3, 4, 5]
    if "a" in learn or "tau_w" in learn:
        rows += [6, 7, 8]
    if "tau_w" in learn:
        rows += [9, 10, 11]
    if "tau_syn" in learn:
        rows += [12]
    return np.array(rows, dtype=np.int64)


@register_jitable
def _row(out: np.ndarray, z: np.ndarray, f: float, c1: np.ndarray, y1: np.ndarray, c2: np.ndarray, y2: np.ndarray,
         e3: float, y3: np.ndarray) -> None:
    """out = z + f (c1 y1 + c2 y2 + e3 y3) elementwise: one row of one Horner step. One row per loop keeps each
    loop to seven arrays, few enough for the compiler's overlap checks, so that it is vectorised (one loop over
    all thirteen rows is not)."""
    for j in range(out.size):
        out[j] = z[j] + f * (c1[j] * y1[j] + c2[j] * y2[j] + e3 * y3[j])


@register_jitable
def adjoint_layer(Z: np.ndarray, h: float, C: np.ndarray, nrm: float, Y: np.ndarray, Y2: np.ndarray,
                  params: bool, rows: np.ndarray) -> None:
    """Z (N_ADJ, n) back over a stretch of h seconds for every neuron: rows 0-2 lam <- expm(A^T h) lam and,
    with ``params``, the parameter adjoints (module docstring) <- their block series, those of ``rows`` (row
    indices, 0-2 included: :func:`adjoint_rows`; the others are left alone). C: the (8, n) rows of
    :func:`coefficients`; Y, Y2: scratch of Z's shape."""
    if h <= 0.0:
        return
    hp, pieces, k = _pieces(h, nrm, ADJ_TOL)
    n = Z.shape[1]
    n_rows = N_ADJ if params else 3
    m, wa, wd, s = C[0], C[1], C[2], C[3]
    for _ in range(pieces):
        for r in range(n_rows):
            for j in range(n):
                Y[r, j] = Z[r, j]
        if not params:
            for i in range(k, 0, -1):
                f = hp / i
                for j in range(n):
                    mj = m[j]
                    lv, lw, li = Y[0, j], Y[1, j], Y[2, j]
                    Y[0, j] = Z[0, j] + f * (wa[j] * lw - mj * lv)
                    Y[1, j] = Z[1, j] - f * (mj * lv + wd[j] * lw)
                    Y[2, j] = Z[2, j] + f * (mj * lv - s[j] * li)
            for r in range(3):
                for j in range(n):
                    Z[r, j] = Y[r, j]
            continue
        Ya, Yb = Y, Y2
        for i in range(k, 0, -1):
            f = hp / i
            for r in rows:  # one loop per row (see _row); the rows' terms are listed in _ROWS
                o, c1, y1, c2, y2, e3, y3 = _ROWS[r]
                _row(Yb[o], Z[o], f, C[c1], Ya[y1], C[c2], Ya[y2], e3, Ya[y3])
            Ya, Yb = Yb, Ya
        for r in rows:
            for j in range(n):
                Z[r, j] = Ya[r, j]


@register_jitable
def adjoint_column(z: np.ndarray, h: float, c: np.ndarray, nrm: float, y: np.ndarray, y2: np.ndarray,
                   params: bool, rows: np.ndarray) -> None:
    """:func:`adjoint_layer` for one neuron: z (N_ADJ,) its adjoint rows, c (8,) its column of
    :func:`coefficients`, y, y2 (N_ADJ,) scratch. Scalar loops: called per event of a single neuron, where the
    layer version's per-row loops over one column cost more in calls than in arithmetic."""
    if h <= 0.0:
        return
    hp, pieces, k = _pieces(h, nrm, ADJ_TOL)
    n_rows = N_ADJ if params else 3
    for _ in range(pieces):
        for r in range(n_rows):
            y[r] = z[r]
        if not params:
            m, wa, wd, s = c[0], c[1], c[2], c[3]
            lv, lw, li = z[0], z[1], z[2]
            for i in range(k, 0, -1):
                f = hp / i
                lv, lw, li = (z[0] + f * (wa * lw - m * lv), z[1] - f * (m * lv + wd * lw),
                              z[2] + f * (m * lv - s * li))
            z[0], z[1], z[2] = lv, lw, li
            continue
        ya, yb = y, y2
        for i in range(k, 0, -1):
            f = hp / i
            for r in rows:
                o, c1, y1, c2, y2_, e3, y3 = _ROWS[r]
                yb[o] = z[o] + f * (c[c1] * ya[y1] + c[c2] * ya[y2_] + e3 * ya[y3])
            ya, yb = yb, ya
        for r in rows:
            z[r] = ya[r]
