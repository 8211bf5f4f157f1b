"""The committed weights are what `scripts/convert_mediapipe_models.py` makes of MediaPipe's own models,
and the packed constants they hold load bit for bit.

The fresh conversion needs the `parity` extra (the mediapipe wheel carries the `.tflite` files;
flatbuffers reads the custom ops' options); it skips without it. The runtime never reads `.tflite` files.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from affectsynth.fitting.detection.graph import load_graph, pack_constants, unpack_constants

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
            assert sorted(z.files) == ["constants", "constants_index", "graph", "meta"], name
            committed = unpack_constants(z["constants"], str(z["constants_index"]))
            assert sorted(committed) == sorted(arrays), name
            for k, v in arrays.items():
                assert committed[k].dtype == v.dtype and committed[k].shape == v.shape, f"{name}: {k}"
                assert committed[k].tobytes() == v.tobytes(), f"{name}: {k}"
            assert rel in json.loads(str(z["meta"]))["source"]


def test_packed_constants_round_trip_bitwise():
    rng = np.random.default_rng(0)
    arrays = {"c7": rng.standard_normal((3, 5, 2)).astype(np.float16), "c10": np.arange(7, dtype=np.int32),
              "c2": np.float32(rng.standard_normal((4, 3)))[:, ::2], "c3": np.zeros((0, 4), np.float16)}
    buffer, index = pack_constants(arrays)
    assert buffer.dtype == np.uint8 and buffer.ndim == 1
    back = unpack_constants(buffer, index)
    assert sorted(back) == sorted(arrays)
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype and back[k].shape == v.shape and back[k].tobytes() == v.tobytes(), k
    assert all(offset % 16 == 0 for _, _, _, offset in json.loads(index))


def test_one_array_per_constant_files_still_load_the_same_network(tmp_path):
    """Model files converted before the constants were packed (``c<id>`` arrays) build the same network."""
    path = DATA / "mediapipe_face_detection_short_range.npz"
    with np.load(path, allow_pickle=False) as z:
        constants = unpack_constants(z["constants"], str(z["constants_index"]))
        old = tmp_path / "old.npz"
        np.savez_compressed(old, graph=z["graph"], meta=z["meta"], **constants)
    new_net, old_net = load_graph(path), load_graph(old)
    new_state, old_state = new_net.state_dict(), old_net.state_dict()
    assert list(new_state) == list(old_state) and new_state
    for k, v in new_state.items():
        assert torch.equal(v, old_state[k]), k
    x = torch.rand(1, 3, 128, 128)
    for a, b in zip(new_net(x), old_net(x)):
        assert torch.equal(a, b)
