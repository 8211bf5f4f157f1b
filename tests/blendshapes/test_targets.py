from __future__ import annotations

import math

import pytest

from affectsynth.blendshapes import (
    CATEGORIES, AffectPath, AUs, Expression, ExpressionModel, TargetError, VA, target_from_dict,
)
from affectsynth.blendshapes.paths import sample_path


def test_expression_validation():
    assert Expression("happiness").intensity == 1.0
    with pytest.raises(TargetError, match="name must be one of"):
        Expression("joy")
    with pytest.raises(TargetError, match=r"intensity must be in \[0, 1\], got 1.5"):
        Expression("anger", 1.5)
    with pytest.raises(TargetError, match="finite"):
        Expression("anger", float("nan"))
    with pytest.raises(TypeError):
        Expression("anger", "high")
    with pytest.raises(TypeError):
        Expression(3)


def test_va_validation_and_clamp():
    with pytest.raises(TargetError, match=r"valence must be in \[-1, 1\], got 1.2"):
        VA(1.2, 0.0)
    with pytest.raises(TargetError, match="arousal"):
        VA(0.0, -1.01)
    c = VA(1.0, 1.0).clamped()
    assert math.isclose(c.radius, 1.0) and math.isclose(c.valence, c.arousal)
    inside = VA(0.3, -0.4)
    assert inside.clamped() is inside


def test_va_outside_disk_maps_like_its_clamped_point():
    m = ExpressionModel.default()
    assert m.weights(VA(1.0, 1.0)) == m.weights(VA(1.0, 1.0).clamped())


def test_aus_validation():
    a = AUs({"AU12": 0.8, "AU6": 0.5})
    assert list(a.units) == ["AU12", "AU6"]  # sorted, stable
    with pytest.raises(TargetError, match="unknown AU 'AU99'"):
        AUs({"AU99": 0.5})
    with pytest.raises(TargetError, match=r"AU12 intensity must be in \[0, 1\]"):
        AUs({"AU12": -0.1})
    with pytest.raises(TypeError):
        AUs([("AU12", 1.0)])
    assert hash(a) == hash(AUs({"AU6": 0.5, "AU12": 0.8}))


@pytest.mark.parametrize("t", [
    Expression("fear", 0.3), VA(-0.2, 0.7), AUs({"AU1": 1.0, "AU12_R": 0.2}),
    AffectPath((VA(0, 0), Expression("happiness"), VA(-0.5, 0.5)), space="weights"),
])
def test_dict_round_trip(t):
    d = t.to_dict()
    assert d["kind"] == t.kind
    import json
    assert target_from_dict(json.loads(json.dumps(d))) == t


def test_from_dict_errors():
    with pytest.raises(TargetError, match="kind must be one of"):
        target_from_dict({"kind": "mood"})
    with pytest.raises(TargetError, match="expected kind 'va'"):
        VA.from_dict({"kind": "aus", "valence": 0, "arousal": 0})


def test_categories_constant():
    assert CATEGORIES[0] == "neutral" and len(CATEGORIES) == 8


def test_path_validation():
    with pytest.raises(TargetError, match="at least one point"):
        AffectPath(())
    with pytest.raises(TargetError, match=r"points\[1\] must be VA or Expression"):
        AffectPath((VA(0, 0), AUs({"AU1": 1.0})))
    with pytest.raises(TargetError, match="space"):
        AffectPath((VA(0, 0),), space="rgb")
    with pytest.raises(TargetError, match="n must be"):
        sample_path(AffectPath((VA(0, 0),)), 0)
