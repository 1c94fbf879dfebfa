"""Load speed: protoedit (lossless tree + typed message) against protobuf's text_format.Parse.

Both sides parse the same files into the same message class (protoedit's built-in schema),
unknown fields tolerated on both sides (``lenient=True`` / ``allow_unknown_field=True``), in
one process, best of several rounds.  Also times ``protoedit check`` over the whole corpus.

    .venv/bin/python bench/bench_load.py [CORPUS_DIR] [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf import text_format

from protoedit import builtin_schema, loads
from protoedit.cli.format_check import check_files
from protoedit.errors import ProtoeditError
from protoedit.syntax import parse

DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"


def best_of(rounds: int, work: Callable[[], object]) -> float:
    """The fastest of ``rounds`` timed runs, in seconds."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    schema = builtin_schema()
    files = []
    for path in sorted(args.corpus.glob("*.prototxt")):
        text = path.read_bytes().decode("utf-8")
        try:  # files both sides can read (not templates, not other message types)
            kind = loads(text, lenient=True, path=path.name).message_type
            text_format.Parse(text, schema.message_class(kind)(), allow_unknown_field=True)
        except (ProtoeditError, text_format.ParseError):
            continue
        files.append((path, text, schema.message_class(kind)))
    largest = max(files, key=lambda item: len(item[1]))
    print(
        f"{len(files)} files, {sum(len(t) for _, t, _ in files) / 1e6:.2f} MB; largest "
        f"{largest[0].name} ({len(largest[1]) / 1e3:.0f} kB); best of {args.rounds} rounds"
    )

    def ours(items: list[tuple[Path, str, type]]) -> Callable[[], None]:
        return lambda: [loads(text, lenient=True) for _, text, _ in items] and None

    def theirs(items: list[tuple[Path, str, type]]) -> Callable[[], None]:
        return lambda: (
            [text_format.Parse(text, cls(), allow_unknown_field=True) for _, text, cls in items]
            and None
        )

    def tree_only(items: list[tuple[Path, str, type]]) -> Callable[[], None]:
        return lambda: [parse(text) for _, text, _ in items] and None

    print(f"{'':28}{'text_format':>12}{'protoedit':>12}{'ratio':>8}  (tree only)")
    for label, items in (("whole corpus", files), ("largest file", [largest])):
        reference = best_of(args.rounds, theirs(items))
        measured = best_of(args.rounds, ours(items))
        tree = best_of(args.rounds, tree_only(items))
        print(
            f"{label:28}{reference:>11.3f}s{measured:>11.3f}s{measured / reference:>7.2f}x"
            f"  ({tree:.3f}s)"
        )
    paths = [str(p) for p in sorted(args.corpus.glob("*.prototxt"))]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        check_time = best_of(args.rounds, lambda: check_files(paths, strict=False))
    reference_all = best_of(args.rounds, theirs(files))
    print(
        f"protoedit check, {len(paths)} files, one process: {check_time:.3f}s "
        f"({check_time / reference_all:.2f}x text_format.Parse of the readable files)"
    )
    print("ratio < 1 means protoedit is faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
