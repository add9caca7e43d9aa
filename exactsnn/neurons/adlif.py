"""Adaptive LIF neuron (adLIF) with exponential current synapse, and its EventProp adjoint.

Model (time in seconds, voltages in units of the threshold scale, a and b dimensionless)::

    tau_mem dV/dt = -V + I - w        tau_w dw/dt = -w + a V        tau_syn dI/dt = -I
    input spike of weight W:  I += W
    spike when V reaches v_th from below; then V = v_reset and w += b; V is held at v_reset for
    t_ref (w keeps relaxing, towards a v_reset, and I keeps decaying and receiving input)

Between events x = (V, w, I) obeys dx/dt = A x (:mod:`exactsnn.neurons.linear` has A, the
propagator expm(A s) and the first-crossing search). The eigenvalues are -1/tau_syn and
-g +- sqrt(g^2 - (1 + a)/(tau_mem tau_w)), g = (1/tau_mem + 1/tau_w)/2: a complex pair (damped
oscillation, several threshold crossings possible between two inputs) when
a > (tau_w - tau_mem)^2 / (4 tau_mem tau_w). Stability needs a > -1. LIF is a = b = 0 (w stays 0),
which is how a LIF layer with learned time constants runs on the same kernels.

EventProp (derived here for this model; convention of the whole code base: lam = dL/dx(t), the
effect on the loss of nudging the state at t and letting the network run on; lam(T) = 0).

* Free stretch: dlam/dt = -A^T lam, so going back over a stretch of length D,
  lam(t1 - D) = expm(A D)^T lam(t1). Refractory window: V is clamped, so lam_V = 0 there and
  lam_w, lam_I decay with tau_w and tau_syn.
* Arrival of weight W at t_a (I += W): lam is continuous; dL/dW = lam_I(t_a) and, since arriving
  later by d leaves the state short of d W A e_I, dL/dt_a = W (lam_I/tau_syn - lam_V/tau_mem)(t_a)
  (this is also the arrival's share of dL/d(delay) and of dL/d(presynaptic spike time)).
* Spike of neuron k at t_k (reset x+ = R x- + c, R = diag(0, 1, 1), c = (v_reset, b, 0)). The
  spike time moves by -dV/Vdot^- when V(t_k^-) moves by dV, Vdot^- = (I - w^- - v_th)/tau_mem > 0.
  Spiking later by d changes the state after the spike by d (R xdot^- - xdot^+), whose V part is
  -Vdot^+ for t_ref = 0 (Vdot^+ = (I - w^- - b - v_reset)/tau_mem: the post-reset w) and whose w part
  is (a (v_th - v_reset) + b)/tau_w (w' jumps at the reset even for b = 0). With t_ref > 0 the window
  end t_e = t_k + t_ref moves too; releasing the clamp later by d leaves V short of d Vdot(t_e^+),
  Vdot(t_e^+) = (I_e - w_e - v_reset)/tau_mem, while w' is the same either way. Hence::

      dL/dt_k = -S + lam_w(t_k^+) (a (v_th - v_reset) + b)/tau_w + dL/dt_k|downstream
      S = lam_V(t_k^+) Vdot^+ (t_ref = 0),    S = lam_V(t_e^+) Vdot(t_e^+) (t_ref > 0; 0 if t_e >= T)
      lam_V(t_k^-) = -dL/dt_k / Vdot^-,       lam_w, lam_I continuous

  (going backward, S is stored at t_e and lam_V set to 0 there). dL/dt_k|downstream sums dL/dt_a over
  the spike's arrivals (next layer, recurrent targets, loss terms). At a = b = 0 this is the LIF jump.
* Neuron parameters p (per neuron; opt-in): dL/dp = integral lam^T (dA/dp) x dt over the free
  stretches, plus the same for the window's affine dynamics (w' = (-w + a v_reset)/tau_w, I' = -I/tau_syn),
  plus dL/db = sum over the neuron's spikes of lam_w(t_k^+) (b enters only the reset map). With
  Q = integral lam x^T dt over a free stretch (upper-right block of one 6x6 Van Loan exponential,
  expm([[A^T, lam(t1) x(t0)^T], [0, A^T]] D): no eigenvalue gaps, real arithmetic)::

      dL/dtau_mem += (Q_VV + Q_Vw - Q_VI)/tau_mem^2     dL/dtau_w += (Q_ww - a Q_wV)/tau_w^2
      dL/da       += Q_wV/tau_w                          dL/dtau_syn += Q_II/tau_syn^2

  and over a window stretch of length D from (v_reset, w0, I0) with end adjoint lam(t1)::

      dL/da += lam_w(t1) v_reset (1 - e^{-D/tau_w})     dL/dtau_w += lam_w(t1) (w0 - a v_reset) D e^{-D/tau_w}/tau_w^2
      dL/dtau_syn += lam_I(t1) I0 D e^{-D/tau_syn}/tau_syn^2

  The spike condition V = v_th and the reset do not depend on p directly: the spike times' dependence
  on p is carried by the adjoint jumps above.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from exactsnn.neurons.spec import A_MIN, TAU_MIN, ModelSpec

__all__ = ["AdLIF", "ADLIF_SPEC"]


@dataclass(frozen=True)
class AdLIF:
    """Spiking adaptive LIF neuron: tau_mem, tau_w, tau_syn, t_ref in seconds; a > -1, b, v_th > v_reset.

    Defaults: adaptation time constant 100 ms, sub-threshold coupling a = 0.5 (real eigenvalues),
    spike-triggered adaptation b = 0.2.
    """

    tau_mem: float = 20e-3
    tau_w: float = 100e-3
    tau_syn: float = 5e-3
    a: float = 0.5
    b: float = 0.2
    v_th: float = 1.0
    v_reset: float = 0.0
    t_ref: float = 0.0

    spiking = True

    def __post_init__(self) -> None:
        for name in ("tau_mem", "tau_w", "tau_syn"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"AdLIF.{name} must be a positive finite number of seconds, got {v!r}")
        for name in ("a", "b", "v_th", "v_reset", "t_ref"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"AdLIF.{name} must be a finite number, got {v!r}")
        if self.t_ref < 0:
            raise ValueError(f"AdLIF.t_ref must be >= 0 seconds, got {self.t_ref!r}")
        if not self.a > -1.0:
            raise ValueError(f"AdLIF.a must be > -1 (otherwise V and w diverge), got {self.a!r}")
        if not self.v_reset < self.v_th:
            raise ValueError(f"AdLIF.v_reset ({self.v_reset}) must be below v_th ({self.v_th})")
        for name in ("tau_mem", "tau_w", "tau_syn", "a", "b", "v_th", "v_reset", "t_ref"):
            object.__setattr__(self, name, float(getattr(self, name)))

    @property
    def oscillatory(self) -> bool:
        """True when the (V, w) eigenvalues are complex (damped sub-threshold oscillation)."""
        return self.a > (self.tau_w - self.tau_mem) ** 2 / (4.0 * self.tau_mem * self.tau_w)


_TAUS = ("tau_mem", "tau_syn", "tau_w")
ADLIF_SPEC = ModelSpec("AdLIF", "adlif", AdLIF, "linear", learnable=(*_TAUS, "a", "b"), time_constants=_TAUS,
                       bounds={**{n: (TAU_MIN, math.inf) for n in _TAUS}, "a": (A_MIN, math.inf)})


def __getattr__(name: str) -> object:
    # NEURON_PARAMETERS (model name -> learnable names) predates the registry; it is now a view of it
    if name == "NEURON_PARAMETERS":
        from exactsnn.neurons.registry import MODELS

        return {n: s.learnable for n, s in MODELS.items() if s.learnable}
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
