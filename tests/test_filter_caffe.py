"""``filter`` keeps exactly the layers Caffe's own FilterNet keeps, state by state."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from protoedit import load
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


def test_filter_matches_caffe_in_every_state() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("filter_in_caffe.py")),
            str(RULES),
            json.dumps(STATES),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    caffe_layers = json.loads(proc.stdout)
    distinct = set()
    for (phase, level, stages), expected in zip(STATES, caffe_layers, strict=True):
        doc = load(RULES)
        filter_net(doc, phase, level, tuple(stages))
        ours = [layer.name for layer in doc.message.layer]
        assert ours == expected, (phase, level, stages)
        distinct.add(tuple(ours))
    assert len(distinct) >= 10  # the states really differ
