"""Benchmark the per-output composite path (`compose.render_and_composite` less the render) on the dev photos.

    python scripts/bench_compose.py [--photos 6] [--repeats 5] [--profile] [--baseline-ref a1b5182 [--rounds 3]]

The dev photos are fitted and cropped as `generate --size 256` does, and each of the 8 category
targets is synthesised once while the arguments of `render_and_composite` are recorded. Those calls
are then replayed ``--repeats`` times on one torch thread, each stage charged its exclusive
thread-CPU time (`time.thread_time`): warp (`motion_window`, `motion_field`), composite,
shading (`shading_ratio`; its `furrows` kernel as wrinkles) and shading.apply (`apply_shading`),
the stage names of `scripts/bench_generate.py`. Printed: the median over repeats of ms per output.
``--profile`` prints a cProfile of one replay instead. ``--baseline-ref REF`` measures this tree and
REF (checked out into a temporary git worktree, imported through `bench_generate.shim_for`) in child
processes, ``--rounds`` times interleaved so both see the same load, and prints both and their ratios.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve()
DEV = HERE.parents[2] / "shared" / "assets" / "dev-photos"
STAGES = ("warp", "composite", "shading", "wrinkles", "shading.apply", "compose.other", "render", "total")
#: the stages of this slice: all of `render_and_composite` but the render
MINE = STAGES[:6]
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


def replay(n_photos: int, repeats: int) -> dict[str, float]:
    """Median over ``repeats`` replays of the recorded calls: ms thread-CPU per output per stage (and "outputs")."""
    from affectsynth import compose

    calls = record_calls(n_photos)
    acc: dict[str, float] = {}
    instrument(acc)
    runs = []
    for _ in range(repeats):
        acc.clear()
        t0 = time.thread_time()
        for a, k in calls:
            compose.render_and_composite(*a, **k)
        total = (time.thread_time() - t0) * 1e3
        runs.append({**acc, "compose.other": total - sum(acc.values()), "total": total})
    n = len(calls)
    return {"outputs": n, **{s: statistics.median(r.get(s, 0.0) for r in runs) / n for s in STAGES}}


def line(med: dict[str, float], base: dict[str, float] | None = None) -> str:
    """One tree's stages, and with ``base`` the ratios baseline / this."""
    def cell(s: str, v: float) -> str:
        return f"{s} {v:.2f}" + ("" if base is None else f" (x{base[s] / max(v, 1e-9):.2f})")
    mine = sum(med[s] for s in MINE)
    out = ", ".join(cell(s, med[s]) for s in STAGES) + f" | composite path (all but render) {mine:.2f}"
    return out + ("" if base is None else f" (x{sum(base[s] for s in MINE) / max(mine, 1e-9):.2f})")


def compare(args) -> None:
    """This tree against ``args.baseline_ref``: child replays, the trees interleaved ``args.rounds`` times."""
    from bench_generate import shim_envs, trees_to_measure  # noqa: PLC0415  (the scripts folder is on sys.path)

    tmp = Path(tempfile.mkdtemp(prefix="bench_compose_"))
    try:
        with trees_to_measure(args.baseline_ref, tmp) as trees:
            envs = shim_envs(trees, tmp)
            runs: dict[str, list[dict]] = {label: [] for label in trees}
            for _ in range(args.rounds):
                for label in trees:
                    res = subprocess.run([sys.executable, str(HERE), "--child", "--photos", str(args.photos), "--repeats",
                                          str(args.repeats)], env=envs[label], capture_output=True, text=True)
                    if res.returncode != 0:
                        raise SystemExit(f"bench_compose: replay of {label} failed:\n{res.stderr[-3000:]}")
                    runs[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
            med = {label: {s: statistics.median(r[s] for r in rs) for s in STAGES} for label, rs in runs.items()}
            n = runs["this tree"][0]["outputs"]
            base = med[f"baseline {args.baseline_ref}"]
            print(f"{n} outputs, {args.rounds} rounds x {args.repeats} repeats, ms thread-CPU per output (median):")
            print(f"  baseline {args.baseline_ref}: " + line(base))
            print("  this tree: " + line(med["this tree"], base))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--baseline-ref", help="git ref measured the same way in a temporary worktree")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per tree with --baseline-ref")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.baseline_ref:
        compare(args)
        return
    if args.child:
        print(json.dumps(replay(args.photos, args.repeats)))
        return
    if args.profile:
        from affectsynth import compose

        calls = record_calls(args.photos)
        prof = cProfile.Profile()
        prof.enable()
        for a, k in calls:
            compose.render_and_composite(*a, **k)
        prof.disable()
        pstats.Stats(prof).sort_stats(os.environ.get("SORT", "tottime")).print_stats(int(os.environ.get("NSTAT", "35")))
        return
    med = replay(args.photos, args.repeats)
    print(f"{med['outputs']} outputs, {args.repeats} repeats, ms thread-CPU per output (median):")
    print("  " + line(med))


if __name__ == "__main__":
    main()
