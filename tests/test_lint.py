"""Net and solver lint findings: codes and places (list-form fields and inline nets too)."""

from __future__ import annotations

from pathlib import Path

import pytest

from protoedit import loads
from protoedit.lint import findings
from protoedit.net.layers import BVLC_TYPES
from protoedit.net.state import NetState, layer_included


def _found(text: str, known: frozenset[str] | None = None) -> list[tuple[str, int]]:
    """(code, source offset) of each finding."""
    return [(f.code, f.pos) for f in findings(loads(text), known)]


def _at(text: str, snippet: str, nth: int = 0) -> int:
    """The offset of the ``nth`` occurrence of ``snippet``."""
    pos = -1
    for _ in range(nth + 1):
        pos = text.index(snippet, pos + 1)
    return pos


def test_legacy_solver_type_is_w204_at_its_field() -> None:
    doc = loads("base_lr: 0.01\n# the solver\nsolver_type: ADAM\n")
    [finding] = findings(doc, None)
    assert finding.code == "W204" and finding.severity == "warning"
    assert doc.tree.line_col(finding.pos) == (3, 1)
    assert "'solver_type: ADAM'" in finding.message and "'type'" in finding.message
    assert list(findings(loads('base_lr: 0.01\ntype: "Adam"\n'), None)) == []


def test_inline_nets_of_a_solver_are_linted_where_they_are() -> None:
    text = (
        "base_lr: 0.01\n"
        "net_param {\n"
        '  name: "n"\n'
        '  layers { name: "relu" type: RELU bottom: "x" top: "x" }\n'
        "}\n"
        "test_net_param {\n"
        '  layer { name: "a" type: "ReLU" bottom: "x" top: "y" }\n'
        "}\n"
        "test_net_param {\n"
        '  layer { name: "b" type: "ReLU" bottom: "nothing" top: "y" }\n'
        "}\n"
    )
    assert sorted(_found(text)) == [
        ("E202", _at(text, 'bottom: "x"')),  # the V1 net's
        ("E202", _at(text, 'bottom: "x"', 1)),  # the first test net's
        ("E202", _at(text, 'bottom: "nothing"')),
        ("W202", _at(text, "layers {")),
    ]


def test_corpus_consolidated_solver_flags_its_v1_net(corpus: Path) -> None:
    path = corpus / "BVLC__caffe__examples__mnist__lenet_consolidated_solver.prototxt"
    doc = loads(path.read_text(), path=str(path))
    codes = [(f.code, doc.tree.line_col(f.pos)) for f in findings(doc, None)]
    text = path.read_text().splitlines()
    [(_, (line, col))] = [c for c in codes if c[0] == "W202"]
    assert text[line - 1][col - 1 :].startswith("layers {")


def test_findings_in_list_form_point_at_the_item() -> None:
    text = (
        "layer: [\n"
        '  { name: "in" type: "Input" top: "data" },\n'
        '  { name: "conv" type: "Convlution" bottom: ["data", "nope"] top: "conv" },\n'
        '  { name: "conv" type: "ReLU" bottom: "conv" top: "conv" }\n'
        "]\n"
    )
    assert sorted(_found(text, BVLC_TYPES)) == [
        ("E202", _at(text, '"nope"')),
        ("E205", _at(text, 'type: "Convlution"')),
        ("W203", _at(text, '{ name: "conv"', 1)),
    ]


def test_phase_rules_read_phase_names_from_the_schema() -> None:
    layer = loads('layer { name: "a" include { phase: TEST } }').message.layer[0]
    assert layer_included(layer, NetState("TEST"))
    assert not layer_included(layer, NetState("TRAIN"))


_STAGED = """\
layer { name: "train_data" type: "Input" top: "data" top: "label" include { phase: TRAIN } }
layer { name: "test_data" type: "Input" top: "data" include { phase: TEST } }
layer { name: "labels" type: "Input" top: "label" include { phase: TEST stage: "with-label" } }
layer { name: "loss" type: "EuclideanLoss" bottom: "data" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "data" bottom: "label" top: "acc"
  include { phase: TEST stage: "with-label" } }
layer { name: "bad" type: "Accuracy" bottom: "data" bottom: "label" top: "bad"
  include { phase: TEST not_stage: "with-label" } }
layer { name: "loss" type: "Accuracy" bottom: "data" bottom: "label" top: "acc2"
  include { phase: TRAIN } }
layer { name: "again" type: "ReLU" bottom: "loss" top: "loss" top: "loss" }
"""


def test_a_problem_counts_when_every_state_of_its_phase_running_the_layer_has_it() -> None:
    # "loss" lacks "label" in TEST without the stage only: a solver may always set the stage,
    # so it is no finding; "bad" runs only there, so its missing "label" is one.  The second
    # "loss" runs in TRAIN only, and the second top of "again" is not in place.
    found = list(findings(loads(_STAGED), BVLC_TYPES))
    assert [(f.code, f.pos, f.message) for f in found] == [
        (
            "E202",
            _at(_STAGED, 'bottom: "label"', 2),
            "bottom 'label' of layer 'bad' is produced by no earlier layer (phase TEST)",
        ),
        (
            "W203",
            _at(_STAGED, 'layer { name: "loss"', 1),
            "duplicate layer name 'loss' (phase TRAIN): weights are matched to layers by name",
        ),
        (
            "E203",
            _at(_STAGED, 'top: "loss"', 2),
            "top 'loss' of layer 'again' is already produced by another layer and this is "
            "not in place",
        ),
    ]


def test_every_layer_of_a_misspelt_type_gets_the_hint() -> None:
    text = "".join(f'layer {{ name: "c{i}" type: "Convlution" }}\n' for i in range(3))
    found = list(findings(loads(text), BVLC_TYPES))
    assert [f.pos for f in found] == [_at(text, "type:", i) for i in range(3)]
    assert all("(did you mean 'Convolution'" in f.message for f in found)


# -- the library entry points: check_text, check_file -----------------------------------------


def test_check_text_returns_the_findings_as_data() -> None:
    from protoedit import Finding, Location, check_text

    text = (
        'layer {\n  name: "c"\n  type: "Convolution"\n  bottom: "missing"\n  top: "c"\n'
        "  convolution_param { num_output: 2 kernal_size: 3 }\n}\n"
    )
    found = check_text(text, name="net.prototxt")
    assert [(f.code, f.severity, f.location) for f in found] == [
        ("E202", "error", Location("net.prototxt", 4, 3)),
        ("E101", "error", Location("net.prototxt", 6, 37)),
    ]
    assert all(isinstance(f, Finding) for f in found)
    assert str(found[1]).startswith("net.prototxt:6:37: E101 unknown field 'kernal_size'")
    assert check_text('name: "ok"\n') == []


def test_check_text_reports_a_syntax_error_as_one_finding() -> None:
    from protoedit import check_text

    [finding] = check_text("a { b: 1\n", name="bad.prototxt")
    assert (finding.code, finding.location.path, finding.severity) == (
        "E001",
        "bad.prototxt",
        "error",
    )
    assert "unclosed '{'" in finding.message


def test_check_file_is_what_protoedit_check_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from protoedit import check_file
    from protoedit.cli import main

    net = tmp_path / "net.prototxt"
    net.write_text('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }\nnme: "n"\n')
    found = check_file(net)
    assert found and {f.code for f in found} == {"E101", "E202"}
    assert main(["check", str(net)]) == 1
    assert capsys.readouterr().out.splitlines() == [str(f) for f in found]
