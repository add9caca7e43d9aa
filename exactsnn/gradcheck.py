"""Check EventProp gradients against central finite differences of the exact forward pass.

For each parameter group (``weights[l]``, ``delays[l]`` of layers built with ``delays=True``,
``recurrent_weights[l]``, ``recurrent_delays[l]`` and, on request, ``input_times``) the checker draws
``n_checks`` unit directions ``v`` (``mode="random"``: isotropic Gaussian directions normalised
within the group; ``mode="coordinate"``: single entries chosen at random without replacement) and
compares the EventProp directional derivative ``g . v`` with central differences of the loss along
``v``.

Errors are measured relative to the group's **scale**, its largest EventProp gradient magnitude
``max_i |g_i|`` (or the largest finite-difference derivative found, if that is larger, so that a
gradient that is wrongly zero still fails): float64 central differences have an absolute noise floor
of a few ulp(L)/h, so errors relative to each small entry would measure noise (DESIGN §5 pitfall 3).

Step. ``eps`` is an **absolute** step in the units of the group (weights: dimensionless; delays and
input times: seconds); the default 1e-6 is ~2e-4 tau_syn for the default time constants.

Noise. The rounding noise ``sigma`` of the loss near the base point is measured per group (eight
evaluations with the group's values moved by a few ulps; a straight-line fit removes the true change),
at least 2 ulp(L). The estimate's noise is then ``4 sigma / h``. (A loss whose value is computed
less accurately than ulp(L), e.g. a cross-entropy of 1e-6 formed as log(s) + max(z) - z_label from
logits of ~20, shows up as a failure: its value, not EventProp, is then at fault.) With
``adaptive=True`` (default) a group whose scale is small next to that noise gets a larger step, so
that the noise stays below ``NOISE_TARGET`` (1e-8) of the scale:
``h = min(max(eps, 4 sigma / (NOISE_TARGET scale)), MAX_STEP_FACTOR eps)``. The step of each group
and its relative noise are reported (``step``, ``noise``).

Noise-limited groups. Where even the largest step leaves the estimated noise above the tolerance
(a group whose gradients are ~1e-7 of the loss), float64 differences cannot resolve the tolerance;
such a group is marked noise-limited and must agree within its noise instead (``GroupResult.ok``).
The noise estimate is conservative: observed errors in such groups are ~0.1 of it.

Estimate. The loss is evaluated at ``x +- (h/2^k) v`` for k = 0..3, giving the central differences
``D_k = D(h/2^k)`` and three Richardson extrapolations ``R_k = (4 D_{k+1} - D_k) / 3`` (truncation
error O(h^4)). The reported estimate is R_0 (the least noisy).

Skips. A check is skipped, never counted as an error, when

* ``pattern``: any of the eight perturbed runs has a different number of spikes than the base run for
  some (layer, sample, unit): the loss is then not differentiable inside the step;
* ``kink``: ``|R_0 - R_1|`` or ``|R_1 - R_2|`` exceeds ``max(kink_tol * scale, c * noise)`` (c = 4, 8):
  the estimate has not converged, which in practice means that the loss has a kink inside the step
  without any change of spike counts (DESIGN §5 pitfall 2: an arrival crossing its target's spike time
  or refractory end, the argmax of a max-voltage loss switching peaks). Smooth curvature, however large
  (near-tangent crossings make the third derivative huge), cancels in these differences up to O(h^4).
  A kink at offset a = x h from the base point (slope jump Δg) leaves R_0 - R_1 = 7 Δg x / 6 when it
  lies inside all steps, and otherwise shifts the D_k that straddle it: with three steps only, a kink
  at x = 4/9 makes D_0 - D_1 = 4 (D_1 - D_2) exactly like smooth curvature (R_0 = R_1, both wrong;
  met in practice), which the fourth step exposes. Two consecutive differences cannot both vanish for
  one kink at 0 < x < 1, so a kink that would spoil the estimate is caught unless it lies within
  ~kink_tol*h of the base point. Differences at the noise level are not kinks: such checks are compared;
* ``nonfinite``: a perturbed loss is not finite.

Coordinates that cannot move both ways are left out of the candidate set: delays below 2 h and
input times within 2 h of 0 or t_max (their number is reported as ``n_boundary``).

Regularisers. A spike count is piecewise constant, so the gradient EventProp propagates for a
spike-count regulariser is that of its relaxed surrogate (:mod:`exactsnn.regularizers`); the finite
differences therefore difference ``loss_value(..., regularizer, relaxed=True)``, whose derivative is
exact wherever the spike pattern holds.

Everything is deterministic: each group draws its directions from
``numpy.random.default_rng([seed, crc32(group name)])``, so a group's checks do not depend on which
other groups are checked.
"""

from __future__ import annotations

import importlib
import math
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from exactsnn.events import SpikeBatch
from exactsnn.network import Network, Params

__all__ = [
    "CheckEntry", "GradcheckReport", "GroupResult", "INPUT_TIMES", "SilentNetworkWarning", "gradcheck",
    "parameter_groups",
]

INPUT_TIMES = "input_times"
MODES = ("random", "coordinate")
NOISE_TARGET = 1e-8  # adaptive step: rounding noise of the estimate relative to the group's scale
MAX_STEP_FACTOR = 100.0  # adaptive step: at most this many times eps
NOISE_FACTOR = 4.0  # rounding noise of the Richardson estimate: NOISE_FACTOR * (noise of L) / h
NOISE_PROBES = 8  # loss evaluations per group that measure the rounding noise of L
FRACTIONS = (1.0, 0.5, 0.25, 0.125)  # central differences at these fractions of the step h
DEFAULT_TOL = 1e-6  # accepted error relative to each group's scale (GroupResult.ok, format_table, the CLI)


class SilentNetworkWarning(UserWarning):
    """Every checked gradient is exactly zero (typically a silent layer): the comparison is trivial."""


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class CheckEntry:
    """One finite-difference check.

    ``index``: the flat index of the coordinate (``mode="coordinate"``) or the direction number
    (``mode="random"``). ``eventprop``: g . v; ``fd``: the Richardson estimate R_0 from steps h, h/2;
    ``fd_fine``: R_1 (h/2, h/4), ``fd_finest``: R_2 (h/4, h/8); ``d_h`` .. ``d_h8``: the central
    differences at h, h/2, h/4, h/8.
    ``status``: ``"ok"`` (compared), ``"pattern"``, ``"kink"``, ``"nonfinite"`` (skipped).
    ``rel_error``: |eventprop - fd| / scale (NaN when skipped).
    """

    group: str
    index: int
    eventprop: float
    fd: float
    fd_fine: float
    fd_finest: float
    d_h: float
    d_h2: float
    d_h4: float
    d_h8: float
    rel_error: float
    status: str


@dataclass(frozen=True)
class GroupResult:
    """Summary of one parameter group.

    Counts of compared and skipped checks, ``n_boundary`` (coordinates that could not move both ways),
    ``scale`` (largest |gradient|), ``step`` (h used), ``noise`` (estimated rounding noise of the
    estimate relative to the scale), the worst relative error (NaN if none checked) and its check.
    """

    name: str
    size: int
    n_checked: int
    n_skipped_pattern: int
    n_skipped_kink: int
    n_skipped_nonfinite: int
    n_boundary: int
    scale: float
    step: float
    noise: float
    worst_rel_error: float
    worst: CheckEntry | None

    @property
    def n_skipped(self) -> int:
        """Checks skipped for any reason."""
        return self.n_skipped_pattern + self.n_skipped_kink + self.n_skipped_nonfinite

    @property
    def zero(self) -> bool:
        """True when EventProp and every compared finite difference are exactly zero (nothing to compare)."""
        return self.scale == 0.0

    def status(self, tol: float = DEFAULT_TOL) -> str:
        """``ok``, ``FAIL``, ``zero`` (compared, but gradient and differences are all exactly 0) or
        ``skipped`` (no check could be compared); ``*`` marks a noise-limited group."""
        if not self.n_checked:
            return "skipped"
        if not self.ok(tol):
            status = "FAIL"
        else:
            status = "zero" if self.zero else "ok"
        return status + ("*" if self.noise_limited(tol) else "")

    def noise_limited(self, tol: float = 1e-6) -> bool:
        """True when the estimated rounding noise of the differences exceeds ``tol``: float64 differences
        cannot resolve this group to ``tol`` (its gradients are tiny next to the loss)."""
        return bool(self.n_checked and self.noise > tol)

    def ok(self, tol: float = 1e-6) -> bool:
        """True when every check is within ``tol``, or within the estimated noise for a noise-limited group.

        A group without checks is ok.
        """
        return self.n_checked == 0 or self.worst_rel_error <= max(tol, self.noise)


@dataclass(frozen=True)
class GradcheckReport:
    """Result of :func:`gradcheck`: one :class:`GroupResult` per group (``groups``) and every check (``entries``)."""

    groups: tuple[GroupResult, ...]
    entries: tuple[CheckEntry, ...]
    loss: float
    mode: str
    eps: float
    seed: int
    layer_spikes: tuple[int | None, ...] = ()  # spikes of each layer in the base run (None: non-spiking)

    def group(self, name: str) -> GroupResult:
        """The row of group ``name`` (e.g. ``"weights[0]"``)."""
        for g in self.groups:
            if g.name == name:
                return g
        raise KeyError(f"no group {name!r} in this report; groups: {[g.name for g in self.groups]}")

    @property
    def n_checked(self) -> int:
        """Checks compared over all groups."""
        return sum(g.n_checked for g in self.groups)

    @property
    def n_skipped(self) -> int:
        """Checks skipped over all groups."""
        return sum(g.n_skipped for g in self.groups)

    @property
    def worst_rel_error(self) -> float:
        """Largest relative error over all checked groups (0 when nothing was checked)."""
        errs = [g.worst_rel_error for g in self.groups if g.n_checked]
        return max(errs) if errs else 0.0

    @property
    def silent_layers(self) -> list[int]:
        """Indices of the spiking layers that produced no spike at all in the base run."""
        return [l for l, n in enumerate(self.layer_spikes) if n == 0]

    @property
    def all_zero(self) -> bool:
        """True when every checked group's gradient and finite differences are exactly zero."""
        return bool(self.groups) and all(g.zero for g in self.groups)

    @property
    def warning(self) -> str | None:
        """One-line warning when the check is trivial because every gradient is exactly zero, else None
        (:func:`gradcheck` issues it as a :class:`SilentNetworkWarning`; the CLI prints it)."""
        if not self.all_zero:
            return None
        silent = self.silent_layers
        why = (f"layer{'s' if len(silent) > 1 else ''} {', '.join(map(str, silent))} produced no spikes on this "
               "input" if silent else "the network produced no spikes that reach the loss")
        return (f"every gradient is exactly zero ({why}), so the check is trivial: use stronger input weights "
                "(e.g. a larger weight_mean) or more input spikes")

    def failed(self, tol: float = 1e-6) -> list[str]:
        """Names of the groups with a check above ``tol`` (above the noise, for a noise-limited group)."""
        return [g.name for g in self.groups if not g.ok(tol)]

    def noise_limited(self, tol: float = 1e-6) -> list[str]:
        """Names of the checked groups whose finite differences cannot resolve ``tol`` (see GroupResult)."""
        return [g.name for g in self.groups if g.noise_limited(tol)]

    def ok(self, tol: float = 1e-6) -> bool:
        """True when every checked group is within ``tol`` relative to its scale (within its noise, for a
        noise-limited group)."""
        return not self.failed(tol)

    def format_table(self, tol: float | None = DEFAULT_TOL) -> str:
        """A plain-text table, one row per group, with a ``status`` column judged at ``tol`` (default 1e-6,
        as the CLI): ``ok``, ``FAIL``, ``zero`` (all exactly 0: trivial) or ``skipped`` (no check compared),
        ``*`` for noise-limited groups; ``tol=None`` leaves the column out."""
        head = ["group", "size", "checked", "skipped", "scale", "step", "noise", "worst rel err", "eventprop",
                "finite diff"]
        if tol is not None:
            head.append("status")
        rows = []
        for g in self.groups:
            skipped = str(g.n_skipped)
            if g.n_skipped:
                parts = [f"{n} {what}" for n, what in ((g.n_skipped_pattern, "pattern"), (g.n_skipped_kink, "kink"),
                                                       (g.n_skipped_nonfinite, "nonfinite")) if n]
                skipped += f" ({', '.join(parts)})"
            w = g.worst
            row = [
                g.name, str(g.size), str(g.n_checked), skipped, f"{g.scale:.2e}", f"{g.step:.1e}",
                f"{g.noise:.0e}" if math.isfinite(g.noise) else "-",
                f"{g.worst_rel_error:.2e}" if g.n_checked else "-",
                f"{w.eventprop:+.9e}" if w is not None else "-",
                f"{w.fd:+.9e}" if w is not None else "-",
            ]
            if tol is not None:
                row.append(g.status(tol))
            rows.append(row)
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
        lines = [
            f"gradcheck: loss {self.loss:.12g}, mode {self.mode}, eps {self.eps:g}, seed {self.seed}"
            + ("" if tol is None else f", tol {tol:g}")
            + " (errors relative to each group's scale = largest |gradient|)",
            "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip(),
            "  ".join("-" * w for w in widths),
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        if tol is not None:
            n_fail = len(self.failed(tol))
            if self.noise_limited(tol):
                lines.append(f"* noise-limited: the rounding noise of the differences exceeds tol {tol:g}; "
                             "checked against the noise instead")
            if any(g.n_checked and g.zero for g in self.groups):
                lines.append("zero: EventProp and finite differences are both exactly 0 (nothing was compared)")
            lines.append(
                f"{self.n_checked} checks compared, {self.n_skipped} skipped; "
                + ("all groups within tolerance" if n_fail == 0 else f"{n_fail} group(s) FAILED")
            )
        return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- helpers
def parameter_groups(net: Network, params: Params, input_times: bool = False) -> list[str]:
    """Names of the groups that can be checked: every weight group, the delays of ``delays=True`` layers,
    and ``"input_times"`` when asked."""
    names = []
    for name in params.groups():
        kind, l = _split(name)
        if kind == "delays" and not net.layers[l].ff_delays:
            continue
        if kind == "recurrent_delays" and not net.layers[l].rec_delays:
            continue
        names.append(name)
    if input_times:
        names.append(INPUT_TIMES)
    return names


def _split(name: str) -> tuple[str, int]:
    kind, _, rest = name.partition("[")
    return kind, int(rest.rstrip("]"))


def _api() -> tuple[Callable[..., tuple], Callable[..., float]]:
    """``loss_and_grad`` and ``loss_value``, looked up at call time (so tests can patch them)."""
    grad_mod = importlib.import_module("exactsnn.grad")
    return grad_mod.loss_and_grad, grad_mod.loss_value


def _with_times(batch: SpikeBatch, times: np.ndarray) -> SpikeBatch:
    """``batch`` with its event times replaced (re-sorted within each sample where the change reordered them)."""
    sample = np.repeat(np.arange(len(batch)), batch.counts())
    order = np.lexsort((batch.units, times, sample))
    return SpikeBatch(times[order], batch.units[order], batch.offsets, batch.n_units)


def _spike_counts(net: Network, params: Params, batch: SpikeBatch, t_max: float) -> list[np.ndarray]:
    """Spike count per (sample, unit) of every spiking layer: the spike pattern compared between runs."""
    from exactsnn.engine.simulate import simulate

    rec = simulate(net, params, batch, t_max)
    out = []
    for l, layer in enumerate(net.layers):
        if not layer.neuron.spiking:
            continue
        s = rec.spikes[l]
        sample = np.repeat(np.arange(len(s)), s.counts())
        out.append(np.bincount(sample * layer.size + s.units, minlength=len(s) * layer.size))
    return out


def _candidates(name: str, values: np.ndarray, h: float, t_max: float) -> np.ndarray:
    """Flat indices of the coordinates that may move by +-h (times and delays stay in their domain)."""
    flat = values.reshape(-1)
    if name == INPUT_TIMES:
        ok = (flat >= 2 * h) & (flat <= t_max - 2 * h)
    elif _split(name)[0] in ("delays", "recurrent_delays"):
        ok = flat >= 2 * h
    else:
        ok = np.ones(flat.size, dtype=bool)
    return np.flatnonzero(ok)


def _step(eps: float, adaptive: bool, noise_f: float, scale: float) -> float:
    """The finite-difference step of a group (see the module docstring)."""
    if not adaptive or scale <= 0 or not math.isfinite(noise_f):
        return eps
    h_noise = NOISE_FACTOR * noise_f / (NOISE_TARGET * scale)
    return min(max(eps, h_noise), MAX_STEP_FACTOR * eps)


def _measured_noise(values: np.ndarray, loss_at: Callable[[np.ndarray], float], base: float) -> float:
    """Rounding noise of the loss near the base point, measured: the loss at the group's values scaled by
    (1 - k 2^-50), k = 0..NOISE_PROBES-1 (a few ulps: the true change is linear in k, a straight-line fit
    removes it and leaves the rounding), max |residual| x 1.5, at least 2 ulp(L). Probes a few ulps
    apart see rounding that varies with the inputs (spike times found to a few ulps, sums over arrivals)
    but not rounding locked to a coarser grid than ulp(L): a loss of 1e-6 computed as log(1 + x) or as
    a difference of logits of ~20 is only good to ulp(1) or ulp(20). Such a loss fails the check, and
    should: its value is then less accurate than its gradient."""
    k = np.arange(NOISE_PROBES, dtype=np.float64)
    f = np.array([base] + [loss_at(values * (1.0 - kk * 2.0**-50)) for kk in k[1:]])
    floor = 2.0 * float(np.spacing(abs(base))) if math.isfinite(base) else math.inf
    if not np.all(np.isfinite(f)):
        return math.inf
    A = np.vstack([np.ones_like(k), k]).T
    coef, *_ = np.linalg.lstsq(A, f - base, rcond=None)
    resid = f - base - A @ coef
    return max(1.5 * float(np.max(np.abs(resid))), floor)


# ----------------------------------------------------------------------------------------------- gradcheck
def gradcheck(
    net: Network,
    params: Params,
    batch: SpikeBatch,
    labels: np.ndarray,
    loss: object,
    t_max: float,
    n_checks: int = 20,
    eps: float = 1e-6,
    seed: int = 0,
    mode: str = "random",
    groups: Sequence[str] | None = None,
    regularizer: object = None,
    input_times: bool = False,
    kink_tol: float = 1e-7,
    adaptive: bool = True,
    warn: bool = True,
) -> GradcheckReport:
    """Compare EventProp gradients with central finite differences of the loss; see the module docstring.

    ``eps``: absolute step (weights dimensionless, delays and input times in seconds), enlarged per
    group up to 100x where rounding noise demands it (``adaptive``). ``mode``: ``"random"``
    (``n_checks`` random unit directions per group) or ``"coordinate"`` (``n_checks`` random entries
    per group; all of them when the group is smaller). ``groups``: names as in ``params.groups()``
    plus ``"input_times"``; default: every weight group, the delays of layers built with
    ``delays=True``, and the input times when ``input_times=True``. ``kink_tol``: skip a check whose
    two Richardson estimates disagree by more than this times the group's scale. ``t_max`` in
    seconds. Returns a :class:`GradcheckReport`; use ``report.ok(tol)`` to decide. When every gradient is
    exactly zero (a silent network) a :class:`SilentNetworkWarning` says so (``warn=False``: only
    ``report.warning`` holds the message).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(n_checks, bool) or not isinstance(n_checks, (int, np.integer)) or n_checks < 1:
        raise ValueError(f"n_checks must be a positive integer, got {n_checks!r}")
    if isinstance(eps, bool) or not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite step, got {eps!r}")
    if not (isinstance(kink_tol, (int, float)) and math.isfinite(kink_tol) and kink_tol > 0):
        raise ValueError(f"kink_tol must be a positive number, got {kink_tol!r}")
    available = parameter_groups(net, params, input_times=True)
    if groups is None:
        names = parameter_groups(net, params, input_times=input_times)
    else:
        names = [groups] if isinstance(groups, str) else list(groups)
        for name in names:
            if name not in available:
                if name in params.groups():
                    raise ValueError(f"{name} cannot be checked: these delays of layer {_split(name)[1]} are fixed at "
                                     "zero, not parameters (delays=False, or delays='feedforward' for recurrent ones)")
                raise ValueError(f"unknown parameter group {name!r}; available: {available}")
    need_input = INPUT_TIMES in names

    loss_and_grad, loss_value = _api()
    kw = {} if regularizer is None else {"regularizer": regularizer}
    kw_fd = {} if regularizer is None else {"regularizer": regularizer, "relaxed": True}
    if need_input:
        base_loss, grads, dt_in = loss_and_grad(
            net, params, batch, labels, loss=loss, t_max=t_max, input_grad=True, **kw
        )
        dt_in = np.asarray(dt_in, dtype=np.float64)
        if dt_in.shape != batch.times.shape:
            raise ValueError(f"input-time gradient has shape {dt_in.shape}, expected {batch.times.shape}")
    else:
        base_loss, grads = loss_and_grad(net, params, batch, labels, loss=loss, t_max=t_max, **kw)
        dt_in = None
    base_loss = float(base_loss)
    base_counts = _spike_counts(net, params, batch, t_max)
    grad_groups = grads.groups()
    param_groups = params.groups()

    def loss_with(name: str, new_values: np.ndarray) -> float:
        """Loss with group ``name`` set to ``new_values`` (no spike-pattern check)."""
        if name == INPUT_TIMES:
            p, b = params, _with_times(batch, new_values)
        else:
            p, b = params.copy(), batch
            arr = p.groups()[name]
            arr[...] = new_values.reshape(arr.shape)
        return float(loss_value(net, p, b, labels, loss=loss, t_max=t_max, **kw_fd))

    base_fd = float(loss_value(net, params, batch, labels, loss=loss, t_max=t_max, **kw_fd))

    def evaluate(name: str, delta: np.ndarray) -> tuple[float, bool]:
        """Loss at the base point moved by ``delta`` in group ``name``, and whether the spike pattern held."""
        if name == INPUT_TIMES:
            p, b = params, _with_times(batch, batch.times + delta)
        else:
            p, b = params.copy(), batch
            arr = p.groups()[name]
            arr += delta.reshape(arr.shape)
        value = float(loss_value(net, p, b, labels, loss=loss, t_max=t_max, **kw_fd))
        counts = _spike_counts(net, p, b, t_max)
        same = all(np.array_equal(c0, c) for c0, c in zip(base_counts, counts, strict=True))
        return value, same

    results: list[GroupResult] = []
    entries: list[CheckEntry] = []
    for name in names:
        values = batch.times if name == INPUT_TIMES else param_groups[name]
        g = dt_in if name == INPUT_TIMES else grad_groups.get(name)
        if g is None:
            raise ValueError(f"loss_and_grad returned no gradient for {name}")
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        if g.size != values.size:
            raise ValueError(f"gradient of {name} has {g.size} entries, expected {values.size}")
        g_scale = float(np.max(np.abs(g))) if g.size else 0.0
        noise_f = _measured_noise(values, lambda x, n=name: loss_with(n, x), base_fd)
        h = _step(float(eps), adaptive, noise_f, g_scale)
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        cand = _candidates(name, values, h, t_max)
        if mode == "coordinate":
            picks = np.sort(rng.choice(cand, size=min(n_checks, cand.size), replace=False)) if cand.size else cand
            directions: list[tuple[int, np.ndarray | None]] = [(int(i), None) for i in picks]
        else:
            directions = []
            if cand.size:
                for k in range(n_checks):
                    v = np.zeros(values.size)
                    v[cand] = rng.standard_normal(cand.size)
                    v /= np.linalg.norm(v)
                    directions.append((k, v))

        raw = []
        for index, v in directions:
            if v is None:
                v = np.zeros(values.size)
                v[index] = 1.0
            f = {}
            same_all = True
            for frac in FRACTIONS:
                for sign in (1.0, -1.0):
                    f[sign * frac], same = evaluate(name, sign * frac * h * v)
                    same_all &= same
            d = [(f[frac] - f[-frac]) / (2 * frac * h) for frac in FRACTIONS]
            r = [(4 * d[k + 1] - d[k]) / 3 for k in range(len(d) - 1)]
            if not all(math.isfinite(x) for x in f.values()):
                status = "nonfinite"
            elif not same_all:
                status = "pattern"
            else:
                status = "ok"
            raw.append((index, float(g @ v), r, d, status))

        # The scale: the largest EventProp gradient entry, or the largest finite difference if larger.
        scale = max([g_scale, *(abs(x[2][0]) for x in raw if x[4] == "ok")])
        noise_abs = NOISE_FACTOR * noise_f / h
        done = []
        for index, ep, r, d, status in raw:
            err = math.nan
            if status == "ok" and any(
                abs(r[k] - r[k + 1]) > max(kink_tol * scale, 4 * 2**k * noise_abs) for k in range(len(r) - 1)
            ):
                status = "kink"
            if status == "ok":
                diff = abs(ep - r[0])
                err = 0.0 if diff == 0 else (diff / scale if scale > 0 else math.inf)
            done.append(CheckEntry(name, index, ep, *r, *d, rel_error=err, status=status))
        checked = [e for e in done if e.status == "ok"]
        worst = max(checked, key=lambda e: e.rel_error) if checked else None
        results.append(GroupResult(
            name=name, size=int(values.size), n_checked=len(checked),
            n_skipped_pattern=sum(e.status == "pattern" for e in done),
            n_skipped_kink=sum(e.status == "kink" for e in done),
            n_skipped_nonfinite=sum(e.status == "nonfinite" for e in done),
            n_boundary=int(values.size - cand.size), scale=scale, step=h,
            noise=noise_abs / scale if scale > 0 else math.nan,
            worst_rel_error=worst.rel_error if worst is not None else math.nan, worst=worst,
        ))
        entries.extend(done)
    spikes, it = [], iter(base_counts)
    for layer in net.layers:
        spikes.append(int(next(it).sum()) if layer.neuron.spiking else None)
    report = GradcheckReport(tuple(results), tuple(entries), base_loss, mode, float(eps), int(seed), tuple(spikes))
    if warn and report.warning is not None:
        warnings.warn(report.warning, SilentNetworkWarning, stacklevel=2)
    return report
