"""Command-line target parsers shared by generate, grid and animate (affectsynth.cli_targets)."""

from __future__ import annotations

import click
import pytest

from affectsynth.blendshapes import AUs, VA
from affectsynth.cli_generate import build_targets
from affectsynth.cli_grid import grid_targets
from affectsynth.cli_targets import aus_option, va_path_option
from affectsynth.labels import CATEGORIES
from affectsynth.naming import target_slug
from affectsynth.result import TargetLabels


def test_aus_each_value_is_one_target():
    got = aus_option(("AU12=0.8, au6=0.5", "AU4=1", "AU12=0.8,AU6=0.5"))
    assert got == [AUs({"AU12": 0.8, "AU6": 0.5}), AUs({"AU4": 1.0})]  # the repeat is dropped
    assert aus_option(()) == [] and aus_option(None) == []


@pytest.mark.parametrize("text, msg", [
    ("AU12", "AU=INTENSITY"), ("AU99=0.5", "unknown AU 'AU99'"), ("AU12=high", "not a number"),
    ("AU12=1.5", r"in \[0, 1\]"), ("AU12=0.5,AU12=0.2", "appears twice"), ("AU12=0.5,", "AU=INTENSITY"),
])
def test_aus_errors_name_the_option_and_the_fix(text, msg):
    with pytest.raises(click.BadParameter, match=msg) as e:
        aus_option((text,))
    assert e.value.param_hint == "--aus"


def test_generate_and_grid_take_au_targets():
    t = build_targets(None, (), (), None, ("AU12=0.8,AU6=0.5",))
    assert t == [AUs({"AU12": 0.8, "AU6": 0.5})]  # --aus alone: no default categories
    assert len(build_targets(None, (), (), None, ())) == len(CATEGORIES)
    mixed = build_targets("happiness", (), ("0.5,0.5",), None, ("AU4=1",))
    assert [x.kind for x in mixed] == ["expression", "va", "aus"]
    assert grid_targets(None, None, None, ("AU4=1", "AU12=1")) == [AUs({"AU4": 1.0}), AUs({"AU12": 1.0})]
    assert [x.kind for x in grid_targets("anger", None, None, ("AU4=1",))] == ["expression", "aus"]
    with pytest.raises(click.UsageError, match="--intensity"):
        grid_targets(None, "0.5", None, ("AU4=1",))
    # the manifest's AU column and the output name carry the units
    row = TargetLabels.of(t[0]).to_row()
    assert row["target_kind"] == "aus" and row["aus"] == '{"AU12":0.8,"AU6":0.5}'
    assert target_slug(t[0]) == "aus_AU12-0.80_AU6-0.50"


def test_va_path_option():
    p = va_path_option("0,0; 0.8,0.3;-0.6,0.5")
    assert p.points == (VA(0, 0), VA(0.8, 0.3), VA(-0.6, 0.5))
    circle = va_path_option("circle")
    assert circle.points[0] == circle.points[-1] == VA(1.0, 0.0) and len(circle.points) == 9
    for bad, msg in [("0,0;;1,0", "empty point"), ("0,0;1", "two numbers"), ("0,0;2,0", r"\[-1, 1\]")]:
        with pytest.raises(click.BadParameter, match=msg):
            va_path_option(bad)
