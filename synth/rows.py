"""Manifest rows of a batch run: the row of each written output and of each failed or skipped one."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from affectsynth.manifest import ManifestRow
from affectsynth.plan import Job
from affectsynth.result import SynthLabels, TargetLabels

__all__ = ["error_row", "fail_rows", "frame_row", "ok_row", "reason_detail", "target_fields"]


def reason_detail(e: BaseException) -> str:
    """``"<ExceptionType>: <message on one line>"`` (the detail after a manifest reason code)."""
    msg = " ".join(str(e).split())
    return f"{type(e).__name__}: {msg}" if msg else type(e).__name__


def fail_rows(job: Job, status: str, reason: str, detail: str, *, n_faces: int | None = None,
              face: int = 0) -> list[ManifestRow]:
    """One ``error``/``skipped`` row per output of ``job`` on ``face`` not yet settled (each target, then
    each sequence frame): ``reason: detail``."""
    rows = []
    for t in job.targets:
        out = job.output_for(t, face)
        if out in job.done:
            continue
        rows.append(ManifestRow(job.rel_source, out, status, f"{reason}: {detail}",
                                **target_fields(t), seed=job.seed_for(t, face), face=face, n_faces=n_faces))
    for f in job.frames_for(face):
        if f.output not in job.done:
            rows.append(frame_row(ManifestRow(job.rel_source, f.output, status, f"{reason}: {detail}",
                                              **target_fields(f.target), seed=job.sequence_seed(f.sequence, face),
                                              face=face, n_faces=n_faces), f))
    return rows


def frame_row(row: ManifestRow, frame: Any) -> ManifestRow:
    """``row`` with the sequence columns of ``frame`` (an `affectsynth.plan.PlannedFrame`) filled."""
    return replace(row, sequence=frame.sequence, frame=frame.frame.index, time_s=round(frame.frame.time_s, 6))


def target_fields(t: Any) -> dict[str, Any]:
    """Manifest target fields of a target that produced no image (no VA label for expressions:
    only synthesis knows the expression model)."""
    return TargetLabels.of(t).to_row()


def ok_row(job: Job, face: int, n_faces: int, out: str, seed: int, labels: SynthLabels, *,
           verification: Any = None, status: str = "ok", reason: str = "") -> ManifestRow:
    """The row of a synthesised output: its labels (`SynthLabels.to_row`), seed, face and, when the
    output was verified, its `affectsynth.verify.Verification` fields. ``status="rejected"`` with the
    ``reason`` for an output the verification threshold refused (not written)."""
    extra = verification.to_row() if verification is not None else {}
    return ManifestRow(job.rel_source, out, status, reason, seed=seed, face=face, n_faces=n_faces,
                       **labels.to_row(), **extra)


def error_row(job: Job, target: Any, face: int, n_faces: int, reason: str, e: BaseException) -> ManifestRow:
    """The ``error`` row of one output whose synthesis or write raised ``e``."""
    return ManifestRow(job.rel_source, job.output_for(target, face), "error", f"{reason}: {reason_detail(e)}",
                       **target_fields(target), seed=job.seed_for(target, face), face=face, n_faces=n_faces)
