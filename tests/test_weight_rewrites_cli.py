"""The weight rewrites on the command line: what they write, what they refuse, and
``--check``, which writes nothing unless Caffe finds the result equivalent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protoedit import load, loads
from protoedit.cli import main
from protoedit.weights import Weights, save
from protoedit.weights import load as load_weights

from .helpers import FIXTURES, one_error_line
from .weights_nets import random_weights

NETS = FIXTURES / "weights_rewrites"


def _model(tmp_path: Path, case: str) -> tuple[Path, Path]:
    """A case's net and seeded weights for it, in ``tmp_path``."""
    net = tmp_path / "net.prototxt"
    net.write_text((NETS / case).read_text())
    weights = tmp_path / "net.caffemodel"
    save(Weights.from_arrays(random_weights(load(net), seed=7)), weights)
    return net, weights


def test_fold_bn_writes_the_net_and_its_weights(tmp_path: Path, capsys: Any) -> None:
    net, weights = _model(tmp_path, "fold_bn/resnet_block.in.prototxt")
    out, out_weights = tmp_path / "folded.prototxt", tmp_path / "folded.caffemodel"
    argv = ["fold-bn", str(net), "--weights", str(weights), "--weights-out", str(out_weights)]
    assert main([*argv, "-o", str(out)]) == 0
    assert "folded 'bn1', 'scale1' into 'conv1'" in capsys.readouterr().err
    assert [layer.type for layer in load(out).message.layer] == [
        "Input", "Convolution", "ReLU", "Convolution", "Eltwise", "InnerProduct"
    ]  # fmt: skip
    stored = load_weights(out_weights)
    assert list(stored) == ["conv1", "conv2", "fc"]
    assert [b.shape for b in stored["conv1"].blobs] == [(6, 3, 3, 3), (6,)]
    original = load_weights(weights)
    assert all(
        np.array_equal(a, b) for a, b in zip(stored["fc"].blobs, original["fc"].blobs, strict=True)
    )


def test_weights_out_onto_the_input_needs_in_place(tmp_path: Path, capsys: Any) -> None:
    net, weights = _model(tmp_path, "fold_bn/not_in_place.in.prototxt")
    before = weights.read_bytes(), net.read_text()
    argv = ["fold-bn", str(net), "--weights", str(weights), "--weights-out", str(weights)]
    line = one_error_line(capsys, [*argv, "-o", str(tmp_path / "out.prototxt")])
    assert "would overwrite the input weights" in line and "-i" in line
    assert (weights.read_bytes(), net.read_text()) == before
    assert not (tmp_path / "out.prototxt").exists()
    assert main([*argv, "-i"]) == 0  # both rewritten in place
    assert 'type: "BatchNorm"' not in net.read_text()
    assert list(load_weights(weights)) == ["conv1", "conv2"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fold-bn", "NET", "--weights-out", "W2"], "--weights"),
        (["rename", "NET", "conv1=x", "--weights", "W"], "--weights needs --weights-out"),
        (["rename", "NET", "conv1=x", "--check"], "--check needs"),
        (["rename", "NET", "conv1=x", "--weights-out", "W2"], "--weights-out needs"),
        (["rename", "NET", "conv1", "--weights", "W"], "is not OLD=NEW"),
        (["truncate", "NET", "--target", "relu1", "--weights", "W"], "--weights needs"),
    ],
)
def test_options_that_do_not_combine_are_refused(
    argv: list[str], message: str, tmp_path: Path, capsys: Any
) -> None:
    net, weights = _model(tmp_path, "fold_bn/not_in_place.in.prototxt")
    names = {"NET": str(net), "W": str(weights), "W2": str(tmp_path / "new.caffemodel")}
    argv = [names.get(a, a) for a in argv]
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own refusals
        code = int(exc.code or 0)
    line = capsys.readouterr().err
    assert code == 2 and "Traceback" not in line
    assert message in line
    assert not (tmp_path / "new.caffemodel").exists()


def test_truncate_keeps_only_the_blobs_the_net_uses(tmp_path: Path, capsys: Any) -> None:
    net, weights = _model(tmp_path, "fold_bn/not_in_place.in.prototxt")
    out = tmp_path / "short.caffemodel"
    argv = ["truncate", str(net), "--target", "relu1", "--weights", str(weights)]
    assert main([*argv, "--weights-out", str(out), "-o", str(tmp_path / "short.prototxt")]) == 0
    assert "left out 2 that the net no longer has ('conv2', 'bn2')" in capsys.readouterr().err
    assert list(load_weights(out)) == ["conv1", "bn1", "scale1"]
    layers = loads((tmp_path / "short.prototxt").read_text()).message.layer
    assert [layer.name for layer in layers] == ["data", "conv1", "bn1", "scale1", "relu1"]


@pytest.mark.caffe
def test_check_writes_nothing_when_the_result_diverges(
    tmp_path: Path, capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    net, weights = _model(tmp_path, "fold_bn/resnet_block.in.prototxt")
    out, out_weights = tmp_path / "folded.prototxt", tmp_path / "folded.caffemodel"
    argv = ["fold-bn", str(net), "--weights", str(weights), "--weights-out", str(out_weights)]
    assert main([*argv, "-o", str(out), "--check"]) == 0
    err = capsys.readouterr().err
    assert "check: equivalent (" in err
    assert out.exists() and out_weights.exists()
    out.unlink()
    out_weights.unlink()

    from protoedit import rewrites

    real = rewrites.fold_bn

    def wrong_fold(doc: Any, weights: Any) -> Any:  # a fold that forgets eps in one channel
        report = real(doc, weights)
        report.weights["conv2"].blobs[0][2] *= 1.01
        return report

    monkeypatch.setattr(rewrites, "fold_bn", wrong_fold)
    assert main([*argv, "-o", str(out), "--check"]) == 1
    err = capsys.readouterr().err
    assert "first blob that diverges: conv2:" in err
    assert "nothing written" in err
    assert not out.exists() and not out_weights.exists()
    assert list(tmp_path.glob(".protoedit-*")) == []  # the staged weights are gone too


def test_aux_and_to_deploy_take_weights_out(tmp_path: Path, capsys: Any) -> None:
    net, weights = _model(tmp_path, "fold_bn/not_in_place.in.prototxt")
    out = tmp_path / "aux.caffemodel"
    argv = ["aux", str(net), "--target", "relu1", "--weights", str(weights)]
    assert main([*argv, "--weights-out", str(out), "-o", str(tmp_path / "aux.prototxt")]) == 0
    assert list(load_weights(out)) == ["conv1", "bn1", "scale1"]
    train = tmp_path / "train.prototxt"
    train.write_text(
        net.read_text().replace(
            'type: "Input"\n  top: "data"\n  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } }',
            'type: "Data"\n  top: "data"\n  top: "label"\n'
            '  data_param { source: "db" batch_size: 2 backend: LMDB }',
        )
    )
    argv = ["to-deploy", str(train), "--shape", "2,3,8,8", "--weights", str(weights)]
    assert main([*argv, "--weights-out", str(out), "-o", str(tmp_path / "deploy.prototxt")]) == 0
    assert list(load_weights(out)) == ["conv1", "bn1", "scale1", "conv2", "bn2"]
    capsys.readouterr()


def test_check_refuses_a_net_that_reads_files(tmp_path: Path, capsys: Any) -> None:
    train = tmp_path / "train.prototxt"
    train.write_text((FIXTURES / "deploy_recipe" / "train_val.prototxt").read_text())
    weights = FIXTURES / "deploy_recipe" / "trained.caffemodel"
    out = tmp_path / "folded.caffemodel"
    argv = ["fold-bn", str(train), "--weights", str(weights), "--weights-out", str(out)]
    line = one_error_line(capsys, [*argv, "-o", str(tmp_path / "f.prototxt"), "--check"])
    assert "reads its data from files (layer 'data')" in line and "to-deploy" in line
    assert not out.exists()
