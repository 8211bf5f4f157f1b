"""The engines detect the faces of several photos at once (`process_images`, units of `work_units`):
that must change no output bit and no manifest row, bad files and faceless photos included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from affectsynth import Synthesizer
from affectsynth.batch import GenerateSettings, plan_jobs, process_image, process_images, synth_threads
from affectsynth.blendshapes.targets import Expression

PHOTOS = ("2008_004176.jpg", "dogs.jpg", "Tom_Cruise_avp_2014_4.jpg", "2008_002470.jpg")  # group, no face, one, group


def _outputs(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.png"))}


def _run(synth: Synthesizer, inputs: Path, out: Path, settings: GenerateSettings, *, together: bool) -> list:
    jobs = plan_jobs(inputs, out, settings).jobs
    rows = process_images(synth, jobs) if together else [process_image(synth, job) for job in jobs]
    return rows


@pytest.mark.parametrize("faces", ["largest", "all"])
def test_one_detection_batch_gives_the_bytes_and_rows_of_photo_by_photo(tmp_path, dev_photos, faces):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in PHOTOS:
        shutil.copy(dev_photos / name, inputs / name)
    (inputs / "broken.jpg").write_bytes(b"not a photo")
    settings = GenerateSettings(targets=(Expression("anger"), Expression("surprise", 0.6)), size=64, seed=5,
                                faces=faces)
    batched = Synthesizer()
    sizes: list[int] = []
    detect_batch = batched.detector.detect_batch

    def recorded(images, **kw):
        sizes.append(len(images))
        return detect_batch(images, **kw)

    batched.detector.detect_batch = recorded
    with synth_threads():  # the engines' one thread: where the detection is batched
        alone = _run(Synthesizer(), inputs, tmp_path / "alone", settings, together=False)
        together = _run(batched, inputs, tmp_path / "together", settings, together=True)
    assert sizes == [len(PHOTOS)]  # every readable photo in one detection batch
    assert together == alone
    statuses = {r.status for job_rows in alone for r in job_rows}
    assert {"ok", "error", "skipped"} <= statuses  # the written, the unreadable, the faceless
    written = _outputs(tmp_path / "alone")
    assert written and _outputs(tmp_path / "together") == written
