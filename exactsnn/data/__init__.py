"""Datasets and file formats.

``shd`` (SHD/SSC HDF5 layout: read and write), ``datasets`` (the zenkelab SHD/SSC files and your
own files in that layout), ``yinyang`` (the Yin-Yang task, generated exactly), ``synthetic``
(SHD-shaped synthetic data), ``augment`` (shift, blend, delay line), ``tasks`` (a training task
from a configuration), ``poisson`` (Poisson demo inputs).
"""
