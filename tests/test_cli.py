"""The ``exactsnn`` CLI: ``simulate`` on demo input, SHD-layout files and checkpoints; user errors."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import exactsnn as es
from exactsnn.checkpoint import load_checkpoint, save_checkpoint
from exactsnn.data.shd import read_spikes_h5
from exactsnn_cli.main import app

runner = CliRunner()

SMALL = ["--hidden", "8", "--readout", "3", "--t-max", "0.2"]


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, code=None, match=None):
    assert result.exit_code != 0, result.output
    if code is not None:
        assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit), result.exception
    if match is not None:
        assert match in result.output, result.output


def make_shd_file(path, n=6, n_units=700, seed=0, labels=True, nan_events=0):
    """An input file exactly like SHD: vlen float16 times, vlen uint16 units, uint16 labels."""
    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        ds_t = f.create_dataset("spikes/times", shape=(n,), dtype=h5py.vlen_dtype(np.float16))
        ds_u = f.create_dataset("spikes/units", shape=(n,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(n):
            k = int(rng.integers(200, 400))
            t = np.sort(rng.uniform(0, 0.25, size=k)).astype(np.float16)
            if i == 0 and nan_events:
                t[:nan_events] = np.nan
            ds_t[i] = t
            ds_u[i] = rng.integers(0, n_units, size=k).astype(np.uint16)
        if labels:
            f.create_dataset("labels", data=(np.arange(n) % 20).astype(np.uint16))
        f.create_dataset("extra/keys", data=np.array([b"a", b"b"]))


def test_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    assert "simulate" in result.output
    result = invoke("simulate", "--help")
    assert result.exit_code == 0
    for opt in (
        "--out",
        "--checkpoint",
        "--hidden",
        "--recurrent",
        "--delays",
        "--tau-mem",
        "--t-max",
        "--batch-size",
        "--n-inputs",
        "--demo",
        "--save-checkpoint",
        "--readout",
        "--seed",
    ):
        assert opt in result.output


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and es.__version__ in result.output


def test_demo_runs_without_files(tmp_path):
    out = tmp_path / "demo_spikes.h5"
    result = invoke("simulate", "--out", out, "--demo", 3, *SMALL)
    assert result.exit_code == 0, result.output
    assert "samples: 3" in result.output
    assert "layer 0 (8 LIF)" in result.output and "mean rate" in result.output
    assert "wall time" in result.output
    with h5py.File(out) as f:
        assert f.attrs["n_inputs"] == 700
        assert f.attrs["layer_sizes"].tolist() == [8, 3]
        assert f.attrs["n_samples"] == 3
        assert "input" in f  # the generated demo input is kept with the result
        assert "labels" not in f
    spikes, _ = read_spikes_h5(out, group="layer_0")
    assert len(spikes) == 3 and spikes.n_events > 0  # the default init drives the hidden layer


def test_default_demo_is_16_samples(tmp_path):
    result = invoke("simulate", "--out", tmp_path / "d.h5", "--hidden", "4", "--t-max", "0.05")
    assert result.exit_code == 0, result.output
    assert "samples: 16" in result.output


def test_input_file_matches_library_simulation(tmp_path):
    inp = tmp_path / "shd.h5"
    make_shd_file(inp)
    out = tmp_path / "out.h5"
    ckpt = tmp_path / "net.h5"
    result = invoke(
        "simulate",
        inp,
        "--out",
        out,
        "--hidden",
        "10",
        "--hidden",
        "6",
        "--no-recurrent",
        "--delays",
        "--t-ref",
        "0.001",
        "--readout",
        "2",
        "--t-max",
        "0.2",
        "--batch-size",
        "4",
        "--seed",
        "5",
        "--save-checkpoint",
        ckpt,
    )
    assert result.exit_code == 0, result.output
    assert "samples: 6" in result.output
    net, params, extra = load_checkpoint(ckpt)
    assert net.n_inputs == 700
    assert [layer.size for layer in net.layers] == [10, 6, 2]
    assert net.layers[0].delays and not net.layers[0].recurrent
    assert net.layers[0].neuron.t_ref == 0.001
    assert extra["seed"] == 5
    batch, labels = read_spikes_h5(inp, n_units=700, t_max=0.2)
    rec = es.simulate(net, params, batch, t_max=0.2)
    for l in range(3):
        got, got_labels = read_spikes_h5(out, group=f"layer_{l}")
        np.testing.assert_array_equal(got.times, rec.spikes[l].times)
        np.testing.assert_array_equal(got.units, rec.spikes[l].units)
        np.testing.assert_array_equal(got.offsets, rec.spikes[l].offsets)
        np.testing.assert_array_equal(got_labels, labels)
    with h5py.File(out) as f:
        assert "input" not in f


def test_checkpoint_network_and_batching_are_deterministic(tmp_path):
    inp = tmp_path / "shd.h5"
    make_shd_file(inp, n=5, seed=1)
    net = es.Network(700, [es.Layer(12, es.LIF(), recurrent=True, weight_mean=0.4, weight_std=0.2)])
    ckpt = tmp_path / "c.h5"
    save_checkpoint(ckpt, net, net.init(seed=2))
    outs = []
    for bs in (1, 2, 64):
        out = tmp_path / f"o{bs}.h5"
        result = invoke("simulate", inp, "--out", out, "--checkpoint", ckpt, "--t-max", "0.25", "--batch-size", bs)
        assert result.exit_code == 0, result.output
        outs.append(read_spikes_h5(out, group="layer_0")[0])
    for other in outs[1:]:
        np.testing.assert_array_equal(other.times, outs[0].times)
        np.testing.assert_array_equal(other.offsets, outs[0].offsets)
    assert outs[0].n_events > 0


def test_limit_and_n_inputs(tmp_path):
    inp = tmp_path / "small.h5"
    make_shd_file(inp, n=4, n_units=30, labels=False)
    out = tmp_path / "o.h5"
    result = invoke("simulate", inp, "--out", out, "--limit", 2, "--n-inputs", 40, *SMALL)
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert f.attrs["n_inputs"] == 40 and f.attrs["n_samples"] == 2
    result = invoke("simulate", inp, "--out", out, *SMALL)
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert f.attrs["n_inputs"] <= 30  # inferred from the file: max unit + 1


def test_non_finite_events_are_counted(tmp_path):
    inp = tmp_path / "nan.h5"
    make_shd_file(inp, n=2, nan_events=3)
    result = invoke("simulate", inp, "--out", tmp_path / "o.h5", *SMALL)
    assert result.exit_code == 0, result.output
    assert "dropped 3 event(s)" in result.output
    assert "dropped non-finite: 3" in result.output


# ----------------------------------------------------------------------------- user errors
def test_missing_input_file(tmp_path):
    result = invoke("simulate", tmp_path / "nope.h5", "--out", tmp_path / "o.h5")
    assert_user_error(result, 1, "Error:")
    assert "no such file" in result.output
    assert not (tmp_path / "o.h5").exists()


def test_malformed_input_files(tmp_path):
    text = tmp_path / "text.h5"
    text.write_text("not hdf5")
    assert_user_error(invoke("simulate", text, "--out", tmp_path / "o.h5"), 1, "not an HDF5 file")
    nospikes = tmp_path / "nospikes.h5"
    with h5py.File(nospikes, "w") as f:
        f.create_dataset("labels", data=[1])
    assert_user_error(invoke("simulate", nospikes, "--out", tmp_path / "o.h5"), 1, "missing group 'spikes'")
    assert not (tmp_path / "o.h5").exists()


def test_units_beyond_checkpoint_inputs(tmp_path):
    inp = tmp_path / "shd.h5"
    make_shd_file(inp, n=2)
    net = es.Network(10, [es.Layer(3)])
    save_checkpoint(tmp_path / "c.h5", net, net.init(0))
    result = invoke("simulate", inp, "--out", tmp_path / "o.h5", "--checkpoint", tmp_path / "c.h5")
    assert_user_error(result, 1, "out of range")
    assert not (tmp_path / "o.h5").exists()


def test_bad_checkpoint(tmp_path):
    bad = tmp_path / "bad.h5"
    with h5py.File(bad, "w") as f:
        f.attrs["format"] = "something-else"
    assert_user_error(
        invoke("simulate", "--out", tmp_path / "o.h5", "--checkpoint", bad), 1, "unsupported checkpoint format"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--t-max", "0"],
        ["--t-max", "-1"],
        ["--t-max", "nan"],
        ["--hidden", "-3"],
        ["--hidden", "0"],
        ["--batch-size", "0"],
        ["--tau-mem", "0"],
        ["--t-ref", "-0.001"],
        ["--readout", "-1"],
        ["--demo", "0"],
        ["--weight-std", "-1"],
    ],
)
def test_bad_options_are_usage_errors(tmp_path, args):
    result = invoke("simulate", "--out", tmp_path / "o.h5", *args)
    assert_user_error(result, 2)
    assert not (tmp_path / "o.h5").exists()


def test_inconsistent_neuron_options(tmp_path):
    result = invoke("simulate", "--out", tmp_path / "o.h5", "--v-reset", "2", *SMALL)
    assert_user_error(result, 1, "Error:")
    assert "v_reset" in result.output


def test_conflicting_options(tmp_path):
    net = es.Network(700, [es.Layer(3)])
    save_checkpoint(tmp_path / "c.h5", net, net.init(0))
    r = invoke("simulate", "--out", tmp_path / "o.h5", "--checkpoint", tmp_path / "c.h5", "--hidden", "5")
    assert_user_error(r, 2, "--hidden")
    inp = tmp_path / "shd.h5"
    make_shd_file(inp, n=1)
    assert_user_error(invoke("simulate", inp, "--out", tmp_path / "o.h5", "--demo", "3"), 2)
    assert_user_error(invoke("simulate", "--out", tmp_path / "o.h5", "--limit", "3"), 2)
    assert_user_error(invoke("simulate", inp, "--out", inp), 2)
    assert_user_error(invoke("simulate", inp, "--out", tmp_path / "o.h5", "--save-checkpoint", inp), 2)
    with h5py.File(inp) as f:  # the input was not touched
        assert f["spikes/times"].shape == (1,)
    ckpt = tmp_path / "c.h5"
    assert_user_error(invoke("simulate", "--out", ckpt, "--checkpoint", ckpt), 2, "--out must differ from --checkpoint")
    assert load_checkpoint(ckpt)[0] == net  # the checkpoint was not overwritten
    assert_user_error(invoke("simulate", "--out", tmp_path / "x.h5", "--save-checkpoint", tmp_path / "x.h5"), 2)
    assert not (tmp_path / "x.h5").exists()


def test_missing_out_option():
    assert_user_error(invoke("simulate"), 2, "--out")


def test_unwritable_output(tmp_path):
    result = invoke("simulate", "--out", tmp_path / "no" / "such" / "dir" / "o.h5", *SMALL, "--demo", "1")
    assert_user_error(result, 1, "Error:")


def test_simulate_adlif_network(tmp_path):
    out = tmp_path / "ad.h5"
    res = runner.invoke(app, ["simulate", "--out", str(out), "--demo", "2", "--hidden", "16", "--neuron",
                                   "adlif", "--a", "4", "--b", "0.1", "--tau-w", "0.05", "--t-max", "0.3"])
    assert res.exit_code == 0, res.output
    assert "16 AdLIF" in res.output and out.exists()
    res = runner.invoke(app, ["simulate", "--out", str(tmp_path / "x.h5"), "--demo", "1", "--neuron", "adlif",
                                   "--a", "-1"])
    assert res.exit_code != 0 and "AdLIF.a must be > -1" in res.output and "Traceback" not in res.output


# ----------------------------------------------------------------------------- one option vocabulary (issue 13)
SHARED = ("hidden", "neuron", "tau_mem", "tau_syn", "v_th", "v_reset", "t_ref", "tau_w", "a", "b", "learn",
          "recurrent", "delays", "seed", "threads")


def _params(command):
    import typer.main

    cmd = typer.main.get_command(app).commands[command]
    return {p.name: p for p in cmd.params}


def test_shared_options_are_defined_once():
    """train, simulate and gradcheck offer every shared option under the same names, with the same help text
    (which states the default and the accepted range), except the per-command defaults of --hidden,
    --recurrent, --delays and --threads."""
    per_command = {c: _params(c) for c in ("train", "simulate", "gradcheck")}
    for name in SHARED:
        opts = {c: (tuple(p[name].opts), tuple(p[name].secondary_opts)) for c, p in per_command.items()}
        assert len(set(opts.values())) == 1, (name, opts)
        helps = {c: p[name].help for c, p in per_command.items()}
        assert all("[default: " in h for h in helps.values()), helps
        if name not in ("hidden", "recurrent", "delays", "threads"):
            assert len(set(helps.values())) == 1, (name, helps)
    for c in per_command:
        res = invoke(c, "--help")
        assert res.exit_code == 0 and "--tau-mem" in res.output and "--threads" in res.output


def test_neuron_defaults_match_the_config():
    from exactsnn.config import NetworkConfig
    from exactsnn_cli.options import NEURON_DEFAULTS
    from exactsnn_cli.simulate import network_from_options

    nc = NetworkConfig()
    assert NEURON_DEFAULTS == {k: getattr(nc, k) for k in NEURON_DEFAULTS}
    lif = network_from_options(4).layers[0].neuron
    assert (lif.tau_mem, lif.tau_syn, lif.v_th, lif.v_reset, lif.t_ref) == (nc.tau_mem, nc.tau_syn, nc.v_th,
                                                                           nc.v_reset, nc.t_ref)
    ad = network_from_options(4, neuron="adlif").layers[0].neuron
    assert (ad.tau_w, ad.a, ad.b) == (nc.tau_w, nc.a, nc.b)


def test_hidden_comma_separated_and_repeated_in_simulate(tmp_path):
    outs = []
    for i, hidden in enumerate((["--hidden", "8,4"], ["--hidden", "8", "--hidden", "4"])):
        out, ckpt = tmp_path / f"o{i}.h5", tmp_path / f"c{i}.h5"
        res = invoke("simulate", "--out", out, "--demo", 2, "--t-max", 0.1, "--readout", 3, *hidden,
                     "--save-checkpoint", ckpt, "--threads", 1)
        assert res.exit_code == 0, res.output
        assert "700 inputs -> 8 LIF (recurrent) -> 4 LIF (recurrent) -> 3 LI" in res.output
        assert "Numba 1 threads" in res.output and "device cpu" in res.output  # the hardware line
        assert [layer.size for layer in load_checkpoint(ckpt)[0].layers] == [8, 4, 3]
        outs.append(read_spikes_h5(out, group="layer_0")[0])
    np.testing.assert_array_equal(outs[0].times, outs[1].times)
    res = invoke("simulate", "--out", tmp_path / "m.h5", "--demo", 1, "--t-max", 0.05, "--hidden", "6,5",
                 "--hidden", "4", "--save-checkpoint", tmp_path / "m.ckpt")
    assert res.exit_code == 0, res.output
    assert [layer.size for layer in load_checkpoint(tmp_path / "m.ckpt")[0].layers] == [6, 5, 4, 20]
    for bad in ("8,x", "8,,4", "0", "-3", "2.5"):
        assert_user_error(invoke("simulate", "--out", tmp_path / "b.h5", "--hidden", bad), 2, "layer sizes")


def test_gradcheck_hidden_comma_separated_and_repeated():
    args = ["gradcheck", "--n-checks", "2", "--no-input-times", "--no-delays", "--n-samples", "2"]
    a = invoke(*args, "--hidden", "4,3")
    b = invoke(*args, "--hidden", "4", "--hidden", "3")
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert "10 inputs -> 4 LIF (recurrent) -> 3 LIF (recurrent) -> 3 LI" in a.output
    strip = lambda text: [x for x in text.splitlines() if not x.startswith("wall time")]  # noqa: E731
    assert strip(a.output) == strip(b.output)


@pytest.mark.parametrize(
    "command, args",
    [
        ("train", ["--lr", "0"]), ("train", ["--lr", "-1e-3"]), ("train", ["--lr", "nan"]), ("train", ["--lr", "inf"]),
        ("train", ["--tau-mem", "0"]), ("train", ["--t-ref", "nan"]), ("train", ["--a", "inf"]),
        ("train", ["--epochs", "0"]), ("train", ["--threads", "0"]),
        ("simulate", ["--tau-syn", "inf"]), ("simulate", ["--tau-w", "-1"]), ("simulate", ["--v-th", "nan"]),
        ("simulate", ["--threads", "0"]), ("simulate", ["--a", "nan"]),
        ("gradcheck", ["--tau-mem", "nan"]), ("gradcheck", ["--t-ref", "-1"]), ("gradcheck", ["--tol", "0"]),
        ("gradcheck", ["--eps", "inf"]), ("gradcheck", ["--b", "nan"]), ("gradcheck", ["--input-rate", "nan"]),
        ("data", ["synth-shd", "--rate-scale", "nan"]), ("data", ["synth-shd", "--rate-scale", "0"]),
    ],
)
def test_numeric_options_say_what_is_allowed(tmp_path, command, args):
    """Zero, negative, nan and inf are refused when parsed, with a message that states the accepted range."""
    extra = {"simulate": ["--out", tmp_path / "o.h5"], "train": ["--print-config"],
             "data": ["--out", tmp_path / "o.h5"]}.get(command, [])
    res = invoke(command, *args, *extra)
    assert_user_error(res, 2)
    assert any(s in res.output for s in ("> 0", ">= 0", "finite number", "greater than or equal to 1")), res.output
    assert not (tmp_path / "o.h5").exists()


def test_help_states_the_range_that_is_accepted():
    res = invoke("train", "--help")
    assert "Adam learning rate (> 0)" in res.output and "x>=0.0" not in res.output
    assert "[default: 0.002]" in res.output and "[default: 80]" in res.output and "[default: 600]" in res.output


def test_output_paths_are_checked_before_any_work(tmp_path, monkeypatch):
    """A bad --out or --save-checkpoint is one Error line before the network is built or anything simulated."""
    def boom(*args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("simulated despite a bad output path")

    monkeypatch.setattr(es, "simulate", boom)
    monkeypatch.setattr("exactsnn.data.poisson.poisson_batch", boom)
    cases = [
        (["--out", tmp_path / "nosuchdir" / "o.h5"], "folder"),
        (["--out", tmp_path], "is a folder; give a file name"),
        (["--out", tmp_path / "o.h5", "--save-checkpoint", tmp_path / "no" / "c.h5"], "--save-checkpoint"),
    ]
    for args, match in cases:
        res = invoke("simulate", *args, "--demo", 1, *SMALL)
        assert_user_error(res, 1, match)
        assert res.output.strip().count("\n") == 0, res.output  # one line
        assert res.output.startswith("Error: ") and "Errno" not in res.output
    assert not (tmp_path / "o.h5").exists()
