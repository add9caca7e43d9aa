"""Numba CPU kernels: per-sample ``nogil`` kernels run on Python threads (:mod:`exactsnn.engine.cpu.threads`)."""
