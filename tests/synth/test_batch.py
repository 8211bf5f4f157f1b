"""Batch engine parts that need no Synthesizer: settings, planning, resume, crops, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest

from affectsynth.batch import GenerateSettings, Job, crop_square, item_seed, plan_jobs, process_image, select_targets
from affectsynth.blendshapes.targets import VA, Expression
from affectsynth.images import save_png
from affectsynth.manifest import Manifest, ManifestRow

TARGETS = (Expression("happiness"), Expression("sadness", 0.5), VA(0.5, -0.25))


def _settings(**kw) -> GenerateSettings:
    return GenerateSettings(targets=kw.pop("targets", TARGETS), **kw)


@pytest.mark.parametrize("kw,needle", [({"targets": ()}, "at least one target"),
                                       ({"per_image": 4}, "--per-image"), ({"per_image": 0}, "--per-image"),
                                       ({"size": 8}, "--size"), ({"faces": "some"}, "--faces"),
                                       ({"workers": 0}, "--workers"), ({"layout": "x"}, "--layout"),
                                       ({"targets": (Expression("fear"), Expression("fear"))}, "duplicate")])
def test_settings_validate(kw, needle):
    with pytest.raises(ValueError, match=needle):
        _settings(**kw)


def test_select_targets_is_seeded_by_seed_and_path():
    many = tuple(Expression(c, i) for c in ("happiness", "sadness", "fear") for i in (0.5, 1.0))
    a = select_targets(many, 2, seed=0, rel_source="x/a.jpg")
    assert a == select_targets(many, 2, seed=0, rel_source="x/a.jpg") and len(a) == 2
    assert list(a) == sorted(a, key=many.index)
    draws = {select_targets(many, 2, seed=s, rel_source=f"{s}.jpg") for s in range(20)}
    assert len(draws) > 5
    assert select_targets(many, None, seed=0, rel_source="a") == many
    assert item_seed(1, "a") != item_seed(1, "b")


def test_plan_lists_every_image_and_target(tmp_path, photo):
    for rel in ["a.jpg", "sub/a.jpg", "sub/b.PNG", "notes.txt"]:
        p = tmp_path / "in" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    plan = plan_jobs(tmp_path / "in", tmp_path / "out", _settings())
    assert plan.sources == 3 and len(plan.jobs) == 3 and plan.already_done == 0
    outs = [o for _, o, _ in plan.planned_outputs]
    assert len(outs) == 9 == len(set(outs))
    assert "sub/b_PNG/f0_va_+0.50_-0.25.png" in outs
    plan2 = plan_jobs(tmp_path / "in", tmp_path / "out", _settings(per_image=1))
    assert len(plan2.planned_outputs) == 3


def test_plan_skips_done_outputs_and_sources(tmp_path):
    (tmp_path / "in").mkdir()
    for n in ("a.jpg", "b.jpg"):
        (tmp_path / "in" / n).write_bytes(b"x")
    out = tmp_path / "out"
    s = _settings()
    with Manifest(out / "manifest.csv", output_root=out) as m:
        for t in TARGETS:  # a.jpg fully done
            o = Job("", "a.jpg", str(out), TARGETS, s).output_for(t)
            save_png(out / o, np.zeros((4, 4, 3), np.uint8))
            m.append(ManifestRow("a.jpg", o, "ok"))
        o = Job("", "b.jpg", str(out), TARGETS, s).output_for(TARGETS[0])
        save_png(out / o, np.zeros((4, 4, 3), np.uint8))
        m.append(ManifestRow("b.jpg", o, "ok"))  # b.jpg: 1 of 3 done
        m.append(ManifestRow("b.jpg", Job("", "b.jpg", str(out), TARGETS, s).output_for(TARGETS[1]), "error",
                             "write-failed: x"))  # transient: retried
    plan = plan_jobs(tmp_path / "in", out, s, manifest=Manifest(out / "manifest.csv", output_root=out))
    assert [j.rel_source for j in plan.jobs] == ["b.jpg"] and plan.already_done == 4
    assert plan.jobs[0].done == {o} and len(plan.planned_outputs) == 2
    assert "write-failed" not in (out / "manifest.csv").read_text()  # dropped on open: its retry adds the row


def test_permanent_errors_are_settled_unless_retried(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(b"x")
    out = tmp_path / "out"
    s = _settings()
    job = Job("", "a.jpg", str(out), TARGETS, s)
    with Manifest(out / "manifest.csv", output_root=out) as m:
        m.extend([ManifestRow("a.jpg", job.output_for(t), "error", "unreadable: x") for t in TARGETS])
    plan = plan_jobs(tmp_path / "in", out, s, manifest=Manifest(out / "manifest.csv", output_root=out))
    assert plan.jobs == [] and plan.already_done == 0  # recorded once, not redone
    m = Manifest(out / "manifest.csv", output_root=out, retry_errors=True)
    assert m.retried_rows == 3 and not m.rows
    plan = plan_jobs(tmp_path / "in", out, s, manifest=m)
    assert len(plan.jobs) == 1 and len(plan.planned_outputs) == 3


def test_plan_faces_all_uses_n_faces(tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jpg").write_bytes(b"x")
    out = tmp_path / "out"
    s = _settings(targets=(Expression("fear"),), faces="all")
    job = Job("", "a.jpg", str(out), s.targets, s)
    with Manifest(out / "manifest.csv", output_root=out) as m:
        o0 = job.output_for(s.targets[0], 0)
        save_png(out / o0, np.zeros((4, 4, 3), np.uint8))
        m.append(ManifestRow("a.jpg", o0, "ok", face=0, n_faces=2))
    plan = plan_jobs(tmp_path / "in", out, s, manifest=Manifest(out / "manifest.csv", output_root=out))
    assert len(plan.jobs) == 1 and plan.jobs[0].done == {o0}  # face 1 still to do
    with Manifest(out / "manifest.csv", output_root=out) as m:
        m.append(ManifestRow("a.jpg", job.output_for(s.targets[0], 1), "skipped", "face-too-small: x",
                             face=1, n_faces=2))
    plan = plan_jobs(tmp_path / "in", out, s, manifest=Manifest(out / "manifest.csv", output_root=out))
    assert plan.jobs == [] and plan.already_done == 2


BAD = {"empty.png": "empty file", "notimage.jpg": "not a recognised image", "truncated.jpg": "truncated",
       "bomb.png": "too large"}


@pytest.mark.parametrize("name", sorted(BAD))
def test_process_image_turns_unreadable_inputs_into_error_rows(tmp_path, awkward, name):
    # Loading fails before the synthesizer is used, so none is needed here.
    job = Job(str(awkward[name]), f"in/{name}", str(tmp_path), TARGETS, _settings())
    rows = process_image(None, job)
    assert [r.status for r in rows] == ["error"] * 3
    assert {r.output for r in rows} == {job.output_for(t) for t in TARGETS}
    assert all(r.reason == "unreadable" and BAD[name] in r.error and "\n" not in r.error for r in rows)
    assert rows[2].target_kind == "va" and rows[2].valence == 0.5 and rows[1].intensity == 0.5
    assert not any(tmp_path.iterdir())


def test_process_image_skips_done_outputs(tmp_path, awkward):
    job = Job(str(awkward["empty.png"]), "e.png", str(tmp_path), TARGETS, _settings())
    job = Job(job.source, job.rel_source, job.output_dir, TARGETS, job.settings,
              frozenset({job.output_for(TARGETS[0])}))
    assert len(process_image(None, job)) == 2


def test_crop_square(photo):
    c = crop_square(photo, (32, 32, 96, 96), 48, scale=1.0)
    assert c.shape == (48, 48, 3) and c.dtype == np.uint8
    ref = np.asarray(__import__("PIL.Image", fromlist=["Image"]).fromarray(photo[32:96, 32:96]).resize((48, 48)))
    assert np.abs(c.astype(int) - ref).mean() < 3
    edge = crop_square(photo, (100, 100, 128, 128), 64, scale=2.0)  # extends past the image: black
    assert (edge[-8:, -8:] == 0).all() and edge[:16, :16].mean() > 10


def test_failure_rows_name_every_unsettled_output(tmp_path):
    from affectsynth.rows import fail_rows

    s = _settings()
    job = Job("", "a.jpg", str(tmp_path), TARGETS, s, frozenset({Job("", "a.jpg", "", TARGETS, s).output_for(TARGETS[0])}))
    rows = fail_rows(job, "error", "worker-crashed", "the worker process died on this image (run alone)")
    assert [r.output for r in rows] == [job.output_for(t) for t in TARGETS[1:]]
    assert all(r.transient and r.seed == job.seed_for(t) for r, t in zip(rows, TARGETS[1:]))  # retried by a rerun
    assert not fail_rows(job, "error", "unreadable", "x")[0].transient  # permanent: recorded once
