"""``upgrade`` on solver files: Caffe's ``UpgradeSolverAsNeeded`` (``solver_type`` enum to
``type`` string), inline nets upgraded as net files, and "nothing to upgrade"."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from google.protobuf import text_format

from protoedit import InputError, load, loads
from protoedit.cli import main
from protoedit.lint import findings
from protoedit.rewrites import needs_upgrade, upgrade
from protoedit.rewrites.upgrade import SOLVER_TYPES

SOLVER = "# train\nbase_lr: 0.01\nsolver_type: {}  # the old enum\nmax_iter: 100\n"
CONSOLIDATED = "BVLC__caffe__examples__mnist__lenet_consolidated_solver.prototxt"


@pytest.mark.parametrize("old", sorted(SOLVER_TYPES))
def test_solver_type_becomes_type_in_place(old: str) -> None:
    doc = loads(SOLVER.format(old))
    assert needs_upgrade(doc)
    report = upgrade(doc)
    new = SOLVER_TYPES[old]
    assert doc.dumps() == SOLVER.format(old).replace(f"solver_type: {old}", f'type: "{new}"')
    assert report.changed == [f'solver_type: {old} -> type: "{new}"']
    assert not doc.message.HasField("solver_type") and doc.message.type == new
    assert not needs_upgrade(doc)
    assert not list(findings(doc, None))  # no W204 left


def test_solver_type_and_type_together_are_refused() -> None:
    with pytest.raises(InputError, match="both 'solver_type' and 'type'"):
        upgrade(loads('solver_type: ADAM\ntype: "SGD"\n', path="s.prototxt"))


def test_inline_v1_net_is_upgraded(corpus: Path) -> None:
    doc = load(corpus / CONSOLIDATED)
    assert needs_upgrade(doc)
    report = upgrade(doc)
    assert "net_param: layer \"conv1\": V1 'layers' entry upgraded" in report.changed
    net = doc.message.net_param
    assert len(net.layers) == 0 and [layer.type for layer in net.layer][:4] == ["Data"] * 3 + [
        "Convolution"
    ]
    again = loads(doc.dumps())
    assert not needs_upgrade(again)
    assert [f.code for f in findings(again, None)] == []
    text = doc.dumps()
    assert '# The net protocol buffer definition\nnet_param {\n  name: "LeNet"\n  layer {\n' in text


def test_a_current_file_says_nothing_to_upgrade(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = corpus / "BVLC__caffe__examples__mnist__lenet_solver_adam.prototxt"
    assert main(["upgrade", str(path)]) == 0
    captured = capsys.readouterr()
    assert captured.err == "nothing to upgrade\n"
    assert captured.out == path.read_text()


def _caffe(tool: str, source: Path, out: Path) -> None:
    from protoedit.caffe.build import tool_path

    env = dict(os.environ, GLOG_minloglevel="2")
    subprocess.run([str(tool_path(tool)), str(source), str(out)], env=env, capture_output=True)
    assert out.is_file(), f"{tool} wrote nothing for {source.name}"


def _caffe_upgrade(path: Path, tmp: Path) -> bytes:
    """Caffe's result for a solver: ``upgrade_solver_proto_text`` for the solver (it leaves
    inline nets as they are), ``upgrade_net_proto_text`` for each inline net."""
    out = tmp / f"{path.stem}.solver.prototxt"
    _caffe("upgrade_solver_proto_text", path, out)
    solver = load(out).message
    nets = [solver.net_param, solver.train_net_param, *solver.test_net_param]
    for nth, net in enumerate(nets):
        if not net.ByteSize():
            continue
        source, upgraded = tmp / f"{path.stem}.net{nth}.prototxt", tmp / f"{path.stem}.up{nth}"
        source.write_text(text_format.MessageToString(net))
        _caffe("upgrade_net_proto_text", source, upgraded)
        net.CopyFrom(load(upgraded).message)
    return solver.SerializeToString(deterministic=True)  # type: ignore[no-any-return]


@pytest.mark.caffe
def test_solver_upgrade_equals_caffes_tools(corpus: Path, tmp_path: Path) -> None:
    files = [tmp_path / f"{old}.prototxt" for old in sorted(SOLVER_TYPES)]
    for path, old in zip(files, sorted(SOLVER_TYPES), strict=True):
        path.write_text(SOLVER.format(old))
    solvers = sorted(corpus.glob("*solver*.prototxt"))
    assert len(solvers) >= 3
    for path in files + solvers:
        doc = load(path)
        assert doc.message_type.endswith("SolverParameter"), path.name
        upgrade(doc)
        ours = loads(doc.dumps()).message.SerializeToString(deterministic=True)
        assert ours == _caffe_upgrade(path, tmp_path), path.name
