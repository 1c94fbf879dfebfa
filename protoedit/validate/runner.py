"""The parent side of validation: run nets in Caffe workers under a timeout and a memory limit,
read the outcome back as reports.

Caffe aborts its whole process on a failed CHECK, so a net is never loaded in this process.
A worker is killed with its whole process group on timeout; a crash is explained from the
fatal glog line it printed, and only the net that caused it is affected.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from protoedit.caffe.fatal import last_fatal
from protoedit.caffe.session import Session
from protoedit.document import Document, detect_type
from protoedit.errors import InputError, ProtoeditError
from protoedit.files import BINARY, looks_binary
from protoedit.schema import builtin_schema
from protoedit.syntax.parser import parse
from protoedit.validate.defaults import (
    DECLARED,
    DEFAULT_MEMORY_LIMIT,
    DEFAULT_TIMEOUT,
    EXTENTS,
)
from protoedit.validate.pool import Outcome, run_requests
from protoedit.validate.report import InputGradient, ValidationReport, format_size

# glog error before the parse CHECK: "... Error parsing text-format caffe.NetParameter: 12:5: ..."
_PARSE_ERROR = re.compile(r"Error parsing text-format caffe\.\w+: (\d+):(\d+): (.*)$", re.MULTILINE)
_SOLVER_NET = re.compile(r"""^\s*(?:train_)?net\s*:\s*["']([^"']*)["']""", re.MULTILINE)
_MEMORY_SIGNS = ("host allocation of size", "std::bad_alloc", "MemoryError", "Cannot allocate")


def _unreadable(path: str, what: str) -> str:
    """Empty if ``path`` is a readable file (a text one for the net), else a one-line
    reason."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(8192)
    except OSError as exc:
        return f"cannot read {what} {path}: {exc.strerror or exc}"
    if what == "net file" and looks_binary(head):
        return f"{path}: {BINARY}"
    return ""


Batch = int | str | None


def validate_net(
    net: str | os.PathLike[str] | Document,
    *,
    weights: str | os.PathLike[str] | None = None,
    phase: str = "TEST",
    inputs: Mapping[str, str | os.PathLike[str]] | None = None,
    seed: int = 0,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    allow_python_layers: bool = False,
    random_weights: bool = False,
    save_gradients: str | os.PathLike[str] | None = None,
    batch: Batch = None,
    extent: str = DECLARED,
    skip_param_gradients: bool = True,
    strict_weights: bool = False,
    session: Session | None = None,
) -> ValidationReport:
    """Instantiate ``net`` in Caffe in a child process, run forward and backward, report.

    ``net`` is a file or a :class:`~protoedit.Document` (its current text is validated; its
    Python layers' modules are looked up in its file's folder).  Inputs are filled with
    seeded standard-normal data unless ``inputs`` maps an input blob to a ``.npy`` file.
    ``random_weights`` replaces every parameter with seeded random values (a deploy net
    without weights otherwise has all-zero parameters).  ``save_gradients`` names a folder
    that receives each input gradient as ``BLOB.npy`` and ``BLOB.png``.  ``batch`` reshapes
    the generated inputs to that batch (None or ``"declared"``: the net's own), except where a
    layer makes the batch matter (the report's ``batch_note`` says which).  ``extent``
    ``"smallest"`` runs the generated inputs at the smallest height and width that every layer
    provably handles as it does the declared ones (:mod:`protoedit.net.extent`; the report's
    ``extent`` and ``extent_note`` say what ran); ``"declared"`` keeps the net's own.  Under
    ``force_backward`` the parameter gradients are skipped where Caffe allows it, unless
    ``skip_param_gradients`` is false (the report's ``param_gradients`` says what happened).
    ``weights`` meet the net by the one rule of :mod:`protoedit.weights` before Caffe runs:
    none of the layers that learn stored, or a wrong shape, is an error; some missing is the
    report's ``weights_note`` (an error with ``strict_weights``).

    The report's status is ``valid`` when every input blob received a finite, non-zero
    gradient, ``failed`` when the net ran but the gradient is unusable, and ``error`` when it
    could not run (unreadable file, Caffe abort, timeout, memory budget); ``cause`` and
    ``hint`` say what to change when that is known.  Raises :class:`InputError` for a
    non-positive ``timeout`` or a negative ``memory_limit``, and
    :class:`CaffeUnavailableError` when pycaffe cannot be imported.

    ``timeout`` counts from when the net is sent to a Caffe worker that is up (importing
    Caffe has its own limit).  ``memory_limit`` is each worker's address-space budget
    (default ``DEFAULT_MEMORY_LIMIT``).  ``session``: a warm :class:`protoedit.caffe.Session`
    to run in (its ``memory_limit`` applies; a different one given here is an error).
    """
    return validate_files(
        [net],
        jobs=1,
        session=session,
        weights=weights,
        phase=phase,
        inputs=inputs,
        seed=seed,
        timeout=timeout,
        memory_limit=memory_limit,
        allow_python_layers=allow_python_layers,
        random_weights=random_weights,
        save_gradients=save_gradients,
        batch=batch,
        extent=extent,
        skip_param_gradients=skip_param_gradients,
        strict_weights=strict_weights,
    )[0]


def validate_files(
    nets: Sequence[str | os.PathLike[str] | Document], *, jobs: int | None = None, **options: Any
) -> list[ValidationReport]:
    """:func:`validate_net` for many nets on ``jobs`` warm Caffe workers (default: one per core
    this process may run on); the reports in the order of ``nets``.  ``options`` are
    :func:`validate_net`'s."""
    reports: list[ValidationReport | None] = [None] * len(nets)
    for index, report in iter_validate(nets, jobs=jobs, **options):
        reports[index] = report
    return [report for report in reports if report is not None]


def iter_validate(
    nets: Sequence[str | os.PathLike[str] | Document],
    *,
    jobs: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    memory_limit: int | None = None,
    session: Session | None = None,
    **options: Any,
) -> Iterator[tuple[int, ValidationReport]]:
    """Validate ``nets`` on ``jobs`` workers; yield ``(index, report)`` as each is done.

    Each worker imports Caffe once and validates many nets; one that Caffe aborts, or that
    hits ``timeout`` (counted per net, from when it is sent to a worker that is up) or
    ``memory_limit``, is replaced, and only its net gets the error.
    """
    if not timeout > 0:
        raise InputError(f"timeout must be a positive number of seconds, not {timeout!r}")
    if session is not None and memory_limit not in (None, session.memory_limit):
        raise InputError(
            f"memory_limit {memory_limit!r} differs from the session's ({session.memory_limit}):"
            " it is set when the session's worker starts"
        )
    if memory_limit is None:
        memory_limit = session.memory_limit if session is not None else DEFAULT_MEMORY_LIMIT
    if memory_limit < 0:
        raise InputError(f"memory_limit must be 0 (no limit) or positive, not {memory_limit!r}")
    allow_python_layers = bool(options.pop("allow_python_layers", False))  # the worker's gate
    batch = options.pop("batch", None)
    if batch == DECLARED:
        batch = None
    if batch is not None and (not isinstance(batch, int) or batch < 1):
        raise InputError(f"batch must be a positive number or {DECLARED!r}, not {batch!r}")
    extent = options.get("extent", DECLARED)
    if extent not in EXTENTS:
        raise InputError(f"extent must be one of {', '.join(map(repr, EXTENTS))}, not {extent!r}")
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(_net_file(net)) for net in nets]
        prepared = [
            _prepare(path, module_dir, memory_limit=memory_limit, batch=batch, **options)
            for path, module_dir in files
        ]
        pending = [i for i, item in enumerate(prepared) if not isinstance(item, ValidationReport)]
        for index, item in enumerate(prepared):
            if isinstance(item, ValidationReport):
                yield index, _named(item, nets[index], files[index][0])
        if not pending:
            return
        requests = [item for item in prepared if not isinstance(item, ValidationReport)]
        workers = min(len(requests), jobs if jobs is not None else len(os.sched_getaffinity(0)))
        outcomes = run_requests(
            requests,
            jobs=workers,
            memory_limit=memory_limit,
            timeout=timeout,
            allow_python_layers=allow_python_layers,
            session=session,
        )
        for position, outcome in outcomes:
            index = pending[position]
            path = files[index][0]
            report = ValidationReport(net=str(path), phase=str(options.get("phase", "TEST")))
            report.phase = report.phase.upper()
            _read_outcome(report, outcome, timeout, memory_limit)
            report.weights_note = str(requests[position].get("weights_note", ""))
            yield index, _named(report, nets[index], path)


def _named(
    report: ValidationReport, net: str | os.PathLike[str] | Document, path: Path
) -> ValidationReport:
    """The report naming a document, not the temporary file it was validated from."""
    if isinstance(net, Document):
        report.reason = report.reason.replace(str(path), net.path)
        report.net = net.path
    return report


@contextlib.contextmanager
def _net_file(net: str | os.PathLike[str] | Document) -> Iterator[tuple[Path, str | None]]:
    """The file to hand Caffe, and the folder of its Python layers' modules (None: its own).

    A document's text goes to a temporary file; its modules are beside the document's file
    (or in the working folder for text without one).
    """
    if not isinstance(net, Document):
        yield Path(net), None
        return
    with tempfile.TemporaryDirectory(prefix="protoedit-validate-net-") as tmp:
        path = Path(tmp) / "net.prototxt"
        path.write_text(net.dumps(), encoding="utf-8")
        folder = Path(net.path).parent
        yield path, str((folder if folder.is_dir() else Path.cwd()).resolve())


def _prepare(
    net: Path,
    module_dir: str | None,
    *,
    weights: str | os.PathLike[str] | None = None,
    phase: str = "TEST",
    inputs: Mapping[str, str | os.PathLike[str]] | None = None,
    seed: int = 0,
    memory_limit: int,
    random_weights: bool = False,
    save_gradients: str | os.PathLike[str] | None = None,
    batch: int | None,
    extent: str = DECLARED,
    skip_param_gradients: bool = True,
    strict_weights: bool = False,
) -> ValidationReport | dict[str, Any]:
    """The child's request for one file, or the error report when it need not run at all."""
    phase = phase.upper()
    report = ValidationReport(net=str(net), phase=phase)
    if phase not in ("TEST", "TRAIN"):
        report.reason = f"phase must be TEST or TRAIN, not {phase!r}"
        return report
    given = {name: str(path) for name, path in (inputs or {}).items()}
    checks = [(str(net), "net file")]
    checks += [(str(weights), "weights file")] if weights is not None else []
    checks += [(path, f"input {name!r}") for name, path in given.items()]
    for path, what in checks:
        problem = _unreadable(path, what)
        if problem:
            report.reason = problem
            return report
    folder = Path(save_gradients) if save_gradients is not None else None
    if folder is not None and folder.exists() and not folder.is_dir():
        report.reason = f"cannot write the gradients to {folder}: not a folder"
        return report
    if weights is not None and memory_limit:
        size = os.path.getsize(weights)
        if 2 * size > memory_limit:
            report.reason = (
                f"over the memory budget: the weights file {weights} is {format_size(size)}, "
                f"and loading it holds the file's contents and the net's copy of them "
                f"({format_size(2 * size)}); the budget is {format_size(memory_limit)}"
            )
            _set_cause(report, "over_budget")
            return report
    note = ""
    if weights is not None:
        try:
            note = _weights_note(net, weights, phase, strict_weights)
        except ProtoeditError as exc:
            report.reason = str(exc)
            return report
    return {
        "weights_note": note,
        "net": str(net.resolve()),
        "module_dir": module_dir,
        "weights": str(Path(weights).resolve()) if weights is not None else None,
        "phase": phase,
        "inputs": {name: str(Path(path).resolve()) for name, path in given.items()},
        "seed": seed,
        "memory_limit": memory_limit,
        "random_weights": random_weights,
        "save_gradients": str(Path(save_gradients).resolve()) if save_gradients else None,
        "batch": batch,
        "extent": extent,
        "skip_param_gradients": skip_param_gradients,
    }


def _weights_note(net: Path, weights: str | os.PathLike[str], phase: str, strict: bool) -> str:
    """The weights against the net as Caffe builds it in ``phase``: the one rule's warning
    ("" if none); its errors raise.  A net protoedit cannot read is left to Caffe to refuse."""
    from protoedit.document import load
    from protoedit.net.state import NetState
    from protoedit.net.view import NetView
    from protoedit.weights.given import check_weights

    try:
        view = NetView(load(net, lenient=True), NetState(phase))
    except ProtoeditError:
        return ""
    return check_weights(view, weights, strict=strict)


def _read_outcome(
    report: ValidationReport, outcome: Outcome, timeout: float, memory_limit: int
) -> None:
    """Fill ``report`` from what a worker did with its request."""
    if outcome.refused is not None:
        report.reason = outcome.refused.message
        _set_cause(report, "python_layers")
        return
    reply = outcome.reply
    report.seconds = outcome.seconds
    report.param_gradients = outcome.plan.get("param_gradients", "")
    report.stderr_tail = "\n".join(reply.stderr.splitlines()[-20:])
    if reply.timed_out:
        report.reason = (
            f"timed out after {timeout:g} s (during {outcome.stage}); the child was killed"
        )
        return
    if outcome.result is not None:
        _fill_from_result(report, outcome.result)
        if outcome.retried is not None:
            fatal = last_fatal(outcome.retried.stderr)
            why = f"Caffe aborted ({fatal.message})" if fatal else "the worker died"
            report.extent_note = f"declared extent kept: at the smallest extent {why}"
        if outcome.rechecked is not None:
            report.extent_note = _recheck_note(outcome.rechecked)
        return
    _explain_crash(report, reply.returncode or 0, outcome.stage, reply.stderr, memory_limit)
    if not report.cause and outcome.data_layers:  # Caffe aborted, most likely reading the data
        _set_cause(report, "data_layers", ", ".join(outcome.data_layers))


def _recheck_note(first: dict[str, Any]) -> str:
    """Why the verdict is the declared extent's: what the smallest extent gave first."""
    ran = ", ".join(
        f"{name} {'x'.join(map(str, dims))}" for name, dims in dict(first["extent"]).items()
    )
    reason = str(first.get("reason", "")).partition(":")[0]
    return (
        f"declared, which gave the verdict: at the smallest extent ({ran}) the {reason}, so "
        "the net ran again at the declared one"
    )


def _set_cause(report: ValidationReport, cause: str, detail: str = "") -> None:
    """Record a known cause of failure and what its remedy names (the report phrases it)."""
    report.cause = cause
    report.cause_detail = detail


def _fill_from_result(report: ValidationReport, result: dict[str, object]) -> None:
    """Copy the child's result fields into the report."""
    report.status = result["status"]  # type: ignore[assignment]
    report.reason = str(result.get("reason", ""))
    if result.get("cause"):
        _set_cause(report, str(result["cause"]))
    report.force_backward = result.get("force_backward")  # type: ignore[assignment]
    report.blobs = result.get("blobs", {})  # type: ignore[assignment]
    report.losses = result.get("losses", {})  # type: ignore[assignment]
    grads = result.get("input_gradients", [])
    report.input_gradients = [InputGradient(**g) for g in grads]  # type: ignore[attr-defined]
    report.batch = result.get("batch")  # type: ignore[assignment]
    report.declared_batch = result.get("declared_batch")  # type: ignore[assignment]
    report.batch_note = str(result.get("batch_note", ""))
    report.extent = result.get("extent", {})  # type: ignore[assignment]
    report.declared_extent = result.get("declared_extent", {})  # type: ignore[assignment]
    report.extent_note = str(result.get("extent_note", ""))
    report.param_gradients = str(result.get("param_gradients", ""))
    report.saved_gradients = str(result.get("saved_gradients", ""))
    if report.extent:
        reduced = report.extent != report.declared_extent
        report.verdict_extent = "smallest" if reduced else "declared"


def _solver_net(net: str) -> str | None:
    """If ``net`` holds a SolverParameter, the net file it names ("" if none); else None."""
    try:
        text = Path(net).read_text(encoding="utf-8")
        tree = parse(text, net)
    except (OSError, UnicodeDecodeError, ProtoeditError):
        return None
    if detect_type(tree, builtin_schema()) != "caffe.SolverParameter":
        return None
    named = _SOLVER_NET.search(text)
    return named.group(1) if named else ""


def _explain_crash(
    report: ValidationReport, code: int, stage: str, stderr: str, memory_limit: int
) -> None:
    """The child died without a result: say why, from glog's fatal line or the signal."""
    report.fatal = last_fatal(stderr)
    if any(sign in stderr for sign in _MEMORY_SIGNS):
        report.reason = (
            f"over the memory budget ({format_size(memory_limit)}) during {stage}: "
            "an allocation failed"
        )
        _set_cause(report, "over_budget")
        return
    parse_error = _PARSE_ERROR.search(stderr)
    if parse_error is not None:
        solver_net = _solver_net(report.net)
        if solver_net is not None:
            report.reason = f"{report.net}: this is a SolverParameter file, not a net"
            _set_cause(report, "solver_file", solver_net)
            return
        line, column, message = parse_error.groups()
        report.reason = f"{report.net}:{line}:{column}: Caffe cannot parse the file: {message}"
        return
    if report.fatal is not None:
        report.reason = f"Caffe aborted during {stage}: {report.fatal}"
        return
    if code < 0:
        name = signal.Signals(-code).name
        report.reason = f"the Caffe process died with {name} during {stage}"
    else:
        last = stderr.strip().splitlines()[-1:] or ["no output"]
        report.reason = f"the Caffe process exited with code {code} during {stage}: {last[0]}"
