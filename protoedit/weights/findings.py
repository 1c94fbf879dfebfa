"""``protoedit check NET --weights MODEL``: how the weights meet the net, as check findings.

Errors (Caffe aborts, or fills the wrong layer): ``E301`` a name given to several layers
that learn, ``E302`` a wrong number of blobs, ``E303`` a wrong shape, ``E304`` a name
stored twice, ``E305`` none of the net's layers that learn is stored, ``E306`` the file
mixes V1 ``layers`` and ``layer``, ``E307`` the file is over 2 GiB (protobuf's limit).
Warnings: ``W301`` a layer that learns is not stored (it keeps its initial values),
``W302`` a stored name matches no layer (with the nearest names: a renamed layer is the
usual cause).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protoedit.errors import Location
from protoedit.lint import Finding
from protoedit.weights.errors import MIXED_FORMATS
from protoedit.weights.matching import match, oversize_sentence

if TYPE_CHECKING:
    from protoedit.document import Document
    from protoedit.weights.model import Weights


def weights_findings(doc: Document, weights: Weights) -> list[Finding]:
    """Every finding of ``check --weights``: net layers located in the net, stored names in
    the weights file."""
    from protoedit.net.state import NetState
    from protoedit.net.view import NetView

    view = NetView(doc, NetState("TEST"))
    found = match(view, weights)
    stored = Location(weights.path)

    def at(layer: str, last: bool = True) -> Location:
        infos = [info for info in view.layers if info.name == layer]
        return doc.location(infos[-1 if last else 0].pos) if infos else stored

    findings = [
        Finding(
            at(name, last=False),
            "E301",
            f"layer name '{name}' is given to more than one layer that "
            "learns: Caffe copies the stored values into the last of them only",
            subject=name,
        )
        for name in found.duplicates
    ]
    findings += [Finding(at(c.layer), "E302", str(c), subject=c.layer) for c in found.counts]
    findings += [Finding(at(m.layer), "E303", str(m), subject=m.layer) for m in found.mismatches]
    findings += [
        Finding(
            stored,
            "E304",
            f"layer name '{name}' is stored more than once: Caffe keeps the last one's values",
            subject=name,
        )
        for name in found.stored_duplicates
    ]
    if found.mixed:
        findings.append(Finding(stored, "E306", MIXED_FORMATS))
    if found.oversize is not None:
        findings.append(Finding(stored, "E307", oversize_sentence(found.oversize)))
    if found.learners and not found.found:
        findings.append(
            Finding(stored, "E305", "none of the net's layers that learn is in the weights file")
        )
    findings += [
        Finding(
            at(name),
            "W301",
            f"layer '{name}' learns but is not in the weights file: it keeps its initial values",
            "warning",
            subject=name,
        )
        for name in found.missing
    ]
    findings += [
        Finding(stored, "W302", hint, "warning", subject=name)
        for name, hint in zip(found.unmatched, found.renamed_hints(), strict=True)
    ]
    return findings
