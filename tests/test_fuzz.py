"""Seeded, time-bounded fuzzing of the public entry points: only ``ProtoeditError`` may escape.

Inputs are mutated text files (the repository's fixtures, nets generated here, and the shared
corpus when present; token deletions, duplications and swaps, inserted brackets, odd numbers,
random characters, truncation, repeated fields rewritten in list form) and generated deep
nesting.  Each input goes through ``loads`` (strict and lenient), ``check_files``,
``format_text`` and a few rewrites drawn at random.

Reproducible: case ``group:index`` draws everything from ``Random(f"{SEED}:{group}:{index}")``;
``PROTOEDIT_FUZZ_CASE=group:index`` replays one case, ``PROTOEDIT_FUZZ_SEED`` changes the seed,
``PROTOEDIT_FUZZ_SECONDS`` the total time (60 s by default, shared by the tests below): CPU
time, spent by one process per core (up to 4), so 30 s of wall time on 2 idle cores.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing
import os
import random
import re
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from protoedit import ProtoeditError, format_text, loads
from protoedit.cli.format_check import check_files
from protoedit.document import Document
from protoedit.net.layers import BVLC_TYPES, layer_type
from protoedit.syntax import parse
from protoedit.syntax.parser import MAX_DEPTH
from protoedit.syntax.tree import Block, Field, Scalar

from .helpers import FIXTURES, report_lines
from .test_rewrites import run_rewrite

pytestmark = pytest.mark.fuzz

SEED = int(os.environ.get("PROTOEDIT_FUZZ_SEED", "20261201"))
SECONDS = float(os.environ.get("PROTOEDIT_FUZZ_SECONDS", "60"))
REPLAY = os.environ.get("PROTOEDIT_FUZZ_CASE", "")

#: Crash classes known and being fixed (empty: every one found so far is fixed and has a
#: regression test).  A non-``ProtoeditError`` of a listed type whose innermost protoedit
#: frame is in the listed file (or under the folder) is counted instead of failing the run.
KNOWN_CRASHES: list[tuple[str, type[BaseException], str]] = []


@dataclass
class _Tally:
    """What a fuzz run did: cases, calls, refusals, known crashes and new ones."""

    cases: int = 0
    calls: int = 0
    refused: int = 0
    known: Counter[str] = field(default_factory=Counter)
    crashes: dict[str, str] = field(default_factory=dict)  # signature -> reproducer


def _report_line(group: str, tally: _Tally) -> str:
    """What the fuzzing of ``group`` did, for the end-of-run report."""
    known = ", ".join(f"{what}: {n}" for what, n in tally.known.items()) or "none"
    return (
        f"{group}: {tally.cases} cases, {tally.calls} calls, {tally.refused} refused with "
        f"a ProtoeditError, {len(tally.crashes)} new crash classes; known crashes: {known}"
    )


# -- mutations ---------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"\"(?:[^\"\\\n]|\\.)*\"|'(?:[^'\\\n]|\\.)*'|#[^\n]*|[A-Za-z_][A-Za-z0-9_]*"
    r"|-?\.?[0-9][0-9A-Za-z_.+-]*|\s+|.",
    re.DOTALL,
)
_BRACKETS = ["{", "}", "[", "]", "<", ">", ":", ",", ";", "{}", "[]", ": [", "# x\n", "\n"]
_NUMBERS = ["0", "-1", "1", "3", "2147483648", "-2147483649", "4294967296", "1e40", "-0", "nan"]
_NUMBERS += ["inf", "0x", "1.5", "100000", "0x7fffffff", "1.", "077", "-inf", "1e-50"]
_CHARS = ["\x00", "\r", "\t", "\ufeff", "é", "\u2028", "\x7f", "$", "@", "\\", '"', "'", "\f"]


def _significant(tokens: list[str]) -> list[int]:
    return [i for i, tok in enumerate(tokens) if not tok.isspace() and not tok.startswith("#")]


def _span(value: Block | Scalar) -> tuple[int, int]:
    if isinstance(value, Block):
        return value.open.pos, value.close.pos + 1
    return value.parts[0].pos, value.parts[-1].pos + len(value.parts[-1].text)


def _list_form(text: str, rng: random.Random) -> str:
    """A run of adjacent same-name fields rewritten as one list: ``a: 1 a: 2`` -> ``a: [1, 2]``."""
    try:
        tree = parse(text)
    except ProtoeditError:
        return text
    runs: list[list[Field]] = []
    stack = [tree.fields]
    while stack:
        run: list[Field] = []
        for f in stack.pop():
            if isinstance(f.value, Block):
                stack.append(f.value.fields)
            joins = isinstance(f.value, Block | Scalar) and f.sep is None
            kind = (f.name.text, type(f.value))
            if joins and run and kind == (run[0].name.text, type(run[0].value)):
                run.append(f)
                continue
            if len(run) > 1:
                runs.append(run)
            run = [f] if joins else []
        if len(run) > 1:
            runs.append(run)
    if not runs:
        return text
    run = rng.choice(runs)
    spans = [_span(f.value) for f in run if isinstance(f.value, Block | Scalar)]
    values = ", ".join(text[start:end] for start, end in spans)
    return f"{text[: run[0].pos]}{run[0].name.text}: [{values}]{text[spans[-1][1] :]}"


def _mutate(text: str, rng: random.Random) -> tuple[str, str]:
    """One random mutation of ``text`` and its name."""
    kind = rng.choice(
        [
            "delete",
            "duplicate",
            "swap",
            "bracket",
            "number",
            "name",
            "chars",
            "truncate",
            "list form",
            "list form",
        ]
    )
    if kind == "truncate":
        return text[: rng.randrange(len(text) + 1)], kind
    if kind == "list form":
        return _list_form(text, rng), kind
    tokens = _TOKEN.findall(text)
    significant = _significant(tokens) or [0]
    if not tokens:
        tokens = [""]
    at = rng.choice(significant)
    if kind == "delete":
        tokens[at] = ""
    elif kind == "duplicate":
        tokens[at] = tokens[at] + " " + tokens[at]
    elif kind == "swap":
        other = rng.choice(significant)
        tokens[at], tokens[other] = tokens[other], tokens[at]
    elif kind == "bracket":
        tokens.insert(rng.randrange(len(tokens) + 1), rng.choice(_BRACKETS))
    elif kind == "number":
        numbers = [i for i in significant if tokens[i][:1] in "-.0123456789"] or [at]
        tokens[rng.choice(numbers)] = rng.choice(_NUMBERS)
    elif kind == "name":
        names = [i for i in significant if tokens[i][:1].isalpha()] or [at]
        tokens[rng.choice(names)] = tokens[rng.choice(names)]
    else:
        chars = [rng.choice([*_CHARS, chr(rng.randrange(32, 127))]) for _ in range(3)]
        position = rng.randrange(len(tokens) + 1)
        tokens[position:position] = rng.sample(chars, rng.randint(1, 3))
    return "".join(tokens), kind


# -- generated inputs --------------------------------------------------------------------------

#: Every type BVLC Caffe registers (the catalogue's), wired at random.
_TYPES = sorted(BVLC_TYPES)


def _param_field(kind: str) -> str:
    entry = layer_type(kind)
    assert entry is not None and entry.param_field is not None, kind
    return entry.param_field


def _layer_params(kind: str, rng: random.Random) -> str:
    def dims() -> str:
        return " ".join(f"dim: {rng.choice([-1, 0, 1, 2, 3, 8])}" for _ in range(rng.randint(0, 4)))

    if kind in ("Convolution", "Deconvolution", "Pooling"):
        name = _param_field(kind)
        parts = [f"kernel_size: {rng.randint(0, 5)}" for _ in range(rng.randint(0, 3))]
        parts += [f"stride: {rng.randint(0, 3)}"] * rng.randint(0, 1)
        parts += [f"pad: {rng.randint(0, 2)}"] * rng.randint(0, 1)
        if kind != "Pooling":
            parts += [f"num_output: {rng.randint(0, 16)}"] * rng.randint(0, 1)
            parts += [f"group: {rng.randint(1, 3)}"] * rng.randint(0, 1)
        else:
            parts += [f"pool: {rng.choice(['MAX', 'AVE'])}", "global_pooling: true"][
                : rng.randint(0, 2)
            ]
        return f"{name} {{ {' '.join(parts)} }}"
    if kind == "InnerProduct":
        return (
            f"inner_product_param {{ num_output: {rng.randint(0, 10)} axis: {rng.randint(-2, 2)} }}"
        )
    if kind in ("Concat", "Slice", "Softmax", "Flatten"):
        return f"{_param_field(kind)} {{ axis: {rng.randint(-4, 4)} }}"
    if kind == "Reshape":
        return f"reshape_param {{ shape {{ {dims()} }} }}"
    if kind == "Crop":
        return f"crop_param {{ axis: {rng.randint(0, 3)} offset: {rng.randint(0, 2)} }}"
    if kind == "Reduction":
        return f"reduction_param {{ axis: {rng.randint(-3, 3)} operation: SUM }}"
    return ""


def _generated_net(rng: random.Random) -> str:
    """A small net of random layers wired to earlier tops (often nonsense, always text)."""
    dims = " ".join(f"dim: {rng.choice([0, 1, 2, 3, 5, 8, 32])}" for _ in range(rng.randint(0, 5)))
    lines = ['name: "fuzz"']
    if rng.random() < 0.2:
        lines.append('input: "data" ' + " ".join(f"input_dim: {d}" for d in (1, 3, 8, 8)))
    else:
        lines.append(
            'layer { name: "data" type: "Input" top: "data" '
            f"input_param {{ shape {{ {dims} }} }} }}"
        )
    if rng.random() < 0.3:
        lines.append(
            'layer { name: "train_data" type: "Data" top: "data" top: "label" include { phase: '
            "TRAIN } transform_param { crop_size: 8 mean_value: 1 } data_param { batch_size: 2 } }"
        )
    tops = ["data"]
    for index in range(rng.randint(1, 8)):
        kind = rng.choice(_TYPES)
        bottoms = [rng.choice(tops) for _ in range(rng.randint(1, 2))]
        top = bottoms[0] if rng.random() < 0.2 else f"b{index}"
        text = " ".join(f'bottom: "{b}"' for b in bottoms)
        lines.append(
            f'layer {{ name: "l{index}" type: "{kind}" {text} top: "{top}" '
            f"{_layer_params(kind, rng)} }}"
        )
        tops.append(top)
    return "\n".join(lines) + "\n"


def _generated_nesting(rng: random.Random) -> str:
    """Blocks nested around (and past) the depth limit, some of them wide."""
    depth = rng.choice([rng.randint(1, 3 * MAX_DEPTH), rng.randint(MAX_DEPTH - 3, MAX_DEPTH + 3)])
    openers = [rng.choice(["{", "<", ": {", ": [{"]) for _ in range(depth)]
    closers = {"{": "}", "<": ">", ": {": "}", ": [{": "}]"}
    width = rng.choice([0, 1, 5, 2000])
    head = "".join(
        f"n {opener} " + "w: 1 " * (width if rng.random() < 0.02 else 0) for opener in openers
    )
    return head + "leaf: 1 " + " ".join(closers[o] for o in reversed(openers)) + "\n"


# -- running one input through every entry point -----------------------------------------------


def _targets(doc: Document) -> list[str]:
    net = doc.message
    names: list[str] = ["nosuch"]
    for layer in [*getattr(net, "layer", []), *getattr(net, "layers", [])]:
        names += [layer.name, *layer.top]
    return names


def _calls(
    text: str, rng: random.Random, check_path: Path
) -> Iterator[tuple[str, Callable[[], object]]]:
    def check() -> object:
        check_path.write_text(text, encoding="utf-8", errors="surrogatepass")
        return check_files([str(check_path)], strict=rng.random() < 0.5)

    yield "loads", lambda: loads(text).message
    yield "loads(lenient=True)", lambda: loads(text, lenient=True).message
    yield "format_text", lambda: format_text(text, "fuzz.prototxt")
    yield "check_files", check
    lenient = rng.random() < 0.5
    try:
        targets = _targets(loads(text, lenient=lenient))
    except ProtoeditError:
        return
    head = {
        "kind": rng.choice(["channel", "unit", "sumsq", "logit"]),
        "channel": rng.randint(0, 3),
        "reduce": rng.choice(["mean", "sum"]),
        "weight": rng.choice([1.0, -1.0]),
    }
    target = rng.choice(targets)
    inplace = rng.random() < 0.3
    shape = rng.choice([None, [1, 3, 8, 8], [2, 1, 5]])
    phase = rng.choice(["TEST", "TRAIN"])
    # the arguments of each rewrite, as a golden case of tests/test_rewrites.py gives them
    rewrites: dict[str, dict[str, Any]] = {
        "upgrade": {},
        "to_deploy": {
            "phase": phase,
            "shape": shape,
            "input_channels": rng.choice([None, 3]),
        },
        "force_backward": {},
        "filter": {"phase": phase, "level": rng.randint(0, 2), "stages": ["a"] * rng.randint(0, 1)},
        "truncate": {"target": target, "after_inplace": inplace},
        "add_loss": {
            "target": target,
            **head,
            "after_inplace": inplace,
            "target_channels": rng.choice([None, 4]),
        },
        "aux": {
            "target": target,
            **head,
            "after_inplace": inplace,
            "shape": shape,
            "input_channels": rng.choice([None, 3]),
        },
    }
    for name in rng.sample(sorted(rewrites), 4):

        def run(name: str = name) -> object:
            doc = loads(text, lenient=lenient)
            run_rewrite(name, doc, rewrites[name])
            return loads(doc.dumps(), lenient=lenient)  # as the CLI re-checks its result

        yield (
            name + (f"(target={target!r})" if name in ("truncate", "add_loss", "aux") else ""),
            run,
        )


def _innermost(exc: BaseException) -> str:
    """``path:line`` of the innermost frame in protoedit's own code."""
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if "/protoedit/" in frame.filename.replace(os.sep, "/"):
            where = f"{frame.filename.replace(os.sep, '/').split('/protoedit/')[-1]}:{frame.lineno}"
            where = "protoedit/" + where
    return where


def _known(exc: BaseException) -> str | None:
    where = _innermost(exc)
    for what, kind, path in KNOWN_CRASHES:
        if type(exc) is kind and where.startswith(path if path.endswith("/") else path + ":"):
            return what
    return None


def _failure(call: Callable[[], object], tally: _Tally) -> tuple[str, str] | None:
    """Run one call and count how it ended; (signature, detail) when it failed for real."""
    tally.calls += 1
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            call()
    except ProtoeditError as exc:
        if "formatter bug" in exc.message:  # the formatter's own safety nets fired
            return "formatter bug", str(exc)
        tally.refused += 1
    except Exception as exc:
        known = _known(exc)
        if known is None:
            return f"{type(exc).__name__} at {_innermost(exc)}", repr(exc)
        tally.known[known] += 1
    return None


def _run_case(case: str, text: str, rng: random.Random, tally: _Tally, tmp: Path) -> None:
    tally.cases += 1
    for name, call in _calls(text, rng, tmp / "fuzz.prototxt"):
        failure = _failure(call, tally)
        if failure is None:
            continue
        signature = f"{failure[0]} in {name.split('(')[0]}"
        if signature not in tally.crashes:
            saved = tmp / f"crash{len(tally.crashes)}.prototxt"
            saved.write_text(text, encoding="utf-8", errors="surrogatepass")
            tally.crashes[signature] = (
                f"{signature}: {failure[1]}\n    {name} on {saved} "
                f"(replay: PROTOEDIT_FUZZ_CASE={case} PROTOEDIT_FUZZ_SEED={SEED})"
            )


@dataclass(frozen=True)
class _Source:
    """Where a group's cases start: a text of ``files``, or with ``generated`` also generated
    nets (half the cases) and generated nesting (a tenth).  Picklable: the fuzzing processes
    get it."""

    files: tuple[Path, ...]
    generated: bool = False

    def maker(self) -> Callable[[random.Random], str]:
        texts = [path.read_text(encoding="utf-8", errors="replace") for path in self.files]
        if not self.generated:
            return lambda rng: rng.choice(texts)

        def make(rng: random.Random) -> str:
            pick = rng.random()
            if pick < 0.4:
                return rng.choice(texts)
            if pick < 0.9:
                return _generated_net(rng)
            return _generated_nesting(rng)

        return make


#: Processes that fuzz a group together (the cases interleaved): the same CPU time in less
#: wall time.  At most 4: each one pays its imports.  One under pytest-xdist, whose workers
#: already keep the cores busy, and when replaying.
WORKERS = max(1, min(4, len(os.sched_getaffinity(0))))
if REPLAY or os.environ.get("PYTEST_XDIST_WORKER"):
    WORKERS = 1


def _fuzz_part(group: str, source: _Source, first: int, seconds: float, tmp: Path) -> _Tally:
    """Cases ``first``, ``first + WORKERS``, ... of ``group`` for ``seconds`` (or the replayed
    one)."""
    tally = _Tally()
    make = source.maker()
    warm = _Tally()  # the first case of a process pays for lazy imports and schema parsing
    _run_case(f"{group}:warm-up", make(random.Random(SEED)), random.Random(SEED), warm, tmp)
    deadline = time.process_time() + seconds  # CPU time: a busy machine gets no fewer cases
    indices: Iterator[int] = iter(range(first, 10**9, WORKERS))
    if REPLAY:
        wanted_group, _, wanted = REPLAY.rpartition(":")
        indices = iter([int(wanted)] if wanted_group == group else [])
    for index in indices:
        if not REPLAY and time.process_time() > deadline:
            break
        case = f"{group}:{index}"
        rng = random.Random(f"{SEED}:{case}")
        text = make(rng)
        for _ in range(rng.choice([0, 1, 1, 2, 3])):
            text, _kind = _mutate(text, rng)
        _run_case(case, text, rng, tally, tmp / f"worker{first}")
    return tally


def _fuzz(group: str, source: _Source, share: float, tmp: Path) -> _Tally:
    """Run cases of ``group`` until its share of the time is used (CPU time, spread over
    ``WORKERS`` processes), or replay one case."""
    seconds = SECONDS * share / WORKERS
    for first in range(WORKERS):
        (tmp / f"worker{first}").mkdir()
    if WORKERS == 1:
        parts = [_fuzz_part(group, source, 0, seconds, tmp)]
    else:
        spawn = multiprocessing.get_context("spawn")  # no fork of a process with threads
        with ProcessPoolExecutor(WORKERS, mp_context=spawn) as pool:
            futures = [
                pool.submit(_fuzz_part, group, source, first, seconds, tmp)
                for first in range(WORKERS)
            ]
            parts = [future.result() for future in futures]
    tally = _Tally()
    for part in parts:
        tally.cases += part.cases
        tally.calls += part.calls
        tally.refused += part.refused
        tally.known += part.known
        tally.crashes = part.crashes | tally.crashes
    line = _report_line(group, tally)
    print(line)
    report_lines("fuzzing", [line])
    return tally


def _assert_no_new_crashes(tally: _Tally) -> None:
    assert not tally.crashes, "non-ProtoeditError escaped:\n" + "\n".join(tally.crashes.values())


def _replaying_another(group: str) -> bool:
    """True when ``PROTOEDIT_FUZZ_CASE`` replays a case of another test's group."""
    return bool(REPLAY) and not REPLAY.startswith(f"{group}:")


def test_fuzz_fixtures_and_generated_nets(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    if _replaying_another("generated"):
        pytest.skip(f"replaying {REPLAY}")
    source = _Source(tuple(sorted(FIXTURES.rglob("*.prototxt"))), generated=True)
    tally = _fuzz("generated", source, 0.35, tmp_path)
    record_property("fuzz_cases", tally.cases)
    assert tally.cases > 0 and tally.calls > tally.cases
    _assert_no_new_crashes(tally)


def test_fuzz_mutated_corpus(
    corpus: Path, tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    if _replaying_another("corpus"):
        pytest.skip(f"replaying {REPLAY}")
    files = [p for p in sorted(corpus.glob("*.prototxt")) if p.stat().st_size < 200_000]
    tally = _fuzz("corpus", _Source(tuple(files)), 0.65, tmp_path)
    record_property("fuzz_cases", tally.cases)
    assert tally.cases > 0
    _assert_no_new_crashes(tally)
