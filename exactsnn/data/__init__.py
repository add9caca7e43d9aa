"""Datasets and file formats (SHD/SSC HDF5 layout)."""
