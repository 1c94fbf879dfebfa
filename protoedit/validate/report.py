"""The facts a validation run found, as a report object, plain text and JSON."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from protoedit.caffe.fatal import FatalLog

Status = Literal["valid", "failed", "error", "skipped"]

#: Exit code of ``protoedit validate`` for each status (``skipped``: not a net to run here).
EXIT_CODES: dict[str, int] = {"valid": 0, "skipped": 0, "failed": 1, "error": 2}

#: What a report's ``cause`` may be: the most actionable reason a net did not validate.
CAUSES = (
    "no_loss",  # no top has a loss_weight (a deploy net)
    "no_force_backward",  # Caffe does not backpropagate into the input blobs
    "zero_weights",  # weight blobs all zero: no weights given, default fillers
    "python_layers",  # Python layers refused
    "over_budget",  # the memory budget is too small
    "data_layers",  # the net reads data from files (a train/val net)
    "solver_file",  # the file is a SolverParameter, not a net
)

#: The remedy for each cause, for a Python caller: this library's functions and parameters.
#: ``{detail}`` is the report's ``cause_detail``; a front end has its own table (the CLI's
#: names its commands and flags) and renders it with :meth:`ValidationReport.remedy`.
API_HINTS: dict[str, str] = {
    "no_loss": "a deploy net has no loss: protoedit.rewrites.aux (or add_loss) gives it one "
    "whose value is a unit's activation",
    "no_force_backward": "protoedit.rewrites.force_backward sets 'force_backward: true'",
    "zero_weights": "give trained weights (weights=) or random ones (random_weights=True)",
    "python_layers": "allow_python_layers=True runs them",
    "over_budget": "give a larger memory_limit (0 for none)",
    "data_layers": "the net reads its data from files ({detail}): protoedit.rewrites.to_deploy "
    "replaces its data layers with an Input layer",
    "solver_file": "validate the net it names: {detail}",
}


def format_size(size: float) -> str:
    """A byte count in the largest binary unit that keeps it at 1 or more: ``512 MiB``."""
    units = [(name, scale) for name, scale in _UNITS if abs(size) >= scale]
    if not units:
        return f"{size:.0f} B"
    name, scale = units[0]
    value = size / scale
    digits = 0 if value >= 100 else 1 if value >= 10 else 2
    return f"{value:.{digits}f} {name}"


_UNITS = (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))


@dataclass(frozen=True)
class InputGradient:
    """The gradient that reached one input blob after backward."""

    blob: str
    norm: float
    finite: bool
    nonzero: bool

    @property
    def ok(self) -> bool:
        """A usable gradient: finite everywhere and not identically zero."""
        return self.finite and self.nonzero


@dataclass
class ValidationReport:
    """Outcome of instantiating a net in Caffe and running forward and backward once."""

    net: str
    phase: str
    status: Status = "error"
    reason: str = ""
    #: One of :data:`CAUSES` when the reason has a known remedy, else empty.
    cause: str = ""
    #: What the remedy needs to name besides the cause (the data layers, the solver's net).
    cause_detail: str = ""
    #: Every blob's shape at the batch run and the declared extent.
    blobs: dict[str, list[int]] = field(default_factory=dict)
    losses: dict[str, float] = field(default_factory=dict)
    input_gradients: list[InputGradient] = field(default_factory=list)
    force_backward: bool | None = None
    fatal: FatalLog | None = None
    seconds: float = 0.0
    stderr_tail: str = ""
    #: The batch the net ran at, and the one it declares (None before it loaded).
    batch: int | None = None
    declared_batch: int | None = None
    #: Why the declared batch was kept instead of the one asked for ("" if it was not).
    batch_note: str = ""
    #: Height and width (the axes after the second) of each input as run, and as declared.
    extent: dict[str, list[int]] = field(default_factory=dict)
    declared_extent: dict[str, list[int]] = field(default_factory=dict)
    #: Why the declared extent was kept when the smallest was asked for ("" if it was not).
    extent_note: str = ""
    #: Under force_backward: ``skipped``, or ``computed: WHY`` (Caffe could not skip them).
    param_gradients: str = ""
    #: The weights' one warning: layers that learn and are not stored ("" if none).
    weights_note: str = ""
    #: The extent that gave the verdict: ``smallest`` (reduced) or ``declared``.
    verdict_extent: str = ""
    #: Where the input gradients went and their shapes, as run (``DIR: data 1x1x13x13``).
    saved_gradients: str = ""

    @property
    def ok(self) -> bool:
        """True when the net is valid: it ran and every input received a usable gradient."""
        return self.status == "valid"

    @property
    def exit_code(self) -> int:
        """0 valid, 1 validation failed, 2 could not run."""
        return EXIT_CODES[self.status]

    @property
    def hint(self) -> str:
        """The remedy for a Python caller (:data:`API_HINTS`); ``""`` when none is known."""
        return self.remedy(API_HINTS)

    def remedy(self, hints: Mapping[str, str]) -> str:
        """The remedy for the cause, phrased by ``hints`` (cause -> text with ``{detail}``:
        :data:`API_HINTS`, or a front end's own table); ``""`` when none is known."""
        text = hints.get(self.cause, "")
        return text.format(detail=self.cause_detail).removesuffix(": ")

    def to_dict(self, hints: Mapping[str, str] = API_HINTS) -> dict[str, Any]:
        """Plain data for JSON: every field, plus ``hint`` (phrased by ``hints``) and
        ``exit_code``."""
        data = asdict(self)
        data["hint"] = self.remedy(hints)
        data["exit_code"] = self.exit_code
        return data

    def to_json(self, hints: Mapping[str, str] = API_HINTS) -> str:
        """One JSON object with the same facts as the text report."""
        return json.dumps(self.to_dict(hints), indent=2, allow_nan=True)

    def format_text(self, verdict: bool = True) -> str:
        """A human-readable report: shapes, losses, input gradients, and the verdict line
        (``status: reason``) unless ``verdict`` is false (a caller printing it elsewhere)."""
        lines = [f"net: {self.net} (phase {self.phase})"]
        if self.batch is not None and self.batch != self.declared_batch:
            lines.append(f"batch: {self.batch} (declared {self.declared_batch})")
        elif self.batch_note:
            lines.append(f"batch: {self.batch} ({self.batch_note})")
        if self.extent != self.declared_extent:
            ran = ", ".join(
                f"{name} {_dims(dims)} (declared {_dims(self.declared_extent.get(name, []))})"
                for name, dims in self.extent.items()
                if dims != self.declared_extent.get(name)
            )
            lines.append(f"extent: {ran}, which gave the verdict")
        elif self.extent_note:
            lines.append(f"extent: {self.extent_note}")
        if self.weights_note:
            lines.append(f"weights: {self.weights_note}")
        if self.param_gradients:
            lines.append(f"parameter gradients: {self.param_gradients}")
        if self.blobs:
            width = max(len(name) for name in self.blobs)
            lines.append("blobs:")
            for name, shape in self.blobs.items():
                dims = " x ".join(str(d) for d in shape) if shape else "scalar"
                lines.append(f"  {name:<{width}}  {dims}")
        if self.status != "error" or self.losses:
            if self.losses:
                lines.append("losses:")
                for name, value in self.losses.items():
                    lines.append(f"  {name} = {value:.6g}")
            else:
                lines.append("losses: none (no top has a loss_weight)")
        if self.input_gradients:
            lines.append("input gradients:")
            for grad in self.input_gradients:
                state = "ok" if grad.ok else ("NOT FINITE" if not grad.finite else "ZERO")
                lines.append(f"  {grad.blob}: |grad| = {grad.norm:.6g}  {state}")
        if self.saved_gradients:
            reduced = self.extent != self.declared_extent
            at = " (at the reduced extent: --extent declared saves the declared)" if reduced else ""
            lines.append(f"gradients saved to {self.saved_gradients}{at}")
        if self.fatal is not None and str(self.fatal) not in self.reason:
            lines.append(f"caffe aborted: {self.fatal}")
        if verdict:
            lines.append(f"{self.status}: {self.reason}" if self.reason else self.status)
        return "\n".join(lines)


def _dims(dims: list[int]) -> str:
    return "x".join(map(str, dims)) or "scalar"


def write_junit(
    reports: list[ValidationReport], path: str, hints: Mapping[str, str] = API_HINTS
) -> None:
    """A JUnit XML file for CI systems: one test case a net; ``failed`` is a failure,
    ``error`` an error, ``skipped`` skipped; the text ends with the hint (by ``hints``)."""
    import xml.etree.ElementTree as ET

    suite = ET.Element(
        "testsuite",
        name="protoedit validate",
        tests=str(len(reports)),
        failures=str(sum(r.status == "failed" for r in reports)),
        errors=str(sum(r.status == "error" for r in reports)),
        skipped=str(sum(r.status == "skipped" for r in reports)),
        time=f"{sum(r.seconds for r in reports):.3f}",
    )
    for report in reports:
        case = ET.SubElement(
            suite,
            "testcase",
            classname="protoedit.validate",
            name=report.net,
            time=f"{report.seconds:.3f}",
        )
        tag = {"failed": "failure", "error": "error", "skipped": "skipped"}.get(report.status)
        if tag is not None:
            hint = report.remedy(hints)
            text = report.format_text() + (f"\nhint: {hint}" if hint else "")
            ET.SubElement(case, tag, message=report.reason).text = text
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)
