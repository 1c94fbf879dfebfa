"""``protoedit export`` without Caffe: what the model holds (names, metadata, opset, dynamic
batch, ONNX's own checks), the calibrated random weights, and the refusals, each naming the
layer.  The comparisons with Caffe are in ``test_export_*_caffe.py``."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from protoedit import load, loads
from protoedit.export import ExportError, export, to_onnx

from .helpers import FIXTURES, one_error_line

SMALL = """name: "small"
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 9 dim: 9 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "drop" type: "Dropout" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
  inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }
"""


def _values(model: onnx.ModelProto, shape: list[int]) -> dict[str, np.ndarray]:
    """Every value the model computes on seeded input (all nodes' outputs made outputs)."""
    extended = onnx.ModelProto()
    extended.CopyFrom(model)
    names = [o for n in extended.graph.node for o in n.output]
    have = {o.name for o in extended.graph.output}
    for name in names:
        if name not in have:
            extended.graph.output.append(onnx.ValueInfoProto(name=name))
    session = onnxruntime.InferenceSession(extended.SerializeToString())
    data = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    return dict(zip(names, session.run(names, {"data": data}), strict=True))


def test_the_model_passes_onnx_checks_and_names_values_after_caffe_blobs() -> None:
    model = to_onnx(loads(SMALL))
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, strict_mode=True)
    outputs = [n.output[0] for n in model.graph.node]
    # conv1 as its layer wrote it, after bn1; the last value (after relu1, and Dropout's
    # identity) is conv1 itself, as in Caffe's net.blobs.
    assert outputs == ["conv1@conv1", "conv1@bn1", "conv1", "fc/flat", "fc", "prob"]
    assert [o.name for o in model.graph.output] == ["prob"]
    batch = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch.dim_param == "N"
    assert model.opset_import[0].version == 17


def test_metadata_records_sources_version_and_mapping(tmp_path: Path) -> None:
    path = tmp_path / "small.prototxt"
    path.write_text(SMALL)
    model = to_onnx(load(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["protoedit.source.net.sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert meta["protoedit.version"]
    assert "random" in meta["protoedit.source.weights"]
    mapping = json.loads(meta["protoedit.layer_mapping"])
    assert mapping["fc"] == ["Flatten", "Gemm"]
    assert mapping["drop"] == []


def test_random_weights_keep_a_unit_spread_and_batch_norm_factors_are_not_one() -> None:
    exported = export(load(FIXTURES / "export" / "densenet.prototxt"))
    values = _values(exported.model, [1, 3, 16, 16])
    for name in ("block1_1/conv", "block2_3/conv", "trans1/conv", "fc"):
        assert 0.5 < float(np.std(values[name])) < 2.0, name
    factors = [blobs[2][0] for name, blobs in exported.weights.items() if name.endswith("/bn")]
    assert factors and all(abs(f - 1) > 0.01 for f in factors)
    prob = values["prob"]
    assert prob.max() < 0.99  # the softmax does not saturate


def test_given_weights_are_used_and_checked_by_name() -> None:
    doc = loads(SMALL)
    random = export(doc).weights
    model = to_onnx(doc, random)
    weight = next(t for t in model.graph.initializer if t.name == "conv1/weight")
    assert np.array_equal(onnx.numpy_helper.to_array(weight), random["conv1"][0])
    wrong = {**random, "fc": [random["fc"][0][:, :-1], random["fc"][1]]}
    with pytest.raises(ExportError, match=r"layer 'fc' \(InnerProduct\): weights blob 0 has shape"):
        to_onnx(doc, wrong)
    missing = {k: v for k, v in random.items() if k != "bn1"}
    with pytest.raises(ExportError, match=r"layer 'bn1' .* no blobs for this layer"):
        to_onnx(doc, missing)


def test_weights_from_a_caffemodel(tmp_path: Path) -> None:
    from protoedit.weights import Weights, save
    from protoedit.weights import load as load_weights

    doc = loads(SMALL)
    arrays = export(doc).weights
    weights = Weights.from_arrays(arrays)
    save(weights, tmp_path / "small.caffemodel")
    model = to_onnx(doc, tmp_path / "small.caffemodel")
    bias = next(t for t in model.graph.initializer if t.name == "fc/bias")
    assert np.array_equal(onnx.numpy_helper.to_array(bias), arrays["fc"][1])
    assert load_weights(tmp_path / "small.caffemodel")["fc"].blobs[1].shape == (3,)


def test_opset_input_shape_and_until() -> None:
    doc = loads(SMALL)
    model = to_onnx(doc, opset=18, input_shape=[2, 3, 11, 11], until="fc")
    assert model.opset_import[0].version == 18
    dims = [d.dim_value or d.dim_param for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 3, 11, 11]
    assert [o.name for o in model.graph.output] == ["conv1"]
    with pytest.raises(ExportError, match="opset 12 is not supported"):
        to_onnx(doc, opset=12)
    with pytest.raises(ExportError, match="no layer named 'fc7'"):
        to_onnx(doc, until="fc7")


@pytest.mark.parametrize(
    ("layer", "message"),
    [
        (
            'layer { name: "py" type: "Python" bottom: "data" top: "py" '
            'python_param { module: "m" layer: "L" } }',
            r"layer 'py' \(Python\): a Python layer runs user code",
        ),
        (
            'layer { name: "ax" type: "Axpy" bottom: "data" bottom: "data" top: "ax" }',
            r"layer 'ax' \(Axpy\): no ONNX mapping",
        ),
        (
            'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "data" top: "loss" }',
            r"layer 'loss' \(SoftmaxWithLoss\): compares with labels",
        ),
        (
            'layer { name: "p" type: "Pooling" bottom: "data" top: "p" '
            "pooling_param { pool: STOCHASTIC kernel_size: 2 } }",
            r"layer 'p' \(Pooling\): STOCHASTIC pooling",
        ),
        (
            'layer { name: "lrn" type: "LRN" bottom: "data" top: "lrn" '
            "lrn_param { local_size: 4 } }",
            r"layer 'lrn' \(LRN\): LRN needs an odd local_size",
        ),
    ],
)
def test_refusals_name_the_layer_its_type_and_why(layer: str, message: str) -> None:
    head = SMALL.split("\n")[:3]
    with pytest.raises(ExportError, match=message) as caught:
        to_onnx(loads("\n".join([*head, layer, ""]), path="net.prototxt"))
    assert str(caught.value).startswith("net.prototxt:4:1: ")


def test_a_data_layer_is_refused_with_the_rewrite_to_run(tmp_path: Path) -> None:
    text = 'layer { name: "d" type: "Data" top: "data" data_param { source: "x" batch_size: 1 } }\n'
    with pytest.raises(ExportError, match=r"export the deploy net \(protoedit to-deploy\)"):
        to_onnx(loads(text))


def test_a_legacy_header_net_is_upgraded_first() -> None:
    text = 'input: "data"\ninput_dim: 1\ninput_dim: 2\ninput_dim: 5\ninput_dim: 5\n' + (
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n'
    )
    model = to_onnx(loads(text))
    assert [i.name for i in model.graph.input] == ["data"]
    assert [n.op_type for n in model.graph.node] == ["Relu"]


def test_cli_writes_the_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from protoedit.cli import main

    net = tmp_path / "small.prototxt"
    net.write_text(SMALL)
    out = tmp_path / "small.onnx"
    assert main(["export", str(net), "-o", str(out), "--input-shape", "1,3,12,12"]) == 0
    model = onnx.load(out)
    assert model.graph.input[0].type.tensor_type.shape.dim[2].dim_value == 12
    assert "wrote" in capsys.readouterr().err


def test_cli_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = tmp_path / "small.prototxt"
    net.write_text(SMALL)
    assert "pass --check" in one_error_line(capsys, ["export", str(net)])
    assert "--json only apply with --check" in one_error_line(
        capsys, ["export", str(net), "-o", str(tmp_path / "m.onnx"), "--json"]
    )
    assert "--mean only apply with --image" in one_error_line(
        capsys, ["export", str(net), "--check", "--mean", "1,2,3"]
    )
    bad = tmp_path / "bad.prototxt"
    bad.write_text(SMALL + 'layer { name: "ax" type: "Axpy" bottom: "prob" top: "ax" }\n')
    line = one_error_line(capsys, ["export", str(bad), "-o", str(tmp_path / "m.onnx")])
    assert "bad.prototxt:12:1: layer 'ax' (Axpy): no ONNX mapping" in line
    assert not (tmp_path / "m.onnx").exists()


def _fork_schema(tmp_path: Path) -> Path:
    """The built-in caffe.proto plus the parameters of ShuffleNet's ShuffleChannel and
    DeepLab's Interp (fork types the bundled Caffe lacks)."""
    text = (
        Path(__file__).resolve().parent.parent / "protoedit" / "schema" / "caffe.proto"
    ).read_text()
    text = text.replace(
        "message LayerParameter {",
        "message LayerParameter {\n"
        "  optional ShuffleChannelParameter shuffle_channel_param = 9001;\n"
        "  optional InterpParameter interp_param = 9002;",
        1,
    )
    text += (
        "\nmessage ShuffleChannelParameter { optional uint32 group = 1 [default = 1]; }\n"
        "message InterpParameter { optional int32 height = 1; optional int32 width = 2;\n"
        "  optional int32 zoom_factor = 3 [default = 1];\n"
        "  optional int32 shrink_factor = 4 [default = 1];\n"
        "  optional int32 pad_beg = 5; optional int32 pad_end = 6; }\n"
    )
    path = tmp_path / "fork.proto"
    path.write_text(text)
    return path


FORK_NET = """
layer { name: "data" type: "Input" top: "data"
  input_param { shape { dim: 2 dim: 6 dim: 3 dim: 4 } } }
layer { name: "shuffle" type: "ShuffleChannel" bottom: "data" top: "shuffle"
  shuffle_channel_param { group: 2 } }
layer { name: "dw" type: "ConvolutionDepthwise" bottom: "data" top: "dw"
  convolution_param { num_output: 6 kernel_size: 3 pad: 1 bias_term: false } }
layer { name: "interp" type: "Interp" bottom: "data" top: "interp" interp_param { zoom_factor: 2 } }
"""


def test_fork_types_caffe_here_lacks_match_their_definitions(tmp_path: Path) -> None:
    doc = loads(FORK_NET, _fork_schema(tmp_path))
    exported = export(doc)
    values = _values(exported.model, [2, 6, 3, 4])
    data = np.random.default_rng(5).standard_normal([2, 6, 3, 4]).astype(np.float32)
    # ShuffleChannel: channel k of group g goes to k * groups + g
    assert np.array_equal(
        values["shuffle"], data.reshape(2, 2, 3, 3, 4).transpose(0, 2, 1, 3, 4).reshape(2, 6, 3, 4)
    )
    # ConvolutionDepthwise: one 3x3 filter per channel whatever group says
    weight = exported.weights["dw"][0]
    assert weight.shape == (6, 1, 3, 3)
    padded = np.pad(data, [(0, 0), (0, 0), (1, 1), (1, 1)])
    expected = np.zeros(data.shape)
    bound = np.zeros(data.shape)  # 9 products summed: 9 roundings of at most eps * sum |terms|
    for y in range(3):
        for x in range(4):
            window = padded[:, :, y : y + 3, x : x + 3].astype(np.float64)
            expected[:, :, y, x] = np.einsum("ncij,cij->nc", window, weight[:, 0])
            bound[:, :, y, x] = np.einsum("ncij,cij->nc", abs(window), abs(weight[:, 0]))
    eps = float(np.finfo(np.float32).eps)
    assert np.all(np.abs(values["dw"] - expected) <= 9 * eps * bound)
    # Interp: zoom 2 -> (H - 1) * 2 + 1, corners aligned (the corners are the input's)
    assert values["interp"].shape == (2, 6, 5, 7)
    assert np.array_equal(values["interp"][:, :, ::2, ::2], data)
