"""Measure what a `generate` worker costs to start and what one image and one target cost, in CPU time.

    python scripts/bench_workers.py [--starts 3] [--photos 4] [--targets 8] [--size 256]

Prints medians of:
- worker start: a spawned process importing the engine (torch, affectsynth) and building a
  Synthesizer (`affectsynth.batch.make_synthesizer`), as `run_pool`'s initializer does; CPU time
  of the child (``time.process_time`` inside it: since the process started, so the spawn
  bootstrap and the imports of this script count as "import") and the parent's wall time for the
  round trip;
- in-process build: the same Synthesizer built in this process (the in-process run pays it too);
- per image: load + detect + fit + crop (`process_image` with every output already done);
- per target: (a whole image with all targets - per image) / targets: synthesise + write one
  output, with the image's texture unwrap shared out over its targets.

CPU time (process / thread time), not wall time: the machine this was written on (2 cores) is
shared with other jobs, whose load inflates wall time. Compare the printed numbers with
`affectsynth.workers.MEASURED`, the costs `default_workers` decides from.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from affectsynth.batch import GenerateSettings, make_synthesizer, plan_jobs, process_image
from affectsynth.blendshapes import CATEGORIES, Expression
from affectsynth.images import load_image, save_png
from affectsynth.sample_data import ASTRONAUT_PATH


def _child_start(q: "mp.Queue") -> None:
    """Spawned child: what `affectsynth.batch._worker_init` does, timed in CPU time."""
    c0, w0 = time.process_time(), time.perf_counter()  # CPU time since this process started: spawn + imports
    import torch as _torch

    from affectsynth.batch import GenerateSettings as _GS, make_synthesizer as _make
    from affectsynth.blendshapes import Expression as _E

    _torch.set_num_threads(1)
    c1 = time.process_time()
    _make(_GS(targets=(_E("happiness", 1.0),)))
    c2 = time.process_time()
    q.put({"import_cpu_s": c1, "build_cpu_s": c2 - c1, "child_wall_s": time.perf_counter() - w0})


def worker_start(n: int) -> list[dict]:
    """``n`` spawned starts: CPU time in the child, wall time seen by the parent (spawn included)."""
    ctx = mp.get_context("spawn")
    out = []
    for _ in range(n):
        q = ctx.Queue()
        t = time.perf_counter()
        p = ctx.Process(target=_child_start, args=(q,))
        p.start()
        r = q.get(timeout=600)
        p.join()
        r["parent_wall_s"] = time.perf_counter() - t
        out.append(r)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--starts", type=int, default=3, help="worker starts to time")
    ap.add_argument("--photos", type=int, default=4, help="photos to time per-image and per-target costs on")
    ap.add_argument("--targets", type=int, default=8, help="targets per photo (at most 8 categories)")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--end-to-end", default="", metavar="N,N,...",
                    help="also time run_batch with workers=1 and 2 on N photos each (wall time, best of 2)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(json.dumps({"cpus": os.cpu_count(), "torch": torch.__version__, "python": sys.version.split()[0],
                      "loadavg": os.getloadavg()}))

    starts = worker_start(args.starts)
    for key in ("import_cpu_s", "build_cpu_s", "child_wall_s", "parent_wall_s"):
        print(f"worker start {key:14s} median {statistics.median(r[key] for r in starts):6.2f} s  "
              f"(n={len(starts)}: {', '.join(f'{r[key]:.2f}' for r in starts)})")
    spawn_cpu = statistics.median(r["import_cpu_s"] + r["build_cpu_s"] for r in starts)
    print(f"worker start CPU (imports + Synthesizer) median {spawn_cpu:.2f} s")

    c = time.process_time()
    targets = tuple(Expression(n, 1.0) for n in CATEGORIES[: args.targets])
    synth = make_synthesizer(GenerateSettings(targets=targets))
    build_cpu = time.process_time() - c
    print(f"in-process Synthesizer build CPU {build_cpu:.2f} s (imports already done)")

    tmp = Path(tempfile.mkdtemp())
    src, out = tmp / "in", tmp / "out"
    src.mkdir()
    img = load_image(ASTRONAUT_PATH)
    for i in range(args.photos):  # distinct pixels: no cache shared between photos
        shifted = img.copy()
        shifted[0, 0, 0] = i
        save_png(src / f"p{i}.png", shifted)
    per_image, per_target, wall_image, wall_all = [], [], [], []
    for k, n_t in ((0, 1), (1, len(targets))):
        settings = GenerateSettings(targets=targets[:n_t], size=args.size)
        for j in plan_jobs(src, out / str(k), settings).jobs:
            synth._prepared.clear() if hasattr(synth, "_prepared") else None
            c, w = time.thread_time(), time.perf_counter()
            if k == 0:  # no target to do: load, fit, gates, crop, then the loop finds nothing to write
                process_image(synth, _only_prepare(j))
                per_image.append(time.thread_time() - c)
                wall_image.append(time.perf_counter() - w)
            else:
                rows = process_image(synth, j)
                dt = time.thread_time() - c
                assert all(r.status == "ok" for r in rows), [r.reason for r in rows]
                per_target.append(dt)
                wall_all.append(time.perf_counter() - w)
    img_s = statistics.median(per_image)
    tgt_s = (statistics.median(per_target) - img_s) / len(targets)
    print(f"per image (load+fit+crop) thread CPU median {img_s:.3f} s (n={len(per_image)})")
    print(f"per target (synthesise+write, unwrap shared) thread CPU median {tgt_s:.3f} s ({len(targets)} targets, n={len(per_target)})")
    print(f"wall time (loaded machine) medians: per image {statistics.median(wall_image):.3f} s, "
          f"image with {len(targets)} targets {statistics.median(wall_all):.3f} s")
    for n in [int(x) for x in args.end_to_end.split(",") if x]:
        end_to_end(n, targets, args.size, img, tmp / f"e2e{n}")
    print(json.dumps({"start_cpu_s": round(spawn_cpu, 2), "build_in_process_cpu_s": round(build_cpu, 2),
                      "per_image_s": round(img_s, 3), "per_target_s": round(tgt_s, 3)}))


def end_to_end(n: int, targets: tuple, size: int, img, folder: Path) -> None:
    """Wall time of `run_batch` on ``n`` photos with workers=1 (in-process) and 2 (worker start-up included)."""
    import shutil

    from affectsynth.batch import run_batch

    src = folder / "in"
    src.mkdir(parents=True)
    for i in range(n):
        shifted = img.copy()
        shifted[0, 0, 0] = i
        save_png(src / f"p{i}.png", shifted)
    rates = {}
    for w in (1, 2):
        best = float("inf")
        for r in range(2):
            out = folder / f"out{w}_{r}"
            t = time.perf_counter()
            summary = run_batch(src, out, GenerateSettings(targets=targets, size=size, workers=w))
            best = min(best, time.perf_counter() - t)
            assert summary.written == n * len(targets), summary.lines()
            shutil.rmtree(out)
        rates[w] = n * len(targets) / best
    print(f"end to end {n} photos x {len(targets)} targets (wall, best of 2, load {os.getloadavg()[0]:.1f}): "
          f"workers=1 {rates[1]:.1f} outputs/s, workers=2 {rates[2]:.1f} outputs/s (ratio {rates[2] / rates[1]:.2f})")


def _only_prepare(job):
    """The job with every output marked done: `process_image` loads, fits and crops, writes nothing."""
    from dataclasses import replace

    done = frozenset(job.output_for(t, 0) for t in job.targets)
    return replace(job, done=done)


if __name__ == "__main__":
    main()
