"""The lossless syntax layer: byte-for-byte round trips, trivia ownership, plain-words errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protoedit.syntax import ParseError, parse, render
from protoedit.syntax.tree import Block, Scalar

from .conftest import FIXTURES

FEATURES = FIXTURES / "syntax" / "all_features.prototxt"


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8")


def test_every_feature_round_trips() -> None:
    text = _read(FEATURES)
    assert render(parse(text)) == text


@pytest.mark.parametrize("transform", ["crlf", "no_final_newline", "tabs"])
def test_line_ending_and_whitespace_variants_round_trip(transform: str) -> None:
    text = _read(FEATURES)
    if transform == "crlf":
        text = text.replace("\n", "\r\n")
    elif transform == "no_final_newline":
        text = text.rstrip("\n")
    else:
        text = text.replace("  ", "\t")
    assert render(parse(text)) == text


def test_corpus_round_trips_byte_for_byte(corpus: Path) -> None:
    checked = 0
    for path in sorted(corpus.glob("*.prototxt")):
        text = _read(path)
        if "${" in text:  # a template with ${VAR} placeholders: not text format (see below)
            continue
        assert render(parse(text, str(path))) == text, path.name
        checked += 1
    assert checked >= 40


def test_template_placeholder_is_a_located_syntax_error(corpus: Path) -> None:
    path = corpus / "TheLegendAli__DeepLab-Context__config__DeepLab__train.prototxt"
    with pytest.raises(ParseError) as error:
        parse(_read(path), str(path))
    assert str(error.value).startswith(f"{path}:477:17: unexpected character '$'")


def test_trivia_belongs_to_the_right_nodes() -> None:
    text = (
        "# header\n\n"
        "# about a\n"
        "a: 1  # same line as a\n"
        "b {  # after the brace\n"
        "  c: 2\n"
        "  # before the closing brace\n"
        "}\n"
        "# end of file\n"
    )
    doc = parse(text)
    a, b = doc.fields
    assert a.leading == "# header\n\n# about a\n"
    assert a.trailing == "  # same line as a\n"
    assert isinstance(b.value, Block)
    assert b.value.open_trailing == "  # after the brace\n"
    assert b.value.close.pre == "  # before the closing brace\n"
    assert doc.end == "# end of file\n"


def test_values_keep_their_raw_spelling() -> None:
    doc = parse("a: 1.\nb: -2.5e-3\nc: 'x' \"y\"\nd: -inf\ne: 0x1F\n")
    raws = [f.value.raw for f in doc.fields if isinstance(f.value, Scalar)]
    assert raws == ["1.", "-2.5e-3", "'x' \"y\"", "-inf", "0x1F"]


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        ("a: ", "1:3", "expected a value after ':'"),
        ("layer {\n  name: \n}\n", "3:1", "expected a value after ':', found '}'"),
        ("x {\n  a: 1\n", "2:7", "unclosed '{' opened at 1:3"),
        ("a { b: 1 >", "1:10", "'{' opened at 1:3 is closed by '>'; expected '}'"),
        ("a b", "1:3", "expected ':' or '{' after field name 'a', found 'b'"),
        ("}", "1:1", "unmatched '}'"),
        ("a: [1, ]", "1:8", "expected a list item after ',', found ']'"),
        ("a: [1 2]", "1:7", "expected ',' or ']' in the list, found '2'"),
        ('a: "x\n"', "1:4", "unterminated string"),
        ("a: 1.2.3", "1:4", "malformed number '1.2.3'"),
        ("a: 1 @", "1:6", "unexpected character '@'"),
    ],
)
def test_syntax_errors_say_what_was_expected_where(text: str, where: str, message: str) -> None:
    with pytest.raises(ParseError) as error:
        parse(text, "net.prototxt")
    first, source_line, caret = str(error.value).splitlines()
    assert first.startswith(f"net.prototxt:{where}: {message}")
    column = int(where.split(":")[1])
    assert caret == "  " + " " * (column - 1) + "^"
    assert source_line.startswith("  ")


# -- property: any tree we can write with arbitrary trivia prints back exactly -----------------

_names = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
_scalars = st.one_of(
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "true", "MAX", "1.", ".5", "1e-5", "0x10"]),
    st.text(st.characters(codec="ascii", exclude_characters='\\"\n\r'), max_size=8).map(
        lambda s: f'"{s}"'
    ),
)
_gaps = st.lists(
    st.sampled_from([" ", "\t", "\n", "\r\n", "  ", "# note\n", "#\n", "\n\n"]), max_size=3
).map("".join)


@st.composite
def _documents(draw: st.DrawFn, depth: int = 0) -> str:
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(_names)
        gap = draw(_gaps) or " "
        if depth < 2 and draw(st.booleans()):
            colon = draw(st.sampled_from(["", ":"]))
            opener, closer = draw(st.sampled_from([("{", "}"), ("<", ">")]))
            inner = draw(_documents(depth + 1))
            parts.append(f"{name}{colon}{draw(_gaps)}{opener}{inner}{draw(_gaps)}{closer}")
        elif draw(st.booleans()):
            items = draw(st.lists(_scalars, max_size=3))
            parts.append(f"{name}:{draw(_gaps)}[{', '.join(items)}]")
        else:
            parts.append(f"{name}:{draw(_gaps)}{draw(_scalars)}")
        parts.append(draw(st.sampled_from(["", ",", ";"])) + gap)
    return draw(_gaps) + "".join(parts)


@settings(max_examples=300, deadline=None)
@given(_documents())
def test_generated_documents_round_trip(text: str) -> None:
    assert render(parse(text)) == text
