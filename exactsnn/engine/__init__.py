"""Event machinery: forward simulation (and, later, reverse replay) on CPU and CUDA."""
