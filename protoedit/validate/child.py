"""The child side of validation: load the net in pycaffe, run forward and backward, write facts.

The ``validate`` handler of a :mod:`protoedit.caffe` worker (which imported Caffe once and
serves net after net).  Caffe aborts the whole process on a failed CHECK, which is why this
runs in a child: the parent reads the glog line from its stderr when it dies.  Progress goes
to the parent as notes: ``stage`` (so it can say where a crash or a timeout happened),
``scan`` (the data layers, read if Caffe aborts while loading) and ``plan`` (how the net runs,
and the request to run again with should the worker die).  Python layers were let through by
the worker layer's gate; a worker that imported their modules serves no other net.
"""

from __future__ import annotations

import gc
import math
import re
import tempfile
from pathlib import Path
from typing import Any

from protoedit.caffe.child import Handler, Note
from protoedit.caffe.gate import mentions_python_layers
from protoedit.net.inputs import legacy_input_shapes
from protoedit.net.layers import PYTHON, is_a, is_data_layer, param_roles
from protoedit.net.state import NetState, layer_included
from protoedit.validate.netplan import GATE_PREFIX, batch_matters, gate_backward

_FORCE_BACKWARD = re.compile(r"\bforce_backward\s*:\s*true\b")


def _scan_net(text: str, param: Any, phase: str) -> dict[str, Any]:
    """Facts read without running Caffe: Python layers, data layers, ``force_backward``.

    ``param`` is the parsed net (None if protobuf could not parse ``text``).
    ``python_layers`` is a list of ``[layer, module, class]`` of the Python layers Caffe
    builds in ``phase`` (those the gate checked); ``data_layers`` names the layers that read
    files.
    """
    if param is None:
        # Caffe will report the syntax error itself; fall back to a textual scan here.
        python_layers = [["?", "", ""]] if mentions_python_layers(text) else []
        return {
            "python_layers": python_layers,
            "data_layers": [],
            "force_backward": bool(_FORCE_BACKWARD.search(text)),
        }
    return {
        "python_layers": [
            [layer.name, layer.python_param.module, layer.python_param.layer]
            for layer in param.layer
            if is_a(layer.type, PYTHON) and layer_included(layer, NetState(phase))
        ],
        "data_layers": [
            layer.name for layer in [*param.layer, *param.layers] if is_data_layer(layer)
        ],
        "force_backward": param.force_backward,
    }


def _python_layer_problem(python_layers: list[list[str]]) -> str:
    """Import each Python layer's module and class as Caffe will; the first failure, if any.

    Caffe's own failure reaches Python as an opaque ``SystemError``; this names the cause.
    """
    import importlib

    for name, module, cls in python_layers:
        if not module:
            continue
        try:
            getattr(importlib.import_module(module), cls)
        except Exception as exc:
            return f"Python layer {name!r} cannot be loaded: {type(exc).__name__}: {exc}"
    return ""


def _zero_gradient_cause(
    force_backward: bool, losses: dict[str, float], zero_weights: list[str]
) -> tuple[str, str]:
    """Why the input gradient is most likely zero, in a user's terms, and its cause code."""
    causes, code = [], ""
    if not force_backward:
        causes.append(
            "the net does not set 'force_backward: true', so Caffe never backpropagates "
            "into input blobs"
        )
        code = "no_force_backward"
    if not losses:
        causes.append("no top has a loss_weight, so every top diff is zero (add a loss head)")
        code = "no_loss"
    if not causes and zero_weights:
        shown = ", ".join(zero_weights[:3]) + (", ..." if len(zero_weights) > 3 else "")
        causes.append(
            f"the weights of {len(zero_weights)} layer(s) ({shown}) are all zero: no weights "
            "were given and their fillers are Caffe's default, constant 0"
        )
        code = "zero_weights"
    if not causes:
        causes.append(
            "the loss does not depend on this input here (a Softmax output seeded uniformly, "
            "a dead ReLU path, or a loss that ignores the input)"
        )
    return "; and ".join(causes), code


def _over_budget(net: Any, budget: int) -> str:
    """A reason if data and diff of every blob and parameter would not fit in ``budget``."""
    from protoedit.validate.report import format_size

    needed = sum(b.count for b in net.blobs.values()) * 4 * 2
    needed += sum(p.count for layer in net.layers for p in layer.blobs) * 4 * 2
    if not budget or needed <= budget:
        return ""
    return (
        f"over the memory budget: the net's blobs and parameters need {format_size(needed)}, "
        f"the budget is {format_size(budget)}"
    )


def _zero_weight_layers(net: Any) -> list[str]:
    """Layers whose weights (a first parameter blob of two or more axes) are exactly zero.

    Convolution and InnerProduct weights filled by Caffe's default filler are zero, and the
    input gradient through any one of them is zero too; biases, BatchNorm statistics and
    Scale multipliers (default 1) are not weights here.
    """
    import numpy as np

    return [
        name
        for name, layer in zip(net._layer_names, net.layers, strict=True)
        if layer.blobs and layer.blobs[0].data.ndim >= 2 and not np.any(layer.blobs[0].data)
    ]


def randomize_params(net: Any, rng: Any, skip: str | None = None) -> None:
    """Seeded random parameters, so a deploy net without weights computes something non-trivial.

    Weights are He-normal over their fan-in; 1-D blobs (biases, slopes) small noise around 0,
    multipliers (role ``scale``) around 1; BatchNorm gets mean 0, variance 1 and scale factor
    1.  Roles come from the layer catalogue.  Layers whose names start with ``skip`` are left
    alone (and draw no random numbers).
    """
    for name, layer in zip(net._layer_names, net.layers, strict=True):
        if skip is not None and name.startswith(skip):
            continue
        bottoms = len(net.bottom_names.get(name, []))
        roles = param_roles(layer.type, len(layer.blobs), bottoms)
        for role, blob in zip(roles, layer.blobs, strict=True):
            data = blob.data  # float32, drawn into in place: no float64 copy of the net
            if role in _FIXED:
                data[...] = _FIXED[role]
            elif data.ndim >= 2:
                rng.standard_normal(dtype=data.dtype, out=data)
                data *= (2.0 / max(1, blob.count // data.shape[0])) ** 0.5
            else:
                rng.standard_normal(dtype=data.dtype, out=data)
                data *= 0.1
                data += 1.0 if role == "scale" else 0.0


#: Random weights give these roles a fixed value: BatchNorm's statistics of a unit normal.
_FIXED = {"mean": 0.0, "variance": 1.0, "scale_factor": 1.0}


def _save_gradient(folder: Path, blob: str, diff: Any) -> None:
    """Write an input gradient as ``BLOB.npy`` and as a picture, ``BLOB.png``."""
    import numpy as np

    from protoedit.picture import gradient_picture, write_png

    stem = re.sub(r"[^\w.-]", "_", blob)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        np.save(folder / f"{stem}.npy", diff)
        write_png(folder / f"{stem}.png", gradient_picture(diff))
    except OSError as exc:
        raise _Refused(f"cannot write the gradients to {folder}: {exc.strerror or exc}") from exc


class _Refused(Exception):
    """A run that stops with an error status; the message is the reason."""


def run(request: dict[str, Any], note: Note) -> dict[str, Any]:
    """Do the validation described by ``request``; return the result fields."""
    import caffe
    import caffe.proto.caffe_pb2 as caffe_pb2
    import numpy as np

    net_path = request["net"]
    text = Path(net_path).read_text(encoding="utf-8", errors="replace")
    param = _parse(text, caffe_pb2)
    if param is not None and not len(param.layer) and not len(param.layers):
        return {"status": "error", "reason": "the net has no layers: Caffe has nothing to run"}
    facts = _scan_net(text, param, request["phase"])
    note("scan", {"data_layers": facts["data_layers"]})
    force_backward = facts["force_backward"]
    python_layers = facts["python_layers"]
    result: dict[str, Any] = {"force_backward": force_backward}
    note("stage", "load")
    if python_layers:  # the gate let them through, and put their folder on sys.path
        problem = _python_layer_problem(python_layers)
        if problem:
            return result | {"status": "error", "reason": problem}

    caffe.set_mode_cpu()
    caffe.set_random_seed(request["seed"])
    phase = caffe.TEST if request["phase"] == "TEST" else caffe.TRAIN
    given: dict[str, str] = request["inputs"]
    with tempfile.TemporaryDirectory(prefix="protoedit-validate-") as tmp:
        load_path, result["param_gradients"], loaded = _backward_plan(param, request, Path(tmp))
        plan: dict[str, Any] = {"param_gradients": result["param_gradients"]}
        note("plan", dict(plan))
        # Built at the declared shapes first: Caffe checks every layer's setup there.
        net = caffe.Net(load_path, phase)
        unknown = sorted(set(given) - set(net.inputs))
        if unknown:
            return result | {
                "status": "error",
                "reason": f"inputs name {', '.join(unknown)}, but the net's input blobs are: "
                f"{', '.join(net.inputs) or 'none'}",
            }
        declared = {name: list(net.blobs[name].shape) for name in net.inputs}
        if _set_batch(net, param, request["phase"], request.get("batch"), set(given), result):
            net.reshape()  # shapes only: Caffe allocates on first use
        # The shapes a user reads in the report are those of the declared extent.
        shapes = {name: list(b.shape) for name, b in net.blobs.items()}
        smaller = _set_extent(net, text, request, result, net_path)
        running = {name: list(net.blobs[name].shape) for name in net.inputs}
        if running != declared and loaded is not None:
            # A blob keeps the memory of its largest shape: build the net again at the shapes
            # it runs at, so that it takes only what they need. (Should Caffe have read a
            # text that protobuf could not, the net runs reshaped in place.)
            if smaller:
                plan["fallback"] = {"extent": "declared"}  # should Caffe abort on them
                note("plan", dict(plan))
            note("stage", "reshape")
            rebuilt = Path(tmp) / "run.prototxt"
            changed = {n: shape for n, shape in running.items() if shape != declared[n]}
            rebuilt.write_text(_with_input_shapes(loaded, changed), encoding="utf-8")
            del net
            gc.collect()
            net = caffe.Net(str(rebuilt), phase, weights=request["weights"])
        elif request["weights"]:
            net.copy_from(request["weights"])

    note("stage", "inputs")
    rng = np.random.default_rng(request["seed"])
    # The backward gate adds 0 (forward stays the same) and draws no random numbers, so the
    # other layers get the same random values as without it.
    layers = list(zip(net._layer_names, net.layers, strict=True))
    if request["random_weights"]:
        randomize_params(net, np.random.default_rng([request["seed"], 1]), skip=GATE_PREFIX)
    for name, layer in layers:
        if name.startswith(GATE_PREFIX):
            layer.blobs[0].data[...] = 0.0
    arrays = {name: np.load(path).astype(np.float32) for name, path in given.items()}
    reshaped = False
    for name, array in arrays.items():
        if tuple(array.shape) != tuple(net.blobs[name].shape):
            net.blobs[name].reshape(*array.shape)
            reshaped = True
    if reshaped:  # given inputs keep the declared extent: the shapes to report are these
        net.reshape()
        shapes = {name: list(b.shape) for name, b in net.blobs.items()}
    # Caffe allocates blob memory lazily, on first use: check the budget before touching any.
    over = _over_budget(net, request["memory_limit"])
    if over:
        return result | {"status": "error", "cause": "over_budget", "reason": over}
    for name in net.inputs:
        blob = net.blobs[name]
        array = arrays.get(name)
        if array is None:
            array = rng.standard_normal(blob.data.shape).astype(np.float32)
        blob.data[...] = array

    note("stage", "forward")
    net.forward()
    weights = net.blob_loss_weights
    losses = {
        name: float(weights[name] * np.sum(net.blobs[name].data, dtype=np.float64))
        for name in net.blobs
        if weights.get(name, 0.0) != 0.0
    }
    note("stage", "backward")
    net.backward()

    gradients = []
    save_dir = request.get("save_gradients")
    saved = []
    for name in net.inputs:
        diff = net.blobs[name].diff
        if save_dir:
            _save_gradient(Path(save_dir), name, diff)
            saved.append(f"{name} {'x'.join(map(str, diff.shape))}")
        finite = bool(np.isfinite(diff).all())
        norm = float(np.linalg.norm(diff.astype(np.float64))) if finite else math.inf
        gradients.append(
            {"blob": name, "norm": norm, "finite": finite, "nonzero": bool(np.any(diff != 0))}
        )
    result |= {
        "blobs": shapes,
        "losses": losses,
        "input_gradients": gradients,
        "saved_gradients": f"{save_dir}: {', '.join(saved)}" if save_dir else "",
    }
    bad_losses = [name for name, value in losses.items() if not math.isfinite(value)]
    not_finite = [g["blob"] for g in gradients if not g["finite"]]
    zero = [g["blob"] for g in gradients if g["finite"] and not g["nonzero"]]
    if bad_losses:
        return result | {
            "status": "failed",
            "reason": f"loss is not finite: {', '.join(bad_losses)}",
        }
    if not_finite:
        return result | {
            "status": "failed",
            "reason": f"input gradient is not finite: {', '.join(not_finite)}",
        }
    if zero:
        why, cause = _zero_gradient_cause(force_backward, losses, _zero_weight_layers(net))
        return result | {
            "status": "failed",
            "cause": cause,
            "reason": f"input gradient is zero for {', '.join(zero)}: {why}",
        }
    if not gradients:
        return result | {
            "status": "valid",
            "reason": "forward and backward ran; the net has no input blobs",
        }
    return result | {
        "status": "valid",
        "reason": "forward and backward ran; every input gradient is finite and non-zero",
    }


def _parse(text: str, caffe_pb2: Any) -> Any:
    """The net as pycaffe's NetParameter, or None when protobuf cannot parse it (Caffe will
    then say why itself)."""
    from google.protobuf import text_format

    try:
        return text_format.Parse(text, caffe_pb2.NetParameter())
    except text_format.ParseError:
        return None


def _backward_plan(param: Any, request: dict[str, Any], tmp: Path) -> tuple[str, str, Any]:
    """The file Caffe loads, what happens to parameter gradients (``skipped``, or why they are
    computed, see :func:`~protoedit.validate.netplan.gate_backward`; "" without
    ``force_backward``: backward then computes what training would) and the loaded file's
    ``NetParameter`` (None when protobuf could not parse the net)."""
    if param is None or not param.force_backward:
        return request["net"], "", param
    if not request.get("skip_param_gradients", True):
        return request["net"], "computed: asked for", param
    from google.protobuf import text_format

    gated = type(param)()
    gated.CopyFrom(param)
    why = gate_backward(gated)
    if why:
        return request["net"], f"computed: {why}", param
    path = tmp / "gated.prototxt"
    path.write_text(text_format.MessageToString(gated), encoding="utf-8")
    return str(path), "skipped", gated


def _set_batch(
    net: Any, param: Any, phase: str, batch: int | None, given: set[str], result: dict[str, Any]
) -> bool:
    """Reshape the generated inputs to ``batch`` (None: keep the declared one) unless a layer
    makes the batch matter; record ``batch``, ``declared_batch``, ``batch_note``; True when
    something was reshaped."""
    shapes = [tuple(net.blobs[name].shape) for name in net.inputs]  # .data would allocate
    declared = shapes[0][0] if shapes and shapes[0] else None
    result |= {"declared_batch": declared, "batch": declared, "batch_note": ""}
    if batch is None or declared is None or batch == declared:
        return False
    why = batch_matters(param, phase) if param is not None else ""
    if why:
        result["batch_note"] = f"declared batch {declared} kept: {why}"
        return False
    reshaped = False
    for name, shape in zip(net.inputs, shapes, strict=True):
        if name not in given and shape and shape[0] == declared:
            net.blobs[name].reshape(batch, *shape[1:])
            reshaped = True
    result["batch"] = batch
    return reshaped


def _set_extent(
    net: Any, text: str, request: dict[str, Any], result: dict[str, Any], path: str
) -> bool:
    """Reshape the generated inputs to the smallest extent that runs the same way, when the
    request asks for it (see :mod:`protoedit.net.extent`); record ``extent``,
    ``declared_extent`` and ``extent_note``; True when something was reshaped.

    Shape rules prove the smaller extent safe; should Caffe still abort on it, the plan line
    printed before the reshape tells the parent to run the net again at the declared extent.
    """
    declared = {name: list(net.blobs[name].shape)[2:] for name in net.inputs}
    result |= {"extent": declared, "declared_extent": declared, "extent_note": ""}
    if request.get("extent") != "smallest":
        return False
    if request["inputs"]:
        result["extent_note"] = "declared extent kept: the inputs are given"
        return False
    from protoedit.net.extent import extent_of

    found = extent_of(text, request["phase"], path)
    if not found.reduced:
        result["extent_note"] = f"declared extent kept: {found.note}" if found.note else ""
        return False
    running = dict(declared)
    for name in net.inputs:
        shape = found.shapes.get(name)
        if shape is None or shape[2:] == declared[name]:
            continue
        batch = list(net.blobs[name].shape)[:1]
        net.blobs[name].reshape(*batch, *shape[1:])
        running[name] = shape[2:]
    result["extent"] = running
    return running != declared


def _with_input_shapes(loaded: Any, shapes: dict[str, list[int]]) -> str:
    """The text of the ``NetParameter`` ``loaded`` (left as it is) with its input blobs (Input
    layer tops or the legacy header) declared at ``shapes``."""
    from google.protobuf import text_format

    param = type(loaded)()
    param.CopyFrom(loaded)
    if len(param.input):
        header = [shapes.get(name) for name in param.input]
        old = legacy_input_shapes(param)
        del param.input_shape[:], param.input_dim[:]
        for new, before in zip(header, old, strict=False):
            param.input_shape.add().dim.extend(new if new is not None else before)
    for layer in param.layer:
        if layer.type != "Input" or not any(top in shapes for top in layer.top):
            continue
        given = [list(s.dim) for s in layer.input_param.shape]
        del layer.input_param.shape[:]
        for index, top in enumerate(layer.top):
            before = given[index] if len(given) > 1 else given[0]
            layer.input_param.shape.add().dim.extend(shapes.get(top, before))
    return text_format.MessageToString(param)


def validate(request: dict[str, Any], note: Note) -> dict[str, Any]:
    """:func:`run`, with Python-level failures turned into an error result; the net is
    freed before the next request comes."""
    try:
        return _run_or_error(request, note)
    finally:
        gc.collect()


def _run_or_error(request: dict[str, Any], note: Note) -> dict[str, Any]:
    """:func:`run`, with Python-level failures turned into an error result."""
    try:
        return run(request, note)
    except _Refused as refused:
        return {"status": "error", "reason": str(refused)}
    except MemoryError:
        return {
            "status": "error",
            "cause": "over_budget",
            "reason": "over the memory budget: an allocation failed",
        }
    except Exception as exc:  # a Python-level failure (bad .npy, pycaffe error): report it
        return {"status": "error", "reason": f"{type(exc).__name__}: {exc}"}


def warm() -> None:
    """Build the extent parser before the memory limit applies (the worker calls this once)."""
    from protoedit.net.extent import extent_of

    extent_of('layer { name: "warm" type: "Input" top: "x" }', "TEST")


HANDLERS: dict[str, Handler] = {"validate": validate}
