"""Shared pytest configuration: hypothesis profiles.

Profiles (``deadline=None`` everywhere: Numba compiles a kernel on its first call):

* ``ci``: 40 examples, derandomized (reproducible in CI). Loaded when the ``CI`` env var is set.
* ``dev``: 300 examples, random, for a thorough local run.
* ``local``: 60 examples, random: what a plain local ``pytest`` run uses (no CI, no override).

``HYPOTHESIS_PROFILE=<name>`` overrides the choice.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numba
import pytest
from hypothesis import HealthCheck, settings

# make tests/reference.py importable as `reference` whatever the rootdir / import mode
sys.path.insert(0, str(Path(__file__).parent))

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=40, derandomize=True, print_blob=True, **_common)
settings.register_profile("dev", max_examples=300, **_common)
settings.register_profile("local", max_examples=60, **_common)

_profile = os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "local")
settings.load_profile(_profile)


@pytest.fixture(scope="module")
def serial_kernels() -> Iterator[None]:
    """One Numba thread for a module of tiny simulations (``pytestmark = pytest.mark.usefixtures("serial_kernels")``):
    on a busy 2-core machine running a 2-sample batch on two threads costs more than it saves. Results do not
    depend on the thread count; ``test_threads.py`` runs every kernel on two threads."""
    n = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(n)
