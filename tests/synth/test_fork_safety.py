"""A process forked after synthesis rebuilds its own Synthesizer (issue 13: forked DataLoader workers
inheriting the main process's Synthesizer mid-flight could crash or hang with torch 2.14.1).

Each case runs in a fresh interpreter with a time limit, so a hang fails the test instead of
blocking the suite.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

FORK_SCRIPT = textwrap.dedent('''
    import os
    import torch
    from affectsynth.transform import AffectAugment

    torch.set_num_threads(2)
    aug = AffectAugment(("happiness",), p=1.0, seed=0, label_preset="fer2013")
    parent_synth = aug._get_synthesizer()
    pid = os.fork()
    if pid == 0:  # the child: the hook dropped the Synthesizer and set one torch thread
        ok = aug._synthesizer is None and torch.get_num_threads() == 1
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert aug._synthesizer is parent_synth, "the parent keeps its Synthesizer"
    print("child", os.waitstatus_to_exitcode(status))
''')

DATALOADER_SCRIPT = textwrap.dedent('''
    import numpy as np
    import torch
    from PIL import Image
    from torch.utils.data import DataLoader, Dataset
    from affectsynth.sample_data import astronaut
    from affectsynth.transform import AffectAugment

    class Faces(Dataset):
        def __init__(self, imgs, aug):
            self.imgs, self.aug = imgs, aug
        def __len__(self):
            return len(self.imgs)
        def __getitem__(self, i):
            fresh = self.aug._synthesizer is None  # before this item: built in this process yet?
            img, label = self.aug((self.imgs[i], 6))
            return torch.from_numpy(np.array(img)), torch.as_tensor(label), torch.as_tensor(int(fresh))

    if __name__ == "__main__":
        astro = astronaut()
        imgs = [np.ascontiguousarray(np.asarray(Image.fromarray(astro).resize((s, s)))) for s in (192, 208, 224, 240)]
        aug = AffectAugment(("happiness", "surprise"), p=1.0, seed=3, label_preset="fer2013")
        ds = Faces(imgs, aug)
        main_out = [ds[i] for i in range(len(ds))]  # synthesised in the main process first
        dl = DataLoader(ds, batch_size=1, num_workers=2, multiprocessing_context="fork", timeout=240)
        got = [(x[0], y[0], f[0]) for x, y, f in dl]
        fresh = sum(int(f) for _, _, f in got)
        assert fresh == 2, f"{fresh} of 2 forked workers started without the inherited Synthesizer"
        for (a, la, _), (b, lb, _) in zip(main_out, got):
            assert int(la) == int(lb), (int(la), int(lb))
            diff = (a.float() - b.float()).abs().max().item()
            assert diff <= 2, f"worker image differs from the main process by {diff}"
        print("ok", [int(y) for _, y, _ in got])
''')


def _run(tmp_path, script: str, timeout: int) -> subprocess.CompletedProcess:
    path = tmp_path / "script.py"
    path.write_text(script)
    env = {**os.environ, "AFFECTSYNTH_NO_PROGRESS": "1"}
    try:
        return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=timeout,
                              env=env, cwd=tmp_path)
    except subprocess.TimeoutExpired:
        pytest.fail(f"forked process hung (no result in {timeout} s)")


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_a_forked_child_drops_the_synthesizer(tmp_path):
    r = _run(tmp_path, FORK_SCRIPT, 180)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip() == "child 0", (r.stdout, r.stderr[-2000:])


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX)")
def test_fork_dataloader_after_synthesis_rebuilds_per_worker(tmp_path):
    r = _run(tmp_path, DATALOADER_SCRIPT, 400)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.startswith("ok [5, 5, 3, 3]"), (r.stdout, r.stderr[-2000:])
