"""The one-pass parser: the fast path of every parse.

A ``findall`` scan (in C) gives (trivia, token) pairs; a state machine for the grammar's few
forms builds the tree from them.  It builds what the LALR driver of
:mod:`protoedit.syntax.parser` builds (the tests compare them); anything odd, an error above
all, goes to the driver, whose messages are the reference.
"""

from __future__ import annotations

import re
from typing import Any

from protoedit.syntax.tree import Block, Field, ListValue, Scalar, Tok
from protoedit.syntax.trivia import attach_trivia

#: The closing bracket of each message bracket.
CLOSER = {"{": "}", "<": ">"}
# What the next token may be.
_FIELD, _NAME, _VALUE, _STRINGS, _SEP, _LIST_FIRST, _LIST_ITEM, _LIST_AFTER, _LIST_STRINGS = range(
    9
)


def fast_parse(
    text: str, pieces: re.Pattern[str], kinds: dict[str, str], max_depth: int
) -> tuple[list[Field], str] | None:
    """The fields and the trailing trivia of valid ``text`` in one pass; ``None`` at the
    first thing it does not expect.

    ``pieces`` scans (trivia, token) pairs, the last with an empty token; ``kinds`` gives a
    token's terminal from its first character; brackets nest at most ``max_depth`` deep.
    """
    pos = 0
    depth = 0
    state = _FIELD
    fields: list[Field] = []
    stack: list[tuple[Any, ...]] = []
    name = colon = lopen = None
    items: list[Scalar | Block] = []
    commas: list[Tok] = []
    scalar: Scalar | None = None
    tail = None
    # ``split`` gives a flat list of strings (no tuple per token, nothing for the garbage
    # collector to track): what lies between two matches, then the two groups of each match.
    pieces_list = pieces.split(text)
    flat = iter(pieces_list)
    if next(flat):
        return None  # something before the first piece that is neither trivia nor a token
    for pre, raw, gap in zip(flat, flat, flat, strict=False):
        if gap and raw:
            return None  # text the scan skipped
        pos += len(pre)
        if not raw:
            tail = pre
            break
        tok = Tok(raw, pre, pos)
        pos += len(raw)
        kind = kinds[raw[0]]
        if state == _STRINGS:  # a string value goes on while strings follow
            if kind == "STRING":
                scalar.parts.append(tok)  # type: ignore[union-attr]
                continue
            fields.append(Field(name, scalar, colon))  # type: ignore[arg-type]
            state = _SEP
        elif state == _LIST_STRINGS:
            if kind == "STRING":
                scalar.parts.append(tok)  # type: ignore[union-attr]
                continue
            state = _LIST_AFTER
        if state == _SEP:
            if kind == "COMMA" or kind == "SEMICOLON":
                fields[-1].sep = tok
                state = _FIELD
                continue
            state = _FIELD
        if state == _FIELD:
            if kind == "NAME":
                name = tok
                state = _NAME
                continue
            if kind == "CLOSE" and stack:
                open_tok = stack[-1][0]
                if CLOSER[open_tok.text] != raw:
                    return None
                head = fields[0].name.pre if fields else ""
                opener, tok.pre = attach_trivia(fields, head, pre, in_block=True)
                block = Block(open_tok, fields, tok, opener)
                depth -= 1
                _, fields, name, colon, lopen, items, commas = stack.pop()
                if lopen is None:
                    fields.append(Field(name, block, colon))
                    state = _SEP
                else:
                    items.append(block)
                    state = _LIST_AFTER
                continue
            return None
        if state == _NAME:
            if kind == "COLON":
                colon = tok
                state = _VALUE
                continue
            colon = None
            state = _VALUE  # a block may follow a name directly, nothing else may
            if kind != "OPEN":
                return None
        if state == _VALUE:
            if kind == "STRING":
                scalar = Scalar([tok])
                state = _STRINGS
            elif kind == "NUMBER" or (kind == "NAME" and colon is not None):
                fields.append(Field(name, Scalar([tok]), colon))  # type: ignore[arg-type]
                state = _SEP
            elif kind == "OPEN":
                depth += 1
                if depth > max_depth:
                    return None
                stack.append((tok, fields, name, colon, None, items, commas))
                fields = []
                state = _FIELD
            elif kind == "LSQB" and colon is not None:
                depth += 1
                if depth > max_depth:
                    return None
                lopen, items, commas = tok, [], []
                state = _LIST_FIRST
            else:
                return None
            continue
        if state == _LIST_AFTER:
            if kind == "COMMA":
                commas.append(tok)
                state = _LIST_ITEM
                continue
            if kind != "RSQB":
                return None
            state = _LIST_FIRST  # the close is handled there
        if kind == "RSQB" and state == _LIST_FIRST:
            depth -= 1
            value = ListValue(lopen, items, commas, tok)  # type: ignore[arg-type]
            fields.append(Field(name, value, colon))  # type: ignore[arg-type]
            lopen = None
            state = _SEP
        elif kind == "STRING":
            scalar = Scalar([tok])
            items.append(scalar)
            state = _LIST_STRINGS
        elif kind == "NUMBER" or kind == "NAME":
            items.append(Scalar([tok]))
            state = _LIST_AFTER
        elif kind == "OPEN":
            depth += 1
            if depth > max_depth:
                return None
            stack.append((tok, fields, name, colon, lopen, items, commas))
            fields, lopen = [], None
            state = _FIELD
        else:
            return None
    if state == _STRINGS:
        fields.append(Field(name, scalar, colon))  # type: ignore[arg-type]
    elif state not in (_FIELD, _SEP):
        return None
    # findall skips what it cannot match; then the lengths do not add up to the text.
    if stack or tail is None or pos != len(text):
        return None
    _, end = attach_trivia(fields, "", tail, in_block=False)
    return fields, end
