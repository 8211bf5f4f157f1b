"""Benchmark the batch manifest: resume (open + repair) of a large manifest, and appending row batches.

Usage: python scripts/bench_manifest.py [--rows 100000] [--repeat 5] [--json PATH]

Prints medians and IQRs (seconds) of: opening a manifest of N rows (check_outputs=False, one
duplicate per 100 rows to compact), appending 1,000 batches of 3 rows (one write + fsync each),
and planning output names for N hostile file names (`display_path` + `output_relpath`).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from affectsynth.manifest import Manifest, ManifestRow
from affectsynth.naming import display_path, output_relpath


def _stats(xs: list[float]) -> dict[str, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return {"median_s": statistics.median(xs), "iqr_s": q[2] - q[0]}


def _write_manifest(path: Path, n: int) -> None:
    rows = []
    for i in range(n):
        rows.append(ManifestRow(f"d{i % 97}/img{i}.jpg", f"d{i % 97}/img{i}_jpg/f0_happiness_i1.00.png", "skipped",
                                "no-face: no face found", target_kind="expression", expression="happiness",
                                intensity=1.0, seed=i, face=0, n_faces=0))
        if i % 100 == 0:
            rows.append(rows[-1])  # a duplicate to compact
    with Manifest(path, check_outputs=False) as m:
        m.extend(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_manifest_"))
    try:
        src = tmp / "src.csv"
        _write_manifest(src, args.rows)
        opens, appends, names = [], [], []
        for _ in range(args.repeat):
            p = tmp / "manifest.csv"
            shutil.copy(src, p)
            t0 = time.perf_counter()
            m = Manifest(p, check_outputs=False)
            opens.append(time.perf_counter() - t0)
            assert len(m.rows) == args.rows, len(m.rows)  # duplicates compacted, nothing else lost
            with m:
                t0 = time.perf_counter()
                for i in range(1000):
                    m.extend([ManifestRow("x.jpg", f"x_jpg/f0_t{i}_{k}.png", "skipped", "no-face: x") for k in range(3)])
                appends.append(time.perf_counter() - t0)
            hostile = [os.fsdecode(f"dir:{i % 50}/caf\xe9 {i}?.jpg".encode("latin-1")) for i in range(args.rows)]
            t0 = time.perf_counter()
            outs = {output_relpath(display_path(h), "happiness_i1.00") for h in hostile}
            names.append(time.perf_counter() - t0)
            assert len(outs) == args.rows
        try:
            commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                    cwd=Path(__file__).parent).stdout.strip()
        except OSError:
            commit = "?"
        res = {"rows": args.rows, "open_resume": _stats(opens), "append_1000_batches": _stats(appends),
               "name_rows": _stats(names), "commit": commit, "python": platform.python_version(),
               "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
        print(f"commit {commit}, python {res['python']}, torch threads {res['threads']}, cpu {res['cpu']}")
        for key, label in (("open_resume", f"open + compact a {args.rows}-row manifest"),
                           ("append_1000_batches", "append 1000 batches of 3 rows (write + fsync each)"),
                           ("name_rows", f"display_path + output_relpath for {args.rows} hostile names")):
            print(f"{label:<60} median {res[key]['median_s']:.3f} s  IQR {res[key]['iqr_s']:.3f} s")
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
