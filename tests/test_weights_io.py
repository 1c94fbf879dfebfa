"""``.caffemodel`` reading and writing without Caffe: round trips byte for byte, V1 and
legacy shapes, ``double_data``, fork fields kept, edits written as Caffe writes them, and
damaged files as one located error."""

from __future__ import annotations

import filecmp
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protoedit.schema import BUILTIN_PROTO, Schema, builtin_schema
from protoedit.weights import (
    LayerWeights,
    Weights,
    WeightsError,
    WeightsWarning,
    caffemodel,
    load,
    save,
)
from tests.assets.digits import TrainedDigits
from tests.assets.models import CachedModel


def _message(schema: Schema | None = None) -> Any:
    return (schema or builtin_schema()).message_class("NetParameter")()


def _write(path: Path, message: Any) -> Path:
    path.write_bytes(message.SerializeToString())
    return path


def _conv_model() -> Any:
    """A V2 model as Caffe writes it: a conv with weight and bias, a ReLU without blobs."""
    net = _message()
    net.name = "tiny"
    conv = net.layer.add(name="conv1", type="Convolution", bottom=["data"], top=["conv1"])
    conv.convolution_param.num_output = 2
    conv.convolution_param.kernel_size.append(3)
    weight = conv.blobs.add()
    weight.shape.dim.extend([2, 1, 3, 3])
    weight.data.extend(np.arange(18, dtype=np.float32) / 7)
    bias = conv.blobs.add()
    bias.shape.dim.extend([2])
    bias.data.extend([0.5, -0.25])
    net.layer.add(name="relu1", type="ReLU", bottom=["conv1"], top=["conv1"])
    return net


def _round_trip(source: Path, tmp_path: Path) -> Weights:
    weights = load(source)
    out = tmp_path / f"again-{source.name}"
    assert save(weights, out) == [out]
    assert filecmp.cmp(source, out, shallow=False)
    return weights


def test_v2_model_reads_as_arrays_and_round_trips(tmp_path: Path) -> None:
    weights = _round_trip(_write(tmp_path / "tiny.caffemodel", _conv_model()), tmp_path)
    assert list(weights) == ["conv1", "relu1"]
    conv = weights["conv1"]
    assert (conv.name, conv.type, conv.v1) == ("conv1", "Convolution", False)
    assert [b.dtype for b in conv.blobs] == [np.float32, np.float32]
    np.testing.assert_array_equal(
        conv.blobs[0], np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3) / 7
    )
    assert weights["relu1"].blobs == []
    assert list(weights.named()) == ["conv1/weight", "conv1/bias"]
    assert conv.message().convolution_param.num_output == 2


def test_v1_layers_with_legacy_shapes(tmp_path: Path) -> None:
    net = _message()
    layer = net.layers.add(name="ip", type=14)  # INNER_PRODUCT
    for shape in ((1, 1, 3, 4), (1, 1, 1, 3)):
        blob = layer.blobs.add()
        blob.num, blob.channels, blob.height, blob.width = shape
        blob.data.extend(np.ones(int(np.prod(shape))))
    weights = _round_trip(_write(tmp_path / "v1.caffemodel", net), tmp_path)
    ip = weights["ip"]
    assert (ip.type, ip.v1, ip.catalogue_type) == ("INNER_PRODUCT", True, "InnerProduct")
    assert [b.shape for b in ip.blobs] == [(1, 1, 3, 4), (1, 1, 1, 3)]
    assert ip.shapes() == [((1, 1, 3, 4), True), ((1, 1, 1, 3), True)]
    assert list(weights.named()) == ["ip/weight", "ip/bias"]


def test_v0_models_are_refused(tmp_path: Path) -> None:
    net = _message()
    old = net.layers.add().layer
    old.name, old.type = "conv1", "conv"
    old.blobs.add(num=1, channels=1, height=1, width=2).data.extend([1, 2])
    with pytest.raises(WeightsError, match=r"a V0 model .* upgrade_net_proto_binary"):
        load(_write(tmp_path / "v0.caffemodel", net))


def test_double_data_stays_double(tmp_path: Path) -> None:
    net = _message()
    blob = net.layer.add(name="scale", type="Scale").blobs.add()
    blob.shape.dim.append(3)
    blob.double_data.extend([1.0 + 2**-40, 2.0, 3.0])  # not representable in float32
    weights = _round_trip(_write(tmp_path / "double.caffemodel", net), tmp_path)
    values = weights["scale"].blobs[0]
    assert values.dtype == np.float64 and values[0] == 1.0 + 2**-40
    weights["scale"].blobs[0] = values * 2
    save(weights, tmp_path / "changed.caffemodel")
    back = _message()
    back.ParseFromString((tmp_path / "changed.caffemodel").read_bytes())
    assert list(back.layer[0].blobs[0].double_data) == [2.0 + 2**-39, 4.0, 6.0]
    assert not len(back.layer[0].blobs[0].data)


_FORK = """
message ForkParameter { optional float alpha = 1; }
"""


def _fork_schema(tmp_path: Path) -> Path:
    """The built-in schema plus a fork's layer parameter, blob field and net field."""
    text = BUILTIN_PROTO.read_text()
    text = text.replace(
        "message LayerParameter {",
        "message LayerParameter {\n  optional ForkParameter fork_param = 9001;",
        1,
    )
    text = text.replace(
        "message BlobProto {", "message BlobProto {\n  optional string fork_note = 900;", 1
    )
    text = text.replace(
        "message NetParameter {", "message NetParameter {\n  optional int32 fork_version = 4242;", 1
    )
    path = tmp_path / "fork.proto"
    path.write_text(text + _FORK)
    return path


def test_fork_fields_are_read_with_the_fork_schema_and_never_dropped(tmp_path: Path) -> None:
    proto = _fork_schema(tmp_path)
    fork = Schema.from_file(proto)
    net = _message(fork)
    net.fork_version = 7
    layer = net.layer.add(name="conv1", type="Convolution")
    layer.fork_param.alpha = 2.0
    blob = layer.blobs.add(fork_note="calibrated")
    blob.shape.dim.extend([2, 2])
    blob.data.extend([1, 2, 3, 4])
    source = _write(tmp_path / "fork.caffemodel", net)
    with_fork = _round_trip(source, tmp_path)  # the built-in schema keeps them as unknown
    assert with_fork["conv1"].blobs[0].shape == (2, 2)
    weights = load(source, schema=proto)
    assert weights["conv1"].message().fork_param.alpha == 2.0
    out = tmp_path / "fork-out.caffemodel"
    save(weights, out)
    assert out.read_bytes() == source.read_bytes()
    # Edited: renamed, values reshaped: the fork fields still travel.
    for edited in (with_fork, weights):
        edited.rename("conv1", "conv_a")
        edited["conv_a"].blobs[0] = edited["conv_a"].blobs[0].reshape(4)
        save(edited, out)
        back = _message(fork)
        back.ParseFromString(out.read_bytes())
        assert (back.fork_version, back.layer[0].name) == (7, "conv_a")
        assert back.layer[0].fork_param.alpha == 2.0
        assert back.layer[0].blobs[0].fork_note == "calibrated"
        assert list(back.layer[0].blobs[0].shape.dim) == [4]


def test_edits_are_written_as_caffe_writes_them(tmp_path: Path) -> None:
    net = _message()
    layer = net.layers.add(name="ip", type=14)
    blob = layer.blobs.add()
    blob.num, blob.channels, blob.height, blob.width = 1, 1, 2, 3
    blob.data.extend(range(6))
    blob.diff.extend(range(6))
    weights = load(_write(tmp_path / "legacy.caffemodel", net))
    weights["ip"].blobs[0] = weights["ip"].blobs[0].reshape(2, 3)  # now a modern shape
    out = tmp_path / "out.caffemodel"
    save(weights, out)
    expected = _message()
    fresh = expected.layers.add(name="ip", type=14).blobs.add()
    fresh.shape.dim.extend([2, 3])
    fresh.data.extend(range(6))  # the stale diff is not written
    assert out.read_bytes() == expected.SerializeToString()


def test_weights_built_in_memory_are_what_caffe_would_write(tmp_path: Path) -> None:
    weights = Weights.from_arrays(
        {"conv1": [np.ones((2, 1, 3, 3)), np.zeros(2)], "fc": [np.full((4, 2), 0.5)]},
        types={"conv1": "Convolution"},
    )
    assert [b.dtype for b in weights["conv1"].blobs] == [np.float32, np.float32]
    out = tmp_path / "made.caffemodel"
    save(weights, out)
    expected = _message()
    conv = expected.layer.add(name="conv1", type="Convolution")
    for shape, value in (((2, 1, 3, 3), 1.0), ((2,), 0.0)):
        blob = conv.blobs.add()
        blob.shape.dim.extend(shape)
        blob.data.extend([value] * int(np.prod(shape)))
    fc = expected.layer.add(name="fc").blobs.add()
    fc.shape.dim.extend([4, 2])
    fc.data.extend([0.5] * 8)
    assert out.read_bytes() == expected.SerializeToString()
    assert list(load(out).named()) == ["conv1/weight", "conv1/bias", "fc/blob0"]


def test_mapping_edits(tmp_path: Path) -> None:
    weights = load(_write(tmp_path / "tiny.caffemodel", _conv_model()))
    del weights["relu1"]
    weights["fc"] = LayerWeights("ignored", "InnerProduct", [np.ones((3, 2))])
    assert list(weights) == ["conv1", "fc"] and weights["fc"].name == "fc"
    with pytest.raises(WeightsError, match="'fc' is stored already"):
        weights.rename("conv1", "fc")
    out = tmp_path / "out.caffemodel"
    save(weights, out)
    back = load(out)
    assert [(layer.name, layer.type) for layer in back.layers] == [
        ("conv1", "Convolution"),
        ("fc", "InnerProduct"),
    ]
    assert back["conv1"].message().convolution_param.num_output == 2  # parameters kept


def test_duplicate_stored_names_are_kept_and_named(tmp_path: Path) -> None:
    net = _conv_model()
    net.layer.append(net.layer[0])
    source = _write(tmp_path / "dup.caffemodel", net)
    weights = _round_trip(source, tmp_path)
    assert weights.duplicates == ["conv1"] and len(weights.layers) == 3 and len(weights) == 2
    assert weights["conv1"] is weights.layers[-1]  # the one Caffe keeps
    with pytest.raises(WeightsError, match="stored twice: 'conv1'"):
        weights.named()


def test_roles_come_from_the_net_when_given(tmp_path: Path) -> None:
    from protoedit import loads

    weights = Weights.from_arrays(
        {"bn": [np.zeros(3), np.ones(3), np.ones(1)], "ip": [np.ones((2, 3))]}
    )
    net = loads(
        'layer { name: "ip" type: "InnerProduct" '
        "inner_product_param { num_output: 2 bias_term: false } }\n"
        'layer { name: "bn" type: "BatchNorm" }\n'
    )
    assert list(weights.named(net)) == ["bn/mean", "bn/variance", "bn/scale_factor", "ip/weight"]
    assert list(weights.named()) == ["bn/blob0", "bn/blob1", "bn/blob2", "ip/blob0"]


# -- bad input ------------------------------------------------------------------------------


def test_truncated_and_corrupted_files_are_one_located_error(tmp_path: Path) -> None:
    data = _conv_model().SerializeToString()
    path = tmp_path / "bad.caffemodel"
    for cut in (1, 5, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(WeightsError) as error:
            load(path)
        assert str(error.value).startswith(f"{path}: not a Caffe weights file")
        assert error.value.__cause__ is None and error.value.__suppress_context__
    corrupt = bytearray(data)
    corrupt[data.index(b"\x3a\x06")] = 0x3F  # the bias's shape field becomes wire type 7
    path.write_bytes(bytes(corrupt))
    with pytest.raises(WeightsError, match=r"wire type 7 .*\(byte \d+ of \d+\)"):
        load(path)
    for name, content, message in (
        ("empty", b"", "holds no layers"),
        ("text", b'name: "x"\n', "not a Caffe weights file"),
    ):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(WeightsError, match=message):
            load(tmp_path / name)
    with pytest.raises(WeightsError, match="cannot read weights file: No such file"):
        load(tmp_path / "absent.caffemodel")
    with pytest.raises(WeightsError, match="not a regular file"):
        load(tmp_path)


def test_values_that_do_not_fill_the_shape_are_refused(tmp_path: Path) -> None:
    net = _conv_model()
    del net.layer[0].blobs[1].data[-1]
    with pytest.raises(
        WeightsError, match="layer 'conv1' blob 1 holds 1 values but its shape 2 says 2"
    ):
        load(_write(tmp_path / "short.caffemodel", net))


def test_lengths_past_2_gib_are_not_cut(tmp_path: Path) -> None:
    """A field claiming 3 GiB is read as 3 GiB (and found missing), not wrapped at 32 bits."""
    from protoedit.weights import wire

    claim = 3 * 2**30
    path = tmp_path / "huge.caffemodel"
    path.write_bytes(wire.length_prefix(100, claim) + b"\x0a\x01x")
    with pytest.raises(WeightsError, match=f"field 100 claims {claim} bytes but only 3 remain"):
        load(path)


def test_values_are_read_in_pieces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Large blobs are read in several calls (the kernel caps one read near 2 GiB)."""
    source = _write(tmp_path / "tiny.caffemodel", _conv_model())
    whole = load(source)
    monkeypatch.setattr(caffemodel, "READ_CHUNK", 7)
    pieces = load(source)
    np.testing.assert_array_equal(pieces["conv1"].blobs[0], whole["conv1"].blobs[0])


def test_writing_over_2_gib_warns_that_caffe_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weights = load(_write(tmp_path / "tiny.caffemodel", _conv_model()))
    monkeypatch.setattr(caffemodel, "MAX_MESSAGE", 64)  # as save reads it
    with pytest.warns(WeightsWarning, match="over the 2 GiB .* Caffe will refuse this file"):
        save(weights, tmp_path / "big.caffemodel")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(caffemodel, "MAX_MESSAGE", 2**31 - 1)
        save(weights, tmp_path / "small.caffemodel")


def test_shapes_only_reading_refuses_to_save(tmp_path: Path) -> None:
    source = _write(tmp_path / "tiny.caffemodel", _conv_model())
    weights = load(source, values=False)
    assert weights["conv1"].shapes() == [((2, 1, 3, 3), False), ((2,), False)]
    with pytest.raises(WeightsError, match="without their values"):
        save(weights, tmp_path / "out.caffemodel")


# -- real models ----------------------------------------------------------------------------


@pytest.mark.caffe
def test_trained_digits_round_trip(digits_model: TrainedDigits, tmp_path: Path) -> None:
    weights = _round_trip(digits_model.weights, tmp_path)
    assert list(weights.named()) == [
        f"{layer}/{role}"
        for layer in ("conv1", "conv2", "ip1", "ip2")
        for role in ("weight", "bias")
    ]


@pytest.mark.caffe
def test_open_nsfw_round_trip(nsfw_model: CachedModel, tmp_path: Path) -> None:
    weights = _round_trip(nsfw_model.weights, tmp_path)
    named = weights.named()
    assert named["bn_1/scale_factor"].shape == (1,)
    assert sum(a.size for a in named.values()) == weights.count > 5_000_000


@pytest.mark.slow
def test_vgg_sized_random_model_round_trip(tmp_path: Path) -> None:
    from tests.assets.vgg import vgg19_shapes, write_random_vgg19

    source = write_random_vgg19(tmp_path / "vgg19.caffemodel")
    assert source.stat().st_size > 548 * 2**20
    weights = _round_trip(source, tmp_path)
    assert {
        name: [b.shape for b in layer.blobs] for name, layer in weights.items()
    } == vgg19_shapes()
