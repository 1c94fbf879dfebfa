"""The summary without Caffe: FLOPs and parameters counted by hand (the arithmetic written
out below), memory, unknowns, overrides, weights, fork rules and the command line.
``test_summary_caffe.py`` compares shapes and parameter counts with Caffe's.

Conventions (net/costs.py): a convolution's MACs are output elements · (C_in/group) · k_h·k_w;
an InnerProduct's are M · K · N; a multiply-add is 2 FLOPs.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from protoedit import InputError, load, loads
from protoedit.cli import main
from protoedit.net.summary import LayerRow, Summary, summary
from protoedit.schema import BUILTIN_PROTO, Schema, builtin_schema

from .helpers import CORPUS, one_error_line

ALEXNET = "BVLC__caffe__models__bvlc_alexnet__deploy.prototxt"
VGG16 = "ethereon__netscope__presets__vgg-16.prototxt"
GOOGLENET = "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt"
RESNET50 = "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt"


def _corpus(name: str) -> Path:
    if not CORPUS.is_dir():
        pytest.skip("shared corpus not present")
    return CORPUS / name


def _rows(result: Summary) -> dict[str, LayerRow]:
    return {row.name: row for row in result.rows}


def _macs_of(result: Summary, *types: str) -> int:
    return sum(row.macs or 0 for row in result.rows if row.type in types)


def test_alexnet_by_hand() -> None:
    result = summary(load(_corpus(ALEXNET)), batch=1)
    rows = _rows(result)
    # Convolutions: out H·W · C_out · (C_in/group) · k²; pool1 27², pool2 13², pool5 6².
    conv = {
        "conv1": 55 * 55 * 96 * 3 * 11 * 11,  # 105,415,200
        "conv2": 27 * 27 * 256 * (96 // 2) * 5 * 5,  # group 2: 223,948,800
        "conv3": 13 * 13 * 384 * 256 * 3 * 3,  # 149,520,384
        "conv4": 13 * 13 * 384 * (384 // 2) * 3 * 3,  # group 2: 112,140,288
        "conv5": 13 * 13 * 256 * (384 // 2) * 3 * 3,  # group 2: 74,760,192
        "fc6": 6 * 6 * 256 * 4096,
        "fc7": 4096 * 4096,
        "fc8": 4096 * 1000,
    }
    assert {name: rows[name].macs for name in conv} == conv
    assert sum(conv.values()) == 724_406_816  # the 0.72 G multiply-adds quoted for AlexNet
    # LRN across 5 channels: 5 MACs and 2 other operations per element.
    lrn = {"norm1": 55 * 55 * 96, "norm2": 27 * 27 * 256}
    assert {name: rows[name].macs for name in lrn} == {n: 5 * e for n, e in lrn.items()}
    assert result.totals.macs == sum(conv.values()) + 5 * sum(lrn.values())
    # Other operations: a bias add per output, a ReLU per element, 2 per LRN element, the
    # pooling windows (3x3), the softmax (3 per class); Dropout costs nothing in TEST.
    outputs = [55 * 55 * 96, 27 * 27 * 256, 13 * 13 * 384, 13 * 13 * 384, 13 * 13 * 256]
    outputs += [4096, 4096, 1000]
    relus = outputs[:7]
    pools = [27 * 27 * 96 * 9, 13 * 13 * 256 * 9, 6 * 6 * 256 * 9]
    ops = sum(outputs) + sum(relus) + 2 * sum(lrn.values()) + sum(pools) + 3 * 1000
    assert result.totals.flops == 2 * result.totals.macs + ops
    # Parameters: weights plus biases, the 60,965,224 of Caffe's AlexNet.
    params = 96 * 3 * 121 + 96 + 256 * 48 * 25 + 256 + 384 * 256 * 9 + 384
    params += 384 * 192 * 9 + 384 + 256 * 192 * 9 + 256
    params += 9216 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert result.totals.params == params == 60_965_224


def test_vgg16_by_hand() -> None:
    result = summary(load(_corpus(VGG16)), batch=1)
    rows = _rows(result)
    # (extent, C_in, C_out) of each 3x3 convolution, padded: output extent = input extent.
    convs = [
        (224, 3, 64), (224, 64, 64), (112, 64, 128), (112, 128, 128),
        (56, 128, 256), (56, 256, 256), (56, 256, 256),
        (28, 256, 512), (28, 512, 512), (28, 512, 512),
        (14, 512, 512), (14, 512, 512), (14, 512, 512),
    ]  # fmt: skip
    conv_macs = [h * h * c_out * c_in * 9 for h, c_in, c_out in convs]
    fc_macs = [7 * 7 * 512 * 4096, 4096 * 4096, 4096 * 1000]
    assert _macs_of(result, "Convolution") == sum(conv_macs) == 15_346_630_656
    assert _macs_of(result, "InnerProduct") == sum(fc_macs) == 123_633_664
    assert result.totals.macs == sum(conv_macs) + sum(fc_macs) == 15_470_264_320
    assert 15.4e9 < result.totals.macs < 15.6e9  # the published "15.5 G multiply-adds"
    assert rows["conv1_2"].macs == 224 * 224 * 64 * 64 * 9
    weights = sum(c_in * c_out * 9 + c_out for _, c_in, c_out in convs)
    weights += 25088 * 4096 + 4096 + 4096 * 4096 + 4096 + 4096 * 1000 + 1000
    assert result.totals.params == weights == 138_357_544


#: GoogLeNet's inception modules: extent, C_in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5,
#: pool projection (Szegedy et al. 2014, table 1).
INCEPTION = [
    ("3a", 28, 192, 64, 96, 128, 16, 32, 32),
    ("3b", 28, 256, 128, 128, 192, 32, 96, 64),
    ("4a", 14, 480, 192, 96, 208, 16, 48, 64),
    ("4b", 14, 512, 160, 112, 224, 24, 64, 64),
    ("4c", 14, 512, 128, 128, 256, 24, 64, 64),
    ("4d", 14, 512, 112, 144, 288, 32, 64, 64),
    ("4e", 14, 528, 256, 160, 320, 32, 128, 128),
    ("5a", 7, 832, 256, 160, 320, 32, 128, 128),
    ("5b", 7, 832, 384, 192, 384, 48, 128, 128),
]


def test_googlenet_by_hand() -> None:
    result = summary(load(_corpus(GOOGLENET)), batch=1)
    stem = 112 * 112 * 64 * 3 * 49 + 56 * 56 * 64 * 64 + 56 * 56 * 192 * 64 * 9
    modules = 0
    for _, h, c, n1, r3, n3, r5, n5, pp in INCEPTION:
        modules += h * h * (c * n1 + c * r3 + r3 * n3 * 9 + c * r5 + r5 * n5 * 25 + c * pp)
    assert _macs_of(result, "Convolution") == stem + modules
    assert _macs_of(result, "InnerProduct") == 1024 * 1000
    assert 1.5e9 < stem + modules + 1024 * 1000 < 1.6e9  # the quoted "1.5 G"
    lrn = 5 * (56 * 56 * 64 + 56 * 56 * 192)  # norm1 and norm2, across 5 channels
    assert result.totals.macs == stem + modules + 1024 * 1000 + lrn


def _resnet50_convs() -> list[tuple[int, int, int, int]]:
    """(output extent, C_in, C_out, kernel) of every convolution of ResNet-50 (He et al.;
    Caffe's model strides in the first 1x1 of a stage's first block)."""
    convs = [(112, 3, 64, 7)]
    c_in = 64
    for extent, width, blocks in ((56, 64, 3), (28, 128, 4), (14, 256, 6), (7, 512, 3)):
        convs.append((extent, c_in, 4 * width, 1))  # the projection shortcut (branch1)
        for _ in range(blocks):
            convs += [(extent, c_in, width, 1), (extent, width, width, 3)]
            convs.append((extent, width, 4 * width, 1))
            c_in = 4 * width
    return convs


def test_resnet50_by_hand() -> None:
    result = summary(load(_corpus(RESNET50)))
    convs = _resnet50_convs()
    assert len(convs) == 53
    conv_macs = sum(h * h * c_out * c_in * k * k for h, c_in, c_out, k in convs)
    assert _macs_of(result, "Convolution") == conv_macs == 3_855_925_248
    fc = 2048 * 1000
    # Every convolution is followed by BatchNorm and a Scale with a bias: one MAC per element.
    scale = sum(h * h * c_out for h, _, c_out, _ in convs)
    assert _macs_of(result, "Scale") == scale
    assert result.totals.macs == conv_macs + fc + scale
    assert 3.8e9 < conv_macs + fc < 4.0e9  # the published "3.9 G multiply-adds"
    # Parameters: weights (conv1 keeps its 64 biases, the others say bias_term: false),
    # BatchNorm mean, variance and its scale factor, Scale's multipliers and offsets, the
    # classifier.
    weights = sum(c_in * c_out * k * k for _, c_in, c_out, k in convs) + 64
    norm = sum(2 * c_out + 1 + 2 * c_out for _, _, c_out, _ in convs)
    assert result.totals.params == weights + norm + 2048 * 1000 + 1000


def _net(layers: str, shape: str = "dim: 2 dim: 3 dim: 8 dim: 8") -> str:
    data = 'layer { name: "data" type: "Input" top: "data" '
    return data + f"input_param {{ shape {{ {shape} }} }} }}\n" + layers


CONV = (
    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
    "convolution_param { num_output: 4 kernel_size: 3 pad: 1 group: 1 } }\n"
)


def test_memory_counts_an_in_place_layer_once() -> None:
    net = _net(
        CONV
        + 'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'
        + 'layer { name: "out" type: "ReLU" bottom: "conv" top: "out" }\n'
    )
    rows = _rows(summary(loads(net)))
    value = 2 * 4 * 8 * 8 * 4  # N·C·H·W values of 4 bytes
    assert (rows["conv"].memory, rows["relu"].memory, rows["out"].memory) == (value, 0, value)
    assert rows["relu"].in_place and not rows["out"].in_place
    assert rows["data"].memory == 2 * 3 * 8 * 8 * 4
    assert summary(loads(net)).totals.memory == 2 * 3 * 8 * 8 * 4 + 2 * value


def test_grouped_and_depthwise_convolutions_and_deconvolution() -> None:
    net = _net(
        'layer { name: "dw" type: "Convolution" bottom: "data" top: "dw" '
        "convolution_param { num_output: 6 kernel_size: 3 group: 3 bias_term: false } }\n"
        'layer { name: "up" type: "Deconvolution" bottom: "dw" top: "up" '
        "convolution_param { num_output: 4 kernel_size: 4 stride: 2 group: 2 } }\n"
    )
    rows = _rows(summary(loads(net)))
    # dw: 6x6 output, 3 groups of 1 input and 2 outputs: weight 6·1·3·3, no bias.
    assert rows["dw"].params == 6 * 1 * 9
    assert rows["dw"].macs == 2 * 6 * 6 * 6 * (3 // 3) * 9
    assert rows["dw"].flops == 2 * rows["dw"].macs
    # up: 2·(6-1)+4 = 14; each input element feeds (4/2)·4·4 outputs; bias per output.
    assert rows["up"].shapes == ([2, 4, 14, 14],)
    assert rows["up"].params == 6 * (4 // 2) * 16 + 4
    assert rows["up"].macs == 2 * 6 * 6 * 6 * (4 // 2) * 16
    assert rows["up"].flops == 2 * rows["up"].macs + 2 * 4 * 14 * 14


def test_a_missing_rule_says_unknown_and_names_the_type() -> None:
    net = _net(
        CONV
        + 'layer { name: "spp" type: "SPP" bottom: "conv" top: "spp" '
        + "spp_param { pyramid_height: 2 } }\n"
        + 'layer { name: "fc" type: "InnerProduct" bottom: "spp" top: "fc" '
        + "inner_product_param { num_output: 3 } }\n"
    )
    result = summary(loads(net))
    rows = _rows(result)
    assert rows["spp"].shapes == (None,) and rows["spp"].macs is None
    assert "shape: SPP layer 'spp' has no shape rule" in rows["spp"].unknown
    assert rows["fc"].params is None and rows["fc"].macs is None
    assert rows["fc"].unknown[0] == "shape: SPP layer 'spp' has no shape rule"
    assert result.totals.partial == ("spp", "fc")
    assert result.totals.macs == rows["conv"].macs


def test_input_shape_and_batch_override_the_declared_shape() -> None:
    doc = loads(_net(CONV))
    rows = _rows(summary(doc, input_shape=[1, 3, 16, 16], batch=5))
    assert rows["conv"].shapes == ([5, 4, 16, 16],)
    assert _rows(summary(doc, input_shape={"data": [1, 3, 4, 4]}))["conv"].shapes == ([1, 4, 4, 4],)
    with pytest.raises(InputError, match="'x' is not an input of the net"):
        summary(doc, input_shape={"x": [1, 3, 4, 4]})
    unpadded = loads(_net(CONV.replace(" pad: 1", "")))
    with pytest.raises(InputError, match="cannot infer the shape of layer 'conv'"):
        summary(unpadded, input_shape=[1, 3, 2, 2])  # a 3x3 kernel on 2x2


def test_weights_give_the_counts_and_a_mismatch_is_flagged() -> None:
    doc = loads(_net(CONV))
    fits = summary(doc, weights={"conv": [[4, 3, 3, 3], [4]]})
    assert fits.totals.mismatches == 0 and fits.totals.stored_params == 4 * 27 + 4
    shaped = summary(doc, weights={"conv": [[4, 3, 3, 3], [1, 1, 1, 4]]})  # not legacy 4-D
    assert shaped.totals.mismatches == 1
    wrong = summary(doc, weights={"conv": [[4, 3, 5, 5], [4]], "gone": [[1]]})
    row = _rows(wrong)["conv"]
    assert row.params == row.stored_params == 4 * 75 + 4
    assert row.mismatch == "the weights file holds 4x3x5x5, 4, the net declares 4x3x3x3, 4"
    assert wrong.notes == ["layers in the weights file that the net lacks: gone"]
    missing = summary(doc, weights={})
    assert _rows(missing)["conv"].mismatch is not None


def _fork_schema() -> Schema:
    """The built-in schema plus SSD's Permute and PriorBox parameters, and a convolution
    ``stride_h`` with a default (as the bundled Caffe's schema has)."""
    text = BUILTIN_PROTO.read_text().replace(
        "message LayerParameter {",
        "message LayerParameter {\n  optional PermuteParameter permute_param = 9001;\n"
        "  optional PriorBoxParameter prior_box_param = 9002;\n"
        "  optional NormalizeParameter norm_param = 9003;",
    )
    text = text.replace(
        "optional uint32 stride_h = 13;", "optional uint32 stride_h = 13 [default = 1];"
    )
    text = text.replace(
        "optional uint32 stride_w = 14;", "optional uint32 stride_w = 14 [default = 1];"
    )
    text += (
        "\nmessage PermuteParameter { repeated uint32 order = 1; }\n"
        "message PriorBoxParameter { repeated float min_size = 1; repeated float max_size = 2;"
        " repeated float aspect_ratio = 3; optional bool flip = 4 [default = true]; }\n"
        "message NormalizeParameter { optional bool across_spatial = 1 [default = true];"
        " optional bool channel_shared = 3 [default = true]; }\n"
    )
    return Schema(text, "fork.proto")


def test_fork_rules_and_defaults_a_fork_gives_the_h_w_fields() -> None:
    net = _net(
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" '
        "convolution_param { num_output: 4 kernel_size: 3 stride: 2 } }\n"
        'layer { name: "perm" type: "Permute" bottom: "conv" top: "perm" '
        "permute_param { order: 0 order: 2 order: 3 order: 1 } }\n"
        'layer { name: "prior" type: "PriorBox" bottom: "conv" bottom: "data" top: "prior" '
        "prior_box_param { min_size: 30 max_size: 60 aspect_ratio: 2 aspect_ratio: 3 } }\n"
        'layer { name: "norm" type: "Normalize" bottom: "conv" top: "norm" '
        "norm_param { across_spatial: false channel_shared: false } }\n",
        "dim: 1 dim: 3 dim: 9 dim: 9",
    )
    rows = _rows(summary(loads(net, schema=_fork_schema())))
    assert rows["conv"].shapes == ([1, 4, 4, 4],)  # stride 2, not stride_h's default of 1
    assert rows["perm"].shapes == ([1, 4, 4, 4],)
    # Ratios 1, 2, 1/2, 3, 1/3 for one min size, plus one max size: 6 priors of 4 numbers.
    assert rows["prior"].shapes == ([1, 2, 4 * 4 * 6 * 4],)
    # Normalize: a scale per channel, 1 MAC and 2 other operations per element; across
    # channels only, so each position keeps the convolution's receptive field.
    assert (rows["norm"].params, rows["norm"].macs) == (4, 4 * 4 * 4)
    assert rows["norm"].fields == rows["conv"].fields


def test_the_command_prints_a_table_json_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(_net(CONV + 'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'))
    assert main(["summary", str(path)]) == 0
    text = capsys.readouterr().out
    assert text.splitlines()[0].split() == [
        *("layer", "type", "output", "params", "MACs", "FLOPs", "memory", "field")
    ]
    conv_line = next(line for line in text.splitlines() if line.startswith("conv "))
    # 2·4·8·8 outputs · 3·3·3 MACs = 13,824; FLOPs 2·13,824 + 512 biases; 2,048 bytes.
    assert conv_line.split() == [
        *("conv", "Convolution", "2x4x8x8", "112", "13.8K", "28.2K", "2", "KiB", "3/1/-1")
    ]
    assert "FLOPs = 2 x MACs" in text
    assert main(["summary", str(path), "--json", "--batch", "3"]) == 0
    data = json.loads(capsys.readouterr().out)
    conv = data["layers"][1]
    assert conv["shapes"] == [[3, 4, 8, 8]] and conv["macs"] == 3 * 4 * 8 * 8 * 3 * 9
    assert conv["receptive_fields"] == [{"size": [3, 3], "stride": [1, 1], "offset": [-1, -1]}]
    assert main(["summary", str(path), "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[2].startswith(f"conv,Convolution,2x4x8x8,112,448,{2 * 4 * 64 * 27},")
    assert lines[-1].startswith("total,")
    with pytest.raises(SystemExit):
        main(["summary", str(path), "--input-shape", "1,3,4,4", "--input-shape", "1,3,4,4"])
    assert "name the inputs" in capsys.readouterr().err
    line = one_error_line(capsys, ["summary", str(path), "--input-shape", "x=1,3,4,4"])
    assert line.endswith("'x' is not an input of the net (data) (--input-shape)")
    line = one_error_line(capsys, ["summary", str(path), "--input", "conv"])
    assert line.endswith("'conv' is not an input of the net (a blob no layer computes) (--input)")


def test_the_command_exits_1_when_the_weights_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "net.prototxt"
    path.write_text(_net(CONV))
    model = builtin_schema().message_class("caffe.NetParameter")()
    layer = model.layer.add(name="conv", type="Convolution")
    for dims in ([4, 3, 5, 5], [4]):
        blob = layer.blobs.add(data=[0.5] * math.prod(dims))
        blob.shape.dim.extend(dims)
    weights = tmp_path / "net.caffemodel"
    weights.write_bytes(model.SerializeToString())
    legacy = builtin_schema().message_class("caffe.NetParameter")()
    old = legacy.layer.add(name="conv", type="Convolution")
    old.blobs.add(num=4, channels=3, height=3, width=3, data=[0.5] * 108)
    old.blobs.add(num=1, channels=1, height=1, width=4, data=[0.5] * 4)  # the bias, legacy 4-D
    (tmp_path / "legacy.caffemodel").write_bytes(legacy.SerializeToString())
    assert main(["summary", str(path), "--weights", str(tmp_path / "legacy.caffemodel")]) == 0
    assert "weights file: 112 parameters, 0 mismatch(es)" in capsys.readouterr().out
    assert main(["summary", str(path), "--weights", str(weights)]) == 1
    out = capsys.readouterr().out
    assert "! conv: the weights file holds 4x3x5x5, 4, the net declares 4x3x3x3, 4" in out
    assert "weights file: 304 parameters, 1 mismatch(es)" in out


def test_diff_reports_the_change_in_parameters_and_flops(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from protoedit.diff import diff_docs

    old = _net(CONV.replace(" pad: 1", ""), "dim: 1 dim: 3 dim: 8 dim: 8")
    old += (
        'layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc" '
        "inner_product_param { num_output: 2 } }\n"
    )
    new = old.replace("num_output: 4", "num_output: 8")
    change = diff_docs(loads(old), loads(new), costs=True).costs
    assert change is not None and not change.partial
    # conv: 4·3·9 + 4 = 112 -> 8·3·9 + 8 = 224; fc reads 4·6·6 = 144 -> 288 values: 2·144 + 2
    # = 290 -> 578.  FLOPs: conv 2·(6·6·4·27) + 144 biases = 7,920 -> 2·(6·6·8·27) + 288 =
    # 15,840; fc 2·(144·2) + 2 = 578 -> 2·(288·2) + 2 = 1,154.
    assert change.params == (112 + 290, 224 + 578)
    assert change.flops == (7_920 + 578, 15_840 + 1_154)
    assert [(c.layer, c.old_params, c.new_params) for c in change.layers] == [
        ("conv", 112, 224),
        ("fc", 290, 578),
    ]
    for name, text in (("old", old), ("new", new)):
        (tmp_path / f"{name}.prototxt").write_text(text)
    assert main(["diff", str(tmp_path / "old.prototxt"), str(tmp_path / "new.prototxt")]) == 1
    out = capsys.readouterr().out
    assert "cost: params 402 -> 802 (+400), FLOPs 8.5K -> 17K (+8.5K)" in out
    assert "    conv: params 112 -> 224 (+112), FLOPs 7.92K -> 15.8K (+7.92K)" in out


def test_draw_summary_puts_shapes_parameters_and_flops_on_the_nodes() -> None:
    from protoedit.draw import net_graph

    net = loads(_net(CONV + 'layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }\n'))
    node = net_graph(net, summary=True).nodes["conv"]
    # The folded ReLU adds its 2·4·8·8 = 512 FLOPs to the convolution's 28,160.
    assert node.params[-2:] == ["out 2x4x8x8", "params 112, FLOPs 28.7K"]
    assert "out 2x4x8x8" not in net_graph(net).nodes["conv"].params


def test_shared_parameters_count_once_and_a_scalar_is_one_value() -> None:
    shared = 'param { name: "w" } param { name: "b" } '
    conv = CONV.replace("convolution_param", shared + "convolution_param")
    net = _net(
        conv
        + conv.replace('name: "conv"', 'name: "twin"').replace('top: "conv"', 'top: "twin"')
        + 'layer { name: "sum" type: "Reduction" bottom: "twin" top: "sum" '
        + "reduction_param { axis: 0 } }\n"
    )
    result = summary(loads(net), weights={"conv": [[4, 3, 3, 3], [4]], "twin": [[4, 3, 3, 3], [4]]})
    rows = _rows(result)
    # Both layers use 4·3·3·3 + 4 = 112 parameters, which Caffe allocates once ("w", "b").
    assert (rows["conv"].params, rows["twin"].params) == (112, 112)
    assert (rows["conv"].shared, rows["twin"].shared) == (0, 112)
    assert result.totals.params == result.totals.stored_params == 112
    assert rows["sum"].shapes == ([],) and rows["sum"].memory == 4  # one float32


def test_every_summary_rule_in_the_catalogue_is_a_type_with_an_implemented_rule() -> None:
    from protoedit.net import layers

    formulas = {"conv", "deconv", "inner_product", "pool", "eltwise", "scale", "lrn"}
    formulas |= {"reduction", "free", "elementwise", "batchnorm", "axpy", "softmax", "normalize"}
    fields = {"window", "deconv", "point", "crop", "global", "axis", "lrn", "normalize"}
    for name, (formula, field) in layers._SUMMARY_RULES.items():
        assert name in layers.CATALOGUE, name
        assert formula is None or formula in formulas, (name, formula)
        assert field is None or field in fields, (name, field)
