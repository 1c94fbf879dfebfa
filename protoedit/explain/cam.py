"""Class activation maps and the ReLU-rule methods, as method objects on stock pycaffe.

- :class:`GradCAM` (Selvaraju et al. 2017): with ``A`` the value of a spatial ``layer``
  (after its in-place layers: the rectified maps) and ``G = d f / d A``, the weights
  ``alpha_k = mean_ij G_kij``, the map ``ReLU(sum_k alpha_k A_k)`` upsampled to the image
  (bilinear, pixel centres aligned).  ``plus=True`` is Grad-CAM++ (Chattopadhay et al.
  2018, in its exponential-score form): ``alpha_k = sum_ij w_kij ReLU(G_kij)``,
  ``w = G^2 / (2 G^2 + sum_ab A_kab G^3)``.
- :class:`GuidedBackprop` and :class:`Deconvnet`: the input gradient with the ReLUs'
  backward changed (:mod:`protoedit.explain.backward_steps`); the map is ``max_c |g|``.
- :class:`GuidedGradCAM`: guided backpropagation times the upsampled Grad-CAM map.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from protoedit.errors import InputError
from protoedit.explain.attribution import Attribution, Gradient, _Explained
from protoedit.explain.explainer import SessionSource, WeightsSource
from protoedit.explain.inputs import InputSource, NetSource
from protoedit.explain.objectives import Unit
from protoedit.explain.preprocess import Preprocess
from protoedit.explain.saliency_maps import DEFAULT_CHUNK, Saliency
from protoedit.explain.session import DEFAULT_TIMEOUT, CaffeSession
from protoedit.net.view import NetView
from protoedit.rewrites import LossHead

Array = npt.NDArray[np.float32]
Float64 = npt.NDArray[np.float64]


def upsample(cam: npt.NDArray[Any], height: int, width: int) -> Float64:
    """``cam`` (h x w) resized to ``height`` x ``width`` bilinearly, pixel centres aligned
    (source coordinate ``(y + 1/2) h / height - 1/2``, clamped at the edges)."""
    small = np.asarray(cam, dtype=np.float64)

    def axis(size: int, out: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], Float64]:
        where = np.clip((np.arange(out) + 0.5) * size / out - 0.5, 0, size - 1)
        low = np.floor(where).astype(np.intp)
        high = np.minimum(low + 1, size - 1)
        return low, high, where - low

    y0, y1, fy = axis(small.shape[0], height)
    x0, x1, fx = axis(small.shape[1], width)
    top = small[y0][:, x0] * (1 - fx) + small[y0][:, x1] * fx
    bottom = small[y1][:, x0] * (1 - fx) + small[y1][:, x1] * fx
    out: Float64 = top * (1 - fy)[:, None] + bottom * fy[:, None]
    return out


def cam_weights(activation: Float64, gradient: Float64, plus: bool) -> Float64:
    """Per-channel weights from ``activation`` and ``gradient`` (C x h x w each)."""
    if not plus:
        weights: Float64 = gradient.mean(axis=(1, 2))
        return weights
    square = gradient**2
    denominator = 2 * square + activation.sum(axis=(1, 2))[:, None, None] * gradient**3
    safe = np.where(denominator != 0, denominator, 1.0)
    share = np.where(denominator != 0, square / safe, 0.0)
    plus_weights: Float64 = (share * np.maximum(gradient, 0)).sum(axis=(1, 2))
    return plus_weights


def class_activation_map(activation: Float64, gradient: Float64, plus: bool = False) -> Float64:
    """``ReLU(sum_k alpha_k A_k)`` at the layer's resolution (h x w)."""
    weights = cam_weights(activation, gradient, plus)
    cam: Float64 = np.maximum(np.tensordot(weights, activation, axes=1), 0)
    return cam


class GradCAM(Attribution):
    """Grad-CAM (``plus``: Grad-CAM++) of ``head`` at the spatial blob ``layer`` (a layer or
    blob name, as ``target`` is spelled).  :attr:`Saliency.layer_map` holds the map at the
    layer's resolution, :attr:`Saliency.map` upsampled to the image."""

    name = "gradcam"

    def __init__(
        self,
        net: NetSource,
        *,
        weights: WeightsSource,
        head: LossHead | Unit,
        layer: str,
        plus: bool = False,
        target: str | None = None,
        after_inplace: bool = False,
        target_channels: int | None = None,
        preprocess: Preprocess | None = None,
        chunk: int = DEFAULT_CHUNK,
        timeout: float = DEFAULT_TIMEOUT,
        session: SessionSource | None = None,
        allow_python_layers: bool = False,
        strict_weights: bool = False,
    ) -> None:
        super().__init__(
            net,
            weights=weights,
            head=head,
            target=target,
            after_inplace=after_inplace,
            target_channels=target_channels,
            preprocess=preprocess,
            chunk=chunk,
            timeout=timeout,
            session=session,
            allow_python_layers=allow_python_layers,
            strict_weights=strict_weights,
        )
        assert self.doc is not None
        try:
            self.layer = NetView(self.doc).resolve(layer).blob
        except InputError as exc:
            raise InputError(
                f"Grad-CAM's layer: {exc.message} (in the net made for the target "
                f"'{self.target}': the layer must lie below it)"
            ) from None
        self.plus = plus
        if plus:
            self.name = "gradcam++"

    def maps(self, session: CaffeSession, name: str, x: Array) -> tuple[float, Float64, Float64]:
        """f(x), the input gradient and the map at the layer's resolution, in one request."""
        answer = session.run(
            {name: x[None]},
            backward=True,
            param_grads=False,
            diffs=[self.layer],
            blobs=(self.layer,),
        )
        activation = answer["blobs"][self.layer][0].astype(np.float64)
        if activation.ndim != 3:
            raise InputError(
                f"Grad-CAM needs a spatial layer (C x H x W per image); '{self.layer}' is "
                f"{' x '.join(map(str, activation.shape))}"
            )
        diffs = answer["diffs"]
        gradient = diffs.get(self.layer + "/after", diffs.get(self.layer))[0].astype(np.float64)
        cam = class_activation_map(activation, gradient, self.plus)
        return float(answer["loss"]), answer["inputs"][name][0].astype(np.float64), cam

    def attribute(self, image: InputSource) -> Saliency:
        """The class activation map of ``image`` (see :meth:`Attribution.attribute`)."""
        name, x = self.blob(image)
        session = self.session()
        value, gradient, cam = self.maps(session, name, x)
        result = self._result(self.name, x, value, _Explained(gradient, 1), session)
        result.layer, result.layer_map = self.layer, cam.astype(np.float32)
        result.map = upsample(cam, x.shape[1], x.shape[2]).astype(np.float32)
        return result


class GuidedBackprop(Gradient):
    """Guided backpropagation: the input gradient with each ReLU passing only positive
    gradients where its input was positive.  Only layers of type ReLU change (a net without
    any gets a warning: the map is then the plain gradient's)."""

    name = "guided"
    rule = "guided"

    def warnings(self) -> list[str]:
        """The weights' warnings, and one when no ReLU lies on the path."""
        from protoedit.document import loads

        out = super().warnings()
        doc = self.doc if self.doc is not None else loads(self.net_text)
        relus = [info for info in NetView(doc).layers if info.type == "ReLU"]
        leaky = [info.name for info in relus if info.param.relu_param.negative_slope]
        if leaky and self.rule == "guided":  # the deconvnet rule ignores the slope
            out.append(
                f"ReLU layer '{leaky[0]}' is leaky (negative_slope): {self.name} keeps its "
                "slope for negative inputs"
            )
        if not relus:
            out.append(
                f"no ReLU layer on the path to '{self.target}': {self.name} changes nothing, "
                "the map is the plain gradient's"
            )
        return out

    def _explain(
        self, session: CaffeSession, name: str, x: Array, prepared: Array | None, first: bool
    ) -> tuple[float, _Explained]:
        answer = session.run({name: x[None]}, backward=True, param_grads=False, relu=self.rule)
        gradient = answer["inputs"][name][0].astype(np.float64)
        return float(answer["loss"]), _Explained(gradient, 1)


class Deconvnet(GuidedBackprop):
    """The deconvnet: each ReLU passes the positive part of its gradient, wherever its
    input was."""

    name = "deconvnet"
    rule = "deconvnet"


class GuidedGradCAM(GradCAM):
    """Guided Grad-CAM: guided backpropagation (C x H x W) times the upsampled Grad-CAM
    map; the map is ``max_c |product|``, :attr:`Saliency.gradient` the product."""

    name = "guided-gradcam"

    def attribute(self, image: InputSource) -> Saliency:
        """Two requests: Grad-CAM's, then a guided backward pass."""
        name, x = self.blob(image)
        session = self.session()
        value, _, cam = self.maps(session, name, x)
        answer = session.run({name: x[None]}, backward=True, param_grads=False, relu="guided")
        guided = answer["inputs"][name][0].astype(np.float64)
        product = guided * upsample(cam, x.shape[1], x.shape[2])[None]
        result = self._result(self.name, x, value, _Explained(product, 2), session)
        result.layer, result.layer_map = self.layer, cam.astype(np.float32)
        return result
