"""Dataset examples in the sweep store: each swept layer's top-k images over a folder of
images (:mod:`protoedit.explain.top_images`), streamed in batches.

Each (layer config, image set, k) has a folder ``examples/<config>-<key>/``: ``state.npz``
(the running top k, written atomically after every batch, so a killed sweep resumes at the
batch it had reached), then, once every image is ranked, the pictures and
``top-images.json`` (whose presence says the layer is done).  ``key`` hashes the image files'
paths, sizes and modification times and k: a changed folder is a new ranking.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from protoedit.explain.top_images import DEFAULT_BATCH, DEFAULT_K, TopImagesFinder, image_files
from protoedit.sweep.plan import LayerJob
from protoedit.sweep.store import _atomic_write

EXAMPLES = "examples"
STATE = "state.npz"
RESULT = "top-images.json"


def images_key(files: Sequence[Path], k: int) -> str:
    """A hash of the image files (path, size, modification time) and ``k``."""
    digest = hashlib.sha256(f"k={k}\n".encode())
    for path in files:
        info = path.stat()
        digest.update(f"{path.resolve()}\0{info.st_size}\0{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


def examples_folder(store: str | os.PathLike[str], config: str) -> Path | None:
    """The finished examples of a layer config in ``store`` (the newest, if several)."""
    found = sorted(
        (Path(store) / EXAMPLES).glob(f"{config}-*/{RESULT}"),
        key=lambda p: p.stat().st_mtime_ns,
    )
    return found[-1].parent if found else None


def run_examples(
    jobs: Sequence[LayerJob],
    store: str | os.PathLike[str],
    images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    k: int = DEFAULT_K,
    batch: int = DEFAULT_BATCH,
    progress: bool | None = None,
    allow_python_layers: bool = False,
    session: Any = None,
) -> list[str]:
    """Rank ``images`` for every layer of ``jobs`` not ranked yet (resuming a partial
    ranking); one line per layer saying what was done."""
    from protoedit.explain.top_pictures import unit_pictures

    files = image_files(images)
    key = images_key(files, k)
    lines = []
    for job in jobs:
        folder = Path(store) / EXAMPLES / f"{job.config}-{key}"
        if (folder / RESULT).is_file():
            lines.append(f"examples of {job.model.name} {job.layer}: already ranked")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        resume = None
        if (folder / STATE).is_file():
            with np.load(folder / STATE) as saved:
                resume = {name: saved[name] for name in saved.files}

        def save(state: dict[str, Any], where: Path = folder) -> None:
            _atomic_write(where / STATE, lambda handle: np.savez(handle, **state))

        with TopImagesFinder(
            job.model.net,
            weights=job.model.weights,
            target=job.layer,
            after_inplace=job.after_inplace,
            preprocess=job.model.preprocess,
            allow_python_layers=allow_python_layers,
            session=session,
        ) as finder:
            stream = finder.stream(files)
            start = int(resume["seen"]) if resume is not None else 0
            result = finder.find(
                stream, k=k, batch=batch, resume=resume, progress=progress, on_batch=save
            )
        unit_pictures(result, stream, folder)  # top-images.json last: the layer is done
        (folder / "images.json").write_text(json.dumps([str(p) for p in files]) + "\n")
        resumed = f", resumed at image {start}" if start else ""
        lines.append(
            f"examples of {job.model.name} {job.layer}: {len(files)} images ranked{resumed}"
        )
    return lines
