"""The one progress bar of protoedit (tqdm on stderr), shown on a terminal unless asked."""

from __future__ import annotations

import sys
from typing import Any


def progress_bar(
    total: int, *, unit: str, enabled: bool | None = None, desc: str = "", **options: Any
) -> Any:
    """A tqdm bar over ``total`` ``unit``s on stderr; ``enabled=None`` shows it only when
    stderr is a terminal (a log or a pipe gets no bar). ``options`` go to tqdm as they are
    (``leave``, ``bar_format``, ...). Use it as a context manager so it closes on errors."""
    from tqdm import tqdm  # type: ignore[import-untyped]

    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(
        total=total, unit=unit, desc=desc or None, disable=not enabled, file=sys.stderr, **options
    )
