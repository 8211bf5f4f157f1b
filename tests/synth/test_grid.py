from __future__ import annotations

import numpy as np
import pytest

from affectsynth.blendshapes.targets import VA, Expression
from affectsynth.grid import make_grid, target_label
from affectsynth.images import save_png


def test_grid_layout_and_labels(tmp_path, photo):
    rows = [[photo, photo[:, ::-1], photo[:64]], [photo[..., 0], None]]
    g = make_grid(rows, ["astronaut", "gray"], ["input", "mirrored", "top half"], cell=96, pad=4)
    assert g.dtype == np.uint8 and g.ndim == 3
    save_png(tmp_path / "grid.png", g)
    h_no, w_no = make_grid(rows, cell=96, pad=4).shape[:2]
    assert h_no == 4 + 2 * 100 and w_no == 4 + 3 * 100
    assert g.shape[0] > h_no and g.shape[1] > w_no  # label row and column added
    # the blank cell (row 1, col 1) is background; text pixels exist in the label column
    assert (g[-50, -150] == 255).all()
    assert (g[: g.shape[0] - h_no, :, :] < 128).any()


def test_grid_errors(photo):
    with pytest.raises(ValueError, match="at least one"):
        make_grid([])
    with pytest.raises(ValueError, match="row labels"):
        make_grid([[photo]], ["a", "b"])
    with pytest.raises(ValueError, match="column labels"):
        make_grid([[photo, photo]], None, ["a"])
    # more column labels than cells: the missing cells stay blank (a photo without a face)
    assert make_grid([[photo]], None, ["a", "b"], cell=32).shape[1] > make_grid([[photo]], None, ["a"], cell=32).shape[1]
    with pytest.raises(ValueError, match="uint8"):
        make_grid([[photo.astype(np.float32)]])


def test_target_labels():
    assert target_label(Expression("happiness", 0.5)) == "happiness 0.5"
    assert target_label(VA(0.5, -0.25)) == "V+0.50 A-0.25"
