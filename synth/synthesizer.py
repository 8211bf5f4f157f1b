"""`Synthesizer`: photo + target affect -> the same photo with the same person showing that affect.

A thin class over the functional stages: fitting (`affectsynth.fitting`), face gates
(`affectsynth.gates`), per-face preparation (`affectsynth.prepare`, cached: detection, fit and
texture unwrap happen once per photo and face), the weight policy (`affectsynth.weights`: which
of the photo's own weights an output keeps), and render + composite (`affectsynth.compose`).
Labels come typed (`affectsynth.result.SynthLabels`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from affectsynth.blendshapes import AUs, Expression, ExpressionModel, VA
from affectsynth.cache import DigestMemo, LRUCache
from affectsynth.compose import ComposeSettings, compose_target
from affectsynth.crop import crop_square, face_square_box
from affectsynth.face_render import FaceRenderer, MouthMaterials
from affectsynth.fitting import FaceFit, FaceModel, FitSettings, fit_each, fit_image, fit_images, get_detector
from affectsynth.gates import MAX_HEAD_ROTATION_DEG, FaceGates, FaceRejection, check_face
from affectsynth.prepare import PreparedFace, fit_digest, prepare_face, texture_resolution
from affectsynth.result import SynthLabels, SynthResult, TargetLabels
from affectsynth.weights import ADDITIVE_SHAPES, kept_shapes, output_weights

__all__ = ["ADDITIVE_SHAPES", "PreparedFace", "SynthFace", "SynthResult", "SynthSettings", "Synthesizer", "Target"]

Target = Expression | VA | AUs


@dataclass(frozen=True)
class SynthSettings:
    """Defaults of synthesis (one source for the API, the transform and the command line).

    Attributes:
        texture_min, texture_max: texture resolution bounds; the texture is sized to the face
            (about 1.5x the face's pixel size, a power of two), not a fixed 1024.
        margin_px: how far around the face the photo is warped to follow the face's motion.
        feather_px: softness of the render's edge in the composite.
        head_rotation_deg: (max |yaw|, max |pitch|) random extra head rotation; (0, 0) = off; at
            most `affectsynth.gates.MAX_HEAD_ROTATION_DEG` (15, 10), what one photo supports.
        light_strength: random relighting strength in [0, 1]; 0 = off.
        materials: mouth interior colours.
        reuse_photo: where the photo saw the skin, show the photo warped by the face's motion
            instead of the re-rendered texture: one resampling instead of two keeps the skin's
            detail (pores, stubble, freckles) and so the person's look. The render still draws
            the mouth interior, skin the photo did not see, and any relit or re-posed face.
        gates: which faces are synthesised at all (`Synthesizer.check`).
        expression_shading: shade the output by the ratio of the target's to the photo's surface
            shading under the photo's estimated light (`affectsynth.expression_shading`), so that
            folds come and go with the expression; False gives the unshaded output.
        wrinkles: strength of the wrinkle maps in that shading (forehead lines, glabellar
            furrows, crow's feet, nose wrinkles, nasolabial folds, a broad smile's subnasal crease;
            `affectsynth.wrinkles`);
            0 = the mesh's own folds only.
    """

    texture_min: int = 128
    texture_max: int = 1024
    margin_px: float = 12.0
    feather_px: float = 3.0
    head_rotation_deg: tuple[float, float] = (0.0, 0.0)
    light_strength: float = 0.0
    materials: MouthMaterials = field(default_factory=MouthMaterials)
    reuse_photo: bool = True
    gates: FaceGates = field(default_factory=FaceGates)
    expression_shading: bool = True
    wrinkles: float = 1.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.wrinkles <= 3.0:
            raise ValueError(f"SynthSettings: wrinkles must be in [0, 3], got {self.wrinkles}")
        if not 16 <= self.texture_min <= self.texture_max <= 4096:
            raise ValueError(f"SynthSettings: need 16 <= texture_min <= texture_max <= 4096, got {self.texture_min}, {self.texture_max}")
        if not 0.0 <= self.light_strength <= 1.0:
            raise ValueError(f"SynthSettings: light_strength must be in [0, 1], got {self.light_strength}")
        _check_head_rotation(self.head_rotation_deg, "SynthSettings: head_rotation_deg")

    @property
    def compose(self) -> ComposeSettings:
        """The compositing part of these settings."""
        return ComposeSettings(margin_px=self.margin_px, feather_px=self.feather_px, reuse_photo=self.reuse_photo,
                               expression_shading=self.expression_shading, wrinkles=self.wrinkles)


@dataclass(frozen=True, eq=False)
class SynthFace:
    """One face of one photo, made ready once for every target synthesised on it (`Synthesizer.face`).

    What depends on the face alone is done here, not once per target: the gates' verdict and the
    prepared-face cache key (the photo's digest and the fit's), so `Synthesizer.synthesize_face`
    finds the face's texture by one dictionary lookup.

    Attributes:
        image: [H, W, 3] uint8 the photo (`Synthesizer.face` keeps a read-only copy).
        fit: the face's fit in this photo.
        rejection: why the gates refuse the face (`Synthesizer.check`), or None.
        key: the prepared-face cache key (`Synthesizer.face` leaves it None for a refused face;
            a face without one has it worked out per target).
    """

    image: np.ndarray
    fit: FaceFit
    rejection: FaceRejection | None
    key: tuple[str, str] | None


class Synthesizer:
    """Fit faces in photos and synthesise target affects on them.

    Args:
        device: torch device for fitting and rendering.
        expressions: an `ExpressionModel`, a path to a library built by `affectsynth build-expressions`,
            or None for the shipped FACS-based model.
        settings: `SynthSettings`.
        fit_settings: `FitSettings` for the fitter.
        cache_size: prepared faces kept in memory (photo digest + face), so that several targets on one
            photo unwrap its texture once.

    Example:
        >>> synth = Synthesizer()                                  # doctest: +SKIP
        >>> result = synth.synthesize(photo, Expression("happiness", 0.8))  # doctest: +SKIP
        >>> result.image.shape == photo.shape                      # doctest: +SKIP
        True
    """

    def __init__(
        self,
        device: str | torch.device = "cpu",
        expressions: ExpressionModel | str | Path | None = None,
        *,
        settings: SynthSettings | None = None,
        fit_settings: FitSettings | None = None,
        cache_size: int = 8,
    ):
        self.device = torch.device(device)
        if expressions is None:
            self.expressions = ExpressionModel.default()
        elif isinstance(expressions, ExpressionModel):
            self.expressions = expressions
        else:
            self.expressions = ExpressionModel.load(expressions)
        self.settings = settings or SynthSettings()
        self.fit_settings = fit_settings or FitSettings()
        self.model = FaceModel.default(self.device)
        self.renderer = FaceRenderer(self.model, self.settings.materials)
        self._detector = None
        self._prepared: LRUCache[PreparedFace] = LRUCache(cache_size)
        self._image_digest = DigestMemo()  # the targets of one photo hash it once
        # every variant counts: a shape only a non-default variant drives is still the target's
        driven_max = np.asarray(self.expressions.variant_prototypes).max(0)
        kept = kept_shapes(self.model.expression_names, self.expressions.names, driven_max)
        self._kept = torch.tensor(kept, device=self.device)
        self._frozen = tuple(n for n, k in zip(self.model.expression_names, kept) if k and n not in ADDITIVE_SHAPES)

    def __repr__(self) -> str:
        s = self.settings
        return (f"Synthesizer(device={str(self.device)!r}, expressions={self.expressions!r}, "
                f"head_rotation_deg={s.head_rotation_deg}, light_strength={s.light_strength}, "
                f"reuse_photo={s.reuse_photo}, gates={s.gates})")

    # ------------------------------------------------------------------ fitting
    @property
    def detector(self):
        """The landmark detector (built on first use)."""
        if self._detector is None:
            self._detector = get_detector("mediapipe")
        return self._detector

    def fit(self, image: np.ndarray, *, max_faces: int | None = None) -> list[FaceFit]:
        """All faces of a photo, largest first (see `affectsynth.fitting.fit_image`).

        Args:
            image: [H, W, 3] uint8 RGB photo.
            max_faces: only the this many largest faces: only they are meshed and fitted
                (``max_faces=1``: the largest face, several times faster on group photos).
                Each fit's ``faces_found`` still counts the faces the detector found.
        """
        image = _check_image(image)
        return fit_image(image, model=self.model, detector=self.detector, settings=self.fit_settings, max_faces=max_faces)

    def fit_batch(self, images: Sequence[np.ndarray]) -> list[list[FaceFit]]:
        """Faces of several photos; all faces are fitted in one batch (see `affectsynth.fitting.fit_images`)."""
        images = [_check_image(im) for im in images]
        return fit_images(images, model=self.model, detector=self.detector, settings=self.fit_settings)

    def fit_many(self, images: Sequence[np.ndarray], *, max_faces: int | None = None) -> list[list[FaceFit]]:
        """`fit` of every photo, the same fits bit for bit; with one torch thread (the batch engine's
        setting) the face detection of all photos runs in one batch, and so does the fit of all
        their faces (see `affectsynth.fitting.fit_each`): in batches of 4, about a sixth less
        detection CPU and a third less fit CPU per photo.

        Args:
            images: [H, W, 3] uint8 RGB photos.
            max_faces: as for `fit`.
        """
        images = [_check_image(im) for im in images]
        return fit_each(images, model=self.model, detector=self.detector, settings=self.fit_settings,
                        max_faces=max_faces)

    def check(self, fit: FaceFit, gates: FaceGates | None = None) -> FaceRejection | None:
        """Why this face would not be synthesised (too small, turned too far, fitted poorly), or None.

        `synthesize` refuses such faces; the batch engine skips them with the reason, the
        transform passes them through unchanged, the grid labels their row.

        Args:
            fit: the face.
            gates: limits to apply instead of ``settings.gates`` (the batch engine passes its run's).
        """
        return check_face(fit, self.settings.gates if gates is None else gates)

    def _largest_fit(self, image: np.ndarray, where: str) -> FaceFit:
        """The fit of the photo's largest face (only that face is meshed and fitted)."""
        fits = self.fit(image, max_faces=1)
        if not fits:
            raise ValueError(f"Synthesizer.{where}: no face found in the image")
        return fits[0]

    # ------------------------------------------------------------------ preparation
    def texture_resolution(self, fit: FaceFit) -> int:
        """Power-of-two texture side sized to the face (about 1.5x its pixel size)."""
        return texture_resolution(fit, self.settings.texture_min, self.settings.texture_max)

    def prepare(self, image: np.ndarray, fit: FaceFit) -> PreparedFace:
        """Unwrap the face's texture from the photo (cached by photo content and face)."""
        image = _check_image(image)
        return self._prepared_face(image, fit, self._prepared_key(image, fit))

    def _prepared_key(self, image: np.ndarray, fit: FaceFit) -> tuple[str, str]:
        """The prepared-face cache key of a face: (photo digest, fit digest)."""
        return self._image_digest(image), fit_digest(fit)

    def _prepared_face(self, image: np.ndarray, fit: FaceFit, key: tuple[str, str]) -> PreparedFace:
        """The cached `PreparedFace` under ``key`` (`_prepared_key` of image and fit), prepared on a miss."""
        prepared = self._prepared.get(key)
        if prepared is None:
            prepared = prepare_face(image, fit, self.renderer, resolution=self.texture_resolution(fit),
                                    device=self.device, light=self.settings.expression_shading)
            self._prepared[key] = prepared
        return prepared

    def crop_to_face(self, image: np.ndarray, fit: FaceFit, size: int, *, scale: float = 1.6) -> tuple[np.ndarray, FaceFit]:
        """A `size` x `size` crop centred on the face (side `scale` x the face box's longer side, resized)
        and the same fit seen in it. Synthesising on the crop is much cheaper than on the whole photo
        and gives the same face as cropping afterwards. Black outside the photo.
        """
        image = _check_image(image)
        bx0, by0, side_px = face_square_box(fit.bbox, scale=scale)
        crop = crop_square(image, fit.bbox, size, scale=scale)
        return crop, fit.cropped(bx0, by0, size / side_px, size, size)

    # ------------------------------------------------------------------ targets
    def target_weights(self, target: Target, fit: FaceFit) -> Tensor:
        """[S] final blendshape weights for a target on this face (see `affectsynth.weights`)."""
        names = self.model.expression_names
        w = self.expressions.weights_tensor(target, names, strict=False, device=self.device)
        return output_weights(w, fit.expression, self._kept, names)

    def target_labels(self, target: Target) -> TargetLabels:
        """The label fields of a target (VA where this synthesizer's expression model puts it)."""
        return TargetLabels.of(target, self._expression_va)

    def _expression_va(self, target: Expression) -> tuple[float, float]:
        return self.expressions.expression_va(target)

    def resolve_target(self, target: Target, rng_seed: int | None) -> Target:
        """The target with its expression variant fixed (see `ExpressionModel.resolve_variant`).

        An `Expression` with ``variant=None`` gets a variant drawn from its own stream of
        ``rng_seed`` (so the head-rotation and lighting draws of that seed are unchanged), or
        the category's default variant when there is no seed; a fixed variant is checked and
        kept; other targets come back unchanged.

        Raises:
            ValueError: a variant the expression model does not have (lists the valid ones).
        """
        if not isinstance(target, Expression):
            return target
        if target.variant is None and rng_seed is None:
            return target.with_variant(self.expressions.default_variant(target.name))
        rng = np.random.default_rng([_VARIANT_STREAM, 0 if rng_seed is None else int(rng_seed)])
        return self.expressions.resolve_variant(target, rng)

    # ------------------------------------------------------------------ synthesis
    def face(self, image: np.ndarray, fit: FaceFit | None = None) -> SynthFace:
        """One face of a photo, ready for several `synthesize_face` calls (the batch engine's 8 targets).

        Checks the image and the face (the gates, once) and keys its prepared-face cache entry once;
        the texture itself is prepared by the first target that needs it, as `synthesize` does. The
        face holds a read-only copy of the photo (one copy per face, not per target): the key names
        those pixels, so changing the caller's array afterwards cannot leave a target rendered from
        a texture of other pixels.

        Args:
            image: [H, W, 3] uint8 RGB photo.
            fit: a precomputed fit of a face of this photo; default: the largest face.

        Raises:
            ValueError: no face in the photo, or a malformed image.
        """
        return self._face(image, fit, "face", copy=True)

    def _face(self, image: np.ndarray, fit: FaceFit | None, where: str, *, copy: bool = False) -> SynthFace:
        """`face`; ``copy=False`` for a face that lives only inside one call (`synthesize`)."""
        image = _check_image(image)
        if copy:
            image = image.copy()
            image.flags.writeable = False
        fit = fit or self._largest_fit(image, where)
        rejection = self.check(fit)
        return SynthFace(image, fit, rejection, None if rejection is not None else self._prepared_key(image, fit))

    def synthesize(
        self,
        image: np.ndarray,
        target: Target,
        fit: FaceFit | None = None,
        *,
        rng_seed: int | None = None,
        head_rotation_deg: tuple[float, float] | None = None,
        light: tuple[float, float] | None = None,
    ) -> SynthResult:
        """Synthesise one target on one face of a photo.

        Args:
            image: [H, W, 3] uint8 RGB photo.
            target: `Expression`, `VA` or `AUs`.
            fit: a precomputed fit of a face of this photo (skips detection and fitting); default:
                the largest face.
            rng_seed: seed of the random extras (head rotation, lighting) when they are enabled
                in the settings, and of the expression variant when ``target`` leaves it None
                (no seed: the default variant); see `resolve_target`.
            head_rotation_deg: explicit (yaw, pitch) extra head rotation; overrides the random draw.
            light: explicit (azimuth_deg, strength) relighting; overrides the random draw.

        Returns:
            `SynthResult` with the image (input size) and labels.

        Raises:
            ValueError: no face in the photo, a face the gates refuse (see `check`), or a
                malformed image.
            TypeError: ``target`` is not a target.
        """
        return self.synthesize_face(self._face(image, fit, "synthesize"), target, rng_seed=rng_seed,
                                    head_rotation_deg=head_rotation_deg, light=light)

    def synthesize_face(
        self,
        face: SynthFace,
        target: Target,
        *,
        rng_seed: int | None = None,
        head_rotation_deg: tuple[float, float] | None = None,
        light: tuple[float, float] | None = None,
    ) -> SynthResult:
        """`synthesize` on a face made ready by `face`: the same result, without redoing its per-face checks.

        Args:
            face: the photo's face (`face`).
            target: `Expression`, `VA` or `AUs`.
            rng_seed: as for `synthesize`.
            head_rotation_deg: as for `synthesize`.
            light: as for `synthesize`.

        Returns:
            `SynthResult` with the image (the photo's size) and labels.

        Raises:
            ValueError: a face the gates refuse (see `check`), or an unknown variant.
            TypeError: ``target`` is not a target.
        """
        target = self.resolve_target(target, rng_seed)
        target_labels = self.target_labels(target)
        if face.rejection is not None:
            raise ValueError(f"Synthesizer.synthesize: face refused ({face.rejection})")
        key = face.key if face.key is not None else self._prepared_key(face.image, face.fit)  # a hand-made face
        prepared = self._prepared_face(face.image, face.fit, key)
        yaw_max, pitch_max = self.settings.head_rotation_deg
        # the extras' generator only where a draw is made (seeding one costs ~10 us per output)
        draws = (head_rotation_deg is None and bool(yaw_max or pitch_max)) or (light is None and self.settings.light_strength > 0)
        rng = np.random.default_rng(rng_seed) if draws else None
        if head_rotation_deg is None:
            head_rotation_deg = (float(rng.uniform(-yaw_max, yaw_max)) if yaw_max else 0.0,
                                 float(rng.uniform(-pitch_max, pitch_max)) if pitch_max else 0.0)
        else:
            _check_head_rotation(tuple(abs(float(a)) for a in head_rotation_deg), "Synthesizer.synthesize: head_rotation_deg")
        if light is None and self.settings.light_strength > 0:
            light = (float(rng.uniform(-60, 60)), float(rng.uniform(0, self.settings.light_strength)))
        weights = self.target_weights(target, prepared.fit)
        out = compose_target(prepared, weights, self.renderer, self.settings.compose,
                             head_rotation_deg=head_rotation_deg, light=light)
        labels = SynthLabels(
            target=target_labels,
            weights={n: round(float(w), 5) for n, w in zip(self.model.expression_names, weights.tolist()) if w > 1e-4},
            pose_deg=out.fit.pose_deg,
            head_rotation_deg=(float(head_rotation_deg[0]), float(head_rotation_deg[1])),
            lighting=None if light is None else (float(light[0]), float(light[1])),
            landmarks=out.landmarks,
            frozen=self._frozen,
        )
        return SynthResult(image=out.image, labels=labels, fit=out.fit)

    def synthesize_many(self, image: np.ndarray, targets: Sequence[Target], fit: FaceFit | None = None, **kwargs) -> list[SynthResult]:
        """Several targets on one face: the fit and texture are computed once."""
        face = self._face(image, fit, "synthesize_many")
        return [self.synthesize_face(face, t, **kwargs) for t in targets]


#: First word of the variant draw's seed sequence: its own stream, independent of the extras' draws.
_VARIANT_STREAM = 0x7A1A47


def _check_head_rotation(limits: tuple[float, ...], where: str) -> None:
    """Raise unless ``limits`` are two (|yaw|, |pitch|) values within `MAX_HEAD_ROTATION_DEG`."""
    y_max, p_max = MAX_HEAD_ROTATION_DEG
    if len(limits) != 2 or not (0 <= limits[0] <= y_max and 0 <= limits[1] <= p_max):
        raise ValueError(f"{where} must be (yaw, pitch) within [0, {y_max:g}] x [0, {p_max:g}] degrees (what one "
                         f"photo supports: further turns show what the photo never saw), got {tuple(limits)}")


#: First word of the variant draw's seed sequence: its own stream, independent of the extras' draws.
_VARIANT_STREAM = 0x7A1A47


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        raise ValueError(f"Synthesizer: expected an [H, W, 3] uint8 RGB array, got {got.strip()}")
    return image
