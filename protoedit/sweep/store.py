"""The sweep store: an SQLite database (``sweep.sqlite``) plus image files, in one folder.

Safe for several sweeps at once, on one machine: the database runs in WAL mode and every
write is one ``BEGIN IMMEDIATE`` transaction (a batch of units, a failure); image files are
written to a temporary name and renamed into place, under a name unique to the attempt, so a
reader never sees half a file and two sweeps computing the same unit never write one file.
The first result stored for a unit wins; a later one for the same (config, channel) is
dropped with its files.  ``computed`` logs every result a sweep offered, kept or not: it
shows whether a unit was ever computed twice.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from protoedit.errors import InputError, Location

DATABASE = "sweep.sqlite"
IMAGES = "images"
SCHEMA_VERSION = 1
#: Temporary files are ``.tmp-PID-...``: a dead writer's are removed by the next sweep.
TEMP_PREFIX = ".tmp-"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS configs (
    config TEXT PRIMARY KEY, model TEXT NOT NULL, layer TEXT NOT NULL,
    description TEXT NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS results (
    config TEXT NOT NULL REFERENCES configs(config), channel INTEGER NOT NULL,
    activation_start REAL NOT NULL, activation_end REAL NOT NULL,
    dead_at_start INTEGER NOT NULL, steps INTEGER NOT NULL,
    image TEXT NOT NULL, array TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    seconds REAL NOT NULL, finished REAL NOT NULL, worker TEXT NOT NULL, sweep TEXT NOT NULL,
    protoedit_version TEXT NOT NULL, caffe_version TEXT NOT NULL,
    PRIMARY KEY (config, channel));
CREATE TABLE IF NOT EXISTS computed (
    config TEXT NOT NULL, channel INTEGER NOT NULL, sweep TEXT NOT NULL, at REAL NOT NULL,
    kept INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS failures (
    id INTEGER PRIMARY KEY AUTOINCREMENT, config TEXT NOT NULL, channels TEXT NOT NULL,
    attempt INTEGER NOT NULL, reason TEXT NOT NULL, worker TEXT NOT NULL, sweep TEXT NOT NULL,
    at REAL NOT NULL);
"""


@dataclass(frozen=True)
class UnitOutput:
    """One computed unit as a worker returns it: the blob-space image and the picture."""

    channel: int
    array: npt.NDArray[np.float32]  # C x H x W, as fed to the input blob
    picture: npt.NDArray[np.uint8]  # H x W x C, 0-255
    activation_start: float
    activation_end: float
    steps: int
    dead_at_start: bool


@dataclass(frozen=True)
class Row:
    """A stored result, as the report reads it."""

    config: str
    model: str
    layer: str
    channel: int
    activation_start: float
    activation_end: float
    dead_at_start: bool
    steps: int
    image: str  # relative to the store folder
    array: str
    width: int
    height: int
    seconds: float
    finished: float
    worker: str
    sweep: str
    protoedit_version: str
    caffe_version: str


def _atomic_write(path: Path, write: Any) -> None:
    """Write through ``write(handle)`` to a temporary file beside ``path``, then rename."""
    fd, tmp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)


def _retry_locked(statement: Callable[[], object], timeout: float) -> None:
    """Run ``statement``, retrying while the database is locked.

    Switching to WAL needs an exclusive lock, and SQLite answers "database is locked" at once,
    without its busy handler, when two connections would deadlock on it (two sweeps opening a
    new store together): so wait here instead, up to ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


class Store:
    """One store folder; open it with :func:`open_store` or as a context manager."""

    def __init__(self, folder: str | os.PathLike[str], *, timeout: float = 60.0) -> None:
        self.folder = Path(folder)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            (self.folder / IMAGES).mkdir(exist_ok=True)
        except OSError as exc:
            raise InputError(
                f"cannot create the store: {exc.strerror}", Location(str(folder))
            ) from None
        self.path = self.folder / DATABASE
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            _retry_locked(lambda: self._db.execute("PRAGMA journal_mode=WAL"), timeout)
            self._db.execute("PRAGMA synchronous=NORMAL")
            with self._write() as db:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(
                    "INSERT OR IGNORE INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
        except sqlite3.DatabaseError as exc:
            raise InputError(f"not a sweep store: {exc}", Location(str(self.path))) from None
        version = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()[0]
        if version != str(SCHEMA_VERSION):
            raise InputError(
                f"store schema {version}, this protoedit reads {SCHEMA_VERSION}",
                Location(str(self.path)),
            )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (no upgrade deadlock between two writers)."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def remove_stale_files(self) -> int:
        """Remove temporary files left by writers that died (killed mid-write); those of
        live processes are left alone.  How many were removed."""
        removed = 0
        for path in (self.folder / IMAGES).rglob(f"{TEMP_PREFIX}*"):
            pid = path.name[len(TEMP_PREFIX) :].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                with suppress(OSError):
                    path.unlink()
                    removed += 1
        return removed

    def close(self) -> None:
        """Close the database."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # --- writing ----------------------------------------------------------------------------

    def add_config(self, config: str, model: str, layer: str, description: dict[str, Any]) -> None:
        """Record what a config hash stands for (once; the first writer's text is kept)."""
        with self._write() as db:
            db.execute(
                "INSERT OR IGNORE INTO configs VALUES (?, ?, ?, ?, ?)",
                (config, model, layer, json.dumps(description, sort_keys=True), time.time()),
            )

    def add_results(
        self,
        config: str,
        layer: str,
        outputs: Sequence[UnitOutput],
        *,
        seconds: float,
        worker: str,
        sweep: str,
        versions: tuple[str, str],
    ) -> list[int]:
        """Store a computed batch: files first (atomically), then the rows in one
        transaction.  The channels newly stored; those already there keep their first result
        (this one's files are removed)."""
        folder = self.folder / IMAGES / config / _safe(layer)
        folder.mkdir(parents=True, exist_ok=True)
        token = secrets.token_hex(4)
        files = []
        for out in outputs:
            from PIL import Image

            stem = f"c{out.channel}_{token}"
            png, npy = folder / f"{stem}.png", folder / f"{stem}.npy"
            picture = out.picture.squeeze(2) if out.picture.shape[2] == 1 else out.picture
            _atomic_write(png, lambda h, p=picture: Image.fromarray(p).save(h, format="PNG"))
            _atomic_write(npy, lambda h, a=out.array: np.save(h, a))
            files.append((png, npy))
        per_unit = seconds / max(1, len(outputs))
        now = time.time()
        stored: list[int] = []
        with self._write() as db:
            for out, (png, npy) in zip(outputs, files, strict=True):
                cursor = db.execute(
                    "INSERT OR IGNORE INTO results VALUES "
                    "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        config,
                        out.channel,
                        out.activation_start,
                        out.activation_end,
                        int(out.dead_at_start),
                        out.steps,
                        str(png.relative_to(self.folder)),
                        str(npy.relative_to(self.folder)),
                        int(out.picture.shape[1]),
                        int(out.picture.shape[0]),
                        per_unit,
                        now,
                        worker,
                        sweep,
                        *versions,
                    ),
                )
                kept = cursor.rowcount == 1
                db.execute(
                    "INSERT INTO computed VALUES (?, ?, ?, ?, ?)",
                    (config, out.channel, sweep, now, int(kept)),
                )
                if kept:
                    stored.append(out.channel)
        for out, (png, npy) in zip(outputs, files, strict=True):
            if out.channel not in stored:
                for path in (png, npy):
                    with suppress(OSError):
                        path.unlink()
        return stored

    def add_failure(
        self,
        config: str,
        channels: Sequence[int],
        attempt: int,
        reason: str,
        worker: str,
        sweep: str,
    ) -> None:
        """Record a failed attempt at a batch and why."""
        with self._write() as db:
            db.execute(
                "INSERT INTO failures (config, channels, attempt, reason, worker, sweep, at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (config, ",".join(map(str, channels)), attempt, reason, worker, sweep, time.time()),
            )

    # --- reading ----------------------------------------------------------------------------

    def done(self, configs: Sequence[str] | None = None) -> set[tuple[str, int]]:
        """The (config, channel) pairs stored (of these configs, or all)."""
        rows = self._db.execute("SELECT config, channel FROM results").fetchall()
        wanted = None if configs is None else set(configs)
        return {(c, k) for c, k in rows if wanted is None or c in wanted}

    def rows(self) -> list[Row]:
        """Every result with its config's model and layer, by model, layer, config, channel."""
        cursor = self._db.execute(
            "SELECT r.config, c.model, c.layer, r.channel, r.activation_start, "
            "r.activation_end, r.dead_at_start, r.steps, r.image, r.array, r.width, r.height, "
            "r.seconds, r.finished, r.worker, r.sweep, r.protoedit_version, r.caffe_version "
            "FROM results r JOIN configs c USING (config) "
            "ORDER BY c.model, c.layer, c.created, r.config, r.channel"
        )
        rows = [Row(*row) for row in cursor.fetchall()]
        return [replace(r, dead_at_start=bool(r.dead_at_start)) for r in rows]

    def configs(self) -> dict[str, dict[str, Any]]:
        """Each config's description (settings, preprocessing, file hashes, ...)."""
        cursor = self._db.execute("SELECT config, description FROM configs")
        return {config: json.loads(text) for config, text in cursor.fetchall()}

    def failures(self) -> list[tuple[str, str, int, str]]:
        """Every failed attempt: (config, channels, attempt, reason)."""
        cursor = self._db.execute(
            "SELECT config, channels, attempt, reason FROM failures ORDER BY id"
        )
        return [tuple(row) for row in cursor.fetchall()]

    def computed_counts(self) -> dict[tuple[str, int], int]:
        """How many times each unit was computed and offered to the store."""
        cursor = self._db.execute(
            "SELECT config, channel, COUNT(*) FROM computed GROUP BY config, channel"
        )
        return {(c, k): n for c, k, n in cursor.fetchall()}


def open_store(folder: str | os.PathLike[str]) -> Store:
    """An existing store folder (for reports): an error when it holds no database."""
    if not (Path(folder) / DATABASE).is_file():
        raise InputError(f"no sweep store here (no {DATABASE})", Location(str(folder)))
    return Store(folder)
