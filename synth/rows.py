"""Manifest rows of a batch run: the row of each written output and of each failed or skipped one."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Sequence

from affectsynth.crop import face_square_box
from affectsynth.manifest import ManifestRow
from affectsynth.plan import Job
from affectsynth.result import SynthLabels, TargetLabels

__all__ = ["OutputPlacement", "error_row", "fail_rows", "frame_row", "ok_row", "reason_detail", "target_fields"]


@dataclass(frozen=True)
class OutputPlacement:
    """Where a written output sits in its source photo (the manifest's box and size columns).

    Attributes:
        face_box: (x0, y0, x1, y1) the fitted face's box, source photo pixels.
        crop_box: (x0, y0, x1, y1) the square ``--size`` crop window, source photo pixels
            (integers; may reach outside the photo), or None when the output is the whole photo.
        out_size: (width, height) of the written image, pixels.
    """

    face_box: tuple[float, float, float, float]
    crop_box: tuple[int, int, int, int] | None
    out_size: tuple[int, int]

    @classmethod
    def of(cls, face_box: Sequence[float], image_shape: Sequence[int], *, size: int | None,
           crop_scale: float) -> "OutputPlacement":
        """The frame of an output synthesised on the face ``face_box`` of a photo.

        Args:
            face_box: the source fit's ``bbox`` (source pixels).
            image_shape: the written image's shape, [H, W, ...].
            size: ``--size`` (the crop is `affectsynth.crop.face_square_box` of ``face_box``,
                as `Synthesizer.crop_to_face` cuts it), or None for the whole photo.
            crop_scale: crop side / face box longer side.
        """
        crop = None
        if size is not None:
            x0, y0, side = face_square_box(face_box, scale=crop_scale)
            crop = (x0, y0, x0 + side, y0 + side)
        return cls(tuple(float(v) for v in face_box), crop, (int(image_shape[1]), int(image_shape[0])))

    def to_row(self) -> dict[str, Any]:
        """The manifest fields ``face_x0 .. crop_y1, out_width, out_height``."""
        crop = self.crop_box if self.crop_box is not None else (None,) * 4
        return {**dict(zip(("face_x0", "face_y0", "face_x1", "face_y1"), self.face_box)),
                **dict(zip(("crop_x0", "crop_y0", "crop_x1", "crop_y1"), crop)),
                "out_width": self.out_size[0], "out_height": self.out_size[1]}


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
           verification: Any = None, status: str = "ok", reason: str = "",
           placement: OutputPlacement | None = None) -> ManifestRow:
    """The row of a synthesised output: its labels (`SynthLabels.to_row`), seed, face and, when the
    output was verified, its `affectsynth.verify.Verification` fields; ``placement``: where it sits in
    the source photo. ``status="rejected"`` with the ``reason`` for an output the verification
    threshold refused (not written)."""
    extra = verification.to_row() if verification is not None else {}
    where = placement.to_row() if placement is not None else {}
    return ManifestRow(job.rel_source, out, status, reason, seed=seed, face=face, n_faces=n_faces,
                       **labels.to_row(), **extra, **where)


def error_row(job: Job, target: Any, face: int, n_faces: int, reason: str, e: BaseException, *,
              output: str | None = None, seed: int | None = None) -> ManifestRow:
    """The ``error`` row of one output whose synthesis, verification or write raised ``e``.

    ``output`` and ``seed`` default to the target's own (`Job.output_for`, `Job.seed_for`); a
    sequence frame passes its frame's path and its sequence's seed.
    """
    return ManifestRow(job.rel_source, job.output_for(target, face) if output is None else output, "error",
                       f"{reason}: {reason_detail(e)}", **target_fields(target),
                       seed=job.seed_for(target, face) if seed is None else seed, face=face, n_faces=n_faces)
