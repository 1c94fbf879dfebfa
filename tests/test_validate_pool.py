"""`protoedit validate FILES...`: warm workers, fault isolation, batch 1, skipped parameter
gradients, JSON lines and JUnit XML (real Caffe)."""

from __future__ import annotations

import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from protoedit import load
from protoedit.caffe import Session
from protoedit.cli import main as cli_main
from protoedit.net.view import NetView
from protoedit.rewrites import LossHead, add_loss, aux, force_backward
from protoedit.validate import validate_files, validate_net

from .helpers import FIXTURES

pytestmark = pytest.mark.caffe
VALIDATE = FIXTURES / "validate"
LENET = FIXTURES / "lenet_deploy.prototxt"
EUCLIDEAN = VALIDATE / "euclidean_force_backward.prototxt"


def _facts(report: object) -> tuple[object, ...]:
    """What a verdict consists of: status, cause, losses, input gradients, shapes."""
    r = report  # type: ignore[assignment]
    return (r.status, r.cause, r.losses, r.input_gradients, r.blobs)  # type: ignore[attr-defined]


def test_one_bad_file_of_each_kind_leaves_the_others_alone() -> None:
    # One worker pair serves all: the abort, the failed allocation and the hang each kill
    # theirs, and the files after them still get the verdict a fresh process gives.
    nets = [
        EUCLIDEAN,
        VALIDATE / "missing_bottom.prototxt",  # Caffe aborts while loading
        LENET,
        VALIDATE / "big_im2col.prototxt",  # im2col buffer beyond the 512 MiB limit
        VALIDATE / "sleepy_python_layer.prototxt",  # never returns from forward
        EUCLIDEAN,
        LENET,
    ]
    # The timeout counts from when a net is sent to a worker that is up: the others take well
    # under a second once Caffe is imported.
    options = {"memory_limit": 512 * 2**20, "timeout": 5.0, "allow_python_layers": True}
    reports = validate_files(nets, jobs=2, **options)  # type: ignore[arg-type]
    assert [r.net for r in reports] == [str(n) for n in nets]
    assert [r.exit_code for r in reports] == [0, 2, 1, 2, 2, 0, 1]
    assert "Unknown bottom blob 'image'" in reports[1].reason and reports[1].fatal is not None
    assert reports[3].reason.startswith("over the memory budget (512 MiB) during forward")
    assert reports[4].reason.startswith("timed out after 5 s (during forward)")
    alone = {str(n): validate_net(n, **options) for n in (EUCLIDEAN, LENET)}  # type: ignore[arg-type]
    for index in (0, 2, 5, 6):
        assert _facts(reports[index]) == _facts(alone[reports[index].net])


def test_python_layer_nets_do_not_share_a_worker_with_the_next_net(tmp_path: Path) -> None:
    # A Python layer's module stays imported in its process: the next net gets a fresh one,
    # so a second module of the same name in another folder is the one that loads.
    nets = []
    for index, factor in enumerate((2, 3)):
        folder = tmp_path / f"n{index}"
        folder.mkdir()
        (folder / "protoedit_pool_layer.py").write_text(
            "import caffe\n"
            "class Times(caffe.Layer):\n"
            "    def setup(self, bottom, top): pass\n"
            "    def reshape(self, bottom, top): top[0].reshape(*bottom[0].data.shape)\n"
            f"    def forward(self, bottom, top): top[0].data[...] = {factor} * bottom[0].data\n"
            "    def backward(self, top, propagate_down, bottom): pass\n"
        )
        net = folder / "net.prototxt"
        net.write_text(
            'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }\n'
            'layer { name: "t" type: "Python" bottom: "data" top: "t"\n'
            '  python_param { module: "protoedit_pool_layer" layer: "Times" } }\n'
            'layer { name: "s" type: "Reduction" bottom: "t" top: "s" loss_weight: 1 }\n'
        )
        nets.append(net)
    first, second = validate_files(nets, jobs=1, allow_python_layers=True, seed=3)
    ratio = second.losses["s"] / first.losses["s"]
    assert ratio == pytest.approx(1.5, rel=4 * 2**-24)


def test_skipping_parameter_gradients_keeps_the_input_gradient(
    tmp_path: Path, caffe_session: Session
) -> None:
    doc = load(FIXTURES / "lenet_deploy.prototxt")
    aux(doc, "conv2", LossHead(channel=3))
    path = tmp_path / "aux.prototxt"
    path.write_text(doc.dumps())
    skipped = validate_net(path, random_weights=True, session=caffe_session)
    computed = validate_net(
        path, random_weights=True, skip_param_gradients=False, session=caffe_session
    )
    assert skipped.param_gradients == "skipped"
    assert computed.param_gradients == "computed: asked for"
    assert skipped.status == "valid", skipped.reason
    # The same layers run the same float32 arithmetic for the input gradient: equal exactly.
    assert _facts(skipped) == _facts(computed)


def test_parameter_gradients_stay_where_skipping_could_change_the_verdict() -> None:
    report = validate_net(VALIDATE / "accuracy_force_backward.prototxt")
    assert report.param_gradients.startswith("computed: layer types") and (
        "Accuracy" in report.param_gradients
    )
    assert report.status == "error" and report.fatal is not None  # aborts as before


def test_batch_one_by_default_on_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["validate", str(LENET), "--json"]) == 1
    one = json.loads(capsys.readouterr().out)
    assert one["batch"] == 1 and one["declared_batch"] == 2 and one["blobs"]["prob"] == [1, 10]
    assert cli_main(["validate", str(LENET), "--json", "--batch", "declared"]) == 1
    declared = json.loads(capsys.readouterr().out)
    assert declared["batch"] == 2 and declared["blobs"]["prob"] == [2, 10]
    assert cli_main(["validate", str(LENET), "--json", "--batch", "3"]) == 1
    assert json.loads(capsys.readouterr().out)["blobs"]["conv1"] == [3, 8, 24, 24]


@pytest.mark.parametrize(
    ("layer", "why"),
    [
        (
            'type: "Reshape" bottom: "data" top: "r" reshape_param { shape { dim: 4 dim: -1 } }',
            "Reshape layer 'x' fixes the first dimension to 4",
        ),
        (
            'type: "Slice" bottom: "data" top: "r" top: "r2" slice_param { axis: 0 }',
            "Slice layer 'x' slices along the batch axis",
        ),
    ],
)
def test_the_declared_batch_is_kept_where_it_matters(
    tmp_path: Path, layer: str, why: str, caffe_session: Session
) -> None:
    net = tmp_path / "net.prototxt"
    net.write_text(
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 4 dim: 6 } } }\n"
        f'layer {{ name: "x" {layer} }}\n'
    )
    report = validate_net(net, batch=1, session=caffe_session)
    assert report.batch == 4 and report.declared_batch == 4, report.reason
    assert report.batch_note == f"declared batch 4 kept: {why}"
    assert report.status == "failed"  # it ran (no loss): the declared batch loaded


def test_batchnorm_in_train_keeps_the_declared_batch(
    tmp_path: Path, caffe_session: Session
) -> None:
    net = tmp_path / "bn.prototxt"
    net.write_text(
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 3 dim: 2 } } }\n"
        'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" }\n'
    )
    train = validate_net(net, batch=1, phase="TRAIN", session=caffe_session)
    assert train.batch == 3 and "BatchNorm layer 'bn'" in train.batch_note
    test = validate_net(net, batch=1, phase="TEST", session=caffe_session)
    assert test.batch == 1 and test.batch_note == ""


DEPLOY_SUBSET = [  # one of each family: plain, Inception, residual, depthwise, fire modules
    "BVLC__caffe__models__bvlc_alexnet__deploy.prototxt",
    "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt",
    "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
    "shicai__MobileNet-Caffe__mobilenet_v2_deploy.prototxt",
    "forresti__SqueezeNet__SqueezeNet_v1.1__deploy.prototxt",
    "BVLC__caffe__examples__mnist__lenet.prototxt",
]


def _with_loss(net: Path, folder: Path) -> Path:
    """``net`` with force_backward and a sum-of-squares loss on its logits (what its final
    Softmax reads; a saturated Softmax of random weights has no gradient): a net whose input
    gradient validation checks."""
    doc = load(net)
    force_backward(doc)
    view = NetView(doc)
    [output] = view.outputs()
    last = view.layers[output.producer]
    logits = last.reads[0].blob if last.type == "Softmax" else output.blob
    add_loss(doc, logits, LossHead(kind="sumsq"))
    path = folder / net.name
    path.write_text(doc.dumps())
    return path


def test_batch_one_and_the_smallest_extent_reach_the_declared_verdict(
    corpus: Path, tmp_path: Path
) -> None:
    # Six of the corpus's eleven deploy nets (one per family; the other five repeat a family
    # at more cost), as written and with a loss, so that the verdict rests on a real gradient.
    written = [corpus / name for name in DEPLOY_SUBSET]
    nets = written + [_with_loss(net, tmp_path) for net in written]
    declared = validate_files(nets, jobs=2, random_weights=True)
    ones = validate_files(nets, jobs=2, batch=1, random_weights=True)
    small = validate_files(nets, jobs=2, batch=1, extent="smallest", random_weights=True)
    for one, least, full in zip(ones, small, declared, strict=True):
        assert (one.status, one.cause) == (full.status, full.cause), one.net
        assert (least.status, least.cause) == (full.status, full.cause), least.net
        assert one.batch == 1 or one.batch_note, one.net
        assert {b: s[1:] for b, s in one.blobs.items()} == {
            b: s[1:] for b, s in full.blobs.items()
        }, one.net
        assert least.blobs == one.blobs, least.net  # reported at the declared extent
        assert least.extent != least.declared_extent or least.extent_note, least.net
    assert [r.status for r in ones[len(written) :]] == ["valid"] * len(written)
    assert any(r.declared_batch != 1 for r in declared)  # the subset does test a change
    reduced = [r for r in small if r.extent != r.declared_extent]
    assert len(reduced) >= len(nets) // 2  # and so does the extent: most nets shrink
    kept = {Path(r.net).name: r.extent_note for r in small if r.extent == r.declared_extent}
    assert all(note.startswith("declared extent kept: ") for note in kept.values()), kept


#: Makes the extent planner in each Caffe worker claim that a 1x1 input runs like the
#: declared one: Caffe then aborts on a 3x3 convolution without padding.
_LYING_PLANNER = """
import protoedit.net.extent as extent

def _one_by_one(text, phase, path="<net>"):
    found = extent.Extent({}, {})
    found.declared = {"data": [1, 1, 8, 8]}
    found.shapes = {"data": [1, 1, 1, 1]}
    return found

extent.extent_of = _one_by_one
"""


def test_a_caffe_abort_at_the_smallest_extent_runs_the_net_again_at_the_declared_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sitecustomize.py").write_text(_LYING_PLANNER)
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}:{os.environ.get('PYTHONPATH', '')}")
    net = tmp_path / "net.prototxt"
    net.write_text(
        'force_backward: true\nlayer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }\n"
        'layer { name: "c" type: "Convolution" bottom: "data" top: "c" '
        "convolution_param { num_output: 2 kernel_size: 3 } }\n"
        'layer { name: "loss" type: "Reduction" bottom: "c" top: "loss" loss_weight: 1 '
        "reduction_param { operation: SUMSQ } }\n"
    )
    [report, again] = validate_files(
        [net, EUCLIDEAN], jobs=1, extent="smallest", random_weights=True
    )
    assert report.status == "valid", report.reason
    assert report.extent == report.declared_extent == {"data": [8, 8]}
    assert report.extent_note.startswith("declared extent kept: at the smallest extent Caffe ")
    assert "aborted (" in report.extent_note
    assert again.status == "valid"  # the worker that died was replaced


def test_cli_many_files_json_lines_junit_and_worst_exit_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    junit = tmp_path / "report.xml"
    nets = [str(EUCLIDEAN), str(LENET), str(VALIDATE / "missing_bottom.prototxt")]
    assert cli_main(["validate", *nets, "--json", "--junit-xml", str(junit), "-j", "2"]) == 2
    lines = capsys.readouterr().out.splitlines()
    assert [json.loads(line)["net"] for line in lines] == nets
    assert [json.loads(line)["exit_code"] for line in lines] == [0, 1, 2]
    suite = ET.parse(junit).getroot()
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("3", "1", "1")
    cases = suite.findall("testcase")
    assert [c.get("name") for c in cases] == nets
    assert cases[0].find("failure") is None and cases[1].find("failure") is not None
    assert "Unknown bottom blob" in (cases[2].find("error").get("message") or "")  # type: ignore[union-attr]


def test_aux_validate_reaches_the_verdict_at_batch_1_without_parameter_gradients(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "aux.prototxt"
    argv = ["aux", str(LENET), "--target", "conv2", "--validate", "--random-weights"]
    assert cli_main([*argv, "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "batch: 1 (declared 2)" in err and "parameter gradients: skipped" in err
    assert "extent: data 13x13 (declared 28x28)" in err
    assert "\nvalid: " in err
    assert "dim: 2" in out.read_text()  # the net written keeps its declared batch


_PARAM_DIFFS = """
import sys
import caffe
import caffe.proto.caffe_pb2 as pb
import numpy as np
from google.protobuf import text_format
from protoedit.validate.netplan import gate_backward

param = text_format.Parse(open(sys.argv[1]).read(), pb.NetParameter())
if sys.argv[2] == "gated" and gate_backward(param):
    sys.exit(print("refused", gate_backward(param)))
path = sys.argv[1] + "." + sys.argv[2]
open(path, "w").write(text_format.MessageToString(param))
caffe.set_mode_cpu()
net = caffe.Net(path, caffe.TEST)
net.params["conv"][0].data[...] = 0.5
net.blobs["data"].data[...] = np.arange(net.blobs["data"].count).reshape(net.blobs["data"].shape)
net.forward()
net.backward()
print(float(np.abs(net.params["conv"][0].diff).sum()), float(np.abs(net.blobs["data"].diff).sum()))
"""


@pytest.mark.parametrize(
    "stopper", ["param { lr_mult: 0 } param { lr_mult: 0 }", "propagate_down: false"]
)
def test_force_backward_computes_parameter_gradients_the_gate_does_not(
    tmp_path: Path, stopper: str
) -> None:
    # Caffe's Net::Init sets param_propagate_down on every parameter under force_backward,
    # whatever lr_mult or propagate_down say; without force_backward it follows lr_mult.
    import subprocess
    import sys

    from protoedit.caffe import child_environment

    net = tmp_path / "net.prototxt"
    net.write_text(
        "force_backward: true\n"
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 1 dim: 4 dim: 4 } } }\n"
        f'layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv" {stopper}\n'
        "  convolution_param { num_output: 2 kernel_size: 3 } }\n"
        'layer { name: "loss" type: "Reduction" bottom: "conv" top: "loss" loss_weight: 1 }\n'
    )
    outputs = {}
    for mode in ("as_written", "gated"):
        run = subprocess.run(
            [sys.executable, "-c", _PARAM_DIFFS, str(net), mode],
            capture_output=True,
            text=True,
            env=child_environment(),
            check=True,
        )
        outputs[mode] = run.stdout.split()
    weight_grad, input_grad = (float(x) for x in outputs["as_written"])
    assert weight_grad > 0 and input_grad > 0  # computed although the net says not to
    if "propagate_down" in stopper:
        # Without force_backward, propagate_down: false would hold: the gate leaves it alone.
        assert outputs["gated"][:2] == ["refused", "layer"]
        return
    gated_weight_grad, gated_input_grad = (float(x) for x in outputs["gated"])
    assert gated_weight_grad == 0.0
    assert gated_input_grad == input_grad  # the same input gradient, exactly
