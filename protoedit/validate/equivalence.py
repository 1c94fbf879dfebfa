"""Proof in Caffe that a rewrite which carries weights computes what the original computed.

:func:`check_equivalence` runs the original net and the rewritten one (each with its
weights) in a Caffe worker on the same seeded inputs and compares every blob that survives:
each must agree within its tolerance; the blobs of the layers whose weights were carried
unchanged (renamed or not) must be bitwise equal.  The report names the first blob, in the
rewritten net's order, that diverges.

The tolerance of a blob comes from float32 rounding, measured on the very inputs and
weights of the check.  A rewrite such as ``fold-bn`` changes no arithmetic but its rounding:
each folded weight is the float32 rounding of an exact product (one rounding, at most half a
unit in the last place, ulp), and the bias and the per-channel map it replaces were each a
few float32 operations (BatchNorm: scale the statistics, add eps, square root, subtract,
divide; Scale: multiply, add), each rounded once.  So the rewritten net is the original with
every parameter moved by at most a few ulps.  How much one ulp of every parameter moves a
blob depends on the whole net above it (a sum that cancels, a small variance that
divides), which no static bound captures without being useless; Caffe measures it: the
worker runs the original a second time with every parameter moved by one ulp, up or down at
random, and the largest change of the blob is its ``noise``.  With ``k`` roundings changed
per parameter, changes that add up like a random walk grow as ``sqrt(k)`` and at worst as
``k``; taking ``k = 8`` (the BatchNorm and Scale operations above, rounded up) at worst:

    tolerance = 8 * noise + 4 * u * max|blob|,   u = 2**-24 (float32's unit roundoff)

where the second term is the floor for blobs the parameters do not reach (rounding of the
last operation that wrote them, four times over).  A wrong fold (a channel scaled twice, a
missing bias) moves blobs by a fraction of their magnitude, orders above this.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protoedit.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    from protoedit.caffe import Session
    from protoedit.document import Document
    from protoedit.rewrites.carried import WeightsReport

    Inputs = dict[str, NDArray[np.float32]]

#: float32's unit roundoff (half an ulp of 1).
UNIT_ROUNDOFF = 2.0**-24
#: Roundings a weight rewrite may change per parameter, at worst (see the module docstring).
CHANGED_ROUNDINGS = 8
#: The floor, in unit roundoffs of the blob's magnitude.
FLOOR_ROUNDINGS = 4
_HANDLER = "protoedit.validate.equivalence_child"


@dataclass(frozen=True)
class BlobCheck:
    """One surviving blob: its largest difference against the tolerance."""

    blob: str
    original: str
    shape: tuple[int, ...]
    difference: float
    tolerance: float
    magnitude: float
    noise: float
    at: int
    problem: str = ""  # a reason it fails other than its size: shapes, NaN

    @property
    def ok(self) -> bool:
        return not self.problem and self.difference <= self.tolerance

    def describe(self) -> str:
        name = self.blob if self.blob == self.original else f"{self.blob} (was {self.original})"
        if self.problem:
            return f"{name}: {self.problem}"
        return (
            f"{name}: largest difference {self.difference:.3g} at element {self.at} "
            f"(tolerance {self.tolerance:.3g}; magnitude {self.magnitude:.3g}, "
            f"rounding noise {self.noise:.3g})"
        )


@dataclass
class EquivalenceReport:
    """The verdict: every surviving blob within tolerance, every carried layer bitwise."""

    blobs: list[BlobCheck] = field(default_factory=list)
    params: list[tuple[str, str, bool]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    @property
    def first_divergence(self) -> BlobCheck | None:
        """The first blob, in the rewritten net's order, out of tolerance."""
        return next((b for b in self.blobs if not b.ok), None)

    @property
    def changed_params(self) -> list[tuple[str, str]]:
        """Carried layers whose blobs are not bitwise those of the original: ``(new, old)``."""
        return [(new, old) for new, old, same in self.params if not same]

    @property
    def ok(self) -> bool:
        return self.first_divergence is None and not self.changed_params and not self.missing

    @property
    def exit_code(self) -> int:
        return 0 if self.ok else 1

    def lines(self) -> list[str]:
        """The verdict for a person: failures first, then what was compared."""
        out = [f"layer '{name}' of the rewritten net has no weights" for name in self.missing]
        for new, old in self.changed_params:
            was = f" (was '{old}')" if new != old else ""
            out.append(f"weights of '{new}'{was} are not bitwise those of the original")
        first = self.first_divergence
        if first is not None:
            bad = sum(not b.ok for b in self.blobs)
            out.append(f"first blob that diverges: {first.describe()}")
            if bad > 1:
                out.append(f"{bad} of {len(self.blobs)} blobs diverge")
        verdict = "equivalent" if self.ok else "NOT equivalent"
        count = len(self.params)
        whose = "layers'" if count != 1 else "layer's"
        carried = f", {count} {whose} weights bitwise" if count else ""
        worst = max(
            (b for b in self.blobs if b.tolerance > 0),
            key=lambda b: b.difference / b.tolerance,
            default=None,
        )
        out.append(f"check: {verdict} ({len(self.blobs)} blobs compared{carried})")
        if worst is not None and self.ok:
            out.append(f"closest to its tolerance: {worst.describe()}")
        return out


def tolerance(noise: float, magnitude: float) -> float:
    """A blob's tolerance from its rounding noise and magnitude (see the module docstring)."""
    return CHANGED_ROUNDINGS * noise + FLOOR_ROUNDINGS * UNIT_ROUNDOFF * magnitude


def _text(net: Document | str | os.PathLike[str]) -> str:
    if isinstance(net, (str, os.PathLike)):
        from protoedit.files import read_text

        return read_text(net)
    return net.dumps()


def input_shapes(net: Document | str | os.PathLike[str]) -> dict[str, list[int]]:
    """The shape of each input blob of a deploy net (Input layers, a legacy header)."""
    from protoedit.document import load, loads
    from protoedit.net.inputs import header_shapes
    from protoedit.net.layers import is_data_layer, layer_type
    from protoedit.net.shapes import infer_shapes
    from protoedit.net.state import NetState
    from protoedit.net.view import NetView

    doc = load(net) if isinstance(net, (str, os.PathLike)) else loads(net.dumps())
    shapes = dict(header_shapes(doc.message))
    view = NetView(doc, NetState("TEST"))
    data = [info.name for info in view.layers if is_data_layer(info.param)]
    if data:
        raise InputError(
            f"the net reads its data from files (layer '{data[0]}'): the check runs deploy "
            "nets on seeded inputs; turn it into one first (to-deploy)"
        )
    inferred = infer_shapes(view)
    for info in view.layers:
        entry = layer_type(info.type)
        if entry is not None and entry.shape == "input":
            for version in info.writes:
                shape = inferred[version]
                if shape is None:
                    raise InputError(f"the shape of input '{version.blob}' is not known")
                shapes[version.blob] = shape
    if not shapes:
        raise InputError("the net declares no input (Input layer or input: header) to feed")
    return shapes


def seeded_inputs(shapes: Mapping[str, list[int]], seed: int = 0) -> Inputs:
    """Standard normal float32 values for each input, from ``seed``."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(shape).astype(np.float32) for name, shape in shapes.items()}


def _stored(weights: Any) -> list[str]:
    """The layers with blobs in a ``.caffemodel`` (read without the values)."""
    if not isinstance(weights, (str, os.PathLike)):
        return []
    from protoedit.weights import load

    return [layer.name for layer in load(weights, values=False).with_blobs()]


def _weights_field(weights: Any) -> Any:
    """A ``.caffemodel`` path (copied by Caffe by layer name) or ``{layer: [float32]}``."""
    if isinstance(weights, (str, os.PathLike)):
        return str(Path(weights).resolve())
    import numpy as np

    from protoedit.rewrites.carried import arrays_of

    return {
        name: [np.ascontiguousarray(b, dtype=np.float32) for b in blobs]
        for name, blobs in arrays_of(weights).items()
    }


def check_equivalence(
    original: Document | str | os.PathLike[str],
    original_weights: Any,
    rewritten: Document | str | os.PathLike[str],
    weights: Any,
    *,
    carried: Mapping[str, str] | None = None,
    renamed_blobs: Mapping[str, str] | None = None,
    inputs: Inputs | None = None,
    original_inputs: Callable[[Inputs], Inputs] | None = None,
    seed: int = 0,
    session: Session | None = None,
    allow_python_layers: bool = False,
) -> EquivalenceReport:
    """Run both nets in Caffe on the same inputs and compare them blob by blob.

    Nets are documents or files, weights ``.caffemodel`` paths or weights objects.
    ``carried`` maps layers of the rewritten net to the original layers whose blobs they
    must equal bitwise; ``renamed_blobs`` maps blob names of the rewritten net to the
    original's (other blobs are compared by name).  ``inputs`` go to the rewritten net
    (default: seeded standard normal values); ``original_inputs`` turns them into the
    original's (default: the same).
    """
    from protoedit.caffe import Session, check_python_layers

    if inputs is None:
        inputs = seeded_inputs(input_shapes(rewritten), seed)
    given = original_inputs(inputs) if original_inputs is not None else inputs
    fields: dict[str, Any] = {
        "original_weights": _weights_field(original_weights),
        "weights": _weights_field(weights),
        "original_stored": _stored(original_weights),
        "stored": _stored(weights),
        "carried": sorted((carried or {}).items()),
        "renamed_blobs": dict(renamed_blobs or {}),
        "inputs": inputs,
        "original_inputs": given,
        "seed": seed,
    }
    with tempfile.TemporaryDirectory(prefix="protoedit-check-") as tmp:
        for key, net in (("original", original), ("net", rewritten)):
            text = _text(net)
            path = Path(tmp) / f"{key}.prototxt"
            path.write_text(text, encoding="utf-8")
            fields[key] = str(path)
        check_python_layers(
            _text(original), "(original net)", allow=allow_python_layers
        )  # the worker's gate reads the rewritten net only
        own = session is None
        worker = session if session is not None else Session()
        try:
            answer = worker.request(_HANDLER, "compare", **fields)
        finally:
            if own:
                worker.close()
    return _report(answer)


def _report(answer: dict[str, Any]) -> EquivalenceReport:
    report = EquivalenceReport(
        params=[(str(n), str(o), bool(s)) for n, o, s in answer["params"]],
        missing=list(answer["missing"]),
    )
    for row in answer["blobs"]:
        shape = tuple(int(d) for d in row["shape"])
        if "difference" not in row:
            report.blobs.append(
                BlobCheck(
                    row["blob"], row["original"], shape, 0.0, 0.0, 0.0, 0.0, 0,
                    f"shape {shape}, the original's {tuple(row['original_shape'])}",
                )
            )  # fmt: skip
            continue
        limit = tolerance(row["noise"], row["magnitude"])
        problem = "" if row["finite"] else "not finite (NaN or infinity) in one of the nets"
        report.blobs.append(
            BlobCheck(
                row["blob"], row["original"], shape, row["difference"], limit,
                row["magnitude"], row["noise"], row["at"], problem,
            )
        )  # fmt: skip
    return report


def check_rewrite(
    original: Document | str | os.PathLike[str],
    original_weights: Any,
    rewritten: Document | str | os.PathLike[str],
    result: WeightsReport,
    *,
    weights: Any = None,
    inputs: Inputs | None = None,
    seed: int = 0,
    session: Session | None = None,
    allow_python_layers: bool = False,
) -> EquivalenceReport:
    """:func:`check_equivalence` for a rewrite's result: its weights (or ``weights``, e.g.
    the ``.caffemodel`` written from them), the layers it carried, the blobs it renamed."""
    return check_equivalence(
        original,
        original_weights,
        rewritten,
        result.weights if weights is None else weights,
        carried=result.carried,
        renamed_blobs=result.blobs,
        inputs=inputs,
        original_inputs=result.original_inputs,
        seed=seed,
        session=session,
        allow_python_layers=allow_python_layers,
    )
