"""Random weights for the small nets of the weight-rewrite tests, scaled so nothing saturates.

Parameter shapes come from the net alone (the shapes Caffe gives Convolution,
Deconvolution, InnerProduct, BatchNorm and Scale blobs), so the golden tests need no Caffe.
Weights are drawn with variance 1/fan-in; BatchNorm statistics are stored multiplied by a
``scale_factor`` that is not 1 (Caffe divides them by it), with means away from zero and
variances spread over a decade, so a fold that forgets a factor fails.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from protoedit.document import Document
from protoedit.net.shapes import infer_shapes
from protoedit.net.view import NetView

Arrays = dict[str, list[np.ndarray[Any, Any]]]


def _kernel(conv: Any) -> list[int]:
    if conv.kernel_h or conv.kernel_w:
        return [conv.kernel_h, conv.kernel_w]
    sizes = list(conv.kernel_size)
    return sizes * 2 if len(sizes) == 1 else sizes


def param_shapes(doc: Document) -> dict[str, list[tuple[int, ...]]]:
    """The parameter blob shapes of each layer with parameters, as Caffe makes them."""
    view = NetView(doc)
    shapes = infer_shapes(view)
    found: dict[str, list[tuple[int, ...]]] = {}
    for info in view.layers:
        bottom = shapes[info.reads[0]] if info.reads else None
        p = info.param
        if info.type in ("Convolution", "Deconvolution"):
            assert bottom is not None
            conv, k = p.convolution_param, _kernel(p.convolution_param)
            group = conv.group or 1
            if info.type == "Convolution":
                blobs = [(conv.num_output, bottom[1] // group, *k)]
            else:
                blobs = [(bottom[1], conv.num_output // group, *k)]
            found[info.name] = blobs + ([(conv.num_output,)] if conv.bias_term else [])
        elif info.type == "InnerProduct":
            assert bottom is not None
            ip = p.inner_product_param
            fan_in = math.prod(bottom[ip.axis :])
            weight = (fan_in, ip.num_output) if ip.transpose else (ip.num_output, fan_in)
            found[info.name] = [weight] + ([(ip.num_output,)] if ip.bias_term else [])
        elif info.type == "BatchNorm":
            assert bottom is not None
            found[info.name] = [(bottom[1],), (bottom[1],), (1,)]
        elif info.type == "Scale":
            assert bottom is not None
            channels = (bottom[1],) if p.scale_param.num_axes else ()
            found[info.name] = [channels] + ([channels] if p.scale_param.bias_term else [])
    return found


def random_weights(doc: Document, seed: int = 0, scale_factor: float = 0.7) -> Arrays:
    """Seeded weights for every layer with parameters (see the module docstring)."""
    rng = np.random.default_rng(seed)
    view = NetView(doc)
    types = {info.name: info.type for info in view.layers}
    transposed = {i.name for i in view.layers if i.param.inner_product_param.transpose}
    weights: Arrays = {}
    for name, shapes in param_shapes(doc).items():
        kind = types[name]
        if kind == "BatchNorm":
            (c,) = shapes[0]
            stored = scale_factor or 1.0  # with a factor of 0 Caffe ignores what is stored
            mean = rng.uniform(-2, 2, c) * stored
            variance = np.exp(rng.uniform(np.log(0.2), np.log(3), c)) * stored
            blobs = [mean, variance, np.array([scale_factor])]
        elif kind == "Scale":
            blobs = [rng.uniform(0.5, 1.5, shapes[0]) * rng.choice([-1, 1], shapes[0])]
            blobs += [rng.normal(0, 0.5, s) for s in shapes[1:]]
        else:
            weight = shapes[0]
            fan_in = weight[0] if name in transposed else math.prod(weight[1:])
            if kind == "Deconvolution":
                fan_in = weight[0] * math.prod(weight[2:])
            blobs = [rng.normal(0, 1 / math.sqrt(fan_in), weight)]
            blobs += [rng.normal(0, 0.5, s) for s in shapes[1:]]
        weights[name] = [np.asarray(b, dtype=np.float32) for b in blobs]
    return weights
