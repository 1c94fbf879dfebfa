"""Mappings of fork types ONNX can express: SSD's Normalize and PriorBox (a constant: it
depends on shapes only), nearest Upsample, DeepLab's Interp, ShuffleNet's ShuffleChannel.
(Permute, the depthwise convolutions, ReLU6 and HardSwish live with their BVLC kin.)"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from protoedit.export.mapping import Layer, LayerRefused, Shape, mapping


def _normalize_params(p: Any, ins: list[Shape]) -> list[Shape]:
    return [[1] if p.channel_shared else [ins[0][1]]]


@mapping("Normalize", params=_normalize_params, init="normalize")
def _normalize(layer: Layer) -> list[str]:
    """``x / sqrt(sum x^2 + eps) * scale``: the sum over the channels at each pixel, or over
    the whole sample with ``across_spatial``; ``eps`` inside the root."""
    p = layer.param
    g = layer.graph
    x = layer.inputs[0]
    rank = len(layer.shapes[0])
    axes = list(range(1, rank)) if p.across_spatial else [1]
    square = g.one("Mul", [x, x], layer.hint("square"))
    total = g.reduce("ReduceSum", square, axes, layer.hint("sum"))
    shifted = g.one("Add", [total, g.const(p.eps, layer.hint("eps"))], layer.hint("shifted"))
    norm = g.one("Sqrt", [shifted], layer.hint("norm"))
    unit = g.one("Div", [x, norm], layer.hint("unit"))
    shape = [1] if p.channel_shared else [layer.shapes[0][1], *([1] * (rank - 2))]
    return [layer.one("Mul", [unit, layer.blob(0, "scale", shape)])]


def _aspect_ratios(p: Any) -> list[float]:
    ratios = [1.0]
    for ar in p.aspect_ratio:
        if all(abs(ar - r) >= 1e-6 for r in ratios):
            ratios.append(float(ar))
            if p.flip:
                ratios.append(1.0 / ar)
    return ratios


def _num_priors(p: Any) -> int:
    return len(_aspect_ratios(p)) * len(p.min_size) + len(p.max_size)


def prior_boxes(p: Any, feature: Shape, image: Shape) -> np.ndarray:
    """SSD's prior boxes and variances for a feature map, shape [1, 2, H*W*priors*4]: what
    the bundled Caffe computes (its sizes are truncated to integers)."""
    height, width = feature[2], feature[3]
    img_h = p.img_h or p.img_size or image[2]
    img_w = p.img_w or p.img_size or image[3]
    step_h = p.step_h or p.step or img_h / height
    step_w = p.step_w or p.step or img_w / width
    ratios = _aspect_ratios(p)
    boxes: list[float] = []
    for h in range(height):
        for w in range(width):
            cx = float(np.float32((w + p.offset) * step_w))
            cy = float(np.float32((h + p.offset) * step_h))
            for s, min_size in enumerate(int(m) for m in p.min_size):
                sizes: list[tuple[float, float]] = [(min_size, min_size)]
                if len(p.max_size):
                    side = math.sqrt(min_size * int(p.max_size[s]))
                    sizes.append((side, side))
                sizes += [(min_size * math.sqrt(ar), min_size / math.sqrt(ar)) for ar in ratios[1:]]
                for width_, height_ in sizes:
                    bw, bh = float(np.float32(width_)), float(np.float32(height_))
                    boxes += [
                        (cx - bw / 2.0) / img_w,
                        (cy - bh / 2.0) / img_h,
                        (cx + bw / 2.0) / img_w,
                        (cy + bh / 2.0) / img_h,
                    ]
    coords = np.asarray(boxes, dtype=np.float32)
    if p.clip:
        coords = np.clip(coords, 0, 1)
    variance = list(p.variance) or [0.1]
    if len(variance) == 1:
        variances = np.full(coords.shape, variance[0], dtype=np.float32)
    else:
        variances = np.tile(np.asarray(variance, dtype=np.float32), coords.size // 4)
    return np.stack([coords, variances]).reshape(1, 2, -1)


def _prior_shape(p: Any, ins: list[Shape], tops: int) -> list[Shape]:
    return [[1, 2, ins[0][2] * ins[0][3] * _num_priors(p) * 4]]


@mapping("PriorBox", shape=_prior_shape)
def _prior_box(layer: Layer) -> list[str]:
    """A constant: the boxes depend on the feature map's and the image's sizes only."""
    p = layer.param
    image = layer.shapes[1] if len(layer.shapes) > 1 else layer.shapes[0]
    if not (p.img_h or p.img_size) and len(layer.shapes) < 2:
        raise LayerRefused("no image size: neither img_size/img_h/img_w nor a second bottom")
    boxes = prior_boxes(p, layer.shapes[0], image)
    return [layer.one("Identity", [layer.graph.const(boxes, layer.hint("boxes"))])]


def _upsample_scale(p: Any) -> int:
    scale = int(getattr(p, "scale", 1) or 1)
    return scale


def _upsample_shape(p: Any, ins: list[Shape], tops: int) -> list[Shape]:
    s = _upsample_scale(p)
    return [[*ins[0][:-2], ins[0][-2] * s, ins[0][-1] * s]]


@mapping("Upsample", shape=_upsample_shape)
def _upsample(layer: Layer) -> list[str]:
    """Nearest-neighbour upsampling by an integer ``scale`` (the brocolli build's Upsample);
    SegNet's unpooling with a mask bottom has no ONNX form here."""
    if len(layer.inputs) > 1:
        raise LayerRefused("unpooling with a mask bottom (SegNet) has no ONNX form here")
    p = layer.param
    if any(getattr(p, f, 0) for f in ("upsample_h", "upsample_w", "pad_out_h", "pad_out_w")):
        raise LayerRefused("upsample_h/upsample_w (SegNet) have no ONNX form here")
    s = float(_upsample_scale(p))
    rank = len(layer.shapes[0])
    scales = layer.graph.const([1.0] * (rank - 2) + [s, s], layer.hint("scales"))
    return [
        layer.one(
            "Resize",
            [layer.inputs[0], "", scales],
            mode="nearest",
            coordinate_transformation_mode="asymmetric",
            nearest_mode="floor",
        )
    ]


def _interp_size(p: Any, shape: Shape) -> tuple[int, int]:
    if getattr(p, "pad_beg", 0) or getattr(p, "pad_end", 0):
        raise LayerRefused("pad_beg/pad_end have no ONNX form here")
    h, w = shape[2], shape[3]
    zoom, shrink = int(getattr(p, "zoom_factor", 1) or 1), int(getattr(p, "shrink_factor", 1) or 1)
    if getattr(p, "height", 0) and getattr(p, "width", 0):
        return int(p.height), int(p.width)
    if shrink != 1:
        h, w = (h - 1) // shrink + 1, (w - 1) // shrink + 1
    if zoom != 1:
        h, w = h + (h - 1) * (zoom - 1), w + (w - 1) * (zoom - 1)
    return h, w


@mapping("Interp", shape=lambda p, ins, tops: [[*ins[0][:2], *_interp_size(p, ins[0])]])
def _interp(layer: Layer) -> list[str]:
    """DeepLab's bilinear resize, corners aligned (its ``caffe_cpu_interp2``)."""
    size = _interp_size(layer.param, layer.shapes[0])
    g = layer.graph
    shape = g.one("Shape", [layer.inputs[0]], layer.hint("shape"))  # N and C as they come
    lead = g.one(
        "Slice",
        [shape, g.ints([0], layer.hint("s0")), g.ints([2], layer.hint("s2"))],
        layer.hint("lead"),
    )
    full = g.one("Concat", [lead, g.ints(size, layer.hint("hw"))], layer.hint("sizes"), axis=0)
    return [
        layer.one(
            "Resize",
            [layer.inputs[0], "", "", full],
            mode="linear",
            coordinate_transformation_mode="align_corners",
        )
    ]


@mapping("ShuffleChannel", shape=lambda p, ins, tops: [list(ins[0])])
def _shuffle_channel(layer: Layer) -> list[str]:
    """Channels as [group, C / group] transposed to [C / group, group]."""
    group = int(getattr(layer.param, "group", 1) or 1)
    shape = layer.shapes[0]
    if shape[1] % group:
        raise LayerRefused(f"{shape[1]} channels do not split into {group} groups")
    g = layer.graph
    split = g.reshape(
        layer.inputs[0], [0, group, shape[1] // group, *shape[2:]], layer.hint("groups")
    )
    swapped = g.one(
        "Transpose", [split], layer.hint("swap"), perm=[0, 2, 1, *range(3, len(shape) + 1)]
    )
    return [g.reshape(swapped, [0, *shape[1:]], layer.name, layer.outputs[0])]
