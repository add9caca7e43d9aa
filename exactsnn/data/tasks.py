"""A training task from a :class:`~exactsnn.config.DataConfig`: train / validation / test splits.

``yinyang`` is generated (:mod:`exactsnn.data.yinyang`, its published validation split);
``shd`` / ``ssc`` read the zenkelab files and ``files`` the user's own files in the same layout
(:mod:`exactsnn.data.datasets`). A dataset without a validation split gets a stratified,
seeded hold-out of ``val_fraction`` of its training set. With an input delay line
(:func:`exactsnn.data.augment.delay_line`) every split is widened the same way, so the network
sees ``n_channels * copies`` inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from exactsnn.config import AugmentConfig, DataConfig
from exactsnn.data.augment import delay_line, delay_line_size
from exactsnn.data.datasets import Split, holdout, load_dataset, load_files
from exactsnn.data.yinyang import CLASS_NAMES, YinYangEncoding, encode, yinyang_split

__all__ = ["Task", "load_task"]


@dataclass(frozen=True, eq=False)
class Task:
    """Splits of one dataset, ready to simulate; ``t_max`` is the simulation window (s)."""

    name: str
    n_inputs: int
    n_classes: int
    t_max: float
    train: Split | None
    valid: Split | None
    test: Split | None
    class_names: tuple[str, ...] | None = None

    def split(self, name: str) -> Split:
        """The split called ``name`` ('train', 'valid' or 'test'), or a ValueError if absent."""
        s = {"train": self.train, "valid": self.valid, "test": self.test}.get(name)
        if s is None:
            raise ValueError(f"the {self.name} task has no {name!r} split")
        return s


def _yinyang(cfg: DataConfig) -> dict[str, Split]:
    enc = YinYangEncoding(cfg.t_early, cfg.t_late, cfg.t_bias)
    if enc.t_end > cfg.t_max:
        raise ValueError(f"Yin-Yang input spikes reach {enc.t_end} s, beyond data.duration = {cfg.t_max} s")
    out = {}
    for name, published in (("train", "train"), ("valid", "validation"), ("test", "test")):
        feats, labels = yinyang_split(published)
        out[name] = Split(encode(feats, enc), labels, name, 3, CLASS_NAMES, None)
    return out


def load_task(cfg: DataConfig, augment: AugmentConfig | None = None, seed: int = 0) -> Task:
    """Load (or generate) the dataset ``cfg`` names; ``seed`` draws the validation hold-out."""
    t_max = cfg.t_max
    if cfg.dataset == "yinyang":
        splits = _yinyang(cfg)
    elif cfg.dataset in ("shd", "ssc"):
        if not cfg.data_dir:
            raise ValueError(f"dataset {cfg.dataset!r} needs data.data_dir (--data-dir), the folder with its .h5 files")
        splits = load_dataset(cfg.dataset, cfg.data_dir, duration=t_max, check_md5=cfg.check_md5)
    else:
        if not cfg.train_file:
            raise ValueError("dataset 'files' needs data.train_file (and usually data.test_file)")
        splits = load_files(
            cfg.train_file, cfg.test_file or None, cfg.valid_file or None, duration=t_max
        )
    train = splits.get("train")
    valid = splits.get("valid")
    if valid is None and train is not None and cfg.val_fraction > 0:
        train, valid = holdout(train, cfg.val_fraction, seed)
    some = next(s for s in (train, valid, splits.get("test")) if s is not None)
    n_inputs = some.batch.n_units
    aug = augment or AugmentConfig()
    parts = {"train": train, "valid": valid, "test": splits.get("test")}
    if aug.delay_line > 1:
        for k, s in parts.items():
            if s is not None:
                parts[k] = replace(s, batch=delay_line(s.batch, aug.delay_line, aug.delay_line_step, t_max))
        n_inputs = delay_line_size(n_inputs, aug.delay_line)
    return Task(cfg.dataset, n_inputs, some.n_classes, t_max, parts["train"], parts["valid"], parts["test"],
                some.class_names)
