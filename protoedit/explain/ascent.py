"""Gradient ascent steps on a net's input, run inside the Caffe worker (``ascend`` requests).

The net is the visualisation net of :mod:`protoedit.explain.vis_net`: its loss is the sum of
a per-element mask times the target (``post``) and, for objectives that are dead at the
moment, a mask on the value before the target's ReLU (``pre``).  Element ``n`` of the batch
optimises its own objective (a weighted sum of units) because its mask row weighs only
those units.  Every step: jitter the
image (a tile to repeat: rolled anywhere, so it grows periodic), forward, backward, undo the
jitter on the gradient, normalise it by its mean absolute
value (per element), step, then the regularisers after Yosinski et al. (2015): L2 decay, a
Gaussian blur every few steps, zeroing pixels of small norm or small contribution, and
clipping to the valid pixel range.  Zero in blob space is the mean colour, so "zeroing" a
pixel paints it grey.

Only numpy and scipy are used here (scipy comes with pycaffe's own dependencies); the random
stream of step ``t`` is seeded by ``(seed, t)``, so a run is reproducible however it is cut
into requests.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from protoedit.explain.settings import StepSettings

Array = npt.NDArray[np.float32]
#: One term of an objective: weight, channel, position (None: the channel's mean).
Term = tuple[float, int, tuple[int, ...] | None]
_TINY = 1e-12


def unit_mask(shape: tuple[int, ...], objectives: list[tuple[Term, ...]]) -> Array:
    """Mask rows: element ``n`` weighs only its objective's units (a channel mean over
    positions, or one position, times the term's weight) of a blob of ``shape``; the mask
    is N x C x [positions when some term names one]."""
    full = any(position is not None for terms in objectives for _, _, position in terms)
    spatial = tuple(shape[2:])
    mask = np.zeros((len(objectives), shape[1], *spatial) if full else (len(objectives), shape[1]))
    count = float(np.prod(spatial)) if spatial else 1.0
    for n, terms in enumerate(objectives):
        for weight, channel, position in terms:
            if position is not None:
                mask[(n, channel, *position)] += weight
            else:
                mask[n, channel] += weight / count
    return mask.astype(np.float32)


def objectives(values: Array, mask: Array) -> npt.NDArray[np.float64]:
    """Per element: the masked sum of ``values`` (its unit's activation), in float64; only
    the channels a mask row weighs are read (one per element: this runs every step)."""
    n = values.shape[0]
    result = np.zeros(n, dtype=np.float64)
    for row in range(n):
        for channel in np.flatnonzero(mask[row].reshape(mask.shape[1], -1).any(axis=1)):
            plane = values[row, channel].astype(np.float64)
            weights = mask[row, channel]
            result[row] += float((plane * weights).sum() if weights.ndim else plane.sum() * weights)
    return result


def _percentile_zero(x: Array, score: npt.NDArray[Any], percentile: float) -> None:
    """Set the pixels (all channels) whose per-element ``score`` is below ``percentile``."""
    n = x.shape[0]
    flat = score.reshape(n, -1)
    threshold = np.percentile(flat, percentile, axis=1).reshape(n, *([1] * (score.ndim - 1)))
    x *= (score >= threshold)[:, None].astype(np.float32)


def regularise(
    x: Array, gradient: Array, step: int, settings: StepSettings, *, periodic: bool = False
) -> None:
    """The regularisers after one step, in place: decay, blur, small norm/contribution, clip
    (a ``periodic`` image, a tile to repeat, is blurred across its wrap)."""
    from scipy import ndimage  # type: ignore[import-untyped]

    decay = settings.decay
    if decay:
        x *= np.float32(1.0 - decay)
    radius, every = settings.blur_radius, settings.blur_every
    if radius > 0 and every > 0 and (step + 1) % every == 0 and x.ndim == 4:
        mode = "wrap" if periodic else "nearest"
        x[...] = ndimage.gaussian_filter(x, sigma=(0, 0, radius, radius), mode=mode)
    spatial = x.ndim == 4
    if spatial and settings.norm_percentile > 0:
        _percentile_zero(x, np.sqrt((x * x).sum(axis=1)), settings.norm_percentile)
    if spatial and settings.contribution_percentile > 0:
        contribution = np.abs((x * gradient).sum(axis=1))
        _percentile_zero(x, contribution, settings.contribution_percentile)
    lo = np.asarray(settings.low, dtype=np.float32).reshape(1, -1, *([1] * (x.ndim - 2)))
    hi = np.asarray(settings.high, dtype=np.float32).reshape(1, -1, *([1] * (x.ndim - 2)))
    np.clip(x, lo, hi, out=x)


def _objectives(request: dict[str, Any]) -> list[tuple[Term, ...]]:
    return [
        tuple((float(w), int(c), tuple(p) if p is not None else None) for w, c, p in terms)
        for terms in request["objectives"]
    ]


def _set_inputs(net: Any, request: dict[str, Any], x: Array, dead: list[bool]) -> Array:
    """Shape the image and mask blobs for ``x`` and fill the masks; the unit mask comes back.

    Live elements weigh the target.  A dead element weighs each of its units'
    pre-activations at the one position where it was highest in the last forward (the
    centre when there is none): the mean of a pre-activation can favour a black image even
    when one patch could fire, but its best position always leads towards firing.
    """
    data, units = net.blobs[request["input"]], _objectives(request)
    mask_blob, pre_mask = net.blobs[request["mask"]], request.get("pre_mask")
    mask_shape = tuple(int(d) for d in request["mask_shape"])
    pre_blob = net.blobs[request["pre"]] if pre_mask else None
    previous = None
    if pre_blob is not None and any(dead) and tuple(data.data.shape) == tuple(x.shape):
        previous = np.array(pre_blob.data)
    if tuple(data.data.shape) != tuple(x.shape) or tuple(mask_blob.data.shape) != mask_shape:
        # Scale checks only the mask's own axes: an N x C mask fits any spatial size.
        data.reshape(*x.shape)
        mask_blob.reshape(*mask_shape)
        if pre_mask:
            net.blobs[pre_mask].reshape(*mask_shape[:2])
        net.reshape()
    post_shape = tuple(net.blobs[request["post"]].data.shape)
    mask = unit_mask(post_shape, units)
    if not pre_mask or pre_blob is None:
        mask_blob.data[...] = mask
        return mask
    full = (len(units), *pre_blob.data.shape[1:])
    if tuple(net.blobs[pre_mask].data.shape) != full:
        net.blobs[pre_mask].reshape(*full)
        net.reshape()
    alive = np.asarray([not d for d in dead], np.float32).reshape(-1, *([1] * (mask.ndim - 1)))
    mask_blob.data[...] = mask * alive
    chosen = np.zeros(full, np.float32)
    for n, terms in enumerate(units):
        if not dead[n]:
            continue
        for weight, channel, position in terms:
            where = position
            if where is None:
                plane = previous[n, channel] if previous is not None else None
                if plane is not None and plane.size:
                    flat = np.unravel_index(int(np.argmax(weight * plane)), plane.shape)
                    where = tuple(int(i) for i in flat)
                else:
                    where = tuple(size // 2 for size in full[2:])
            chosen[(n, channel, *where)] += weight
    net.blobs[pre_mask].data[...] = chosen
    return mask


def ascend(net: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Run ``steps`` ascent steps from ``x``; the new image and each unit's activation.

    ``periodic``: ``x`` is a tile to be repeated; each step rolls it by a random offset over
    its whole extent, a multiple of ``period`` (the target's stride: the pattern stays in
    phase with it), undone on the gradient, so the tile's wrap is seen inside the net's view
    and the tile grows continuous across it (else the repeats show seams).

    ``dead`` flags the elements whose objective is zero everywhere: they follow the pre-activation
    (``pre``) while the unit stays dead.  With ``measure`` (or no steps) the final image is
    measured unjittered (one more forward); otherwise the activations are the last step's.
    """
    x = np.array(request["x"], dtype=np.float32)
    dead = [bool(d) for d in request["dead"]]
    settings: StepSettings = request["settings"]
    seed, start, steps = int(request["seed"]), int(request["start"]), int(request["steps"])
    jitter, rate, cap = settings.jitter, settings.step, settings.cap
    name, post, pre = request["input"], request["post"], request.get("pre")
    periodic = bool(request.get("periodic", False))
    period = max(1, int(request.get("period", 1)))  # a roll by multiples keeps stride phase
    shift = (len(x), *([1] * (x.ndim - 1)))
    values = pre_values = np.zeros(len(x))
    for step in range(start, start + steps):
        mask = _set_inputs(net, request, x, dead)
        rng = np.random.default_rng([seed, step])
        dy, dx = (
            (int(v) for v in rng.integers(-jitter, jitter + 1, size=2))
            if jitter and x.ndim == 4
            else (0, 0)
        )
        if periodic and x.ndim == 4:  # the tile's wrap moves anywhere: no seam when repeated
            dy += period * int(rng.integers(0, max(1, x.shape[2] // period)))
            dx += period * int(rng.integers(0, max(1, x.shape[3] // period)))
        net.blobs[name].data[...] = np.roll(x, (dy, dx), axis=(2, 3)) if dy or dx else x
        net.forward()
        net.backward()
        values = objectives(net.blobs[post].data, mask)
        if pre:
            pre_values = objectives(net.blobs[pre].data, mask)
            dead = [bool(v <= 0) for v in values]
        gradient = np.array(net.blobs[name].diff, dtype=np.float32)
        if dy or dx:
            gradient = np.roll(gradient, (-dy, -dx), axis=(2, 3))
        size = np.abs(gradient).reshape(len(x), -1).mean(axis=1)
        normalised = gradient / np.where(size > _TINY, size, 1.0).reshape(shift)
        if cap > 0:  # a few pixels with huge gradients must not jump to the range's ends
            np.clip(normalised, -cap, cap, out=normalised)
        x += (rate * normalised).astype(np.float32)
        regularise(x, gradient, step, settings, periodic=periodic)
    if request.get("measure", False) or not steps:
        mask = _set_inputs(net, request, x, dead)
        net.blobs[name].data[...] = x
        net.forward()
        values = objectives(net.blobs[post].data, mask)
        if pre:
            pre_values = objectives(net.blobs[pre].data, mask)
            dead = [bool(v <= 0) for v in values]
    return {
        "x": x,
        "activation": values.tolist(),
        "pre_activation": (pre_values if pre else values).tolist(),
        "dead": dead,
    }
