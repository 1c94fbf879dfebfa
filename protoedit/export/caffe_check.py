"""``check``: run Caffe (in the worker) and onnxruntime on the same seeded inputs and compare
every Caffe blob that has an ONNX value, within a tolerance derived from float32 rounding.

Runs: at the export's input size; at an odd size (the height and width made odd, so
rounding rules show) where the net can reshape; at batch 2.  Intermediate values are extra
outputs of the checked model only.

Tolerance.  Caffe and onnxruntime compute the same float32 expressions in different orders
(BLAS blocking, fused kernels).  A sum of K terms of magnitude at most M rounds each partial
sum with an error of at most eps32 / 2 * M, independently enough to add like a random walk:
its error has a spread of about eps32 * M * sqrt(K / 12).  Along a chain of layers the errors
of the layers add the same way, so a blob reached through reductions of lengths K1, K2, ...
(the longest chain, convolution fan-ins, pooling windows, normalisation sums) has a spread of
about eps32 * M * sqrt(A / 12), with A = K1 + K2 + ..., when each layer passes on its input's
error with a gain near 1 (the calibrated random weights keep every spread near 1).  M is the
largest magnitude the last layer sees (its output or its inputs: a sum that cancels keeps the
error of its terms).  Two implementations differ by sqrt(2) of that, and the largest of up to
1e7 such differences stays within 5.5 of their spread: 5.5 * sqrt(2 / 12) ~ 2.3.  The bound
used is ``8 * eps32 * M * (sqrt(A) + 1)``: a margin of about 3.5 over that estimate for gains
above 1 and for transcendental functions (a few ulp each, the ``+ 1``).  A wrong mapping is
off by far more (a misplaced divisor, a lost coefficient, a missed window).
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from protoedit.export.model import DEFAULT_OPSET, Exported, WeightsLike, export
from protoedit.export.prepare import InputShape
from protoedit.export.random import session_options
from protoedit.net.layers import param_roles

EPS32 = float(np.finfo(np.float32).eps)
#: The factor of the tolerance (see the module docstring).
SAFETY = 8.0
_WORKER = "protoedit.explain.worker"


@dataclass
class BlobResult:
    """One blob of one run: the worst error against its tolerance."""

    blob: str
    layer: str  # the layer that last wrote it
    shape: list[int]
    error: float
    tolerance: float
    magnitude: float
    ok: bool
    note: str = ""


@dataclass
class Run:
    """One set of inputs: its name, the input shapes and every blob compared (in order)."""

    name: str
    shapes: dict[str, list[int]]
    blobs: list[BlobResult] = field(default_factory=list)
    skipped: str = ""  # why this run did not happen
    failed: str = ""  # why it could not be compared (the reference or the runtime failed)

    @property
    def first_divergence(self) -> BlobResult | None:
        """The first blob, in the net's order, beyond its tolerance."""
        return next((b for b in self.blobs if not b.ok), None)

    @property
    def ok(self) -> bool:
        """Compared, and every blob within tolerance (a skipped run is not a failure)."""
        return not self.failed and all(b.ok for b in self.blobs)


@dataclass
class CheckReport:
    """The check of one export against Caffe."""

    net: str
    runs: list[Run] = field(default_factory=list)
    reference_error: str = ""  # Caffe could not load or run the net at all

    @property
    def ok(self) -> bool:
        """Every run compared equal within tolerance."""
        compared = [r for r in self.runs if not r.skipped]
        return not self.reference_error and bool(compared) and all(r.ok for r in compared)

    @property
    def first_divergence(self) -> tuple[Run, BlobResult] | None:
        """The first diverging blob of the first run that has one."""
        for run in self.runs:
            found = run.first_divergence
            if found is not None:
                return run, found
        return None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (``--json``)."""
        first = self.first_divergence
        return {
            "net": self.net,
            "ok": self.ok,
            "reference_error": self.reference_error,
            "first_divergence": None
            if first is None
            else {"run": first[0].name, **asdict(first[1])},
            "runs": [
                {
                    "name": r.name,
                    "shapes": r.shapes,
                    "ok": r.ok,
                    "skipped": r.skipped,
                    "failed": r.failed,
                    "blobs": [asdict(b) for b in r.blobs],
                }
                for r in self.runs
            ],
        }

    def lines(self) -> list[str]:
        """The report for a person: the verdict, the first divergence, a table per run."""
        out = []
        if self.reference_error:
            out.append(f"the Caffe reference could not run: {self.reference_error}")
        first = self.first_divergence
        if first is not None:
            run, blob = first
            out.append(
                f"first divergence ({run.name}): blob '{blob.blob}' of layer '{blob.layer}', "
                f"worst error {blob.error:.3g} > tolerance {blob.tolerance:.3g} "
                f"(magnitude {blob.magnitude:.3g})" + (f": {blob.note}" if blob.note else "")
            )
        for run in self.runs:
            shapes = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in run.shapes.items())
            if run.skipped:
                out.append(f"{run.name}: skipped ({run.skipped})")
                continue
            if run.failed:
                out.append(f"{run.name} ({shapes}): FAILED: {run.failed}")
                continue
            bad = sum(not b.ok for b in run.blobs)
            worst = max(run.blobs, key=lambda b: b.error / b.tolerance, default=None)
            ratio = (
                f", worst error/tolerance {worst.error / worst.tolerance:.2g} at '{worst.blob}'"
                if worst
                else ""
            )
            within = f"{len(run.blobs) - bad}/{len(run.blobs)} blobs within tolerance"
            out.append(f"{run.name} ({shapes}): {within}{ratio}")
        out.append(self.table())
        out.append("export check: " + ("OK" if self.ok else "FAILED"))
        return out

    def table(self) -> str:
        """Blob by blob for the first compared run (all runs' blobs when one diverges)."""
        runs = [r for r in self.runs if r.blobs]
        if not runs:
            return ""
        rows = [("run", "blob", "layer", "shape", "error", "tolerance", "ok")]
        shown = runs if not self.ok else runs[:1]
        for run in shown:
            for b in run.blobs:
                rows.append(
                    (
                        run.name,
                        b.blob,
                        b.layer,
                        "x".join(map(str, b.shape)),
                        f"{b.error:.3g}",
                        f"{b.tolerance:.3g}",
                        "ok" if b.ok else "DIVERGES",
                    )
                )
        widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows
        )


def _reduction_length(info: Any, exported: Exported, ins: list[list[int]]) -> int:
    """How many terms each output of a layer sums (its share of the tolerance's A)."""
    kind = info.type
    p = exported.built.params.get(info.name)
    if (
        kind
        in (
            "Convolution",
            "Deconvolution",
            "DepthwiseConvolution",
            "ConvolutionDepthwise",
            "InnerProduct",
        )
        and p
    ):
        weight = p[0]
        return (
            int(np.prod(weight.shape[1:]))
            if kind != "Deconvolution"
            else int(np.prod(weight.shape[1:]) * max(1, weight.shape[0] // max(1, weight.shape[1])))
        )
    if kind in ("Pooling", "LRN") and ins:
        return int(np.prod(ins[0][2:])) if kind == "Pooling" else int(ins[0][1])
    if kind in ("Softmax", "Normalize", "MVN", "Reduction") and ins:
        return int(np.prod(ins[0][1:]))
    if kind == "Eltwise":
        return len(ins)
    return 1


def _path_lengths(
    exported: Exported,
) -> tuple[dict[str, float], dict[str, str], dict[str, list[str]]]:
    """Per ONNX value: A (the longest chain's summed reduction lengths), the layer that
    wrote it, and that layer's inputs."""
    built = exported.built
    depth: dict[str, float] = dict.fromkeys(built.inputs, 0.0)
    writer: dict[str, str] = {}
    inputs: dict[str, list[str]] = {}
    for info in exported.prepared.layers:
        if info.type == "Input":
            for w in info.writes:
                writer[built.names[w]] = info.name
            continue
        ins = [built.names[r] for r in info.reads]
        shapes = [built.shapes[n] for n in ins]
        k = _reduction_length(info, exported, shapes)
        base = max((depth.get(n, 0.0) for n in ins), default=0.0)
        for w in info.writes:
            name = built.names[w]
            if name in ins:  # an alias: Split or Dropout
                continue
            depth[name] = base + k
            writer[name] = info.name
            inputs[name] = ins
    return depth, writer, inputs


def _odd(shapes: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    """Each 4-D input with its height and width made odd (one or two more)."""
    return {
        k: [*v[:2], *(d + 1 if d % 2 == 0 else d + 2 for d in v[2:])] if len(v) == 4 else list(v)
        for k, v in shapes.items()
    }


def _seeded(shapes: Mapping[str, Sequence[int]], seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(list(v)).astype(np.float32) for k, v in shapes.items()}


def check(
    doc: Any,
    weights: WeightsLike = None,
    *,
    opset: int = DEFAULT_OPSET,
    input_shape: InputShape = None,
    until: str | None = None,
    seed: int = 0,
    inputs: Mapping[str, np.ndarray] | None = None,
    images: Sequence[str | os.PathLike[str]] = (),
    preprocess: Any = None,
    odd_size: bool = True,
    batch2: bool = True,
    session: Any = None,
    exported: Exported | None = None,
    progress: bool | None = False,
) -> CheckReport:
    """Export ``doc`` (as :func:`~protoedit.export.to_onnx`) and compare it with Caffe blob
    by blob (see the module docstring).  ``inputs`` adds a run on given arrays, ``images``
    one on image files (``preprocess``: a ``protoedit.explain.Preprocess``; the net must
    have one input); ``session`` is a warm ``protoedit.caffe.Session`` to reuse;
    ``exported``, the result of :func:`~protoedit.export.export` with the same arguments."""
    if exported is None:
        exported = export(
            doc, weights, opset=opset, input_shape=input_shape, until=until, seed=seed
        )
    report = CheckReport(doc.path)
    base = {k: list(v) for k, v in exported.built.inputs.items()}
    if images:
        inputs = {**(inputs or {}), **_image_inputs(base, images, preprocess)}
    runs: list[tuple[str, Exported | str, dict[str, np.ndarray]]] = [
        ("declared size", exported, _seeded(base, seed + 1))
    ]
    if odd_size:
        odd = _odd(base)
        if odd == base:
            runs.append(("odd size", "the inputs have no height and width", {}))
        else:
            try:
                again = export(  # progress: the first export showed it
                    doc,
                    exported.weights,
                    opset=opset,
                    input_shape=odd if len(odd) > 1 else next(iter(odd.values())),
                    until=until,
                )
                runs.append(("odd size", again, _seeded(odd, seed + 2)))
            except Exception as exc:  # the net does not reshape: say why
                from protoedit.errors import ProtoeditError

                if not isinstance(exc, ProtoeditError):
                    raise
                runs.append(("odd size", f"the net does not reshape: {exc.message}", {}))
    if batch2 and not exported.dynamic_batch:
        runs.append(("batch 2", "axis 0 is time (a recurrent net): the batch is fixed", {}))
    elif batch2:
        runs.append(
            ("batch 2", exported, _seeded({k: [2, *v[1:]] for k, v in base.items()}, seed + 3))
        )
    if inputs:
        runs.append(
            (
                "given inputs",
                exported,
                {k: np.asarray(v, dtype=np.float32) for k, v in inputs.items()},
            )
        )
    if session is None:
        from protoedit.caffe import session as open_session

        with open_session() as opened:
            _run_all(report, exported, runs, weights, opened, progress)
    else:
        _run_all(report, exported, runs, weights, session, progress)
    return report


def _image_inputs(
    base: Mapping[str, Sequence[int]], images: Sequence[str | os.PathLike[str]], preprocess: Any
) -> dict[str, np.ndarray]:
    """The images as a batch for the net's one input."""
    from protoedit.errors import InputError
    from protoedit.explain.preprocess import Preprocess, load_input

    if len(base) != 1:
        raise InputError(f"images need a net with one input; this one has {len(base)}")
    name, shape = next(iter(base.items()))
    pre = preprocess if preprocess is not None else Preprocess()
    arrays = [load_input(path, (1, *shape[1:]), pre).reshape(shape[1:]) for path in images]
    return {name: np.stack(arrays).astype(np.float32)}


def _run_all(
    report: CheckReport,
    exported: Exported,
    runs: list[tuple[str, Exported | str, dict[str, np.ndarray]]],
    weights: WeightsLike,
    session: Any,
    progress: bool | None = False,
) -> None:
    from protoedit.caffe import CaffeRunError
    from protoedit.progress import progress_bar

    with tempfile.TemporaryDirectory(prefix="protoedit-export-") as folder:
        net_path = os.path.join(folder, "net.prototxt")
        with open(net_path, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(reference_text(exported))
        try:
            net_id = _load_reference(session, net_path, exported, weights)
        except CaffeRunError as exc:
            report.reference_error = exc.message
            return
        opened: dict[int, Any] = {}  # onnxruntime's session per model: runs share a model
        try:
            with progress_bar(len(runs), unit="run", enabled=progress, desc="check") as bar:
                for name, model, arrays in runs:
                    bar.update()
                    shapes = {k: list(v.shape) for k, v in arrays.items()}
                    if isinstance(model, str):
                        report.runs.append(Run(name, shapes, skipped=model))
                        continue
                    report.runs.append(_compare(session, net_id, model, name, arrays, opened))
        finally:
            with contextlib.suppress(CaffeRunError):
                session.request(_WORKER, "unload", net_id=net_id)


def reference_text(exported: Exported) -> str:
    """The prepared net as Caffe should load it: its Input layers at the export's shapes."""
    from google.protobuf import text_format

    net = exported.prepared.doc.message
    changed = False
    for layer in net.layer:
        if layer.type != "Input":
            continue
        for k, top in enumerate(layer.top):
            shape = exported.built.inputs.get(top)
            declared = layer.input_param.shape
            if shape is None or (len(declared) > k and list(declared[k].dim) == shape):
                continue
            changed = True
    if not changed:
        return exported.prepared.doc.dumps()
    copy = type(net)()
    copy.CopyFrom(net)
    for layer in copy.layer:
        if layer.type == "Input":
            del layer.input_param.shape[:]
            for top in layer.top:
                layer.input_param.shape.add().dim.extend(exported.built.inputs[top])
    return str(text_format.MessageToString(copy))


def _load_reference(session: Any, net_path: str, exported: Exported, weights: WeightsLike) -> int:
    """Load the net in the Caffe worker with the very weights the export used."""
    if isinstance(weights, (str, os.PathLike)):
        from protoedit.weights import stored_shapes

        stored = stored_shapes(weights)
        answer = session.request(
            _WORKER, "load", net=net_path, weights=os.fspath(weights), stored_shapes=stored
        )
        return int(answer["net_id"])
    answer = session.request(_WORKER, "load", net=net_path)
    params = {}
    for layer, blobs in exported.weights.items():
        roles = list(answer["params"].get(layer, {})) or param_roles(
            next(i.type for i in exported.prepared.layers if i.name == layer), len(blobs)
        )
        params[layer] = {
            role: _caffe_shaped(blob, answer["params"].get(layer, {}).get(role))
            for role, blob in zip(roles, blobs, strict=False)
        }
    session.request(_WORKER, "set_params", net_id=answer["net_id"], params=params)
    return int(answer["net_id"])


def _caffe_shaped(blob: np.ndarray, shape: Sequence[int] | None) -> np.ndarray:
    return blob.reshape(shape) if shape is not None and int(np.prod(shape)) == blob.size else blob


def _compare(
    session: Any,
    net_id: int,
    model: Exported,
    name: str,
    arrays: dict[str, np.ndarray],
    opened: dict[int, Any],
) -> Run:
    """One run: Caffe's blobs and onnxruntime's values, compared in the net's order.
    ``opened`` keeps the onnxruntime session of each model for the next run on it (a model
    of FCN-8s's 134M parameters takes seconds to serialise and load)."""
    import onnxruntime

    from protoedit.caffe import CaffeRunError

    built = model.built
    run = Run(name, {k: list(v.shape) for k, v in arrays.items()})
    blobs = [b for b in built.blob_values if built.blob_values[b] not in built.inputs]
    try:
        reference = session.request(
            _WORKER, "run", net_id=net_id, inputs=arrays, backward=False, blobs=blobs
        )["blobs"]
    except CaffeRunError as exc:
        run.failed = f"Caffe could not run: {exc.message}"
        return run
    values = list(dict.fromkeys(built.blob_values[b] for b in blobs))
    try:
        ort = opened.get(id(model))
        if ort is None:
            ort = opened[id(model)] = onnxruntime.InferenceSession(
                model.with_outputs(values).SerializeToString(),
                session_options(),
                providers=["CPUExecutionProvider"],
            )
        results = dict(zip(values, ort.run(values, arrays), strict=True))
    except Exception as exc:  # onnxruntime's errors have no common base we can name
        run.failed = f"onnxruntime could not run the model: {exc}"
        return run
    depth, writer, inputs = _path_lengths(model)
    peaks = {n: float(np.max(np.abs(v))) if v.size else 0.0 for n, v in results.items()}
    for blob in blobs:
        value = built.blob_values[blob]
        ours, theirs = results[value], np.asarray(reference[blob])
        magnitude = max([peaks[value], *(peaks.get(i, 0.0) for i in inputs.get(value, []))])
        tolerance = SAFETY * EPS32 * max(magnitude, 1e-30) * (math.sqrt(depth.get(value, 1.0)) + 1)
        if ours.shape != theirs.shape:
            run.blobs.append(
                BlobResult(
                    blob,
                    writer.get(value, ""),
                    list(theirs.shape),
                    math.inf,
                    tolerance,
                    magnitude,
                    False,
                    f"ONNX shape {list(ours.shape)}, Caffe shape {list(theirs.shape)}",
                )
            )
            continue
        diff = np.abs(ours.astype(np.float64) - theirs.astype(np.float64))
        error = float(np.max(diff)) if diff.size else 0.0
        if not np.all(np.isfinite(ours)) or not np.all(np.isfinite(theirs)):
            same = bool(np.array_equal(np.isfinite(ours), np.isfinite(theirs)))
            error = error if same else math.inf
        ok = error <= tolerance
        run.blobs.append(
            BlobResult(
                blob, writer.get(value, ""), list(theirs.shape), error, tolerance, magnitude, ok
            )
        )
    return run
