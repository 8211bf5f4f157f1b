"""Benchmark the per-output composite path (`compose.render_and_composite` less the render) on the dev photos.

    python scripts/bench_compose.py [--photos 6] [--repeats 5] [--profile]

The dev photos are fitted and cropped as `generate --size 256` does, and each of the 8 category
targets is synthesised once while the arguments of `render_and_composite` are recorded. Those calls
are then replayed ``--repeats`` times on one torch thread, each stage charged its exclusive
thread-CPU time (`time.thread_time`): warp (`motion_window`, `motion_field`), composite,
shading (`shading_ratio`; its `furrows` kernel as wrinkles) and shading.apply (`apply_shading`),
the stage names of `scripts/bench_generate.py`. Printed: the median over repeats of ms per output.
``--profile`` prints a cProfile of one replay instead.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import pstats
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

DEV = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"
PHOTOS = ("2007_007763", "2008_001009", "2008_001322", "2008_002079", "2008_002470", "2008_002506",
          "2008_004176", "2008_007676", "2009_004587", "Tom_Cruise_avp_2014_4", "bald_guys")
#: (module, attribute, stage): exclusive thread-CPU time goes to the innermost running stage
HOOKS = (
    ("affectsynth.compose", "motion_window", "warp"),
    ("affectsynth.compose", "motion_field", "warp"),
    ("affectsynth.compose", "composite", "composite"),
    ("affectsynth.expression_shading", "furrows", "wrinkles"),
    ("affectsynth.compose", "shading_ratio", "shading"),
    ("affectsynth.compose", "apply_shading", "shading.apply"),
    ("affectsynth.compose", "FaceRenderer.render", "render"),
)


def record_calls(n_photos: int) -> list[tuple[tuple, dict]]:
    """The (args, kwargs) of every `render_and_composite` call of `generate --size 256` on the dev photos."""
    from affectsynth import compose
    from affectsynth.batch import make_synthesizer
    from affectsynth.blendshapes import CATEGORIES, Expression
    from affectsynth.generate_settings import GenerateSettings

    settings = GenerateSettings(targets=tuple(Expression(c, 1.0) for c in CATEGORIES), size=256, workers=1, seed=0)
    synth = make_synthesizer(settings)
    calls: list[tuple[tuple, dict]] = []
    original = compose.render_and_composite

    def recording(*a, **k):
        calls.append((a, k))
        return original(*a, **k)

    compose.render_and_composite = recording
    try:
        for name in PHOTOS[:n_photos]:
            image = np.asarray(Image.open(DEV / f"{name}.jpg").convert("RGB"))
            fits = synth.fit(image)
            if not fits or synth.check(fits[0], settings.gates) is not None:
                continue
            crop, fit = synth.crop_to_face(image, fits[0], 256, scale=settings.crop_scale)
            for i, t in enumerate(settings.targets):
                synth.synthesize(crop, t, fit=fit, rng_seed=i)
    finally:
        compose.render_and_composite = original
    return calls


def instrument(acc: dict[str, float]) -> None:
    """Wrap the HOOKS with exclusive thread-CPU timers adding ms into `acc`."""
    import importlib

    stack: list[list] = []

    def wrap(fn, stage):
        @functools.wraps(fn)
        def timed(*a, **k):
            stack.append([stage, time.thread_time(), 0.0])
            try:
                return fn(*a, **k)
            finally:
                st, t0, child = stack.pop()
                dt = time.thread_time() - t0
                acc[st] = acc.get(st, 0.0) + (dt - child) * 1e3
                if stack:
                    stack[-1][2] += dt
        return timed

    for mod_name, attr, stage in HOOKS:
        mod = importlib.import_module(mod_name)
        owner, name = (mod, attr) if "." not in attr else (getattr(mod, attr.split(".")[0]), attr.split(".")[1])
        setattr(owner, name, wrap(getattr(owner, name), stage))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from affectsynth import compose

    calls = record_calls(args.photos)
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        for a, k in calls:
            compose.render_and_composite(*a, **k)
        prof.disable()
        pstats.Stats(prof).sort_stats(__import__("os").environ.get("SORT", "tottime")).print_stats(int(__import__("os").environ.get("NSTAT", "35")))
        return
    acc: dict[str, float] = {}
    instrument(acc)
    runs = []
    for _ in range(args.repeats):
        acc.clear()
        t0 = time.thread_time()
        for a, k in calls:
            compose.render_and_composite(*a, **k)
        total = (time.thread_time() - t0) * 1e3
        runs.append({**acc, "compose.other": total - sum(acc.values()), "total": total})
    n = len(calls)
    stages = ("warp", "composite", "shading", "wrinkles", "shading.apply", "compose.other", "render", "total")
    med = {s: statistics.median(r.get(s, 0.0) for r in runs) / n for s in stages}
    mine = sum(med[s] for s in stages[:6])
    print(f"{n} outputs, {args.repeats} repeats, ms thread-CPU per output (median):")
    print("  " + ", ".join(f"{s} {med[s]:.2f}" for s in stages) + f" | composite path (all but render) {mine:.2f}")


if __name__ == "__main__":
    main()
