"""``protoedit weights show|export|import|diff`` and ``protoedit check NET --weights MODEL``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from protoedit.cli import main
from protoedit.weights import Weights, load, save
from tests.helpers import FIXTURES, one_error_line

DEPLOY = FIXTURES / "digits" / "deploy.prototxt"
SHAPES = {
    "conv1": [(16, 1, 3, 3), (16,)],
    "conv2": [(32, 16, 3, 3), (32,)],
    "ip1": [(64, 128), (64,)],
    "ip2": [(10, 64), (10,)],
}


def _model(path: Path, seed: int = 0, **renamed: str) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {
        renamed.get(name, name): [rng.standard_normal(s, dtype=np.float32) for s in shapes]
        for name, shapes in SHAPES.items()
    }
    types = {name: "Convolution" if name.startswith("conv") else "InnerProduct" for name in arrays}
    save(Weights.from_arrays(arrays, types=types), path)
    return path


def test_show_prints_each_blob_and_a_total(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path / "m.caffemodel")
    assert main(["weights", "show", str(model)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == [
        "layer",
        "type",
        "blob",
        "shape",
        "count",
        "min",
        "max",
        "mean",
        "std",
    ]
    conv1 = lines[1].split()
    assert conv1[:5] == ["conv1", "Convolution", "weight", "16x1x3x3", "144"]
    weight = load(model)["conv1"].blobs[0]
    assert float(conv1[5]) == pytest.approx(float(weight.min()), rel=1e-3)
    assert lines[-1] == "total: 13706 values in 8 blobs of 4 layers (53.5 KiB)"
    assert main(["weights", "show", str(model), "--json", "--net", str(DEPLOY)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["total"] == {"layers": 4, "blobs": 8, "count": 13706, "bytes": 13706 * 4}
    first = data["layers"][0]["blobs"][0]
    assert first["key"] == "conv1/weight" and first["shape"] == [16, 1, 3, 3]
    assert first["std"] == pytest.approx(float(weight.std(dtype=np.float64)))


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".safetensors"])
def test_export_then_import_gives_the_same_blobs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    model = _model(tmp_path / "m.caffemodel")
    arrays = tmp_path / f"m{suffix}"
    assert main(["weights", "export", str(model), "-o", str(arrays)]) == 0
    back = tmp_path / "back.caffemodel"
    assert main(["weights", "import", str(arrays), "--net", str(DEPLOY), "-o", str(back)]) == 0
    assert capsys.readouterr().err == ""
    assert main(["weights", "diff", str(model), str(back)]) == 0
    assert "8 of 8 blobs in both files are equal bit for bit" in capsys.readouterr().out
    rebuilt = load(back)
    assert rebuilt["conv1"].message().convolution_param.num_output == 16  # the net's layer
    assert "relu1" in rebuilt  # every layer, as Caffe saves a net


def test_import_of_arrays_for_a_renamed_layer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arrays = tmp_path / "m.npz"
    main(
        [
            "weights",
            "export",
            str(_model(tmp_path / "m.caffemodel", conv2="conv_2")),
            "-o",
            str(arrays),
        ]
    )
    out = tmp_path / "back.caffemodel"
    line = one_error_line(
        capsys, ["weights", "import", str(arrays), "--net", str(DEPLOY), "-o", str(out)]
    )
    assert "layers not in the net: 'conv_2' (nearest to 'conv_2': 'conv2'" in line
    assert not out.exists()


def test_import_warns_once_about_missing_layers_and_strict_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = dict(np.load(_export(tmp_path)))
    partial = tmp_path / "partial.npz"
    np.savez(partial, **{k: v for k, v in full.items() if not k.startswith("ip2/")})
    out = tmp_path / "back.caffemodel"
    argv = ["weights", "import", str(partial), "--net", str(DEPLOY), "-o", str(out)]
    assert main(argv) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "1 of 4 layers that learn are not in the weights file" in err[0]
    assert err[0].startswith("protoedit: warning: ") and "'ip2'" in err[0]
    line = one_error_line(capsys, [*argv, "--strict-weights"])
    assert "1 of 4 layers that learn" in line


def _export(tmp_path: Path) -> Path:
    arrays = tmp_path / "m.npz"
    assert (
        main(["weights", "export", str(_model(tmp_path / "m.caffemodel")), "-o", str(arrays)]) == 0
    )
    return arrays


def test_import_refuses_a_wrong_shape(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    full = dict(np.load(_export(tmp_path)))
    full["ip1/weight"] = full["ip1/weight"].T
    bad = tmp_path / "bad.npz"
    np.savez(bad, **full)
    argv = [
        "weights",
        "import",
        str(bad),
        "--net",
        str(DEPLOY),
        "-o",
        str(tmp_path / "o.caffemodel"),
    ]
    line = one_error_line(capsys, argv)
    assert "layer 'ip1' weight: the net expects 64 x 128, the weights file has 128 x 64" in line


def test_unknown_and_damaged_files_are_one_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = _model(tmp_path / "m.caffemodel")
    line = one_error_line(capsys, ["weights", "export", str(model), "-o", str(tmp_path / "m.pt")])
    assert "unknown array file format '.pt'" in line
    damaged = tmp_path / "damaged.caffemodel"
    damaged.write_bytes(model.read_bytes()[:-10])
    line = one_error_line(capsys, ["weights", "show", str(damaged)])
    assert line.startswith(
        f"protoedit: error: {damaged}: not a Caffe weights file, or a damaged one"
    )
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    argv = [
        "weights",
        "import",
        str(junk),
        "--net",
        str(DEPLOY),
        "-o",
        str(tmp_path / "o.caffemodel"),
    ]
    assert "not a readable .h5 file" in one_error_line(capsys, argv)


def test_diff_reports_the_largest_differences_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    a = _model(tmp_path / "a.caffemodel")
    weights = load(a)
    weights["ip2"].blobs[1] = weights["ip2"].blobs[1] + np.float32(0.5)
    del weights["conv1"]
    b = tmp_path / "b.caffemodel"
    save(weights, b)
    assert main(["weights", "diff", str(a), str(b)]) == 1
    out = capsys.readouterr().out.splitlines()
    expected = np.abs(load(a)["ip2"].blobs[1].astype(np.float64) - weights["ip2"].blobs[1])
    abs_line = next(line for line in out if line.startswith("ip2/bias:"))
    assert float(abs_line.split("max abs ")[1].split(",")[0]) == pytest.approx(
        expected.max(), rel=1e-5
    )
    assert f"conv1/weight: only in A ({a})" in out and f"conv1/bias: only in A ({a})" in out
    assert out[-1] == "5 of 6 blobs in both files are equal bit for bit; 2 in one file only"


def _check(capsys: pytest.CaptureFixture[str], net: Path, model: Path) -> tuple[int, list[str]]:
    code = main(["check", str(net), "--weights", str(model)])
    return code, capsys.readouterr().out.splitlines()


def test_check_weights_reports_a_renamed_layer_with_the_nearest_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, lines = _check(capsys, DEPLOY, _model(tmp_path / "m.caffemodel", ip1="fc1"))
    assert code == 0  # warnings: Caffe loads it, the layer stays random
    assert any(
        f"{DEPLOY}:" in line and "W301 layer 'ip1' learns but is not in the weights file" in line
        for line in lines
    )
    assert any(
        "W302 stored layer 'fc1' matches no layer of the net (renamed? nearest: 'ip1')" in line
        for line in lines
    )
    assert (
        main(["check", "--strict", str(DEPLOY), "--weights", str(tmp_path / "m.caffemodel")]) == 1
    )


def test_check_weights_refuses_duplicate_layer_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "dup.prototxt"
    net.write_text(DEPLOY.read_text().replace('name: "conv2"', 'name: "conv1"', 1))
    code, lines = _check(capsys, net, _model(tmp_path / "m.caffemodel"))
    assert code == 1
    assert any(
        "E301 layer name 'conv1' is given to more than one layer that learns" in line
        for line in lines
    )


def test_check_weights_reports_a_shape_mismatch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "wider.prototxt"
    net.write_text(DEPLOY.read_text().replace("num_output: 16", "num_output: 24", 1))
    code, lines = _check(capsys, net, _model(tmp_path / "m.caffemodel"))
    assert code == 1
    assert any(
        "E303 layer 'conv1' weight: the net expects 24 x 1 x 3 x 3, "
        "the weights file has 16 x 1 x 3 x 3" in line
        for line in lines
    )
    assert any(
        "E303 layer 'conv2' weight: the net expects 32 x 24 x 3 x 3" in line for line in lines
    )


def test_check_weights_takes_one_net(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _model(tmp_path / "m.caffemodel")
    with pytest.raises(SystemExit):
        main(["check", str(DEPLOY), str(DEPLOY), "--weights", str(model)])
    assert "--weights checks one net, not 2 files" in capsys.readouterr().err
    assert _check(capsys, DEPLOY, model) == (0, [])


@pytest.mark.parametrize("suffix", [".npz", ".h5", ".safetensors"])
def test_layer_names_with_slashes_survive_every_format(tmp_path: Path, suffix: str) -> None:
    """GoogLeNet names layers ``inception_3a/1x1``: the role is the last part of a key."""
    from protoedit import loads
    from protoedit.weights.formats import export_arrays, import_arrays

    net = loads(
        'layer { name: "data" type: "Input" top: "data" '
        "input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }\n"
        'layer { name: "inception_3a/1x1" type: "Convolution" bottom: "data" top: "c" '
        "convolution_param { num_output: 4 kernel_size: 1 } }\n",
        path="inception.prototxt",
    )
    rng = np.random.default_rng(1)
    blobs = [rng.standard_normal((4, 2, 1, 1), dtype=np.float32), np.arange(4, dtype=np.float32)]
    arrays = tmp_path / f"inception{suffix}"
    export_arrays(Weights.from_arrays({"inception_3a/1x1": blobs}), arrays, net=net)
    back = import_arrays(arrays, net)["inception_3a/1x1"]
    assert back.type == "Convolution"
    for got, want in zip(back.blobs, blobs, strict=True):
        assert np.array_equal(got, want)


def test_import_refuses_values_float32_cannot_hold(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    full = dict(np.load(_export(tmp_path)))
    full["ip2/bias"] = full["ip2/bias"].astype(np.float64) * 1e300
    bad = tmp_path / "big.npz"
    np.savez(bad, **full)
    out = tmp_path / "o.caffemodel"
    argv = ["weights", "import", str(bad), "--net", str(DEPLOY), "-o", str(out)]
    assert "'ip2/bias' holds values too large for float32" in one_error_line(capsys, argv)
    full["ip2/bias"] = np.array(["a"] * 10)
    np.savez(bad, **full)
    assert "'ip2/bias' holds <U1 values, not numbers" in one_error_line(capsys, argv)


def test_other_warnings_are_shown_while_still_recording(capsys: pytest.CaptureFixture[str]) -> None:
    """``say_warnings`` runs inside ``catch_warnings(record=True)`` (import, rewrites): a
    warning not ours is written out, not re-recorded into the list being read (a hang)."""
    import warnings

    from protoedit.cli.rewrite_file import say_warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.warn("overflow somewhere", RuntimeWarning, stacklevel=1)
        say_warnings(caught)
        assert len(caught) == 1
    assert "RuntimeWarning: overflow somewhere" in capsys.readouterr().err
