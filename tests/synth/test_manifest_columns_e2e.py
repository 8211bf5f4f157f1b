"""End-to-end on a real dev photo: the box, size, rotation, lighting, AU and landmark columns describe the
written image; parquet equals the CSV; a rerun with other settings refuses (CLI exit 2, naming them);
--overwrite redoes exactly the affected outputs; an older manifest resumes. Marked slow."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from affectsynth.batch import GenerateSettings, RunSettingsConflict, make_synthesizer, run_batch
from affectsynth.blendshapes.targets import Expression
from affectsynth.cli import main
from affectsynth.manifest import COLUMNS, Manifest, ManifestRow
from affectsynth.run_record import RUN_RECORD_NAME, run_settings

pytestmark = pytest.mark.slow

DEV = Path(__file__).resolve().parents[2] / ".." / "shared" / "assets" / "dev-photos"
PHOTO = DEV / "2007_007763.jpg"
SIZE = 64
OPTS = dict(size=SIZE, head_rotation_deg=(10.0, 5.0), light_strength=0.5)
TARGETS = (Expression("happiness"), Expression("sadness"))
CLI = ["--expressions", "happiness,sadness", "--size", str(SIZE), "--head-rotation", "10,5", "--relight", "0.5",
       "--workers", "1", "--quiet"]


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    if not PHOTO.exists():
        pytest.skip(f"needs the shared dev photos ({PHOTO} is absent)")
    root = tmp_path_factory.mktemp("columns")
    inp = root / "in"
    inp.mkdir()
    shutil.copy(PHOTO, inp / PHOTO.name)
    settings = GenerateSettings(targets=TARGETS, **OPTS)
    synth = make_synthesizer(settings)
    out = root / "out"
    summary = run_batch(inp, out, settings, synthesizer=synth, manifest_format="parquet")
    assert summary.written == 2, summary.lines()
    return inp, out, synth


def test_new_columns_describe_the_written_image(first_run):
    inp, out, _ = first_run
    with Image.open(inp / PHOTO.name) as im:
        width, height = im.size
    rows = _rows(out)
    assert len(rows) == 2 and {r["status"] for r in rows} == {"ok"}
    for r in rows:
        with Image.open(out / r["output"]) as im:
            assert im.size == (int(r["out_width"]), int(r["out_height"])) == (SIZE, SIZE)
        fx0, fy0, fx1, fy1 = (float(r[k]) for k in ("face_x0", "face_y0", "face_x1", "face_y1"))
        assert 0 <= fx0 < fx1 <= width and 0 <= fy0 < fy1 <= height  # the face box, in the photo
        cx0, cy0, cx1, cy1 = (int(r[k]) for k in ("crop_x0", "crop_y0", "crop_x1", "crop_y1"))
        side = cx1 - cx0
        assert side == cy1 - cy0 and abs(side - 1.6 * max(fx1 - fx0, fy1 - fy0)) <= 1  # --size's square
        assert abs((cx0 + cx1) / 2 - (fx0 + fx1) / 2) <= 1 and abs((cy0 + cy1) / 2 - (fy0 + fy1) / 2) <= 1
        pts = np.asarray(json.loads(r["landmarks"]))
        assert pts.shape == (468, 2) and (pts >= 0).all() and (pts <= SIZE).all()
        assert np.allclose(pts, pts.round(2))
        # the landmarks are those of the written crop: they cover the face box mapped into it
        s = SIZE / side
        box = np.array([(fx0 - cx0) * s, (fy0 - cy0) * s, (fx1 - cx0) * s, (fy1 - cy0) * s])
        lo, hi = pts.min(0), pts.max(0)
        inter = np.clip(np.minimum(hi, box[2:]) - np.maximum(lo, box[:2]), 0, None).prod()
        union = (hi - lo).prod() + (box[2:] - box[:2]).prod() - inter
        assert inter / union > 0.5, (lo, hi, box)
        assert abs(float(r["head_rotation_yaw"])) <= 10 and abs(float(r["head_rotation_pitch"])) <= 5
        assert float(r["head_rotation_yaw"]) != 0.0
        if r["light_azimuth"]:
            assert abs(float(r["light_azimuth"])) <= 60 and 0 <= float(r["light_strength"]) <= 0.5
        aus = json.loads(r["au_activations"])
        assert all(0 < v <= 1 for v in aus.values())
        if r["expression"] == "happiness":
            assert aus["AU12_L"] > 0.5 and aus["AU12_R"] > 0.5
        else:
            assert aus.get("AU15", 0) > 0.3 and aus.get("AU12_L", 0) < 0.2
        assert r["settings_id"] == run_settings(GenerateSettings(targets=TARGETS, **OPTS)).id


def test_parquet_equals_csv(first_run):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is in the dev extra")
    _, out, _ = first_run
    table = pq.read_table(out / "manifest.parquet").to_pylist()
    rows = [ManifestRow.from_csv_dict(d) for d in _rows(out)]
    assert len(table) == len(rows) == 2
    for got, row in zip(table, rows):
        for col in COLUMNS:
            want = getattr(row, col)
            want = (json.loads(want) if want else None) if col == "landmarks" else (
                None if want == "" and col not in ("source", "output", "status") else want)
            assert got[col] == want, col


def test_rerun_with_another_size_refuses_naming_it(first_run):
    inp, out, _ = first_run
    before = {p: p.read_bytes() for p in (out / "manifest.csv", out / RUN_RECORD_NAME)}
    args = ["generate", str(inp), str(out)] + [a if a != str(SIZE) else "96" for a in CLI]
    for extra in ([], ["--dry-run"]):
        r = CliRunner().invoke(main, args + extra)
        assert r.exit_code == 2, r.output
        assert "size 64 -> 96" in r.output and "--overwrite" in r.output and "2 outputs" in r.output
    assert {p: p.read_bytes() for p in before} == before
    # settings that change no output: no refusal, everything already done
    r = CliRunner().invoke(main, ["generate", str(inp), str(out)] + CLI + ["--workers", "3", "--png-compression", "6"])
    assert r.exit_code == 0 and "2 already done" in r.output, r.output


def test_overwrite_redoes_affected_outputs_and_keeps_the_rest(first_run, tmp_path):
    inp, out0, synth = first_run
    out = tmp_path / "out"
    shutil.copytree(out0, out)
    old = {r["output"]: r for r in _rows(out)}
    sad = next(o for o in old if "sadness" in o)
    sad_bytes = (out / sad).read_bytes()
    # another seed, happiness only: the happiness output is redone, the sadness one (not asked for) kept
    b = GenerateSettings(targets=TARGETS[:1], seed=7, **OPTS)
    with pytest.raises(RunSettingsConflict, match="seed 0 -> 7"):
        run_batch(inp, out, b, synthesizer=synth)
    s = run_batch(inp, out, b, synthesizer=synth, overwrite=True)
    assert s.overwritten == 1 and s.written == 1
    new = {r["output"]: r for r in _rows(out)}
    hap = next(o for o in new if "happiness" in o)
    assert new[hap]["seed"] != old[hap]["seed"] and new[hap]["settings_id"] == run_settings(b).id
    assert new[hap]["head_rotation_yaw"] != old[hap]["head_rotation_yaw"]  # drawn from the new seed
    assert new[sad] == old[sad] and (out / sad).read_bytes() == sad_bytes
    # the parquet that was there is kept in step (csv-format runs too)
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is in the dev extra")
    assert {r["output"]: r["seed"] for r in pq.read_table(out / "manifest.parquet").to_pylist()} == {
        o: int(r["seed"]) for o, r in new.items()}
    # the kept sadness output still remembers its seed
    with pytest.raises(RunSettingsConflict, match=r"1 output .*sadness.*seed 0 -> 7"):
        run_batch(inp, out, GenerateSettings(targets=TARGETS, seed=7, **OPTS), synthesizer=synth)


def test_an_older_manifest_resumes(first_run, tmp_path):
    """The previous release's manifest (its 21 columns, no run.json) resumes without redoing anything."""
    inp, out0, synth = first_run
    out = tmp_path / "out"
    shutil.copytree(out0, out)
    (out / RUN_RECORD_NAME).unlink()
    (out / "manifest.parquet").unlink()
    rows = _rows(out)
    with open(out / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS[:21])
        for r in rows:
            w.writerow([r[c] for c in COLUMNS[:21]])
    r = CliRunner().invoke(main, ["generate", str(inp), str(out)] + CLI)
    assert r.exit_code == 0 and "0 outputs written" in r.output and "2 already done" in r.output, r.output
    m = Manifest(out / "manifest.csv")
    assert len(m.rows) == 2 and all(x.landmarks == "" and x.settings_id for x in m.rows)
    assert (out / RUN_RECORD_NAME).exists()
