"""``protoedit grad``: the table and the .npz; bad input gives one line and exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from protoedit.cli import main
from protoedit.explain import gradients
from protoedit.rewrites import LossHead
from protoedit.schema import builtin_schema

from .assets.digits import FIXTURES, TrainedDigits
from .helpers import one_error_line

DEPLOY = FIXTURES / "deploy.prototxt"


@pytest.fixture
def digit_npy(tmp_path: Path) -> Path:
    path = tmp_path / "digit.npy"
    np.save(path, np.zeros((1, 1, 8, 8), dtype=np.float32))
    return path


def test_missing_weights_file(capsys: pytest.CaptureFixture[str], digit_npy: Path) -> None:
    argv = ["grad", str(DEPLOY), "--weights", "/nonexistent/w.caffemodel"]
    line = one_error_line(capsys, [*argv, "--input", str(digit_npy), "--target", "ip2"])
    assert "/nonexistent/w.caffemodel: cannot read weights file" in line


def test_unreadable_weights_file(
    capsys: pytest.CaptureFixture[str], digit_npy: Path, tmp_path: Path
) -> None:
    junk = tmp_path / "junk.caffemodel"
    junk.write_bytes(b"\xff\xfe" * 20)
    argv = ["grad", str(DEPLOY), "--weights", str(junk), "--input", str(digit_npy)]
    line = one_error_line(capsys, [*argv, "--target", "ip2", "--class", "1"])
    assert f"{junk}: not a Caffe weights file" in line


def test_undecodable_image(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    image = tmp_path / "photo.jpg"
    image.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(b"")
    argv = ["grad", str(DEPLOY), "--weights", str(weights), "--input", str(image)]
    line = one_error_line(capsys, [*argv, "--target", "conv1"])
    assert f"{image}: cannot decode image" in line


def test_target_without_backward(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    text = DEPLOY.read_text() + (
        'layer {\n  name: "argmax"\n  type: "ArgMax"\n  bottom: "prob"\n  top: "argmax"\n}\n'
    )
    net = tmp_path / "with_argmax.prototxt"
    net.write_text(text)
    argv = ["grad", str(net), "--weights", "w", "--input", "x.npy", "--target", "argmax"]
    line = one_error_line(capsys, argv)
    assert "layer 'argmax' (ArgMax) cannot run backward" in line
    assert f"{net}:" in line


def test_loss_must_be_a_loss(capsys: pytest.CaptureFixture[str], digit_npy: Path) -> None:
    argv = ["grad", str(FIXTURES / "train.prototxt"), "--weights", "w"]
    argv += ["--input", f"data={digit_npy}", "--input", f"label={digit_npy}"]
    line = one_error_line(capsys, [*argv, "--loss", "ip2"])
    assert "'ip2' is not a loss" in line


def test_loss_fed_by_a_data_layer(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    net = tmp_path / "lmdb.prototxt"
    net.write_text(
        'layer { name: "mnist" type: "Data" top: "data" top: "label"\n'
        '  data_param { source: "train_lmdb" batch_size: 4 backend: LMDB } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
        "  inner_product_param { num_output: 10 } }\n"
        'layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }\n'
    )
    argv = ["grad", str(net), "--weights", "w", "--input", "x.npy", "--loss", "loss"]
    line = one_error_line(capsys, argv)
    assert f"{net}:1:1: layer 'mnist' (Data) reads its data from files" in line


def test_several_inputs_need_names(capsys: pytest.CaptureFixture[str], digit_npy: Path) -> None:
    argv = ["grad", str(FIXTURES / "train.prototxt"), "--weights", "w"]
    assert main([*argv, "--input", str(digit_npy), "--loss", "loss"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "protoedit: error: the net has several input blobs (data, label): name each one",
        "hint: pass --input BLOB=FILE",  # from the error's `needs`, in this command's terms
    ]


def test_input_of_the_wrong_shape(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    np.save(tmp_path / "big.npy", np.zeros((1, 1, 9, 9), dtype=np.float32))
    argv = ["grad", str(DEPLOY), "--weights", "w", "--input", str(tmp_path / "big.npy")]
    line = one_error_line(capsys, [*argv, "--target", "ip2"])
    assert "input 'data' has shape [1, 1, 9, 9]; the net expects N x 1 x 8 x 8" in line


@pytest.mark.caffe
def test_weights_that_do_not_fit_name_layer_and_shapes(
    capsys: pytest.CaptureFixture[str], digit_npy: Path, tmp_path: Path
) -> None:
    model = builtin_schema().message_class("NetParameter")()
    conv = model.layer.add(name="conv1", type="Convolution")
    for shape in ([8, 1, 5, 5], [8]):
        blob = conv.blobs.add()
        blob.shape.dim.extend(shape)
        blob.data.extend([0.0] * int(np.prod(shape)))
    weights = tmp_path / "lenet_like.caffemodel"
    weights.write_bytes(model.SerializeToString())
    argv = ["grad", str(DEPLOY), "--weights", str(weights), "--input", str(digit_npy)]
    line = one_error_line(capsys, [*argv, "--target", "ip2"])
    assert f"{weights}: the weights do not fit the net" in line
    assert "layer 'conv1' weight: the net expects 16 x 1 x 3 x 3" in line
    assert "the weights file has 8 x 1 x 5 x 5" in line


@pytest.mark.caffe
def test_caffe_abort_is_one_line(
    capsys: pytest.CaptureFixture[str], digit_npy: Path, digits_model: TrainedDigits, tmp_path: Path
) -> None:
    net = tmp_path / "typo.prototxt"
    net.write_text(DEPLOY.read_text().replace('type: "Pooling"', 'type: "Poolling"', 1))
    argv = ["grad", str(net), "--weights", str(digits_model.weights), "--input", str(digit_npy)]
    line = one_error_line(capsys, [*argv, "--target", "ip2"])
    assert "Caffe aborted during load" in line and "Poolling" in line


@pytest.mark.caffe
def test_grad_writes_every_gradient_and_prints_the_table(
    capsys: pytest.CaptureFixture[str], digits_model: TrainedDigits, tmp_path: Path
) -> None:
    split = np.load(digits_model.split)
    levels = np.rint(split["images"][0, 0] * 16).astype(np.uint8)  # the digits' own 0-16 levels
    image = tmp_path / "digit.png"
    Image.fromarray(levels).save(image)
    out = tmp_path / "grads.npz"
    argv = ["grad", str(digits_model.deploy), "--weights", str(digits_model.weights)]
    argv += ["--input", str(image), "--scale", "0.0625", "--target", "ip2", "--class", "4"]
    assert main([*argv, "-o", str(out)]) == 0
    table = capsys.readouterr().out.splitlines()
    saved = np.load(out)
    expected = gradients(
        digits_model.deploy,
        weights=digits_model.weights,
        inputs=split["images"][:1],
        target="ip2",
        head=LossHead("logit", 4),
    )
    assert sorted(saved.files) == sorted(expected.flat())
    for key, grad in expected.flat().items():
        np.testing.assert_array_equal(saved[key], grad)  # the PNG decodes to the same blob
    assert table[0].split() == ["layer", "role", "shape", "|grad|", "|grad|/|param|"]
    rows = {tuple(line.split()[:2]): line.split() for line in table[1:-1]}
    assert set(rows) == {(*key.split("/"),) for key in expected.flat() if "input" not in key} | {
        ("data", "input")
    }
    norm = float(np.linalg.norm(expected["conv1"]["weight"].astype(np.float64)))
    assert float(rows[("conv1", "weight")][3]) == pytest.approx(norm, rel=1e-5)
    assert table[-1] == f"loss: {expected.loss:.9g}"
