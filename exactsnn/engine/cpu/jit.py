"""How the CPU kernels are compiled.

Kernels that allocate use ``njit(cache=True)`` (Numba's runtime, NRT, owns their arrays). The small
per-event helpers they call allocate nothing and are compiled by :data:`helper` without the NRT:
with it Numba increfs and decrefs every array argument of every call with atomic operations, which
took 45 % of the dense forward kernel's time (measured with ``perf``: 0.99 -> 0.55 ns per neuron
update of the shared pass). A helper must not allocate or return arrays.
"""

from __future__ import annotations

from numba import njit

helper = njit(cache=True, _nrt=False)
