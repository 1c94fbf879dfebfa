"""Explaining trained nets: gradients by layer name, saliency maps, activation maximisation.

Each method is an object prepared once for a net, its weights, a target and what to measure
(:class:`LayerGradients`, :class:`Gradient`, :class:`IntegratedGradients`,
:class:`SmoothGrad` over either, :class:`Visualizer`), reused for image after image in one
Caffe worker (:class:`CaffeSession`); :func:`gradients`, :func:`saliency` and
:func:`visualize` are one call of one of them.  The net is rewritten in memory with
:mod:`protoedit.rewrites`; images are preprocessed by :mod:`protoedit.explain.preprocess`.
"""

from protoedit.explain.attribution import (
    Attribution,
    Gradient,
    IntegratedGradients,
    SmoothGrad,
    saliency,
)
from protoedit.explain.layer_gradients import Gradients, LayerGradients, gradients, prepare
from protoedit.explain.maximisation import Visualizer, visualize
from protoedit.explain.objectives import Objective, Unit, direction
from protoedit.explain.preprocess import Preprocess, load_input
from protoedit.explain.saliency_maps import Saliency
from protoedit.explain.session import CaffeRunError, CaffeSession
from protoedit.explain.settings import PRESETS, Settings
from protoedit.explain.visualization import ObjectiveResult, Visualization
from protoedit.weights.errors import WeightsError

__all__ = [
    "PRESETS",
    "Attribution",
    "CaffeRunError",
    "CaffeSession",
    "Gradient",
    "Gradients",
    "IntegratedGradients",
    "LayerGradients",
    "Objective",
    "ObjectiveResult",
    "Preprocess",
    "Saliency",
    "Settings",
    "SmoothGrad",
    "Unit",
    "Visualization",
    "Visualizer",
    "WeightsError",
    "direction",
    "gradients",
    "load_input",
    "prepare",
    "saliency",
    "visualize",
]
