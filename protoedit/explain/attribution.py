"""Attribution methods as objects, after Captum: prepared once for a net, a target and a head,
then :meth:`~Attribution.attribute` for image after image in one Caffe worker.

``f`` is the loss head of the aux net (a class logit, a channel, a unit; its weight
included), for one image.

- :class:`Gradient` (Simonyan et al. 2013): ``max over channels of |d f / d x|``.
- :class:`IntegratedGradients` (Sundararajan et al. 2017): ``(x - x') * mean_k grad f(x' +
  a_k (x - x'))`` by the midpoint rule, ``a_k = (k + 1/2) / steps``, from the baseline
  ``x'``; the map is the attributions summed over channels (signed), and they add up to
  ``f(x) - f(x')``.
- :class:`SmoothGrad` (Smilkov et al. 2017) wraps either: the method averaged over
  ``samples`` noisy copies ``x + N(0, sigma^2)``, ``sigma = noise * (max x - min x)``
  (seeded).  Over :class:`Gradient` the signed gradients are averaged, as in the paper, and
  the copies run as batches; over integrated gradients each copy's attributions are.

Path points and noisy copies run as batches (the worker reshapes the input blob to each),
``chunk`` at a time to bound memory.  :func:`saliency` is one call of one of them, by name;
an option that does not apply to the method named is refused (in
:mod:`protoedit.explain.methods`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import numpy as np
import numpy.typing as npt

from protoedit.arguments import number, whole
from protoedit.errors import InputError
from protoedit.explain.explainer import Explainer, SessionSource, WeightsSource
from protoedit.explain.inputs import InputSource, NetSource
from protoedit.explain.layer_gradients import prepare
from protoedit.explain.objectives import Unit, as_head
from protoedit.explain.preprocess import Preprocess
from protoedit.explain.saliency_maps import (
    DEFAULT_CHUNK,
    DEFAULT_NOISE,
    DEFAULT_SAMPLES,
    DEFAULT_STEPS,
    DEFAULT_TOLERANCE,
    Saliency,
    baseline_blob,
    logits_target,
    per_item_factor,
    single_input,
)
from protoedit.explain.session import DEFAULT_TIMEOUT, CaffeSession
from protoedit.rewrites import LossHead

Array = npt.NDArray[np.float32]
Float64 = npt.NDArray[np.float64]


def _at_least_one(**given: int) -> None:
    for name, value in given.items():
        whole(value, name, 1)


@dataclass
class _Explained:
    """One image's mean gradient, its attributions (integrated only) and the requests."""

    gradient: Float64
    requests: int
    attributions: Float64 | None = None
    baseline: Array | None = None
    baseline_value: float | None = None


class Attribution(Explainer):
    """The net rewritten for ``head`` on ``target`` (for a ``logit`` head the target defaults
    to the net's class scores: :func:`~protoedit.explain.saliency_maps.logits_target`), one
    input blob, and its Caffe worker.  ``head`` is a LossHead or a :class:`Unit`."""

    name = "attribution"

    def __init__(
        self,
        net: NetSource,
        *,
        weights: WeightsSource,
        head: LossHead | Unit,
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
        _at_least_one(chunk=chunk)
        self.head = as_head(head)
        if target is None:
            if self.head.kind != "logit":
                raise InputError("name the target layer (only a class head finds its own)")
            target = logits_target(net)
        self.target = target
        doc, report = prepare(
            net,
            target=target,
            head=self.head,
            after_inplace=after_inplace,
            target_channels=target_channels,
        )
        super().__init__(
            doc,
            report,
            weights=weights,
            timeout=timeout,
            session=session,
            allow_python_layers=allow_python_layers,
            strict_weights=strict_weights,
        )
        self.preprocess = preprocess or Preprocess()
        self.chunk = chunk

    def blob(self, image: InputSource) -> tuple[str, Array]:
        """The input blob's name and ``image`` as its C x H x W data."""
        return single_input(self.inputs, image, self.preprocess, "image")

    def attribute(self, image: InputSource) -> Saliency:
        """The saliency map of ``image``: an image file (pixels, preprocessed), or a ``.npy``
        or array holding the blob as fed (C x H x W or 1 x C x H x W)."""
        name, x = self.blob(image)
        prepared = self._prepare(image, x)
        session = self.session()
        value, explained = self._explain(session, name, x, prepared, first=True)
        return self._result(self.name, x, value, explained, session)

    def _prepare(self, image: InputSource, x: Array) -> Array | None:
        """What the method needs besides the image, read before the worker starts."""
        return None

    def _explain(
        self, session: CaffeSession, name: str, x: Array, prepared: Array | None, first: bool
    ) -> tuple[float, _Explained]:
        raise NotImplementedError

    def gradients_of(
        self, session: CaffeSession, name: str, points: Callable[[int, int], Array], count: int
    ) -> tuple[Float64, int]:
        """The mean over ``count`` batch items (made ``chunk`` at a time by ``points(start,
        stop)``) of each item's d f / d x; and the number of requests it took."""
        total: Float64 | None = None
        requests = 0
        for start in range(0, count, self.chunk):
            stop = min(count, start + self.chunk)
            answer = session.run({name: points(start, stop)}, backward=True, param_grads=False)
            requests += 1
            grads = answer["inputs"][name].astype(np.float64)
            summed = grads.sum(axis=0) * per_item_factor(self.head, stop - start)
            total = summed if total is None else total + summed
        assert total is not None
        return total / count, requests

    def _result(
        self,
        method: str,
        x: Array,
        value: float,
        explained: _Explained,
        session: CaffeSession,
        path_value: float | None = None,
    ) -> Saliency:
        gradient = explained.gradient.astype(np.float32)
        attributions = None
        if explained.attributions is not None:
            attributions = explained.attributions.astype(np.float32)
            saliency_map = attributions.sum(axis=0, dtype=np.float64).astype(np.float32)
        else:
            saliency_map = np.abs(gradient).max(axis=0)
        return Saliency(
            method=method,
            map=saliency_map,
            gradient=gradient,
            input=x,
            value=value,
            attributions=attributions,
            baseline=explained.baseline,
            baseline_value=explained.baseline_value,
            requests=explained.requests,
            path_value=path_value,
            target=self.target,
            preprocess=self.preprocess,
            warnings=self.warnings(),
            report=self.report,
        )


class Gradient(Attribution):
    """Saliency by the plain gradient: ``max over channels of |d f / d x|``."""

    name = "gradient"

    def _explain(
        self, session: CaffeSession, name: str, x: Array, prepared: Array | None, first: bool
    ) -> tuple[float, _Explained]:
        answer = session.run({name: x[None]}, backward=True, param_grads=False)
        gradient = answer["inputs"][name][0].astype(np.float64)
        return float(answer["loss"]), _Explained(gradient, 1)


class IntegratedGradients(Attribution):
    """Integrated gradients from ``baseline`` (an image file, ``.npy`` or array like the
    image; black when None) in ``steps`` midpoint-rule steps.

    The completeness gap is checked on every image: above ``tolerance`` (a fraction of
    ``f(x) - f(baseline)``) the steps double, up to ``max_steps`` (None: ``steps`` is kept),
    and a gap still above it is a warning naming the steps to try.  The result's ``steps``
    says how many were used."""

    name = "integrated"

    def __init__(
        self,
        net: NetSource,
        *,
        weights: WeightsSource,
        head: LossHead | Unit,
        target: str | None = None,
        steps: int = DEFAULT_STEPS,
        max_steps: int | None = None,
        tolerance: float = DEFAULT_TOLERANCE,
        baseline: InputSource | None = None,
        after_inplace: bool = False,
        target_channels: int | None = None,
        preprocess: Preprocess | None = None,
        chunk: int = DEFAULT_CHUNK,
        timeout: float = DEFAULT_TIMEOUT,
        session: SessionSource | None = None,
        allow_python_layers: bool = False,
        strict_weights: bool = False,
    ) -> None:
        _at_least_one(steps=steps)
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
        if max_steps is not None:
            whole(max_steps, "max_steps", steps)
        self.steps = steps
        self.max_steps = max_steps
        self.tolerance = number(tolerance, "tolerance", low=0.0, above=True)
        self.baseline = baseline

    def attribute(self, image: InputSource) -> Saliency:
        """The map of ``image`` (see :meth:`Attribution.attribute`), the steps doubled while
        the completeness gap is above the tolerance and ``max_steps`` allows."""
        name, x = self.blob(image)
        prepared = self._prepare(image, x)
        session = self.session()
        steps = self.steps
        value, explained = self._explain(session, name, x, prepared, first=True, steps=steps)
        share = self._share(value, explained)
        tried = [(steps, share)]
        while share is not None and share > self.tolerance and self.max_steps is not None:
            if 2 * steps > self.max_steps:
                break
            steps *= 2
            more = self._explain(session, name, x, prepared, first=False, steps=steps)[1]
            more.requests += explained.requests
            more.baseline_value = explained.baseline_value
            explained, share = more, self._share(value, more)
            tried.append((steps, share))
        result = self._result(self.name, x, value, explained, session)
        result.steps = steps
        result.steps_tried = tried
        if share is not None and share > self.tolerance:
            result.warnings.append(
                f"the completeness gap is {share:.1%} of f(image) - f(baseline) at {steps} "
                f"steps (over {self.tolerance:.0%}): the attributions are not to be trusted; "
                f"try {2 * steps} steps or more"
            )
        return result

    @staticmethod
    def _share(value: float, explained: _Explained) -> float | None:
        """|gap| / |f(x) - f(baseline)| (None when f does not change along the path)."""
        assert explained.attributions is not None and explained.baseline_value is not None
        delta = value - explained.baseline_value
        if delta == 0:
            return None
        return abs(float(np.sum(explained.attributions)) - delta) / abs(delta)

    def _prepare(self, image: InputSource, x: Array) -> Array | None:
        shape = (int(x.shape[0]), int(x.shape[1]), int(x.shape[2]))
        return baseline_blob(self.baseline, image, shape, self.preprocess)

    def _explain(
        self,
        session: CaffeSession,
        name: str,
        x: Array,
        prepared: Array | None,
        first: bool,
        steps: int | None = None,
    ) -> tuple[float, _Explained]:
        """f(x) by a forward pass, the path in chunks, and (once) f(baseline)."""
        assert prepared is not None
        base = prepared
        value = float(session.run({name: x[None]}, backward=False)["loss"])
        delta = x.astype(np.float64) - base
        steps = self.steps if steps is None else steps

        def on_path(start: int, stop: int) -> Array:
            alphas = (np.arange(start, stop, dtype=np.float64) + 0.5) / steps
            return (base[None] + alphas[:, None, None, None] * delta[None]).astype(np.float32)

        gradient, batches = self.gradients_of(session, name, on_path, steps)
        requests = 1 + batches
        baseline_value = None
        if first:
            baseline_value = float(session.run({name: base[None]}, backward=False)["loss"])
            requests += 1
        explained = _Explained(gradient, requests, delta * gradient, base, baseline_value)
        return value, explained


class SmoothGrad:
    """``method`` (a :class:`Gradient` or :class:`IntegratedGradients`) averaged over
    ``samples`` noisy copies of the image, ``noise`` times its range apart, seeded by
    ``seed``; it uses the method's net and worker."""

    def __init__(
        self,
        method: Gradient | IntegratedGradients,
        *,
        samples: int = DEFAULT_SAMPLES,
        noise: float = DEFAULT_NOISE,
        seed: int = 0,
    ) -> None:
        if not isinstance(method, Gradient | IntegratedGradients):
            raise InputError(
                f"SmoothGrad smooths a Gradient or IntegratedGradients, not {method!r}"
            )
        _at_least_one(samples=samples)
        number(noise, "noise", low=0.0)
        whole(seed, "seed", 0)
        self.method = method
        self.samples = samples
        self.noise = noise
        self.seed = seed

    @property
    def name(self) -> str:
        """``smoothgrad`` over the gradient, ``smoothgrad(integrated)`` over integrated."""
        inner = self.method
        return "smoothgrad" if isinstance(inner, Gradient) else f"smoothgrad({inner.name})"

    def attribute(self, image: InputSource) -> Saliency:
        """The smoothed saliency map of ``image`` (see :meth:`Attribution.attribute`)."""
        inner = self.method
        name, x = inner.blob(image)
        prepared = inner._prepare(image, x)
        session = inner.session()
        rng = np.random.default_rng(self.seed)
        sigma = self.noise * float(x.max() - x.min())
        shape = x.shape
        answer = session.run({name: x[None]}, backward=False, param_grads=False)
        value = float(answer["loss"])
        if isinstance(inner, Gradient):

            def noisy(start: int, stop: int) -> Array:
                draws = rng.standard_normal((stop - start, *shape))
                return (x[None] + sigma * draws).astype(np.float32)

            gradient, batches = inner.gradients_of(session, name, noisy, self.samples)
            smoothed = _Explained(gradient, 1 + batches)
            return inner._result(self.name, x, value, smoothed, session)
        total: _Explained | None = None
        ends = 0.0
        for sample in range(self.samples):
            copy = (x + sigma * rng.standard_normal(shape)).astype(np.float32)
            end, one = inner._explain(session, name, copy, prepared, first=sample == 0)
            ends += end
            if total is None:
                total = one
            else:
                assert total.attributions is not None and one.attributions is not None
                total.gradient = total.gradient + one.gradient
                total.attributions = total.attributions + one.attributions
                total.requests += one.requests
        assert total is not None and total.attributions is not None
        total.gradient = total.gradient / self.samples
        total.attributions = total.attributions / self.samples
        total.requests += 1
        path_value = ends / self.samples
        return inner._result(self.name, x, value, total, session, path_value=path_value)

    def session(self) -> CaffeSession:
        """The wrapped method's worker."""
        return self.method.session()

    def close(self) -> None:
        """Stop the wrapped method's worker."""
        self.method.close()

    def __enter__(self) -> SmoothGrad:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """As the wrapped method's: on Ctrl-C its worker is killed, not waited for."""
        self.method.__exit__(kind, value, traceback)
