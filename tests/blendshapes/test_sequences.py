from __future__ import annotations

import numpy as np
import pytest
import trimesh

from affectsynth.blendshapes import SequenceError, load_sequences
from affectsynth.blendshapes.sequences import Sequence, read_frame

V = 12


def _frames(T, seed=0):
    return np.random.default_rng(seed).normal(size=(T, V, 3)).astype(np.float32)


def _write_obj(path, v):
    lines = ["# frame", *(f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v), "vt 0 0", "f 1/1 2/1 3/1"]
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture()
def seq_dir(tmp_path):
    root = tmp_path / "data"
    a = root / "s_a"
    a.mkdir(parents=True)
    np.save(a / "frames.npy", _frames(4))
    b = root / "s_b"
    b.mkdir()
    fb = _frames(3, seed=1)
    for i, f in enumerate(fb):  # natural sort: f2 before f10
        _write_obj(b / f"f{[1, 2, 10][i]}.obj", f)
    c = root / "s_c"
    c.mkdir()
    fc = _frames(2, seed=2)
    for i, f in enumerate(fc):
        trimesh.Trimesh(f, [[0, 1, 2]], process=False).export(c / f"frame_{i:03d}.ply")
    (root / "labels.csv").write_text("sequence,category\ns_a,happiness\ns_b,\ns_c,anger\n")
    (root / "va.csv").write_text("sequence,frame,valence,arousal\ns_a,3,0.5,0.25\n")
    (b / "va.csv").write_text("frame,valence,arousal\n0,-0.1,0.2\n")
    return root, {"s_a": _frames(4), "s_b": fb, "s_c": fc}


def test_load_all_formats(seq_dir):
    root, truth = seq_dir
    seqs = load_sequences(root, num_vertices=V)
    assert [q.name for q in seqs] == ["s_a", "s_b", "s_c"]
    for q in seqs:
        np.testing.assert_allclose(q.frames, truth[q.name], atol=1e-5)  # vertex order kept
    a, b, c = seqs
    assert (a.category, b.category, c.category) == ("happiness", None, "anger")
    assert np.isnan(a.va[:3]).all() and a.va[3].tolist() == [0.5, 0.25]
    assert b.va[0].tolist() == pytest.approx([-0.1, 0.2]) and c.va is None
    assert a.num_frames == 4 and a.source.endswith("s_a")


def test_wrong_vertex_count_names_file(seq_dir):
    root, _ = seq_dir
    with pytest.raises(SequenceError, match=r"frames.npy': expected 13 vertices \(the basis\), got 12"):
        load_sequences(root, num_vertices=13)
    _write_obj(root / "s_b" / "f11.obj", _frames(1)[0][:5])
    with pytest.raises(SequenceError, match=r"f11.obj': expected 12 vertices"):
        load_sequences(root, num_vertices=V)


def test_bad_frame_files(seq_dir):
    root, _ = seq_dir
    (root / "s_b" / "f3.obj").write_text("v 1 2 x\n")
    with pytest.raises(SequenceError, match=r"f3.obj' line 1: bad vertex line"):
        load_sequences(root)
    (root / "s_b" / "f3.obj").write_text("# nothing\n")
    with pytest.raises(SequenceError, match=r"f3.obj' has no vertices"):
        load_sequences(root)
    (root / "s_b" / "f3.obj").unlink()
    (root / "s_a" / "frames.npy").write_bytes(b"garbage")
    with pytest.raises(SequenceError, match=r"s_a/frames.npy' is not a readable .npy"):
        load_sequences(root)
    np.save(root / "s_a" / "frames.npy", np.zeros((4, V)))
    with pytest.raises(SequenceError, match=r"frames.npy': expected \[T, V, 3\], got \[4, 12\]"):
        load_sequences(root)
    with pytest.raises(SequenceError, match="expected .obj or .ply"):
        read_frame(root / "labels.csv")


def test_bad_csv_rows(seq_dir):
    root, _ = seq_dir
    (root / "labels.csv").write_text("sequence,category\ns_a,joy\n")
    with pytest.raises(SequenceError, match=r"labels.csv' line 2: category must be one of"):
        load_sequences(root)
    (root / "labels.csv").write_text("sequence,category\ns_z,anger\n")
    with pytest.raises(SequenceError, match=r"labels.csv' line 2: unknown sequence 's_z'"):
        load_sequences(root)
    (root / "labels.csv").write_text("seq,cat\n")
    with pytest.raises(SequenceError, match=r"labels.csv': expected columns \['sequence', 'category'\]"):
        load_sequences(root)
    (root / "labels.csv").unlink()
    (root / "va.csv").write_text("sequence,frame,valence,arousal\ns_a,9,0.1,0.1\n")
    with pytest.raises(SequenceError, match=r"va.csv' line 2: frame 9 out of range \[0, 4\)"):
        load_sequences(root)
    (root / "va.csv").write_text("sequence,frame,valence,arousal\ns_a,1,1.5,0.1\n")
    with pytest.raises(SequenceError, match=r"va.csv' line 2: valence must be in \[-1, 1\], got 1.5"):
        load_sequences(root)
    (root / "va.csv").write_text("sequence,frame,valence,arousal\ns_a,1,0.1,high\n")
    with pytest.raises(SequenceError, match=r"va.csv' line 2: arousal must be a number"):
        load_sequences(root)


def test_missing_and_empty(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_sequences(tmp_path / "nope")
    with pytest.raises(SequenceError, match="has no sequence folders"):
        load_sequences(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(SequenceError, match=r"empty': expected frames.npy or .obj/.ply frames"):
        load_sequences(tmp_path)


def test_sequence_validation():
    with pytest.raises(SequenceError, match=r"frames must be \[T, V, 3\]"):
        Sequence("x", np.zeros((3, 4)))
    with pytest.raises(SequenceError, match="category must be one of"):
        Sequence("x", np.zeros((1, 4, 3)), "joy")
    with pytest.raises(SequenceError, match=r"va must be \[1, 2\]"):
        Sequence("x", np.zeros((1, 4, 3)), va=np.zeros((2, 2)))
