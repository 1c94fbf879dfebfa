"""``protoedit draw``: the SVG checked structurally against the net it draws.

The expected node and edge counts are derived here from :class:`NetView` directly (a layer
is a node unless it rewrites, in place, a value another layer wrote; an edge is a distinct
(writer, reader, blob) pair plus one per net output), not from the drawing code.
"""

from __future__ import annotations

import shutil
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from protoedit import InputError, cli, loads
from protoedit.diff import prepare
from protoedit.draw import change_graph, net_graph, render
from protoedit.draw.render import to_graphviz
from protoedit.net.view import INPUT, NetView
from protoedit.rewrites import LossHead, aux

from .helpers import FIXTURES

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is missing")

SVG = "{http://www.w3.org/2000/svg}"
GOOGLENET = "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt"
RESNET = "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt"
LENET_TRAIN = "BVLC__caffe__examples__mnist__lenet_train_test.prototxt"
LARGEST = "BVLC__caffe__models__intel_optimized_models__int8__googlenet_v3_int8.prototxt"


def _elements(svg: bytes, kind: str) -> list[ET.Element]:
    """The ``<g class="KIND ...">`` elements of an SVG (``node`` or ``edge``)."""
    root = ET.fromstring(svg)
    return [g for g in root.iter(f"{SVG}g") if g.get("class", "").split()[:1] == [kind]]


def _classes(element: ET.Element) -> set[str]:
    return set(element.get("class", "").split())


def _drawn_edges(svg: bytes) -> set[tuple[str, str, str, str]]:
    """The edges of an SVG as (tail, head, blob, status): ends by layer key or terminal name."""
    ends = {
        g.findtext(f"{SVG}title"): g.get("id", "").removeprefix("layer:")
        for g in _elements(svg, "node")
    }
    drawn = set()
    for g in _elements(svg, "edge"):
        tail, _, head = (g.findtext(f"{SVG}title") or "").partition("->")
        blob = g.get("id", "").removeprefix("blob:").rpartition(":")[0]
        (status,) = _classes(g) - {"edge", "blob"}
        drawn.add((ends[tail], ends[head], blob, status))
    return drawn


def _flow(doc: object, phase: str | None = None) -> tuple[list[str], set[tuple[str, str, str]]]:
    """Layer names drawn as nodes and the edges (tail, head, blob), from the net's data flow:
    a layer that rewrites in place a value another layer wrote is drawn in that layer's node.
    A node is ``NAME#INDEX`` (a name may repeat: train/test twins); an edge from outside the
    layers starts at ``in:BLOB``, one leaving the net ends at ``out:BLOB``."""
    from protoedit.net.state import NetState

    view = NetView(prepare(doc), NetState(phase) if phase else None)  # type: ignore[arg-type]
    owner: dict[int, int] = {}
    for info in view.layers:
        owner[info.index] = info.index
        for nth, read in enumerate(info.reads):
            rewrites = nth < len(info.writes) and info.writes[nth].blob == read.blob
            if rewrites and read.producer != INPUT:
                owner[info.index] = owner[read.producer]
                break
    node = {i: f"{view.by_index[o].name}#{o}" for i, o in owner.items()}
    nodes = [info.name for info in view.layers if owner[info.index] == info.index]
    edges = {
        (node.get(r.producer, f"in:{r.blob}"), node[info.index], r.blob)
        for info in view.layers
        for r in info.reads
        if owner.get(r.producer) != owner[info.index]
    }
    edges |= {(node[v.producer], f"out:{v.blob}", v.blob) for v in view.outputs()}
    return nodes, edges


def _named_edges(doc: object) -> set[tuple[str, str, str]]:
    """:func:`_flow`'s edges with the nodes by layer name (for nets whose names are unique)."""
    return {(t.split("#")[0], h.split("#")[0], blob) for t, h, blob in _flow(doc)[1]}


def _expected(doc: object, phase: str | None = None) -> tuple[list[str], int]:
    """Layer names drawn as nodes and the number of edges."""
    nodes, edges = _flow(doc, phase)
    return nodes, len(edges)


@needs_dot
@pytest.mark.parametrize(
    ("name", "phase"),
    [(GOOGLENET, None), (RESNET, None), (LENET_TRAIN, "TEST"), (LENET_TRAIN, None)],
)
def test_svg_nodes_and_edges_are_the_folded_layers_and_blobs(
    corpus: Path, name: str, phase: str | None
) -> None:
    doc = loads((corpus / name).read_text(), path=name)
    svg = render(net_graph(doc, phase), "svg")
    layers = [g for g in _elements(svg, "node") if "layer" in _classes(g)]
    names, edge_count = _expected(doc, phase)
    drawn = [g.get("id", "").removeprefix("layer:").split("#")[0] for g in layers]
    assert sorted(drawn) == sorted(names)  # a repeated name (train/test twins) is drawn twice
    assert len(_elements(svg, "edge")) == edge_count
    assert all(_classes(g) >= {"layer", "kept"} for g in layers)


@needs_dot
def test_in_place_chains_fold_into_their_producer(corpus: Path) -> None:
    doc = loads((corpus / RESNET).read_text(), path=RESNET)
    graph = net_graph(doc)
    conv1 = graph.nodes["conv1"]
    assert [(f.key, f.type) for f in conv1.folded] == [
        ("bn_conv1", "BatchNorm"),
        ("scale_conv1", "Scale"),
        ("conv1_relu", "ReLU"),
    ]
    assert conv1.params == ["7x7 /2 pad 3, 64 out"]
    assert graph.nodes["pool1"].params == ["MAX 3x3 /2"]
    # a block's sum carries its ReLU; the edge out of it has the inferred shape
    assert [f.type for f in graph.nodes["res2a"].folded] == ["ReLU"]
    out = [e for e in graph.edges.values() if e.tail == "res2a"]
    assert out and all(e.shape == [1, 256, 56, 56] for e in out)
    svg = render(graph, "svg").decode()
    assert "+ BatchNorm" in svg and "1x256x56x56" in svg


def _aux_pair(corpus: Path) -> tuple[object, object, list[str]]:
    before = loads((corpus / GOOGLENET).read_text(), path=GOOGLENET)
    after = loads(before.dumps(), path=GOOGLENET)
    report = aux(after, "inception_4c/output", LossHead("channel", 0, "mean", 1.0))
    return before, loads(after.dumps()), [line.split("'")[1] for line in report.dropped]


@needs_dot
def test_change_marks_dropped_layers_grey_and_dashed_and_added_ones(corpus: Path) -> None:
    before, after, dropped = _aux_pair(corpus)
    graph = change_graph(before, after)  # type: ignore[arg-type]
    svg = render(graph, "svg")
    nodes = _elements(svg, "node")
    layers = {g.get("id", "").removeprefix("layer:"): g for g in nodes if "layer" in _classes(g)}
    terminals = {g.get("id"): _classes(g) for g in nodes if "terminal" in _classes(g)}
    assert terminals == {
        "out:prob": {"node", "terminal", "dropped"},
        "out:protoedit_aux_loss": {"node", "terminal", "kept"},
    }
    drawn_dropped = {key for key, g in layers.items() if "dropped" in _classes(g)}
    # every dropped layer is a dropped node, or folded (dropped) into one
    folded = {f.key for node in graph.nodes.values() for f in node.folded if f.status == "dropped"}
    assert drawn_dropped | folded == set(dropped)
    assert drawn_dropped and folded
    # which ones are nodes and which are folded, from the data flow (in-place layers fold)
    nodes_before = _flow(before)[0]
    assert drawn_dropped == set(dropped) & set(nodes_before)
    assert folded == set(dropped) - set(nodes_before)
    for key in drawn_dropped:
        shape = next(layers[key].iter(f"{SVG}path"), None)  # the rounded box
        assert shape is not None and shape.get("stroke-dasharray"), key
        assert shape.get("stroke") == "#9ca3af"
    added = {key for key, g in layers.items() if "added" in _classes(g)}
    assert added == {n.name for n in after.message.layer} - {  # type: ignore[attr-defined]
        n.name
        for n in before.message.layer  # type: ignore[attr-defined]
    }
    kept = {key for key, g in layers.items() if "kept" in _classes(g) and "layer" in _classes(g)}
    assert "inception_4c/output" in kept and "conv1/7x7_s2" in kept
    edges = _elements(svg, "edge")
    assert any("dropped" in _classes(e) for e in edges)
    assert any("added" in _classes(e) for e in edges)
    # every edge, with its status, is the data flow before and after the rewrite compared
    edges_before, edges_after = _named_edges(before), _named_edges(after)
    expected = {(*e, "dropped") for e in edges_before - edges_after}
    expected |= {(*e, "added") for e in edges_after - edges_before}
    expected |= {(*e, "kept") for e in edges_before & edges_after}
    assert _drawn_edges(svg) == expected
    dashed = [e for e in edges if "dropped" in _classes(e)]
    assert all(next(e.iter(f"{SVG}path")).get("stroke-dasharray") for e in dashed)
    for key in added | (kept - drawn_dropped):
        box = next(layers[key].iter(f"{SVG}path"))
        assert not box.get("stroke-dasharray"), key


@needs_dot
def test_rewrite_draw_option_writes_the_change(corpus: Path, tmp_path: Path) -> None:
    picture, out = tmp_path / "aux.svg", tmp_path / "aux.prototxt"
    code = cli.main(
        [
            "aux",
            str(corpus / GOOGLENET),
            "--target",
            "inception_4c/output",
            "--draw",
            str(picture),
            "-o",
            str(out),
        ]
    )
    assert code == 0
    svg = picture.read_bytes()
    statuses = {s for g in _elements(svg, "node") for s in _classes(g)}
    assert {"kept", "dropped", "added"} <= statuses
    assert loads(out.read_text()).message.force_backward


@needs_dot
def test_draw_cli_formats_rankdir_and_phase(corpus: Path, tmp_path: Path) -> None:
    net = str(corpus / LENET_TRAIN)
    for suffix, magic in ((".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")):
        target = tmp_path / f"net{suffix}"
        assert cli.main(["draw", net, "--phase", "TEST", "-o", str(target)]) == 0
        assert target.read_bytes().startswith(magic)
    dot = tmp_path / "net.dot"
    assert cli.main(["draw", net, "--rankdir", "LR", "-o", str(dot)]) == 0
    assert "rankdir=LR" in dot.read_text()
    assert cli.main(["draw", net, "-o", str(tmp_path / "net.jpg")]) == 2


def test_draw_cli_usage(capsys: pytest.CaptureFixture[str]) -> None:
    wrong = (["draw"], ["draw", "a", "--before", "b", "--after", "c"], ["draw", "--after", "c"])
    for argv in wrong:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(argv)
        assert exit_info.value.code == 2
        assert "give NET, or --before OLD and --after NEW" in capsys.readouterr().err


def test_missing_dot_is_a_clear_error(
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere on it
    code = cli.main(["draw", str(corpus / LENET_TRAIN), "-o", str(tmp_path / "x.svg")])
    assert code == 2
    err = capsys.readouterr().err
    assert "Graphviz's `dot` program was not found on PATH" in err
    assert "apt-get install graphviz" in err
    assert not (tmp_path / "x.svg").exists()


def test_shapes_that_inference_cannot_give_are_left_off() -> None:
    """A pooling layer on a 2-D blob (no spatial axes): the drawing still comes, the input's
    shape is on its edge, and the values after the pooling have none."""
    text = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 2 dim: 10 } } }
layer { name: "pool" type: "Pooling" bottom: "data" top: "pool"
        pooling_param { kernel_size: 2 } }
layer { name: "fc" type: "InnerProduct" bottom: "pool" top: "fc"
        inner_product_param { num_output: 3 } }
"""
    graph = net_graph(loads(text))
    shapes = {e.blob: e.shape for e in graph.edges.values()}
    assert shapes["data"] == [2, 10]
    assert shapes["pool"] is None
    assert "2x10" in to_graphviz(graph).source


@needs_dot
def test_the_largest_corpus_net_draws_in_seconds(corpus: Path) -> None:
    doc = loads((corpus / LARGEST).read_text(), lenient=True, path=LARGEST)
    started = time.perf_counter()
    svg = render(net_graph(doc), "svg")
    elapsed = time.perf_counter() - started
    names, edge_count = _expected(doc)
    assert len([g for g in _elements(svg, "node") if "layer" in _classes(g)]) == len(names)
    assert len(_elements(svg, "edge")) == edge_count
    assert elapsed < 30, f"{elapsed:.1f} s"


MERGE_BEFORE = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 } } }
layer { name: "fc1" type: "InnerProduct" bottom: "data" top: "fc1"
        inner_product_param { num_output: 4 } }
layer { name: "relu1" type: "ReLU" bottom: "fc1" top: "fc1" }
layer { name: "fc2" type: "InnerProduct" bottom: "fc1" top: "fc2"
        inner_product_param { num_output: 2 } }
"""


def test_merge_when_an_in_place_layer_gets_its_own_blob() -> None:
    """What add-loss does to the in-place layers after a target: the ReLU folded into fc1
    before becomes a node of its own; the old fc1 -> fc2 edge is dropped, two are added."""
    after = MERGE_BEFORE.replace('top: "fc1" }', 'top: "relu1_out" }').replace(
        'bottom: "fc1" top: "fc2"', 'bottom: "relu1_out" top: "fc2"'
    )
    before_graph = net_graph(loads(MERGE_BEFORE))
    assert [f.key for f in before_graph.nodes["fc1"].folded] == ["relu1"]
    merged = change_graph(loads(MERGE_BEFORE), loads(after))
    assert {k: n.status for k, n in merged.nodes.items()} == {
        "data": "kept",
        "fc1": "kept",
        "relu1": "kept",
        "fc2": "kept",
    }
    assert not merged.nodes["fc1"].folded
    assert {(e.tail, e.head, e.blob, e.status) for e in merged.edges.values()} == {
        ("data", "fc1", "data", "kept"),
        ("fc1", "relu1", "fc1", "added"),
        ("relu1", "fc2", "relu1_out", "added"),
        ("fc1", "fc2", "fc1", "dropped"),
        ("fc2", "out:fc2", "fc2", "kept"),
    }
    # and back: the standalone ReLU folds into fc1 again; its blob, now gone, is dropped
    back = change_graph(loads(after), loads(MERGE_BEFORE))
    assert "relu1" not in back.nodes and back.nodes["fc1"].folded[0].key == "relu1"
    assert back.nodes["fc1"].folded[0].status == "kept"
    changed = {(e.tail, e.head, e.blob, e.status) for e in back.edges.values()}
    assert changed - {e for e in changed if e[3] == "kept"} == {
        ("fc1", "fc2", "fc1", "added"),
        ("fc1", "fc2", "relu1_out", "dropped"),
    }


def test_a_solver_is_not_drawn() -> None:
    solver = loads('net: "train.prototxt"\nbase_lr: 0.01\nmax_iter: 10\n', path="solver.prototxt")
    with pytest.raises(InputError) as error:
        net_graph(solver)
    assert "solver.prototxt holds a caffe.SolverParameter, not a net" in str(error.value)


def _label_boxes(graph: object) -> list[tuple[int, float, float, float, float, str]]:
    """(edge, left, right, bottom, top, text) of every line of every edge label, in points, from
    ``dot``'s own layout (its JSON gives each text's anchor, width and font size)."""
    import json

    boxes = []
    data = json.loads(render(graph, "json"))  # type: ignore[arg-type]
    for n, edge in enumerate(data.get("edges", [])):
        size = 0.0
        for op in edge.get("_ldraw_", []):
            if op["op"] == "F":
                size = float(op["size"])
            if op["op"] == "T":
                (x, y), width = op["pt"], float(op["width"])
                left = {"l": x, "c": x - width / 2, "r": x - width}[op["align"]]
                boxes.append((n, left, left + width, y - 0.25 * size, y + 0.75 * size, op["text"]))
    return boxes


@needs_dot
def test_labels_of_a_loss_heads_edges_keep_apart() -> None:
    """``aux --channel 5``'s head: the Slice's three tops go to the loss and the Silence
    (report item 20: "protoedit_aux_afterprotoedit_aux_before" ran together).  No two edge
    labels come within half an em of each other, room for a viewer's font running wider."""
    before = loads((FIXTURES / "digits" / "deploy.prototxt").read_text(), path="deploy")
    after = loads(before.dumps(), path="deploy")
    aux(after, "conv1", LossHead("channel", 5, "mean", 1.0))
    graph = change_graph(before, loads(after.dumps()))
    boxes = _label_boxes(graph)
    texts = {b[5] for b in boxes}
    assert {"protoedit_aux_picked", "protoedit_aux_after", "protoedit_aux_before"} <= texts
    room = 0.5 * 9  # half an em of the edges' 9 pt font
    for i, (edge, left, right, bottom, top, _) in enumerate(boxes):
        for other, left2, right2, bottom2, top2, _ in boxes[i + 1 :]:
            if other == edge:
                continue
            apart_x = left2 - right >= room or left - right2 >= room
            apart_y = bottom2 - top >= room or bottom - top2 >= room
            assert apart_x or apart_y, (edge, other, left, right, left2, right2)
