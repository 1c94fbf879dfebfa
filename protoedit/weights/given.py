"""The weights a command was given, checked against its net before Caffe runs: the policy of
:func:`~protoedit.weights.matching.require_match` (no layer that learns found, a wrong shape: a
:class:`WeightsError`; some missing: one warning, an error when ``strict``), with the warning
handed back as text for the command's own report instead of sent through ``warnings``."""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

from protoedit.weights.caffemodel import load
from protoedit.weights.errors import WeightsError, WeightsWarning
from protoedit.weights.matching import require_match

if TYPE_CHECKING:
    from protoedit.document import Document
    from protoedit.net.view import NetView


def check_weights(
    net: Document | NetView, weights: str | os.PathLike[str], *, strict: bool = False
) -> str:
    """Apply the one rule to the file ``weights`` (read without its values) and ``net`` (a
    Document is matched as built for TEST; a NetView for its own state); return the one
    summarised warning ("" when every layer that learns is stored)."""
    stored = load(weights, values=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", WeightsWarning)
        try:
            require_match(net, stored, strict=strict)
        except WeightsError as exc:  # a line per stored layer drowns the verdict: a few
            hints = exc.detail.splitlines()
            if len(hints) <= SHOWN_HINTS:
                raise
            more = f"... and {len(hints) - SHOWN_HINTS} more stored layers like these"
            detail = "\n".join([*hints[:SHOWN_HINTS], more])
            raise WeightsError(exc.message, exc.location, detail) from None
    return "; ".join(str(w.message) for w in caught if issubclass(w.category, WeightsWarning))


#: Lines of "stored layer 'x' matches no layer" an error shows.
SHOWN_HINTS = 3
