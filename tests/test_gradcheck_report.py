"""The gradcheck report as users see it: the ``status`` column of ``format_table()`` (the same table the
CLI prints) and the warning when every gradient is exactly zero (a silent network makes the check
trivial), issued once by :func:`exactsnn.gradcheck.gradcheck` and printed by ``exactsnn gradcheck``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from typer.testing import CliRunner

import exactsnn as es
from exactsnn.gradcheck import GradcheckReport, GroupResult, SilentNetworkWarning, gradcheck
from exactsnn_cli.main import app

pytestmark = pytest.mark.usefixtures("serial_kernels")  # tiny batches: one thread (conftest.py)


def _case(weight_mean: float):
    """6 inputs -> 4 recurrent LIF -> 3 LI; 2 samples with 3 spikes per channel in 60 ms."""
    net = es.Network(6, [es.Layer(4, es.LIF(), recurrent=True, weight_mean=weight_mean, weight_std=0.3 * weight_mean),
                         es.Layer(3, es.LI())])
    params = net.init(seed=1)
    rng = np.random.default_rng(2)
    samples = []
    for _ in range(2):
        t = np.sort(rng.uniform(0.0, 0.06, 18))
        samples.append((t, rng.integers(0, 6, 18)))
    batch = es.SpikeBatch.from_lists(samples, n_units=6)
    return net, params, batch, np.array([0, 2]), 0.06


def test_silent_network_warns_and_marks_zero_groups():
    net, params, batch, labels, t_max = _case(weight_mean=1e-3)
    assert es.simulate(net, params, batch, t_max=t_max).spikes[0].n_events == 0
    with pytest.warns(SilentNetworkWarning, match=r"every gradient is exactly zero \(layer 0 produced no spikes"):
        report = gradcheck(net, params, batch, labels, es.losses.Sum(), t_max, n_checks=2)
    assert report.all_zero and report.silent_layers == [0] and report.layer_spikes == (0, None)
    assert "weight" in report.warning and "\n" not in report.warning
    table = report.format_table()
    header = table.splitlines()[1]
    assert header.split()[-1] == "status"
    rows = table.splitlines()[3:3 + len(report.groups)]
    assert all(r.split()[-1] == "zero" for r in rows), table
    assert "zero: EventProp and finite differences are both exactly 0" in table
    assert report.ok()  # trivially: zero agrees with zero; the warning is what tells the user

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = gradcheck(net, params, batch, labels, es.losses.Sum(), t_max, n_checks=2, warn=False)
    assert quiet.warning == report.warning


def test_spiking_network_has_ok_status_and_no_warning():
    net, params, batch, labels, t_max = _case(weight_mean=3.0)
    assert es.simulate(net, params, batch, t_max=t_max).spikes[0].n_events > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a SilentNetworkWarning would fail the test
        report = gradcheck(net, params, batch, labels, es.losses.Sum(), t_max, n_checks=2)
    assert not report.all_zero and report.warning is None and report.silent_layers == []
    table = report.format_table()
    rows = table.splitlines()[3:3 + len(report.groups)]
    assert [r.split()[0] for r in rows] == [g.name for g in report.groups]
    assert all(r.split()[-1] == "ok" for r in rows), table
    assert table.splitlines()[-1].endswith("all groups within tolerance")
    assert report.format_table() == report.format_table(1e-6)  # the CLI's default tolerance
    assert "status" not in report.format_table(tol=None)


def _group(name: str, n_checked: int, worst: float, scale: float = 1.0, noise: float = 1e-9,
           n_pattern: int = 0) -> GroupResult:
    return GroupResult(name=name, size=10, n_checked=n_checked, n_skipped_pattern=n_pattern, n_skipped_kink=0,
                       n_skipped_nonfinite=0, n_boundary=0, scale=scale, step=1e-6, noise=noise,
                       worst_rel_error=worst if n_checked else math.nan, worst=None)


def test_status_column_values():
    groups = (
        _group("weights[0]", 5, 1e-9),
        _group("delays[0]", 5, 3e-3),
        _group("recurrent_weights[0]", 0, math.nan, n_pattern=5),
        _group("weights[1]", 5, 0.0, scale=0.0, noise=math.nan),
        _group("input_times", 5, 5e-6, noise=1e-5),
    )
    report = GradcheckReport(groups, (), loss=1.0, mode="random", eps=1e-6, seed=0)
    assert [g.status() for g in groups] == ["ok", "FAIL", "skipped", "zero", "ok*"]
    table = report.format_table()
    statuses = [r.split()[-1] for r in table.splitlines()[3:8]]
    assert statuses == ["ok", "FAIL", "skipped", "zero", "ok*"], table
    assert "1 group(s) FAILED" in table and "noise-limited" in table
    assert not report.all_zero and report.warning is None  # one zero group is not a silent network


runner = CliRunner()
SMALL = ["gradcheck", "--hidden", "4", "--n-inputs", "6", "--n-samples", "2", "--n-checks", "2", "--t-max", "0.06"]


def test_cli_prints_the_library_warning_once():
    result = runner.invoke(app, [*SMALL, "--weight-scale", "0", "--no-delays"])
    assert result.exit_code == 0, result.output
    assert result.output.count("Warning: every gradient is exactly zero (layer 0 produced no spikes") == 1
    assert "SilentNetworkWarning" not in result.output  # printed as a line, not as a Python warning
    assert "status" in result.output and "zero" in result.output
    assert "Traceback" not in result.output


def test_cli_without_warning_when_the_network_spikes():
    result = runner.invoke(app, [*SMALL, "--no-delays"])
    assert result.exit_code == 0, result.output
    assert "Warning" not in result.output
    assert "status" in result.output
