"""The layer-wide Taylor series of :mod:`exactsnn.neurons.series` against SciPy's matrix exponential.

``propagate_layer`` must equal expm(A_j h) x_j for every neuron, and ``adjoint_layer`` the block exponentials
expm([[A^T, B^T], [0, A^T]] h) of the parameter adjoints (B^T picks: lam_V (1, 1, -1), lam_w e_V, lam_w e_w,
lam_I e_I), on layers whose neurons differ (coincident time constants, complex eigenvalues, a stretch long
enough to be cut into pieces, h = 0).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg as sl
from numba import njit

from exactsnn.neurons.linear import system_matrices
from exactsnn.neurons.series import N_ADJ, adjoint_layer, coefficients, layer_norm, propagate_layer, series_terms

_propagate = njit(propagate_layer)
ULP = 2.220446049250313e-16


def _tol(h: float, C: np.ndarray) -> float:
    """2 ulps per piece of the stretch, grown like a random walk over the pieces (layer_norm(C) h / 2 of them)."""
    pieces = max(1.0, 2.0 ** np.ceil(np.log2(max(layer_norm(C) * h * 2.0, 1.0))))
    return 2.0 * ULP * max(1.0, 4.0 * np.sqrt(pieces))
_adjoint = njit(adjoint_layer)
SOURCES = (np.array([1.0, 1.0, -1.0]), 0), (np.array([1.0, 0.0, 0.0]), 1), (np.array([0.0, 1.0, 0.0]), 1)


def _layer(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = 9
    tm, tw = rng.uniform(5e-3, 30e-3, n), rng.uniform(30e-3, 300e-3, n)
    ts, a = rng.uniform(2e-3, 10e-3, n), rng.uniform(-0.5, 4.0, n)
    tm[0] = ts[0]  # tau_mem = tau_syn
    tw[1] = tm[1]  # tau_w = tau_mem
    a[2] = (tw[2] - tm[2]) ** 2 / (4 * tm[2] * tw[2])  # critical damping
    a[3] = 0.0  # LIF
    return system_matrices(tm, tw, ts, a)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("h", [0.0, 1e-6, 9e-5, 2e-3, 0.05])
def test_propagate_layer_is_the_matrix_exponential(seed: int, h: float):
    A = _layer(seed)
    C = coefficients(A)
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(3, A.shape[0]))
    X0 = X.copy()
    _propagate(X, h, C, layer_norm(C), np.empty_like(X))
    ref = np.stack([sl.expm(A[j] * h) @ X0[:, j] for j in range(A.shape[0])], axis=1)
    assert np.max(np.abs(X - ref)) <= _tol(h, C) * np.max(np.abs(ref))


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("h", [0.0, 1e-6, 9e-5, 2e-3, 0.05])
@pytest.mark.parametrize("params", [True, False])
def test_adjoint_layer_is_the_block_exponential(seed: int, h: float, params: bool):
    A = _layer(seed)
    n = A.shape[0]
    C = coefficients(A)
    rng = np.random.default_rng(10 + seed)
    Z = rng.normal(size=(N_ADJ, n))
    Z0 = Z.copy()
    _adjoint(Z, h, C, layer_norm(C), np.empty_like(Z), np.empty_like(Z), params, np.arange(N_ADJ))
    for j in range(n):
        At = A[j].T
        lam = sl.expm(At * h) @ Z0[:3, j]
        scale = np.max(np.abs(Z0[:, j]))
        assert np.max(np.abs(Z[:3, j] - lam)) <= _tol(h, C) * scale
        if not params:
            assert np.array_equal(Z[3:, j], Z0[3:, j])
            continue
        for g, (src, comp) in enumerate(SOURCES):
            M = np.zeros((6, 6))
            M[:3, :3] = At
            M[3:, 3:] = At
            M[:3, 3 + comp] = src  # B^T lam = src * lam_comp
            ref = (sl.expm(M * h) @ np.concatenate([Z0[3 + 3 * g:6 + 3 * g, j], Z0[:3, j]]))[:3]
            assert np.max(np.abs(Z[3 + 3 * g:6 + 3 * g, j] - ref)) <= _tol(h, C) * max(scale, np.abs(ref).max()), g
        # nu_d: the I component of the block with source lam_I e_I (its V and w components stay 0)
        M = np.zeros((6, 6))
        M[:3, :3] = At
        M[3:, 3:] = At
        M[2, 5] = 1.0
        ref = sl.expm(M * h) @ np.concatenate([[0.0, 0.0, Z0[12, j]], Z0[:3, j]])
        assert abs(ref[0]) + abs(ref[1]) == 0.0
        assert abs(Z[12, j] - ref[2]) <= _tol(h, C) * max(scale, abs(ref[2]))


def test_series_terms():
    assert series_terms(0.0) == 1
    assert series_terms(0.5) <= 17
    x = 0.0225
    k = series_terms(x)
    assert x**k / np.prod(np.arange(1.0, k + 1)) <= 1e-18 < x ** (k - 1) / np.prod(np.arange(1.0, k))
