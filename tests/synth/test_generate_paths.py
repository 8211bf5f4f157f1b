"""``generate --paths`` without a Synthesizer: frame names, planning (K frames = K outputs), seeds,
resume planning, failure rows per frame, settings and the command line (dry run, usage errors)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from affectsynth.batch import GenerateSettings, plan_jobs, process_image
from affectsynth.plan import SequenceChangedError
from affectsynth.blendshapes.targets import VA, Expression
from affectsynth.cli import main
from affectsynth.manifest import COLUMNS, Manifest, ManifestRow
from affectsynth.naming import frame_relpath, output_relpath, target_slug
from affectsynth.paths_file import SequenceSpec
from affectsynth.rows import fail_rows
from affectsynth.video import frame_name

CIRCLE = SequenceSpec("circle", 4, va=((0.8, 0), (0, 0.8), (-0.8, 0), (0, -0.8)), closed=True)
SMILE = SequenceSpec("smile", 5, expressions=("neutral", "happiness"))
PATHS_JSON = json.dumps([CIRCLE.to_dict(), SMILE.to_dict()])


def _inputs(tmp_path, names=("a.jpg", "sub/b.png")):
    for rel in names:
        p = tmp_path / "in" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")  # planning never reads the files
    return tmp_path / "in"


def test_frame_names_follow_the_layouts_and_never_collide_with_single_outputs():
    assert frame_relpath("sub/img.jpg", "circle", 7).as_posix() == "sub/img_jpg/f0_path-circle/frame_0007.png"
    assert frame_relpath("sub/img.jpg", "circle", 7).name == frame_name(7)  # animate's PNG frame names
    single = output_relpath("sub/img.jpg", "happiness_i1.00", 0)
    assert frame_relpath("sub/img.jpg", "circle", 0).parent.parent == single.parent  # beside the source's outputs
    flat = frame_relpath("sub/img.jpg", "circle", 7, 2, layout="flat").as_posix()
    assert flat.endswith("__f2_path-circle_frame_0007.png") and "/" not in flat
    assert flat.split("__")[0] == output_relpath("sub/img.jpg", "x", 0, layout="flat").as_posix().split("__")[0]
    # a hostile source name gets the same marked folder as its single outputs
    assert frame_relpath("a:b.jpg", "s", 0).parent.parent == output_relpath("a:b.jpg", "x", 0).parent
    for layout in ("nested", "flat"):
        frames = {frame_relpath("i.jpg", s, j, k, layout=layout) for s in ("a", "b") for j in range(3) for k in (0, 1)}
        singles = {output_relpath("i.jpg", target_slug(t), k, layout=layout)
                   for t in (Expression("happiness"), VA(0.5, 0.5)) for k in (0, 1)}
        assert len(frames) == 12 and not frames & singles
    with pytest.raises(ValueError, match="index must be an int >= 0"):
        frame_relpath("i.jpg", "s", -1)
    with pytest.raises(ValueError, match="layout"):
        frame_relpath("i.jpg", "s", 0, layout="tree")


def test_a_path_of_k_frames_is_k_planned_outputs(tmp_path):
    inp = _inputs(tmp_path)
    s = GenerateSettings(paths=(CIRCLE, SMILE))  # paths alone: no single targets
    plan = plan_jobs(inp, tmp_path / "out", s)
    assert plan.sources == 2 and len(plan.planned_outputs) == 2 * (4 + 5)
    outs = [o for _, o, _ in plan.planned_outputs]
    assert len(set(outs)) == len(outs) and "sub/b_png/f0_path-smile/frame_0004.png" in outs
    first = plan.planned_outputs[0][2]
    assert (first.sequence, first.frame.index, first.target) == ("circle", 0, VA(0.8, 0.0))
    assert first.to_dict() == {"kind": "va", "valence": 0.8, "arousal": 0.0, "sequence": "circle", "frame": 0,
                               "time_s": 0.0}
    both = plan_jobs(inp, tmp_path / "out", GenerateSettings(targets=(Expression("fear"),), paths=(SMILE,)))
    assert len(both.planned_outputs) == 2 * (1 + 5)


def test_one_seed_per_sequence_from_seed_source_face_and_name(tmp_path):
    inp = _inputs(tmp_path)
    job = plan_jobs(inp, tmp_path / "out", GenerateSettings(paths=(CIRCLE, SMILE), seed=3)).jobs[0]
    seeds = {job.sequence_seed("circle", 0), job.sequence_seed("smile", 0), job.sequence_seed("circle", 1)}
    assert len(seeds) == 3
    other = plan_jobs(inp, tmp_path / "out", GenerateSettings(paths=(CIRCLE,), seed=4)).jobs[0]
    assert other.sequence_seed("circle", 0) != job.sequence_seed("circle", 0)
    job2 = plan_jobs(inp, tmp_path / "out", GenerateSettings(paths=(CIRCLE,), seed=3)).jobs[1]
    assert job2.sequence_seed("circle", 0) != job.sequence_seed("circle", 0)  # another source
    rows = fail_rows(job, "skipped", "no-face", "no face found", n_faces=0)
    assert len(rows) == 9 and {r.seed for r in rows if r.sequence == "circle"} == {job.sequence_seed("circle", 0)}
    assert [(r.sequence, r.frame) for r in rows][:5] == [("circle", 0), ("circle", 1), ("circle", 2), ("circle", 3),
                                                         ("smile", 0)]
    assert rows[1].time_s == pytest.approx(1 / 12, abs=1e-6) and (rows[4].expression, rows[6].expression) == ("neutral", "happiness")


def test_resume_plans_only_the_missing_frames(tmp_path):
    inp = _inputs(tmp_path, ("a.png",))
    out = tmp_path / "out"
    s = GenerateSettings(paths=(CIRCLE, SMILE))
    job = plan_jobs(inp, out, s).jobs[0]
    m = Manifest(out / "manifest.csv", output_root=out)
    with m:  # skipped rows settle outputs without files: two circle frames and the whole smile
        m.extend([ManifestRow("a.png", f.output, "skipped", "test: settled", sequence=f.sequence,
                              frame=f.frame.index) for f in job.frames_for(0) if f.frame.index in (0, 2)
                  or f.sequence == "smile"])
    plan = plan_jobs(inp, out, s, manifest=Manifest(out / "manifest.csv", output_root=out))
    assert [o for _, o, _ in plan.planned_outputs] == ["a_png/f0_path-circle/frame_0001.png",
                                                       "a_png/f0_path-circle/frame_0003.png"]
    assert plan.already_done == 7 and plan.jobs[0].done >= {f.output for f in job.frames_for(0) if f.sequence == "smile"}
    reread = Manifest(out / "manifest.csv", output_root=out).rows
    assert reread[0].sequence == "circle" and reread[1].frame == 2  # the new columns read back typed


def test_manifest_columns_end_with_the_sequence_columns(tmp_path):
    assert COLUMNS[-3:] == ("sequence", "frame", "time_s")
    old = tmp_path / "manifest.csv"  # a manifest of the previous version: its columns are a prefix
    prev = COLUMNS[:-3]
    old.write_text(",".join(prev) + "\n" + ",".join(["a.png", "a_png/f0_x.png", "skipped", "no-face: none"]
                                                    + [""] * (len(prev) - 4)) + "\n")
    m = Manifest(old)
    assert m.is_done("a_png/f0_x.png") and m.rows[0].frame is None
    assert old.read_text().splitlines()[0] == ",".join(COLUMNS)


def test_unreadable_source_gives_a_row_per_frame(tmp_path):
    inp = _inputs(tmp_path, ("bad.png",))
    job = plan_jobs(inp, tmp_path / "out", GenerateSettings(targets=(Expression("fear"),), paths=(SMILE,))).jobs[0]
    rows = process_image(None, job)  # never reaches the synthesizer
    assert len(rows) == 6 and all(r.status == "error" and r.reason == "unreadable" for r in rows)
    assert [r.frame for r in rows] == [None, 0, 1, 2, 3, 4] and rows[1].output.endswith("f0_path-smile/frame_0000.png")


@pytest.mark.parametrize("kw,needle", [
    ({"paths": (CIRCLE, SequenceSpec("Circle", 3, expressions=("fear",)))}, "duplicate path name 'Circle'"),
    ({"paths": (SequenceSpec("s", 3, expressions=("fear",), sway_deg=(10, 0)),), "head_rotation_deg": (8, 0)},
     r"path 's' sways up to 10,0 degrees on top of --head-rotation 8,0: 18,0 exceeds 15,10"),
    ({"paths": (SMILE,), "per_image": 1}, r"--per-image draws among .* with --paths alone there are none"),
    ({"paths": ("smile",)}, "SequenceSpec"),
])
def test_settings_refuse_bad_paths(kw, needle):
    with pytest.raises((ValueError, TypeError), match=needle):
        GenerateSettings(**kw)


def test_dry_run_lists_every_frame(tmp_path):
    inp = _inputs(tmp_path)
    (tmp_path / "paths.json").write_text(PATHS_JSON)
    r = CliRunner().invoke(main, ["generate", str(inp), str(tmp_path / "out"), "--paths", str(tmp_path / "paths.json"),
                                  "--dry-run"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert len(lines) == 18 and lines[0] == str(tmp_path / "out" / "a_jpg" / "f0_path-circle" / "frame_0000.png")
    assert "18 outputs planned" in r.stderr
    r = CliRunner().invoke(main, ["generate", str(inp), str(tmp_path / "out"), "--paths", str(tmp_path / "paths.json"),
                                  "--va=0.5,0.5", "--dry-run", "--format", "json"])
    assert r.exit_code == 0, r.output
    planned = json.loads(r.stdout)["planned"]
    assert len(planned) == 20 and planned[0]["target"] == {"kind": "va", "valence": 0.5, "arousal": 0.5}
    assert planned[6]["target"]["sequence"] == "smile" and planned[6]["target"]["frame"] == 1


def test_bad_paths_files_are_usage_errors_naming_the_file(tmp_path):
    inp = _inputs(tmp_path)
    bad = tmp_path / "bad.json"
    bad.write_text('[{"name": "x", "expressions": ["glee"], "frames": 4}]')
    r = CliRunner().invoke(main, ["generate", str(inp), str(tmp_path / "out"), "--paths", str(bad), "--dry-run"])
    assert r.exit_code == 2 and "--paths" in r.output
    assert "bad.json: path #1: path 'x': unknown expression 'glee'" in " ".join(r.output.split())
    r = CliRunner().invoke(main, ["generate", str(inp), str(tmp_path / "out"), "--paths", str(tmp_path / "no.json")])
    assert r.exit_code == 2 and "no such file" in r.output
    good = tmp_path / "good.json"
    good.write_text(PATHS_JSON)
    r = CliRunner().invoke(main, ["generate", str(inp), str(tmp_path / "out"), "--paths", str(good),
                                  "--intensity", "0.5"])
    assert r.exit_code == 2 and "--intensity applies to --expressions only" in r.output
    assert not (tmp_path / "out").exists()


def test_a_changed_path_under_an_old_name_is_refused(tmp_path):
    """Frames already done stay; a path that now plans them otherwise would mix two paths in one sequence."""
    inp = _inputs(tmp_path, ("a.png",))
    out = tmp_path / "out"
    s = GenerateSettings(paths=(CIRCLE, SMILE))
    job = plan_jobs(inp, out, s).jobs[0]
    with Manifest(out / "manifest.csv", output_root=out) as m:  # an earlier run that settled every frame
        m.extend(fail_rows(job, "skipped", "test", "settled"))
    def manifest():
        return Manifest(out / "manifest.csv", output_root=out)

    assert plan_jobs(inp, out, s, manifest=manifest()).planned_outputs == []  # the same paths resume
    assert plan_jobs(inp, out, GenerateSettings(paths=(SMILE,)), manifest=manifest()).planned_outputs == []
    changed = [
        (SequenceSpec("circle", 5, va=CIRCLE.va, closed=True), r"path 'circle' differs .*a\.png: frame 1 at 0\.0833 s: "
         r"V\+0\.000 A\+0\.800, now frame 1 at 0\.0833 s: V\+0\.186 A\+0\.742"),
        (SequenceSpec("circle", 4, va=CIRCLE.va, closed=True, fps=24), r"frame 1 at 0\.0833 s: .*now frame 1 at 0\.0417 s"),
        (SequenceSpec("circle", 3, va=CIRCLE.va[:3]), r"frame 3 exists, the path now has 3 frames"),  # 0-2 agree
        (SequenceSpec("smile", 5, expressions=("neutral", "sadness")), r"frame 2 at 0\.1667 s: happiness 0\.000, now "
         r"frame 2 at 0\.1667 s: sadness 0\.000"),
    ]
    for spec, needle in changed:
        with pytest.raises(SequenceChangedError, match=needle):
            plan_jobs(inp, out, GenerateSettings(paths=(spec,)), manifest=manifest())
    (tmp_path / "p.json").write_text(json.dumps([changed[0][0].to_dict()]))
    r = CliRunner().invoke(main, ["generate", str(inp), str(out), "--paths", str(tmp_path / "p.json"), "--dry-run"])
    assert r.exit_code == 2 and "give the changed path a new name, or use a new OUTPUT_DIR" in " ".join(r.output.split())
    r = CliRunner().invoke(main, ["generate", str(inp), str(out), "--paths", str(tmp_path / "p.json"), "-q"])
    assert r.exit_code == 2 and "path 'circle' differs" in r.output
