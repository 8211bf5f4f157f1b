"""Settings of a batch run (the ``generate`` command's flags); their errors name the flag to fix."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from affectsynth.gates import MAX_HEAD_ROTATION_DEG, FaceGates
from affectsynth.images import DEFAULT_MAX_PIXELS
from affectsynth.naming import LAYOUTS, target_slug
from affectsynth.output_images import IMAGE_FORMATS

__all__ = ["GenerateSettings"]


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
        workers: processes; 1 runs in this process; None: chosen from the job's size and the
            cores (`affectsynth.workers.default_workers`, the ``generate`` command's default).
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
        image_format: the outputs' file format, "png" (default) or "webp" (lossless too: ~28%
            smaller files for ~3.5 ms more CPU per 256 px output; `affectsynth.output_images`).
        head_rotation_deg: (max |yaw|, max |pitch|) of a random extra head rotation per output
            (seeded, recorded in the manifest's pose columns); (0, 0) = off.
        light_strength: strength in [0, 1] of a random relighting per output; 0 = off.
        verify: detect and fit every output again and record how well its target comes back
            (`affectsynth.verify`: the manifest's ``verify_*`` columns); about 0.2 s per output here.
        min_verify: outputs scoring below this (in [0, 1]) get ``status=rejected`` rows with the
            reason and no file; implies ``verify``.
        paths: affect sequences (`affectsynth.paths_file.SequenceSpec`, from ``--paths FILE``)
            rendered per face besides ``targets``: a sequence of K frames is K outputs. With
            paths, ``targets`` may be empty; ``per_image`` draws among ``targets`` only.

    Note:
        Every field counts as output-affecting: OUTPUT_DIR/run.json records it and a rerun that
        changes it refuses to reuse the outputs made before (`affectsynth.run_record`), unless
        the field is listed in `affectsynth.run_record.NOT_COMPARED` (how the work runs, or what
        only decides which outputs are planned). A new field that changes no output belongs there.

        Outputs are renamed into place atomically but not fsync'd (about 3 ms each here); the
        manifest is fsync'd per row. After a power loss an output whose row survived may be
        missing or corrupt: the next run checks every ``ok`` output's file (PNG: signature and end
        chunk; WebP: header and length) and redoes it.
    """

    targets: tuple = ()
    per_image: int | None = None
    size: int | None = None
    faces: str = "largest"
    workers: int | None = 1
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
    image_format: str = "png"
    head_rotation_deg: tuple[float, float] = (0.0, 0.0)
    light_strength: float = 0.0
    verify: bool = False
    min_verify: float | None = None
    paths: tuple = ()

    def __post_init__(self) -> None:
        if self.min_verify is not None:
            if not 0.0 <= float(self.min_verify) <= 1.0:
                raise ValueError(f"--min-verify: expected a score in [0, 1], got {self.min_verify}")
            object.__setattr__(self, "verify", True)  # a threshold needs the score
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "head_rotation_deg", tuple(float(x) for x in self.head_rotation_deg))
        lim = MAX_HEAD_ROTATION_DEG
        if len(self.head_rotation_deg) != 2 or not (0 <= self.head_rotation_deg[0] <= lim[0]
                                                    and 0 <= self.head_rotation_deg[1] <= lim[1]):
            raise ValueError(f"--head-rotation: expected YAW,PITCH within {lim[0]:g},{lim[1]:g} degrees (what one photo "
                             f"supports), got {self.head_rotation_deg}")
        if not 0 <= self.light_strength <= 1:
            raise ValueError(f"--relight: expected a strength in [0, 1], got {self.light_strength}")
        object.__setattr__(self, "paths", tuple(self.paths))
        if self.paths:  # (without any, affectsynth.paths_file is not even imported: ~4 ms at start-up)
            self._check_paths()
        if not self.targets and not self.paths:
            raise ValueError("GenerateSettings: expected at least one target or path, got none")
        for t in self.targets:
            target_slug(t)  # raises TypeError for non-targets
        slugs = [target_slug(t) for t in self.targets]
        if len(set(slugs)) != len(slugs):
            dup = [s for s, n in Counter(slugs).items() if n > 1]
            raise ValueError(f"GenerateSettings: duplicate targets {dup}")
        if self.per_image is not None and not self.targets:
            raise ValueError("--per-image draws among the --expressions/--va/--va-grid/--aus targets; with --paths "
                             "alone there are none (every path is rendered): drop --per-image or add targets")
        if self.per_image is not None and not (1 <= self.per_image <= len(self.targets)):
            raise ValueError(f"--per-image: expected 1..{len(self.targets)} (the number of targets), "
                             f"got {self.per_image}")
        if self.size is not None and not (16 <= self.size <= 8192):
            raise ValueError(f"--size: expected 16..8192 pixels, got {self.size}")
        if self.faces not in ("largest", "all"):
            raise ValueError(f"--faces: expected 'largest' or 'all', got {self.faces!r}")
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--workers: expected >= 1, got {self.workers}")
        if self.layout not in LAYOUTS:
            raise ValueError(f"--layout: expected one of {LAYOUTS}, got {self.layout!r}")
        if not 0 <= self.png_compress_level <= 9:
            raise ValueError(f"--png-compression: expected 0..9, got {self.png_compress_level}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(f"--image-format: expected one of {IMAGE_FORMATS}, got {self.image_format!r}")
        if self.crop_scale <= 0:
            raise ValueError(f"GenerateSettings: crop_scale must be > 0, got {self.crop_scale}")
        self.gates  # validates the gate limits (FaceGates raises)

    def _check_paths(self) -> None:
        """Paths are `SequenceSpec` with distinct names; drawn head rotation plus sway stays within the limits."""
        from affectsynth.paths_file import SequenceSpec

        seen: set[str] = set()
        lim = MAX_HEAD_ROTATION_DEG
        for spec in self.paths:
            if not isinstance(spec, SequenceSpec):
                raise TypeError(f"GenerateSettings: paths must be SequenceSpec (affectsynth.paths_file), "
                                f"got {type(spec).__name__}")
            if spec.name.lower() in seen:
                raise ValueError(f"--paths: duplicate path name {spec.name!r}")
            seen.add(spec.name.lower())
            yaw = self.head_rotation_deg[0] + spec.sway_deg[0]
            pitch = self.head_rotation_deg[1] + spec.sway_deg[1]
            if yaw > lim[0] or pitch > lim[1]:
                raise ValueError(f"--paths: path {spec.name!r} sways up to {spec.sway_deg[0]:g},{spec.sway_deg[1]:g} "
                                 f"degrees on top of --head-rotation {self.head_rotation_deg[0]:g},"
                                 f"{self.head_rotation_deg[1]:g}: {yaw:g},{pitch:g} exceeds {lim[0]:g},{lim[1]:g} "
                                 "(what one photo supports); lower one of them")

    @property
    def gates(self) -> FaceGates:
        """The face gates these settings ask for (applied by the Synthesizer, `Synthesizer.check`)."""
        return FaceGates(self.min_face_px, self.max_yaw_deg, self.max_pitch_deg, self.max_fit_error,
                         max_roll_deg=self.max_roll_deg)
