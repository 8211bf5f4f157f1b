"""The generate bar counts outputs (images x targets), failed and skipped ones too, in-process and
with workers; the demo shows its stages. Real bars (tqdm) drawn into a StringIO."""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from affectsynth.batch import GenerateSettings, run_batch
from affectsynth.blendshapes import Expression
from affectsynth.progress import OutputProgress, progress_enabled
from affectsynth.sample_data import astronaut

TARGETS = (Expression("happiness", 1.0), Expression("sadness", 0.5), Expression("surprise", 1.0))


def _inputs(folder: Path) -> Path:
    """One photo with a face, one without (flat grey), one unreadable file."""
    folder.mkdir(parents=True)
    Image.fromarray(astronaut()).resize((256, 256)).save(folder / "face.png")
    Image.fromarray(np.full((96, 96, 3), 128, np.uint8)).save(folder / "grey.png")
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    return folder


def _final_line(text: str) -> str:
    return [s for s in re.split(r"[\r\n]", text) if s.strip()][-1]


def _check_bar(text: str, note: str) -> None:
    last = _final_line(text)
    assert "9/9" in last, last  # 3 images x 3 targets, counted as outputs
    assert re.search(r"out/s|s/out", last), last  # the rate is in outputs (tqdm inverts it when slow)
    assert "ok=3 skip=3 err=3" in last, last  # skipped (no face) and failed (unreadable) outputs count too
    assert f"generate [{note}]" in text


def test_bar_counts_outputs_in_process(tmp_path):
    src = _inputs(tmp_path / "in")
    buf = io.StringIO()
    summary = run_batch(src, tmp_path / "out", GenerateSettings(targets=TARGETS, size=128, workers=None),
                        progress=True, progress_file=buf)
    assert summary.workers.note == "in-process: job too small for workers"
    assert summary.written == 3 and summary.n_failed == 3
    _check_bar(buf.getvalue(), "in-process: job too small for workers")
    assert "execution: in-process: job too small for workers" in summary.lines()
    assert summary.to_dict()["workers"] == 1


@pytest.mark.slow
def test_bar_counts_outputs_with_workers(tmp_path):
    src = _inputs(tmp_path / "in")
    buf = io.StringIO()
    summary = run_batch(src, tmp_path / "out", GenerateSettings(targets=TARGETS, size=128, workers=2),
                        progress=True, progress_file=buf)
    assert summary.workers.workers == 2 and summary.workers.explicit  # obeyed on a 3-image job
    _check_bar(buf.getvalue(), "2 workers (--workers 2)")


class _Row:
    def __init__(self, status: str) -> None:
        self.status = status


def test_extra_faces_grow_the_total_and_missing_rows_still_advance():
    buf = io.StringIO()
    bar = OutputProgress({"a.png": 2, "b.png": 2}, note="in-process", file=buf)
    bar.advance("a.png", [_Row("ok"), _Row("ok"), _Row("ok"), _Row("error")])  # a second face: 2 more outputs
    assert (bar.done, bar.total) == (4, 6)
    bar.advance("b.png", [_Row("rejected")])  # one row for two planned outputs: the bar still ends full
    assert (bar.done, bar.total) == (6, 6)
    assert bar.postfix() == "ok=3 skip=2 err=1"
    bar.close()
    assert "6/6" in _final_line(buf.getvalue())


def test_progress_can_be_asked_for_without_a_terminal(monkeypatch):
    monkeypatch.delenv("AFFECTSYNTH_NO_PROGRESS", raising=False)
    monkeypatch.setenv("AFFECTSYNTH_PROGRESS", "1")
    assert progress_enabled(stream=io.StringIO())
    assert not progress_enabled(quiet=True, stream=io.StringIO())
    monkeypatch.setenv("AFFECTSYNTH_NO_PROGRESS", "1")
    assert not progress_enabled(stream=io.StringIO())


def test_demo_shows_its_stages(tmp_path, monkeypatch):
    from affectsynth.cli import main

    monkeypatch.delenv("AFFECTSYNTH_NO_PROGRESS", raising=False)
    monkeypatch.setenv("AFFECTSYNTH_PROGRESS", "1")
    r = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "demo"), "--cell", "64"])
    assert r.exit_code == 0, r.output
    err = r.stderr
    for stage in ("loading models", "fitting", "synthesising 1/8", "synthesising 8/8", "writing the grid"):
        assert stage in err, (stage, err[-2000:])
    assert "11/11" in _final_line(err)
    assert (tmp_path / "demo" / "grid.png").is_file()
    quiet = CliRunner().invoke(main, ["demo", "--out", str(tmp_path / "q"), "--cell", "64", "--quiet"])
    assert quiet.exit_code == 0 and "synthesising" not in quiet.stderr
