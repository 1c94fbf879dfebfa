"""What each learnable blob of a layer is: ``weight``, ``bias``, BatchNorm's ``mean``, ...

Caffe stores a layer's parameters as an unnamed list (``net.layers[i].blobs``); this table
gives each index a role name by layer type, in Caffe's own order.  It is the seed of a layer
catalogue and knows nothing of pycaffe.
"""

from __future__ import annotations

#: Roles in blob order, per layer type.  A layer without its optional bias (``bias_term:
#: false``) has a prefix of the list.
ROLES: dict[str, tuple[str, ...]] = {
    "Convolution": ("weight", "bias"),
    "Deconvolution": ("weight", "bias"),
    "DepthwiseConvolution": ("weight", "bias"),
    "InnerProduct": ("weight", "bias"),
    "Embed": ("weight", "bias"),
    "BatchNorm": ("mean", "variance", "scale_factor"),
    "Scale": ("scale", "bias"),
    "Bias": ("bias",),
    "PReLU": ("slope",),
}


def param_roles(layer_type: str, count: int, bottoms: int = 1) -> list[str]:
    """The role of each of a layer's ``count`` parameter blobs (``blobK`` when unknown).

    A Scale layer with two bottoms takes its multipliers from the second bottom, so its only
    parameter is the bias.
    """
    roles = ROLES.get(layer_type, ())
    if layer_type == "Scale" and bottoms > 1:
        roles = ("bias",)
    if count > len(roles):
        return [*roles, *(f"blob{k}" for k in range(len(roles), count))]
    return list(roles[:count])


def param_key(layer: str, role: str) -> str:
    """The flat key of one parameter, ``LAYER/ROLE`` (e.g. ``conv1/weight``)."""
    return f"{layer}/{role}"
