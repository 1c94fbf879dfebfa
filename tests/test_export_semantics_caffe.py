"""Each Caffe semantic that converters get wrong, on its own small net: the export matches
Caffe blob by blob, and the obvious wrong mapping (swapped in for the test) is caught by the
check.  One warm Caffe worker (``caffe_session``) serves the whole module."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protoedit import loads
from protoedit.caffe import Session
from protoedit.export import check
from protoedit.export.layers_core import _pool_geometry
from protoedit.export.mapping import MAPPINGS, Layer, Mapping

pytestmark = pytest.mark.caffe


def _net(body: str, shape: str = "1 3 8 8") -> str:
    dims = " ".join(f"dim: {d}" for d in shape.split())
    return (
        'name: "t"\nlayer { name: "data" type: "Input" top: "data" '
        f"input_param {{ shape {{ {dims} }} }} }}\n" + body
    )


CONV = (
    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
    "convolution_param { num_output: 4 kernel_size: 1 } }\n"
)


def _check(text: str, session: Session, **options: Any) -> Any:
    doc = loads(text, path="t.prototxt")
    return check(doc, session=session, **options)


def _assert_exact(text: str, session: Session, **options: Any) -> None:
    report = _check(text, session, **options)
    assert report.ok, "\n".join(report.lines())
    assert all(run.blobs for run in report.runs if not run.skipped)


def _assert_caught(
    text: str,
    session: Session,
    kind: str,
    wrong: Callable[[Layer], list[str]],
    blob: str,
    shape: Any = None,
) -> None:
    """With ``wrong`` as the mapping of ``kind`` (and ``shape`` as its shape rule), the check
    fails first at ``blob``."""
    original = MAPPINGS[kind]
    rule = shape or original.shape
    MAPPINGS[kind] = Mapping(wrong, original.params, rule, original.alias, original.init)
    try:
        report = _check(text, session, odd_size=False)
    finally:
        MAPPINGS[kind] = original
    assert not report.ok
    found = report.first_divergence
    if found is None:  # the wrong model could not even run (a fixed batch at batch 2)
        failures = [run.failed for run in report.runs if run.failed]
        assert failures and f"Name:'{blob}" in failures[0], "\n".join(report.lines())
    else:
        assert found[1].blob == blob, "\n".join(report.lines())


# -- pooling ----------------------------------------------------------------------------------

POOL_CEIL = CONV + (
    'layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" '
    "pooling_param { pool: MAX kernel_size: 3 stride: 2 } }\n"
)
# 4 + 2 * 1 - 2 = 4 over stride 3 rounds up to a third window that would start in the
# padding: Caffe drops it (2 windows, not 3).
POOL_CLIP = CONV + (
    'layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" '
    "pooling_param { pool: MAX kernel_size: 2 stride: 3 pad: 1 } }\n"
)
# 6 + 2 - 3 = 5 over stride 2 rounds up to 4 windows; the last one covers pixel 5 and one
# pixel of padding: Caffe divides by 2 on that axis (the window clipped to H + pad), not by
# 3 (the kernel) nor by 1 (the pixels inside the image).
POOL_AVE = CONV + (
    'layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" '
    "pooling_param { pool: AVE kernel_size: 3 stride: 2 pad: 1 } }\n"
)


def _naive_pool(floor: bool = False, include_pad: int = 1) -> Callable[[Layer], list[str]]:
    """What converters write: ONNX's pool with Caffe's pads and ceil_mode."""

    def emit(layer: Layer) -> list[str]:
        p = layer.param
        kernel, pad, stride, _ = _pool_geometry(p, layer.shapes[0])
        op = "MaxPool" if p.pool == 0 else "AveragePool"
        extra = {} if op == "MaxPool" else {"count_include_pad": include_pad}
        return [
            layer.one(
                op,
                layer.inputs,
                kernel_shape=kernel,
                strides=stride,
                pads=pad + pad,
                ceil_mode=0 if floor else 1,
                **extra,
            )
        ]

    return emit


def _with_pads(layer: Layer, out: list[int]) -> tuple[list[int], list[int], list[int]]:
    """Kernel, stride and the pads that give ``out`` windows under ONNX's floor rule."""
    kernel, pad, stride, _ = _pool_geometry(layer.param, layer.shapes[0])
    sizes = layer.shapes[0][2:]
    extra = [
        (n - 1) * st + k - (s + 2 * q)
        for n, st, k, s, q in zip(out, stride, kernel, sizes, pad, strict=True)
    ]
    return kernel, stride, [*pad, pad[0] + max(0, extra[0]), pad[1] + max(0, extra[1])]


def test_pooling_rounds_up(caffe_session: Session) -> None:
    text = _net(POOL_CEIL)
    _assert_exact(text, caffe_session)
    _assert_caught(text, caffe_session, "Pooling", _naive_pool(floor=True), "pool")


def test_pooling_drops_a_last_window_in_the_padding(caffe_session: Session) -> None:
    text = _net(POOL_CLIP, "1 3 4 4")
    _assert_exact(text, caffe_session)

    def no_clip(layer: Layer) -> list[str]:  # rounded up, the last window kept: padded by hand
        kernel, pad, stride, _ = _pool_geometry(layer.param, layer.shapes[0])
        sizes = layer.shapes[0][2:]
        out = [
            -(-(s + 2 * q - k) // st) + 1
            for s, q, k, st in zip(sizes, pad, kernel, stride, strict=True)
        ]
        kernel, stride, pads = _with_pads(layer, out)
        g = layer.graph
        padding = g.ints([0, 0, pads[0], pads[1], 0, 0, pads[2], pads[3]], layer.hint("pads"))
        low = g.const(-3.4e38, layer.hint("low"))
        padded = g.one("Pad", [layer.inputs[0], padding, low], layer.hint("padded"))
        return [layer.one("MaxPool", [padded], kernel_shape=kernel, strides=stride)]

    _assert_caught(text, caffe_session, "Pooling", no_clip, "pool")


def test_average_pooling_divides_by_the_padded_window(caffe_session: Session) -> None:
    text = _net(POOL_AVE, "1 3 6 6")
    _assert_exact(text, caffe_session)
    # by the pixels inside the image
    _assert_caught(text, caffe_session, "Pooling", _naive_pool(include_pad=0), "pool")

    def by_kernel(layer: Layer) -> list[str]:  # by the whole kernel
        kernel, stride, pads = _with_pads(layer, _pool_geometry(layer.param, layer.shapes[0])[3])
        return [
            layer.one(
                "AveragePool",
                layer.inputs,
                kernel_shape=kernel,
                strides=stride,
                pads=pads,
                count_include_pad=1,
            )
        ]

    _assert_caught(text, caffe_session, "Pooling", by_kernel, "pool")


# -- BatchNorm --------------------------------------------------------------------------------

BATCH_NORM = CONV + (
    'layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "bn" '
    "batch_norm_param { eps: 0.5 } }\n"
)


def _batch_norm(divide: bool, eps: float | None) -> Callable[[Layer], list[str]]:
    """ONNX BatchNormalization from the stored blobs, ignoring the scale factor and/or
    Caffe's ``eps``."""

    def emit(layer: Layer) -> list[str]:
        mean, var, factor = layer.blobs
        scale = 1 / factor[0] if divide else 1.0
        g = layer.graph
        c = mean.size
        inputs = [g.const(np.ones(c), "g"), g.const(np.zeros(c), "b")]
        inputs += [g.const(mean * scale, "m"), g.const(var * scale, "v")]
        epsilon = layer.param.eps if eps is None else eps
        return [layer.one("BatchNormalization", [layer.inputs[0], *inputs], epsilon=epsilon)]

    return emit


def test_batch_norm_divides_by_the_scale_factor_and_uses_its_eps(caffe_session: Session) -> None:
    text = _net(BATCH_NORM)
    _assert_exact(text, caffe_session)
    _assert_caught(text, caffe_session, "BatchNorm", _batch_norm(divide=False, eps=None), "bn")
    _assert_caught(text, caffe_session, "BatchNorm", _batch_norm(divide=True, eps=1e-5), "bn")


# -- LRN --------------------------------------------------------------------------------------

LRN = CONV + (
    'layer { name: "lrn" type: "LRN" bottom: "conv" top: "lrn" '
    "lrn_param { local_size: 3 alpha: 2 beta: 0.75 k: 3 norm_region: REGION } }\n"
)


def _lrn_across(bias: float | None) -> Callable[[Layer], list[str]]:
    def emit(layer: Layer) -> list[str]:
        p = layer.param
        k = p.k if bias is None else bias
        return [
            layer.one("LRN", layer.inputs, size=p.local_size, alpha=p.alpha, beta=p.beta, bias=k)
        ]

    return emit


def test_lrn_across_channels(caffe_session: Session) -> None:
    text = _net(LRN.replace("REGION", "ACROSS_CHANNELS"))
    _assert_exact(text, caffe_session)
    _assert_caught(text, caffe_session, "LRN", _lrn_across(bias=1.0), "lrn")


def test_lrn_within_channel(caffe_session: Session) -> None:
    text = _net(LRN.replace("REGION", "WITHIN_CHANNEL"))
    _assert_exact(text, caffe_session)
    # the across-channels formula, and the within-channel one with Caffe's k (it uses 1)
    _assert_caught(text, caffe_session, "LRN", _lrn_across(bias=None), "lrn")
    _assert_caught(text, caffe_session, "LRN", lambda layer: _lrn_k(layer, layer.param.k), "lrn")


def _lrn_k(layer: Layer, k: float) -> list[str]:
    """WITHIN_CHANNEL with ``k + alpha * mean`` (Caffe ignores k and uses 1)."""
    g = layer.graph
    x = layer.inputs[0]
    p = layer.param
    pad = (p.local_size - 1) // 2
    square = g.one("Mul", [x, x], "sq")
    mean = g.one(
        "AveragePool",
        [square],
        "mean",
        kernel_shape=[p.local_size] * 2,
        pads=[pad] * 4,
        count_include_pad=1,
    )
    base = g.one(
        "Add", [g.one("Mul", [mean, g.const(p.alpha, "a")], "am"), g.const(k, "k")], "base"
    )
    return [layer.one("Mul", [x, g.one("Pow", [base, g.const(-p.beta, "b")], "pow")])]


# -- Reshape, Flatten, InnerProduct ----------------------------------------------------------


def _static_reshape(layer: Layer) -> list[str]:
    """The declared output shape written as numbers (the batch fixed, 0 and -1 resolved)."""
    return [layer.graph.reshape(layer.inputs[0], layer.out_shapes[0], layer.name, layer.outputs[0])]


def test_reshape_copies_zero_and_infers_minus_one(caffe_session: Session) -> None:
    text = _net(
        CONV + 'layer { name: "r" type: "Reshape" bottom: "conv" top: "r" '
        "reshape_param { shape { dim: 0 dim: -1 dim: 16 } } }\n"
    )
    _assert_exact(text, caffe_session)
    _assert_caught(text, caffe_session, "Reshape", _static_reshape, "r")  # at batch 2


def test_reshape_axis_and_num_axes(caffe_session: Session) -> None:
    text = _net(
        CONV + 'layer { name: "r" type: "Reshape" bottom: "conv" top: "r" '
        "reshape_param { axis: 1 num_axes: 1 shape { dim: 2 dim: -1 } } }\n"
    )
    _assert_exact(text, caffe_session)

    def whole(layer: Layer) -> list[str]:  # the dims applied to the whole shape
        dims = [int(d) for d in layer.param.shape.dim]
        return [layer.graph.reshape(layer.inputs[0], dims, layer.name, layer.outputs[0])]

    def rank2(p: Any, ins: list[list[int]], tops: int) -> list[list[int]]:
        return [[2, int(np.prod(ins[0])) // 2]]

    _assert_caught(text, caffe_session, "Reshape", whole, "r", rank2)


def test_flatten_axis(caffe_session: Session) -> None:
    text = _net(
        CONV
        + 'layer { name: "f" type: "Flatten" bottom: "conv" top: "f" flatten_param { axis: 2 } }\n'
    )
    _assert_exact(text, caffe_session)

    def onnx_flatten(layer: Layer) -> list[str]:  # ONNX's Flatten makes 2-D
        return [layer.one("Flatten", layer.inputs, axis=2)]

    def two_d(p: Any, ins: list[list[int]], tops: int) -> list[list[int]]:
        n, c, h, w = ins[0]
        return [[n * c, h * w]]

    _assert_caught(text, caffe_session, "Flatten", onnx_flatten, "f", two_d)


def test_inner_product_axis(caffe_session: Session) -> None:
    text = _net(
        CONV + 'layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" '
        "inner_product_param { num_output: 5 axis: 2 } }\n"
    )
    _assert_exact(text, caffe_session)

    def per_sample(layer: Layer) -> list[str]:  # flattened from axis 1, the weight reused
        g = layer.graph
        flat = g.one("Flatten", layer.inputs, "flat", axis=1)
        w = g.const(np.resize(layer.blobs[0], (5, int(np.prod(layer.shapes[0][1:])))), "w")
        return [layer.one("Gemm", [flat, w, layer.blob(1, "bias")], transB=1)]

    def per_sample_shape(p: Any, ins: list[list[int]], tops: int) -> list[list[int]]:
        return [[ins[0][0], 5]]

    _assert_caught(text, caffe_session, "InnerProduct", per_sample, "ip", per_sample_shape)


def test_inner_product_keeps_the_batch(caffe_session: Session) -> None:
    text = _net(
        CONV + 'layer { name: "ip" type: "InnerProduct" bottom: "conv" top: "ip" '
        "inner_product_param { num_output: 5 } }\n"
    )
    _assert_exact(text, caffe_session)

    def batch_one(layer: Layer) -> list[str]:  # reshaped to [1, -1] first
        flat = layer.graph.reshape(layer.inputs[0], [1, -1], "flat")
        return [layer.one("Gemm", [flat, layer.blob(0, "w"), layer.blob(1, "b")], transB=1)]

    _assert_caught(text, caffe_session, "InnerProduct", batch_one, "ip")


# -- Slice, Eltwise, Crop ---------------------------------------------------------------------


def test_slice_points(caffe_session: Session) -> None:
    text = _net(
        CONV.replace("num_output: 4", "num_output: 6")
        + 'layer { name: "s" type: "Slice" bottom: "conv" top: "a" top: "b" top: "c" '
        "slice_param { axis: 1 slice_point: 1 slice_point: 4 } }\n"
    )
    _assert_exact(text, caffe_session)

    def equal(layer: Layer) -> list[str]:  # equal pieces
        sizes = layer.graph.ints([2, 2, 2], "sizes")
        return layer.graph.node("Split", [layer.inputs[0], sizes], "split", layer.outputs, axis=1)

    _assert_caught(text, caffe_session, "Slice", equal, "a")


def test_eltwise_coefficients(caffe_session: Session) -> None:
    text = _net(
        CONV + 'layer { name: "c2" type: "Convolution" bottom: "data" top: "c2" '
        "convolution_param { num_output: 4 kernel_size: 1 } }\n"
        'layer { name: "sum" type: "Eltwise" bottom: "conv" bottom: "c2" top: "sum" '
        "eltwise_param { operation: SUM coeff: 1 coeff: -0.5 } }\n"
    )
    _assert_exact(text, caffe_session)
    _assert_caught(
        text, caffe_session, "Eltwise", lambda layer: [layer.one("Sum", layer.inputs)], "sum"
    )


def test_crop_offsets(caffe_session: Session) -> None:
    text = _net(
        CONV + 'layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" '
        "pooling_param { pool: MAX kernel_size: 2 stride: 2 } }\n"
        'layer { name: "crop" type: "Crop" bottom: "conv" bottom: "pool" top: "crop" '
        "crop_param { axis: 2 offset: 3 offset: 1 } }\n",
        "1 3 9 9",
    )
    _assert_exact(text, caffe_session)

    def centred(layer: Layer) -> list[str]:  # a centre crop, the offsets ignored
        big, small = layer.shapes
        g = layer.graph
        starts = [(big[a] - small[a]) // 2 for a in (2, 3)]
        ends = [s + small[a] for s, a in zip(starts, (2, 3), strict=True)]
        inputs = [layer.inputs[0], g.ints(starts, "s"), g.ints(ends, "e"), g.ints([2, 3], "a")]
        return [layer.one("Slice", inputs)]

    _assert_caught(text, caffe_session, "Crop", centred, "crop")


# -- Deconvolution, PReLU, Dropout, Split, Silence --------------------------------------------


def test_deconvolution_groups(caffe_session: Session) -> None:
    text = _net(
        CONV + 'layer { name: "up" type: "Deconvolution" bottom: "conv" top: "up" '
        "convolution_param { num_output: 4 group: 2 kernel_size: 4 stride: 2 pad: 1 } }\n"
    )
    _assert_exact(text, caffe_session)

    def conv_layout(layer: Layer) -> list[str]:  # read as [outputs, inputs / group, kh, kw]
        w = layer.blobs[0].reshape(2, 2, 2, 4, 4).transpose(0, 2, 1, 3, 4).reshape(4, 2, 4, 4)
        g = layer.graph
        return [
            layer.one(
                "ConvTranspose",
                [layer.inputs[0], g.const(w, "w"), layer.blob(1, "b")],
                kernel_shape=[4, 4],
                strides=[2, 2],
                pads=[1, 1, 1, 1],
                group=2,
            )
        ]

    _assert_caught(text, caffe_session, "Deconvolution", conv_layout, "up")


def test_prelu_slope_broadcasts_over_channels(caffe_session: Session) -> None:
    # 4 channels and a width of 4: a slope shaped [C] broadcasts over the width, silently.
    text = _net(CONV + 'layer { name: "pr" type: "PReLU" bottom: "conv" top: "pr" }\n', "1 3 5 4")
    _assert_exact(text, caffe_session)

    def flat_slope(layer: Layer) -> list[str]:
        return [layer.one("PRelu", [layer.inputs[0], layer.blob(0, "slope")])]

    _assert_caught(text, caffe_session, "PReLU", flat_slope, "pr")


def test_dropout_is_identity(caffe_session: Session) -> None:
    text = _net(
        CONV + 'layer { name: "drop" type: "Dropout" bottom: "conv" top: "d" '
        "dropout_param { dropout_ratio: 0.3 } }\n"
    )
    _assert_exact(text, caffe_session)

    def scaled(layer: Layer) -> list[str]:  # train-time scaling kept
        return [layer.one("Mul", [layer.inputs[0], layer.graph.const(1 / 0.7, "s")])]

    original = MAPPINGS["Dropout"]
    MAPPINGS["Dropout"] = Mapping(scaled)
    try:
        report = _check(text, caffe_session, odd_size=False)
    finally:
        MAPPINGS["Dropout"] = original
    assert report.first_divergence is not None and report.first_divergence[1].blob == "d"


def test_split_and_silence_vanish(caffe_session: Session) -> None:
    from protoedit.export import to_onnx

    text = _net(
        CONV + 'layer { name: "split" type: "Split" bottom: "conv" top: "s1" top: "s2" }\n'
        'layer { name: "relu" type: "ReLU" bottom: "s1" top: "r" }\n'
        'layer { name: "sil" type: "Silence" bottom: "s2" }\n'
    )
    _assert_exact(text, caffe_session)
    model = to_onnx(loads(text))
    assert [n.op_type for n in model.graph.node] == ["Conv", "Relu"]
    assert [o.name for o in model.graph.output] == ["r"]


def test_the_command_checks_and_exits_1_when_the_reference_cannot_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from protoedit.cli import main

    good = tmp_path / "good.prototxt"
    good.write_text(_net(POOL_AVE, "1 3 6 6"))
    assert main(["export", str(good), "--check", "-q", "-o", str(tmp_path / "good.onnx")]) == 0
    assert capsys.readouterr().out == ""
    # BVLC's round_mode: the bundled Caffe's schema has a bool ceil_mode in its place.
    bad = tmp_path / "bad.prototxt"
    bad.write_text(_net(POOL_AVE.replace("pad: 1", "round_mode: FLOOR"), "1 3 6 6"))
    assert main(["export", str(bad), "--check", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False and report["reference_error"]
