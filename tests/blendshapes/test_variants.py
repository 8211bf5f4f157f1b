"""EMFACS variants per category, the Expression -> VA label map, lazy imports, atomic saves."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from affectsynth.blendshapes import (
    CATEGORIES, CATEGORY_VARIANTS, DEFAULT_VARIANTS, AUs, Expression, ExpressionModel, TargetError, VA,
    resolve_variant, target_from_dict,
)
from affectsynth.blendshapes.model import SINGLE_VARIANT
from affectsynth.blendshapes.va import expression_point, inverse_smoothstep, smoothstep


@pytest.fixture(scope="module")
def model():
    return ExpressionModel.default()


def test_shipped_variants_are_the_facs_table(model):
    for c in CATEGORIES:
        assert model.variants(c) == tuple(CATEGORY_VARIANTS[c]), c
        assert model.default_variant(c) == DEFAULT_VARIANTS[c]
    assert set(model.variants("anger")) == {"closed", "open"}
    assert set(model.variants("disgust")) == {"open", "closed"}
    assert set(model.variants("contempt")) == {"right", "left"}
    assert len(model.variants("surprise")) == 2 and len(model.variants("happiness")) == 2


def test_variants_differ_and_default_is_plain_expression(model):
    for c in CATEGORIES:
        base = model.weights_array(Expression(c, 0.7))
        np.testing.assert_array_equal(base, model.weights_array(Expression(c, 0.7, model.default_variant(c))))
        rows = [model.weights_array(Expression(c, 1.0, v)) for v in model.variants(c)]
        for i in range(len(rows)):
            for j in range(i + 1, len(rows)):
                assert np.abs(rows[i] - rows[j]).max() > 0.3, (c, i, j)
    w = {v: model.weights(Expression("anger", 1.0, v)) for v in ("closed", "open")}
    assert w["open"]["jawOpen"] > 0.1 > w["closed"]["jawOpen"]  # the open variant shows the teeth
    assert w["open"]["mouthUpperUp_L"] > 0.5 and w["closed"]["mouthPress_L"] > 0.6
    left, right = (model.weights(Expression("contempt", 1.0, v)) for v in ("left", "right"))
    assert left["mouthDimple_L"] == right["mouthDimple_R"] > 0.5 and left["mouthDimple_R"] == 0
    # the whole mouth moves toward the raised corner, never away from it
    assert left["mouthLeft"] == right["mouthRight"] == pytest.approx(0.5) and left["mouthRight"] == right["mouthLeft"] == 0
    surprise = {v: model.weights(Expression("surprise", 1.0, v)) for v in model.variants("surprise")}
    assert surprise["open"]["jawOpen"] > 0.4 > 0.1 > surprise["closed"]["jawOpen"]


def test_unknown_variant_names_the_valid_ones(model):
    with pytest.raises(ValueError, match=r"anger has no variant 'wide'.*\('open', 'closed'\)"):
        model.weights(Expression("anger", 0.5, "wide"))
    with pytest.raises(ValueError, match=r"no variant 'wide'.*\('open', 'closed'\)"):
        resolve_variant(Expression("anger", 0.5, "wide"), np.random.default_rng(0))
    with pytest.raises(TargetError, match="lowercase name"):
        Expression("anger", 0.5, "Open Mouth")
    with pytest.raises(TypeError, match="variant must be a str"):
        Expression("anger", 0.5, 3)


def test_resolve_variant_is_seeded_and_keeps_a_fixed_one(model):
    t = Expression("disgust", 0.8)

    def draws(seed):
        rng = np.random.default_rng(seed)
        return [resolve_variant(t, rng, model=model).variant for _ in range(40)]

    assert draws(7) == draws(7)
    assert set(draws(7)) == set(model.variants("disgust"))  # both get drawn
    assert draws(7) != draws(8)
    fixed = Expression("anger", 0.8, variant="open")
    rng = np.random.default_rng(0)
    assert all(resolve_variant(fixed, rng).variant == "open" for _ in range(20))
    for other in (VA(0.2, 0.3), AUs({"AU12": 0.5})):
        assert resolve_variant(other, np.random.default_rng(0)) is other
    # one draw per expression target, fixed or not: later draws do not depend on the target
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    resolve_variant(fixed, a)
    resolve_variant(Expression("neutral"), b)
    assert a.random() == b.random()
    r = resolve_variant(Expression("sadness", 0.4), np.random.default_rng(0))
    assert (r.name, r.intensity, r.variant) == ("sadness", 0.4, "frown")


def test_variant_round_trips_through_dicts():
    e = Expression("anger", 0.8, "open")
    assert target_from_dict(json.loads(json.dumps(e.to_dict()))) == e
    assert "variant" not in Expression("anger", 0.8).to_dict()  # old dicts stay as they were
    assert Expression.from_dict({"name": "anger", "intensity": 0.8}).variant is None


def test_smoothstep_inverse_exact():
    for y in np.linspace(0, 1, 101):
        assert smoothstep(inverse_smoothstep(float(y))) == pytest.approx(float(y), abs=1e-12)
    assert inverse_smoothstep(0.25) == pytest.approx(0.3264, abs=1e-4)
    assert expression_point((0.8, 0.35), 0.5) == pytest.approx((0.4, 0.175))


@pytest.mark.parametrize("intensity", [0.25, 0.8])
def test_expression_va_is_where_the_model_shows_the_expression(model, intensity):
    for c in CATEGORIES:
        e = Expression(c, intensity)
        v, a = model.expression_va(e)
        np.testing.assert_allclose(model.weights_array(VA(v, a)), model.weights_array(e), atol=1e-9, err_msg=c)
        if c != "neutral":
            anchor = np.array(model.va_anchors[c])
            # not anchor x intensity: the map is non-linear in radius
            assert math.hypot(v, a) == pytest.approx(inverse_smoothstep(intensity) * np.linalg.norm(anchor))
            assert abs(math.hypot(v, a) - intensity * np.linalg.norm(anchor)) > 0.01
    assert model.expression_va(Expression("happiness", 0.0)) == (0.0, 0.0)
    assert model.expression_va(Expression("neutral", 1.0)) == (0.0, 0.0)
    # every variant of a category carries the category's label
    assert model.expression_va(Expression("anger", 0.8, "open")) == model.expression_va(Expression("anger", 0.8))
    with pytest.raises(TypeError, match="expected an Expression"):
        model.expression_va(VA(0.1, 0.1))


def test_save_load_keeps_variants_atomically(model, tmp_path):
    p = model.save(tmp_path / "lib.npz")
    assert sorted(os.listdir(tmp_path)) == ["lib.npz"]  # no temp file left behind
    m2 = ExpressionModel.load(p)
    for c in CATEGORIES:
        assert m2.variants(c) == model.variants(c)
        for v in model.variants(c):
            e = Expression(c, 0.6, v)
            np.testing.assert_allclose(m2.weights_array(e), model.weights_array(e), atol=1e-6)
    with pytest.raises(OSError):
        model.save(tmp_path / "missing-folder" / "lib.npz")
    assert sorted(os.listdir(tmp_path)) == ["lib.npz"]


def test_format_1_files_load_with_one_apex_variant(model, tmp_path):
    path = tmp_path / "old.npz"
    np.savez_compressed(
        path, format_version=np.array(1), names=np.array(model.names), categories=np.array(model.categories),
        prototypes=model.prototypes.astype(np.float32), response=model.response.astype(np.float32),
        va_anchors=np.array([model.va_anchors[c] for c in model.categories], dtype=np.float32),
    )
    old = ExpressionModel.load(path)
    assert all(old.variants(c) == (SINGLE_VARIANT,) for c in CATEGORIES)
    np.testing.assert_allclose(old.weights_array(Expression("fear", 0.7)),
                               model.weights_array(Expression("fear", 0.7)), atol=1e-6)
    assert resolve_variant(Expression("fear", 0.7), np.random.default_rng(0), model=old).variant == "apex"


def test_constructor_checks_variants(model):
    args = (model.names, model.categories, model.prototypes, model.response,
            np.array([model.va_anchors[c] for c in model.categories]))
    S = len(model.names)
    with pytest.raises(ValueError, match="first variant 'x' is its default"):
        ExpressionModel(*args, variants={"anger": {"x": (np.zeros(S), np.zeros(S))}})
    with pytest.raises(ValueError, match="categories"):
        ExpressionModel(*args, variants={"joy": {"x": (np.zeros(S), np.zeros(S))}})
    c = model.categories.index("anger")
    with pytest.raises(ValueError, match=r"must be two \[53\] arrays"):
        ExpressionModel(*args, variants={"anger": {"a": (model.prototypes[c], model.response[c]),
                                                   "b": (np.zeros(3), np.zeros(3))}})


def test_labels_and_targets_import_without_torch():
    code = ("import sys\nimport affectsynth.labels, affectsynth.blendshapes.targets\n"
            "from affectsynth.blendshapes import CATEGORIES, Expression\n"
            "print(sorted(m for m in ('torch', 'affectsynth.blendshapes.model') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
    from affectsynth import labels

    assert labels.CATEGORIES is CATEGORIES
