"""``truncate``: keep exactly the layers that compute a target value, drop the rest.

The kept set is the target's ancestry in the data-flow graph, so Inception concats and
ResNet sums are kept whole.  For a target followed by in-place layers (BatchNorm, Scale,
ReLU on the same blob), ``after_inplace`` keeps them and targets the value they leave.
"""

from __future__ import annotations

from protoedit.document import Document
from protoedit.net.view import BlobVersion, NetView
from protoedit.rewrites.report import RewriteReport
from protoedit.syntax.edit import remove_field


def target_value(view: NetView, target: str, after_inplace: bool) -> BlobVersion:
    """The value ``target`` names, past its in-place chain when ``after_inplace``."""
    version = view.resolve(target)
    if after_inplace:
        chain = view.inplace_chain(version)
        if chain:
            last = chain[-1]
            version = next(w for w in last.writes if w.blob == version.blob)
    return version


def truncate(doc: Document, target: str, after_inplace: bool = False) -> RewriteReport:
    """Remove every layer the target value does not depend on."""
    view = NetView(doc)
    version = target_value(view, target, after_inplace)
    keep = view.ancestors([version])
    report = RewriteReport(changed=list(view.normalised))
    for info in reversed(view.layers):
        if info.index not in keep:
            remove_field(doc.tree, info.node)
            report.dropped.append(f"layer '{info.name}' ({info.type}): not needed for the target")
    report.dropped.reverse()
    producer = (
        view.by_index[version.producer].name if version.producer in view.by_index else "input"
    )
    report.changed.append(
        f"truncated at '{version.blob}' as written by '{producer}': kept {len(keep)} of "
        f"{len(view.layers)} layers"
    )
    doc.changed()
    return report
