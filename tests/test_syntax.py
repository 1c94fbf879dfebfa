"""The lossless syntax layer: byte-for-byte round trips, trivia ownership, plain-words errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protoedit.syntax import ParseError, parse, render
from protoedit.syntax.parser import MAX_DEPTH
from protoedit.syntax.tree import Block, Scalar

from .helpers import FIXTURES

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


# -- nesting depth: refused past the limit with a location, never a RecursionError -------------


def _nest(openers: list[str], width: int, wide_level: int) -> str:
    """Blocks nested by ``openers`` (``{``, ``<``, ``: {`` or ``: [{``), with ``width`` scalar
    fields at ``wide_level`` and one at the bottom."""
    closers = {"{": "}", "<": ">", ": {": "}", ": [{": "}]"}
    head = []
    for level, opener in enumerate(openers):
        if level == wide_level:
            head.append("".join(f"w{i}: {i}\n" for i in range(width)))
        head.append(f"n{level} {opener}\n")
    tail = [closers[opener] + "\n" for opener in reversed(openers)]
    return "".join(head) + "leaf: 1\n" + "".join(tail)


def _depth(openers: list[str]) -> int:
    return sum(2 if "[" in opener else 1 for opener in openers)


def _parses_formats_and_dumps_or_refuses(text: str, depth: int) -> None:
    from protoedit import format_text, loads

    if depth > MAX_DEPTH:
        for attempt in (parse, lambda t: format_text(t, "<string>"), loads):
            with pytest.raises(ParseError) as error:
                attempt(text)
            assert error.value.location is not None and error.value.location.line > 0
            assert error.value.message == f"nesting deeper than {MAX_DEPTH} levels"
        return
    assert render(parse(text)) == text
    formatted = format_text(text, "<string>")
    assert format_text(formatted, "<string>") == formatted
    assert loads(text, lenient=True).dumps() == text


@settings(max_examples=60, deadline=None)
@given(
    st.one_of(
        st.integers(MAX_DEPTH - 4, MAX_DEPTH + 4),
        st.integers(1, 3 * MAX_DEPTH),
    ).flatmap(
        lambda n: st.lists(st.sampled_from(["{", "<", ": {", ": [{"]), min_size=n, max_size=n)
    ),
    st.one_of(st.integers(0, 5), st.integers(1000, 3000)),
    st.integers(0, 3 * MAX_DEPTH),
)
def test_deep_and_wide_documents_work_or_are_refused_with_a_location(
    openers: list[str], width: int, wide_level: int
) -> None:
    _parses_formats_and_dumps_or_refuses(_nest(openers, width, wide_level), _depth(openers))


def test_the_limit_is_exact_and_the_error_points_at_the_first_bracket_too_deep() -> None:
    _parses_formats_and_dumps_or_refuses("a { " * MAX_DEPTH + "} " * MAX_DEPTH, MAX_DEPTH)
    with pytest.raises(ParseError) as error:
        parse("a { " * (MAX_DEPTH + 1) + "} " * (MAX_DEPTH + 1), "deep.prototxt")
    column = 4 * MAX_DEPTH + 3
    assert str(error.value).startswith(f"deep.prototxt:1:{column}: nesting deeper than")


def test_an_edited_tree_deeper_than_the_limit_still_prints() -> None:
    from protoedit.syntax.edit import insert_fields, parse_fields

    tree = parse("a {\n" * MAX_DEPTH + "}\n" * MAX_DEPTH)
    for _ in range(9):  # each insert nests MAX_DEPTH more levels at the bottom
        inner = tree.fields[0].value
        while isinstance(inner, Block) and inner.fields:
            inner = inner.fields[-1].value
        assert isinstance(inner, Block)
        insert_fields(tree, inner, parse_fields("b {\n" * MAX_DEPTH + "}\n" * MAX_DEPTH))
    text = render(tree)
    assert text.count("{") == text.count("}") == 10 * MAX_DEPTH
    assert text.splitlines()[-1] == "}"
    with pytest.raises(ParseError, match="nesting deeper than"):
        parse(text)


# -- the one-pass parser against the LALR driver --------------------------------------------


def _shape(node: object) -> object:
    """Every token, offset and piece of trivia of a tree node, as nested tuples."""
    from protoedit.syntax.tree import Field, ListValue, Tok

    if node is None:
        return None
    if isinstance(node, Tok):
        return ("tok", node.text, node.pre, node.pos)
    if isinstance(node, Scalar):
        return ("scalar", [_shape(p) for p in node.parts])
    if isinstance(node, Block):
        fields = [_shape(f) for f in node.fields]
        return ("block", _shape(node.open), fields, _shape(node.close), node.open_trailing)
    if isinstance(node, ListValue):
        items = [_shape(i) for i in node.items]
        return (
            "list",
            _shape(node.open),
            items,
            [_shape(c) for c in node.commas],
            _shape(node.close),
        )
    assert isinstance(node, Field)
    parts = (node.name, node.value, node.colon, node.sep)
    return ("field", *[_shape(p) for p in parts], node.leading, node.trailing)


def _both_ways(text: str) -> None:
    """The fast path builds exactly the driver's tree, or declines where the driver fails."""
    from protoedit.syntax.fast import fast_parse
    from protoedit.syntax.parser import MAX_DEPTH, _parser

    parser = _parser()
    fast = fast_parse(text, parser.pieces, parser.kinds, MAX_DEPTH)
    try:
        driven = parser._drive(parser.tokens(text))
    except Exception as exc:  # any refusal of the driver (_SyntaxFailure and the others)
        assert fast is None, (text, exc)
        return
    assert fast is not None, text  # valid text never leaves the fast path
    assert [_shape(f) for f in fast[0]] == [_shape(f) for f in driven[0]]
    assert fast[1] == driven[1]


def test_fast_path_builds_the_drivers_tree_on_the_corpus(corpus: Path) -> None:
    for path in sorted(corpus.glob("*.prototxt")):
        _both_ways(path.read_bytes().decode("utf-8", "surrogateescape"))


_PIECES = [
    "a",
    "b:",
    ":",
    "1",
    "-2.5",
    "-inf",
    '"s"',
    "'t'",
    "{",
    "}",
    "<",
    ">",
    "[",
    "]",
    ",",
    ";",
    " ",
    "\n",
    "# c\n",
    "# end",
    "\ufeff",
    "$",
    '"open',
]


@settings(max_examples=2000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=40))
def test_fast_path_builds_the_drivers_tree_on_any_token_soup(pieces: list[str]) -> None:
    _both_ways(" ".join(pieces) if len(pieces) % 2 else "".join(pieces))


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.sampled_from(["1", '"x" "y"', "N", "-1e3"]),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
            st.lists(inner, max_size=3).map(
                lambda xs: "{ " + " ".join(f"f{i}: {x}" for i, x in enumerate(xs)) + " }"
            ),
        ),
        max_leaves=12,
    )
)
def test_fast_path_builds_the_drivers_tree_on_nested_values(value: str) -> None:
    _both_ways(f"# head\nfield: {value}  # tail\nother {value if value.startswith('{') else '{}'};")


def test_parses_run_in_parallel_without_a_lock() -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"a: {i}\nb {{ c: [{i}, 2] }}  # {i}\n" for i in range(200)]
    with ThreadPoolExecutor(4) as pool:
        trees = list(pool.map(parse, texts))
    assert [render(tree) for tree in trees] == texts
    assert [tree.fields[0].value.raw for tree in trees] == [str(i) for i in range(200)]  # type: ignore[union-attr]


def test_a_library_load_never_touches_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from protoedit import loads

    def touched(*_: object) -> None:
        raise AssertionError("a library call changed the garbage collector's state")

    for name in ("disable", "enable", "freeze", "unfreeze", "collect", "set_threshold"):
        monkeypatch.setattr(gc, name, touched)
    doc = loads('layer { name: "x" bottom: "a" top: "b" }\n' * 2000)
    assert len(doc.message.layer) == 2000


def test_the_command_owns_its_process_only_while_it_runs(tmp_path: Path) -> None:
    from protoedit.cli import main
    from protoedit.syntax import allocation

    net = tmp_path / "net.prototxt"
    net.write_text('name: "n"\n')
    assert not allocation._process_owned
    assert main(["check", str(net)]) == 0
    assert not allocation._process_owned  # main() run in-process leaves the flag as found


def test_a_load_runs_only_one_young_collection_per_build_and_restores_the_collector() -> None:
    import gc

    from protoedit import loads
    from protoedit.syntax.allocation import own_process

    text = 'layer { name: "x" bottom: "a" top: "b" param { lr_mult: 1 } }\n' * 5000
    loads('name: "warm-up"')  # the schema is loaded once, on first use
    runs: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            runs.append(info["generation"])

    gc.callbacks.append(count)
    own_process()  # as the CLI does: its process is protoedit's
    try:
        doc = loads(text)  # some 100 000 new objects: hundreds of collections without the pause
        assert len(doc.message.layer) == 5000
    finally:
        own_process(False)
        gc.callbacks.remove(count)
    # The parse and the binding each collect the young generations once on the way in (the
    # caller's young garbage); nothing scans the new objects.
    assert runs == [1, 1] and gc.isenabled()
    gc.disable()
    try:
        parse("a: 1")
        assert not gc.isenabled()  # a caller's choice is left alone
    finally:
        gc.enable()


# -- the garbage collector ends as the caller left it -------------------------------------


def _collector_state() -> tuple[bool, int, tuple[int, int, int]]:
    import gc

    return gc.isenabled(), gc.get_freeze_count(), gc.get_threshold()


@pytest.mark.parametrize("setting", ["enabled", "disabled", "frozen", "thresholds"])
def test_a_load_leaves_the_collector_as_it_found_it(setting: str) -> None:
    import gc

    import protoedit

    threshold = gc.get_threshold()
    try:
        if setting == "disabled":
            gc.disable()
        elif setting == "frozen":
            gc.freeze()
        elif setting == "thresholds":
            gc.set_threshold(500, 7, 3)
        before = _collector_state()
        protoedit.load(FIXTURES / "lenet_deploy.prototxt")
        protoedit.loads('layer { name: "a" type: "ReLU" }\n').message  # noqa: B018
        assert _collector_state() == before
    finally:
        gc.enable()
        gc.unfreeze()
        gc.set_threshold(*threshold)


def test_a_load_does_not_hold_back_the_callers_young_garbage() -> None:
    # The old load froze and unfroze every object, so garbage the caller had just made went to
    # the oldest generation and waited for a full collection; now it goes as a young
    # collection would take it.
    import gc
    import weakref

    import protoedit

    class Node:
        pass

    assert gc.isenabled() and not gc.get_freeze_count()
    gc.collect()
    node = Node()
    node.self = node  # type: ignore[attr-defined]  # a cycle: only the collector frees it
    gone = weakref.ref(node)
    del node
    protoedit.loads('name: "n"\n')
    gc.collect(1)  # a young collection
    assert gone() is None
