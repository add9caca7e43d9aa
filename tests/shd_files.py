"""Files in the zenkelab SHD/SSC layout, written with h5py directly (not with exactsnn's writer)."""

from __future__ import annotations

import h5py
import numpy as np


def write_shd_layout(path, samples, labels=None, times_dtype=np.float16, speakers=None, keys=None, extra=True):
    """``samples`` [(times, units), ...] as vlen float16 times and vlen uint16 units (the published
    dtypes), uint16 ``labels``; with ``extra`` an ``extra`` group with ``speaker`` and ``keys`` (when
    given) and a three-speaker ``meta_info``."""
    with h5py.File(path, "w") as f:
        g = f.create_group("spikes")
        ds_t = g.create_dataset("times", shape=(len(samples),), dtype=h5py.vlen_dtype(np.dtype(times_dtype)))
        ds_u = g.create_dataset("units", shape=(len(samples),), dtype=h5py.vlen_dtype(np.dtype(np.uint16)))
        for i, (t, u) in enumerate(samples):
            ds_t[i] = np.asarray(t, dtype=times_dtype)
            ds_u[i] = np.asarray(u, dtype=np.uint16)
        if labels is not None:
            f.create_dataset("labels", data=np.asarray(labels, dtype=np.uint16))
        if not extra:
            return
        e = f.create_group("extra")
        if speakers is not None:
            e.create_dataset("speaker", data=np.asarray(speakers, dtype=np.uint16))
        if keys is not None:
            e.create_dataset("keys", data=np.array([k.encode() for k in keys]))
        m = e.create_group("meta_info")
        m.create_dataset("gender", data=np.array([b"female", b"male", b"female"]))
        m.create_dataset("age", data=np.array([25, 31, 40], dtype=np.uint16))
        m.create_dataset("body_height", data=np.array([1.7, 1.8, 1.65]))
