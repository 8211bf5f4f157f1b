"""The process pool's crash paths, on real workers: a worker that dies (os.abort) on one job,
workers that cannot start, a worker set-up error, a job whose result cannot come back; and how
workers start: one forked from the main process at once (the quick start), the others from a fork
server that preloaded the engine, all dying with the main process."""

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

from affectsynth.pool import WorkerSetupError, busy_elsewhere, die_with_parent, quick_start_possible, run_pool

HERE = Path(__file__).resolve().parent
needs_forkserver = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the fork server: Linux only")
needs_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/loadavg: Linux only")

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
    Path(pid_dir, str(os.getpid())).write_text(f"{os.getppid()} {_PRELOADED_AT_INIT}")


def _report_job(x: str) -> tuple[int, int, bool | None]:
    if x == "sleep":
        time.sleep(120)
    return os.getpid(), os.getppid(), _PRELOADED_AT_INIT


#: A fresh interpreter (a fork server is one per process) running a 2-worker pool of `_report_job`.
POOL_SCRIPT = textwrap.dedent("""
    import os, sys
    {pre}
    sys.path.insert(0, {here!r})
    from test_pool import _init_report, _report_job
    from affectsynth.pool import run_pool
    print("main", os.getpid(), flush=True)
    run_pool({jobs!r}, workers=2, initializer=_init_report, initargs=({pid_dir!r},), run_job=_report_job,
             on_result=lambda job, r: print("result", *r, flush=True), on_crash=print, on_error=print,
             quick_start={quick!r})
""")


def _pool_process(jobs: list[str], pid_dir: Path, *, pre: str = "", quick: bool | None = True, **kw) -> subprocess.Popen:
    """The pool script in a subprocess; ``quick``: `run_pool`'s ``quick_start`` (True here: the
    load of the machine running the tests must not decide what they see)."""
    code = POOL_SCRIPT.format(here=str(HERE), jobs=jobs, pid_dir=str(pid_dir), pre=pre, quick=quick)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **kw)


def _workers_of(tmp_path: Path) -> list[tuple[int, str]]:
    """(parent pid, engine imported at init) of each worker of a `_pool_process` run."""
    return [(int(ppid), preloaded) for ppid, preloaded in (p.read_text().split() for p in tmp_path.iterdir())]


@needs_forkserver
def test_one_worker_starts_at_once_the_others_fork_from_a_server_that_imported_the_engine(tmp_path):
    proc = _pool_process(["a", "b", "c", "d", "e", "f"], tmp_path)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    main = int(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("main")))
    assert len([ln for ln in out.splitlines() if ln.startswith("result")]) == 6, out
    workers = sorted(_workers_of(tmp_path), key=lambda w: w[0] != main)
    assert len(workers) == 2, workers
    (quick_parent, quick_preloaded), (server_child_parent, server_child_preloaded) = workers
    # the quick worker: forked from the (torch-free) main process, it imports the engine itself
    assert quick_parent == main and quick_preloaded == "False", workers
    # the other: a child of the fork server, which had imported torch and the Synthesizer's modules
    assert server_child_parent != main and server_child_preloaded == "True", workers


@needs_forkserver
def test_without_quick_start_every_worker_forks_from_the_server(tmp_path):
    proc = _pool_process(["a", "b", "c", "d"], tmp_path, quick=False)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    main = int(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("main")))
    workers = _workers_of(tmp_path)
    assert len(workers) == 2 and all(ppid != main and pre == "True" for ppid, pre in workers), workers


def test_quick_start_needs_a_spare_core_and_a_server_still_importing():
    import multiprocessing as mp

    ctx = mp.get_context("forkserver" if sys.platform.startswith("linux") else "spawn")
    safe = sys.platform.startswith("linux") and "torch" not in sys.modules
    assert quick_start_possible(ctx, cores=2, busy=0, server_ready=False) is safe
    assert quick_start_possible(ctx, cores=2, busy=1, server_ready=False) is False  # the other core is taken
    assert quick_start_possible(ctx, cores=1, busy=0, server_ready=False) is False  # no second core at all
    assert quick_start_possible(ctx, cores=16, busy=12, server_ready=False) is safe
    assert quick_start_possible(ctx, cores=16, busy=0, server_ready=True) is False  # its workers start at once
    assert quick_start_possible(mp.get_context("spawn"), cores=2, busy=0, server_ready=False) is False


@needs_linux
def test_busy_elsewhere_sees_a_busy_process():
    before = busy_elsewhere()
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        during = busy_elsewhere()
    finally:
        spin.kill()
        spin.wait()
    assert before is not None and during is not None
    assert during >= 1, (before, during)


@needs_forkserver
def test_a_main_process_that_imported_torch_forks_no_worker_itself(tmp_path):
    proc = _pool_process(["a", "b", "c", "d"], tmp_path, pre="import torch")
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    main = int(next(ln.split()[1] for ln in out.splitlines() if ln.startswith("main")))
    workers = _workers_of(tmp_path)
    assert len(workers) == 2 and all(ppid != main and pre == "True" for ppid, pre in workers), workers


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
