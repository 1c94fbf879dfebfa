"""Documents: load/dumps identity, atomic saves, and edits that keep everything else."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from protoedit import BindError, InputError, PathError, load, loads
from protoedit.cli import main
from protoedit.files import write_atomic
from protoedit.syntax.edit import replace_value
from protoedit.syntax.printer import comments

from .helpers import FIXTURES

EDITS = FIXTURES / "edits"
CASES = sorted(p.name.removesuffix(".in.prototxt") for p in EDITS.glob("*.in.prototxt"))


def test_untouched_document_dumps_its_input(corpus: Path) -> None:
    path = corpus / "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt"
    doc = load(path)
    assert doc.dumps() == path.read_text()
    assert doc.message.layer[0].type == "Input"


@pytest.mark.parametrize("case", CASES)
def test_golden_edits(case: str, tmp_path: Path) -> None:
    doc = load(EDITS / f"{case}.in.prototxt")
    operations = json.loads((EDITS / f"{case}.edits.json").read_text())
    for name, *args in operations:
        getattr(doc, name)(*args)
    expected = (EDITS / f"{case}.out.prototxt").read_text()
    assert doc.dumps() == expected
    # The result is a valid net, and its message reflects the edits.
    again = loads(expected)
    assert again.message == doc.message
    # Comments survive in order; only comments of deleted nodes may go (a detached block above
    # a deleted node stays: the blank-line rule).
    before = load(EDITS / f"{case}.in.prototxt")
    deleted: list[str] = []
    for name, *args in operations:
        if name == "delete":
            for node in before.find(args[0]):
                deleted += comments([node])
    original = comments(before.tree.fields, before.tree.end)
    after = comments(doc.tree.fields, doc.tree.end)
    rest = iter(original)
    assert all(c in rest for c in after)  # a subsequence: nothing new, nothing reordered
    removed = [c for c in original if c not in after]
    assert removed and set(removed) <= set(deleted)  # only comments inside deleted nodes go


def test_set_is_idempotent_and_touches_only_the_value() -> None:
    text = 'name: "n"\nlayer {\n  name: "c"\n  convolution_param { num_output: 3 }  # keep\n}\n'
    doc = loads(text)
    doc.set("layer[0].convolution_param.num_output", 3)
    assert doc.dumps() == text
    doc.set("layer[name=c].convolution_param.num_output", 16)
    assert doc.dumps() == text.replace("num_output: 3", "num_output: 16")
    assert doc.get("layer[name=c].convolution_param.num_output") == 16


def test_set_renders_values_by_schema_type() -> None:
    doc = loads('layer { name: "p" pooling_param { pool: MAX } }\n')
    doc.set("layer[0].pooling_param.pool", "AVE")
    doc.set("layer[0].pooling_param.kernel_size", 3)
    doc.set("name", 'a "quoted" name')
    doc.set("layer[0].loss_weight", 0.5)
    assert doc.message.layer[0].pooling_param.pool == 1
    assert 'name: "a \\"quoted\\" name"' in doc.dumps()
    with pytest.raises(BindError, match=r"not a value of caffe\.PoolingParameter\.PoolMethod"):
        doc.set("layer[0].pooling_param.pool", "MEDIAN")
    with pytest.raises(PathError, match="has no field 'kernal_size'"):
        doc.set("layer[0].pooling_param.kernal_size", 3)


def test_selectors_compare_values_as_protobuf_reads_them() -> None:
    doc = loads(
        'layer { name: "a\\"b" type: "Convolution" param { lr_mult: 1.0 }'
        " convolution_param { group: 0x10 bias_term: True } }\n"
        'layer { name: "c" "d" param { lr_mult: 2 } }\n'
    )
    assert doc.get('layer[name=a"b].type') == "Convolution"  # escapes decoded
    assert doc.get("layer[name=cd].param[0].lr_mult") == 2  # adjacent strings joined
    assert doc.get("layer[0].param[lr_mult=1].lr_mult") == 1.0  # 1 is 1.0
    assert doc.get("layer[0].convolution_param[group=16].group") == 16  # 0x10 is 16
    assert doc.get("layer[0].convolution_param[bias_term=true].bias_term") is True
    with pytest.raises(InputError, match="no field at"):
        doc.get("layer[0].param[lr_mult=1.5]")
    with pytest.raises(InputError, match="no field at"):
        doc.get("layer[0].convolution_param[bias_term=false]")


def test_paths_that_do_not_pick_one_field_are_refused() -> None:
    doc = loads('layer { name: "a" }\nlayer { name: "b" }\n')
    with pytest.raises(InputError, match="matches 2 fields"):
        doc.set("layer.name", "x")
    with pytest.raises(InputError, match="no field at 'layer\\[name=z\\]'"):
        doc.set("layer[name=z].name", "x")
    assert doc.delete("layer[name=z]") == 0


CONV = (
    'name: "n"\n'
    'layer {\n  name: "data"\n  type: "Input"\n  top: "data"\n'
    "  input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } }\n"
    "  include { phase: TEST }\n}\n"
    'layer {\n  name: "conv1"\n  type: "Convolution"\n  bottom: "data"\n  top: "conv1"\n'
    "  convolution_param {\n    num_output: 4  # channels\n  }\n}\n"
)


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        (
            "layer[name=conv1].convolution_param.num_output",
            True,
            "expected an integer (uint32), found 'true'",
        ),
        ("layer[name=conv1].convolution_param.num_output", -5, "-5 is out of range for uint32"),
        (
            "layer[name=conv1].convolution_param.num_output",
            3.5,
            "expected an integer (uint32), found '3.5'",
        ),
        ("layer[name=conv1].convolution_param.num_output", "4", "cannot write '4'"),
        ("layer[name=conv1].name", 5, "expected a str for a string field, given 5"),
        ("layer[name=conv1].convolution_param.bias_term", 1, "expected True or False"),
    ],
)
def test_set_checks_the_value_against_the_schema_before_editing(
    path: str, value: object, problem: str
) -> None:
    doc = loads(CONV, path="net.prototxt")
    with pytest.raises(BindError) as error:
        doc.set(path, value)
    message = str(error.value)
    assert f"cannot set {path!r} to {value!r}: {problem}" in message
    if "num_output" in path:  # located at the value it would replace, with the line shown
        assert message.startswith("net.prototxt:15:17: ")
        assert "num_output: 4  # channels" in error.value.detail
    assert doc.dumps() == CONV  # nothing changed
    assert doc.message.layer[1].convolution_param.num_output == 4


@pytest.mark.parametrize(
    ("path", "snippet", "where", "problem"),
    [
        (
            "",
            'layer { name: "z" kernal: 3 }',
            "1:19",
            "unknown field 'kernal' in caffe.LayerParameter (not inserted",
        ),
        (
            "",
            "layer { convolution_param { num_output: -1 } }",
            "1:41",
            "'num_output': -1 is out of range for uint32",
        ),
        (
            "",
            'layer {\n  name: "head"\n  reduction_param { operation: AVG }\n}',
            "3:32",
            "'operation': unknown value 'AVG' for enum caffe.ReductionParameter.ReductionOp",
        ),
        (
            "layer[name=conv1]",
            'top: "b"\nname: "x"',
            "2:1",
            "'name' is already set there, and it is not a repeated field",
        ),
        (
            "layer[name=conv1].convolution_param",
            "pad: 1 pad: two",
            "1:13",
            "'pad': expected an integer (uint32), found 'two'",
        ),
    ],
)
def test_insert_binds_the_snippet_where_it_would_go(
    path: str, snippet: str, where: str, problem: str
) -> None:
    doc = loads(CONV, path="net.prototxt")
    with pytest.raises(BindError) as error:
        doc.insert(path, snippet)
    assert str(error.value).startswith(f"<snippet>:{where}: {problem}")
    into = repr(path) if path else "the top level"
    assert f"(not inserted into {into} of net.prototxt)" in str(error.value)
    assert doc.dumps() == CONV


def test_inserted_text_is_never_located_in_the_file_by_its_snippet_offsets() -> None:
    header = "# A header comment, long enough to hold offset 19 and more.\n"
    doc = loads(header + CONV, lenient=True, path="cm.prototxt")
    doc.insert("", 'layer { name: "z" kernal: 3 }')  # lenient: kept, with a warning
    assert [w.code for w in doc.warnings] == []  # not bound yet
    assert doc.message.layer[-1].name == "z"
    (warning,) = doc.warnings
    assert warning.code == "W101"
    assert doc.describe(warning).startswith("cm.prototxt: W101 unknown field 'kernal'")


def test_save_never_writes_a_file_that_does_not_bind(tmp_path: Path) -> None:
    target = tmp_path / "net.prototxt"
    target.write_text(CONV)
    doc = load(target)
    field = doc.find("layer[name=conv1].convolution_param.num_output")[0]
    replace_value(field, "true")  # a direct tree edit skips set()'s checks
    doc.invalidate()
    with pytest.raises(BindError, match="'num_output': expected an integer"):
        doc.save()
    with pytest.raises(BindError):
        doc.save(tmp_path / "copy.prototxt")
    assert target.read_text() == CONV
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.prototxt"]
    lenient = loads(CONV.replace("num_output: 4", "num_output: 4 fancy: 1"), lenient=True)
    lenient.save(tmp_path / "fork.prototxt")  # unknown fields travel in lenient mode
    assert "fancy: 1" in (tmp_path / "fork.prototxt").read_text()


def test_set_creates_missing_parent_messages_the_schema_knows() -> None:
    doc = loads(CONV)
    doc.set("layer[name=conv1].convolution_param.weight_filler.type", "xavier")
    doc.set("layer[name=data].convolution_param.bias_filler.std", 0.5)
    assert doc.dumps() == CONV.replace(
        "    num_output: 4  # channels\n",
        '    num_output: 4  # channels\n    weight_filler {\n      type: "xavier"\n    }\n',
    ).replace(
        "  include { phase: TEST }\n",
        "  include { phase: TEST }\n  convolution_param {\n    bias_filler {\n"
        "      std: 0.5\n    }\n  }\n",
    )
    assert doc.get("layer[name=conv1].convolution_param.weight_filler.type") == "xavier"
    assert doc.message.layer[0].convolution_param.bias_filler.std == 0.5
    with pytest.raises(InputError, match=r"no field at 'layer\[name=conv1\]\.param'"):
        doc.set("layer[name=conv1].param.lr_mult", 1.0)  # repeated: which one?
    with pytest.raises(PathError, match="has no field 'weight_filer'"):
        doc.set("layer[name=conv1].convolution_param.weight_filer.type", "xavier")
    before = doc.dumps()
    with pytest.raises(BindError, match="cannot set"):
        doc.set("layer[name=conv1].convolution_param.bias_filler.std", "wide")
    assert doc.dumps() == before  # no empty parent left behind


@pytest.mark.parametrize(
    "path",
    [
        "layer[0].include[phase=TEST]",
        "layer[1].include[phase=TEST]",
        "layer[name=conv1]",
        "layer[-1].top[0]",
        "layer[name=data].input_param.shape.dim[2]",
        "layer[type=Input]",
        "layer[name=conv1].convolution_param.num_output",
    ],
)
def test_get_reads_the_nodes_find_finds(path: str) -> None:
    doc = loads(CONV)
    found = doc.find(path)
    if not found:
        with pytest.raises(InputError, match="no field at"):
            doc.get(path)
        return
    assert len(found) == 1
    value = doc.get(path)
    if hasattr(value, "DESCRIPTOR"):  # a message: the one that node binds to
        assert value == _bound(doc, path)
    else:
        assert str(value) in found[0].value.raw  # type: ignore[union-attr]


def _bound(doc: object, path: str) -> object:
    """The message element ``path`` picks, found through the whole message."""
    net = doc.message  # type: ignore[attr-defined]
    return {
        "layer[0].include[phase=TEST]": lambda: net.layer[0].include[0],
        "layer[name=conv1]": lambda: net.layer[1],
        "layer[type=Input]": lambda: net.layer[0],
    }[path]()


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("layer[99].name", r"no field at 'layer\[99\]' in 'layer\[99\]\.name' \(there are 2"),
        (
            "layer[name=conv1].convolution_param.kernal_size",
            r"caffe\.ConvolutionParameter has no field 'kernal_size' \(did you mean 'kernel_size'",
        ),
        ("layer[name=conv2].name", r"no field at 'layer\[name=conv2\]'.*did you mean name=conv1"),
        ("layr[0]", r"caffe\.NetParameter has no field 'layr' \(did you mean 'layer'"),
        ("layer[nme=conv1]", r"caffe\.LayerParameter has no field 'nme' to select by"),
        ("layer[0].name.x", r"'layer\[0\]\.name' is a string field, not a message"),
        ("layer.name", r"'layer' matches 2 fields"),
        ("layer[1].param.lr_mult", r"no field at 'layer\[1\]\.param'"),
    ],
)
def test_get_errors_name_the_path_the_failing_part_and_the_nearest_names(
    path: str, error: str
) -> None:
    with pytest.raises(InputError, match=error):
        loads(CONV).get(path)


def test_get_reads_values_typed_and_defaults_as_the_message_does() -> None:
    doc = loads(CONV + "input_dim: [1, 3]\n")
    assert doc.get("layer[name=data].input_param.shape.dim") == [1, 3, 8, 8]
    assert doc.get("layer[name=data].input_param.shape.dim[0]") == 1
    assert doc.get("layer[0].include[0].phase") == 1  # TEST, as a number like the message
    assert doc.get("input_dim") == [1, 3]
    assert doc.get("force_backward") is False  # absent: the default
    assert doc.get("layer[1].convolution_param.bias_filler.std") == 1.0  # absent parents too
    assert doc.get("layer[1].bottom") == ["data"]
    assert doc.get("layer[0].bottom") == []


def test_invalidate_drops_the_message_after_a_direct_tree_edit() -> None:
    doc = loads(CONV)
    assert doc.message.name != "m"  # bound: a cached message
    replace_value(doc.find("name")[0], '"m"')  # a direct tree edit
    assert doc.message.name != "m"  # the cache does not know
    doc.invalidate()
    assert doc.message.name == "m"
    assert not hasattr(doc, "changed")  # the old name is gone (0.1.0: no shims)


def test_check_lints_the_net_past_bad_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "net.prototxt"
    net.write_text(
        CONV.replace("num_output: 4", 'num_output: "four"')
        + 'layer {\n  name: "pool"\n  type: "Pooling"\n  bottom: "conv1"\n  top: "pool"\n'
        "  pooling_param { pool: MAXX }\n}\n"
        'layer {\n  name: "drop"\n  type: "DropOut"\n  bottom: "missing"\n  top: "pool"\n}\n'
    )
    assert main(["check", str(net)]) == 1
    codes = [line.split(": ")[1].split()[0] for line in capsys.readouterr().out.splitlines()]
    # conv1's E202 is real: the data layer runs in TEST only.
    assert codes == ["E202", "E102", "E103", "E205", "E202", "E203"]


def test_new_fields_follow_the_file_style() -> None:
    text = 'layer {\r\n\tname: "a"\r\n\tconvolution_param {\r\n\t\tnum_output: 1\r\n\t}\r\n}'
    doc = loads(text)
    doc.set("layer[0].convolution_param.kernel_size", 3)
    doc.insert("", 'layer { name: "b" }')
    assert doc.dumps() == (
        'layer {\r\n\tname: "a"\r\n\tconvolution_param {\r\n\t\tnum_output: 1\r\n'
        '\t\tkernel_size: 3\r\n\t}\r\n}\r\nlayer {\r\n\tname: "b"\r\n}\r\n'
    )


def test_save_is_atomic_and_keeps_permissions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "net.prototxt"
    target.write_text('name: "old"\n')
    target.chmod(0o640)
    doc = load(target)
    doc.set("name", "new")

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(InputError, match=r"net\.prototxt: cannot write: disk full"):
        doc.save()
    assert target.read_text() == 'name: "old"\n'
    assert [p.name for p in tmp_path.iterdir()] == ["net.prototxt"]  # no temp file left
    monkeypatch.undo()
    doc.save()
    assert target.read_text() == 'name: "new"\n'
    assert target.stat().st_mode & 0o777 == 0o640


def test_write_atomic_creates_new_files(tmp_path: Path) -> None:
    write_atomic(tmp_path / "a.prototxt", "x: 1\n")
    assert (tmp_path / "a.prototxt").read_text() == "x: 1\n"


def test_unreadable_files_are_located_errors_and_stray_bytes_survive(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        load(tmp_path / "missing.prototxt")
    latin1 = tmp_path / "latin1.prototxt"  # Caffe reads a Latin-1 comment; so do we
    latin1.write_bytes(b'# caf\xe9\nname: "ok"\n')
    doc = load(latin1)
    doc.set("name", "new")
    doc.save()
    assert latin1.read_bytes() == b'# caf\xe9\nname: "new"\n'


# -- one error for a path the schema does not have, empty results for one that matches nothing


@pytest.mark.parametrize(
    "call",
    [
        lambda doc, path: doc.find(path),
        lambda doc, path: doc.get(path),
        lambda doc, path: doc.set(path, 1),
        lambda doc, path: doc.insert(path, "lr_mult: 1"),
        lambda doc, path: doc.delete(path),
    ],
    ids=["find", "get", "set", "insert", "delete"],
)
def test_a_path_typo_is_a_path_error_in_every_method(call: Any) -> None:
    doc = loads(CONV)
    before = doc.dumps()
    path = "layer[name=conv1].convolution_param.num_outptu"
    with pytest.raises(PathError) as raised:
        call(doc, path)
    error = raised.value
    assert isinstance(error, InputError)
    assert (error.path, error.index, error.offset) == (path, 2, path.index("num_outptu"))
    assert error.suggestions == ["num_output"]
    assert str(error) == (
        f"{path!r}: caffe.ConvolutionParameter has no field 'num_outptu' "
        "(did you mean 'num_output'?)\n"
        f"  {path}\n  {' ' * path.index('num_outptu')}^"
    )
    assert doc.dumps() == before


@pytest.mark.parametrize(
    ("path", "index", "offset", "suggestions"),
    [
        ("layr[0].name", 0, 0, ["layer", "layers"]),
        ("layer[nme=conv1].top", 0, 6, ["name"]),
        ("layer[0].name.x", 2, 14, []),
    ],
)
def test_a_path_error_points_at_the_bad_segment(
    path: str, index: int, offset: int, suggestions: list[str]
) -> None:
    doc = loads(CONV)
    for call in (doc.find, doc.delete, doc.get):
        with pytest.raises(PathError) as raised:
            call(path)
        assert (raised.value.index, raised.value.offset) == (index, offset)
        assert raised.value.suggestions == suggestions
        assert raised.value.detail.splitlines()[-1] == "  " + " " * offset + "^"


def test_a_valid_path_that_matches_nothing_gives_empty_results() -> None:
    doc = loads(CONV)
    before = doc.dumps()
    for path in ("layer[name=nope].top", "layer[99].param[0].lr_mult", "layer[name=nope]"):
        assert doc.find(path) == []
        assert doc.delete(path) == 0
    assert doc.find("layer[name=conv1].convolution_param.group") == []  # left out: no node
    assert doc.get("layer[name=conv1].convolution_param.group") == 1  # its default
    with pytest.raises(InputError, match=r"no field at 'layer\[name=conv2\]'.*name=conv1"):
        doc.insert("layer[name=conv2]", "bottom: 'x'")  # nowhere to insert: say what is there
    assert doc.dumps() == before


def test_a_path_error_survives_pickling() -> None:
    import pickle

    with pytest.raises(PathError) as raised:
        loads(CONV).find("layr")
    again = pickle.loads(pickle.dumps(raised.value))
    assert (type(again), str(again), again.offset) == (PathError, str(raised.value), 0)


def test_a_lenient_document_finds_and_deletes_fields_the_schema_lacks() -> None:
    doc = loads('name: "n"\nfork_option: 3\n', lenient=True)
    assert [f.name.text for f in doc.find("fork_option")] == ["fork_option"]
    assert doc.delete("fork_option") == 1
    assert doc.dumps() == 'name: "n"\n'
