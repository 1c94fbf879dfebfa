"""A sweep plan and its expansion into work items: (model, layer, batch of units).

A plan names models (a deploy net, its weights, the preprocessing), the layers of each and
which channels, plus the ascent settings.  It comes from a TOML file or from command-line
flags.  Each (model, layer) gets a *config*: a hash of everything a unit's result depends on
(the net and weights bytes, the layer, the settings, the preprocessing, the batch size, since
a unit's start noise follows its place in its batch).  Results are keyed by (config, channel),
so a changed setting is a new result, never an overwrite.
"""

from __future__ import annotations

import hashlib
import json
import os
import tomllib
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from protoedit import arguments
from protoedit.errors import InputError, InvalidArgumentError, Location, ProtoeditError
from protoedit.explain.objectives import parse_channels
from protoedit.explain.preprocess import Preprocess
from protoedit.explain.settings import PRESETS, Settings
from protoedit.explain.vis_net import visualization_net
from protoedit.weights.errors import WeightsWarning

#: Bump when the way results are computed changes and old results must not be reused.
RESULT_VERSION = 1
DEFAULT_BATCH = 8


@dataclass(frozen=True)
class Model:
    """One net of the sweep: files (absolute), preprocessing and a short name for reports."""

    name: str
    net: str
    weights: str
    preprocess: Preprocess = field(default_factory=Preprocess)


@dataclass(frozen=True)
class Target:
    """The layers of one model to sweep and the channels of each (None: every channel)."""

    model: Model
    layers: tuple[str, ...]
    channels: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Plan:
    """What to sweep and how; ``batch`` units are optimised together in one work item."""

    targets: tuple[Target, ...]
    settings: Settings = field(default_factory=Settings)
    batch: int = DEFAULT_BATCH
    after_inplace: bool = False


@dataclass(frozen=True)
class LayerJob:
    """One (model, layer) of an expanded plan: its config hash and every channel wanted."""

    model: Model
    layer: str
    config: str
    channels: tuple[int, ...]
    settings: Settings
    batch: int
    after_inplace: bool
    description: dict[str, Any]


@dataclass(frozen=True)
class WorkItem:
    """A batch of units of one layer: what one worker computes in one go."""

    job: LayerJob
    channels: tuple[int, ...]

    @property
    def key(self) -> tuple[str, int]:
        """The (config, first channel) pair that names the item."""
        return self.job.config, self.channels[0]


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", Location(path)) from None
    return digest.hexdigest()


def expand(plan: Plan) -> list[LayerJob]:
    """Every (model, layer) of the plan with its config hash and channels (``all``: counted
    from the net), in plan order; a channel out of range is an error here, before any run."""
    arguments.whole(plan.batch, "batch", 1)
    jobs: list[LayerJob] = []
    hashes: dict[str, str] = {}
    for target in plan.targets:
        model = target.model
        for path in (model.net, model.weights):
            if path not in hashes:
                hashes[path] = _sha256(path)
        for layer in target.layers:
            _, head, _ = visualization_net(model.net, layer, after_inplace=plan.after_inplace)
            channels = target.channels or tuple(range(head.target_channels))
            bad = [c for c in channels if not 0 <= c < head.target_channels]
            if bad:
                raise InvalidArgumentError(
                    f"channel {bad[0]} is out of range: '{layer}' of {model.name} has "
                    f"{head.target_channels} channels (0-{head.target_channels - 1})",
                    "channels",
                )
            description = {
                "version": RESULT_VERSION,
                "model": model.name,
                "net_sha256": hashes[model.net],
                "weights_sha256": hashes[model.weights],
                "layer": layer,
                "after_inplace": plan.after_inplace,
                "batch": plan.batch,
                "settings": asdict(plan.settings),
                "preprocess": asdict(model.preprocess),
            }
            hashed = {k: v for k, v in description.items() if k != "model"}
            canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
            config = hashlib.sha256(canonical.encode()).hexdigest()[:16]
            jobs.append(
                LayerJob(
                    model,
                    layer,
                    config,
                    tuple(dict.fromkeys(channels)),
                    plan.settings,
                    plan.batch,
                    plan.after_inplace,
                    description,
                )
            )
    return jobs


def work_items(jobs: Iterable[LayerJob], done: set[tuple[str, int]]) -> list[WorkItem]:
    """The batches still to compute.  Batches are fixed slices of each layer's channel list,
    so a resumed sweep rebuilds the same batches; a batch is stored whole or not at all, and
    one with any unit missing is redone (only its missing units are written)."""
    items: list[WorkItem] = []
    for job in jobs:
        for start in range(0, len(job.channels), job.batch):
            batch = job.channels[start : start + job.batch]
            if any((job.config, c) not in done for c in batch):
                items.append(WorkItem(job, batch))
    return items


def unit_count(jobs: Iterable[LayerJob]) -> int:
    """How many units the plan holds."""
    return sum(len(job.channels) for job in jobs)


# --- reading a plan ---------------------------------------------------------------------------

_SETTING_NAMES = {f.name for f in fields(Settings)}
_PLAN_KEYS = {
    "model",
    "settings",
    "batch",
    "after_inplace",
    "store",
    "engine",
    "address",
    "workers",
}
_MODEL_KEYS = {"name", "net", "weights", "layers", "channels", "mean", "scale", "rgb", "mean_file"}


def check_plan_weights(plan: Plan, *, strict: bool = False) -> None:
    """Each model's weights against its net by the one rule of :mod:`protoedit.weights`,
    once a model: an error raises, layers missing are one :class:`WeightsWarning` a model
    (an error too when ``strict``)."""
    from protoedit.document import load
    from protoedit.weights.given import check_weights

    models = {(target.model.net, target.model.weights): target.model for target in plan.targets}
    for model in models.values():
        note = check_weights(load(model.net), model.weights, strict=strict)
        if note:
            warnings.warn(WeightsWarning(f"{model.name}: {note}"), stacklevel=2)


def make_settings(values: dict[str, Any], where: Location | None = None) -> Settings:
    """Settings from a preset name (``preset``) and overrides of its fields."""
    values = dict(values)
    preset = values.pop("preset", "default")
    if preset not in PRESETS:
        presets = ", ".join(sorted(PRESETS))
        raise InvalidArgumentError(f"unknown preset {preset!r} (one of {presets})", "preset", where)
    unknown = sorted(set(values) - _SETTING_NAMES)
    if unknown:
        raise InputError(f"unknown setting {unknown[0]!r}", where)
    try:
        return replace(PRESETS[preset], **values)
    except InvalidArgumentError as exc:  # Settings checks each field: say where it was set
        raise InvalidArgumentError(exc.message, exc.argument, where) from None


def channel_list(value: Any, where: Location | None = None) -> tuple[int, ...] | None:
    """``"all"`` (None), ``"0-63"``, ``"1,4,9"`` or a list of numbers."""
    if value is None or value == "all":
        return None
    if isinstance(value, str):
        return tuple(parse_channels(value))
    if isinstance(value, list) and all(isinstance(v, int) and v >= 0 for v in value):
        return tuple(value)
    raise InputError(f"channels are 'all', '0-63', '1,4,9' or a list, not {value!r}", where)


def make_model(
    net: str | os.PathLike[str],
    weights: str | os.PathLike[str],
    *,
    name: str | None = None,
    preprocess: Preprocess | None = None,
) -> Model:
    """A model with absolute paths (workers may run elsewhere: paths must mean the same);
    ``name`` defaults to the net's own ``name:``, else the file's stem."""
    net_path = str(Path(net).resolve())
    if name is None:
        from protoedit.document import load

        try:
            name = str(load(net_path).message.name)
        except ProtoeditError:
            name = ""
    return Model(
        name or Path(net).stem,
        net_path,
        str(Path(weights).resolve()),
        preprocess or Preprocess(),
    )


@dataclass(frozen=True)
class PlanFile:
    """A plan read from TOML, with the run options it may carry (None: not given)."""

    plan: Plan
    store: str | None = None
    engine: str | None = None
    address: str | None = None
    workers: int | None = None


def read_plan(path: str | os.PathLike[str]) -> PlanFile:
    """Read a TOML plan; relative paths are relative to the plan file.  See the README."""
    where = Location(str(path))
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"cannot read the plan: {exc.strerror or exc}", where) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not a TOML plan: {exc}", where) from None
    unknown = sorted(set(data) - _PLAN_KEYS)
    if unknown:
        raise InputError(f"unknown plan key {unknown[0]!r}", where)
    base = Path(path).resolve().parent
    models = data.get("model")
    if not isinstance(models, list) or not models:
        raise InputError("the plan needs at least one [[model]] table", where)
    targets = []
    for number, entry in enumerate(models, 1):
        bad = sorted(set(entry) - _MODEL_KEYS)
        if bad:
            raise InputError(f"model {number}: unknown key {bad[0]!r}", where)
        for key in ("net", "weights", "layers"):
            if key not in entry:
                raise InputError(f"model {number}: '{key}' is missing", where)
        layers = entry["layers"]
        if isinstance(layers, str):
            layers = [s.strip() for s in layers.split(",") if s.strip()]
        if not isinstance(layers, list) or not layers:
            raise InputError(f"model {number}: 'layers' names at least one layer", where)
        mean = entry.get("mean")
        if mean is not None and not isinstance(mean, list):
            mean = [mean]
        pre = Preprocess(
            rgb=bool(entry.get("rgb", False)),
            mean=tuple(arguments.number(v, "mean", where=where) for v in mean) if mean else None,
            mean_file=str(base / entry["mean_file"]) if "mean_file" in entry else None,
            scale=arguments.number(entry.get("scale", 1.0), "scale", nonzero=True, where=where),
        )
        model = make_model(
            base / entry["net"], base / entry["weights"], name=entry.get("name"), preprocess=pre
        )
        targets.append(Target(model, tuple(layers), channel_list(entry.get("channels"), where)))
    plan = Plan(
        targets=tuple(targets),
        settings=make_settings(data.get("settings", {}), where),
        batch=arguments.whole(data.get("batch", DEFAULT_BATCH), "batch", 1, where),
        after_inplace=bool(data.get("after_inplace", False)),
    )
    store = data.get("store")
    return PlanFile(
        plan=plan,
        store=str(base / store) if isinstance(store, str) else None,
        engine=data.get("engine"),
        address=data.get("address"),
        workers=None
        if data.get("workers") is None
        else arguments.whole(data["workers"], "workers", 1, where),
    )


def layer_list(text: str) -> tuple[str, ...]:
    """``conv1,conv2`` as a tuple of names."""
    return tuple(s.strip() for s in text.split(",") if s.strip())
