"""protoedit.validate before Caffe runs: argument checks, sizes, a missing pycaffe (no Caffe)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from protoedit import CaffeUnavailableError, InputError, validate_net
from protoedit.cli import main as cli_main
from protoedit.validate.report import format_size

from .helpers import FIXTURES

LENET = FIXTURES / "lenet_deploy.prototxt"


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (0, "0 B"),
        (100, "100 B"),
        (1536, "1.50 KiB"),
        (284 * 2**10, "284 KiB"),
        (512 * 2**20, "512 MiB"),
        (2 * 2**30, "2.00 GiB"),
        (12.5 * 2**30, "12.5 GiB"),
    ],
)
def test_sizes_are_written_in_a_unit_that_fits(size: float, text: str) -> None:
    assert format_size(size) == text


@pytest.mark.parametrize("timeout", [0, -1, float("nan")])
def test_non_positive_timeout_is_refused(timeout: float) -> None:
    with pytest.raises(InputError, match="timeout must be a positive number of seconds"):
        validate_net(LENET, timeout=timeout)


def test_negative_memory_limit_is_refused() -> None:
    with pytest.raises(InputError, match="memory_limit must be 0"):
        validate_net(LENET, memory_limit=-1)


@pytest.mark.parametrize("value", ["-1", "0", "soon"])
def test_cli_refuses_a_timeout_that_is_not_positive(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["validate", str(LENET), "--timeout", value])
    assert exit_info.value.code == 2
    assert "--timeout" in capsys.readouterr().err


def test_missing_weights_file_is_an_error_before_caffe(capsys: pytest.CaptureFixture[str]) -> None:
    report = validate_net(LENET, weights="absent.caffemodel")
    assert report.status == "error" and report.seconds == 0.0
    assert report.reason.startswith("cannot read weights file absent.caffemodel")
    assert cli_main(["validate", str(LENET), "--weights", "absent.caffemodel"]) == 2
    assert "protoedit: error: cannot read weights file" in capsys.readouterr().err


def test_weights_file_that_is_a_folder_is_an_error(tmp_path: Path) -> None:
    report = validate_net(LENET, weights=tmp_path)
    assert report.status == "error" and "cannot read weights file" in report.reason


def test_weights_larger_than_the_budget_are_refused_before_loading(tmp_path: Path) -> None:
    weights = tmp_path / "big.caffemodel"
    with weights.open("wb") as handle:  # sparse: no disk space taken
        handle.truncate(300 * 2**20)
    report = validate_net(LENET, weights=weights, memory_limit=256 * 2**20)
    assert report.status == "error" and report.seconds == 0.0 and report.cause == "over_budget"
    assert "300 MiB" in report.reason and "600 MiB" in report.reason
    assert "the budget is 256 MiB" in report.reason


def test_save_gradients_to_an_existing_file_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    existing = tmp_path / "taken"
    existing.write_text("")
    code = cli_main(["validate", str(LENET), "--save-gradients", str(existing)])
    assert code == 2
    captured = capsys.readouterr()
    assert f"protoedit: error: cannot write the gradients to {existing}: not a folder" in (
        captured.err
    )
    assert "Traceback" not in captured.err + captured.out


def test_missing_pycaffe_raises_caffe_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A `caffe` package that fails to import, first on the child's path: as when pycaffe is
    # not built or its libcaffe cannot be found.
    (tmp_path / "caffe").mkdir()
    (tmp_path / "caffe" / "__init__.py").write_text(
        'raise ImportError("libcaffe.so.1.0.0: cannot open shared object file")\n'
    )
    path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    with pytest.raises(CaffeUnavailableError, match=r"pycaffe cannot be imported \(ImportError"):
        validate_net(LENET)
    proc = subprocess.run(
        [sys.executable, "-m", "protoedit.cli", "validate", str(LENET)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("protoedit: error: pycaffe cannot be imported")
    assert "protoedit setup-caffe" in proc.stderr  # how to fix it, said once
    aux = subprocess.run(
        [
            sys.executable,
            "-m",
            "protoedit.cli",
            "aux",
            str(LENET),
            "--target",
            "conv2",
            "--validate",
            "-o",
            str(tmp_path / "aux.prototxt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert aux.returncode == 2 and "Traceback" not in aux.stderr
    assert "protoedit: error: pycaffe cannot be imported" in aux.stderr


_DEPLOY_WITH_COMMENT = """name: "n"
layer {
  name: "data"
  type: "Input"  # was: type: "Data"
  top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }
}
layer { name: "relu" type: "ReLU" bottom: "data" top: "out" }
"""
_PYTHON_READER = """name: "n"
layer {
  name: "data"
  type: "Python"
  top: "data"
  top: "label"
  python_param { module: "voc_layers" layer: "VOCSegDataLayer" }
}
layer { name: "relu" type: "ReLU" bottom: "data" top: "out" }
"""
_V1_DATA = """name: "n"
layers {
  name: "data"
  type: DATA
  top: "data"
  top: "label"
  data_param { source: "train_lmdb" batch_size: 4 }
  transform_param { crop_size: 8 mean_value: 1 mean_value: 2 mean_value: 3 }
}
layers { name: "relu" type: RELU bottom: "data" top: "out" }
"""
_V1_DEPLOY = """name: "n"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: "relu" type: RELU bottom: "data" top: "out" }  # not a DATA layer
"""


def test_the_hook_finds_data_layers_in_the_parsed_net_not_in_the_text(tmp_path: Path) -> None:
    from protoedit.document import Document
    from protoedit.validate.hook import hook_nets

    texts = [_DEPLOY_WITH_COMMENT, _PYTHON_READER, _V1_DATA, _V1_DEPLOY]
    nets: list[object] = []
    for index, text in enumerate(texts):
        nets.append(tmp_path / f"net{index}.prototxt")
        (tmp_path / f"net{index}.prototxt").write_text(text)
    out, skipped = hook_nets(nets, "TEST")
    # A commented-out data type is not a layer: the net is validated as written.
    assert out[0] == nets[0] and 0 not in skipped
    # A Python layer with tops and no bottoms reads files: the hook tried its deploy net.
    assert "data layer 'data' (a Python layer)" in skipped[1].reason
    # A V1 DATA layer is a data layer: replaced by an Input layer of its crop size.
    assert 2 not in skipped and isinstance(out[2], Document)
    assert "Input" in out[2].dumps() and "train_lmdb" not in out[2].dumps()
    assert out[3] == nets[3] and 3 not in skipped
