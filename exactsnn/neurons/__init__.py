"""Neuron models: parameters (frozen dataclasses) and their closed-form maths (``register_jitable``)."""

from exactsnn.neurons.adlif import AdLIF
from exactsnn.neurons.lif import LI, LIF

__all__ = ["LIF", "LI", "AdLIF"]
