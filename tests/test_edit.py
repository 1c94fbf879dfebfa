"""Tree edits (``protoedit.syntax.edit``): new text takes the style of its new home."""

from __future__ import annotations

import pytest

from protoedit import loads
from protoedit.syntax import parse
from protoedit.syntax.edit import guess_unit, insert_fields, parse_fields
from protoedit.syntax.printer import comments

ONE_LINE = (
    'name: "n"\n'
    'layer { name: "c" type: "Convolution" bottom: "data" top: "c" }\n'
    'layer { name: "relu1" type: "ReLU" bottom: "c" top: "c" }\n'
)


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        (ONE_LINE, "  "),  # one-line blocks say nothing about the step
        ('layer { name: "a"\n    top: "a"\n}\n', "    "),  # the first field starting a line
        ("a {\n\tb: 1\n}\n", "\t"),
        ("  a {\n      b: 1\n  }\n", "    "),  # measured from the parent's own indentation
        ("a: 1\n", "  "),
    ],
)
def test_the_indentation_step_comes_from_a_field_that_starts_a_line(text: str, unit: str) -> None:
    assert guess_unit(parse(text)) == unit


def test_a_new_layer_in_a_file_of_one_line_layers_is_indented_by_two_spaces() -> None:
    doc = loads('layer { name: "c" }\n')
    doc.insert("", 'layer { name: "d" }  # new')
    assert doc.dumps() == 'layer { name: "c" }\nlayer {\n  name: "d"\n} # new\n'


def test_a_nested_insert_into_a_one_line_block_keeps_it_one_line() -> None:
    doc = loads(ONE_LINE)
    doc.insert("layer[name=relu1]", "relu_param {\n  negative_slope: 0.1\n}")
    doc.insert("layer[name=c]", "convolution_param { num_output: 3 kernel_size: [3, 3] }")
    assert doc.dumps() == (
        'name: "n"\n'
        'layer { name: "c" type: "Convolution" bottom: "data" top: "c"'
        " convolution_param { num_output: 3 kernel_size: [3, 3] } }\n"
        'layer { name: "relu1" type: "ReLU" bottom: "c" top: "c"'
        " relu_param { negative_slope: 0.1 } }\n"
    )
    assert doc.message.layer[1].relu_param.negative_slope == pytest.approx(0.1)
    assert list(doc.message.layer[0].convolution_param.kernel_size) == [3, 3]


def test_a_snippet_with_comments_opens_a_one_line_block_and_keeps_them_in_order() -> None:
    doc = loads(ONE_LINE)
    snippet = "# leaky\nrelu_param {  # opener\n  negative_slope: 0.1  # slope\n}  # after\n"
    doc.insert("layer[name=relu1]", snippet)
    text = doc.dumps()
    assert comments(parse(text).fields) == ["# leaky", "# opener", "# slope", "# after"]
    assert text.endswith(
        "layer {\n"
        '  name: "relu1"\n'
        '  type: "ReLU"\n'
        '  bottom: "c"\n'
        '  top: "c"\n'
        "  # leaky\n"
        "  relu_param { # opener\n"
        "    negative_slope: 0.1 # slope\n"
        "  } # after\n"
        "}\n"
    )
    assert doc.message.layer[1].relu_param.negative_slope == pytest.approx(0.1)


def test_opening_a_nested_one_line_block_indents_from_its_owner_line() -> None:
    tree = parse("a {\n  b { c: 1 }\n}\n")
    inner = tree.fields[0].value.fields[0].value  # type: ignore[union-attr]
    insert_fields(tree, inner, parse_fields("d: 2  # two"))  # type: ignore[arg-type]
    from protoedit.syntax import render

    assert render(tree) == "a {\n  b {\n    c: 1\n    d: 2 # two\n  }\n}\n"


def test_a_rewrite_on_a_file_of_one_line_layers_indents_its_layers_by_two_spaces() -> None:
    from protoedit.rewrites import LossHead, add_loss

    doc = loads(
        'layer { name: "data" type: "Input" top: "data"'
        " input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }\n"
        'layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"'
        " convolution_param { num_output: 4 kernel_size: 3 } }\n"
    )
    add_loss(doc, "conv", LossHead("channel", 1))
    new = doc.dumps().splitlines()[2:]
    assert new[0] == "layer {" and new[1].startswith('  name: "protoedit_aux_')
    indents = {len(line) - len(line.lstrip(" ")) for line in new}
    assert indents == {0, 2, 4}


def test_the_snippet_builder_is_public_and_feeds_the_node_edits() -> None:
    import protoedit
    import protoedit.syntax

    assert protoedit.parse_fields is protoedit.syntax.parse_fields
    doc = protoedit.loads('name: "n"\nlayer { name: "a" type: "ReLU" bottom: "x" top: "x" }\n')
    fields = protoedit.parse_fields('layer { name: "b" type: "ReLU" bottom: "x" top: "x" }')
    doc.insert_fields(doc.tree, fields)
    assert [layer.name for layer in doc.message.layer] == ["a", "b"]
    assert doc.dumps().endswith(
        '\nlayer {\n  name: "b"\n  type: "ReLU"\n  bottom: "x"\n  top: "x"\n}\n'
    )
