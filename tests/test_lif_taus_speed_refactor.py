"""The tiered per-neuron LIF factors (``lif_tier_factors``, ``lif_tier_rate_tangents``, ``lif_stretch_tier``) that
the per-neuron shared-clock passes use (``engine/cpu/dense.py`` forward, ``engine/cpu/backward.py`` reverse
replay): within a few ulps of ``lif_rate_factors`` / ``lif_rate_tangents`` (Horner series, checked against
120-digit values in ``tests/test_vexp.py``) in every tier, over random rates (equal, nearly equal and far apart)
and gaps; the rate-unit tangents times r^2 are the tau derivatives.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numba import njit

from exactsnn.neurons.lif import (
    TIER_GENERAL,
    TIER_SHORT,
    TIER_TINY,
    TINY_X,
    lif_rate_tangents,
    lif_stretch_tier,
    lif_tier_factors,
    lif_tier_rate_tangents,
)
from exactsnn.neurons.vexp import SHORT_X


@njit
def _all(h: np.ndarray, r_m: np.ndarray, r_s: np.ndarray, tier: int) -> np.ndarray:
    """Rows 0-6: lif_rate_tangents (tau derivatives); 7-13: the tier's (a_m, c, a_s) and r^2-scaled tangents."""
    out = np.empty((14, h.size))
    for i in range(h.size):
        t = lif_rate_tangents(h[i], r_m[i], r_s[i])
        for k in range(7):
            out[k, i] = t[k]
        a_m, c, a_s = lif_tier_factors(h[i], r_m[i], r_s[i], tier)
        g = lif_tier_rate_tangents(h[i], r_m[i], r_s[i], tier)
        out[7, i], out[8, i], out[9, i] = a_m, c, a_s
        rm2, rs2 = r_m[i] * r_m[i], r_s[i] * r_s[i]
        out[10, i], out[11, i], out[12, i], out[13, i] = rm2 * g[3], rm2 * g[4], rs2 * g[5], rs2 * g[6]
        if g[0] != a_m or g[2] != a_s:
            out[7, i] = math.nan  # the same exponentials in both (c is rounded in another order, as in lif.py)
    return out


def _cases(n: int, x_max: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    tm = np.exp(rng.uniform(np.log(1e-3), np.log(0.1), n))
    kind = rng.integers(0, 4, n)
    near = tm * (1 + rng.choice([1e-12, 1e-9, 1e-6, 1e-3], n) * rng.choice([-1, 1], n))
    ts = np.select([kind == 0, kind == 1, kind == 2], [tm * rng.uniform(0.1, 10, n), tm, near],
                   tm * rng.uniform(0.5, 2, n))
    r_m, r_s = 1.0 / tm, 1.0 / ts
    h = rng.uniform(0.0, 1.0, n) * x_max / np.maximum(r_m, r_s)
    h[:4] = 0.0
    return h, r_m, r_s


@pytest.mark.parametrize(("tier", "x_max"), [(TIER_TINY, TINY_X), (TIER_SHORT, SHORT_X), (TIER_GENERAL, 40.0)])
def test_tier_factors_and_tangents_within_ulps(tier, x_max):
    h, r_m, r_s = _cases(20000, x_max)
    if tier != TIER_GENERAL:
        assert all(lif_stretch_tier(a, max(b, c)) >= tier for a, b, c in zip(h, r_m, r_s, strict=True))
    got = _all(h, r_m, r_s, tier)
    assert not np.isnan(got[7]).any()
    for ref_row, row in ((0, 7), (1, 8), (2, 9), (3, 10), (4, 11), (5, 12), (6, 13)):
        ref, g = got[ref_row], got[row]
        scale = np.abs(ref)
        if ref_row == 4:  # -r_m^2 (E - r_m P), a difference: in ulps of its larger term
            scale = np.maximum(scale, 2 * r_m * np.abs(got[1]))
        ulps = np.abs(g - ref) / np.maximum(np.spacing(scale), 1e-300)
        assert ulps.max() <= 8.0, (ref_row, ulps.max())


def test_stretch_tier_bounds():
    assert lif_stretch_tier(TINY_X / 100.0, 100.0) == TIER_TINY
    assert lif_stretch_tier(0.2 / 100.0, 100.0) == TIER_SHORT
    assert lif_stretch_tier(SHORT_X / 100.0, 100.0) == TIER_SHORT
    assert lif_stretch_tier(1.0, 100.0) == TIER_GENERAL
    assert lif_stretch_tier(0.0, 100.0) == TIER_TINY
