"""Loading the Heidelberg spiking datasets (SHD, SSC) and users' own files in the same layout.

The Zenke lab publishes two spike datasets made by a cochlea model from spoken words
(Cramer, Stradmann, Schemmel, Zenke 2020, IEEE TNNLS, doi:10.1109/TNNLS.2020.3044364):

* SHD, Spiking Heidelberg Digits: 20 classes (digits 0-9 in German and English), files
  ``shd_train.h5`` and ``shd_test.h5`` (8156 / 2264 samples; no validation file, see
  :func:`holdout`);
* SSC, Spiking Speech Commands: 35 classes, ``ssc_train.h5``, ``ssc_valid.h5``, ``ssc_test.h5``.

Both have 700 input channels and spike times in seconds (stored as float16). The files are
distributed gzipped from https://zenkelab.org/datasets/ and exactsnn never downloads anything:
fetch them yourself, ``gunzip shd_train.h5.gz`` and point :func:`load_dataset` at the directory.
The HDF5 layout is described in :mod:`exactsnn.data.shd` (reading casts float16 to float64 first,
sorts samples, puts ties in unit order, and drops non-finite events with a counted
:class:`~exactsnn.data.shd.NonFiniteSpikesWarning`).

Trials are cropped to ``duration`` seconds: events with ``t > duration`` are dropped; shorter
trials are implicitly padded, since the simulation window is ``duration``.

Checksums: :data:`KNOWN_MD5` holds md5 sums of the *uncompressed* files where one is published
(only SHD's, from ``norse/norse`` ``norse/dataset/spiking_heidelberg.py``, which checks the files
it decompresses against them). :data:`KNOWN_ARCHIVE_MD5` lists sums of the compressed archives
(``.h5.gz`` from the same norse file and other loaders that copy the lab's ``md5sums.txt``;
``.h5.zip`` from tonic's ``tonic/datasets/hsd.py``); they identify a download, not the ``.h5``.
Those sums come from third-party loaders, not from the lab's page, and a later re-issue of the
files would not match them, so ``check_md5`` is off by default.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from exactsnn.data.shd import read_extra_h5, read_spikes_h5
from exactsnn.events import SpikeBatch

__all__ = [
    "Split",
    "DATASET_FILES",
    "N_CLASSES",
    "N_CHANNELS",
    "DOWNLOAD_URL",
    "KNOWN_MD5",
    "KNOWN_ARCHIVE_MD5",
    "md5_file",
    "load_dataset",
    "load_files",
    "holdout",
]

#: dataset -> split -> file name (the uncompressed files of https://zenkelab.org/datasets/)
DATASET_FILES: dict[str, dict[str, str]] = {
    "shd": {"train": "shd_train.h5", "test": "shd_test.h5"},
    "ssc": {"train": "ssc_train.h5", "valid": "ssc_valid.h5", "test": "ssc_test.h5"},
}
#: dataset -> number of classes
N_CLASSES: dict[str, int] = {"shd": 20, "ssc": 35}
#: input channels of SHD and SSC
N_CHANNELS = 700
DOWNLOAD_URL = "https://zenkelab.org/datasets/"

#: md5 of the uncompressed .h5 files (source: norse/norse, norse/dataset/spiking_heidelberg.py)
KNOWN_MD5: dict[str, str] = {
    "shd_train.h5": "8e9877c85f29a28dd353ea6a54402667",
    "shd_test.h5": "207ad1295a0ab611e22d1734989c254e",
}
#: md5 of the compressed archives, for reference only (load_dataset reads the .h5 files).
#: .h5.gz: norse/norse (as above) and loaders quoting zenkelab's md5sums.txt;
#: .h5.zip: neuromorphs/tonic, tonic/datasets/hsd.py
KNOWN_ARCHIVE_MD5: dict[str, str] = {
    "shd_train.h5.gz": "d47c9825dee33347913e8ce0f2be08b0",
    "shd_test.h5.gz": "3062a80ec0c5719404d5b02e166543b1",
    "shd_train.h5.zip": "f3252aeb598ac776c1b526422d90eecb",
    "shd_test.h5.zip": "1503a5064faa34311c398fb0a1ed0a6f",
    "ssc_train.h5.zip": "d102be95e7144fcc0553d1f45ba94170",
    "ssc_valid.h5.zip": "b4eee3516a4a90dd0c71a6ac23a8ae43",
    "ssc_test.h5.zip": "a35ff1e9cffdd02a20eb850c17c37748",
}


@dataclass(frozen=True, eq=False)
class Split:
    """One split of a labelled spike dataset.

    ``batch``: the samples (times in s); ``labels``: (B,) int64 in ``[0, n_classes)``; ``name``:
    "train", "valid" or "test"; ``class_names``: label -> name when the file has them;
    ``speakers``: (B,) speaker ids (SHD) or None; ``duration``: the trial length in s the
    samples were cropped to (the simulation window), None if unknown.
    """

    batch: SpikeBatch
    labels: np.ndarray
    name: str
    n_classes: int
    class_names: tuple[str, ...] | None = None
    speakers: np.ndarray | None = None
    duration: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.batch, SpikeBatch):
            raise ValueError(f"Split: batch must be an es.SpikeBatch, got {type(self.batch).__name__}")
        lab = np.asarray(self.labels)
        if lab.ndim != 1 or lab.shape[0] != len(self.batch):
            raise ValueError(f"Split: labels must have one entry per sample ({len(self.batch)}), got shape {lab.shape}")
        if lab.size and lab.dtype.kind not in "iu":
            raise ValueError(f"Split: labels must be integers, got dtype {lab.dtype}")
        lab = lab.astype(np.int64)
        if isinstance(self.n_classes, bool) or int(self.n_classes) != self.n_classes or self.n_classes < 1:
            raise ValueError(f"Split: n_classes must be a positive integer, got {self.n_classes!r}")
        if lab.size and (lab.min() < 0 or lab.max() >= self.n_classes):
            raise ValueError(f"Split: labels must lie in [0, {self.n_classes}), found {lab.min()}..{lab.max()}")
        lab.setflags(write=False)
        object.__setattr__(self, "labels", lab)
        object.__setattr__(self, "n_classes", int(self.n_classes))
        if self.class_names is not None:
            object.__setattr__(self, "class_names", tuple(str(c) for c in self.class_names))
        if self.speakers is not None:
            spk = np.array(self.speakers).reshape(-1)
            if spk.shape[0] != len(self.batch):
                raise ValueError(f"Split: speakers must have one entry per sample ({len(self.batch)}), got {spk.size}")
            spk.setflags(write=False)
            object.__setattr__(self, "speakers", spk)

    def __len__(self) -> int:
        return len(self.batch)

    def subset(self, indices: Sequence[int] | np.ndarray, name: str | None = None) -> Split:
        """The samples at ``indices`` (in that order) as a new Split, optionally renamed."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        return replace(
            self,
            batch=self.batch.select(idx),
            labels=self.labels[idx],
            name=self.name if name is None else name,
            speakers=None if self.speakers is None else self.speakers[idx],
        )

    def __repr__(self) -> str:
        return f"Split(name={self.name!r}, n_samples={len(self)}, n_classes={self.n_classes}, duration={self.duration})"


def md5_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    """Hex md5 digest of a file, read in chunks of ``chunk_size`` bytes."""
    h = hashlib.md5()
    with open(os.fspath(path), "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            h.update(chunk)
    return h.hexdigest()


def _check_duration(duration: float) -> float:
    if isinstance(duration, bool) or not isinstance(duration, (int, float, np.floating, np.integer)):
        raise ValueError(f"duration must be a positive number of seconds, got {duration!r}")
    if not (math.isfinite(duration) and duration > 0):
        raise ValueError(f"duration must be a positive finite number of seconds, got {duration!r}")
    return float(duration)


def _labels_of(path: str, labels: np.ndarray | None) -> np.ndarray:
    if labels is None:
        raise ValueError(f"{path}: no 'labels' dataset (every sample needs a class label)")
    if labels.size and labels.dtype.kind not in "iu":
        raise ValueError(f"{path}: 'labels' must hold integers, got dtype {labels.dtype}")
    lab = labels.astype(np.int64)
    if lab.size and lab.min() < 0:
        raise ValueError(f"{path}: negative label {int(lab.min())}")
    return lab


def _extras(path: str, n_samples: int, n_classes: int | None) -> tuple[tuple[str, ...] | None, np.ndarray | None]:
    """(class names, speakers) from the file's ``extra`` group, when present and consistent."""
    extra = read_extra_h5(path)
    names = None
    keys = extra.get("keys")
    if isinstance(keys, list) and all(isinstance(k, str) for k in keys):
        if n_classes is None or len(keys) == n_classes:
            names = tuple(keys)
    speakers = None
    spk = extra.get("speaker")
    if spk is not None:
        spk = np.asarray(spk).reshape(-1)
        if spk.shape[0] != n_samples:
            raise ValueError(f"{path}: 'extra/speaker' has {spk.shape[0]} entries but there are {n_samples} samples")
        speakers = spk.astype(np.int64) if spk.dtype.kind in "iub" else spk
    return names, speakers


def _missing_message(name: str, data_dir: str, missing: list[str], wanted: list[str], problem: str) -> str:
    gz = [m for m in missing if os.path.isfile(os.path.join(data_dir, m + ".gz"))]
    hint = f"; found {', '.join(m + '.gz' for m in gz)}: decompress with gunzip" if gz else ""
    example = (missing or wanted)[0]
    return (
        f"{data_dir}: {problem} (expected {name.upper()} files {', '.join(wanted)}; get them from {DOWNLOAD_URL}"
        f" - they are distributed gzipped, decompress with e.g. `gunzip {example}.gz`){hint}"
    )


def load_dataset(
    name: str,
    data_dir: str | os.PathLike,
    duration: float = 1.0,
    check_md5: bool = False,
    splits: Iterable[str] | None = None,
) -> dict[str, Split]:
    """Load SHD (``name="shd"``) or SSC (``"ssc"``) from the uncompressed files in ``data_dir``.

    Returns split name -> :class:`Split` (SHD: "train", "test"; SSC: "train", "valid", "test"),
    trials cropped to ``duration`` seconds (events after it dropped), 700 channels. ``splits``
    loads only some of them. ``check_md5`` compares each file with :data:`KNOWN_MD5` where a sum
    is known (a mismatch raises). Missing or malformed files raise a one-line ``ValueError``.
    """
    key = str(name).lower()
    if key not in DATASET_FILES:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_FILES)}")
    duration = _check_duration(duration)
    files = DATASET_FILES[key]
    if splits is None:
        wanted_splits = list(files)
    else:
        wanted_splits = [splits] if isinstance(splits, str) else list(splits)
        bad = [s for s in wanted_splits if s not in files]
        if bad or not wanted_splits:
            raise ValueError(f"{key.upper()} has splits {', '.join(files)}; got {', '.join(map(str, bad)) or 'none'}")
        wanted_splits = list(dict.fromkeys(wanted_splits))
    d = os.fspath(data_dir)
    wanted = [files[s] for s in wanted_splits]
    if not os.path.isdir(d):
        raise ValueError(_missing_message(key, d, wanted, wanted, "no such directory"))
    missing = [f for f in wanted if not os.path.isfile(os.path.join(d, f))]
    if missing:
        raise ValueError(_missing_message(key, d, missing, wanted, f"missing {', '.join(missing)}"))
    n_classes = N_CLASSES[key]
    out: dict[str, Split] = {}
    for split in wanted_splits:
        path = os.path.join(d, files[split])
        if check_md5 and files[split] in KNOWN_MD5:
            expected, found = KNOWN_MD5[files[split]], md5_file(path)
            if found != expected:
                raise ValueError(
                    f"{path}: md5 mismatch, expected {expected}, found {found} (corrupt, truncated or a different"
                    " release; re-download it, or load with check_md5=False)"
                )
        batch, labels = read_spikes_h5(path, n_units=N_CHANNELS, t_max=duration)
        lab = _labels_of(path, labels)
        if lab.size and lab.max() >= n_classes:
            raise ValueError(f"{path}: label {int(lab.max())} out of range [0, {n_classes}) for {key.upper()}")
        names, speakers = _extras(path, len(batch), n_classes)
        out[split] = Split(batch, lab, split, n_classes, names, speakers, duration)
    return out


def load_files(
    train: str | os.PathLike,
    test: str | os.PathLike | None = None,
    valid: str | os.PathLike | None = None,
    duration: float = 1.0,
    n_units: int | None = None,
) -> dict[str, Split]:
    """Load your own labelled event files in the SHD layout (see :mod:`exactsnn.data.shd`).

    Returns "train" (and "valid", "test" when given) :class:`Split` s cropped to ``duration``
    seconds. ``n_units``: number of input channels (default: the largest over the files of the
    declared ``spikes.attrs["n_units"]`` or max unit + 1). ``n_classes`` is max label + 1 over
    all files; every file needs a ``labels`` dataset.
    """
    duration = _check_duration(duration)
    given = [(s, p) for s, p in (("train", train), ("valid", valid), ("test", test)) if p is not None]
    loaded = []
    for split, p in given:
        path = os.fspath(p)
        batch, labels = read_spikes_h5(path, n_units=n_units, t_max=duration)
        loaded.append((split, path, batch, _labels_of(path, labels)))
    if n_units is None:
        sizes = [b.n_units for _, _, b, _ in loaded if b.n_units is not None]
        if not sizes:
            raise ValueError("load_files: no file has events or a declared n_units; pass n_units")
        n_units = max(sizes)
    tops = [int(lab.max()) for *_, lab in loaded if lab.size]
    if not tops:
        raise ValueError("load_files: the files hold no samples")
    n_classes = max(tops) + 1
    out: dict[str, Split] = {}
    for split, path, batch, lab in loaded:
        if batch.n_units != n_units:
            batch = SpikeBatch.from_arrays(batch.times, batch.units, batch.offsets, n_units)
        names, speakers = _extras(path, len(batch), n_classes)
        out[split] = Split(batch, lab, split, n_classes, names, speakers, duration)
    return out


def holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Seeded, class-stratified random validation split of a training split: ``(train, valid)``.

    Per class with n samples, ``round(fraction * n)`` (half up) go to validation, at most n - 1
    so every class keeps a training sample; which ones is a seeded permutation per class (classes
    in label order). Both parts keep the original sample order. ``fraction`` in (0, 1).
    """
    if not isinstance(split, Split):
        raise ValueError(f"holdout: expected a Split, got {type(split).__name__}")
    if isinstance(fraction, bool) or not isinstance(fraction, (int, float, np.floating)) or not 0 < fraction < 1:
        raise ValueError(f"holdout: fraction must lie in (0, 1), got {fraction!r}")
    rng = np.random.default_rng(seed)
    val_mask = np.zeros(len(split), dtype=bool)
    for c in range(split.n_classes):
        members = np.flatnonzero(split.labels == c)
        n = members.size
        if n == 0:
            continue
        k = min(int(math.floor(fraction * n + 0.5)), n - 1)
        val_mask[rng.permutation(members)[:k]] = True
    if not val_mask.any():
        raise ValueError(f"holdout: fraction {fraction} leaves no validation sample in a split of {len(split)}")
    return split.subset(np.flatnonzero(~val_mask), name="train"), split.subset(np.flatnonzero(val_mask), name="valid")
