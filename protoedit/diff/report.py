"""A :class:`NetDiff` for people (one line per item, places as ``path:line``) and as JSON."""

from __future__ import annotations

import json

from protoedit.diff.compare import FieldChange, NetDiff

SAME = "no semantic change"


def _change(item: FieldChange, note: str = "") -> str:
    """One indented line: the field, old -> new value, and both places."""
    places = f"{item.old_at} -> {item.new_at}"
    return f"    {item.field}: {item.old} -> {item.new}    ({note}{places})"


def summary(diff: NetDiff) -> str:
    """``2 removed, 1 added, ...``, or :data:`SAME`."""
    counts = [
        (len(diff.net), "net field(s) changed"),
        (len(diff.removed), "removed"),
        (len(diff.added), "added"),
        (len(diff.changed), "changed"),
        (len(diff.moved), "moved"),
        (len(diff.text), "text change(s)"),
    ]
    parts = [f"{n} {what}" for n, what in counts if n]
    return ", ".join(parts) if parts else SAME


def format_text(diff: NetDiff) -> str:
    """The diff as lines: ``-`` removed, ``+`` added, ``~`` changed, ``>`` moved layers."""
    lines = [f"--- {diff.old_path}", f"+++ {diff.new_path}"]
    if diff.net:
        lines.append("~ net")
        lines += [_change(item) for item in diff.net]
    lines += [f"- layer '{e.layer}' ({e.type})    {e.at}" for e in diff.removed]
    lines += [f"+ layer '{e.layer}' ({e.type})    {e.at}" for e in diff.added]
    for change in diff.changed:
        lines.append(
            f"~ layer '{change.layer}' ({change.type})    {change.old_at} -> {change.new_at}"
        )
        lines += [_change(item, "rewired; ") for item in change.rewired]
        lines += [_change(item) for item in change.fields]
    for move in diff.moved:
        was = f"after '{move.old_after}'" if move.old_after else "first"
        now = f"after '{move.new_after}'" if move.new_after else "first"
        lines.append(
            f"> layer '{move.layer}' moved: {was} -> {now}    {move.old_at} -> {move.new_at}"
        )
    lines += [f"= text of {t.what} differs    {t.old_at} -> {t.new_at}" for t in diff.text]
    lines += diff.costs.lines() if diff.costs is not None else []
    lines.append(summary(diff))
    return "\n".join(lines) + "\n"


def to_json(diff: NetDiff) -> str:
    """The diff as one JSON object (``same`` plus one list per kind of change)."""
    return json.dumps(
        {
            "old": diff.old_path,
            "new": diff.new_path,
            "same": diff.same,
            "net": [c.to_json() for c in diff.net],
            "removed": [e.to_json() for e in diff.removed],
            "added": [e.to_json() for e in diff.added],
            "changed": [c.to_json() for c in diff.changed],
            "moved": [m.to_json() for m in diff.moved],
            "text": [t.to_json() for t in diff.text],
            "cost": diff.costs.to_json() if diff.costs is not None else None,
        },
        indent=2,
    )
