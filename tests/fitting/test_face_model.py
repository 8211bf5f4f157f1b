"""The embedded face model: sizes, batched evaluation, linearity, landmark embeddings, symmetry, loading errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from affectsynth.fitting import DEFAULT_MODEL_PATH, FaceModel

CANONICAL = Path(__file__).resolve().parents[2].parent / "shared" / "assets" / "mediapipe-canonical"


@pytest.fixture(scope="module")
def model() -> FaceModel:
    return FaceModel.default()


def test_default_model_sizes(model):
    assert DEFAULT_MODEL_PATH.is_file()
    assert model.num_vertices == 18844
    assert model.triangles.shape == (37128, 3) and model.triangles.dtype == torch.int32
    assert int(model.triangles.min()) == 0 and int(model.triangles.max()) == model.num_vertices - 1
    assert model.num_expressions == 53 and len(model.expression_names) == 53
    assert {"jawOpen", "mouthSmile_L", "eyeBlink_R", "browInnerUp_L"} <= set(model.expression_names)
    assert model.num_identity >= 50
    assert model.identity_basis.shape == (model.num_identity, model.num_vertices, 3)
    assert model.landmarks68.shape == (68,)
    assert model.symmetry.shape == (model.num_vertices,)
    assert model.triangle_uv.shape == model.triangles.shape
    assert int(model.triangle_uv.max()) < model.uv.shape[0]
    # regions tile the vertex range in order
    ranges = [model.region(n) for n in model.region_names]
    assert ranges[0][0] == 0 and ranges[-1][1] == model.num_vertices
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:]))
    assert FaceModel.default() is model  # cached
    assert "vertices=18844" in repr(model)


def test_vertices_batched_equals_unbatched(model):
    gen = torch.Generator().manual_seed(0)
    ident = torch.randn(3, model.num_identity, generator=gen)
    expr = torch.rand(3, model.num_expressions, generator=gen)
    batched = model.vertices(ident, expr)
    assert batched.shape == (3, model.num_vertices, 3) and batched.dtype == torch.float32
    for i in range(3):
        torch.testing.assert_close(model.vertices(ident[i], expr[i]), batched[i], atol=1e-5, rtol=0)
    # zero coefficients give the neutral mean face; fewer identity coefficients = missing ones are zero
    torch.testing.assert_close(model.vertices(torch.zeros(model.num_identity)), model.neutral)
    short = model.vertices(ident[0, :10])
    full = model.vertices(torch.cat([ident[0, :10], torch.zeros(model.num_identity - 10)]))
    torch.testing.assert_close(short, full, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="identity must have <="):
        model.vertices(torch.zeros(model.num_identity + 1))


def test_identity_and_expression_are_linear(model):
    gen = torch.Generator().manual_seed(1)
    a, b = torch.randn(2, model.num_identity, generator=gen)
    zero = torch.zeros(model.num_identity)
    base = model.neutral
    d_a, d_b = model.vertices(a) - base, model.vertices(b) - base
    torch.testing.assert_close(model.vertices(a + 2 * b) - base, d_a + 2 * d_b, atol=2e-4, rtol=0)
    assert d_a.abs().max() > 0.1  # a real deformation (cm), not a no-op
    e1 = torch.zeros(model.num_expressions)
    e2 = torch.zeros(model.num_expressions)
    e1[model.expression_names.index("jawOpen")] = 0.4
    e2[model.expression_names.index("mouthSmile_L")] = 0.7
    d1, d2 = model.vertices(zero, e1) - base, model.vertices(zero, e2) - base
    torch.testing.assert_close(model.vertices(zero, e1 + e2) - base, d1 + d2, atol=1e-4, rtol=0)
    assert d1.abs().max() > 0.3
    # identity and expression add independently
    torch.testing.assert_close(model.vertices(a, e1), model.vertices(a) + d1, atol=2e-4, rtol=0)


def test_landmark_points_match_embedding(model):
    neutral = model.neutral[None]
    for kind in ("mediapipe468", "ibug68"):
        pts = model.landmark_points(neutral, kind)
        mean, ident, expr = model.landmark_basis(kind)
        emb = model.embedding(kind)
        assert pts.shape == (1, emb.num_landmarks, 3)
        torch.testing.assert_close(pts[0], mean)
        assert ident.shape == (model.num_identity, emb.num_landmarks, 3)
        assert expr.shape == (model.num_expressions, emb.num_landmarks, 3)
        torch.testing.assert_close(emb.barycentric.sum(1), torch.ones(emb.num_landmarks), atol=1e-5, rtol=0)
        assert (emb.barycentric >= -1e-6).all()
    # iBUG-68 landmarks are exactly the model's landmark vertices
    torch.testing.assert_close(model.landmark_points(neutral, "ibug68")[0], model.neutral[model.landmarks68])
    # silhouette landmarks: the MediaPipe face oval and the iBUG jaw (points 0..16)
    assert model.embedding("ibug68").is_contour.nonzero().flatten().tolist() == list(range(17))
    assert 10 <= int(model.embedding("mediapipe468").is_contour.sum()) <= 36
    # outer eye corners: subject's right (iBUG 36) at -x, subject's left (45) at +x, same height
    eyes = model.neutral[model.landmarks68[[36, 45]]]
    assert eyes[0, 0] < -3 and eyes[1, 0] > 3 and abs(float(eyes[0, 1] - eyes[1, 1])) < 0.1
    with pytest.raises(ValueError, match="expected one of"):
        model.embedding("dlib5")


def test_mediapipe_embedding_matches_canonical_face(model):
    """The embedded MediaPipe points are where MediaPipe's canonical face puts them (after a similarity)."""
    path = CANONICAL / "mediapipe_canonical_face.npz"
    if not path.is_file():
        pytest.skip(f"needs ../shared/assets/mediapipe-canonical; absent at {path}")
    canon = np.load(path)["canonical_vertices"][:468].astype(np.float64)
    ours = model.landmark_points(model.neutral[None], "mediapipe468")[0].double().numpy()
    mu_a, mu_b = canon.mean(0), ours.mean(0)
    u, s, vt = np.linalg.svd((ours - mu_b).T @ (canon - mu_a))
    d = np.diag([1, 1, np.sign(np.linalg.det(u @ vt))])
    scale = (s * np.diag(d)).sum() / ((canon - mu_a) ** 2).sum()
    aligned = scale * (canon - mu_a) @ (u @ d @ vt).T + mu_b
    err = np.linalg.norm(aligned - ours, axis=1)
    assert 0.9 < scale < 1.1  # both in cm
    assert err.mean() < 0.5 and np.median(err) < 0.5, f"mean {err.mean():.2f} cm"


def test_symmetry_map(model):
    sym = model.symmetry
    idx = torch.arange(model.num_vertices)
    assert (sym[sym] == idx).float().mean() > 0.99  # an involution on (almost) all vertices
    mirrored = model.neutral[sym] * torch.tensor([-1.0, 1.0, 1.0])
    dist = (mirrored - model.neutral).norm(dim=1)
    assert (dist < 0.05).float().mean() > 0.95  # within 0.5 mm of the mirror image
    # it really mirrors: vertices well off the midline map to the other side
    off = model.neutral[:, 0].abs() > 1.0
    assert (torch.sign(model.neutral[sym[off], 0]) == -torch.sign(model.neutral[off, 0])).all()
    assert (sym[model.landmarks68[36]] == model.landmarks68[45]) or dist[model.landmarks68[36]] < 0.05


def test_material_mask(model):
    face = model.material_mask("M_Face")
    teeth = model.material_mask("M_Teeth")
    both = model.material_mask("M_Face", "M_Teeth")
    assert face.shape == (model.triangles.shape[0],) and face.dtype == torch.bool
    assert face.sum() > 10000 and teeth.sum() > 1000
    assert not (face & teeth).any()
    assert torch.equal(both, face | teeth)
    # teeth triangles use teeth-region vertices only
    start, end = model.region("teeth")
    tv = model.triangles[teeth].long()
    assert ((tv >= start) & (tv < end)).all()
    with pytest.raises(ValueError, match="M_Nose"):
        model.material_mask("M_Nose")
    with pytest.raises(ValueError, match="expected one of"):
        model.region("ears")


def test_load_errors(tmp_path):
    missing = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        FaceModel.load(missing)
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="junk.npz"):
        FaceModel.load(junk)
    partial = tmp_path / "partial.npz"
    np.savez(partial, neutral=np.zeros((3, 3), np.float32), triangles=np.zeros((1, 3), np.int32))
    with pytest.raises(ValueError, match="partial.npz") as info:
        FaceModel.load(partial)
    for name in ("identity_basis", "expression_basis", "symmetry", "landmarks68"):
        assert name in str(info.value)
    assert "'neutral'" not in str(info.value)


def test_to_same_device_returns_itself(model):
    assert model.to("cpu") is model
    assert model.to(torch.device("cpu")) is model


def test_landmark_points_are_the_barycentric_blend_of_their_triangles(model):
    """Landmarks (their triangles' corners looked up once per layout) are the embedding's blend
    of the triangle corners, the same on every call and batched."""
    g = torch.Generator().manual_seed(0)
    verts = model.neutral[None] + 0.1 * torch.randn(2, *model.neutral.shape, generator=g)
    for kind in ("mediapipe468", "ibug68"):
        emb = model.embedding(kind)
        corners = model.triangles.long()[emb.triangle]
        expected = (verts[..., corners, :] * emb.barycentric[..., None]).sum(-2)
        assert torch.equal(model.landmark_points(verts, kind), expected)
        assert torch.equal(model.landmark_points(verts[1:], kind), expected[1:])
