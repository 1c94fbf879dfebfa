"""``protoedit sweep``: plans and config hashes, the store under two writers at once, the
local engine, resuming after SIGKILL, failures and retries, Ctrl-C, and Ray (a local
instance)."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from protoedit.cli import main
from protoedit.errors import InputError
from protoedit.explain import Settings, visualize
from protoedit.explain.preprocess import Preprocess
from protoedit.sweep import Plan, Target, make_model, read_plan, run_sweep
from protoedit.sweep import compute as compute_module
from protoedit.sweep.engines import LocalPool, RayUnavailableError, make_pool
from protoedit.sweep.plan import expand, work_items
from protoedit.sweep.store import DATABASE, Store, UnitOutput

from .assets.digits import TrainedDigits

ROOT = Path(__file__).resolve().parent.parent
DIGITS_NET = ROOT / "fixtures" / "digits" / "deploy.prototxt"
SCALE = 1 / 255  # the digits net reads pixels in [0, 1]


def _plan(
    model: TrainedDigits,
    layers: tuple[str, ...] = ("conv1",),
    channels: tuple[int, ...] | None = None,
    steps: int = 20,
    batch: int = 4,
) -> Plan:
    digits = make_model(
        model.deploy, model.weights, name="digits", preprocess=Preprocess(scale=SCALE)
    )
    return Plan((Target(digits, layers, channels),), settings=Settings(steps=steps), batch=batch)


def _cli(model: TrainedDigits, store: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "protoedit.cli",
        "sweep",
        "--net",
        str(model.deploy),
        "--weights",
        str(model.weights),
        "--scale",
        repr(SCALE),
        "--store",
        str(store),
        "-q",
        *extra,
    ]


def _env() -> dict[str, str]:
    env = dict(os.environ, GLOG_minloglevel="2")
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _rows(store: Path) -> list[tuple[str, int, float, str]]:
    with sqlite3.connect(store / DATABASE) as db:
        return db.execute(
            "SELECT config, channel, finished, sweep FROM results ORDER BY config, channel"
        ).fetchall()


def _stored(store: Path) -> int:
    """Results stored so far (0 while the store is being created)."""
    try:
        return len(_rows(store)) if (store / DATABASE).exists() else 0
    except sqlite3.OperationalError:  # the tables are not there yet
        return 0


def _check_consistent(store: Path, killed: bool = False) -> None:
    """Integrity of the database, every referenced file present, no temporary files (a
    ``killed`` writer may leave some: never referenced, removed by the next sweep)."""
    with sqlite3.connect(store / DATABASE) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        files = db.execute("SELECT image, array FROM results").fetchall()
    for image, array in files:
        assert (store / image).stat().st_size > 0
        assert (store / array).stat().st_size > 0
    temporary = list((store / "images").rglob(".tmp-*"))
    assert killed or not temporary
    assert not {str(p.relative_to(store)) for p in temporary} & {f for pair in files for f in pair}


def _caffe_children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` and that run the Caffe worker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == pid and b"protoedit.caffe.child" in cmdline:
            found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _wait_for(predicate: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@contextmanager
def _writes_held(store: Path, at_least: int, timeout: float = 60.0) -> Iterator[int]:
    """Wait until ``at_least`` results are stored, then hold the store's write lock for the
    block: the lock is taken before the count, so the count is what the store holds until the
    block ends (a running sweep waits to commit). Yields the count."""
    _wait_for(lambda: _stored(store) >= 1, timeout)  # the store and its tables exist
    deadline = time.monotonic() + timeout
    db = sqlite3.connect(store / DATABASE, timeout=timeout, isolation_level=None)
    try:
        while True:
            db.execute("BEGIN IMMEDIATE")
            count: int = db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            if count >= at_least:
                break
            db.execute("ROLLBACK")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out with {count} results stored")
            time.sleep(0.02)
        yield count
    finally:
        db.close()


# --- no Caffe needed ------------------------------------------------------------------------


def test_plan_file_relative_paths_settings_and_errors(tmp_path: Path) -> None:
    (tmp_path / "w.caffemodel").write_bytes(b"weights")
    (tmp_path / "net.prototxt").write_text(DIGITS_NET.read_text())
    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(
        'store = "out"\nbatch = 3\nworkers = 2\n[settings]\npreset = "yosinski2"\nsteps = 7\n'
        '[[model]]\nname = "d"\nnet = "net.prototxt"\nweights = "w.caffemodel"\n'
        'layers = "conv1, conv2"\nchannels = "0-2,5"\nscale = 0.5\n'
    )
    given = read_plan(plan_path)
    assert given.store == str(tmp_path / "out") and given.workers == 2
    plan = given.plan
    assert plan.batch == 3 and plan.settings.steps == 7 and plan.settings.decay == 0.3
    target = plan.targets[0]
    assert target.layers == ("conv1", "conv2") and target.channels == (0, 1, 2, 5)
    assert target.model.net == str(tmp_path / "net.prototxt")
    assert target.model.preprocess.scale == 0.5
    jobs = expand(plan)
    assert [j.layer for j in jobs] == ["conv1", "conv2"]
    assert [i.channels for i in work_items(jobs, set())][:2] == [(0, 1, 2), (5,)]
    for text, message in [
        ("[[model]]\nnet = 'net.prototxt'\nlayers = ['conv1']\n", "'weights' is missing"),
        ("colour = 1\n", "unknown plan key 'colour'"),
        ("[settings]\nsteps = 0\n[[model]]\nnet='n'\nweights='w'\nlayers=['a']\n", "at least 1"),
        ("[settings]\nlr = 1\n[[model]]\nnet='n'\nweights='w'\nlayers=['a']\n", "'lr'"),
        ("x = [\n", "not a TOML plan"),
    ]:
        plan_path.write_text(text)
        with pytest.raises(InputError, match=message):
            read_plan(plan_path)


def test_config_hash_follows_every_setting_and_the_files(tmp_path: Path) -> None:
    weights = tmp_path / "w.caffemodel"
    weights.write_bytes(b"one")
    assert make_model(DIGITS_NET, weights).name == "DigitsNet"  # the net's own name
    model = make_model(DIGITS_NET, weights, name="d")
    plan = Plan((Target(model, ("conv1", "conv2"), (0, 1)),), settings=Settings(steps=5))
    base = [j.config for j in expand(plan)]
    assert len(set(base)) == 2  # one per layer
    assert [j.config for j in expand(plan)] == base  # stable
    renamed = Plan(
        (Target(replace(model, name="other"), ("conv1", "conv2"), (0, 1)),),
        settings=Settings(steps=5),
    )
    assert [j.config for j in expand(renamed)] == base  # the name is a label, not a setting
    changes = [
        replace(plan, settings=Settings(steps=6)),
        replace(plan, settings=Settings(steps=5, seed=1)),
        replace(plan, batch=4),
        replace(plan, after_inplace=True),
        Plan(
            (Target(replace(model, preprocess=Preprocess(scale=2.0)), ("conv1", "conv2")),),
            settings=Settings(steps=5),
        ),
    ]
    for changed in changes:
        assert not set(j.config for j in expand(changed)) & set(base), changed
    weights.write_bytes(b"two")
    assert not set(j.config for j in expand(plan)) & set(base)
    with pytest.raises(InputError, match="channel 16 is out of range: 'conv1' of d has 16"):
        expand(Plan((Target(model, ("conv1",), (3, 16)),)))


def _writer(folder: str, config: str, channels: list[int], tag: float, barrier: object) -> None:
    store = Store(folder)
    barrier.wait()  # type: ignore[attr-defined]
    for channel in channels:
        out = UnitOutput(
            channel,
            np.full((1, 8, 8), tag, np.float32),
            np.full((8, 8, 1), int(tag), np.uint8),
            0.0,
            tag,
            1,
            False,
        )
        store.add_results(
            config,
            "conv1",
            [out],
            seconds=0.01,
            worker=str(tag),
            sweep=str(tag),
            versions=("v", "c"),
        )
        store.add_failure(config, [channel], 1, "test", str(tag), str(tag))
    store.close()


def test_two_processes_writing_one_store_at_once(tmp_path: Path) -> None:
    """Both write every channel (overlapping): each unit is stored once, with the files of
    the writer that stored it, and no write is lost or torn."""
    with Store(tmp_path) as store:
        store.add_config("cfg", "m", "conv1", {})
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(2)
    channels = list(range(60))
    procs = [
        ctx.Process(target=_writer, args=(str(tmp_path), "cfg", order, tag, barrier))
        for order, tag in ((channels, 1.0), (channels[::-1], 2.0))
    ]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(60)
        assert proc.exitcode == 0
    _check_consistent(tmp_path)
    with Store(tmp_path) as store:
        rows = store.rows()
        assert sorted(r.channel for r in rows) == channels
        winners = {r.sweep for r in rows}
        assert winners <= {"1.0", "2.0"}
        for row in rows:
            assert float(np.load(tmp_path / row.array).ravel()[0]) == float(row.sweep)
            assert row.activation_end == float(row.sweep)
        counts = store.computed_counts()
        assert set(counts.values()) == {2}  # both computed everything; one result kept
        assert len(store.failures()) == 2 * len(channels)
    # the losers' files were removed: one PNG and one .npy per unit
    assert len(list((tmp_path / "images").rglob("*.png"))) == len(channels)
    assert len(list((tmp_path / "images").rglob("*.npy"))) == len(channels)


def test_ray_missing_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(RayUnavailableError, match=r"pip install 'protoedit\[ray\]'"):
        make_pool("ray", 2)
    weights = Path(os.devnull)
    code = main(
        [
            "sweep",
            "--net",
            str(DIGITS_NET),
            "--weights",
            str(weights),
            "--layers",
            "conv1",
            "--channels",
            "0",
            "--store",
            "unused",
            "--engine",
            "ray",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert not (tmp_path / DATABASE).exists()  # refused before touching the store
    assert err.strip().splitlines() == [
        "protoedit: error: the ray engine needs Ray, which is not installed: "
        "pip install 'protoedit[ray]'"
    ]


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cases = [
        (["sweep", "--store", str(tmp_path)], "give a plan file (--plan) or --net, --weights"),
        (["sweep", "report", str(tmp_path), "-o", str(tmp_path / "a")], "no sweep store here"),
        (["sweep", "--plan", "a.toml", "--net", "n"], "give a plan file or --net/--weights"),
    ]
    for argv, message in cases:
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1, err
    for argv, message in [
        (["sweep", "report", str(tmp_path)], "required: -o/--output"),
        (["sweep", "a.toml"], "invalid choice: 'a.toml'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err


# --- Caffe: the digits net ------------------------------------------------------------------


@pytest.mark.caffe
def test_local_sweep_stores_every_unit_and_loads_each_net_once_per_worker(
    digits_model: TrainedDigits, tmp_path: Path
) -> None:
    plan = _plan(digits_model, layers=("conv1", "conv2"), channels=tuple(range(12)), batch=3)
    pool = LocalPool(2)
    try:
        summary = run_sweep(plan, tmp_path, pool=pool, progress=False)
        loads = [c.loads for c in pool.computers]
    finally:
        pool.close()
    assert (summary.units, summary.computed, summary.failed) == (24, 24, 0)
    assert all(1 <= n <= 2 for n in loads) and sum(loads) >= 2, loads  # <= one per layer each
    _check_consistent(tmp_path)
    with Store(tmp_path) as store:
        rows = store.rows()
        configs = store.configs()
    assert [(r.layer, r.channel) for r in rows] == [
        (layer, c) for layer in ("conv1", "conv2") for c in range(12)
    ]
    assert len({r.worker for r in rows}) == 2  # both workers did some
    for row in rows:
        assert (row.width, row.height) == (8, 8) and row.steps == 20
        assert row.protoedit_version and row.caffe_version.startswith("brocolli-caffe")
        assert configs[row.config]["settings"]["steps"] == 20
        assert np.load(tmp_path / row.array).shape == (1, 8, 8)
    # a stored batch is what visualize gives for those units with the plan's settings
    direct = visualize(
        digits_model.deploy,
        weights=digits_model.weights,
        target="conv2",
        after_inplace=False,  # the plan's default
        objectives=[3, 4, 5],
        settings=plan.settings,
        preprocess=Preprocess(scale=SCALE),
        batch=3,
        progress=False,
    )
    stored = {r.channel: r for r in rows if r.layer == "conv2"}
    for channel, unit in zip((3, 4, 5), direct.results, strict=True):
        row = stored[channel]
        assert row.activation_end == pytest.approx(unit.end, rel=1e-4, abs=1e-6)
        np.testing.assert_allclose(np.load(tmp_path / row.array), unit.image, rtol=1e-4, atol=1e-5)
    again = run_sweep(plan, tmp_path, progress=False, workers=1)
    assert (again.already, again.computed) == (24, 0)
    changed = run_sweep(
        replace(plan, settings=Settings(steps=21)), tmp_path, progress=False, workers=1
    )
    assert (changed.already, changed.computed) == (0, 24)  # a new result, not an overwrite
    with Store(tmp_path) as store:
        assert len(store.rows()) == 48
        assert set(store.computed_counts().values()) == {1}


@pytest.mark.caffe
def test_sigkill_mid_sweep_then_resume_computes_each_unit_once(
    digits_model: TrainedDigits, tmp_path: Path
) -> None:
    argv = _cli(
        digits_model,
        tmp_path,
        "--layers",
        "conv2",
        "--channels",
        "all",
        "--batch",
        "1",
        "--steps",
        "400",
        "--workers",
        "2",
    )
    proc = subprocess.Popen(argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        with _writes_held(tmp_path, 6) as stored:  # no result is committed from here on
            children = _caffe_children(proc.pid)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
    finally:
        proc.kill()
    before = _rows(tmp_path)
    assert len(before) == stored
    assert 6 <= stored < 32, "the sweep finished before it was killed"
    assert children
    _wait_for(lambda: not any(_alive(pid) for pid in children), 20)  # no orphan Caffe process
    _check_consistent(tmp_path, killed=True)
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"32 units: {len(before)} already stored, {32 - len(before)} computed now" in done.stdout
    after = _rows(tmp_path)
    assert sorted(c for _, c, _, _ in after) == list(range(32))  # every unit exactly once
    assert set(before) <= set(after)  # the finished units kept their time and sweep
    assert len({s for _, _, _, s in after}) == 2
    with Store(tmp_path) as store:
        assert set(store.computed_counts().values()) == {1}  # no unit computed twice
    _check_consistent(tmp_path)


@pytest.mark.caffe
def test_two_sweeps_at_once_on_one_store(digits_model: TrainedDigits, tmp_path: Path) -> None:
    argv = _cli(
        digits_model,
        tmp_path,
        "--layers",
        "conv1",
        "--channels",
        "all",
        "--batch",
        "2",
        "--workers",
        "1",
    )
    procs = [
        subprocess.Popen(
            argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    _check_consistent(tmp_path)
    rows = _rows(tmp_path)
    assert sorted(c for _, c, _, _ in rows) == list(range(16))
    assert len(list((tmp_path / "images").rglob("*.png"))) == 16  # duplicates' files removed


@pytest.mark.caffe
def test_killed_caffe_worker_is_recorded_and_retried(
    digits_model: TrainedDigits, tmp_path: Path
) -> None:
    argv = _cli(
        digits_model,
        tmp_path,
        "--layers",
        "conv2",
        "--channels",
        "0-15",
        "--batch",
        "1",
        "--steps",
        "150",
        "--workers",
        "1",
    )
    proc = subprocess.Popen(
        argv, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(lambda: _stored(tmp_path) >= 2)
        victims = _caffe_children(proc.pid)
        assert len(victims) == 1
        os.kill(victims[0], signal.SIGKILL)
        out, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "16 units: 0 already stored, 16 computed now" in out and "0 failed" in out
    assert "1 failed attempts, 1 retried" in out
    assert "died with SIGKILL" in out
    with Store(tmp_path) as store:
        failures = store.failures()
        assert len(failures) == 1 and failures[0][2] == 1
        assert "SIGKILL" in failures[0][3]
        assert len(store.rows()) == 16


@pytest.mark.caffe
def test_a_unit_that_raises_is_retried_once_then_counted(
    digits_model: TrainedDigits, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = compute_module.visualize
    calls: dict[int, int] = {}

    def flaky(*args: object, **kwargs: object) -> object:
        first = kwargs["objectives"][0]  # type: ignore[index]
        calls[first] = calls.get(first, 0) + 1
        if first == 4 or (first == 8 and calls[first] == 1):
            raise ValueError(f"unit {first} broke")
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(compute_module, "visualize", flaky)
    summary = run_sweep(
        _plan(digits_model, channels=tuple(range(12))), tmp_path, workers=2, progress=False
    )
    assert calls == {0: 1, 4: 2, 8: 2}
    assert (summary.computed, summary.failed, summary.failed_attempts, summary.retried) == (
        8,
        4,
        3,
        2,
    )
    assert any("ValueError: unit 4 broke" in r for r in summary.reasons)
    with Store(tmp_path) as store:
        assert sorted(r.channel for r in store.rows()) == [0, 1, 2, 3, 8, 9, 10, 11]
        reasons = store.failures()
    assert sorted((channels, attempt) for _, channels, attempt, _ in reasons) == [
        ("4,5,6,7", 1),
        ("4,5,6,7", 2),
        ("8,9,10,11", 1),
    ]


@pytest.mark.caffe
def test_ctrl_c_stops_cleanly_and_the_sweep_resumes(
    digits_model: TrainedDigits, tmp_path: Path
) -> None:
    argv = _cli(
        digits_model,
        tmp_path,
        "--layers",
        "conv2",
        "--channels",
        "0-11",
        "--batch",
        "1",
        "--steps",
        "4000",  # about half a second per unit: 8 units (2 s or more) remain when hit
        "--workers",
        "2",
    )
    # Ctrl-C as a terminal sends it: SIGINT handled by default in the sweep (a CI runner may
    # start the tests with SIGINT ignored, and Python then keeps ignoring it).
    proc = subprocess.Popen(
        argv,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        _wait_for(lambda: _stored(tmp_path) >= 4)
        children = _caffe_children(proc.pid)
        assert _stored(tmp_path) < 12, "the sweep finished before Ctrl-C: make it longer"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted:" in err and "run the same sweep again" in err
    assert not any(_alive(pid) for pid in children)
    _check_consistent(tmp_path)
    stored = len(_rows(tmp_path))
    assert 4 <= stored < 12
    done = subprocess.run(argv, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sorted(c for _, c, _, _ in _rows(tmp_path)) == list(range(12))


@pytest.mark.caffe
def test_ray_engine_on_a_local_instance(digits_model: TrainedDigits, tmp_path: Path) -> None:
    try:
        import ray
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Ray is not installed (CI=true: the ray engine test must run)")
        pytest.skip("Ray is not installed (the ray extra)")
    plan = _plan(digits_model, channels=tuple(range(8)), batch=2)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        summary = run_sweep(plan, tmp_path / "ray", engine="ray", workers=2, progress=False)
    finally:
        ray.shutdown()
    local = run_sweep(plan, tmp_path / "local", workers=2, progress=False)
    assert (summary.computed, summary.failed, local.computed) == (8, 0, 8)
    with Store(tmp_path / "ray") as a, Store(tmp_path / "local") as b:
        by_ray, by_local = a.rows(), b.rows()
    assert len({r.worker for r in by_ray}) == 2 and all(r.worker.startswith("ray:") for r in by_ray)
    # same config, same seeds: the same ascent wherever it runs
    assert [r.config for r in by_ray] == [r.config for r in by_local]
    for x, y in zip(by_ray, by_local, strict=True):
        np.testing.assert_allclose(
            np.load(tmp_path / "ray" / x.array),
            np.load(tmp_path / "local" / y.array),
            rtol=1e-4,
            atol=1e-5,
        )


def test_the_docs_plans_read(tmp_path: Path) -> None:
    """The TOML plans the docs show (the sweep page's, the Ray how-to's) are valid plans
    (their files stubbed by name)."""
    page = (ROOT / "docs" / "reference" / "commands" / "sweep.md").read_text(encoding="utf-8")
    text = page.split("```toml\n", 1)[1].split("```", 1)[0]
    for name in ("deploy.prototxt", "resnet_50_1by2_nsfw.caffemodel"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "plan.toml").write_text(text)
    given = read_plan(tmp_path / "plan.toml")
    target = given.plan.targets[0]
    assert target.model.name == "open_nsfw" and target.channels is None
    assert target.layers == ("conv_1", "conv_stage1_block0_branch2b")
    assert target.model.preprocess.mean == (104.0, 117.0, 123.0)
    assert given.store == str(tmp_path / "atlas-store") and given.plan.settings.steps == 200
    howto = (ROOT / "docs" / "how-to" / "ray-sweep.md").read_text(encoding="utf-8")
    (tmp_path / "plan.toml").write_text(howto.split("```toml\n", 1)[1].split("```", 1)[0])
    on_ray = read_plan(tmp_path / "plan.toml")
    assert on_ray.engine == "ray" and on_ray.address == "auto"
    assert on_ray.store == "/local/disk/store" and on_ray.plan.targets[0].model.name == "open_nsfw"
