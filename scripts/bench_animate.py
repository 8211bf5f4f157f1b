"""Benchmark `affectsynth.animate`: frames per second of one face along the VA circle, per frame size.

    python scripts/bench_animate.py [--sizes 128,256] [--frames 24] [--repeats 3] [--json PATH]

Public API only. The fit is done once before timing; the first sequence's first frame includes
the texture unwrap (later sequences of the same face reuse it from the synthesizer's cache), and is
reported separately. Prints medians and IQR of the steady per-frame time, and the end-to-end frames/s of a
sequence including its setup.
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

from affectsynth.animate import animate, circle_path, plan_path_frames
from affectsynth.sample_data import astronaut
from affectsynth.synthesizer import Synthesizer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    print(f"commit {commit}  torch {torch.__version__}  threads {torch.get_num_threads()}  cpu {platform.processor() or platform.machine()}")
    image = astronaut()
    results = {}
    for size in (int(s) for s in args.sizes.split(",")):
        synth = Synthesizer()
        t = time.perf_counter()
        fit = synth.fit(image)[0]
        t_fit = time.perf_counter() - t
        crop, cfit = synth.crop_to_face(image, fit, size)
        plan = plan_path_frames(circle_path(), args.frames, fps=12)
        per_frame, setups, seq_fps = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            stamps = []
            for fr in animate(synth, crop, plan, fit=cfit):
                assert fr.image.shape == (size, size, 3)
                stamps.append(time.perf_counter())
            setups.append(stamps[0] - t0)
            per_frame.extend(np.diff(stamps).tolist())
            seq_fps.append(len(stamps) / (stamps[-1] - t0))
        q1, q2, q3 = np.percentile(per_frame, [25, 50, 75])
        results[size] = {"fit_s": t_fit, "first_frame_s": setups[0], "frame_ms_median": 1e3 * q2,
                         "frame_ms_iqr": 1e3 * (q3 - q1), "steady_fps": 1.0 / q2,
                         "sequence_fps_median": float(np.median(seq_fps))}
        r = results[size]
        print(f"{size:4d} px: frame {r['frame_ms_median']:.0f} ms (IQR {r['frame_ms_iqr']:.0f}) = {r['steady_fps']:.2f} frames/s "
              f"steady; first frame {r['first_frame_s']:.2f} s; {r['sequence_fps_median']:.2f} frames/s over "
              f"{args.frames} frames; fit {r['fit_s']:.2f} s (once per photo)")
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
