"""The visualisation net: a net rewritten so that its loss is ``sum(mask * target)``.

:func:`~protoedit.rewrites.backward.backward_net` prepares the backward pass to the target;
then ``mask``, an extra Input blob N x C, weighs each batch element's own objective (``1 /
(H*W)`` on a channel for a channel mean), so one batch optimises N different objectives at
once.  When the target is a ReLU's output, a second mask reads the value before the ReLU: a
unit that is zero everywhere (dead) would get no gradient through the ReLU, so its element
follows the pre-activation until it comes alive.  Parameters get ``lr_mult: 0``: only the
input's gradient is needed.
"""

from __future__ import annotations

from dataclasses import dataclass

from protoedit.document import Document
from protoedit.errors import InputError
from protoedit.explain.inputs import NetSource, input_shapes, private_copy
from protoedit.net.layers import SIZE_BOUND, is_a, learnt_param_count
from protoedit.net.shapes import infer_shapes
from protoedit.net.view import INPUT, BlobVersion, NetView
from protoedit.rewrites.add_loss import infer_channels, layer_text, rename_blobs
from protoedit.rewrites.backward import backward_net
from protoedit.rewrites.report import RewriteReport
from protoedit.rewrites.truncate import target_value
from protoedit.syntax.edit import parse_fields
from protoedit.syntax.tree import Block

PREFIX = "protoedit_vis_"
MASK = f"{PREFIX}mask"
PRE_MASK = f"{PREFIX}pre_mask"


@dataclass
class Head:
    """What :func:`visualization_net` built: the measured blob, the pre-activation blob (None
    without a ReLU), the image input, the target's channels and declared shape."""

    input: str
    post: str
    pre: str | None
    target_channels: int
    shape: tuple[int, ...] | None
    spatial_ok: bool  # every layer up to the target takes another image size


def _fixed_ancestors(view: NetView, version: BlobVersion) -> bool:
    return any(is_a(view.by_index[i].type, SIZE_BOUND) for i in view.ancestors([version]))


def visualization_net(
    net: NetSource, target: str, *, after_inplace: bool = False
) -> tuple[Document, Head, RewriteReport]:
    """``net`` rewritten so that its loss is ``sum(mask * target)`` (see the module text)."""
    doc = private_copy(net)
    report = backward_net(doc, target, after_inplace=after_inplace)
    view = NetView(doc)
    version = target_value(view, target, after_inplace)
    if version.producer == INPUT:
        raise InputError(f"'{target}' is an input blob, not a layer's output")
    shapes = infer_shapes(view)
    shape = shapes.get(version)
    channels = infer_channels(view, version, shapes)
    if channels is None:
        raise InputError(f"cannot tell how many channels '{version.blob}' has")
    inputs = list(input_shapes(doc))
    if len(inputs) != 1:
        raise InputError(
            f"visualize needs a net with one input blob, this one has {len(inputs)}"
            + (f" ({', '.join(inputs)})" if inputs else "")
        )
    producer = view.by_index[version.producer]
    post, pre = version.blob, None
    if producer.type == "ReLU" and producer.reads:
        pre = producer.reads[0].blob
        if pre == post:  # in place: the ReLU writes a new blob, the pre-activation survives
            taken = {w.blob for info in view.layers for w in info.writes}
            post = f"{PREFIX}{version.blob}".replace("/", "_")
            while post in taken:
                post += "_"
            rename_blobs(doc, [("top", producer, 0)], post)
            report.changed.append(
                f"'{producer.name}' writes '{post}', so '{pre}' keeps the pre-activation"
            )
    frozen = _freeze_parameters(doc, view)
    if frozen:
        report.changed.append(
            f"lr_mult 0 on the parameters of {frozen} layers: backward skips their gradients"
        )
    head = Head(
        inputs[0],
        post,
        pre,
        channels,
        tuple(shape) if shape else None,
        not _fixed_ancestors(view, version),
    )
    _add_head(doc, head)
    report.changed.append(
        f"loss = sum({MASK} x '{post}')"
        + (f" + sum({PRE_MASK} x '{pre}')" if pre else "")
        + f"; {MASK} is an N x {channels} input: one objective per batch element"
    )
    return doc, head, report


def _freeze_parameters(doc: Document, view: NetView) -> int:
    """``lr_mult: 0`` on every parameter of the layers whose blob count is known: only the
    input's gradient is needed, and Caffe then skips the weight-gradient products (a third of
    a convolution's forward + backward).  The number of layers changed."""
    edits: list[tuple[Block, list[Block], int]] = []  # layer, its specs, specs to add
    for info in view.layers:
        count = learnt_param_count(info.param)
        specs = len(info.param.param)
        if count is None or count == 0 or specs > count or info.block is None:
            continue
        if all(spec.lr_mult == 0 for spec in info.param.param) and specs == count:
            continue
        items = [item for _, item in doc.elements(info.block, "param")]
        edits.append((info.block, [n for n in items if isinstance(n, Block)], count - specs))
    for layer, blocks, missing in edits:  # nodes found first: each edit drops the message
        for spec in blocks:
            given = [f for f in spec.fields if f.name.text == "lr_mult"]
            if given:
                doc.replace_value(given[-1], "0")
            else:
                doc.insert_fields(spec, parse_fields("lr_mult: 0"))
        if missing:
            after = [n for n, f in enumerate(layer.fields) if f.name.text == "param"]
            where = after[-1] + 1 if after else None
            doc.insert_fields(layer, parse_fields("param { lr_mult: 0 }\n" * missing), where)
    return len(edits)


def _add_head(doc: Document, head: Head) -> None:
    """Mask inputs, Scale (mask x value, broadcast over positions), Reduction SUM as loss."""
    pairs = [(head.post, MASK, "")] + ([(head.pre, PRE_MASK, "_pre")] if head.pre else [])
    shape = f"shape {{ dim: 1 dim: {head.target_channels} }}"
    texts = [
        layer_text(
            f"{PREFIX}masks",
            "Input",
            [],
            [m for _, m, _ in pairs],
            "  input_param { " + " ".join(shape for _ in pairs) + " }",
        )
    ]
    for value, mask, suffix in pairs:
        product = f"{PREFIX}product{suffix}"
        texts.append(
            layer_text(product, "Scale", [value, mask], [product], "  scale_param { axis: 0 }")
        )
        texts.append(
            layer_text(
                f"{PREFIX}loss{suffix}",
                "Reduction",
                [product],
                [f"{PREFIX}loss{suffix}"],
                "  loss_weight: 1\n  reduction_param { operation: SUM axis: 0 }",
            )
        )
    view = NetView(doc)
    dangling = sorted({v.blob for v in view.outputs()} - {head.post})
    if dangling:
        texts.append(layer_text(f"{PREFIX}silence", "Silence", dangling, []))
    for text in texts:
        doc.insert("", text)


def classifier_target(net: NetSource) -> str:
    """The logits of a classifier: the blob the net's last Softmax reads."""
    view = NetView(private_copy(net))
    for info in reversed(view.layers):
        if info.type == "Softmax" and info.reads:
            return info.reads[0].blob
    raise InputError("the net has no Softmax layer: name the logits with a target")
