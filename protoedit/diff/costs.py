"""The change in parameters and FLOPs between two nets, from their summaries
(:func:`protoedit.net.summary.summary`): the totals and each layer whose numbers differ."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from protoedit.document import Document
from protoedit.errors import ProtoeditError
from protoedit.net.summary import Summary, human, summary


@dataclass(frozen=True)
class LayerCost:
    """One layer's parameters and FLOPs on each side (``None``: absent or unknown there)."""

    layer: str
    old_params: int | None
    new_params: int | None
    old_flops: int | None
    new_flops: int | None

    def to_json(self) -> dict[str, Any]:
        """The layer's numbers as a JSON object."""
        return {
            "layer": self.layer,
            "params": [self.old_params, self.new_params],
            "flops": [self.old_flops, self.new_flops],
        }


@dataclass
class CostChange:
    """Total parameters and FLOPs (and MACs) before and after, the layers whose numbers
    differ, and why a side could not be counted (``note``) or counts only part (``partial``)."""

    params: tuple[int, int] = (0, 0)
    macs: tuple[int, int] = (0, 0)
    flops: tuple[int, int] = (0, 0)
    layers: list[LayerCost] = field(default_factory=list)
    partial: bool = False
    note: str = ""

    @property
    def same(self) -> bool:
        """Whether nothing counted differs."""
        return not self.note and self.params[0] == self.params[1] and self.flops[0] == self.flops[1]

    def to_json(self) -> dict[str, Any]:
        """The change as a JSON object."""
        return {
            "params": list(self.params),
            "macs": list(self.macs),
            "flops": list(self.flops),
            "partial": self.partial,
            "layers": [layer.to_json() for layer in self.layers],
            "note": self.note,
        }

    def lines(self) -> list[str]:
        """``cost: params 25.6M -> 25.7M (+12.3K), FLOPs ...`` and a line per layer."""
        if self.note:
            return [f"cost: not compared: {self.note}"]
        if self.same and not self.layers:
            return []
        head = "cost" + (" (partial: some numbers unknown)" if self.partial else "")
        parts = [
            f"{what} {_pair(pair)}"
            for what, pair in (("params", self.params), ("FLOPs", self.flops))
        ]
        lines = [f"{head}: " + ", ".join(parts)]
        for layer in self.layers:
            pairs = (
                ("params", layer.old_params, layer.new_params),
                ("FLOPs", layer.old_flops, layer.new_flops),
            )
            shown = [f"{what} {_pair((old, new))}" for what, old, new in pairs if old != new]
            lines.append(f"    {layer.layer}: " + ", ".join(shown))
        return lines


def _pair(pair: tuple[int | None, int | None]) -> str:
    """``25.6M -> 25.7M (+12.3K)``; ``-`` for a side without the number."""
    old, new = pair
    text = f"{'-' if old is None else human(old)} -> {'-' if new is None else human(new)}"
    if old is not None and new is not None and old != new:
        text += f" ({'+' if new > old else '-'}{human(abs(new - old))})"
    return text


def _numbers(result: Summary) -> dict[str, tuple[int | None, int | None]]:
    return {row.name: (row.params, row.flops) for row in result.rows}


def cost_change(old: Document, new: Document, phase: str | None = "TEST") -> CostChange:
    """The change in parameters and FLOPs from ``old`` to ``new``; when a side cannot be
    summarised (a layer Caffe would refuse), ``note`` says why."""
    try:
        before, after = summary(old, phase=phase), summary(new, phase=phase)
    except ProtoeditError as exc:
        return CostChange(note=str(exc).splitlines()[0])
    a, b = before.totals, after.totals
    change = CostChange(
        (a.params, b.params),
        (a.macs, b.macs),
        (a.flops, b.flops),
        partial=bool(a.partial or b.partial),
    )
    was, now = _numbers(before), _numbers(after)
    for name in dict.fromkeys([*was, *now]):
        old_params, old_flops = was.get(name, (None, None))
        new_params, new_flops = now.get(name, (None, None))
        both = name in was and name in now  # else it counts when it costs something
        if (
            (old_params, old_flops) != (new_params, new_flops)
            if both
            else (old_params or 0, old_flops or 0) != (new_params or 0, new_flops or 0)
        ):
            change.layers.append(LayerCost(name, old_params, new_params, old_flops, new_flops))
    return change
