"""README.md's Python examples work as written: every ```python block, run in order in one namespace
(as a user pastes them one after the other) in a temporary working directory, and what their comments
say they produce.

Checked per top-level statement, from the comment on its lines:

* ``# (256, 700), ...`` or ``# ..., shape (2, 20, 1001)``: the value of the expression (or of the
  assigned name) has that shape (a tuple value of ints: is that tuple); several tuples for a tuple
  expression ``a, b  # (2,), (2, 256)``: one shape per element;
* ``# True...``: the expression is true;
* an expression statement other than ``print(...)`` must carry one of these (so a claim cannot go
  unchecked);
* the claims in ``CLAIMS`` (spike counts, rates, non-zero gradients, accuracy), looked up by the start of
  the statement's first line: each must be found, so rewording the README without updating the check
  fails;
* output a block prints is compared with the ```text block that follows it in the README (rows of the
  gradcheck table: group, size, checks, skips, scale and status; the summary line).

A block that raises fails the test, with the README line. A Python block fenced with another tag
(```py, ```Python, ...) would be skipped silently, so any tag other than python/bash/text fails.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import tokenize
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```([^\n`]*)\n(.*?)^```[ \t]*$", re.M | re.S)
ALLOWED_TAGS = {"", "python", "bash", "text"}
TUPLES = re.compile(r"\(\s*(?:\d+\s*,\s*)*\d*\s*,?\s*\)")


def _fenced(text: str) -> list[tuple[str, int, str]]:
    """(tag, first line number of the code, code) of every fenced block, in order."""
    return [(m.group(1).strip(), text.count("\n", 0, m.start(2)) + 1, m.group(2)) for m in FENCE.finditer(text)]


def _shapes(spec: str) -> list[tuple[int, ...]]:
    return [tuple(int(x) for x in t.strip("()").replace(" ", "").split(",") if x) for t in TUPLES.findall(spec)]


def _shape_claim(comment: str) -> list[tuple[int, ...]] | None:
    """Shapes a comment claims: leading tuples ``(256, 700), (2,)`` or ``shape (2, 20, 1001)``."""
    m = re.match(r"#\s*((?:\(\s*(?:\d+\s*,\s*)*\d*\s*,?\s*\)\s*,?\s*)+)", comment)
    if m:
        return _shapes(m.group(1))
    m = re.search(r"shape\s*(\(\s*(?:\d+\s*,\s*)*\d*\s*,?\s*\))", comment)
    return _shapes(m.group(1)) if m else None


def _comments(code: str) -> dict[int, str]:
    """Line (1-based within the block) -> its comment."""
    out = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            out[tok.start[0]] = tok.string
    return out


# ----------------------------------------------------------------------------------------------- claims
def _spike_count(ns: dict, comment: str) -> None:
    m = re.search(r": (\d+) \(~(\d+) Hz per neuron\)", comment)
    assert m, f"expected 'N (~R Hz per neuron)' in {comment!r}"
    n, hz = int(m.group(1)), float(m.group(2))
    assert len(ns["times"]) == n, (len(ns["times"]), n)
    layer = ns["net"].layers[0]
    rate = ns["rec"].spikes[0].n_events / (len(ns["batch"]) * layer.size * 1.0)
    assert 2.0 <= rate <= 50.0 and abs(rate - hz) <= 0.1 * hz, rate  # the default init fires on SHD-like input


def _input_is_shd_like(ns: dict, comment: str) -> None:
    batch = ns["batch"]
    assert batch.n_units == 700 and len(batch) == 2
    assert 6000 < batch.n_events / len(batch) < 8000  # ~7000: 700 channels x 10 Hz x 1 s


def _adlif_gradients(ns: dict, comment: str) -> None:
    g = ns["grads"].neuron[0]
    assert set(g) == {"tau_mem", "tau_w", "a", "b"}
    assert all(np.any(v != 0) and np.all(np.isfinite(v)) for v in g.values())
    rec = __import__("exactsnn").simulate(ns["adnet"], ns["adparams"], ns["batch"], t_max=1.0)
    rate = rec.spikes[0].n_events / (len(ns["batch"]) * 256)
    assert 2.0 <= rate <= 50.0, rate  # adLIF default init fires comparably


def _lif_gradients(ns: dict, comment: str) -> None:
    g = ns["grads"]
    for a in (g.weights[0], g.recurrent_weights[0], g.weights[1]):
        assert np.any(a != 0) and np.all(np.isfinite(a))
    assert np.all(g.delays[0] == 0)  # delays=False: not parameters


def _input_gradient(ns: dict, comment: str) -> None:
    assert np.any(ns["dt_in"] != 0)


def _training(ns: dict, comment: str) -> None:
    m = re.search(r"about ([\d.]+) and \[([\d.]+)\] Hz", comment)
    assert m, f"expected 'about ACC and [RATE] Hz' in {comment!r}"
    acc, hz = float(m.group(1)), float(m.group(2))
    test = ns["result"].test
    # the trajectory depends on the thread count in the last bits (README); the claim is approximate
    assert abs(test.accuracy - acc) <= 0.1 and test.accuracy > 0.5, test.accuracy  # chance: 1/3
    assert abs(test.rate_hz[0] - hz) <= 0.3 * hz, test.rate_hz
    assert (Path("runs/mine") / "best.h5").is_file()


CLAIMS: dict[str, Callable[[dict, str], None]] = {
    "batch = es.SpikeBatch.from_lists(samples": _input_is_shd_like,
    "times, units = rec.spikes[0].sample(0)": _spike_count,
    'grads.neuron[0]["tau_w"]': _adlif_gradients,
    "grads.weights[0], grads.delays[0], grads.recurrent_weights[0]": _lif_gradients,
    "dt_in.shape == batch.times.shape": _input_gradient,
    "print(result.test.accuracy": _training,
}


def _check_printed(printed: str, expected: str, where: str) -> None:
    """The ```text block after a Python block: gradcheck table rows and summary line."""
    lines = [ln for ln in expected.splitlines() if ln.strip()]
    if not lines[0].startswith("group "):
        pytest.fail(f"{where}: no check for the printed text starting {lines[0]!r}")
    out_rows = {ln.split()[0]: ln.split() for ln in printed.splitlines() if ln.strip()}
    head = lines[0].split()
    for ln in lines[1:]:
        cells = ln.split()
        if ln[0].isdigit():  # summary line
            assert ln in printed, f"{where}: summary {ln!r} not printed:\n{printed}"
            continue
        got = out_rows.get(cells[0])
        assert got is not None, f"{where}: row {cells[0]} not printed:\n{printed}"
        assert got[-1] == cells[-1], f"{where}: {cells[0]} status {got[-1]}, README says {cells[-1]}"
        for col in ("size", "checked", "skipped", "scale"):
            i = head.index(col)
            assert got[i] == cells[i], f"{where}: {cells[0]} {col} {got[i]}, README says {cells[i]}\n{printed}"


# ----------------------------------------------------------------------------------------------- the test
def test_readme_tags_are_known():
    tags = {tag for tag, _, _ in _fenced(README.read_text())}
    assert tags <= ALLOWED_TAGS, f"README code blocks tagged {sorted(tags - ALLOWED_TAGS)}: use ```python"


@pytest.mark.filterwarnings("error::exactsnn.gradcheck.SilentNetworkWarning")  # no trivial check in an example
def test_readme_python_blocks_run_in_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _fenced(README.read_text())
    python = [(i, line, code) for i, (tag, line, code) in enumerate(blocks) if tag == "python"]
    assert len(python) >= 4, "README python blocks not found"
    ns: dict = {"__name__": "__readme__"}
    used: set[str] = set()
    for i, first_line, code in python:
        comments = _comments(code)
        printed = io.StringIO()
        for stmt in ast.parse(code).body:
            where = f"README.md line {first_line + stmt.lineno - 1}"
            comment = next((comments[k] for k in range(stmt.lineno, stmt.end_lineno + 1) if k in comments), "")
            is_expr = isinstance(stmt, ast.Expr)
            try:
                with contextlib.redirect_stdout(printed):
                    if is_expr:
                        value = eval(compile(ast.Expression(stmt.value), where, "eval"), ns)
                    else:
                        exec(compile(ast.Module([stmt], type_ignores=[]), where, "exec"), ns)
            except Exception as exc:  # noqa: BLE001 - reported with the README line
                pytest.fail(f"{where}: {ast.get_source_segment(code, stmt)!r} raised {type(exc).__name__}: {exc}")
            if not is_expr and isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Name):
                value = ns[stmt.targets[0].id]
            elif not is_expr:
                value = None
            shapes = _shape_claim(comment)
            if shapes is not None and value is not None:
                if len(shapes) == 1:
                    v, s = value, shapes[0]
                    got = v if isinstance(v, tuple) and all(isinstance(x, int) for x in v) else np.shape(v)
                    assert got == s, f"{where}: {got}, README says {s}"
                else:
                    assert isinstance(value, tuple) and len(value) == len(shapes), f"{where}: {len(shapes)} values"
                    got = [np.shape(v) for v in value]
                    assert got == shapes, f"{where}: shapes {got}, README says {shapes}"
            elif comment.startswith("# True"):
                assert value is True or (isinstance(value, np.bool_) and value), f"{where}: {value!r}, README says True"
            elif is_expr and not (isinstance(stmt.value, ast.Call) and getattr(stmt.value.func, "id", "") == "print"):
                pytest.fail(f"{where}: an expression without a checkable comment (a shape or True)")
            first = code.splitlines()[stmt.lineno - 1].strip()
            for key, check in CLAIMS.items():
                if first.startswith(key):
                    used.add(key)
                    check(ns, comment)
        nxt = blocks[i + 1] if i + 1 < len(blocks) else None
        if printed.getvalue() and nxt is not None and nxt[0] == "text" and "print(" in code:
            _check_printed(printed.getvalue(), nxt[2], f"README.md line {nxt[1]}")
            used.add(f"text@{nxt[1]}")
    missing = set(CLAIMS) - used
    assert not missing, f"README statements checked by this test are gone: {sorted(missing)}"
    assert any(k.startswith("text@") for k in used), "the printed gradcheck table is no longer shown in README"
