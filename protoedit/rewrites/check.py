"""Rewrites lint their own result: a net Caffe would refuse is an error, never an output."""

from __future__ import annotations

from protoedit.document import Document
from protoedit.errors import BrokenResultError
from protoedit.lint import net_findings


def lint_errors(doc: Document) -> list[str]:
    """The net's lint errors as ``CODE message`` (a bottom nothing produces, a top written
    twice, ...): what would make Caffe refuse to build it."""
    return [f"{d.code} {d.message}" for d in net_findings(doc, None) if d.severity == "error"]


def check_result(
    doc: Document,
    rewrite: str,
    needs: dict[str, str | None] | None = None,
    baseline: list[str] | None = None,
) -> None:
    """Raise :class:`BrokenResultError` when the rewritten net has lint errors.

    With ``baseline`` (the input's errors) only new errors count: a rewrite that keeps a
    part of a net is not blamed for what the input already had.  ``needs`` is what the
    caller knows would fix it (e.g. the stage that brings a data layer in).
    """
    errors = [e for e in lint_errors(doc) if baseline is None or e not in baseline]
    if not errors:
        return
    first = errors[0].partition(" ")[2]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    raise BrokenResultError(
        f"the result of {rewrite} would not load in Caffe: {first}{more}", errors, needs
    )
