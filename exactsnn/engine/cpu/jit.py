"""How the CPU kernels are compiled.

Kernels that allocate use :data:`kernel` (``njit(cache=True)``; Numba's runtime, NRT, owns their
arrays). The small per-event helpers they call allocate nothing and are compiled by :data:`helper`
without the NRT: with it Numba increfs and decrefs every array argument of every call with atomic
operations, which took 45 % of the dense forward kernel's time (measured with ``perf``: 0.99 -> 0.55
ns per neuron update of the shared pass). A helper must not allocate or return arrays.

Compile time (see ``benchmarks/compile_time.py``). Everything is compiled lazily, on first use,
and cached on disk (``cache=True``). A plain Numba dispatcher called from another jitted function
specialises on *literal* arguments: ``heap_push(..., 0, ...)`` and ``heap_push(..., 1, ...)``
compile two copies (a helper was compiled up to seven times per run), each copy then linked
and optimised again inside every caller. The dispatchers made here type every argument of such a
call by its plain type (``Literal[int](0)`` -> ``int64``, ``Literal[bool](True)`` -> ``bool``),
so each helper compiles once per real signature. Calls from Python are unaffected (they never
carry literal types).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from numba import njit
from numba.core import config, types
from numba.core.registry import CPUDispatcher

__all__ = ["helper", "kernel", "parallel_kernel"]


class NonLiteralDispatcher(CPUDispatcher):
    """A CPU dispatcher that never specialises on literal argument values (see the module docstring)."""

    def get_call_template(self, args: tuple, kws: dict) -> tuple:
        """Typing of a call from jitted code, with literal argument types widened to their plain types."""
        args = tuple(types.unliteral(a) for a in args)
        kws = {k: types.unliteral(v) for k, v in kws.items()}
        return super().get_call_template(args, kws)


def _jit(**options: Any) -> Callable[[Callable], Any]:
    """``njit(cache=True, **options)`` with a :class:`NonLiteralDispatcher`; compiled lazily, on first call."""

    def wrap(func: Callable) -> Any:
        disp = njit(cache=True, **options)(func)
        if config.DISABLE_JIT:  # NUMBA_DISABLE_JIT=1: plain Python
            return disp
        disp.__class__ = NonLiteralDispatcher
        return disp

    return wrap


#: per-event helpers: no allocation, no NRT reference counting
helper = _jit(_nrt=False)
#: per-sample kernels (may allocate); they release the GIL so that Python threads can run samples in
#: parallel (:mod:`exactsnn.engine.cpu.threads`)
kernel = _jit(nogil=True)
#: ``prange`` kernels (table builders; batch drivers use threads instead: engine/cpu/threads.py)
parallel_kernel = _jit(parallel=True)
