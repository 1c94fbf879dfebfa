"""Tree -> typed message: located errors, lenient mode, and text_format as the reference."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil
import re
from pathlib import Path

import pytest
from google.protobuf import text_format
from google.protobuf.message import Message

from protoedit import BindError, Document, Location, ProtoeditError, builtin_schema, load, loads
from protoedit.syntax import parse


@pytest.mark.parametrize(
    ("text", "where", "message"),
    [
        (
            'layer { name: "c" convolution_param { kernal_size: 3 } }',
            "1:39",
            "unknown field 'kernal_size' in caffe.ConvolutionParameter (did you mean 'kernel_size'",
        ),
        (
            'layer { convolution_param { num_output: "ten" } }',
            "1:41",
            "'num_output': expected a uint32 value, found a string",
        ),
        (
            "layer { convolution_param { num_output: -1 } }",
            "1:41",
            "'num_output': -1 is out of range for uint32",
        ),
        (
            "layer { convolution_param { num_output: 1.5 } }",
            "1:41",
            "'num_output': expected an integer (uint32), found '1.5'",
        ),
        (
            "layer { pooling_param { pool: MEDIAN } }",
            "1:31",
            "'pool': unknown value 'MEDIAN' for enum caffe.PoolingParameter.PoolMethod; "
            "expected one of MAX, AVE, STOCHASTIC",
        ),
        ('name: "a"\nname: "b"\n', "2:1", "'name' is given twice, but it is not a repeated field"),
        ("layer: 3", "1:8", "'layer' is a message (caffe.LayerParameter): expected '{', found '3'"),
        (
            "force_backward { }",
            "1:16",
            "'force_backward' is a bool field, not a message: expected a value, found '{'",
        ),
        (
            "force_backward: [true]",
            "1:17",
            "'force_backward' is not a repeated field: a [list] is not allowed",
        ),
        ("force_backward: yes", "1:17", "'force_backward': expected true or false, found 'yes'"),
        ('name: "\\xff"', "1:7", "'name': the string is not valid UTF-8"),
    ],
)
def test_schema_errors_are_typed_and_located(text: str, where: str, message: str) -> None:
    with pytest.raises(BindError) as error:
        loads(text, path="net.prototxt")
    assert str(error.value).startswith(f"net.prototxt:{where}: {message}")
    assert isinstance(error.value, ProtoeditError)


def test_every_error_is_reported_not_just_the_first() -> None:
    with pytest.raises(BindError) as error:
        loads("bogus: 1\nlayer { nme: 'x' }\nforce_backward: maybe\n")
    assert len(error.value.others) == 2
    assert "(and 2 more)" in str(error.value)


def test_values_of_every_kind() -> None:
    doc = loads(
        "name: 'a' \"b\"\nforce_backward: True\ninput_dim: 010\ninput_dim: 0x10\n"
        "layer { type: 'ReLU' relu_param { negative_slope: -inf }\n"
        "  param { lr_mult: 1. decay_mult: 2e-1 } phase: 1 }\n"
    )
    net = doc.message
    assert net.name == "ab" and net.force_backward is True
    assert list(net.input_dim) == [8, 16]
    assert net.layer[0].relu_param.negative_slope == float("-inf")
    assert net.layer[0].param[0].decay_mult == pytest.approx(0.2)
    assert net.layer[0].phase == 1


def test_lenient_mode_keeps_unknown_fields_through_edits() -> None:
    text = 'name: "x"\nlayer {\n  name: "a"\n  fancy_param { alpha: 2 }  # fork-only\n}\n'
    with pytest.raises(BindError):
        loads(text)
    doc = loads(text, lenient=True)
    assert [w.code for w in doc.warnings] == ["W101"]
    assert "kept as written" in doc.warnings[0].message
    doc.set("name", "y")
    assert doc.dumps() == text.replace('"x"', '"y"')
    assert doc.message.name == "y" and doc.message.layer[0].name == "a"


def test_solver_files_are_detected_by_content() -> None:
    doc = loads('net: "train_val.prototxt"\nbase_lr: 0.01\nlr_policy: "step"\n')
    assert doc.message_type == "caffe.SolverParameter"
    assert doc.message.base_lr == pytest.approx(0.01)


def test_differential_against_text_format(corpus: Path) -> None:
    """Where text_format accepts a corpus file, our message is equal; where it rejects, we do."""
    schema = builtin_schema()
    accepted = rejected = 0
    for path in sorted(corpus.glob("*.prototxt")):
        text = path.read_bytes().decode("utf-8")
        try:
            ours = load(path).message
            kind = ours.DESCRIPTOR.full_name
        except ProtoeditError as error:
            ours, kind = None, "caffe.NetParameter"
            assert error.location is not None and error.location.line > 0, path.name
        try:
            reference = text_format.Parse(text, schema.message_class(kind)())
        except text_format.ParseError:
            reference = None
        assert (ours is None) == (reference is None), path.name
        if ours is None:
            rejected += 1
            continue
        assert ours.SerializeToString(deterministic=True) == reference.SerializeToString(
            deterministic=True
        ), path.name
        accepted += 1
    assert accepted >= 30 and rejected >= 5


def _subclasses(cls: type[ProtoeditError]) -> list[type[ProtoeditError]]:
    found = [cls]
    for sub in cls.__subclasses__():
        found += _subclasses(sub)
    return found


def _instance(cls: type[ProtoeditError]) -> ProtoeditError:
    """An instance of any error class, its arguments filled in by name and annotation."""
    from protoedit.caffe.gate import PythonLayer

    samples: dict[str, object] = {
        "message": "it broke",
        "location": Location("net.prototxt", 3, 7),
        "detail": "  here ^",
        "others": ["net.prototxt:4:1: E101 another"],
        "layers": [PythonLayer("py", "mymodule", Location("net.prototxt", 9, 1))],
    }
    arguments: dict[str, object] = {}
    for name, parameter in inspect.signature(cls.__init__).parameters.items():
        if name == "self" or parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotation = str(parameter.annotation)
        default = {"dict": {"x": "1"}, "list": ["a finding"]}
        kind = next((k for k in default if k in annotation), None)
        arguments[name] = samples.get(name, default[kind] if kind else "a value")
    return cls(**arguments)  # type: ignore[arg-type]


def test_every_error_survives_pickling() -> None:
    import protoedit
    from protoedit.net.view import LegacyNetError

    for module in pkgutil.walk_packages(protoedit.__path__, "protoedit."):
        importlib.import_module(module.name)  # every module's error classes
    classes = _subclasses(ProtoeditError)
    assert LegacyNetError in classes
    assert {"BindError", "ParseError", "SchemaError", "InputError"} <= {c.__name__ for c in classes}
    for cls in classes:
        error = _instance(cls)
        again = pickle.loads(pickle.dumps(error))
        assert type(again) is cls
        assert again.__dict__ == error.__dict__, cls
        assert str(again) == str(error) and again.args == error.args, cls
        if "message" in inspect.signature(cls.__init__).parameters:
            assert str(again).startswith("net.prototxt:3:7: it broke"), cls
        else:  # an error that words its own message (PythonLayersRefused) still leads with where
            assert again.location is not None and str(again).startswith(f"{again.location}: ")
    with pytest.raises(BindError) as raised:
        loads("bogus: 1\nnme: 2\n")
    real = raised.value
    again = pickle.loads(pickle.dumps(real))
    assert (again.location, again.others, str(again)) == (real.location, real.others, str(real))
    assert len(again.others) == 1


def test_bind_error_is_the_one_of_binding() -> None:
    import protoedit.schema.binding

    assert protoedit.schema.binding.BindError is BindError


def test_lenient_mode_keeps_unknown_enum_values_like_unknown_fields() -> None:
    text = (
        'layer {\n  name: "loss"\n  type: "SoftmaxWithLoss"\n'
        "  loss_param { normalization: PRE_FIXED ignore_label: 0 }  # a fork's value\n}\n"
    )
    with pytest.raises(BindError, match=r"net.prototxt:4:31: 'normalization': unknown value"):
        loads(text, path="net.prototxt")
    doc = loads(text, lenient=True, path="net.prototxt")
    (warning,) = doc.warnings
    assert warning.code == "W102" and warning.severity == "warning"
    assert doc.describe(warning).startswith(
        "net.prototxt:4:31: W102 'normalization': unknown value 'PRE_FIXED' for enum "
        "caffe.LossParameter.NormalizationMode"
    )
    assert warning.message.endswith("; kept as written")
    param = doc.message.layer[0].loss_param
    assert not param.HasField("normalization") and param.ignore_label == 0
    doc.set("layer[0].name", "fork_loss")
    assert doc.dumps() == text.replace('"loss"', '"fork_loss"')  # the value travels verbatim
    # A value of the wrong kind is still an error, lenient or not.
    with pytest.raises(BindError, match=r"'normalization': unknown value '1\.5'"):
        loads(text.replace("PRE_FIXED", "1.5"), lenient=True)


def test_best_effort_binding_keeps_what_binds_and_lists_what_it_dropped() -> None:
    text = (
        'name: "n"\nlayer { name: "a" type: "Pooling" pooling_param { pool: MAXX stride: 2 } }\n'
        'layer { name: "b" convolution_param { num_output: "x" kernel_size: 3 } fancy: 1 }\n'
    )
    tree = parse(text, "net.prototxt")
    schema = builtin_schema()
    with pytest.raises(BindError):
        Document(tree, schema, "caffe.NetParameter", lenient=True).message  # noqa: B018
    doc = Document(tree, schema, "caffe.NetParameter", best_effort=True)
    net = doc.message
    assert [layer.name for layer in net.layer] == ["a", "b"]
    assert net.layer[0].pooling_param.stride == 2
    assert not net.layer[0].pooling_param.HasField("pool")
    assert net.layer[1].convolution_param.kernel_size == [3]
    assert not net.layer[1].convolution_param.HasField("num_output")
    assert [d.code for d in doc.dropped] == ["E103", "E102", "E101"]
    assert doc.warnings == []
    lenient = Document(tree, schema, "caffe.NetParameter", lenient=True, best_effort=True)
    assert lenient.message == net
    assert [d.code for d in lenient.dropped] == ["E102"]
    assert [d.code for d in lenient.warnings] == ["W102", "W101"]


def _words(text: str) -> list[str]:
    return text.split()


#: Scalar spellings per field type, each put into a net by its template.
SPELLINGS = {
    'layer {{ name: "l" convolution_param {{ num_output: {} }} }}': _words(  # uint32
        "0 7 010 08 0x1F 0X1f -0 -1 4294967295 4294967296 0x100000000 1.0 1e3 1f true"
    ),
    'layer {{ name: "l" convolution_param {{ axis: {} }} }}': _words(  # int32
        "-1 -0 -2147483648 2147483647 2147483648 -0x80000000 0x80000000 -010"
    ),
    'layer {{ name: "l" input_param {{ shape {{ dim: {} }} }} }}': _words(  # int64
        "-9223372036854775808 9223372036854775807 9223372036854775808 0x7fffffffffffffff"
    ),
    'layer {{ name: "l" loss_weight: {} }}': _words(  # float
        "1 1.5 1.5f 1.5F 1f 0f .5 5. -.5 1e5 1E5 1e5f 1.5e-3F inf -inf INF Infinity -Infinity "
        "nan NAN -nan inff nanf infinityf 0x10 010 01.5 00 0 -0 0.0 1e400 true"
    ),
    "force_backward: {}": _words("true True t 1 false False f 0 TRUE yes 0x1 0x0 00 -0 2 0x2"),
    'layer {{ name: "l" pooling_param {{ pool: {} }} }}': _words(  # enum
        "MAX AVE STOCHASTIC 1 0x1 01 -0 3 max MAXX -1 1.0"
    ),
}
#: Where text_format's Python helpers accept what protobuf's C++ parser (Caffe's) refuses, or
#: the reverse; ours follows C++ (checked against Caffe's own parser below).
PYTHON_ONLY = {"num_output: -0", "loss_weight: inff", "loss_weight: nanf", "loss_weight: infinityf"}
CPP_ONLY = {"pool: 01", "force_backward: 0x1", "force_backward: 0x0", "force_backward: 00"}


def _cases() -> list[str]:
    return [template.format(value) for template, values in SPELLINGS.items() for value in values]


def _ours(text: str) -> Message | None:
    try:
        return loads(text).message  # type: ignore[no-any-return]
    except ProtoeditError:
        return None


def _case_name(text: str) -> str:
    """``pool: 01`` for the case that writes that value."""
    found = re.search(r"(\w+: \S+)[ }]*$", text)
    assert found is not None
    return found.group(1)


def test_scalars_parse_as_text_format_does_where_it_follows_protobufs_rules() -> None:
    cls = builtin_schema().message_class("caffe.NetParameter")
    for text in _cases():
        try:
            reference: Message | None = text_format.Parse(text, cls())
        except text_format.ParseError:
            reference = None
        ours = _ours(text)
        name = _case_name(text)
        if name in PYTHON_ONLY:
            assert reference is not None and ours is None, text
        elif name in CPP_ONLY:
            assert reference is None and ours is not None, text
        elif ours is None or reference is None:
            assert ours is reference, text
        else:  # as text, so that a NaN equals a NaN
            assert text_format.MessageToString(ours) == text_format.MessageToString(reference)


@pytest.mark.caffe
def test_scalars_parse_as_caffes_own_parser_does(tmp_path: Path) -> None:
    import os
    import subprocess

    from protoedit.caffe.build import tool_path

    tool = tool_path("upgrade_net_proto_text")
    cls = builtin_schema().message_class("caffe.NetParameter")
    env = dict(os.environ, GLOG_minloglevel="3")
    accepted = refused = 0
    for text in _cases():
        source, out = tmp_path / "in.prototxt", tmp_path / "out.prototxt"
        source.write_text(f'name: "n"\n{text}\n')
        out.unlink(missing_ok=True)
        done = subprocess.run([str(tool), str(source), str(out)], env=env, capture_output=True)
        ours = _ours(f'name: "n"\n{text}\n')
        if done.returncode != 0:
            assert ours is None, f"Caffe refuses {text!r}, we accept it"
            refused += 1
            continue
        assert ours is not None, f"Caffe accepts {text!r}, we refuse it"
        reference = text_format.Parse(out.read_text(), cls())
        assert text_format.MessageToString(ours) == text_format.MessageToString(reference), text
        accepted += 1
    assert accepted > 40 and refused > 20


@pytest.mark.parametrize(
    "value",
    [
        "plain",
        'a "quoted" name',
        "back\\slash",
        "it's",
        "tab\there",
        "line\nbreak",
        "cr\rlf",
        "bell\x07 and nul\x00",
        "del\x7f",
        "é ü 漢字",
        "\\x41 stays",
    ],
)
def test_quote_round_trips_through_text_format_and_binding(value: str) -> None:
    from protoedit.schema.values import quote

    text = f"name: {quote(value)}"
    cls = builtin_schema().message_class("caffe.NetParameter")
    assert text_format.Parse(text, cls()).name == value
    assert loads(text).message.name == value
    assert "\n" not in text and "\x00" not in text  # one line, no raw control bytes


def test_bytes_values_are_written_as_escapes_not_as_text() -> None:
    doc = loads("channels: 1\n", message_type="Datum")
    payload = bytes(range(256))
    doc.set("data", payload)
    assert doc.dumps().isascii()
    assert doc.message.data == payload
    cls = builtin_schema().message_class("caffe.Datum")
    assert text_format.Parse(doc.dumps(), cls()).data == payload
