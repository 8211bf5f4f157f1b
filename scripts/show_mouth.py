"""Mouth close-ups of synthesised targets on real faces (for looking at, not for tests).

Faces: the astronaut (smiles with teeth), Tom Cruise (smiles with teeth), faces of bald_guys, small
and turned faces of the PASCAL photos. Each face is first cropped to 256 px (`Synthesizer.crop_to_face`),
the size outputs are made at, then every target is synthesised on the crop. Writes, under --out
(default /tmp/mouth/):
  mouth_zoom.png    64 px around the mouth, 4x nearest (what the mouth pixels are)
  mouth_faces.png   the 256 px faces
  mouth_48gray.png  the faces at 48 px grayscale (the FER2013 size), shown 3x nearest

Usage:
    OMP_NUM_THREADS=1 python scripts/show_mouth.py [--out DIR] [--faces astronaut,Tom_Cruise]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from affectsynth.blendshapes import AUs, Expression
from affectsynth.grid import make_grid
from affectsynth.synthesizer import Synthesizer

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"

TARGETS = {
    "neutral": Expression("neutral"),
    "happy 0.3": Expression("happiness", 0.3),
    "happiness": Expression("happiness"),
    "sadness": Expression("sadness"),
    "surprise": Expression("surprise"),
    "fear": Expression("fear"),
    "disgust": Expression("disgust"),
    "anger": Expression("anger"),
    "anger open": AUs({"AU4": 1.0, "AU5": 0.6, "AU7": 0.6, "AU10": 0.6, "AU16": 0.6, "AU25": 1.0, "AU26": 0.6}),
    "contempt": Expression("contempt"),
}

#: (label, file or "astronaut", face index)
FACES = (
    ("astronaut", "astronaut", 0),
    ("Tom_Cruise", "Tom_Cruise_avp_2014_4.jpg", 0),
    ("bald_guys#0", "bald_guys.jpg", 0),
    ("bald_guys#5", "bald_guys.jpg", 5),
    ("2008_002079#0", "2008_002079.jpg", 0),
    ("2008_001322#1", "2008_001322.jpg", 1),
    ("2009_004587#0", "2009_004587.jpg", 0),
)


def load(name: str) -> np.ndarray | None:
    if name == "astronaut":
        import skimage.data

        return np.ascontiguousarray(skimage.data.astronaut())
    p = PHOTOS / name
    return np.asarray(Image.open(p).convert("RGB")) if p.exists() else None


def mouth_zoom(image: np.ndarray, landmarks: np.ndarray, side: int = 64, zoom: int = 4) -> np.ndarray:
    """`side` px square around the mouth (MediaPipe corners 61/291, lips 0/17), `zoom`x nearest."""
    cx = landmarks[[61, 291], 0].mean()
    cy = landmarks[[0, 17], 1].mean()
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    pad = np.pad(image, ((side, side), (side, side), (0, 0)))
    crop = pad[y0 + side:y0 + 2 * side, x0 + side:x0 + 2 * side]
    return np.asarray(Image.fromarray(crop).resize((side * zoom, side * zoom), Image.NEAREST))


def gray48(image: np.ndarray) -> np.ndarray:
    g = Image.fromarray(image).convert("L").resize((48, 48), Image.BILINEAR)
    return np.asarray(g.resize((144, 144), Image.NEAREST).convert("RGB"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="/tmp/mouth")
    ap.add_argument("--faces", default=None, help="comma-separated labels of FACES (default: all)")
    ap.add_argument("--targets", default=None, help="comma-separated labels of TARGETS (default: all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    synth = Synthesizer()
    faces = [f for f in FACES if args.faces is None or f[0] in args.faces.split(",")]
    targets = {k: v for k, v in TARGETS.items() if args.targets is None or k in args.targets.split(",")}
    zooms, fulls, grays, labels = [], [], [], []
    for label, name, k in faces:
        image = load(name)
        if image is None:
            print(f"{label}: {name} not found")
            continue
        fits = synth.fit(image)
        if len(fits) <= k:
            print(f"{label}: face {k} not found ({len(fits)} faces)")
            continue
        crop, fit = synth.crop_to_face(image, fits[k], 256)
        lm = fit.landmarks.cpu().numpy()
        row_z, row_f, row_g = [mouth_zoom(crop, lm)], [crop], [gray48(crop)]
        for t in targets.values():
            res = synth.synthesize(crop, t, fit=fit)
            row_z.append(mouth_zoom(res.image, np.asarray(res.labels.landmarks)))
            row_f.append(res.image)
            row_g.append(gray48(res.image))
        zooms.append(row_z)
        fulls.append(row_f)
        grays.append(row_g)
        yaw, pitch, _ = fit.pose_deg
        labels.append(label)
        print(f"{label}: face {max(fits[k].bbox[2] - fits[k].bbox[0], fits[k].bbox[3] - fits[k].bbox[1]):.0f} px "
              f"in the photo, yaw {yaw:.0f} pitch {pitch:.0f}", flush=True)
    cols = ["input", *targets]
    for fname, rows, cell in (("mouth_zoom.png", zooms, 256), ("mouth_faces.png", fulls, 256), ("mouth_48gray.png", grays, 144)):
        Image.fromarray(make_grid(rows, labels, cols, cell=cell)).save(out_dir / fname)
        print("wrote", out_dir / fname)


if __name__ == "__main__":
    main()
