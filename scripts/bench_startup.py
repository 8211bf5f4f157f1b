"""Benchmark the start-up of `affectsynth generate IN OUT --size 256 --expressions all`: where the time to
the first output goes, this tree against a baseline commit in the same run.

    python scripts/bench_startup.py [--repeats 5] [--photos 6] [--baseline-ref a1b5182] [--workers 1 2]

Each repeat runs the command line (``python -c "from affectsynth.cli import main; main()" generate ...``)
in a subprocess per tree and worker count (trees interleaved, so that both see the same load) and
stops it once the first PNG exists. A ``sitecustomize`` on PYTHONPATH (every process: the CLI, the
fork server, the workers) records, per process, milestones as (wall s since the subprocess started,
process-CPU s of that process; a worker forked from the fork server counts from its fork): interpreter up, the imports of torch / numba / scipy.ndimage
(inclusive), the Synthesizer build, the first fit, the first synthesis, the first PNG written;
plus the number and CPU of numba cache loads before the first output. Printed: medians over the
repeats; CPU is robust to other processes' load, wall is not (the machine is shared: compare
trees in the same run, and read wall against ``uptime``).

The photos: the first ``--photos`` dev photos of ``scripts/bench_generate.py`` (its shim and
baseline-worktree helpers are reused).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_generate import photo_dir, shim_envs, trees_to_measure  # noqa: E402  (a sibling script, not a package)

#: The tracer every process of a run loads; it appends JSON lines to $AFFECTSYNTH_BENCH_TRACE.
SITECUSTOMIZE = r'''
import importlib.abc, json, os, sys, time

_T0 = float(os.environ["AFFECTSYNTH_BENCH_T0"])
_OUT = os.environ["AFFECTSYNTH_BENCH_TRACE"]
_IMPORTS = ("torch", "numba", "scipy.ndimage", "scipy.linalg", "numba.np.arraymath", "affectsynth.batch",
            "affectsynth.synthesizer")
_CALLS = (("affectsynth.batch", "make_synthesizer", "synthesizer built"),
          ("affectsynth.batch", "_worker_init", "worker ready"),
          ("affectsynth.synthesizer", "Synthesizer.fit", "first fit"),
          ("affectsynth.synthesizer", "Synthesizer.synthesize", "first synthesis"),
          ("affectsynth.synthesizer", "Synthesizer.synthesize_face", "first synthesis"),  # the engines' call since SynthFace
          ("affectsynth.batch", "save_png", "first PNG"),  # the writer's name before --image-format
          ("affectsynth.batch", "save_output_image", "first PNG"),
          ("affectsynth.fitting.detection.pipeline", "FacePipeline.__init__", "detector built"),
          ("affectsynth.fitting.fit", "_normal_basis", "fit normal basis"))
_numba = [0, 0.0]


def _log(event, **kw):
    with open(_OUT, "a") as f:
        f.write(json.dumps({"pid": os.getpid(), "event": event, "wall": time.monotonic() - _T0,
                            "cpu": time.process_time(), **kw}) + "\n")


def _once(fn, label):
    import functools
    seen = []

    @functools.wraps(fn)
    def traced(*a, **k):
        if seen:
            return fn(*a, **k)
        seen.append(1)
        t = time.process_time()
        try:
            return fn(*a, **k)
        finally:
            _log(label, call_cpu_s=time.process_time() - t, numba_loads=_numba[0], numba_load_cpu=_numba[1])
    return traced


def _patch(mod):
    for name, attr, label in _CALLS:
        if name != mod.__name__:
            continue
        owner, _, meth = attr.rpartition(".")
        obj = getattr(mod, owner) if owner else mod
        if not hasattr(obj, meth):  # a name this tree (or the baseline) does not have
            continue
        setattr(obj, meth, _once(getattr(obj, meth), label))
    if mod.__name__ == "numba.core.caching":
        load = mod.Cache.load_overload

        def counted(self, *a, **k):
            t = time.process_time()
            try:
                return load(self, *a, **k)
            finally:
                _numba[0] += 1
                _numba[1] += time.process_time() - t
        mod.Cache.load_overload = counted


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name not in _IMPORTS and name not in {c[0] for c in _CALLS} and name != "numba.core.caching":
            return None
        sys.meta_path.remove(self)
        try:
            spec = importlib.util.find_spec(name)
        finally:
            sys.meta_path.insert(0, self)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def timed(module):
            t, w = time.process_time(), time.monotonic()
            exec_module(module)
            if name in _IMPORTS:
                _log("import " + name, cpu_s=time.process_time() - t, wall_s=time.monotonic() - w)
            _patch(module)
        spec.loader.exec_module = timed
        return spec


import importlib.util
sys.meta_path.insert(0, _Finder())
_log("python up")
'''


def run_once(env: dict, in_dir: Path, workers: int, trace_dir: Path, size: int) -> list[dict]:
    """One `generate` subprocess, stopped at its first PNG; its trace (one dict per event)."""
    out = Path(tempfile.mkdtemp()) / "out"
    trace = trace_dir / f"trace_{time.monotonic_ns()}.jsonl"
    cmd = [sys.executable, "-c", "from affectsynth.cli import main; main()", "generate", str(in_dir), str(out),
           "--size", str(size), "--expressions", "all", "--workers", str(workers), "--quiet"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, env={**env, "AFFECTSYNTH_BENCH_T0": repr(t0), "AFFECTSYNTH_BENCH_TRACE": str(trace)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)
    first = None
    while proc.poll() is None:
        if out.exists() and any(out.rglob("*.png")):
            first = time.monotonic() - t0
            break
        time.sleep(0.01)
    if first is None:
        raise SystemExit(f"bench_startup: generate ended ({proc.returncode}) without an output:\n"
                         f"{proc.stderr.read()[-3000:]}")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    shutil.rmtree(out.parent, ignore_errors=True)
    events = [json.loads(line) for line in trace.read_text().splitlines()] if trace.exists() else []
    return [{"pid": "bench", "event": "first PNG seen", "wall": first, "cpu": 0.0}, *events]


def roles(events: list[dict]) -> dict[int, str]:
    """pid -> "" (the main process), "w: " (a worker: it built a Synthesizer), "server: " (the fork
    server: it imported the Synthesizer's modules for the workers) or None (e.g. the resource tracker)."""
    pids = [e["pid"] for e in events if e["event"] == "python up"]
    workers = {e["pid"] for e in events if e["event"] == "worker ready"}
    importers = {e["pid"] for e in events if e["event"] == "import affectsynth.synthesizer"}
    return {p: "" if i == 0 else "w: " if p in workers else "server: " if p in importers else None
            for i, p in enumerate(pids)} | {w: "w: " for w in workers}


def breakdown(events: list[dict]) -> dict[str, tuple[float, float]]:
    """Milestone -> (wall s, CPU s) of one run, rows prefixed by the process's role (see `roles`); a
    worker forked from the fork server counts its CPU from the fork (its imports are the server's)."""
    role = roles(events)
    rows: dict[str, tuple[float, float]] = {}
    for e in events:
        who = "" if e["pid"] == "bench" else role.get(e["pid"])
        if who is None:
            continue
        key = who + e["event"]
        if key in rows:  # two workers: keep the earlier
            continue
        if e["event"].startswith("import "):
            rows[key + " (own)"] = (e["wall_s"], e["cpu_s"])
        else:
            rows[key] = (e["wall"], e["cpu"])
            if "call_cpu_s" in e:
                rows[key + " (call CPU)"] = (float("nan"), e["call_cpu_s"])
        if e["event"] == "first PNG" and "numba_loads" in e:
            rows[who + "numba cache loads (n, CPU)"] = (e["numba_loads"], e["numba_load_cpu"])
    cpu_all = sum(max(x["cpu"] for x in events if x["pid"] == p) for p in {x["pid"] for x in events} - {"bench"})
    rows["CPU of all processes to first PNG"] = (float("nan"), cpu_all)
    return rows


def report(workers: int, runs: dict[str, list[dict]]) -> None:
    """Print the medians of each tree's milestones side by side (wall s | process-CPU s)."""
    labels = list(runs)
    print(f"\n== --workers {workers}: median of {len(runs[labels[0]])} runs; wall s since start | process-CPU s "
          "(w: a worker's, server: the fork server's)")
    print("  " + " " * 46 + "".join(f"{lb[:24]:>26s}" for lb in labels))
    keys = list(dict.fromkeys(k for rs in runs.values() for r in rs for k in r))
    for k in keys:
        cells = []
        for lb in labels:
            vals = [r[k] for r in runs[lb] if k in r]
            cells.append(f"{statistics.median(v[0] for v in vals):9.3f} | {statistics.median(v[1] for v in vals):7.3f}   "
                         if vals else " " * 26)
        print(f"  {k:46s}" + "".join(cells))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--photos", type=int, default=6)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--baseline-ref", help="git ref measured the same way in a temporary worktree")
    args = ap.parse_args()
    print("uptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    tmp = Path(tempfile.mkdtemp(prefix="bench_startup_"))
    try:
        with trees_to_measure(args.baseline_ref, tmp) as trees:
            in_dir = photo_dir(args.photos, tmp / "photos")
            (tmp / "site").mkdir()
            (tmp / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
            envs = shim_envs(trees, tmp, before=(tmp / "site",))
            for label in trees:  # untimed: fills numba's cache of each tree
                run_once(envs[label], in_dir, 1, tmp, args.size)
            runs = {(label, w): [] for label in trees for w in args.workers}
            for _ in range(args.repeats):
                for w in args.workers:
                    for label in trees:
                        runs[label, w].append(breakdown(run_once(envs[label], in_dir, w, tmp, args.size)))
            for w in args.workers:
                report(w, {label: runs[label, w] for label in trees})
            print("\nuptime:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
