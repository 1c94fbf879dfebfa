"""Saliency methods by name: :func:`method_object` builds the method object for a name and
its options (an option that does not apply to the method is refused), :func:`saliency` is
one call of it."""

from __future__ import annotations

from typing import Any

from protoedit.errors import InputError, MissingArgumentError
from protoedit.explain import cam
from protoedit.explain.attribution import Attribution, Gradient, IntegratedGradients, SmoothGrad
from protoedit.explain.explainer import SessionSource, WeightsSource
from protoedit.explain.inputs import InputSource, NetSource
from protoedit.explain.objectives import Unit
from protoedit.explain.preprocess import Preprocess
from protoedit.explain.saliency_maps import (
    DEFAULT_CHUNK,
    DEFAULT_MAX_STEPS,
    DEFAULT_NOISE,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    LAYER_METHODS,
    METHODS,
    Saliency,
)
from protoedit.explain.session import DEFAULT_TIMEOUT
from protoedit.rewrites import LossHead


def method_object(
    net: NetSource,
    *,
    weights: WeightsSource,
    head: LossHead | Unit,
    target: str | None = None,
    method: str = "gradient",
    samples: int | None = None,
    noise: float | None = None,
    seed: int | None = None,
    steps: int | None = None,
    baseline: InputSource | None = None,
    layer: str | None = None,
    chunk: int = DEFAULT_CHUNK,
    preprocess: Preprocess | None = None,
    after_inplace: bool = False,
    target_channels: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    session: SessionSource | None = None,
    allow_python_layers: bool = False,
    strict_weights: bool = False,
) -> Attribution | SmoothGrad:
    """The method object for ``method`` (``gradient``,
    ``smoothgrad``: SmoothGrad over the gradient, ``integrated``; ``gradcam``, ``gradcam++``
    and ``guided-gradcam`` at ``layer``; ``guided``, ``deconvnet``): one call of
    :class:`Gradient`, :class:`SmoothGrad`, :class:`IntegratedGradients` or a method of
    :mod:`protoedit.explain.cam`, for ``head`` on ``target``.

    ``samples``, ``noise`` and ``seed`` apply to smoothgrad, ``steps`` and
    ``baseline`` to integrated, ``layer`` to the Grad-CAM methods: given to another method
    they are refused.  Integrated gradients without ``steps`` take as many as the
    completeness gap needs, from the default up to a cap.
    """
    if method not in METHODS:
        raise InputError(f"unknown method {method!r}: one of {', '.join(METHODS)}")
    options: dict[str, object] = {"samples": samples, "noise": noise, "seed": seed}
    options.update({"steps": steps, "baseline": baseline, "layer": layer})
    owner: dict[str, tuple[str, ...]] = {"samples": ("smoothgrad",), "noise": ("smoothgrad",)}
    owner["seed"] = ("smoothgrad",)
    owner.update({"steps": ("integrated",), "baseline": ("integrated",)})
    owner["layer"] = LAYER_METHODS
    for option, value in options.items():
        if value is not None and method not in owner[option]:
            names = owner[option]
            which = f"{names[0]} method" if len(names) == 1 else f"{', '.join(names)} methods"
            raise InputError(f"{option} applies to the {which} only, not to {method}")
    if method in LAYER_METHODS and layer is None:
        raise MissingArgumentError(
            f"{method} needs the layer whose maps it weighs", {"layer": None}
        )
    common: dict[str, Any] = {
        "weights": weights,
        "head": head,
        "target": target,
        "after_inplace": after_inplace,
        "target_channels": target_channels,
        "preprocess": preprocess,
        "chunk": chunk,
        "timeout": timeout,
        "session": session,
        "allow_python_layers": allow_python_layers,
        "strict_weights": strict_weights,
    }
    if method in LAYER_METHODS:
        assert layer is not None
        kind = cam.GuidedGradCAM if method == "guided-gradcam" else cam.GradCAM
        plus: dict[str, Any] = {"plus": method == "gradcam++"} if kind is cam.GradCAM else {}
        mapper: Attribution = kind(net, layer=layer, **plus, **common)
        return mapper
    if method in ("guided", "deconvnet"):
        rule = cam.GuidedBackprop if method == "guided" else cam.Deconvnet
        return rule(net, **common)
    if method == "integrated":
        return IntegratedGradients(
            net,
            steps=DEFAULT_STEPS if steps is None else steps,
            max_steps=DEFAULT_MAX_STEPS if steps is None else None,
            baseline=baseline,
            **common,
        )
    gradient = Gradient(net, **common)
    if method == "gradient":
        return gradient
    return SmoothGrad(
        gradient,
        samples=DEFAULT_SAMPLES if samples is None else samples,
        noise=DEFAULT_NOISE if noise is None else noise,
        seed=0 if seed is None else seed,
    )


def saliency(
    net: NetSource,
    *,
    image: InputSource,
    method: str = "gradient",
    **options: Any,
) -> Saliency:
    """The saliency map of ``image`` by ``method``: one call of :func:`method_object`'s
    object (every keyword of it is taken here).

    ``image`` is an image file (pixels, preprocessed by ``preprocess``), or a ``.npy`` or
    array holding the blob as fed to the net (C x H x W or 1 x C x H x W, already
    preprocessed).
    """
    with method_object(net, method=method, **options) as explainer:
        return explainer.attribute(image)
