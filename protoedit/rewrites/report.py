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

    def lines(self) -> list[str]:
        """Human-readable lines, changes first."""
        return (
            [f"changed: {line}" for line in self.changed]
            + [f"dropped: {line}" for line in self.dropped]
            + [f"flagged: {line}" for line in self.flagged]
        )
