"""Spike files in the SHD/SSC HDF5 layout (Zenke lab's Heidelberg spiking datasets).

Layout read and written here (B samples; every path is relative to the file root, or to a
``group`` where a function takes one)::

    spikes/times    (B,) variable-length float arrays, one per sample: spike times in seconds
                    (float16 in the published SHD/SSC files, float64 in files exactsnn writes)
    spikes/units    (B,) variable-length unsigned integer arrays: channel of each spike
                    (uint16; 0..699 for SHD/SSC)
    spikes.attrs["n_units"]   optional: number of channels (written by exactsnn)
    labels          (B,) integer class labels (optional)
    extra/          optional metadata, e.g. SHD's ``speaker`` (B,), ``keys`` (class names, bytes),
                    ``meta_info/{gender, age, body_height}`` (per speaker)

Reading casts the times to float64 *before* any arithmetic (float16 overflows past 65504, which
bit loaders that rescaled to microseconds first). Samples whose events are not sorted in time are
sorted, and simultaneous events are put in unit order (SpikeBatch's tie rule; float16 times have
many ties). Events with non-finite times (a few samples in some published files) are dropped with
one :class:`NonFiniteSpikesWarning` that carries the count. A file that is not HDF5, lacks a group or
has mismatched lengths raises a one-line ``ValueError`` naming the file and the problem.

Simulation results (:func:`write_layers_h5`, :class:`LayerSpikesWriter`) use the same layout once
per layer::

    layer_{l}/spikes/times, layer_{l}/spikes/units     output spikes of layer l (float64 times);
                                                     empty trains for a non-spiking LI readout
    layer_{l}.attrs: size, model ("LIF"/"LI"), spiking
    input/spikes/times, input/spikes/units           the input spikes (only when requested)
    labels                                            (B,) labels of the input samples (optional)
    root attrs: format = "exactsnn-layers-1", n_inputs, layer_sizes, n_layers, t_max (s),
                n_samples, network (JSON, see :func:`exactsnn.checkpoint.network_to_dict`)

so ``read_spikes_h5(path, group="layer_0")`` loads a layer's spikes back as a SpikeBatch.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import h5py
import numpy as np
from numba import njit

from exactsnn.events import SpikeBatch

__all__ = [
    "NonFiniteSpikesWarning",
    "read_spikes_h5",
    "read_extra_h5",
    "write_spikes_h5",
    "write_layers_h5",
    "LayerSpikesWriter",
    "LAYERS_FORMAT",
]

LAYERS_FORMAT = "exactsnn-layers-1"


class NonFiniteSpikesWarning(UserWarning):
    """Events with non-finite times were dropped while reading a spike file.

    Attributes: ``n_dropped`` (events), ``n_samples`` (samples affected), ``path``.
    """

    def __init__(self, message: str, n_dropped: int, n_samples: int, path: str) -> None:
        super().__init__(message)
        self.n_dropped = n_dropped
        self.n_samples = n_samples
        self.path = path


# ----------------------------------------------------------------------------- reading
def _open_h5(path: str | os.PathLike, mode: str = "r") -> h5py.File:
    """Open an HDF5 file for reading, turning missing/non-HDF5 files into one-line ValueErrors."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ValueError(f"{p}: no such file")
    if os.path.isdir(p):
        raise ValueError(f"{p}: is a directory, not an HDF5 file")
    try:
        return h5py.File(p, mode)
    except OSError as exc:
        if not h5py.is_hdf5(p):
            raise ValueError(f"{p}: not an HDF5 file") from None
        raise ValueError(f"{p}: cannot open HDF5 file ({exc})") from None


def _vlen_dataset(f: h5py.Group, name: str, path: str) -> h5py.Dataset:
    obj = f.get(name)
    if obj is None:
        raise ValueError(f"{path}: missing dataset '{name}' (expected the SHD layout spikes/times, spikes/units)")
    if not isinstance(obj, h5py.Dataset):
        raise ValueError(f"{path}: '{name}' is not a dataset")
    if obj.ndim != 1:
        raise ValueError(f"{path}: '{name}' must be 1-D (one entry per sample), got shape {obj.shape}")
    if h5py.check_vlen_dtype(obj.dtype) is None:
        raise ValueError(f"{path}: '{name}' is not a variable-length array (dtype {obj.dtype})")
    return obj


def _read_rows(ds: h5py.Dataset, idx: np.ndarray | None) -> Sequence[np.ndarray]:
    """Rows of a vlen dataset, all of them (idx None) or those at idx (any order, repeats allowed)."""
    if idx is None:
        return ds[()] if ds.shape[0] else []
    if idx.size == 0:
        return []
    uniq, inverse = np.unique(idx, return_inverse=True)
    rows = ds[uniq]  # h5py needs increasing coordinates
    return [rows[k] for k in inverse.reshape(-1)]


@njit(cache=True)
def _order_ties(t: np.ndarray, u: np.ndarray) -> None:
    """In place: within runs of equal times (t sorted), order events by unit (insertion sort, O(n) for short runs)."""
    n = t.size
    i = 0
    while i < n:
        j = i + 1
        while j < n and t[j] == t[i]:
            j += 1
        for a in range(i + 1, j):
            key = u[a]
            b = a - 1
            while b >= i and u[b] > key:
                u[b + 1] = u[b]
                b -= 1
            u[b + 1] = key
        i = j


def _assemble(
    rows_t: Sequence[np.ndarray], rows_u: Sequence[np.ndarray], samples: np.ndarray, path: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat float64 times, int32 units and offsets from per-sample rows (cast once, before arithmetic)."""
    n_t = np.fromiter((len(r) for r in rows_t), dtype=np.int64, count=len(rows_t))
    n_u = np.fromiter((len(r) for r in rows_u), dtype=np.int64, count=len(rows_u))
    if np.any(n_t != n_u):
        k = int(np.argmax(n_t != n_u))
        raise ValueError(f"{path}: sample {int(samples[k])} has {n_t[k]} spike times but {n_u[k]} units")
    offsets = np.zeros(len(rows_t) + 1, dtype=np.int64)
    np.cumsum(n_t, out=offsets[1:])
    if offsets[-1] == 0:
        return np.zeros(0), np.zeros(0, np.int32), offsets
    times = np.concatenate(rows_t).astype(np.float64)
    raw_u = np.concatenate(rows_u)
    if raw_u.dtype.kind == "f" and not (np.all(np.isfinite(raw_u)) and np.all(raw_u == np.round(raw_u))):
        pos = int(np.argmax(~np.isfinite(raw_u) | (raw_u != np.round(raw_u))))
        b = int(samples[int(np.searchsorted(offsets, pos, side="right") - 1)])
        raise ValueError(f"{path}: sample {b} has non-integer unit indices")
    if raw_u.size and (raw_u.min() < 0 or raw_u.max() > np.iinfo(np.int32).max):
        pos = int(np.argmax((raw_u < 0) | (raw_u > np.iinfo(np.int32).max)))
        b = int(samples[int(np.searchsorted(offsets, pos, side="right") - 1)])
        raise ValueError(f"{path}: sample {b} has unit index {raw_u[pos]} outside [0, 2^31)")
    return times, raw_u.astype(np.int32), offsets


def _compress(
    times: np.ndarray, units: np.ndarray, offsets: np.ndarray, keep: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep the events where ``keep`` is true; offsets follow."""
    sample_of = np.repeat(np.arange(offsets.size - 1), np.diff(offsets))
    counts = np.bincount(sample_of[keep], minlength=offsets.size - 1)
    new_offsets = np.zeros_like(offsets)
    np.cumsum(counts, out=new_offsets[1:])
    return times[keep], units[keep], new_offsets


@njit(cache=True)
def _canonicalise(t: np.ndarray, u: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Put ties of sorted samples in unit order, in place; flag the samples not sorted in time."""
    B = offsets.size - 1
    unsorted = np.zeros(B, dtype=np.bool_)
    for b in range(B):
        lo, hi = offsets[b], offsets[b + 1]
        for i in range(lo + 1, hi):
            if t[i] < t[i - 1]:
                unsorted[b] = True
                break
        if not unsorted[b]:
            _order_ties(t[lo:hi], u[lo:hi])
    return unsorted


def _normalise_indices(
    indices: Sequence[int] | np.ndarray | slice | None, n: int, path: str
) -> np.ndarray | None:
    if indices is None:
        return None
    if isinstance(indices, slice):
        return np.arange(n, dtype=np.int64)[indices]
    idx = np.asarray(indices).reshape(-1)
    if idx.size == 0:
        return idx.astype(np.int64)
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{path}: sample indices must be integers")
    idx = idx.astype(np.int64)
    if idx.min() < -n or idx.max() >= n:
        bad = int(idx[(idx < -n) | (idx >= n)][0])
        raise ValueError(f"{path}: sample index {bad} out of range for {n} samples")
    return idx % n


def read_spikes_h5(
    path: str | os.PathLike,
    n_units: int | None = None,
    t_max: float | None = None,
    indices: Sequence[int] | np.ndarray | slice | None = None,
    group: str | None = None,
) -> tuple[SpikeBatch, np.ndarray | None]:
    """Read spike trains (times in s) and labels from a file in the SHD layout.

    ``n_units``: number of channels (default: the file's ``n_units`` attribute, else max unit + 1,
    else None for a file without events). ``t_max`` (s): drop events after it (t > t_max).
    ``indices``: read only these samples, in this order (a slice such as ``slice(0, 100)`` is
    clipped to the file like a Python slice). ``group``: read ``{group}/spikes`` (e.g.
    ``"layer_0"`` of a :func:`write_layers_h5` file) instead of ``spikes``; labels always come from
    the root. Returns ``(batch, labels)`` with labels int64 (B,) or None if the file has none.
    """
    p = os.fspath(path)
    if n_units is not None and (isinstance(n_units, bool) or int(n_units) != n_units or n_units < 1):
        raise ValueError(f"n_units must be a positive integer, got {n_units!r}")
    if t_max is not None and not (math.isfinite(t_max) and t_max > 0):
        raise ValueError(f"t_max must be a positive finite number of seconds, got {t_max!r}")
    with _open_h5(p) as f:
        root: h5py.Group = f
        if group not in (None, "", "/"):
            g = f.get(group)
            if not isinstance(g, h5py.Group):
                raise ValueError(f"{p}: no group '{group}'")
            root = g
        prefix = "" if root is f else f"{root.name.strip('/')}/"
        if not isinstance(root.get("spikes"), h5py.Group):
            raise ValueError(
                f"{p}: missing group '{prefix}spikes' (expected the SHD layout spikes/times, spikes/units)"
            )
        ds_t = _vlen_dataset(root, "spikes/times", p)
        ds_u = _vlen_dataset(root, "spikes/units", p)
        n = ds_t.shape[0]
        if ds_u.shape[0] != n:
            raise ValueError(f"{p}: spikes/times has {n} samples but spikes/units has {ds_u.shape[0]}")
        if np.dtype(h5py.check_vlen_dtype(ds_t.dtype)).kind != "f":
            raise ValueError(f"{p}: spikes/times must hold floating-point seconds")
        if np.dtype(h5py.check_vlen_dtype(ds_u.dtype)).kind not in "iuf":
            raise ValueError(f"{p}: spikes/units must hold integer channel indices")
        labels_ds = f.get("labels")
        if labels_ds is not None:
            if not isinstance(labels_ds, h5py.Dataset) or labels_ds.ndim != 1:
                raise ValueError(f"{p}: 'labels' must be a 1-D dataset")
            if labels_ds.shape[0] != n:
                raise ValueError(f"{p}: 'labels' has {labels_ds.shape[0]} entries but there are {n} samples")
        idx = _normalise_indices(indices, n, p)
        declared = root["spikes"].attrs.get("n_units")
        rows_t = _read_rows(ds_t, idx)
        rows_u = _read_rows(ds_u, idx)
        labels = None
        if labels_ds is not None:
            labels = labels_ds[()] if idx is None else labels_ds[()][idx]
            if labels.dtype.kind in "iub":
                labels = labels.astype(np.int64)
    samples = idx if idx is not None else np.arange(n)
    times, units, offsets = _assemble(rows_t, rows_u, samples, p)
    keep = np.isfinite(times)
    n_dropped = int(keep.size - np.count_nonzero(keep))
    if n_dropped:
        sample_of = np.repeat(np.arange(len(samples)), np.diff(offsets))
        n_bad_samples = int(np.unique(sample_of[~keep]).size)
        msg = f"{p}: dropped {n_dropped} event(s) with non-finite spike times in {n_bad_samples} sample(s)"
        warnings.warn(NonFiniteSpikesWarning(msg, n_dropped, n_bad_samples, p), stacklevel=2)
    if t_max is not None:
        keep &= times <= t_max
    if not keep.all():
        times, units, offsets = _compress(times, units, offsets, keep)
    if times.size and times.min() < 0:
        pos = int(np.argmin(times))
        b = int(samples[int(np.searchsorted(offsets, pos, side="right") - 1)])
        raise ValueError(f"{p}: sample {b} has a negative spike time ({times[pos]:g} s)")
    # sort each sample by time; simultaneous events in canonical unit order (SpikeBatch's tie rule)
    for k in np.flatnonzero(_canonicalise(times, units, offsets)):
        lo, hi = offsets[k], offsets[k + 1]
        order = np.argsort(times[lo:hi], kind="stable")
        times[lo:hi], units[lo:hi] = times[lo:hi][order], units[lo:hi][order]
        _order_ties(times[lo:hi], units[lo:hi])
    if n_units is None:
        if declared is not None:
            n_units = int(declared)
        elif units.size:
            n_units = int(units.max()) + 1
    if n_units is not None and units.size and units.max() >= n_units:
        pos = int(np.argmax(units >= n_units))
        b = int(samples[int(np.searchsorted(offsets, pos, side="right") - 1)])
        raise ValueError(f"{p}: sample {b} has unit {int(units[pos])} out of range [0, {n_units})")
    try:
        batch = SpikeBatch.from_arrays(times, units, offsets, n_units)
    except ValueError as exc:
        raise ValueError(f"{p}: {exc}") from None
    return batch, labels


def read_extra_h5(path: str | os.PathLike) -> dict[str, Any]:
    """The ``extra`` group as a nested dict of arrays (byte-string arrays decoded to lists of str).

    Returns an empty dict when the file has no ``extra`` group.
    """
    p = os.fspath(path)

    def load(g: h5py.Group) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, obj in g.items():
            if isinstance(obj, h5py.Group):
                out[key] = load(obj)
            else:
                val = obj[()]
                if isinstance(val, np.ndarray) and val.dtype.kind in "SO":
                    val = [v.decode() if isinstance(v, bytes) else v for v in val.tolist()]
                elif isinstance(val, bytes):
                    val = val.decode()
                out[key] = val
        return out

    with _open_h5(p) as f:
        g = f.get("extra")
        return load(g) if isinstance(g, h5py.Group) else {}


# ----------------------------------------------------------------------------- writing
def _units_dtype(n_units: int | None, units: np.ndarray) -> np.dtype:
    top = max(int(units.max()) + 1 if units.size else 0, n_units or 0)
    return np.dtype(np.uint16) if top <= np.iinfo(np.uint16).max + 1 else np.dtype(np.uint32)


def _ragged(batch: SpikeBatch, lo: int, hi: int, times_dtype: np.dtype, units_dtype: np.dtype) -> tuple:
    """Object arrays of per-sample times and units for samples lo..hi-1."""
    t_obj = np.empty(hi - lo, dtype=object)
    u_obj = np.empty(hi - lo, dtype=object)
    for k, b in enumerate(range(lo, hi)):
        a, z = batch.offsets[b], batch.offsets[b + 1]
        t_obj[k] = batch.times[a:z].astype(times_dtype)
        u_obj[k] = batch.units[a:z].astype(units_dtype)
    return t_obj, u_obj


def _write_rows(ds: h5py.Dataset, rows: np.ndarray, start: int) -> None:
    """Store an object array of 1-D arrays at ds[start:start+len(rows)].

    (``write_direct``: slice assignment would turn equal-length rows into a 2-D array and fail.)
    """
    ds.write_direct(rows, dest_sel=np.s_[start:start + rows.shape[0]])


def _check_times_dtype(batch: SpikeBatch, times_dtype: Any) -> np.dtype:
    dt = np.dtype(times_dtype)
    if dt.kind != "f":
        raise ValueError(f"times_dtype must be a floating-point type, got {dt}")
    with np.errstate(over="ignore"):
        overflow = batch.n_events and not np.all(np.isfinite(batch.times.astype(dt)))
    if overflow:
        raise ValueError(f"spike times up to {batch.times.max():g} s overflow {dt}")
    return dt


def _create_spikes_group(
    parent: h5py.Group, n: int, times_dtype: np.dtype, units_dtype: np.dtype, n_units: int | None,
    resizable: bool = False,
) -> tuple[h5py.Dataset, h5py.Dataset]:
    g = parent.create_group("spikes")
    kw: dict[str, Any] = {"maxshape": (None,), "chunks": (256,)} if resizable else {}
    ds_t = g.create_dataset("times", shape=(n,), dtype=h5py.vlen_dtype(times_dtype), **kw)
    ds_u = g.create_dataset("units", shape=(n,), dtype=h5py.vlen_dtype(units_dtype), **kw)
    if n_units is not None:
        g.attrs["n_units"] = int(n_units)
    return ds_t, ds_u


def _check_labels(labels: Sequence[int] | np.ndarray | None, n: int) -> np.ndarray | None:
    if labels is None:
        return None
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(f"labels must be a 1-D array with one entry per sample ({n}), got shape {lab.shape}")
    if n and lab.dtype.kind not in "iub":
        raise ValueError(f"labels must be integers, got dtype {lab.dtype}")
    return lab.astype(np.int64) if lab.dtype.kind == "b" or n == 0 else lab


def _write_extra(g: h5py.Group, extra: Mapping[str, Any]) -> None:
    for key, val in extra.items():
        if isinstance(val, Mapping):
            _write_extra(g.create_group(str(key)), val)
            continue
        if isinstance(val, str):
            val = val.encode()
        elif isinstance(val, (list, tuple)) and val and all(isinstance(v, str) for v in val):
            val = np.array([v.encode() for v in val])
        arr = np.asarray(val)
        if arr.dtype.kind in "OU":
            raise ValueError(f"extra['{key}']: cannot store values of type {type(val).__name__} in HDF5")
        g.create_dataset(str(key), data=arr)


def write_spikes_h5(
    path: str | os.PathLike,
    batch: SpikeBatch,
    labels: Sequence[int] | np.ndarray | None = None,
    extra: Mapping[str, Any] | None = None,
    times_dtype: Any = np.float64,
) -> None:
    """Write ``batch`` (times in s) in the SHD layout; overwrites ``path``.

    ``times_dtype`` float64 (default) keeps exact spike times; float16 mimics the published SHD
    files (raises if a time overflows it). ``labels``: (B,) integers. ``extra``: nested dict written
    under ``extra/`` (str and lists of str are stored as bytes, as in SHD's ``extra/keys``).
    """
    if not isinstance(batch, SpikeBatch):
        raise ValueError(f"expected an es.SpikeBatch, got {type(batch).__name__}")
    dt = _check_times_dtype(batch, times_dtype)
    lab = _check_labels(labels, len(batch))
    udt = _units_dtype(batch.n_units, batch.units)
    with h5py.File(os.fspath(path), "w") as f:
        ds_t, ds_u = _create_spikes_group(f, len(batch), dt, udt, batch.n_units)
        if len(batch):
            t_obj, u_obj = _ragged(batch, 0, len(batch), dt, udt)
            _write_rows(ds_t, t_obj, 0)
            _write_rows(ds_u, u_obj, 0)
        if lab is not None:
            f.create_dataset("labels", data=lab)
        if extra:
            _write_extra(f.create_group("extra"), extra)


class LayerSpikesWriter:
    """Stream simulation results, batch after batch, into one file of the layers layout.

    Use as a context manager::

        with LayerSpikesWriter(path, net, t_max) as w:
            for batch, labels in batches:
                w.append(es.simulate(net, params, batch, t_max), labels)

    ``include_input`` also stores the input spikes (group ``input``). Labels must be given for
    every appended batch or for none.
    """

    def __init__(
        self, path: str | os.PathLike, net: Any, t_max: float, include_input: bool = False
    ) -> None:
        from exactsnn.checkpoint import network_to_dict

        if not (math.isfinite(t_max) and t_max > 0):
            raise ValueError(f"t_max must be a positive finite number of seconds, got {t_max!r}")
        self.path = os.fspath(path)
        self.net = net
        self.t_max = float(t_max)
        self.include_input = include_input
        self.n_samples = 0
        self._has_labels: bool | None = None
        self._f = h5py.File(self.path, "w")
        try:
            f = self._f
            f.attrs["format"] = LAYERS_FORMAT
            f.attrs["n_inputs"] = int(net.n_inputs)
            f.attrs["layer_sizes"] = np.array([layer.size for layer in net.layers], dtype=np.int64)
            f.attrs["n_layers"] = len(net.layers)
            f.attrs["t_max"] = self.t_max
            f.attrs["n_samples"] = 0
            f.attrs["network"] = json.dumps(network_to_dict(net))
            self._ds: list[tuple[h5py.Dataset, h5py.Dataset]] = []
            for l, layer in enumerate(net.layers):
                g = f.create_group(f"layer_{l}")
                g.attrs["size"] = int(layer.size)
                g.attrs["model"] = type(layer.neuron).__name__
                g.attrs["spiking"] = bool(layer.neuron.spiking)
                udt = _units_dtype(layer.size, np.zeros(0, np.int64))
                self._ds.append(_create_spikes_group(g, 0, np.dtype(np.float64), udt, layer.size, True))
            self._input_ds = None
            if include_input:
                g = f.create_group("input")
                udt = _units_dtype(net.n_inputs, np.zeros(0, np.int64))
                self._input_ds = _create_spikes_group(g, 0, np.dtype(np.float64), udt, net.n_inputs, True)
        except BaseException:
            self._f.close()
            raise

    def append(self, recording: Any, labels: Sequence[int] | np.ndarray | None = None) -> None:
        """Append the samples of one :class:`~exactsnn.Recording` (and their labels)."""
        if recording.net != self.net:
            raise ValueError("LayerSpikesWriter.append: the recording comes from a different network")
        B = len(recording.inputs)
        lab = _check_labels(labels, B)
        if self._has_labels is None:
            self._has_labels = lab is not None
            if lab is not None:
                self._f.create_dataset(
                    "labels", shape=(0,), maxshape=(None,), chunks=(1024,), dtype=lab.dtype
                )
        elif self._has_labels != (lab is not None):
            raise ValueError("LayerSpikesWriter.append: give labels for every batch or for none")
        lo, hi = self.n_samples, self.n_samples + B
        pairs = list(zip(self._ds, recording.spikes, strict=True))
        if self._input_ds is not None:
            pairs.append((self._input_ds, recording.inputs))
        for (ds_t, ds_u), spikes in pairs:
            t_obj, u_obj = _ragged(
                spikes, 0, B, h5py.check_vlen_dtype(ds_t.dtype), h5py.check_vlen_dtype(ds_u.dtype)
            )
            ds_t.resize((hi,))
            ds_u.resize((hi,))
            if B:
                _write_rows(ds_t, t_obj, lo)
                _write_rows(ds_u, u_obj, lo)
        if lab is not None:
            ds_l = self._f["labels"]
            ds_l.resize((hi,))
            ds_l[lo:hi] = lab
        self.n_samples = hi
        self._f.attrs["n_samples"] = hi

    def close(self) -> None:
        """Flush and close the file."""
        if self._f.id.valid:
            self._f.close()

    def __enter__(self) -> LayerSpikesWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_layers_h5(
    path: str | os.PathLike,
    recording: Any,
    labels: Sequence[int] | np.ndarray | None = None,
    include_input: bool = False,
) -> None:
    """Write every layer's output spikes of a :class:`~exactsnn.Recording` (see module docstring).

    ``recording`` may also be a sequence of recordings of the same network and t_max (e.g. one per
    batch), written one after the other; ``labels`` then covers all their samples.
    """
    recs = list(recording) if isinstance(recording, (list, tuple)) else [recording]
    if not recs:
        raise ValueError("write_layers_h5: no recording given")
    first = recs[0]
    if any(r.t_max != first.t_max for r in recs):
        raise ValueError("write_layers_h5: the recordings have different t_max")
    total = sum(len(r.inputs) for r in recs)
    lab = _check_labels(labels, total)
    with LayerSpikesWriter(path, first.net, first.t_max, include_input=include_input) as w:
        start = 0
        for r in recs:
            B = len(r.inputs)
            w.append(r, None if lab is None else lab[start:start + B])
            start += B
