"""Documents: load/dumps identity, atomic saves, and edits that keep everything else."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from protoedit import InputError, load, loads
from protoedit.document import write_atomic

from .conftest import FIXTURES

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
    # Comments that belonged to untouched nodes survive; the deleted node's own do not.
    original = (EDITS / f"{case}.in.prototxt").read_text()
    for line in original.splitlines():
        if "#" in line and "accuracy" not in line:
            assert line.strip()[line.strip().index("#") :] in expected, line


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
    with pytest.raises(InputError, match=r"not a value of caffe\.PoolingParameter\.PoolMethod"):
        doc.set("layer[0].pooling_param.pool", "MEDIAN")
    with pytest.raises(InputError, match="has no field 'kernal_size'"):
        doc.set("layer[0].pooling_param.kernal_size", 3)


def test_paths_that_do_not_pick_one_field_are_refused() -> None:
    doc = loads('layer { name: "a" }\nlayer { name: "b" }\n')
    with pytest.raises(InputError, match="matches 2 fields"):
        doc.set("layer.name", "x")
    with pytest.raises(InputError, match="no field at 'layer\\[name=z\\]'"):
        doc.set("layer[name=z].name", "x")
    assert doc.delete("layer[name=z]") == 0


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
