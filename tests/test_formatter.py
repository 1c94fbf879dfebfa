"""The formatter, in process: canonical layout, comments kept in order, safety nets."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protoedit import ProtoeditError, format_text
from protoedit.cli.format_check import format_files
from protoedit.syntax import formatter, parse
from protoedit.syntax.formatter import format_tree
from protoedit.syntax.printer import comments
from protoedit.syntax.tree import Tree

from .test_syntax import _documents


def _comments(text: str) -> list[str]:
    tree = parse(text)
    return comments(tree.fields, tree.end)


def test_comments_in_a_list_stay_with_their_values() -> None:
    text = "a: [1, # one\n 2 # two\n] # after\n"
    assert format_text(text, "t") == "a: [\n  1,  # one\n  2  # two\n]  # after\n"


@pytest.mark.parametrize(
    "text",
    [
        "a: [1, # one\n 2 # two\n] # after\n",
        "a: [ # open\n  # above one\n  1 # one\n  , # comma\n  'x' # in\n  'y', 3\n  # last\n]\n",
        "a: [ # empty\n]\nb: 1\n",
        "a # name\n : # colon\n [1, 2] # end\n ; # sep\nb: 2\n",
        "layer: [ # c0\n{ a: 1 } # c1\n, # c2\n # c3\n { b: 2 }, # c4\n{}] # c5\nx: 1 # x\n",
        "b { c: 1 } # brace\n ; # after the separator\nd: 2\n",
        "s: 'a' # between\n 'b' # end\n",
        "# head\n\n\n# about a\na { # open\n\n  b: 1 # b\n\n\n  # before close\n}\n# tail\n",
    ],
)
def test_comment_sequence_and_content_survive_and_a_second_pass_changes_nothing(
    text: str,
) -> None:
    once = format_text(text, "t")
    assert _comments(once) == _comments(text)
    assert format_text(once, "t") == once


def test_layout_is_canonical() -> None:
    text = "a<b:1;c:'x',>\nd :[ 1 ,2 ]\ne {}\nf { }\n\n\n\ng: 1\n"
    assert format_text(text, "t") == ("a {\n  b: 1\n  c: 'x'\n}\nd: [1, 2]\ne {}\nf {}\n\ng: 1\n")


def test_a_list_of_messages_becomes_the_repeated_field_written_out() -> None:
    assert format_text("l: [{a: 1}, {a: 2}]\n", "t") == "l {\n  a: 1\n}\nl {\n  a: 2\n}\n"


def test_crlf_is_kept() -> None:
    assert format_text("a {b: 1}\r\nc: 2\r\n", "t") == "a {\r\n  b: 1\r\n}\r\nc: 2\r\n"


def test_a_list_mixing_messages_and_scalars_is_refused_with_a_location() -> None:
    with pytest.raises(ProtoeditError) as error:
        format_text("x: 1\na: [{b: 1}, 2]\n", "net.prototxt")
    assert str(error.value).startswith("net.prototxt:2:4: a list that mixes messages and scalars")


def _breaking(monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    real = format_tree

    def broken(doc: Tree) -> str:
        text = real(doc)
        if change == "content":
            return text.replace("b: 1", "b: 2")
        if change == "comments":
            swapped = text.replace("# one", "# _").replace("# two", "# one")
            return swapped.replace("# _", "# two")
        at = doc.source.index("b:")
        indent = at - doc.source.rindex("\n", 0, at) - 1
        return text.replace("  b: 1", " " * (indent + 1) + "b: 1")  # deeper with every pass

    monkeypatch.setattr(formatter, "format_tree", broken)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ("content", "would change the content"),
        ("comments", "would lose or reorder comments"),
        ("stability", "is not stable (a second pass would change the result)"),
    ],
)
def test_a_formatter_bug_is_an_error_and_nothing_is_written(
    monkeypatch: pytest.MonkeyPatch, change: str, problem: str
) -> None:
    _breaking(monkeypatch, change)
    text = "# one\na {\n  b: 1\n}\n# two\nc: 3\n"
    with pytest.raises(ProtoeditError) as error:
        format_text(text, "net.prototxt")
    assert str(error.value) == (
        f"net.prototxt: formatting {problem}; this is a formatter bug, the file was left as is"
    )


def test_format_files_reports_a_formatter_bug_with_exit_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: object
) -> None:
    from pathlib import Path

    target = Path(str(tmp_path)) / "net.prototxt"
    target.write_text("# one\na {b: 1}\n")
    _breaking(monkeypatch, "comments")
    assert format_files([str(target)], check=False, diff=False, in_place=True, stdin_name=None) == 2
    assert "the file was left as is" in capsys.readouterr().err
    assert target.read_text() == "# one\na {b: 1}\n"


# -- property: comments anywhere (inside lists too) keep their order -------------------------

_gap = st.lists(st.sampled_from([" ", "\n", "\t", "# c\n", "\n\n"]), max_size=3).map("".join)
_atoms = st.sampled_from(["1", "-2.5", "inf", "X", "'s'", '"t"'])


@st.composite
def _commented(draw: st.DrawFn, depth: int = 0) -> str:
    """Documents with gaps (often comments) between every pair of tokens."""
    kinds = ["scalar", "list", "block", "blocks"] if depth < 2 else ["scalar", "list"]
    parts = [draw(_gap)]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(kinds))
        if kind == "scalar":
            value = f":{draw(_gap)}{draw(_atoms)}"
            if draw(st.booleans()):  # adjacent strings
                value = f":{draw(_gap)}'s'{draw(_gap)}'more'"
        elif kind == "list":
            items = [
                f"{draw(_gap)}{draw(_atoms)}{draw(_gap)}" for _ in range(draw(st.integers(0, 3)))
            ]
            value = f":{draw(_gap)}[{','.join(items)}{draw(_gap)}]"
        else:
            blocks = [
                f"{draw(_gap)}{{{draw(_commented(depth + 1))}{draw(_gap)}}}{draw(_gap)}"
                for _ in range(1 if kind == "block" else draw(st.integers(1, 3)))
            ]
            colon = draw(st.sampled_from(["", ":"]))
            value = colon + blocks[0] if kind == "block" else f":[{','.join(blocks)}]"
        separator = draw(st.sampled_from(["", ",", ";"]))
        name = draw(st.sampled_from(["a", "b", "layer"]))
        parts.append(f"{name}{draw(_gap)}{value}{draw(_gap) + separator}{draw(_gap) or ' '}")
    return "".join(parts)


def _numbered(text: str) -> str:
    """Every comment made distinct (``# c0``, ``# c1``, ...), so a reordering shows."""
    count = iter(range(10**6))
    return re.sub(r"# c\n", lambda _: f"# c{next(count)}\n", text)


@settings(max_examples=400, deadline=None)
@given(_commented().map(_numbered))
def test_generated_documents_format_with_their_comments_in_order(text: str) -> None:
    once = format_text(text, "t")  # the safety nets check content, comments and stability
    assert _comments(once) == _comments(text)
    assert format_text(once, "t") == once


@settings(max_examples=100, deadline=None)
@given(_documents())
def test_round_trip_documents_format(text: str) -> None:
    assert format_text(format_text(text, "t"), "t") == format_text(text, "t")


# -- the library entry points: format_text, format_file -------------------------------------


def test_format_file_rewrites_only_what_is_not_canonical(tmp_path: object) -> None:
    from pathlib import Path

    from protoedit import format_file

    target = Path(str(tmp_path)) / "net.prototxt"
    target.write_text("a {b: 1}  # note\n")
    assert format_file(target, write=False) is True
    assert target.read_text() == "a {b: 1}  # note\n"  # asked only
    assert format_file(target) is True
    assert target.read_text() == "a {\n  b: 1\n}  # note\n"
    stamp = target.stat().st_mtime_ns
    assert format_file(target) is False  # canonical already: not written again
    assert target.stat().st_mtime_ns == stamp


def test_format_file_leaves_the_file_on_a_formatter_bug(
    monkeypatch: pytest.MonkeyPatch, tmp_path: object
) -> None:
    from pathlib import Path

    from protoedit import format_file

    target = Path(str(tmp_path)) / "net.prototxt"
    target.write_text("# one\na {b: 1}\n")
    _breaking(monkeypatch, "comments")
    with pytest.raises(ProtoeditError, match="the file was left as is"):
        format_file(target)
    assert target.read_text() == "# one\na {b: 1}\n"
