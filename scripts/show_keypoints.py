"""Do keypoints move with the face? AffectAugment on real faces with MediaPipe's own points as keypoints.

For each face (256 px crops) and target, the detected 468 MediaPipe points go in as keypoints; the
output is detected again, and the script prints the median distance between the moved points and the
re-detected ones, next to the distance the points would be off if they had not moved (over all
points, and over the points that moved more than 1 px). Writes an overlay per face under --out:
input points (blue), moved points (green), re-detected points on the output (red).

Usage:
    OMP_NUM_THREADS=1 python scripts/show_keypoints.py [--out /tmp/keypoints] [--targets surprise,happiness]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from affectsynth.sample_data import astronaut
from affectsynth.synthesizer import Synthesizer
from affectsynth.transform import AffectAugment

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/keypoints"))
    ap.add_argument("--targets", default="surprise,happiness,anger")
    ap.add_argument("--size", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    synth = Synthesizer()
    photos = {"astronaut": astronaut()}
    if (PHOTOS / "Tom_Cruise_avp_2014_4.jpg").is_file():
        photos["tom_cruise"] = np.asarray(Image.open(PHOTOS / "Tom_Cruise_avp_2014_4.jpg").convert("RGB"))
    print(f"threads {torch.get_num_threads()}; median px: moved vs re-detected | unmoved vs re-detected")
    for name, photo in photos.items():
        crop, _ = synth.crop_to_face(photo, synth.fit(photo)[0], args.size)
        det = synth.detector.detect(crop)[0].points[:468].astype(np.float64)
        row = [crop]
        for t in args.targets.split(","):
            aug = AffectAugment((t,), p=1.0, intensity=1.0, seed=0, synthesizer=synth)
            out = aug(image=crop, label=0, keypoints=det)
            again = synth.detector.detect(out["image"])[0].points[:468]
            moved, err_moved, err_still = out["keypoints"], None, None
            err_moved = np.linalg.norm(moved - again, axis=1)
            err_still = np.linalg.norm(det - again, axis=1)
            big = np.linalg.norm(moved - det, axis=1) > 1.0
            print(f"{name:11s} {t:10s} all {np.median(err_moved):.2f} | {np.median(err_still):.2f}   "
                  f"moving ({big.sum():3d} pts) {np.median(err_moved[big]) if big.any() else 0:.2f} | "
                  f"{np.median(err_still[big]) if big.any() else 0:.2f}")
            im = Image.fromarray(out["image"]).resize((args.size * 2, args.size * 2))
            d = ImageDraw.Draw(im)
            for pts, col in ((det, (60, 60, 255)), (again, (255, 40, 40)), (moved, (40, 255, 40))):
                for x, y in pts * 2:
                    d.point((x, y), fill=col)
            row.append(np.asarray(im.resize((args.size, args.size), Image.NEAREST)))
            im.save(args.out / f"{name}_{t}.png")
        Image.fromarray(np.concatenate(row, 1)).save(args.out / f"{name}_row.png")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
