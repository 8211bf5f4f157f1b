"""Planning a batch run: one `Job` per source image, what earlier runs settled (resume), and seeds.

Seeds depend only on (run seed, source's display path, face, target), so a resumed or parallel
run synthesises the same pixels as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from affectsynth.generate_settings import GenerateSettings
from affectsynth.manifest import Manifest
from affectsynth.naming import display_path, find_images, output_relpath, source_relpath, target_slug

__all__ = ["Job", "Plan", "item_seed", "plan_jobs", "select_targets"]


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
