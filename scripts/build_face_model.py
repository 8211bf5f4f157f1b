"""Build the embedded compact face model `fitting/data/face_model.npz` from ICT-FaceKit.

Rebuild (needs the shared assets, about 10 s; writes the model and its two licence notices):

    python scripts/build_face_model.py --ict ../shared/assets/ict-facekit \
        --mediapipe ../shared/assets/mediapipe-canonical \
        --calibration-photos ../shared/assets/dev-photos --out fitting/data/face_model.npz

What goes in (all arrays, no pickles):
- the ICT "face + mouth socket + gums/tongue + teeth" subset (18844 vertices), its triangles, UVs and
  materials; the eyeballs are left out, so the eye openings are holes where the photo's own eyes show;
- the first ``--identity-modes`` identity modes (sigma-scaled, coefficients ~N(0, 1)) and the 53
  ARKit-named expression blendshapes, stored as float16 deltas (exact to about 1e-3 relative);
- a vertex symmetry map (mirror the neutral in x, nearest vertex of the same region);
- landmark embeddings (triangle + barycentric) for MediaPipe's 468 face-mesh points and the iBUG-68
  points, with per-landmark contour candidate bands for the silhouette points (MediaPipe face oval,
  iBUG jaw), see `_contour_bands`.

The MediaPipe embedding registers MediaPipe's canonical face to the ICT neutral: a similarity
(Umeyama) fit on 51 inner iBUG-68 correspondences, a thin-plate-spline warp through the same
correspondences, then the closest point on the ICT face surface.

Reproducing the committed model (tests/fitting/test_face_model_rebuild.py checks it): a rebuild gives
every array bit for bit and the notices byte for byte, except two things that the committed model's
history fixes. Its MediaPipe embedding was calibrated on MediaPipe's own detections (mediapipe 0.10.21,
before the torch port) with the fitter of that time; today's detector and fitter calibrate it to within
0.08 mm on average (95% of the points within 0.2 mm, inner-lip point 311 by 2 mm; 40 points on a
neighbouring triangle) at the same calibration error. And its chin contour bands (iBUG 8, MediaPipe 152)
keep, among exactly tied mirror twins, the order numpy 1.26's AVX-512 argsort gave; `_contour_bands`
now breaks those ties by vertex id, so a rebuild may keep the other twin of a pair there. The
calibration runs torch on one thread, so its result does not depend on the machine's core count.
"""

from __future__ import annotations

import argparse
import json
import shutil
import zipfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import trimesh
from scipy.interpolate import RBFInterpolator
from scipy.spatial import cKDTree

# iBUG-68 point (17..67) -> MediaPipe face-mesh landmark, for the inner points (brows, nose, eyes, lips).
IBUG_INNER_TO_MEDIAPIPE = {
    17: 70, 18: 63, 19: 105, 20: 66, 21: 107, 22: 336, 23: 296, 24: 334, 25: 293, 26: 300,
    27: 168, 28: 197, 29: 5, 30: 4, 31: 75, 32: 97, 33: 2, 34: 326, 35: 305,
    36: 33, 37: 160, 38: 158, 39: 133, 40: 153, 41: 144,
    42: 362, 43: 385, 44: 387, 45: 263, 46: 373, 47: 380,
    48: 61, 49: 39, 50: 37, 51: 0, 52: 267, 53: 269, 54: 291, 55: 405, 56: 314, 57: 17,
    58: 84, 59: 181, 60: 78, 61: 82, 62: 13, 63: 312, 64: 308, 65: 317, 66: 14, 67: 87,
}

# MediaPipe FACEMESH_FACE_OVAL, in order around the face (starts at the forehead top, goes to the
# subject's left, down to the chin and back up).
MEDIAPIPE_FACE_OVAL = [
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
]

# MediaPipe feature landmarks (lips, eyes, brows, oval, nose; from mediapipe's face_mesh_connections).
MEDIAPIPE_FEATURES = {
    "lips": [0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269, 270, 291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415],
    "left_eye": [249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466],
    "right_eye": [7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246],
    "left_eyebrow": [276, 282, 283, 285, 293, 295, 296, 300, 334, 336],
    "right_eyebrow": [46, 52, 53, 55, 63, 65, 66, 70, 105, 107],
    "face_oval": [10, 21, 54, 58, 67, 93, 103, 109, 127, 132, 136, 148, 149, 150, 152, 162, 172, 176, 234, 251, 284, 288, 297, 323, 332, 338, 356, 361, 365, 377, 378, 379, 389, 397, 400, 454],
    "nose": [1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440],
}

FACE_REGION = "face"
#: Oval points above this height (model y, cm; the eyes are at about 3.4) are not silhouette points.
CONTOUR_MAX_Y_CM = 2.5


def _umeyama(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Similarity (s, R, t) minimising ||s R src + t - dst||^2."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(b.T @ a / len(src))
    d = np.ones(3)
    if np.linalg.det(u @ vt) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = float((sig * d).sum() / (a**2).sum(1).mean())
    return scale, rot, mu_d - scale * rot @ mu_s


def _surface_embedding(mesh: trimesh.Trimesh, tri_ids_global: np.ndarray, points: np.ndarray):
    """Closest point on `mesh` for each point -> (global triangle id, barycentric [N, 3]).

    Candidates are the triangles around the 8 nearest vertices (no spatial-index dependency).
    """
    used = np.unique(mesh.faces)
    tree = cKDTree(mesh.vertices[used])
    _, near = tree.query(points, k=8)
    near = used[near]
    vertex_faces = mesh.vertex_faces
    best_tri = np.zeros(len(points), np.int64)
    best_pt = np.zeros_like(points)
    for i, p in enumerate(points):
        cand = np.unique(vertex_faces[near[i]])
        cand = cand[cand >= 0]
        pts = trimesh.triangles.closest_point(mesh.triangles[cand], np.repeat(p[None], len(cand), 0))
        j = int(np.argmin(np.linalg.norm(pts - p, axis=1)))
        best_tri[i], best_pt[i] = cand[j], pts[j]
    bary = trimesh.triangles.points_to_barycentric(mesh.triangles[best_tri], best_pt)
    bary = np.clip(bary, 0.0, 1.0)
    bary /= bary.sum(1, keepdims=True)
    return tri_ids_global[best_tri].astype(np.int32), bary.astype(np.float32)


def _symmetry_map(neutral: np.ndarray, region_ranges: np.ndarray) -> np.ndarray:
    """Mirror vertex of every vertex: nearest vertex of the same region to (-x, y, z)."""
    sym = np.empty(len(neutral), np.int32)
    for start, end in region_ranges:
        pts = neutral[start:end]
        tree = cKDTree(pts)
        mirrored = pts * np.array([-1.0, 1.0, 1.0], np.float32)
        _, idx = tree.query(mirrored)
        sym[start:end] = idx + start
    return sym


def _contour_bands(
    neutral: np.ndarray,
    face_vertices: np.ndarray,
    anchors: np.ndarray,
    centre: np.ndarray,
    *,
    band_width: float = 0.45,
    inward: float = 4.0,
    max_candidates: int = 48,
) -> np.ndarray:
    """Candidate vertices for silhouette landmarks.

    For each anchor (a 3D point on the frontal face outline), the candidates are the face vertices
    whose frontal (x, y) lies in a strip of `band_width` cm around the line from the face centre
    through the anchor, from `inward` cm inside the anchor outwards. At fitting time the candidate
    that projects furthest out along the landmark's image-space outward direction is the silhouette
    point. Returns [N, max_candidates] int32 vertex ids, padded with -1.
    """
    xy = neutral[face_vertices, :2]
    out = np.full((len(anchors), max_candidates), -1, np.int32)
    for i, anchor in enumerate(anchors):
        direction = anchor[:2] - centre[:2]
        direction /= np.linalg.norm(direction)
        normal = np.array([-direction[1], direction[0]])
        rel = xy - anchor[:2]
        along = rel @ direction
        across = np.abs(rel @ normal)
        ok = (across < band_width) & (along > -inward)
        cand = face_vertices[ok]
        if len(cand) == 0:
            raise RuntimeError(f"contour band {i} is empty")
        # keep the candidates spread along the band: sort by position along it and subsample. Mirror
        # twins tie exactly on a vertical band (the chin's): vertex id breaks the tie, so the subsample
        # does not depend on the sort algorithm (numpy's differs between versions and CPUs).
        order = np.lexsort((cand, along[ok]))
        cand = cand[order]
        if len(cand) > max_candidates:
            cand = cand[np.linspace(0, len(cand) - 1, max_candidates).round().astype(int)]
        out[i, : len(cand)] = cand
    return out


#: Blendshapes the calibration fits may use: the expressions actually present in the calibration photos
#: (smiles, open mouths, blinks). Everything else is held at 0, so that a systematic offset between
#: MediaPipe's points and the embedding cannot hide in an expression.
CALIBRATION_FREE_EXPRESSIONS = (
    "jawOpen", "mouthSmile_L", "mouthSmile_R", "cheekSquint_L", "cheekSquint_R", "eyeBlink_L", "eyeBlink_R",
    "mouthLowerDown_L", "mouthLowerDown_R", "mouthUpperUp_L", "mouthUpperUp_R", "mouthStretch_L", "mouthStretch_R",
)


@contextmanager
def _torch_single_thread():
    """Run torch on one thread: its reductions' float order (detection, fits) then does not depend on
    the machine's core count, so the calibrated embedding does not either (2 threads against 1 moved
    it by up to 0.005 mm and changed one triangle)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _calibrate_mediapipe_embedding(arrays: dict, face_mesh, face_tri, photos: list[Path], rounds: int = 3) -> dict:
    """Move each MediaPipe landmark's embedding to where MediaPipe really puts it on real faces.

    The registration through the canonical mesh leaves systematic offsets (MediaPipe's eyelid points,
    for instance, sit higher than the canonical face suggests), which a fit would explain with spurious
    expressions (eyeWide on every neutral face). Each round fits every face of the photos with only the
    expressions present in them free, takes each inner landmark's reprojection residual back into model
    space on the surface's tangent plane, and moves the embedding by the median offset over faces.
    """
    import torch
    from PIL import Image

    from affectsynth.fitting import Camera, FaceModel, FitSettings, fit_landmarks, get_detector

    detector = get_detector("mediapipe")
    faces, cams = [], []
    for path in photos:
        image = np.asarray(Image.open(path).convert("RGB"))
        for lm in detector.detect(image):
            faces.append(lm)
            cams.append(Camera.from_fov(image.shape[1], image.shape[0]))
    detector.close()
    names = [str(n) for n in arrays["expression_names"]]
    settings = FitSettings(fixed_expressions=tuple(n for n in names if n not in CALIBRATION_FREE_EXPRESSIONS))
    history = []
    for _ in range(rounds):
        model = FaceModel(arrays)
        fits = fit_landmarks(model, faces, cams, settings=settings)
        history.append(float(np.mean([f.reprojection_error_px / f.interocular_px * 100 for f in fits])))
        emb = model.embedding("mediapipe468")
        inner = ~emb.is_contour
        offsets = []
        for f in fits:
            if f.reprojection_error_px > 0.05 * f.interocular_px:  # a poor fit (profile, occlusion) teaches nothing
                continue
            verts = model.vertices(f.identity, f.expression)
            pts = model.landmark_points(verts[None], "mediapipe468")[0]
            cam = pts @ f.rotation.T + f.translation
            proj = cam[:, :2] / cam[:, 2:] * torch.tensor([f.camera.fx, f.camera.fy]) + torch.tensor([f.camera.cx, f.camera.cy])
            res = f.landmarks - proj
            d_cam = torch.cat([res * cam[:, 2:] / torch.tensor([f.camera.fx, f.camera.fy]), torch.zeros(468, 1)], 1)
            normal = model.neutral_normals[model.triangles.long()[emb.triangle]].mean(1) @ f.rotation.T
            normal = normal / normal.norm(dim=1, keepdim=True)
            facing = -(normal * cam).sum(1) / cam.norm(dim=1)
            d_cam = d_cam - normal * (d_cam * normal).sum(1, keepdim=True)
            d_model = d_cam @ f.rotation
            d_model[(facing < 0.3) | ~inner] = float("nan")
            offsets.append(d_model.numpy())
        offset = np.nan_to_num(np.nanmedian(np.stack(offsets), 0))
        offset *= np.minimum(1.0, 0.5 / np.maximum(np.linalg.norm(offset, axis=1, keepdims=True), 1e-9))  # <= 5 mm a round
        current = (arrays["neutral"][arrays["triangles"][arrays["mediapipe_triangle"]]] * arrays["mediapipe_barycentric"][..., None]).sum(1)
        tri, bary = _surface_embedding(face_mesh, face_tri, current + offset)
        arrays["mediapipe_triangle"], arrays["mediapipe_barycentric"] = tri, bary
    model = FaceModel(arrays)
    fits = fit_landmarks(model, faces, cams, settings=settings)
    history.append(float(np.mean([f.reprojection_error_px / f.interocular_px * 100 for f in fits])))
    return {"calibration_faces": len(faces), "calibration_error_pct_iod_by_round": [round(h, 3) for h in history]}


#: What `fitting/data/LICENSE-MediaPipe` says before MediaPipe's licence text (copied verbatim from the
#: canonical mesh's LICENSE after it): the folder's MediaPipe notice covers the detector weights
#: (scripts/convert_mediapipe_models.py) as well as this model's landmark table, so a rebuild writes
#: the whole notice, not the bare licence.
MEDIAPIPE_NOTICE_HEADER = """\
This folder holds material from Google's MediaPipe (https://github.com/google-ai-edge/mediapipe),
licensed under the Apache License, Version 2.0 (full text below):

- face_model.npz: the canonical face mesh's landmark table (mediapipe_* arrays).
- mediapipe_face_detection_short_range.npz: weights of
  mediapipe/modules/face_detection/face_detection_short_range.tflite (BlazeFace, 128 px).
- mediapipe_face_detection_full_range.npz: weights of
  mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite (BlazeFace, 192 px).
- mediapipe_face_landmark_with_attention.npz: weights of
  mediapipe/modules/face_landmark/face_landmark_with_attention.tflite (478-point face mesh).

The three model files are converted, unchanged in value (float16 as stored; sparse tensors
densified), from the `.tflite` files in the mediapipe==0.10.21 wheel by
scripts/convert_mediapipe_models.py; each .npz records the source file and its sha256 in `meta`.
Rebuild them with the commands in that script's docstring.

Copyright 2019-2025 The MediaPipe Authors.

"""


def write_notices(ict_dir: Path, mediapipe_dir: Path, folder: Path) -> None:
    """Write the licence notices that go beside the model: ICT-FaceKit's LICENSE as it is, and
    `MEDIAPIPE_NOTICE_HEADER` followed by MediaPipe's LICENSE (the committed files' bytes)."""
    shutil.copyfile(ict_dir / "LICENSE", folder / "LICENSE-ICT-FaceKit")
    licence = (mediapipe_dir / "LICENSE").read_bytes()
    (folder / "LICENSE-MediaPipe").write_bytes(MEDIAPIPE_NOTICE_HEADER.encode() + licence)


def build(ict_dir: Path, mediapipe_dir: Path, out_path: Path, identity_modes: int, calibration_photos: list[Path]) -> dict:
    ict = np.load(ict_dir / "ict_facekit_face_mouth.npz")
    full = np.load(ict_dir / "ict_facekit_full.npz")
    mp = np.load(mediapipe_dir / "mediapipe_canonical_face.npz")

    neutral = ict["neutral"].astype(np.float32)
    triangles = ict["triangles"].astype(np.int32)
    region_names = ict["region_names"]
    region_ranges = ict["region_vertex_range"].astype(np.int32)
    face_start, face_end = region_ranges[list(region_names).index(FACE_REGION)]
    landmarks68 = ict["landmarks68"].astype(np.int32)

    # Face-surface submesh for the landmark embedding (skin triangles whose vertices are all face).
    material_names = list(ict["material_names"])
    tri_material = ict["triangle_material"]
    face_tri = np.nonzero(
        (tri_material == material_names.index("M_Face")) & (triangles < face_end).all(1)
    )[0]
    face_mesh = trimesh.Trimesh(neutral, triangles[face_tri], process=False)

    # --- MediaPipe -> ICT registration -------------------------------------------------------
    mp_vertices = mp["canonical_vertices"].astype(np.float64)
    ibug = np.array(sorted(IBUG_INNER_TO_MEDIAPIPE))
    src = mp_vertices[[IBUG_INNER_TO_MEDIAPIPE[i] for i in ibug]]
    dst = neutral[landmarks68[ibug]].astype(np.float64)
    scale, rot, trans = _umeyama(src, dst)
    mp_aligned = (scale * (rot @ mp_vertices.T)).T + trans
    src_aligned = (scale * (rot @ src.T)).T + trans
    warp = RBFInterpolator(src_aligned, dst - src_aligned, kernel="thin_plate_spline", smoothing=1.0)
    mp_warped = mp_aligned + warp(mp_aligned)
    mp_tri, mp_bary = _surface_embedding(face_mesh, face_tri, mp_warped)
    mp_surface = (neutral[triangles[mp_tri]] * mp_bary[..., None]).sum(1)
    registration_error = float(np.linalg.norm(mp_surface[[IBUG_INNER_TO_MEDIAPIPE[i] for i in ibug]] - dst, axis=1).mean())

    # iBUG-68 embedding: exact vertices, expressed as (triangle, barycentric) too.
    vert_to_tri = {}
    for t_id, tri in zip(face_tri, triangles[face_tri]):
        for k, v in enumerate(tri):
            vert_to_tri.setdefault(int(v), (int(t_id), k))
    ibug_tri = np.zeros(68, np.int32)
    ibug_bary = np.zeros((68, 3), np.float32)
    for i, v in enumerate(landmarks68):
        t_id, k = vert_to_tri[int(v)]
        ibug_tri[i] = t_id
        ibug_bary[i, k] = 1.0

    # --- Contour bands --------------------------------------------------------------------
    face_vertices = np.unique(triangles[face_tri])
    # Only vertices of the front half of the face may be silhouette points (not the ears' backs).
    face_vertices = face_vertices[neutral[face_vertices, 2] > -2.0]
    centre = neutral[landmarks68[[30]]].mean(0) * np.array([1, 1, 0]) + np.array([0, 0.5, 0])
    # Forehead points of the oval are not on the silhouette of a roughly frontal face: only the oval
    # below the brows is treated as contour.
    oval = np.array([i for i in MEDIAPIPE_FACE_OVAL if mp_surface[i, 1] < CONTOUR_MAX_Y_CM])
    oval_bands = _contour_bands(neutral, face_vertices, mp_surface[oval], centre)
    jaw_bands = _contour_bands(neutral, face_vertices, neutral[landmarks68[:17]], centre)
    mp_bands = np.full((468, oval_bands.shape[1]), -1, np.int32)
    mp_bands[oval] = oval_bands
    ibug_bands = np.full((68, jaw_bands.shape[1]), -1, np.int32)
    ibug_bands[:17] = jaw_bands

    # Landmarks the fitter uses: every feature point plus every 2nd other point (the dense cheek and
    # forehead points add cost and little information).
    features = sorted(set().union(*MEDIAPIPE_FEATURES.values()))
    others = [i for i in range(468) if i not in set(features)]
    mp_fit_subset = np.array(sorted(features + others[::2]), np.int32)

    symmetry = _symmetry_map(neutral, region_ranges)
    sym_error = float(np.abs(neutral[symmetry] * [-1, 1, 1] - neutral).max(1).mean())

    k = identity_modes
    arrays = dict(
        neutral=neutral,
        identity_basis=ict["identity_deltas"][:k].astype(np.float16),
        expression_basis=ict["expression_deltas"].astype(np.float16),
        expression_names=ict["expression_names"].astype(str),
        triangles=triangles,
        uv=ict["uv"].astype(np.float32),
        triangle_uv=ict["triangle_uv"].astype(np.int32),
        triangle_material=ict["triangle_material"].astype(np.uint8),
        material_names=np.array(material_names),
        region_names=region_names.astype(str),
        region_vertex_range=region_ranges,
        source_vertex_index=ict["source_vertex_index"].astype(np.int32),
        symmetry=symmetry,
        landmarks68=landmarks68,
        ibug68_triangle=ibug_tri,
        ibug68_barycentric=ibug_bary,
        ibug68_contour_bands=ibug_bands,
        mediapipe_triangle=mp_tri,
        mediapipe_barycentric=mp_bary,
        mediapipe_contour_bands=mp_bands,
        mediapipe_fit_subset=mp_fit_subset,
        rigid_landmarks68=full["rigid_landmark_idx"].astype(np.int32),
    )
    calibration = {}
    if calibration_photos:
        with _torch_single_thread():
            calibration = _calibrate_mediapipe_embedding(arrays, face_mesh, face_tri, calibration_photos)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_suffix(".tmp.npz")
    save_model(tmp, arrays)
    tmp.replace(out_path)
    write_notices(ict_dir, mediapipe_dir, out_path.parent)
    report = dict(
        **calibration,
        vertices=len(neutral),
        triangles=len(triangles),
        identity_modes=k,
        size_mb=round(out_path.stat().st_size / 1e6, 2),
        mediapipe_registration_error_cm=round(registration_error, 3),
        symmetry_mean_error_cm=round(sym_error, 4),
        max_float16_error=float(np.abs(arrays["identity_basis"].astype(np.float32) - ict["identity_deltas"][:k]).max()),
    )
    return report


#: Arrays stored without compression: the float16 identity basis is most of the file and hardly
#: compresses (9.0 MB -> 7.4 MB deflated), and inflating it cost ~38 ms of CPU in every process
#: that loads the model (~2 ms stored), on the way to its first output.
STORED_ARRAYS = ("identity_basis",)


def save_model(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write the model npz: one ``NAME.npy`` per array, as ``np.savez`` writes them (``np.load``
    reads it), deflated except `STORED_ARRAYS`; fixed timestamps, so the same arrays give the
    same bytes."""
    with zipfile.ZipFile(path, "w", allowZip64=True) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_STORED if name in STORED_ARRAYS else zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ict", type=Path, default=here.parent / "shared/assets/ict-facekit")
    parser.add_argument("--mediapipe", type=Path, default=here.parent / "shared/assets/mediapipe-canonical")
    parser.add_argument("--out", type=Path, default=here / "fitting/data/face_model.npz")
    parser.add_argument("--identity-modes", type=int, default=80)
    parser.add_argument(
        "--calibration-photos", type=Path, default=here.parent / "shared/assets/dev-photos",
        help="folder of photos of real faces to calibrate the MediaPipe embedding on ('' to skip)",
    )
    args = parser.parse_args()
    if args.identity_modes < 1 or args.identity_modes > 100:
        parser.error("--identity-modes must be in [1, 100]")
    photos = sorted(args.calibration_photos.glob("*.jpg")) if str(args.calibration_photos) not in ("", ".") else []
    print(json.dumps(build(args.ict, args.mediapipe, args.out, args.identity_modes, photos), indent=2))


if __name__ == "__main__":
    main()
