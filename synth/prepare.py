"""Per-face preparation: the photo-level work shared by all targets of one face.

`prepare_face` unwraps the face's texture from the photo (holes filled from the mirror texel,
then by diffusion), records which texels the photo saw clearly (`PreparedFace.photo_weight`)
the mean skin colour and, for the expression shading, the photo's light on the face
(`affectsynth.expression_shading.estimate_light`). Each target then only deforms, renders and composites
(`affectsynth.compose`).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np
import torch
from torch import Tensor

from affectsynth._masked import masked_rows
from affectsynth.expression_shading import FaceLight, estimate_light
from affectsynth.face_render import TYPICAL_SKIN, FaceRenderer
from affectsynth.fitting import FaceFit
from affectsynth.render.camera import project_points
from affectsynth.face_unwrap import unwrap_face
from affectsynth.render.unwrap import fill_texture, mirror_texel_map
from affectsynth.teeth import PhotoTeeth, teeth_pixels, unwrap_photo_teeth

__all__ = ["PreparedFace", "fit_digest", "prepare_face", "texture_resolution"]

#: MediaPipe inner-lip contour: photo pixels inside it (teeth, mouth interior) are never unwrapped onto skin.
_INNER_LIPS_MEDIAPIPE = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308, 324, 318, 402, 317, 14, 87, 178, 88, 95)
_INNER_LIPS_IBUG = (60, 61, 62, 63, 64, 65, 66, 67)
#: mouth corners (left, right) per landmark layout
_MOUTH_CORNERS = {"mediapipe468": (61, 291), "ibug68": (48, 54)}
#: landmarks on plain skin (cheeks, nose, forehead), for a quick skin colour before the unwrap
_SKIN_POINTS = {"mediapipe468": (50, 280, 101, 330, 205, 425, 4, 6, 197, 195, 5, 151, 9, 108, 337),
                "ibug68": (27, 28, 29, 30, 31, 32, 33, 34, 35)}


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
        light: the photo's light on the face and the fitted surface it was measured on (for the
            expression shading), or None when not estimated.
        teeth: the photo's own teeth as a texture of the model's teeth, or None where the photo
            shows no teeth (closed or dark mouth): the material teeth are drawn then.
    """

    fit: FaceFit
    texture: Tensor
    vertices: Tensor
    skin_color: Tensor
    photo: Tensor
    photo_weight: Tensor
    light: FaceLight | None = None
    teeth: PhotoTeeth | None = None

    @cached_property
    def pixels(self) -> Tensor:
        """[V, 2] the fitted vertices projected into the photo, pixels: where every target's motion
        starts (`affectsynth.compose`); projected once per face, not once per target."""
        return project_points(self.vertices, self.fit.camera)


def fit_digest(fit: FaceFit) -> str:
    """Content hash of everything in a fit that changes the texture (coefficients, pose, camera)."""
    h = hashlib.blake2b(digest_size=16)
    for t in (fit.identity, fit.expression, fit.rotation, fit.translation):
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    h.update(repr(fit.camera).encode())
    return h.hexdigest()


def texture_resolution(fit: FaceFit, texture_min: int, texture_max: int) -> int:
    """Power-of-two texture side sized to the face (about 1.5x its pixel size), within the bounds."""
    x0, y0, x1, y1 = fit.bbox
    side = max(x1 - x0, y1 - y0) * 1.5
    res = 2 ** math.ceil(math.log2(max(side, 1.0)))
    return int(min(texture_max, max(texture_min, res)))


def prepare_face(image: np.ndarray, fit: FaceFit, renderer: FaceRenderer, *, resolution: int,
                 device: torch.device, light: bool = False) -> PreparedFace:
    """Unwrap one face's texture from its photo.

    Args:
        image: [H, W, 3] uint8 RGB photo.
        fit: a fit of a face of this photo.
        renderer: the face model's renderer (its model, skin triangles).
        resolution: texture side R (see `texture_resolution`).
        device: where the tensors live.
        light: also estimate the photo's light on the face (`PreparedFace.light`).
    """
    model = renderer.model
    fit = fit.to(device)
    photo = torch.from_numpy(np.array(image, copy=True)).to(device)
    photo_f = photo.float() / 255.0
    verts = model.reconstruct(fit)
    cam = fit.camera
    opening = _mouth_opening_mask(fit, image.shape[:2])
    opening = None if opening is None else torch.from_numpy(opening).to(device)
    skin_color = _landmark_skin_color(photo_f, fit)
    teeth_px = None
    if opening is not None:
        teeth_px = teeth_pixels(photo_f, opening, skin_color, mouth_width_px=_mouth_width_px(fit))
    # the skin never takes the mouth's pixels: the opening, and the photo's teeth just outside it
    not_skin = opening if teeth_px is None else opening | teeth_px
    un = unwrap_face(photo_f, verts, renderer, cam, "skin", resolution=resolution, min_cos=0.05,
                     photo_mask=None if not_skin is None else ~not_skin)
    # every texel the photo sees keeps the photo's colour; only unseen ones are filled
    tex = fill_texture(un.texture, un.visible.to(un.texture.dtype), mirror_uv=_mirror_map(renderer, resolution))
    vis = un.weight > 0.5
    skin = masked_rows(un.texture, vis).mean(0) if vis.any() else torch.tensor(TYPICAL_SKIN, device=device)
    teeth = None
    if teeth_px is not None:
        teeth = unwrap_photo_teeth(photo_f, verts, renderer, cam, teeth_px, resolution=resolution)
    return PreparedFace(fit=fit, texture=tex, vertices=verts, skin_color=skin, photo=photo,
                        photo_weight=_seen_weight(un.visible), teeth=teeth,
                        light=estimate_light(photo, verts, renderer, cam) if light else None)


@lru_cache(maxsize=16)
def _mirror_map(renderer: FaceRenderer, res: int) -> Tensor:
    """Texel -> mirror texel map of the rendered skin tile (depends on the model and resolution only)."""
    m = renderer.model
    return mirror_texel_map(m.uv, m.triangle_uv, m.triangles, m.symmetry, res, triangle_mask=renderer.skin)


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


def _landmark_skin_color(photo: Tensor, fit: FaceFit) -> Tensor:
    """[3] median photo colour at landmarks on plain skin (3 x 3 pixels each); a typical skin
    colour for an unknown landmark layout."""
    idx = _SKIN_POINTS.get(fit.landmark_kind)
    if idx is None:
        return torch.tensor(TYPICAL_SKIN, device=photo.device)
    H, W = photo.shape[:2]
    pts = fit.landmarks[list(idx)].to(photo.device).floor().long()
    d = torch.arange(-1, 2, device=photo.device)
    xs = (pts[:, 0, None, None] + d[None, None, :]).clamp(0, W - 1).expand(-1, 3, 3)
    ys = (pts[:, 1, None, None] + d[None, :, None]).clamp(0, H - 1).expand(-1, 3, 3)
    return photo[ys.reshape(-1), xs.reshape(-1)].median(0).values


def _mouth_width_px(fit: FaceFit) -> float:
    """Distance between the detected mouth corners, pixels (0 for an unknown landmark layout)."""
    idx = _MOUTH_CORNERS.get(fit.landmark_kind)
    if idx is None:
        return 0.0
    a, b = fit.landmarks[list(idx)]
    return float((a - b).norm())


def _seen_weight(visible: Tensor, *, erode: int = 2, blur: int = 5) -> Tensor:
    """[R, R] weight of texels the photo saw: the visibility eroded by `erode` texels (edges of what
    the photo saw carry background and fit error) and box-blurred over `blur` texels (no seam
    where the warped photo hands over to the render). On the CPU a compiled loop computes it (the
    same value bit for bit: sums of 0/1 are exact)."""
    if visible.device.type == "cpu":
        from affectsynth.render._kernels.unwrap import eroded_blur  # noqa: PLC0415  (numba import is slow)

        out = torch.empty(visible.shape, dtype=torch.float32)
        eroded_blur(visible.contiguous().numpy(), erode, blur, out.numpy())
        return out
    return _seen_weight_torch(visible, erode=erode, blur=blur)


def _seen_weight_torch(visible: Tensor, *, erode: int, blur: int) -> Tensor:
    """`_seen_weight` by pooling ops (any device)."""
    F = torch.nn.functional
    seen = visible.to(torch.float32)[None, None]
    seen = -F.max_pool2d(-seen, 2 * erode + 1, stride=1, padding=erode)
    return F.avg_pool2d(seen, blur, stride=1, padding=blur // 2, count_include_pad=False)[0, 0]
