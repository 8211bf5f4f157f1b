"""Benchmark `generate` on Ray against the local engines: outputs/s, outputs per CPU-second, peak RSS per actor.

    python scripts/bench_ray.py [--photos 6] [--targets 3] [--size 128] [--workers 2] [--repeat 3] [--json PATH]

Public API only. Per repeat, the same job (dev photos, or the shipped astronaut when the shared
assets are absent) runs in this process (``workers=1``), on the local pool (``--workers``) and on a
local Ray with ``--workers`` actors (Ray started once, outside the timings, as a cluster would be).
Printed: medians over the repeats of wall-clock outputs/s (depends on the machine's load) and of
outputs per CPU-second of the processes that synthesise (``time.process_time`` for this process,
``RUSAGE_CHILDREN`` for the pool's workers, each actor's own ``process_time`` for Ray: robust to
load; for the pool and Ray the workers' whole life, start-up and model build included; "ray-jobs":
the actors' CPU in jobs only, the steady state of a long run), and the peak RSS of each Ray actor (``getrusage`` in the actor). The outputs of the three
engines are checked byte-identical, so a no-op cannot look fast.
"""

from __future__ import annotations

import argparse
import json
import logging
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

from affectsynth import batch
from affectsynth.batch import GenerateSettings, run_batch
from affectsynth.blendshapes import CATEGORIES, Expression
from affectsynth.images import save_png
from affectsynth.ray_engine import RayOptions, import_ray, run_batch_ray
from affectsynth.sample_data import astronaut

DEV = Path(__file__).resolve().parents[2] / "shared" / "assets" / "dev-photos"
DEV_PHOTOS = ("2007_007763.jpg", "2008_001009.jpg", "Tom_Cruise_avp_2014_4.jpg", "2008_002079.jpg",
              "2008_004176.jpg", "2009_004587.jpg")


def _inputs(folder: Path, n: int) -> None:
    folder.mkdir(parents=True)
    srcs = [DEV / p for p in DEV_PHOTOS if (DEV / p).is_file()]
    for i in range(n):
        if srcs:
            shutil.copy(srcs[i % len(srcs)], folder / f"{i:03d}_{srcs[i % len(srcs)].name}")
        else:
            save_png(folder / f"{i:03d}.png", astronaut())


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--targets", type=int, default=3)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    ray = import_ray()
    targets = tuple(Expression(c, 1.0) for c in CATEGORIES[1:1 + a.targets])
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    print(f"commit {commit}, python {platform.python_version()}, torch {torch.__version__}, ray {ray.__version__}, "
          f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}, torch threads per synthesiser "
          f"{batch.SYNTH_THREADS}; {a.photos} photos x {a.targets} targets at --size {a.size}, "
          f"--workers {a.workers}, {a.repeat} repeats")
    t0 = time.perf_counter()
    ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False,
             object_store_memory=200 * 1024 * 1024, logging_level=logging.WARNING)
    print(f"ray.init: {time.perf_counter() - t0:.1f} s")
    names = ("in-process", "pool", "ray", "ray-jobs")
    res: dict[str, dict[str, list[float]]] = {k: {"out_s": [], "out_cpu_s": []} for k in names}
    peaks: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        inp = Path(tmp) / "in"
        _inputs(inp, a.photos)
        for rep in range(a.repeat):
            outs = {}
            for name in names[:3]:
                out = Path(tmp) / f"{name}_{rep}"
                outs[name] = out
                settings = GenerateSettings(targets=targets, size=a.size, seed=rep,
                                            workers=1 if name == "in-process" else a.workers)
                w0, c0, k0 = time.perf_counter(), time.process_time(), _children_cpu()
                if name == "ray":
                    s = run_batch_ray(inp, out, settings, RayOptions(workers=a.workers))
                    cpu = sum(s.ray.actor_process_cpu_s.values())
                    jobs_cpu = sum(s.ray.actor_cpu_s.values())
                    peaks.extend(s.ray.actor_peak_rss_mb.values())
                else:
                    s = run_batch(inp, out, settings)
                    cpu = (time.process_time() - c0) if name == "in-process" else (_children_cpu() - k0)
                wall = time.perf_counter() - w0
                if s.written == 0:
                    raise SystemExit(f"{name}: nothing written ({s.lines()})")
                res[name]["out_s"].append(s.written / wall)
                res[name]["out_cpu_s"].append(s.written / cpu if cpu > 0 else float("nan"))
                print(f"  repeat {rep} {name:10s}: {s.written} outputs in {wall:.1f} s wall, {cpu:.1f} CPU-s")
                if name == "ray":
                    res["ray-jobs"]["out_s"].append(float("nan"))
                    res["ray-jobs"]["out_cpu_s"].append(s.written / jobs_cpu)
                    print(f"  repeat {rep} ray-jobs  : {jobs_cpu:.1f} CPU-s in the actors' jobs (start-up excluded)")
            ref = _files(outs["in-process"])
            for name in ("pool", "ray"):
                if _files(outs[name]) != ref:
                    raise SystemExit(f"{name}: outputs differ from the in-process run")
    ray.shutdown()
    base = float(np.median(res["in-process"]["out_cpu_s"]))
    for name, r in res.items():
        m_wall, m_cpu = float(np.median(r["out_s"])), float(np.median(r["out_cpu_s"]))
        print(f"{name:10s}: median {m_wall:.2f} outputs/s wall, {m_cpu:.2f} outputs per CPU-second "
              f"(x{m_cpu / base:.2f} of in-process)")
    print(f"ray actors: peak RSS median {np.median(peaks):.0f} MiB, max {max(peaks):.0f} MiB ({len(peaks)} actors)")
    print("outputs byte-identical across engines: yes")
    if a.json:
        a.json.write_text(json.dumps({"results": res, "actor_peak_rss_mb": peaks, "commit": commit}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
