"""The batch engine behind ``affectsynth generate``: plan, run (resumably, in parallel), summarise.

Per source image one `Job` (`affectsynth.plan`); :func:`process_image` does its work (load ->
fit once -> gates -> synthesise each target -> write each output atomically) and returns its
manifest rows (`affectsynth.rows`); the main process alone appends rows to the manifest, under
an exclusive lock on OUTPUT_DIR (`affectsynth.lock`). Nothing raised by one image stops the
batch: its failure becomes rows with ``status=error`` (or ``skipped``) and a one-line reason;
a worker process it kills is isolated (`affectsynth.pool`). Settings: `affectsynth.generate_settings`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import signal
import sys
import threading
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TextIO

import numpy as np

from affectsynth.atomic import remove_stale_temps
from affectsynth.crop import crop_square
from affectsynth.generate_settings import GenerateSettings
from affectsynth.images import ImageLoadError, load_image
from affectsynth.lock import OutputDirLock
from affectsynth.manifest import Manifest, ManifestRow
from affectsynth.naming import safe_join
from affectsynth.output_images import save_output_image
from affectsynth.plan import Job, Plan, item_seed, plan_jobs, select_targets, work_units
from affectsynth.pool import WorkerSetupError, die_with_parent, run_pool
from affectsynth.progress import OutputProgress
from affectsynth.recover import reset_detector
from affectsynth.rows import OutputPlacement, error_row, fail_rows, frame_row, ok_row, reason_detail
from affectsynth.run_record import RunSettingsConflict, check_run_settings, save_record
from affectsynth.workers import WorkerChoice, choose_workers

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_FORMATS",
    "BatchSummary",
    "DiskFullError",
    "GenerateSettings",
    "Interrupted",
    "Job",
    "Plan",
    "WorkerSetupError",
    "check_dirs",
    "crop_square",
    "item_seed",
    "make_synthesizer",
    "plan_jobs",
    "process_image",
    "RunSettingsConflict",
    "run_batch",
    "select_targets",
]

MANIFEST_NAME = "manifest.csv"

#: ``--manifest-format`` choices: the CSV journal alone, or also ``manifest.parquet`` (rebuilt from it
#: at the end of every run; `affectsynth.manifest_parquet`).
MANIFEST_FORMATS = ("csv", "parquet")

_NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


class DiskFullError(OSError):
    """OUTPUT_DIR has no space (or quota) left: the run stops instead of synthesising for nothing."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM (``signum``); rows written so far stand."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def process_image(synthesizer: Any, job: Job) -> list[ManifestRow]:
    """Do one source's work and return its manifest rows (never raises for bad input).

    Steps: load (`load_image`) -> ``synthesizer.fit`` once -> for each face kept (largest, or
    all), on its square crop (``settings.size``) or the photo, ``synthesizer.face(image, fit)`` once,
    then each target not in ``job.done``: ``synthesizer.synthesize_face(face, target,
    rng_seed=...)`` (what ``synthesize(image, target, fit=..., rng_seed=...)`` gives), atomic PNG write; then each
    frame of each affect sequence (``settings.paths``) not in ``job.done``, rendered as
    ``affectsynth animate`` renders it (one row per frame, with ``sequence, frame, time_s``).

    Args:
        synthesizer: an ``affectsynth.synthesizer.Synthesizer`` (``fit(image) -> list[FaceFit]``
            largest first; ``face(image, fit)``; ``synthesize_face(...) -> SynthResult`` with
            ``image`` and ``labels``).
        job: the source and its targets.

    Returns:
        One row per output attempted: ``ok``; ``error`` with reason ``unreadable``,
        ``fit-failed``, ``synth-failed`` or ``write-failed``; ``skipped`` with reason
        ``no-face``, ``face-too-small``, ``extreme-pose``, ``rotated-face`` or ``poor-fit``.

    Raises:
        DiskFullError: an output could not be written for lack of space (ENOSPC / EDQUOT):
            the run must stop, not go on synthesising what it cannot write.
    """
    return process_images(synthesizer, [job])[0]


def process_images(synthesizer: Any, jobs: Sequence[Job]) -> list[list[ManifestRow]]:
    """`process_image` of each job, the same rows and bytes, with the faces of all their photos
    detected in one batch (`load_sources`): the engines' unit of work. Never raises for bad input
    (see `process_image`)."""
    return [process_loaded(synthesizer, source) for source in load_sources(synthesizer, jobs)]


@dataclass
class LoadedSource:
    """A job's photo, loaded (``image``), with its fits where a batch found them (``fits``; None:
    `process_loaded` fits it alone); or, for a photo that could not be read, its ``rows``."""

    job: Job
    image: np.ndarray | None
    fits: list[Any] | None = None
    rows: list[ManifestRow] | None = None


def load_sources(synthesizer: Any, jobs: Sequence[Job]) -> list[LoadedSource]:
    """Load the jobs' photos and fit them with the faces of all of them detected in one batch
    (``synthesizer.fit_many``, where it has one).

    Which photos share a batch changes nothing (the detector gives each photo its own bits), so
    the engines may batch as they like. If the batch raises, its photos are left to be fitted
    alone, so that only a photo that fails alone gets ``fit-failed``. An unreadable photo gets its
    ``unreadable`` rows here.
    """
    sources: list[LoadedSource] = []
    for job in jobs:
        try:
            sources.append(LoadedSource(job, load_image(job.source, max_pixels=job.settings.max_pixels)))
        except (ImageLoadError, OSError, MemoryError) as e:
            sources.append(LoadedSource(job, None, rows=fail_rows(job, "error", "unreadable", reason_detail(e))))
    loaded = [src for src in sources if src.image is not None]
    if len(loaded) > 1 and hasattr(synthesizer, "fit_many"):
        by_faces: dict[str, list[LoadedSource]] = {}
        for src in loaded:
            by_faces.setdefault(src.job.settings.faces, []).append(src)
        for faces, group in by_faces.items():
            try:
                many = synthesizer.fit_many([src.image for src in group], max_faces=1 if faces == "largest" else None)
            except Exception:  # one photo broke the batch: each is fitted alone (STYLE 5)
                reset_detector(synthesizer)
                continue
            for src, fits in zip(group, many):
                src.fits = list(fits)
    return sources


def process_loaded(synthesizer: Any, source: LoadedSource) -> list[ManifestRow]:
    """`process_image` of a job whose photo `load_sources` loaded (and maybe fitted): from the
    loaded photo on, fitting it alone where no batch did."""
    if source.image is None:
        return list(source.rows or [])
    job, image, fits = source.job, source.image, source.fits
    s = job.settings
    largest = s.faces == "largest"  # only the largest face is meshed and fitted
    if fits is None:
        try:
            fits = list(synthesizer.fit(image, max_faces=1) if largest else synthesizer.fit(image))
        except Exception as e:  # the engine catches per item (STYLE 5)
            reset_detector(synthesizer)  # a detector that raised once may stay broken: rebuild it
            return fail_rows(job, "error", "fit-failed", reason_detail(e))
    if not fits:
        return fail_rows(job, "skipped", "no-face", "no face found", n_faces=0)
    n_faces = (fits[0].faces_found or 1) if largest else len(fits)  # largest: the faces the detector found
    kept = fits[:1] if s.faces == "largest" else fits
    rows: list[ManifestRow] = []
    for k, fit in enumerate(kept):
        rejection = synthesizer.check(fit, s.gates)
        if rejection is not None:
            rows += fail_rows(job, "skipped", rejection.reason, f"face {k}: {rejection.detail}",
                              n_faces=n_faces, face=k)
            continue
        face_image, face_fit = image, fit
        if s.size is not None:  # synthesise on the face crop: same result as cropping afterwards, far cheaper
            face_image, face_fit = synthesizer.crop_to_face(image, fit, s.size, scale=s.crop_scale)
        reference = None
        if s.verify:  # what the fitter reads on this face made neutral: the baseline of every score
            from affectsynth.verify import neutral_reference

            reference = neutral_reference(synthesizer, face_image, face_fit)
        face = None  # made ready by the first target not done: checks and cache key once per face
        for t in job.targets:
            out = job.output_for(t, k)
            if out in job.done:
                continue
            seed = job.seed_for(t, k)
            try:
                face = face or synthesizer.face(face_image, face_fit)
                res = synthesizer.synthesize_face(face, t, rng_seed=seed)
            except Exception as e:  # the engine catches per item (STYLE 5)
                rows.append(error_row(job, t, k, n_faces, "synth-failed", e))
                continue
            rows.append(_finish_output(synthesizer, job, res, t, k, n_faces, out, seed, reference, fit.bbox))
        rows += _sequence_rows(synthesizer, job, face_image, face_fit, k, n_faces, reference, fit.bbox)
    return rows


def _finish_output(synthesizer: Any, job: Job, res: Any, target: Any, face: int, n_faces: int, out: str, seed: int,
                   reference: Any, source_box: Any) -> ManifestRow:
    """Verify (when asked), write one synthesised output atomically and return its row.

    ``source_box`` is the face's box in the source photo (the row's placement columns).

    Raises:
        DiskFullError: no space left for the output.
    """
    s = job.settings

    def failed(reason: str, e: BaseException) -> ManifestRow:
        return error_row(job, target, face, n_faces, reason, e, output=out, seed=seed)

    image = np.asarray(res.image)
    placement = OutputPlacement.of(source_box, image.shape, size=s.size, crop_scale=s.crop_scale)
    verification = None
    if s.verify:
        from affectsynth.verify import verify

        try:
            verification = verify(synthesizer, res, target, reference=reference)
        except Exception as e:  # the engine catches per item (STYLE 5)
            return failed("verify-failed", e)
        reason = verification.rejects(s.min_verify) if s.min_verify is not None else None
        if reason is not None:  # below the threshold: recorded with its score, never written
            return ok_row(job, face, n_faces, out, seed, res.labels, verification=verification,
                          status="rejected", reason=reason, placement=placement)
    try:
        save_output_image(safe_join(job.output_dir, out), image, image_format=s.image_format,
                          png_compress_level=s.png_compress_level, fsync=False)
    except (OSError, ValueError) as e:
        if isinstance(e, OSError) and e.errno in _NO_SPACE:
            raise DiskFullError(e.errno, f"{job.output_dir}: {os.strerror(e.errno)} while writing {out}; "
                                "stopped early: free space and rerun the same command to resume") from None
        return failed("write-failed", e)
    return ok_row(job, face, n_faces, out, seed, res.labels, verification=verification, placement=placement)


def _sequence_rows(synthesizer: Any, job: Job, image: np.ndarray, fit: Any, face: int, n_faces: int,
                   reference: Any, source_box: Any) -> list[ManifestRow]:
    """Render the frames of ``job``'s sequences on one face that are not done yet, as ``affectsynth animate`` does.

    The draws (variant, head rotation, relighting) come from the sequence's seed and its whole
    plan (`affectsynth.animate.sequence_draws`), so the frames a resumed run renders are the
    frames an uninterrupted run renders; each frame is `affectsynth.animate.render_frame`.
    """
    from affectsynth.animate import render_frame, sequence_draws
    from affectsynth.blendshapes.targets import Expression

    rows: list[ManifestRow] = []
    for spec in job.sequences:
        frames = job.frames_of(spec, face)
        todo = [p for p in frames if p.output not in job.done]
        if not todo:
            continue
        seed = job.sequence_seed(spec.name, face)
        try:  # drawn from the whole plan, not the frames left: a resumed run draws as an uninterrupted one
            draws = sequence_draws(synthesizer, [p.frame for p in frames], seed)
        except Exception as e:  # the engine catches per item (STYLE 5)
            rows += [frame_row(error_row(job, p.target, face, n_faces, "synth-failed", e, output=p.output, seed=seed),
                               p) for p in todo]
            continue
        for p in todo:
            target = p.target
            if isinstance(target, Expression) and target.variant is None:
                target = target.with_variant(draws.variants[target.name])
            try:
                res = render_frame(synthesizer, image, p.frame, draws, fit=fit)
            except Exception as e:  # the engine catches per item (STYLE 5)
                rows.append(frame_row(error_row(job, target, face, n_faces, "synth-failed", e, output=p.output,
                                                seed=seed), p))
                continue
            rows.append(frame_row(_finish_output(synthesizer, job, res, target, face, n_faces, p.output, seed,
                                                 reference, source_box), p))
    return rows


# --------------------------------------------------------------------------- running

#: torch threads of every engine's synthesis (in this process, pool workers, Ray actors): the fit's
#: float reductions depend on the thread count, so one thread everywhere keeps the output bytes of
#: every engine identical; parallelism comes from processes. On small per-face tensors extra threads
#: only contend: on a loaded 2-core machine an in-process run took 4x longer with torch's default 2.
SYNTH_THREADS = 1


@contextlib.contextmanager
def synth_threads() -> Any:
    """Run the block with :data:`SYNTH_THREADS` torch threads, then restore the count."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(SYNTH_THREADS)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _import_engine() -> None:
    """Import what a Synthesizer needs (torch, numba, scipy, its modules) and install numba's
    registries without their BLAS probe (`affectsynth.numba_setup`: an engine's process runs only
    our kernels). Once per process: later calls cost nothing.

    The imports run with the garbage collector paused (`affectsynth.gc_pause`): ~0.3 s less CPU
    before the first output where they are still to do (an in-process run). A worker forked from
    the fork server has them done already (`affectsynth.worker_preload`): there it returns at once,
    without asking the collector anything (`gc.get_freeze_count` walks every frozen object: ~30 ms
    in such a worker).
    """
    from affectsynth.gc_pause import collections_paused
    from affectsynth.numba_setup import install_numba_registries

    if "affectsynth.synthesizer" in sys.modules:
        install_numba_registries()
        return
    with collections_paused(permanent=False):
        import affectsynth.synthesizer  # noqa: F401  (torch, numba, scipy)

        install_numba_registries()


def make_synthesizer(settings: GenerateSettings) -> Any:
    """Build the ``affectsynth.synthesizer.Synthesizer`` a run uses (imports torch; run it under
    :func:`synth_threads`, as every engine does), after `_import_engine`."""
    _import_engine()
    from affectsynth.synthesizer import Synthesizer, SynthSettings

    extras = SynthSettings(head_rotation_deg=settings.head_rotation_deg, light_strength=settings.light_strength,
                           gates=settings.gates)
    return Synthesizer(device=settings.device, expressions=settings.expressions_lib, settings=extras)


_WORKER_SYNTH: Any = None
_WORKER_ERROR: str | None = None


def _worker_init(parent_pid: int, settings: GenerateSettings) -> None:
    global _WORKER_SYNTH, _WORKER_ERROR
    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops the workers
    try:
        _import_engine()  # done already in a worker forked from the fork server
        import torch

        torch.set_num_threads(SYNTH_THREADS)
        _WORKER_SYNTH = make_synthesizer(settings)
    except Exception as e:  # reported once per job as WorkerSetupError, then fatal in the parent
        _WORKER_ERROR = reason_detail(e)


def _worker_run(unit: tuple[Job, ...]) -> list[list[ManifestRow]]:
    if _WORKER_ERROR is not None:
        raise WorkerSetupError(_WORKER_ERROR)
    return process_images(_WORKER_SYNTH, unit)


def _each_job(record: Callable[[Job, list[ManifestRow]], None], unit: tuple[Job, ...],
              rows_of: Callable[[Job], list[ManifestRow]]) -> None:
    for job in unit:
        record(job, rows_of(job))


@dataclass
class BatchSummary:
    """Counts of a run. ``failed``/``skipped``/``rejected`` map reason code -> number of outputs.

    ``written``, ``skipped`` and ``failed`` are what this run did; ``already_done`` (outputs and
    skips), ``standing_failed`` (permanent errors, not retried without ``retry_errors``) stand
    from earlier runs; ``retried`` error rows of earlier runs were redone.
    """

    sources: int = 0
    jobs: int = 0
    written: int = 0
    already_done: int = 0
    skipped: Counter = field(default_factory=Counter)
    failed: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    manifest: str = ""
    standing_failed: Counter = field(default_factory=Counter)
    retried: int = 0
    rejected: Counter = field(default_factory=Counter)
    overwritten: int = 0
    workers: WorkerChoice | None = None
    ray: Any = None  # `affectsynth.ray_engine.RayStats` of a run on Ray (peak RSS per actor, ...)

    @property
    def n_failed(self) -> int:
        """Outputs that failed in this run (exit code 3 when > 0)."""
        return sum(self.failed.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {"sources": self.sources, "jobs": self.jobs, "written": self.written,
                "already_done": self.already_done, "skipped": dict(self.skipped),
                "failed": dict(self.failed), "seconds": round(self.seconds, 3), "manifest": self.manifest,
                "standing_failed": dict(self.standing_failed), "retried": self.retried,
                "rejected": dict(self.rejected), "overwritten": self.overwritten,
                "workers": None if self.workers is None else self.workers.workers,
                "workers_note": None if self.workers is None else self.workers.note}

    def lines(self) -> list[str]:
        """Human-readable summary lines: what is new this run, then what stands from before."""
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        out = [f"done: {self.written} outputs written from {self.jobs} of {self.sources} images "
               f"in {self.seconds:.1f} s ({rate:.2f} outputs/s); {self.already_done} already done"]
        if self.skipped:
            out.append("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))
        if self.rejected:
            out.append("rejected (under --min-verify): " + ", ".join(f"{k} {v}" for k, v in sorted(self.rejected.items())))
        if self.failed:
            out.append("failed: " + ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items()))
                       + f" (see {self.manifest})")
        if self.retried:
            out.append(f"retried: {self.retried} failed outputs of earlier runs")
        if self.overwritten:
            out.append(f"overwritten: {self.overwritten} outputs made with other settings were redone (--overwrite)")
        if self.standing_failed:
            out.append("failed before, not retried: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.standing_failed.items())) + " (--retry-errors retries them)")
        if self.workers is not None and self.jobs:
            out.append(f"execution: {self.workers.note}")
        return out


def check_dirs(input_dir: str | os.PathLike, output_dir: str | os.PathLike) -> None:
    """Refuse a missing INPUT_DIR, OUTPUT_DIR == INPUT_DIR, or OUTPUT_DIR that is a file."""
    if not os.path.isdir(input_dir):
        raise NotADirectoryError(f"INPUT_DIR {input_dir}: not a folder")
    if os.path.realpath(input_dir) == os.path.realpath(output_dir):
        raise ValueError("OUTPUT_DIR must differ from INPUT_DIR")
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise NotADirectoryError(f"OUTPUT_DIR {output_dir}: exists and is not a folder")


@contextlib.contextmanager
def _signals_interrupt():
    """SIGINT and SIGTERM raise `Interrupted` in the main thread while the run is in progress."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: Any) -> None:
        raise Interrupted(signum)

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def run_batch(input_dir: str | os.PathLike, output_dir: str | os.PathLike, settings: GenerateSettings, *,
              progress: bool = False, synthesizer: Any = None,
              on_rows: Callable[[list[ManifestRow]], None] | None = None, retry_errors: bool = False,
              wait: bool = False, on_wait: Callable[[str], None] | None = None, overwrite: bool = False,
              manifest_format: str = "csv", progress_file: TextIO | None = None,
              runner: Callable[[list[Job], Callable[[list[ManifestRow]], None]], None] | None = None) -> BatchSummary:
    """Run (or resume) a batch: every image under ``input_dir`` -> outputs + manifest in ``output_dir``.

    Args:
        input_dir: INPUT_DIR (searched recursively, see `find_images`).
        output_dir: OUTPUT_DIR (created); holds the outputs and ``manifest.csv``.
        settings: the run's options.
        progress: draw a tqdm bar counting outputs (planned: images x targets, grown by the
            extra faces found with ``faces="all"``), with rate, ETA and ``ok=/skip=/err=`` counts;
            on stderr unless ``progress_file``.
        synthesizer: use this instance in-process (ignores ``settings.workers``); default: build
            one per worker, or one here when the run is in-process (``settings.workers`` 1, or
            None and `affectsynth.workers.default_workers` finds the job too small for workers).
        on_rows: called in the main process with each job's rows after they are in the manifest.
        retry_errors: also redo outputs whose earlier error was permanent (``unreadable``, ...);
            transient errors (``write-failed``, ``worker-crashed``) are always redone.
        wait: if another run holds OUTPUT_DIR, wait for it instead of raising.
        on_wait: called once with the holder's description when the run starts waiting.
        overwrite: redo the outputs that other settings made (see `affectsynth.run_record`)
            instead of raising `RunSettingsConflict`.
        manifest_format: "csv", or "parquet" to also write ``manifest.parquet`` (rebuilt from the
            CSV journal at the end of the run, interrupted or not; see `affectsynth.manifest_parquet`).
        progress_file: where the bar is drawn (default stderr), e.g. a StringIO in tests.
        runner: another engine (e.g. `affectsynth.ray_engine.RayRunner`): ``runner(jobs, record)``
            runs the planned jobs and calls ``record(rows)`` once per job, in this process, as
            results arrive; lock, manifest, resume and summary stay here.

    Returns:
        The counts; ``summary.n_failed > 0`` means some outputs failed in this run (exit code 3).

    Raises:
        OutputDirLockedError: another run is writing into ``output_dir`` (and not ``wait``).
        DiskFullError: no space left in OUTPUT_DIR; the run stopped early (rows so far are kept).
        Interrupted: SIGINT or SIGTERM; workers are stopped, rows so far are kept.
        ManifestError: an existing manifest cannot be used (other columns, a symlink).
        RunSettingsConflict: outputs this run would reuse were made with other settings (the
            message names each setting, old -> new) and not ``overwrite``; nothing was done.
        ImportError: ``manifest_format="parquet"`` without pyarrow.
    """
    if manifest_format not in MANIFEST_FORMATS:
        raise ValueError(f"--manifest-format: expected one of {MANIFEST_FORMATS}, got {manifest_format!r}")
    if manifest_format == "parquet":
        from affectsynth.manifest_parquet import require_pyarrow

        require_pyarrow()  # fail before any work, with the install command
    check_dirs(input_dir, output_dir)
    t0 = time.perf_counter()
    out = Path(output_dir)
    with _signals_interrupt(), OutputDirLock(out, wait=wait, on_wait=on_wait):
        remove_stale_temps(out)
        manifest = Manifest(out / MANIFEST_NAME, output_root=out, retry_errors=retry_errors)
        current, record_found, stale = check_run_settings(input_dir, output_dir, settings, manifest,
                                                          overwrite=overwrite)
        save_record(out, record_found.updated(current))
        plan = plan_jobs(input_dir, output_dir, settings, manifest=manifest)
        summary = BatchSummary(sources=plan.sources, jobs=len(plan.jobs), already_done=plan.already_done,
                               manifest=str(manifest.path), retried=manifest.retried_rows,
                               standing_failed=Counter(r.reason or "error" for r in manifest.rows
                                                       if r.status == "error"),
                               overwritten=len(stale.outputs))
        if runner is not None:
            choice = WorkerChoice(settings.workers or 0, settings.workers is not None,
                                  getattr(runner, "description", "another engine"))
        else:
            choice = choose_workers(settings.workers, len(plan.jobs),
                                    len(plan.planned_outputs) / max(1, len(plan.jobs)), os.cpu_count(),
                                    given_synthesizer=synthesizer is not None)
        summary.workers = choice
        bar = OutputProgress(_planned_per_job(plan), desc="generate", note=choice.note, enabled=progress,
                             file=progress_file)

        def record(job: Job, rows: list[ManifestRow]) -> None:
            rows = [dataclasses.replace(r, settings_id=current.id) for r in rows]
            try:
                manifest.extend(rows)
            except OSError as e:
                if e.errno in _NO_SPACE:
                    raise DiskFullError(e.errno, f"{manifest.path}: {os.strerror(e.errno)} while appending rows; "
                                        "stopped early (the manifest ends at its last complete line): free "
                                        "space and rerun the same command to resume") from None
                raise
            for r in rows:
                if r.status == "ok":
                    summary.written += 1
                elif r.status == "skipped":
                    summary.skipped[r.reason or "skipped"] += 1
                elif r.status == "rejected":
                    summary.rejected[r.reason or "rejected"] += 1
                else:
                    summary.failed[r.reason or "error"] += 1
            bar.advance(job.rel_source, rows)
            if on_rows is not None:
                on_rows(rows)

        finished = False
        try:
            with manifest:
                if not plan.jobs:
                    pass
                elif runner is not None:
                    jobs_by_source = {job.rel_source: job for job in plan.jobs}

                    def record_rows(rows: list[ManifestRow]) -> None:
                        if rows:
                            record(jobs_by_source[rows[0].source], rows)

                    runner(plan.jobs, record_rows)
                elif choice.workers == 1:
                    bar.stage("loading models")
                    if synthesizer is None:
                        _import_engine()
                    with synth_threads():
                        synth = synthesizer if synthesizer is not None else make_synthesizer(settings)
                        bar.stage(None)
                        for unit in work_units(plan.jobs, 1):
                            for job, rows in zip(unit, process_images(synth, unit)):
                                record(job, rows)
                else:
                    bar.stage(f"starting {choice.workers} workers")
                    run_pool(work_units(plan.jobs, choice.workers), workers=choice.workers, initializer=_worker_init,
                             initargs=(settings,), run_job=_worker_run,
                             on_result=lambda unit, results: [record(j, r) for j, r in zip(unit, results)],
                             on_crash=lambda unit, why: _each_job(
                                 record, unit, lambda job: fail_rows(job, "error", "worker-crashed", why)),
                             on_error=lambda unit, e: _each_job(
                                 record, unit, lambda job: fail_rows(job, "error", "worker-error", reason_detail(e))),
                             split=lambda unit: [(job,) for job in unit], fatal=(DiskFullError,))
            finished = True
        finally:
            bar.close()
            _refresh_parquet(manifest, out, wanted=manifest_format == "parquet", strict=finished)
    if manifest_format == "parquet":
        from affectsynth.manifest_parquet import PARQUET_NAME

        summary.manifest = str(out / PARQUET_NAME)
    summary.seconds = time.perf_counter() - t0
    return summary


def _refresh_parquet(manifest: Manifest, out: Path, *, wanted: bool, strict: bool) -> None:
    """Rebuild ``manifest.parquet`` from the journal's rows when asked for or already there.

    ``strict=False`` (the run is failing or interrupted): a failure to write it becomes a warning,
    so that the run's own error is the one reported; the previous file stays complete (atomic).
    """
    from affectsynth.manifest_parquet import PARQUET_NAME, write_parquet

    path = out / PARQUET_NAME
    if not (wanted or path.exists()):
        return
    try:
        write_parquet(manifest.rows, path)
    except (OSError, ImportError) as e:
        if strict and wanted:
            raise
        warnings.warn(f"{path}: not rebuilt ({reason_detail(e)}); it lags {manifest.path}, the source of truth: "
                      "rerun to rebuild it", RuntimeWarning, stacklevel=2)


def _planned_per_job(plan: Plan) -> dict[str, int]:
    """Outputs planned per job (face 0's targets not done), keyed by the job's ``rel_source``."""
    planned = Counter(rel for rel, _o, _t in plan.planned_outputs)
    return {job.rel_source: planned.get(job.rel_source, 0) for job in plan.jobs}
