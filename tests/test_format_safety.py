"""The formatter's run-time safety nets (:mod:`protoedit.syntax.canonical`): they fire on a
broken formatter (content changed, a comment lost or moved, a result a second pass would
change), stay quiet on the real one, and cost nothing on text that is already canonical."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings

from protoedit import ProtoeditError
from protoedit.syntax import canonical, parse, safe_format
from protoedit.syntax.formatter import format_tree
from protoedit.syntax.safe_format import format_text
from protoedit.syntax.tree import Tree, detect_newline

from .test_formatter import _commented, _numbered
from .test_syntax import _documents

SOURCE = "# head\na { b: 1  c: 'x' }  # after a\ne { }\nl: [1, 2]\n\nd: 2 # d\n# tail\n"
PLAIN = "a { b: 1  c: 'x' }\ne { }\nl: [1, 2]\n\nd: 2\n"


def _install(monkeypatch: pytest.MonkeyPatch, broken: Callable[[Tree], str]) -> None:
    monkeypatch.setattr(safe_format, "format_tree", broken)


def _toggle(before: str, after: str) -> Callable[[Tree], str]:
    """A formatter that writes ``after`` for ``before`` unless its input already has
    ``after``: the real formatter undoes ``after``, so a second pass gives another text."""

    def broken(doc: Tree) -> str:
        text = format_tree(doc)
        return text if after in doc.source else text.replace(before, after, 1)

    return broken


def _twice(broken: Callable[[Tree], str], text: str) -> tuple[str, str]:
    once = broken(parse(text))
    return once, broken(parse(once))


UNSTABLE = {
    "blank line after an opening line": _toggle("a {\n", "a {\n\n"),
    "blank line before a closing line": _toggle("  c: 'x'\n}", "  c: 'x'\n\n}"),
    "two blank lines": _toggle("\n\nd", "\n\n\nd"),
    "blank line at the end": _toggle("# tail\n", "# tail\n\n"),
    "blank line at the start": _toggle("# head\n", "\n# head\n"),
    "an empty message over two lines": _toggle("e {}\n", "e {\n}\n"),
    "a list with no comment one item per line": _toggle("l: [1, 2]\n", "l: [\n  1,\n  2\n]\n"),
    "a line ending that differs": _toggle("a {\n", "a {\r\n"),
    "whitespace after a comment": _toggle("# head\n", "# head \n"),
    "three spaces before a same-line comment": _toggle("}  # after a", "}   # after a"),
    "a field one level too deep": _toggle("\n  c: 'x'", "\n    c: 'x'"),
}


def _cases() -> list[tuple[str, str]]:
    """(breakage, text) for every breakage that changes the formatter's result of text."""
    cases = []
    for text in (SOURCE, PLAIN):
        right = format_tree(parse(text))
        cases += [(what, text) for what, broken in UNSTABLE.items() if broken(parse(text)) != right]
    return cases


@pytest.mark.parametrize(("what", "text"), _cases())
def test_a_formatter_that_a_second_pass_contradicts_is_caught(
    monkeypatch: pytest.MonkeyPatch, what: str, text: str
) -> None:
    broken = UNSTABLE[what]
    once, again = _twice(broken, text)
    assert again != once  # the injected formatter is really not idempotent
    _install(monkeypatch, broken)
    with pytest.raises(ProtoeditError, match="this is a formatter bug") as error:
        format_text(text, "net.prototxt")
    assert "formatting is not stable" in str(error.value)


def test_every_breakage_applies_to_the_commented_source_most_to_the_plain_one() -> None:
    cases = _cases()
    assert {what for what, text in cases if text == SOURCE} == set(UNSTABLE)
    assert len([text for _, text in cases if text == PLAIN]) >= 7


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda t: t.replace("b: 1", "b: 2"), "would change the content"),
        (lambda t: t.replace("  c: 'x'\n", ""), "would change the content"),
        (lambda t: t.replace("d: 2", "d: 2\nz: 0"), "would change the content"),
        (lambda t: t.replace("l: [1, 2]", "l: [2, 1]"), "would change the content"),
        (lambda t: t.replace("  # after a", ""), "would lose or reorder comments"),
        (lambda t: t.replace("# head\n", "").replace("# tail", "# tail\n# head"),
         "would lose or reorder comments"),
        (lambda t: t.replace("# tail", "# tail2"), "would lose or reorder comments"),
        (lambda t: t.replace("e {}", "e {}  # new"), "would lose or reorder comments"),
        (lambda t: t.replace("d: 2", "d: '# d'"), "would change the content"),
    ],
)  # fmt: skip
def test_content_and_comment_changes_are_caught(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[str], str], problem: str
) -> None:
    _install(monkeypatch, lambda doc: change(format_tree(doc)))
    with pytest.raises(ProtoeditError) as error:
        format_text(SOURCE, "net.prototxt")
    assert str(error.value) == (
        f"net.prototxt: formatting {problem}; this is a formatter bug, the file was left as is"
    )


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.replace("b: 1", "b: 2"),
        lambda t: t.replace("  c: 'x'\n", ""),
        lambda t: t.replace("e {}", "e {\n  f: 1\n}"),
        lambda t: t.replace("l: [1, 2]", "l: [1 2]"),
        lambda t: t.replace("c: 'x'", "c:'x'"),
        lambda t: t.replace("\n}", "\n}\n}"),
    ],
)
def test_changes_are_caught_with_no_comment_anywhere(
    monkeypatch: pytest.MonkeyPatch, change: Callable[[str], str]
) -> None:
    _install(monkeypatch, lambda doc: change(format_tree(doc)))
    with pytest.raises(ProtoeditError, match="formatter bug"):
        format_text(PLAIN, "net.prototxt")


def test_tokens_and_lines_give_the_same_content() -> None:
    tree = parse("a < b: 1; c: 'x' 'y', >\nl: [{ m: 1 }, {}]\ne: []\nf: [1, -2]\ng: {}\n")
    tokens, comments = canonical.content(tree)
    assert comments == []
    lines = canonical.content_lines(tree)
    assert lines == [
        "a {", "b: 1", "c: 'x' 'y'", "}", "l {", "m: 1", "}", "l {}", "e: []", "f: [1, -2]",
        "g {}",
    ]  # fmt: skip
    assert " ".join(tokens) == (
        "a { b : 1 c : 'x' 'y' } l { m : 1 } l { } e : [ ] f : [ 1 , -2 ] g { }"
    )


def test_canonical_text_is_not_checked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    canonical_text = format_text(SOURCE, "t")
    calls: list[str] = []
    real = canonical.problem

    def spy(tree: Tree, formatted: str, nl: str) -> str | None:
        calls.append(formatted)
        return real(tree, formatted, nl)

    monkeypatch.setattr(canonical, "problem", spy)
    assert format_text(canonical_text, "t") == canonical_text
    assert calls == []  # it parses to its own tree: nothing could differ
    format_text(SOURCE, "t")
    assert calls == [canonical_text]


def test_a_byte_order_mark_and_crlf_stay_and_pass_the_checks() -> None:
    text = "\ufeff" + SOURCE.replace("\n", "\r\n")
    once = format_text(text, "t")
    assert once.startswith("\ufeff# head\r\n") and "\n" not in once.replace("\r\n", "")
    assert format_text(once, "t") == once


@settings(max_examples=300, deadline=None)
@given(_commented().map(_numbered))
def test_the_checks_accept_what_the_formatter_writes(text: str) -> None:
    tree = parse(text)
    formatted = format_tree(tree)
    assert canonical.problem(tree, formatted, detect_newline(text)) is None
    assert format_tree(parse(formatted)) == formatted  # the stability they stand for


@settings(max_examples=200, deadline=None)
@given(_documents())
def test_the_checks_accept_what_the_formatter_writes_with_no_comments(text: str) -> None:
    tree = parse(text)
    try:
        formatted = format_tree(tree)
    except ProtoeditError:
        return  # a list mixing messages and scalars
    assert canonical.problem(tree, formatted, detect_newline(text)) is None
    assert format_tree(parse(formatted)) == formatted


def test_a_failure_at_the_end_of_a_long_list_is_found_in_linear_time() -> None:
    # Numbers match their digits in several ways: without atomic groups in the layout
    # pattern, a failure at the ``]`` retried every combination (2**n for n items).
    text = "a: [ # c\n" + "".join(f"{i}{i}, " for i in range(10, 3000)) + "1]\nb: 1\n"
    tree = parse(text)
    formatted = format_tree(tree)
    assert canonical.problem(tree, formatted, "\n") is None
    for broken in (formatted.replace("\n]", "\n\n]"), formatted.replace("  1\n]", "  1,\n]")):
        assert canonical.problem(tree, broken, "\n") is not None
    assert canonical.problem(tree, formatted.replace("\nb: 1", "\n  b: 1"), "\n") == (
        "is not stable (a second pass would change the result)"
    )
