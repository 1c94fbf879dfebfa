"""Rewrites lint their own result: a net Caffe would refuse is an error, never an output."""

from __future__ import annotations

from protoedit.document import Document
from protoedit.errors import BrokenResultError
from protoedit.lint import net_findings


def check_result(doc: Document, rewrite: str, needs: dict[str, str | None] | None = None) -> None:
    """Raise :class:`BrokenResultError` when the rewritten net has lint errors (a bottom
    that nothing produces, a top written twice): Caffe would not load it.

    ``needs`` is what the caller knows would fix it (e.g. the stage that brings a data
    layer in).
    """
    errors = [d for d in net_findings(doc, None) if d.severity == "error"]
    if not errors:
        return
    first = errors[0].message
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise BrokenResultError(
        f"the result of {rewrite} would not load in Caffe: {first}{more}",
        [f"{e.code} {e.message}" for e in errors],
        needs,
    )
