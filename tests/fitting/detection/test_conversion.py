"""The committed weights are what `scripts/convert_mediapipe_models.py` makes of MediaPipe's own models.

Needs the `parity` extra (the mediapipe wheel carries the `.tflite` files; flatbuffers reads the
custom ops' options); skips without it. The runtime never reads `.tflite` files.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "fitting" / "data"


def _modules_dir() -> Path:
    spec = importlib.util.find_spec("mediapipe")
    if spec is None or spec.origin is None:
        pytest.skip("needs mediapipe (its wheel holds the .tflite models): pip install -e '.[parity]'")
    if importlib.util.find_spec("flatbuffers") is None:
        pytest.skip("needs flatbuffers: pip install -e '.[parity]'")
    return Path(spec.origin).parent / "modules"


def test_committed_weights_match_a_fresh_conversion():
    modules = _modules_dir()
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from convert_mediapipe_models import MODELS, convert
        from tflite_reader import read_model
    finally:
        sys.path.remove(str(ROOT / "scripts"))
    for name, rel in MODELS.items():
        layers, arrays = convert(read_model(modules / rel))
        with np.load(DATA / f"{name}.npz", allow_pickle=False) as z:
            assert json.loads(str(z["graph"])) == json.loads(json.dumps(layers)), name
            assert sorted(k for k in z.files if k.startswith("c")) == sorted(arrays), name
            for k, v in arrays.items():
                np.testing.assert_array_equal(z[k], v, err_msg=f"{name}: {k}")
            assert rel in json.loads(str(z["meta"]))["source"]
