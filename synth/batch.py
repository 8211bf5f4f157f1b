"""The batch engine behind ``affectsynth generate``: plan, run (resumably, in parallel), summarise.

Per source image one :class:`Job`; :func:`process_image` does its work (load -> fit once ->
synthesise each target -> write each output atomically) and returns its manifest rows; the
main process alone appends rows to the manifest. Nothing raised by one image stops the batch:
its failure becomes rows with ``status=error`` (or ``skipped``) and a one-line reason.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from affectsynth.atomic import remove_stale_temps
from affectsynth.crop import crop_square
from affectsynth.gates import MAX_HEAD_ROTATION_DEG, FaceGates
from affectsynth.images import DEFAULT_MAX_PIXELS, ImageLoadError, load_image, save_png
from affectsynth.lock import OutputDirLock
from affectsynth.manifest import Manifest, ManifestRow
from affectsynth.naming import (LAYOUTS, display_path, find_images, output_relpath, safe_join, source_relpath,
                                target_slug)
from affectsynth.pool import WorkerSetupError, die_with_parent, run_pool
from affectsynth.progress import make_progress
from affectsynth.result import SynthLabels, TargetLabels
from affectsynth.recover import reset_detector

__all__ = [
    "MANIFEST_NAME",
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
    "run_batch",
    "select_targets",
]

MANIFEST_NAME = "manifest.csv"

#: Below this many images a run stays in this process: starting worker processes (imports, models,
#: about 3-4 s each) costs more than it saves.
MIN_JOBS_PER_WORKER = 6

_NO_SPACE = frozenset({errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)})


class DiskFullError(OSError):
    """OUTPUT_DIR has no space (or quota) left: the run stops instead of synthesising for nothing."""


class Interrupted(KeyboardInterrupt):
    """The run was stopped by SIGINT or SIGTERM (``signum``); rows written so far stand."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def item_seed(*parts: Any) -> int:
    """A 63-bit seed from any printable parts (stable across processes and Python runs).

    Example:
        >>> item_seed(0, "a/b.jpg") == item_seed(0, "a/b.jpg") != item_seed(1, "a/b.jpg")
        True
    """
    h = hashlib.blake2b("\x1f".join(repr(p) for p in parts).encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 1


@dataclass(frozen=True)
class GenerateSettings:
    """Options of a batch run (the ``generate`` command's flags).

    Args:
        targets: `Expression` / `VA` / `AUs` targets (``affectsynth.blendshapes``), at least one.
        per_image: draw this many targets per source (seeded by ``seed`` and the source's
            relative path) instead of all; ``None`` = all.
        size: write an S x S crop centred on the face (side ``crop_scale`` x the face box's
            longer side, resized; black outside the photo); ``None`` keeps the input size.
        faces: "largest" (default) or "all".
        workers: processes; 1 runs in this process.
        seed: base seed of target draws and synthesis randomness.
        expressions_lib: an expression library .npz for the Synthesizer (None = default).
        layout: output naming, "nested" or "flat" (see `affectsynth.naming`).
        min_face_px: faces whose box is smaller (shorter side, pixels) are skipped.
        max_yaw_deg, max_pitch_deg: faces turned further are skipped ("extreme-pose"): the model
            cannot texture what the photo does not show.
        max_roll_deg: faces tilted further in the image plane (a photo on its side) are skipped
            ("rotated-face"): the landmark model is trained on upright faces.
        max_fit_error: faces whose mean landmark error exceeds this fraction of the eye distance
            are skipped ("poor-fit": occluded or mis-detected faces).
        crop_scale: crop side / face box longer side for ``size``.
        max_pixels: decompression-bomb limit passed to `load_image`.
        device: torch device for the Synthesizer.
        png_compress_level: zlib level of the output PNGs (0-9; lossless at every level).
        head_rotation_deg: (max |yaw|, max |pitch|) of a random extra head rotation per output
            (seeded, recorded in the manifest's pose columns); (0, 0) = off.
        light_strength: strength in [0, 1] of a random relighting per output; 0 = off.

    Note:
        Outputs are renamed into place atomically but not fsync'd (about 3 ms each here); the
        manifest is fsync'd per row. After a power loss an output whose row survived may be
        missing or corrupt: the next run verifies every ``ok`` output (PNG decode) and redoes it.
    """

    targets: tuple = ()
    per_image: int | None = None
    size: int | None = None
    faces: str = "largest"
    workers: int = 1
    seed: int = 0
    expressions_lib: str | None = None
    layout: str = "nested"
    min_face_px: float = 24.0
    max_yaw_deg: float = 60.0
    max_pitch_deg: float = 40.0
    max_roll_deg: float = 45.0
    max_fit_error: float = 0.08
    crop_scale: float = 1.6
    max_pixels: int = DEFAULT_MAX_PIXELS
    device: str = "cpu"
    png_compress_level: int = 1
    head_rotation_deg: tuple[float, float] = (0.0, 0.0)
    light_strength: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "head_rotation_deg", tuple(float(x) for x in self.head_rotation_deg))
        lim = MAX_HEAD_ROTATION_DEG
        if len(self.head_rotation_deg) != 2 or not (0 <= self.head_rotation_deg[0] <= lim[0]
                                                    and 0 <= self.head_rotation_deg[1] <= lim[1]):
            raise ValueError(f"--head-rotation: expected YAW,PITCH within {lim[0]:g},{lim[1]:g} degrees (what one photo "
                             f"supports), got {self.head_rotation_deg}")
        if not 0 <= self.light_strength <= 1:
            raise ValueError(f"--relight: expected a strength in [0, 1], got {self.light_strength}")
        if not self.targets:
            raise ValueError("GenerateSettings: expected at least one target, got none")
        for t in self.targets:
            target_slug(t)  # raises TypeError for non-targets
        slugs = [target_slug(t) for t in self.targets]
        if len(set(slugs)) != len(slugs):
            dup = [s for s, n in Counter(slugs).items() if n > 1]
            raise ValueError(f"GenerateSettings: duplicate targets {dup}")
        if self.per_image is not None and not (1 <= self.per_image <= len(self.targets)):
            raise ValueError(f"--per-image: expected 1..{len(self.targets)} (the number of targets), "
                             f"got {self.per_image}")
        if self.size is not None and not (16 <= self.size <= 8192):
            raise ValueError(f"--size: expected 16..8192 pixels, got {self.size}")
        if self.faces not in ("largest", "all"):
            raise ValueError(f"--faces: expected 'largest' or 'all', got {self.faces!r}")
        if self.workers < 1:
            raise ValueError(f"--workers: expected >= 1, got {self.workers}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"--layout: expected one of {LAYOUTS}, got {self.layout!r}")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"--png-compression: expected 0..9, got {self.png_compress_level}")
        if self.crop_scale <= 0:
            raise ValueError(f"GenerateSettings: crop_scale must be > 0, got {self.crop_scale}")
        self.gates  # validates the gate limits (FaceGates raises)

    @property
    def gates(self) -> FaceGates:
        """The face gates these settings ask for (applied by the Synthesizer, `Synthesizer.check`)."""
        return FaceGates(self.min_face_px, self.max_yaw_deg, self.max_pitch_deg, self.max_fit_error,
                         max_roll_deg=self.max_roll_deg)


@dataclass(frozen=True)
class Job:
    """The work for one source image (picklable; sent to worker processes).

    Args:
        source: path to read.
        rel_source: POSIX path relative to INPUT_DIR in its `display_path` form (names outputs
            and manifest rows; keys seeds).
        output_dir: OUTPUT_DIR.
        targets: targets for this source (after ``--per-image`` selection).
        settings: the run's settings.
        done: output paths (relative to OUTPUT_DIR) settled by earlier runs (done, or a permanent
            error); not redone.
    """

    source: str
    rel_source: str
    output_dir: str
    targets: tuple
    settings: GenerateSettings
    done: frozenset = frozenset()

    def output_for(self, target: Any, face: int = 0) -> str:
        """Relative output path of ``target`` on face ``face``."""
        return str(output_relpath(self.rel_source, target_slug(target), face, layout=self.settings.layout))

    def seed_for(self, target: Any, face: int = 0) -> int:
        """Synthesis seed of one output: from (run seed, source, face, target)."""
        return item_seed(self.settings.seed, self.rel_source, face, target_slug(target))


def select_targets(targets: Sequence[Any], k: int | None, *, seed: int, rel_source: str) -> tuple:
    """``k`` of ``targets`` drawn without replacement, seeded by (seed, rel_source); all if ``k`` is None.

    The drawn targets keep their order in ``targets``.
    """
    targets = tuple(targets)
    if k is None or k >= len(targets):
        return targets
    rng = np.random.default_rng(item_seed("per-image", seed, rel_source))
    idx = np.sort(rng.choice(len(targets), size=k, replace=False))
    return tuple(targets[i] for i in idx)


@dataclass
class Plan:
    """What a run will do: jobs to run, and what was found done already."""

    jobs: list[Job]
    sources: int
    planned_outputs: list[tuple[str, str, Any]]  # (rel_source, rel_output, target), face 0, not done
    already_done: int  # outputs (or skipped rows) done by an earlier run (permanent errors not counted)


def _source_done(job: Job, manifest: Manifest | None) -> tuple[bool, int]:
    """Whether every output of ``job`` is settled (done, or a permanent error), and how many are done."""
    if manifest is None:
        return False, 0
    if job.settings.faces == "largest":
        outs = [job.output_for(t, 0) for t in job.targets]
    else:
        rows = manifest.rows_for(job.rel_source)
        counts = [r.n_faces for r in rows if r.n_faces is not None and r.status in ("ok", "skipped")]
        # no face count: settled only by source-level rows (unreadable, fit-failed) on face 0
        n_faces = max(counts) if counts else 1
        outs = [job.output_for(t, k) for k in range(max(n_faces, 1)) for t in job.targets]
    return all(o in job.done for o in outs), sum(manifest.is_done(o) for o in outs)


def plan_jobs(input_dir: str | os.PathLike, output_dir: str | os.PathLike, settings: GenerateSettings,
              *, manifest: Manifest | None = None) -> Plan:
    """List the sources under ``input_dir`` and the work left for each.

    Raises:
        NotADirectoryError: ``input_dir`` is not a folder.
    """
    out_abs = os.path.abspath(output_dir)
    done_all = manifest.settled_outputs if manifest is not None else frozenset()
    jobs: list[Job] = []
    planned: list[tuple[str, str, Any]] = []
    already = 0
    n_sources = 0
    for src in find_images(input_dir, exclude=out_abs):
        n_sources += 1
        rel = display_path(str(source_relpath(src, input_dir)))
        targets = select_targets(settings.targets, settings.per_image, seed=settings.seed, rel_source=rel)
        if settings.faces == "largest":
            mine = {output_relpath(rel, target_slug(t), 0, layout=settings.layout).as_posix() for t in targets}
        else:
            mine = {r.output for r in manifest.rows_for(rel)} if manifest is not None else set()
        job = Job(str(src), rel, str(output_dir), targets, settings, frozenset(mine & done_all))
        finished, n_done = _source_done(job, manifest)
        already += n_done
        if finished:
            continue
        jobs.append(job)
        for t in targets:
            o = job.output_for(t, 0)
            if o not in job.done:
                planned.append((rel, o, t))
    return Plan(jobs, n_sources, planned, already)


def _reason_detail(e: BaseException) -> str:
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def _fail_rows(job: Job, status: str, reason: str, detail: str, *, n_faces: int | None = None,
               face: int = 0) -> list[ManifestRow]:
    rows = []
    for t in job.targets:
        out = job.output_for(t, face)
        if out in job.done:
            continue
        rows.append(ManifestRow(job.rel_source, out, status, f"{reason}: {detail}",
                                **_target_fields(t), seed=job.seed_for(t, face), face=face, n_faces=n_faces))
    return rows


def _target_fields(t: Any) -> dict[str, Any]:
    """Manifest target fields of a target that produced no image (no VA label for expressions:
    only synthesis knows the expression model)."""
    return TargetLabels.of(t).to_row()


def _ok_row(job: Job, face: int, n_faces: int, out: str, seed: int, labels: SynthLabels) -> ManifestRow:
    return ManifestRow(job.rel_source, out, "ok", "", seed=seed, face=face, n_faces=n_faces, **labels.to_row())


def process_image(synthesizer: Any, job: Job) -> list[ManifestRow]:
    """Do one source's work and return its manifest rows (never raises for bad input).

    Steps: load (`load_image`) -> ``synthesizer.fit`` once -> for each face kept (largest, or
    all) and each target not in ``job.done``: ``synthesizer.synthesize(image, target, fit=...,
    rng_seed=...)``, optional square crop (``settings.size``), atomic PNG write.

    Args:
        synthesizer: an ``affectsynth.synthesizer.Synthesizer`` (``fit(image) -> list[FaceFit]``
            largest first; ``synthesize(...) -> SynthResult`` with ``image`` and ``labels``).
        job: the source and its targets.

    Returns:
        One row per output attempted: ``ok``; ``error`` with reason ``unreadable``,
        ``fit-failed``, ``synth-failed`` or ``write-failed``; ``skipped`` with reason
        ``no-face``, ``face-too-small``, ``extreme-pose``, ``rotated-face`` or ``poor-fit``.

    Raises:
        DiskFullError: an output could not be written for lack of space (ENOSPC / EDQUOT):
            the run must stop, not go on synthesising what it cannot write.
    """
    s = job.settings
    try:
        image = load_image(job.source, max_pixels=s.max_pixels)
    except (ImageLoadError, OSError, MemoryError) as e:
        return _fail_rows(job, "error", "unreadable", _reason_detail(e))
    try:
        fits = list(synthesizer.fit(image))
    except Exception as e:  # the engine catches per item (STYLE 5)
        reset_detector(synthesizer)  # a detector that raised once may stay broken: rebuild it
        return _fail_rows(job, "error", "fit-failed", _reason_detail(e))
    if not fits:
        return _fail_rows(job, "skipped", "no-face", "no face found", n_faces=0)
    n_faces = len(fits)
    kept = fits[:1] if s.faces == "largest" else fits
    rows: list[ManifestRow] = []
    for k, fit in enumerate(kept):
        rejection = synthesizer.check(fit, s.gates)
        if rejection is not None:
            rows += _fail_rows(job, "skipped", rejection.reason, f"face {k}: {rejection.detail}",
                               n_faces=n_faces, face=k)
            continue
        face_image, face_fit = image, fit
        if s.size is not None:  # synthesise on the face crop: same result as cropping afterwards, far cheaper
            face_image, face_fit = synthesizer.crop_to_face(image, fit, s.size, scale=s.crop_scale)
        for t in job.targets:
            out = job.output_for(t, k)
            if out in job.done:
                continue
            seed = job.seed_for(t, k)
            try:
                res = synthesizer.synthesize(face_image, t, fit=face_fit, rng_seed=seed)
                img = np.asarray(res.image)
            except Exception as e:  # the engine catches per item (STYLE 5)
                rows.append(ManifestRow(job.rel_source, out, "error", f"synth-failed: {_reason_detail(e)}",
                                        **_target_fields(t), seed=seed, face=k, n_faces=n_faces))
                continue
            try:
                save_png(safe_join(job.output_dir, out), img, compress_level=s.png_compress_level, fsync=False)
            except OSError as e:
                if e.errno in _NO_SPACE:
                    raise DiskFullError(e.errno, f"{job.output_dir}: {os.strerror(e.errno)} while writing {out}; "
                                        "stopped early: free space and rerun the same command to resume") from None
                rows.append(ManifestRow(job.rel_source, out, "error", f"write-failed: {_reason_detail(e)}",
                                        **_target_fields(t), seed=seed, face=k, n_faces=n_faces))
                continue
            except ValueError as e:
                rows.append(ManifestRow(job.rel_source, out, "error", f"write-failed: {_reason_detail(e)}",
                                        **_target_fields(t), seed=seed, face=k, n_faces=n_faces))
                continue
            rows.append(_ok_row(job, k, n_faces, out, seed, res.labels))
    return rows


# --------------------------------------------------------------------------- running

def make_synthesizer(settings: GenerateSettings) -> Any:
    """Build the ``affectsynth.synthesizer.Synthesizer`` a run uses (imports torch)."""
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
        import torch

        torch.set_num_threads(1)
        _WORKER_SYNTH = make_synthesizer(settings)
    except Exception as e:  # reported once per job as WorkerSetupError, then fatal in the parent
        _WORKER_ERROR = _reason_detail(e)


def _worker_run(job: Job) -> list[ManifestRow]:
    if _WORKER_ERROR is not None:
        raise WorkerSetupError(_WORKER_ERROR)
    return process_image(_WORKER_SYNTH, job)


@dataclass
class BatchSummary:
    """Counts of a run. ``failed``/``skipped`` map reason code -> number of outputs.

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

    @property
    def n_failed(self) -> int:
        """Outputs that failed in this run (exit code 3 when > 0)."""
        return sum(self.failed.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict."""
        return {"sources": self.sources, "jobs": self.jobs, "written": self.written,
                "already_done": self.already_done, "skipped": dict(self.skipped),
                "failed": dict(self.failed), "seconds": round(self.seconds, 3), "manifest": self.manifest,
                "standing_failed": dict(self.standing_failed), "retried": self.retried}

    def lines(self) -> list[str]:
        """Human-readable summary lines: what is new this run, then what stands from before."""
        rate = self.written / self.seconds if self.seconds > 0 else 0.0
        out = [f"done: {self.written} outputs written from {self.jobs} of {self.sources} images "
               f"in {self.seconds:.1f} s ({rate:.2f} outputs/s); {self.already_done} already done"]
        if self.skipped:
            out.append("skipped: " + ", ".join(f"{k} {v}" for k, v in sorted(self.skipped.items())))
        if self.failed:
            out.append("failed: " + ", ".join(f"{k} {v}" for k, v in sorted(self.failed.items()))
                       + f" (see {self.manifest})")
        if self.retried:
            out.append(f"retried: {self.retried} failed outputs of earlier runs")
        if self.standing_failed:
            out.append("failed before, not retried: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.standing_failed.items())) + " (--retry-errors retries them)")
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
              wait: bool = False, on_wait: Callable[[str], None] | None = None) -> BatchSummary:
    """Run (or resume) a batch: every image under ``input_dir`` -> outputs + manifest in ``output_dir``.

    Args:
        input_dir: INPUT_DIR (searched recursively, see `find_images`).
        output_dir: OUTPUT_DIR (created); holds the outputs and ``manifest.csv``.
        settings: the run's options.
        progress: draw a tqdm bar on stderr.
        synthesizer: use this instance in-process (ignores ``settings.workers``); default: build
            one per worker (or one here when ``workers == 1``).
        on_rows: called in the main process with each job's rows after they are in the manifest.
        retry_errors: also redo outputs whose earlier error was permanent (``unreadable``, ...);
            transient errors (``write-failed``, ``worker-crashed``) are always redone.
        wait: if another run holds OUTPUT_DIR, wait for it instead of raising.
        on_wait: called once with the holder's description when the run starts waiting.

    Returns:
        The counts; ``summary.n_failed > 0`` means some outputs failed in this run (exit code 3).

    Raises:
        OutputDirLockedError: another run is writing into ``output_dir`` (and not ``wait``).
        DiskFullError: no space left in OUTPUT_DIR; the run stopped early (rows so far are kept).
        Interrupted: SIGINT or SIGTERM; workers are stopped, rows so far are kept.
        ManifestError: an existing manifest cannot be used (other columns, a symlink).
    """
    check_dirs(input_dir, output_dir)
    t0 = time.perf_counter()
    out = Path(output_dir)
    with _signals_interrupt(), OutputDirLock(out, wait=wait, on_wait=on_wait):
        remove_stale_temps(out)
        manifest = Manifest(out / MANIFEST_NAME, output_root=out, retry_errors=retry_errors)
        plan = plan_jobs(input_dir, output_dir, settings, manifest=manifest)
        summary = BatchSummary(sources=plan.sources, jobs=len(plan.jobs), already_done=plan.already_done,
                               manifest=str(manifest.path), retried=manifest.retried_rows,
                               standing_failed=Counter(r.reason or "error" for r in manifest.rows
                                                       if r.status == "error"))
        bar = make_progress(len(plan.jobs), desc="generate", unit="img", enabled=progress)

        def record(rows: list[ManifestRow]) -> None:
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
                else:
                    summary.failed[r.reason or "error"] += 1
            bar.update(1)
            bar.set_postfix_str(f"{summary.written} out, {summary.n_failed} failed", refresh=False)
            if on_rows is not None:
                on_rows(rows)

        try:
            with manifest:
                if not plan.jobs:
                    pass
                elif synthesizer is not None or settings.workers == 1 or len(plan.jobs) < MIN_JOBS_PER_WORKER:
                    synth = synthesizer if synthesizer is not None else make_synthesizer(settings)
                    for job in plan.jobs:
                        record(process_image(synth, job))
                else:
                    run_pool(plan.jobs, workers=settings.workers, initializer=_worker_init, initargs=(settings,),
                             run_job=_worker_run, on_result=lambda job, rows: record(rows),
                             on_crash=lambda job, why: record(_fail_rows(job, "error", "worker-crashed", why)),
                             on_error=lambda job, e: record(_fail_rows(job, "error", "worker-error",
                                                                       _reason_detail(e))),
                             fatal=(DiskFullError,))
        finally:
            bar.close()
    summary.seconds = time.perf_counter() - t0
    return summary
