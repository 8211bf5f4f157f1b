"""The photo's own teeth: found in the mouth opening and unwrapped onto the model's teeth.

Where the source photo shows teeth (the inner-lip opening is open by a few pixels and holds
bright, unsaturated pixels), those pixels become a texture of the model's teeth (UV tile (3, 0)),
so the person's teeth move with the head (upper row) and the jaw (lower row) in every output.
Teeth the photo did not see keep the material colour, tinted to the photo's teeth.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from affectsynth._masked import masked_rows
from affectsynth.face_unwrap import unwrap_face
from affectsynth.fitting import Camera
from affectsynth.render.unwrap import fill_texture

if TYPE_CHECKING:  # face_render imports this module
    from affectsynth.face_render import FaceRenderer

__all__ = ["PhotoTeeth", "TeethSettings", "teeth_pixels", "unwrap_photo_teeth", "TEETH_UV_TILE"]

#: ICT-FaceKit lays the teeth out in UV tile (3, 0): u in [3, 4], v in [0, 1].
TEETH_UV_TILE = (3, 0)

_LUMA = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class TeethSettings:
    """When a photo's mouth opening counts as showing teeth, and which of its pixels are teeth.

    Attributes:
        min_opening: the opening's height (inner-lip mask, tallest column) must be at least this
            fraction of the mouth's width, and at least `min_opening_px`.
        min_opening_px: least opening height, pixels.
        min_mouth_px: least mouth width (corner to corner), pixels: on smaller faces the teeth are
            a few pixels, as likely a lip's highlight, and material teeth serve as well.
        min_luma: a teeth pixel's luma is at least this fraction of the skin's mean luma.
        max_saturation: a teeth pixel's saturation (max - min) / max is at most this fraction of
            the skin's (and at most `max_saturation_abs`): teeth are paler than skin, gums and lips.
        max_saturation_abs: absolute cap of a teeth pixel's saturation.
        min_fraction: at least this fraction of the opening's pixels must be teeth pixels.
        grow: teeth pixels are looked for up to this fraction of the mouth's width (at least
            1 px) outside the opening too: the detected contour often runs a pixel or two inside
            the teeth, and teeth pixels left on the lips would come back in outputs with closed lips.
    """

    min_opening: float = 0.06
    min_opening_px: int = 3
    min_mouth_px: float = 20.0
    min_luma: float = 0.85
    max_saturation: float = 0.9
    max_saturation_abs: float = 0.35
    min_fraction: float = 0.15
    grow: float = 0.04

    def __post_init__(self) -> None:
        if not 0.0 <= self.min_fraction <= 1.0:
            raise ValueError(f"TeethSettings: min_fraction must be in [0, 1], got {self.min_fraction}")
        if self.min_opening_px < 1 or not 0.0 <= self.grow < 0.5:
            raise ValueError(f"TeethSettings: need min_opening_px >= 1 and grow in [0, 0.5), got "
                             f"{self.min_opening_px}, {self.grow}")


@dataclass(frozen=True)
class PhotoTeeth:
    """The photo's teeth as a texture of the model's teeth.

    Attributes:
        texture: [R, R, 3] float32 in [0, 1], UV tile `TEETH_UV_TILE`; unseen texels filled from the
            seen ones (so bilinear sampling at the edge of what was seen mixes no black in).
        weight: [R, R] float32 in [0, 1], how far each texel comes from the photo (0 = material).
        color: [3] float32 mean colour of the photo's teeth pixels (tints the material teeth).
    """

    texture: Tensor
    weight: Tensor
    color: Tensor

    @cached_property
    def rgbw(self) -> Tensor:
        """[R, R, 4] float32: `texture` and `weight` in one texture (one sampling per render)."""
        return torch.cat([self.texture, self.weight[..., None]], -1).float().contiguous()

    def to(self, device: torch.device | str) -> "PhotoTeeth":
        """The same teeth on another device."""
        return PhotoTeeth(self.texture.to(device), self.weight.to(device), self.color.to(device))


def teeth_pixels(photo: Tensor, opening: Tensor, skin_color: Tensor, *, mouth_width_px: float,
                 settings: TeethSettings | None = None) -> Tensor | None:
    """Photo pixels that show teeth, or None when the opening shows none.

    Teeth pixels are bright (luma near the skin's or above) and pale (less saturated than the
    skin); they are looked for inside the opening and, connected to those, in a thin band around
    it (`TeethSettings.grow`).

    Args:
        photo: [H, W, 3] float32 photo in [0, 1].
        opening: [H, W] bool, pixels inside the detected inner-lip contour.
        skin_color: [3] mean RGB of the visible face, in [0, 1].
        mouth_width_px: distance between the mouth corners, pixels.
        settings: `TeethSettings`; None = defaults.

    Returns:
        [H, W] bool teeth pixels, or None (mouth too small, opening too thin, or too few
        teeth-like pixels in it).

    Raises:
        ValueError: `opening` is not an [H, W] bool mask of the photo.
    """
    s = settings or TeethSettings()
    if opening.shape != photo.shape[:2] or opening.dtype != torch.bool:
        raise ValueError(f"teeth_pixels: opening must be {list(photo.shape[:2])} bool, "
                         f"got {list(opening.shape)} {opening.dtype}")
    grow = max(1, int(round(s.grow * mouth_width_px)))
    # all the work lies within `grow` pixels of the opening: do it on that window of the photo
    window = _grown_box(opening, grow)
    if window is None or mouth_width_px < s.min_mouth_px:
        return None
    opening_w, photo_w = opening[window], photo[window]
    height = int(opening_w.sum(0).max())
    if height < max(s.min_opening_px, s.min_opening * mouth_width_px):
        return None
    near = torch.nn.functional.max_pool2d(opening_w.float()[None, None], 2 * grow + 1, stride=1, padding=grow)[0, 0] > 0.5
    luma_w = torch.tensor(_LUMA, dtype=photo.dtype, device=photo.device)
    skin = skin_color.to(photo)
    skin_sat = float((skin.max() - skin.min()) / skin.max().clamp_min(1e-6))
    hi, lo = photo_w.max(-1).values, photo_w.min(-1).values
    sat = (hi - lo) / hi.clamp_min(1e-6)
    pale = (photo_w @ luma_w >= s.min_luma * float(skin @ luma_w))
    pale &= sat <= min(s.max_saturation_abs, s.max_saturation * skin_sat + 0.05)
    teeth = pale & opening_w
    if int(teeth.sum()) < max(4, s.min_fraction * float(opening_w.sum())):
        return None
    # grow only through pale pixels connected to the teeth inside (not a lip's highlight nearby)
    band = pale & near
    for _ in range(grow):
        teeth = band & (torch.nn.functional.max_pool2d(teeth.float()[None, None], 3, stride=1, padding=1)[0, 0] > 0.5)
    out = torch.zeros_like(opening)
    out[window] = teeth
    return out


def _grown_box(mask: Tensor, grow: int) -> tuple[slice, slice] | None:
    """(rows, columns) slices of the box of a [H, W] bool mask's True pixels grown by `grow` pixels
    (clipped to the mask), or None for an empty mask."""
    rows = torch.nonzero(mask.any(1))[:, 0]
    if rows.numel() == 0:
        return None
    cols = torch.nonzero(mask.any(0))[:, 0]
    H, W = mask.shape
    return (slice(max(0, int(rows[0]) - grow), min(H, int(rows[-1]) + grow + 1)),
            slice(max(0, int(cols[0]) - grow), min(W, int(cols[-1]) + grow + 1)))


def unwrap_photo_teeth(photo: Tensor, vertices: Tensor, renderer: FaceRenderer, camera: Camera, pixels: Tensor, *,
                       resolution: int) -> PhotoTeeth | None:
    """Unwrap the photo's teeth pixels onto the model's teeth.

    Only teeth occlude teeth: `pixels` already says where the photo sees teeth, and a fitted
    mouth opened less than the photo's (lips, the socket behind them) must not hide them.

    Args:
        photo: [H, W, 3] float32 photo in [0, 1].
        vertices: [V, 3] camera-space vertices of the fitted face (the photo's expression).
        renderer: the face model's renderer (its model; `FaceRenderer.teeth`, UVs in `TEETH_UV_TILE`).
        camera: the photo's camera.
        pixels: [H, W] bool teeth pixels (`teeth_pixels`).
        resolution: texture side R.

    Returns:
        `PhotoTeeth`, or None when no teeth texel sees a teeth pixel.
    """
    un = unwrap_face(photo, vertices, renderer, camera, "teeth", resolution=resolution, photo_mask=pixels,
                     min_cos=0.05)
    if not bool(un.visible.any()):
        return None
    tex = fill_texture(un.texture, un.visible.to(un.texture.dtype))
    weight = _soft_edge(un.weight * un.visible)
    color = masked_rows(photo, pixels).mean(0)
    return PhotoTeeth(texture=tex, weight=weight.clamp(0, 1), color=color)


def _soft_edge(weight: Tensor) -> Tensor:
    """[R, R] `weight` box-averaged over 3 x 3 texels: bilinear colour at the rim of what was seen hands
    over to the material smoothly. On the CPU a compiled loop (the pool's sums in its order: the same
    values) that skips the all-zero boxes, most of the teeth tile."""
    if weight.device.type == "cpu" and weight.dtype == torch.float32 and not weight.requires_grad:
        from affectsynth.render._kernels.unwrap import box_mean  # noqa: PLC0415  (numba import is slow)

        out = torch.empty_like(weight, memory_format=torch.contiguous_format)
        box_mean(weight.contiguous().numpy(), 1, out.numpy())
        return out
    return _soft_edge_torch(weight)


def _soft_edge_torch(weight: Tensor) -> Tensor:
    """`_soft_edge` by ``avg_pool2d`` (any device, autograd)."""
    return torch.nn.functional.avg_pool2d(weight[None, None], 3, stride=1, padding=1, count_include_pad=False)[0, 0]
