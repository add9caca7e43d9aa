"""The benchmark scripts run end to end in their --quick modes (numbers are not checked: they are
measurements, see benchmarks/README.md). Without the optional peers (snnTorch, NEST) the scripts say
so and still time exactsnn."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], tmp_path: Path) -> str:
    out = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_training_step_quick(tmp_path):
    js = tmp_path / "ts.json"
    text = _run(["benchmarks/training_step.py", "--quick", "--no-plot", "--repeats", "1", "--json", str(js)], tmp_path)
    doc = json.loads(js.read_text())
    ex = [r for r in doc["results"] if r["framework"] == "exactsnn"][0]
    assert ex["median_s"] > 0 and ex["hidden_spikes_per_sample"] > 0
    assert "exactsnn" in text and ("snntorch" in text.lower())


@pytest.mark.parametrize("script", ["nest_forward.py", "scaling.py"])
def test_peer_scripts_quick(script, tmp_path):
    extra = ["--no-snntorch", "--axes", "batch"] if script == "scaling.py" else ["--no-nest"]
    text = _run([f"benchmarks/{script}", "--quick", "--no-plot", "--json", str(tmp_path / "out.json"), *extra],
                tmp_path)
    assert "exactsnn" in text
    assert json.loads((tmp_path / "out.json").read_text())


def test_backward_quick_with_throughput_columns(tmp_path):
    js = tmp_path / "bw.json"
    _run(["benchmarks/backward.py", "--quick", "--no-memory", "--no-single", "--variants", "recurrent",
          "--json", str(js)], tmp_path)
    row = json.loads(js.read_text())["variants"][0]
    assert row["forward_syn_events_per_s_per_core"] > 0 and row["backward_syn_events_per_s_per_core"] > 0


def test_engine_table_quick(tmp_path):
    js = tmp_path / "engine.json"
    text = _run(["benchmarks/engine_table.py", "--quick", "--variants", "lif_delays", "--json", str(js)], tmp_path)
    rows = {r["variant"]: r for r in json.loads(js.read_text())["variants"]}
    assert set(rows) == {"baseline", "lif_delays"}
    for r in rows.values():
        assert r["median_s"] > 0 and r["ratio"] > 0 and r["tracemalloc_mib"] > 0, r
        assert 10.0 <= r["cal_rate"] <= 20.0 and 5.0 <= r["rate_hz"] <= 30.0, r
    assert "1. LIF + ff delays" in text and "load average" in text
