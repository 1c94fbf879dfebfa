"""``filter`` keeps exactly the layers Caffe's own FilterNet keeps, state by state."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from protoedit import UnknownStageWarning, load
from protoedit.rewrites import filter_net

from .helpers import FIXTURES

pytestmark = pytest.mark.caffe
RULES = FIXTURES / "filter" / "rules.prototxt"
STATES = [
    (phase, level, list(stages))
    for phase, level, stages in itertools.product(
        ["TRAIN", "TEST"], [0, 1, 2], [(), ("a",), ("b",), ("a", "b")]
    )
]


def _caffe_layers(states: list[tuple[str, int, list[str]]]) -> list[list[str]]:
    """The layer names Caffe builds for each state of ``RULES``."""
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("filter_in_caffe.py")),
            str(RULES),
            json.dumps(states),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout)  # type: ignore[no-any-return]


def test_filter_matches_caffe_in_every_state() -> None:
    caffe_layers = _caffe_layers(STATES)
    distinct = set()
    for (phase, level, stages), expected in zip(STATES, caffe_layers, strict=True):
        doc = load(RULES)
        filter_net(doc, phase, level, tuple(stages))
        ours = [layer.name for layer in doc.message.layer]
        assert ours == expected, (phase, level, stages)
        distinct.add(tuple(ours))
    assert len(distinct) >= 10  # the states really differ


def test_a_stage_no_rule_names_builds_the_net_caffe_builds() -> None:
    # Caffe's FilterNet test TestFilterInByNotStage: a state's stage that no rule names is
    # accepted, and a layer with `include { not_stage: "b" }` is in.  filter warns and goes on.
    states = [("TEST", 0, ["other"]), ("TRAIN", 1, ["a", "other"])]
    for (phase, level, stages), expected in zip(states, _caffe_layers(states), strict=True):
        doc = load(RULES)
        with pytest.warns(UnknownStageWarning, match="stage 'other'"):
            filter_net(doc, phase, level, tuple(stages))
        assert [layer.name for layer in doc.message.layer] == expected
        assert "not_b" in expected
