"""``protoedit diff``: layers matched by name, fields by value, places on both sides.

Goldens (``fixtures/diff/*.txt``) hold the text output on real corpus pairs; regenerate them
on purpose with ``PROTOEDIT_REGOLD=1`` and review the change.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from protoedit import cli, load, loads
from protoedit.diff import diff_docs, format_text, to_json
from protoedit.diff.compare import _longest_increasing
from protoedit.rewrites import LossHead, aux, upgrade

from .helpers import CORPUS, FIXTURES

GOLDEN = FIXTURES / "diff"
ALEXNET = "BVLC__caffe__models__bvlc_alexnet__{}.prototxt"
LENET = "BVLC__caffe__examples__mnist__lenet.prototxt"
LEGACY = [  # V0 and V1 files of the corpus, each against its upgrade
    "BVLC__caffe__examples__imagenet__imagenet_deploy.prototxt",
    "BVLC__caffe__examples__imagenet__imagenet_train_val.prototxt",
    "BVLC__caffe__examples__siamese__mnist_siamese_train_test__v1_rc.prototxt",
    "ethereon__netscope__presets__vgg-16.prototxt",
    "BVLC__caffe__examples__lenet__lenet_train.prototxt",
    "BVLC__caffe__models__imagenet.prototxt",
    "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",  # input header
]


def _load(corpus: Path, name: str) -> object:
    return loads((corpus / name).read_text(), path=name)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("PROTOEDIT_REGOLD"):  # regenerate on purpose, then review the diff
        path.write_text(text)
    assert text == path.read_text()


# -- golden pairs from the corpus ----------------------------------------------------------


def test_golden_train_val_against_deploy(corpus: Path) -> None:
    old, new = _load(corpus, ALEXNET.format("train_val")), _load(corpus, ALEXNET.format("deploy"))
    result = diff_docs(old, new, phase="TEST")  # type: ignore[arg-type]
    _golden("alexnet_train_val_vs_deploy.txt", format_text(result))
    assert {e.layer for e in result.removed} == {"accuracy", "loss"}
    assert [e.layer for e in result.added] == ["prob"]
    data = next(c for c in result.changed if c.layer == "data")
    assert [(c.field, c.old, c.new) for c in data.rewired] == [
        ("top", '["data", "label"]', '["data"]')
    ]


@pytest.mark.parametrize("name", LEGACY)
def test_legacy_net_against_its_upgrade_is_no_semantic_change(corpus: Path, name: str) -> None:
    old = _load(corpus, name)
    new = loads(old.dumps(), path="upgraded.prototxt")  # type: ignore[attr-defined]
    upgrade(new)
    new = loads(new.dumps(), path="upgraded.prototxt")
    assert "layers" not in {f.name.text for f in new.tree.fields}
    text = old.dumps()  # type: ignore[attr-defined]
    result = diff_docs(old, new)  # type: ignore[arg-type]
    assert result.same, format_text(result)
    assert old.dumps() == text  # type: ignore[attr-defined]  # upgraded a copy, not the caller's
    if name == LEGACY[0]:
        _golden("imagenet_deploy_v1_vs_upgrade.txt", format_text(result))


def test_legacy_net_against_a_changed_upgrade_shows_the_change(corpus: Path) -> None:
    """The upgrade is not a blindfold: a changed value in the upgraded file is reported,
    with the V1 file's own line for the old value."""
    name = LEGACY[0]
    old = _load(corpus, name)
    text = loads(old.dumps())  # type: ignore[attr-defined]
    upgrade(text)
    changed = text.dumps().replace("num_output: 4096", "num_output: 2048", 1)
    result = diff_docs(old, loads(changed, path="new.prototxt"))  # type: ignore[arg-type]
    [change] = result.changed
    [field] = change.fields
    assert (change.layer, field.field, field.old, field.new) == (
        "fc6",
        "inner_product_param.num_output",
        "4096",
        "2048",
    )
    source = (corpus / name).read_text().splitlines()
    assert "num_output: 4096" in source[field.old_at.line - 1]
    assert "num_output: 2048" in changed.splitlines()[field.new_at.line - 1]


def test_golden_net_against_its_aux_rewrite(corpus: Path) -> None:
    old = _load(corpus, LENET)
    rewritten = loads(old.dumps(), path=LENET)  # type: ignore[attr-defined]
    report = aux(rewritten, "conv2", LossHead("channel", 0, "mean", 1.0))
    new = loads(rewritten.dumps(), path="lenet.aux.prototxt")
    result = diff_docs(old, new)  # type: ignore[arg-type]
    _golden("lenet_vs_aux_conv2.txt", format_text(result))
    assert [c.field for c in result.net] == ["force_backward"]
    dropped = {line.split("'")[1] for line in report.dropped}
    assert {e.layer for e in result.removed} == dropped
    assert {e.layer for e in result.added} == {layer.name for layer in new.message.layer} - {
        layer.name
        for layer in old.message.layer  # type: ignore[attr-defined]
    }


# -- what is and is not a change -----------------------------------------------------------

NET = """name: "tiny"
layer {
  name: "data"
  type: "Input"
  top: "data"
  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }
}
layer {
  name: "conv1"
  type: "Convolution"
  bottom: "data"
  top: "conv1"
  convolution_param { num_output: 4 kernel_size: 3 }
}
layer {
  name: "relu1"
  type: "ReLU"
  bottom: "conv1"
  top: "conv1"
}
layer {
  name: "fc"
  type: "InnerProduct"
  bottom: "conv1"
  top: "fc"
  inner_product_param { num_output: 2 }
}
"""

REFORMATTED = """# the same net, laid out and commented differently
name: 'tiny'
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer {
    name: "conv1"   # the first convolution
    type: "Convolution"
    bottom: "data"
    top: "conv1"
    convolution_param {
        num_output: 4
        kernel_size: 3
        bias_term: true   # the default, spelt out
    }
}
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
        inner_product_param { num_output: 2 } }
"""


def test_layout_comments_and_spelt_out_defaults_are_no_change() -> None:
    result = diff_docs(loads(NET, path="a"), loads(REFORMATTED, path="b"))
    assert result.same, format_text(result)
    assert format_text(result).splitlines()[-1] == "no semantic change"


def test_text_reports_layout_and_comment_changes_per_layer() -> None:
    result = diff_docs(loads(NET, path="a"), loads(REFORMATTED, path="b"), text=True)
    assert not result.same
    assert [t.what for t in result.text] == [
        "layer 'data'",
        "layer 'conv1'",
        "layer 'relu1'",
        "layer 'fc'",
        "outside the layers",
    ]
    assert not (result.changed or result.added or result.removed or result.moved)
    same = diff_docs(loads(NET, path="a"), loads(NET, path="b"), text=True)
    assert same.same


def test_changed_field_has_old_and_new_value_and_both_places() -> None:
    new_text = NET.replace("num_output: 4 kernel_size: 3", "num_output: 8 kernel_size: 3 pad: 1")
    new_text = new_text.replace("\nlayer {", "\n\n\nlayer {")  # move the new file's lines
    result = diff_docs(loads(NET, path="a.prototxt"), loads(new_text, path="b.prototxt"))
    [change] = result.changed
    assert change.layer == "conv1"
    assert [(f.field, f.old, f.new) for f in change.fields] == [
        ("convolution_param.num_output", "4", "8"),
        ("convolution_param.pad", "[]", "[1]"),
    ]
    num = change.fields[0]
    old_line = 1 + NET.splitlines().index("  convolution_param { num_output: 4 kernel_size: 3 }")
    new_line = 1 + new_text.splitlines().index(
        "  convolution_param { num_output: 8 kernel_size: 3 pad: 1 }"
    )
    assert new_line == old_line + 4  # two blank lines above each of the first two layers
    column = 1 + NET.splitlines()[old_line - 1].index("num_output")
    assert str(num.old_at) == f"a.prototxt:{old_line}:{column}"
    assert str(num.new_at) == f"b.prototxt:{new_line}:{column}"
    # pad is absent in the old file: its place is the nearest enclosing field written there
    assert str(change.fields[1].old_at) == f"a.prototxt:{old_line}:3"  # convolution_param


def test_rewiring_is_reported_apart_from_field_changes() -> None:
    new_text = NET.replace('bottom: "conv1"\n  top: "fc"', 'bottom: "data"\n  top: "fc"')
    result = diff_docs(loads(NET, path="a"), loads(new_text, path="b"))
    [change] = result.changed
    assert change.layer == "fc" and not change.fields
    assert [(r.field, r.old, r.new) for r in change.rewired] == [
        ("bottom", '["conv1"]', '["data"]')
    ]
    assert "(rewired; a:" in format_text(result)


def test_floats_compare_by_value_and_print_as_float32() -> None:
    a = NET.replace("num_output: 2 }", "num_output: 2 weight_filler { std: 0.1 } }")
    b = NET.replace("num_output: 2 }", "num_output: 2 weight_filler { std: 0.10 } }")
    c = NET.replace("num_output: 2 }", "num_output: 2 weight_filler { std: 0.2 } }")
    assert diff_docs(loads(a), loads(b)).same
    [field] = diff_docs(loads(a), loads(c)).changed[0].fields
    assert (field.old, field.new) == ("0.1", "0.2")


def test_added_removed_and_moved_layers() -> None:
    blocks = NET.split("layer {")
    header, data, conv, relu, fc = blocks
    extra = '\n  name: "drop"\n  type: "Dropout"\n  bottom: "fc"\n  top: "fc"\n}\n'
    new_text = "layer {".join([header, data, relu, conv, fc, extra])  # relu1 before conv1
    new_text = new_text.replace('name: "fc"', 'name: "classifier"')
    result = diff_docs(loads(NET, path="a"), loads(new_text, path="b"))
    assert [(e.layer, e.type) for e in result.removed] == [("fc", "InnerProduct")]
    assert [(e.layer, e.type) for e in result.added] == [
        ("classifier", "InnerProduct"),
        ("drop", "Dropout"),
    ]
    [move] = result.moved
    assert (move.layer, move.old_after, move.new_after) in {
        ("relu1", "conv1", "data"),
        ("conv1", "data", "relu1"),
    }


def test_moves_are_the_layers_outside_a_longest_increasing_run() -> None:
    assert _longest_increasing([0, 1, 2, 3]) == {0, 1, 2, 3}
    assert len(_longest_increasing([3, 2, 1, 0])) == 1
    order = [0, 5, 1, 2, 6, 3, 4]
    keep = _longest_increasing(order)
    assert [order[i] for i in sorted(keep)] == [0, 1, 2, 3, 4]


def test_duplicate_names_match_in_order_and_phase_picks_one() -> None:
    """Train/test twins share a name: a phase-less layer pairs with the TEST twin, or with the
    twin of the phase given by --phase; the same-named layers otherwise pair in order."""
    twins = NET.replace(
        'layer {\n  name: "data"\n  type: "Input"',
        'layer {\n  name: "data"\n  type: "Input"\n  include { phase: TRAIN }',
    ).replace(
        'layer {\n  name: "conv1"',
        'layer {\n  name: "data"\n  type: "Input"\n  top: "data"\n  include { phase: TEST }\n'
        "  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } }\n}\nlayer {\n"
        '  name: "conv1"',
        1,
    )
    result = diff_docs(loads(twins, path="a"), loads(NET, path="b"))
    # Without --phase the phase-less Input pairs with the TEST twin (a deploy net is the TEST
    # net), not with the first by occurrence: the TRAIN twin, written first, is the one removed.
    [removed] = result.removed
    assert removed.layer == "data#2" and removed.at.line == 2
    [paired] = [c for c in result.changed if c.layer == "data"]
    assert ("input_param.shape[0].dim", "[2, 3, 8, 8]", "[1, 3, 8, 8]") in [
        (f.field, f.old, f.new) for f in paired.fields
    ]
    tested = diff_docs(loads(twins, path="a"), loads(NET, path="b"), phase="TEST")
    assert not tested.removed
    [change] = tested.changed
    assert ("input_param.shape[0].dim", "[2, 3, 8, 8]", "[1, 3, 8, 8]") in [
        (f.field, f.old, f.new) for f in change.fields
    ]


def test_train_val_against_deploy_pairs_the_data_layers_by_phase() -> None:
    """AlexNet's train_val against its deploy (report item 20): the TEST ``Data`` layer pairs
    with the deploy's ``Input``; the TRAIN one (LMDB train set, mirror) is the one removed."""
    base = CORPUS / "BVLC__caffe__models__bvlc_alexnet"
    old = load(base.with_name(base.name + "__train_val.prototxt"))
    new = load(base.with_name(base.name + "__deploy.prototxt"))
    result = diff_docs(old, new)
    [data] = [c for c in result.changed if c.layer == "data"]
    shown = {f.field: (f.old, f.new) for f in data.fields}
    assert shown["include[0].phase"] == ("TEST", "(absent)")
    assert "transform_param.mirror" not in shown  # the TRAIN layer's field
    assert shown["data_param.source"][0] == '"examples/imagenet/ilsvrc12_val_lmdb"'
    removed = [e for e in result.removed if e.type == "Data"]
    assert len(removed) == 1 and removed[0].at.line == 2


def test_twins_of_both_phases_pair_phase_by_phase_whatever_their_order() -> None:
    """TRAIN and TEST twins written in opposite orders pair TRAIN with TRAIN, TEST with TEST."""
    twin = (
        'layer {{ name: "d" type: "Input" top: "d" include {{ phase: {phase} }} '
        "input_param {{ shape {{ dim: {n} dim: 1 }} }} }}\n"
    )
    a = twin.format(phase="TRAIN", n=4) + twin.format(phase="TEST", n=2)
    b = twin.format(phase="TEST", n=2) + twin.format(phase="TRAIN", n=4)
    result = diff_docs(loads(a, path="a"), loads(b, path="b"))
    assert not result.changed and not result.removed and not result.added
    assert [m.layer for m in result.moved]
    only_train = diff_docs(loads(twin.format(phase="TRAIN", n=4), path="a"), loads(b, path="b"))
    assert not only_train.changed and not only_train.removed
    assert [(e.layer, e.type) for e in only_train.added] == [("d#2", "Input")]


def test_json_has_every_kind_with_places() -> None:
    new_text = NET.replace("num_output: 2", "num_output: 3")
    data = json.loads(to_json(diff_docs(loads(NET, path="a"), loads(new_text, path="b"))))
    assert set(data) == {
        "old",
        "new",
        "same",
        "net",
        "removed",
        "added",
        "changed",
        "moved",
        "text",
        "cost",
    }
    assert data["same"] is False
    assert data["cost"] is None  # counted only when asked for (costs=True, as the command does)
    [change] = data["changed"]
    assert change["fields"] == [
        {
            "field": "inner_product_param.num_output",
            "old": 2,
            "new": 3,
            "old_at": "a:26:25",
            "new_at": "b:26:25",
        }
    ]


# -- list-form layers: each layer is its own item, wherever it is written -------------------

LISTED = """name: "tiny"
layer: [
  { name: "data" type: "Input" top: "data" input_param { shape { dim: [1, 3, 8, 8] } } },
  { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
    param: [{ lr_mult: 1 }, { lr_mult: 2 }]
    convolution_param { num_output: 4 kernel_size: 3 } }
]
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer: [{ name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
          inner_product_param { num_output: 2 } }]
layer: []
"""

#: The same net with one ``layer { ... }`` field per layer.
BLOCKED = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [1, 3, 8, 8] } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
  param { lr_mult: 1 } param { lr_mult: 2 }
  convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
  inner_product_param { num_output: 2 } }
"""


def _at(path: str, text: str, offset: int) -> str:
    """``path:line:col`` of an offset of ``text``."""
    line_start = text.rfind("\n", 0, offset) + 1
    return f"{path}:{text.count(chr(10), 0, offset) + 1}:{offset - line_start + 1}"


def _place(path: str, text: str, needle: str) -> str:
    """``path:line:col`` of the first ``needle`` in ``text``."""
    return _at(path, text, text.index(needle))


def _layer_place(path: str, text: str, name: str) -> str:
    """Where layer ``name`` is: its ``layer`` field, or its ``{`` in a list."""
    at = text.index(f'{{ name: "{name}"')
    field = at - len("layer ")
    return _at(path, text, field if text.startswith("layer {", field) else at)


def test_list_form_net_against_its_block_form_twin_differs_in_text_only() -> None:
    assert diff_docs(loads(LISTED, path="a"), loads(BLOCKED, path="b")).same
    assert diff_docs(loads(LISTED, path="a"), loads(LISTED, path="b"), text=True).same
    result = diff_docs(loads(LISTED, path="a"), loads(BLOCKED, path="b"), text=True)
    names = ["data", "conv1", "fc"]  # relu1 is written alike in both
    assert [t.what for t in result.text[:3]] == [f"layer '{n}'" for n in names]
    for change, name in zip(result.text, names, strict=False):
        assert str(change.old_at) == _layer_place("a", LISTED, name)
        assert str(change.new_at) == _layer_place("b", BLOCKED, name)
    commented = LISTED.replace('top: "fc"\n', 'top: "fc"  # the classifier\n')
    [comment] = diff_docs(loads(LISTED, path="a"), loads(commented, path="b"), text=True).text
    assert (comment.what, str(comment.new_at)) == ("layer 'fc'", "b:9:9")  # an item's own text
    # the helper itself: an item of a list, a field of its own
    assert [_layer_place("a", LISTED, n) for n in ("data", "relu1", "fc")] == [
        "a:3:3",
        "a:8:1",
        "a:9:9",
    ]


def test_change_inside_a_list_form_layer_is_at_the_field_itself() -> None:
    new_text = LISTED.replace("num_output: 4", "num_output: 8").replace("lr_mult: 2", "lr_mult: 3")
    new_text = new_text.replace("layer: [\n", "layer: [\n\n  # widened\n")  # shift the lines
    result = diff_docs(loads(LISTED, path="a"), loads(new_text, path="b"))
    [change] = result.changed
    assert change.layer == "conv1"
    assert str(change.old_at) == _layer_place("a", LISTED, "conv1")
    assert str(change.new_at) == _layer_place("b", new_text, "conv1")
    places = {f.field: (str(f.old_at), str(f.new_at)) for f in change.fields}
    assert places == {
        "param[1].lr_mult": (
            _place("a", LISTED, "lr_mult: 2"),
            _place("b", new_text, "lr_mult: 3"),
        ),
        "convolution_param.num_output": (
            _place("a", LISTED, "num_output: 4"),
            _place("b", new_text, "num_output: 8"),
        ),
    }
    assert "(a:6:25 -> b:8:25)" in format_text(result)  # convolution_param.num_output


def test_mixed_forms_locate_every_layer_by_its_own_node() -> None:
    # old: a list, a block, a list, an empty list (as many `layer` fields as layers);
    # new: the lists written the other way round, conv1 changed, fc moved before relu1
    new_text = """name: "tiny"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: [1, 3, 8, 8] } } }
layer: [
  { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
    param: [{ lr_mult: 1 }, { lr_mult: 2 }]
    convolution_param { num_output: 4 kernel_size: 5 } },
  { name: "fc" type: "InnerProduct" bottom: "conv1" top: "fc"
    inner_product_param { num_output: 2 } }
]
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer: [{ name: "drop" type: "Dropout" bottom: "fc" top: "fc" }]
"""
    result = diff_docs(loads(LISTED, path="a"), loads(new_text, path="b"))
    [change] = result.changed
    assert (change.layer, str(change.old_at), str(change.new_at)) == (
        "conv1",
        _layer_place("a", LISTED, "conv1"),
        _layer_place("b", new_text, "conv1"),
    )
    [field] = change.fields
    assert field.field == "convolution_param.kernel_size"
    assert str(field.old_at) == _place("a", LISTED, "kernel_size: 3")
    assert str(field.new_at) == _place("b", new_text, "kernel_size: 5")
    [added] = result.added
    assert (added.layer, str(added.at)) == ("drop", _layer_place("b", new_text, "drop"))
    [moved] = result.moved
    assert moved.layer in {"fc", "relu1"}
    assert str(moved.old_at) == _layer_place("a", LISTED, moved.layer)
    assert str(moved.new_at) == _layer_place("b", new_text, moved.layer)
    data = json.loads(to_json(result))
    assert data["changed"][0]["fields"][0]["old_at"] == str(field.old_at)


def test_phase_keeps_list_form_layers_with_their_own_nodes() -> None:
    twins = LISTED.replace(
        'layer: [{ name: "fc"',
        'layer: [{ name: "fc" include { phase: TRAIN } },\n         { name: "fc"',
    )
    result = diff_docs(loads(twins, path="a"), loads(BLOCKED, path="b"), phase="TEST")
    assert result.same
    changed = BLOCKED.replace("num_output: 2", "num_output: 3")
    result = diff_docs(loads(twins, path="a"), loads(changed, path="b"), phase="TEST")
    [change] = result.changed
    assert str(change.old_at) == _at("a", twins, twins.index('{ name: "fc" type'))
    assert str(change.fields[0].old_at) == _place("a", twins, "num_output: 2")


# -- the command line ----------------------------------------------------------------------


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a, b, c = tmp_path / "a.prototxt", tmp_path / "b.prototxt", tmp_path / "c.prototxt"
    a.write_text(NET)
    b.write_text(REFORMATTED)
    c.write_text(NET.replace("num_output: 2", "num_output: 3"))
    assert cli.main(["diff", str(a), str(b)]) == 0
    assert cli.main(["diff", "--text", str(a), str(b)]) == 1
    assert cli.main(["diff", str(a), str(c)]) == 1
    out = capsys.readouterr().out
    assert f"inner_product_param.num_output: 2 -> 3    ({a}:26:25 -> {c}:26:25)" in out
    assert cli.main(["diff", "--json", str(a), str(c)]) == 1
    assert json.loads(capsys.readouterr().out)["changed"][0]["layer"] == "fc"
    assert cli.main(["diff", str(a), str(tmp_path / "missing.prototxt")]) == 2
    assert "missing.prototxt: cannot read" in capsys.readouterr().err
    c.write_text("layer { name: ")
    assert cli.main(["diff", str(a), str(c)]) == 2


def test_cli_usage_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["diff", "only-one.prototxt"])
    assert exit_info.value.code == 2
    assert "expected OLD NEW" in capsys.readouterr().err


# -- as a git diff driver --------------------------------------------------------------------


def _git(repo: Path, *args: str) -> str:
    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=str(repo.parent), GIT_PAGER="cat")
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_git_diff_with_the_driver_shows_the_semantic_diff(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    _git(repo, "config", "user.email", "t@example.com")
    _git(repo, "config", "user.name", "t")
    # What the README tells users to run, with this interpreter standing in for `protoedit`.
    driver = f"{shlex.quote(sys.executable)} -m protoedit.cli diff --git"
    _git(repo, "config", "diff.protoedit.command", driver)
    (repo / ".gitattributes").write_text("*.prototxt diff=protoedit\n")
    (repo / "net.prototxt").write_text(NET)
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "net")

    (repo / "net.prototxt").write_text(REFORMATTED)  # layout and comments only
    shown = _git(repo, "diff")
    assert shown.splitlines() == [
        "diff --protoedit a/net.prototxt b/net.prototxt",
        "--- a/net.prototxt",
        "+++ b/net.prototxt",
        "no semantic change",
    ]
    (repo / "net.prototxt").write_text(REFORMATTED.replace("num_output: 4", "num_output: 16"))
    shown = _git(repo, "diff")
    assert "~ layer 'conv1' (Convolution)" in shown
    places = "(a/net.prototxt:13:23 -> b/net.prototxt:11:9)"
    assert f"convolution_param.num_output: 4 -> 16    {places}" in shown
    assert "the first convolution" not in shown  # no line diff
    assert "@@" in _git(repo, "diff", "--no-ext-diff")  # without the driver: a line diff

    _git(repo, "commit", "-qam", "wider")
    (repo / "net.prototxt").write_text("layer { name: ")  # does not parse: a line diff instead
    shown = _git(repo, "diff")
    assert "(a line diff follows)" in shown
    assert "+layer { name: " in shown
    (repo / "new.prototxt").write_text(NET)  # a new file: every layer added
    _git(repo, "add", "new.prototxt")
    shown = _git(repo, "diff", "--cached", "--", "new.prototxt")
    assert "+ layer 'conv1' (Convolution)    b/new.prototxt:" in shown
