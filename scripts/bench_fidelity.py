"""Expression fidelity on the dev photos: `affectsynth.verify` score per category and per variant.

For every face (the faces of scripts/show_synthesis.py: Tom Cruise, the astronaut, four faces of
bald_guys, two of 2008_001322, one of 2009_004587) and every category x EMFACS variant, the target
is synthesised on a face crop, the output is detected and fitted again, and scored against the
target (`verify`, with the face's `neutral_reference`). The same target scored on the face's
neutral output is the baseline: a score means something only where it beats that baseline
(neutral/rest scores 1 by construction: its output is the reference).
Prints medians per (category, variant) and per category, and the cost of one verification
(median and IQR, milliseconds).

Usage:
    OMP_NUM_THREADS=1 python scripts/bench_fidelity.py [--intensity 1.0] [--crop 256] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from show_synthesis import faces  # noqa: E402  (the same faces as the looking scripts)

from affectsynth.blendshapes import CATEGORIES, Expression  # noqa: E402
from affectsynth.synthesizer import Synthesizer  # noqa: E402
from affectsynth.verify import neutral_reference, verify  # noqa: E402


def _commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).resolve().parents[1], check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _q(xs: list[float]) -> tuple[float, float, float]:
    a = np.asarray(xs, dtype=np.float64)
    return float(np.median(a)), float(np.percentile(a, 25)), float(np.percentile(a, 75))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--intensity", type=float, default=1.0)
    ap.add_argument("--crop", type=int, default=256, help="face crop side the targets are synthesised on")
    ap.add_argument("--json", type=Path, default=None, help="also write all scores here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"commit {_commit()}, torch {torch.__version__}, numpy {np.__version__}, threads "
          f"{torch.get_num_threads()}, {platform.processor() or platform.machine()}")
    synth = Synthesizer()
    model = synth.expressions
    keys = [(c, v) for c in CATEGORIES for v in model.variants(c)]
    scores: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    base: dict[tuple[str, str], list[float]] = {k: [] for k in keys}
    lost: dict[tuple[str, str], int] = {k: 0 for k in keys}
    cost_ms: list[float] = []
    n_faces = 0
    for label, image, k in faces():
        fits = synth.fit(image)
        if len(fits) <= k:
            print(f"{label}: face {k} not found", file=sys.stderr)
            continue
        crop, fit = synth.crop_to_face(image, fits[k], args.crop, scale=1.5)
        ref = neutral_reference(synth, crop, fit)
        neutral = synth.synthesize(crop, Expression("neutral"), fit=fit)
        n_faces += 1
        for c, v in keys:
            target = Expression(c, args.intensity, v)
            res = synth.synthesize(crop, target, fit=fit)
            assert res.image.shape == crop.shape, "synthesis changed the crop's size"
            t0 = time.perf_counter()
            ver = verify(synth, res, target, reference=ref)
            cost_ms.append(1000 * (time.perf_counter() - t0))
            scores[(c, v)].append(ver.score)
            lost[(c, v)] += not ver.face_found
            base[(c, v)].append(verify(synth, neutral, target, reference=ref).score)
        print(f"{label}: done", file=sys.stderr, flush=True)
    if not n_faces:
        raise SystemExit("no dev-photo faces found (is ../shared/assets/dev-photos there?)")
    print(f"\n{n_faces} faces, intensity {args.intensity}, crop {args.crop} px; score median [IQR]; "
          "baseline = the same target scored on the face's neutral output")
    print(f"{'category/variant':<20} {'score':>6} {'IQR':>13} {'baseline':>9} {'margin':>7} {'no face':>8}")
    for c, v in keys:
        m, q1, q3 = _q(scores[(c, v)])
        b = float(np.median(base[(c, v)]))
        print(f"{c + '/' + v:<20} {m:6.3f} [{q1:5.3f}, {q3:5.3f}] {b:9.3f} {m - b:+7.3f} {lost[(c, v)]:8d}")
    print("\nper category (all variants)")
    for c in CATEGORIES:
        all_s = [s for (cc, _), xs in scores.items() if cc == c for s in xs]
        all_b = [s for (cc, _), xs in base.items() if cc == c for s in xs]
        print(f"{c:<20} {np.median(all_s):6.3f} baseline {np.median(all_b):6.3f}")
    m, q1, q3 = _q(cost_ms)
    print(f"\nverify cost per output: median {m:.0f} ms [IQR {q1:.0f}, {q3:.0f}] over {len(cost_ms)} outputs "
          f"({args.crop} px crops, detect + fit of a 192 px crop), plus one neutral reference per face")
    if args.json:
        args.json.write_text(json.dumps({
            "commit": _commit(), "intensity": args.intensity, "faces": n_faces,
            "scores": {f"{c}/{v}": s for (c, v), s in scores.items()},
            "baseline": {f"{c}/{v}": s for (c, v), s in base.items()}, "cost_ms": cost_ms,
        }, indent=1))


if __name__ == "__main__":
    main()
