"""Every command that takes --weights applies the one rule of protoedit.weights, before any
Caffe worker starts (these tests run with pycaffe blocked): the weights of another net are an
error, layers missing are one summarised warning, --strict-weights makes that an error."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from protoedit.cli import main
from protoedit.weights import Weights, WeightsError, WeightsWarning, save

from .helpers import FIXTURES

DIGITS = FIXTURES / "digits" / "deploy.prototxt"
#: The digits net's layers that learn and their blob shapes.
SHAPES = {
    "conv1": [(16, 1, 3, 3), (16,)],
    "conv2": [(32, 16, 3, 3), (32,)],
    "ip1": [(64, 128), (64,)],
    "ip2": [(10, 64), (10,)],
}


def _weights(path: Path, names: dict[str, str]) -> Path:
    """A caffemodel holding the digits layers in ``names`` (stored under the mapped name)."""
    arrays = {new: [np.zeros(s, np.float32) for s in SHAPES[old]] for old, new in names.items()}
    save(Weights.from_arrays(arrays), path)
    return path


@pytest.fixture
def other(tmp_path: Path) -> Path:
    """The weights of another net: nothing named as the digits net's layers."""
    return _weights(tmp_path / "other.caffemodel", {k: f"res_{k}" for k in SHAPES})


@pytest.fixture
def partial(tmp_path: Path) -> Path:
    """The digits weights without ip1 and ip2."""
    return _weights(tmp_path / "partial.caffemodel", {"conv1": "conv1", "conv2": "conv2"})


def _commands(tmp_path: Path, weights: Path) -> dict[str, list[str]]:
    image = tmp_path / "x.npy"
    np.save(image, np.zeros((1, 8, 8), np.float32))
    out = str(tmp_path / "o.png")
    w = ["--weights", str(weights)]
    return {
        "grad": ["grad", str(DIGITS), *w, "--input", str(image), "--target", "ip2", "--class", "1"],
        "saliency": ["saliency", str(DIGITS), *w, "--image", str(image), "--class", "1", "-o", out],
        "visualize": ["visualize", str(DIGITS), *w, "--class", "1", "-o", out],
        "validate": ["validate", str(DIGITS), *w],
        "sweep": [
            "sweep",
            "--net",
            str(DIGITS),
            *w,
            "--layers",
            "ip2",
            "--store",
            str(tmp_path / "s"),
        ],
        "aux": ["aux", str(DIGITS), "--target", "ip2", "--validate", *w, "-o", str(tmp_path / "a")],
    }


COMMANDS = ["grad", "saliency", "visualize", "validate", "sweep", "aux"]


@pytest.mark.parametrize("command", COMMANDS)
def test_the_weights_of_another_net_are_an_error_before_caffe(
    command: str, other: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_commands(tmp_path, other)[command]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(("protoedit: error:", "error:"))]
    assert len(lines) == 1, err  # aux --validate ends its report with the verdict line
    assert f"{other}: none of the net's layers that learn is in the weights file" in lines[0]
    assert "Traceback" not in err and not (tmp_path / "s").exists()


@pytest.mark.parametrize("command", COMMANDS)
def test_strict_weights_makes_a_missing_layer_an_error(
    command: str, partial: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*_commands(tmp_path, partial)[command], "--strict-weights"]) == 2
    err = capsys.readouterr().err
    expected = (
        f"protoedit: error: {partial}: 2 of 4 layers that learn are not in the weights file "
        "and keep their initial values: 'ip1', 'ip2'"
    )
    assert expected in err.splitlines() or expected.replace("protoedit: ", "") in err, err


def test_layers_missing_are_one_warning_in_the_explain_methods(partial: Path) -> None:
    from protoedit.explain.attribution import Gradient
    from protoedit.rewrites import LossHead

    method = Gradient(DIGITS, weights=partial, head=LossHead("logit", 1))  # no worker yet
    assert method.warnings() == [
        f"{partial}: 2 of 4 layers that learn are not in the weights file and keep their "
        "initial values: 'ip1', 'ip2'"
    ]
    strict = Gradient(DIGITS, weights=partial, head=LossHead("logit", 1), strict_weights=True)
    with pytest.raises(WeightsError, match="2 of 4 layers"):
        strict.warnings()
    with pytest.raises(WeightsError, match="2 of 4 layers"):
        strict.session()  # before a worker starts (pycaffe is blocked here)


def test_a_sweep_checks_each_model_once_up_front(partial: Path) -> None:
    from protoedit.sweep.plan import Plan, Target, check_plan_weights, make_model

    model = make_model(DIGITS, partial)
    plan = Plan((Target(model, ("conv1", "conv2"), None), Target(model, ("ip1",), None)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_plan_weights(plan)
    found = [w for w in caught if issubclass(w.category, WeightsWarning)]
    assert [str(w.message) for w in found] == [
        f"DigitsNet: {partial}: 2 of 4 layers that learn are not in the weights file and "
        "keep their initial values: 'ip1', 'ip2'"
    ]


def test_a_damaged_weights_file_stops_the_sweep_before_its_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = _weights(tmp_path / "good.caffemodel", {name: name for name in SHAPES})
    damaged = tmp_path / "damaged.caffemodel"
    damaged.write_bytes(good.read_bytes()[:100])
    store = tmp_path / "store"
    argv = ["sweep", "--net", str(DIGITS), "--weights", str(damaged), "--layers", "conv1"]
    assert main([*argv, "--store", str(store)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"protoedit: error: {damaged}: not a Caffe")
    assert not store.exists()  # no batch tried, retried or stored
