"""protoedit.caffe, the one Caffe worker layer: warm workers, deadlines, deaths, the memory
limit, the Python-layer gate, the fatal-line parser and the child's environment."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest

from protoedit.caffe import (
    CaffeRefused,
    Pool,
    PythonLayersRefused,
    Session,
    child_environment,
    fatal_logs,
    last_fatal,
    session,
)
from protoedit.caffe.build import setup_hint
from protoedit.caffe.gate import python_layers
from protoedit.errors import CaffeUnavailableError
from protoedit.explain import gradients
from protoedit.rewrites import LossHead

from .assets.digits import TrainedDigits
from .helpers import FIXTURES, ROOT

PROBE = "tests.caffe_probe"
PYTHON_NET = FIXTURES / "validate" / "python_layer.prototxt"
BLAS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _probe_session(**options: object) -> Session:
    return Session(pythonpath=[str(ROOT)], **options)  # type: ignore[arg-type]


def test_the_fatal_line_parser_reads_both_glog_date_forms() -> None:
    stderr = (
        "I1207 10:00:00.000000 42 net.cpp:10] Creating layer data\n"
        "F20261207 10:00:01.5 42 layer.hpp:358] Check failed: a == b (1 vs. 2)  \n"
        "F1207 10:00:02.000000 42 net.cpp:99] Unknown bottom blob 'x'\n"
        "*** Check failure stack trace: ***\n"
    )
    assert [(f.file, f.line) for f in fatal_logs(stderr)] == [("layer.hpp", 358), ("net.cpp", 99)]
    fatal = last_fatal(stderr)
    assert fatal is not None and str(fatal) == "net.cpp:99: Unknown bottom blob 'x'"
    assert fatal_logs(stderr)[0].message == "Check failed: a == b (1 vs. 2)"
    assert last_fatal("I1207 10:00:00.000000 42 net.cpp:10] fine\n") is None


def test_the_childs_environment_pins_blas_and_leaves_ours_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "64")
    monkeypatch.delenv("GLOG_minloglevel", raising=False)
    before = dict(os.environ)
    env = child_environment(["/somewhere"])
    assert all(env[name] == "1" for name in BLAS) and env["GLOG_minloglevel"] == "2"
    assert env["PYTHONPATH"].split(os.pathsep)[0] == "/somewhere"
    assert dict(os.environ) == before


def test_the_sweeps_local_pool_leaves_os_environ_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from protoedit.sweep.engines import LocalPool

    for name in BLAS:
        monkeypatch.delenv(name, raising=False)
    before = dict(os.environ)
    pool = LocalPool(2)
    pool.close()
    assert dict(os.environ) == before


def test_the_gate_names_the_layer_where_it_is_and_the_fix() -> None:
    with pytest.raises(PythonLayersRefused) as caught:
        _probe_session().call(PROBE, "load", {"net": str(PYTHON_NET)})
    error = caught.value
    assert [layer.name for layer in error.layers] == ["double"]
    assert error.location is not None and (error.location.line, error.location.column) == (9, 1)
    assert str(error).startswith(f"{PYTHON_NET}:9:1: the net has Python layers ('double')")
    assert "allow_python_layers=True" in str(error) and "--allow-python-layers" in str(error)
    assert error.needs == {"allow_python_layers": "True"}


def test_the_gate_follows_caffes_phase_rules() -> None:
    text = (
        'layer { name: "data" type: "Input" top: "x" input_param { shape { dim: 1 } } }\n'
        'layer { name: "py" type: "Python" bottom: "x" top: "y"\n'
        '  python_param { module: "m" layer: "L" } include { phase: TRAIN } }\n'
    )
    assert python_layers(text, "net.prototxt", "TEST") == []
    [layer] = python_layers(text, "net.prototxt", "TRAIN")
    assert (layer.name, layer.module, layer.location.line) == ("py", "m", 2)
    # A text our parser cannot read: any mention of the type counts.
    [unsure] = python_layers('layer { type: "Python" oops', "bad.prototxt")
    assert unsure.location.line == 1 and unsure.name == "?"


def test_without_pycaffe_a_session_says_how_to_set_it_up(tmp_path: Path) -> None:
    shadow = tmp_path / "caffe"
    shadow.mkdir()
    (shadow / "__init__.py").write_text("raise ImportError('no caffe in this test')\n")
    opened = Session(pythonpath=[str(tmp_path)])
    with pytest.raises(CaffeUnavailableError) as caught:
        opened.start()
    assert "no caffe in this test" in str(caught.value)
    assert str(caught.value).endswith(setup_hint())
    assert "protoedit setup-caffe" in str(caught.value)


@pytest.mark.caffe
def test_a_session_imports_caffe_once_and_reuses_its_worker() -> None:
    with _probe_session() as opened:
        first = opened.request(PROBE, "state")
        second = opened.request(PROBE, "state")
        env = opened.request(PROBE, "env", names=list(BLAS))["env"]
    assert first["pid"] == second["pid"] and second["imports"] == 1 and first["caffe"]
    assert opened.caffe_imports == 1
    assert env == dict.fromkeys(BLAS, "1")


@pytest.mark.caffe
def test_a_killed_worker_is_reported_then_replaced() -> None:
    with _probe_session() as opened:
        pid = opened.request(PROBE, "state")["pid"]
        opened.kill()
        reply = opened.call(PROBE, "state", {}, worker_pid=pid)
        assert reply.died and reply.death("run") == (
            "the Caffe process died with SIGKILL during run"
        )
        again = opened.request(PROBE, "state")
        assert again["pid"] != pid and opened.caffe_imports == 2


@pytest.mark.caffe
def test_an_abort_is_explained_from_caffes_fatal_line() -> None:
    with _probe_session() as opened:
        reply = opened.call(PROBE, "abort", {"fatal": True})
        assert reply.died and reply.noted("stage") == ["aborting"]
        assert reply.fatal is not None and (reply.fatal.file, reply.fatal.line) == ("net.cpp", 99)
        assert reply.death("forward") == (
            "Caffe aborted during forward: Check failed: probe (1 vs. 2) (net.cpp:99)"
        )
        plain = opened.call(PROBE, "abort", {})
        assert plain.death("load") == "the Caffe process died with SIGABRT during load"
        assert opened.request(PROBE, "state")["caffe"]  # a fresh worker serves the next one
        with pytest.raises(CaffeRefused, match="no, thank you") as caught:
            opened.request(PROBE, "refuse")
        assert caught.value.kind == "input"


@pytest.mark.caffe
def test_the_request_timeout_counts_from_sending_not_from_the_caffe_import() -> None:
    with _probe_session(request_timeout=1.0) as opened:
        started = time.monotonic()
        reply = opened.call(PROBE, "sleep", {"seconds": 30})
        took = time.monotonic() - started
        assert reply.timed_out and reply.noted("stage") == ["sleeping"]
        assert 1.0 <= reply.seconds < 3.0  # the request alone; the import came before
        assert took >= reply.seconds
        assert opened.pid is None  # killed: its state is unknown
        assert opened.request(PROBE, "sleep", seconds=0.1) == {"slept": 0.1}


@pytest.mark.caffe
def test_a_run_deadline_bounds_many_requests_together() -> None:
    with _probe_session(request_timeout=60.0) as opened:
        opened.start()
        with opened.run_deadline(1.5):
            assert opened.call(PROBE, "sleep", {"seconds": 1.0}).answer == {"slept": 1.0}
            second = opened.call(PROBE, "sleep", {"seconds": 1.0})
        assert second.timed_out and second.seconds < 1.0
        assert opened.call(PROBE, "sleep", {"seconds": 1.0}).answer == {"slept": 1.0}


@pytest.mark.caffe
def test_the_memory_limit_applies_in_the_child() -> None:
    with _probe_session(memory_limit=64 * 2**20) as opened:
        assert opened.request(PROBE, "allocate", bytes=2**20) == {"allocated": 2**20}
        reply = opened.call(PROBE, "allocate", {"bytes": 4 * 2**30})
        assert reply.kind == "memory" and "MemoryError" in reply.failed


@pytest.mark.caffe
def test_allowed_python_layers_get_their_folder_and_a_worker_of_their_own() -> None:
    with _probe_session() as opened:
        allowed = opened.call(PROBE, "load", {"net": str(PYTHON_NET)}, allow_python_layers=True)
        assert allowed.answer is not None
        assert allowed.answer["path"] == [str(PYTHON_NET.parent.resolve())]
        pid = opened.pid
        plain = FIXTURES / "lenet_deploy.prototxt"
        assert opened.request(PROBE, "load", net=str(plain))["loaded"] == str(plain)
        assert opened.pid != pid  # the modules stay imported: the next net gets a fresh child


@pytest.mark.caffe
def test_a_pool_spreads_tasks_over_its_workers() -> None:
    def task(opened: Session) -> int:
        opened.request(PROBE, "sleep", seconds=0.5)
        return int(opened.request(PROBE, "state")["pid"])

    with Pool[Session](2, pythonpath=[str(ROOT)]) as pool:
        pids = dict(pool.map_unordered((n, task) for n in range(4)))
    assert sorted(pids) == [0, 1, 2, 3] and len(set(pids.values())) == 2


@pytest.mark.caffe
def test_a_second_gradients_call_in_a_session_costs_no_caffe_import(
    digits_model: TrainedDigits,
) -> None:
    x = np.load(digits_model.split)["images"][:1]
    options = {"weights": digits_model.weights, "inputs": x, "target": "ip2"}
    options["head"] = LossHead("logit", 3)
    with session() as opened:
        first = gradients(digits_model.deploy, session=opened, **options)  # type: ignore[arg-type]
        pid = opened.pid
        second = gradients(digits_model.deploy, session=opened, **options)  # type: ignore[arg-type]
        assert opened.pid == pid and opened.caffe_imports == 1
    assert first.loss == second.loss
    for layer, roles in first.params.items():
        for role, grad in roles.items():
            assert np.array_equal(grad, second.params[layer][role])


@pytest.mark.caffe
def test_explain_sessions_pass_the_gate_too(caffe_session: Session) -> None:
    from protoedit.explain import CaffeSession

    text = PYTHON_NET.read_text()
    with pytest.raises(PythonLayersRefused, match="'double'"):
        CaffeSession(text, net_path=str(PYTHON_NET), session=caffe_session)
    with pytest.raises(PythonLayersRefused):
        CaffeSession(text, net_path=str(PYTHON_NET))
    shared_pid = caffe_session.pid
    with CaffeSession(text, net_path=str(PYTHON_NET), allow_python_layers=True) as opened:
        out = opened.run({"data": np.ones((1, 3))}, backward=False, blobs=("doubled",))
        assert opened.pid != caffe_session.pid  # its module stays imported: a worker of its own
    assert np.array_equal(out["blobs"]["doubled"], 2 * np.ones((1, 3)))
    assert caffe_session.pid == shared_pid
