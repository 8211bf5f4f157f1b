"""The transform after use in the main process, then in fork, spawn and forkserver DataLoader workers;
and no stray stderr output (the old MediaPipe backend hung in forked workers and logged on every run).

Each case runs in a fresh interpreter with a time limit, so a hang fails the test instead of
blocking the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

WORKER_SCRIPT = textwrap.dedent('''
    import sys
    import numpy as np
    import torch
    from skimage import data
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from affectsynth.transform import AffectAugment

    class Faces(Dataset):
        def __init__(self, imgs, aug):
            self.imgs, self.aug = imgs, aug
        def __len__(self):
            return len(self.imgs)
        def __getitem__(self, i):
            img, label = self.aug((self.imgs[i], 6))
            return torch.from_numpy(np.array(img)), torch.as_tensor(label)

    if __name__ == "__main__":
        context = sys.argv[1]
        astro = data.astronaut()
        imgs = [np.ascontiguousarray(np.asarray(Image.fromarray(astro).resize((s, s)))) for s in (192, 208)]
        aug = AffectAugment(("happiness", "surprise"), p=1.0, seed=3, label_preset="fer2013")
        main_out = [Faces(imgs, aug)[i] for i in range(2)]  # used in the main process first
        dl = DataLoader(Faces(imgs, aug), batch_size=1, num_workers=2, multiprocessing_context=context)
        got = [(x[0], y[0]) for x, y in dl]
        for (a, la), (b, lb) in zip(main_out, got):
            diff = (a.float() - b.float()).abs().max().item()
            assert int(la) == int(lb), f"label {int(lb)} in the worker, {int(la)} in the main process"
            limit = 2 if a.dtype == torch.uint8 else 2 / 255  # thread-count rounding, not a different result
            assert diff <= limit, f"worker image differs from the main process by {diff}"
        print("ok", context, [int(y) for _, y in got], [float((a.float() - b.float()).abs().max()) for (a, _), (b, _) in zip(main_out, got)])
''')


@pytest.mark.parametrize("context", ["fork", "spawn", "forkserver"])
def test_transform_in_workers_after_main_process_use(tmp_path, context):
    script = tmp_path / "workers.py"
    script.write_text(WORKER_SCRIPT)
    env = {**os.environ, "AFFECTSYNTH_NO_PROGRESS": "1"}
    try:
        r = subprocess.run([sys.executable, str(script), context], capture_output=True, text=True, timeout=300, env=env,
                           cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"DataLoader with {context} workers hung (no result in 300 s)")
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith(f"ok {context}")
    assert r.stderr == "", f"unexpected stderr output: {r.stderr[:2000]}"


def test_detection_is_silent_and_survives_an_empty_image(tmp_path):
    """No stderr output from detection; a 0x0 image raises a clear error and later calls still work."""
    code = textwrap.dedent('''
        import numpy as np
        from skimage import data
        from affectsynth.fitting import TorchFaceDetector
        det = TorchFaceDetector()
        astro = np.ascontiguousarray(data.astronaut())
        first = det.detect(astro)
        for bad in (np.zeros((0, 0, 3), np.uint8), np.zeros((0, 40, 3), np.uint8)):
            try:
                det.detect(bad)
            except ValueError as e:
                assert "empty" in str(e), e
            else:
                raise SystemExit("no error for an empty image")
        assert det.detect(np.zeros((1, 1, 3), np.uint8)) == []  # too small for a face: none, no error
        again = det.detect(astro)
        assert len(first) == len(again) == 1
        assert np.array_equal(first[0].points, again[0].points)
        print("ok")
    ''')
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "ok"
    assert r.stderr == "", f"unexpected stderr output: {r.stderr[:2000]}"
