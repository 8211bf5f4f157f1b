"""Affect sequences (affectsynth.animate): planning, temporal coherence on a real photo, labels per frame."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from affectsynth.animate import (
    FRAME_COLUMNS,
    animate,
    circle_path,
    envelope,
    plan_category_frames,
    plan_path_frames,
    sway_angles,
)
from affectsynth.blendshapes import AffectPath, Expression, VA


def _va(frames) -> np.ndarray:
    return np.array([[f.target.valence, f.target.arousal] for f in frames])


# --------------------------------------------------------------------------- planning (no rendering)

def test_open_path_runs_from_first_key_to_last_with_frame_times():
    path = AffectPath((VA(0, 0), VA(0.8, 0.3), VA(-0.5, 0.6)))
    plan = plan_path_frames(path, 9, fps=4)
    va = _va(plan)
    np.testing.assert_allclose(va[[0, 4, 8]], [[0, 0], [0.8, 0.3], [-0.5, 0.6]], atol=1e-9)  # keys on frames 0, 4, 8
    assert [f.index for f in plan] == list(range(9))
    np.testing.assert_allclose([f.time_s for f in plan], np.arange(9) / 4)


def test_closed_path_loops_without_a_kink():
    plan = plan_path_frames(circle_path(), 32, fps=12)
    va = _va(plan)
    np.testing.assert_allclose(va[0], [1.0, 0.0], atol=1e-9)
    ring = np.concatenate([va[-1:], va, va[:1]])  # frame 32 would be frame 0 again
    d1 = np.linalg.norm(np.diff(ring, axis=0), axis=1)
    d2 = np.linalg.norm(ring[2:] - 2 * ring[1:-1] + ring[:-2], axis=1)
    # the step size and the turn per step at the seam (first and last entries) match the rest of the loop
    assert d1.max() < 1.5 * d1.min()
    assert d2[[0, -1]].max() < 1.5 * np.median(d2)
    assert not np.allclose(va[-1], va[0])  # no repeated frame at the seam of a looping video


def test_weight_space_paths_are_refused():
    with pytest.raises(ValueError, match="'va' space"):
        plan_path_frames(AffectPath((Expression("happiness"), Expression("sadness")), "weights"), 4, fps=12)
    with pytest.raises(ValueError, match="frames must be an int"):
        plan_path_frames(circle_path(), 0, fps=12)
    with pytest.raises(ValueError, match="fps"):
        plan_path_frames(circle_path(), 4, fps=0)


def test_categories_in_turn_rise_from_neutral_and_return():
    plan = plan_category_frames(["happiness", "surprise"], 21, fps=10, intensity=0.8)
    names = [f.target.name for f in plan]
    levels = np.array([f.target.intensity for f in plan])
    assert names[:10] == ["happiness"] * 10 and names[11:] == ["surprise"] * 10
    assert levels[0] == 0.0 and levels[-1] == 0.0 and levels[10] == 0.0  # neutral between categories
    assert levels[5] == pytest.approx(0.8) and levels[15] == pytest.approx(0.8)  # each apex
    # no jumps: the steepest step is smoothstep's (slope 1.5) over a rise of 0.35 x 10 frames
    assert np.abs(np.diff(levels)).max() <= 1.5 * 0.8 / (0.35 * 10) + 1e-6
    with pytest.raises(ValueError, match="at least one category"):
        plan_category_frames([], 4, fps=12)
    with pytest.raises(Exception, match="name must be one of"):
        plan_category_frames(["glee"], 4, fps=12)


def test_envelope_and_sway():
    assert envelope(0.0) == 0.0 and envelope(1.0) == 0.0 and envelope(0.5) == 1.0
    u = np.linspace(0, 1, 201)
    e = np.array([envelope(x) for x in u])
    assert np.abs(np.diff(e)).max() < 0.03 and (e >= 0).all() and (e <= 1).all()
    s = np.array(sway_angles(8, (4.0, 2.0)))
    assert np.abs(s[:, 0]).max() == pytest.approx(4.0) and np.abs(s[:, 1]).max() <= 2.0
    assert sway_angles(5, (0.0, 0.0)) == [(0.0, 0.0)] * 5
    with pytest.raises(ValueError, match=r"\[0, 30\]"):
        sway_angles(4, (40.0, 0.0))


# --------------------------------------------------------------------------- rendering a real face

@pytest.fixture(scope="module")
def synth():
    from affectsynth.synthesizer import Synthesizer

    torch.set_num_threads(1)
    return Synthesizer()


@pytest.fixture(scope="module")
def face(synth):
    """The demo photo's face as a 96 px crop with room around the head (scale 2.5), and its fit."""
    from affectsynth.sample_data import astronaut

    img = astronaut()
    fits = synth.fit(img)
    assert fits, "the demo photo must give a face"
    return synth.crop_to_face(img, fits[0], 96, scale=2.5)


@pytest.fixture(scope="module")
def smile_frames(synth, face):
    """7 frames from neutral to a smile (a straight VA segment)."""
    crop, fit = face
    plan = plan_path_frames(AffectPath((VA(0, 0), VA(0.8, 0.3))), 7, fps=12)
    return plan, list(animate(synth, crop, plan, fit=fit, seed=3))


def test_frames_carry_the_planned_targets_and_one_pose(smile_frames):
    plan, frames = smile_frames
    assert [f.index for f in frames] == list(range(7))
    for p, f in zip(plan, frames):
        assert (f.labels.target.kind, f.labels.target.valence, f.labels.target.arousal) == (
            "va", p.target.valence, p.target.arousal)
        assert f.image.shape == (96, 96, 3) and f.image.dtype == np.uint8
    poses = np.array([f.labels.pose_deg for f in frames])
    np.testing.assert_allclose(poses, poses[:1].repeat(7, 0), atol=1e-4)  # no sway: the head stays put
    smile = [f.labels.weights.get("mouthSmile_L", 0.0) for f in frames]
    assert smile[0] < 0.05 and smile[-1] > 0.4 and all(b >= a - 1e-6 for a, b in zip(smile, smile[1:]))
    row = frames[3].to_row("frame_0003.png")
    assert tuple(row) == FRAME_COLUMNS
    assert len(__import__("json").loads(row["landmarks"])) == 468


def test_pixels_outside_the_face_margin_never_change(synth, face, smile_frames):
    crop, fit = face
    _, frames = smile_frames
    stack = np.stack([f.image for f in frames]).astype(np.int16)
    moved = (np.abs(stack - crop.astype(np.int16)).max(axis=(0, 3)) > 0)
    assert moved.any(), "the expression must change some pixels"
    # every changed pixel lies within the box of the drawn and warped mesh at its old and new places,
    # grown by the warp's fade distance (max(margin, 3 x the largest skin motion), render/warp.py)
    # plus the feather and a pixel of filtering
    from affectsynth.render.camera import project_points

    names = synth.model.expression_names
    old = project_points(synth.model.reconstruct(fit), fit.camera)
    shown = torch.unique(torch.cat([synth.renderer.drawn_vertices, synth.renderer.motion_vertices]))
    boxes, disp = [old[shown]], 0.0
    for f in frames:
        w = torch.tensor([f.labels.weights.get(n, 0.0) for n in names], dtype=torch.float32)
        new = project_points(synth.model.reconstruct(fit, expression=w), fit.camera)
        boxes.append(new[shown])
        disp = max(disp, float((new - old)[synth.renderer.motion_vertices].norm(dim=-1).max()))
    pts = torch.cat(boxes).numpy()
    m = max(synth.settings.margin_px, 3.0 * disp) + 2.0 + synth.settings.feather_px + 1.0
    x0, y0 = pts.min(0) - m
    x1, y1 = pts.max(0) + m
    ys, xs = np.nonzero(moved)
    assert xs.min() >= x0 and xs.max() <= x1 and ys.min() >= y0 and ys.max() <= y1, ((x0, y0, x1, y1), (xs.min(), ys.min(), xs.max(), ys.max()), disp)
    # and outside that box consecutive frames are identical to the input, bit for bit
    outside = np.ones(crop.shape[:2], bool)
    outside[max(0, int(y0)):int(math.ceil(y1)) + 1, max(0, int(x0)):int(math.ceil(x1)) + 1] = False
    assert outside.any()
    assert (stack[:, outside] == crop[outside].astype(np.int16)).all()


def test_landmark_trajectory_has_no_jumps(smile_frames):
    """Second differences of the landmark trajectory stay within the path's own curvature."""
    plan, frames = smile_frames
    lm = np.stack([np.asarray(f.labels.landmarks) for f in frames])  # [T, 468, 2]
    d1 = np.linalg.norm(np.diff(lm, axis=0), axis=2).max(1)  # max point motion per step, px
    d2 = np.linalg.norm(lm[2:] - 2 * lm[1:-1] + lm[:-2], axis=2).max(1)
    assert d1.max() > 0.3, "the mouth must move along the path"
    # the path is a straight VA segment sampled evenly: a one-frame glitch of size g adds 2g to d2
    # while smooth motion keeps d2 a fraction of the step
    # (0.6: the VA map eases in from the neutral origin, so the first steps accelerate)
    assert d2.max() <= 0.6 * d1.max() + 0.05, (d1, d2)
    # a frame out of step (the 4th frame swapped with the 5th) is caught by the same measure
    bad = lm[[0, 1, 2, 4, 3, 5, 6]]
    d2_bad = np.linalg.norm(bad[2:] - 2 * bad[1:-1] + bad[:-2], axis=2).max(1)
    assert d2_bad.max() > 0.6 * d1.max() + 0.05


def test_category_sequence_keeps_one_variant_and_records_sway(synth, face):
    crop, fit = face
    plan = plan_category_frames(["anger"], 3, fps=12, sway_deg=(4.0, 0.0))
    seed = 11
    frames = list(animate(synth, crop, plan, fit=fit, seed=seed))
    drawn = frames[0].labels.target.variant
    assert drawn in synth.expressions.variants("anger")
    assert [f.labels.target.variant for f in frames] == [drawn] * 3  # one variant for the whole sequence
    assert [f.labels.target.intensity for f in frames] == [0.0, 1.0, 0.0]
    yaws = [f.labels.head_rotation_deg[0] for f in frames]
    np.testing.assert_allclose(yaws, [s[0] for s in sway_angles(3, (4.0, 0.0))], atol=1e-4)
    pose_yaw = np.array([f.labels.pose_deg[0] for f in frames])
    np.testing.assert_allclose(pose_yaw - pose_yaw[0], np.array(yaws) - yaws[0], atol=0.3)


def test_animate_refuses_an_image_without_a_face(synth):
    with pytest.raises(ValueError, match="no face"):
        list(animate(synth, np.full((64, 64, 3), 128, np.uint8), plan_path_frames(circle_path(), 2, fps=12)))


def test_variants_are_drawn_per_category_and_replay():
    """Each category of a sequence draws its own variant (not one shared random number), reproducibly."""
    from affectsynth.animate import sequence_variants
    from affectsynth.blendshapes import ExpressionModel

    model = ExpressionModel.default()
    cats = [c for c in ("anger", "disgust", "fear", "sadness", "surprise", "happiness") if len(model.variants(c)) > 1]
    assert len(cats) >= 2, "the shipped model has EMFACS variants"
    picks = [sequence_variants(model, cats + cats[:1], s) for s in range(12)]
    assert picks == [sequence_variants(model, cats, s) for s in range(12)]  # repeats draw nothing more
    assert all(p[c] in model.variants(c) for p in picks for c in cats)
    index = [[model.variants(c).index(p[c]) for c in cats] for p in picks]
    assert any(len(set(row)) > 1 for row in index), "variant picks move together across categories"
