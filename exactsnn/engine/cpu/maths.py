"""The neuron models' scalar maths as CPU helpers: one compiled copy per function and signature.

The models write their per-neuron maths once, as ``register_jitable`` functions (to be shared with the
CUDA target). Called from a CPU kernel such a function is an ``@overload``, which Numba compiles again for
every set of compiler flags among its callers (an overload's cache key includes the caller's flags: a
``_nrt=False`` helper, a ``nogil`` kernel and a ``fastmath`` loop each get a copy, and so does every
model function that calls it): the 3x3 matrix exponential of the linear family was compiled four times
per run, ~0.8 s each (``benchmarks/compile_time.py --detail``).

:func:`cpu_helpers` compiles a model module's functions as :data:`~exactsnn.engine.cpu.jit.helper`
dispatchers instead, each a copy of the function whose global names resolve to the other dispatchers, so
that nested calls (``advance`` -> ``expm_into``) also go through the one compiled copy. The source stays
in the model module (and its ``register_jitable`` functions stay usable by other targets).
"""

from __future__ import annotations

from types import FunctionType, ModuleType
from typing import Any

from exactsnn.engine.cpu.jit import helper
from exactsnn.neurons import linear as _linear
from exactsnn.neurons import series as _series

__all__ = [
    "adjoint_column", "adjoint_layer", "advance", "cpu_helpers", "expm_into", "first_crossing", "flow_adjoint",
    "lam_x_integral", "layer_norm", "may_cross_before", "next_spike", "pnorm", "propagate_layer", "window_advance",
]


def cpu_helpers(module: ModuleType, names: tuple[str, ...]) -> dict[str, Any]:
    """``helper`` dispatchers of ``module``'s functions ``names``; calls among them use the dispatchers."""
    scope = dict(vars(module))
    made = {}
    for name in names:
        f = getattr(module, name)
        copy = FunctionType(f.__code__, scope, f.__name__, f.__defaults__, f.__closure__)
        copy.__qualname__ = f.__qualname__
        made[name] = helper(copy)
    scope.update(made)  # resolved when a dispatcher is first compiled, i.e. after this
    return made


_LINEAR = cpu_helpers(_linear, (
    "expm_into", "propagate", "propagate_short", "flow", "flow_adjoint", "window_advance",
    "advance", "_pnorm", "_vdot", "_polish", "first_crossing",
    "may_cross_before", "next_spike", "lam_x_integral",
))
# series_terms (a short loop) is left out: as a helper its call cost the heap forward ~8 % per event
advance = _LINEAR["advance"]
expm_into = _LINEAR["expm_into"]
flow_adjoint = _LINEAR["flow_adjoint"]
first_crossing = _LINEAR["first_crossing"]
lam_x_integral = _LINEAR["lam_x_integral"]
may_cross_before = _LINEAR["may_cross_before"]
next_spike = _LINEAR["next_spike"]
pnorm = _LINEAR["_pnorm"]
window_advance = _LINEAR["window_advance"]

# the layer-wide series (called once per stretch: the call costs nothing, one compiled copy each)
_SERIES = cpu_helpers(_series, ("layer_norm", "propagate_layer", "adjoint_layer", "adjoint_column"))
layer_norm = _SERIES["layer_norm"]
propagate_layer = _SERIES["propagate_layer"]
adjoint_layer = _SERIES["adjoint_layer"]
adjoint_column = _SERIES["adjoint_column"]
