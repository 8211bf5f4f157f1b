"""Benchmark the per-output face render on real inputs: `FaceRenderer.render`, `FaceModel.reconstruct`
and the output landmarks, as `generate --size 256` calls them; optionally against a baseline commit.

    python scripts/bench_face_render.py [--photos 6] [--repeats 7] [--baseline-ref main] [--json PATH]

How: one in-process `run_batch` over the dev photos (8 targets each, one torch thread) records the
arguments of every `FaceRenderer.render`, `FaceModel.reconstruct` and `compose.output_landmarks`
call (`torch.save` to a temporary file). Each tree (this one, and ``--baseline-ref``'s in a
temporary git worktree, imported through a shim package dir) then replays those calls in a
subprocess, ``--repeats`` rounds, interleaved between the trees; every call is timed in thread-CPU
(`time.thread_time`), and the stage functions of `bench_generate.HOOKS` charge exclusive time to
their stage. Printed: the median over rounds of ms per output per stage, and the ratios.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
TREE = HERE.parents[1]
_spec = importlib.util.spec_from_file_location("bench_generate", HERE.parent / "bench_generate.py")
bench_generate = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(bench_generate)  # type: ignore[union-attr]

#: the stages this benchmark reports (the face render's share of `bench_generate.HOOKS`)
STAGES = ("deform", "rasterize", "interpolate", "texture", "render.shade", "antialias", "teeth", "render.other",
          "landmarks_out")


def capture(photos: int, path: Path) -> int:
    """Run `generate`'s batch over `photos` dev photos and save the render calls' arguments to `path`."""
    import torch

    torch.set_num_threads(1)
    from affectsynth import compose
    from affectsynth.batch import make_synthesizer, run_batch
    from affectsynth.blendshapes import CATEGORIES, Expression
    from affectsynth.face_render import FaceRenderer
    from affectsynth.fitting import FaceModel
    from affectsynth.generate_settings import GenerateSettings

    calls: list[tuple[str, tuple, dict]] = []

    def record(owner, name, kind):
        fn = getattr(owner, name)

        def wrapped(*a, **k):
            calls.append((kind, a[1:], k))  # methods: without self; output_landmarks: without the renderer
            return fn(*a, **k)
        setattr(owner, name, wrapped)

    record(FaceRenderer, "render", "render")
    record(FaceModel, "reconstruct", "reconstruct")
    record(compose, "output_landmarks", "landmarks")
    settings = GenerateSettings(targets=tuple(Expression(c, 1.0) for c in CATEGORIES), size=256, workers=1, seed=0)
    tmp = Path(tempfile.mkdtemp())
    try:
        in_dir = bench_generate.photo_dir(photos, tmp / "in")
        run_batch(in_dir, tmp / "out", settings, synthesizer=make_synthesizer(settings))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    torch.save(calls, path)
    return sum(kind == "render" for kind, _, _ in calls)


def replay(path: Path, repeats: int) -> dict:
    """Replay the recorded calls `repeats` times; median thread-CPU ms per output per stage."""
    import torch

    torch.set_num_threads(1)
    from affectsynth import compose
    from affectsynth.face_render import FaceRenderer
    from affectsynth.fitting import FaceModel

    calls = torch.load(path, weights_only=False)
    model = FaceModel.default()
    renderer = FaceRenderer(model)
    acc: dict[str, float] = {}
    bench_generate._instrument(acc)
    run = {"render": lambda a, k: renderer.render(*a, **k), "reconstruct": lambda a, k: model.reconstruct(*a, **k),
           "landmarks": lambda a, k: compose.output_landmarks(renderer, *a, **k)}
    n_out = sum(kind == "render" for kind, _, _ in calls)
    for kind, a, k in calls[: 3 * 8]:  # warm-up: numba cache loads, cached properties
        run[kind](a, k)
    rounds = []
    for _ in range(repeats):
        acc.clear()
        t0 = time.thread_time()
        for kind, a, k in calls:
            run[kind](a, k)
        total = (time.thread_time() - t0) * 1e3
        rounds.append({"total": total / n_out, **{s: acc.get(s, 0.0) / n_out for s in STAGES}})
    return {"outputs": n_out, **{s: statistics.median(r[s] for r in rounds) for s in ("total", *STAGES)}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--baseline-ref", help="git ref replayed the same way in a temporary worktree")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child-replay", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_replay:
        print(json.dumps(replay(args.child_replay, 1)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_face_render_"))
    try:
        with bench_generate.trees_to_measure(args.baseline_ref, tmp) as trees:
            calls = tmp / "calls.pt"
            env0 = {**os.environ, "PYTHONPATH": str(bench_generate.shim_for(TREE, tmp / "shim_capture"))}
            subprocess.run([sys.executable, "-c", f"import runpy, sys; sys.argv = ['x']; m = runpy.run_path({str(HERE)!r}); "
                            f"print(m['capture']({args.photos}, __import__('pathlib').Path({str(calls)!r})))"],
                           env=env0, check=True)
            envs = bench_generate.shim_envs(trees, tmp)
            runs: dict[str, list[dict]] = {label: [] for label in trees}
            for _ in range(args.repeats):
                for label in trees:
                    out = subprocess.run([sys.executable, str(HERE), "--child-replay", str(calls)], env=envs[label],
                                         capture_output=True, text=True, check=True)
                    runs[label].append(json.loads(out.stdout.strip().splitlines()[-1]))
            med = {label: {s: statistics.median(r[s] for r in rs) for s in ("total", *STAGES)} for label, rs in runs.items()}
            print(f"# {runs['this tree'][0]['outputs']} outputs, {args.repeats} rounds, thread-CPU ms per output (median)")
            print(f"{'stage':14s} " + " ".join(f"{label:>22s}" for label in trees) + ("   ratio" if args.baseline_ref else ""))
            for s in (*STAGES, "total"):
                row = f"{s:14s} " + " ".join(f"{med[label][s]:22.3f}" for label in trees)
                if args.baseline_ref:
                    base = med["baseline " + args.baseline_ref][s]
                    row += f"   {med['this tree'][s] / base:5.2f}" if base > 0 else "      -"
                print(row)
            if args.json:
                args.json.write_text(json.dumps({"median": med, "runs": runs}, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
