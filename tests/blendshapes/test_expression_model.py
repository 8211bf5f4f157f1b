from __future__ import annotations

import numpy as np
import pytest
import torch

from affectsynth.blendshapes import (
    ARKIT_NAMES, CATEGORIES, SUPPORTED_AUS, AffectPath, AUs, Expression, ExpressionModel,
    ModelFileError, VA, au_weights,
)
from affectsynth.blendshapes.paths import path_va_points, sample_path


@pytest.fixture(scope="module")
def model():
    return ExpressionModel.default()


def test_default_names_and_determinism(model):
    assert model.names == ARKIT_NAMES and len(ARKIT_NAMES) == 53
    assert model.categories == CATEGORIES
    assert model.weights(Expression("fear", 0.6)) == ExpressionModel.default().weights(Expression("fear", 0.6))


def test_categories_nontrivial_distinct_bounded(model):
    protos = {c: model.weights_array(Expression(c)) for c in CATEGORIES}
    assert np.all(protos["neutral"] == 0)
    others = [c for c in CATEGORIES if c != "neutral"]
    for c in others:
        p = protos[c]
        assert p.min() >= 0 and p.max() <= 1
        assert p.max() >= 0.7 and (p > 0.2).sum() >= 2, c  # a strong, multi-shape apex
    for i, a in enumerate(others):
        for b in others[i + 1:]:
            pa, pb = protos[a], protos[b]
            cos = pa @ pb / (np.linalg.norm(pa) * np.linalg.norm(pb))
            assert cos < 0.8, (a, b, cos)


def test_apex_signature_shapes(model):
    w = {c: model.weights(Expression(c)) for c in CATEGORIES}
    assert w["happiness"]["mouthSmile_L"] >= 0.9 and w["happiness"]["cheekSquint_R"] >= 0.9
    assert w["surprise"]["jawOpen"] >= 0.5 and w["surprise"]["browOuterUp_L"] >= 0.9
    assert w["sadness"]["browInnerUp_L"] >= 0.9 and w["sadness"]["mouthFrown_R"] >= 0.9
    assert w["anger"]["browDown_L"] >= 0.9 and w["anger"]["eyeSquint_L"] >= 0.9  # AU4 strong, AU7 lids tight
    assert w["anger"]["mouthUpperUp_L"] >= 0.6  # default "open": the teeth show
    closed = model.weights(Expression("anger", 1.0, "closed"))
    assert closed["browDown_L"] >= 0.9 and closed["mouthPress_L"] >= 0.6
    assert w["disgust"]["noseSneer_L"] >= 0.9 and w["disgust"]["mouthUpperUp_R"] >= 0.6
    assert w["fear"]["mouthStretch_L"] >= 0.9 and w["fear"]["browDown_L"] >= 0.5  # AU20; AU4 with 1+2
    assert w["fear"]["browInnerUp_L"] >= 0.9 and w["fear"]["eyeWide_L"] >= 0.9
    assert w["contempt"]["mouthSmile_R"] > 0.5 and w["contempt"]["mouthSmile_L"] == 0


def test_intensity_zero_is_neutral_and_response(model):
    for c in CATEGORIES:
        assert not any(model.weights(Expression(c, 0.0)).values())
    apex = model.weights_array(Expression("happiness"))
    half = model.weights_array(Expression("happiness", 0.5))
    on = apex > 0
    ratio = half[on] / apex[on]
    assert np.all(ratio >= 0.5) and np.all(ratio <= 0.9)  # 0.5 reads as a clearly visible mild expression
    assert ratio.max() > 0.6


def test_continuity_in_intensity(model):
    ts = np.linspace(0, 1, 201)
    for c in CATEGORIES:
        w = np.array([model.weights_array(Expression(c, float(t))) for t in ts])
        assert np.abs(np.diff(w, axis=0)).max() < 0.02, c  # Lipschitz <= 2 per unit intensity
        assert np.all(np.diff(w, axis=0) >= -1e-12)  # monotone


def test_continuity_in_va(model):
    n = 81
    g = np.linspace(-1, 1, n)
    W = np.array([[model.weights_array(VA(v, a)) for a in g] for v in g])
    h = g[1] - g[0]
    assert W.min() >= 0 and W.max() <= 1
    jump = max(np.abs(np.diff(W, axis=0)).max(), np.abs(np.diff(W, axis=1)).max())
    assert jump < 0.15, jump  # 0.025-step grid: Lipschitz < 6, no jump (a jump would be ~1)
    # Finer check around the origin and across anchor directions.
    for ang in np.linspace(-np.pi, np.pi, 73):
        r = np.linspace(0, 1, 101)
        w = np.array([model.weights_array(VA(*(x * np.array([np.cos(ang), np.sin(ang)])))) for x in r])
        assert np.abs(np.diff(w, axis=0)).max() < 0.05
    assert h > 0


def test_va_origin_neutral_and_anchor_is_apex(model):
    assert not any(model.weights(VA(0, 0)).values())
    for c, (v, a) in model.va_anchors.items():
        if c == "neutral":
            continue
        np.testing.assert_allclose(model.weights_array(VA(v, a)), model.weights_array(Expression(c)), atol=1e-9)
        half = model.weights_array(VA(v / 2, a / 2))
        np.testing.assert_allclose(half, model.weights_array(Expression(c, 0.5)), atol=1e-9)
        s = 0.3  # smoothstep(0.3) = 0.216
        np.testing.assert_allclose(model.weights_array(VA(s * v, s * a)),
                                   model.weights_array(Expression(c, s * s * (3 - 2 * s))), atol=1e-9)


def test_aus(model):
    w = model.weights(AUs({"AU12": 0.8, "AU6": 0.5}))
    assert w["mouthSmile_L"] == pytest.approx(0.8) and w["cheekSquint_R"] == pytest.approx(0.5)
    assert w["jawOpen"] == 0
    r = model.weights(AUs({"AU12_R": 1.0}))
    assert r["mouthSmile_R"] == 1.0 and r["mouthSmile_L"] == 0.0
    one, both = model.weights(AUs({"AU14_L": 1.0})), model.weights(AUs({"AU14": 1.0}))
    assert one["mouthLeft"] == pytest.approx(0.5) and one["mouthRight"] == 0.0  # one dimpler pulls the mouth its way
    assert both["mouthLeft"] == both["mouthRight"] == 0.0 and both["mouthDimple_L"] == both["mouthDimple_R"] == 1.0
    assert au_weights({"AU26": 1.0, "AU27": 1.0})["jawOpen"] == 1.0  # clipped
    for au in SUPPORTED_AUS:
        assert max(model.weights(AUs({au: 1.0})).values()) > 0, au
    with pytest.raises(ValueError, match="unknown AU"):
        au_weights({"AU3": 1.0})


def test_weights_tensor_order(model):
    names = ("jawOpen", "mouthSmile_L")
    t = model.weights_tensor(Expression("happiness"), names, dtype=torch.float64)
    w = model.weights(Expression("happiness"))
    assert t.dtype == torch.float64 and t.tolist() == [w["jawOpen"], w["mouthSmile_L"]]
    assert model.weights_tensor(VA(0.5, 0.5)).shape == (53,)
    with pytest.raises(ValueError, match="'nope' is not in this model"):
        model.weights_tensor(Expression("happiness"), ["nope"])
    with pytest.raises(TypeError, match="target must be"):
        model.weights("happiness")


def test_save_load_round_trip(model, tmp_path):
    p = model.save(tmp_path / "lib.npz")
    m2 = ExpressionModel.load(p)
    assert m2.names == model.names and m2.categories == model.categories
    for t in (Expression("disgust", 0.7), VA(-0.3, 0.6), AUs({"AU4": 0.4})):
        np.testing.assert_allclose(m2.weights_array(t), model.weights_array(t), atol=1e-6)
    for c in model.categories:
        assert m2.va_anchors[c] == pytest.approx(model.va_anchors[c], abs=1e-6)


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        ExpressionModel.load(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="bad.npz"):
        ExpressionModel.load(bad)
    part = tmp_path / "part.npz"
    np.savez(part, names=np.array(["a"]))
    with pytest.raises(ModelFileError, match=r"part.npz' lacks arrays"):
        ExpressionModel.load(part)
    shape = tmp_path / "shape.npz"
    m = ExpressionModel.default()
    np.savez(shape, format_version=np.array(1), names=np.array(m.names), categories=np.array(m.categories),
             prototypes=np.zeros((8, 52)), response=np.zeros((8, 53)), va_anchors=np.zeros((8, 2)))
    with pytest.raises(ModelFileError, match=r"shape.npz'.*prototypes must be"):
        ExpressionModel.load(shape)


def test_path_hits_keys_and_is_smooth(model):
    keys = (VA(0.0, 0.0), VA(0.7, 0.3), VA(0.0, 0.9), Expression("sadness", 0.8))
    path = AffectPath(keys)
    n = 3 * 20 + 1
    frames = np.array([[f[s] for s in model.names] for f in sample_path(path, n, model=model)])
    assert frames.shape == (n, 53) and frames.min() >= 0 and frames.max() <= 1
    for k, key in enumerate(keys):
        np.testing.assert_allclose(frames[20 * k], model.weights_array(key), atol=1e-9)
    va = np.array([(t.valence, t.arousal) for t in path_va_points(path, n, model=model)])
    step = np.linalg.norm(np.diff(va, axis=0), axis=1)
    assert step.max() < 3 * step.mean()  # the VA spline moves steadily
    lip = np.abs(np.diff(frames, axis=0)).max(axis=1) / np.maximum(step, 1e-9)
    assert lip.max() < 8  # weights change in proportion to the VA step
    wpath = AffectPath(keys[1:], space="weights")
    wf = np.array([[f[s] for s in model.names] for f in sample_path(wpath, 21, model=model)])
    np.testing.assert_allclose(wf[10], model.weights_array(keys[2]), atol=1e-9)
    assert np.abs(np.diff(wf, axis=0)).max() < 0.2
    assert len(sample_path(AffectPath((VA(0.1, 0.1),)), 3)) == 3
    with pytest.warns(DeprecationWarning, match="sample_path"):
        assert AffectPath(keys).sample(5, model=model) == sample_path(path, 5, model=model)
