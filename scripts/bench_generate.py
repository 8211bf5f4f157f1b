"""Benchmark `affectsynth generate IN OUT --size 256` (8 targets per photo): outputs/s, time to first
output, CPU per output and photo, and where that CPU goes; optionally against a baseline commit.

    python scripts/bench_generate.py [--photos 20] [--size 256] [--repeats 3] [--baseline-ref HEAD~3] [--json PATH]

What it measures (every number from this run, on this machine):

- stages: an in-process run (`run_batch` with an in-process `Synthesizer`, one thread) over the
  dev photos, `--repeats` times, each with a fresh Synthesizer (no cached textures); every stage
  function is wrapped by a timer that charges *thread-CPU* time (`time.thread_time`, far more
  robust to other processes than wall time) exclusively to the innermost stage running. Printed:
  the median over repeats of ms per photo (photo-level stages) or ms per output (per-target
  stages). A warm-up photo runs first (numba cache loads, lazily built tables are not steady state).
- end to end: the command line itself (`python -m affectsynth.cli generate ...`) in a subprocess
  with --workers 1 and 2: wall outputs/s, CPU seconds per output (user + sys of the subprocess
  and its workers: `getrusage(RUSAGE_CHILDREN)`, or the sampled process tree where more), and the time from process start to the
  first output file (polled every 20 ms). Steady state: the marginal rate between a run over
  half of the photos and a run over all of them (start-up cancels out); the second half is the
  first half mirrored, so the marginal photos carry exactly the first half's workload. And
  in-run: from the output files' modification times, the rate between 25% and 90% of a full
  run's outputs (`timeline_rate`; median over repeats), one run, no difference of two.
- ``--baseline-ref REF``: the same measurements on commit REF, checked out into a temporary git
  worktree and imported from there (a shim package dir on PYTHONPATH); each of the ``--repeats``
  rounds measures both trees one after the other (interleaved, so both see a similar load:
  even thread-CPU grows by ~30% on a machine loaded 4x over its cores), the first tree first in
  even rounds and second in odd ones; prints the ratios.

Every tree is byte-compiled first and the children run without PYTHONDONTWRITEBYTECODE, as an
installed package does (`compile_tree`): compiling affectsynth from source in every process adds
about 0.3 s before the first output.

The photos: the dev photos in ``../shared/assets/dev-photos`` (real photos, one or more faces),
cycled up to ``--photos // 2`` (see `photo_dir`), then mirrored. Prints ``uptime`` before and after: the machine is shared.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

HERE = Path(__file__).resolve()
TREE = HERE.parents[1]
DEV = TREE.parent / "shared" / "assets" / "dev-photos"
#: the dev photos that hold a face the default gates accept (dogs.jpg holds none)
DEV_PHOTOS = ("2007_007763", "2008_001009", "2008_001322", "2008_002079", "2008_002470", "2008_002506",
              "2008_004176", "2008_007676", "2009_004587", "Tom_Cruise_avp_2014_4", "bald_guys")

#: (module, attribute "func" or "Class.method", stage). Exclusive thread-CPU time goes to the innermost.
HOOKS = (
    ("affectsynth.batch", "load_image", "load"),
    ("affectsynth.fitting.detection.pipeline", "FacePipeline._boxes", "detect.boxes"),
    ("affectsynth.fitting.detection.pipeline", "FacePipeline._mesh_in", "detect.mesh"),
    ("affectsynth.fitting.detection.pipeline", "FacePipeline.locate", "detect.mesh"),
    ("affectsynth.fitting.detection.pipeline", "FacePipeline._mesh_rects", "detect.mesh"),
    ("affectsynth.fitting.landmarks", "TorchFaceDetector.detect_batch", "detect.other"),
    ("affectsynth.fitting.photo", "fit_landmarks", "fit"),
    ("affectsynth.synthesizer", "Synthesizer.check", "gates"),
    ("affectsynth.synthesizer", "Synthesizer.crop_to_face", "crop"),
    ("affectsynth.prepare", "unwrap_texture", "prepare.unwrap"),
    ("affectsynth.prepare", "unwrap_face", "prepare.unwrap"),
    ("affectsynth.prepare", "fill_texture", "prepare.fill"),
    ("affectsynth.prepare", "estimate_light", "prepare.light"),
    ("affectsynth.prepare", "unwrap_photo_teeth", "prepare.teeth"),
    ("affectsynth.prepare", "teeth_pixels", "prepare.teeth"),
    ("affectsynth.synthesizer", "prepare_face", "prepare.other"),
    ("affectsynth.synthesizer", "Synthesizer.target_weights", "weights"),
    ("affectsynth.synthesizer", "compose_target", "compose.other"),
    ("affectsynth.fitting.face_model", "FaceModel.reconstruct", "deform"),
    ("affectsynth.synthesizer", "image_digest", "digest"),
    ("affectsynth.cache", "DigestMemo.__call__", "digest"),
    ("affectsynth.synthesizer", "Synthesizer.target_labels", "target_labels"),
    ("affectsynth.synthesizer", "Synthesizer.resolve_target", "target_labels"),
    ("affectsynth.face_render", "FaceRenderer.rasterize_window", "rasterize"),
    ("affectsynth.face_render", "interpolate", "interpolate"),
    ("affectsynth.face_render", "texture", "texture"),
    ("affectsynth.face_render", "antialias", "antialias"),
    ("affectsynth.face_render", "FaceRenderer._shade_compiled", "render.shade"),
    ("affectsynth.face_render", "_close_teeth_gaps", "teeth"),
    ("affectsynth.face_render", "_close_slits", "teeth"),
    ("affectsynth.face_render", "FaceRenderer.render", "render.other"),
    ("affectsynth.compose", "motion_window", "warp"),
    ("affectsynth.compose", "motion_field", "warp"),
    ("affectsynth.compose", "composite", "composite"),
    ("affectsynth.expression_shading", "furrows", "wrinkles"),
    ("affectsynth.compose", "shading_ratio", "shading"),
    ("affectsynth.compose", "apply_shading", "shading.apply"),
    ("affectsynth.compose", "output_landmarks", "landmarks_out"),
    ("affectsynth.synthesizer", "Synthesizer.synthesize", "synthesize.other"),
    ("affectsynth.synthesizer", "Synthesizer.synthesize_face", "synthesize.other"),  # the engines' call since SynthFace
    ("affectsynth.synthesizer", "Synthesizer.face", "synthesize.other"),  # per face: the gates' verdict, the cache key
    ("affectsynth.batch", "save_png", "png"),  # the writer's name before --image-format
    ("affectsynth.batch", "save_output_image", "png"),  # PNG (default) or WebP: the output's encode + write
    ("affectsynth.batch", "process_image", "batch.other"),
    ("affectsynth.batch", "process_images", "batch.other"),  # the engines' unit of work since detection units
)
PHOTO_STAGES = ("load", "detect.boxes", "detect.mesh", "detect.other", "fit", "gates", "crop", "prepare.unwrap",
                "prepare.fill", "prepare.light", "prepare.teeth", "prepare.other", "batch.other")


# --------------------------------------------------------------------------- child: stage split

def _instrument(acc: dict[str, float]) -> None:
    """Wrap the stage functions of HOOKS (those this tree has) with exclusive thread-CPU timers."""
    import functools
    import importlib

    stack: list[list] = []  # [stage, start, child time]

    def wrap(fn, stage):
        @functools.wraps(fn)
        def timed(*a, **k):
            stack.append([stage, time.thread_time(), 0.0])
            try:
                return fn(*a, **k)
            finally:
                st, t0, child = stack.pop()
                dt = time.thread_time() - t0
                acc[st] = acc.get(st, 0.0) + (dt - child) * 1e3  # ms
                if stack:
                    stack[-1][2] += dt
        return timed

    for mod_name, attr, stage in HOOKS:
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        owner, name = (mod, attr) if "." not in attr else (getattr(mod, attr.split(".")[0], None), attr.split(".")[1])
        if owner is None or not hasattr(owner, name):
            continue
        setattr(owner, name, wrap(getattr(owner, name), stage))


def child_stages(in_dir: Path, warm_dir: Path, size: int, repeats: int) -> dict:
    """Per-stage thread-CPU ms (median over repeats) of in-process runs over `in_dir`.

    Each repeat builds a fresh Synthesizer (no cached textures) and warms it on the photo in
    `warm_dir` (not in `in_dir`) first, untimed: lazily built tables (wrinkle maps, mirror maps)
    and numba's cache loads are start-up, reported once as the warm-up of the first repeat.
    """
    import torch

    torch.set_num_threads(1)
    from affectsynth.batch import make_synthesizer, run_batch
    from affectsynth.blendshapes import CATEGORIES, Expression
    from affectsynth.generate_settings import GenerateSettings

    settings = GenerateSettings(targets=tuple(Expression(c, 1.0) for c in CATEGORIES), size=size, workers=1, seed=0)
    acc: dict[str, float] = {}
    _instrument(acc)
    runs, first = [], None
    for _ in range(repeats):
        synth = make_synthesizer(settings)
        acc.clear()
        out = Path(tempfile.mkdtemp())
        t0 = time.thread_time()
        run_batch(warm_dir, out, settings, synthesizer=synth)
        if first is None:
            first = {"warmup_cpu_ms": (time.thread_time() - t0) * 1e3, "warmup_stages_ms": dict(acc)}
        shutil.rmtree(out)
        acc.clear()
        out = Path(tempfile.mkdtemp())
        t0 = time.thread_time()
        run_batch(in_dir, out, settings, synthesizer=synth)
        total = time.thread_time() - t0
        n_out = len(list(out.rglob("*.png")))
        runs.append({"total_ms": total * 1e3, "outputs": n_out, "stages_ms": dict(acc)})
        shutil.rmtree(out)
    n_photos = len(list(in_dir.iterdir()))
    stages = sorted({k for r in runs for k in r["stages_ms"]})
    per = {}
    for k in stages:
        vals = [r["stages_ms"].get(k, 0.0) for r in runs]
        per[k] = {"per_photo_ms": statistics.median(vals) / n_photos,
                  "per_output_ms": statistics.median(v / r["outputs"] for v, r in zip(vals, runs))}
    return {**first, "photos": n_photos, "outputs": runs[0]["outputs"], "stages": per, "repeats": repeats,
            "total_per_output_ms": statistics.median(r["total_ms"] / r["outputs"] for r in runs)}


# --------------------------------------------------------------------------- parent

def shim_for(tree: Path, where: Path) -> Path:
    """A dir to put on PYTHONPATH that imports `affectsynth` (and its subpackages) from `tree`."""
    pkg = where / "affectsynth"
    pkg.mkdir(parents=True)
    (tree / "synth" / "__pycache__").mkdir(exist_ok=True)  # shared: numba's cache of the tree is reused
    for p in (tree / "synth").iterdir():
        (pkg / p.name).symlink_to(p)
    for sub in ("fitting", "blendshapes", "render"):
        (pkg / sub).symlink_to(tree / sub)
    return where


@contextlib.contextmanager
def trees_to_measure(baseline_ref: str | None, where: Path) -> Iterator[dict[str, Path]]:
    """The source trees a benchmark compares, by label: ``"this tree"``, plus with `baseline_ref`
    ``"baseline REF"``, a detached git worktree of REF at ``where / "baseline"`` (removed on exit)."""
    trees = {"this tree": TREE}
    wt = where / "baseline"
    if baseline_ref:
        subprocess.run(["git", "-C", str(TREE), "worktree", "add", "--detach", str(wt), baseline_ref], check=True,
                       capture_output=True)
        trees[f"baseline {baseline_ref}"] = wt
    try:
        yield trees
    finally:
        if baseline_ref:
            subprocess.run(["git", "-C", str(TREE), "worktree", "remove", "--force", str(wt)], capture_output=True)


def shim_envs(trees: dict[str, Path], where: Path, *, before: tuple[Path, ...] = ()) -> dict[str, dict]:
    """Per tree label, the environment of a child process that imports affectsynth from that tree
    (`shim_for`, made under `where`), with the folders `before` ahead of it on PYTHONPATH.

    Otherwise the environment users have (no OMP_NUM_THREADS): the thread settings are the code's own;
    and as an installed package has, compiled bytecode: each tree is byte-compiled here first (`compile_tree`)
    and PYTHONDONTWRITEBYTECODE is dropped (where it is set, every process would otherwise compile all of
    affectsynth from source, about 0.3 s more before the first output).
    """
    envs = {}
    for i, (label, tree) in enumerate(trees.items()):
        shim = shim_for(tree, where / f"shim_{i}")
        compile_tree(tree)
        envs[label] = {**bytecode_env(), "PYTHONPATH": os.pathsep.join([*map(str, before), str(shim)])}
    return envs


def bytecode_env() -> dict[str, str]:
    """This environment without PYTHONDONTWRITEBYTECODE: processes that read and write ``.pyc``, as users' do."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def compile_tree(tree: Path) -> None:
    """Byte-compile a source tree's packages into their ``__pycache__`` folders, where the child
    processes importing it through a shim (`shim_for`) find them (pip does the same at install)."""
    dirs = [str(tree / d) for d in ("synth", "fitting", "render", "blendshapes")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-j", "0", *dirs], check=True, env=bytecode_env())


def photo_dir(n: int, where: Path, names: tuple[str, ...] = DEV_PHOTOS[:-1], *, mirrored: bool = False) -> Path:
    """`n` distinct dev photos in a fresh folder (the last of DEV_PHOTOS is kept for warm-ups).

    The dev photos are cycled; a photo's k-th reuse loses its k leftmost pixel columns, so that
    no two files have the same content (the engine caches prepared faces by content: a repeated
    photo would cost less than a new one). With ``mirrored``, the same ``n`` photos follow once
    more, mirrored left-right: the second half is new content with the first half's workload
    (same faces, same sizes), which is what the steady-state rate (full minus half) must measure.
    """
    import numpy as np
    from PIL import Image

    where.mkdir(parents=True)
    srcs = [DEV / f"{s}.jpg" for s in names if (DEV / f"{s}.jpg").exists()]
    if not srcs:
        raise SystemExit(f"bench_generate: no dev photos in {DEV}")
    for flip in (False, True) if mirrored else (False,):
        for i in range(n):
            src, reuse = srcs[i % len(srcs)], i // len(srcs)
            dst = where / f"p{i:03d}{'m' if flip else ''}_{src.name}"
            if not flip and not reuse:
                shutil.copy(src, dst)
                continue
            pixels = np.asarray(Image.open(src).convert("RGB"))[:, reuse:]
            Image.fromarray(np.ascontiguousarray(pixels[:, ::-1] if flip else pixels)).save(dst, quality=95)
    return where


def process_tree_cpu_s(root: int) -> dict[int, float]:
    """CPU seconds (user + sys) so far of `root` and every process below it, by pid (from /proc).

    `getrusage(RUSAGE_CHILDREN)` only counts children that were waited for: workers forked by a
    fork server and killed with it at the end are never reaped up the tree, so the benchmark
    also samples the live process tree.
    """
    tick = os.sysconf("SC_CLK_TCK")
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
            out[pid] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
            for task in Path(f"/proc/{pid}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue  # exited meanwhile
    return out


def run_cli(env: dict, in_dir: Path, size: int, workers: int) -> dict:
    """One `generate` subprocess: wall s, CPU s (it and its workers), outputs, s to the first output.

    CPU: the larger of the reaped children's rusage and the sum of the process tree's last
    samples (taken every 20 ms; a process's last < 20 ms before it exits are missed).
    """
    out = Path(tempfile.mkdtemp()) / "out"
    cmd = [sys.executable, "-c", "from affectsynth.cli import main; main()", "generate", str(in_dir), str(out),
           "--size", str(size), "--expressions", "all", "--workers", str(workers)]
    import resource  # getrusage of children is cumulative: take deltas

    settle()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first, sampled = None, {}
    while proc.poll() is None:
        if first is None and out.exists() and any(out.rglob("*.png")):
            first = time.perf_counter() - t0
        for pid, cpu_s in process_tree_cpu_s(proc.pid).items():
            sampled[pid] = max(sampled.get(pid, 0.0), cpu_s)
        time.sleep(0.02)
    wall = time.perf_counter() - t0
    log = proc.stdout.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"bench_generate: generate failed ({proc.returncode}):\n{log[-3000:]}")
    pngs = list(out.rglob("*.png"))
    n = len(pngs)
    if first is None and n:
        first = wall
    timeline = timeline_rate(sorted(p.stat().st_mtime for p in pngs))
    shutil.rmtree(out.parent)
    reaped = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": max(reaped, sum(sampled.values())), "outputs": n, "first_output_s": first,
            "timeline_per_s": timeline}


def timeline_rate(mtimes: list[float], lo: float = 0.25, hi: float = 0.9) -> float:
    """Outputs/s of one run between its ``lo`` and ``hi`` fractions of outputs written, from the
    files' modification times (sorted): a steady rate from a single run, start-up and the last
    jobs' tail left out, with no polling to steal CPU and no difference of two noisy runs."""
    if len(mtimes) < 8:
        return float("nan")
    a, b = int(len(mtimes) * lo), int(len(mtimes) * hi) - 1
    return (b - a) / (mtimes[b] - mtimes[a]) if mtimes[b] > mtimes[a] else float("nan")


def settle() -> None:
    """Flush the outputs a previous run left in the page cache before the next one is timed: the
    kernel writes them back in the background otherwise (320 PNGs, about 25 MB), on the cores and
    the disk the next run measures (a stage split right after a round's command lines came out
    10% slower in every stage, its PNG writes 30%)."""
    os.sync()


def stage_round(label: str, env: dict, dirs: dict, args) -> dict:
    """One stage-split run (a child process, one repeat) of one tree."""
    settle()
    res = subprocess.run([sys.executable, str(HERE), "--child-stages", str(dirs["stages"]), str(dirs["warm"]), "--size",
                          str(args.size), "--repeats", "1"], env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"bench_generate: stage run of {label} failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def cli_round(env: dict, dirs: dict, args) -> dict:
    """One `generate` run per worker count (1, 2) and photo set (half, full) of one tree."""
    return {w: {k: run_cli(env, dirs[k], args.size, w) for k in ("half", "full")} for w in (1, 2)}


def summarize(stage_runs: list[dict], cli_runs: list[dict]) -> dict:
    """Medians over the rounds of one tree."""
    first = stage_runs[0]
    keys = sorted({k for r in stage_runs for k in r["stages"]})
    zero = {"per_photo_ms": 0.0, "per_output_ms": 0.0}
    stages = {k: {f: statistics.median(r["stages"].get(k, zero)[f] for r in stage_runs) for f in zero} for k in keys}
    stages_out = {"warmup_cpu_ms": first["warmup_cpu_ms"], "photos": first["photos"], "outputs": first["outputs"],
                  "repeats": len(stage_runs), "stages": stages,
                  "total_per_output_ms": statistics.median(r["total_per_output_ms"] for r in stage_runs)}
    cli = {}
    for w in (1, 2):
        runs = {k: [r[w][k] for r in cli_runs] for k in ("half", "full")}
        best = {k: min(v, key=lambda r: r["wall_s"]) for k, v in runs.items()}
        dn = best["full"]["outputs"] - best["half"]["outputs"]
        dt = best["full"]["wall_s"] - best["half"]["wall_s"]
        steady = dn / dt if dt > 0 else float("nan")  # nan: the load swamped the difference
        cpu = {k: statistics.median(r["cpu_s"] for r in v) for k, v in runs.items()}
        cli[w] = {"end_to_end_per_s": best["full"]["outputs"] / best["full"]["wall_s"], "steady_per_s": steady,
                  "timeline_per_s": statistics.median(r["timeline_per_s"] for r in runs["full"]),
                  "steady_cpu_ms_per_output": (cpu["full"] - cpu["half"]) / max(dn, 1) * 1e3,
                  "cpu_ms_per_output": statistics.median(r["cpu_s"] / r["outputs"] for r in runs["full"]) * 1e3,
                  "first_output_s": statistics.median(r["first_output_s"] for r in runs["half"] + runs["full"]),
                  "runs": runs}
    return {"stages": stages_out, "cli": cli}


def report(label: str, m: dict, base: dict | None) -> None:
    st = m["stages"]
    print(f"\n== {label}: in-process stage split, thread-CPU, median of {st['repeats']} repeats "
          f"({st['photos']} photos, {st['outputs']} outputs)")
    photo_total = out_total = 0.0
    for k, v in sorted(st["stages"].items(), key=lambda kv: -kv[1]["per_photo_ms"]):
        b = None if base is None else base["stages"]["stages"].get(k)
        if k in PHOTO_STAGES:
            photo_total += v["per_photo_ms"]
            val, unit, bval = v["per_photo_ms"], "per photo ", None if b is None else b["per_photo_ms"]
        else:
            out_total += v["per_output_ms"]
            val, unit, bval = v["per_output_ms"], "per output", None if b is None else b["per_output_ms"]
        ratio = "" if not bval else f"   baseline {bval:7.2f} ms  x{bval / max(val, 1e-9):.2f}"
        print(f"  {k:18s} {val:7.2f} ms {unit}{ratio}")
    print(f"  photo-level {photo_total:.1f} ms/photo, per output {out_total:.1f} ms; all included "
          f"{st['total_per_output_ms']:.1f} ms thread-CPU per output -> {1000 / st['total_per_output_ms']:.1f} outputs/s per core"
          + ("" if base is None else f" (baseline {base['stages']['total_per_output_ms']:.1f} ms, "
                                     f"x{base['stages']['total_per_output_ms'] / st['total_per_output_ms']:.2f})"))
    print(f"  warm-up photo (first in a fresh process after imports): {st['warmup_cpu_ms']:.0f} ms thread-CPU")
    for w, c in m["cli"].items():
        b = None if base is None else base["cli"][w]
        line = (f"  generate --workers {w}: wall: steady {c['steady_per_s']:6.1f} outputs/s (full - half), "
                f"{c['timeline_per_s']:6.1f}/s in-run (25-90% of the outputs), end to end {c['end_to_end_per_s']:6.1f}/s, "
                f"first output {c['first_output_s']:.2f} s; CPU: {c['steady_cpu_ms_per_output']:6.1f} ms/output steady "
                f"(marginal), {c['cpu_ms_per_output']:6.1f} ms/output incl. start-up")
        if b:
            line += (f"\n      baseline: wall steady {b['steady_per_s']:.1f}/s, in-run {b['timeline_per_s']:.1f}/s, first {b['first_output_s']:.2f} s; CPU "
                     f"{b['steady_cpu_ms_per_output']:.1f} ms/output steady, {b['cpu_ms_per_output']:.1f} incl. start-up; "
                     f"ratio CPU steady x{b['steady_cpu_ms_per_output'] / max(c['steady_cpu_ms_per_output'], 1e-9):.2f}, "
                     f"incl. start-up x{b['cpu_ms_per_output'] / max(c['cpu_ms_per_output'], 1e-9):.2f}")
        print(line)
    c1, c2 = m["cli"][1], m["cli"][2]
    print(f"  speed-up 2 workers / 1 (wall, steady): x{c2['steady_per_s'] / max(c1['steady_per_s'], 1e-9):.2f}"
          " (nan or noise when other processes load the machine)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=20)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--baseline-ref", help="git ref measured the same way in a temporary worktree")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--child-stages", type=Path, nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_stages:
        print(json.dumps(child_stages(*args.child_stages, args.size, args.repeats)))
        return
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    tmp = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    try:
        with trees_to_measure(args.baseline_ref, tmp) as trees:
            dirs = {"stages": photo_dir(min(args.photos, 6), tmp / "stages"), "warm": photo_dir(1, tmp / "warm", DEV_PHOTOS[-1:]), "half": photo_dir(args.photos // 2, tmp / "half"),
                    "full": photo_dir(args.photos // 2, tmp / "full", mirrored=True)}
            envs = shim_envs(trees, tmp)
            commits = {label: subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"], capture_output=True,
                                             text=True).stdout.strip() for label, tree in trees.items()}
            # rounds interleave the trees, so that both see the same (changing) load, and alternate
            # which goes first: with a fixed order the first tree's stage split came out 5-11% higher
            # in every stage alike (three runs, 4 December 2026; see `settle`), the same two trees
            # alternated by hand showed no difference
            stage_runs = {label: [] for label in trees}
            cli_runs = {label: [] for label in trees}
            for r in range(args.repeats):
                order = list(trees) if r % 2 == 0 else list(trees)[::-1]
                for label in order:
                    stage_runs[label].append(stage_round(label, envs[label], dirs, args))
                for label in order:
                    cli_runs[label].append(cli_round(envs[label], dirs, args))
            results = {label: {"commit": commits[label], **summarize(stage_runs[label], cli_runs[label])} for label in trees}
            base = next((v for k, v in results.items() if k.startswith("baseline")), None)
            for label, m in results.items():
                report(f"{label} ({m['commit']})", m, base if m is not base else None)
            print("\nuptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
            if args.json:
                args.json.write_text(json.dumps(results, indent=1, default=str))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
