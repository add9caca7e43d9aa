"""Numba CPU kernels (``@njit(cache=True)``, ``prange`` over samples)."""
