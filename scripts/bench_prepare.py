"""Benchmark the per-photo preparation (`affectsynth.prepare.prepare_face`) on the dev photos, stage by stage.

    python scripts/bench_prepare.py [--baseline-ref a1b5182] [--repeats 5]

Each dev photo's largest face is fitted once and cropped to 256 px (as ``generate --size 256``
does); then `prepare_face` runs on every face ``--repeats`` times (after one untimed warm-up
pass: numba cache loads, lazily built tables), one torch thread, with the stage timers of
`bench_generate` (exclusive *thread-CPU* ms, the innermost stage charged). Printed: the median
over repeats of ms per photo per stage. With ``--baseline-ref`` the same runs on that commit
(a temporary git worktree imported through a shim package), interleaved with this tree's
rounds so both see the same load, and the ratios. Then the batch bookkeeping around it, per
call: the face crop, the prepared-face cache lookup every target makes (its key digests the
photo), `safe_join` of an output path, the manifest fields of a synthesised output's labels
(`SynthLabels.to_row`: landmarks and AU JSON), a manifest row's CSV fields.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parent))
import bench_generate  # noqa: E402  (a sibling script: its stage timers, photo list and shim)

#: stages of prepare_face in this tree beyond `bench_generate.HOOKS` (absent ones are skipped)
EXTRA_HOOKS = (("affectsynth.prepare", "unwrap_face", "prepare.unwrap"), ("affectsynth.prepare", "fill_unwrapped", "prepare.fill"))
PREPARE_STAGES = ("prepare.unwrap", "prepare.fill", "prepare.light", "prepare.teeth", "prepare.other")


def child(repeats: int) -> dict:
    """Per-stage thread-CPU ms per photo (median over repeats) of prepare_face on the dev photos."""
    import numpy as np
    import torch
    from PIL import Image

    torch.set_num_threads(1)
    from affectsynth import synthesizer as synth_mod
    from affectsynth.synthesizer import Synthesizer

    synth = Synthesizer()
    faces = []
    for name in bench_generate.DEV_PHOTOS:
        path = bench_generate.DEV / f"{name}.jpg"
        if not path.exists():
            continue
        image = np.asarray(Image.open(path).convert("RGB"))
        fits = synth.fit(image)
        if fits and synth.check(fits[0]) is None:
            faces.append(synth.crop_to_face(image, fits[0], 256))
    if not faces:
        raise SystemExit(f"bench_prepare: no dev photos with a face in {bench_generate.DEV}")

    def one_pass() -> None:
        for crop, fit in faces:
            synth_mod.prepare_face(crop, fit, synth.renderer, resolution=synth.texture_resolution(fit),
                                   device=synth.device, light=True)

    one_pass()  # warm-up: numba cache loads, cached UV rasters and mirror maps
    acc: dict[str, float] = {}
    bench_generate.HOOKS = bench_generate.HOOKS + EXTRA_HOOKS
    bench_generate._instrument(acc)
    runs = []
    for _ in range(repeats):
        acc.clear()
        t0 = time.thread_time()
        one_pass()
        runs.append({"total": (time.thread_time() - t0) * 1e3, **acc})
    keys = sorted({k for r in runs for k in r})
    return {"photos": len(faces), "ms_per_photo": {k: statistics.median(r.get(k, 0.0) for r in runs) / len(faces)
                                                   for k in keys},
            "ms_per_call": _bookkeeping(synth, faces, repeats)}


def _bookkeeping(synth, faces: list, repeats: int) -> dict[str, float]:
    """Median thread-CPU ms per call of the per-photo and per-output bookkeeping of a batch run."""
    import numpy as np
    from PIL import Image

    from affectsynth.blendshapes import Expression
    from affectsynth.crop import crop_square
    from affectsynth.manifest import ManifestRow
    from affectsynth.naming import safe_join

    photo = np.asarray(Image.open(bench_generate.DEV / f"{bench_generate.DEV_PHOTOS[2]}.jpg").convert("RGB"))
    fit = synth.fit(photo)[0]
    crop, crop_fit = faces[0]
    synth.prepare(crop, crop_fit)
    labels = synth.synthesize(crop, Expression("happiness", 1.0), crop_fit, rng_seed=1).labels
    out = Path(tempfile.mkdtemp(prefix="bench_prepare_out_"))
    (out / "photo_jpg").mkdir()
    row = ManifestRow("photo.jpg", "photo_jpg/f0_happiness_i1.00.png", "ok", "", seed=1, face=0, n_faces=1,
                      landmarks=json.dumps(np.round(np.random.default_rng(0).random((468, 2)) * 256, 2).tolist()))
    calls = {"crop_square": lambda: crop_square(photo, fit.bbox, 256),
             "Synthesizer.prepare (cache hit)": lambda: synth.prepare(crop, crop_fit),
             "safe_join": lambda: safe_join(out, "photo_jpg/f0_happiness_i1.00.png"),
             "SynthLabels.to_row": labels.to_row,
             "ManifestRow.to_csv_dict": row.to_csv_dict}
    result = {}
    for name, fn in calls.items():
        fn()
        times = []
        for _ in range(repeats):
            t0 = time.thread_time()
            for _ in range(50):
                fn()
            times.append((time.thread_time() - t0) / 50 * 1e3)
        result[name] = statistics.median(times)
    shutil.rmtree(out)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline-ref", help="git ref measured the same way in a temporary worktree")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--rounds", type=int, default=2, help="child processes per tree, interleaved")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.repeats)))
        return
    tmp = Path(tempfile.mkdtemp(prefix="bench_prepare_"))
    try:
        with bench_generate.trees_to_measure(args.baseline_ref, tmp) as trees:
            envs = bench_generate.shim_envs(trees, tmp)
            results: dict[str, list[dict]] = {label: [] for label in trees}
            for _ in range(args.rounds):
                for label in trees:
                    res = subprocess.run([sys.executable, str(HERE), "--child", "--repeats", str(args.repeats)],
                                         env=envs[label], capture_output=True, text=True)
                    if res.returncode != 0:
                        raise SystemExit(f"bench_prepare: {label} failed:\n{res.stderr[-3000:]}")
                    results[label].append(json.loads(res.stdout.strip().splitlines()[-1]))
            _report(results)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _report(results: dict[str, list[dict]]) -> None:
    """Print per-stage medians over the rounds, this tree against the baseline."""
    med = {label: {k: statistics.median(r["ms_per_photo"].get(k, 0.0) for r in rs)
                   for k in {k for r in rs for k in r["ms_per_photo"]}} for label, rs in results.items()}
    labels = list(med)
    base = med[labels[1]] if len(labels) > 1 else None
    print(f"prepare_face, thread-CPU ms per photo ({results[labels[0]][0]['photos']} dev photos, median of rounds x repeats)")
    print(f"  {'stage':16s} " + " ".join(f"{label:>22s}" for label in labels) + ("   ratio" if base else ""))
    others = sorted({k for m in med.values() for k in m} - {*PREPARE_STAGES, "total"})
    for k in (*PREPARE_STAGES, *others, "total"):
        row = f"  {k:16s} " + " ".join(f"{med[label].get(k, 0.0):22.2f}" for label in labels)
        if base:
            row += f"   x{base.get(k, 0.0) / max(med[labels[0]].get(k, 0.0), 1e-9):.2f}"
        print(row)
    print(f"bookkeeping, thread-CPU ms per call\n  {'call':32s} " + " ".join(f"{label:>14s}" for label in labels))
    per_call = {label: {k: statistics.median(r["ms_per_call"][k] for r in rs) for k in rs[0]["ms_per_call"]}
                for label, rs in results.items()}
    for k in per_call[labels[0]]:
        row = f"  {k:32s} " + " ".join(f"{per_call[label][k]:14.4f}" for label in labels)
        if base:
            row += f"   x{per_call[labels[1]][k] / max(per_call[labels[0]][k], 1e-9):.2f}"
        print(row)


if __name__ == "__main__":
    main()
