"""Fitter accuracy on synthetic faces from the model, and its input validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from affectsynth.fitting import (
    UNOBSERVABLE_EXPRESSIONS, Camera, aligned_error_mm, FaceModel, FitSettings, Landmarks, fit_landmarks, random_faces,
)


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel.default()


@pytest.fixture(scope="module")
def synthetic(model):
    faces = random_faces(model, 24, seed=3)
    fits = fit_landmarks(model, [f.landmarks for f in faces], [f.camera for f in faces])
    return faces, fits


def test_shape_error_below_mean_face(model, synthetic):
    faces, fits = synthetic
    start, end = model.region("face")
    fit_err, mean_err = [], []
    for face, fit in zip(faces, fits):
        truth = model.vertices(face.identity, face.expression)[start:end].numpy()
        fitted = model.vertices(fit.identity, fit.expression)[start:end].numpy()
        fit_err.append(aligned_error_mm(fitted, truth))
        mean_err.append(aligned_error_mm(model.neutral[start:end].numpy(), truth))
    assert np.mean(fit_err) < 2.5, f"face-region error {np.mean(fit_err):.2f} mm"
    assert np.mean(fit_err) < 0.6 * np.mean(mean_err)


def test_expression_weights_recovered(model, synthetic):
    faces, fits = synthetic
    observable = torch.tensor([n not in UNOBSERVABLE_EXPRESSIONS for n in model.expression_names])
    active_err, inactive_small = [], []
    for face, fit in zip(faces, fits):
        active = face.expression > 0
        active_err.append((fit.expression - face.expression)[active].abs().mean().item())
        inactive_small.append((fit.expression[~active & observable] < 0.05).float().mean().item())
        assert fit.expression.min() >= 0 and fit.expression.max() <= 1
        for name in UNOBSERVABLE_EXPRESSIONS:
            assert fit.expression_dict()[name] == 0.0
    assert np.mean(active_err) < 0.1, f"active weight MAE {np.mean(active_err):.3f}"
    assert np.mean(inactive_small) > 0.6, f"only {np.mean(inactive_small):.2f} of inactive weights < 0.05"


def test_rotation_and_reprojection(model, synthetic):
    faces, fits = synthetic
    for face, fit in zip(faces, fits):
        rel = fit.rotation.T @ face.rotation
        angle = np.degrees(np.arccos(np.clip((rel.trace().item() - 1) / 2, -1, 1)))
        assert angle < 2.0, f"rotation error {angle:.2f} deg at pose {face.pose_deg}"
        assert fit.reprojection_error_px < 2.5
        np.testing.assert_allclose(fit.pose_deg, face.pose_deg, atol=3.0)


def test_batch_equals_single(model, synthetic):
    faces, fits = synthetic
    single = fit_landmarks(model, [faces[5].landmarks], [faces[5].camera])[0]
    torch.testing.assert_close(single.expression, fits[5].expression, atol=2e-3, rtol=0)
    torch.testing.assert_close(single.rotation, fits[5].rotation, atol=1e-4, rtol=0)


def test_deterministic(model, synthetic):
    faces, _ = synthetic
    a = fit_landmarks(model, [f.landmarks for f in faces[:3]], [f.camera for f in faces[:3]])
    b = fit_landmarks(model, [f.landmarks for f in faces[:3]], [f.camera for f in faces[:3]])
    for x, y in zip(a, b):
        assert torch.equal(x.expression, y.expression) and torch.equal(x.identity, y.identity)


def test_reused_residuals_equal_recomputed(model, synthetic, monkeypatch):
    """An iteration whose silhouette picks what the last one picked reuses the residuals of the state
    it kept: the fits are bitwise those that recompute them every iteration (batched and single)."""
    import affectsynth.fitting.fit as fit_module

    faces, _ = synthetic
    lms, cams = [f.landmarks for f in faces[:6]], [f.camera for f in faces[:6]]
    reused = fit_landmarks(model, lms, cams) + fit_landmarks(model, lms[:1], cams[:1])
    monkeypatch.setattr(fit_module, "_same_picks", lambda picks, kept: False)
    recomputed = fit_landmarks(model, lms, cams) + fit_landmarks(model, lms[:1], cams[:1])
    for a, b in zip(reused, recomputed):
        for name in ("identity", "expression", "rotation", "translation", "residuals"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_ibug68_layout(model):
    """68 points (the eos comparison): fewer constraints, so pose is looser than with 468."""
    faces = random_faces(model, 12, seed=4, kind="ibug68")
    fits = fit_landmarks(model, [f.landmarks for f in faces], [f.camera for f in faces])
    angles = []
    for face, fit in zip(faces, fits):
        rel = fit.rotation.T @ face.rotation
        angles.append(np.degrees(np.arccos(np.clip((rel.trace().item() - 1) / 2, -1, 1))))
        assert fit.reprojection_error_px < 4.0
    assert np.mean(angles) < 3.0 and np.max(angles) < 8.0, angles


def test_neutral_reconstruction(model, synthetic):
    faces, fits = synthetic
    fit = fits[0]
    neutral = model.reconstruct(fit, neutral=True)
    expected = model.vertices(fit.identity, torch.zeros(53)) @ fit.rotation.T + fit.translation
    torch.testing.assert_close(neutral, expected)
    with pytest.raises(ValueError, match="either expression or neutral"):
        model.reconstruct(fit, neutral=True, expression=torch.zeros(53))


def test_errors(model):
    lm68 = Landmarks.from_points(np.random.rand(68, 2) * 100, "ibug68")
    lm468 = Landmarks.from_points(np.random.rand(468, 2) * 100, "mediapipe468")
    cam = Camera.from_fov(100, 100)
    with pytest.raises(ValueError, match="one landmark kind"):
        fit_landmarks(model, [lm68, lm468], [cam, cam])
    with pytest.raises(ValueError, match="cameras or image_sizes"):
        fit_landmarks(model, [lm68])
    with pytest.raises(ValueError, match="2 cameras for 1 faces"):
        fit_landmarks(model, [lm68], [cam, cam])
    with pytest.raises(ValueError, match="iterations"):
        FitSettings(iterations=0)
    with pytest.raises(ValueError, match="needs"):
        Landmarks.from_points(np.zeros((10, 2)), "ibug68")
    assert fit_landmarks(model, []) == []


def test_silhouette_incidence_equals_the_exhaustive_comparison(model):
    """The contour normals' (triangle, vertex) pairs, in the order their sums use, as a [T, 3, U] comparison finds them."""
    from affectsynth.fitting.fit import _incidence

    emb = model.embedding("mediapipe468")
    bands = torch.unique(emb.contour_bands[torch.nonzero(emb.is_contour).flatten()].clamp_min(0).flatten())
    skin = model.triangles.long()[model.triangle_material == model.material_names.index("M_Face")]
    t_ref, u_ref = torch.nonzero((skin[:, :, None] == bands[None, None]).any(1), as_tuple=True)
    t_idx, u_idx = _incidence(skin, bands, model.num_vertices)
    assert len(t_ref) > 1000
    assert torch.equal(t_idx, t_ref) and torch.equal(u_idx, u_ref)


def test_kept_state_equals_per_face_selection(model, synthetic, monkeypatch):
    """Where every face (or none) of a batch accepts a step, the fit keeps the new (or old) tensors
    themselves: the fits are bitwise those of selecting per face with torch.where every iteration."""
    import affectsynth.fitting.fit as fit_module

    faces, _ = synthetic
    lms, cams = [f.landmarks for f in faces[:6]], [f.camera for f in faces[:6]]
    shortcut = fit_landmarks(model, lms, cams) + fit_landmarks(model, lms[:1], cams[:1])
    monkeypatch.setattr(fit_module, "_keep_accepted", lambda accept, *pairs: [
        torch.where(accept.view(-1, *[1] * (new.ndim - 1)), new, old) for new, old in pairs])
    selected = fit_landmarks(model, lms, cams) + fit_landmarks(model, lms[:1], cams[:1])
    for a, b in zip(shortcut, selected):
        for name in ("identity", "expression", "rotation", "translation", "residuals"):
            assert torch.equal(getattr(a, name), getattr(b, name)), name


def test_row_jacobian_planes_equal_the_interleaved_basis():
    """The chain rule on per-coordinate basis planes gives, to the bit, the three multiply-adds on
    the [N, P, 3] basis read one coordinate at a time (the layout the planes replace)."""
    from affectsynth.fitting.fit import _row_jacobian_

    g = torch.Generator().manual_seed(0)
    jpr = torch.randn(2, 31, 2, 3, generator=g)
    basis = torch.randn(2, 31, 83, 3, generator=g)
    out = torch.empty(2, 31, 2, 89)[..., 6:]  # a strided slice, as the fit writes into its Jacobian
    _row_jacobian_(out, jpr, basis.permute(3, 0, 1, 2).contiguous())
    want = torch.mul(jpr[..., 0, None], basis[:, :, None, :, 0])
    want.addcmul_(jpr[..., 1, None], basis[:, :, None, :, 1]).addcmul_(jpr[..., 2, None], basis[:, :, None, :, 2])
    assert torch.equal(out, want)
