"""A handler of the Caffe worker, for the tests: does an aux net's loss equal the target activation?

Loaded in a warm worker (``Session(pythonpath=[ROOT]).request("tests.caffe_proof", "prove",
**request)``), so the proofs of many nets share one Caffe import.

For one original net (a channel head, or with ``head: unit`` the unit at the centre of that
channel): seeded random weights (saved as a .caffemodel), a seeded input at
batch 2; for each target layer and channel, the expected value is the mean of that channel
of the layer's output from a forward of the *original* net stopped at that layer (so before
any in-place layer), and the net made by ``protoedit.rewrites.aux`` (or, with ``rewrite``
``add_loss``, by force_backward and add_loss on the whole net) must report it as its loss
(within the float32 error of a mean), with a finite, non-zero input gradient.  With
``finite_differences`` (a list of steps), the loss is also probed by central differences
along the gradient's direction and random ones.
In a worker, because Caffe aborts its whole process on a failed CHECK.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import caffe
import numpy as np

from protoedit import ProtoeditError, load
from protoedit.rewrites import LOSS_TOP, LossHead, add_loss, aux, force_backward
from protoedit.validate.child import randomize_params

FD_RANDOM_DIRECTIONS = 8
FLOAT32_UNIT_ROUNDOFF = 2.0**-24


def _prepare(net: caffe.Net, batch: int) -> str:
    """Reshape the (single) input to ``batch`` items; return its name."""
    name = net.inputs[0]
    shape = list(net.blobs[name].data.shape)
    shape[0] = batch
    net.blobs[name].reshape(*shape)
    net.reshape()
    return str(name)


def prove(request: dict[str, Any], note: Callable[[str, Any], None]) -> dict[str, Any]:
    """The worker's operation: one result per target (see the module docstring)."""
    work = Path(tempfile.mkdtemp(prefix="protoedit-proof-"))
    try:
        return {"results": list(_results(request, work))}
    finally:
        shutil.rmtree(work, ignore_errors=True)


HANDLERS = {"prove": prove}


def _results(request: dict[str, Any], work: Path) -> Iterator[dict[str, object]]:
    caffe.set_mode_cpu()
    original = caffe.Net(request["net"], caffe.TEST)
    randomize_params(original, np.random.default_rng(request["seed"]))
    data = _prepare(original, request.get("batch", 2))
    x = (
        np.random.default_rng(request["seed"] + 1)
        .standard_normal(original.blobs[data].data.shape)
        .astype(np.float32)
    )
    weights = work / "weights.caffemodel"
    original.save(str(weights))
    unit = request.get("head") == "unit"
    for target, channel in request["targets"]:
        result: dict[str, object] = {"target": target, "channel": channel}
        try:
            doc = load(request["net"], schema=request.get("schema"))
            head = LossHead("unit" if unit else "channel", channel)
            if request.get("rewrite") == "add_loss":  # the full net, head on the pre-activation
                force_backward(doc)
                add_loss(doc, target, head)
            else:
                aux(doc, target, head)
        except ProtoeditError as exc:
            yield result | {"status": "refused", "reason": str(exc).splitlines()[0]}
            continue
        path = work / f"aux_{len(os.listdir(work))}.prototxt"
        doc.save(path)
        original.blobs[data].data[...] = x
        original.forward(end=target)
        top = original.top_names[target][0]
        activation = original.blobs[top].data[:, channel].astype(np.float64)
        if unit:  # the centre position of each spatial axis
            activation = activation[tuple([slice(None)] + [s // 2 for s in activation.shape[1:]])]
        expected = float(activation.mean())
        net = caffe.Net(str(path), caffe.TEST, weights=str(weights))
        _prepare(net, x.shape[0])
        net.blobs[data].data[...] = x
        net.forward()
        loss = float(net.blobs[LOSS_TOP].data)
        net.backward()
        grad = net.blobs[data].diff.astype(np.float64)
        result |= {
            "loss": loss,
            "expected": expected,
            "grad_norm": float(np.linalg.norm(grad)),
            "grad_finite": bool(np.isfinite(grad).all()),
            "layers": len(net.layers),
        }
        if request.get("finite_differences"):
            scale = float(np.abs(activation).mean())
            result["finite_differences"] = _finite_differences(
                net, data, x, grad, scale, request["finite_differences"]
            )
        close = abs(loss - expected) <= _mean_error_bound(activation)
        ok = close and result["grad_finite"] and result["grad_norm"] > 0
        yield result | {"status": "passed" if ok else "failed"}


def _mean_error_bound(values: np.ndarray) -> float:
    """How far Caffe's float32 mean of ``values`` may be from the exact one.

    The aux net computes the target as the original net does (same layers, same order, same
    BLAS), so only the head's reduction differs: a float32 sum of n terms is off by at most
    ``(n - 1) u sum|a|`` in any order, and scaling by 1/n adds two roundings of the result.
    """
    n = values.size
    mean = float(values.mean())
    return ((n - 1) * float(np.abs(values).mean()) + 2 * abs(mean)) * FLOAT32_UNIT_ROUNDOFF


def _finite_differences(
    net: caffe.Net, data: str, x: np.ndarray, grad: np.ndarray, scale: float, steps: list[float]
) -> list[dict[str, object]]:
    """Central differences of the loss along the gradient's direction and seeded random ones.

    For each unit direction ``d`` and step ``h`` the loss is evaluated at ``x +- h d`` and
    ``x +- 2h d``, in float32 as Caffe computes it.  The analytic side is ``grad . (x+ - x-)
    / 2h`` with the perturbed inputs as actually rounded to float32.  ``constant`` says the
    input gradient was bit-identical at all four points: in a piecewise-linear net (ReLU, max
    pooling) the segment then lies in one linear piece, with no kink crossed.
    """
    flat_grad = grad.reshape(-1).astype(np.float64)
    rng = np.random.default_rng(7)
    directions = [("gradient", flat_grad / np.linalg.norm(flat_grad))]
    for number in range(FD_RANDOM_DIRECTIONS):
        d = rng.standard_normal(flat_grad.size)
        directions.append((f"random {number}", d / np.linalg.norm(d)))
    x64 = x.reshape(-1).astype(np.float64)
    probes = []
    for name, d in directions:
        for step in steps:
            numeric, analytic, losses, constant = [], [], [abs(scale)], True
            for h in (step, 2 * step):
                values = []
                points = [(x64 + sign * h * d).astype(np.float32) for sign in (1, -1)]
                for point in points:
                    net.blobs[data].data[...] = point.reshape(x.shape)
                    net.forward()
                    net.backward()
                    values.append(float(net.blobs[LOSS_TOP].data))
                    constant &= bool(np.array_equal(net.blobs[data].diff, grad))
                losses += [abs(v) for v in values]
                numeric.append((values[0] - values[1]) / (2 * h))
                moved = points[0].astype(np.float64) - points[1].astype(np.float64)
                analytic.append(float(flat_grad @ moved) / (2 * h))
            probes.append(
                {
                    "direction": name,
                    "step": step,
                    "analytic": analytic[0],
                    "numeric": numeric[0],
                    "numeric_2h": numeric[1],
                    "loss_scale": max(losses),
                    "constant": constant,
                }
            )
    return probes
