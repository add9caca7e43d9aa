"""exactsnn: exact event-driven simulation of spiking neural networks and EventProp gradients.

Time is in seconds throughout. See README.md for the CLI and the Python API.

Compiled kernels are cached on disk by Numba (README, "Compilation and the kernel cache"): next to
the sources when that folder is writable, else in Numba's user-wide cache (``~/.cache/numba``), else
(both read-only, e.g. a system-wide install for a user without a writable home) in a private folder
of the temporary directory chosen here, before any kernel is defined. ``NUMBA_CACHE_DIR`` overrides all.
"""

import os as _os
import tempfile as _tempfile


def _writable_dir(path: str) -> bool:
    """Whether ``path`` exists or can be made, and a file can be created in it (Numba's own test)."""
    try:
        _os.makedirs(path, exist_ok=True)
        _tempfile.TemporaryFile(dir=path).close()
    except OSError:
        return False
    return True


def _private_temp_cache() -> str | None:
    """``<tmp>/exactsnn-numba-<uid>``, created 0700, or None if it exists but is not safely ours."""
    uid = _os.getuid() if hasattr(_os, "getuid") else 0
    path = _os.path.join(_tempfile.gettempdir(), f"exactsnn-numba-{uid}")
    try:
        _os.makedirs(path, mode=0o700, exist_ok=True)
        st = _os.stat(path)
    except OSError:
        return None
    if hasattr(_os, "getuid") and (st.st_uid != uid or st.st_mode & 0o022):
        return None  # someone else's folder: never load compiled code from it
    return path if _writable_dir(path) else None


def _ensure_kernel_cache() -> None:
    """Give Numba a writable cache folder when neither of its defaults is writable (see the module docstring)."""
    if _os.environ.get("NUMBA_CACHE_DIR"):
        return
    if _writable_dir(_os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "engine", "cpu", "__pycache__")):
        return  # Numba's default: __pycache__ next to the sources
    from numba.misc.appdirs import AppDirs

    if _writable_dir(AppDirs(appname="numba", appauthor=False).user_cache_dir):
        return  # Numba falls back to its user-wide cache by itself
    path = _private_temp_cache()
    if path is not None:
        import numba

        _os.environ["NUMBA_CACHE_DIR"] = path  # for child processes
        numba.config.CACHE_DIR = path  # read when each cached kernel is defined (below)


_ensure_kernel_cache()

from exactsnn import losses, regularizers  # noqa: E402 - after the cache folder is settled
from exactsnn.engine.simulate import Recording, simulate  # noqa: E402
from exactsnn.events import SpikeBatch  # noqa: E402
from exactsnn.grad import loss_and_grad, loss_value  # noqa: E402
from exactsnn.gradcheck import GradcheckReport, gradcheck  # noqa: E402
from exactsnn.network import Layer, Network, Params  # noqa: E402
from exactsnn.neurons import LI, LIF, AdLIF  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "LIF", "LI", "AdLIF", "Layer", "Network", "Params", "SpikeBatch", "simulate", "Recording",
    "loss_and_grad", "loss_value", "gradcheck", "GradcheckReport", "losses", "regularizers", "__version__",
]
