"""Every numeric option of every command refuses an out-of-range value with exit 2 and one
line naming the option; the library refuses the same values with an InvalidArgumentError
naming its parameter, before any Caffe worker starts (no Caffe here)."""

from __future__ import annotations

import contextlib
import io
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protoedit.cli import main
from protoedit.errors import InvalidArgumentError

from .helpers import FIXTURES

NOT_NUMBERS = st.sampled_from(["x", "", "1,2", "nan", "inf", "-inf", "1e400"])
REAL_JUNK = st.sampled_from(["x", "", "nan", "inf", "-inf", "1e400", "1,2"])


def _below(minimum: int) -> st.SearchStrategy[str]:
    """Integers under ``minimum``, fractions and words."""
    return st.integers(max_value=minimum - 1).map(str) | st.just("1.5") | NOT_NUMBERS


#: What each kind of option must refuse.
BAD: dict[str, st.SearchStrategy[str]] = {
    "count": _below(1),  # at least 1
    "index": _below(0),  # at least 0
    "seconds": st.floats(max_value=0, allow_nan=False).map(repr) | REAL_JUNK,
    "nonzero": st.sampled_from(["0", "-0", "0.0", "0e5"]) | REAL_JUNK,
    "fraction": st.floats(max_value=-1e-9, allow_nan=False).map(repr) | REAL_JUNK,
    "numbers": st.sampled_from(["104,nan,123", "inf", "1,,2", "x", "1,-inf"]),
    "size": st.sampled_from(["-1", "x", "4Q", "", "1.2.3G"]),
    "dims": st.sampled_from(["0,1,2,3", "1,-1,8,8", "1,x", "nan"]),
    "unit": st.sampled_from(["-1", "1,-2,3", "x", "1.5"]),
}

_EXPLAIN = {
    "--timeout": "seconds",
    "--scale": "nonzero",
    "--mean": "numbers",
}
_HEAD = {
    "--channel": "index",
    "--class": "index",
    "--unit": "unit",
    "--weight": "nonzero",
    "--channels": "count",
}
#: command -> {option: kind}: every option of the command that takes a number.
OPTIONS: dict[str, dict[str, str]] = {
    "validate": {
        "--jobs": "count",
        "--batch": "count",
        "--seed": "index",
        "--timeout": "seconds",
        "--memory-limit": "size",
    },
    "grad": {**_EXPLAIN, **_HEAD},
    "saliency": {
        **_EXPLAIN,
        **_HEAD,
        "--samples": "count",
        "--noise": "fraction",
        "--seed": "index",
        "--steps": "count",
        "--chunk": "count",
    },
    "visualize": {
        **_EXPLAIN,
        "--class": "index",
        "--units": "unit",
        "--steps": "count",
        "--seed": "index",
        "--octaves": "count",
        "--batch": "count",
    },
    "sweep": {
        "-k": "count",
        "--workers": "count",
        "--batch": "count",
        "--steps": "count",
        "--seed": "index",
        "--scale": "nonzero",
        "--mean": "numbers",
    },
    "add-loss": dict(_HEAD),
    "aux": {
        **_HEAD,
        "--batch": "count",
        "--input-channels": "count",
        "--shape": "dims",
        "--memory-limit": "size",
        "--timeout": "seconds",
    },
    "to-deploy": {"--shape": "dims", "--channels": "count", "--batch": "count"},
    "top-images": {
        "-k": "count",
        "--batch": "count",
        "--timeout": "seconds",
        "--scale": "nonzero",
        "--mean": "numbers",
    },
    "summary": {"--batch": "count"},
    "export": {
        "--opset": "count",
        "--seed": "index",
        "--timeout": "seconds",
        "--scale": "nonzero",
        "--mean": "numbers",
    },
}
CASES = [(command, option) for command, options in OPTIONS.items() for option in options]


def _argv(command: str, option: str, value: str) -> list[str]:
    positional = [] if command == "sweep" else ["net.prototxt"]
    return [command, *positional, f"{option}={value}"]


def _refused(command: str, option: str, value: str) -> None:
    """The CLI exits 2 with one line that names ``option``."""
    stderr = io.StringIO()
    with pytest.raises(SystemExit) as exit_info, contextlib.redirect_stderr(stderr):
        main(_argv(command, option, value))
    err = stderr.getvalue()
    assert exit_info.value.code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"protoedit {command}: error: argument {option}"), lines[0]


#: One value each kind refuses, for the pass over every option.
FIRST = {"count": "0", "index": "-1", "seconds": "0", "nonzero": "0", "fraction": "-0.5"}
FIRST |= {"numbers": "104,nan,123", "size": "-1", "dims": "1,0,8,8", "unit": "-1"}


def test_every_numeric_option_refuses_a_value_out_of_range() -> None:
    for command, option in CASES:
        _refused(command, option, FIRST[OPTIONS[command][option]])


@settings(max_examples=100, deadline=None)
@given(case=st.sampled_from(CASES), data=st.data())
def test_an_out_of_range_value_is_one_line_naming_the_option(
    case: tuple[str, str], data: st.DataObject
) -> None:
    command, option = case
    _refused(command, option, data.draw(BAD[OPTIONS[command][option]]))


def test_every_numeric_option_is_driven() -> None:
    """A numeric option added to a command and not to OPTIONS fails here."""
    from protoedit.cli import build_parser

    numeric = {"positive", "index", "nonzero", "finite", "positive_seconds", "parse_size"}
    numeric |= {"floats", "dims", "unit", "_fraction", "_batch", "int", "float"}
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    found = {
        (name, action.option_strings[-1] if name != "visualize" else action.option_strings[0])
        for name, cmd in commands.items()
        for action in cmd._actions
        if getattr(action.type, "__name__", "") in numeric and action.option_strings
    }
    found = {(name, _long(commands[name], option)) for name, option in found}
    found -= {(name, "--level") for name in commands}  # any integer is a Caffe level
    assert found <= set(CASES), sorted(found - set(CASES))


def _long(cmd: Any, option: str) -> str:
    for action in cmd._actions:
        if option in action.option_strings:
            return str(max(action.option_strings, key=len))
    return option


# --- the library refuses the same values -------------------------------------------------

DIGITS = FIXTURES / "digits" / "deploy.prototxt"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("steps", 0),
        ("steps", "many"),
        ("steps", 2.5),
        ("octaves", 0),
        ("seed", -1),
        ("decay", 2.0),
        ("blur_radius", math.nan),
        ("norm_percentile", 101),
        ("octave_scale", 1.0),
        ("tile", 0),
        ("step", 0.0),
    ],
)
def test_settings_refuse_a_value_out_of_range(field: str, value: Any) -> None:
    from protoedit.explain.settings import Settings

    with pytest.raises(InvalidArgumentError) as error:
        Settings(**{field: value})
    assert error.value.argument == field


@pytest.mark.parametrize(
    ("field", "value"), [("scale", 0.0), ("scale", math.inf), ("mean", (104.0, math.nan))]
)
def test_preprocess_refuses_a_blank_or_non_finite_input(field: str, value: Any) -> None:
    from protoedit.explain import Preprocess

    with pytest.raises(InvalidArgumentError) as error:
        Preprocess(**{field: value})
    assert error.value.argument == field


@pytest.mark.parametrize("batch", [0, -3])
def test_visualize_refuses_a_batch_under_one(batch: int) -> None:
    from protoedit.explain.maximisation import visualize

    with pytest.raises(InvalidArgumentError) as error:
        visualize(DIGITS, weights=None, target="ip2", objectives=[5], batch=batch)
    assert error.value.argument == "batch"


@pytest.mark.parametrize(
    ("options", "argument"),
    [
        ({"chunk": 0}, "chunk"),
        ({"method": "integrated", "steps": 0}, "steps"),
        ({"method": "smoothgrad", "samples": -1}, "samples"),
        ({"method": "smoothgrad", "noise": math.nan}, "noise"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": math.inf}, "timeout"),
    ],
)
def test_saliency_refuses_values_out_of_range(options: dict[str, Any], argument: str) -> None:
    from protoedit.explain.methods import saliency
    from protoedit.rewrites import LossHead

    with pytest.raises(InvalidArgumentError) as error:
        saliency(
            DIGITS, weights=None, image=[[[0.0] * 8] * 8], head=LossHead("logit", 1), **options
        )
    assert error.value.argument == argument


@pytest.mark.parametrize(
    ("head", "argument"), [({"channel": -1}, "head"), ({"weight": 0.0}, "weight")]
)
def test_a_loss_head_refuses_a_negative_channel_and_a_zero_weight(
    head: dict[str, Any], argument: str
) -> None:
    from protoedit.rewrites import LossHead

    with pytest.raises(InvalidArgumentError) as error:
        LossHead("channel", **head)
    assert error.value.argument == argument


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ('[settings]\nsteps = "many"', "steps must be an integer"),
        ("[settings]\noctaves = 0", "octaves must be at least 1"),
        ('batch = "8"', "batch must be an integer"),
        ("workers = 0", "workers must be at least 1"),
    ],
)
def test_a_sweep_plan_with_a_bad_value_is_an_error_at_the_plan(
    line: str, named: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.toml"
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(b"")
    plan.write_text(
        f'{line}\n[[model]]\nnet = "{DIGITS}"\nweights = "{weights}"\nlayers = "conv1"\n'
    )
    assert main(["sweep", "--plan", str(plan), "--store", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"protoedit: error: {plan}"), err
    assert named in lines[0]
    assert not (tmp_path / "s").exists()
