"""Numba's on-disk kernel cache is written by a first process and reused by the next one.

Each child process runs with its own empty, temporary ``NUMBA_CACHE_DIR`` (never the caches of the
source tree). It counts Numba compilations (``numba:compile`` events): ``import exactsnn`` must compile
nothing (everything is lazy), the first process compiles the kernels of a tiny simulation and writes
index files, the second process loads every kernel from the cache and compiles nothing.
Also: where exactsnn puts the cache when neither of Numba's default folders is writable.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys
from numba.core import event

class Count(event.Listener):
    n = 0
    def on_start(self, ev):
        pass
    def on_end(self, ev):
        Count.n += 1

listener = Count()
event.register("numba:compile", listener)
import numpy as np
import exactsnn as es
at_import = Count.n
net = es.Network(3, [es.Layer(4, es.LIF(t_ref=1e-3)), es.Layer(2, es.LI())])
params = net.init(seed=0)
params.weights[0][:] = 3.0
batch = es.SpikeBatch.from_lists([(np.array([0.001, 0.002, 0.004]), np.array([0, 1, 2]))], n_units=3)
rec = es.simulate(net, params, batch, t_max=0.02)
from exactsnn.engine.cpu import dense
hits = sum(dense.dense_sample.stats.cache_hits.values())
print(json.dumps({"at_import": at_import, "compiled": Count.n, "spikes": int(rec.spikes[0].n_events),
                  "hits": hits}))
"""


def _child(code: str, env_extra: dict[str, str]) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env.update(env_extra)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600,
                         cwd=ROOT)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_reuses_the_kernel_cache(tmp_path):
    cache = tmp_path / "numba-cache"
    env = {"NUMBA_CACHE_DIR": str(cache), "NUMBA_NUM_THREADS": "1"}
    cold = _child(CHILD, env)
    assert cold["at_import"] == 0, "import exactsnn compiled something: kernels must compile lazily"
    assert cold["spikes"] > 0
    assert cold["compiled"] > 0 and cold["hits"] == 0
    index = sorted(p.name for p in cache.rglob("*.nbi"))
    assert any("dense_sample" in name for name in index), index
    warm = _child(CHILD, env)
    assert warm["spikes"] == cold["spikes"]
    assert warm["hits"] == 1
    assert warm["compiled"] == 0, f"the second process compiled {warm['compiled']} functions despite the cache"


FALLBACK = r"""
import json, os
import exactsnn
import numba
# pretend neither Numba default is writable (the package folder and the user-wide cache)
exactsnn._writable_dir = lambda path, real=exactsnn._writable_dir: (
    real(path) if path.startswith(os.environ["TMPDIR"]) else False)
exactsnn._ensure_kernel_cache()
print(json.dumps({"cache_dir": numba.config.CACHE_DIR, "env": os.environ.get("NUMBA_CACHE_DIR")}))
"""


def test_cache_falls_back_to_a_private_temp_folder(tmp_path):
    out = _child(FALLBACK, {"TMPDIR": str(tmp_path)})
    expected = str(tmp_path / f"exactsnn-numba-{os.getuid()}")
    assert out["cache_dir"] == expected and out["env"] == expected
    assert (os.stat(expected).st_mode & 0o777) == 0o700


def test_user_choice_of_cache_dir_is_kept(tmp_path):
    code = FALLBACK.replace("exactsnn._ensure_kernel_cache()", "exactsnn._ensure_kernel_cache()  # no-op")
    out = _child(code, {"TMPDIR": str(tmp_path), "NUMBA_CACHE_DIR": str(tmp_path / "mine")})
    assert out["cache_dir"] == str(tmp_path / "mine")
