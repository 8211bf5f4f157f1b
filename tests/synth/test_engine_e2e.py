"""End-to-end engine tests with the real Synthesizer (marked slow: `-m "not slow"` leaves them out).

Covers: a batch over every awkward input kind (exit 3, one reason per bad file), resume, a
SIGKILL part-way through and a rerun (every output once, readable, one ok row each), the
transform on a real face (labels, replay, worker-count independence), and `demo`.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

import torch

from affectsynth.atomic import TMP_SUFFIX
from affectsynth.cli import main
from affectsynth.images import save_png
from affectsynth.manifest import is_readable_image

pytestmark = pytest.mark.slow


DEV = Path(__file__).resolve().parents[2] / ".." / "shared" / "assets" / "dev-photos"


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    import skimage.data

    return np.asarray(Image.fromarray(skimage.data.astronaut()).resize((256, 256)))


def test_batch_over_awkward_inputs(tmp_path, astronaut, awkward_writer):
    inp = tmp_path / "in"
    files = awkward_writer(inp / "awkward", astronaut)
    save_png(inp / "noface.png", np.full((128, 128, 3), 128, np.uint8))
    save_png(inp / "tiny.png", np.asarray(Image.fromarray(astronaut).resize((40, 40))))
    if (DEV / "bald_guys.jpg").exists():
        (inp / "many.jpg").write_bytes((DEV / "bald_guys.jpg").read_bytes())
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["generate", str(inp), str(out), "--expressions", "happiness", "--workers", "1",
                                  "--quiet", "--size", "64"])
    assert r.exit_code == 3, r.output
    rows = _rows(out)
    by_source = {row["source"]: row for row in rows}
    for bad in ("empty.png", "notimage.jpg", "truncated.jpg", "bomb.png"):
        row = by_source[f"awkward/{bad}"]
        assert row["status"] == "error" and row["error"].startswith("unreadable:")
    assert by_source["noface.png"]["status"] == "skipped" and by_source["noface.png"]["error"].startswith("no-face")
    assert {f"awkward/{name}" for name in files} <= set(by_source)  # every input has a row
    good = ("rgb.png", "gray.png", "rgba.png", "cmyk.jpg", "gray16.png", "rgb16.png", "exif_rot.jpg")
    for name in good:
        row = by_source[f"awkward/{name}"]
        assert row["status"] in ("ok", "skipped"), row  # 128 px photo: a face, or a clear skip reason
        assert row["status"] == "ok" or row["error"].split(":")[0] in ("no-face", "face-too-small"), row
    assert sum(by_source[f"awkward/{n}"]["status"] == "ok" for n in good) >= 5  # decodable photos give faces
    for row in rows:
        if row["status"] == "ok":
            p = out / row["output"]
            assert is_readable_image(p)
            with Image.open(p) as im:
                assert im.size == (64, 64)
            assert row["expression"] == "happiness" and row["weights"].startswith("{")
    assert "failed: unreadable" in r.stderr
    # resume: nothing new to write, permanent errors stand (recorded once, not retried)
    before = (out / "manifest.csv").read_bytes()
    r2 = CliRunner().invoke(main, ["generate", str(inp), str(out), "--expressions", "happiness", "--workers", "1",
                                   "--quiet", "--size", "64", "--format", "json"])
    assert r2.exit_code == 0, r2.output
    assert '"written": 0' in r2.stdout and '"unreadable": 5' in r2.stdout  # standing_failed
    assert "not retried: " in r2.stderr and (out / "manifest.csv").read_bytes() == before
    r3 = CliRunner().invoke(main, ["generate", str(inp), str(out), "--expressions", "happiness", "--workers", "1",
                                   "--quiet", "--size", "64", "--retry-errors"])
    assert r3.exit_code == 3 and "retried: " in r3.stderr
    assert len(_rows(out)) == len(rows)  # retried rows replace the old ones


def _expected_outputs(inp: Path, out: Path, targets: int) -> int:
    return len(list(inp.glob("*.png"))) * targets


def test_sigkill_then_resume(tmp_path, astronaut):
    inp, out = tmp_path / "in", tmp_path / "out"
    for k in range(8):
        s = 160 + 12 * k
        save_png(inp / f"p{k}.png", np.asarray(Image.fromarray(astronaut).resize((s, s))))
    cmd = [sys.executable, "-m", "affectsynth.cli", "generate", str(inp), str(out),
           "--expressions", "happiness,sadness,surprise", "--workers", "2", "--quiet"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    log = tmp_path / "first_run.log"  # a file, not a pipe: an unread pipe could block the child
    with log.open("wb") as log_file:
        proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=log_file, stderr=log_file)
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            m = out / "manifest.csv"
            if m.exists() and sum(1 for ln in m.read_text().splitlines()[1:] if ",ok," in ln) >= 4:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run finished before it could be killed: {log.read_text()[-2000:]}"
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    p2 = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert p2.returncode == 0, p2.stderr
    rows = [r for r in _rows(out) if r["status"] == "ok"]
    counts = Counter(r["output"] for r in rows)
    assert len(counts) == 8 * 3 and set(counts.values()) == {1}
    pngs = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.png"))
    assert pngs == sorted(counts) and not list(out.rglob("*" + TMP_SUFFIX))
    assert all(is_readable_image(out / o) for o in counts)


def test_transform_on_a_real_face(astronaut):
    from affectsynth.transform import AffectAugment

    aug = AffectAugment(("happiness", "surprise"), p=1.0, seed=0, label_preset="fer2013")
    t = torch.from_numpy(astronaut.copy()).permute(2, 0, 1).float() / 255
    img, label = aug((t, torch.tensor(6)))
    assert img.shape == t.shape and img.dtype == t.dtype and int(label) in (3, 5)
    assert (img - t).abs().max() > 0.05
    img2, label2 = aug.apply((t, torch.tensor(6)), aug.last_params)
    torch.testing.assert_close(img2, img)
    assert int(label2) == int(label)
    assert aug.stats["fits"] == 1 and aug.stats["cache_hits"] >= 1


def test_demo_writes_grid(tmp_path):
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path), "--cell", "128"])
    assert r.exit_code == 0, r.output
    paths = r.stdout.split()
    assert paths == [str(tmp_path / "astronaut.png"), str(tmp_path / "grid.png")]
    with Image.open(tmp_path / "grid.png") as grid:
        assert grid.size[0] > 9 * 128


class _Faces(torch.utils.data.Dataset):
    def __init__(self, imgs, aug):
        self.imgs, self.aug = imgs, aug

    def __len__(self):
        return len(self.imgs)

    def __getitem__(self, i):
        img, label = self.aug((self.imgs[i], 6))
        return torch.from_numpy(np.array(img)), torch.as_tensor(label)  # a writable copy


def test_transform_in_dataloader_with_two_workers(astronaut):
    from torch.utils.data import DataLoader

    from affectsynth.transform import AffectAugment

    imgs = [np.ascontiguousarray(np.asarray(Image.fromarray(astronaut).resize((s, s)))) for s in (192, 200, 208, 216)]
    aug = AffectAugment(("happiness", "surprise"), p=0.75, seed=2, label_preset="fer2013")
    runs = []
    for workers in (0, 2):
        dl = DataLoader(_Faces(imgs, aug), batch_size=1, num_workers=workers)
        runs.append([(x[0].numpy().copy(), int(y[0])) for x, y in dl])
    for (a, la), (b, lb) in zip(*runs):
        assert la == lb
        np.testing.assert_array_equal(a, b)
    assert any(lab != 6 for _, lab in runs[0])


def test_faces_all_writes_every_face(tmp_path, dev_photos):
    """`--faces all` on a group photo: one output per face and target, each row naming its face."""
    inp, out = tmp_path / "in", tmp_path / "out"
    inp.mkdir()
    img = np.asarray(Image.open(dev_photos / "2008_001322.jpg").convert("RGB"))
    save_png(inp / "group.png", img)
    r = CliRunner().invoke(main, ["generate", str(inp), str(out), "--expressions", "happiness", "--faces", "all",
                                  "--workers", "1", "--quiet", "--size", "64"])
    assert r.exit_code in (0, 3), r.output
    rows = _rows(out)
    n_faces = {int(row["n_faces"]) for row in rows}
    assert len(n_faces) == 1 and n_faces.pop() == len(rows) >= 2, rows
    assert sorted(int(row["face"]) for row in rows) == list(range(len(rows)))
    ok = [row for row in rows if row["status"] == "ok"]
    assert ok and len({row["output"] for row in rows}) == len(rows)
    for row in ok:
        assert is_readable_image(out / row["output"])


def test_head_rotation_option_is_parsed_and_labelled(tmp_path, astronaut):
    """`--head-rotation 12,6`: each output turned within the limits, the pose recorded per row."""
    inp, out = tmp_path / "in", tmp_path / "out"
    save_png(inp / "a.png", astronaut)
    plain = tmp_path / "plain"
    args = ["generate", str(inp), "--expressions", "neutral,happiness", "--workers", "1", "--quiet", "--size", "96"]
    assert CliRunner().invoke(main, args[:2] + [str(plain)] + args[2:]).exit_code == 0
    r = CliRunner().invoke(main, args[:2] + [str(out)] + args[2:] + ["--head-rotation", "12,6"])
    assert r.exit_code == 0, r.output
    base = {row["output"]: row for row in _rows(plain)}
    for row in _rows(out):
        turn = float(row["yaw"]) - float(base[row["output"]]["yaw"])
        tilt = float(row["pitch"]) - float(base[row["output"]]["pitch"])
        assert 0.01 < abs(turn) <= 12.5 and abs(tilt) <= 6.5, row
    bad = CliRunner().invoke(main, args[:2] + [str(tmp_path / "x")] + args[2:] + ["--head-rotation", "12"])
    assert bad.exit_code == 2 and "--head-rotation" in bad.output
    too_far = CliRunner().invoke(main, args[:2] + [str(tmp_path / "y")] + args[2:] + ["--head-rotation", "45,0"])
    assert too_far.exit_code == 2 and "--head-rotation" in too_far.output


def test_transform_passes_refused_faces_through(astronaut):
    """The transform applies the same face gates as `generate`: a refused face keeps its image and label."""
    from affectsynth.gates import FaceGates
    from affectsynth.synthesizer import SynthSettings, Synthesizer
    from affectsynth.transform import AffectAugment

    strict = Synthesizer(settings=SynthSettings(gates=FaceGates(max_yaw_deg=0.01)))
    aug = AffectAugment(("happiness",), p=1.0, seed=0, label_preset="fer2013", synthesizer=strict)
    img, label = aug((astronaut, 6))
    assert img is astronaut and label == 6
    assert aug.stats["rejected"] == 1 and aug.stats["applied"] == 0 and "extreme-pose" in aug.last_error
