"""Check EventProp gradients against central finite differences of the exact forward pass.

For each parameter group (``weights[l]``, ``delays[l]`` of layers built with ``delays=True``,
``recurrent_weights[l]``, ``recurrent_delays[l]`` and, on request, ``input_times``) the checker draws
``n_checks`` unit directions ``v`` (``mode="random"``: isotropic Gaussian directions normalised
within the group; ``mode="coordinate"``: single entries chosen at random without replacement) and
compares the EventProp directional derivative ``g . v`` with central differences of the loss along
``v``.

Finite differences. The step ``eps`` is **absolute**, in the units of the group (weights:
dimensionless; delays and input times: seconds); the default 1e-6 is ~2e-4 tau_syn for the default
time constants. The loss is evaluated at ``x +- h v`` for h = eps, eps/2, eps/4, giving the central
differences ``D(h)``, ``D(h/2)``, ``D(h/4)`` and two Richardson extrapolations
``R1 = (4 D(h/2) - D(h)) / 3`` and ``R2 = (4 D(h/4) - D(h/2)) / 3`` (truncation error O(h^4)).
The reported estimate is R1 (rounding noise about 3 ulp(L)/h).

Skips. A check is skipped, never counted as an error, when

* ``pattern``: any of the six perturbed runs has a different number of spikes than the base run for
  some (layer, sample, unit): the loss is then not differentiable inside the step;
* ``kink``: ``|R1 - R2| > kink_tol * scale``: the estimate has not converged, which in practice means
  the loss has a kink inside the step without any change of spike counts (DESIGN §5 pitfall 2: an
  arrival crossing its target's spike time or refractory end, the argmax of a max-voltage loss
  switching peaks). Smooth curvature, however large (near-tangent crossings make the third derivative
  huge), cancels in R1 - R2 up to O(h^4); a kink at offset a from the base point with slope jump Δg
  leaves R1 - R2 = 7 Δg a / (6 h). So a kink that would spoil the estimate is caught unless it lies
  within ~kink_tol*h of the base point (probability ~1e-7 per check);
* ``nonfinite``: a perturbed loss is not finite.

Coordinates that cannot move both ways are left out of the candidate set: delays below 2 eps and
input times within 2 eps of 0 or t_max (those counts are reported as ``n_boundary``).

Errors are measured relative to the group's scale, the largest EventProp gradient magnitude
``max_i |g_i|`` of the group (or the largest finite-difference derivative found, if that is larger,
so that a gradient that is wrongly zero still fails): float64 central differences are noise-limited
to ~1e-9 absolute, so errors relative to each small entry would measure noise (DESIGN §5 pitfall 3).

Everything is deterministic: each group draws its directions from
``numpy.random.default_rng([seed, crc32(group name)])``, so a group's checks do not depend on which
other groups are checked.
"""

from __future__ import annotations

import importlib
import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from exactsnn.events import SpikeBatch
from exactsnn.network import Network, Params

__all__ = ["CheckEntry", "GradcheckReport", "GroupResult", "INPUT_TIMES", "gradcheck", "parameter_groups"]

INPUT_TIMES = "input_times"
MODES = ("random", "coordinate")


# ----------------------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class CheckEntry:
    """One finite-difference check.

    ``index``: the flat index of the coordinate (``mode="coordinate"``) or the direction number
    (``mode="random"``). ``eventprop``: g . v; ``fd``: the Richardson estimate R1 from steps h, h/2;
    ``fd_fine``: R2 from steps h/2, h/4; ``d_h``, ``d_h2``, ``d_h4``: the central differences.
    ``status``: ``"ok"`` (compared), ``"pattern"``, ``"kink"``, ``"nonfinite"`` (skipped).
    ``rel_error``: |eventprop - fd| / scale (NaN when skipped).
    """

    group: str
    index: int
    eventprop: float
    fd: float
    fd_fine: float
    d_h: float
    d_h2: float
    d_h4: float
    rel_error: float
    status: str


@dataclass(frozen=True)
class GroupResult:
    """Summary of one parameter group: counts, the scale and the worst relative error (NaN if none checked)."""

    name: str
    size: int
    n_checked: int
    n_skipped_pattern: int
    n_skipped_kink: int
    n_skipped_nonfinite: int
    n_boundary: int
    scale: float
    worst_rel_error: float
    worst: CheckEntry | None

    @property
    def n_skipped(self) -> int:
        """Checks skipped for any reason."""
        return self.n_skipped_pattern + self.n_skipped_kink + self.n_skipped_nonfinite

    def ok(self, tol: float = 1e-6) -> bool:
        """True when every check of the group was within ``tol`` (a group without checks is ok)."""
        return self.n_checked == 0 or self.worst_rel_error <= tol


@dataclass(frozen=True)
class GradcheckReport:
    """Result of :func:`gradcheck`: one :class:`GroupResult` per group (``groups``) and every check (``entries``)."""

    groups: tuple[GroupResult, ...]
    entries: tuple[CheckEntry, ...]
    loss: float
    mode: str
    eps: float
    seed: int

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

    def failed(self, tol: float = 1e-6) -> list[str]:
        """Names of the groups with a check above ``tol``."""
        return [g.name for g in self.groups if not g.ok(tol)]

    def ok(self, tol: float = 1e-6) -> bool:
        """True when every checked group is within ``tol`` (relative to the group's scale)."""
        return not self.failed(tol)

    def format_table(self, tol: float | None = None) -> str:
        """A plain-text table, one row per group; with ``tol`` a pass/FAIL column."""
        head = ["group", "size", "checked", "skipped", "scale", "worst rel err", "eventprop", "finite diff"]
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
                g.name, str(g.size), str(g.n_checked), skipped, f"{g.scale:.3e}",
                f"{g.worst_rel_error:.2e}" if g.n_checked else "-",
                f"{w.eventprop:+.9e}" if w is not None else "-",
                f"{w.fd:+.9e}" if w is not None else "-",
            ]
            if tol is not None:
                row.append("-" if not g.n_checked else ("ok" if g.ok(tol) else "FAIL"))
            rows.append(row)
        widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
        lines = [
            f"gradcheck: loss {self.loss:.12g}, mode {self.mode}, eps {self.eps:g} (absolute), seed {self.seed}"
            + ("" if tol is None else f", tol {tol:g} relative to each group's largest |gradient|"),
            "  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True)).rstrip(),
            "  ".join("-" * w for w in widths),
        ]
        lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
        if tol is not None:
            n_fail = len(self.failed(tol))
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
        if kind in ("delays", "recurrent_delays") and not net.layers[l].delays:
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


def _candidates(name: str, values: np.ndarray, eps: float, t_max: float) -> np.ndarray:
    """Flat indices of the coordinates that may move by +-eps (times and delays stay in their domain)."""
    flat = values.reshape(-1)
    if name == INPUT_TIMES:
        ok = (flat >= 2 * eps) & (flat <= t_max - 2 * eps)
    elif _split(name)[0] in ("delays", "recurrent_delays"):
        ok = flat >= 2 * eps
    else:
        ok = np.ones(flat.size, dtype=bool)
    return np.flatnonzero(ok)


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
) -> GradcheckReport:
    """Compare EventProp gradients with central finite differences of the loss; see the module docstring.

    ``eps``: absolute step (weights dimensionless, delays and input times in seconds). ``mode``:
    ``"random"`` (``n_checks`` random unit directions per group) or ``"coordinate"`` (``n_checks``
    random entries per group; all of them when the group is smaller). ``groups``: names as in
    ``params.groups()`` plus ``"input_times"``; default: every weight group, the delays of layers
    built with ``delays=True``, and the input times when ``input_times=True``. ``kink_tol``: skip a
    check when the differences at eps and eps/2 disagree by more than this times the group's scale.
    ``t_max`` in seconds. Returns a :class:`GradcheckReport`; use ``report.ok(tol)`` to decide.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if isinstance(n_checks, bool) or not isinstance(n_checks, (int, np.integer)) or n_checks < 1:
        raise ValueError(f"n_checks must be a positive integer, got {n_checks!r}")
    if not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be a positive finite step, got {eps!r}")
    if not (math.isfinite(kink_tol) and kink_tol > 0):
        raise ValueError(f"kink_tol must be a positive number, got {kink_tol!r}")
    available = parameter_groups(net, params, input_times=True)
    if groups is None:
        names = parameter_groups(net, params, input_times=input_times)
    else:
        names = list(groups)
        for name in names:
            if name not in available:
                if name in params.groups():
                    raise ValueError(f"{name} cannot be checked: layer {_split(name)[1]} was built with delays=False")
                raise ValueError(f"unknown parameter group {name!r}; available: {available}")
    need_input = INPUT_TIMES in names

    loss_and_grad, loss_value = _api()
    kw = {} if regularizer is None else {"regularizer": regularizer}
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
    base_counts = _spike_counts(net, params, batch, t_max)
    grad_groups = grads.groups()
    param_groups = params.groups()

    def evaluate(name: str, delta: np.ndarray) -> tuple[float, bool]:
        """Loss at the base point moved by ``delta`` in group ``name``, and whether the spike pattern held."""
        if name == INPUT_TIMES:
            p, b = params, _with_times(batch, batch.times + delta)
        else:
            p, b = params.copy(), batch
            arr = p.groups()[name]
            arr += delta.reshape(arr.shape)
        value = float(loss_value(net, p, b, labels, loss=loss, t_max=t_max, **kw))
        counts = _spike_counts(net, p, b, t_max)
        same = all(np.array_equal(c0, c) for c0, c in zip(base_counts, counts, strict=True))
        return value, same

    results: list[GroupResult] = []
    entries: list[CheckEntry] = []
    for name in names:
        values = batch.times if name == INPUT_TIMES else param_groups[name]
        g = dt_in if name == INPUT_TIMES else grad_groups[name]
        g = np.asarray(g, dtype=np.float64).reshape(-1)
        if g.size != values.size:
            raise ValueError(f"gradient of {name} has {g.size} entries, expected {values.size}")
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        cand = _candidates(name, values, eps, t_max)
        if mode == "coordinate":
            picks = np.sort(rng.choice(cand, size=min(n_checks, cand.size), replace=False)) if cand.size else cand
            directions = [(int(i), None) for i in picks]
        else:
            directions = []
            if cand.size:
                for k in range(n_checks):
                    v = np.zeros(values.size)
                    v[cand] = rng.standard_normal(cand.size)
                    v /= np.linalg.norm(v)
                    directions.append((k, v))

        group_entries = []
        for index, v in directions:
            if v is None:
                v = np.zeros(values.size)
                v[index] = 1.0
            f = {}
            same_all = True
            for s in (1.0, -1.0, 0.5, -0.5, 0.25, -0.25):
                f[s], same = evaluate(name, s * eps * v)
                same_all &= same
            ep = float(g @ v)
            d1 = (f[1.0] - f[-1.0]) / (2 * eps)
            d2 = (f[0.5] - f[-0.5]) / eps
            d4 = (f[0.25] - f[-0.25]) / (0.5 * eps)
            r1 = (4 * d2 - d1) / 3
            r2 = (4 * d4 - d2) / 3
            if not all(math.isfinite(x) for x in f.values()):
                status = "nonfinite"
            elif not same_all:
                status = "pattern"
            else:
                status = "ok"
            group_entries.append([name, index, ep, r1, r2, d1, d2, d4, status])

        # The scale: the largest EventProp gradient entry, or the largest finite difference if larger.
        fds = [abs(e[3]) for e in group_entries if e[8] == "ok"]
        scale = max([float(np.max(np.abs(g))) if g.size else 0.0, *fds])
        for e in group_entries:
            if e[8] == "ok" and abs(e[3] - e[4]) > kink_tol * scale:
                e[8] = "kink"
        done = []
        for e in group_entries:
            err = math.nan
            if e[8] == "ok":
                diff = abs(e[2] - e[3])
                err = 0.0 if diff == 0 else (diff / scale if scale > 0 else math.inf)
            done.append(CheckEntry(*e[:8], rel_error=err, status=e[8]))
        checked = [e for e in done if e.status == "ok"]
        worst = max(checked, key=lambda e: e.rel_error) if checked else None
        results.append(GroupResult(
            name=name, size=int(values.size), n_checked=len(checked),
            n_skipped_pattern=sum(e.status == "pattern" for e in done),
            n_skipped_kink=sum(e.status == "kink" for e in done),
            n_skipped_nonfinite=sum(e.status == "nonfinite" for e in done),
            n_boundary=int(values.size - cand.size), scale=scale,
            worst_rel_error=worst.rel_error if worst is not None else math.nan, worst=worst,
        ))
        entries.extend(done)
    return GradcheckReport(tuple(results), tuple(entries), float(base_loss), mode, float(eps), int(seed))
