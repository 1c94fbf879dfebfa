"""Which files a command visits: named files as given, folders walked for net files.

Exclusions use gitignore syntax (``pathspec``): ``--exclude`` patterns are matched against
paths relative to the current folder and drop named files and walked ones alike (pre-commit
names files one by one); a ``.gitignore`` inside a walked folder drops what it lists below it.
Hidden folders (``.git``, ``.venv``) are not entered.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from pathspec import GitIgnoreSpec

from protoedit.files import STDIN

#: The suffixes of the files a folder walk visits.
NET_SUFFIXES = (".prototxt", ".pbtxt")


def net_files(names: Sequence[str], excludes: Sequence[str] = ()) -> list[str]:
    """Each name in order, a folder replaced by the net files under it (sorted); minus what
    ``excludes`` or a walked ``.gitignore`` exclude.  ``-`` and missing paths pass through
    (reading them reports the problem)."""
    excluded = GitIgnoreSpec.from_lines(excludes)
    out: list[str] = []
    for name in names:
        if name == STDIN or not os.path.isdir(name):
            if name == STDIN or not excluded.match_file(_from_cwd(name)):
                out.append(name)
            continue
        out.extend(_walk(name, excluded))
    return out


def _walk(top: str, excluded: GitIgnoreSpec) -> list[str]:
    """The net files under ``top``, sorted, honouring ``.gitignore`` files met on the way."""
    ignores: dict[str, list[tuple[str, GitIgnoreSpec]]] = {top: _gitignore(top, [])}
    found: list[str] = []
    for folder, dirs, files in os.walk(top):
        chain = ignores[folder]
        kept = []
        for name in sorted(dirs):
            path = os.path.join(folder, name)
            if name.startswith(".") or _ignored(path, True, excluded, chain):
                continue
            ignores[path] = _gitignore(path, chain)
            kept.append(name)
        dirs[:] = kept
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(NET_SUFFIXES) and not _ignored(path, False, excluded, chain):
                found.append(path)
    return sorted(found)


def _gitignore(
    folder: str, chain: list[tuple[str, GitIgnoreSpec]]
) -> list[tuple[str, GitIgnoreSpec]]:
    """``chain`` plus the folder's own ``.gitignore`` (outermost first), if it has one."""
    path = os.path.join(folder, ".gitignore")
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return [*chain, (folder, GitIgnoreSpec.from_lines(handle))]
    except OSError:
        return chain


def _ignored(
    path: str, is_dir: bool, excluded: GitIgnoreSpec, chain: list[tuple[str, GitIgnoreSpec]]
) -> bool:
    """Excluded by a pattern, or by the innermost ``.gitignore`` rule that matches."""
    tail = "/" if is_dir else ""
    if excluded.match_file(_from_cwd(path) + tail):
        return True
    verdict: bool | None = None
    for base, spec in chain:
        include = spec.check_file(Path(os.path.relpath(path, base)).as_posix() + tail).include
        if include is not None:
            verdict = include
    return bool(verdict)


def _from_cwd(path: str) -> str:
    """``path`` relative to the current folder (POSIX form), or absolute without the ``/``."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return absolute.as_posix().lstrip("/")


__all__ = ["NET_SUFFIXES", "net_files"]
