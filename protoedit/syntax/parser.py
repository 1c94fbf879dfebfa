"""Text format -> lossless tree, with Lark (LALR) and ``grammars/prototxt.lark``.

The grammar ignores whitespace and comments; the tokenizer keeps them as each token's leading
trivia, and the builder hands every gap to its owner (:mod:`protoedit.syntax.trivia`).  A
parse first tries the one-pass parser (:mod:`protoedit.syntax.fast`) over a single ``findall``
scan; whatever it does not expect (every error) goes to the LALR driver over Lark's tables,
which builds the same tree and gives the located messages.  Parses share no state, so
threads may parse at once; the garbage collector ends as it was found
(:mod:`protoedit.syntax.allocation`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

from lark import Lark
from lark.parsers.lalr_analysis import Shift

from protoedit.errors import Location, ProtoeditError, excerpt
from protoedit.grammars import GRAMMARS
from protoedit.syntax.allocation import bulk_allocation
from protoedit.syntax.fast import CLOSER, fast_parse
from protoedit.syntax.tree import Block, Field, ListValue, Scalar, Tok, Tree
from protoedit.syntax.trivia import attach_trivia

#: How deeply brackets (``{``/``<`` and ``[``) may nest.  Deeper text is refused with a
#: located :class:`ParseError`, so every recursive walk of a parsed tree (formatter, edits,
#: binding) stays far below Python's recursion limit.  Real files nest far less: the deepest
#: message path of Caffe's schema is 5 levels (a solver's ``net_param { layers { layer { blobs
#: { shape`` in V0 form), the deepest file of the shared corpus nests 4.
MAX_DEPTH = 100

_OPENERS = frozenset(("OPEN", "LSQB"))
_CLOSERS = frozenset(("CLOSE", "RSQB"))


class ParseError(ProtoeditError):
    """The text is not valid protobuf text format; the message says what was expected where."""


class _Builder:
    """Reduce actions named after the grammar's rules; tokens arrive as :class:`Tok` objects."""

    def scalar(self, children: list[Tok]) -> Scalar:
        return Scalar(children)

    def more_strings(self, children: list[Any]) -> Scalar:
        scalar: Scalar = children[0]
        scalar.parts.append(children[1])
        return scalar

    def separator(self, children: list[Tok]) -> Tok:
        return children[0]

    def scalar_field(self, children: list[Any]) -> Field:
        sep = children[3] if len(children) > 3 else None
        return Field(children[0], children[2], children[1], sep)

    def message_field(self, children: list[Any]) -> Field:
        if isinstance(children[1], Tok):
            colon, block, rest = children[1], children[2], children[3:]
        else:
            colon, block, rest = None, children[1], children[2:]
        return Field(children[0], block, colon, rest[0] if rest else None)

    def block(self, children: list[Any]) -> Block:
        open_tok, close_tok = children[0], children[-1]
        if CLOSER[open_tok.text] != close_tok.text:
            raise _BracketMismatch(open_tok, close_tok)
        fields: list[Field] = children[1:-1]
        head = fields[0].name.pre if fields else ""
        opener, close_tok.pre = attach_trivia(fields, head, close_tok.pre, in_block=True)
        return Block(open_tok, fields, close_tok, opener)

    def bracketed(self, children: list[Any]) -> ListValue:
        items: list[Scalar | Block] = []
        commas: list[Tok] = []
        for child in children[1:-1]:
            if isinstance(child, Tok):
                commas.append(child)
            elif child is not None:
                items.append(child)
        return ListValue(children[0], items, commas, children[-1])

    def start(self, children: list[Field]) -> list[Field]:
        return children  # the driver hands the trailing trivia over (it is per parse)


def _reducer(rule: Any, builder: _Builder) -> tuple[int, str, Any]:
    """(size, origin, action) for one grammar rule, mirroring Lark's tree shaping.

    Children from ``_inlined`` rules are spliced into their parent (a left-recursive list
    rule appends in place, so long lists stay linear); a ``?rule`` with one child passes it
    through; other rules call the builder method of their name (or alias).
    """
    origin = str(rule.origin.name)
    symbols = [str(symbol.name) for symbol in rule.expansion]
    splice = {
        index
        for index, symbol in enumerate(rule.expansion)
        if not symbol.is_term and str(symbol.name).startswith("_")
    }
    size = len(symbols)

    def flatten(children: list[Any]) -> list[Any]:
        flat: list[Any] = []
        for index, child in enumerate(children):
            if index in splice:
                flat.extend(child)
            else:
                flat.append(child)
        return flat

    if origin.startswith("_"):
        if symbols and symbols[0] == origin:  # _list: _list item -> append in place

            def grow(children: list[Any]) -> Any:
                head = children[0]
                head.extend(children[1:])
                return head

            return size, origin, grow
        return size, origin, (flatten if splice else list)
    if rule.options.expand1 and size == 1 and rule.alias is None:
        return size, origin, (lambda children: children[0])
    handler = getattr(builder, str(rule.alias or origin))
    if splice:
        return size, origin, (lambda children: handler(flatten(children)))
    return size, origin, handler


class _BracketMismatch(Exception):
    def __init__(self, open_tok: Tok, close_tok: Tok) -> None:
        super().__init__("bracket mismatch")
        self.open_tok = open_tok
        self.close_tok = close_tok


class _TooDeep(Exception):
    def __init__(self, open_tok: Tok) -> None:
        super().__init__("too deep")
        self.open_tok = open_tok


class _SyntaxFailure(Exception):
    """Raised by the driver: no action for ``token`` in ``state``."""

    def __init__(self, kind: str, token: Tok, expected: list[str], previous: str) -> None:
        super().__init__(kind)
        self.kind = kind
        self.token = token
        self.expected = expected
        self.previous = previous


class _Parser:
    """Lark builds the LALR tables and reduce callbacks from the grammar; we drive them.

    Lark's own lexer and parser loop are general and, for this grammar, slower than
    ``text_format``; this driver runs the same tables over a single-regex tokenizer derived
    from the grammar's terminals, and hands trivia to tokens as it lexes.
    """

    def __init__(self) -> None:
        self.builder = _Builder()
        lark = Lark((GRAMMARS / "prototxt.lark").read_text(), parser="lalr", lexer="basic")
        table = lark.parser.parser.parser.parse_table
        # Plain tables: a shift is the next state (>= 0), a reduce is ~rule_index (< 0).
        rules: list[tuple[int, str, Any]] = []
        rule_index: dict[Any, int] = {}
        self.actions: dict[int, dict[str, int]] = {}
        self.goto: dict[int, dict[str, int]] = {}
        for state, entries in table.states.items():
            acts: dict[str, int] = {}
            gotos: dict[str, int] = {}
            for symbol, (action, arg) in entries.items():
                name = str(symbol)
                if action is Shift:
                    (acts if name.isupper() or name == "$END" else gotos)[name] = arg
                else:
                    if arg not in rule_index:
                        rule_index[arg] = len(rules)
                        rules.append(_reducer(arg, self.builder))
                    acts[name] = ~rule_index[arg]
            self.actions[state] = acts
            self.goto[state] = gotos
        self.rules = rules
        self.start_state: int = table.start_states["start"]
        terminals = {t.name: t.pattern.to_regexp() for t in lark.terminals}
        #: The regexps of the grammar's tokens (trivia left out), by terminal name.
        self.terminals = {n: r for n, r in terminals.items() if n not in lark.ignore_tokens}
        trivia = "|".join(terminals[name] for name in lark.ignore_tokens)
        tokens = "|".join(
            f"(?P<{name}>{regexp})"
            for name, regexp in terminals.items()
            if name not in lark.ignore_tokens
        )
        # Atomic trivia: a regex must never backtrack into a comment to find a token in it.
        self.trivia = re.compile(f"(?>(?:{trivia})*)")
        self.token = re.compile(f"((?>(?:{trivia})*))(?:{tokens})")
        # The same scan without a group per terminal, for findall (all of it runs in C): a
        # terminal is known from its first character.
        anonymous = "|".join(
            f"(?:{regexp})" for name, regexp in terminals.items() if name not in lark.ignore_tokens
        )
        # The last piece is the trailing trivia with an empty token: without ``\\Z``, findall
        # would go on searching inside a final comment and find "tokens" there.
        self.pieces = re.compile(f"((?>(?:{trivia})*))({anonymous}|\\Z)")
        assert self.pieces.groups == 2, "a terminal's regexp has a capturing group"
        self.kinds = _first_characters(self.token)

    def tokens(self, text: str) -> Iterator[tuple[str, Tok]]:
        """(terminal name, token) pairs; a final ``$END`` token carries the trailing trivia."""
        match = self.token.match
        pos = 0
        length = len(text)
        while True:
            m = match(text, pos)
            if m is None:
                end = self.trivia.match(text, pos).end()  # type: ignore[union-attr]
                if end >= length:
                    yield "$END", Tok("", text[pos:], length)
                    return
                raise _SyntaxFailure("char", Tok(text[end], text[pos:end], end), [], "")
            kind = m.lastgroup
            assert kind is not None
            start = m.start(kind)
            yield kind, Tok(m.group(kind), m.group(1), start)
            pos = m.end()

    def parse(self, text: str, path: str) -> Tree:
        with bulk_allocation():
            return self._parse(text, path)

    def _parse(self, text: str, path: str) -> Tree:
        try:
            tree = fast_parse(text, self.pieces, self.kinds, MAX_DEPTH)
            fields, end = tree if tree is not None else self._drive(self.tokens(text))
        except _BracketMismatch as exc:
            doc = Tree([], "", text, path)
            line, col = doc.line_col(exc.open_tok.pos)
            raise _error(
                doc,
                exc.close_tok.pos,
                f"'{exc.open_tok.text}' opened at {line}:{col} is closed by "
                f"'{exc.close_tok.text}'; expected '{CLOSER[exc.open_tok.text]}'",
            ) from None
        except _TooDeep as exc:
            doc = Tree([], "", text, path)
            raise _error(doc, exc.open_tok.pos, f"nesting deeper than {MAX_DEPTH} levels") from None
        except _SyntaxFailure as exc:
            raise _explain(exc, text, path) from None
        return Tree(fields, end, text, path)

    def _drive(self, tokens: Iterator[tuple[str, Tok]]) -> tuple[list[Field], str]:
        """The LALR loop over a token stream: shift tokens, reduce with the rules' actions.

        This loop is the hot path of every load.  Bracket depth is counted on shifts and
        capped at :data:`MAX_DEPTH`.  The state is local, so parses may run in parallel.
        """
        actions, goto, rules = self.actions, self.goto, self.rules
        depth = 0
        state = self.start_state
        state_stack = [state]
        value_stack: list[Any] = []
        previous = ""
        for kind, tok in tokens:
            while True:
                act = actions[state].get(kind)
                if act is None:
                    raise _SyntaxFailure("token", tok, list(actions[state]), previous)
                if act >= 0:
                    if kind in _OPENERS:
                        depth += 1
                        if depth > MAX_DEPTH:
                            raise _TooDeep(tok)
                    elif kind in _CLOSERS:
                        depth -= 1
                    state = act
                    state_stack.append(state)
                    value_stack.append(tok)
                    previous = kind
                    break
                count, origin, action = rules[~act]
                if count:
                    children = value_stack[-count:]
                    del value_stack[-count:]
                    del state_stack[-count:]
                else:
                    children = []
                value = action(children)
                if origin == "start":
                    _, end = attach_trivia(value, "", tok.pre, in_block=False)
                    return value, end
                value_stack.append(value)
                state = goto[state_stack[-1]][origin]
                state_stack.append(state)
        raise AssertionError("the token stream ends with $END")  # pragma: no cover


def _first_characters(token: re.Pattern[str]) -> dict[str, str]:
    """The terminal of each character a token can start with (the grammar's terminals start
    differently: a letter or ``_`` a name, a digit, ``-`` or ``.`` a number, a quote a string).
    """
    kinds: dict[str, str] = {}
    for code in range(128):
        char = chr(code)
        for candidate in (char, char + "0", char + "a", char + '"', char + "'", char + "inf"):
            m = token.match(candidate)
            if m is not None and m.start(m.lastgroup or 0) == 0:
                kinds.setdefault(char, str(m.lastgroup))
                break
    return kinds


@lru_cache(maxsize=1)
def _parser() -> _Parser:
    return _Parser()


def token_patterns() -> dict[str, str]:
    """The regexps of the grammar's tokens (trivia left out), by terminal name."""
    return _parser().terminals


def parse(text: str, path: str = "<string>") -> Tree:
    """Parse protobuf text format into a lossless :class:`Tree`; raise :class:`ParseError`."""
    return _parser().parse(text, path)


def _error(doc: Tree, pos: int, message: str) -> ParseError:
    line, col = doc.line_col(pos)
    return ParseError(message, Location(doc.path, line, col), excerpt(doc.source, line, col))


_PLAIN = {
    "NAME": "a field name",
    "NUMBER": "a number",
    "STRING": "a string",
    "COLON": "':'",
    "OPEN": "'{'",
    "CLOSE": "'}'",
    "LSQB": "'['",
    "RSQB": "']'",
    "COMMA": "','",
    "SEMICOLON": "';'",
    "$END": "the end of the file",
}


def _describe(token: Tok) -> str:
    return f"'{token.text}'" if token.text else "the end of the file"


def _open_brackets(text: str, upto: int) -> list[tuple[str, int]]:
    """The brackets still open at offset ``upto`` (re-lexing; only used on the error path)."""
    stack: list[tuple[str, int]] = []
    try:
        for kind, token in _parser().tokens(text):
            if token.pos >= upto or kind == "$END":
                break
            if kind in ("OPEN", "LSQB"):
                stack.append((token.text, token.pos))
            elif kind in ("CLOSE", "RSQB") and stack:
                stack.pop()
    except _SyntaxFailure:
        pass
    return stack


def _explain(exc: _SyntaxFailure, text: str, path: str) -> ParseError:
    """Turn a driver failure into a plain-words message at the right place."""
    doc = Tree([], "", text, path)
    token = exc.token
    pos = token.pos
    if exc.kind == "char":
        if token.text in "\"'":
            return _error(doc, pos, "unterminated string (a string must end on its own line)")
        if token.text in "-.0123456789":
            word = re.match(r"[^\s,;:\[\]{}<>#]+", text[pos:])
            return _error(doc, pos, f"malformed number '{word.group() if word else token.text}'")
        return _error(doc, pos, f"unexpected character {token.text!r}")
    expected = set(exc.expected)
    previous = exc.previous
    if not token.text:  # end of file
        stack = _open_brackets(text, len(text))
        if stack:
            bracket, open_pos = stack[-1]
            line, col = doc.line_col(open_pos)
            closer = {"{": "}", "<": ">", "[": "]"}[bracket]
            return _error(
                doc,
                len(text.rstrip()),
                f"unclosed '{bracket}' opened at {line}:{col} (expected '{closer}' before the "
                "end of the file)",
            )
        if previous == "COLON":
            return _error(doc, len(text.rstrip()), "expected a value after ':'")
        return _error(doc, len(text.rstrip()), "unexpected end of the file")
    if previous == "COLON" and "NUMBER" in expected:
        return _error(doc, pos, f"expected a value after ':', found {_describe(token)}")
    if previous == "NAME" and "COLON" in expected:
        name = _previous_name(text, pos)
        return _error(
            doc,
            pos,
            f"expected ':' or '{{' after field name '{name}', found {_describe(token)}",
        )
    stack = _open_brackets(text, pos)
    in_list = bool(stack) and stack[-1][0] == "["
    if not in_list:
        expected.discard("RSQB")  # LALR merges states: a list's lookaheads leak out of lists
    if previous == "COMMA" and "RSQB" not in expected and "NAME" in expected:
        return _error(doc, pos, f"expected a list item after ',', found {_describe(token)}")
    if token.text in ("}", ">", "]") and "CLOSE" not in expected and "RSQB" not in expected:
        return _error(doc, pos, f"unmatched '{token.text}'")
    if "RSQB" in expected and "COMMA" in expected:
        return _error(doc, pos, f"expected ',' or ']' in the list, found {_describe(token)}")
    if "NAME" in expected and previous in ("", "CLOSE", "NUMBER", "STRING", "NAME", "RSQB"):
        return _error(doc, pos, f"expected a field name, found {_describe(token)}")
    wanted = sorted({_PLAIN.get(name, name) for name in expected})
    return _error(doc, pos, f"unexpected {_describe(token)}; expected {' or '.join(wanted)}")


def _previous_name(text: str, upto: int) -> str:
    name = ""
    try:
        for kind, token in _parser().tokens(text):
            if token.pos >= upto or kind == "$END":
                break
            if kind == "NAME":
                name = token.text
    except _SyntaxFailure:
        pass
    return name
