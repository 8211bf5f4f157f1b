from __future__ import annotations

import math

import pytest

from affectsynth.blendshapes.facs import CATEGORIES as BS_CATEGORIES
from affectsynth.blendshapes.targets import VA, AUs, Expression
from affectsynth.labels import (CATEGORIES, PRESETS, UnsupportedTargetError, canonical_category,
                                expression_targets, get_preset, parse_float_list, parse_va, va_grid_points,
                                va_wheel_points)


def test_categories_match_blendshapes():
    assert CATEGORIES == BS_CATEGORIES


def test_fer2013_and_affectnet_orders():
    fer, an = get_preset("fer2013"), get_preset("AffectNet")
    assert [fer.index_of(c) for c in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")] == list(range(7))
    assert [an.index_of(c) for c in ("neutral", "happy", "sad", "surprise", "fear", "disgust", "anger",
                                     "contempt")] == list(range(8))
    assert fer.num_classes == 7 and an.num_classes == 8
    with pytest.raises(UnsupportedTargetError, match="contempt"):
        fer.index_of("contempt")


def test_check_target():
    PRESETS["affectnet"].check_target(Expression("contempt"))
    PRESETS["va"].check_target(VA(0.1, 0.2))
    PRESETS["va"].check_target(Expression("fear", 0.5))
    for preset, t in [("fer2013", Expression("contempt")), ("fer2013", VA(0, 0)), ("va", AUs({"AU12": 1.0}))]:
        with pytest.raises(UnsupportedTargetError):
            PRESETS[preset].check_target(t)


def test_aliases_and_errors():
    assert canonical_category(" Happy ") == "happiness" and canonical_category("angry") == "anger"
    with pytest.raises(ValueError, match="unknown expression 'joyful'"):
        canonical_category("joyful")
    with pytest.raises(ValueError, match="label preset"):
        get_preset("ck+")


def test_parsing():
    assert parse_float_list(("0.5,1", "0.25"), what="--intensity") == [0.5, 1.0, 0.25]
    assert parse_va("-0.5,0.25") == (-0.5, 0.25)
    for bad in ["0.5", "a,b", "1.5,0", "0.5,,1"]:
        with pytest.raises(ValueError, match="--va"):
            parse_va(bad)
    ts = expression_targets(["happy", "sad", "happiness"], [0.5, 1.0])
    assert ts == [Expression("happiness", 0.5), Expression("happiness", 1.0),
                  Expression("sadness", 0.5), Expression("sadness", 1.0)]


def test_va_grid_and_wheel():
    g = va_grid_points(3)
    assert len(g) == 9 and g[4] == (0.0, 0.0) and len(set(g)) == 9
    assert all(math.hypot(v, a) <= 1.0 + 1e-9 for v, a in g)
    assert g[0] == pytest.approx((-math.sqrt(0.5), math.sqrt(0.5)), abs=1e-6)
    assert va_grid_points(1) == [(0.0, 0.0)]
    w = va_wheel_points(8)
    assert len(w) == 8 and all(math.hypot(v, a) == pytest.approx(1.0) for v, a in w)
    for f, n in [(va_grid_points, 0), (va_wheel_points, -1)]:
        with pytest.raises(ValueError):
            f(n)
