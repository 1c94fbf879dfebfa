"""The result of activation maximisation and its files: one image per objective, a grid."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from protoedit.explain.objectives import AnyObjective, Unit
from protoedit.explain.preprocess import Preprocess, blob_to_image
from protoedit.explain.settings import Settings
from protoedit.rewrites.report import RewriteReport

Array = npt.NDArray[np.float32]


@dataclass
class ObjectiveResult:
    """One optimised objective: its image as fed to the input blob (C x H x W), its value
    at the start and the end, and whether it was dead (zero everywhere) at the start."""

    objective: AnyObjective
    label: str
    image: Array
    start: float
    end: float
    steps: int
    dead_at_start: bool


@dataclass
class Visualization:
    """The result of :func:`~protoedit.explain.maximisation.visualize`; :meth:`save` writes
    the pictures and the summary."""

    target: str
    results: list[ObjectiveResult]
    settings: Settings
    preprocess: Preprocess
    report: RewriteReport = field(default_factory=RewriteReport)

    def picture(self, result: ObjectiveResult) -> npt.NDArray[np.uint8]:
        """The image as H x W x C uint8 pixels, the mean added back and clipped to 0-255."""
        return blob_to_image(result.image, self.preprocess)

    def save(self, path: str | os.PathLike[str]) -> list[Path]:
        """Write the grid PNG at ``path`` and, next to it, ``STEM_TAG.png`` / ``STEM_TAG.npy``
        per objective and ``STEM.json``; the paths written, grid first."""
        from PIL import Image

        from protoedit.picture import labelled_grid

        grid = Path(path)
        stem = grid.with_suffix("")
        tiles = [self.picture(r) for r in self.results]
        labels = [f"{r.label}\n{r.end:.4g}" for r in self.results]
        labelled_grid(tiles, labels).save(grid)
        written = [grid]
        summary: dict[str, Any] = {
            "target": self.target,
            "settings": asdict(self.settings),
            "units": [],
        }
        for result, tile in zip(self.results, tiles, strict=True):
            name = f"{stem.name}_{result.objective.tag()}"
            png, npy = stem.with_name(name + ".png"), stem.with_name(name + ".npy")
            Image.fromarray(tile.squeeze(2) if tile.shape[2] == 1 else tile).save(png)
            np.save(npy, result.image)
            written += [png, npy]
            unit = result.objective if isinstance(result.objective, Unit) else None
            summary["units"].append(
                {
                    "label": result.label,
                    "channel": unit.channel if unit else None,
                    "position": list(unit.position) if unit and unit.position else None,
                    "terms": [
                        {"weight": w, "channel": c, "position": list(p) if p else None}
                        for w, c, p in result.objective.terms
                    ],
                    "activation_start": result.start,
                    "activation_end": result.end,
                    "steps": result.steps,
                    "dead_at_start": result.dead_at_start,
                    "image": png.name,
                    "array": npy.name,
                }
            )
        summary_path = stem.with_suffix(".json")
        summary_path.write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        written.append(summary_path)
        return written
