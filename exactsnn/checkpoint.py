"""Checkpoints: a network description and its parameters in one HDF5 file.

Layout (format ``exactsnn-checkpoint-1``)::

    attrs["format"]    = "exactsnn-checkpoint-1"
    attrs["network"]   = JSON of :func:`network_to_dict` (n_inputs; per layer its size, neuron
                         model name and fields, recurrent, delays and the initialiser fields)
    attrs["extra"]     = JSON object with anything else the caller stores (epoch, metrics, seed ...)
    attrs["exactsnn_version"]
    params/weights/{l}            (n_l, n_{l-1}) float64
    params/delays/{l}             (n_l, n_{l-1}) float64, seconds
    params/recurrent_weights/{l}  (n_l, n_l) float64, absent for a feedforward layer
    params/recurrent_delays/{l}   (n_l, n_l) float64, seconds, absent for a feedforward layer
    params/neuron/{l}/{name}      (n_l,) float64, a learned neuron parameter (Layer.learn), e.g. tau_mem
    state/{name}                  optional named arrays of a training run (e.g. Adam moments
                                  ``adam/m/weights[0]``), stored bit-exactly

Arrays are stored bit-exactly (float64) and JSON floats round-trip exactly, so a loaded network
simulates to the same bits. Readers ignore groups they do not know, so later additions (optimiser
state, RNG state) go into new groups (:func:`write_params` / :func:`read_params` also serve any
Params-shaped state such as Adam moments) without a new format version; a change that old readers
would misread bumps the version. Files are written to a temporary name and renamed into place, so
an interrupted save never leaves a truncated checkpoint behind.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from typing import Any

import h5py
import numpy as np

from exactsnn.network import Layer, Network, Params
from exactsnn.neurons.registry import MODELS

__all__ = [
    "CHECKPOINT_FORMAT",
    "save_checkpoint",
    "load_checkpoint",
    "network_to_dict",
    "network_from_dict",
    "write_params",
    "read_params",
    "load_checkpoint_state",
]

CHECKPOINT_FORMAT = "exactsnn-checkpoint-1"

# Neuron models by the name stored in files: a view of the model registry (exactsnn/neurons/registry.py).
NEURON_MODELS: dict[str, type] = {name: spec.cls for name, spec in MODELS.items()}

_PARAM_GROUPS = ("weights", "delays", "recurrent_weights", "recurrent_delays")
_REQUIRED_GROUPS = ("weights", "delays")


# ----------------------------------------------------------------------------- network <-> dict
def _neuron_to_dict(neuron: Any) -> dict[str, Any]:
    name = type(neuron).__name__
    if NEURON_MODELS.get(name) is not type(neuron):
        raise ValueError(f"cannot serialise neuron model {name}")
    d: dict[str, Any] = {"model": name}
    for f in dataclasses.fields(neuron):
        d[f.name] = getattr(neuron, f.name)
    return d


def _neuron_from_dict(d: Any, where: str) -> Any:
    if not isinstance(d, Mapping):
        raise ValueError(f"{where}: neuron must be an object with a 'model' key")
    fields = dict(d)
    name = fields.pop("model", None)
    cls = NEURON_MODELS.get(name) if isinstance(name, str) else None
    if cls is None:
        raise ValueError(f"{where}: unknown neuron model {name!r} (known: {', '.join(NEURON_MODELS)})")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"{where}: unknown {name} field(s) {', '.join(unknown)}")
    try:
        return cls(**fields)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def network_to_dict(net: Network) -> dict[str, Any]:
    """JSON-ready description of ``net``: ``{"n_inputs": ..., "layers": [{"size", "neuron", ...}]}``."""
    layers = []
    for layer in net.layers:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(layer):
            v = getattr(layer, f.name)
            d[f.name] = _neuron_to_dict(v) if f.name == "neuron" else _plain(v)
        layers.append(d)
    return {"n_inputs": int(net.n_inputs), "layers": layers}


def network_from_dict(d: Mapping[str, Any]) -> Network:
    """Inverse of :func:`network_to_dict`; raises ``ValueError`` naming the first bad entry."""
    if not isinstance(d, Mapping):
        raise ValueError("network description must be a JSON object")
    unknown = sorted(set(d) - {"n_inputs", "layers"})
    if unknown:
        raise ValueError(f"network description: unknown key(s) {', '.join(unknown)}")
    if "n_inputs" not in d or "layers" not in d:
        raise ValueError("network description needs 'n_inputs' and 'layers'")
    if not isinstance(d["layers"], (list, tuple)):
        raise ValueError("network description: 'layers' must be a list")
    known = {f.name for f in dataclasses.fields(Layer)}
    layers = []
    for i, ld in enumerate(d["layers"]):
        where = f"layer {i}"
        if not isinstance(ld, Mapping):
            raise ValueError(f"{where}: must be an object")
        bad = sorted(set(ld) - known)
        if bad:
            raise ValueError(f"{where}: unknown field(s) {', '.join(bad)}")
        kw = dict(ld)
        if "neuron" in kw:
            kw["neuron"] = _neuron_from_dict(kw["neuron"], where)
        try:
            layers.append(Layer(**kw))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: {exc}") from None
    try:
        return Network(n_inputs=d["n_inputs"], layers=layers)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"network description: {exc}") from None


# ----------------------------------------------------------------------------- JSON helpers
def _plain(v: Any) -> Any:
    """numpy scalars/arrays to plain Python for JSON."""
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, tuple):
        return [_plain(x) for x in v]
    return v


def _to_json(obj: Any, what: str) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, (np.generic, np.ndarray)):
            return _plain(o)
        raise TypeError(f"{type(o).__name__} is not JSON serialisable")

    try:
        return json.dumps(obj, default=default)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{what}: {exc}") from None


# ----------------------------------------------------------------------------- params <-> h5
def write_params(group: h5py.Group, params: Params) -> None:
    """Store ``params`` under ``group`` as ``{name}/{l}`` datasets (float64; None entries omitted)."""
    group.attrs["n_layers"] = len(params)
    for name in _PARAM_GROUPS:
        g = group.create_group(name)
        for l, a in enumerate(getattr(params, name)):
            if a is not None:
                g.create_dataset(str(l), data=np.asarray(a, dtype=np.float64))
    g = group.create_group("neuron")
    for l, d in enumerate(params.neuron):
        if d:
            gl = g.create_group(str(l))
            for name, a in d.items():
                gl.create_dataset(name, data=np.asarray(a, dtype=np.float64))


def read_params(group: h5py.Group, n_layers: int) -> Params:
    """Read what :func:`write_params` stored; raises ``ValueError`` naming a missing/bad array."""
    lists: dict[str, list[np.ndarray | None]] = {}
    for name in _PARAM_GROUPS:
        g = group.get(name)
        if g is None and name not in _REQUIRED_GROUPS:
            lists[name] = [None] * n_layers
            continue
        if not isinstance(g, h5py.Group):
            raise ValueError(f"missing group '{group.name.strip('/')}/{name}'")
        extra = sorted(set(g) - {str(l) for l in range(n_layers)})
        if extra:
            raise ValueError(f"'{g.name.strip('/')}' has entries {extra} beyond the network's {n_layers} layers")
        arrs: list[np.ndarray | None] = []
        for l in range(n_layers):
            ds = g.get(str(l))
            if ds is None:
                if name in _REQUIRED_GROUPS:
                    raise ValueError(f"missing dataset '{g.name.strip('/')}/{l}'")
                arrs.append(None)
                continue
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
                raise ValueError(f"'{g.name.strip('/')}/{l}' is not a numeric array")
            arrs.append(np.asarray(ds[()], dtype=np.float64))
        lists[name] = arrs
    return Params(**lists, neuron=_read_neuron(group, n_layers))


def _read_neuron(group: h5py.Group, n_layers: int) -> list[dict[str, np.ndarray]]:
    """The learned neuron parameters under ``group/neuron`` (absent in files without any)."""
    out: list[dict[str, np.ndarray]] = [{} for _ in range(n_layers)]
    g = group.get("neuron")
    if g is None:
        return out
    where = f"{group.name.strip('/')}/neuron"
    if not isinstance(g, h5py.Group):
        raise ValueError(f"'{where}' is not a group")
    for key, gl in g.items():
        if key not in {str(l) for l in range(n_layers)} or not isinstance(gl, h5py.Group):
            raise ValueError(f"'{where}/{key}' does not name one of the network's {n_layers} layers")
        for name, ds in gl.items():
            if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in "fiu":
                raise ValueError(f"'{where}/{key}/{name}' is not a numeric array")
            out[int(key)][name] = np.asarray(ds[()], dtype=np.float64)
    return out


# ----------------------------------------------------------------------------- save / load
def save_checkpoint(
    path: str | os.PathLike, net: Network, params: Params, extra: Mapping[str, Any] | None = None,
    state: Mapping[str, np.ndarray] | None = None,
) -> None:
    """Write ``net``, ``params``, a JSON-serialisable ``extra`` dict and named ``state`` arrays to ``path`` (HDF5)."""
    if not isinstance(net, Network):
        raise ValueError(f"expected an es.Network, got {type(net).__name__}")
    net.check_params(params)
    if extra is not None and not isinstance(extra, Mapping):
        raise ValueError(f"extra must be a dict, got {type(extra).__name__}")
    from exactsnn import __version__

    net_json = _to_json(network_to_dict(net), "network")
    extra_json = _to_json(dict(extra or {}), "extra")
    p = os.fspath(path)
    tmp = f"{p}.tmp-{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs["format"] = CHECKPOINT_FORMAT
            f.attrs["exactsnn_version"] = __version__
            f.attrs["network"] = net_json
            f.attrs["extra"] = extra_json
            write_params(f.create_group("params"), params)
            if state:
                g = f.create_group("state")
                for name, arr in state.items():
                    g.create_dataset(name.replace("/", "\x1f"), data=np.asarray(arr)).attrs["name"] = name
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _attr_str(f: h5py.File, name: str) -> str | None:
    v = f.attrs.get(name)
    if isinstance(v, bytes):
        v = v.decode()
    return v if isinstance(v, str) else None


def load_checkpoint(path: str | os.PathLike) -> tuple[Network, Params, dict[str, Any]]:
    """Read a checkpoint written by :func:`save_checkpoint`: ``(net, params, extra)``.

    Raises a one-line ``ValueError`` naming the file for a missing, non-HDF5, foreign, newer or
    damaged checkpoint.
    """
    p = os.fspath(path)
    if not os.path.exists(p):
        raise ValueError(f"{p}: no such file")
    if os.path.isdir(p) or not h5py.is_hdf5(p):
        raise ValueError(f"{p}: not an HDF5 file (expected an exactsnn checkpoint)")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise ValueError(f"{p}: cannot open HDF5 file ({exc})") from None
    with f:
        fmt = _attr_str(f, "format")
        if fmt is None:
            raise ValueError(f"{p}: not an exactsnn checkpoint (no 'format' attribute)")
        if fmt != CHECKPOINT_FORMAT:
            raise ValueError(f"{p}: unsupported checkpoint format {fmt!r} (this exactsnn reads {CHECKPOINT_FORMAT!r})")
        try:
            net_text = _attr_str(f, "network")
            if net_text is None:
                raise ValueError("missing 'network' attribute")
            try:
                net_d = json.loads(net_text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"'network' attribute is not valid JSON ({exc})") from None
            net = network_from_dict(net_d)
            extra_text = _attr_str(f, "extra")
            extra: dict[str, Any] = {}
            if extra_text is not None:
                try:
                    extra = json.loads(extra_text)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"'extra' attribute is not valid JSON ({exc})") from None
                if not isinstance(extra, dict):
                    raise ValueError("'extra' attribute is not a JSON object")
            g = f.get("params")
            if not isinstance(g, h5py.Group):
                raise ValueError("missing group 'params'")
            params = read_params(g, len(net.layers))
            net.check_params(params)
        except ValueError as exc:
            raise ValueError(f"{p}: {exc}") from None
    return net, params, extra


def load_checkpoint_state(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The named ``state`` arrays of a checkpoint (empty when it has none)."""
    p = os.fspath(path)
    load_checkpoint(p)  # validates the file with a one-line error
    with h5py.File(p, "r") as f:
        g = f.get("state")
        if not isinstance(g, h5py.Group):
            return {}
        out = {}
        for key, ds in g.items():
            if not isinstance(ds, h5py.Dataset):
                raise ValueError(f"{p}: 'state/{key}' is not an array")
            name = ds.attrs.get("name", key)
            out[name.decode() if isinstance(name, bytes) else str(name)] = ds[()]
        return out
