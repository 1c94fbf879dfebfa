"""The CLI's one error boundary and its hints: every command prints the caret line, hints
come from the errors' structured fields in the terms of the command in use, options shared
by several commands behave the same in each (no Caffe needed)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protoedit.cli import build_parser, main
from protoedit.errors import InvalidArgumentError, MissingArgumentError
from protoedit.validate import validate_net

from .helpers import FIXTURES

DIGITS = FIXTURES / "digits" / "deploy.prototxt"
LENET = FIXTURES / "lenet_deploy.prototxt"


@pytest.fixture
def digit(tmp_path: Path) -> Path:
    path = tmp_path / "digit.npy"
    np.save(path, np.zeros((1, 1, 8, 8), dtype=np.float32))
    return path


@pytest.fixture
def broken_net(tmp_path: Path) -> Path:
    net = tmp_path / "broken.prototxt"
    net.write_text(DIGITS.read_text().replace('name: "conv1"', 'name: "conv1" }}', 1))
    return net


def _explain(command: str, net: Path, digit: Path, tmp_path: Path) -> list[str]:
    """A command line of ``command`` on ``net`` that gets as far as loading the net."""
    weights = str(tmp_path / "never-read.caffemodel")
    out = str(tmp_path / "out.png")
    return {
        "grad": ["grad", str(net), "--weights", weights, "--input", str(digit), "--target", "ip2"],
        "saliency": [
            *("saliency", str(net), "--weights", weights, "--image", str(digit)),
            *("--class", "1", "-o", out),
        ],
        "visualize": ["visualize", str(net), "--weights", weights, "--target", "conv1", "-o", out],
        "sweep": [
            *("sweep", "--net", str(net), "--weights", weights, "--layers", "conv1"),
            *("--store", str(tmp_path / "store")),
        ],
    }[command]


@pytest.mark.parametrize("command", ["grad", "saliency", "visualize", "sweep"])
def test_every_command_prints_the_caret_line(
    command: str,
    broken_net: Path,
    digit: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "never-read.caffemodel").write_bytes(b"")  # the net is read first
    assert main(_explain(command, broken_net, digit, tmp_path)) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"protoedit: error: {broken_net}:11:18: unmatched '}}'")
    assert err[1] == '    name: "conv1" }}'
    assert err[2].strip() == "^" and len(err) == 3


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["visualize", "--class", "10"], "(--class)"),
        (["visualize", "--target", "conv1", "--units", "3", "20"], "(--units)"),
        (["visualize", "--target", "conv1", "--channels", "2-16"], "(--channels)"),
        (["saliency", "--target", "conv1", "--unit", "20"], "(--unit)"),
        (["saliency", "--target", "ip2", "--channel", "10"], "(--channel)"),
        (["saliency", "--class", "10"], "(--class)"),
    ],
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_a_value_out_of_range_names_the_option_that_gave_it(
    argv: list[str], option: str, digit: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = str(tmp_path / "out.png")
    command, *rest = argv
    extra = ["--image", str(digit)] if command == "saliency" else []
    full = [command, str(DIGITS), "--weights", str(tmp_path / "w"), *extra, *rest, "-o", out]
    assert main(full) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "is out of range" in err[0] and err[0].endswith(option), err


def test_the_library_error_carries_the_parameter_not_the_option() -> None:
    from protoedit.explain import Unit, visualize

    with pytest.raises(InvalidArgumentError) as error:
        visualize(DIGITS, weights=None, target="conv1", objectives=[Unit(16)])
    assert error.value.argument == "objectives" and "--" not in str(error.value)


def test_a_missing_value_is_a_hint_in_the_commands_terms_or_the_apis() -> None:
    error = MissingArgumentError("no shape", {"shape": "1,3,8,8", "input_channels": None})
    assert error.remedy({"shape": "--shape N,C,H,W", "input_channels": "--input-channels C"}) == (
        "pass --shape 1,3,8,8 or --input-channels C"
    )
    assert error.remedy() == "pass shape='1,3,8,8' or input_channels="
    assert error.remedy({}) == ""  # a front end that has no option for them says nothing


def test_the_class_scores_that_cannot_be_found_ask_for_the_target(
    tmp_path: Path, digit: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    net = tmp_path / "two_heads.prototxt"
    extra = 'layer { name: "ip3" type: "InnerProduct" bottom: "ip1" top: "ip3" '
    net.write_text(DIGITS.read_text() + extra + "inner_product_param { num_output: 2 } }\n")
    argv = ["saliency", str(net), "--weights", "w", "--image", str(digit), "--class", "1"]
    assert main([*argv, "-o", str(tmp_path / "m.png")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert "cannot tell which layer holds the class scores" in err[0]
    assert err[1:] == ["hint: pass --target LAYER"]


@pytest.mark.parametrize(
    "argv",
    [
        ["validate", str(LENET)],
        ["grad", str(DIGITS), "--weights", "w", "--input", "x.npy", "--target", "ip2"],
        ["saliency", str(DIGITS), "--weights", "w", "--image", "x.npy", "--class", "1", "-o", "m"],
        ["visualize", str(DIGITS), "--weights", "w", "--class", "1", "-o", "g.png"],
        ["aux", str(LENET), "--target", "conv2", "--validate"],
    ],
    ids=lambda argv: argv[0],
)
@pytest.mark.parametrize("value", ["0", "-1", "nan", "soon"])
def test_every_timeout_must_be_positive(
    argv: list[str], value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([*argv, "--timeout", value])
    assert exit_info.value.code == 2
    assert "argument --timeout" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "library"),
    [
        ("grad", "protoedit.explain.gradients"),
        ("saliency", "protoedit.explain.methods.method_object"),
        ("visualize", "protoedit.explain.maximisation.visualize"),
        ("sweep", "protoedit.sweep.run_sweep"),
    ],
)
def test_allow_python_layers_reaches_the_library(
    command: str,
    library: str,
    digit: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    called: list[dict[str, Any]] = []

    def record(*_: object, **options: Any) -> None:
        called.append(options)
        raise InvalidArgumentError("stop here", "net")

    monkeypatch.setattr(library, record)
    argv = _explain(command, DIGITS, digit, tmp_path)
    (tmp_path / "never-read.caffemodel").write_bytes(b"")
    assert main(argv) == 2
    assert main([*argv, "--allow-python-layers"]) == 2
    assert "protoedit: error: stop here" in capsys.readouterr().err
    assert [options.get("allow_python_layers") for options in called] == [False, True]


def test_the_target_has_one_spelling(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for command in ("truncate", "add-loss", "aux"):
        assert parser.parse_args([command, "net", "--target", "conv1"]).target == "conv1"
    for command, old in (("truncate", "--at"), ("add-loss", "--blob")):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "net", "--target", "conv1", old, "conv1"])
        assert f"unrecognized arguments: {old} conv1" in capsys.readouterr().err


def test_validate_hints_are_data_rendered_per_front_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "big.caffemodel"
    with weights.open("wb") as handle:  # sparse: no disk space taken
        handle.truncate(300 * 2**20)
    report = validate_net(LENET, weights=weights, memory_limit=256 * 2**20)
    assert (report.cause, report.hint) == ("over_budget", "give a larger memory_limit (0 for none)")
    assert report.to_dict()["hint"] == report.hint
    junit = tmp_path / "report.xml"
    argv = ["validate", str(LENET), "--weights", str(weights), "--memory-limit", "256M"]
    assert main([*argv, "--json", "--junit-xml", str(junit)]) == 2
    line = json.loads(capsys.readouterr().out)
    assert (line["cause"], line["hint"]) == (
        "over_budget",
        "raise it with --memory-limit (0 for none)",
    )
    error = ET.parse(junit).getroot().find("testcase/error")
    assert error is not None and error.text is not None
    assert error.text.endswith("\nhint: raise it with --memory-limit (0 for none)")


def test_sweep_report_is_a_subcommand(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["sweep", "report", "store", "-o", "atlas"])
    assert (args.store_dir, args.output, args.run.__name__) == ("store", "atlas", "run_report")
    with pytest.raises(SystemExit):
        main(["sweep", "report", str(tmp_path)])
    assert "the following arguments are required: -o/--output" in capsys.readouterr().err


def test_sweep_hints_name_only_the_options_that_set_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(b"")
    base = ["sweep", "--net", str(DIGITS), "--weights", str(weights), "--layers", "conv1"]
    assert main([*base, "--channels", "16", "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err == [
        "protoedit: error: channel 16 is out of range: 'conv1' of DigitsNet has 16 channels "
        "(0-15) (--channels)"
    ]
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[settings]\npreset = "nope"\n[[model]]\nnet = "{DIGITS}"\nweights = "{weights}"\n'
        'layers = ["conv1"]\n'
    )
    assert main(["sweep", "--plan", str(plan), "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith(f"protoedit: error: {plan}: unknown preset 'nope'")
    assert not err[0].endswith("(--preset)") and len(err) == 1  # the plan file set it


def test_the_progress_bar_shows_only_on_a_terminal(capsys: pytest.CaptureFixture[str]) -> None:
    from protoedit.progress import progress_bar

    with progress_bar(3, unit="net") as bar:  # stderr is captured: not a terminal
        bar.update(3)
    assert capsys.readouterr().err == ""
    with progress_bar(3, unit="net", enabled=True, desc="validate") as bar:
        bar.update(3)
    assert "validate" in capsys.readouterr().err
