"""The layer catalogue against Caffe's own facts: the types a Caffe source registers, the
``*_param`` fields and V1 enum of its schema, the types the corpus uses, the blobs pycaffe
creates, and the shape rules :mod:`protoedit.net.shapes` implements."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf import text_format

from protoedit.caffe import build as caffe_build
from protoedit.net import layers
from protoedit.net.layers import (
    BOTTOM_OPERAND,
    CATALOGUE,
    GATE_SAFE,
    LOSS,
    NEEDS_LABELS,
    SAME_CHANNELS,
    SAME_SHAPE,
    SIZE_BOUND,
    for_schema,
    is_a,
    is_data_layer,
    is_loss,
    learnt_param_count,
    no_backward,
    param_blobs,
    param_roles,
    registered_types,
    type_name,
)
from protoedit.net.shapes import RULES
from protoedit.rewrites.upgrade import V1_TYPES, copied_fields, transform_host
from protoedit.schema import Schema, builtin_schema
from protoedit.syntax import parse
from protoedit.syntax.parser import ParseError
from protoedit.syntax.tree import Block, Scalar


@pytest.fixture(scope="session")
def caffe_source(caffe_models: Path) -> Path:
    """The unpacked Caffe source package (the bundled fork: BVLC plus SSD and others)."""
    return caffe_build.source_dir()


@pytest.mark.caffe  # the Caffe source package that setup unpacks
def test_every_type_the_bundled_caffe_registers_is_catalogued(caffe_source: Path) -> None:
    registered = registered_types(caffe_source)
    assert {"Convolution", "Python", "PriorBox"} <= registered
    assert sorted(registered - CATALOGUE.names()) == []
    # The fork predates BVLC's newest types; what it lacks is declared by BVLC's schema.
    fields = builtin_schema().descriptor("LayerParameter").fields_by_name
    for name in layers.BVLC_TYPES - registered:
        entry = CATALOGUE.get(name)
        assert entry is not None and entry.param_field in fields, name


def test_every_param_field_of_the_builtin_schema_maps_to_a_catalogued_type() -> None:
    fields = builtin_schema().descriptor("LayerParameter").fields
    params = {f.name for f in fields if f.name.endswith("_param")} - set(layers.GENERAL_PARAMS)
    catalogued = {t.param_field for t in CATALOGUE if t.origin == "BVLC"}
    assert params == catalogued - {None}
    for entry in CATALOGUE:
        if entry.origin == "BVLC" and entry.param_field is not None:
            assert entry.param_field in params, entry.name


@pytest.mark.caffe  # the Caffe source package that setup unpacks
def test_every_param_field_of_the_forks_schema_is_a_type_or_registers_none(
    caffe_source: Path,
) -> None:
    schema = Schema.from_file(caffe_build.caffe_proto_path())
    registered = registered_types(caffe_source)
    by_field = {t.param_field for t in CATALOGUE}
    for entry in layers.schema_types(schema):
        # A field the catalogue does not know names a parameter with no layer of its own.
        assert entry.param_field in by_field or entry.name not in registered, entry
    extended = for_schema(schema)
    assert "PriorBox" in extended and extended.get("Convolution") == CATALOGUE.get("Convolution")


def test_a_forks_schema_adds_the_types_of_its_param_fields() -> None:
    schema = Schema(
        """syntax = "proto2";
        package caffe;
        message LayerParameter {
          optional string name = 1;
          optional string type = 2;
          optional ConvolutionParameter convolution_param = 3;
          optional FooLossParameter foo_loss_param = 4;
          optional WarpParameter warp_param = 5;
        }
        message ConvolutionParameter { optional uint32 num_output = 1; }
        message FooLossParameter { optional float margin = 1; }
        message WarpParameter { optional float strength = 1; }
        """,
        "fork.proto",
    )
    extended = for_schema(schema)
    foo, warp = extended.get("FooLoss"), extended.get("Warp")
    assert foo is not None and foo.has(LOSS) and foo.param_field == "foo_loss_param"
    assert warp is not None and not warp.categories and warp.origin == "fork.proto"
    assert extended.get("Convolution") is CATALOGUE.get("Convolution")
    assert "Warp" not in CATALOGUE  # the shared catalogue is left alone


def test_v1_names_are_the_schemas_enum_and_upgrade_reads_them() -> None:
    enum = builtin_schema().descriptor("V1LayerParameter").fields_by_name["type"].enum_type
    assert enum is not None
    bvlc_v1 = {t.v1 for t in CATALOGUE if t.origin == "BVLC" and t.v1}
    assert bvlc_v1 == {v.name for v in enum.values} - {"NONE"}
    for v1, name in V1_TYPES.items():
        assert v1 == "NONE" or CATALOGUE.by_v1[v1].name == name


def test_a_forks_v1_fields_are_copied_when_the_new_message_declares_them_alike() -> None:
    fork = Schema(
        """syntax = "proto2";
        package caffe;
        message FooParameter { optional float x = 1; }
        message BarParameter { optional float y = 1; }
        message LayerParameter {
          optional string name = 1;
          optional string type = 2;
          repeated string top = 3;
          optional FooParameter foo_param = 4;
          optional BarParameter bar_param = 5;
        }
        message V1LayerParameter {
          enum LayerType { NONE = 0; }
          optional string name = 1;
          optional LayerType type = 2;
          optional string top = 3;
          optional FooParameter foo_param = 4;
          optional FooParameter bar_param = 5;
          repeated float blobs_lr = 6;
        }
        """,
        "fork.proto",
    )
    # `type` changes kind, `top` repetition, `bar_param` message; `blobs_lr` has no twin
    assert copied_fields(fork) == {"name", "foo_param"}


def test_v0_names_belong_to_v1_types_and_transform_hosts_are_data_params() -> None:
    assert len(CATALOGUE.by_v0) == 24 and CATALOGUE.by_v0["conv"].name == "Convolution"
    assert all(entry.v1 for entry in CATALOGUE.by_v0.values())
    hosts = {t.v1: transform_host(builtin_schema(), t.v1) for t in CATALOGUE if t.v1}
    found = {v1: field for v1, field in hosts.items() if field is not None}
    assert found == {
        "DATA": "data_param",
        "IMAGE_DATA": "image_data_param",
        "WINDOW_DATA": "window_data_param",
    }  # HDF5Data and MemoryData are data layers whose messages never had those fields


_V0_CASE = re.compile(r'type == "(\w+)"\) \{\s*return V1LayerParameter_LayerType_(\w+);')
_TRANSFORM_CASE = re.compile(r"CONVERT_LAYER_TRANSFORM_PARAM\((\w+), \w+, (\w+)\);")
_V1_COPY = re.compile(
    r"layer_param->(?:add|set|mutable)_(\w+)\((?:\)->CopyFrom\()?\s*v1_layer_param\.\1\("
)


@pytest.mark.caffe
def test_the_upgrade_facts_are_caffes_upgrade_proto(caffe_source: Path) -> None:
    text = (caffe_source / "src" / "caffe" / "util" / "upgrade_proto.cpp").read_text()
    v0 = dict(_V0_CASE.findall(text))
    assert v0 == {name: entry.v1 for name, entry in CATALOGUE.by_v0.items()}
    hosts = {v1: f"{param}_param" for v1, param in _TRANSFORM_CASE.findall(text)}
    assert hosts and all(transform_host(builtin_schema(), v1) == f for v1, f in hosts.items())
    # V1 fields copied as they are: `layer_param->add_top(v1_layer_param.top(i))`,
    # `layer_param->mutable_X()->CopyFrom(v1_layer_param.X())`: exactly the fields the schema
    # declares alike in both messages
    start = text.index("bool UpgradeV1LayerParameter(")
    body = text[start : text.index("\n}\n", start)]
    copied = set(_V1_COPY.findall(body))
    assert {"top", "loss_weight", "convolution_param"} <= copied
    assert copied == copied_fields(builtin_schema())


def _corpus_types(path: Path) -> set[str]:
    """The ``type:`` of every top-level layer of a current or V1 net (V0 has its own table)."""
    try:
        tree = parse(path.read_text(encoding="utf-8", errors="replace"), str(path))
    except ParseError:
        return set()  # a template (``${NUM_LABELS}``): no net until it is filled in
    found = set()
    for field in tree.fields:
        block = field.value
        if field.name.text not in ("layer", "layers") or not isinstance(block, Block):
            continue
        if any(f.name.text == "layer" for f in block.fields):
            continue  # V0
        for item in block.fields:
            if item.name.text == "type" and isinstance(item.value, Scalar):
                found.add(item.value.raw.strip("\"'"))
    return found


def test_every_layer_type_of_the_corpus_is_catalogued(corpus: Path) -> None:
    seen: dict[str, str] = {}
    for path in sorted(corpus.glob("*.prototxt")):
        for kind in _corpus_types(path):
            seen.setdefault(kind, path.name)
    assert {"Convolution", "PriorBox", "CONVOLUTION", "Python"} <= set(seen)
    unknown = {k: f for k, f in seen.items() if k not in CATALOGUE and k not in CATALOGUE.by_v1}
    assert unknown == {}


def test_every_shape_rule_is_implemented() -> None:
    named = {t.shape for t in CATALOGUE if t.shape is not None}
    assert named == set(RULES)
    for entry in CATALOGUE:
        assert entry.has(SAME_SHAPE) == (entry.shape == "same"), entry.name
        if entry.has(SAME_SHAPE):
            assert entry.has(SAME_CHANNELS), entry.name


def test_categories_agree_with_each_other() -> None:
    for entry in CATALOGUE:
        if entry.has(LOSS):
            assert entry.has(NEEDS_LABELS) and no_backward(entry.name), entry.name
        assert entry.roles == tuple(param_roles(entry.name, len(entry.roles))), entry.name
    assert is_loss("MyFancyLoss") and not is_loss("Convolution")  # a fork's loss, by name
    assert no_backward("Accuracy") and no_backward("SoftmaxWithLoss")
    assert not no_backward("ReLU")


class _Layer:
    def __init__(self, kind: str, bottoms: int = 0, tops: int = 1) -> None:
        self.type, self.bottom, self.top = kind, ["x"] * bottoms, ["y"] * tops


def test_data_layers_include_fork_readers_and_python_readers() -> None:
    assert is_data_layer(_Layer("Data")) and is_data_layer(_Layer("AnnotatedData"))
    assert is_data_layer(_Layer("VideoData")) and is_data_layer(_Layer("Python"))
    assert not is_data_layer(_Layer("Python", bottoms=1))  # a Python layer in the middle
    assert not is_data_layer(_Layer("DummyData")) and not is_data_layer(_Layer("Input"))


def _layer_message(text: str) -> Any:
    return text_format.Parse(text, builtin_schema().message_class("LayerParameter")())


def test_v1_layers_are_looked_up_by_their_enum_name() -> None:
    v1 = builtin_schema().message_class("V1LayerParameter")
    data = text_format.Parse('type: IMAGE_DATA top: "data" top: "label"', v1())
    relu = text_format.Parse('type: RELU bottom: "data" top: "data"', v1())
    assert type_name(data) == "IMAGE_DATA" and is_data_layer(data)
    assert type_name(relu) == "RELU" and not is_data_layer(relu)
    assert type_name(_layer_message('type: "Convolution"')) == "Convolution"


def test_learnt_parameters_follow_bias_term_bottoms_and_statistics() -> None:
    cases = {
        'type: "Convolution" convolution_param { bias_term: false }': 1,
        'type: "Convolution"': 2,
        'type: "Scale"': 1,  # Scale has no bias unless asked
        'type: "Scale" bottom: "a" bottom: "b" scale_param { bias_term: true }': 1,
        'type: "Bias" bottom: "a" bottom: "b"': 0,
        'type: "BatchNorm"': 0,  # statistics: Caffe fixes their lr_mult at 0 itself
        'type: "ReLU"': 0,
    }
    for text, count in cases.items():
        assert learnt_param_count(_layer_message(text)) == count, text
    assert param_blobs(_layer_message('type: "BatchNorm"')) == ("mean", "variance", "scale_factor")
    assert learnt_param_count(_layer_message('type: "NoSuchLayer"')) is None


def test_categories_of_the_validation_gate_and_of_visualize() -> None:
    assert is_a("EuclideanLoss", GATE_SAFE) and is_a("Input", GATE_SAFE)
    assert not is_a("SoftmaxWithLoss", GATE_SAFE) and not is_a("Python", GATE_SAFE)
    labelled = CATALOGUE.names(NEEDS_LABELS)
    assert CATALOGUE.names(GATE_SAFE) & labelled == {"EuclideanLoss"}  # both bottoms get one
    assert CATALOGUE.names(SIZE_BOUND) == {"InnerProduct", "Reshape", "Flatten"}
    assert CATALOGUE.names(BOTTOM_OPERAND) == {"Scale", "Bias"}


# Build one layer of each parametric type in pycaffe and report its blob count; in a child
# process because a failed CHECK aborts the whole process.
_BLOBS = """
import json, sys, tempfile
import caffe
caffe.set_mode_cpu()
out = {}
for key, text in json.loads(sys.argv[1]).items():
    with tempfile.NamedTemporaryFile("w", suffix=".prototxt", delete=False) as handle:
        handle.write(text)
    net = caffe.Net(handle.name, caffe.TEST)
    out[key] = len(net.layers[list(net._layer_names).index("probe")].blobs)
print(json.dumps(out))
"""
_INPUTS = (
    'layer { name: "in" type: "Input" top: "a" top: "b" '
    "input_param { shape { dim: 2 dim: 3 dim: 4 dim: 4 } } }\n"
)
# key -> (type, bottoms, the layer's parameters)
_PROBES = {
    "Convolution": ("Convolution", 1, "convolution_param { num_output: 2 kernel_size: 1 }"),
    "Convolution/no-bias": (
        "Convolution",
        1,
        "convolution_param { num_output: 2 kernel_size: 1 bias_term: false }",
    ),
    "Deconvolution": ("Deconvolution", 1, "convolution_param { num_output: 2 kernel_size: 1 }"),
    "InnerProduct": ("InnerProduct", 1, "inner_product_param { num_output: 2 }"),
    "Embed": ("Embed", 1, "embed_param { num_output: 2 input_dim: 5 }"),
    "BatchNorm": ("BatchNorm", 1, ""),
    "Scale": ("Scale", 1, "scale_param { bias_term: true }"),
    "Scale/two-bottoms": ("Scale", 2, "scale_param { bias_term: true axis: 0 }"),
    "Scale/no-bias": ("Scale", 1, ""),
    "Bias": ("Bias", 1, ""),
    "Bias/two-bottoms": ("Bias", 2, "bias_param { axis: 0 }"),
    "PReLU": ("PReLU", 1, ""),
    "Normalize": ("Normalize", 1, ""),
}


@pytest.mark.caffe
def test_roles_agree_with_the_blobs_caffe_creates(caffe_source: Path) -> None:
    registered = registered_types(caffe_source)
    parametric = {t.name for t in CATALOGUE if t.roles}
    assert parametric - {kind for kind, _, _ in _PROBES.values()} <= parametric - registered
    nets = {}
    for key, (kind, bottoms, params) in _PROBES.items():
        reads = "".join(f' bottom: "{b}"' for b in "ab"[:bottoms])
        nets[key] = _INPUTS + f'layer {{ name: "probe" type: "{kind}"{reads} top: "p" {params} }}\n'
    proc = subprocess.run(
        [sys.executable, "-c", _BLOBS, json.dumps(nets)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    counts = json.loads(proc.stdout)
    for key, (kind, bottoms, _) in _PROBES.items():
        roles = param_roles(kind, counts[key], bottoms)
        assert not any(role.startswith("blob") for role in roles), (key, roles)
        full = param_roles(kind, 99, bottoms)
        assert counts[key] == len([r for r in full if not r.startswith("blob")]) or key.endswith(
            "no-bias"
        ), (key, counts[key])
    assert counts["Convolution/no-bias"] == 1 and counts["Scale/two-bottoms"] == 1
    layer_class = builtin_schema().message_class("LayerParameter")
    for key, (kind, bottoms, params) in _PROBES.items():
        layer = layer_class(type=kind, bottom=list("ab"[:bottoms]))
        text_format.Merge(params, layer)
        roles = param_blobs(layer)
        assert roles is not None and len(roles) == counts[key], (key, roles)


@pytest.mark.caffe  # the Caffe source package that setup unpacks
def test_check_knows_the_types_of_a_caffe_source_trees_schema(
    caffe_source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from protoedit.cli import main

    proto = caffe_build.caffe_proto_path()
    assert layers.source_of(proto) == caffe_source.resolve()
    net = tmp_path / "net.prototxt"
    net.write_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 3 } } }\n'
        'layer { name: "p" type: "PriorBx" bottom: "x" top: "y" }\n'
    )
    assert main(["check", "--proto", str(proto), str(net)]) == 1
    assert "E205 unknown layer type 'PriorBx' (layer 'p') (did you mean 'PriorBox'" in (
        capsys.readouterr().out
    )
    lone = tmp_path / "caffe.proto"  # the same schema outside its tree: types are not known
    lone.write_text(proto.read_text())
    assert layers.source_of(lone) is None
    assert main(["check", "--proto", str(lone), str(net)]) == 0


_FORK_NET = """
layer { name: "data" type: "FooData" top: "data" top: "label"
  transform_param { crop_size: 5 mean_value: 1 mean_value: 2 mean_value: 3 }
  foo_data_param { batch_size: 7 } }
layer { name: "fc" type: "InnerProduct" bottom: "data" top: "fc"
  inner_product_param { num_output: 4 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss" }
"""


def test_to_deploy_reads_a_fork_data_layers_own_parameters() -> None:
    from protoedit import loads
    from protoedit.net import NetView
    from protoedit.net.shapes import infer_shapes
    from protoedit.rewrites import to_deploy
    from protoedit.schema import BUILTIN_PROTO

    # The built-in schema plus a fork's data layer, as a fork's caffe.proto declares one.
    text = BUILTIN_PROTO.read_text().replace(
        "message LayerParameter {",
        "message LayerParameter {\n  optional FooDataParameter foo_data_param = 9001;",
    )
    schema = Schema(text + "\nmessage FooDataParameter { optional uint32 batch_size = 1; }\n", "f")
    doc = loads(_FORK_NET, schema=schema)
    to_deploy(doc)
    view = NetView(doc)
    data = view.final["data"]
    assert view.by_index[data.producer].type == "Input"
    assert infer_shapes(view)[data] == [7, 3, 5, 5]  # the batch from foo_data_param


def test_a_fork_type_the_catalogue_marks_shape_keeping_gets_its_inputs_shape() -> None:
    from protoedit import loads
    from protoedit.net import NetView
    from protoedit.net.shapes import infer_shapes

    view = NetView(
        loads(
            'layer { name: "in" type: "Input" top: "x" '
            "input_param { shape { dim: 2 dim: 3 dim: 5 dim: 5 } } }\n"
            'layer { name: "n" type: "Normalize" bottom: "x" top: "n" }\n'
            'layer { name: "p" type: "Permute" bottom: "n" top: "p" }\n'
        )
    )
    shapes = infer_shapes(view)
    assert shapes[view.final["n"]] == [2, 3, 5, 5]  # SSD's Normalize keeps the shape
    assert shapes[view.final["p"]] is None  # no permute_param here: unknown, not guessed
