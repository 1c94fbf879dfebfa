"""Golden rewrites: fixtures/rewrites/<rewrite>/<case>.in.prototxt -> .out.prototxt.

Arguments sit beside each case in ``<case>.args.json``; cases are found automatically.
Each case also checks that comments of surviving nodes survive and that a second run of an
idempotent rewrite changes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from protoedit import Document, InputError, loads
from protoedit.errors import MissingArgumentError
from protoedit.rewrites import (
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
from protoedit.syntax import Block, Field, Scalar, parse
from protoedit.syntax.printer import render_field

from .conftest import FIXTURES

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
    return LossHead(kind, args.get("channel", 0), args.get("reduce"), args.get("weight", 1.0),
                    position)  # fmt: skip


def apply(rewrite: str, doc: Document, args: dict[str, Any]) -> RewriteReport:
    """Run one rewrite by its folder name with the case's arguments."""
    after = args.get("after_inplace", False)
    if rewrite == "force_backward":
        return force_backward(doc)
    if rewrite == "filter":
        return filter_net(doc, args.get("phase", "TEST"), args.get("level", 0),
                          tuple(args.get("stages", ())))  # fmt: skip
    if rewrite == "truncate":
        return truncate(doc, args["target"], after)
    if rewrite == "add_loss":
        return add_loss(doc, args["target"], _head(args), after, args.get("channels"))
    if rewrite == "upgrade":
        return upgrade(doc)
    state = {"level": args.get("level", 0), "stages": tuple(args.get("stages", ()))}
    if rewrite == "to_deploy":
        return to_deploy(doc, args.get("phase", "TEST"), args.get("shape"), args.get("channels"),
                         batch=args.get("batch"), **state)  # fmt: skip
    if rewrite == "aux":
        return aux(doc, args["target"], _head(args), after, args.get("channels"),
                   args.get("shape"), args.get("input_channels"), phase=args.get("phase", "TEST"),
                   batch=args.get("batch"), **state)  # fmt: skip
    raise AssertionError(rewrite)


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name.split('.')[0]}")
def test_golden(case: Path) -> None:
    rewrite = case.parent.name
    stem = case.name.removesuffix(".in.prototxt")
    args = json.loads((case.parent / f"{stem}.args.json").read_text())
    source = case.read_text()
    doc = loads(source, path=str(case))
    report = apply(rewrite, doc, args)
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
        apply(rewrite, again, args)
        assert again.dumps() == result


def test_ambiguous_target_names_both_candidates() -> None:
    doc = loads(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }\n'
        'layer { name: "x" type: "ReLU" bottom: "data" top: "y" }\n'
        'layer { name: "z" type: "ReLU" bottom: "y" top: "x" }\n'
    )
    with pytest.raises(InputError, match=r"'x' is both a layer \(writing 'y'\) and a blob "
                       r"\(written by layer 'z'\); say layer:x or blob:x"):  # fmt: skip
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
    assert [layer.type for layer in vgg.message.layer] == ["Input", "Convolution", "Slice",
                                                           "Reduction", "Silence"]  # fmt: skip
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
    assert caught.value.needs == {"channels": None}
    add_loss(doc, "r", LossHead("channel", 1), channels=3)
    assert doc.message.layer[-2].type == "Reduction"
