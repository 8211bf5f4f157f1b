"""Benchmark one `Synthesizer.synthesize` call on a 256 px face crop, with and without each new step.

    OMP_NUM_THREADS=1 python scripts/bench_synthesis.py [--size 256] [--repeats 5] [--json PATH]

Wall time and the thread's CPU time (`time.thread_time`, less sensitive to other processes on
a shared machine) are both reported. Variants, measured in one run on the same prepared faces (warm caches, 8 categories per face):
  base       SynthSettings(expression_shading=False): the engine before the expression shading
  mesh       expression_shading=True, wrinkles=0: the mesh's own shading ratio only
  wrinkles   the defaults: mesh ratio + wrinkle maps + lifting of dropped folds
The step costs are the differences: mesh - base (normals, ratio image, apply), wrinkles - mesh
(wrinkle lookups, bumps, lifting); plus the one-off per-face cost of the light estimate, in
`prepare` (with vs without). Faces: the astronaut plus, when
../shared/assets/dev-photos exists, Tom Cruise and two faces of bald_guys. Public API only.
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

from affectsynth.blendshapes import CATEGORIES, Expression
from affectsynth.synthesizer import Synthesizer, SynthSettings

DEV = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"


def _faces(synth: Synthesizer, size: int) -> list[tuple[np.ndarray, object]]:
    import skimage.data

    photos = [(np.asarray(skimage.data.astronaut()), 0)]
    if DEV.is_dir():
        photos.append((np.asarray(Image.open(DEV / "Tom_Cruise_avp_2014_4.jpg").convert("RGB")), 0))
        bald = np.asarray(Image.open(DEV / "bald_guys.jpg").convert("RGB"))
        photos += [(bald, 0), (bald, 5)]
    out = []
    for img, k in photos:
        fits = synth.fit(img)
        if len(fits) > k:
            out.append(synth.crop_to_face(img, fits[k], size))
    return out


def _stats(xs: list[float]) -> dict:
    q1, q2, q3 = np.percentile(np.asarray(xs) * 1e3, [25, 50, 75])
    return {"median_ms": float(q2), "iqr_ms": float(q3 - q1), "n": len(xs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    variants = {
        "base": Synthesizer(settings=SynthSettings(expression_shading=False)),
        "mesh": Synthesizer(settings=SynthSettings(wrinkles=0.0)),
        "wrinkles": Synthesizer(),
    }
    faces = _faces(variants["wrinkles"], args.size)
    targets = [Expression(c, 1.0) for c in CATEGORIES]
    prepare = {"base": [], "wrinkles": []}
    for name in prepare:
        for crop, fit in faces:
            t = time.perf_counter()
            variants[name].prepare(crop, fit)
            prepare[name].append(time.perf_counter() - t)
    for synth in variants.values():  # warm-up: compiled kernels, wrinkle maps
        for crop, fit in faces:
            out = synth.synthesize(crop, targets[1], fit=fit)
            if out.image.shape != (args.size, args.size, 3):
                raise AssertionError(f"bench: output shape {out.image.shape}")
    times: dict[str, list[float]] = {k: [] for k in variants}
    cpu: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.repeats):
        for crop, fit in faces:
            for tg in targets:
                for name, synth in variants.items():  # interleaved: load drifts hit every variant alike
                    t, c = time.perf_counter(), time.thread_time()
                    synth.synthesize(crop, tg, fit=fit)
                    cpu[name].append(time.thread_time() - c)
                    times[name].append(time.perf_counter() - t)
    res = {k: _stats(v) for k, v in times.items()}
    base = res["base"]["median_ms"]
    for k in res:
        res[k]["vs_base"] = res[k]["median_ms"] / base
        res[k]["cpu"] = _stats(cpu[k])
        res[k]["cpu"]["vs_base"] = res[k]["cpu"]["median_ms"] / _stats(cpu["base"])["median_ms"]
    res["prepare"] = {k: _stats(v) for k, v in prepare.items()}
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "?"
    meta = {"commit": commit, "torch": torch.__version__, "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(), "size": args.size, "faces": len(faces),
            "targets": len(targets), "repeats": args.repeats}
    print(json.dumps(meta))
    print(f"{'variant':10s} {'wall ms':>9s} {'IQR':>7s} {'x base':>7s} | {'thread CPU ms':>13s} {'IQR':>7s} {'x base':>7s}")
    for k in variants:
        r, c = res[k], res[k]["cpu"]
        print(f"{k:10s} {r['median_ms']:9.2f} {r['iqr_ms']:7.2f} {r['vs_base']:7.3f} | "
              f"{c['median_ms']:13.2f} {c['iqr_ms']:7.2f} {c['vs_base']:7.3f}")
    for k, r in res["prepare"].items():
        print(f"prepare ({k}): median {r['median_ms']:.1f} ms per face")
    if args.json:
        Path(args.json).write_text(json.dumps({"meta": meta, "results": res}, indent=2))


if __name__ == "__main__":
    main()
