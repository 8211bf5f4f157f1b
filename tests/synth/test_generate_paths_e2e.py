"""``generate --paths`` end to end on a real photo (slow): frames are what ``animate`` renders, the
draws are shared by a sequence's frames, and a resumed run renders only the missing frames, identically."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from affectsynth.animate import animate
from affectsynth.batch import GenerateSettings, make_synthesizer, plan_jobs, run_batch, synth_threads
from affectsynth.blendshapes.targets import VA
from affectsynth.cli import main
from affectsynth.images import load_image, save_png
from affectsynth.paths_file import SequenceSpec

pytestmark = pytest.mark.slow

PHOTO = "2008_001322.jpg"
CIRCLE = SequenceSpec("circle", 4, va=((0.8, 0), (0, 0.8), (-0.8, 0), (0, -0.8)), closed=True)
MIX = SequenceSpec("mix", 5, expressions=("surprise", "anger"))  # both have EMFACS variants: the seed matters


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _png_bytes(image: np.ndarray, tmp: Path) -> bytes:
    save_png(tmp, image, fsync=False)  # the batch's encoder and level
    return tmp.read_bytes()


@pytest.fixture(scope="module")
def one_photo(dev_photos, tmp_path_factory) -> Path:
    inp = tmp_path_factory.mktemp("in")
    shutil.copy(dev_photos / PHOTO, inp / PHOTO)
    return inp


@pytest.fixture(scope="module")
def settings(one_photo) -> GenerateSettings:
    """Random head rotation and relighting on: the draws that must be shared by a sequence's frames.

    The run seed is one under which drawing the variants from only the frames left to render
    (anger's, on resume) would pick another anger variant than drawing from the whole plan
    (surprise first): so the resume test sees draws that depend on what is rendered.
    """
    from affectsynth.animate import sequence_variants
    from affectsynth.blendshapes import ExpressionModel

    model = ExpressionModel.default()
    for seed in range(100):
        s = GenerateSettings(targets=(VA(0.5, 0.5),), paths=(CIRCLE, MIX), size=64, seed=seed,
                             head_rotation_deg=(6.0, 4.0), light_strength=0.6)
        q = plan_jobs(one_photo, one_photo.parent / "unused", s).jobs[0].sequence_seed("mix", 0)
        if sequence_variants(model, ["surprise", "anger"], q)["anger"] != sequence_variants(model, ["anger"], q)["anger"]:
            return s
    raise AssertionError("no seed under 100 tells the two variant draws apart")


@pytest.fixture(scope="module")
def synth(settings):
    return make_synthesizer(settings)


@pytest.fixture(scope="module")
def first_run(one_photo, settings, synth, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    summary = run_batch(one_photo, out, settings, synthesizer=synth)
    return out, summary, {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*.png")}


def test_frames_are_outputs_with_their_labels_and_shared_draws(first_run, one_photo, settings):
    out, summary, files = first_run
    assert summary.written == 1 + 4 + 5 and summary.n_failed == 0
    rows = _rows(out)
    assert len(rows) == 10 and all(r["status"] == "ok" for r in rows)
    frames = [r for r in rows if r["sequence"]]
    assert [(r["sequence"], r["frame"]) for r in frames] == [("circle", str(i)) for i in range(4)] + [
        ("mix", str(i)) for i in range(5)]
    for r in frames:
        assert r["output"] == f"{Path(PHOTO).stem}_jpg/f0_path-{r['sequence']}/frame_{int(r['frame']):04d}.png"
        assert float(r["time_s"]) == pytest.approx(int(r["frame"]) / 12, abs=1e-6)
        assert r["weights"].startswith("{") and r["output"] in files
    by_seq = {s: [r for r in frames if r["sequence"] == s] for s in ("circle", "mix")}
    for seq, rs in by_seq.items():
        assert len({r["seed"] for r in rs}) == 1  # one seed per sequence, not per frame
        assert len({(r["yaw"], r["pitch"], r["roll"]) for r in rs}) == 1, rs  # one drawn head rotation, no sway
    assert by_seq["circle"][0]["yaw"] != by_seq["mix"][0]["yaw"]  # each sequence its own draw
    assert [r["expression"] for r in by_seq["mix"]] == ["surprise"] * 2 + ["anger"] * 3
    assert len({r["variant"] for r in by_seq["mix"] if r["expression"] == "anger"}) == 1
    va = [(float(r["valence"]), float(r["arousal"])) for r in by_seq["circle"]]
    np.testing.assert_allclose(va, [(0.8, 0), (0, 0.8), (-0.8, 0), (0, -0.8)], atol=1e-6)
    assert len({files[r["output"]] for r in by_seq["circle"]}) == 4  # the expression moves


def test_frames_are_the_bytes_animate_renders(first_run, one_photo, settings, synth, tmp_path):
    out, _, files = first_run
    image = load_image(one_photo / PHOTO)
    job = plan_jobs(one_photo, tmp_path / "fresh", settings).jobs[0]
    with synth_threads():  # the torch thread count every engine synthesises with (the fit's sums depend on it)
        crop, fit = synth.crop_to_face(image, synth.fit(image, max_faces=1)[0], settings.size, scale=settings.crop_scale)
        frames = {spec.name: list(animate(synth, crop, spec.plan(), fit=fit, seed=job.sequence_seed(spec.name, 0)))
                  for spec in (CIRCLE, MIX)}
    rows = {r["output"]: r for r in _rows(out)}
    for spec in (CIRCLE, MIX):
        seed = job.sequence_seed(spec.name, 0)
        for frame in frames[spec.name]:
            rel = job.frame_output(spec.name, frame.index, 0)
            assert _png_bytes(frame.image, tmp_path / "f.png") == files[rel], rel
            row = rows[rel]
            assert int(row["seed"]) == seed
            assert json.loads(row["weights"]) == pytest.approx(
                {k: round(v, 4) for k, v in frame.labels.weights.items() if round(v, 4) != 0}, abs=1e-4)
            assert float(row["yaw"]) == pytest.approx(frame.labels.pose_deg[0], abs=1e-4)
            assert row["variant"] == (frame.labels.target.variant or "")


def test_resume_renders_only_the_missing_frames_identically(first_run, one_photo, settings, synth, tmp_path):
    done, _, files = first_run
    out = tmp_path / "out"
    shutil.copytree(done, out)
    stem = f"{Path(PHOTO).stem}_jpg"
    gone = [f"{stem}/f0_path-circle/frame_0001.png", f"{stem}/f0_path-circle/frame_0003.png"]
    for rel in gone:  # as if the run had been killed before writing them
        (out / rel).unlink()
    lost_row = f"{stem}/f0_path-mix/frame_0003.png"  # its file stands, its row is gone: anger at its apex
    lines = (out / "manifest.csv").read_text().splitlines(keepends=True)
    (out / "manifest.csv").write_text("".join(ln for ln in lines if lost_row not in ln))
    kept = {p.relative_to(out).as_posix(): p.stat().st_mtime_ns for p in out.rglob("*.png")}
    summary = run_batch(one_photo, out, settings, synthesizer=synth)
    assert (summary.written, summary.already_done) == (3, 7)
    now = {p.relative_to(out).as_posix(): p for p in out.rglob("*.png")}
    assert sorted(now) == sorted(files)
    for rel, p in now.items():
        assert p.read_bytes() == files[rel], rel  # the resumed frames are the uninterrupted run's
        if rel != lost_row and rel in kept:
            assert p.stat().st_mtime_ns == kept[rel], f"{rel} was rendered again"
    rows = _rows(out)
    assert len(rows) == 10 and len({r["output"] for r in rows}) == 10


def test_generate_frames_match_the_animate_command(one_photo, tmp_path):
    """Default settings on both commands: `animate --seed <the manifest's seed>` renders the same bytes."""
    paths = tmp_path / "paths.csv"
    paths.write_text("name,valence,arousal,expression,frames,closed\n"
                     "circle,0.8,0,,4,true\ncircle,0,0.8,,,\ncircle,-0.8,0,,,\ncircle,0,-0.8,,,\n"
                     "anger,,,neutral,5,\nanger,,,anger,,\n")
    out = tmp_path / "out"
    runner = CliRunner()
    old = torch.get_num_threads()
    torch.set_num_threads(1)  # animate's default --threads 1: the fit's float sums depend on the thread count
    try:
        r = runner.invoke(main, ["generate", str(one_photo), str(out), "--paths", str(paths), "--size", "64",
                                 "--workers", "1", "-q"])
    finally:
        torch.set_num_threads(old)
    assert r.exit_code == 0, r.output
    rows = _rows(out)
    assert len(rows) == 9
    seeds = {r["sequence"]: r["seed"] for r in rows}
    for name, how in (("circle", ["--path", "0.8,0;0,0.8;-0.8,0;0,-0.8;0.8,0", "--frames", "4"]),
                      ("anger", ["--expressions", "neutral,anger", "--frames", "5"])):
        seq = tmp_path / name
        r = runner.invoke(main, ["animate", str(one_photo / PHOTO), "--out", str(seq), *how, "--size", "64",
                                 "--seed", seeds[name], "-q"])
        assert r.exit_code == 0, r.output
        anim = {int(x["frame"]): x for x in csv.DictReader(io.StringIO((seq / "frames.csv").read_text()))}
        for row in (x for x in rows if x["sequence"] == name):
            i = int(row["frame"])
            assert (seq / f"frame_{i:04d}.png").read_bytes() == (out / row["output"]).read_bytes(), (name, i)
            assert anim[i]["variant"] == row["variant"]
            assert {k: v for k, v in json.loads(anim[i]["weights"]).items() if v != 0} == json.loads(row["weights"])
