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


def _skew(v: Tensor) -> Tensor:
    """[..., 3] -> [..., 3, 3] cross-product matrices."""
    z = torch.zeros_like(v[..., 0])
    return torch.stack(
        [torch.stack([z, -v[..., 2], v[..., 1]], -1),
         torch.stack([v[..., 2], z, -v[..., 0]], -1),
         torch.stack([-v[..., 1], v[..., 0], z], -1)], -2)


def _rodrigues(w: Tensor) -> Tensor:
    """Axis-angle [B, 3] -> rotation [B, 3, 3]."""
    theta = w.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    k = _skew(w / theta)
    s, c = torch.sin(theta)[..., None], torch.cos(theta)[..., None]
    eye = torch.eye(3, dtype=w.dtype, device=w.device).expand_as(k)
    return eye + s * k + (1 - c) * (k @ k)


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
    facing_away = (normals * points).sum(-1) >= 0
    stop = facing_away | ~valid
    m = stop.shape[-1]
    idx = torch.arange(m, device=stop.device)
    first_stop = torch.where(stop, idx, torch.full_like(idx, m)).amin(-1)  # [B, C]
    return (first_stop - 1).clamp_min(0)


def _row_jacobian(jpr: Tensor, basis: Tensor) -> Tensor:
    """Per-row chain rule: jpr [B, N, 2, 3] x basis [B or 1, N, P, 3] -> [B, N, 2, P].

    Written as three broadcast multiply-adds: a batched matmul over N tiny matrices is far slower on CPU.
    """
    out = jpr[..., 0, None] * basis[:, :, None, :, 0]
    out = out + jpr[..., 1, None] * basis[:, :, None, :, 1]
    return out + jpr[..., 2, None] * basis[:, :, None, :, 2]


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
    Bases are laid out [rows, coefficients, 3] so that per-row Jacobians are batched matmuls.
    """

    order: Tensor  # [N] layout index of each row
    num_inner: int
    mean: Tensor  # [Ni, 3]
    ident: Tensor  # [Ni, K, 3]
    expr: Tensor  # [Ni, S, 3]
    cand: Tensor  # [C, M] candidate vertex ids (-1 padded)
    cand_mean: Tensor  # [C*M, 3]
    cand_ident: Tensor  # [C*M, K, 3]
    cand_expr: Tensor  # [C*M, S, 3]
    cand_normal: Tensor  # [C*M, 3] neutral-mesh (area-weighted, unnormalised) vertex normals of the candidates
    cand_normal_ident: Tensor  # [K, C*M*3] their first-order change per identity coefficient
    cand_normal_expr: Tensor  # [S, C*M*3] ... and per expression weight
    weights: Tensor  # [N] per-row weight
    ident_flat: Tensor  # [K, Ni*3] the same bases flattened for one matmul per evaluation
    expr_flat: Tensor  # [S, Ni*3]
    cand_ident_flat: Tensor  # [K, C*M*3]
    cand_expr_flat: Tensor  # [S, C*M*3]


def _problem(model: FaceModel, kind: str, settings: FitSettings) -> _LandmarkProblem:
    """The model-level tensors of a landmark fit (built once per model, layout and settings)."""
    return _build_problem(model, kind, settings.contour_weight, settings.identity_modes)


@lru_cache(maxsize=16)
def _build_problem(model: FaceModel, kind: str, contour_weight: float, identity_modes: int) -> _LandmarkProblem:
    k = min(identity_modes, model.num_identity)
    mean, ident, expr = model.landmark_basis(kind)
    emb = model.embedding(kind)
    used = torch.zeros(emb.num_landmarks, dtype=torch.bool, device=model.device)
    used[emb.fit_subset if emb.fit_subset is not None else slice(None)] = True
    contour_idx = torch.nonzero(emb.is_contour & used).flatten()
    inner_idx = torch.nonzero(~emb.is_contour & used).flatten()
    cand = emb.contour_bands[contour_idx]
    safe = cand.clamp_min(0).flatten()
    weights = torch.ones(inner_idx.numel() + contour_idx.numel(), dtype=torch.float32, device=model.device)
    weights[inner_idx.numel():] = contour_weight
    prob = _LandmarkProblem(
        order=torch.cat([inner_idx, contour_idx]),
        num_inner=int(inner_idx.numel()),
        mean=mean[inner_idx],
        ident=ident[:k, inner_idx].permute(1, 0, 2).contiguous(),
        expr=expr[:, inner_idx].permute(1, 0, 2).contiguous(),
        cand=cand,
        cand_mean=model.neutral[safe],
        cand_ident=model.identity_basis[:k, safe].permute(1, 0, 2).contiguous(),
        cand_expr=model.expressions.deltas[:, safe].permute(1, 0, 2).contiguous(),
        **dict(zip(("cand_normal", "cand_normal_ident", "cand_normal_expr"), _normal_basis(model, safe, k))),
        weights=weights,
        ident_flat=ident[:k, inner_idx].reshape(k, -1).contiguous(),
        expr_flat=expr[:, inner_idx].reshape(expr.shape[0], -1).contiguous(),
        cand_ident_flat=model.identity_basis[:k, safe].reshape(k, -1).contiguous(),
        cand_expr_flat=model.expressions.deltas[:, safe].reshape(model.num_expressions, -1).contiguous(),
    )
    return prob


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
    hits = (skin[:, :, None] == uniq[None, None]).any(1)  # [T, U]
    t_idx, u_idx = torch.nonzero(hits, as_tuple=True)
    bases = torch.cat([model.identity_basis[:k], model.expressions.deltas])  # [K+S, V, 3]
    v0, v1, v2 = (model.neutral[skin[t_idx, i]] for i in range(3))
    e1, e2 = v1 - v0, v2 - v0
    d0, d1, d2 = (bases[:, skin[t_idx, i]] for i in range(3))
    n_face = torch.linalg.cross(e1, e2)
    dn_face = torch.linalg.cross(d1 - d0, e2.expand_as(d1)) + torch.linalg.cross(e1.expand_as(d1), d2 - d0)
    n0 = torch.zeros(len(uniq), 3, device=model.device).index_add_(0, u_idx, n_face)
    dn = torch.zeros(bases.shape[0], len(uniq), 3, device=model.device).index_add_(1, u_idx, dn_face)
    n0, dn = n0[inverse], dn[:, inverse]
    return n0, dn[:k].reshape(k, -1).contiguous(), dn[k:].reshape(dn.shape[0] - k, -1).contiguous()


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
            )
        )
    return fits


def _solve(model: FaceModel, kind: str, obs_layout: Tensor, intr: Tensor, settings: FitSettings) -> dict[str, Tensor]:
    prob = _problem(model, kind, settings)
    obs = obs_layout[:, prob.order]
    b, n, _ = obs.shape
    ni = prob.num_inner
    c, m = prob.cand.shape
    k, s = prob.ident.shape[1], prob.expr.shape[1]
    dev, dt = obs.device, obs.dtype
    rows_b = torch.arange(b, device=dev)[:, None]

    # residual normalisation: percent of the inter-ocular distance
    eyes = EYE_CORNERS[kind]
    iod = (obs_layout[:, eyes[0]] - obs_layout[:, eyes[1]]).norm(dim=-1).clamp_min(1.0)  # [B]
    norm = (100.0 / iod)[:, None, None]  # px -> percent IOD

    free_expr = torch.ones(s, dtype=torch.bool, device=dev)
    for name in settings.fixed_expressions:
        if name in model.expression_names:
            free_expr[model.expression_names.index(name)] = False
    free_cols = torch.cat([torch.ones(6 + k, dtype=torch.bool, device=dev), free_expr])

    rot, trans = _affine_init(prob.mean[None].expand(b, -1, -1), obs[:, :ni], prob.weights[:ni][None].expand(b, -1), intr)
    ident = torch.zeros(b, k, dtype=dt, device=dev)
    expr = torch.zeros(b, s, dtype=dt, device=dev)
    valid = (prob.cand >= 0)[None]
    cand_offset = (torch.arange(c, device=dev) * m)[None]

    prior = torch.cat([
        torch.zeros(6, dtype=dt, device=dev),
        torch.full((k,), settings.identity_prior, dtype=dt, device=dev),
        torch.full((s,), settings.expression_prior, dtype=dt, device=dev),
    ])[free_cols]
    lam = torch.full((b,), settings.damping, dtype=dt, device=dev)
    shape_rows = torch.cat([prob.ident, prob.expr[:, free_expr]], 1)[None]  # [1, Ni, K + S_free, 3]
    p_full = 6 + k + int(free_expr.sum())

    def bases(ident: Tensor, expr: Tensor, rot: Tensor, trans: Tensor):
        """Per-face rows of the landmark model: contour rows re-picked on the current silhouette."""
        if c == 0:
            return prob.mean[None].expand(b, -1, -1), None, None
        cand = prob.cand_mean + (ident @ prob.cand_ident_flat + expr @ prob.cand_expr_flat).view(b, -1, 3)
        cam = cand @ rot.transpose(1, 2) + trans[:, None]
        normal = prob.cand_normal + (ident @ prob.cand_normal_ident + expr @ prob.cand_normal_expr).view(b, -1, 3)
        normal = normal @ rot.transpose(1, 2)
        pick = silhouette_pick(normal.reshape(b, c, m, 3), cam.reshape(b, c, m, 3), valid)
        flat = pick + cand_offset  # [B, C]
        return prob.cand_mean[flat], prob.cand_ident[flat], prob.cand_expr[flat]

    def points(ident, expr, cmean, cid, cex):
        inner = prob.mean + (ident @ prob.ident_flat + expr @ prob.expr_flat).view(b, ni, 3)
        if cid is None:
            return inner
        cont = cmean + (ident[:, None, None] @ cid)[:, :, 0] + (expr[:, None, None] @ cex)[:, :, 0]
        return torch.cat([inner, cont], 1)

    def residuals(pts, rot, trans):
        cam = pts @ rot.transpose(1, 2) + trans[:, None]
        return cam, (project_points(cam, intr[:, None]) - obs) * norm

    def energy(res, ident, expr, wl):
        data = (wl * res.pow(2).sum(-1)).sum(-1)
        return (data + settings.identity_prior * ident.pow(2).sum(-1)
                + settings.expression_prior * expr.pow(2).sum(-1) + settings.expression_l1 * expr.sum(-1))

    total = settings.pose_iterations + settings.iterations
    for it in range(total):
        pose_only = it < settings.pose_iterations
        cmean, cid, cex = bases(ident, expr, rot, trans)
        pts = points(ident, expr, cmean, cid, cex)
        cam, res = residuals(pts, rot, trans)
        dist = res.norm(dim=-1)
        w_rob = torch.where(dist > settings.huber_pct, settings.huber_pct / dist.clamp_min(1e-9), torch.ones_like(dist))
        wl = w_rob * prob.weights[None]  # [B, N]
        # d(pixels, % IOD)/d(camera point): [B, N, 2, 3]
        z = cam[..., 2].clamp_min(1e-3)
        fz = intr[:, None, :2] / z[..., None] * norm[..., 0:1]  # [B, N, 2]
        jp = torch.zeros(b, n, 2, 3, dtype=dt, device=dev)
        jp[..., 0, 0] = fz[..., 0]
        jp[..., 1, 1] = fz[..., 1]
        jp[..., :, 2] = -fz * cam[..., :2] / z[..., None]
        rp = cam - trans[:, None]  # R @ pts
        jac = torch.empty(b, n, 2, 6 if pose_only else p_full, dtype=dt, device=dev)
        jac[..., :3] = jp @ -_skew(rp)
        jac[..., 3:6] = jp
        if not pose_only:
            jpr = jp @ rot[:, None]  # [B, N, 2, 3]
            jac[:, :ni, :, 6:] = _row_jacobian(jpr[:, :ni], shape_rows)
            if cid is not None:
                jac[:, ni:, :, 6:] = _row_jacobian(jpr[:, ni:], torch.cat([cid, cex[:, :, free_expr]], 2))
        # weighted least squares: scale rows by sqrt(weight) once
        sw = wl.sqrt()
        jac = (jac * sw[..., None, None]).reshape(b, n * 2, -1)  # [B, 2N, P]
        jt = jac.transpose(1, 2)
        hess = jt @ jac
        grad = (jt @ (res * sw[..., None]).reshape(b, n * 2, 1))[..., 0]
        if pose_only:
            reg = torch.zeros(6, dtype=dt, device=dev)
        else:
            reg = prior
            grad = grad + torch.cat([
                torch.zeros(b, 6, dtype=dt, device=dev),
                settings.identity_prior * ident,
                settings.expression_prior * expr[:, free_expr] + 0.5 * settings.expression_l1,
            ], -1)
            # active set: weights at a bound and pushed outward do not move this step
            e_cur = expr[:, free_expr]
            g_ex = grad[:, 6 + k:]
            blocked = ((e_cur <= 0) & (g_ex > 0)) | ((e_cur >= 1) & (g_ex < 0))
            hess = hess + torch.diag_embed(torch.cat([torch.zeros(b, 6 + k, dtype=dt, device=dev), blocked.to(dt) * 1e8], -1))
            grad = torch.cat([grad[:, : 6 + k], g_ex.masked_fill(blocked, 0.0)], -1)
        diag = torch.diagonal(hess, dim1=-2, dim2=-1)
        lhs = hess + torch.diag_embed(reg[None] + lam[:, None] * (diag + 1e-3))
        delta = -torch.linalg.solve(lhs, grad[..., None])[..., 0]

        new_rot = _rodrigues(delta[:, :3]) @ rot
        new_trans = trans + delta[:, 3:6]
        new_ident, new_expr = ident, expr
        if not pose_only:
            new_ident = ident + delta[:, 6:6 + k]
            new_expr = expr.clone()
            new_expr[:, free_expr] = (expr[:, free_expr] + delta[:, 6 + k:]).clamp(0.0, 1.0)
        e_old = energy(res, ident, expr, wl)
        _, res_new = residuals(points(new_ident, new_expr, cmean, cid, cex), new_rot, new_trans)
        e_new = energy(res_new, new_ident, new_expr, wl)
        accept = e_new <= e_old
        lam = torch.where(accept, lam * 0.3, lam * 10.0).clamp(1e-7, 1e4)
        rot = torch.where(accept[:, None, None], new_rot, rot)
        trans = torch.where(accept[:, None], new_trans, trans)
        ident = torch.where(accept[:, None], new_ident, ident)
        expr = torch.where(accept[:, None], new_expr, expr)

    # Residuals of every landmark of the layout (also those the solve skipped), in pixels.
    cmean, cid, cex = bases(ident, expr, rot, trans)
    cam, _ = residuals(points(ident, expr, cmean, cid, cex), rot, trans)
    full_mean, full_id, full_ex = model.landmark_basis(kind)
    full = full_mean + torch.einsum("bk,knd->bnd", ident, full_id[:k]) + torch.einsum("bs,snd->bnd", expr, full_ex)
    full_cam = full @ rot.transpose(1, 2) + trans[:, None]
    full_cam[:, prob.order[ni:]] = cam[:, ni:]
    res_layout = (project_points(full_cam, intr[:, None]) - obs_layout).norm(dim=-1)
    return {"identity": ident, "expression": expr, "rotation": rot, "translation": trans, "residuals": res_layout}


def reconstruct(
    model: FaceModel, fit: FaceFit, *, expression: Tensor | None = None, neutral: bool = False
) -> Tensor:
    """Deprecated: use `FaceModel.reconstruct` (``model.reconstruct(fit, ...)``)."""
    warnings.warn("affectsynth.fitting.reconstruct(model, fit) is deprecated: use model.reconstruct(fit)",
                  DeprecationWarning, stacklevel=2)
    return model.reconstruct(fit, expression=expression, neutral=neutral)
