r"""Readout losses with exact (closed-form) integrals and their adjoint sources.

Time is in seconds throughout; voltages are dimensionless.

Readout
-------
The readout is a non-spiking LI layer (:class:`exactsnn.neurons.LI`)::

    tau_mem dV/dt = -V + I        tau_syn dI/dt = -I        arrival of weight w at t_a:  I += w

with V(0) = I(0) = 0 on the window [0, T]. V is linear in its arrivals::

    V_o(t) = sum_{a into o, t_a <= t} w_a c(t - t_a),
    c(s)   = k (e^{-s/tau_syn} - e^{-s/tau_mem}),   k = tau_syn/(tau_syn - tau_mem)
           = (s/tau) e^{-s/tau}                       (tau_mem = tau_syn = tau)

Adjoint convention (this module and the backward pass that calls it):
``lam_V(t) = dL/dV_o(t)``, ``lam_I(t) = dL/dI_o(t)`` -- the change of the loss per unit nudge of the
state at t, the network then running on. Nudging V at t adds e^{-(u-t)/tau_mem} to V(u), nudging I
adds c(u - t). For an arrival a into o the backward pass needs lam_V and lam_I at t_a; then::

    dL/dw_a = lam_I(t_a)            dL/dt_a = w_a (lam_I/tau_syn - lam_V/tau_mem)(t_a)

(the second from d c(s)/ds = (e^{-s/tau_syn} - c(s))/tau_mem). Every loss is a cross-entropy over a
per-sample vector z_b (n_out,), averaged over the batch::

    L = (1/B) sum_b [logsumexp(z_b) - z_{b,label_b}],      c_bo = dL/dz_bo = (softmax(z_b)_o - [o = label_b])/B

Integral losses (:class:`Sum`, :class:`SumExp`, :class:`SumGaussian`)
--------------------------------------------------------------------
``z_bo = int_0^T f(t) V_bo(t) dt`` for a weighting f. By linearity::

    z_bo = sum_{a into (b, o)} w_a F(t_a),          F(t)     = int_t^T f(u) c(u - t) du
    lam_V(t_a) = c_bo H_mem(t_a),                    H_tau(t) = int_t^T f(u) e^{-(u-t)/tau} du
    lam_I(t_a) = c_bo F(t_a),                        F        = k (H_syn - H_mem)

With rates r = 1/tau, F is (1/tau_mem) times the divided difference of H in r,
``F = (1/tau_mem) (H(r_syn) - H(r_mem))/(r_mem - r_syn)``, whose limit at equal time constants is
``(1/tau) M_1(1/tau)`` with the first moment ``M_1(r) = -dH/dr = int_t^T f(u) (u-t) e^{-r(u-t)} du``.

Weightings (D = T - t):

* ``Sum``:   f = 1.                 H = D phi1(-r D),                 M_1 = D^2 psi(r D)
* ``SumExp`` (Nowotny et al.):  f = e^{-t/T}/T.   H = (e^{-t/T}/T) D phi1(-(r + 1/T) D), likewise M_1
  (phi1(x) = expm1(x)/x, psi(x) = int_0^1 v e^{-x v} dv, both evaluated without cancellation).
* ``SumGaussian``: f = offset + g(t) ("gaussian") or offset + (t - mu) g(t) ("gaussian_slope"),
  g(t) = exp(-(t - mu)^2/(2 sigma^2)); the offset term is ``Sum`` scaled. Completing the square,
  g(t + s) e^{-r s} = g(t) e^{-p s - s^2/Q^2} (Q = sqrt2 sigma, p = r + (t - mu)/sigma^2) is a
  Gaussian in s with vertex s_c = -Q y0, where y0 = (r sigma^2 + t - mu)/Q, y1 = y0 + D/Q. With
  J_k(y) = int_0^inf v^k e^{-2 y v - v^2} dv (J_0 = (sqrt(pi)/2) erfcx(y); J_1, J_2 by a three-term
  recurrence, from y = 1 through its continued fraction) and G_T = g(T) e^{-r D}, the moments
  M_k = int_t^T (u - t)^k g(u) e^{-r(u - t)} du (k = 0, 1, 2; H = M_0) are::

      y0 >= 0 (decaying):  M_k = g(t) Q^{k+1} J_k(y0) - G_T sum_j binom(k, j) D^{k-j} Q^{j+1} J_j(y1)  [tail beyond D]
      y1 <= 0 (growing):   the same on the reflected window s -> D - s, anchored at T
      y0 < 0 < y1:         central moments about the vertex, e.g. M_0 = e^{r(r sigma^2/2 + t - mu)} (Q sqrt(pi)/2)
                           (erf(y1) - erf(y0)),  M_1 = sigma^2 (g(t) - G_T) + s_c M_0

  Every exponential is formed in log space and multiplies a J_k or erf difference of order one, so
  nothing overflows or underflows spuriously for any mu, sigma.
  The slope weighting has two exact forms, (u - mu) = (t - mu) + (u - t), and (u - mu) g = -sigma^2 g'
  integrated by parts::

      H_slope = (t - mu) M_0 + M_1                  = sigma^2 [g(t) - G_T - r M_0]
      F_slope = (t - mu) F_g + F_1                  = (sigma^2/tau_mem) (H_g(r_syn) - F_g) - sigma^2 g(T) c(D)
                (F_1 = int (u - t) g(u) c(u - t) du, the divided difference of M_1 in r)

  and per entry the one whose terms are smaller in magnitude is used (the first cancels for narrow
  Gaussians far ahead of t, the second for broad ones).

Numerical safeguards (all results are exact up to rounding; no time grid anywhere):

* F from H: the difference ``k (H_syn - H_mem)`` loses digits when the two rates are close relative
  to the inverse duration of the weighted window (nearly equal time constants, or t close to T). Where
  ``|H_syn| + |H_mem| >= 8 |H_syn - H_mem|`` the divided difference is instead evaluated as the mean
  of M_1 over [r_syn, r_mem] with a 6-point Gauss-Legendre rule in the rate (F_1 likewise with M_2);
  in that regime M_1 varies by only a few percent over the interval and the rule is exact to rounding
  (error ~ 2e-16 (Delta r s)^12). At tau_mem == tau_syn this is exactly the limit F = M_1(1/tau)/tau.
* Short Gaussian windows: when D max(|p_mem|, |p_syn|, 1/sigma) <= 2 (p = r + (t - mu)/sigma^2, the
  log-slope of the integrand at t) the head and tail above cancel; there the Gaussian term is integrated
  by a 16-point Gauss-Legendre rule on [t, T]. The integrand is entire with all derivative scales
  >= D/2, so the rule's error (~1e-27 relative) is far below rounding: it is a closed-form evaluation
  in all but name. Otherwise every closed form above loses at most a small constant factor.

Choice for SumGaussian: mu and sigma are fractions of T by default (mu = 0.6 T, sigma = 0.2 T,
offset 0.1), so one setting serves recordings of any length; ``relative=False`` reads them in seconds.
The default weighting is "gaussian" (positive everywhere, so z is a positively weighted average of V).
The small offset keeps every moment in play while the Gaussian de-emphasises the first, noise-driven
moments of a recording (seed: Klotins, "novel loss").

``MaxVoltage``
--------------
``z_bo = max_{t in [0, T]} V_bo(t)`` (V(0) = 0 counts, so z >= 0). Between arrivals V has at most one
stationary point (closed form, :func:`exactsnn.neurons.lif.lif_extremum`); the maximum is at t = 0,
at such a stationary point, at an arrival time or at T. With t* the (earliest) argmax, the envelope
theorem gives, for arrivals with t_a < t* (t_a <= T when t* = T)::

    lam_V(t_a) = c_bo e^{-(t* - t_a)/tau_mem},      lam_I(t_a) = c_bo c(t* - t_a)

and 0 for later arrivals. Kink maximum: when t* < T is an arrival time (an inhibitory arrival turns a
rising V down), z = V(t_k) and delaying that arrival lets V rise further: dz/dt_k = (I(t_k^-) - V(t_k))/tau_mem,
dz/dw_k = 0. That arrival gets ``lam_I = 0`` and ``lam_V = -c_bo (I(t_k^-) - V(t_k))/w_k`` so that
the two gradient formulas above return exactly these derivatives (only those two combinations of the
readout adjoints are meaningful at t_k). Simultaneous arrivals at t* are a genuine tie (one-sided
derivatives differ); each gets the single-arrival value.

``FirstSpike`` (spiking output, Wunderlich & Pehle 2021)
-------------------------------------------------------
With first output spike times t_bo (np.inf where a unit does not fire)::

    L = (1/B) sum_b [ -log softmax(-t_b/tau0)_{label_b} + alpha (e^{t_{b,label_b}/tau1} - 1) ]

Units without a spike enter the softmax (and the regulariser) with t = T and get a zero gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
from numba import njit
from scipy.special import erf, erfcx

from exactsnn.neurons.lif import lif_extremum, lif_voltage

__all__ = ["Sum", "SumExp", "SumGaussian", "MaxVoltage", "FirstSpike", "LOSSES"]

_GL_S_X, _GL_S_W = np.polynomial.legendre.leggauss(16)  # short Gaussian windows, nodes in [-1, 1]
_GL_R_X, _GL_R_W = np.polynomial.legendre.leggauss(6)  # divided difference in the rate
_SHORT = 2.0  # D * (largest derivative scale) at or below which the Gaussian term uses the rule
_ILL = 8.0  # |H_syn| + |H_mem| >= _ILL |H_syn - H_mem|: divided difference by the rate rule
_SQRT2 = math.sqrt(2.0)
_SQRTPI = math.sqrt(math.pi)


# ----------------------------------------------------------------------------- validation
def _positive(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _check_labels(labels: np.ndarray, n_out: int, batch: int | None = None) -> np.ndarray:
    """Labels as an int64 array (B,) with values in [0, n_out); ValueError otherwise."""
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"labels must be a 1-d array of class indices, got shape {lab.shape}")
    if lab.size == 0:
        raise ValueError("labels is empty: a batch needs at least one sample")
    if not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    if batch is not None and lab.size != batch:
        raise ValueError(f"labels has length {lab.size}, expected one per sample ({batch})")
    bad = (lab < 0) | (lab >= n_out)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"label {int(lab[i])} of sample {i} is outside [0, {n_out})")
    return lab.astype(np.int64)


def _check_n_out(n_out: int) -> int:
    if isinstance(n_out, bool) or not isinstance(n_out, (int, np.integer)) or n_out < 1:
        raise ValueError(f"n_out must be a positive integer, got {n_out!r}")
    return int(n_out)


def _check_arrivals(
    t_arr: np.ndarray, w_arr: np.ndarray, o_arr: np.ndarray, b_arr: np.ndarray,
    labels: np.ndarray, n_out: int, T: float, tau_mem: float, tau_syn: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, int, float, float, float]:
    n_out = _check_n_out(n_out)
    T = _positive("T", T)
    tau_mem = _positive("tau_mem", tau_mem)
    tau_syn = _positive("tau_syn", tau_syn)
    lab = _check_labels(labels, n_out)
    t = np.asarray(t_arr, dtype=np.float64)
    w = np.asarray(w_arr, dtype=np.float64)
    o = np.asarray(o_arr)
    b = np.asarray(b_arr)
    if not (t.ndim == w.ndim == o.ndim == b.ndim == 1 and t.size == w.size == o.size == b.size):
        raise ValueError(
            f"t_arr, w_arr, o_arr, b_arr must be 1-d arrays of one length, got shapes {t.shape}, {w.shape}, "
            f"{o.shape}, {b.shape}"
        )
    if t.size:
        if not (np.issubdtype(o.dtype, np.integer) and np.issubdtype(b.dtype, np.integer)):
            raise ValueError(f"o_arr and b_arr must be integer arrays, got {o.dtype} and {b.dtype}")
        if not np.isfinite(w).all():
            raise ValueError("w_arr holds a non-finite weight")
        if not (np.isfinite(t).all() and t.min() >= 0.0 and t.max() <= T):
            raise ValueError(f"arrival times must lie in [0, T = {T}] s")
        if o.min() < 0 or o.max() >= n_out:
            raise ValueError(f"readout unit index outside [0, {n_out})")
        if b.min() < 0 or b.max() >= lab.size:
            raise ValueError(f"sample index outside [0, {lab.size}) (one label per sample)")
    return t, w, o.astype(np.int64), b.astype(np.int64), lab, n_out, T, tau_mem, tau_syn


# ----------------------------------------------------------------------------- shared pieces
def _cross_entropy(z: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Batch-mean cross-entropy of softmax(z) (z: (B, n)) and its gradient dL/dz (B, n).

    Accurate to a few ulps also for a confidently right sample (loss ~1e-8): -log p_label is formed
    as log1p(sum_{j != label} e^{z_j - z_label}) and 1 - p_label as that sum over the total, not as
    differences of numbers close to 1.
    """
    B = z.shape[0]
    rows = np.arange(B)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    s = e.sum(axis=1)
    others = e.copy()
    others[rows, labels] = 0.0
    s_others = others.sum(axis=1)
    gap = z[rows, labels] - m[:, 0]  # <= 0
    with np.errstate(divide="ignore", over="ignore"):
        near = gap > -30.0
        per_sample = np.where(near, np.log1p(s_others / np.where(near, e[rows, labels], 1.0)), np.log(s) - gap)
    grad = e / s[:, None]
    grad[rows, labels] = -s_others / s
    return float(np.mean(per_sample)), grad / B


def _phi1(x: np.ndarray) -> np.ndarray:
    """expm1(x)/x with the limit 1 at x = 0."""
    out = np.ones_like(x)
    nz = x != 0.0
    out[nz] = np.expm1(x[nz]) / x[nz]
    return out


def _psi(x: np.ndarray) -> np.ndarray:
    """int_0^1 v e^{-x v} dv = (1 - (1 + x) e^{-x})/x^2 for x >= 0 (series below 1: no cancellation)."""
    out = np.empty_like(x)
    small = x < 1.0
    xs = x[small]
    acc = np.zeros_like(xs)
    term = np.ones_like(xs)  # (-x)^k / k!
    for k in range(26):
        acc += term / (k + 2)
        term = term * (-xs) / (k + 1)
    out[small] = acc
    xl = x[~small]
    out[~small] = (-np.expm1(-xl) - xl * np.exp(-xl)) / (xl * xl)
    return out


def _j012(y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """J_n(y) = int_0^inf v^n e^{-2 y v - v^2} dv for n = 0, 1, 2 and y >= 0, each to full relative precision.

    J_0 = (sqrt(pi)/2) erfcx(y); the rest from 2 y J_n + 2 J_{n+1} = n J_{n-1} (J_{-1} term absent for
    n = 0). Forward below y = 1 (loses at most a factor ~3); from y = 1 the ratios R_n = J_n/J_{n-1} come
    from the continued fraction R_n = n/(2y + 2 R_{n+1}) (Laplace's for erfc), free of the cancellation.
    """
    J0 = (0.5 * _SQRTPI) * erfcx(y)
    J1, J2 = np.empty_like(y), np.empty_like(y)
    small = y < 1.0
    ys, j0 = y[small], J0[small]
    J1[small] = 0.5 - ys * j0
    J2[small] = 0.5 * j0 - ys * J1[small]
    for lo, hi, terms in ((1.0, 2.0, 200), (2.0, 4.0, 80), (4.0, np.inf, 40)):  # enough for 1e-15
        sel = (y >= lo) & (y < hi)
        if not sel.any():
            continue
        yl = y[sel]
        R = np.zeros_like(yl)
        R2 = R
        for n in range(terms, 0, -1):
            R = n / (2.0 * yl + 2.0 * R)
            if n == 2:
                R2 = R
        J1[sel] = R * J0[sel]
        J2[sel] = R2 * J1[sel]
    return J0, J1, J2


def _coupling(s: np.ndarray, tau_mem: float, tau_syn: float) -> np.ndarray:
    """c(s) = k (e^{-s/tau_syn} - e^{-s/tau_mem}) for s >= 0, stable at tau_mem ~ tau_syn (as lif_coupling)."""
    a_m = np.exp(-s / tau_mem)
    delta = (tau_syn - tau_mem) / (tau_mem * tau_syn)
    x = s * delta
    near = np.abs(x) < 1.0
    out = np.empty_like(s)
    out[near] = a_m[near] * (s[near] / tau_mem) * _phi1(x[near])
    far = ~near
    out[far] = (np.exp(-s[far] / tau_syn) - a_m[far]) / (tau_mem * delta)
    return out


def _f_from_h(
    h_syn: np.ndarray, h_mem: np.ndarray, m1: Callable[[np.ndarray, float], np.ndarray], tau_mem: float, tau_syn: float
) -> np.ndarray:
    """F = (1/tau_mem) (H(r_syn) - H(r_mem))/(r_mem - r_syn), by difference where well conditioned.

    Elsewhere (and always at tau_mem == tau_syn) the mean of M_1 = -dH/dr over [r_syn, r_mem] by a
    Gauss-Legendre rule in the rate; ``m1(idx, r)`` returns M_1 at rate r for the entries ``idx``.
    """
    r_mem, r_syn = 1.0 / tau_mem, 1.0 / tau_syn
    diff = h_syn - h_mem
    if tau_mem != tau_syn:
        out = diff * (tau_syn / (tau_syn - tau_mem))
        ill = ~(np.abs(h_syn) + np.abs(h_mem) < _ILL * np.abs(diff))
    else:
        out = np.empty_like(diff)
        ill = np.ones(diff.shape, dtype=bool)
    if ill.any():
        idx = np.flatnonzero(ill)
        mid, half = 0.5 * (r_mem + r_syn), 0.5 * (r_mem - r_syn)
        if half == 0.0:
            out[idx] = m1(idx, mid) / tau_mem
        else:
            acc = np.zeros(idx.size)
            for x, wgt in zip(_GL_R_X, _GL_R_W, strict=True):
                acc += (0.5 * wgt) * m1(idx, mid + half * x)
            out[idx] = acc / tau_mem
    return out


def _exp_integrals(
    t: np.ndarray, T: float, amp: float, beta: float, tau_mem: float, tau_syn: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H_mem, H_syn, F) at times t for the weighting f(u) = amp e^{-beta u} (beta >= 0)."""
    D = T - t
    pre = amp * np.exp(-beta * t)

    def h(r: float) -> np.ndarray:
        return pre * D * _phi1(-(r + beta) * D)

    def m1(idx: np.ndarray, r: float) -> np.ndarray:
        Di = D[idx]
        return pre[idx] * Di * Di * _psi((r + beta) * Di)

    h_mem, h_syn = h(1.0 / tau_mem), h(1.0 / tau_syn)
    return h_mem, h_syn, _f_from_h(h_syn, h_mem, m1, tau_mem, tau_syn)


def _gauss_moments(
    t: np.ndarray, T: float, r: float, mu: float, sigma: float, n: int
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Closed-form M_k = int_t^T (u - t)^k g(u) e^{-r(u - t)} du for k = 0..n (n <= 2), with g(t) and
    G_T = g(T) e^{-r(T - t)}; for windows that are not short (see the module docstring).

    With Q = sqrt2 sigma and the vertex of the integrand at s_c = -Q y0 (s = u - t):
    y0 >= 0: int_0^D = int_0^inf - int_D^inf, each a sum of Q^{k+1} J_k (the tail shifted to s = D);
    y1 <= 0: the same on the reflected interval s -> D - s (anchored at T);
    y0 < 0 < y1: central moments about the vertex (erf and Gaussian boundary terms).
    """
    D = T - t
    Q = _SQRT2 * sigma
    s2 = sigma * sigma
    y0 = (r * s2 + t - mu) / Q
    y1 = np.full_like(t, (r * s2 + T - mu) / Q)
    g_t = np.exp(-(((t - mu) / Q) ** 2))
    G_T = np.exp(-(((T - mu) / Q) ** 2) - r * D)
    M = [np.empty_like(t) for _ in range(n + 1)]

    def tails(Dc: np.ndarray, y: np.ndarray) -> list[np.ndarray]:
        # int_0^inf (Dc + v)^k e^{-2 y v/Q - v^2/Q^2} dv for k = 0..n
        J0, J1, J2 = _j012(y)
        out = [Q * J0]
        if n >= 1:
            out.append(Dc * Q * J0 + Q * Q * J1)
        if n >= 2:
            out.append(Dc * Dc * Q * J0 + 2.0 * Dc * Q * Q * J1 + Q**3 * J2)
        return out

    a = y0 >= 0.0
    b = (y1 <= 0.0) & ~a
    c = ~(a | b)
    if a.any():
        zero = np.zeros(int(a.sum()))
        head, tail = tails(zero, y0[a]), tails(D[a], y1[a])
        for k in range(n + 1):
            M[k][a] = g_t[a] * head[k] - G_T[a] * tail[k]
    if b.any():
        zero = np.zeros(int(b.sum()))
        head, tail = tails(zero, -y1[b]), tails(D[b], -y0[b])
        A = [G_T[b] * head[k] - g_t[b] * tail[k] for k in range(n + 1)]  # moments of D - s
        Db = D[b]
        M[0][b] = A[0]
        if n >= 1:
            M[1][b] = Db * A[0] - A[1]
        if n >= 2:
            M[2][b] = Db * Db * A[0] - 2.0 * Db * A[1] + A[2]
    if c.any():
        sc = -Q * y0[c]  # vertex distance from t (> 0); D - sc = Q y1 > 0
        vertex = np.exp(r * (0.5 * r * s2 + t[c] - mu))
        m0 = vertex * (0.5 * _SQRTPI * Q) * (erf(y1[c]) - erf(y0[c]))
        M[0][c] = m0
        if n >= 1:
            z1 = s2 * (g_t[c] - G_T[c])
            M[1][c] = z1 + sc * m0
        if n >= 2:
            z2 = s2 * (m0 - Q * y1[c] * G_T[c] - sc * g_t[c])
            M[2][c] = z2 + 2.0 * sc * z1 + sc * sc * m0
    return M, g_t, G_T


def _pick(a1: np.ndarray, mag1: np.ndarray, a2: np.ndarray, mag2: np.ndarray) -> np.ndarray:
    """Per entry, the one of two exact expressions whose terms are smaller (less cancellation)."""
    return np.where(mag1 <= mag2, a1, a2)


def _gauss_integrals(
    t: np.ndarray, T: float, mu: float, sigma: float, slope: bool, tau_mem: float, tau_syn: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(H_mem, H_syn, F) at times t for f = g (slope False) or f = (u - mu) g (slope True)."""
    D = T - t
    r_mem, r_syn = 1.0 / tau_mem, 1.0 / tau_syn
    h_mem, h_syn, F = np.empty_like(t), np.empty_like(t), np.empty_like(t)
    inv_s2 = 1.0 / (sigma * sigma)
    scale = np.maximum(np.abs(r_mem + (t - mu) * inv_s2), np.abs(r_syn + (t - mu) * inv_s2))
    short = D * np.maximum(scale, 1.0 / sigma) <= _SHORT

    if short.any():  # Gauss-Legendre on [t, T]: exact to rounding on these windows
        dmu, Ds = (t[short] - mu)[:, None], D[short][:, None]
        s = 0.5 * Ds * (_GL_S_X[None, :] + 1.0)
        wgt = 0.5 * Ds * _GL_S_W[None, :]
        x = dmu + s  # u - mu without the rounding of u = t + s
        f = np.exp(-0.5 * (x / sigma) ** 2)
        if slope:
            f = x * f
        fw = f * wgt
        h_mem[short] = (fw * np.exp(-s * r_mem)).sum(axis=1)
        h_syn[short] = (fw * np.exp(-s * r_syn)).sum(axis=1)
        F[short] = (fw * _coupling(s.ravel(), tau_mem, tau_syn).reshape(s.shape)).sum(axis=1)

    long_ = ~short
    if long_.any():
        tl, Dl = t[long_], D[long_]
        n = 2 if slope else 1
        Mm, g_t, G_mem = _gauss_moments(tl, T, r_mem, mu, sigma, n)
        Ms, _, G_syn = _gauss_moments(tl, T, r_syn, mu, sigma, n)

        def moment(k: int) -> Callable[[np.ndarray, float], np.ndarray]:
            return lambda idx, r: _gauss_moments(tl[idx], T, r, mu, sigma, k)[0][k]

        fg = _f_from_h(Ms[0], Mm[0], moment(1), tau_mem, tau_syn)
        if not slope:
            h_mem[long_], h_syn[long_], F[long_] = Mm[0], Ms[0], fg
        else:
            # (u - mu) = (t - mu) + s, or (u - mu) g = -sigma^2 g' integrated by parts: whichever cancels less
            s2, dmu = sigma * sigma, tl - mu
            for out, M_, G_, r in ((h_mem, Mm, G_mem, r_mem), (h_syn, Ms, G_syn, r_syn)):
                out[long_] = _pick(
                    dmu * M_[0] + M_[1], np.abs(dmu) * M_[0] + M_[1],
                    s2 * (g_t - G_ - r * M_[0]), s2 * (g_t + G_ + r * M_[0]),
                )
            f1 = _f_from_h(Ms[1], Mm[1], moment(2), tau_mem, tau_syn)  # int (u - t) g(u) c(u - t) du
            g_T = math.exp(-0.5 * ((T - mu) / sigma) ** 2)
            cD = _coupling(Dl, tau_mem, tau_syn)
            F[long_] = _pick(
                dmu * fg + f1, np.abs(dmu * fg) + np.abs(f1),
                (s2 / tau_mem) * (Ms[0] - fg) - s2 * g_T * cD,
                (s2 / tau_mem) * (np.abs(Ms[0]) + np.abs(fg)) + s2 * g_T * cD,
            )
    return h_mem, h_syn, F


# ----------------------------------------------------------------------------- integral losses
class _IntegralLoss:
    """Shared ``readout`` of the losses z_bo = int_0^T f(t) V_bo(t) dt."""

    def weight(self, u: np.ndarray, T: float) -> np.ndarray:  # pragma: no cover - overridden
        """The weighting f(u) (1/s) on [0, T] (u, T in seconds)."""
        raise NotImplementedError

    def integrals(
        self, t: np.ndarray, T: float, tau_mem: float, tau_syn: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # pragma: no cover - overridden
        """(H_mem, H_syn, F) at times t in [0, T] (s); see the module docstring."""
        raise NotImplementedError

    def readout(
        self, t_arr: np.ndarray, w_arr: np.ndarray, o_arr: np.ndarray, b_arr: np.ndarray,
        labels: np.ndarray, n_out: int, T: float, tau_mem: float, tau_syn: float,
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Loss and adjoint sources for the arrivals into an LI readout.

        Arrivals: times ``t_arr`` (M,) in [0, T] s, weights ``w_arr`` (M,), readout unit ``o_arr`` (M,),
        sample ``b_arr`` (M,); ``labels`` (B,) ints in [0, n_out). T, tau_mem, tau_syn in seconds.
        Returns ``(loss, lam_V (M,), lam_I (M,), z (B, n_out))`` with lam = dL/dV, dL/dI of the
        arrival's readout unit at the arrival time. Samples without arrivals have z = 0.
        """
        t, w, o, b, lab, n_out, T, tau_mem, tau_syn = _check_arrivals(
            t_arr, w_arr, o_arr, b_arr, labels, n_out, T, tau_mem, tau_syn
        )
        B = lab.size
        # H and F depend on the arrival time only: evaluate once per distinct time (a dense readout
        # receives every hidden spike at all its units at the same time)
        t_u, inv = np.unique(t, return_inverse=True)
        h_u, _, F_u = self.integrals(t_u, T, tau_mem, tau_syn) if t.size else (t, t, t)
        h_mem, F = h_u[inv], F_u[inv]
        flat = b * n_out + o
        z = np.bincount(flat, weights=w * F, minlength=B * n_out).reshape(B, n_out)
        loss, grad = _cross_entropy(z, lab)
        c = grad.ravel()[flat]
        return loss, c * h_mem, c * F, z


@dataclass(frozen=True)
class Sum(_IntegralLoss):
    """Cross-entropy over softmax of z_o = int_0^T V_o(t) dt (V s)."""

    name: ClassVar[str] = "sum"

    def weight(self, u: np.ndarray, T: float) -> np.ndarray:
        """f(u) = 1."""
        return np.ones_like(np.asarray(u, dtype=np.float64))

    def integrals(
        self, t: np.ndarray, T: float, tau_mem: float, tau_syn: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(H_mem, H_syn, F) at times t (s) for f = 1."""
        return _exp_integrals(np.asarray(t, dtype=np.float64), float(T), 1.0, 0.0, tau_mem, tau_syn)


@dataclass(frozen=True)
class SumExp(_IntegralLoss):
    """Cross-entropy over softmax of z_o = (1/T) int_0^T e^{-t/T} V_o(t) dt (Nowotny et al. "sum_exp")."""

    name: ClassVar[str] = "sum_exp"

    def weight(self, u: np.ndarray, T: float) -> np.ndarray:
        """f(u) = e^{-u/T}/T (1/s)."""
        return np.exp(-np.asarray(u, dtype=np.float64) / T) / T

    def integrals(
        self, t: np.ndarray, T: float, tau_mem: float, tau_syn: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(H_mem, H_syn, F) at times t (s) for f = e^{-t/T}/T."""
        T = float(T)
        return _exp_integrals(np.asarray(t, dtype=np.float64), T, 1.0 / T, 1.0 / T, tau_mem, tau_syn)


@dataclass(frozen=True)
class SumGaussian(_IntegralLoss):
    """Cross-entropy over softmax of z_o = int_0^T (offset + G(t)) V_o(t) dt.

    ``weighting="gaussian"`` (default): G = g(t) = exp(-(t - mu)^2/(2 sigma^2));
    ``"gaussian_slope"``: G = (t - mu) g(t) (units of s). With ``relative=True`` (default) ``mu`` and
    ``sigma`` are fractions of the window T (mu = 0.6 T, sigma = 0.2 T), otherwise seconds. The offset
    (default 0.1) keeps the whole recording in play while the Gaussian de-emphasises its first,
    noise-driven moments. mu may lie outside [0, T]; sigma > 0.
    """

    mu: float = 0.6
    sigma: float = 0.2
    offset: float = 0.1
    weighting: str = "gaussian"
    relative: bool = True

    name: ClassVar[str] = "sum_gaussian"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mu", _finite("SumGaussian.mu", self.mu))
        object.__setattr__(self, "sigma", _positive("SumGaussian.sigma", self.sigma))
        object.__setattr__(self, "offset", _finite("SumGaussian.offset", self.offset))
        if self.offset < 0:
            raise ValueError(f"SumGaussian.offset must be >= 0, got {self.offset!r}")
        if self.weighting not in ("gaussian", "gaussian_slope"):
            raise ValueError(f"SumGaussian.weighting must be 'gaussian' or 'gaussian_slope', got {self.weighting!r}")
        if not isinstance(self.relative, bool):
            raise ValueError(f"SumGaussian.relative must be True or False, got {self.relative!r}")

    def absolute(self, T: float) -> tuple[float, float]:
        """(mu, sigma) in seconds for a window of T seconds."""
        return (self.mu * T, self.sigma * T) if self.relative else (self.mu, self.sigma)

    def weight(self, u: np.ndarray, T: float) -> np.ndarray:
        """f(u) = offset + g(u) or offset + (u - mu) g(u)."""
        mu, sigma = self.absolute(T)
        u = np.asarray(u, dtype=np.float64)
        g = np.exp(-0.5 * ((u - mu) / sigma) ** 2)
        return self.offset + (g if self.weighting == "gaussian" else (u - mu) * g)

    def integrals(
        self, t: np.ndarray, T: float, tau_mem: float, tau_syn: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(H_mem, H_syn, F) at times t (s) for f = offset + G."""
        t = np.asarray(t, dtype=np.float64)
        T = float(T)
        mu, sigma = self.absolute(T)
        h_mem, h_syn, F = _gauss_integrals(t, T, mu, sigma, self.weighting == "gaussian_slope", tau_mem, tau_syn)
        if self.offset != 0.0:
            e_mem, e_syn, e_F = _exp_integrals(t, T, self.offset, 0.0, tau_mem, tau_syn)
            h_mem, h_syn, F = h_mem + e_mem, h_syn + e_syn, F + e_F
        return h_mem, h_syn, F


# ----------------------------------------------------------------------------- max over time
@njit(cache=True)
def _max_walk(
    t: np.ndarray, w: np.ndarray, starts: np.ndarray, T: float, tau_mem: float, tau_syn: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group (arrivals t[starts[g]:starts[g+1]], sorted): max of V on [0, T], its earliest argmax
    t*, and I(t*^-) when t* < T is an arrival time (a kink maximum; NaN otherwise)."""
    n_groups = starts.size - 1
    z = np.zeros(n_groups)
    t_star = np.zeros(n_groups)
    i_kink = np.full(n_groups, np.nan)
    for g in range(n_groups):
        lo, hi = starts[g], starts[g + 1]
        best, bt, bi = 0.0, 0.0, np.nan
        V, I, tc = 0.0, 0.0, 0.0
        a = lo
        while a < hi:
            ta = t[a]
            if a > lo:
                gap = ta - tc
                s_star = lif_extremum(V, I, tau_mem, tau_syn)
                if s_star < gap:
                    v_s = lif_voltage(V, I, s_star, tau_mem, tau_syn)
                    if v_s > best:
                        best, bt, bi = v_s, tc + s_star, np.nan
                V = lif_voltage(V, I, gap, tau_mem, tau_syn)
                I = I * math.exp(-gap / tau_syn)
            tc = ta
            if V > best:
                best, bt, bi = V, ta, (I if ta < T else np.nan)
            while a < hi and t[a] == ta:
                I += w[a]
                a += 1
        if hi > lo and T > tc:
            gap = T - tc
            s_star = lif_extremum(V, I, tau_mem, tau_syn)
            if s_star < gap:
                v_s = lif_voltage(V, I, s_star, tau_mem, tau_syn)
                if v_s > best:
                    best, bt, bi = v_s, tc + s_star, np.nan
            v_T = lif_voltage(V, I, gap, tau_mem, tau_syn)
            if v_T > best:
                best, bt, bi = v_T, T, np.nan
        z[g] = best
        t_star[g] = bt
        i_kink[g] = bi
    return z, t_star, i_kink


@dataclass(frozen=True)
class MaxVoltage:
    """Cross-entropy over softmax of z_o = max_{t in [0, T]} V_o(t) (V(0) = 0 counts, so z >= 0)."""

    name: ClassVar[str] = "max"

    def peaks(
        self, t_arr: np.ndarray, w_arr: np.ndarray, o_arr: np.ndarray, b_arr: np.ndarray,
        B: int, n_out: int, T: float, tau_mem: float, tau_syn: float,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(z, t*, I(t*^-)) per (sample, unit), each (B, n_out): the maximum of V, its earliest argmax (s)
        and, for a kink maximum at an arrival time t* < T, the current just before it (NaN otherwise).
        Inputs as for :meth:`readout` (already validated)."""
        key = b_arr * n_out + o_arr
        # by (key, time): a stable integer sort suffices when times already rise within each key
        # (a delay-free readout lists each sample's arrivals in time order); lexsort otherwise
        order = np.argsort(key, kind="stable")
        k_s, t_s = key[order], t_arr[order]
        if np.any((t_s[1:] < t_s[:-1]) & (k_s[1:] == k_s[:-1])):
            order = np.lexsort((t_arr, key))
        counts = np.bincount(key, minlength=B * n_out)
        starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
        z, t_star, i_kink = _max_walk(
            np.ascontiguousarray(t_arr[order]), np.ascontiguousarray(w_arr[order]), starts, T, tau_mem, tau_syn
        )
        shape = (B, n_out)
        return z.reshape(shape), t_star.reshape(shape), i_kink.reshape(shape)

    def readout(
        self, t_arr: np.ndarray, w_arr: np.ndarray, o_arr: np.ndarray, b_arr: np.ndarray,
        labels: np.ndarray, n_out: int, T: float, tau_mem: float, tau_syn: float,
    ) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """Loss and adjoint sources for the arrivals into an LI readout (arguments as
        :meth:`Sum.readout`). Returns ``(loss, lam_V (M,), lam_I (M,), z (B, n_out))``; see the module
        docstring for the kink-maximum convention."""
        t, w, o, b, lab, n_out, T, tau_mem, tau_syn = _check_arrivals(
            t_arr, w_arr, o_arr, b_arr, labels, n_out, T, tau_mem, tau_syn
        )
        B = lab.size
        z, t_star, i_kink = self.peaks(t, w, o, b, B, n_out, T, tau_mem, tau_syn)
        loss, grad = _cross_entropy(z, lab)
        lam_V, lam_I = np.zeros_like(t), np.zeros_like(t)
        if t.size == 0:
            return loss, lam_V, lam_I, z
        c, ts_a, ik = grad[b, o], t_star[b, o], i_kink[b, o]
        before = (t < ts_a) | ((ts_a == T) & (t <= T))
        s = ts_a[before] - t[before]
        lam_V[before] = c[before] * np.exp(-s / tau_mem)
        lam_I[before] = c[before] * _coupling(s, tau_mem, tau_syn)
        kink = (t == ts_a) & ~np.isnan(ik) & (w != 0.0)
        if kink.any():
            lam_V[kink] = -c[kink] * (ik[kink] - z[b[kink], o[kink]]) / w[kink]
        return loss, lam_V, lam_I, z


# ----------------------------------------------------------------------------- first spike
@dataclass(frozen=True)
class FirstSpike:
    """Time-to-first-spike loss of Wunderlich & Pehle (2021) for a spiking output layer.

    L = mean_b [-log softmax(-t_b/tau0)_label + alpha (e^{t_label/tau1} - 1)], t in seconds.
    Units that do not fire enter with t = T and receive zero gradient. Defaults: the Yin-Yang
    values of Wunderlich & Pehle (tau0 = 0.5 ms, tau1 = 6.4 ms, alpha = 3e-3).
    """

    tau0: float = 0.5e-3
    tau1: float = 6.4e-3
    alpha: float = 3e-3

    name: ClassVar[str] = "first_spike"

    def __post_init__(self) -> None:
        object.__setattr__(self, "tau0", _positive("FirstSpike.tau0", self.tau0))
        object.__setattr__(self, "tau1", _positive("FirstSpike.tau1", self.tau1))
        object.__setattr__(self, "alpha", _finite("FirstSpike.alpha", self.alpha))
        if self.alpha < 0:
            raise ValueError(f"FirstSpike.alpha must be >= 0, got {self.alpha!r}")

    def spike_loss(self, first_t: np.ndarray, labels: np.ndarray, T: float) -> tuple[float, np.ndarray]:
        """Loss and dL/dfirst_t (B, n_out) from first spike times ``first_t`` (B, n_out) in seconds
        (np.inf where a unit did not fire); ``labels`` (B,) ints; T the window (s)."""
        T = _positive("T", T)
        ft = np.asarray(first_t, dtype=np.float64)
        if ft.ndim != 2 or ft.shape[1] < 1:
            raise ValueError(f"first_t must have shape (B, n_out), got {ft.shape}")
        if np.isnan(ft).any() or (ft == -np.inf).any():
            raise ValueError("first_t holds NaN or -inf (use np.inf for units without a spike)")
        lab = _check_labels(labels, ft.shape[1], ft.shape[0])
        fired = np.isfinite(ft)
        t_eff = np.where(fired, ft, T)
        rows = np.arange(ft.shape[0])
        ce, g_x = _cross_entropy(-t_eff / self.tau0, lab)
        t_lab = t_eff[rows, lab]
        loss = ce + self.alpha * float(np.mean(np.expm1(t_lab / self.tau1)))
        grad = -g_x / self.tau0
        grad[rows, lab] += self.alpha * np.exp(t_lab / self.tau1) / (self.tau1 * ft.shape[0])
        grad[~fired] = 0.0
        return loss, grad


LOSSES: dict[str, type] = {cls.name: cls for cls in (Sum, SumExp, SumGaussian, MaxVoltage, FirstSpike)}
