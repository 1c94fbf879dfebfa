"""Caffe's ``FilterNet`` rules: which layers a net built for a ``NetState`` contains.

The phase names come from the built-in schema's ``Phase`` enum, not from a copy of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import Any


@dataclass(frozen=True)
class NetState:
    """Caffe's ``NetState``: the phase, level and stages a net is built for."""

    phase: str
    level: int = 0
    stages: frozenset[str] = frozenset()


@cache
def phases() -> tuple[str, ...]:
    """Caffe's phases in enum order (TRAIN, TEST), read from the built-in schema's ``Phase``.

    Read on first use, not at import: loading the schema would cost every CLI start-up.
    """
    from protoedit.schema import builtin_schema

    enum = builtin_schema().descriptor("NetStateRule").fields_by_name["phase"].enum_type
    assert enum is not None  # the built-in schema declares it
    return tuple(value.name for value in sorted(enum.values, key=lambda v: v.number))


def phase_name(rule: Any) -> str:
    """The name of a ``NetStateRule``'s phase, from the schema's own ``Phase`` enum."""
    enum = rule.DESCRIPTOR.fields_by_name["phase"].enum_type
    return str(enum.values_by_number[rule.phase].name)


def rule_met(rule: Any, state: NetState) -> bool:
    """Caffe's ``StateMeetsRule``: check only the fields the rule sets."""
    if rule.HasField("phase") and phase_name(rule) != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stages for stage in rule.stage):
        return False
    return not any(stage in state.stages for stage in rule.not_stage)


def layer_included(layer: Any, state: NetState) -> bool:
    """Caffe's ``FilterNet`` decision for one layer: include rules, else exclude rules."""
    if len(layer.include):
        return any(rule_met(rule, state) for rule in layer.include)
    return not any(rule_met(rule, state) for rule in layer.exclude)
