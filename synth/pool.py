"""The batch engine's process pool: jobs on worker processes that die with their parent, crashes isolated.

Each worker builds one Synthesizer (the ``initializer``) and runs jobs (``run_job``). On Linux
workers start from a fork server: a clean process, started once, that imports
:data:`WORKER_PRELOAD` (torch, numba, the Synthesizer's modules, numba's registries: ~1.1 s CPU) and forks each worker
from there, so that N workers pay those imports once instead of N times (and a pool rebuilt to
isolate a crash pays none); :func:`start_worker_server` starts those imports before the run is even
planned. Elsewhere workers are spawned. Either way a worker is a fresh process whose only state is imported modules (no torch
threads, no Synthesizer: see ``tests/synth/test_fork_safety.py`` for why that matters).

Workers never outlive the main process: on Linux ``PR_SET_PDEATHSIG`` (``prctl`` via ctypes)
sends them SIGKILL when their parent process dies (the main process, or the fork server, which
exits when the main process does), and a watchdog thread exits a worker whose parent process id
changed or whose main process is gone (any OS, and the window before ``prctl``). They ignore
SIGINT: the parent handles it and stops them.

When a worker dies (a native library aborting on an input, the OOM killer), every job in flight
in that pool is only a suspect: each is rerun alone in a fresh one-worker pool, so innocent jobs
finish and only a job that kills a worker on its own gets a ``worker-crashed`` row.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import sys
import threading
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Sequence

__all__ = ["WORKER_PRELOAD", "WorkerSetupError", "die_with_parent", "run_pool", "start_worker_server",
           "worker_context"]

#: Jobs in flight per worker (keeps workers busy without queueing the whole run).
INFLIGHT_PER_WORKER = 4

#: Modules the fork server imports once for all workers: `affectsynth.worker_preload`, which imports
#: the batch engine's worker functions and everything the Synthesizer imports (torch, numba, scipy)
#: with the garbage collector paused, then installs numba's registries. Nothing runs that starts
#: threads or loads models, so forking from there is as safe as spawning.
WORKER_PRELOAD = ("affectsynth.worker_preload",)

_PR_SET_PDEATHSIG = 1


class WorkerSetupError(RuntimeError):
    """A worker process could not build its Synthesizer (a set-up problem, not a bad image)."""


def worker_context() -> Any:
    """The multiprocessing context workers start from: on Linux the fork server (preloading
    :data:`WORKER_PRELOAD`), elsewhere spawn (macOS has a fork server too, but forking a process
    that loaded system frameworks is unsafe there: why Python's own default is spawn on macOS)."""
    import multiprocessing as mp

    if not sys.platform.startswith("linux") or "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(list(WORKER_PRELOAD))  # no effect once the server runs
    if not _SERVER_STATE["stop_registered"]:
        _SERVER_STATE["stop_registered"] = True
        atexit.register(_stop_worker_server)
    return ctx


#: Whether the fork server's stop is registered, and whether a pool used it (then its workers are done).
_SERVER_STATE = {"stop_registered": False, "used": False}


def _stop_worker_server() -> None:
    """At exit: stop the fork server and wait for it, so that its CPU time and its workers' (which
    it reaped) count as this process's children (``time``, ``getrusage``), as spawned workers' do;
    otherwise it exits after this process, re-parented, and that time is lost to those tools.

    A server no pool used may still be importing: it is terminated rather than waited for.
    """
    from multiprocessing import forkserver

    server = forkserver._forkserver  # the stdlib keeps no public handle on its server
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    if not _SERVER_STATE["used"]:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(Exception):  # exit-time cleanup: never mask the run's own exit status
        server._stop()


def start_worker_server() -> None:
    """Start the fork server now (it imports :data:`WORKER_PRELOAD` in the background), so that
    the first worker does not wait for those imports after the run is planned.

    A no-op where workers are spawned, or when the server already runs. It exits with this
    process; starting it costs its imports (~1.1 s CPU on another core), so call it only when
    the run will use workers.
    """
    if worker_context().get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _alive(pid: int) -> bool:
    """True if process ``pid`` runs: it exists and (where ``/proc`` says) is not a zombie, dead but
    not yet reaped by its parent."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b") ", 1)[1][:1] not in (b"Z", b"X")
    except FileNotFoundError:  # no such process (Linux), or no /proc: ask the kernel
        pass
    except (OSError, IndexError):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def die_with_parent(parent_pid: int, *, poll_s: float = 1.0) -> None:
    """Make this worker exit when its main process ``parent_pid`` goes away.

    The worker's parent process is ``parent_pid`` itself (spawned) or the fork server (forked
    from it; the server exits once ``parent_pid`` and every worker holding its pipe are gone).
    Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``: killed when that parent dies. Everywhere: a
    daemon thread that every ``poll_s`` seconds calls ``os._exit(1)`` once the parent process id
    changed (the parent died and the worker was re-parented) or ``parent_pid`` no longer runs
    (gone, or a zombie: how a forked worker learns of the main process's death). Exits at once
    if the main process is already gone.
    """
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    parent_now = os.getppid()

    def orphaned() -> bool:
        return os.getppid() != parent_now or not _alive(parent_pid)

    if orphaned():
        os._exit(1)

    def watch() -> None:
        while True:
            threading.Event().wait(poll_s)
            if orphaned():
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
             split: Callable[[Any], list[Any]] | None = None, fatal: tuple[type[BaseException], ...] = ()) -> None:
    """Run ``run_job(job)`` for every job on a process pool (see `worker_context`), surviving worker crashes.

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
        split: a job that was running when a worker died -> the jobs to rerun alone instead (a
            job of several items -> one job per item, so only the item that kills a worker alone
            is reported to ``on_crash``); default: the job itself.
        fatal: exception types from ``run_job`` that stop the whole run (re-raised here).

    Raises:
        RuntimeError: a worker could not build its Synthesizer (`WorkerSetupError`), or workers die
            before any job ever completes (they cannot start).
        BaseException: any ``fatal`` exception, KeyboardInterrupt; workers are killed first.
    """
    pending: deque = deque(jobs)
    suspects: deque = deque()
    deferred: set[int] = set()  # suspects that crashed alone before any job completed (tried again last)
    completed = 0
    ctx = worker_context()
    _SERVER_STATE["used"] = True
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
                            suspects.extend(split(job) if split else [job])
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
                    for lost in inflight.values():  # in flight when the worker died: rerun alone
                        suspects.extend(split(lost) if split else [lost])
                    inflight.clear()
                    break
            clean = True
        finally:
            if not clean or suspects:
                _kill_workers(ex)
            ex.shutdown(wait=clean, cancel_futures=True)
