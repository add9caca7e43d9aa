"""exactsnn: exact event-driven simulation of spiking neural networks and EventProp gradients.

Time is in seconds throughout. See README.md for the CLI and the Python API.
"""

from exactsnn import losses, regularizers
from exactsnn.engine.simulate import Recording, simulate
from exactsnn.events import SpikeBatch
from exactsnn.grad import loss_and_grad, loss_value
from exactsnn.gradcheck import GradcheckReport, gradcheck
from exactsnn.network import Layer, Network, Params
from exactsnn.neurons import LI, LIF, AdLIF

__version__ = "0.1.0"

__all__ = [
    "LIF", "LI", "AdLIF", "Layer", "Network", "Params", "SpikeBatch", "simulate", "Recording",
    "loss_and_grad", "loss_value", "gradcheck", "GradcheckReport", "losses", "regularizers", "__version__",
]
