"""Batched landmark fitting of the 3D morphable model: pose, identity and bounded expression weights.

Method: an affine-camera initialisation gives rotation and scale; then Levenberg-Marquardt on the
perspective reprojection of the model's landmark points, over rotation (left-multiplied axis-angle
update), translation, identity coefficients (Tikhonov prior, coefficients ~N(0, 1)) and expression
weights (L2 + L1 prior pulling to 0, kept in [0, 1] by projection with an active set). Silhouette
landmarks (MediaPipe's face oval, the iBUG jaw) are re-assigned every iteration to the vertex of their
candidate band that lies on the current silhouette (`silhouette_pick`).

Residuals are measured in percent of the inter-ocular distance so the priors do not depend on the
photo's resolution. All faces of a batch are solved together (one batched normal-equation solve per
iteration); the whole fit is deterministic.

Focal length: unless given, a fixed 35-degree diagonal field of view with the principal point at the
image centre (`Camera.from_fov`); single photos do not constrain focal length well, and a fixed
moderate field of view is robust.
"""

from __future__ import annotations

import warnings

import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from affectsynth.fitting.face_fit import Camera, FaceFit
from affectsynth.fitting.face_model import FaceModel
from affectsynth.fitting.landmarks import EYE_CORNERS, Landmarks
from affectsynth.render.camera import project_points

__all__ = ["FitSettings", "fit_landmarks", "reconstruct", "project", "silhouette_pick", "UNOBSERVABLE_EXPRESSIONS"]

#: Blendshapes landmarks cannot observe: gaze shapes (they move only the eyelids, which the lid landmarks
#: already explain through eyeBlink/eyeWide/eyeSquint) and cheek puff (depth only). Fixed at 0.
UNOBSERVABLE_EXPRESSIONS = (
    "eyeLookDown_L", "eyeLookDown_R", "eyeLookIn_L", "eyeLookIn_R",
    "eyeLookOut_L", "eyeLookOut_R", "eyeLookUp_L", "eyeLookUp_R",
    "cheekPuff_L", "cheekPuff_R",
)


@dataclass(frozen=True)
class FitSettings:
    """Defaults of the fitter (one source for the function and the CLI).

    Attributes:
        iterations: Levenberg-Marquardt iterations on all parameters.
        pose_iterations: pose-only iterations before them.
        identity_prior: weight of ||identity||^2 (coefficients are ~N(0, 1)).
        expression_prior: weight of ||weights||^2.
        expression_l1: weight of sum(weights) (sparsity; weights are >= 0).
        contour_weight: weight of silhouette landmarks relative to inner ones.
        damping: initial Levenberg-Marquardt damping.
        diagonal_fov_deg: field of view of the default camera.
        fixed_expressions: blendshapes held at 0.
        huber_pct: residuals above this (percent of inter-ocular distance) are down-weighted (Huber).
        identity_modes: leading identity modes estimated (landmarks do not constrain more); the rest stay 0.
    """

    iterations: int = 7
    pose_iterations: int = 2
    identity_prior: float = 3.0
    expression_prior: float = 3.0
    expression_l1: float = 2.0
    contour_weight: float = 0.7
    damping: float = 1e-3
    diagonal_fov_deg: float = 35.0
    fixed_expressions: tuple[str, ...] = UNOBSERVABLE_EXPRESSIONS
    huber_pct: float = 6.0
    identity_modes: int = 40

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.pose_iterations < 0:
            raise ValueError(f"FitSettings: iterations must be >= 1, got {self.iterations}")
        for name in ("identity_prior", "expression_prior", "expression_l1", "contour_weight", "damping"):
            if getattr(self, name) < 0:
                raise ValueError(f"FitSettings: {name} must be >= 0, got {getattr(self, name)}")


#: `_skew`'s entries, row-major, as indices into (0, v0, v1, v2, -v0, -v1, -v2)
_SKEW_INDEX = (0, 6, 2, 3, 0, 4, 5, 1, 0)


@lru_cache(maxsize=8)
def _skew_index(device: torch.device) -> Tensor:
    """`_SKEW_INDEX` as a tensor on ``device`` (built once: a tensor from a list costs more than the gather)."""
    with torch.inference_mode(False):  # an ordinary tensor, though first asked for inside the fit's inference mode
        return torch.tensor(_SKEW_INDEX, device=device)


@lru_cache(maxsize=8)
def _eye3(dtype: torch.dtype, device: torch.device) -> Tensor:
    """The 3 x 3 identity (read only: `_rodrigues` adds to it out of place)."""
    with torch.inference_mode(False):
        return torch.eye(3, dtype=dtype, device=device)


def _skew(v: Tensor) -> Tensor:
    """[..., 3] -> [..., 3, 3] cross-product matrices, by one gather from (0, v, -v) (five ops, not fifteen:
    this runs in every iteration of the fit)."""
    signed = torch.cat([torch.zeros_like(v[..., :1]), v, -v], -1)
    return signed.index_select(-1, _skew_index(v.device)).unflatten(-1, (3, 3))


def _rodrigues(w: Tensor) -> Tensor:
    """Axis-angle [B, 3] -> rotation [B, 3, 3]."""
    theta = w.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = _skew(w / theta)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    return _eye3(w.dtype, w.device) + s * k + (1 - c) * (k @ k)


def project(points: Tensor, intrinsics: Tensor) -> Tensor:
    """Deprecated: use `affectsynth.render.camera.project_points` (``project_points(points, intrinsics[:, None])``)."""
    warnings.warn("affectsynth.fitting.project is deprecated: use affectsynth.render.camera.project_points",
                  DeprecationWarning, stacklevel=2)
    return project_points(points, intrinsics[:, None, :])


def silhouette_pick(normals: Tensor, points: Tensor, valid: Tensor) -> Tensor:
    """Index of the silhouette vertex in each contour band.

    Bands are ordered from inside the face outwards. Walking outwards, the silhouette is the last vertex
    that still faces the camera before the first one that faces away (the chin's underside, the cheek
    turning towards the ear). Vertices beyond it (the neck below the chin) are hidden behind the fold.

    Args:
        normals: [B, C, M, 3] camera-space vertex normals of the band candidates.
        points: [B, C, M, 3] camera-space positions (the camera sits at the origin).
        valid: [B or 1, C, M] bool, False for padding (padding comes last in a band).

    Returns:
        [B, C] int64 index into M.
    """
    return _silhouette_picker(valid)(normals, points)


def _silhouette_picker(valid: Tensor):
    """`silhouette_pick` for one ``valid`` mask, its constant operands (the padding, the candidates'
    indices) built once: the fit picks on the same bands in every iteration."""
    invalid = ~valid
    m = valid.shape[-1]
    idx = torch.arange(m, device=valid.device)
    beyond = torch.full_like(idx, m)

    def pick(normals: Tensor, points: Tensor) -> Tensor:
        stop = ((normals * points).sum(-1) >= 0) | invalid  # facing away, or padding
        first_stop = torch.where(stop, idx, beyond).amin(-1)  # [B, C]
        return (first_stop - 1).clamp_min(0)
    return pick


def _affine_init(model_pts: Tensor, image_pts: Tensor, weights: Tensor, intr: Tensor) -> tuple[Tensor, Tensor]:
    """Scaled-orthographic initialisation: (rotation [B, 3, 3], translation [B, 3])."""
    b, n, _ = model_pts.shape
    homo = torch.cat([model_pts, torch.ones_like(model_pts[..., :1])], -1)  # [B, N, 4]
    w = weights[..., None]
    a = (homo * w).transpose(1, 2) @ homo + 1e-6 * torch.eye(4, dtype=homo.dtype)
    rhs = (homo * w).transpose(1, 2) @ image_pts  # [B, 4, 2]
    sol = torch.linalg.solve(a, rhs)  # [B, 4, 2]
    r1, r2 = sol[:, :3, 0], sol[:, :3, 1]
    scale = 0.5 * (r1.norm(dim=-1) + r2.norm(dim=-1))
    m = torch.stack([r1, r2, torch.linalg.cross(r1, r2) / scale[:, None]], 1)
    u, _, vh = torch.linalg.svd(m)
    d = torch.sign(torch.linalg.det(u @ vh))
    rot = u @ torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1)) @ vh
    z = intr[:, 0] / scale
    tx = (sol[:, 3, 0] - intr[:, 2]) * z / intr[:, 0]
    ty = (sol[:, 3, 1] - intr[:, 3]) * z / intr[:, 1]
    return rot, torch.stack([tx, ty, z], -1)


@dataclass
class _LandmarkProblem:
    """Linear landmark model of one layout: fixed (inner) points plus contour candidate bands.

    Rows are reordered inner first, contour last; `order` maps them back to the layout's order.
    Shape coefficients are the K identity modes followed by the free blendshapes (`free_expr`; the
    fixed ones stay 0, so they are left out of every basis), one vector per face, so that each
    evaluation of the model is one matmul.
    """

    order: Tensor  # [N] layout index of each row
    num_inner: int
    num_identity: int  # K
    free_expr: Tensor  # [S] bool, blendshapes the fit estimates
    mean: Tensor  # [Ni, 3]
    shape_rows: Tensor  # [Ni, K + Sf, 3] per-row bases
    shape_planes: Tensor  # [3, Ni, K + Sf] the same, one plane per coordinate, for the Jacobian
    shape_flat: Tensor  # [K + Sf, Ni*3] the same flattened, for the points
    cand: Tensor  # [C, M] candidate vertex ids (-1 padded)
    cand_rest: Tensor  # [2*C*M, 3] candidate positions, then their neutral-mesh (area-weighted,
    #                    unnormalised) vertex normals
    cand_flat: Tensor  # [K + Sf, 2*C*M*3] first-order change of both per coefficient
    cand_shape: Tensor  # [C*M, K + Sf, 3] the candidates' position bases, per row
    cand_planes: Tensor  # [3, C*M, K + Sf] the same, one plane per coordinate
    weights: Tensor  # [N] per-row weight


def _problem(model: FaceModel, kind: str, settings: FitSettings) -> _LandmarkProblem:
    """The model-level tensors of a landmark fit (built once per model, layout and settings)."""
    return _build_problem(model, kind, settings.contour_weight, settings.identity_modes,
                          tuple(settings.fixed_expressions))


@lru_cache(maxsize=16)
def _build_problem(model: FaceModel, kind: str, contour_weight: float, identity_modes: int,
                   fixed_expressions: tuple[str, ...]) -> _LandmarkProblem:
    k = min(identity_modes, model.num_identity)
    mean, ident, expr = model.landmark_basis(kind)
    free = torch.tensor([n not in fixed_expressions for n in model.expression_names], dtype=torch.bool,
                        device=model.device)
    emb = model.embedding(kind)
    used = torch.zeros(emb.num_landmarks, dtype=torch.bool, device=model.device)
    used[emb.fit_subset if emb.fit_subset is not None else slice(None)] = True
    contour_idx = torch.nonzero(emb.is_contour & used).flatten()
    inner_idx = torch.nonzero(~emb.is_contour & used).flatten()
    cand = emb.contour_bands[contour_idx]
    safe = cand.clamp_min(0).flatten()
    weights = torch.ones(inner_idx.numel() + contour_idx.numel(), dtype=torch.float32, device=model.device)
    weights[inner_idx.numel():] = contour_weight
    inner_basis = torch.cat([ident[:k, inner_idx], expr[free][:, inner_idx]])  # [K + Sf, Ni, 3]
    cand_basis = torch.cat([model.identity_basis[:k, safe], model.expressions.deltas.index_select(1, safe)[free]])
    normal, normal_ident, normal_expr = _normal_basis(model, safe, k)
    return _LandmarkProblem(
        order=torch.cat([inner_idx, contour_idx]),
        num_inner=int(inner_idx.numel()),
        num_identity=k,
        free_expr=free,
        mean=mean[inner_idx],
        shape_rows=inner_basis.permute(1, 0, 2).contiguous(),
        shape_planes=inner_basis.permute(2, 1, 0).contiguous(),
        shape_flat=inner_basis.reshape(inner_basis.shape[0], -1).contiguous(),
        cand=cand,
        cand_rest=torch.cat([model.neutral[safe], normal]),
        cand_flat=torch.cat([cand_basis.reshape(cand_basis.shape[0], -1),
                             torch.cat([normal_ident, normal_expr[free]])], 1).contiguous(),
        cand_shape=cand_basis.permute(1, 0, 2).contiguous(),
        cand_planes=cand_basis.permute(2, 1, 0).contiguous(),
        weights=weights,
    )


def _normal_basis(model: FaceModel, vertices: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Area-weighted vertex normals of `vertices` on the neutral mesh and their exact first-order change
    per identity mode and per blendshape (normals follow the face's shape, so the silhouette does too).

    Returns:
        (n0 [V', 3], d_ident [K, V'*3], d_expr [S, V'*3]); unnormalised (only directions matter).
    """
    tri = model.triangles.long()
    skin = tri[(model.triangle_material == model.material_names.index("M_Face"))]
    # (skin triangle, requested vertex) incidence pairs
    uniq, inverse = torch.unique(vertices, return_inverse=True)
    t_idx, u_idx = _incidence(skin, uniq, model.num_vertices)
    corners = skin[t_idx]  # [P, 3] the pairs' triangle corners
    v0, v1, v2 = model.neutral[corners].unbind(1)
    e1, e2 = v1 - v0, v2 - v0
    # the bases at the corners by one gather over the vertices of each basis (not a [K+S, V, 3] copy first)
    d0, d1, d2 = torch.cat([
        model.identity_basis[:k].index_select(1, corners.reshape(-1)),
        model.expressions.deltas.index_select(1, corners.reshape(-1)),
    ]).view(-1, corners.shape[0], 3, 3).unbind(2)
    n_face = torch.linalg.cross(e1, e2)
    dn_face = torch.linalg.cross(d1 - d0, e2.expand_as(d1)) + torch.linalg.cross(e1.expand_as(d1), d2 - d0)
    n0 = torch.zeros(len(uniq), 3, device=model.device).index_add_(0, u_idx, n_face)
    dn = torch.zeros(dn_face.shape[0], len(uniq), 3, device=model.device).index_add_(1, u_idx, dn_face)
    n0, dn = n0[inverse], dn[:, inverse]
    return n0, dn[:k].reshape(k, -1).contiguous(), dn[k:].reshape(dn.shape[0] - k, -1).contiguous()


def _incidence(triangles: Tensor, vertices: Tensor, num_vertices: int) -> tuple[Tensor, Tensor]:
    """(triangle, vertex) pairs where `triangles` [T, 3] has one of the sorted unique `vertices` [U]
    as a corner: indices into both, ordered by triangle then vertex (the order of
    ``nonzero((triangles[:, :, None] == vertices).any(1))``, so sums over the pairs keep their
    order), by a lookup table instead of that [T, 3, U] comparison (0.2 s at the first fit)."""
    position = torch.full((num_vertices,), -1, dtype=torch.long, device=triangles.device)
    position[vertices] = torch.arange(len(vertices), device=triangles.device)
    corner = position[triangles]  # [T, 3]: the vertex's index in `vertices`, or -1
    t_idx, c_idx = torch.nonzero(corner >= 0, as_tuple=True)
    u_idx = corner[t_idx, c_idx]
    order = torch.argsort(t_idx * len(vertices) + u_idx)
    return t_idx[order], u_idx[order]


def _landmark_kind_points(lm: Landmarks) -> np.ndarray:
    return lm.points[:468] if lm.kind == "mediapipe468" else lm.points


def fit_landmarks(
    model: FaceModel,
    landmarks: Sequence[Landmarks],
    cameras: Sequence[Camera] | None = None,
    *,
    image_sizes: Sequence[tuple[int, int]] | None = None,
    settings: FitSettings | None = None,
    detect_ms: Sequence[float] | None = None,
) -> list[FaceFit]:
    """Fit the model to the landmarks of several faces at once.

    Args:
        model: the face model (its device is used).
        landmarks: one `Landmarks` per face, all of the same kind.
        cameras: one camera per face; default `Camera.from_fov` of `image_sizes`.
        image_sizes: (width, height) per face, needed when `cameras` is None.
        settings: fitter settings (`FitSettings()` by default).
        detect_ms: detection time per face, copied into the fits.

    Returns:
        One `FaceFit` per face, in input order. Identity coefficients beyond
        `settings.identity_modes` are zero.

    Raises:
        ValueError: mixed landmark kinds, or missing cameras and image sizes.
    """
    settings = settings or FitSettings()
    if len(landmarks) == 0:
        return []
    kinds = {lm.kind for lm in landmarks}
    if len(kinds) != 1:
        raise ValueError(f"fit_landmarks: all faces of a batch need one landmark kind, got {sorted(kinds)}")
    kind = kinds.pop()
    if cameras is None:
        if image_sizes is None or len(image_sizes) != len(landmarks):
            raise ValueError("fit_landmarks: give cameras or image_sizes, one per face")
        cameras = [Camera.from_fov(w, h, diagonal_fov_deg=settings.diagonal_fov_deg) for w, h in image_sizes]
    if len(cameras) != len(landmarks):
        raise ValueError(f"fit_landmarks: {len(cameras)} cameras for {len(landmarks)} faces")

    start = time.perf_counter()
    dev = model.device
    obs = torch.as_tensor(np.stack([_landmark_kind_points(lm) for lm in landmarks]), dtype=torch.float32, device=dev)
    intr = torch.tensor([[c.fx, c.fy, c.cx, c.cy] for c in cameras], dtype=torch.float32, device=dev)
    _problem(model, kind, settings)  # cached model-level tensors are built outside inference mode
    model.landmark_basis(kind)
    with torch.inference_mode():  # a closed-form solver: no autograd bookkeeping on ~1500 small ops
        state = _solve(model, kind, obs, intr, settings)
    state = {k: v.clone() for k, v in state.items()}  # ordinary tensors again, usable with autograd
    elapsed_ms = (time.perf_counter() - start) * 1000.0 / len(landmarks)

    ident = torch.zeros(len(landmarks), model.num_identity, dtype=torch.float32, device=dev)
    ident[:, : state["identity"].shape[1]] = state["identity"]
    fits = []
    names = model.expression_names
    for i, lm in enumerate(landmarks):
        fits.append(
            FaceFit(
                identity=ident[i].clone(),
                expression=state["expression"][i].clone(),
                rotation=state["rotation"][i].clone(),
                translation=state["translation"][i].clone(),
                camera=cameras[i],
                landmarks=obs[i].clone(),
                landmark_kind=kind,
                residuals=state["residuals"][i].clone(),
                bbox=tuple(float(x) for x in lm.bbox),
                expression_names=names,
                fit_ms=elapsed_ms,
                detect_ms=float(detect_ms[i]) if detect_ms is not None else 0.0,
                faces_found=lm.faces_found,
            )
        )
    return fits


def _solve(model: FaceModel, kind: str, obs_layout: Tensor, intr: Tensor, settings: FitSettings) -> dict[str, Tensor]:
    prob = _problem(model, kind, settings)
    obs = obs_layout[:, prob.order]
    b, n, _ = obs.shape
    ni, k = prob.num_inner, prob.num_identity
    c, m = prob.cand.shape
    dev, dt = obs.device, obs.dtype

    # residual normalisation: percent of the inter-ocular distance
    eyes = EYE_CORNERS[kind]
    iod = (obs_layout[:, eyes[0]] - obs_layout[:, eyes[1]]).norm(dim=-1).clamp_min(1.0)  # [B]
    norm = (100.0 / iod)[:, None, None]  # px -> percent IOD

    rot, trans = _affine_init(prob.mean[None].expand(b, -1, -1), obs[:, :ni], prob.weights[:ni][None].expand(b, -1), intr)
    p_full = 6 + prob.shape_flat.shape[0]
    coef = torch.zeros(b, p_full - 6, dtype=dt, device=dev)  # identity modes, then the free blendshapes
    pick_silhouette = _silhouette_picker((prob.cand >= 0)[None])
    cand_offset = (torch.arange(c, device=dev) * m)[None]
    prior = torch.cat([
        torch.zeros(6, dtype=dt, device=dev),
        torch.full((k,), settings.identity_prior, dtype=dt, device=dev),
        torch.full((p_full - 6 - k,), settings.expression_prior, dtype=dt, device=dev),
    ])
    prior_scale = prior[6:]
    pose_reg = prior[:6]  # the pose-only iterations: no prior
    row_weights = prob.weights[None]
    lam = torch.full((b,), settings.damping, dtype=dt, device=dev)

    def contour_picks(coef: Tensor, rot: Tensor, trans: Tensor) -> Tensor | None:
        """[B, C] flat candidate index of each face's contour rows, picked on the current silhouette."""
        if c == 0:
            return None
        cand = (prob.cand_rest + _by_row(coef, prob.cand_flat).view(b, -1, 3)) @ rot.transpose(1, 2)  # positions, normals
        cam = cand[:, : c * m] + trans[:, None]
        pick = pick_silhouette(cand[:, c * m:].reshape(b, c, m, 3), cam.reshape(b, c, m, 3))
        return pick + cand_offset

    def contour_rows(picks: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """The picked candidates' rest positions [B, C, 3], bases [B, C, P', 3] and basis planes
        [3, B, C, P'] (row copies by index_select: the values of advanced indexing, without its cost)."""
        flat = picks.reshape(-1)
        return (prob.cand_rest.index_select(0, flat).view(b, c, 3),
                prob.cand_shape.index_select(0, flat).view(b, c, *prob.cand_shape.shape[1:]),
                prob.cand_planes.index_select(1, flat).view(3, b, c, -1))

    def current(coef: Tensor, rot: Tensor, trans: Tensor, kept: tuple | None) -> tuple:
        """(contour picks, contour rows, camera points [B, N, 3], residuals [B, N, 2]) at a state.

        `kept` is what the previous iteration left for this very state (its picks, rows, points and
        residuals): when the silhouette picks the same candidates again, the rows and residuals
        would be recomputed from the same tensors by the same ops, so they are reused as they are.
        """
        picks = contour_picks(coef, rot, trans)
        if kept is not None and _same_picks(picks, kept[0]):
            return kept
        rows = None if picks is None else contour_rows(picks)
        return (picks, rows, *residuals(points(coef, rows), rot, trans))

    def points(coef: Tensor, rows: tuple[Tensor, Tensor, Tensor] | None) -> Tensor:
        inner = prob.mean + _by_row(coef, prob.shape_flat).view(b, ni, 3)
        if rows is None:
            return inner
        cont = rows[0] + (coef[:, None, None] @ rows[1])[:, :, 0]
        return torch.cat([inner, cont], 1)

    def residuals(pts: Tensor, rot: Tensor, trans: Tensor) -> tuple[Tensor, Tensor]:
        cam = pts @ rot.transpose(1, 2) + trans[:, None]
        return cam, (project_points(cam, intr[:, None]) - obs) * norm

    def energy(res: Tensor, coef: Tensor, wl: Tensor) -> Tensor:
        data = (wl * res.pow(2).sum(-1)).sum(-1)
        e = coef[:, k:]
        return data + (prior_scale * coef.pow(2)).sum(-1) + settings.expression_l1 * e.sum(-1)

    total = settings.pose_iterations + settings.iterations
    kept = None  # `current`'s values at the state the last iteration kept
    for it in range(total):
        pose_only = it < settings.pose_iterations
        picks, rows, cam, res = current(coef, rot, trans, kept)
        dist = res.norm(dim=-1)
        w_rob = torch.where(dist > settings.huber_pct, settings.huber_pct / dist.clamp_min(1e-9), 1.0)
        wl = w_rob * row_weights  # [B, N]
        sw = wl.sqrt()  # weighted least squares: rows scaled by sqrt(weight), folded into d(pixels)/d(camera point)
        jac = _weighted_jacobian(cam, trans, rot, intr, norm, sw, None if pose_only else (prob.shape_planes, rows))
        jac = jac.reshape(b, n * 2, -1)  # [B, 2N, P]
        hess = jac.transpose(1, 2) @ jac
        grad = _by_face((res * sw[..., None]).reshape(b, 1, n * 2), jac)[:, 0]
        if pose_only:
            reg = pose_reg
        else:
            reg = prior
            g_shape = grad[:, 6:]  # the gradient's shape part, in place
            g_shape += prior_scale * coef
            g_shape[:, k:] += 0.5 * settings.expression_l1
            # active set: weights at a bound and pushed outward do not move this step
            e_cur, g_ex = coef[:, k:], g_shape[:, k:]
            blocked = ((e_cur <= 0) & (g_ex > 0)) | ((e_cur >= 1) & (g_ex < 0))
            hess.diagonal(dim1=-2, dim2=-1)[:, 6 + k:] += blocked.to(dt) * 1e8
            g_ex.masked_fill_(blocked, 0.0)
        diag = torch.diagonal(hess, dim1=-2, dim2=-1)
        lhs = hess + torch.diag_embed(reg[None] + lam[:, None] * (diag + 1e-3))
        delta = -_by_face(lhs, grad[..., None], torch.linalg.solve)[..., 0]

        new_rot = _rodrigues(delta[:, :3]) @ rot
        new_trans = trans + delta[:, 3:6]
        new_coef = coef
        if not pose_only:
            new_coef = coef + delta[:, 6:]
            new_coef[:, k:] = new_coef[:, k:].clamp(0.0, 1.0)
        e_old = energy(res, coef, wl)
        cam_new, res_new = residuals(points(new_coef, rows), new_rot, new_trans)
        e_new = energy(res_new, new_coef, wl)
        accept = e_new <= e_old
        lam = torch.where(accept, lam * 0.3, lam * 10.0).clamp(1e-7, 1e4)
        rot, trans, coef, cam, res = _keep_accepted(accept, (new_rot, rot), (new_trans, trans), (new_coef, coef),
                                                    (cam_new, cam), (res_new, res))
        kept = (picks, rows, cam, res)

    ident = coef[:, :k]
    expr = torch.zeros(b, prob.free_expr.shape[0], dtype=dt, device=dev)
    expr[:, prob.free_expr] = coef[:, k:]
    # Residuals of every landmark of the layout (also those the solve skipped), in pixels.
    _, _, cam, _ = current(coef, rot, trans, kept)
    full_mean, full_id, full_ex = model.landmark_basis(kind)
    full = (full_mean + _by_row(ident, full_id[:k].reshape(k, -1)).view(b, *full_mean.shape)
            + _by_row(expr, full_ex.reshape(full_ex.shape[0], -1)).view(b, *full_mean.shape))
    full_cam = full @ rot.transpose(1, 2) + trans[:, None]
    full_cam[:, prob.order[ni:]] = cam[:, ni:]
    res_layout = (project_points(full_cam, intr[:, None]) - obs_layout).norm(dim=-1)
    return {"identity": ident, "expression": expr, "rotation": rot, "translation": trans, "residuals": res_layout}


def _by_row(rows: Tensor, basis: Tensor) -> Tensor:
    """``rows @ basis`` ([B, K] x [K, Q]) one row at a time. With several faces the CPU's matrix
    product sums in another order than the matrix-vector product of one face: row by row, a face
    gets the bits it gets alone, whichever faces share its batch (`fit_landmarks`)."""
    if rows.shape[0] == 1:
        return rows @ basis
    return torch.cat([rows[i:i + 1] @ basis for i in range(rows.shape[0])])


def _by_face(a: Tensor, b: Tensor, op=torch.matmul) -> Tensor:
    """``op(a, b)`` on [B, ...] operands face by face, for the batched ops whose CPU kernels order
    their sums by the batch's size (a [1, M] x [M, P] product per face, the linear solve): each
    face's bits whatever B (see `_by_row`)."""
    if a.shape[0] == 1:
        return op(a, b)
    return torch.cat([op(a[i:i + 1], b[i:i + 1]) for i in range(a.shape[0])])


def _keep_accepted(accept: Tensor, *pairs: tuple[Tensor, Tensor]) -> list[Tensor]:
    """Per face (``accept`` [B] bool), the new or the old tensor of each (new, old) pair of [B, ...]
    tensors; where every face (or none) accepted the step, that tensor itself: the values
    ``torch.where`` would copy, without the copies (five per iteration)."""
    if bool(accept.all()):
        return [new for new, _ in pairs]
    if not bool(accept.any()):
        return [old for _, old in pairs]
    return [torch.where(accept.view(-1, *[1] * (new.ndim - 1)), new, old) for new, old in pairs]


def _same_picks(picks: Tensor | None, kept: Tensor | None) -> bool:
    """Whether the silhouette picked the same contour candidates for every face (or there are none)."""
    return picks is None or torch.equal(picks, kept)


def _weighted_jacobian(cam: Tensor, trans: Tensor, rot: Tensor, intr: Tensor, norm: Tensor, sw: Tensor,
                       shape: tuple[Tensor, tuple[Tensor, Tensor, Tensor] | None] | None) -> Tensor:
    """Row-weighted Jacobian of the residuals (% IOD) w.r.t. (rotation update, translation[, shape]).

    Args:
        cam: [B, N, 3] camera-space landmark points; trans [B, 3], rot [B, 3, 3] the current pose.
        intr: [B, 4] (fx, fy, cx, cy); norm: [B, 1, 1] pixels -> % IOD; sw: [B, N] row weights.
        shape: None for the pose only, else (inner row basis planes [3, Ni, P'], contour rows or None:
            (positions, bases, basis planes [3, B, C, P'])).

    Returns:
        [B, N, 2, 6 (+ P')]: columns rotation (left-multiplied axis-angle), translation, shape.
    """
    b, n, _ = cam.shape
    z = cam[..., 2].clamp_min(1e-3)
    fz = intr[:, None, :2] / z[..., None] * (norm[..., 0:1] * sw[..., None])  # [B, N, 2]
    cols = 6 if shape is None else 6 + shape[0].shape[2]
    jac = torch.empty(b, n, 2, cols, dtype=cam.dtype, device=cam.device)
    jp = jac[..., 3:6]  # d(weighted residual)/d(camera point), written in place: the translation columns
    jp[..., :2] = torch.diag_embed(fz)
    jp[..., :, 2] = -fz * cam[..., :2] / z[..., None]
    # d(R p)/d(w) = -[R p]_x, and a^T (-[q]_x) = (q x a)^T
    torch.linalg.cross((cam - trans[:, None])[:, :, None].expand(-1, -1, 2, -1), jp, out=jac[..., :3])
    if shape is not None:
        inner, contour = shape
        ni = inner.shape[1]
        jpr = (jp.reshape(b, n * 2, 3) @ rot).view(b, n, 2, 3)  # d/d(model point)
        _row_jacobian_(jac[:, :ni, :, 6:], jpr[:, :ni], inner[:, None])
        if contour is not None:
            _row_jacobian_(jac[:, ni:, :, 6:], jpr[:, ni:], contour[2])
    return jac


def _row_jacobian_(out: Tensor, jpr: Tensor, planes: Tensor) -> None:
    """Per-row chain rule written into `out`: jpr [B, N, 2, 3] x basis planes [3, B or 1, N, P] -> [B, N, 2, P].

    Three broadcast multiply-adds in place: a batched matmul over N tiny matrices is far slower on CPU.
    The basis comes one plane per coordinate, so that each operand runs along P in contiguous memory
    (a [N, P, 3] basis read one coordinate at a time is strided).
    """
    torch.mul(jpr[..., 0, None], planes[0][:, :, None], out=out)
    out.addcmul_(jpr[..., 1, None], planes[1][:, :, None])
    out.addcmul_(jpr[..., 2, None], planes[2][:, :, None])


def reconstruct(
    model: FaceModel, fit: FaceFit, *, expression: Tensor | None = None, neutral: bool = False
) -> Tensor:
    """Deprecated: use `FaceModel.reconstruct` (``model.reconstruct(fit, ...)``)."""
    warnings.warn("affectsynth.fitting.reconstruct(model, fit) is deprecated: use model.reconstruct(fit)",
                  DeprecationWarning, stacklevel=2)
    return model.reconstruct(fit, expression=expression, neutral=neutral)
