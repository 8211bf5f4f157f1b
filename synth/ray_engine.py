"""The ``generate`` batch on a Ray cluster: the same jobs, rows and files as the local engine, run by Ray Data actors.

The driver plans the run as `affectsynth.batch.run_batch` does (lock, stale temps, manifest,
``plan_jobs``), then hands the jobs to :class:`RayRunner` through run_batch's ``runner`` seam. A
Ray dataset holds one row per planned job (paths, targets and the outputs already settled as JSON;
never image bytes). ``map_batches`` runs :class:`SynthActor`: each actor builds one Synthesizer
once, runs its jobs as the local engine runs a unit (`affectsynth.batch.load_sources`: the faces
of a batch's photos detected together, then `process_loaded` per job), writes the PNGs itself
into OUTPUT_DIR (atomic temp + rename, so OUTPUT_DIR must be a path that every node sees) and
returns only the manifest rows, as JSON. The driver appends each job's rows to the manifest as they stream in, so an
interrupted driver keeps what came back and the next run resumes from it.

Failures: an actor that dies is restarted by Ray and its in-flight batch is retried (at most
``max_task_retries`` times); a batch that still fails is dropped (``max_errored_blocks``) and its
jobs are run again one per task; a job that still never comes back gets ``worker-crashed`` rows,
which the next run retries. A job's rows are recorded once, even if Ray ran it twice.

Stalls: the Ray Data stream is consumed by a daemon thread that hands results to the driver
through a queue (`affectsynth.stall.stream_with_stall_timeout`). When no result arrives for
``RayOptions.stall_timeout_s`` (Ray Data 2.60 once waited 14 minutes after an image killed every
actor), the driver stops waiting: every job still pending gets ``worker-crashed`` rows ("no result
from Ray for N s (stalled)"; the next run retries them), no further pass is tried, the pass's
Ray Data execution is shut down (its actors are killed) and the Ray session ends as after any run
(a local Ray stops; on a cluster, ``ray.shutdown`` disconnects the driver and Ray ends its job,
whose actors die with it). The driver's main thread waits in short slices, so Ctrl-C (and
SIGTERM) still stop it at once.

Ray is an optional extra (``pip install 'affectsynth[ray]'``), imported only here, when used.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from affectsynth.atomic import remove_stale_temps
from affectsynth.manifest import ManifestRow
from affectsynth.plan import Job
from affectsynth.stall import StreamStalled, stream_with_stall_timeout

__all__ = ["RayOptions", "RayRunner", "RayUnavailableError", "SynthActor", "import_ray", "run_batch_ray",
           "stall_detail"]

#: Test hook: ``MARKER:REL_SOURCE``: the first actor that gets REL_SOURCE creates MARKER and dies
#: (``os._exit``) before writing anything; after that the job runs normally. ``:REL_SOURCE`` (no
#: marker): every actor that gets it dies. Read by the driver, passed to the actors.
DIE_ONCE_ENV = "AFFECTSYNTH_TEST_RAY_DIE_ONCE"

#: Test hook: ``REL_SOURCE``: every actor that gets REL_SOURCE sleeps (10 minutes) before running
#: it, so that the driver sees a stalled stream. Read by the driver, passed to the actors.
SLEEP_ENV = "AFFECTSYNTH_TEST_RAY_SLEEP"

#: how long the test hook of :data:`SLEEP_ENV` sleeps (longer than any test's stall timeout)
SLEEP_S = 600.0

#: the driver's queue wait per slice: short, so that signals (Ctrl-C) are handled promptly
POLL_S = 0.25

INSTALL_HINT = "pip install 'affectsynth[ray]'"


class RayUnavailableError(ImportError):
    """``--engine ray`` without Ray installed."""


def import_ray() -> Any:
    """Import ``ray`` and ``ray.data`` or raise `RayUnavailableError` naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401  (the Data library is in the ray[data] extra)
    except ImportError as e:
        raise RayUnavailableError(f"--engine ray needs Ray Data, which is not installed ({e}); install it with "
                                  f"{INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """How the batch runs on Ray.

    Args:
        address: a running cluster (``HEAD:6379``, ``auto``); ``None`` starts a local Ray in
            this process (and stops it at the end).
        workers: actors (one Synthesizer each); ``None``: one per ``cpus_per_worker`` CPUs of the cluster.
        cpus_per_worker: CPUs Ray reserves per actor (synthesis runs on one torch thread, for the same
            bytes as the local engine; more CPUs leave room for PNG encoding and I/O).
        gpus_per_worker: GPUs per actor; ``None``: 1 when the run's device is CUDA, else 0.
        batch_size: jobs (source images) per actor call: small, so a lost actor loses little and
            results stream back early.
        max_task_retries: retries of a batch whose actor died (the actor itself always restarts).
        local_cpus: CPUs of a local Ray (default: ``workers * cpus_per_worker``, or all cores).
        object_store_mb: object store of a local Ray; only rows pass through it.
        stall_timeout_s: seconds without any result from Ray after which the driver gives up on
            the jobs still pending (``worker-crashed`` rows, retried by the next run) and ends the
            run; counts from the start of each pass, so it must cover the actors' start-up too.
    """

    address: str | None = None
    workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    batch_size: int = 2
    max_task_retries: int = 2
    local_cpus: int | None = None
    object_store_mb: int = 200
    stall_timeout_s: float = 600.0

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--workers: expected >= 1, got {self.workers}")
        if self.cpus_per_worker <= 0:
            raise ValueError(f"RayOptions: cpus_per_worker must be > 0, got {self.cpus_per_worker}")
        if self.batch_size < 1:
            raise ValueError(f"RayOptions: batch_size must be >= 1, got {self.batch_size}")
        if self.object_store_mb < 75:
            raise ValueError(f"RayOptions: object_store_mb must be >= 75 (Ray's minimum), got {self.object_store_mb}")
        if not self.stall_timeout_s > 0:
            raise ValueError(f"--ray-stall-timeout: expected seconds > 0, got {self.stall_timeout_s}")


# --------------------------------------------------------------------------- rows <-> JSON

def job_to_record(index: int, job: Job) -> dict[str, Any]:
    """The dataset row of a job: small, JSON-safe (paths, targets, settled outputs)."""
    return {"index": index, "source": job.source, "rel_source": job.rel_source,
            "targets": json.dumps([t.to_dict() for t in job.targets]), "done": json.dumps(sorted(job.done))}


def job_from_record(rec: dict[str, Any], output_dir: str, settings: Any) -> Job:
    """Inverse of :func:`job_to_record` (the settings travel once, with the actor)."""
    from affectsynth.blendshapes.targets import target_from_dict

    targets = tuple(target_from_dict(d) for d in json.loads(str(rec["targets"])))
    return Job(str(rec["source"]), str(rec["rel_source"]), output_dir, targets, settings,
               frozenset(json.loads(str(rec["done"]))))


def rows_to_json(rows: list[ManifestRow]) -> str:
    """Manifest rows as one JSON string (what an actor returns per job)."""
    return json.dumps([asdict(r) for r in rows])


def rows_from_json(text: str) -> list[ManifestRow]:
    """Inverse of :func:`rows_to_json`."""
    return [ManifestRow(**d) for d in json.loads(text)]


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (``getrusage``; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# --------------------------------------------------------------------------- the actor

class SynthActor:
    """The ``map_batches`` callable: one Synthesizer per actor, built once; jobs in, manifest rows out.

    Args:
        output_dir: OUTPUT_DIR as every node sees it.
        settings: the run's `GenerateSettings`.
        threads: torch threads; default `affectsynth.batch.SYNTH_THREADS` (same bytes as the local engine).
        die_once: test hook (see :data:`DIE_ONCE_ENV`): ``(marker path, rel_source)``.
        sleep_on: test hook (see :data:`SLEEP_ENV`): the rel_source this actor sleeps on.
    """

    def __init__(self, output_dir: str, settings: Any, threads: int | None = None,
                 die_once: tuple[str, str] | None = None, sleep_on: str | None = None) -> None:
        import torch

        from affectsynth.batch import SYNTH_THREADS, make_synthesizer

        torch.set_num_threads(SYNTH_THREADS if threads is None else max(1, int(threads)))
        self.output_dir = output_dir
        self.settings = settings
        self.die_once = die_once
        self.sleep_on = sleep_on or None
        self.synth = make_synthesizer(settings)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        """Run every job of ``batch`` (columns of :func:`job_to_record`); one result row per job.

        Returns columns ``index``, ``rows`` (JSON of the job's manifest rows), ``fatal`` (a
        `DiskFullError` message, else ""), ``pid`` and ``peak_rss_mb`` (this actor process) and
        ``cpu_s`` (the job's CPU time in this process, all its threads; an equal share of the
        batch's loading and fitting included), ``process_cpu_s`` (this
        process's CPU time so far: imports and the Synthesizer's build included).
        """
        from affectsynth.batch import DiskFullError, load_sources, process_loaded
        from affectsynth.rows import fail_rows, reason_detail

        out: dict[str, list] = {"index": [], "rows": [], "fatal": [], "pid": [], "peak_rss_mb": [], "cpu_s": [],
                                "process_cpu_s": []}
        n = len(batch["index"])
        records = [{k: batch[k][i] for k in ("index", "source", "rel_source", "targets", "done")} for i in range(n)]
        jobs = [job_from_record(rec, self.output_dir, self.settings) for rec in records]
        for job in jobs:
            self._maybe_die(job)
        cpu0 = time.process_time()
        sources = load_sources(self.synth, jobs)  # the batch's faces detected together, as the local engine's units
        shared_cpu = (time.process_time() - cpu0) / max(1, n)
        for rec, job, source in zip(records, jobs, sources):
            if self.sleep_on is not None and job.rel_source == self.sleep_on:
                time.sleep(SLEEP_S)  # test hook: a stalled stream
            fatal = ""
            cpu0 = time.process_time() - shared_cpu
            try:
                rows = process_loaded(self.synth, source)
            except DiskFullError as e:
                rows, fatal = [], str(e)
            except Exception as e:  # the engine catches per item (STYLE 5): as the local pool's worker-error
                rows = fail_rows(job, "error", "worker-error", reason_detail(e))
            out["index"].append(int(rec["index"]))
            out["rows"].append(rows_to_json(rows))
            out["fatal"].append(fatal)
            out["pid"].append(os.getpid())
            out["peak_rss_mb"].append(peak_rss_mb())
            out["cpu_s"].append(time.process_time() - cpu0)
            out["process_cpu_s"].append(time.process_time())
        return out

    def _maybe_die(self, job: Job) -> None:
        if self.die_once is None:
            return
        marker, rel = self.die_once
        if job.rel_source == rel and not marker:  # no marker: die every time (a poisonous image)
            os._exit(1)
        if job.rel_source == rel:
            try:
                fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os._exit(1)


# --------------------------------------------------------------------------- the driver

@dataclass
class RayStats:
    """What the Ray run measured, per actor process (pid): peak RSS (MiB), CPU seconds of its jobs and
    of its whole life so far; then results seen, results of jobs already recorded (ignored), jobs
    rerun alone, jobs that never came back (all of them), and of those the jobs given up on because
    the stream stalled (``stall_timeout_s``)."""

    actor_peak_rss_mb: dict[int, float] = field(default_factory=dict)
    actor_cpu_s: dict[int, float] = field(default_factory=dict)
    actor_process_cpu_s: dict[int, float] = field(default_factory=dict)
    results: int = 0
    duplicates: int = 0
    isolated: int = 0
    crashed: int = 0
    stalled: int = 0


class RayRunner:
    """run_batch's ``runner`` for Ray: ``runner(jobs, record)`` runs the jobs, ``record(rows)`` once per job.

    Args:
        settings: the run's `GenerateSettings` (sent once to each actor).
        options: `RayOptions`.
    """

    #: how the run is executed (the summary's ``execution:`` line and the progress bar)
    description = "Ray Data actors"

    def __init__(self, settings: Any, options: RayOptions) -> None:
        self.settings = settings
        self.options = options
        self.stats = RayStats()
        self._dataset: Any = None  # the pass's Ray dataset (set by `_results`), to stop it if it stalls

    def __call__(self, jobs: list[Job], record: Callable[[list[ManifestRow]], None]) -> None:
        from affectsynth.rows import fail_rows

        if not jobs:
            return
        ray = import_ray()
        with _ray_session(ray, self.options):
            pending = dict(enumerate(jobs))
            detail = "the Ray actor died on this image (run alone)"
            try:
                self._run_pass(ray, pending, record, isolate=False)
                if pending:  # batches that failed even after retries: each job alone
                    self.stats.isolated += len(pending)
                    self._run_pass(ray, pending, record, isolate=True)
            except StreamStalled as e:  # no further pass: Ray itself is stuck; the next run retries these
                self.stats.stalled = len(pending)
                detail = stall_detail(e.timeout_s)
            for i in sorted(pending):
                self.stats.crashed += 1
                record(fail_rows(pending.pop(i), "error", "worker-crashed", detail))
        # every task has ended: temp files of actors that died mid-write are debris (the lock is ours)
        remove_stale_temps(Path(jobs[0].output_dir))

    def _run_pass(self, ray: Any, pending: dict[int, Job], record: Callable[[list[ManifestRow]], None], *,
                  isolate: bool) -> None:
        """Run ``pending`` jobs on an actor pool; record and remove each job whose rows come back.

        Raises:
            StreamStalled: no result for ``stall_timeout_s`` (the jobs left in ``pending`` are not done).
            DiskFullError: an actor could not write.
        """
        from affectsynth.batch import DiskFullError

        ctx = ray.data.DataContext.get_current()
        old = ctx.max_errored_blocks
        ctx.max_errored_blocks = -1  # a batch that keeps failing is dropped, not fatal: its jobs are isolated
        try:
            results = stream_with_stall_timeout(self._results(ray, pending, isolate=isolate),
                                                self.options.stall_timeout_s, poll_s=POLL_S,
                                                name="affectsynth-ray-results")
            for res in results:
                if res["fatal"]:
                    raise DiskFullError(res["fatal"])
                i = int(res["index"])
                self.stats.results += 1
                pid, mb = int(res["pid"]), float(res["peak_rss_mb"])
                self.stats.actor_peak_rss_mb[pid] = max(mb, self.stats.actor_peak_rss_mb.get(pid, 0.0))
                self.stats.actor_cpu_s[pid] = self.stats.actor_cpu_s.get(pid, 0.0) + float(res["cpu_s"])
                self.stats.actor_process_cpu_s[pid] = max(float(res["process_cpu_s"]),
                                                          self.stats.actor_process_cpu_s.get(pid, 0.0))
                job = pending.pop(i, None)
                if job is None:  # Ray ran this job twice (a retried batch): its rows are in already
                    self.stats.duplicates += 1
                    continue
                record(rows_from_json(str(res["rows"])))
        except BaseException:  # stalled, disk full, Ctrl-C: the reader thread is abandoned, stop what feeds it
            _stop_execution(self._dataset)
            raise
        finally:
            self._dataset = None
            ctx.max_errored_blocks = old

    def _results(self, ray: Any, pending: dict[int, Job], *, isolate: bool) -> Iterator[dict[str, Any]]:
        """Stream the actors' result rows; an execution error ends the stream (the rest stay pending).

        Runs in the reader thread of `stream_with_stall_timeout` (builds the dataset there too); it
        only reads ``pending``, which the driver changes only for jobs that already came back.
        """
        o = self.options
        recs = [job_to_record(i, j) for i, j in sorted(pending.items())]
        workers = o.workers or _cluster_workers(ray, o.cpus_per_worker)
        workers = max(1, min(workers, len(recs)))
        gpus = o.gpus_per_worker
        if gpus is None:
            gpus = 1.0 if str(self.settings.device).startswith("cuda") else 0.0
        ds = ray.data.from_items(recs, override_num_blocks=len(recs) if isolate else None)
        die = os.environ.get(DIE_ONCE_ENV)
        die_once = tuple(die.split(":", 1)) if die else None
        with warnings.catch_warnings():
            # Ray 2.60 has no named parameter for the retry bounds (its **ray_remote_args warn, removal
            # announced for 2.64; the extra pins 2.60): without them a batch that kills its actor
            # every time would be retried for ever.
            warnings.simplefilter("ignore", DeprecationWarning)
            ds = ds.map_batches(
                SynthActor, batch_size=1 if isolate else o.batch_size, batch_format="numpy",
                fn_constructor_kwargs={"output_dir": pending[next(iter(pending))].output_dir,
                                       "settings": self.settings,
                                       "die_once": die_once,
                                       "sleep_on": os.environ.get(SLEEP_ENV) or None},
                compute=ray.data.ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1),
                num_cpus=o.cpus_per_worker, num_gpus=gpus or None,
                max_restarts=-1, max_task_retries=o.max_task_retries)
        self._dataset = ds
        it = iter(ds.iter_rows())
        while True:
            try:
                res = next(it)
            except StopIteration:
                return
            except ray.exceptions.RayError:  # the execution failed as a whole: what is missing is retried
                return
            yield res


def _stop_execution(ds: Any) -> None:
    """Best effort: shut an abandoned (stalled, interrupted) Ray Data execution down, so that its threads
    neither outlive the pass nor, once Ray is shut down, log errors and start a new local Ray from the
    abandoned reader thread (seen with Ray 2.60).

    Ray Data 2.60 keeps the streaming executor of ``iter_rows`` on the dataset (private
    ``_current_executor``, what its own ``_synchronize_progress_bar`` shuts down); if that ever
    changes this does nothing and the Ray session's shutdown still ends the actors.
    """
    executor = getattr(ds, "_current_executor", None)
    if executor is None:
        return
    with contextlib.suppress(Exception):
        executor.shutdown(force=True)


def stall_detail(timeout_s: float) -> str:
    """The ``worker-crashed`` detail of a job given up on because Ray sent nothing for ``timeout_s``."""
    return f"no result from Ray for {timeout_s:g} s (stalled); rerun to retry"


def _cluster_workers(ray: Any, cpus_per_worker: float) -> int:
    cpus = float(ray.cluster_resources().get("CPU", 1))
    return max(1, int(cpus // cpus_per_worker))


@contextlib.contextmanager
def _ray_session(ray: Any, o: RayOptions) -> Iterator[None]:
    """Connect to ``o.address`` or start a local Ray (stopped on exit); reuse one already initialised."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the run's own bar counts images; Ray's would interleave with it
    logging.getLogger("ray.data").setLevel(logging.WARNING)
    if ray.is_initialized():
        yield
        return
    if o.address:
        ray.init(address=o.address, log_to_driver=False, include_dashboard=False, logging_level=logging.WARNING)
    else:
        cpus = o.local_cpus or (int(o.workers * o.cpus_per_worker) if o.workers else (os.cpu_count() or 1))
        ray.init(num_cpus=max(1, cpus), include_dashboard=False, log_to_driver=False,
                 object_store_memory=o.object_store_mb * 1024 * 1024, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


def run_batch_ray(input_dir: str | os.PathLike, output_dir: str | os.PathLike, settings: Any,
                  options: RayOptions | None = None, **kwargs: Any) -> Any:
    """`affectsynth.batch.run_batch` on Ray: same arguments (``kwargs``), same manifest and outputs.

    Returns:
        The `BatchSummary`; ``summary.ray`` is the runner's `RayStats` (peak RSS per actor).

    Raises:
        RayUnavailableError: Ray Data is not installed (the message names the extra).
        Everything `run_batch` raises.
    """
    from affectsynth.batch import run_batch

    import_ray()  # fail before the lock and the manifest are touched
    runner = RayRunner(settings, options or RayOptions())
    summary = run_batch(input_dir, output_dir, settings, runner=runner, **kwargs)
    summary.ray = runner.stats
    return summary
