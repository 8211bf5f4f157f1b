"""Benchmark the engine end to end: outputs/s of `generate` (8 targets per photo), time per stage, peak memory,
and the dataloader transform's images/s with a warm fit cache.

    python scripts/bench_generate.py [--photos 16] [--size 256] [--workers 2] [--json PATH]

Public API only. Photos: skimage's astronaut plus the single-face crops of the dev photos when
`../shared/assets/dev-photos` exists (each face cropped to its own photo, so every photo has one face).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from affectsynth.batch import GenerateSettings, run_batch
from affectsynth.blendshapes import CATEGORIES, Expression
from affectsynth.crop import crop_square
from affectsynth.images import load_image, save_png
from affectsynth.synthesizer import Synthesizer
from affectsynth.transform import AffectAugment

DEV = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"


def _photos(n: int, folder: Path, synth: Synthesizer) -> list[Path]:
    import skimage.data

    sources = [skimage.data.astronaut()]
    if DEV.is_dir():
        for p in sorted(DEV.glob("*.jpg")):
            img = load_image(p)
            for fit in synth.fit(img):
                if min(fit.bbox[2] - fit.bbox[0], fit.bbox[3] - fit.bbox[1]) >= 60:
                    sources.append(crop_square(img, fit.bbox, 384, scale=2.2))
    paths = []
    for i in range(n):
        p = folder / f"photo_{i:03d}.png"
        save_png(p, sources[i % len(sources)])
        paths.append(p)
    return paths


def _median_iqr(xs: list[float]) -> tuple[float, float]:
    q1, q2, q3 = np.percentile(xs, [25, 50, 75])
    return float(q2), float(q3 - q1)


def stage_times(synth: Synthesizer, paths: list[Path], size: int, targets: list) -> dict:
    """Time each stage in this process (1 thread), medians over the photos."""
    stages: dict[str, list[float]] = {k: [] for k in ("load", "detect+fit", "crop", "prepare", "synthesize", "write")}
    tmp = Path(tempfile.mkdtemp())
    for p in paths:
        t = time.perf_counter(); img = load_image(p); stages["load"].append(time.perf_counter() - t)
        t = time.perf_counter(); fits = synth.fit(img); stages["detect+fit"].append(time.perf_counter() - t)
        if not fits:
            continue
        t = time.perf_counter(); crop, fit = synth.crop_to_face(img, fits[0], size); stages["crop"].append(time.perf_counter() - t)
        t = time.perf_counter(); synth.prepare(crop, fit); stages["prepare"].append(time.perf_counter() - t)
        for tg in targets:
            t = time.perf_counter(); res = synth.synthesize(crop, tg, fit=fit); stages["synthesize"].append(time.perf_counter() - t)
            if res.image.shape != (size, size, 3):
                raise AssertionError(f"bench: output shape {res.image.shape}")
            t = time.perf_counter(); save_png(tmp / "o.png", res.image, fsync=False); stages["write"].append(time.perf_counter() - t)
    shutil.rmtree(tmp)
    return {k: {"median_ms": _median_iqr(v)[0] * 1e3, "iqr_ms": _median_iqr(v)[1] * 1e3, "n": len(v)} for k, v in stages.items() if v}


def end_to_end(in_dir: Path, size: int, workers: int, targets: list, repeats: int) -> list[tuple[int, float]]:
    """(outputs, seconds) of `run_batch` over the photos in `in_dir`, start-up of the workers included."""
    runs = []
    for _ in range(repeats):
        out = Path(tempfile.mkdtemp())
        settings = GenerateSettings(targets=tuple(targets), size=size, workers=workers, seed=0)
        t = time.perf_counter()
        summary = run_batch(in_dir, out, settings)
        dt = time.perf_counter() - t
        if summary.n_failed:
            raise AssertionError(f"bench: {summary.n_failed} outputs failed")
        runs.append((len(list(out.rglob("*.png"))), dt))
        shutil.rmtree(out)
    return runs


def _subset(in_dir: Path, n: int) -> Path:
    sub = Path(tempfile.mkdtemp())
    for p in sorted(in_dir.glob("*.png"))[:n]:
        shutil.copy(p, sub / p.name)
    return sub


def transform_rate(paths: list[Path], repeats: int = 3) -> dict:
    """AffectAugment images/s on 256 px face crops, cold (first epoch: fits) and warm (cache hit)."""
    imgs = [np.asarray(Image.fromarray(load_image(p)).resize((256, 256))) for p in paths[:8]]
    aug = AffectAugment(targets=("happiness", "sadness", "surprise", "anger"), p=1.0, seed=0, label_preset="fer2013")
    t = time.perf_counter()
    for im in imgs:
        aug((im, 0))
    cold = len(imgs) / (time.perf_counter() - t)
    warm = []
    for e in range(repeats):
        aug.set_epoch(e + 1)
        t = time.perf_counter()
        for im in imgs:
            aug((im, 0))
        warm.append(len(imgs) / (time.perf_counter() - t))
    return {"cold_images_per_s": cold, "warm_images_per_s_median": float(np.median(warm)), "n_images": len(imgs)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=16)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()

    torch.set_num_threads(1)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    info = {"commit": commit, "torch": torch.__version__, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "python": sys.version.split()[0]}
    print(json.dumps(info))
    targets = [Expression(c, 1.0) for c in CATEGORIES]  # 8 targets per photo
    synth = Synthesizer()
    in_dir = Path(tempfile.mkdtemp())
    paths = _photos(args.photos, in_dir, synth)
    stages = stage_times(synth, paths[: min(6, len(paths))], args.size, targets)
    for k, v in stages.items():
        print(f"stage {k:11s} median {v['median_ms']:8.1f} ms  IQR {v['iqr_ms']:6.1f} ms  (n={v['n']})")
    per_output = stages["synthesize"]["median_ms"] + stages["write"]["median_ms"]
    per_photo = sum(stages[k]["median_ms"] for k in ("load", "detect+fit", "crop", "prepare"))
    print(f"one process, one thread: {per_photo:.0f} ms per photo + {per_output:.0f} ms per output "
          f"-> {1000 * len(targets) / (per_photo + len(targets) * per_output):.1f} outputs/s")
    half = _subset(in_dir, args.photos // 2)
    base = end_to_end(in_dir, args.size, 1, targets, 1)[0]
    small = end_to_end(half, args.size, args.workers, targets, args.repeats)
    full = end_to_end(in_dir, args.size, args.workers, targets, args.repeats)
    shutil.rmtree(half)
    (n_s, t_s), (n_f, t_f) = min(small, key=lambda r: r[1]), min(full, key=lambda r: r[1])
    steady = (n_f - n_s) / max(t_f - t_s, 1e-9)  # marginal rate: the workers' start-up cancels out
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(f"generate --size {args.size}, {len(targets)} targets/photo, {args.photos} photos: "
          f"workers=1 (in-process) {base[0] / base[1]:.1f} outputs/s; workers={args.workers}: {n_f / t_f:.1f} outputs/s "
          f"end to end ({t_f:.1f} s incl. worker start-up), steady state {steady:.1f} outputs/s "
          f"(marginal rate between {args.photos // 2} and {args.photos} photos; ratio to 1 worker {steady / (base[0] / base[1]):.2f}); "
          f"peak RSS {peak_mb:.0f} MB")
    rates = {"workers1": base, "half": small, "full": full, "steady_outputs_per_s": steady}
    tr = transform_rate(paths)
    print(f"AffectAugment 256 px: first epoch {tr['cold_images_per_s']:.1f} img/s, warm cache {tr['warm_images_per_s_median']:.1f} img/s")
    shutil.rmtree(in_dir)
    if args.json:
        args.json.write_text(json.dumps({**info, "stages": stages, "rates": rates, "peak_mb": peak_mb, "transform": tr}, indent=1))


if __name__ == "__main__":
    main()
