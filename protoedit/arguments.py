"""Range checks of the numbers a library call is given, so that the API and the CLI refuse a
bad value alike: an :class:`InvalidArgumentError` naming the parameter (the CLI names its
option), never a ``ValueError`` from deep inside."""

from __future__ import annotations

import math
from typing import Any

from protoedit.errors import InvalidArgumentError, Location


def whole(value: Any, argument: str, minimum: int = 0, where: Location | None = None) -> int:
    """``value`` as an integer of at least ``minimum`` (a bool or a float is refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentError(f"{argument} must be an integer, not {value!r}", argument, where)
    if value < minimum:
        raise InvalidArgumentError(
            f"{argument} must be at least {minimum}, not {value}", argument, where
        )
    return value


def number(
    value: Any,
    argument: str,
    *,
    low: float = -math.inf,
    high: float = math.inf,
    above: bool = False,
    nonzero: bool = False,
    where: Location | None = None,
) -> float:
    """``value`` as a finite number in ``[low, high]`` (``above``: greater than ``low``;
    ``nonzero``: not 0)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(f"{argument} must be a number, not {value!r}", argument, where)
    if not math.isfinite(value):
        raise InvalidArgumentError(
            f"{argument} must be a finite number, not {value!r}", argument, where
        )
    if (value <= low if above else value < low) or value > high:
        parts = [f"above {low:g}" if above else f"at least {low:g}"] if low > -math.inf else []
        parts += [f"at most {high:g}"] if high < math.inf else []
        bounds = " and ".join(parts)
        raise InvalidArgumentError(f"{argument} must be {bounds}, not {value!r}", argument, where)
    if nonzero and value == 0:
        raise InvalidArgumentError(f"{argument} must not be 0", argument, where)
    return float(value)


def seconds(value: Any, argument: str = "timeout") -> float:
    """A positive, finite number of seconds."""
    return number(value, argument, low=0.0, above=True)
