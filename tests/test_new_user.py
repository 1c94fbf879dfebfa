"""Pins for the new user's report of 2026-12-06 (../shared/reviews/new-user-2026-12-06.md)
that no other module's tests hold: one-line usage errors, an unreachable Ray cluster, folded
report lines."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest

from protoedit.cli import main
from protoedit.errors import InvalidArgumentError
from protoedit.rewrites.report import RewriteReport

from .helpers import FIXTURES

DIGITS = FIXTURES / "digits" / "deploy.prototxt"


def test_a_usage_error_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["visualize", str(DIGITS), "--batch", "0"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.splitlines() == [
        "protoedit visualize: error: argument --batch: values must be at least 1, got '0' "
        "(see protoedit visualize -h)"
    ]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_ray_address_is_one_line_before_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("ray")
    from .test_weights_policy import SHAPES, _weights

    weights = _weights(tmp_path / "w.caffemodel", {name: name for name in SHAPES})
    store = tmp_path / "store"
    address = f"127.0.0.1:{_closed_port()}"
    argv = ["sweep", "--net", str(DIGITS), "--weights", str(weights), "--layers", "conv1"]
    argv += ["--store", str(store), "--engine", "ray", "--address", address]
    started = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - started < 30  # Ray alone retries for ever
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"protoedit: error: cannot reach a Ray cluster at {address}: "
    ), lines
    assert lines[0].endswith("(--address)")
    assert not store.exists()


def test_a_ray_address_that_does_not_answer_is_refused_after_the_connect_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from protoedit.sweep import engines

    waited: list[float] = []

    def silent(address: tuple[str, int], timeout: float) -> socket.socket:
        waited.append(timeout)
        raise TimeoutError

    monkeypatch.setattr(socket, "create_connection", silent)
    with pytest.raises(InvalidArgumentError, match="no answer") as error:
        engines.reach_ray("ray://10.0.0.1:10001")
    assert error.value.argument == "address" and waited == [engines.CONNECT_TIMEOUT]
    engines.reach_ray("auto")  # Ray's own discovery: not probed
    assert len(waited) == 1


def test_the_same_change_to_many_layers_folds_into_one_line() -> None:
    same = "BatchNorm's three param specs removed"
    report = RewriteReport(
        changed=["force_backward: true"]
        + [f'layer "bn{i}": {same}' for i in range(53)]
        + ['layer "a": other', 'layer "b": other']
    )
    assert report.lines(fold=True) == [
        "changed: force_backward: true",
        f'changed: 53 layers ("bn0", "bn1", "bn2", ... 50 more): {same}',
        'changed: layer "a": other',
        'changed: layer "b": other',
    ]
    assert len(report.lines()) == 56  # a rewrite of a file lists each change


def test_a_16_bit_grey_png_is_read_at_its_depth(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from protoedit.explain.preprocess import load_input

    levels = np.array([[0, 1000, 30000, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(levels).save(path)
    assert Image.open(path).mode.startswith("I;16")
    blob = load_input(path, (1, 1, 1, 4))
    expected = levels.astype(np.float64) * 255 / 65535
    # float32 of values up to 255: a few ulps of 255
    np.testing.assert_allclose(blob[0, 0], expected, rtol=0, atol=4 * 255 * 2**-24)
    assert len(np.unique(blob)) == 4  # not clipped to white


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_input_is_an_error_naming_it(bad: float, tmp_path: Path) -> None:
    import numpy as np

    from protoedit.errors import InputError
    from protoedit.explain.inputs import load_inputs
    from protoedit.explain.preprocess import Preprocess

    array = np.zeros((1, 8, 8), np.float32)
    array[0, 3, 3] = bad
    path = tmp_path / "x.npy"
    np.save(path, array)
    declared = {"data": (1, 1, 8, 8)}
    with pytest.raises(InputError, match="holds 1 non-finite values") as error:
        load_inputs(declared, str(path), Preprocess())
    assert error.value.location is not None and error.value.location.path == str(path)
    with pytest.raises(InputError, match="input 'data' holds 1 non-finite"):
        load_inputs(declared, array, Preprocess())


def test_a_folder_given_as_an_image_says_so(tmp_path: Path) -> None:
    from protoedit.errors import InputError
    from protoedit.explain.preprocess import load_input

    with pytest.raises(InputError, match="a folder, not an image"):
        load_input(tmp_path, (1, 1, 8, 8))


@pytest.mark.caffe
def test_integrated_gradients_double_the_steps_until_the_gap_is_within_tolerance(
    digits_model: Any, caffe_session: Any
) -> None:
    import numpy as np

    from protoedit.explain.attribution import IntegratedGradients
    from protoedit.rewrites import LossHead

    image = np.load(digits_model.split)["images"][3]
    options: dict[str, Any] = {"weights": digits_model.weights, "head": LossHead("logit", 1)}
    with IntegratedGradients(
        digits_model.deploy, steps=1, max_steps=64, session=caffe_session, **options
    ) as method:
        result = method.attribute(image)
    [(first, share), *_, (last, final)] = result.steps_tried
    assert first == 1 and share is not None and share > 0.05  # one step is far off
    assert result.steps == last <= 64 and final is not None and final <= 0.05
    assert [steps for steps, _ in result.steps_tried] == [
        2**k for k in range(len(result.steps_tried))
    ]
    assert not any("completeness gap" in w for w in result.warnings)
    with IntegratedGradients(
        digits_model.deploy, steps=1, session=caffe_session, **options
    ) as fixed:
        kept = fixed.attribute(image)
    assert kept.steps == 1 and len(kept.steps_tried) == 1
    assert any(
        w.startswith("the completeness gap is ") and w.endswith("try 2 steps or more")
        for w in kept.warnings
    ), kept.warnings


#: A net whose every forward/backward request of 32 items takes seconds.
_HEAVY = """
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 256 dim: 256 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 16 kernel_size: 5 pad: 2 weight_filler { type: "msra" } } }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2"
        convolution_param { num_output: 16 kernel_size: 5 pad: 2 weight_filler { type: "msra" } } }
"""


@pytest.mark.caffe
@pytest.mark.parametrize("command", ["saliency", "visualize"])
def test_ctrl_c_stops_within_a_second_while_caffe_is_busy(command: str, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys

    import numpy as np

    from protoedit.schema import builtin_schema

    net = tmp_path / "heavy.prototxt"
    net.write_text(_HEAVY)
    model = builtin_schema().message_class("NetParameter")()
    rng = np.random.default_rng(0)
    for name, shapes in (("c1", [[16, 3, 5, 5], [16]]), ("c2", [[16, 16, 5, 5], [16]])):
        layer = model.layer.add(name=name, type="Convolution")
        for shape in shapes:
            blob = layer.blobs.add()
            blob.shape.dim.extend(shape)
            blob.data.extend(rng.standard_normal(int(np.prod(shape))).astype(float) * 0.1)
    weights = tmp_path / "heavy.caffemodel"
    weights.write_bytes(model.SerializeToString())
    image = tmp_path / "x.npy"
    np.save(image, np.random.default_rng(0).standard_normal((3, 256, 256)).astype(np.float32))
    common = [str(net), "--weights", str(weights), "--target", "c2", "-o", str(tmp_path / "o.png")]
    argv = {
        "saliency": [
            *("--channel", "0", "--image", str(image), "--method", "smoothgrad"),
            *("--samples", "100000", "--chunk", "32", "-q"),
        ],
        "visualize": ["--channels", "0-15", "--batch", "16", "--steps", "100000", "-q"],
    }[command]
    proc = subprocess.Popen(
        [sys.executable, "-m", "protoedit.cli", command, *common, *argv],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(10)  # Caffe imported, the net loaded, a long request in flight
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    code = proc.wait(timeout=60)
    waited = time.monotonic() - sent
    err = proc.stderr.read() if proc.stderr else ""
    assert code == 130, err
    assert err.strip().splitlines()[-1] == "protoedit: error: interrupted"
    assert waited < 1.0, waited  # a polite close would wait for the request (10 s)


@pytest.mark.parametrize("command", ["check", "format", "draw", "validate"])
def test_a_binary_file_given_as_a_net_says_so(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from .helpers import one_error_line

    model = tmp_path / "weights.caffemodel"
    model.write_bytes(b"\n\x05LeNet\x12\x1a\n\x05conv1\x1a\x0bConvolution" + bytes(range(256)))
    line = one_error_line(capsys, [command, str(model)])
    assert line.startswith(f"protoedit: error: {model}: a binary file, not a text .prototxt")


def test_an_empty_file_is_a_finding_of_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.prototxt"
    empty.write_text("# nothing yet\n")
    assert main(["check", "--strict", str(empty)]) == 1
    assert capsys.readouterr().out == f"{empty}:1:1: W205 the file is empty: no net to build\n"


@pytest.mark.caffe
def test_validate_refuses_a_net_without_layers(tmp_path: Path, caffe_session: Any) -> None:
    from protoedit.validate import validate_net

    for text in ("", 'name: "nothing"\n'):
        net = tmp_path / "empty.prototxt"
        net.write_text(text)
        report = validate_net(net, session=caffe_session)
        assert (report.status, report.reason) == (
            "error",
            "the net has no layers: Caffe has nothing to run",
        )


def test_the_contact_sheet_counts_layers_not_configurations(tmp_path: Path) -> None:
    import numpy as np

    from protoedit.sweep import write_report
    from protoedit.sweep.store import Store, UnitOutput

    picture = np.zeros((4, 4, 1), np.uint8)
    with Store(tmp_path / "store") as store:
        for config, steps in (("a", 5), ("b", 9)):  # one layer under two settings
            store.add_config(config, "toy", "conv1", {"settings": {"steps": steps}, "batch": 2})
            units = [
                UnitOutput(
                    c, picture.transpose(2, 0, 1).astype(np.float32), picture, 0.0, 1.0, 5, False
                )
                for c in range(3)
            ]
            store.add_results(
                config, "conv1", units, seconds=1.0, worker="w", sweep="s", versions=("0", "c")
            )
    page = write_report(tmp_path / "store", tmp_path / "atlas").read_text()
    assert '<div class="meta">6 units in 1 layer (2 configurations) &middot; ' in page


def test_draw_draws_the_test_phase_by_default(tmp_path: Path) -> None:
    net = FIXTURES / "rewrites" / "to_deploy" / "train_val.in.prototxt"
    drawn = {}
    for phase in ([], ["--phase", "ALL"]):
        out = tmp_path / f"net{len(phase)}.dot"
        assert main(["draw", str(net), *phase, "-o", str(out)]) == 0
        drawn[bool(phase)] = out.read_text()
    assert 'id="layer:accuracy"' in drawn[False]  # a TEST-only layer
    assert drawn[False].count('id="layer:data') == 1 and "batch 64" not in drawn[False]
    assert drawn[True].count('id="layer:data') == 2  # the TRAIN data layer (batch 64) too


def test_a_unit_given_twice_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    from .helpers import one_error_line

    argv = ["visualize", str(DIGITS), "--weights", "w", "--target", "conv1", "-o", "g.png"]
    line = one_error_line(capsys, [*argv, "--units", "3,2,2", "1", "3,2,2"])
    assert line == "protoedit: error: conv1[3,2,2] is given twice (--units)"


def test_the_saved_saliency_picture_has_a_title_and_a_colour_bar_with_its_scale() -> None:
    import numpy as np
    from matplotlib import colormaps

    from protoedit.picture import DIVERGING, captioned, panels

    values = np.linspace(-2.0, 2.0, 64).reshape(8, 8)
    plain = panels(np.full((8, 8, 1), 128, np.uint8), values)
    shown = captioned(plain, "integrated saliency of 'ip2'", values)
    height, width = plain.shape[:2]
    top = (shown.shape[0] - height) - (4 + 10 + 12 + 4)  # title strip above the panels
    assert shown.shape[1] == width and top > 0
    np.testing.assert_array_equal(shown[top : top + height], plain)
    assert (shown[:top] < 100).any()  # the title's text
    bar = shown[top + height + 4 + 5]  # the middle row of the colour bar
    for end, x in ((0.0, 0), (1.0, width - 1)):
        expected = np.round(np.array(colormaps[DIVERGING](end)[:3]) * 255)
        np.testing.assert_allclose(bar[x], expected, atol=1)
    assert (shown[top + height + 4 + 10 :] < 100).any()  # the scale's text


def test_an_all_white_grid_tile_gets_a_frame() -> None:
    import numpy as np

    from protoedit.picture import _FRAME_GREY, _PAD, labelled_grid

    white = np.full((96, 96, 1), 255, np.uint8)
    grid = np.asarray(labelled_grid([white, white], ["a", "b"]))
    assert (grid[_PAD - 1, _PAD - 1] == _FRAME_GREY).all()  # the frame's corner
    assert (grid[_PAD + 40, _PAD - 1] == _FRAME_GREY).all()  # its left side
    assert (grid[_PAD + 1 : _PAD + 95, _PAD : _PAD + 96] == 255).all()  # the tile untouched


def test_to_deploy_draw_marks_the_data_layer_it_changed(tmp_path: Path) -> None:
    net = FIXTURES / "rewrites" / "to_deploy" / "train_val.in.prototxt"
    picture = tmp_path / "change.dot"
    argv = ["to-deploy", str(net), "--draw", str(picture), "-o", str(tmp_path / "d.prototxt")]
    assert main(argv) == 0
    text = picture.read_text()
    assert 'class="layer changed" id="layer:data"' in text  # Data -> Input, same name
    assert 'class="layer kept" id="layer:conv1"' in text


@pytest.mark.parametrize("command", ["saliency", "grad"])
def test_preprocessing_options_with_a_npy_input_are_refused(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from .helpers import one_error_line

    array = tmp_path / "x.npy"
    np.save(array, np.zeros((1, 8, 8), np.float32))
    argv = {
        "saliency": ["--image", str(array), "-o", str(tmp_path / "m.png")],
        "grad": ["--input", str(array), "--target", "ip2"],
    }[command]
    line = one_error_line(
        capsys, [command, str(DIGITS), "--weights", "w", "--class", "1", *argv, "--scale", "0.5"]
    )
    assert line == (
        "protoedit: error: --scale applies to image files; a .npy is the blob as fed to the "
        "net, taken as it is"
    )


def test_quiet_leaves_out_the_rewrite_report_but_not_the_warnings(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import argparse

    from protoedit.cli.explain import _rewrite_report

    result = argparse.Namespace(
        report=RewriteReport(changed=["force_backward: true"]), warnings=["layers missing"]
    )
    _rewrite_report(argparse.Namespace(quiet=True), result)
    assert capsys.readouterr().err == "warning: layers missing\n"
    _rewrite_report(argparse.Namespace(quiet=False), result)
    assert capsys.readouterr().err == "changed: force_backward: true\nwarning: layers missing\n"
    for command in ("grad", "saliency", "visualize"):
        assert "-q, --quiet" in _help(command, capsys)


def _help(command: str, capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main([command, "--help"])
    return capsys.readouterr().out


@pytest.mark.caffe
def test_saved_gradients_state_the_extent_they_were_saved_at(
    tmp_path: Path, caffe_session: Any
) -> None:
    import numpy as np

    from protoedit.validate import validate_net

    folder = tmp_path / "grads"
    net = FIXTURES / "lenet_deploy.prototxt"
    report = validate_net(
        net, random_weights=True, extent="smallest", save_gradients=folder, session=caffe_session
    )
    assert report.extent == {"data": [25, 25]} and report.declared_extent == {"data": [28, 28]}
    assert report.saved_gradients == f"{folder.resolve()}: data 2x1x25x25"
    assert np.load(folder / "data.npy").shape == (2, 1, 25, 25)
    assert (
        f"gradients saved to {folder.resolve()}: data 2x1x25x25 (at the reduced extent: "
        "--extent declared saves the declared)"
    ) in report.format_text()
