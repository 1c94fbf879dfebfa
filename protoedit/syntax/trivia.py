"""Trivia attachment: whitespace and comments between tokens go to the node they belong to
(the rules are in :mod:`protoedit.syntax.tree`); both parsers hand their gaps over here."""

from __future__ import annotations

from protoedit.syntax.tree import Field


def split_gap(gap: str) -> tuple[str, str]:
    """Split trivia after a token into (rest of that line, what belongs to the next node)."""
    newline = gap.find("\n")
    if newline >= 0:
        return gap[: newline + 1], gap[newline + 1 :]
    if "#" in gap:  # a comment with no newline after it: only at the end of the file
        return gap, ""
    return "", gap


def attach_trivia(fields: list[Field], head: str, tail: str, in_block: bool) -> tuple[str, str]:
    """Move each field's leading gap and the closing gap to their owners.

    ``head`` is the gap before the first field (or before ``tail`` when there are none),
    ``tail`` the gap before the closing brace or end of file.  Returns what stays with the
    opener (the rest of its line, for a block) and with the closer.
    """
    opener = ""
    if not fields:
        if in_block:
            opener, rest = split_gap(tail)
            return opener, rest
        return "", tail
    previous: Field | None = None
    for field in fields:
        gap = field.name.pre
        field.name.pre = ""
        if previous is not None:
            previous.trailing, field.leading = split_gap(gap)
        elif in_block:
            opener, field.leading = split_gap(gap)
        else:
            field.leading = gap
        previous = field
    fields[-1].trailing, closer = split_gap(tail)
    return opener, closer
