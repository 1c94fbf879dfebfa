"""`protoedit format` and `protoedit check`, and the pre-commit hooks that run them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from protoedit.cli import main

from .helpers import FIXTURES, ROOT

FEATURES = FIXTURES / "syntax" / "all_features.prototxt"


def _run(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    bindir = str(Path(sys.executable).parent)
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    return subprocess.run(
        ["protoedit", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )


def test_format_prints_canonical_text_and_a_second_pass_changes_nothing(tmp_path: Path) -> None:
    first = _run("format", str(FEATURES))
    assert first.returncode == 0
    assert "layer {  # colon before a brace, comment after it\n" in first.stdout
    assert "  param {\n    lr_mult: 1\n    decay_mult: 0\n  }\n" in first.stdout
    formatted = tmp_path / "f.prototxt"
    formatted.write_text(first.stdout)
    assert _run("format", "--check", str(formatted)).returncode == 0
    assert _run("format", str(formatted)).stdout == first.stdout


def test_format_check_diff_and_in_place(tmp_path: Path) -> None:
    target = tmp_path / "net.prototxt"
    target.write_text("layer { name: 'a' }\n")
    checked = _run("format", "--check", str(target))
    assert checked.returncode == 1 and f"would reformat {target}" in checked.stderr
    diffed = _run("format", "--diff", str(target))
    assert diffed.returncode == 0 and "+  name: 'a'" in diffed.stdout
    assert target.read_text() == "layer { name: 'a' }\n"
    assert _run("format", "-i", str(target)).returncode == 0
    assert target.read_text() == "layer {\n  name: 'a'\n}\n"
    assert _run("format", "--check", str(target)).returncode == 0


def test_format_reads_stdin_and_reports_errors_with_its_name() -> None:
    done = _run("format", "-", stdin="a:1")
    assert done.returncode == 0 and done.stdout == "a: 1\n"
    failed = _run("format", "--stdin-filename", "model.prototxt", "-", stdin="a {")
    assert failed.returncode == 2
    assert "model.prototxt:1:4: unclosed '{' opened at 1:3" in failed.stderr


def test_format_leaves_a_broken_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "broken.prototxt"
    target.write_text("layer {\n  name: 'a'\n")
    assert _run("format", "-i", str(target)).returncode == 2
    assert target.read_text() == "layer {\n  name: 'a'\n"


def test_format_is_idempotent_and_keeps_comments_over_the_corpus(corpus: Path) -> None:
    from protoedit import format_text

    for path in sorted(corpus.glob("*.prototxt")):
        text = path.read_bytes().decode("utf-8")
        if "${" in text:
            continue
        once = format_text(text, path.name)
        assert format_text(once, path.name) == once, path.name
        comments = [line[line.index("#") :].strip() for line in text.splitlines() if "#" in line]
        for comment in comments:
            assert comment in once, (path.name, comment)


@pytest.mark.parametrize(
    ("name", "code", "codes"),
    [
        ("problems", 1, ["E205", "E202", "W203", "E203"]),
        ("legacy", 0, ["W201", "W202"]),
        ("mixed", 1, ["E201"]),
        ("phases", 1, ["E202"]),
    ],
)
def test_check_findings(
    name: str, code: int, codes: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = FIXTURES / "lint" / f"{name}.prototxt"
    assert main(["check", str(path)]) == code
    lines = capsys.readouterr().out.splitlines()
    found = [re.match(rf"^{re.escape(str(path))}:\d+:\d+: (\w\d+) ", line) for line in lines]
    assert all(found), lines
    assert [m.group(1) for m in found if m] == codes


def test_check_strict_fails_on_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "--strict", str(FIXTURES / "lint" / "legacy.prototxt")]) == 1


def test_check_reports_syntax_and_schema_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.prototxt"
    broken.write_text("layer {\n  name: \n}\n")
    typo = tmp_path / "typo.prototxt"
    typo.write_text('layer { name: "a" type: "Input" top: "a" inputparam { } }\n')
    assert main(["check", str(broken), str(typo)]) == 1
    out = capsys.readouterr().out
    assert f"{broken}:3:1: E001 expected a value after ':', found '}}'" in out
    assert f"{typo}:1:42: E101 unknown field 'inputparam'" in out
    assert main(["check", str(tmp_path / "missing.prototxt")]) == 2


def test_check_with_a_fork_schema(corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from protoedit.caffe.build import caffe_proto_path

    if not caffe_proto_path().is_file():
        pytest.skip("Caffe source package not unpacked")
    ssd = corpus / "chuanqi305__MobileNet-SSD__voc__MobileNetSSD_deploy.prototxt"
    assert main(["check", str(ssd)]) == 1
    assert main(["check", "--proto", str(caffe_proto_path()), str(ssd)]) == 0


def test_pre_commit_hooks_are_declared_and_run(tmp_path: Path) -> None:
    hooks = {
        hook["id"]: hook for hook in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    }
    assert set(hooks) == {"protoedit-format", "protoedit-check", "protoedit-validate"}
    for hook in hooks.values():
        pattern = re.compile(hook["files"])
        assert pattern.search("models/net.prototxt") and pattern.search("a/b.pbtxt")
        assert not pattern.search("net.prototxt.bak") and not pattern.search("net.proto")
    unformatted = tmp_path / "net.prototxt"
    unformatted.write_text(
        "layer { name: 'a' type: 'Input' top: 'a' input_param { shape { dim: 1 } } }\n"
    )
    formatter = _run(*hooks["protoedit-format"]["entry"].split()[1:], str(unformatted))
    assert formatter.returncode == 0 and unformatted.read_text().startswith("layer {\n")
    checker = _run(*hooks["protoedit-check"]["entry"].split()[1:], str(unformatted))
    assert checker.returncode == 0, checker.stdout
    bad = tmp_path / "bad.prototxt"
    bad.write_text("layer { bottom: 'nothing' }\n")
    assert _run(*hooks["protoedit-check"]["entry"].split()[1:], str(bad)).returncode == 1


def test_rewrites_carry_unknown_fields_verbatim_when_lenient(tmp_path: Path) -> None:
    net = tmp_path / "fork.prototxt"
    net.write_text(
        'layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 } } }\n'
        'layer { name: "up" type: "ReLU" bottom: "data" top: "up"\n'
        "  fork_only_param { factor: 2 }  # a fork's field\n}\n"
    )
    strict = _run("force-backward", str(net))
    assert strict.returncode == 2 and "unknown field 'fork_only_param'" in strict.stderr
    lenient = _run("force-backward", "--lenient", str(net))
    assert lenient.returncode == 0
    assert "warning: " in lenient.stderr and "W101" in lenient.stderr
    assert "  fork_only_param { factor: 2 }  # a fork's field\n" in lenient.stdout
    assert lenient.stdout.startswith("force_backward: true\n")


def _tree(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


UNFORMATTED = "layer { name: 'a' }\n"


def test_folders_are_walked_sorted_minus_hidden_gitignored_and_excluded(tmp_path: Path) -> None:
    _tree(
        tmp_path,
        {
            "b.prototxt": UNFORMATTED,
            "a/x.pbtxt": UNFORMATTED,
            "a/notes.txt": UNFORMATTED,
            "a/skip_me.prototxt": UNFORMATTED,
            "a/keep_me.prototxt": UNFORMATTED,
            "a/.gitignore": "skip_*.prototxt\n",
            ".gitignore": "build/\n*.bak\n",
            "build/gen.prototxt": UNFORMATTED,
            ".hidden/h.prototxt": UNFORMATTED,
            "ssd/labelmap.prototxt": UNFORMATTED,
            "ssd/deploy.prototxt": UNFORMATTED,
        },
    )
    done = _run("format", "--check", ".", "--exclude", "labelmap.prototxt", cwd=tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"would reformat ./{name}"
        for name in ["a/keep_me.prototxt", "a/x.pbtxt", "b.prototxt", "ssd/deploy.prototxt"]
    ]
    assert _run("format", "-i", "a", "--exclude", "/a/keep_*", cwd=tmp_path).returncode == 0
    assert (tmp_path / "a" / "x.pbtxt").read_text() == "layer {\n  name: 'a'\n}\n"
    assert (tmp_path / "a" / "keep_me.prototxt").read_text() == UNFORMATTED
    assert (tmp_path / "a" / "skip_me.prototxt").read_text() == UNFORMATTED


LABELMAP = 'item {\n  name: "none_of_the_above"\n  label: 0\n  display_name: "background"\n}\n'


def test_the_check_hook_can_skip_a_labelmap_given_by_name(tmp_path: Path) -> None:
    _tree(tmp_path, {"ssd/labelmap.prototxt": LABELMAP, "ssd/deploy.prototxt": 'name: "ssd"\n'})
    names = ["ssd/labelmap.prototxt", "ssd/deploy.prototxt"]  # as pre-commit passes them
    entry = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[1]["entry"].split()
    assert entry[:2] == ["protoedit", "check"]
    failed = _run(*entry[1:], *names, cwd=tmp_path)
    assert failed.returncode == 1 and "E101 unknown field 'item'" in failed.stdout
    skipped = _run(*entry[1:], "--exclude", "labelmap.prototxt", *names, cwd=tmp_path)
    assert skipped.returncode == 0 and skipped.stdout == ""
    assert _run(*entry[1:], "--type", "NetParameter", "ssd", cwd=tmp_path).returncode == 1


def test_check_reads_stdin_under_its_name() -> None:
    net = "layer { name: 'c' type: 'ReLU' bottom: 'x' top: 'x' }\n"
    done = _run("check", "-", stdin=net)
    assert done.returncode == 1
    assert done.stdout.startswith("<stdin>:1:32: E202 bottom 'x' of layer 'c'")
    named = _run("check", "--stdin-filename", "net.prototxt", "-", stdin=net)
    assert named.stdout.startswith("net.prototxt:1:32: E202 ")


def test_format_diff_never_writes_even_with_check(tmp_path: Path) -> None:
    target = tmp_path / "net.prototxt"
    target.write_text(UNFORMATTED)
    done = _run("format", "--diff", "--check", str(target))
    assert done.returncode == 1 and "+  name: 'a'\n" in done.stdout
    assert f"would reformat {target}" in done.stderr
    assert target.read_text() == UNFORMATTED


@pytest.mark.caffe
def test_check_suggests_the_installed_caffes_schema_for_its_layer_types(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from protoedit.caffe.build import caffe_proto_path, source_dir
    from protoedit.net.layers import registered_types

    registered = registered_types(source_dir())
    assert {"Convolution", "Python", "Permute", "PriorBox"} <= registered
    assert "Inception" not in registered  # a commented-out registration
    ssd = corpus / "chuanqi305__MobileNet-SSD__voc__MobileNetSSD_deploy.prototxt"
    assert main(["check", str(ssd)]) == 1
    hint = capsys.readouterr().err.splitlines()[-1]
    assert hint == (
        "hint: the installed Caffe registers DetectionOutput, Permute, PriorBox; check against "
        f"its schema with --proto {caffe_proto_path()}"
    )
    assert main(["check", str(FIXTURES / "lint" / "problems.prototxt")]) == 1
    assert "hint:" not in capsys.readouterr().err  # a typo ('Convolutoin') is no fork type
