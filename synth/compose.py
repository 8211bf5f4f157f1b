"""One target on one prepared face: deform, (re-pose, relight), render the face window, composite.

Steps, each a function: `turn_head` (optional extra head rotation about the face's centre),
`relight_shading` (optional per-vertex relighting), `render_and_composite` (render the face
window, warp the photo around it by the projected vertex motion, paste, shade by the expression
ratio image of `affectsynth.expression_shading`), `output_landmarks`.

Everything an output reports about where its face is (the labels' landmarks, the output fit's
landmarks and box) comes from the output face's own vertices, after any head rotation, never
from the photo's detection: a turned head moves its landmarks and its box.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from affectsynth.expression_shading import ShadingSettings, apply_shading, shading_ratio
from affectsynth.face_render import FaceRenderer
from affectsynth.fitting import FaceFit, rotation_from_angles_deg
from affectsynth.prepare import PreparedFace
from affectsynth.render.camera import project_points
from affectsynth.render.composite import CompositeSettings, composite
from affectsynth.render.warp import motion_field, motion_window, pixel_bounds
from affectsynth.wrinkles import wrinkle_maps

__all__ = ["ComposeSettings", "Composed", "compose_target", "landmarks_box", "output_fit", "output_landmarks",
           "relight_shading", "turn_head"]


@dataclass(frozen=True)
class ComposeSettings:
    """How a render is pasted into the photo (the `SynthSettings` fields that matter here).

    Attributes:
        margin_px: how far around the face the photo is warped to follow the face's motion.
        feather_px: softness of the render's edge in the composite.
        reuse_photo: show the warped photo where it saw the skin (see `SynthSettings.reuse_photo`).
        expression_shading: multiply the skin by the expression ratio image (see
            `SynthSettings.expression_shading`); needs `PreparedFace.light`.
        wrinkles: wrinkle map strength in that shading (see `SynthSettings.wrinkles`).
    """

    margin_px: float = 12.0
    feather_px: float = 3.0
    reuse_photo: bool = True
    expression_shading: bool = True
    wrinkles: float = 1.0


@dataclass(frozen=True)
class Composed:
    """The output of `compose_target`.

    Attributes:
        image: [H, W, 3] uint8 the photo with the new face.
        fit: the output face as a fit (same identity and camera; new expression and pose; its
            ``landmarks`` and ``bbox`` those of the output face, see `output_fit`).
        landmarks: [468, 2] float64 MediaPipe-layout points of the new face, pixels, rounded to 0.01.
    """

    image: np.ndarray
    fit: FaceFit
    landmarks: np.ndarray


def turn_head(vertices: Tensor, fit: FaceFit, centre: Tensor, head_rotation_deg: tuple[float, float]
              ) -> tuple[Tensor, Tensor, Tensor]:
    """Turn a face by extra (yaw, pitch) about ``centre``, in the angle convention of `pose_angles_deg`.

    Args:
        vertices: [V, 3] camera-space vertices of the new expression.
        fit: the photo's fit (its pose is the starting point).
        centre: [3] camera-space point the head turns about (the face's centroid).
        head_rotation_deg: (yaw, pitch) added to the fitted angles.

    Returns:
        (vertices [V, 3], rotation [3, 3], translation [3]) of the turned face.
    """
    rotation = fit.rotation.to(vertices.device)
    yaw, pitch, roll = fit.pose_deg
    target = torch.tensor(rotation_from_angles_deg(yaw + head_rotation_deg[0], pitch + head_rotation_deg[1], roll),
                          dtype=rotation.dtype, device=vertices.device)
    extra = target @ rotation.T
    turned = (vertices - centre) @ extra.T + centre
    translation = extra @ (fit.translation.to(vertices.device) - centre) + centre
    return turned, target, translation


def relight_shading(normals: Tensor, azimuth_deg: float, strength: float) -> Tensor:
    """[V, 1] shading ratio: a light turned by `azimuth_deg` from the camera axis vs the frontal light.

    Args:
        normals: [V, 3] unit vertex normals, camera space.
        azimuth_deg: the new light's direction, degrees from the camera axis about the vertical.
        strength: in [0, 1]; 0 gives all ones.
    """
    a = math.radians(azimuth_deg)
    new_light = torch.tensor([math.sin(a), -0.3, -math.cos(a)], device=normals.device)
    new_light = new_light / new_light.norm()
    old_light = torch.tensor([0.0, 0.0, -1.0], device=normals.device)
    ambient = 0.55

    def lambert(light: Tensor) -> Tensor:
        return ambient + (1 - ambient) * (normals @ light).clamp_min(0)

    ratio = lambert(new_light) / lambert(old_light)
    return (1 - strength + strength * ratio)[:, None]


def render_and_composite(prepared: PreparedFace, new: Tensor, renderer: FaceRenderer, settings: ComposeSettings, *,
                         shading: Tensor | None, reuse_photo: bool,
                         expressed: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """[H, W, 3] uint8 the photo with the face ``new`` pasted in.

    Renders the window covering the face at its old and new place, warps the photo around the
    face by the projected motion of the skin (faded out over ``margin_px``), pastes the render
    over it with a feathered edge; where ``reuse_photo``, the warped photo shows through the
    render wherever the photo saw the skin.

    Args:
        prepared: the face's photo-level work.
        new: [V, 3] camera-space vertices of the output face.
        renderer: the face renderer.
        settings: margins and feathering.
        shading: [V, 1] per-vertex multiplier of the skin colour (relighting), or None.
        reuse_photo: let the warped photo stand in for the render where it saw the skin.
        expressed: (vertices [V, 3] of the new expression in the photo's head pose, weights [S])
            for the expression shading; None (or no `prepared.light`, or the setting off) skips it.
    """
    cam = prepared.fit.camera
    old_pix = prepared.pixels
    new_pix = project_points(new, cam)
    drawn_v = renderer.drawn_vertices
    window = renderer.window_for(pixel_bounds(new_pix, old_pix, drawn_v), (cam.width, cam.height))
    rendered = renderer.render(new, prepared.texture, cam, window, skin_color=prepared.skin_color, shading=shading,
                               photo_weight=prepared.photo_weight if reuse_photo else None, teeth=prepared.teeth)
    opacity = None if rendered.photo_weight is None else 1.0 - rendered.photo_weight
    skin_v = renderer.motion_vertices
    size = (cam.height, cam.width)
    fwin = motion_window(old_pix, new_pix, size, margin_px=settings.margin_px, vertices=skin_v)
    flow = motion_field(old_pix, new_pix, renderer.motion_tri, size, margin_px=settings.margin_px,
                        dst_depth=new[:, 2], window=fwin, scale=0.5 if min(fwin[2:]) >= 96 else 1.0)
    comp = composite(prepared.photo, rendered.color, rendered.coverage, window=window[:2], flow=flow,
                     flow_window=fwin[:2], opacity=opacity, settings=CompositeSettings(feather_px=settings.feather_px))
    if expressed is None or prepared.light is None or not settings.expression_shading:
        return comp.image
    maps = wrinkle_maps(renderer) if settings.wrinkles > 0 else None
    x0, y0, w, h = rendered.window
    shade = shading_ratio(prepared.light, rendered, expressed[0], prepared.fit.expression, expressed[1], renderer, maps,
                          ShadingSettings(wrinkles=settings.wrinkles), image=comp.image[y0:y0 + h, x0:x0 + w])
    return apply_shading(comp.image, shade, rendered.window)


def output_landmarks(renderer: FaceRenderer, vertices: Tensor, fit: FaceFit) -> np.ndarray:
    """[468, 2] float64 MediaPipe-layout points of a face's vertices in its photo, pixels (0.01 px).

    ``vertices`` are camera-space (already posed: turned, for a turned head), so only
    ``fit.camera`` is used; pass the vertices the output image shows.
    """
    pts = renderer.model.landmark_points(vertices[None], "mediapipe468")[0]
    return project_points(pts, fit.camera).cpu().numpy().round(2)


def landmarks_box(points: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) box of [N, 2] pixel points: the detector's face box rule (its 468 landmarks' extent)."""
    pts = np.asarray(points, dtype=np.float64)[:468]
    return (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))


def output_fit(fit: FaceFit, weights: Tensor, rotation: Tensor, translation: Tensor, landmarks: np.ndarray) -> FaceFit:
    """The output face as a fit: the photo's identity and camera, the new expression and pose, and the
    output's own landmarks (``mediapipe468``, zero residuals: the model is the face) and box.

    Args:
        fit: the photo's fit.
        weights: [S] final blendshape weights.
        rotation: [3, 3] model -> camera rotation of the output face (turned, or the photo's).
        translation: [3] its translation, cm.
        landmarks: [468, 2] `output_landmarks` of the output face, pixels.
    """
    pts = torch.as_tensor(np.asarray(landmarks), dtype=fit.landmarks.dtype, device=fit.landmarks.device)
    return dataclasses.replace(fit, expression=weights.detach(), rotation=rotation, translation=translation,
                               landmarks=pts, landmark_kind="mediapipe468",
                               residuals=torch.zeros(pts.shape[0], dtype=fit.residuals.dtype, device=fit.residuals.device),
                               bbox=landmarks_box(landmarks))


def compose_target(prepared: PreparedFace, weights: Tensor, renderer: FaceRenderer, settings: ComposeSettings, *,
                   head_rotation_deg: tuple[float, float] = (0.0, 0.0),
                   light: tuple[float, float] | None = None) -> Composed:
    """Synthesise one set of final blendshape weights on a prepared face.

    Args:
        prepared: the face's photo-level work (`affectsynth.prepare.prepare_face`).
        weights: [S] float32 final blendshape weights (`affectsynth.weights.output_weights`).
        renderer: the face renderer.
        settings: compositing settings.
        head_rotation_deg: extra (yaw, pitch) head rotation, degrees; (0, 0) keeps the pose.
        light: (azimuth_deg, strength) relighting, or None.

    Returns:
        `Composed`: image, output fit, output landmarks.
    """
    fit, model = prepared.fit, renderer.model
    new = model.reconstruct(fit, expression=weights)
    expressed = (new, weights)
    rotation, translation = fit.rotation, fit.translation
    rotated = any(abs(a) > 1e-6 for a in head_rotation_deg)
    if rotated:
        start, end = model.region("face")
        new, rotation, translation = turn_head(new, fit, prepared.vertices[start:end].mean(0), head_rotation_deg)
    shading = None
    if light is not None and light[1] > 0:
        shading = relight_shading(renderer.vertex_normals(new), *light)
    reuse = settings.reuse_photo and shading is None and not rotated
    image = render_and_composite(prepared, new, renderer, settings, shading=shading, reuse_photo=reuse, expressed=expressed)
    turned = dataclasses.replace(fit, rotation=rotation, translation=translation)
    landmarks = output_landmarks(renderer, new, turned)  # of the vertices drawn: turned, when turned
    return Composed(image.cpu().numpy(), output_fit(fit, weights, rotation, translation, landmarks), landmarks)
