"""The Caffe child's net plan on a parsed net (no Caffe): which layers make the batch matter,
under Caffe's FilterNet rules, and the legacy input header the backward gate upgrades."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import text_format

from protoedit.schema import builtin_schema
from protoedit.validate.netplan import GATE_PREFIX, batch_matters, built_state, gate_backward


def _net(text: str) -> Any:
    return text_format.Parse(text, builtin_schema().message_class("NetParameter")())


_BATCH_NORM = 'layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x" %s }'
_RESHAPE = (
    'layer { name: "r" type: "Reshape" bottom: "x" top: "y" %s'
    " reshape_param { shape { dim: 2 dim: -1 } } }"
)


@pytest.mark.parametrize(
    ("text", "phase", "matters"),
    [
        (_BATCH_NORM % "", "TRAIN", True),
        (_BATCH_NORM % "", "TEST", False),  # TEST uses the stored statistics
        (_BATCH_NORM % 'include { phase: TRAIN stage: "x" }', "TRAIN", False),  # no stage x
        (
            'state { stage: "x" } ' + _BATCH_NORM % 'include { phase: TRAIN stage: "x" }',
            "TRAIN",
            True,
        ),
        (_BATCH_NORM % 'include { phase: TRAIN not_stage: "x" }', "TRAIN", True),
        ('state { stage: "x" } ' + _BATCH_NORM % 'include { not_stage: "x" }', "TRAIN", False),
        (_RESHAPE % "", "TEST", True),
        (_RESHAPE % "include { phase: TEST min_level: 1 }", "TEST", False),  # built at level 0
        (_RESHAPE % "include { phase: TEST max_level: 0 }", "TEST", True),
        (_RESHAPE % 'exclude { phase: TEST stage: "deploy" }', "TEST", True),
        (_RESHAPE % "exclude { phase: TEST }", "TEST", False),
        (_RESHAPE % "include { phase: TRAIN }", "TEST", False),
    ],
)
def test_the_batch_matters_only_for_layers_caffe_builds(
    text: str, phase: str, matters: bool
) -> None:
    why = batch_matters(_net(text), phase)
    assert bool(why) == matters, why


def test_the_built_state_is_the_phase_level_0_and_the_nets_own_stages() -> None:
    state = built_state(_net('state { phase: TRAIN level: 3 stage: "a" stage: "b" }'), "TEST")
    assert (state.phase, state.level, state.stages) == ("TEST", 0, frozenset({"a", "b"}))


def test_the_gate_upgrades_an_input_dim_header_in_groups_of_four() -> None:
    net = _net(
        'force_backward: true input: "a" input: "b" '
        "input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8 "
        "input_dim: 1 input_dim: 1 input_dim: 4 input_dim: 4 "
        'layer { name: "r" type: "ReLU" bottom: "a" top: "c" }'
    )
    assert gate_backward(net) == ""
    first = net.layer[0]
    assert first.type == "Input" and list(first.top) == ["a", "b"]
    assert [list(s.dim) for s in first.input_param.shape] == [[1, 3, 8, 8], [1, 1, 4, 4]]
    assert not net.input and not net.input_dim and not net.input_shape
    assert [layer.name for layer in net.layer[1:3]] == [GATE_PREFIX + "a", GATE_PREFIX + "b"]


def test_the_gate_drops_a_header_without_shapes_as_caffe_does() -> None:
    net = _net(
        'force_backward: true input: "a" layer { name: "r" type: "ReLU" bottom: "a" top: "c" }'
    )
    assert gate_backward(net) == ""
    assert not net.input and [layer.type for layer in net.layer] == ["ReLU"]
