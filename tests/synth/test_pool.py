"""The process pool's crash paths, on real workers: a worker that dies (os.abort) on one job,
workers that cannot start, a worker set-up error, a job whose result cannot come back; and how
workers start: forked from a fork server that preloaded the engine, dying with the main process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from affectsynth.pool import WorkerSetupError, die_with_parent, run_pool

HERE = Path(__file__).resolve().parent
needs_forkserver = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server: Linux only")

_SETUP_ERROR: str | None = None


def _init(parent_pid: int, mode: str) -> None:
    global _SETUP_ERROR
    die_with_parent(parent_pid)
    if mode == "setup-error":
        _SETUP_ERROR = "no model here"


def _job(x: str) -> object:
    if _SETUP_ERROR is not None:
        raise WorkerSetupError(_SETUP_ERROR)
    if x == "crash" or x == "always":
        os.abort()  # what OpenCV does on a too-long image side: the whole worker process dies
    if x == "unpicklable":
        return threading.Lock()
    return x.upper()


def _run(jobs, mode="ok", workers=2):
    results, crashed, errors = {}, [], []
    run_pool(jobs, workers=workers, initializer=_init, initargs=(mode,), run_job=_job,
             on_result=lambda j, r: results.__setitem__(j, r), on_crash=lambda j, why: crashed.append((j, why)),
             on_error=lambda j, e: errors.append((j, type(e).__name__)))
    return results, crashed, errors


def test_a_crashing_job_is_isolated_and_innocent_jobs_finish():
    jobs = ["a", "b", "crash", "c", "d", "e", "f"]
    results, crashed, errors = _run(jobs)
    assert results == {j: j.upper() for j in jobs if j != "crash"}  # in flight with the crash, still done
    assert [j for j, _ in crashed] == ["crash"] and "run alone" in crashed[0][1]
    assert errors == []


def _unit_job(unit: tuple[str, ...]) -> list[object]:
    return [_job(x) for x in unit]


def test_a_unit_whose_worker_dies_is_rerun_item_by_item():
    """Units of several items (the engine's detection batches) are split when their worker dies:
    only the item that kills a worker alone is reported, its unit's other items still finish."""
    units = [("a",), ("b", "crash", "c"), ("d", "e"), ("f",)]
    results, crashed = {}, []
    run_pool(units, workers=2, initializer=_init, initargs=("ok",), run_job=_unit_job,
             on_result=lambda u, r: results.update(zip(u, r)), on_crash=lambda u, why: crashed.append(u),
             on_error=lambda u, e: None, split=lambda u: [(x,) for x in u])
    assert results == {x: x.upper() for x in "abcdef"}
    assert crashed == [("crash",)]


def test_workers_that_never_finish_a_job_are_fatal():
    with pytest.raises(RuntimeError, match="die before finishing any image"):
        _run(["always", "always"], workers=1)


def test_worker_setup_error_is_fatal():
    with pytest.raises(RuntimeError, match="could not build the Synthesizer: no model here"):
        _run(["a", "b"], mode="setup-error")


def test_a_result_that_cannot_come_back_fails_that_job_only():
    results, crashed, errors = _run(["a", "unpicklable", "b"], workers=1)
    assert results == {"a": "A", "b": "B"} and crashed == [] and [j for j, _ in errors] == ["unpicklable"]


_PRELOADED_AT_INIT: bool | None = None


def _init_report(parent_pid: int, pid_dir: str) -> None:
    global _PRELOADED_AT_INIT
    _PRELOADED_AT_INIT = "affectsynth.synthesizer" in sys.modules and "torch" in sys.modules
    die_with_parent(parent_pid)
    Path(pid_dir, str(os.getpid())).touch()


def _report_job(x: str) -> tuple[int, int, bool | None]:
    if x == "sleep":
        time.sleep(120)
    return os.getpid(), os.getppid(), _PRELOADED_AT_INIT


#: A fresh interpreter (a fork server is one per process) running a 2-worker pool of `_report_job`.
POOL_SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {here!r})
    from test_pool import _init_report, _report_job
    from affectsynth.pool import run_pool
    print("main", os.getpid(), flush=True)
    run_pool({jobs!r}, workers=2, initializer=_init_report, initargs=({pid_dir!r},), run_job=_report_job,
             on_result=lambda job, r: print("result", *r, flush=True), on_crash=print, on_error=print)
""")


def _pool_process(jobs: list[str], pid_dir: Path, **kw) -> subprocess.Popen:
    code = POOL_SCRIPT.format(here=str(HERE), jobs=jobs, pid_dir=str(pid_dir))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kw)


@needs_forkserver
def test_workers_fork_from_a_server_that_imported_the_engine(tmp_path):
    proc = _pool_process(["a", "b", "c"], tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    main = int(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("main")))
    results = [ln.split()[1:] for ln in out.splitlines() if ln.startswith("result")]
    assert len(results) == 3, out
    for pid, ppid, preloaded in results:
        assert int(ppid) != main, "a worker is a child of the fork server, not of the main process"
        assert preloaded == "True", "the worker found torch and the Synthesizer's modules already imported"


@needs_forkserver
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_forked_workers_die_with_the_main_process(tmp_path, sig, alive):
    proc = _pool_process(["sleep", "sleep"], tmp_path)
    deadline = time.time() + 240
    while time.time() < deadline and len(list(tmp_path.iterdir())) < 2 and proc.poll() is None:
        time.sleep(0.05)
    workers = [int(p.name) for p in tmp_path.iterdir()]
    assert len(workers) == 2 and all(alive(w) for w in workers), proc.communicate()[0] if proc.poll() is not None else ""
    os.kill(proc.pid, sig)  # the main process only: the fork server and the workers must follow it
    deadline = time.time() + 15  # not reaped meanwhile: a dead main process stays a zombie
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    proc.wait(60)
    assert not any(alive(w) for w in workers), "workers outlived the main process"
