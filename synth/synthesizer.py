"""`Synthesizer`: photo + target affect -> the same photo with the same person showing that affect.

Per photo and face the costly work happens once (detection, fit, texture unwrap: a `PreparedFace`);
each target then only deforms the mesh, renders the face window and composites it into the photo.

Expression weights: the target's blendshape weights replace the fitted ones (a smiling photo can be
made sad), except the eyelid shapes (eyeBlink/eyeSquint/eyeWide), which are added on top of the
person's own eyelid state: landmarks measure eye aperture relative to the model's neutral, and
keeping it preserves the person's eyes. Shapes no category drives (jaw sideways, lip pucker, ...)
also keep their fitted weights. A target that widens the eyes releases the person's own
squint and blink (and one that narrows them releases their widening), so surprise on a smiling
photo still opens the eyes.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

from affectsynth.blendshapes import AUs, Expression, ExpressionModel, VA
from affectsynth.crop import crop_square, face_square_box
from affectsynth.face_render import TYPICAL_SKIN, FaceRenderer, MouthMaterials
from affectsynth.fitting import (
    FaceFit, FaceModel, FitSettings, fit_image, fit_images, get_detector, project, reconstruct, rotation_from_angles_deg,
)
from affectsynth.render.camera import project_points
from affectsynth.render.composite import CompositeSettings, composite
from affectsynth.render.unwrap import fill_texture, mirror_texel_map, unwrap_texture
from affectsynth.render.warp import motion_field, motion_window

__all__ = ["Synthesizer", "SynthSettings", "SynthResult", "PreparedFace", "ADDITIVE_SHAPES", "Target"]

Target = Expression | VA | AUs

#: Eyelid shapes: always applied on top of the fitted weights (see the module docstring and `_kept_shapes`).
ADDITIVE_SHAPES = ("eyeBlink_L", "eyeBlink_R", "eyeSquint_L", "eyeSquint_R", "eyeWide_L", "eyeWide_R")

#: MediaPipe inner-lip contour: photo pixels inside it (teeth, mouth interior) are never unwrapped onto skin.
_INNER_LIPS_MEDIAPIPE = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
_INNER_LIPS_IBUG = (60, 61, 62, 63, 64, 65, 66, 67)


@dataclass(frozen=True)
class SynthSettings:
    """Defaults of synthesis (one source for the API, the transform and the command line).

    Attributes:
        texture_min, texture_max: texture resolution bounds; the texture is sized to the face
            (about 1.5x the face's pixel size, a power of two), not a fixed 1024.
        margin_px: how far around the face the photo is warped to follow the face's motion.
        feather_px: softness of the render's edge in the composite.
        head_rotation_deg: (max |yaw|, max |pitch|) random extra head rotation; (0, 0) = off.
        light_strength: random relighting strength in [0, 1]; 0 = off.
        materials: mouth interior colours.
        reuse_photo: where the photo saw the skin, show the photo warped by the face's motion
            instead of the re-rendered texture: one resampling instead of two keeps the skin's
            detail (pores, stubble, freckles) and so the person's look. The render still draws
            the mouth interior, skin the photo did not see, and any relit or re-posed face.
    """

    texture_min: int = 128
    texture_max: int = 1024
    margin_px: float = 12.0
    feather_px: float = 3.0
    head_rotation_deg: tuple[float, float] = (0.0, 0.0)
    light_strength: float = 0.0
    materials: MouthMaterials = field(default_factory=MouthMaterials)
    reuse_photo: bool = True

    def __post_init__(self) -> None:
        if not 16 <= self.texture_min <= self.texture_max <= 4096:
            raise ValueError(f"SynthSettings: need 16 <= texture_min <= texture_max <= 4096, got {self.texture_min}, {self.texture_max}")
        if not 0.0 <= self.light_strength <= 1.0:
            raise ValueError(f"SynthSettings: light_strength must be in [0, 1], got {self.light_strength}")
        if min(self.head_rotation_deg) < 0 or max(self.head_rotation_deg) > 30:
            raise ValueError(f"SynthSettings: head_rotation_deg must be within [0, 30], got {self.head_rotation_deg}")


@dataclass(frozen=True)
class PreparedFace:
    """Photo-level work for one face, shared by all its targets.

    Attributes:
        fit: the face's fit in this photo.
        texture: [R, R, 3] float32 face texture unwrapped from the photo, holes filled.
        vertices: [V, 3] camera-space vertices of the fitted face.
        skin_color: [3] mean RGB of the visible face, in [0, 1].
        photo: [H, W, 3] uint8 the photo (as a tensor).
        photo_weight: [R, R] float32 in [0, 1], texels the photo saw clearly (1) fading to 0 at
            the edges of what it saw (see `SynthSettings.reuse_photo`).
    """

    fit: FaceFit
    texture: Tensor
    vertices: Tensor
    skin_color: Tensor
    photo: Tensor
    photo_weight: Tensor


@dataclass(frozen=True)
class SynthResult:
    """One synthesised image and its labels.

    Attributes:
        image: [H, W, 3] uint8, the input's size.
        labels: target_kind, expression, intensity, valence, arousal, weights (blendshape name ->
            weight), aus, pose_deg (yaw, pitch, roll of the output face), head_rotation_deg,
            lighting, landmarks (478? no: the 468 MediaPipe-layout points of the new face, pixels).
        fit: the output face as a fit (same identity and camera; new expression and pose).
    """

    image: np.ndarray
    labels: dict[str, Any]
    fit: FaceFit


def _digest(image: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    h.update(str(image.shape).encode())
    h.update(np.ascontiguousarray(image).data)
    return h.hexdigest()


def _fit_digest(fit: FaceFit) -> str:
    """Content hash of everything in a fit that changes the texture (coefficients, pose, camera)."""
    h = hashlib.blake2b(digest_size=16)
    for t in (fit.identity, fit.expression, fit.rotation, fit.translation):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(repr(fit.camera).encode())
    return h.hexdigest()


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
        self._cache: OrderedDict[tuple, PreparedFace] = OrderedDict()
        self._cache_size = cache_size
        self._additive = torch.tensor(_kept_shapes(self.model.expression_names, self.expressions), device=self.device)

    # ------------------------------------------------------------------ fitting
    @property
    def detector(self):
        if self._detector is None:
            self._detector = get_detector("mediapipe")
        return self._detector

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_cache"] = OrderedDict()
        return state

    def fit(self, image: np.ndarray) -> list[FaceFit]:
        """All faces of a photo, largest first (see `affectsynth.fitting.fit_image`)."""
        image = _check_image(image)
        return fit_image(image, model=self.model, detector=self.detector, settings=self.fit_settings)

    def fit_batch(self, images: Sequence[np.ndarray]) -> list[list[FaceFit]]:
        """Faces of several photos; all faces are fitted in one batch (see `affectsynth.fitting.fit_images`)."""
        images = [_check_image(im) for im in images]
        return fit_images(images, model=self.model, detector=self.detector, settings=self.fit_settings)

    def _largest_fit(self, image: np.ndarray, where: str) -> FaceFit:
        fits = self.fit(image)
        if not fits:
            raise ValueError(f"Synthesizer.{where}: no face found in the image")
        return fits[0]

    # ------------------------------------------------------------------ preparation
    def texture_resolution(self, fit: FaceFit) -> int:
        """Power-of-two texture side sized to the face (about 1.5x its pixel size)."""
        x0, y0, x1, y1 = fit.bbox
        side = max(x1 - x0, y1 - y0) * 1.5
        res = 2 ** math.ceil(math.log2(max(side, 1.0)))
        return int(min(self.settings.texture_max, max(self.settings.texture_min, res)))

    def prepare(self, image: np.ndarray, fit: FaceFit) -> PreparedFace:
        """Unwrap the face's texture from the photo (cached by photo content and face)."""
        image = _check_image(image)
        key = (_digest(image), _fit_digest(fit))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        fit = fit.to(self.device)
        photo = torch.from_numpy(np.array(image, copy=True)).to(self.device)
        photo_f = photo.float() / 255.0
        verts = reconstruct(self.model, fit)
        cam = fit.camera
        res = self.texture_resolution(fit)
        r = self.renderer
        mask = _mouth_opening_mask(fit, image.shape[:2])
        un = unwrap_texture(photo_f, verts, self.model.triangles, self.model.uv, self.model.triangle_uv,
                            cam.fx, cam.fy, cam.cx, cam.cy, resolution=res, triangle_mask=r.skin, min_cos=0.05,
                            photo_mask=None if mask is None else torch.from_numpy(~mask).to(self.device))
        mirror = _mirror_map(self.model, r.skin, res)
        # every texel the photo sees keeps the photo's colour; only unseen ones are filled
        tex = fill_texture(un.texture, un.visible.to(un.texture.dtype), mirror_uv=mirror)
        vis = un.weight > 0.5
        skin = un.texture[vis].mean(0) if vis.any() else torch.tensor(TYPICAL_SKIN, device=self.device)
        prepared = PreparedFace(fit=fit, texture=tex, vertices=verts, skin_color=skin, photo=photo,
                                photo_weight=_seen_weight(un.visible))
        self._cache[key] = prepared
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
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
        """[S] final blendshape weights for a target on this face (see the module docstring).

        Eyelid shapes add to the fitted ones, except that a target opening the eyes (eyeWide)
        releases the person's squint and blink, and one closing them (eyeSquint, eyeBlink)
        releases their widening, side by side.
        """
        names = self.model.expression_names
        w = self.expressions.weights_tensor(target, names, strict=False, device=self.device)
        fitted = fit.expression.to(self.device).clone()
        for side in ("_L", "_R"):
            wide, squint, blink = (names.index(n + side) for n in ("eyeWide", "eyeSquint", "eyeBlink"))
            fitted[squint] *= 1 - w[wide]
            fitted[blink] *= 1 - w[wide]
            fitted[wide] *= 1 - torch.maximum(w[squint], w[blink])
        return torch.where(self._additive, (fitted + w).clamp(0, 1), w)

    def _labels_for(self, target: Target) -> dict[str, Any]:
        if isinstance(target, Expression):
            v, a = self.expressions.va_anchors.get(target.name, (0.0, 0.0))
            s = target.intensity
            return {"target_kind": "expression", "expression": target.name, "intensity": s,
                    "valence": v * s, "arousal": a * s, "aus": None}
        if isinstance(target, VA):
            c = target.clamped()
            return {"target_kind": "va", "expression": "", "intensity": None,
                    "valence": float(c.valence), "arousal": float(c.arousal), "aus": None}
        if isinstance(target, AUs):
            return {"target_kind": "aus", "expression": "", "intensity": None, "valence": None,
                    "arousal": None, "aus": dict(target.units)}
        raise TypeError(f"Synthesizer: target must be Expression, VA or AUs, got {type(target).__name__}")

    # ------------------------------------------------------------------ synthesis
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
                in the settings.
            head_rotation_deg: explicit (yaw, pitch) extra head rotation; overrides the random draw.
            light: explicit (azimuth_deg, strength) relighting; overrides the random draw.

        Returns:
            `SynthResult` with the image (input size) and labels.

        Raises:
            ValueError: no face in the photo, or a malformed image.
        """
        image = _check_image(image)
        fit = fit or self._largest_fit(image, "synthesize")
        labels = self._labels_for(target)
        prepared = self.prepare(image, fit)
        rng = np.random.default_rng(rng_seed)
        yaw_max, pitch_max = self.settings.head_rotation_deg
        if head_rotation_deg is None:
            head_rotation_deg = (float(rng.uniform(-yaw_max, yaw_max)) if yaw_max else 0.0,
                                 float(rng.uniform(-pitch_max, pitch_max)) if pitch_max else 0.0)
        if light is None and self.settings.light_strength > 0:
            light = (float(rng.uniform(-60, 60)), float(rng.uniform(0, self.settings.light_strength)))
        weights = self.target_weights(target, prepared.fit)
        out_image, out_fit, landmarks = self._render_composite(prepared, weights, head_rotation_deg, light)
        yaw, pitch, roll = out_fit.pose_deg
        labels.update(
            weights={n: round(float(w), 5) for n, w in zip(self.model.expression_names, weights.tolist()) if w > 1e-4},
            pose_deg={"yaw": yaw, "pitch": pitch, "roll": roll},
            head_rotation_deg={"yaw": head_rotation_deg[0], "pitch": head_rotation_deg[1]},
            lighting=None if light is None else {"azimuth_deg": light[0], "strength": light[1]},
            landmarks=landmarks.tolist(),
        )
        return SynthResult(image=out_image, labels=labels, fit=out_fit)

    def synthesize_many(self, image: np.ndarray, targets: Sequence[Target], fit: FaceFit | None = None, **kwargs) -> list[SynthResult]:
        """Several targets on one face: the fit and texture are computed once."""
        image = _check_image(image)
        fit = fit or self._largest_fit(image, "synthesize_many")
        return [self.synthesize(image, t, fit=fit, **kwargs) for t in targets]

    def _render_composite(self, prepared: PreparedFace, weights: Tensor, head_rotation_deg, light):
        fit, model, r = prepared.fit, self.model, self.renderer
        cam = fit.camera
        new = reconstruct(model, fit, expression=weights)
        rotation, translation = fit.rotation.to(self.device), fit.translation.to(self.device)
        rotated = any(abs(a) > 1e-6 for a in head_rotation_deg)
        if rotated:
            # new head pose = fitted angles + (yaw, pitch), in the one convention of `pose_angles_deg`
            yaw, pitch, roll = fit.pose_deg
            target = torch.tensor(rotation_from_angles_deg(yaw + head_rotation_deg[0], pitch + head_rotation_deg[1], roll),
                                  dtype=rotation.dtype, device=self.device)
            extra = target @ rotation.T
            start, end = model.region("face")
            centre = prepared.vertices[start:end].mean(0)
            new = (new - centre) @ extra.T + centre
            rotation = target
            translation = extra @ (translation - centre) + centre
        shading = None
        if light is not None and light[1] > 0:
            shading = _relight(r.vertex_normals(new), *light)
        old_pix = project_points(prepared.vertices, cam.fx, cam.fy, cam.cx, cam.cy)
        new_pix = project_points(new, cam.fx, cam.fy, cam.cx, cam.cy)
        drawn_v = r.drawn_vertices
        window = r.window_for(torch.cat([new_pix[drawn_v], old_pix[drawn_v]]), (cam.width, cam.height))
        reuse = self.settings.reuse_photo and shading is None and not rotated
        rendered = r.render(new, prepared.texture, cam, window, skin_color=prepared.skin_color, shading=shading,
                            photo_weight=prepared.photo_weight if reuse else None)
        opacity = None if rendered.photo_weight is None else 1.0 - rendered.photo_weight
        skin_v = r.motion_vertices
        fwin = motion_window(old_pix[skin_v], new_pix[skin_v], (cam.height, cam.width), margin_px=self.settings.margin_px)
        flow = motion_field(old_pix, new_pix, r.motion_tri, (cam.height, cam.width), margin_px=self.settings.margin_px,
                            dst_depth=new[:, 2], window=fwin, scale=0.5 if min(fwin[2:]) >= 96 else 1.0)
        comp = composite(prepared.photo, rendered.color, rendered.coverage, window=window[:2], flow=flow,
                         flow_window=fwin[:2], opacity=opacity,
                         settings=CompositeSettings(feather_px=self.settings.feather_px))
        out_fit = FaceFit(
            identity=fit.identity, expression=weights.detach(), rotation=rotation, translation=translation,
            camera=cam, landmarks=fit.landmarks, landmark_kind=fit.landmark_kind, residuals=fit.residuals,
            bbox=fit.bbox, expression_names=fit.expression_names,
        )
        pts = model.landmark_points(new[None], "mediapipe468")[0]
        intr = torch.tensor([[cam.fx, cam.fy, cam.cx, cam.cy]], device=self.device)
        landmarks = project(pts[None], intr)[0].cpu().numpy().round(2)
        return comp.image.cpu().numpy(), out_fit, landmarks


def _kept_shapes(names: Sequence[str], expressions: ExpressionModel) -> list[bool]:
    """Per blendshape: True where the fitted weight is kept (the target adds to it), False where the
    target replaces it. Kept: the eyelid shapes, and shapes no category of the expression model ever
    drives (jaw sideways/forward, lip funnel/pucker, gaze...), which describe the person's own face and
    pose; replacing them with 0 would move every output away from the photo for no label's sake.
    mouthClose is always replaced: it only makes sense together with jawOpen.
    """
    driven = {n for n, w in zip(expressions.names, np.asarray(expressions.prototypes).max(0)) if w > 0}
    driven |= {n[:-2] + other for n in driven if n[-2:] in ("_L", "_R") for other in ("_L", "_R")}  # both sides
    return [n in ADDITIVE_SHAPES or (n not in driven and n != "mouthClose") for n in names]


def _check_image(image: Any) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        got = f"{type(image).__name__} {getattr(image, 'shape', '')} {getattr(image, 'dtype', '')}"
        raise ValueError(f"Synthesizer: expected an [H, W, 3] uint8 RGB array, got {got.strip()}")
    return image


_MIRROR_CACHE: dict[tuple, Tensor] = {}


def _mirror_map(model: FaceModel, skin: Tensor, res: int) -> Tensor:
    """Texel -> mirror texel map of the skin tile, cached per resolution (it depends on the model only)."""
    key = (id(model), res)
    if key not in _MIRROR_CACHE:
        _MIRROR_CACHE[key] = mirror_texel_map(model.uv, model.triangle_uv, model.triangles, model.symmetry, res, triangle_mask=skin)
    return _MIRROR_CACHE[key]


def _mouth_opening_mask(fit: FaceFit, shape: tuple[int, int]) -> np.ndarray | None:
    """[H, W] bool: pixels inside the detected inner-lip contour (teeth and mouth interior)."""
    from PIL import Image, ImageDraw

    idx = {"mediapipe468": _INNER_LIPS_MEDIAPIPE, "ibug68": _INNER_LIPS_IBUG}.get(fit.landmark_kind)
    if idx is None:
        return None
    pts = fit.landmarks[list(idx)].cpu().numpy()
    mask = Image.new("L", (shape[1], shape[0]), 0)
    ImageDraw.Draw(mask).polygon([tuple(p) for p in pts.tolist()], fill=255, outline=255)
    return np.asarray(mask) > 0


def _seen_weight(visible: Tensor, *, erode: int = 2, blur: int = 5) -> Tensor:
    """[R, R] weight of texels the photo saw: the visibility eroded by `erode` texels (edges of what
    the photo saw carry background and fit error) and box-blurred over `blur` texels (no seam
    where the warped photo hands over to the render)."""
    F = torch.nn.functional
    seen = visible.to(torch.float32)[None, None]
    seen = -F.max_pool2d(-seen, 2 * erode + 1, stride=1, padding=erode)
    return F.avg_pool2d(seen, blur, stride=1, padding=blur // 2, count_include_pad=False)[0, 0]


def _relight(normals: Tensor, azimuth_deg: float, strength: float) -> Tensor:
    """[V, 1] shading ratio: a light turned by `azimuth_deg` from the camera axis vs the frontal light."""
    a = math.radians(azimuth_deg)
    new_light = torch.tensor([math.sin(a), -0.3, -math.cos(a)], device=normals.device)
    new_light = new_light / new_light.norm()
    old_light = torch.tensor([0.0, 0.0, -1.0], device=normals.device)
    ambient = 0.55

    def lambert(light: Tensor) -> Tensor:
        return ambient + (1 - ambient) * (normals @ light).clamp_min(0)

    ratio = lambert(new_light) / lambert(old_light)
    return (1 - strength + strength * ratio)[:, None]
