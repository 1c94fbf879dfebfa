"""``fold-bn``: BatchNorm and Scale layers folded into the Convolution, Deconvolution or
InnerProduct before them, weights included.

A fold takes a linear layer and the chain of per-channel affine layers (BatchNorm with
stored statistics, Scale on the channel axis) that alone read its output, one after the
other, in place or not.  The linear layer gets the composed weights and a bias (added when
it had ``bias_term: false``) and writes the chain's last blob, so every blob name that is
left keeps its value; the chain's layers and their weights go.  A BatchNorm that cannot be
folded stays where it is and the report says why.  The arithmetic is in
:mod:`protoedit.rewrites.affine`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from protoedit.document import Document
from protoedit.net.layers import NUM_OUTPUT_RULES, layer_type, param_blobs
from protoedit.net.view import INPUT, BlobVersion, LayerInfo, NetView
from protoedit.rewrites.add_loss import rename_blobs
from protoedit.rewrites.affine import Affine, batch_norm, fold_into, scale
from protoedit.rewrites.carried import (
    WeightsMismatchError,
    WeightsReport,
    arrays_of,
    layer_blobs,
    weights_like,
)
from protoedit.rewrites.check import check_result, lint_errors
from protoedit.rewrites.cleanup import drop_layers

if TYPE_CHECKING:
    from protoedit.rewrites.carried import Arrays

__all__ = ["fold_bn"]

#: The parameter roles that make a layer type a BatchNorm or a Scale (from the catalogue).
_BATCH_NORM_ROLES = ("mean", "variance", "scale_factor")
_SCALE_ROLES = ("scale", "bias")
_LINEAR = "Convolution, Deconvolution or InnerProduct"


def _rule(info: LayerInfo) -> str | None:
    """The shape rule of a linear layer whose weights can absorb a per-channel map."""
    entry = layer_type(info.type)
    if entry is None or entry.shape not in NUM_OUTPUT_RULES or entry.roles[:1] != ("weight",):
        return None
    return entry.shape


def _roles(info: LayerInfo) -> tuple[str, ...]:
    entry = layer_type(info.type)
    return entry.roles if entry is not None else ()


def _is_batch_norm(info: LayerInfo) -> bool:
    return _roles(info) == _BATCH_NORM_ROLES


def _is_scale(info: LayerInfo) -> bool:
    return _roles(info) == _SCALE_ROLES


def _linear_problem(info: LayerInfo, names: Counter[str]) -> str | None:
    """Why the weights of this linear layer cannot absorb what follows it (None: they can)."""
    param = info.param
    if len(param.bottom) != 1 or len(param.top) != 1:
        return f"'{info.name}' has {len(param.bottom)} bottoms and {len(param.top)} tops"
    if any(spec.name for spec in param.param):
        return f"'{info.name}' shares its weights with other layers (param name)"
    if len(param.include) or len(param.exclude):
        return f"'{info.name}' has include/exclude rules"
    if names[info.name] > 1:
        return f"{names[info.name]} layers are named '{info.name}'"
    if _rule(info) == "inner_product" and param.inner_product_param.axis not in (1, -1):
        return f"'{info.name}' has axis {param.inner_product_param.axis}"
    return None


def _affine_problem(info: LayerInfo, names: Counter[str]) -> str | None:
    """Why this BatchNorm or Scale is not a per-channel map on axis 1 (None: it is)."""
    param = info.param
    if len(param.bottom) != 1 or len(param.top) != 1:
        return f"it has {len(param.bottom)} bottoms and {len(param.top)} tops"
    if len(param.include) or len(param.exclude):
        return "it has include/exclude rules"
    if names[info.name] > 1:
        return f"{names[info.name]} layers are named '{info.name}'"
    if _is_batch_norm(info):
        bn = param.batch_norm_param
        if bn.HasField("use_global_stats") and not bn.use_global_stats:
            return "use_global_stats: false (it normalises with each batch's own statistics)"
        return None
    sp = param.scale_param
    if sp.axis != 1 or sp.num_axes not in (0, 1):
        return f"it scales from axis {sp.axis} over {sp.num_axes} axes, not per channel"
    return None


@dataclass
class _Chain:
    """A linear layer and the affine layers folded into it."""

    linear: LayerInfo
    kind: str
    layers: list[LayerInfo]


def _readers(view: NetView) -> dict[BlobVersion, list[LayerInfo]]:
    found: dict[BlobVersion, list[LayerInfo]] = {}
    for info in view.layers:
        for version in info.reads:
            found.setdefault(version, []).append(info)
    return found


def _chains(view: NetView, names: Counter[str]) -> list[_Chain]:
    """Each foldable linear layer with the affine layers that alone read its output."""
    readers = _readers(view)
    chains = []
    for info in view.layers:
        kind = _rule(info)
        if kind is None or _linear_problem(info, names):
            continue
        chain: list[LayerInfo] = []
        value = info.writes[0]
        while len(readers.get(value, [])) == 1:
            nxt = readers[value][0]
            if not (_is_batch_norm(nxt) or _is_scale(nxt)) or _affine_problem(nxt, names):
                break
            chain.append(nxt)
            value = nxt.writes[0]
        if chain:
            chains.append(_Chain(info, kind, chain))
    return chains


def _why_not(
    view: NetView, info: LayerInfo, names: Counter[str], readers: dict[BlobVersion, Any]
) -> str:
    """Why a BatchNorm was left where it is."""
    own = _affine_problem(info, names)
    if own:
        return own
    version = info.reads[0]
    producer = view.by_index.get(version.producer)
    while producer is not None and (_is_batch_norm(producer) or _is_scale(producer)):
        if _affine_problem(producer, names):
            return f"'{producer.name}' before it cannot be folded"
        version = producer.reads[0]
        producer = view.by_index.get(version.producer)
    if version.producer == INPUT or producer is None:
        return f"its input '{version.blob}' is an input of the net, not a {_LINEAR}'s output"
    if _rule(producer) is None:
        return (
            f"its input '{version.blob}' comes from '{producer.name}' ({producer.type}), "
            f"not from a {_LINEAR}"
        )
    linear = _linear_problem(producer, names)
    if linear:
        return linear
    others = [r.name for r in readers.get(version, []) if r.name != info.name]
    if not others:  # cannot happen for a chain _chains() found; say so rather than guess
        return f"'{producer.name}' before it was not folded"
    return f"'{version.blob}' written by '{producer.name}' is also read by '{others[0]}'"


def _channels(linear: LayerInfo, kind: str) -> int:
    field = "inner_product_param" if kind == "inner_product" else "convolution_param"
    return int(getattr(linear.param, field).num_output)


def _affine_of(info: LayerInfo, arrays: Arrays, channels: int) -> Affine:
    """The map a BatchNorm or Scale layer computes, from its weights."""
    if _is_batch_norm(info):
        mean, variance, factor = layer_blobs(arrays, info.name, info.type, 3)[:3]
        for name, blob in (("mean", mean), ("variance", variance)):
            if blob.size != channels:
                raise WeightsMismatchError(
                    f"'{info.name}/{name}' has {blob.size} values for {channels} channels"
                )
        eps = float(info.param.batch_norm_param.eps)
        return batch_norm(mean, variance, float(factor.reshape(-1)[0]), eps)
    roles = param_blobs(info.param) or ("scale",)
    blobs = layer_blobs(arrays, info.name, info.type, len(roles))
    multipliers = blobs[0]
    if multipliers.size not in (1, channels):
        raise WeightsMismatchError(
            f"'{info.name}/scale' has {multipliers.size} values for {channels} channels"
        )
    return scale(multipliers, blobs[1] if len(roles) > 1 else None, channels)


def _fold_weights(chain: _Chain, arrays: Arrays) -> tuple[list[Any], list[LayerInfo], str]:
    """The linear layer's new blobs and the layers folded (a prefix of the chain: a layer
    whose map is not finite ends it), with why the rest stayed ('' when none did)."""
    linear = chain.linear
    roles = param_blobs(linear.param) or ("weight",)
    blobs = layer_blobs(arrays, linear.name, linear.type, len(roles))
    channels = _channels(linear, chain.kind)
    affine, folded, stopped = Affine.identity(channels), [], ""
    for info in chain.layers:
        try:
            affine = affine.then(_affine_of(info, arrays, channels))
        except ValueError as exc:
            stopped = f"'{info.name}' left in place: {exc}"
            break
        folded.append(info)
    if not folded:
        return blobs, folded, stopped
    conv = linear.param.convolution_param
    weight, bias = fold_into(
        chain.kind,
        blobs[0],
        blobs[1] if len(roles) > 1 else None,
        affine,
        group=int(conv.group) if chain.kind != "inner_product" else 1,
        transpose=bool(linear.param.inner_product_param.transpose),
    )
    return [weight, bias], folded, stopped


def fold_bn(doc: Document, weights: Any) -> WeightsReport:
    """Fold every BatchNorm and Scale that follows a Convolution, Deconvolution or
    InnerProduct (reading nothing else, read by nothing else) into it; ``weights`` (a
    ``Weights`` or ``{layer: [arrays]}``) is left as it is, the report holds the new ones.

    The net is taken as Caffe builds it for TEST: a BatchNorm without ``use_global_stats``
    uses its stored statistics.  A BatchNorm that stays is flagged with the reason.
    """
    view = NetView.editable(doc)
    baseline = lint_errors(doc)
    arrays = arrays_of(weights)
    names = Counter(info.name for info in view.layers)
    report = WeightsReport(changed=list(view.normalised))
    gone: dict[int, str] = {}
    renames: list[tuple[LayerInfo, str]] = []
    biased: list[LayerInfo] = []
    explained: set[int] = set()  # layers of a chain left in place, already reported
    new = dict(arrays)
    for chain in _chains(view, names):
        blobs, folded, stopped = _fold_weights(chain, arrays)
        if stopped:
            report.flagged.append(stopped)
            rest = chain.layers[len(folded) :]
            explained |= {info.index for info in rest}
            report.flagged += [
                f"BatchNorm '{info.name}' left in place: '{rest[0].name}' before it stays"
                for info in rest[1:]
                if _is_batch_norm(info)
            ]
        if not folded:
            continue
        linear = chain.linear
        new[linear.name] = blobs
        for info in folded:
            gone[info.index] = f"folded into '{linear.name}'"
            new.pop(info.name, None)
        end = folded[-1].writes[0].blob
        if end != linear.writes[0].blob:
            renames.append((linear, end))
        if "bias" not in (param_blobs(linear.param) or ()):
            biased.append(linear)
        report.changed.append(
            f"folded {', '.join(repr(i.name) for i in folded)} into '{linear.name}'"
            + (f", which now writes '{end}'" if end != linear.writes[0].blob else "")
        )
    readers = _readers(view)
    for info in view.layers:
        if _is_batch_norm(info) and info.index not in gone.keys() | explained:
            report.flagged.append(
                f"BatchNorm '{info.name}' left in place: {_why_not(view, info, names, readers)}"
            )
    for linear, end in renames:
        rename_blobs(doc, [("top", linear, 0)], end)
    for linear in biased:
        field = "inner_product_param" if _rule(linear) == "inner_product" else "convolution_param"
        doc.set(f"layer[{linear.index}].{field}.bias_term", True)
        report.changed.append(f"'{linear.name}' has a bias now (bias_term was false)")
    drop_layers(doc, view, gone, report)
    check_result(doc, "fold-bn", baseline=baseline)
    kept = {info.name for info in NetView(doc).layers}
    report.carried = {name: name for name in new if name in kept and new[name] is arrays.get(name)}
    report.weights = weights_like(weights, new, {})
    return report
