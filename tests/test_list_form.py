"""Repeated fields in list form (``layer: [{..}, {..}]``, ``bottom: ["a", "b"]``,
``blobs_lr: [1, 2]``): every rewrite and lint sees the same net as with one field per entry.

A generated net is written three ways: one field per entry, every repeated field as a
``[..]`` list, and a random mix (lists and fields in one group, other fields between the
entries of a group).  Each rewrite must give the same message for all three, and lint must
place its findings in the right layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protoedit import InputError, loads
from protoedit.cli import main
from protoedit.document import Document
from protoedit.draw.graph import net_graph
from protoedit.explain.layer_gradients import prepare
from protoedit.explain.vis_net import visualization_net
from protoedit.lint import net_findings
from protoedit.net import NetView
from protoedit.net.layers import CATALOGUE
from protoedit.net.shapes import infer_shapes
from protoedit.rewrites import (
    LossHead,
    add_loss,
    aux,
    filter_net,
    force_backward,
    to_deploy,
    truncate,
    upgrade,
)
from protoedit.syntax.split import elements
from protoedit.syntax.tree import Block, Scalar

FORMS = ("fields", "list", "mixed", "interleaved")


@dataclass
class Layer:
    """One generated layer; ``params`` are ParamSpec bodies, ``extra`` other field text."""

    name: str
    type: str
    bottoms: list[str]
    tops: list[str]
    params: list[tuple[float, float]] = field(default_factory=list)  # (lr_mult, decay_mult)
    extra: list[str] = field(default_factory=list)
    phase: str | None = None


@st.composite
def nets(draw: st.DrawFn) -> list[Layer]:
    """A small DAG on a 1x3x4x4 ``data`` blob: 1x1 convolutions, in-place ReLUs, 1x1
    poolings, concats (every value keeps its spatial size), and a TRAIN-only leaf."""
    blobs = ["data"]
    layers: list[Layer] = []
    for i in range(draw(st.integers(2, 6))):
        kind = draw(st.sampled_from(["Convolution", "ReLU", "Pooling", "Concat"]))
        if kind == "Concat" and len(blobs) < 2:
            kind = "Convolution"
        name = f"l{i}"
        if kind == "Concat":
            bottoms = draw(st.lists(st.sampled_from(blobs), min_size=2, max_size=3, unique=True))
            layers.append(Layer(name, kind, bottoms, [name]))
        elif kind == "ReLU":
            bottom = draw(st.sampled_from(blobs[1:] or blobs))
            layers.append(Layer(name, kind, [bottom], [bottom]))
        elif kind == "Pooling":
            extra = ["pooling_param { pool: MAX kernel_size: 1 stride: 1 }"]
            layers.append(Layer(name, kind, [draw(st.sampled_from(blobs))], [name], extra=extra))
        else:
            outputs = draw(st.integers(1, 4))
            params = [(1.0, 1.0), (2.0, 0.0)][: draw(st.integers(0, 2))]
            extra = [f"convolution_param {{ num_output: {outputs} kernel_size: 1 }}"]
            layers.append(Layer(name, kind, [draw(st.sampled_from(blobs))], [name], params, extra))
        blobs += [t for t in layers[-1].tops if t not in blobs]
    if draw(st.booleans()):
        source = draw(st.sampled_from(blobs))
        layers.append(Layer("train_only", "ReLU", [source], ["train_only"], phase="TRAIN"))
    return layers


Choose = Callable[[], str]


def _group(name: str, values: list[str], form: str, message: bool) -> list[str]:
    """Field texts for the entries of one repeated field, written in ``form``."""
    one = (lambda v: f"{name} {v}") if message else (lambda v: f"{name}: {v}")
    if not values:
        return []
    if form == "fields" or (form == "mixed" and len(values) < 2):
        return [one(v) for v in values]
    if form == "mixed":
        return [one(values[0]), f"{name}: [{', '.join(values[1:])}]"]
    return [f"{name}: [{', '.join(values)}]"]


def _layer_text(layer: Layer, choose: Choose, v1: bool) -> str:
    bottoms = [f'"{b}"' for b in layer.bottoms]
    tops = [f'"{t}"' for t in layer.tops]
    kind = CATALOGUE.by_name[layer.type].v1 if v1 else f'"{layer.type}"'
    lines = [f'name: "{layer.name}"', f"type: {kind}"]
    form = choose()
    bottom_fields = _group("bottom", bottoms, "fields" if form == "interleaved" else form, False)
    top_fields = _group("top", tops, choose(), False)
    if form == "interleaved" and len(bottom_fields) > 1:  # bottom, the tops, more bottoms
        lines += bottom_fields[:1] + top_fields + bottom_fields[1:]
    else:
        lines += bottom_fields + top_fields
    if v1:
        lines += _group("blobs_lr", [f"{lr:g}" for lr, _ in layer.params], choose(), False)
        lines += _group("weight_decay", [f"{d:g}" for _, d in layer.params], choose(), False)
    else:
        specs = [f"{{ lr_mult: {lr:g} decay_mult: {d:g} }}" for lr, d in layer.params]
        params = _group("param", specs, "fields" if form == "interleaved" else choose(), True)
        if form == "interleaved" and len(params) > 1:  # a param, the *_param, more params
            lines += params[:1] + layer.extra + params[1:]
            params, layer = [], Layer(**{**layer.__dict__, "extra": []})
        lines += params
    lines += layer.extra
    if layer.phase:
        lines += _group("include", [f"{{ phase: {layer.phase} }}"], choose(), True)
    if choose() in ("fields", "mixed"):
        return "{\n    " + "\n    ".join(lines) + "\n  }"
    return "{ " + " ".join(lines) + " }"


def render(
    layers: list[Layer],
    choose: Choose,
    v1: bool = False,
    with_data: bool = False,
    with_loss: bool = False,
) -> str:
    """The net as text, each repeated field written as ``choose`` says; ``with_data``: fed
    by a Data layer, with a SoftmaxWithLoss; ``with_loss``: a Reduction with a loss_weight
    on the last output (an Input-fed net with a loss of its own)."""
    if with_loss:
        scores = [layer for layer in layers if not layer.phase][-1].tops[0]
        weight = _group("loss_weight", ["1"], choose(), False)
        layers = [*layers, Layer("loss", "Reduction", [scores], ["loss"], extra=weight)]
    if with_data:
        means = " ".join(_group("mean_value", ["104", "117", "123"], choose(), False))
        extra = [
            'data_param { source: "db" batch_size: 1 }',
            f"transform_param {{ crop_size: 4 {means} }}",
        ]
        head = Layer("data", "Data", [], ["data", "label"], extra=extra)
        scores = [layer for layer in layers if not layer.phase][-1].tops[0]  # in every phase
        loss = Layer("loss", "SoftmaxWithLoss", [scores, "label"], ["loss"])
        layers = [head, *layers, loss]
    text = 'name: "generated"\n'
    if v1 and not with_data:
        dims = _group("input_dim", ["1", "3", "4", "4"], choose(), False)
        text += 'input: "data"\n' + "\n".join(dims) + "\n"
    elif not with_data:
        shape = "input_param { shape { dim: [1, 3, 4, 4] } }"
        layers = [Layer("input", "Input", [], ["data"], extra=[shape]), *layers]
    blocks = [_layer_text(layer, choose, v1) for layer in layers]
    name = "layers" if v1 else "layer"
    form = choose()
    other = "debug_info: false\n"  # a top-level field that is not a layer, in every form
    if form == "fields":
        return text + "".join(f"{name} {b}\n" for b in blocks) + other
    if form == "interleaved":  # between the layers
        return text + f"{name} {blocks[0]}\n" + other + "".join(f"{name} {b}\n" for b in blocks[1:])
    cut = 1 if form in ("mixed", "interleaved") and len(blocks) > 1 else 0
    text += "".join(f"{name} {b}\n" for b in blocks[:cut])
    return text + f"{name}: [\n  " + ",\n  ".join(blocks[cut:]) + "\n]\n" + other


def _variants(layers: list[Layer], data: st.DataObject, **kind: bool) -> list[str]:
    rng = data.draw(st.randoms(use_true_random=False))
    return [
        render(layers, lambda: "fields", **kind),
        render(layers, lambda: "list", **kind),
        render(layers, lambda: rng.choice(FORMS), **kind),
    ]


def _after(text: str, rewrite: Callable[[Document], object]) -> bytes:
    """The message after ``rewrite``, read back from the rewritten text."""
    doc = loads(text)
    rewrite(doc)
    return loads(doc.dumps()).message.SerializeToString(deterministic=True)  # type: ignore[no-any-return]


def _same(texts: list[str], rewrite: Callable[[Document], object]) -> None:
    results = [_after(text, rewrite) for text in texts]
    assert results[1] == results[0], texts[1]
    assert results[2] == results[0], texts[2]


def _same_built(texts: list[str], build: Callable[[Document], Document]) -> None:
    """Like :func:`_same` for functions that rewrite a copy of the net and return it."""
    results = [
        loads(build(loads(text)).dumps()).message.SerializeToString(deterministic=True)
        for text in texts
    ]
    assert results[1] == results[0], texts[1]
    assert results[2] == results[0], texts[2]


@settings(max_examples=50, deadline=None)
@given(nets(), st.data())
def test_every_rewrite_sees_the_same_net_in_every_form(
    layers: list[Layer], data: st.DataObject
) -> None:
    texts = _variants(layers, data)
    messages = {loads(t).message.SerializeToString(deterministic=True) for t in texts}
    assert len(messages) == 1  # the three spellings are one net
    target = data.draw(st.sampled_from([layer.name for layer in layers if not layer.phase]))
    for text in texts:  # a view reads list forms as they are: building one edits nothing
        doc = loads(text)
        view = NetView(doc)
        assert doc.dumps() == text and view.normalised == []
        assert [info.name for info in view.layers] == [p.name for p in doc.message.layer]
        assert all(text.startswith(("layer", "{"), info.pos) for info in view.layers)
    _same(texts, force_backward)
    _same(texts, lambda doc: filter_net(doc, "TEST"))
    _same(texts, lambda doc: filter_net(doc, "TRAIN"))
    _same(texts, lambda doc: truncate(doc, f"layer:{target}"))
    _same(texts, lambda doc: truncate(doc, f"layer:{target}", after_inplace=True))
    _same(texts, lambda doc: add_loss(doc, f"layer:{target}", LossHead("channel", 0)))
    _same(texts, lambda doc: add_loss(doc, f"layer:{target}", LossHead("unit", 0)))
    _same(texts, lambda doc: add_loss(doc, target, LossHead("sumsq"), after_inplace=True))
    _same(texts, lambda doc: aux(doc, f"layer:{target}", LossHead("sumsq")))
    _same(texts, lambda doc: aux(doc, f"layer:{target}", LossHead("channel", 0)))
    _same(_variants(layers, data, with_data=True), lambda doc: to_deploy(doc))
    # What explain builds in memory: the visualisation net (param specs frozen, an in-place
    # ReLU's top renamed), the aux net of `gradients`, and the net cut to its own loss.
    _same_built(texts, lambda doc: visualization_net(doc, f"layer:{target}", after_inplace=True)[0])
    _same_built(texts, lambda doc: visualization_net(doc, target, after_inplace=False)[0])
    _same_built(texts, lambda doc: prepare(doc, target=target, head=LossHead("unit", 0))[0])
    _same_built(_variants(layers, data, with_loss=True), lambda doc: prepare(doc, loss="loss")[0])
    for phase in (None, "TEST"):  # the drawing: same nodes, same edges, same shapes
        graphs = [net_graph(loads(text), phase) for text in texts]
        assert graphs[1] == graphs[0] and graphs[2] == graphs[0]
    v1 = _variants(layers, data, v1=True)
    _same(v1, upgrade)
    # The V1 spelling upgrades to the current one (blobs_lr/weight_decay -> param specs).
    assert _after(v1[1], upgrade) == _after(texts[0], lambda doc: None)


@settings(max_examples=50, deadline=None)
@given(nets(), st.data())
def test_lint_places_findings_in_the_right_layer(layers: list[Layer], data: st.DataObject) -> None:
    bad = data.draw(st.integers(0, len(layers) - 1))
    layers[bad].bottoms.append("missing")  # E202 in that layer
    layers[bad].name = layers[0].name if bad else layers[bad].name  # W203 for a later one
    for text in _variants(layers, data):
        doc = loads(text)
        found = list(net_findings(doc, None))
        missing = [f for f in found if f.code == "E202"]
        assert len(missing) == 1, text
        pos = missing[0].pos
        assert text.startswith(('"missing"', 'bottom: "missing"'), pos), text
        # The last layer name before the bottom is its layer's.
        start = text.rfind('name: "', 0, pos) + len('name: "')
        assert text[start : text.index('"', start)] == layers[bad].name
        duplicates = [f for f in found if f.code == "W203"]
        assert len(duplicates) == (1 if bad else 0)
        for dup in duplicates:
            # A layer's place: its `layer` field, or the `{` of its item in a list; the
            # layer there is the one with the missing bottom.
            assert text.startswith(("layer", "{"), dup.pos), text
            name_at = text.index('name: "', dup.pos)
            following = text.find('name: "', name_at + 1)
            assert dup.pos < pos < (following if following >= 0 else len(text))


def _layer_start(text: str, name: str) -> tuple[int, int]:
    """Line and column of layer ``name``: its ``layer`` field, or its ``{`` in a list."""
    brace = text.rfind("{", 0, text.index(f'name: "{name}"'))  # name is a layer's first field
    start = brace - len("layer ") if text[:brace].endswith("layer ") else brace
    return loads(text).tree.line_col(start)


def _where(error: pytest.ExceptionInfo[InputError]) -> tuple[int, int]:
    location = error.value.location
    assert location is not None, error.value
    return location.line, location.column


@settings(max_examples=30, deadline=None)
@given(nets(), st.data())
def test_errors_about_a_layer_in_a_list_point_at_the_layer(
    layers: list[Layer], data: st.DataObject
) -> None:
    bad = [
        Layer("zero_stride", "Convolution", ["data"], ["zero_stride"],
              extra=["convolution_param { num_output: 1 kernel_size: 1 stride: 0 }"]),
        Layer("argmax", "ArgMax", ["data"], ["argmax"]),
    ]  # fmt: skip
    plain = list(layers)
    for layer in bad:
        layers.insert(data.draw(st.integers(0, len(layers))), layer)
    for text in _variants(layers, data):
        view = NetView(loads(text))
        with pytest.raises(InputError, match="cannot infer the shape") as error:
            infer_shapes(view)[view.final["zero_stride"]]  # shapes are inferred on look-up
        assert _where(error) == _layer_start(text, "zero_stride"), text
        # aux and visualize split the lists before they look: the place must survive that.
        for build in (
            lambda doc: aux(doc, "argmax", LossHead("sumsq")),
            lambda doc: visualization_net(doc, "argmax"),
        ):
            with pytest.raises(InputError, match="cannot run backward") as error:
                build(loads(text))
            assert _where(error) == _layer_start(text, "argmax"), text
    for text in _variants(plain, data, with_data=True):  # the data layer opens the list
        with pytest.raises(InputError, match="reads its data from files") as error:
            prepare(loads(text), loss="loss")
        assert _where(error) == _layer_start(text, "data"), text


LIST_NET = """name: "n"
layer: [
  { name: "data" type: "Input" top: "data" input_param { shape { dim: [1, 3, 8, 8] } } },
  # the convolution
  { name: "conv" type: "Convolution" bottom: "data" top: "conv"
    convolution_param { num_output: 4 kernel_size: 3 } },
  { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
]
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool"
        pooling_param { kernel_size: 2 stride: 2 } }
"""


def test_list_form_layers_are_split_and_reported() -> None:
    doc = loads(LIST_NET)
    report = truncate(doc, "conv")
    assert report.changed[0] == "list-form 'layer: [...]' (line 2) written as 3 'layer' fields"
    text = doc.dumps()
    assert "# the convolution\nlayer {" in text
    assert [b.fields[0].value.raw for _, b in elements(doc.tree.fields, "layer")] == [  # type: ignore[union-attr]
        '"data"',
        '"conv"',
    ]
    assert NetView(loads(text)).normalised == []  # nothing left to split


def test_list_form_bottoms_can_be_renamed() -> None:
    text = LIST_NET.replace('bottom: "conv" top: "conv" }', 'bottom: ["conv"] top: ["conv"] }')
    doc = loads(text)
    add_loss(doc, "conv", LossHead("channel", 1))
    relu = next(layer for layer in doc.message.layer if layer.name == "relu")
    assert list(relu.bottom) == ["conv"] and list(relu.top) == ["conv_after_relu"]


def test_upgrade_moves_list_valued_v1_fields() -> None:
    doc = loads(
        'layers { name: "c" type: CONVOLUTION bottom: "data" top: "c" blobs_lr: [1, 2] '
        "weight_decay: [1, 0] convolution_param { num_output: 2 kernel_size: 1 } }\n"
        'input: "data"\ninput_dim: [1, 3, 4, 4]\n'
    )
    upgrade(doc)
    conv = doc.message.layer[1]
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]
    assert list(doc.message.layer[0].input_param.shape[0].dim) == [1, 3, 4, 4]


def test_upgrade_of_list_form_v0_layers() -> None:
    doc = loads(
        'name: "v0"\ninput: "data"\ninput_dim: [1, 1, 8, 8]\nlayers: [\n'
        '  { layer { name: "conv" type: "conv" num_output: 2 kernelsize: 3 } '
        'bottom: "data" top: "conv" },\n'
        '  { layer { name: "relu" type: "relu" } bottom: "conv" top: "conv" }\n]\n'
    )
    report = upgrade(doc)
    assert "layer 'conv': V0 layer re-written as V1" in report.changed[1:3]
    assert [layer.type for layer in doc.message.layer] == ["Input", "Convolution", "ReLU"]


def test_a_mixed_layer_and_layers_net_is_still_refused() -> None:
    with pytest.raises(InputError, match="mixes"):
        upgrade(loads('layer: [{ name: "a" }]\nlayers { name: "b" type: RELU }\n'))


def test_upgrade_drops_list_form_batch_norm_params() -> None:
    doc = loads(
        'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" '
        "param: [{ lr_mult: 0 }, { lr_mult: 0 }, { lr_mult: 0 }] }\n"
    )
    report = upgrade(doc)
    assert report.changed == ['layer "bn": BatchNorm\'s three param specs removed']
    assert len(doc.message.layer[0].param) == 0


def test_cli_rewrites_a_list_form_net(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "list.prototxt"
    path.write_text(LIST_NET)
    assert main(["filter", str(path), "--phase", "TEST"]) == 0
    captured = capsys.readouterr()
    assert "changed: list-form 'layer: [...]' (line 2) written as 3 'layer' fields" in captured.err
    assert loads(captured.out).message == loads(LIST_NET).message


def test_split_list_keeps_comments_in_order() -> None:
    from protoedit.syntax import parse, render
    from protoedit.syntax.split import split_list

    tree = parse(
        'a: 1\nlayer: [  # first\n  { name: "x" },  # second\n  {\n    name: "y"\n'
        "  }  # after y\n] # end\nlast {\n  bottom: []  # empty\n  top: 1\n}\n",
        "t",
    )
    split_list(tree, tree, tree.fields[1])
    last = tree.fields[-1].value
    split_list(tree, last, last.fields[0])  # type: ignore[union-attr]
    assert render(tree) == (
        'a: 1\n# first\nlayer { name: "x" }\n# second\nlayer {\n  name: "y"\n} # end\n'
        "# after y\nlast {\n  # empty\n  top: 1\n}\n"
    )


def test_views_and_lint_follow_the_binding_links_not_the_order() -> None:
    # `layer: 5` fails to bind (best-effort mode leaves it out): the message has two layers,
    # the tree three `layer` entries.  Matching them by order would shift every layer by one.
    from protoedit import builtin_schema
    from protoedit.syntax import parse

    text = (
        'name: "n"\nlayer: [5, { name: "a" type: "Input" top: "a" }]\n'
        'layer { name: "b" type: "ReLU" bottom: [5, "missing"] top: "b" }\n'
    )  # the bottom `5` is no string: the layer's only bottom is "missing"
    doc = Document(parse(text), builtin_schema(), "caffe.NetParameter", best_effort=True)
    assert len(doc.message.layer) == 2 and [d.code for d in doc.dropped] == ["E105", "E102"]
    view = NetView(doc)
    assert [(info.name, text[info.pos :].split()[0]) for info in view.layers] == [
        ("a", "{"),
        ("b", "layer"),
    ]
    [missing] = [f for f in net_findings(doc, None) if f.code == "E202"]
    assert text.startswith('"missing"', missing.pos)


def test_every_document_edit_drops_the_stale_message() -> None:
    from protoedit.syntax.edit import parse_fields

    doc = loads(LIST_NET)
    tree = doc.tree
    assert len(doc.message.layer) == 4
    [first, *_] = doc.split_list(tree, tree.fields[1])
    assert doc.message.layer[0].name == "data" and doc.dumps() != LIST_NET
    doc.remove(tree, first)
    assert [layer.name for layer in doc.message.layer] == ["conv", "relu", "pool"]
    doc.insert_fields(tree, parse_fields('layer { name: "extra" type: "ReLU" }'))
    assert doc.message.layer[-1].name == "extra"
    name = next(f for f in tree.fields if f.name.text == "name")
    doc.replace_value(name, '"renamed"')
    assert doc.message.name == "renamed"
    doc.rename(name, "debug_info")
    doc.replace_value(name, "true")
    assert doc.message.debug_info and not doc.message.HasField("name")
    # The links are rebuilt with the message: they name the nodes of the edited tree.
    assert [f for f, _ in doc.elements(tree, "layer")] == [
        f for f in tree.fields if f.name.text == "layer"
    ]
    doc.invalidate()  # still there, and harmless
    assert loads(doc.dumps()).message == doc.message


def test_replace_item_edits_a_list_element_in_place() -> None:
    doc = loads('layer { name: "c" type: "Concat" bottom: ["a", "b"] top: "c" }\n')
    [block] = [item for _, item in doc.elements(doc.tree, "layer")]
    assert isinstance(block, Block)
    _, second = doc.elements(block, "bottom")[1]
    assert isinstance(second, Scalar)
    doc.replace_item(second, '"z"')
    assert doc.dumps() == 'layer { name: "c" type: "Concat" bottom: ["a", "z"] top: "c" }\n'
    assert list(doc.message.layer[0].bottom) == ["a", "z"]
    assert doc.elements(block, "bottom")[1][1] is second  # the node binding links stays
