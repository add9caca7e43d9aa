"""Full-length training runs (marked slow: minutes each). Run with ``python -m pytest -m slow``."""

import pytest

from exactsnn.config import Config, apply_overrides
from exactsnn.data.synthetic import write_synth_shd
from exactsnn.train import train

pytestmark = pytest.mark.slow


def test_default_yinyang_reaches_98_percent(tmp_path):
    """The defaults of ``exactsnn train`` (what the README's main command runs)."""
    res = train(Config(), tmp_path / "run", log=print)
    assert res.test is not None
    assert res.test.accuracy >= 0.98


def test_recurrent_network_learns_synthetic_shd(tmp_path):
    """700-256(recurrent)-20 on synthetic SHD-shaped data: far above the 5 % chance level."""
    data = tmp_path / "synth"
    write_synth_shd(data, n_train=1000, n_test=300, seed=0)
    cfg = apply_overrides(Config(), [
        'data.dataset="shd"', f'data.data_dir="{data}"', "data.val_fraction=0.1",
        "network.hidden=[256]", "network.recurrent=true", "network.weight_mean=0.03", "network.weight_scale=0.2646",
        "network.recurrent_scale=0.32", "network.readout_scale=0.48", 'loss.name="sum_exp"',
        "regularizer.nu_hi=14.0", "regularizer.s_hi=1e-5", "train.epochs=4", "train.lr=2e-3", 'train.decay="none"',
    ])
    res = train(cfg, tmp_path / "run", log=print)
    assert res.test.accuracy > 0.25  # five times chance
