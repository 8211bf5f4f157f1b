"""The batch engine's process pool: jobs on spawned workers that die with their parent, crashes isolated.

Each worker builds one Synthesizer (the ``initializer``) and runs jobs (``run_job``). Workers
never outlive the main process: on Linux ``PR_SET_PDEATHSIG`` (``prctl`` via ctypes) sends them
SIGKILL when it dies, and a watchdog thread exits a worker whose parent process id changed (any
OS, and the window before ``prctl``). They ignore SIGINT: the parent handles it and stops them.

When a worker dies (a native library aborting on an input, the OOM killer), every job in flight
in that pool is only a suspect: each is rerun alone in a fresh one-worker pool, so innocent jobs
finish and only a job that kills a worker on its own gets a ``worker-crashed`` row.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

__all__ = ["WorkerSetupError", "die_with_parent", "run_pool"]

#: Jobs in flight per worker (keeps workers busy without queueing the whole run).
INFLIGHT_PER_WORKER = 4

_PR_SET_PDEATHSIG = 1


class WorkerSetupError(RuntimeError):
    """A worker process could not build its Synthesizer (a set-up problem, not a bad image)."""


def die_with_parent(parent_pid: int, *, poll_s: float = 1.0) -> None:
    """Make this process exit when ``parent_pid`` is no longer its parent.

    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``. Everywhere: a daemon thread that checks
    ``os.getppid()`` every ``poll_s`` seconds and calls ``os._exit(1)`` once it changed (the
    parent died and the process was re-parented). Exits at once if the parent is already gone.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while True:
            threading.Event().wait(poll_s)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, name="affectsynth-parent-watchdog", daemon=True).start()


def _kill_workers(ex: ProcessPoolExecutor) -> None:
    """Terminate a pool's worker processes now (they may be in the middle of a job)."""
    procs = list((getattr(ex, "_processes", None) or {}).values())
    for p in procs:
        with contextlib.suppress(Exception):  # already gone
            p.kill()
    for p in procs:
        with contextlib.suppress(Exception):
            p.join(5)


def run_pool(jobs: Sequence[Any], *, workers: int, initializer: Callable[..., None], initargs: tuple,
             run_job: Callable[[Any], Any], on_result: Callable[[Any, Any], None],
             on_crash: Callable[[Any, str], None], on_error: Callable[[Any, BaseException], None],
             fatal: tuple[type[BaseException], ...] = ()) -> None:
    """Run ``run_job(job)`` for every job on a spawn process pool, surviving worker crashes.

    Args:
        jobs: picklable jobs, run in order (at most :data:`INFLIGHT_PER_WORKER` per worker in flight).
        workers: processes.
        initializer: called once in each worker with ``(os.getpid() of this process, *initargs)``;
            it should call :func:`die_with_parent` with that first argument.
        initargs: its other arguments.
        run_job: the worker function (module level, picklable).
        on_result: ``(job, result)`` in this process, once per job that finished.
        on_crash: ``(job, detail)`` for a job that killed its worker even when run alone.
        on_error: ``(job, exception)`` for a job whose result could not come back (e.g. unpicklable).
        fatal: exception types from ``run_job`` that stop the whole run (re-raised here).

    Raises:
        RuntimeError: a worker could not build its Synthesizer (`WorkerSetupError`), or workers die
            before any job ever completes (they cannot start).
        BaseException: any ``fatal`` exception, KeyboardInterrupt; workers are killed first.
    """
    import multiprocessing as mp

    pending: deque = deque(jobs)
    suspects: deque = deque()
    deferred: set[int] = set()  # suspects that crashed alone before any job completed (tried again last)
    completed = 0
    ctx = mp.get_context("spawn")
    while pending or suspects:
        isolating = bool(suspects)
        queue = suspects if isolating else pending
        n = 1 if isolating else max(1, min(workers, len(pending)))
        limit = 1 if isolating else INFLIGHT_PER_WORKER * n
        ex = ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=initializer,
                                 initargs=(os.getpid(), *initargs))
        inflight: dict[Future, Any] = {}
        clean = False
        try:
            while queue or inflight:
                while queue and len(inflight) < limit:
                    job = queue.popleft()
                    inflight[ex.submit(run_job, job)] = job
                finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                broken = False
                for fut in finished:
                    job = inflight.pop(fut)
                    try:
                        result = fut.result()
                    except WorkerSetupError as e:
                        raise RuntimeError(f"generate: a worker could not build the Synthesizer: {e}") from None
                    except BrokenProcessPool:
                        broken = True
                        if not isolating:
                            suspects.append(job)
                        elif completed == 0 and id(job) not in deferred:
                            deferred.add(id(job))
                            suspects.append(job)
                            if all(id(j) in deferred for j in suspects):
                                raise RuntimeError("generate: worker processes die before finishing any image "
                                                   "(the Synthesizer could not be built?); rerun with "
                                                   "--workers 1 to see why") from None
                        else:
                            on_crash(job, "the worker process died on this image (run alone)")
                        continue
                    except fatal:
                        raise
                    except Exception as e:  # e.g. a result that could not be pickled: this job only
                        on_error(job, e)
                        continue
                    completed += 1
                    on_result(job, result)
                if broken:
                    suspects.extend(inflight.values())  # in flight when the worker died: rerun alone
                    inflight.clear()
                    break
            clean = True
        finally:
            if not clean or suspects:
                _kill_workers(ex)
            ex.shutdown(wait=clean, cancel_futures=True)
