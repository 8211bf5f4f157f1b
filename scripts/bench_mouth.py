"""Per-output cost of synthesis at 256 px, mouth-heavy targets (public API only).

Faces: the astronaut (smiles with teeth: the photo's own teeth are drawn) and, when the dev photos
are there, bald_guys.jpg face 5 (closed neutral mouth: material teeth, closed lips). Each face is
cropped to 256 px (`Synthesizer.crop_to_face`) and prepared once (the cache); each output is one
`Synthesizer.synthesize` call. Prints median and IQR per (face, target) over --repeats, and the
median over all outputs. Run it on two checkouts to compare (PYTHONPATH to another tree).

Usage:
    OMP_NUM_THREADS=1 python scripts/bench_mouth.py [--repeats 15] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

import affectsynth
from affectsynth.blendshapes import AUs, Expression
from affectsynth.synthesizer import Synthesizer

PHOTOS = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"
TARGETS = {
    "neutral": Expression("neutral"),
    "happiness": Expression("happiness"),
    "surprise": Expression("surprise"),
    "anger open": AUs({"AU4": 1.0, "AU5": 0.6, "AU7": 0.6, "AU10": 0.6, "AU16": 0.6, "AU25": 1.0, "AU26": 0.6}),
}


def faces() -> list[tuple[str, np.ndarray, int]]:
    import skimage.data

    out = [("astronaut", np.ascontiguousarray(skimage.data.astronaut()), 0)]
    bald = PHOTOS / "bald_guys.jpg"
    if bald.exists():
        out.append(("bald_guys#5", np.asarray(Image.open(bald).convert("RGB")), 5))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(affectsynth.__file__).parent).stdout.strip()
    except OSError:
        commit = "?"
    print(f"affectsynth from {Path(affectsynth.__file__).parent} ({commit}), torch {torch.__version__}, "
          f"threads {torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    synth = Synthesizer()
    rows, all_t = [], []
    for label, image, k in faces():
        crop, fit = synth.crop_to_face(image, synth.fit(image)[k], 256)
        synth.prepare(crop, fit)
        for name, target in TARGETS.items():
            out = synth.synthesize(crop, target, fit=fit)  # warm-up
            if out.image.shape != crop.shape:
                raise SystemExit(f"bench_mouth: output {out.image.shape} != input {crop.shape}")
            times = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                synth.synthesize(crop, target, fit=fit)
                times.append(time.perf_counter() - t0)
            q1, med, q3 = np.percentile(times, [25, 50, 75]) * 1000
            rows.append({"face": label, "target": name, "median_ms": med, "iqr_ms": q3 - q1})
            all_t += times
            print(f"{label:14s} {name:11s} median {med:7.2f} ms  IQR {q3 - q1:5.2f} ms", flush=True)
    print(f"all outputs: median {np.median(all_t) * 1000:.2f} ms over {len(all_t)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"commit": commit, "rows": rows,
                                               "median_ms": float(np.median(all_t) * 1000)}, indent=1))


if __name__ == "__main__":
    main()
