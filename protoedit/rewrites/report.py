"""What a rewrite did: one line per change, drop or flag, for the user to read."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RewriteReport:
    """Changes made, layers dropped (with why) and things flagged but kept.

    ``removed`` maps each dropped layer's name to why it went, so a later step can explain
    a target that is no longer there.
    """

    changed: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)
    removed: dict[str, str] = field(default_factory=dict)

    def extend(self, other: RewriteReport) -> RewriteReport:
        """Append another rewrite's report to this one."""
        self.changed += other.changed
        self.dropped += other.dropped
        self.flagged += other.flagged
        for name, why in other.removed.items():
            self.removed.setdefault(name, why)
        return self

    def lines(self, fold: bool = False) -> list[str]:
        """Human-readable lines, changes first; with ``fold`` the same change to three or more
        layers is one line naming them (an in-memory rewrite of ResNet-50 upgrades 53
        BatchNorm layers: not 53 lines)."""
        return (
            [f"changed: {line}" for line in (_folded(self.changed) if fold else self.changed)]
            + [f"dropped: {line}" for line in self.dropped]
            + [f"flagged: {line}" for line in self.flagged]
        )


_SHOWN = 3  # layer names a folded line shows


def _folded(changes: list[str]) -> list[str]:
    """``layer "a": X``, ``layer "b": X``, ... as one ``N layers ("a", "b", ...): X``, at the
    place of the first."""
    names: dict[str, list[str]] = {}
    for line in changes:
        layer, sep, what = line.partition(": ")
        if sep and layer.startswith('layer "'):
            names.setdefault(what, []).append(layer.removeprefix("layer "))
    out = []
    for line in changes:
        what = line.partition(": ")[2]
        layers = names.get(what, [])
        if len(layers) < _SHOWN or not line.startswith('layer "'):
            out.append(line)
        elif line.removeprefix("layer ").startswith(layers[0] + ":"):
            more = f", ... {len(layers) - _SHOWN} more" if len(layers) > _SHOWN else ""
            out.append(f"{len(layers)} layers ({', '.join(layers[:_SHOWN])}{more}): {what}")
    return out
