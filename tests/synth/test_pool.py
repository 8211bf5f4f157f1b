"""The process pool's crash paths, on real spawned workers: a worker that dies (os.abort) on one job,
workers that cannot start, a worker set-up error, a job whose result cannot come back."""

from __future__ import annotations

import os
import threading

import pytest

from affectsynth.pool import WorkerSetupError, die_with_parent, run_pool

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
