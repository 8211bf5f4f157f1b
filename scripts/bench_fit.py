"""Benchmark of the landmark fitter: speed, detection time, accuracy on synthetic and real faces, eos baseline.

Usage:
    OMP_NUM_THREADS=1 python scripts/bench_fit.py [--json PATH] [--quick]

Public API only (`affectsynth.fitting`). Prints one block per measurement; `--json PATH` writes
every number too. Sections:

- fit speed: one face on one thread (median and IQR over repeats, after warm-up); a batch of 64
  faces with 1 and 2 threads (faces/s, median over repeats); MediaPipe-468 and iBUG-68 layouts.
- detection: `MediaPipeDetector` on the dev photos (median per photo and per face).
- synthetic accuracy: 200 `random_faces` (seed 0): face-region vertex error after a similarity
  alignment (mm) against the mean face's, active-weight MAE, fraction of inactive observable
  weights < 0.05, rotation error.
- real photos: mean landmark reprojection error in % of the inter-ocular distance (outer eye
  corners), dev photos (the MediaPipe embedding was calibrated on them) and the held-out
  scikit-image astronaut.
- eos (eos-py, Surrey Face Model, NON-COMMERCIAL model files read from ../shared/assets/eos-sfm
  at run time only): the same 68 landmarks (dlib's iBUG-68 annotations of the dev photos, and
  landmarks projected from random model faces) fitted by our fitter and by
  `eos.fitting.fit_shape_and_pose`; times and reprojection errors with their ratios. eos's
  reprojection error covers the 50 inner points its landmark mapper maps (its contour points have
  no fixed vertex); ours is given on the same 50 and on all 68.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from affectsynth.fitting.annotations import read_dlib_landmarks
from affectsynth.fitting import (
    UNOBSERVABLE_EXPRESSIONS,
    aligned_error_mm,
    Camera,
    FaceModel,
    Landmarks,
    MediaPipeDetector,
    fit_landmarks,
    random_faces,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "assets"
DEV_PHOTOS = SHARED / "dev-photos"
EOS_DIR = SHARED / "eos-sfm"


# --------------------------------------------------------------------------------------------- helpers
def _stats_ms(times_s: list[float]) -> dict:
    t = np.asarray(times_s) * 1000.0
    q1, med, q3 = np.percentile(t, [25, 50, 75])
    return {"median_ms": float(med), "iqr_ms": float(q3 - q1), "repeats": int(t.size)}


def _timed(fn, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _rotation_error_deg(a: torch.Tensor, b: torch.Tensor) -> float:
    rel = a.double().T @ b.double()
    return float(np.degrees(np.arccos(np.clip((rel.trace().item() - 1) / 2, -1, 1))))


def _read_rgb(path: Path) -> np.ndarray:
    from PIL import Image, ImageOps

    with Image.open(path) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def _environment() -> dict:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", False
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for name in ("mediapipe", "eos"):
        try:
            mod = __import__(name)
            versions[name] = getattr(mod, "__version__", "installed")
        except ImportError:
            versions[name] = "absent"
    if versions.get("eos") not in ("absent",):
        try:
            from importlib.metadata import version

            versions["eos"] = version("eos-py")
        except Exception:  # noqa: BLE001 - metadata lookup only
            pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return {"commit": commit + ("+dirty" if dirty else ""), "versions": versions, "cpu": cpu,
            "logical_cpus": os.cpu_count(), "load_average_1min": load}


# --------------------------------------------------------------------------------------------- sections
def bench_speed(model: FaceModel, quick: bool) -> dict:
    out = {}
    repeats = 10 if quick else 25
    for kind in ("mediapipe468", "ibug68"):
        faces = random_faces(model, 64, seed=1, kind=kind)
        lms, cams = [f.landmarks for f in faces], [f.camera for f in faces]
        torch.set_num_threads(1)
        single = _timed(lambda: fit_landmarks(model, lms[:1], cams[:1]), repeats, warmup=3)
        res = {"single_1thread": _stats_ms(single)}
        for threads in (1, 2):
            torch.set_num_threads(threads)
            fits = fit_landmarks(model, lms, cams)
            if len(fits) != 64 or fits[0].expression.shape != (model.num_expressions,):
                raise RuntimeError("bench: batch fit returned the wrong number/shape of fits")
            ts = _timed(lambda: fit_landmarks(model, lms, cams), 3 if quick else 5, warmup=1)
            res[f"batch64_{threads}thread"] = {
                "faces_per_s": float(64 / np.median(ts)),
                "ms_per_face": float(np.median(ts) * 1000 / 64),
                "repeats": len(ts),
            }
        torch.set_num_threads(1)
        out[kind] = res
        s = res["single_1thread"]
        print(f"  {kind:13s} single face, 1 thread: {s['median_ms']:.2f} ms median (IQR {s['iqr_ms']:.2f}, n={s['repeats']})")
        for threads in (1, 2):
            b = res[f"batch64_{threads}thread"]
            print(f"  {kind:13s} batch 64, {threads} thread(s): {b['faces_per_s']:.0f} faces/s ({b['ms_per_face']:.2f} ms/face)")
    return out


def detect_dev_photos(detector: MediaPipeDetector, photos: list[Path]) -> tuple[dict, list[tuple[Path, np.ndarray, list]]]:
    detector.detect(_read_rgb(photos[0]))  # warm-up: graph construction
    per_photo, per_face, found = [], [], []
    for p in photos:
        img = _read_rgb(p)
        t0 = time.perf_counter()
        faces = detector.detect(img)
        dt = time.perf_counter() - t0
        per_photo.append(dt)
        if faces:
            per_face.append(dt / len(faces))
        found.append((p, img, faces))
    res = {
        "photos": len(photos),
        "faces": int(sum(len(f) for _, _, f in found)),
        "median_ms_per_photo": float(np.median(per_photo) * 1000),
        "median_ms_per_face": float(np.median(per_face) * 1000) if per_face else float("nan"),
    }
    print(f"  MediaPipeDetector on {res['photos']} dev photos ({res['faces']} faces): "
          f"{res['median_ms_per_photo']:.1f} ms/photo median, {res['median_ms_per_face']:.1f} ms/face median (photos with faces)")
    return res, found


def bench_synthetic(model: FaceModel, n: int) -> dict:
    faces = random_faces(model, n, seed=0)
    fits = []
    for i in range(0, n, 64):
        chunk = faces[i:i + 64]
        fits += fit_landmarks(model, [f.landmarks for f in chunk], [f.camera for f in chunk])
    if len(fits) != n:
        raise RuntimeError("bench: wrong number of fits")
    start, end = model.region("face")
    observable = torch.tensor([nm not in UNOBSERVABLE_EXPRESSIONS for nm in model.expression_names])
    mean_face = model.neutral[start:end].numpy()
    fit_err, mean_err, active_mae, inactive_small, rot_err = [], [], [], [], []
    for face, fit in zip(faces, fits):
        truth = model.vertices(face.identity, face.expression)[start:end].numpy()
        fitted = model.vertices(fit.identity, fit.expression)[start:end].numpy()
        fit_err.append(aligned_error_mm(fitted, truth))
        mean_err.append(aligned_error_mm(mean_face, truth))
        active = face.expression > 0
        active_mae.append((fit.expression - face.expression)[active].abs().mean().item())
        inactive_small.append((fit.expression[~active & observable] < 0.05).float().mean().item())
        rot_err.append(_rotation_error_deg(fit.rotation, face.rotation))
    res = {
        "faces": n,
        "vertex_error_mm": float(np.mean(fit_err)),
        "mean_face_vertex_error_mm": float(np.mean(mean_err)),
        "active_weight_mae": float(np.mean(active_mae)),
        "inactive_below_0.05": float(np.mean(inactive_small)),
        "rotation_error_deg_mean": float(np.mean(rot_err)),
        "rotation_error_deg_max": float(np.max(rot_err)),
        "rotation_error_over_2deg": int(np.sum(np.asarray(rot_err) > 2.0)),
        "excluded_expressions": list(UNOBSERVABLE_EXPRESSIONS),
    }
    print(f"  {n} faces (seed 0, yaw +-40, pitch +-20, 250 px wide, 1 px noise), MediaPipe-468 layout:")
    print(f"    face-region vertex error {res['vertex_error_mm']:.2f} mm (mean face {res['mean_face_vertex_error_mm']:.2f} mm; target < 2.5)")
    print(f"    active-weight MAE {res['active_weight_mae']:.3f} (target < 0.1); inactive observable weights < 0.05: "
          f"{100 * res['inactive_below_0.05']:.1f}%")
    print(f"    rotation error {res['rotation_error_deg_mean']:.2f} deg mean, {res['rotation_error_deg_max']:.2f} deg max "
          f"(target < 2; {res['rotation_error_over_2deg']} of {n} faces above)")
    print(f"    excluded (unobservable, held at 0): {', '.join(UNOBSERVABLE_EXPRESSIONS)}")
    return res


def bench_real(model: FaceModel, detector: MediaPipeDetector, found) -> dict:
    from skimage import data as skdata

    def errors(items):
        lms, cams = [], []
        for _, img, faces in items:
            for lm in faces:
                lms.append(lm)
                cams.append(Camera.from_fov(img.shape[1], img.shape[0]))
        fits = fit_landmarks(model, lms, cams)
        return [100 * f.reprojection_error_px / f.interocular_px for f in fits]

    dev = errors(found)
    astro_img = skdata.astronaut()
    astro = errors([("astronaut", astro_img, detector.detect(astro_img))])
    res = {
        "dev_faces": len(dev), "dev_error_pct_iod_mean": float(np.mean(dev)), "dev_error_pct_iod_max": float(np.max(dev)),
        "astronaut_faces": len(astro), "astronaut_error_pct_iod": float(np.mean(astro)) if astro else float("nan"),
    }
    print(f"  dev photos ({len(dev)} faces; the embedding was calibrated on these): "
          f"{res['dev_error_pct_iod_mean']:.2f}% IOD mean, {res['dev_error_pct_iod_max']:.2f}% max (target < 3%)")
    print(f"  astronaut (held out, {len(astro)} face): {res['astronaut_error_pct_iod']:.2f}% IOD")
    return res


# --------------------------------------------------------------------------------------------- eos baseline
def _dlib_annotations() -> list[tuple[str, int, int, np.ndarray]]:
    """(image file, width, height, [68, 2] points) for every box of the dev-photo XML files."""
    return [(f.image, f.width, f.height, f.points.astype(np.float32))
            for xml in sorted(DEV_PHOTOS.glob("*.xml")) for f in read_dlib_landmarks(xml)]


class _Eos:
    """eos-py with the Surrey Face Model (shape + 6 expression blendshapes), as in eos's fit-model example."""

    def __init__(self, eos_module, folder: Path):
        eos = self.eos = eos_module
        model = eos.morphablemodel.load_model(str(folder / "sfm_shape_3448.bin"))
        blendshapes = eos.morphablemodel.load_blendshapes(str(folder / "expression_blendshapes_3448.bin"))
        self.model = eos.morphablemodel.MorphableModel(
            model.get_shape_model(), blendshapes, color_model=eos.morphablemodel.PcaModel(),
            vertex_definitions=None, texture_coordinates=model.get_texture_coordinates(),
        )
        self.mapper = eos.core.LandmarkMapper(str(folder / "ibug_to_sfm.txt"))
        self.edges = eos.morphablemodel.load_edge_topology(str(folder / "sfm_3448_edge_topology.json"))
        self.contour_landmarks = eos.fitting.ContourLandmarks.load(str(folder / "ibug_to_sfm.txt"))
        self.model_contour = eos.fitting.ModelContour.load(str(folder / "sfm_model_contours.json"))
        self.mapped = [i for i in range(68) if self.mapper.convert(str(i + 1)) is not None]
        self.mapped_vertices = [int(self.mapper.convert(str(i + 1))) for i in self.mapped]

    def fit(self, pts: np.ndarray, width: int, height: int) -> tuple[float, np.ndarray]:
        """Fit one face; (seconds, [50, 2] projected mapped landmark vertices in continuous pixels)."""
        lms = [self.eos.core.Landmark(str(i + 1), [float(p[0]), float(p[1])]) for i, p in enumerate(pts)]
        t0 = time.perf_counter()
        mesh, pose, _, _ = self.eos.fitting.fit_shape_and_pose(
            self.model, lms, self.mapper, width, height, self.edges, self.contour_landmarks, self.model_contour
        )
        dt = time.perf_counter() - t0
        verts = np.asarray(mesh.vertices, dtype=np.float64)[self.mapped_vertices]
        clip = np.c_[verts, np.ones(len(verts))] @ np.asarray(pose.get_modelview()).T @ np.asarray(pose.get_projection()).T
        ndc = clip[:, :3] / clip[:, 3:]
        # eos's viewport is (0, height, width, -height): OpenGL y up -> image y down
        proj = np.c_[(ndc[:, 0] + 1) / 2 * width, (1 - ndc[:, 1]) / 2 * height]
        return dt, proj


def bench_eos(model: FaceModel, quick: bool) -> dict:
    try:
        import eos
    except ImportError:
        print("  skipped: eos-py is not installed (pip install eos-py==1.5.0)")
        return {"skipped": "eos-py not installed"}
    needed = ["sfm_shape_3448.bin", "expression_blendshapes_3448.bin", "ibug_to_sfm.txt",
              "sfm_3448_edge_topology.json", "sfm_model_contours.json"]
    missing = [n for n in needed if not (EOS_DIR / n).is_file()]
    if missing:
        print(f"  skipped: eos model files {missing} absent from {EOS_DIR}")
        return {"skipped": f"missing {missing}"}
    baseline = _Eos(eos, EOS_DIR)
    inner = np.array(baseline.mapped)

    sets = {}
    if DEV_PHOTOS.is_dir():
        sets["dlib annotations of dev photos"] = [(w, h, p) for _, w, h, p in _dlib_annotations()]
    synth = random_faces(model, 16 if quick else 40, seed=5, kind="ibug68")
    sets["projected random model faces"] = [(f.camera.width, f.camera.height, f.landmarks.points) for f in synth]

    out = {"inner_points": int(inner.size)}
    torch.set_num_threads(1)
    for name, items in sets.items():
        lms = [Landmarks.from_points(p, "ibug68") for _, _, p in items]
        cams = [Camera.from_fov(w, h) for w, h, _ in items]
        # ours: per-face time from single-face fits (1 thread), errors from one batched fit (identical results)
        ours_t = []
        for lm, cam in zip(lms[:1] * 2, cams[:1] * 2):  # warm-up
            fit_landmarks(model, [lm], [cam])
        for lm, cam in zip(lms, cams):
            t0 = time.perf_counter()
            fit_landmarks(model, [lm], [cam])
            ours_t.append(time.perf_counter() - t0)
        fits = fit_landmarks(model, lms, cams)
        iod = np.array([lm.interocular for lm in lms])
        ours_all = np.array([f.residuals.mean().item() for f in fits])
        ours_inner = np.array([f.residuals[inner].mean().item() for f in fits])
        eos_t, eos_err = [], []
        baseline.fit(items[0][2], items[0][0], items[0][1])  # warm-up
        for (w, h, p) in items:
            dt, proj = baseline.fit(p, w, h)
            eos_t.append(dt)
            eos_err.append(np.linalg.norm(proj - p[inner], axis=1).mean())
        eos_err = np.array(eos_err)
        r = {
            "faces": len(items),
            "ours_median_ms": float(np.median(ours_t) * 1000),
            "eos_median_ms": float(np.median(eos_t) * 1000),
            "ours_error_px_inner": float(ours_inner.mean()),
            "ours_error_px_all68": float(ours_all.mean()),
            "eos_error_px_inner": float(eos_err.mean()),
            "ours_error_pct_iod_inner": float((100 * ours_inner / iod).mean()),
            "eos_error_pct_iod_inner": float((100 * eos_err / iod).mean()),
        }
        r["time_ratio_ours_over_eos"] = r["ours_median_ms"] / r["eos_median_ms"]
        r["error_ratio_ours_over_eos"] = r["ours_error_px_inner"] / r["eos_error_px_inner"]
        out[name] = r
        print(f"  {name} ({len(items)} faces, mean IOD {iod.mean():.0f} px):")
        print(f"    time per face (1 thread): ours {r['ours_median_ms']:.1f} ms, eos {r['eos_median_ms']:.1f} ms "
              f"(ours/eos {r['time_ratio_ours_over_eos']:.2f})")
        print(f"    reprojection error on the {inner.size} inner points: ours {r['ours_error_px_inner']:.2f} px "
              f"({r['ours_error_pct_iod_inner']:.2f}% IOD), eos {r['eos_error_px_inner']:.2f} px "
              f"({r['eos_error_pct_iod_inner']:.2f}% IOD); ours/eos {r['error_ratio_ours_over_eos']:.2f}")
        print(f"    ours on all 68 points (jaw included): {r['ours_error_px_all68']:.2f} px")
        if name.startswith("projected"):
            print("    (faces drawn from our model, so this set favours ours: eos's 63-mode shape model with 6 expressions "
                  "cannot reproduce them exactly)")
    return out


# --------------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=None, help="Also write all numbers to this JSON file.")
    parser.add_argument("--quick", action="store_true", help="Fewer repeats and faces (a smoke run).")
    args = parser.parse_args(argv)

    t_start = time.perf_counter()
    env = _environment()
    torch.set_num_threads(1)
    print("affectsynth fitting benchmark")
    print(f"  commit {env['commit']}; python {env['versions']['python']}, torch {env['versions']['torch']}, "
          f"numpy {env['versions']['numpy']}, mediapipe {env['versions']['mediapipe']}, eos-py {env['versions']['eos']}")
    print(f"  CPU: {env['cpu']} ({env['logical_cpus']} logical CPUs, 1-min load {env['load_average_1min']:.2f} at start: "
          "other processes skew timings); torch threads set per section, 1 unless stated")
    result: dict = {"environment": env}

    model = FaceModel.default()
    print("\n[fit speed] (after detection; medians of repeats)")
    result["speed"] = bench_speed(model, args.quick)
    torch.set_num_threads(1)

    print("\n[synthetic accuracy]")
    result["synthetic"] = bench_synthetic(model, 64 if args.quick else 200)

    detector = MediaPipeDetector()
    if DEV_PHOTOS.is_dir():
        photos = sorted(DEV_PHOTOS.glob("*.jpg"))
        print("\n[detection] (MediaPipe, CPU; measured separately from the fit)")
        result["detection"], found = detect_dev_photos(detector, photos)
        print("\n[real photos] (MediaPipe-468 landmarks, 35-degree diagonal field of view)")
        result["real"] = bench_real(model, detector, found)
    else:
        print(f"\n[detection], [real photos]: skipped, {DEV_PHOTOS} absent")
    detector.close()

    print("\n[eos baseline] (eos-py; Surrey Face Model files are non-commercial, read here only)")
    result["eos"] = bench_eos(model, args.quick)

    result["total_s"] = time.perf_counter() - t_start
    print(f"\ntotal {result['total_s']:.1f} s")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
