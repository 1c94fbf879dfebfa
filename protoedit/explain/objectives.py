"""What activation maximisation maximises: objectives that combine, as Lucid's do.

The visualisation net's loss is ``sum(mask * target)``, linear in the target, so any linear
objective maps onto one mask row: a :class:`Unit` (a channel's mean over positions, or one
position of it), a weighted sum of units (``Unit(3) + 0.5 * Unit(7)``, ``Unit(1) - Unit(2)``)
or a direction in channel space (:func:`direction`).  An ``int`` stands for ``Unit(int)``.
A gradient measures one unit too: :func:`as_head` turns a Unit into the aux rewrite's
:class:`~protoedit.rewrites.add_loss.LossHead`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from protoedit.errors import InputError, InvalidArgumentError
from protoedit.explain.ascent import Term
from protoedit.rewrites.add_loss import LossHead


class _Combines:
    """``+``, ``-`` and scalar ``*`` between objectives; each gives an :class:`Objective`."""

    @property
    def terms(self) -> tuple[Term, ...]:
        raise NotImplementedError

    def __add__(self, other: _Combines) -> Objective:
        if not isinstance(other, _Combines):
            return NotImplemented
        return Objective(self.terms + other.terms)

    def __sub__(self, other: _Combines) -> Objective:
        if not isinstance(other, _Combines):
            return NotImplemented
        return Objective(self.terms + (-1.0 * other).terms)

    def __mul__(self, factor: float) -> Objective:
        if not isinstance(factor, int | float):
            return NotImplemented
        return Objective(tuple((w * float(factor), c, p) for w, c, p in self.terms))

    __rmul__ = __mul__

    def __neg__(self) -> Objective:
        return -1.0 * self


@dataclass(frozen=True)
class Unit(_Combines):
    """One unit of the target: a channel (its mean over positions) or one position of it."""

    channel: int
    position: tuple[int, ...] | None = None

    @property
    def terms(self) -> tuple[Term, ...]:
        return ((1.0, self.channel, self.position),)

    def tag(self) -> str:
        """For file names: ``c7``, ``c7_3_4``."""
        return "_".join([f"c{self.channel}", *map(str, self.position or ())])

    def label(self, target: str) -> str:
        """``conv1[7]``, ``conv1[7,3,4]``."""
        where = "" if self.position is None else "," + ",".join(map(str, self.position))
        return f"{target}[{self.channel}{where}]"


@dataclass(frozen=True)
class Objective(_Combines):
    """A weighted sum of units: ``(weight, channel, position)`` terms."""

    parts: tuple[Term, ...]

    @property
    def terms(self) -> tuple[Term, ...]:
        return self.parts

    def tag(self) -> str:
        """For file names: the units' tags with their weights, ``c1+0.5c7``."""
        out = ""
        for weight, channel, position in self.parts:
            unit = Unit(channel, position).tag()
            sign = "-" if weight < 0 else ("+" if out else "")
            size = abs(weight)
            out += sign + ("" if size == 1 else f"{size:g}") + unit
        return out or "zero"

    def label(self, target: str) -> str:
        """``conv1[1] + 0.5 conv1[7]``."""
        out = ""
        for weight, channel, position in self.parts:
            unit = Unit(channel, position).label(target)
            sign = (" - " if out else "-") if weight < 0 else (" + " if out else "")
            size = abs(weight)
            out += sign + ("" if size == 1 else f"{size:g} ") + unit
        return out or "0"


def direction(vector: Sequence[float]) -> Objective:
    """The projection of the target's channel means onto ``vector`` (one weight per channel;
    zero weights are left out)."""
    return Objective(tuple((float(w), c, None) for c, w in enumerate(vector) if w))


AnyObjective = Unit | Objective


def as_objective(item: int | Unit | Objective) -> AnyObjective:
    """An ``int`` is the channel's mean, :class:`Unit` and :class:`Objective` stay."""
    if isinstance(item, Unit | Objective):
        return item
    if isinstance(item, int) and not isinstance(item, bool):
        return Unit(item)
    raise InputError(f"an objective is a channel number, a Unit or a sum of them, not {item!r}")


def as_head(measure: LossHead | Unit) -> LossHead:
    """The aux loss head that measures ``measure``: a :class:`Unit` without a position is its
    channel's mean (a ``channel`` head), with one a ``unit`` head; a LossHead stays."""
    if isinstance(measure, LossHead):
        return measure
    if isinstance(measure, Unit):
        if measure.position is None:
            return LossHead("channel", measure.channel)
        return LossHead("unit", measure.channel, position=measure.position)
    raise InputError(
        f"a gradient measures a LossHead or a Unit, not {measure!r} (a sum of units is an "
        "objective for visualize)"
    )


def check_objective(
    objective: AnyObjective, target: str, channels: int, shape: tuple[int, ...] | None
) -> None:
    """Refuse a term whose channel or position does not fit ``target``."""
    if not objective.terms:
        raise InvalidArgumentError(
            f"the objective {objective.label(target)} has no units", "objectives"
        )
    for _, channel, position in objective.terms:
        if not 0 <= channel < channels:
            raise InvalidArgumentError(
                f"channel {channel} is out of range: '{target}' has {channels} "
                f"channels (0-{channels - 1})",
                "objectives",
            )
        if position is not None:
            if shape is None or len(position) != len(shape) - 2:
                raise InvalidArgumentError(
                    f"unit {channel},{position} does not fit '{target}'", "objectives"
                )
            for index, size in zip(position, shape[2:], strict=True):
                if not 0 <= index < size:
                    raise InvalidArgumentError(
                        f"position {position} is outside '{target}' {shape}", "objectives"
                    )


def parse_channels(text: str) -> list[int]:
    """``0-15`` or ``1,4,9`` or ``0-3,8``: channel numbers in the given order."""
    channels: list[int] = []
    for part in text.split(","):
        match = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not match:
            raise InputError(f"channels are like 0-15 or 1,4,9, not {text!r}")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise InputError(f"channel range {part.strip()!r} runs backwards")
        channels.extend(range(first, last + 1))
    return channels
