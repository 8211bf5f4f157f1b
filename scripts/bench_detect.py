"""Benchmark of face detection + 478 landmarks: the torch port against MediaPipe in the same run.

Usage:
    python scripts/bench_detect.py [--threads 1] [--repeats 5] [--json PATH] [--device cpu]
    python scripts/bench_detect.py --largest [--repeats 5]
    python scripts/bench_detect.py --fused [--repeats 5]

Public API only (`affectsynth.fitting.TorchFaceDetector`; the baseline is MediaPipe's own graphs via
`scripts/mediapipe_reference.py`, measured when mediapipe is installed: `pip install -e '.[parity]'`).
Sections, medians over repeats after a warm-up:

- per photo: `detect(photo)` on each dev photo (detection, tiles of large photos, face mesh per face).
- both for the default detector and for `optimize=True` (traced, frozen CPU networks; the one-time
  build is reported separately).
- batch of 64 face crops: the faces of the dev photos cut out (their box enlarged 1.8x), cycled to
  64; the port runs `detect_batch(crops)` (each network once for all 64), MediaPipe runs
  `detect(crop)` 64 times (it has no batches). Reported per face.

- ``--largest`` (only this section): the largest face only against all faces, in the same run, thread-CPU
  ms per photo (median over repeats): ``detect(photo, max_faces=1)`` against ``detect(photo)``, and
  ``fit_image(photo, max_faces=1)`` against ``fit_image(photo)`` (detection + fit); the same face
  must come out (else it stops).
- ``--fused`` (only this section): each network with its parallel branches fused (the default) against
  the converted layers one by one (``fuse_branches=False``), same run, thread-CPU ms per call on a
  batch of 1 and 4 random inputs, interleaved (median of the repeats' medians); outputs must agree.

Wall time is reported per photo, process CPU time (summed over threads: MediaPipe runs several)
in total, as other processes on a shared machine skew wall times. Output shapes are checked (every crop must give a 478-point face) so that a no-op cannot look fast.
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
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from affectsynth.fitting import TorchFaceDetector  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEV_PHOTOS = ROOT.parent / "shared" / "assets" / "dev-photos"


def _rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


CPU_TIMES: list[tuple[str, float]] = []


def _median_ms(fn, repeats: int, label: str = "") -> tuple[float, float]:
    """(median wall ms, IQR ms); the median process CPU time (all threads) goes to CPU_TIMES."""
    fn()  # warm-up
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    q1, med, q3 = np.percentile(times, [25, 50, 75])
    CPU_TIMES.append((label, float(np.median(cpu) * 1000)))
    return float(med * 1000), float((q3 - q1) * 1000)


def _cpu_ms() -> float:
    return CPU_TIMES[-1][1]


def _crops(photos: dict[str, np.ndarray], detector, n: int = 64) -> list[np.ndarray]:
    crops = []
    for img in photos.values():
        h, w = img.shape[:2]
        for f in detector.detect(img):
            x0, y0, x1, y1 = f.bbox
            cx, cy, half = (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * 0.9
            crops.append(np.ascontiguousarray(img[int(max(0, cy - half)):int(min(h, cy + half)),
                                                  int(max(0, cx - half)):int(min(w, cx + half))]))
    return [crops[i % len(crops)] for i in range(n)]


def _thread_ms(fn, repeats: int) -> float:
    """Median thread-CPU ms of ``fn()`` over ``repeats`` calls after a warm-up."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.thread_time()
        fn()
        times.append(time.thread_time() - t0)
    return float(np.median(times) * 1000)


def bench_largest(photos: dict[str, np.ndarray], repeats: int) -> dict:
    """Largest face only (``max_faces=1``) against all faces, detection and detection + fit, per photo."""
    from affectsynth.fitting import FaceModel, fit_image

    detector, model = TorchFaceDetector(), FaceModel.default()
    print(f"\n{'photo':28s} {'faces':>5s} {'detect all':>10s} {'largest':>8s} {'ratio':>6s} {'fit all':>8s} {'largest':>8s} "
          f"{'ratio':>6s}   (thread-CPU ms, median of {repeats})")
    rows, totals = {}, np.zeros(4)
    for name, img in photos.items():
        every, one = detector.detect(img), detector.detect(img, max_faces=1)
        if (every[:1] and not one) or (one and np.abs(one[0].points - every[0].points).max() > 1e-3):
            raise SystemExit(f"bench_detect: {name}: max_faces=1 gave another face than the largest of all")
        ms = [_thread_ms(lambda: detector.detect(img), repeats), _thread_ms(lambda: detector.detect(img, max_faces=1), repeats),
              _thread_ms(lambda: fit_image(img, model=model, detector=detector), repeats),
              _thread_ms(lambda: fit_image(img, model=model, detector=detector, max_faces=1), repeats)]
        totals += ms
        rows[name] = {"faces": len(every), "detect_all_ms": ms[0], "detect_largest_ms": ms[1], "fit_all_ms": ms[2],
                      "fit_largest_ms": ms[3]}
        print(f"{name:28s} {len(every):5d} {ms[0]:10.1f} {ms[1]:8.1f} {ms[0] / ms[1]:6.2f} {ms[2]:8.1f} {ms[3]:8.1f} "
              f"{ms[2] / ms[3]:6.2f}")
    mean = totals / len(photos)
    print(f"{'mean per photo':28s} {'':5s} {mean[0]:10.1f} {mean[1]:8.1f} {mean[0] / mean[1]:6.2f} {mean[2]:8.1f} "
          f"{mean[3]:8.1f} {mean[2] / mean[3]:6.2f}")
    return {"photos": rows, "mean_ms": dict(zip(("detect_all", "detect_largest", "fit_all", "fit_largest"), mean.tolist()))}


def bench_fused(repeats: int) -> dict:
    """Fused branches against the layers one by one, per network and batch size."""
    from affectsynth.fitting.detection.blazeface import DATA_DIR
    from affectsynth.fitting.detection.graph import load_graph

    out = {}
    print(f"\n{'network':40s} {'batch':>5s} {'layers':>9s} {'one by one':>10s} {'fused':>7s} {'ratio':>6s}  (thread-CPU ms)")
    for name, size in (("mediapipe_face_landmark_with_attention", 192), ("mediapipe_face_detection_short_range", 128),
                       ("mediapipe_face_detection_full_range", 192)):
        plain, fused = (load_graph(DATA_DIR / f"{name}.npz", fuse_branches=f) for f in (False, True))
        for batch in (1, 4):
            x = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
            with torch.no_grad():
                if not all(torch.allclose(a, b, atol=1e-3, rtol=1e-4) for a, b in zip(plain(x), fused(x))):
                    raise SystemExit(f"bench_detect: {name}: fused outputs differ")
                pairs = [(_thread_ms(lambda: plain(x), 5), _thread_ms(lambda: fused(x), 5)) for _ in range(repeats)]
            before, after = (float(np.median(v)) for v in zip(*pairs))
            out[f"{name}/{batch}"] = {"plain_ms": before, "fused_ms": after}
            print(f"{name:40s} {batch:5d} {len(plain.layers):4d}->{len(fused.layers):<4d} {before:10.2f} {after:7.2f} "
                  f"{before / after:6.2f}")
    return out


def main() -> int:
    """Run the benchmark and print a table (and `--json`)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--photos", type=Path, default=DEV_PHOTOS)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--largest", action="store_true", help="only the largest-face section (see the docstring)")
    parser.add_argument("--fused", action="store_true", help="only the fused-branches section (see the docstring)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.largest or args.fused:
        if args.largest:
            result = bench_largest({p.name: _rgb(p) for p in sorted(args.photos.glob("*.jpg"))}, args.repeats)
        else:
            result = bench_fused(args.repeats)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1))
        return 0
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    try:
        from mediapipe_reference import ReferenceMediaPipeDetector
        import mediapipe

        baseline, mp_version = ReferenceMediaPipeDetector(), mediapipe.__version__
    except ImportError:
        baseline, mp_version = None, None
    print(f"bench_detect: commit {commit}, torch {torch.__version__}, numpy {np.__version__}, mediapipe {mp_version}, "
          f"torch threads {torch.get_num_threads()}, device {args.device}, CPU {platform.processor() or platform.machine()} "
          f"({os.cpu_count()} logical), load {os.getloadavg()[0]:.2f}")
    port = TorchFaceDetector(device=args.device)
    fast = TorchFaceDetector(device=args.device, optimize=True)
    t0 = time.perf_counter()
    fast.detect(np.zeros((64, 64, 3), np.uint8))
    build_s = time.perf_counter() - t0
    print(f"optimize=True: one-time trace + freeze of the three networks {build_s:.1f} s")
    photos = {p.name: _rgb(p) for p in sorted(args.photos.glob("*.jpg"))}
    result: dict = {"commit": commit, "threads": torch.get_num_threads(), "mediapipe": mp_version, "photos": {},
                    "optimize_build_s": build_s}
    print(f"\n{'photo':28s} {'size':>10s} {'faces':>5s} {'torch ms':>10s} {'optimized':>10s} {'mediapipe ms':>13s} "
          f"{'mp/torch':>9s} {'mp/opt':>7s}")
    for name, img in photos.items():
        n = len(port.detect(img))
        t, _ = _median_ms(lambda: port.detect(img), args.repeats)
        tc = _cpu_ms()
        o, _ = _median_ms(lambda: fast.detect(img), args.repeats)
        row = {"faces": n, "torch_ms": t, "torch_optimized_ms": o, "torch_cpu_ms": tc, "torch_optimized_cpu_ms": _cpu_ms()}
        m = None
        if baseline is not None:
            m, _ = _median_ms(lambda: baseline.detect(img), args.repeats)
            row["mediapipe_ms"] = m
            row["mediapipe_cpu_ms"] = _cpu_ms()
        result["photos"][name] = row
        print(f"{name:28s} {img.shape[1]:>4d}x{img.shape[0]:<5d} {n:5d} {t:10.1f} {o:10.1f} "
              f"{(f'{m:13.1f}' if m else '            -')} {(f'{m / t:9.2f}' if m else '        -')} "
              f"{(f'{m / o:7.2f}' if m else '      -')}")
    crops = _crops(photos, port)
    found = port.detect_batch(crops)
    if not all(len(f) >= 1 and f[0].points.shape == (478, 2) for f in found):
        raise SystemExit("bench_detect: a face crop gave no 478-point face")
    t, iqr = _median_ms(lambda: port.detect_batch(crops), max(1, args.repeats // 2))
    o, _ = _median_ms(lambda: fast.detect_batch(crops), max(1, args.repeats // 2))
    result["batch64"] = {"torch_ms_per_face": t / len(crops), "torch_iqr_ms": iqr, "torch_optimized_ms_per_face": o / len(crops)}
    line = (f"\nbatch of {len(crops)} face crops: torch {t / len(crops):.1f} ms/face, optimized {o / len(crops):.1f} ms/face "
            f"(one detect_batch call)")
    if baseline is not None:
        m, _ = _median_ms(lambda: [baseline.detect(c) for c in crops], max(1, args.repeats // 2))
        result["batch64"]["mediapipe_ms_per_face"] = m / len(crops)
        line += (f"; mediapipe {m / len(crops):.1f} ms/face (64 detect calls); mediapipe / torch {m / t:.2f}, "
                 f"mediapipe / optimized {m / o:.2f}")
    print(line)
    rows = result["photos"].values()
    if baseline is not None:
        tot = {k: sum(r[k] for r in rows) for k in ("torch_cpu_ms", "torch_optimized_cpu_ms", "mediapipe_cpu_ms")}
        result["cpu_ms_all_photos"] = tot
        print(f"process CPU time (all threads) over the {len(photos)} photos: torch {tot['torch_cpu_ms']:.0f} ms, "
              f"optimized {tot['torch_optimized_cpu_ms']:.0f} ms, mediapipe {tot['mediapipe_cpu_ms']:.0f} ms "
              "(wall times suffer from other load; CPU time less)")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
