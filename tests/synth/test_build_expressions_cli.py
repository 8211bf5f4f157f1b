"""`affectsynth build-expressions` on 4D sequences in the embedded model's topology, then using the library."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch
from click.testing import CliRunner
from scipy.spatial.transform import Rotation

from affectsynth.blendshapes import Expression, ExpressionModel
from affectsynth.cli import main
from affectsynth.fitting import FaceModel


def _write_sequence(folder, model: FaceModel, prototype: np.ndarray, rng: np.random.Generator, frames: int = 8) -> None:
    """A sequence from neutral to apex of a known prototype, a random identity and head motion."""
    ident = rng.standard_normal(model.num_identity).astype(np.float32) * 0.8
    base = model.vertices(torch.as_tensor(ident)).numpy()
    deltas = model.expressions.deltas.numpy()
    out = []
    for t in range(frames):
        s = min(1.0, max(0.0, (t - 2) / (frames - 4)))  # onset after two neutral frames, apex at the end
        v = base + np.tensordot(prototype * s, deltas, axes=1)
        rot = Rotation.from_euler("xyz", rng.normal(0, 3, 3), degrees=True).as_matrix().astype(np.float32)
        v = v @ rot.T + rng.normal(0, 0.5, 3).astype(np.float32)
        out.append(v + rng.normal(0, 0.01, v.shape).astype(np.float32))
    folder.mkdir(parents=True)
    np.save(folder / "frames.npy", np.stack(out))


def test_build_expressions_then_generate_with_library(tmp_path):
    model = FaceModel.default()
    default = ExpressionModel.default()
    rng = np.random.default_rng(0)
    seq_dir = tmp_path / "seqs"
    rows = ["sequence,category"]
    truth = {}
    for cat, scale in (("happiness", 0.7), ("surprise", 0.8)):
        proto = default.weights_tensor(Expression(cat), model.expression_names).numpy() * scale
        truth[cat] = proto
        for k in range(2):
            _write_sequence(seq_dir / f"{cat}_{k}", model, proto, rng)
            rows.append(f"{cat}_{k},{cat}")
    (seq_dir / "labels.csv").write_text("\n".join(rows) + "\n")
    lib = tmp_path / "lib.npz"
    # Only two categories have sequences: the others fall back to the defaults, with a warning.
    with pytest.warns(UserWarning, match="no sequences for .*sadness.*using the default prototypes"):
        r = CliRunner().invoke(main, ["build-expressions", str(seq_dir), "--out", str(lib)])
    assert r.exit_code == 0, r.output
    assert lib.is_file()
    built = ExpressionModel.load(lib)
    for cat, proto in truth.items():
        got = built.weights_tensor(Expression(cat), model.expression_names).numpy()
        err = np.abs(got - proto)
        assert err.mean() < 0.02 and err.max() < 0.15, (cat, err.mean(), err.max())

    # the engine loads the library in place of the default
    photos = tmp_path / "in"
    photos.mkdir()
    from affectsynth.images import save_png

    save_png(photos / "astronaut.png", skimage.data.astronaut())
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["generate", str(photos), str(out), "--expressions", "happiness", "--size", "128",
                                  "--workers", "1", "--quiet", "--expressions-lib", str(lib)])
    assert r.exit_code == 0, r.output
    pngs = list(out.rglob("*.png"))
    assert len(pngs) == 1


def test_build_expressions_reports_malformed_sequence(tmp_path):
    seq = tmp_path / "seqs" / "broken"
    seq.mkdir(parents=True)
    np.save(seq / "frames.npy", np.zeros((4, 10, 3), np.float32))  # wrong vertex count
    r = CliRunner().invoke(main, ["build-expressions", str(tmp_path / "seqs"), "--out", str(tmp_path / "lib.npz")])
    assert r.exit_code != 0
    assert "frames.npy" in r.output or "broken" in r.output
    assert not (tmp_path / "lib.npz").exists()
