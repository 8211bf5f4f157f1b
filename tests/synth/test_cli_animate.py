"""``affectsynth animate`` in-process: outputs, the frame manifest, usage errors."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from affectsynth.animate import FRAME_COLUMNS
from affectsynth.cli import main
from affectsynth.images import save_png


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_demo_path_to_png_frames_with_a_manifest(runner, tmp_path):
    out = tmp_path / "seq"
    r = runner.invoke(main, ["animate", "--demo", "--out", str(out), "--path", "0,0;0.8,0.3", "--frames", "3",
                             "--size", "64", "--sway", "3,0", "-q"])
    assert r.exit_code == 0, r.output
    assert r.stdout.split() == [str(out), str(out / "frames.csv")]
    rows = _rows(out / "frames.csv")
    assert list(rows[0]) == list(FRAME_COLUMNS) and [x["frame"] for x in rows] == ["0", "1", "2"]
    assert [float(x["time_s"]) for x in rows] == pytest.approx([0, 1 / 12, 2 / 12], abs=1e-6)
    va = [(float(x["valence"]), float(x["arousal"])) for x in rows]
    np.testing.assert_allclose(va, [(0, 0), (0.4, 0.15), (0.8, 0.3)], atol=1e-6)
    assert [float(x["head_yaw"]) for x in rows] == pytest.approx([0, 2.598, -2.598], abs=1e-3)
    for x in rows:
        img = np.asarray(Image.open(out / x["file"]))
        assert img.shape == (64, 64, 3)
        lm = np.array(json.loads(x["landmarks"]))
        assert lm.shape == (468, 2) and (lm > 0).all() and (lm < 64).all()  # pixels of the frame
    assert json.loads(rows[2]["weights"])["mouthSmile_L"] > json.loads(rows[0]["weights"]).get("mouthSmile_L", 0)


def test_categories_to_an_animated_webp(runner, tmp_path, photo):
    src = tmp_path / "face.png"
    save_png(src, photo)  # a 128 px photo file
    out = tmp_path / "seq.webp"
    r = runner.invoke(main, ["animate", str(src), "--out", str(out), "--expressions", "happy", "--frames", "3",
                             "--size", "64", "--fps", "6", "-q"])
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.n_frames == 3 and im.size == (64, 64)
    rows = _rows(tmp_path / "seq.frames.csv")
    assert [(x["target_kind"], x["expression"], float(x["intensity"])) for x in rows] == [
        ("expression", "happiness", 0.0), ("expression", "happiness", 1.0), ("expression", "happiness", 0.0)]
    assert all(x["file"] == "" for x in rows)


@pytest.mark.parametrize("args, msg", [
    (["--out", "x/"], "PHOTO or --demo"),
    (["--demo", "--out", "x/"], "--path"),
    (["--demo", "--out", "x/", "--path", "circle", "--expressions", "happy"], "one of --path"),
    (["--demo", "--out", "x/", "--path", "circle", "--frames", "4", "--seconds", "2"], "alternatives"),
    (["--demo", "--out", "x.gif", "--path", "circle", "--format", "webp"], "make them agree"),
    (["--demo", "--out", "x.gif", "--path", "circle", "--format", "png"], "folder of frames"),
    (["--demo", "--out", "x/", "--path", "0,0;3,0"], "[-1, 1]"),
    (["--demo", "--out", "x/", "--expressions", "glee"], "unknown expression"),
    (["--demo", "--out", "x/", "--path", "circle", "--sway", "40,0"], "[0, 30]"),
])
def test_usage_errors_exit_2_before_loading(runner, tmp_path, args, msg):
    r = runner.invoke(main, ["animate", *args])
    assert r.exit_code == 2, r.output
    assert msg in r.output


def test_help_has_examples(runner):
    r = runner.invoke(main, ["animate", "--help"])
    assert r.exit_code == 0 and "affectsynth animate --demo" in r.output and "frames.csv" in r.output


def test_dry_run_lists_frames_and_writes_nothing(runner, tmp_path):
    out = tmp_path / "seq"
    r = runner.invoke(main, ["animate", "--demo", "--out", str(out), "--expressions", "happy,sad", "--frames", "5",
                             "--dry-run"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 5 and lines[2].split("\t")[:3] == ["2", "0.1667", "sadness 0"]
    assert lines[1].split("\t")[2].startswith("happiness 1") and lines[4].endswith(str(out / "frame_0004.png"))
    assert not out.exists()
