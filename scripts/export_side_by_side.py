"""protoedit export against caffe2onnx (PyPI) on the same nets, weights and inputs.

Each net gets calibrated random weights (protoedit's), written as a ``.caffemodel``; Caffe
runs it on seeded inputs; protoedit's model is checked blob by blob (``check``), and
caffe2onnx's model is run in onnxruntime and its outputs compared with Caffe's blobs of the
same names, within the same float32 bound.  caffe2onnx pins onnx 1.6.0, which installs only
on Python 3.7: give the interpreter of a venv that has it (``--converter-python``).

    .venv/bin/python scripts/export_side_by_side.py --converter-python /tmp/c2o37/bin/python
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"

#: (label, file, input shape or None, until or None, needs the bundled schema)
NETS: list[tuple[str, Path, list[int] | None, str | None, bool]] = [
    ("LeNet", CORPUS / "BVLC__caffe__examples__mnist__lenet.prototxt", None, None, False),
    (
        "AlexNet",
        CORPUS / "BVLC__caffe__models__bvlc_alexnet__deploy.prototxt",
        [1, 3, 67, 67],
        None,
        False,
    ),
    (
        "GoogLeNet",
        CORPUS / "BVLC__caffe__models__bvlc_googlenet__deploy.prototxt",
        None,
        None,
        False,
    ),
    (
        "SqueezeNet 1.1",
        CORPUS / "forresti__SqueezeNet__SqueezeNet_v1.1__deploy.prototxt",
        [1, 3, 64, 64],
        None,
        False,
    ),
    (
        "ResNet-50",
        CORPUS / "KaimingHe__deep-residual-networks__prototxt__ResNet-50-deploy.prototxt",
        None,
        None,
        False,
    ),
    (
        "MobileNet v1",
        CORPUS / "shicai__MobileNet-Caffe__mobilenet_deploy.prototxt",
        [1, 3, 64, 64],
        None,
        False,
    ),
    (
        "MobileNet v2",
        CORPUS / "shicai__MobileNet-Caffe__mobilenet_v2_deploy.prototxt",
        [1, 3, 64, 64],
        None,
        False,
    ),
    (
        "Inception v3",
        CORPUS / "soeaver__caffe-model__cls__inception__deploy_inception-v3.prototxt",
        [1, 3, 139, 139],
        None,
        False,
    ),
    (
        "MobileNet-SSD (to detection_out)",
        CORPUS / "chuanqi305__MobileNet-SSD__voc__MobileNetSSD_deploy.prototxt",
        [1, 3, 160, 160],
        "detection_out",
        True,
    ),
    ("DenseNet (tiny)", ROOT / "fixtures" / "export" / "densenet.prototxt", None, None, False),
    ("FCN (tiny)", ROOT / "fixtures" / "export" / "fcn.prototxt", None, None, False),
    (
        "ShuffleNet v2 (tiny)",
        ROOT / "fixtures" / "export" / "shufflenet.prototxt",
        None,
        None,
        True,
    ),
    ("LSTM (tiny)", ROOT / "fixtures" / "export" / "lstm.prototxt", None, None, False),
]
_WORKER = "protoedit.explain.worker"


def _caffe_text(exported: Any, until: str | None) -> str:
    """The net Caffe and caffe2onnx read: at the export's input shape, cut before ``until``."""
    from google.protobuf import text_format

    from protoedit.export.caffe_check import reference_text

    text = reference_text(exported)
    if until is None:
        return text
    net = type(exported.prepared.doc.message)()
    text_format.Parse(text, net)
    names = [layer.name for layer in net.layer]
    del net.layer[names.index(until) :]
    return str(text_format.MessageToString(net))


def _compare(
    ours: dict[str, np.ndarray], caffe: dict[str, np.ndarray], bounds: dict[str, float]
) -> tuple[bool, str]:
    """Every output that names a Caffe blob within the bound protoedit's check uses for that
    blob (``bounds``: tolerance per unit of magnitude)."""
    named = [n for n in ours if n in caffe]
    if not named:
        return False, f"no output names a Caffe blob ({', '.join(ours)})"
    for name in named:
        a, b = ours[name], caffe[name]
        if a.size != b.size:
            return False, f"'{name}': shape {list(a.shape)}, Caffe {list(b.shape)}"
        a = a.reshape(b.shape)
        error = float(np.max(np.abs(a.astype(np.float64) - b)))
        bound = bounds[name] * float(np.max(np.abs(b)))
        if not error <= bound:
            return False, f"'{name}': worst error {error:.3g} > {bound:.3g}"
    return True, f"{len(named)} output(s), worst error/bound {error / bound:.2g}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--converter-python", required=True, help="a Python with caffe2onnx")
    args = parser.parse_args()
    import onnxruntime

    import protoedit
    from protoedit.caffe import session
    from protoedit.caffe.build import caffe_proto_path
    from protoedit.export import check, export
    from protoedit.weights import Weights, save, stored_shapes

    rows = []
    with session() as caffe, tempfile.TemporaryDirectory() as folder:
        for label, path, shape, until, fork in NETS:
            started = time.monotonic()
            doc = protoedit.load(path, str(caffe_proto_path()) if fork else None)
            exported = export(doc, input_shape=shape, until=until)
            net = Path(folder) / "net.prototxt"
            net.write_text(_caffe_text(exported, until))
            model = Path(folder) / "net.caffemodel"
            save(Weights.from_arrays(exported.weights), model)
            report = check(doc, model, input_shape=shape, until=until, session=caffe)
            ours = "exact" if report.ok else "DIVERGES: " + " ".join(report.lines()[:1])
            onnx_path = Path(folder) / "c2o.onnx"
            command = [args.converter_python, "-m", "caffe2onnx.convert", "--prototxt", str(net)]
            command += ["--caffemodel", str(model), "--onnx", str(onnx_path)]
            proc = subprocess.run(command, capture_output=True, text=True, check=False, timeout=900)
            if proc.returncode != 0 or not onnx_path.is_file():
                tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                theirs = f"conversion failed: {tail[:120]}"
            else:
                rng = np.random.default_rng(7)
                inputs = {
                    k: rng.standard_normal(v).astype(np.float32)
                    for k, v in exported.built.inputs.items()
                }
                loaded = caffe.request(
                    _WORKER,
                    "load",
                    net=str(net),
                    weights=str(model),
                    stored_shapes=stored_shapes(model),
                )
                try:
                    options = onnxruntime.SessionOptions()
                    options.log_severity_level = 3
                    sess = onnxruntime.InferenceSession(
                        str(onnx_path), options, providers=["CPUExecutionProvider"]
                    )
                    wanted = [i.name for i in sess.get_inputs()]
                    if len(wanted) == len(inputs) == 1:  # caffe2onnx names it BLOB_input
                        feeds = {wanted[0]: next(iter(inputs.values()))}
                    else:
                        feeds = {n: inputs[n.removesuffix("_input")] for n in wanted}
                    names = [o.name for o in sess.get_outputs()]
                    outs = dict(zip(names, sess.run(names, feeds), strict=True))
                    blobs = caffe.request(
                        _WORKER,
                        "run",
                        net_id=loaded["net_id"],
                        inputs=inputs,
                        backward=False,
                        blobs=[n for n in names if n in exported.built.blob_values],
                    )["blobs"]
                    bounds = {
                        b.blob: b.tolerance / max(b.magnitude, 1e-30) for b in report.runs[0].blobs
                    }
                    ok, why = _compare(outs, blobs, bounds)
                    theirs = ("exact: " if ok else "WRONG: ") + why
                except Exception as exc:  # onnxruntime refuses the model
                    theirs = f"does not run: {str(exc).splitlines()[0][:120]}"
                caffe.request(_WORKER, "unload", net_id=loaded["net_id"])
            rows.append((label, ours, theirs, f"{time.monotonic() - started:.0f} s"))
            print(" | ".join(rows[-1]), flush=True)
    ours, theirs = sum(r[1] == "exact" for r in rows), sum(r[2].startswith("exact") for r in rows)
    print(f"\nexact against Caffe: protoedit {ours}/{len(rows)}, caffe2onnx {theirs}/{len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
