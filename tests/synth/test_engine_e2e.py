"""End-to-end engine tests with the real Synthesizer (skipped until affectsynth.synthesizer exists).

Covers: a batch over every awkward input kind (exit 3, one reason per bad file), resume, a
SIGKILL part-way through and a rerun (every output once, readable, one ok row each), the
transform on a real face (labels, replay, worker-count independence), and `demo`.
"""

from __future__ import annotations

import csv
import importlib.util
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

if importlib.util.find_spec("affectsynth.synthesizer") is None:
    pytest.skip("needs affectsynth.synthesizer (the lead's Synthesizer); absent", allow_module_level=True)

import torch  # noqa: E402

from affectsynth.atomic import TMP_SUFFIX  # noqa: E402
from affectsynth.cli import main  # noqa: E402
from affectsynth.images import save_png  # noqa: E402
from affectsynth.manifest import is_readable_image  # noqa: E402


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
    for good in ("rgb.png", "gray.png", "rgba.png", "cmyk.jpg", "gray16.png", "rgb16.png", "exif_rot.jpg"):
        row = by_source[f"awkward/{good}"]
        assert row["status"] in ("ok", "skipped"), row  # 128 px photo: a face, or a clear skip reason
    for row in rows:
        if row["status"] == "ok":
            p = out / row["output"]
            assert is_readable_image(p)
            with Image.open(p) as im:
                assert im.size == (64, 64)
            assert row["expression"] == "happiness" and row["weights"].startswith("{")
    assert "failed: unreadable" in r.stderr
    # resume: nothing new to write, errors retried (and fail again)
    r2 = CliRunner().invoke(main, ["generate", str(inp), str(out), "--expressions", "happiness", "--workers", "1",
                                   "--quiet", "--size", "64", "--format", "json"])
    assert r2.exit_code == 3
    assert '"written": 0' in r2.stdout
    assert len(files) > 10


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
    torch.testing.assert_close(img2, img) and int(label2) == int(label)
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
