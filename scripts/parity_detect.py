"""Parity report of the torch detector against MediaPipe's recorded output, and the 68-point fit error.

Usage:
    python scripts/parity_detect.py [--overlay /tmp/overlay.png] [--json PATH]

Reads `tests/fitting/data/mediapipe_reference.npz` (MediaPipe 0.10.21's own faces and landmarks on
the dev photos, recorded by `scripts/record_detection_reference.py`), runs `TorchFaceDetector` on
the same photos and prints, per photo: faces found by each, and the landmark difference (median
and max over the photo's faces of the per-face median / max pixel distance, faces paired by box
centre). Then it fits the face model to each detector's landmarks and measures the fit's
iBUG-68 points against dlib's 68-point annotations of the dev photos (`*_with_face_landmarks.xml`,
mean pixel error in % of the annotation's outer-eye-corner distance), for both detectors.
`--overlay` draws the port's landmarks on four photos into one PNG.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from affectsynth.fitting import Camera, FaceModel, Landmarks, TorchFaceDetector, fit_landmarks, project, reconstruct

ROOT = Path(__file__).resolve().parents[1]
DEV_PHOTOS = ROOT.parent / "shared" / "assets" / "dev-photos"
REFERENCE = ROOT / "tests" / "fitting" / "data" / "mediapipe_reference.npz"


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _annotations() -> list[tuple[str, np.ndarray]]:
    """(image file, [68, 2] points in continuous pixel coordinates) per annotated face."""
    out = []
    for xml in sorted(DEV_PHOTOS.glob("*_with_face_landmarks.xml")):
        text = xml.read_text(encoding="latin-1")
        for m in re.finditer(r"<image file='([^']+)'[^>]*>(.*?)</image>", text, re.S):
            for box in re.findall(r"<box[^>]*>(.*?)</box>", m.group(2), re.S):
                parts = re.findall(r"<part name='(\d+)' x='(-?\d+)' y='(-?\d+)'/>", box)
                if len(parts) == 68:
                    pts = np.zeros((68, 2), np.float32)
                    for name, x, y in parts:
                        pts[int(name)] = (float(x) + 0.5, float(y) + 0.5)
                    out.append((m.group(1), pts))
    return out


def _fit68(model: FaceModel, faces: list[Landmarks], size: tuple[int, int]) -> list[np.ndarray]:
    """The fitted model's iBUG-68 points in pixels, one [68, 2] per face."""
    if not faces:
        return []
    cams = [Camera.from_fov(*size) for _ in faces]
    fits = fit_landmarks(model, faces, cams)
    out = []
    for fit in fits:
        verts = reconstruct(model, fit)[None]
        pts = model.landmark_points(verts, "ibug68")
        k = torch.tensor([[fit.camera.fx, fit.camera.fy, fit.camera.cx, fit.camera.cy]], dtype=pts.dtype)
        out.append(project(pts, k)[0].detach().numpy())
    return out


def _fit_error(model: FaceModel, found: dict[str, list[Landmarks]], sizes: dict[str, tuple[int, int]]) -> tuple[float, int]:
    """Mean 68-point error (% inter-ocular) over annotated faces that a fitted face matches."""
    errs = []
    fitted = {name: _fit68(model, faces, sizes[name]) for name, faces in found.items()}
    for name, ann in _annotations():
        iod = float(np.linalg.norm(ann[36] - ann[45]))
        best = min((np.linalg.norm(p - ann, axis=1).mean() for p in fitted.get(name, [])), default=None)
        if best is not None and best < iod:  # the same face
            errs.append(100 * best / iod)
    return float(np.mean(errs)), len(errs)


def _pair(ref_boxes: np.ndarray, faces: list[Landmarks]) -> list[Landmarks]:
    centres = np.array([[(f.bbox[0] + f.bbox[2]) / 2, (f.bbox[1] + f.bbox[3]) / 2] for f in faces])
    return [faces[int(np.argmin(np.linalg.norm(centres - (b[:2] + b[2:]) / 2, axis=1)))] for b in ref_boxes]


def main() -> int:
    """Print the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overlay", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not DEV_PHOTOS.is_dir():
        print(f"parity_detect: {DEV_PHOTOS} absent", file=sys.stderr)
        return 1
    with np.load(REFERENCE, allow_pickle=False) as z:
        ref = {k: z[k] for k in z.files}
    meta = json.loads(str(ref.pop("meta")))
    det = TorchFaceDetector()
    images = {n: _rgb(DEV_PHOTOS / n) for n in sorted(meta["photos"])}
    sizes = {n: (im.shape[1], im.shape[0]) for n, im in images.items()}
    found = dict(zip(images, det.detect_batch(list(images.values()))))
    report: dict = {"photos": {}}
    print(f"{'photo':28s} {'mediapipe':>9s} {'torch':>5s} {'median px':>10s} {'worst median':>12s} {'max px':>7s}")
    ref_found = {}
    for name in images:
        key = Path(name).stem
        pts, depth, boxes, scores = (ref[f"{key}/{f}"] for f in ("points", "depth", "bbox", "score"))
        ref_found[name] = [Landmarks(points=p, kind="mediapipe468", bbox=tuple(map(float, b)), depth=d, score=float(s))
                           for p, d, b, s in zip(pts, depth, boxes, scores)]
        row = {"mediapipe_faces": len(pts), "torch_faces": len(found[name])}
        if len(pts) and found[name]:
            d = [np.linalg.norm(f.points - p, axis=1) for p, f in zip(pts, _pair(boxes, found[name]))]
            row.update(median_px=float(np.median([np.median(x) for x in d])),
                       worst_face_median_px=float(max(np.median(x) for x in d)), max_px=float(max(x.max() for x in d)))
            print(f"{name:28s} {len(pts):9d} {len(found[name]):5d} {row['median_px']:10.3f} {row['worst_face_median_px']:12.3f} {row['max_px']:7.2f}")
        else:
            print(f"{name:28s} {len(pts):9d} {len(found[name]):5d}")
        report["photos"][name] = row
    model = FaceModel.default()
    torch.manual_seed(0)
    e_ref, n_ref = _fit_error(model, ref_found, sizes)
    e_port, n_port = _fit_error(model, found, sizes)
    report["fit68"] = {"mediapipe_pct_iod": e_ref, "mediapipe_faces": n_ref, "torch_pct_iod": e_port, "torch_faces": n_port}
    print(f"\n68-point fit error vs dlib annotations: MediaPipe landmarks {e_ref:.2f}% IOD ({n_ref} faces), "
          f"torch port {e_port:.2f}% IOD ({n_port} faces)")
    if args.overlay:
        tiles = []
        for name in ("Tom_Cruise_avp_2014_4.jpg", "bald_guys.jpg", "2008_004176.jpg", "2008_007676.jpg"):
            im = Image.fromarray(images[name]).convert("RGB")
            draw = ImageDraw.Draw(im)
            r = max(1, im.width // 500)
            for f in found[name]:
                draw.rectangle(f.bbox, outline=(0, 255, 0), width=r)
                for x, y in f.points[:468]:
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 40, 40))
                for x, y in f.points[468:]:
                    draw.ellipse((x - r, y - r, x + r, y + r), fill=(40, 160, 255))
            im.thumbnail((900, 900))
            tiles.append(im)
        sheet = Image.new("RGB", (sum(t.width for t in tiles), max(t.height for t in tiles)), "white")
        x = 0
        for t in tiles:
            sheet.paste(t, (x, 0))
            x += t.width
        sheet.save(args.overlay)
        print(f"wrote {args.overlay}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
