"""Benchmark the batch manifest: resume (open + repair) of a large manifest, and appending row batches.

Usage: python scripts/bench_manifest.py [--rows 100000] [--repeat 5] [--full-rows] [--json PATH]

Prints medians and IQRs (seconds) of: opening a manifest of N rows (check_outputs=False, one
duplicate per 100 rows to compact), appending 1,000 batches of 3 rows (one write + fsync each),
and planning output names for N hostile file names (`display_path` + `output_relpath`).
``--full-rows``: rows carry every label column as a synthesised output's row does (boxes, AU
activations, 468 landmarks: about 8 kB each) instead of a short skip row; with pyarrow installed
the rebuild of ``manifest.parquet`` from the N rows is timed too. Times are wall-clock and process
CPU time (``time.process_time``, what counts on a loaded machine).
"""

from __future__ import annotations

import argparse
import importlib.util
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

import numpy as np
import torch

from affectsynth.manifest import Manifest, ManifestRow
from affectsynth.naming import display_path, output_relpath


def _stats(xs: list[float]) -> dict[str, float]:
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return {"median_s": statistics.median(xs), "iqr_s": q[2] - q[0]}


def _full_fields(i: int) -> dict:
    """The label columns of a synthesised output's row (random but realistic sizes)."""
    rng = np.random.default_rng(i)
    pts = (rng.uniform(0, 256, (468, 2))).round(2).tolist()
    return dict(yaw=1.5, pitch=-2.25, roll=0.5, weights=json.dumps({f"shape{k}": 0.1234 for k in range(20)}),
                face_x0=100.5, face_y0=80.25, face_x1=220.0, face_y1=240.75, crop_x0=40, crop_y0=32, crop_x1=296,
                crop_y1=288, out_width=256, out_height=256, head_rotation_yaw=3.2, head_rotation_pitch=-1.1,
                light_azimuth=12.0, light_strength=0.3, au_activations=json.dumps({"AU6": 1.0, "AU12_L": 1.0}),
                landmarks=json.dumps(pts, separators=(",", ":")), settings_id="s0123456789a")


def _write_manifest(path: Path, n: int, full: bool = False) -> list:
    rows = []
    for i in range(n):
        extra = _full_fields(i) if full else {}
        rows.append(ManifestRow(f"d{i % 97}/img{i}.jpg", f"d{i % 97}/img{i}_jpg/f0_happiness_i1.00.png",
                                "rejected" if full else "skipped", "under-min-verify: 0.05" if full else
                                "no-face: no face found", target_kind="expression", expression="happiness",
                                intensity=1.0, seed=i, face=0, n_faces=0, **extra))
        if i % 100 == 0:
            rows.append(rows[-1])  # a duplicate to compact
    with Manifest(path, check_outputs=False) as m:
        m.extend(rows)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--full-rows", action="store_true", help="rows with every label column (landmarks: ~8 kB)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    tmp = Path(tempfile.mkdtemp(prefix="bench_manifest_"))
    try:
        src = tmp / "src.csv"
        _write_manifest(src, args.rows, args.full_rows)
        opens, appends, names, cpu_opens, parquets, cpu_parquets = [], [], [], [], [], []
        for _ in range(args.repeat):
            p = tmp / "manifest.csv"
            shutil.copy(src, p)
            t0, c0 = time.perf_counter(), time.process_time()
            m = Manifest(p, check_outputs=False)
            opens.append(time.perf_counter() - t0)
            cpu_opens.append(time.process_time() - c0)
            assert len(m.rows) == args.rows, len(m.rows)  # duplicates compacted, nothing else lost
            with m:
                t0 = time.perf_counter()
                for i in range(1000):
                    m.extend([ManifestRow("x.jpg", f"x_jpg/f0_t{i}_{k}.png", "skipped", "no-face: x") for k in range(3)])
                appends.append(time.perf_counter() - t0)
            if args.full_rows and importlib.util.find_spec("pyarrow") is not None:
                from affectsynth.manifest_parquet import write_parquet

                t0, c0 = time.perf_counter(), time.process_time()
                write_parquet(m.rows, tmp / "manifest.parquet")
                parquets.append(time.perf_counter() - t0)
                cpu_parquets.append(time.process_time() - c0)
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
        res = {"rows": args.rows, "full_rows": args.full_rows, "csv_bytes": src.stat().st_size,
               "open_resume": _stats(opens), "open_resume_cpu": _stats(cpu_opens),
               "append_1000_batches": _stats(appends),
               "name_rows": _stats(names), "commit": commit, "python": platform.python_version(),
               "threads": torch.get_num_threads(), "cpu": platform.processor() or platform.machine()}
        print(f"commit {commit}, python {res['python']}, torch threads {res['threads']}, cpu {res['cpu']}")
        if parquets:
            res["parquet_rebuild"], res["parquet_rebuild_cpu"] = _stats(parquets), _stats(cpu_parquets)
            res["parquet_bytes"] = (tmp / "manifest.parquet").stat().st_size
        print(f"manifest.csv: {res['csv_bytes'] / 1e6:.1f} MB for {args.rows} rows"
              + (f"; manifest.parquet {res['parquet_bytes'] / 1e6:.1f} MB" if parquets else ""))
        for key, label in (("open_resume", f"open + compact a {args.rows}-row manifest"),
                           ("open_resume_cpu", "  the same, process CPU time"),
                           *((("parquet_rebuild", f"rebuild manifest.parquet from {args.rows} rows"),
                              ("parquet_rebuild_cpu", "  the same, process CPU time")) if parquets else ()),
                           ("append_1000_batches", "append 1000 batches of 3 rows (write + fsync each)"),
                           ("name_rows", f"display_path + output_relpath for {args.rows} hostile names")):
            print(f"{label:<60} median {res[key]['median_s']:.3f} s  IQR {res[key]['iqr_s']:.3f} s")
        if args.json:
            args.json.write_text(json.dumps(res, indent=1))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
