"""manifest.parquet: typed columns equal to the CSV's, atomic rewrite, and the engine keeps it in step."""

from __future__ import annotations

import csv
import json
import signal

import pytest

pa = pytest.importorskip("pyarrow", reason="pyarrow is in the dev extra; needed for manifest.parquet")
import pyarrow.parquet as pq  # noqa: E402

from affectsynth.batch import GenerateSettings, Interrupted, run_batch  # noqa: E402
from affectsynth.blendshapes.targets import Expression  # noqa: E402
from affectsynth.manifest import COLUMN_TYPES, COLUMNS, Manifest, ManifestRow  # noqa: E402
from affectsynth.manifest_parquet import PARQUET_NAME, manifest_table, write_parquet  # noqa: E402

ROWS = [
    ManifestRow("a.jpg", "a_jpg/f0_happiness_i1.00.png", "ok", target_kind="expression", expression="happiness",
                intensity=1.0, valence=0.8, arousal=0.35, seed=12, face=0, n_faces=2, yaw=1.0, pitch=-2.0, roll=0.5,
                weights='{"mouthSmile_L":1.0}', variant="open", verify_score=0.3, verify_face=True,
                face_x0=10.5, face_y0=11.0, face_x1=50.0, face_y1=60.25, crop_x0=-2, crop_y0=-4, crop_x1=76,
                crop_y1=74, out_width=64, out_height=64, head_rotation_yaw=3.0, head_rotation_pitch=-1.0,
                au_activations='{"AU12_L":1.0}', landmarks="[[1.5,2.25],[3.0,4.0]]", settings_id="s0123456789a"),
    ManifestRow("b.jpg", "b_jpg/f0_happiness_i1.00.png", "error", "unreadable: OSError: bad", target_kind="expression",
                expression="happiness", intensity=1.0, seed=3, face=0),
]


def test_table_is_typed_and_equals_the_rows():
    t = manifest_table(ROWS)
    assert tuple(t.column_names) == COLUMNS
    kinds = {"int": pa.int64(), "float": pa.float64(), "bool": pa.bool_(), "str": pa.string()}
    for col in COLUMNS:
        want = pa.list_(pa.list_(pa.float64())) if col == "landmarks" else kinds[COLUMN_TYPES[col]]
        assert t.schema.field(col).type == want, col
    got = t.to_pylist()
    assert got[0]["landmarks"] == [[1.5, 2.25], [3.0, 4.0]] and got[1]["landmarks"] is None
    assert got[0]["crop_x0"] == -2 and got[0]["verify_face"] is True and got[1]["light_azimuth"] is None
    assert got[1]["error"] == "unreadable: OSError: bad" and got[0]["error"] is None  # empty text is null


def test_write_is_atomic(tmp_path):
    p = write_parquet(ROWS, tmp_path / PARQUET_NAME)
    before = p.read_bytes()
    bad = ROWS + [object()]  # fails while building the table: the old file stays
    with pytest.raises(AttributeError):
        write_parquet(bad, p)
    assert p.read_bytes() == before and pq.read_table(p).num_rows == 2
    assert [x.name for x in tmp_path.iterdir()] == [PARQUET_NAME]


def _csv_rows(path) -> list[ManifestRow]:
    with open(path, newline="") as f:
        return [ManifestRow.from_csv_dict(d) for d in csv.DictReader(f)]


def _assert_parquet_equals_csv(out) -> None:
    table = pq.read_table(out / PARQUET_NAME).to_pylist()
    rows = _csv_rows(out / "manifest.csv")
    assert len(table) == len(rows) > 0
    for got, row in zip(table, rows):
        for col in COLUMNS:
            want = getattr(row, col)
            if col == "landmarks":
                want = json.loads(want) if want else None
            elif want == "" and col not in ("source", "output", "status"):
                want = None
            assert got[col] == want, col


def _inputs(tmp_path, n: int):
    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(n):
        (inp / f"p{i}.jpg").write_bytes(b"not a photo")
    return inp


def test_engine_writes_parquet_and_keeps_it_in_step(tmp_path):
    inp, out = _inputs(tmp_path, 2), tmp_path / "out"
    s = GenerateSettings(targets=(Expression("happiness"),))
    summary = run_batch(inp, out, s, synthesizer=object(), manifest_format="parquet")
    assert summary.manifest == str(out / PARQUET_NAME)
    _assert_parquet_equals_csv(out)
    # a later csv-format run still refreshes the existing parquet (never a stale copy)
    run_batch(inp, out, GenerateSettings(targets=(Expression("happiness"), Expression("fear"))), synthesizer=object())
    assert pq.read_table(out / PARQUET_NAME).num_rows == 4
    _assert_parquet_equals_csv(out)


def test_interrupted_run_leaves_a_complete_parquet(tmp_path):
    inp, out = _inputs(tmp_path, 3), tmp_path / "out"
    calls = []

    def stop_after_first(rows):
        calls.append(rows)
        raise Interrupted(signal.SIGINT)

    with pytest.raises(Interrupted):
        run_batch(inp, out, GenerateSettings(targets=(Expression("happiness"),)), synthesizer=object(),
                  manifest_format="parquet", on_rows=stop_after_first)
    assert len(calls) == 1
    _assert_parquet_equals_csv(out)
    assert pq.read_table(out / PARQUET_NAME).num_rows == 1
    # resuming finishes both files
    run_batch(inp, out, GenerateSettings(targets=(Expression("happiness"),)), synthesizer=object(),
              manifest_format="parquet")
    assert pq.read_table(out / PARQUET_NAME).num_rows == 3 == len(Manifest(out / "manifest.csv").rows)
    _assert_parquet_equals_csv(out)


def test_one_line_of_pandas_reads_both(tmp_path):
    pd = pytest.importorskip("pandas", reason="the README's one-liners need pandas")
    write_parquet(ROWS, tmp_path / PARQUET_NAME)
    with Manifest(tmp_path / "manifest.csv") as m:
        m.extend(ROWS[:1])
    df = pd.read_csv(tmp_path / "manifest.csv")
    dp = pd.read_parquet(tmp_path / PARQUET_NAME)
    assert df.landmarks.map(json.loads)[0] == [[1.5, 2.25], [3.0, 4.0]]
    assert [list(p) for p in dp.landmarks[0]] == [[1.5, 2.25], [3.0, 4.0]]
    assert df.crop_x1[0] - df.crop_x0[0] == 78 == dp.crop_x1[0] - dp.crop_x0[0]
    assert df.settings_id[0] == "s0123456789a" and df.au_activations.map(json.loads)[0] == {"AU12_L": 1.0}


def test_an_unchanged_parquet_is_not_rewritten(tmp_path):
    p = write_parquet(ROWS, tmp_path / PARQUET_NAME)
    stamp = p.stat().st_mtime_ns
    write_parquet(ROWS, p)
    assert p.stat().st_mtime_ns == stamp
    write_parquet(ROWS[:1], p)
    assert pq.read_table(p).num_rows == 1
