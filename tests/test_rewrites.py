"""Golden rewrites: fixtures/rewrites/<rewrite>/<case>.in.prototxt -> .out.prototxt.

Arguments sit beside each case in ``<case>.args.json`` and the report's lines in
``<case>.report`` (both regenerated with ``PROTOEDIT_REGOLD=1``); cases are found automatically.
Each case also checks that comments of surviving nodes survive and that a second run of an
idempotent rewrite changes nothing.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import pytest

from protoedit import Document, InputError, UnknownStageWarning, cli, load, loads
from protoedit.errors import BrokenResultError, Location, MissingArgumentError
from protoedit.lint import net_findings
from protoedit.rewrites import (
    LOSS_TOP,
    LossHead,
    RewriteReport,
    add_loss,
    aux,
    filter_net,
    force_backward,
    to_deploy,
    truncate,
    upgrade,
)
from protoedit.rewrites.check import lint_errors
from protoedit.syntax import Block, Field, Scalar, parse
from protoedit.syntax.printer import render_field

from .helpers import FIXTURES

GOLDEN = FIXTURES / "rewrites"
CASES = sorted(GOLDEN.glob("*/*.in.prototxt"))


def _comments(text: str) -> list[str]:
    return [line[line.index("#") :] for line in text.splitlines() if "#" in line]


def _layer_name(field: Field) -> str | None:
    if field.name.text != "layer" or not isinstance(field.value, Block):
        return None
    names = [f.value for f in field.value.fields if f.name.text == "name"]
    return names[0].raw.strip("\"'") if names and isinstance(names[0], Scalar) else None


def _head(args: dict[str, Any]) -> LossHead:
    position = tuple(args["position"]) if "position" in args else None
    kind = args.get("kind", "channel")
    return LossHead(
        kind, args.get("channel", 0), args.get("reduce"), args.get("weight", 1.0), position
    )


def apply(rewrite: str, doc: Document, args: dict[str, Any]) -> RewriteReport:
    """Run one rewrite by its folder name with the case's arguments."""
    after = args.get("after_inplace", False)
    if rewrite == "force_backward":
        return force_backward(doc)
    if rewrite == "filter":
        return filter_net(
            doc, args.get("phase", "TEST"), args.get("level", 0), tuple(args.get("stages", ()))
        )
    if rewrite == "truncate":
        return truncate(doc, args["target"], after_inplace=after)
    if rewrite == "add_loss":
        return add_loss(
            doc,
            args["target"],
            _head(args),
            after_inplace=after,
            target_channels=args.get("target_channels"),
        )
    if rewrite == "upgrade":
        return upgrade(doc)
    state = {"level": args.get("level", 0), "stages": tuple(args.get("stages", ()))}
    if rewrite == "to_deploy":
        return to_deploy(
            doc,
            args.get("phase", "TEST"),
            shape=args.get("shape"),
            input_channels=args.get("input_channels"),
            batch=args.get("batch"),
            **state,
        )
    if rewrite == "aux":
        return aux(
            doc,
            args["target"],
            _head(args),
            after_inplace=after,
            target_channels=args.get("target_channels"),
            shape=args.get("shape"),
            input_channels=args.get("input_channels"),
            phase=args.get("phase", "TEST"),
            batch=args.get("batch"),
            **state,
        )
    raise AssertionError(rewrite)


class _Arguments(dict[str, Any]):
    """A case's arguments, noting which ones :func:`apply` read."""

    def __init__(self, args: dict[str, Any]) -> None:
        super().__init__(args)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        self.read.add(key)
        return super().get(key, default)


def run_rewrite(rewrite: str, doc: Document, args: dict[str, Any]) -> RewriteReport:
    """:func:`apply`, refusing an argument it did not read (a misspelt or renamed key in a
    case, or in the fuzz tests' draws, would otherwise be dropped without a word)."""
    given = _Arguments(args)
    report = apply(rewrite, doc, given)
    unread = sorted(set(args) - given.read)
    assert not unread, f"{rewrite} does not take {unread}"
    return report


def test_run_rewrite_refuses_an_argument_it_does_not_read() -> None:
    net = 'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }\n'
    report = run_rewrite("truncate", loads(net), {"target": "data", "after_inplace": True})
    assert report.lines()
    with pytest.raises(AssertionError, match=r"truncate does not take \['channels'\]"):
        run_rewrite("truncate", loads(net), {"target": "data", "channels": 3})


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name.split('.')[0]}")
def test_golden(case: Path) -> None:
    rewrite = case.parent.name
    stem = case.name.removesuffix(".in.prototxt")
    args = json.loads((case.parent / f"{stem}.args.json").read_text())
    source = case.read_text()
    doc = loads(source, path=str(case))
    report = run_rewrite(rewrite, doc, args)
    result = doc.dumps()
    expected_path = case.parent / f"{stem}.out.prototxt"
    report_path = case.parent / f"{stem}.report"
    lines = "".join(f"{line}\n" for line in report.lines())
    if os.environ.get("PROTOEDIT_REGOLD"):  # regenerate on purpose, then review the diff
        expected_path.write_text(result)
        report_path.write_text(lines)
    assert result == expected_path.read_text()
    assert lines == report_path.read_text()  # the report is output too: pinned line by line
    loads(result)  # still a valid net
    # Comments of the nodes that survive are still there, word for word; a removed layer
    # takes its own comments with it.
    kept = {layer.name for layer in doc.message.layer}
    for field in parse(source).fields:
        name = _layer_name(field)
        if name is not None and name not in kept:
            continue
        for comment in _comments(render_field(field)):
            assert comment in result, (case.name, comment)
    if rewrite in ("force_backward", "filter", "truncate", "upgrade"):
        again = loads(result)
        run_rewrite(rewrite, again, args)
        assert again.dumps() == result


def test_ambiguous_target_names_both_candidates() -> None:
    doc = loads(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }\n'
        'layer { name: "x" type: "ReLU" bottom: "data" top: "y" }\n'
        'layer { name: "z" type: "ReLU" bottom: "y" top: "x" }\n'
    )
    with pytest.raises(
        InputError,
        match=r"'x' is both a layer \(writing 'y'\) and a blob "
        r"\(written by layer 'z'\); say layer:x or blob:x",
    ):
        truncate(doc, "x")
    truncate(doc, "blob:x")
    assert [layer.name for layer in doc.message.layer] == ["data", "x", "z"]


def test_unknown_target_suggests_names() -> None:
    doc = loads(
        'layer { name: "conv1" type: "Input" top: "conv1" input_param { shape { dim: 1 } } }'
    )
    with pytest.raises(InputError, match="did you mean 'conv1'"):
        truncate(doc, "conv2")


def test_aux_upgrades_and_converts_to_deploy_as_needed(corpus: Path) -> None:
    vgg = loads((corpus / "ethereon__netscope__presets__vgg-16.prototxt").read_text())
    report = aux(vgg, "conv1_1", LossHead("channel", 0))
    assert any("input header -> Input layer" in line for line in report.changed)
    assert [layer.type for layer in vgg.message.layer] == [
        "Input",
        "Convolution",
        "Slice",
        "Reduction",
        "Silence",
    ]
    text = (corpus / "BVLC__caffe__examples__mnist__lenet_train_test.prototxt").read_text()
    refusal = r"cannot tell the input's C/H/W .* give the shape$"
    with pytest.raises(MissingArgumentError, match=refusal) as caught:
        aux(loads(text), "conv1", LossHead())
    assert caught.value.needs == {"shape": None}
    train = loads(text)
    aux(train, "conv2", LossHead("channel", 3), shape=[1, 1, 28, 28])
    assert train.message.layer[0].input_param.shape[0].dim == [1, 1, 28, 28]


def test_aux_refuses_a_target_that_needs_a_layer_without_backward() -> None:
    embed = loads(
        'layer { name: "ids" type: "Input" top: "ids" input_param { shape { dim: 2 } } }\n'
        'layer { name: "emb" type: "Embed" bottom: "ids" top: "emb"\n'
        "  embed_param { num_output: 4 input_dim: 10 } }\n",
        path="embed.prototxt",
    )
    with pytest.raises(
        InputError, match=r"embed\.prototxt:2:1: layer 'emb' \(Embed\) cannot run backward"
    ):
        aux(embed, "emb", LossHead())


def test_channel_count_unknown_is_refused_unless_given() -> None:
    doc = loads(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 6 } } }\n'
        'layer { name: "r" type: "Tile" bottom: "data" top: "r"\n'
        "  tile_param { axis: 1 tiles: 3 } }\n"
    )
    with pytest.raises(MissingArgumentError, match="give the channel count") as caught:
        add_loss(doc, "r", LossHead("channel", 1))
    assert caught.value.needs == {"target_channels": None}
    add_loss(doc, "r", LossHead("channel", 1), target_channels=3)
    assert doc.message.layer[-2].type == "Reduction"


# -- results that would not load are refused, with what to pass ---------------------------

LRCN = "LisaAnne__lisa-caffe-public__examples__LRCN_activity_recognition__train_test_lstm_RGB"
AUTOENCODER = "BVLC__caffe__examples__mnist__mnist_autoencoder.prototxt"


def _cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_aux_refuses_stage_gated_data_and_names_the_stage(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = corpus / f"{LRCN}.prototxt"
    with pytest.raises(MissingArgumentError, match="they need stage 'test-on-test'") as caught:
        aux(load(source), "conv2", LossHead("channel", 3))
    assert caught.value.needs == {"stages": "test-on-test"}
    out = tmp_path / "lrcn.prototxt"
    args = ["aux", str(source), "--target", "conv2", "--channel", "3", "-o", str(out)]
    code, _, err = _cli(args, capsys)
    assert code == 2 and not out.exists()
    assert "hint: pass --stage test-on-test" in err
    # Following the hint: the reader is a Python layer, so the shape is asked for next.
    code, _, err = _cli([*args, "--stage", "test-on-test"], capsys)
    assert code == 2 and "hint: pass --shape N,C,H,W" in err
    code, _, err = _cli([*args, "--stage", "test-on-test", "--shape", "1,3,227,227"], capsys)
    assert code == 0, err
    result = load(out)
    assert not [f for f in net_findings(result, None) if f.severity == "error"]
    assert result.message.layer[0].type == "Input"


def test_to_deploy_refuses_a_data_layer_without_a_top_with_its_location() -> None:
    doc = loads(
        'layer { name: "d" type: "HDF5Data" hdf5_data_param { source: "x" batch_size: 1 } }\n'
        'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n'
    )
    with pytest.raises(InputError, match="data layer 'd' has no top") as error:
        to_deploy(doc, shape=[1, 3, 4, 4])
    assert error.value.location is not None and error.value.location.line == 1


def test_to_deploy_without_the_stage_says_which_stages_not_deploy_net(corpus: Path) -> None:
    doc = load(corpus / AUTOENCODER)
    with pytest.raises(
        MissingArgumentError,
        match=r"no data layer of the net runs in phase TEST: they need stage 'test-on-test' or "
        r"'test-on-train'",
    ):
        to_deploy(doc)
    report = to_deploy(doc, stages=["test-on-test"], shape=[1, 1, 28, 28])
    assert doc.message.layer[0].input_param.shape[0].dim == [1, 1, 28, 28]
    assert any("stages test-on-test" in line for line in report.changed)


def test_a_broken_result_is_refused() -> None:
    text = (
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 2 } } }\n'
        'layer { name: "a" type: "ReLU" bottom: "x" top: "a" }\n'
        'layer { name: "b" type: "Eltwise" bottom: "a" bottom: "nowhere" top: "b" }\n'
        'layer { name: "c" type: "ReLU" bottom: "x" top: "c" }\n'
    )
    with pytest.raises(BrokenResultError, match="bottom 'nowhere' of layer 'b'") as caught:
        aux(loads(text), "b", LossHead())  # an aux net is meant to run: the input's problem
    assert caught.value.findings == [
        "E202 bottom 'nowhere' of layer 'b' is produced by no earlier layer"
    ]
    doc = loads(text)
    truncate(doc, "b")  # truncate is not blamed for what the input already had
    assert [layer.name for layer in doc.message.layer] == ["in", "a", "b"]


def test_the_structured_errors_survive_pickling() -> None:
    missing = MissingArgumentError("give the shape", {"shape": None}, Location("n.prototxt", 3))
    broken = BrokenResultError("would not load", ["E202 bottom 'x' ..."], {"stages": "a"})
    for error in (missing, broken, missing.renamed({"shape": "input_shape"})):
        again = pickle.loads(pickle.dumps(error))
        assert (type(again), str(again), again.needs) == (type(error), str(error), error.needs)
    assert missing.renamed({"shape": "input_shape"}).needs == {"input_shape": None}
    assert pickle.loads(pickle.dumps(broken)).findings == broken.findings


def test_a_data_layer_of_the_other_phase_is_named(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = corpus / "chuanqi305__MobileNet-SSD__voc__MobileNetSSD_train.prototxt"
    with pytest.raises(MissingArgumentError, match="they run in phase TRAIN") as caught:
        to_deploy(load(source, lenient=True))
    assert caught.value.needs == {"phase": "TRAIN"}
    code, _, err = _cli(["to-deploy", str(source), "--lenient"], capsys)
    assert code == 2 and "hint: pass --phase TRAIN" in err


def test_add_loss_on_a_value_of_one_phase_is_refused() -> None:
    doc = loads(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 2 dim: 4 } } }\n'
        'layer { name: "t" type: "InnerProduct" bottom: "x" top: "t"\n'
        "  inner_product_param { num_output: 3 } include { phase: TEST } }\n"
    )
    with pytest.raises(BrokenResultError, match=r"produced by no earlier layer \(phase TRAIN\)"):
        add_loss(doc, "t", LossHead("logit", 1))


def test_truncate_keeps_the_data_layer_of_every_phase(corpus: Path) -> None:
    doc = load(corpus / "BVLC__caffe__examples__mnist__lenet_train_test.prototxt")
    truncate(doc, "conv1")
    layers = [
        (layer.name, layer.include[0].phase if len(layer.include) else None)
        for layer in doc.message.layer
    ]
    assert layers == [("mnist", 0), ("mnist", 1), ("conv1", None)]


def test_python_data_layers_are_replaced_by_the_given_shape(corpus: Path) -> None:
    doc = load(corpus / "shelhamer__fcn.berkeleyvision.org__voc-fcn8s__train.prototxt")
    assert doc.message.layer[0].type == "Python"
    aux(doc, "conv2_1", LossHead("channel", 3), shape=[1, 3, 100, 100])
    first = doc.message.layer[0]
    assert (first.type, list(first.input_param.shape[0].dim)) == ("Input", [1, 3, 100, 100])
    assert "Python" not in {layer.type for layer in doc.message.layer}


def test_aux_refuses_a_shape_for_a_net_without_data_layers() -> None:
    deploy = loads((FIXTURES / "lenet_deploy.prototxt").read_text())
    with pytest.raises(InputError, match="shape given, but the net has no data layer"):
        aux(deploy, "conv1", LossHead(), shape=[1, 1, 28, 28])


# -- states: phase, level, stages ---------------------------------------------------------


def test_filter_output_stands_alone(corpus: Path) -> None:
    doc = load(corpus / AUTOENCODER)
    filter_net(doc, "TEST", stages=("test-on-train",))
    again = loads(doc.dumps())
    assert not [f for f in net_findings(again, None) if f.severity == "error"]
    assert not any(len(layer.include) or len(layer.exclude) for layer in again.message.layer)
    assert [layer.data_param.source for layer in again.message.layer[:1]] == [
        "examples/mnist/mnist_train_lmdb"
    ]


def test_unknown_states_are_refused(corpus: Path) -> None:
    doc = load(corpus / AUTOENCODER)
    with pytest.raises(InputError, match="not one string"):
        filter_net(doc, stages="test-on-train")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="unknown phase 'VAL'"):
        filter_net(doc, phase="VAL")
    assert len(doc.message.layer) == len(load(corpus / AUTOENCODER).message.layer)


def test_a_stage_no_rule_names_is_a_warning_and_the_state_caffes(corpus: Path) -> None:
    # Caffe builds a net for any stage (FilterNet's TestFilterInByNotStage): the stage only
    # matters to rules that name it, so the net is the one of the state without it.
    doc = load(corpus / AUTOENCODER)
    with pytest.warns(UnknownStageWarning) as caught:
        filter_net(doc, "TRAIN", stages=("bogus",))
    [warning] = caught
    assert str(warning.message) == (
        "no include or exclude rule names stage 'bogus' "
        "(the net's rules name 'test-on-test', 'test-on-train'); "
        "going on: Caffe builds the net for that state all the same"
    )
    assert (warning.message.stage, warning.message.named) == (  # type: ignore[union-attr]
        "bogus",
        ["test-on-test", "test-on-train"],
    )
    plain = load(corpus / AUTOENCODER)
    filter_net(plain, "TRAIN")
    assert doc.dumps() == plain.dumps()
    with (
        pytest.warns(UnknownStageWarning, match="did you mean 'test-on-test'"),
        pytest.raises(MissingArgumentError, match="they need stage 'test-on-test'"),
    ):
        to_deploy(load(corpus / AUTOENCODER), stages=("test-on-tset",))


def test_aux_warns_of_a_stage_no_rule_names(corpus: Path) -> None:
    doc = load(corpus / AUTOENCODER)
    with pytest.warns(UnknownStageWarning, match="stage 'extra'"):
        report = aux(
            doc,
            "encode1",
            LossHead("channel", 0),
            shape=[1, 1, 28, 28],
            stages=("test-on-train", "extra"),
        )
    assert report.changed  # it went on
    assert "Reduction" in [layer.type for layer in doc.message.layer]  # the head


def test_the_cli_prints_the_stage_warning_as_one_line_and_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "net.prototxt"
    net.write_text(
        'layer { name: "data" type: "Data" top: "data"'
        ' data_param { source: "db" batch_size: 1 } }\n'
        'layer { name: "kept" type: "ReLU" bottom: "data" top: "kept"'
        ' include { not_stage: "mystage" } }\n'
        'layer { name: "gone" type: "ReLU" bottom: "data" top: "gone"'
        ' include { stage: "mystage" } }\n'
    )
    for command in (["filter"], ["to-deploy", "--shape", "1,1,4,4"]):
        code, out, err = _cli([*command, str(net), "--stage", "other"], capsys)
        assert code == 0, err
        assert [line for line in err.splitlines() if "warning" in line] == [
            "protoedit: warning: no include or exclude rule names stage 'other' "
            "(the net's rules name 'mystage'); going on: Caffe builds the net for that state "
            "all the same"
        ]
        assert 'name: "kept"' in out and 'name: "gone"' not in out


def test_filter_flags_a_state_without_data_layers(corpus: Path) -> None:
    report = filter_net(load(corpus / AUTOENCODER), "TEST")
    assert report.flagged == [
        "no data layer is left for phase TEST (they need stage 'test-on-test' or 'test-on-train')"
    ]


def test_state_options_reach_to_deploy_and_aux(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "ae.prototxt"
    source = str(corpus / AUTOENCODER)
    code, _, err = _cli(
        ["to-deploy", source, "--stage", "test-on-train", "--shape", "3,1,28,28", "-o", str(out)],
        capsys,
    )
    assert code == 0, err
    assert load(out).message.layer[0].input_param.shape[0].dim == [3, 1, 28, 28]
    code, _, err = _cli(
        [
            "aux",
            source,
            "--target",
            "encode1",
            "--stage",
            "test-on-test",
            "--phase",
            "test",
            "--level",
            "0",
            "--shape",
            "2,1,28,28",
            "--batch",
            "5",
            "-o",
            str(out),
        ],
        capsys,
    )
    assert code == 0, err
    assert load(out).message.layer[0].input_param.shape[0].dim == [5, 1, 28, 28]
    code, _, err = _cli(["aux", source, "--target", "encode1", "--stage", "bogus"], capsys)
    assert code == 2 and "stage 'bogus'" in err


# -- hints name the options of the command in use -----------------------------------------


def test_hints_name_the_flag_of_the_command_in_use(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(corpus / "BVLC__caffe__models__bvlc_alexnet__train_val.prototxt")
    out = tmp_path / "out.prototxt"
    code, _, err = _cli(["aux", source, "--target", "conv3", "-o", str(out)], capsys)
    assert code == 2
    assert "hint: pass --shape N,C,H,W or --input-channels C" in err
    assert "--" not in err.split("hint:")[0]  # the library's message names no option
    code, _, err = _cli(["aux", source, "--target", "conv3", "--channels", "3"], capsys)
    assert code == 2 and "--input-channels C" in err  # aux's --channels is the target's
    code, _, err = _cli(
        ["aux", source, "--target", "conv3", "--input-channels", "3", "-o", str(out)], capsys
    )
    assert code == 0, err
    assert load(out).message.layer[0].input_param.shape[0].dim == [50, 3, 227, 227]
    code, _, err = _cli(["to-deploy", source, "-o", str(out)], capsys)
    assert code == 2 and "hint: pass --shape N,C,H,W or --channels C" in err


def test_validation_options_need_validate(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["aux", str(FIXTURES / "lenet_deploy.prototxt"), "--target", "conv2"]
    code, out, err = _cli([*args, "--random-weights", "--memory-limit", "8G"], capsys)
    assert code == 2 and not out
    assert "--random-weights, --memory-limit only apply with --validate" in err


def test_add_loss_hint_names_channels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net = tmp_path / "tile.prototxt"
    net.write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }\n'
        'layer { name: "r" type: "Tile" bottom: "data" top: "r"\n'
        "  tile_param { axis: 1 tiles: 3 } }\n"
    )
    code, _, err = _cli(["add-loss", str(net), "--target", "r", "--channel", "1"], capsys)
    assert code == 2 and "hint: pass --channels N" in err


# -- heads --------------------------------------------------------------------------------

CONV_NET = (
    'layer { name: "data" type: "Input" top: "data"\n'
    "  input_param { shape { dim: 2 dim: 3 dim: 8 dim: 8 } } }\n"
    'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"\n'
    "  convolution_param { num_output: 4 kernel_size: 3 } }\n"
    'layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"\n'
    "  inner_product_param { num_output: 5 } }\n"
    'layer { name: "prob" type: "Softmax" bottom: "fc" top: "prob" }\n'
)


def test_loss_head_validates_its_kind_and_reduction() -> None:
    assert LossHead("class", 3) == LossHead("logit", 3)
    assert LossHead("sumsq").reduce == "sum" and LossHead("channel").reduce == "mean"
    with pytest.raises(InputError, match=r"unknown head kind 'bogus'"):
        LossHead("bogus")
    with pytest.raises(InputError, match=r"unknown reduction 'avg' \(mean or sum\)"):
        LossHead("channel", 3, reduce="avg")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="a position applies to a unit head"):
        LossHead("channel", 1, position=(2, 2))


def test_a_class_head_needs_a_2d_logit_blob() -> None:
    with pytest.raises(InputError, match=r"'conv' has shape 2x4x6x6: a class head needs a 2-D"):
        add_loss(loads(CONV_NET), "conv", LossHead("class", 1))
    probability = r"'prob' is a probability .* the logits before it \('fc'\)"
    with pytest.raises(InputError, match=probability):
        add_loss(loads(CONV_NET), "prob", LossHead("class", 1))
    doc = loads(CONV_NET)
    report = add_loss(doc, "fc", LossHead("class", 4))
    assert report.changed[-1].startswith("loss 'protoedit_aux_loss' = 1 x logit 4 of 'fc'")


def test_sumsq_mean_averages_the_squares() -> None:
    doc = loads(CONV_NET)
    report = add_loss(doc, "conv", LossHead("sumsq", reduce="mean"))
    reduction = doc.message.layer[-2].reduction_param
    assert (reduction.operation, reduction.axis) == (reduction.SUMSQ, 0)
    # float32, as Caffe stores it: 1 / (2 x 4 x 6 x 6) within one float32 rounding.
    assert reduction.coeff == pytest.approx(1 / (2 * 4 * 6 * 6), rel=2**-23)
    assert "mean square of 'conv'" in report.changed[-1]
    plain = loads(CONV_NET)
    add_loss(plain, "conv", LossHead("sumsq"))
    assert not plain.message.layer[-2].reduction_param.HasField("coeff")


def test_unit_wording() -> None:
    report = add_loss(loads(CONV_NET), "fc", LossHead("unit", 2))
    assert "mean over the batch of unit 2 of 'fc'" in report.changed[-1]
    with pytest.raises(InputError, match=r"give the unit as K \(1 index\)"):
        add_loss(loads(CONV_NET), "fc", LossHead("unit", 2, position=(1,)))
    with pytest.raises(InputError, match=r"give the unit as K,I,I \(3 indices\)"):
        add_loss(loads(CONV_NET), "conv", LossHead("unit", 2, position=(1,)))


# -- targets and report truth -------------------------------------------------------------


def test_a_blob_target_naming_a_layer_says_so(corpus: Path) -> None:
    doc = load(corpus / "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt")
    explained = (
        r"no blob named 'bn_conv1': that is a layer, writing 'conv1' in place; "
        r"say layer:bn_conv1 for its output, or blob:conv1$"
    )
    with pytest.raises(InputError, match=explained):
        truncate(doc, "blob:bn_conv1")
    small = loads(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
        'layer { name: "relu" type: "ReLU" bottom: "x" top: "y" }\n'
    )
    with pytest.raises(
        InputError,
        match=r"^no layer named 'y': that is a blob, written by "
        r"layer 'relu'; say blob:y or layer:relu$",
    ):
        truncate(small, "layer:y")
    with pytest.raises(InputError, match=r"^no blob named 'relu2'$"):
        truncate(small, "blob:relu2")  # look-alikes come from the blob names only


def test_aux_target_dropped_by_to_deploy_says_why(corpus: Path) -> None:
    text = (corpus / "BVLC__caffe__examples__mnist__lenet_train_test.prototxt").read_text()
    with pytest.raises(InputError, match=r"layer 'accuracy' was dropped .* \(it needs labels\)"):
        aux(loads(text), "accuracy", LossHead(), shape=[1, 1, 28, 28])
    with pytest.raises(InputError, match=r"layer 'loss' was dropped .*Softmax 'prob' took"):
        aux(loads(text), "loss", LossHead(), shape=[1, 1, 28, 28])


def test_aux_flags_describe_the_final_net(corpus: Path) -> None:
    text = (corpus / "BVLC__caffe__models__bvlc_googlenet__train_val.prototxt").read_text()
    deploy = to_deploy(loads(text), input_channels=3)
    assert any("outputs (loss1/classifier" in line for line in deploy.flagged)
    report = aux(loads(text), "inception_4c/output", LossHead("unit", 5), input_channels=3)
    assert not any("outputs" in line for line in report.flagged)


def test_lenient_warns_only_about_fields_that_survive(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = str(corpus / "chuanqi305__MobileNet-SSD__voc__MobileNetSSD_deploy.prototxt")
    out = tmp_path / "out.prototxt"
    code, _, err = _cli(["aux", source, "--lenient", "--target", "conv1", "-o", str(out)], capsys)
    assert code == 0, err
    assert "W101" not in err
    assert "note: 19 unknown fields of the input went with the layers the rewrite removed" in err
    code, _, err = _cli(["force-backward", source, "--lenient", "-o", str(out)], capsys)
    assert code == 0 and err.count("W101") == 19 and "note:" not in err


# -- in Caffe -----------------------------------------------------------------------------


@pytest.mark.caffe
def test_aux_in_place_keeps_the_original_when_validation_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "lenet.prototxt"
    original = (FIXTURES / "lenet_deploy.prototxt").read_text()
    net.write_text(original)
    args = ["aux", str(net), "--target", "conv2", "--channel", "3", "-i", "--validate"]
    # A timeout too short to import Caffe: validate's option reaches it, and the run fails.
    code, _, err = _cli([*args, "--timeout", "0.05"], capsys)
    assert code == 2, err
    assert "left as it was" in err
    assert net.read_text() == original
    code, _, err = _cli([*args, "--memory-limit", "2G"], capsys)
    assert code == 0, err
    assert net.read_text() != original and load(net).message.force_backward


@pytest.mark.caffe
def test_sumsq_mean_is_the_mean_square_in_caffe(tmp_path: Path) -> None:
    import numpy as np

    from protoedit.validate import validate_net

    doc = loads(
        'layer { name: "data" type: "Input" top: "data"\n'
        "  input_param { shape { dim: 2 dim: 3 dim: 4 dim: 5 } } }\n"
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"\n'
        "  convolution_param { num_output: 2 kernel_size: 1\n"
        '    weight_filler { type: "constant" value: 1 } } }\n'
    )
    force_backward(doc)
    add_loss(doc, "data", LossHead("sumsq", reduce="mean"))
    net = tmp_path / "net.prototxt"
    doc.save(net)
    values = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    np.save(tmp_path / "data.npy", values)
    report = validate_net(net, inputs={"data": tmp_path / "data.npy"})
    assert report.status == "valid", report.reason
    expected = float(np.mean(values.astype(np.float64) ** 2))
    # float32: 120 squares summed (about 120 roundings of 2^-24 each), then one product.
    assert report.losses[LOSS_TOP] == pytest.approx(expected, rel=122 * 2**-24)


def test_a_dangling_top_of_one_phase_is_silenced_in_that_phase_only() -> None:
    text = (
        'layer { name: "input" type: "Input" top: "data"\n'
        "  input_param { shape { dim: [1, 3, 4, 4] } } }\n"
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"\n'
        "  convolution_param { num_output: 2 kernel_size: 1 } }\n"
        'layer { name: "side" type: "ReLU" bottom: "data" top: "side" include { phase: TRAIN } }\n'
        'layer { name: "both" type: "ReLU" bottom: "data" top: "both" }\n'
    )
    doc = loads(text)
    add_loss(doc, "conv", LossHead("channel", 0))
    silences = [layer for layer in doc.message.layer if layer.type == "Silence"]
    by_rules = {
        tuple(str(rule.phase) for rule in layer.include): list(layer.bottom) for layer in silences
    }
    assert by_rules[("0",)] == ["side"]  # TRAIN is phase 0: silenced where it is made
    assert "both" in by_rules[()] and "side" not in by_rules[()]
    assert not lint_errors(loads(doc.dumps()))


def test_the_mean_square_of_an_empty_blob_is_refused() -> None:
    doc = loads(
        'layer { name: "data" type: "Input" top: "data"\n'
        "  input_param { shape { dim: 0 dim: 3 } } }\n"
        'layer { name: "r" type: "ReLU" bottom: "data" top: "r" }\n'
    )
    with pytest.raises(InputError, match="has no elements"):
        add_loss(doc, "r", LossHead("sumsq", reduce="mean"))


@pytest.mark.parametrize(
    "rewrite",
    [force_backward, lambda doc: filter_net(doc, "TEST"), lambda doc: truncate(doc, "x")],
)
def test_net_rewrites_refuse_a_solver_file(rewrite: Any) -> None:
    doc = loads("base_lr: 0.1\nmax_iter: 10\n", path="solver.prototxt")
    with pytest.raises(InputError, match="SolverParameter file, not a net"):
        rewrite(doc)


def test_a_target_naming_a_topless_layer_and_a_blob_is_refused_cleanly() -> None:
    doc = loads(
        'layer { name: "data" type: "Input" input_param { shape { dim: 1 } } }\n'
        'layer { name: "r" type: "ReLU" bottom: "data" top: "data" }\n'
    )
    with pytest.raises(InputError, match="both a layer \\(with no top\\) and a blob"):
        truncate(doc, "data")
