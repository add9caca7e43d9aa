"""Plots of a training run: learning curves, spike rasters and membrane traces.

matplotlib is a core dependency, imported lazily inside the plotting functions (importing
this module stays cheap), and figures are drawn on the non-interactive Agg canvas directly
(``matplotlib.figure.Figure`` + ``FigureCanvasAgg``), so this module never touches pyplot's
global state or the user's chosen backend.

Run directory format (``metrics.jsonl``, one JSON object per line, written by the trainer):

* ``{"kind": "epoch", "epoch": int (1-based), "train_loss", "train_acc", "val_loss", "val_acc",
  "lr", "rate_hz": [Hz per spiking layer], "epoch_time_s", "wall_s"}``; ``val_*`` may be null.
* ``{"kind": "test", "loss", "acc", "rate_hz", "checkpoint"}``.
* any other ``kind`` is kept by :func:`read_metrics` and ignored by the plots.

Times passed to the plotting functions are in seconds (the package convention) and are
drawn in milliseconds. Firing rates are in Hz.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from exactsnn.events import SpikeBatch

__all__ = ["read_metrics", "plot_learning_curves", "learning_curves_figure", "plot_raster", "plot_voltage"]

_MISSING_MPL = "exactsnn plot needs matplotlib (a dependency of exactsnn): pip install matplotlib"
_DPI = 110
# learning rates below this fraction of the peak are "negligible" (e.g. the last steps of a cosine
# schedule decaying to 0): with them the panel is linear from 0, without them logarithmic
_LR_NEGLIGIBLE = 1e-3

# epoch-record fields: name -> (required, allow None)
_EPOCH_NUMBERS = {
    "train_loss": (True, False),
    "train_acc": (True, False),
    "val_loss": (False, True),
    "val_acc": (False, True),
    "lr": (False, True),
    "epoch_time_s": (False, True),
    "wall_s": (False, True),
}
_TEST_NUMBERS = {"loss": (False, True), "acc": (False, True)}


# --------------------------------------------------------------------------- helpers
def _figure(figsize: tuple[float, float]) -> Any:
    """A new matplotlib Figure attached to an Agg canvas; ImportError with an install hint if missing."""
    try:
        import matplotlib  # noqa: F401  (imported first so a blocked top-level package is detected)
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(_MISSING_MPL) from None
    fig = Figure(figsize=figsize, dpi=_DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Any, out_png: str | Path) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=_DPI)
    return out


def _is_number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _check_record(rec: dict, where: str) -> None:
    """Validate the fields of an ``epoch`` or ``test`` record (others are not checked)."""
    kind = rec.get("kind")
    if kind == "epoch":
        ep = rec.get("epoch")
        if not (isinstance(ep, int) and not isinstance(ep, bool) and ep >= 1):
            raise ValueError(f"{where}: epoch record needs an integer 'epoch' >= 1, got {ep!r}")
        fields = _EPOCH_NUMBERS
    elif kind == "test":
        fields = _TEST_NUMBERS
    else:
        return
    for key, (required, nullable) in fields.items():
        if key not in rec:
            if required:
                raise ValueError(f"{where}: {kind} record lacks '{key}'")
            continue
        val = rec[key]
        if val is None and nullable:
            continue
        if not _is_number(val):
            raise ValueError(f"{where}: {kind} record has non-numeric '{key}': {val!r}")
    rates = rec.get("rate_hz")
    if rates is not None:
        if not isinstance(rates, list) or not all(_is_number(r) or r is None for r in rates):
            raise ValueError(f"{where}: {kind} record 'rate_hz' must be a list of numbers (Hz), got {rates!r}")
    if kind == "test" and rec.get("checkpoint") is not None and not isinstance(rec["checkpoint"], str):
        raise ValueError(f"{where}: test record 'checkpoint' must be a string or null")


def _num(x: object) -> float:
    """A JSON value as a float, None -> NaN."""
    return float("nan") if x is None else float(x)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- metrics
def read_metrics(path: str | Path) -> list[dict]:
    """Read and validate a ``metrics.jsonl`` file (or a run directory holding one).

    Returns every record as a dict, in file order. Blank lines are skipped, and a last line
    that is not valid JSON (a run killed mid-write) is dropped. ``epoch`` and ``test``
    records are type-checked (``train_loss``, ``train_acc`` and an integer ``epoch`` >= 1 are
    required in epoch records; the other documented fields may be absent or null); records
    of other kinds are returned unchecked.

    Raises ``ValueError`` when the file is missing, or naming the line number when a line
    other than the last is not a JSON object or a record has bad fields.
    """
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.jsonl"
    if not p.is_file():
        raise ValueError(f"metrics file not found: {p}")
    try:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError as exc:
        raise ValueError(f"cannot read metrics file {p}: {exc}") from None
    while lines and not lines[-1].strip():
        lines.pop()
    records: list[dict] = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{p}:{i}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == len(lines):
                break  # truncated last line: the writer was killed mid-line
            raise ValueError(f"{where}: malformed JSON ({exc.msg})") from None
        if not isinstance(rec, dict):
            raise ValueError(f"{where}: expected a JSON object, got {type(rec).__name__}")
        _check_record(rec, where)
        records.append(rec)
    return records


def _epoch_table(metrics: Sequence[dict]) -> list[dict]:
    """Epoch records sorted by epoch; when an epoch repeats (a resumed run) the last one wins."""
    by_epoch: dict[int, dict] = {}
    for rec in metrics:
        if isinstance(rec, dict) and rec.get("kind") == "epoch":
            _check_record(rec, f"epoch record {rec.get('epoch')!r}")
            by_epoch[int(rec["epoch"])] = rec
    return [by_epoch[e] for e in sorted(by_epoch)]


def plot_learning_curves(metrics: Sequence[dict], out_png: str | Path) -> Path:
    """Draw the learning curves of a run into ``out_png`` and return its path.

    Four panels against epoch: loss (train, val), accuracy (train, val, plus the last
    ``test`` accuracy as a dashed horizontal line), mean firing rate per spiking layer (Hz),
    and learning rate: logarithmic when every rate is within a factor 1000 of the peak,
    else (a schedule decaying to ~0, e.g. cosine) linear from 0, so the last, negligible
    rates do not stretch the axis; the legend gives the last rate. ``metrics`` is what
    :func:`read_metrics` returns. Raises ``ValueError`` if there is no epoch record.
    """
    return _save(learning_curves_figure(metrics), out_png)


def learning_curves_figure(metrics: Sequence[dict]) -> Any:
    """The matplotlib Figure :func:`plot_learning_curves` saves (axes: loss, accuracy, rate, learning rate)."""
    epochs = _epoch_table(metrics)
    if not epochs:
        raise ValueError("plot_learning_curves: the metrics hold no epoch record")
    tests = [r for r in metrics if isinstance(r, dict) and r.get("kind") == "test"]
    test = tests[-1] if tests else None

    x = np.array([r["epoch"] for r in epochs], dtype=np.int64)

    def col(key: str) -> np.ndarray:
        return np.array([_num(r.get(key)) for r in epochs], dtype=np.float64)

    fig = _figure((10.0, 7.0))
    axes = fig.subplots(2, 2, sharex=True)
    style = dict(marker="o", markersize=3, linewidth=1.2)

    for ax, what, test_key, title in ((axes[0, 0], "loss", "loss", "Loss"), (axes[0, 1], "acc", "acc", "Accuracy")):
        ax.plot(x, col(f"train_{what}"), label="train", **style)
        val = col(f"val_{what}")
        if np.isfinite(val).any():
            ax.plot(x, val, label="val", **style)
        if test is not None and test.get(test_key) is not None:
            v = float(test[test_key])
            ax.axhline(v, color="k", linestyle="--", linewidth=1, label=f"test {v:.4g}")
        ax.set_ylabel("loss" if what == "loss" else "accuracy")
        ax.set_title(title)
        ax.legend(fontsize=8)

    ax = axes[1, 0]
    rate_lists = [r.get("rate_hz") or [] for r in epochs]
    n_layers = max((len(rl) for rl in rate_lists), default=0)
    if n_layers:
        rates = np.full((len(epochs), n_layers), np.nan)
        for i, rl in enumerate(rate_lists):
            rates[i, : len(rl)] = [_num(v) for v in rl]
        for k in range(n_layers):
            ax.plot(x, rates[:, k], label=f"layer {k}", **style)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no firing rates recorded", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("mean rate (Hz)")
    ax.set_title("Firing rate")
    ax.set_xlabel("epoch")

    ax = axes[1, 1]
    _lr_panel(ax, x, col("lr"), style)
    ax.set_ylabel("learning rate")
    ax.set_title("Learning rate")
    ax.set_xlabel("epoch")

    for a in axes.flat:
        a.grid(True, alpha=0.3)
        a.xaxis.get_major_locator().set_params(integer=True)
    if len(x) == 1:
        axes[0, 0].set_xlim(x[0] - 1, x[0] + 1)
    fig.tight_layout()
    return fig


def _lr_panel(ax: Any, x: np.ndarray, lr: np.ndarray, style: dict) -> None:
    """Learning rate against epoch: log scale while every rate is within _LR_NEGLIGIBLE of the peak,
    else linear from 0 (negligible rates sit on the axis instead of stretching it)."""
    ok = np.isfinite(lr)
    if not ok.any():
        ax.text(0.5, 0.5, "no learning rate recorded", ha="center", va="center", transform=ax.transAxes)
        return
    last = lr[ok][-1]
    ax.plot(x, lr, label=f"last {last:.3g}", **style)
    ax.legend(fontsize=8)
    finite = lr[ok]
    peak = float(finite.max())
    if peak <= 0:
        return
    if (finite > 0).all() and finite.min() >= _LR_NEGLIGIBLE * peak:
        if finite.max() > finite.min():
            ax.set_yscale("log")
    elif finite.min() >= 0:
        ax.set_ylim(0.0, 1.08 * peak)
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))


# --------------------------------------------------------------------------- rasters and traces
def _class_name(labels: Sequence[str], k: int | None) -> str:
    return "?" if k is None else str(labels[k]) if 0 <= k < len(labels) else str(k)


def _check_unit(name: str, k: int | None, n_units: int) -> int | None:
    if k is None:
        return None
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 <= k < n_units:
        raise ValueError(f"{name} must be a unit index in [0, {n_units}), got {k!r}")
    return int(k)


def _prediction_note(labels: Sequence[str], predicted: int | None, true: int | None) -> str:
    """'predicted yin, true yang (wrong)' and the like ('' when neither is given)."""
    parts = []
    if predicted is not None:
        parts.append(f"predicted {_class_name(labels, predicted)}")
    if true is not None:
        parts.append(f"true {_class_name(labels, true)}")
    if predicted is not None and true is not None:
        parts[-1] += " (correct)" if predicted == true else " (wrong)"
    return ", ".join(parts)


def _draw_traces(
    ax: Any, t_ms: np.ndarray, v: np.ndarray, labels: Sequence[str], predicted: int | None, true: int | None,
    threshold: float | None, first_spikes: np.ndarray | None, legend_size: float,
) -> None:
    """Voltage traces (n_t, n_units) with the predicted unit drawn bold and the legend naming the
    predicted and the true class; optional threshold line and first-spike marks (ms)."""
    colors = [f"C{k % 10}" for k in range(v.shape[1])]
    for k in range(v.shape[1]):
        tags = [tag for tag, unit in (("predicted", predicted), ("true", true)) if unit == k]
        label = str(labels[k]) + (f" ({', '.join(tags)})" if tags else "")
        bold = k == predicted
        ax.plot(t_ms, v[:, k], color=colors[k], linewidth=2.6 if bold else 1.0, alpha=1.0 if bold else 0.75,
                zorder=3 if bold else 2, label=label)
    if threshold is not None:
        ax.axhline(threshold, color="0.3", linestyle=":", linewidth=1, label="threshold")
    if first_spikes is not None and threshold is not None:
        for k, ts in enumerate(first_spikes):
            if np.isfinite(ts):
                ax.plot([ts], [threshold], marker="v", markersize=9 if k == predicted else 6, color=colors[k],
                        linestyle="none", zorder=4)
    if v.shape[1] <= 20:
        ax.legend(fontsize=legend_size, ncol=max(1, v.shape[1] // 10), loc="best")


def plot_raster(
    spikes: Sequence[SpikeBatch],
    sizes: Sequence[int],
    names: Sequence[str],
    sample: int,
    t_max: float,
    out_png: str | Path,
    title: str = "",
    readout: tuple[np.ndarray, np.ndarray] | None = None,
    class_names: Sequence[str] | None = None,
    predicted: int | None = None,
    true: int | None = None,
) -> Path:
    """Spike raster of one sample, one panel per spiking layer (input first), into ``out_png``.

    ``spikes[k]`` is the batch of layer ``k`` (times in s), ``sizes[k]`` its number of units
    and ``names[k]`` its label; ``sample`` picks the sample; ``t_max`` (s, > 0) is the right
    edge of the shared time axis, drawn in ms. Layers without spikes get an empty panel with
    a note. A non-spiking (LI) readout has no raster: leave it out of ``spikes`` and pass
    ``readout = (times (s, shape (n_t,)), voltages (n_t, n_out))`` to draw its voltage traces of
    this sample in a small panel below. ``class_names`` names the output units (default: their
    indices); ``predicted`` / ``true`` (class indices) are named in the title, and the predicted
    trace is drawn bold. Raises ``ValueError`` on mismatched lengths or shapes, a bad ``t_max``,
    an out-of-range sample or class, or a unit index outside ``[0, sizes[k])``.
    """
    n = len(spikes)
    if n == 0:
        raise ValueError("plot_raster: no layers given")
    if len(sizes) != n or len(names) != n:
        raise ValueError(f"plot_raster: {n} spike batches but {len(sizes)} sizes and {len(names)} names")
    if not (isinstance(t_max, (int, float)) and math.isfinite(t_max) and t_max > 0):
        raise ValueError(f"plot_raster: t_max must be a positive finite time in s, got {t_max!r}")
    panels = []
    for k, (batch, size, name) in enumerate(zip(spikes, sizes, names, strict=True)):
        if int(size) != size or size < 1:
            raise ValueError(f"plot_raster: layer {k} ({name}) size must be a positive integer, got {size!r}")
        if not -len(batch) <= sample < len(batch):
            raise ValueError(f"plot_raster: sample {sample} out of range for layer {k} ({name}), batch of {len(batch)}")
        t, u = batch.sample(sample)
        if u.size and u.max() >= size:
            raise ValueError(f"plot_raster: layer {k} ({name}) has unit {int(u.max())} >= size {size}")
        panels.append((np.asarray(t) * 1e3, np.asarray(u), int(size), str(name)))
    trace = None
    if readout is not None:
        tr_t, tr_v = readout
        tr_t = np.asarray(tr_t, dtype=np.float64).reshape(-1)
        tr_v = _voltage_matrix(tr_t, tr_v, "plot_raster")
        trace = (tr_t * 1e3, tr_v)
        n_out = tr_v.shape[1]
    else:
        n_out = panels[-1][2]
    if class_names is None:
        class_names = [str(k) for k in range(n_out)]
    elif len(class_names) != n_out:
        raise ValueError(f"plot_raster: {len(class_names)} class names for {n_out} output units")
    predicted = _check_unit("plot_raster: predicted", predicted, n_out)
    true = _check_unit("plot_raster: true", true, n_out)

    ratios = [1.0] * n + ([0.7] if trace is not None else [])
    fig = _figure((9.0, 1.2 + 1.8 * n + (1.3 if trace is not None else 0.0)))
    axes = np.atleast_1d(fig.subplots(len(ratios), 1, sharex=True, squeeze=False,
                                      gridspec_kw={"height_ratios": ratios})[:, 0])
    t_max_ms = float(t_max) * 1e3
    for ax, (t_ms, u, size, name) in zip(axes, panels, strict=False):
        if t_ms.size:
            msize = 1.0 if t_ms.size > 20000 else 2.0 if t_ms.size > 2000 else 3.5
            ax.plot(t_ms, u, linestyle="none", marker="|", markersize=msize, markeredgewidth=0.6, color="k")
            late = int((t_ms > t_max_ms).sum())
            note = f"{t_ms.size} spikes" + (f", {late} after t_max" if late else "")
            ax.set_title(note, loc="right", fontsize=8)
        else:
            ax.text(0.5, 0.5, "no spikes", ha="center", va="center", color="0.4", transform=ax.transAxes)
        ax.set_ylim(-0.5, size - 0.5)
        ax.set_ylabel(f"{name}\nunit", fontsize=9)
        ax.yaxis.get_major_locator().set_params(integer=True)
    if trace is not None:
        ax = axes[-1]
        _draw_traces(ax, trace[0], trace[1], class_names, predicted, true, None, None, legend_size=7)
        ax.set_ylabel("readout\nvoltage", fontsize=9)
        ax.grid(True, alpha=0.3)
    axes[0].set_xlim(0.0, t_max_ms)
    axes[-1].set_xlabel("time (ms)")
    note = _prediction_note(class_names, predicted, true)
    full_title = ", ".join(s for s in (title, note) if s)
    if full_title:
        fig.suptitle(full_title)
    fig.tight_layout()
    return _save(fig, out_png)


def _voltage_matrix(t: np.ndarray, voltages: np.ndarray, who: str) -> np.ndarray:
    v = np.asarray(voltages, dtype=np.float64)
    if v.ndim == 1:
        v = v[:, None]
    if v.ndim != 2 or v.shape[0] != t.size:
        raise ValueError(f"{who}: voltages must have shape ({t.size}, n_units), got {np.shape(voltages)}")
    return v


def plot_voltage(
    times: np.ndarray,
    voltages: np.ndarray,
    out_png: str | Path,
    labels: Sequence[str] | None = None,
    title: str = "",
    predicted: int | None = None,
    true: int | None = None,
    threshold: float | None = None,
    first_spikes: Sequence[float] | None = None,
) -> Path:
    """Membrane traces (e.g. of the readout layer) against time into ``out_png``.

    ``times`` (s, shape ``(n_t,)``) is drawn in ms; ``voltages`` has shape ``(n_t, n_units)``
    (a 1-D array is one unit), in units of the threshold; ``labels`` names the units (default
    ``"unit k"``). ``predicted`` / ``true``: unit (class) indices; the predicted trace is drawn
    bold, the legend tags both and the title says which they are and whether they agree.
    ``threshold``: a dotted line (spiking outputs); ``first_spikes`` (s per unit, inf for none):
    marked on it. Raises ``ValueError`` on mismatched shapes or an out-of-range class.
    """
    t = np.asarray(times, dtype=np.float64).reshape(-1)
    v = _voltage_matrix(t, voltages, "plot_voltage")
    if labels is None:
        labels = [f"unit {k}" for k in range(v.shape[1])]
    elif len(labels) != v.shape[1]:
        raise ValueError(f"plot_voltage: {len(labels)} labels for {v.shape[1]} units")
    predicted = _check_unit("plot_voltage: predicted", predicted, v.shape[1])
    true = _check_unit("plot_voltage: true", true, v.shape[1])
    marks = None
    if first_spikes is not None:
        marks = np.asarray(first_spikes, dtype=np.float64).reshape(-1) * 1e3
        if marks.size != v.shape[1]:
            raise ValueError(f"plot_voltage: {marks.size} first-spike times for {v.shape[1]} units")

    fig = _figure((9.0, 4.0))
    ax = fig.subplots()
    _draw_traces(ax, t * 1e3, v, labels, predicted, true, threshold, marks, legend_size=8)
    ax.set_xlabel("time (ms)")
    ax.set_ylabel("membrane potential")
    ax.grid(True, alpha=0.3)
    note = _prediction_note(labels, predicted, true)
    full_title = ", ".join(s for s in (title, note) if s)
    if full_title:
        ax.set_title(full_title)
    fig.tight_layout()
    return _save(fig, out_png)
