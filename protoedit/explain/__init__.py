"""Explaining trained nets: gradients by layer name, activation maximisation (``visualize``).

Every Caffe computation runs in a worker process (:class:`CaffeSession`); the net is rewritten
in memory with :mod:`protoedit.rewrites`; images are preprocessed by
:mod:`protoedit.explain.preprocess`, the Caffe way.
"""

from protoedit.explain.layer_gradients import Gradients, gradients, prepare
from protoedit.explain.maximisation import PRESETS, Settings, Unit, Visualization, visualize
from protoedit.explain.preprocess import Preprocess, load_input
from protoedit.explain.saliency_maps import Saliency, saliency
from protoedit.explain.session import CaffeRunError, CaffeSession
from protoedit.explain.weights import WeightsError

__all__ = [
    "PRESETS",
    "CaffeRunError",
    "CaffeSession",
    "Gradients",
    "Preprocess",
    "Saliency",
    "Settings",
    "Unit",
    "Visualization",
    "WeightsError",
    "gradients",
    "load_input",
    "prepare",
    "saliency",
    "visualize",
]
