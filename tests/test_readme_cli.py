"""Every ``exactsnn ...`` command the README shows parses with the real CLI; the cheap ones run.

Commands are collected from the README's fenced blocks and inline code spans. Each is parsed by the
same Click objects the console script uses (option names, value types and the range checks of the
option callbacks), with the README's placeholders (DIR, INPUT.h5, run folders, ...) replaced by real
temporary paths. A command that names an option or subcommand the CLI does not have fails here.
The quick ones (help, the effective configuration, a gradcheck, a simulation demo) also run to the end.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import numba
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from exactsnn_cli.main import app
from exactsnn_cli.options import normalize_delays_args

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_commands() -> list[str]:
    """``exactsnn`` command lines of README.md (comments, prompts, redirections and [optional] parts removed)."""
    text = README.read_text()
    lines = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, flags=re.S):
        lines += block.splitlines()
    # inline spans with an option are examples too (a bare `exactsnn plot` in prose names a command)
    lines += [c for c in re.findall(r"`(exactsnn [^`]+)`", text) if " -" in c and "--help" not in c]
    cmds = []
    for line in lines:
        line = line.strip().removeprefix("$ ")
        for part in line.split("&&"):
            part = part.strip()
            if not part.startswith("exactsnn ") and part != "exactsnn" or " / " in part:
                continue  # "exactsnn train / evaluate / plot" is prose
            part = part.split(" #")[0].split(" > ")[0]
            part = re.sub(r"\[[^\]]*\]", "", part)  # [--demo 16]: optional parts
            cmds.append(" ".join(part.split()))
    return list(dict.fromkeys(cmds))


def _placeholders(tmp: Path) -> dict[str, str]:
    run = tmp / "runs" / "yinyang-20261123-2100"
    run.mkdir(parents=True)
    (tmp / "DIR").mkdir()
    for name in ("INPUT.h5", "CKPT.h5", "my.toml", "my_train.h5", "my_test.h5"):
        (tmp / name).write_text("")
    return {
        "runs/yinyang-20261123-2100": str(run), "RUN": str(run), "DIR": str(tmp / "DIR"), "D": str(tmp / "DIR"),
        "/path/to/shd": str(tmp / "DIR"), "INPUT.h5": str(tmp / "INPUT.h5"), "CKPT.h5": str(tmp / "CKPT.h5"),
        "OUT.h5": str(tmp / "OUT.h5"), "demo.h5": str(tmp / "demo.h5"), "my.toml": str(tmp / "my.toml"),
        "data/synth": str(tmp / "synth"), "my_train.h5": str(tmp / "my_train.h5"),
        "my_test.h5": str(tmp / "my_test.h5"),
    }


def _args(cmd: str, subst: dict[str, str]) -> list[str]:
    args = shlex.split(cmd)[1:]
    return [subst.get(a, a) for a in args]


def _rest(ctx: object) -> list[str]:
    """What a context left for a subcommand (Click >= 8.2 keeps the command name in ``_protected_args``)."""
    protected = getattr(ctx, "_protected_args", None)
    if protected is None:
        protected = getattr(ctx, "protected_args", [])
    return list(protected) + list(ctx.args)


def _parse(args: list[str]) -> None:
    """Parse like the console script, down to the subcommand (callbacks included), without running it."""
    group = get_command(app)
    args = normalize_delays_args(args)
    ctx = group.make_context("exactsnn", list(args))
    rest = _rest(ctx)
    cmd = group
    while rest and hasattr(cmd, "get_command"):
        name, rest = rest[0], rest[1:]
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"no subcommand {name!r}"
        ctx = sub.make_context(name, rest, parent=ctx)
        rest = _rest(ctx)
        cmd = sub
    assert not rest, f"unexpected arguments {rest}"


def test_readme_has_commands():
    cmds = readme_commands()
    assert len(cmds) >= 15
    assert "exactsnn train" in cmds and any("--delays feedforward" in c for c in cmds)


@pytest.mark.parametrize("cmd", [c for c in readme_commands() if c not in ("exactsnn", "exactsnn --help")])
def test_readme_command_parses(cmd, tmp_path):
    _parse(_args(cmd, _placeholders(tmp_path)))


def test_a_wrong_option_is_caught(tmp_path):
    with pytest.raises(Exception, match="no_such_option|No such option"):
        _parse(["train", "--no-such-option", "3"])


def test_quick_readme_commands_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["--help"])
    assert res.exit_code == 0 and "train" in res.output
    res = runner.invoke(app, ["train", "--hidden", "64,32", "--tau-mem", "0.01", "--print-config"])
    assert res.exit_code == 0 and "hidden = [64, 32]" in res.output
    threads = numba.get_num_threads()
    try:
        res = runner.invoke(app, ["gradcheck", "--t-ref", "0.002", "--loss", "sum_gaussian",
                                  "--regularizer", "spike_count"])
    finally:
        numba.set_num_threads(threads)
    assert res.exit_code == 0, res.output
    for group in ("weights[0]", "delays[0]", "recurrent_weights[0]", "recurrent_delays[0]"):
        assert re.search(rf"^{re.escape(group)}\s.*\bok\b", res.output, flags=re.M), res.output
    res = runner.invoke(app, ["simulate", "--out", "demo.h5", "--demo", "2", "--t-max", "0.1"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "demo.h5").exists()
