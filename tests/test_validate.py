"""protoedit.validate and `protoedit validate`: real Caffe in a child process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from protoedit import load
from protoedit.caffe import Session, child_environment
from protoedit.cli import main as cli_main
from protoedit.rewrites import LossHead, add_loss, force_backward
from protoedit.validate import validate_net

from .helpers import FIXTURES

pytestmark = pytest.mark.caffe
VALIDATE = FIXTURES / "validate"
LENET = FIXTURES / "lenet_deploy.prototxt"


def _euclidean_expectation(data: np.ndarray, target: np.ndarray) -> tuple[float, float]:
    """EuclideanLoss = sum((a-b)^2) / (2N); d/d data = (a-b)/N: loss and gradient norm."""
    diff = data.astype(np.float64) - target.astype(np.float64)
    n = data.shape[0]
    return float((diff**2).sum() / (2 * n)), float(np.linalg.norm(diff / n))


FLOAT32_UNIT_ROUNDOFF = 2.0**-24


def _euclidean_tolerances(count: int) -> tuple[float, float]:
    """Relative error bounds of Caffe's float32 EuclideanLoss over ``count`` values.

    Loss: one rounding for each a-b, one per square, ``count - 1`` in the sum of the
    (non-negative) squares, two in dividing by N and 2: ``(count + 3) u``.  Gradient: one
    rounding in a-b, one in computing 1/N and one in scaling by it: ``3 u`` per element.
    """
    return (count + 3) * FLOAT32_UNIT_ROUNDOFF, 3 * FLOAT32_UNIT_ROUNDOFF


def test_deploy_net_as_written_has_zero_input_gradient(caffe_session: Session) -> None:
    report = validate_net(LENET, session=caffe_session)
    assert report.status == "failed" and report.exit_code == 1
    assert report.blobs["data"] == [2, 1, 28, 28]
    assert report.blobs["conv1"] == [2, 8, 24, 24]
    assert report.blobs["prob"] == [2, 10]
    assert report.losses == {}
    [grad] = report.input_gradients
    assert grad.blob == "data" and grad.norm == 0.0 and not grad.nonzero
    assert "force_backward" in report.reason and "loss_weight" in report.reason
    assert report.force_backward is False


def test_valid_net_reports_loss_and_gradient_from_seeded_inputs(caffe_session: Session) -> None:
    report = validate_net(
        VALIDATE / "euclidean_force_backward.prototxt", seed=7, session=caffe_session
    )
    assert report.status == "valid", report.reason
    rng = np.random.default_rng(7)  # the child fills inputs in net.inputs order
    data = rng.standard_normal((2, 3)).astype(np.float32)
    target = rng.standard_normal((2, 3)).astype(np.float32)
    loss, grad_norm = _euclidean_expectation(data, target)
    loss_rel, grad_rel = _euclidean_tolerances(data.size)
    assert report.losses["loss"] == pytest.approx(loss, rel=loss_rel, abs=0)
    grads = {g.blob: g for g in report.input_gradients}
    assert grads["data"].norm == pytest.approx(grad_norm, rel=grad_rel, abs=0)
    assert grads["target"].ok


def test_given_npy_inputs_are_used_and_may_reshape(tmp_path: Path, caffe_session: Session) -> None:
    data = np.arange(8, dtype=np.float32).reshape(4, 2)
    target = np.zeros((4, 2), dtype=np.float32)
    np.save(tmp_path / "data.npy", data)
    np.save(tmp_path / "target.npy", target)
    report = validate_net(
        VALIDATE / "euclidean_force_backward.prototxt",
        inputs={"data": tmp_path / "data.npy", "target": tmp_path / "target.npy"},
        session=caffe_session,
    )
    assert report.status == "valid", report.reason
    assert report.blobs["data"] == [4, 2]
    loss, _ = _euclidean_expectation(data, target)
    assert report.losses["loss"] == pytest.approx(loss, rel=_euclidean_tolerances(data.size)[0])


def test_unknown_input_name_is_an_error(tmp_path: Path, caffe_session: Session) -> None:
    np.save(tmp_path / "x.npy", np.zeros((2, 3), dtype=np.float32))
    report = validate_net(
        VALIDATE / "euclidean_force_backward.prototxt",
        inputs={"image": tmp_path / "x.npy"},
        session=caffe_session,
    )
    assert report.status == "error"
    assert "image" in report.reason and "data, target" in report.reason


def test_missing_bottom_aborts_caffe_and_reports_the_glog_line() -> None:
    report = validate_net(VALIDATE / "missing_bottom.prototxt")
    assert report.status == "error" and report.exit_code == 2
    assert report.fatal is not None
    assert report.fatal.file.endswith(".cpp") and report.fatal.line > 0
    assert "Unknown bottom blob 'image'" in report.fatal.message
    assert "during load" in report.reason


def test_accuracy_under_force_backward_aborts_in_backward() -> None:
    report = validate_net(VALIDATE / "accuracy_force_backward.prototxt")
    assert report.status == "error"
    assert report.fatal is not None and "Not Implemented" in report.fatal.message
    assert "during backward" in report.reason


def test_syntax_error_is_reported_with_line_and_column(tmp_path: Path) -> None:
    bad = tmp_path / "bad.prototxt"
    bad.write_text('name: "x"\nlayer {\n  name: "a"\n  type "Input"\n}\n')
    report = validate_net(bad)
    assert report.status == "error"
    assert report.reason.startswith(f"{bad}:4:")


def test_unreadable_file_is_an_error_without_running_caffe(tmp_path: Path) -> None:
    report = validate_net(tmp_path / "absent.prototxt")
    assert report.status == "error" and report.seconds == 0.0
    assert "cannot read net file" in report.reason


def test_python_layers_are_refused_unless_allowed(caffe_session: Session) -> None:
    net = VALIDATE / "python_layer.prototxt"
    refused = validate_net(net, session=caffe_session)
    assert refused.status == "error" and refused.cause == "python_layers"
    assert "allow_python_layers=True" in refused.hint and "--" not in refused.reason
    assert "double" in refused.reason and refused.blobs == {}
    allowed = validate_net(net, allow_python_layers=True)  # own worker
    assert allowed.status == "failed", allowed.reason  # it ran; no force_backward, no loss
    assert allowed.blobs["doubled"] == [1, 3]


def test_timeout_kills_the_child_and_says_so() -> None:
    # The layer sleeps forever in forward, so the run can only end by the timeout.  The
    # timeout counts from when the net is sent to a worker that has imported Caffe, and
    # loading this small net takes milliseconds, so the stage is forward.
    report = validate_net(
        VALIDATE / "sleepy_python_layer.prototxt", allow_python_layers=True, timeout=3
    )
    assert report.status == "error"
    assert report.reason.startswith("timed out after 3 s (during forward)")
    assert 3 <= report.seconds < 6


def test_over_the_memory_budget_is_a_clear_error() -> None:
    report = validate_net(VALIDATE / "huge_blobs.prototxt", memory_limit=2 * 2**30)
    assert report.status == "error"
    assert "over the memory budget" in report.reason and "2.00 GiB" in report.reason
    assert report.cause == "over_budget" and "memory_limit" in report.hint
    assert "--" not in report.reason


def test_failed_allocation_beyond_the_estimate_is_a_budget_error() -> None:
    # The blobs fit in 512 MiB, the convolution's hidden im2col buffer (1.6 GB) does not.
    report = validate_net(VALIDATE / "big_im2col.prototxt", memory_limit=512 * 2**20, timeout=120)
    assert report.status == "error"
    assert report.reason.startswith("over the memory budget (512 MiB) during forward")
    assert report.cause == "over_budget"
    assert report.fatal is not None and "allocation" in report.fatal.message


def test_blas_runs_on_one_thread_whatever_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    # OpenBLAS sizes its buffers by thread count: pinned, the memory headroom is machine-free.
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "64")
    env = child_environment()
    assert env["OPENBLAS_NUM_THREADS"] == "1" and env["OMP_NUM_THREADS"] == "1"


def test_small_budget_still_runs_a_small_net() -> None:
    # The budget is for the net: Python and its libraries are not charged against it.
    report = validate_net(LENET, memory_limit=16 * 2**20, timeout=120)
    assert report.status == "failed", report.reason


def test_cli_json_and_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli_main(["validate", str(LENET), "--json"])
    assert code == 1
    payload = json.loads(capsys.readouterr().out)
    assert payload["status"] == "failed" and payload["exit_code"] == 1
    assert payload["input_gradients"][0]["blob"] == "data"
    assert payload["blobs"]["ip2"] == [1, 10]  # the command runs at batch 1 (declared 2)
    assert payload["batch"] == 1 and payload["declared_batch"] == 2


def test_cli_error_prints_one_line_reason_on_stderr() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "protoedit.cli",
            "validate",
            str(VALIDATE / "missing_bottom.prototxt"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    [line] = proc.stderr.strip().splitlines()
    assert line.startswith("protoedit: error: Caffe aborted during load:")


def test_gradients_are_saved_as_arrays_and_pictures(tmp_path: Path, caffe_session: Session) -> None:
    report = validate_net(
        VALIDATE / "euclidean_force_backward.prototxt",
        save_gradients=tmp_path,
        session=caffe_session,
    )
    assert report.ok
    for grad in report.input_gradients:
        array = np.load(tmp_path / f"{grad.blob}.npy")
        assert float(np.linalg.norm(array.astype(np.float64))) == pytest.approx(grad.norm)
        assert (tmp_path / f"{grad.blob}.png").read_bytes().startswith(b"\x89PNG")


def test_unwritable_gradient_folder_is_a_clean_error(
    tmp_path: Path, caffe_session: Session
) -> None:
    (tmp_path / "file").write_text("")
    folder = tmp_path / "file" / "gradients"  # below a file: cannot be made
    report = validate_net(
        VALIDATE / "euclidean_force_backward.prototxt", save_gradients=folder, session=caffe_session
    )
    assert report.status == "error"
    assert report.reason.startswith(f"cannot write the gradients to {folder}: ")


def test_random_weights_give_a_gradient_through_zero_filled_layers(
    tmp_path: Path, caffe_session: Session
) -> None:
    # Without fillers every parameter is 0 and so is the gradient; random weights fix that.
    net = tmp_path / "net.prototxt"
    net.write_text(
        'force_backward: true\nlayer { name: "data" type: "Input" top: "data"\n'
        "  input_param { shape { dim: 2 dim: 4 } } }\n"
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
        "  inner_product_param { num_output: 3 } }\n"
        'layer { name: "loss" type: "Reduction" bottom: "ip" top: "loss" loss_weight: 1\n'
        "  reduction_param { operation: SUMSQ axis: 0 } }\n"
    )
    zero = validate_net(net, session=caffe_session)
    assert zero.status == "failed" and zero.cause == "zero_weights"
    assert "the weights of 1 layer(s) (ip) are all zero" in zero.reason
    assert "random_weights=True" in zero.hint and "--" not in zero.reason
    assert validate_net(net, random_weights=True, session=caffe_session).ok


def test_zero_conv_weights_are_the_cause_in_a_batchnorm_scale_net(
    tmp_path: Path, caffe_session: Session
) -> None:
    # ResNet style: Scale's multipliers default to 1 and BatchNorm's statistics are not
    # weights, so not every parameter is zero; the zero convolution weights are the cause.
    net = tmp_path / "net.prototxt"
    net.write_text(
        'force_backward: true\nlayer { name: "data" type: "Input" top: "data"\n'
        "  input_param { shape { dim: 1 dim: 2 dim: 6 dim: 6 } } }\n"
        'layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"\n'
        "  convolution_param { num_output: 3 kernel_size: 3 } }\n"
        'layer { name: "bn1" type: "BatchNorm" bottom: "conv1" top: "conv1" }\n'
        'layer { name: "scale1" type: "Scale" bottom: "conv1" top: "conv1"\n'
        "  scale_param { bias_term: true } }\n"
        'layer { name: "loss" type: "Reduction" bottom: "conv1" top: "loss" loss_weight: 1\n'
        "  reduction_param { operation: SUMSQ axis: 0 } }\n"
    )
    report = validate_net(net, session=caffe_session)
    assert report.status == "failed" and report.cause == "zero_weights", report.reason
    assert "(conv1)" in report.reason and "Softmax" not in report.reason


def test_missing_python_layer_module_is_named(tmp_path: Path) -> None:
    net = tmp_path / "net.prototxt"
    net.write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }\n'
        'layer { name: "loss" type: "Python" bottom: "data" top: "loss"\n'
        '  python_param { module: "protoedit_no_such_module" layer: "Loss" } }\n'
    )
    report = validate_net(net, allow_python_layers=True)  # own worker
    assert report.status == "error"
    assert report.reason == (
        "Python layer 'loss' cannot be loaded: ModuleNotFoundError: "
        "No module named 'protoedit_no_such_module'"
    )


def test_train_val_net_aborting_on_its_data_gets_the_to_deploy_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "train_val.prototxt"
    net.write_text(
        'layer { name: "mnist" type: "Data" top: "data" top: "label"\n'
        '  data_param { source: "absent_lmdb" backend: LMDB batch_size: 2 } }\n'
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
        "  inner_product_param { num_output: 2 } }\n"
    )
    report = validate_net(net)
    assert report.status == "error" and report.fatal is not None
    assert report.cause == "data_layers" and "mnist" in report.hint
    assert "to_deploy" in report.hint
    assert cli_main(["validate", str(net)]) == 2
    err = capsys.readouterr().err
    assert "hint:" in err and "protoedit to-deploy" in err


def test_solver_file_is_named_as_such(tmp_path: Path) -> None:
    solver = tmp_path / "solver.prototxt"
    solver.write_text('net: "train_val.prototxt"\nbase_lr: 0.01\nmax_iter: 10\n')
    report = validate_net(solver)
    assert report.status == "error" and report.cause == "solver_file"
    assert report.reason == f"{solver}: this is a SolverParameter file, not a net"
    assert "train_val.prototxt" in report.hint


def test_a_document_is_validated_as_edited(tmp_path: Path, caffe_session: Session) -> None:
    doc = load(LENET)
    as_written = validate_net(doc, session=caffe_session)
    assert as_written.status == "failed"  # no force_backward, no loss
    force_backward(doc)
    add_loss(doc, "conv2", LossHead("channel", 3))
    report = validate_net(doc, session=caffe_session)
    assert report.ok, report.reason
    assert report.net == str(LENET) and "protoedit_aux_loss" in report.losses


def test_a_documents_python_layers_are_found_beside_its_file() -> None:
    doc = load(VALIDATE / "python_layer.prototxt")
    report = validate_net(doc, allow_python_layers=True)  # own worker
    assert report.status == "failed", report.reason  # it ran: the module was found
    assert report.blobs["doubled"] == [1, 3]


def test_cli_reads_the_net_from_stdin() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "protoedit.cli", "validate", "-", "--json"],
        input=(VALIDATE / "euclidean_force_backward.prototxt").read_text(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["status"] == "valid"


def test_cli_prints_an_error_once_with_the_flag_to_use() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "protoedit.cli",
            "validate",
            str(LENET),
            "--memory-limit",
            "100",
            "--batch",
            "declared",
            "--extent",
            "declared",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    both = proc.stdout + proc.stderr
    reason = "over the memory budget: the net's blobs and parameters need 284 KiB"
    assert both.count(reason) == 1 and "the budget is 100 B" in proc.stderr
    assert "hint: raise it with --memory-limit" in proc.stderr


def test_cli_hint_for_a_deploy_net_without_loss(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["validate", str(LENET)]) == 1
    out = capsys.readouterr().out
    assert "hint: a deploy net has no loss: `protoedit aux NET --target LAYER`" in out


def test_cli_hint_for_zero_weights_names_the_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "net.prototxt"
    net.write_text(
        'force_backward: true\nlayer { name: "data" type: "Input" top: "data"\n'
        "  input_param { shape { dim: 2 dim: 4 } } }\n"
        'layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"\n'
        "  inner_product_param { num_output: 3 } }\n"
        'layer { name: "loss" type: "Reduction" bottom: "ip" top: "loss" loss_weight: 1\n'
        "  reduction_param { operation: SUMSQ axis: 0 } }\n"
    )
    assert cli_main(["validate", str(net)]) == 1
    assert "hint: pass --weights MODEL.caffemodel or --random-weights" in capsys.readouterr().out


def test_save_gradients_writes_one_tile_per_batch_item(
    tmp_path: Path, caffe_session: Session
) -> None:
    from PIL import Image

    batch = np.zeros((10, 1, 28, 28), dtype=np.float32)
    np.save(tmp_path / "data.npy", batch)
    net = tmp_path / "aux.prototxt"
    doc = load(LENET)
    force_backward(doc)
    add_loss(doc, "conv1", LossHead("channel", 0))
    doc.save(net)
    report = validate_net(
        net,
        inputs={"data": tmp_path / "data.npy"},
        save_gradients=tmp_path / "g",
        session=caffe_session,
    )
    assert report.ok, report.reason
    with Image.open(tmp_path / "g" / "data.png") as image:
        picture = np.asarray(image)
    tile = 28 * (128 // 28)  # 28 px enlarged 4x
    assert picture.shape == (2 * tile + 4, 8 * tile + 7 * 4, 3)  # 8 tiles, then 2 more
    assert picture[tile + 4 + tile // 2, 1 * (tile + 4) + tile // 2].tolist() != [64, 64, 64]
    assert picture[tile + 4 + tile // 2, 2 * (tile + 4) + tile // 2].tolist() == [64, 64, 64]


_BIG_NET = """force_backward: true
layer {{ name: "data" type: "Input" top: "data"
  input_param {{ shape {{ dim: 1 dim: {inputs} }} }} }}
layer {{ name: "big" type: "InnerProduct" bottom: "data" top: "big"
  inner_product_param {{ num_output: {outputs} {filler} }} }}
layer {{ name: "loss" type: "Reduction" bottom: "big" top: "loss" loss_weight: 1
  reduction_param {{ operation: SUMSQ axis: 0 }} }}
"""
# pycaffe in its own process: build the net (Caffe fills the weights) and save the model.
_SAVE_MODEL = """
import sys
import caffe
caffe.set_mode_cpu()
caffe.set_random_seed(0)
caffe.Net(sys.argv[1], caffe.TEST).save(sys.argv[2])
"""


@pytest.mark.slow
def test_weights_over_512_mib_load(tmp_path: Path) -> None:
    # One InnerProduct of 1000 x 140000 float32 weights: a 560 MB model, past the 512 MiB
    # (536870912 bytes) read limit the Caffe fork ships with and our build lifts.
    inputs, outputs = 140_000, 1000
    maker = tmp_path / "maker.prototxt"
    maker.write_text(
        _BIG_NET.format(
            inputs=inputs, outputs=outputs, filler='weight_filler { type: "gaussian" std: 0.01 }'
        )
    )
    weights = tmp_path / "big.caffemodel"
    proc = subprocess.run(
        [sys.executable, "-c", _SAVE_MODEL, str(maker), str(weights)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert weights.stat().st_size > 4 * inputs * outputs > 512 * 2**20
    # The same net without a filler: its weights are zero unless the model is loaded.
    net = tmp_path / "net.prototxt"
    net.write_text(_BIG_NET.format(inputs=inputs, outputs=outputs, filler=""))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "protoedit.cli",
            "validate",
            str(net),
            "--weights",
            str(weights),
            "--memory-limit",
            "3G",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    report = json.loads(proc.stdout)
    assert proc.returncode == 0, report["reason"]
    assert report["status"] == "valid" and report["input_gradients"][0]["nonzero"]
    assert report["losses"]["loss"] > 0
