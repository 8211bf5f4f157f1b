"""Planning a batch run: one `Job` per source image, what earlier runs settled (resume), and seeds.

Seeds depend only on (run seed, source's display path, face, target), so a resumed or parallel
run synthesises the same pixels as an uninterrupted one. An affect sequence (``--paths``) has
one seed for all its frames, from (run seed, source, face, sequence name), never the frame, so
its draws are shared by its frames and a resumed run renders the missing frames as they were.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from affectsynth.generate_settings import GenerateSettings
from affectsynth.manifest import DONE_STATUSES, Manifest
from affectsynth.naming import (display_path, find_images, frame_relpath, output_relpath, sequence_slug,
                                source_relpath, target_slug)

__all__ = ["DETECT_BATCH", "Job", "Plan", "PlannedFrame", "SequenceChangedError", "check_sequence_rows", "item_seed",
           "plan_jobs", "select_targets", "work_units"]

#: Photos per unit of work of the engines at most: their faces are detected and fitted in one batch
#: (`affectsynth.batch.load_sources`; 4 photos: 12-23% less detection CPU and about 40% less fit CPU
#: per photo on the project's 2-core machine).
DETECT_BATCH = 4


def item_seed(*parts: Any) -> int:
    """A 63-bit seed from any printable parts (stable across processes and Python runs).

    Example:
        >>> item_seed(0, "a/b.jpg") == item_seed(0, "a/b.jpg") != item_seed(1, "a/b.jpg")
        True
    """
    h = hashlib.blake2b("\x1f".join(repr(p) for p in parts).encode("utf-8"), digest_size=8)
    return int.from_bytes(h.digest(), "little") >> 1


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
        return str(output_relpath(self.rel_source, target_slug(target), face, layout=self.settings.layout,
                                  image_format=self.settings.image_format))

    def seed_for(self, target: Any, face: int = 0) -> int:
        """Synthesis seed of one output: from (run seed, source, face, target)."""
        return item_seed(self.settings.seed, self.rel_source, face, target_slug(target))

    @property
    def sequences(self) -> tuple:
        """The run's affect sequences (`affectsynth.paths_file.SequenceSpec`), each rendered per face."""
        return self.settings.paths

    def frame_output(self, sequence: str, index: int, face: int = 0) -> str:
        """Relative output path of frame ``index`` of the sequence named ``sequence`` on face ``face``."""
        return str(frame_relpath(self.rel_source, sequence, index, face, layout=self.settings.layout,
                                 image_format=self.settings.image_format))

    def sequence_seed(self, sequence: str, face: int = 0) -> int:
        """Seed of all frames of one sequence: from (run seed, source, face, sequence name), not the frame."""
        return item_seed(self.settings.seed, self.rel_source, face, sequence_slug(sequence))

    def frames_of(self, spec: Any, face: int = 0) -> "list[PlannedFrame]":
        """Every frame of the sequence ``spec`` (a `SequenceSpec`) on face ``face``, with its output path."""
        return [PlannedFrame(spec.name, f, self.frame_output(spec.name, f.index, face)) for f in spec.plan()]

    def frames_for(self, face: int = 0) -> "list[PlannedFrame]":
        """Every frame of every sequence on face ``face``, with its output path, in order."""
        return [p for spec in self.sequences for p in self.frames_of(spec, face)]

    def outputs(self, face: int = 0) -> list[str]:
        """All output paths of face ``face``: one per target, then one per sequence frame."""
        return [self.output_for(t, face) for t in self.targets] + [p.output for p in self.frames_for(face)]


@dataclass(frozen=True)
class PlannedFrame:
    """One frame of an affect sequence as a planned output.

    Attributes:
        sequence: the sequence's name.
        frame: the planned frame (`affectsynth.animate.FrameTarget`: index, time, target, sway).
        output: its output path relative to OUTPUT_DIR.
    """

    sequence: str
    frame: Any
    output: str

    @property
    def target(self) -> Any:
        """The frame's target (`VA`, or `Expression` with its variant still to draw)."""
        return self.frame.target

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: the target's fields plus ``sequence``, ``frame`` and ``time_s``."""
        return {**self.frame.target.to_dict(), "sequence": self.sequence, "frame": self.frame.index,
                "time_s": round(self.frame.time_s, 6)}


def work_units(jobs: Sequence[Job], workers: int, size: int = DETECT_BATCH) -> list[tuple[Job, ...]]:
    """The jobs, in order, in units of up to ``size`` photos (one detection batch each).

    Each worker's first unit and the last two per worker hold one photo: the first outputs come
    as soon as one photo is done, and the run's tail stays balanced across the workers. A photo's
    outputs do not depend on its unit (see `affectsynth.batch.process_images`).

    Example:
        >>> [len(u) for u in work_units(list(range(15)), 2)]
        [1, 1, 4, 4, 1, 1, 1, 1, 1]
    """
    n, head = len(jobs), max(1, workers)
    tail = min(2 * head, max(0, n - head))
    units: list[tuple[Job, ...]] = [(job,) for job in jobs[:min(head, n)]]
    middle = list(jobs[len(units):n - tail])
    units += [tuple(middle[k:k + size]) for k in range(0, len(middle), max(1, size))]
    return units + [(job,) for job in jobs[n - tail:]]


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
    planned_outputs: list[tuple[str, str, Any]]  # (rel_source, rel_output, target or PlannedFrame), face 0, not done
    already_done: int  # outputs (or skipped rows) done by an earlier run (permanent errors not counted)


def _source_done(job: Job, manifest: Manifest | None) -> tuple[bool, int]:
    """Whether every output of ``job`` is settled (done, or a permanent error), and how many are done."""
    if manifest is None:
        return False, 0
    if job.settings.faces == "largest":
        outs = job.outputs(0)
    else:
        rows = manifest.rows_for(job.rel_source)
        counts = [r.n_faces for r in rows if r.n_faces is not None and r.status in DONE_STATUSES]
        # no face count: settled only by source-level rows (unreadable, fit-failed) on face 0
        n_faces = max(counts) if counts else 1
        outs = [o for k in range(max(n_faces, 1)) for o in job.outputs(k)]
    return all(o in job.done for o in outs), sum(manifest.is_done(o) for o in outs)


class SequenceChangedError(ValueError):
    """A path of ``--paths`` differs from the one an earlier run rendered under the same name in OUTPUT_DIR."""


def _frame_text(index: int, time_s: float | None, kind: str, a: Any, b: Any) -> str:
    if a is None or b is None:
        what = f"{kind} target"
    else:
        what = f"V{a:+.3f} A{b:+.3f}" if kind == "va" else f"{a} {b:.3f}"
    return f"frame {index} at {time_s:.4f} s: {what}" if time_s is not None else f"frame {index}: {what}"


def check_sequence_rows(rows: Sequence[Any], settings: GenerateSettings) -> None:
    """Refuse to resume a sequence whose earlier frames were planned otherwise (labels would disagree).

    A done frame keeps its file and row on resume; if the path of the same name now plans
    another target or time for that frame (other keys, frame count or fps), the finished
    sequence would mix two paths. Rows of paths no longer asked for are left alone.

    Args:
        rows: manifest rows (`affectsynth.manifest.ManifestRow`) of earlier runs.
        settings: this run's settings.

    Raises:
        SequenceChangedError: a row's frame disagrees with this run's plan of its path.
    """
    from affectsynth.result import TargetLabels

    plans = {spec.name: spec.plan() for spec in settings.paths}
    for r in rows:
        if not r.sequence or r.sequence not in plans or r.frame is None or not r.target_kind:
            continue  # not a frame of a path asked for now, or a row without labels to disagree
        plan = plans[r.sequence]
        if r.frame < len(plan):
            f = plan[r.frame]
            t = TargetLabels.of(f.target)
            if t.kind == "va":
                now, was = (t.valence, t.arousal), (r.valence, r.arousal)
            else:
                now, was = (t.expression, t.intensity), (r.expression, r.intensity)
            same_target = t.kind == r.target_kind and all(
                (x == y) if isinstance(x, str) else (y is not None and abs(x - y) <= 5e-4) for x, y in zip(now, was))
            if same_target and r.time_s is not None and abs(r.time_s - f.time_s) <= 1e-3:  # .6g in the CSV
                continue
            change = (f"{_frame_text(r.frame, r.time_s, r.target_kind, *was)}, now "
                      f"{_frame_text(f.index, f.time_s, t.kind, *now)}")
        else:
            change = f"frame {r.frame} exists, the path now has {len(plan)} frames"
        raise SequenceChangedError(
            f"--paths: path {r.sequence!r} differs from the one rendered earlier in this OUTPUT_DIR ({r.source}: "
            f"{change}); give the changed path a new name, or use a new OUTPUT_DIR")


def plan_jobs(input_dir: str | os.PathLike, output_dir: str | os.PathLike, settings: GenerateSettings,
              *, manifest: Manifest | None = None) -> Plan:
    """List the sources under ``input_dir`` and the work left for each.

    Raises:
        NotADirectoryError: ``input_dir`` is not a folder.
        SequenceChangedError: ``manifest`` holds frames of a path that this run plans otherwise
            (`check_sequence_rows`).
    """
    if manifest is not None and settings.paths:
        check_sequence_rows(manifest.rows, settings)
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
        job = Job(str(src), rel, str(output_dir), targets, settings)
        if settings.faces == "largest":
            mine = {job.output_for(t, 0) for t in targets}
            mine |= {f.output for f in job.frames_for(0)}
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
        for f in job.frames_for(0):
            if f.output not in job.done:
                planned.append((rel, f.output, f))
    return Plan(jobs, n_sources, planned, already)
