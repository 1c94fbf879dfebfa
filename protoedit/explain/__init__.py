"""Explaining trained nets: gradients by layer name, saliency maps, activation maximisation.

Each method is an object prepared once for a net, its weights, a target and what to measure
(:class:`LayerGradients`, :class:`Gradient`, :class:`IntegratedGradients`,
:class:`SmoothGrad` over either, :class:`GradCAM`, :class:`GuidedBackprop`,
:class:`Deconvnet`, :class:`GuidedGradCAM`, :class:`Visualizer`, :class:`TopImagesFinder`),
reused for image after image in one Caffe worker (:class:`CaffeSession`); :func:`gradients`,
:func:`saliency`, :func:`visualize` and :func:`top_images` are one call of one of them, and
:func:`sanity` checks a saliency method by randomising the net.  The net is rewritten in
memory with :mod:`protoedit.rewrites`; images are preprocessed by
:mod:`protoedit.explain.preprocess`.
"""

from protoedit.explain.attribution import (
    Attribution,
    Gradient,
    IntegratedGradients,
    SmoothGrad,
)
from protoedit.explain.cam import Deconvnet, GradCAM, GuidedBackprop, GuidedGradCAM
from protoedit.explain.layer_gradients import Gradients, LayerGradients, gradients, prepare
from protoedit.explain.maximisation import Visualizer, visualize
from protoedit.explain.methods import method_object, saliency
from protoedit.explain.objectives import Objective, Unit, direction
from protoedit.explain.preprocess import Preprocess, load_input
from protoedit.explain.saliency_maps import Saliency
from protoedit.explain.sanity import SanityReport, sanity
from protoedit.explain.session import CaffeRunError, CaffeSession
from protoedit.explain.settings import PRESETS, Settings
from protoedit.explain.top_images import TopImages, TopImagesFinder, top_images
from protoedit.explain.visualization import ObjectiveResult, Visualization
from protoedit.weights.errors import WeightsError

__all__ = [
    "PRESETS",
    "Attribution",
    "CaffeRunError",
    "CaffeSession",
    "Deconvnet",
    "GradCAM",
    "Gradient",
    "Gradients",
    "GuidedBackprop",
    "GuidedGradCAM",
    "IntegratedGradients",
    "LayerGradients",
    "Objective",
    "ObjectiveResult",
    "Preprocess",
    "Saliency",
    "SanityReport",
    "Settings",
    "SmoothGrad",
    "TopImages",
    "TopImagesFinder",
    "Unit",
    "Visualization",
    "Visualizer",
    "WeightsError",
    "direction",
    "gradients",
    "load_input",
    "method_object",
    "prepare",
    "saliency",
    "sanity",
    "top_images",
    "visualize",
]
