"""Record MediaPipe's own faces and landmarks on the dev photos: the parity fixture for the torch port.

    pip install -e '.[parity]'
    python scripts/record_detection_reference.py --photos ../shared/assets/dev-photos \\
        --out tests/fitting/data/mediapipe_reference.npz

Runs `ReferenceMediaPipeDetector` (MediaPipe's legacy solutions, the pre-port detector) on every
photo and stores, per photo, the number of faces and each face's 478 points, depth, box and score
(float32), largest face first. `tests/fitting/detection/test_parity.py` compares the torch port
with this file in CI, where mediapipe is not installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mediapipe_reference import ReferenceMediaPipeDetector  # noqa: E402


def main() -> None:
    """Write the fixture; print one line per photo."""
    here = Path(__file__).resolve().parents[1]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=Path, default=here.parent / "shared/assets/dev-photos")
    parser.add_argument("--out", type=Path, default=here / "tests/fitting/data/mediapipe_reference.npz")
    args = parser.parse_args()
    import mediapipe

    det = ReferenceMediaPipeDetector()
    arrays: dict[str, np.ndarray] = {}
    index = {}
    for path in sorted(args.photos.glob("*.jpg")):
        with Image.open(path) as im:
            faces = det.detect(np.asarray(im.convert("RGB")))
        index[path.name] = len(faces)
        key = path.stem
        arrays[f"{key}/points"] = np.stack([f.points for f in faces]) if faces else np.zeros((0, 478, 2), np.float32)
        arrays[f"{key}/depth"] = np.stack([f.depth for f in faces]) if faces else np.zeros((0, 478), np.float32)
        arrays[f"{key}/bbox"] = np.array([f.bbox for f in faces], np.float32).reshape(-1, 4)
        arrays[f"{key}/score"] = np.array([f.score for f in faces], np.float32)
        print(f"{path.name}: {len(faces)} faces", flush=True)
    det.close()
    meta = {"photos": index, "mediapipe": mediapipe.__version__, "numpy": np.__version__}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, meta=np.array(json.dumps(meta)), **arrays)
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
