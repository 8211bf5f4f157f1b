"""The ``--paths`` file: JSON and CSV forms, what they plan, and every error naming file, place and problem."""

from __future__ import annotations

import json

import pytest

from affectsynth.animate import circle_path, plan_category_frames, plan_path_frames
from affectsynth.blendshapes.targets import VA, AffectPath, Expression
from affectsynth.paths_file import (PathsFileError, SequenceSpec, load_paths_file, parse_paths_csv,
                                    parse_paths_json)

JSON_TEXT = json.dumps([
    {"name": "circle", "va": [[0.8, 0], [0, 0.8], [-0.8, 0], [0, -0.8]], "closed": True, "frames": 24},
    {"name": "smile", "expressions": ["neutral", "happy", "neutral"], "frames": 16, "intensity": 0.8, "fps": 8},
])

CSV_TEXT = """name,valence,arousal,expression,frames,closed,fps,intensity
circle,0.8,0,,24,true,,
circle,0,0.8,,,,,
circle,-0.8,0,,,,,
circle,0,-0.8,,24,,,
smile,,,neutral,16,,8,0.8
smile,,,happiness,,,,
smile,,,neutral,,,,
"""


def test_json_and_csv_forms_give_the_same_sequences(tmp_path):
    a = parse_paths_json(JSON_TEXT, file="p.json")
    b = parse_paths_csv(CSV_TEXT, file="p.csv")
    assert a == b
    circle, smile = a
    assert (circle.kind, circle.frames, circle.closed, circle.va[1]) == ("va", 24, True, (0.0, 0.8))
    assert (smile.kind, smile.expressions, smile.intensity, smile.fps) == (
        "expressions", ("neutral", "happiness", "neutral"), 0.8, 8.0)  # aliases become categories
    (tmp_path / "p.json").write_text(JSON_TEXT)
    (tmp_path / "p.csv").write_text(CSV_TEXT)
    (tmp_path / "p.txt").write_text(JSON_TEXT)  # any other suffix reads as JSON
    assert load_paths_file(tmp_path / "p.json") == load_paths_file(tmp_path / "p.csv") == a
    assert load_paths_file(tmp_path / "p.txt") == a


def test_round_trip_and_pickle():
    import pickle

    for spec in parse_paths_json(JSON_TEXT) + (SequenceSpec("s", 4, va=((0, 0), (0.5, 0.5)), sway_deg=(3, 2)),):
        assert SequenceSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
        assert pickle.loads(pickle.dumps(spec)) == spec and hash(spec) == hash(pickle.loads(pickle.dumps(spec)))


def test_plans_are_the_animate_plans():
    circle, smile = parse_paths_json(JSON_TEXT)
    path = AffectPath(tuple(VA(v, a) for v, a in [(0.8, 0), (0, 0.8), (-0.8, 0), (0, -0.8), (0.8, 0)]))
    assert circle.affect_path() == path  # closed: the first key again at the end
    assert circle.plan() == plan_path_frames(path, 24, fps=12.0)
    assert smile.plan() == plan_category_frames(["neutral", "happiness", "neutral"], 16, fps=8.0, intensity=0.8)
    assert [f.index for f in smile.plan()] == list(range(16)) and smile.plan()[1].time_s == pytest.approx(1 / 8)
    assert all(isinstance(f.target, Expression) for f in smile.plan())
    # "circle" is animate's --path circle
    (loop,) = parse_paths_json('[{"name": "loop", "va": "circle", "frames": 8}]')
    assert loop.closed and loop.plan() == plan_path_frames(circle_path(), 8, fps=12.0)
    # an open path runs from its first key to its last
    (line,) = parse_paths_json('[{"name": "line", "va": [[0, 0], [0.8, 0.3]], "frames": 3}]')
    assert [(f.target.valence, f.target.arousal) for f in line.plan()] == [
        pytest.approx((0, 0)), pytest.approx((0.4, 0.15)), pytest.approx((0.8, 0.3))]


def test_expressions_as_a_comma_list_and_sway():
    (s,) = parse_paths_json('[{"name": "a", "expressions": "neutral, surprise", "frames": 4, "sway": [4, 2]}]')
    assert s.expressions == ("neutral", "surprise") and s.sway_deg == (4.0, 2.0)
    from affectsynth.animate import sway_angles

    assert [f.sway_deg for f in s.plan()] == sway_angles(4, (4.0, 2.0))
    assert SequenceSpec("b", 3, expressions="fear,anger").expressions == ("fear", "anger")


@pytest.mark.parametrize("paths,needle", [
    ([{"name": "a", "expressions": ["neutral", "happyness"], "frames": 4}], r"path #1 \('a'|unknown expression 'happyness'"),
    ([{"name": "a", "va": [[0, 0], [1.5, 0]], "frames": 4}], r"path #1: path 'a': va key 1: valence 1.5 is outside \[-1, 1\]"),
    ([{"name": "a", "va": [[0, 0], [0, -1.2]], "frames": 4}], r"arousal -1.2 is outside \[-1, 1\]"),
    ([{"name": "a", "va": [[0, 0], [0.5, 0]], "frames": 1}], r"frames must be an int in 2\.\.10000, got 1"),
    ([{"name": "a", "va": [[0, 0], [0.5, 0]], "frames": 4.0}], r"frames must be an int"),
    ([{"name": "a", "va": [[0, 0], [0.5, 0]], "frames": 4}, {"name": "a", "expressions": ["fear"], "frames": 4}],
     r"path #2 \('a'\): duplicate path name 'a', first at path #1 \('a'\)"),
    ([{"name": "Smile", "expressions": ["fear"], "frames": 4}, {"name": "smile", "expressions": ["fear"], "frames": 4}],
     r"duplicate path name 'smile'.*differs only in case"),
    ([{"name": "a", "frames": 4}], r"exactly one of 'va' .* or 'expressions' .*neither"),
    ([{"name": "a", "va": [[0, 0], [1, 0]], "expressions": ["fear"], "frames": 4}], r"exactly one of .*both"),
    ([{"name": "a", "va": [[0, 0]], "frames": 4}], r"at least 2 key points"),
    ([{"name": "a", "va": [[0, 0, 0], [1, 0]], "frames": 4}], r"va key 0 must be \[valence, arousal\]"),
    ([{"name": "a", "va": "square", "frames": 4}], r"or \"circle\""),
    ([{"name": "a", "va": [[0, 0], [1, 0]], "frames": 4, "colsed": True}], r"unknown key\(s\) 'colsed'"),
    ([{"name": "a", "expressions": ["fear"], "closed": True, "frames": 4}], r"closed applies to VA paths"),
    ([{"name": "a", "va": [[0, 0], [1, 0]], "intensity": 0.5, "frames": 4}], r"intensity applies to category"),
    ([{"name": "a", "expressions": ["fear"], "intensity": 2, "frames": 4}], r"intensity must be in \[0, 1\]"),
    ([{"name": "a", "expressions": ["fear"], "fps": 0, "frames": 4}], r"fps must be in"),
    ([{"name": "a", "expressions": ["fear"], "sway": [20, 0], "frames": 4}], r"sway must be \[yaw, pitch\] within 15, 10"),
    ([{"name": "a/b", "expressions": ["fear"], "frames": 4}], r"path name 'a/b': expected 1-64 letters"),
    ([{"expressions": ["fear"], "frames": 4}], r"missing 'name'"),
    ([{"name": "a", "expressions": ["fear"]}], r"path 'a': missing 'frames'"),
    ([], r"non-empty JSON list"),
    ({"name": "a"}, r"non-empty JSON list .*got dict"),
    (["a"], r"path #1: expected an object"),
])
def test_json_errors_name_the_file_the_path_and_the_problem(paths, needle):
    with pytest.raises(PathsFileError, match=needle) as e:
        parse_paths_json(json.dumps(paths), file="my.json")
    assert str(e.value).startswith("my.json: ")


def test_bad_json_gives_line_and_column(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('[\n  {"name": "a", "frames": 4,\n   "va": [[0, 0] [1, 0]]}\n]\n')
    with pytest.raises(PathsFileError, match=r"bad\.json: line 3, column 18: invalid JSON \(Expecting ',' delimiter\)"):
        load_paths_file(p)


@pytest.mark.parametrize("text,needle", [
    ("name,valence,arousal,frames\na,0,0,4\na,1.5,0,\n", r"a\.csv: line 3: path 'a': valence 1.5 is outside \[-1, 1\]"),
    ("name,valence,arousal,frames\na,0,0,4\na,x,0,\n", r"line 3: path 'a': valence must be a number, got 'x'"),
    ("name,valence,arousal,frames\na,0,0,4\nb,0,0,4\nb,1,0,\na,1,0,\n",
     r"line 5: path 'a' appears again after other paths \(first on line 2\)"),
    ("name,valence,arousal,frames\na,0,0,4\na,1,0,5\n", r"line 3: path 'a': frames 5 differs from 4 given on line 2"),
    ("name,valence,arousal\na,0,0\na,1,0\n", r"line 2: path 'a': no 'frames' on any of its rows"),
    ("name,valence,arousal,frames\na,0,0,1\na,1,0,\n", r"line 2: path 'a': frames must be an int in 2"),
    ("name,expression,frames\na,happyness,4\n", r"line 2: path 'a': unknown expression 'happyness'"),
    ("name,valence,arousal,expression,frames\na,0,0,fear,4\n", r"line 2: path 'a': give valence,arousal or expression"),
    ("name,valence,arousal,expression,frames\na,0,0,,4\na,,,fear,\n", r"line 3: path 'a': a path is VA key points or categories"),
    ("name,valence,arousal,frames\na,0,,4\n", r"line 2: path 'a': expected valence and arousal"),
    ("name,valence,arousal,speed\na,0,0,4\n", r"line 1: unknown column\(s\) 'speed'"),
    ("name,frames\na,4\n", r"line 1: the header needs 'name' and 'valence,arousal' or 'expression'"),
    ("name,valence,arousal,frames\na,0,0\n", r"line 2: 3 fields, the header has 4"),
    ("name,valence,arousal,frames\n", r"no paths below the header"),
    ("", r"empty"),
    ("name,expression,frames,closed\na,fear,4,maybe\n", r"closed must be true or false, got 'maybe'"),
    ("name,valence,arousal,frames\nSmile,0,0,4\nSmile,1,0,\nsmile,0,0,4\nsmile,1,0,\n", r"duplicate path name 'smile'"),
])
def test_csv_errors_name_the_file_the_line_and_the_problem(text, needle):
    with pytest.raises(PathsFileError, match=needle) as e:
        parse_paths_csv(text, file="a.csv")
    assert str(e.value).startswith("a.csv: ")


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"--paths .*nope\.json: no such file"):
        load_paths_file(tmp_path / "nope.json")
    (tmp_path / "latin1.csv").write_bytes("name,expression,frames\ncaf\xe9,fear,4\n".encode("latin-1"))
    with pytest.raises(PathsFileError, match=r"latin1\.csv: not UTF-8"):
        load_paths_file(tmp_path / "latin1.csv")
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(PathsFileError, match=r"is a folder"):
        load_paths_file(tmp_path / "dir.json")
    (tmp_path / "bom.csv").write_text("\ufeffname,expression,frames\na,fear,4\n", encoding="utf-8")  # a spreadsheet's BOM
    assert load_paths_file(tmp_path / "bom.csv")[0].expressions == ("fear",)
