"""`affectsynth generate` under faults: the parent killed, SIGTERM, two runs on one folder, a full disk.

Real runs of the command (subprocesses where a signal or a second process is the point), on a
real tmpfs for the full disk (skipped where ``mount -t tmpfs`` is not permitted).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

if importlib.util.find_spec("affectsynth.synthesizer") is None:
    pytest.skip("needs affectsynth.synthesizer", allow_module_level=True)

pytestmark = pytest.mark.slow

from affectsynth.cli import main  # noqa: E402
from affectsynth.images import save_png  # noqa: E402
from affectsynth.lock import OutputDirLock  # noqa: E402
from affectsynth.manifest import COLUMNS  # noqa: E402


def _faces(d: Path, n: int) -> Path:
    import skimage.data

    face = skimage.data.astronaut()[:320, 96:416]
    for k in range(n):
        save_png(d / f"p{k}.png", np.asarray(Image.fromarray(face).resize((150 + 6 * k, 150 + 6 * k))))
    return d


@pytest.fixture(scope="module")
def faces_dir(tmp_path_factory) -> Path:
    """Six faces: work for both workers of a `--workers 2` run (an explicit count always uses the pool)."""
    return _faces(tmp_path_factory.mktemp("faces6"), 6)


@pytest.fixture(scope="module")
def few_faces(tmp_path_factory) -> Path:
    return _faces(tmp_path_factory.mktemp("faces3"), 3)


def _cmd(inp: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "affectsynth.cli", "generate", str(inp), str(out), "--expressions",
            "happiness", "--size", "64", "--quiet", *extra]


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (workers fork from a fork server: they are grandchildren)."""
    kids = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            kids |= {int(x) for x in (task / "children").read_text().split()}
        except OSError:
            pass
    return kids.union(*(_descendants(k) for k in kids))


def _start_and_wait_for_rows(cmd: list[str], out: Path, log: Path, n: int = 1) -> subprocess.Popen:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with log.open("wb") as f:  # a file, not a pipe: an unread pipe could block the child
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=f)
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        m = out / "manifest.csv"
        if m.exists() and sum(1 for ln in m.read_text().splitlines()[1:] if ",ok," in ln) >= n:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"the run finished too early: {log.read_text()[-2000:]}"
    return proc


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_workers_die_with_their_parent(tmp_path, faces_dir, sig, alive):
    out = tmp_path / "out"
    proc = _start_and_wait_for_rows(_cmd(faces_dir, out, "--workers", "2"), out, tmp_path / "log")
    workers = _descendants(proc.pid)
    assert len(workers) >= 3  # the 2 workers, the fork server they fork from (Linux; spawned elsewhere), a resource tracker
    os.kill(proc.pid, sig)  # the parent only, as `kill` or `timeout` do
    rc = proc.wait(60)
    deadline = time.time() + 15
    while time.time() < deadline and any(alive(w) for w in workers):
        time.sleep(0.1)
    assert not any(alive(w) for w in workers), "workers outlived their parent"
    if sig == signal.SIGTERM:
        assert rc == 128 + signal.SIGTERM, (tmp_path / "log").read_text()[-2000:]
        assert "stopped by SIGTERM" in (tmp_path / "log").read_text()
    data = (out / "manifest.csv").read_bytes()
    assert data.endswith(b"\n") and all(len(r) == len(COLUMNS) for r in csv.reader(data.decode().splitlines()))


def test_sigint_exits_130_and_the_rerun_finishes(tmp_path, few_faces):
    out = tmp_path / "out"
    cmd = _cmd(few_faces, out, "--workers", "1")
    proc = _start_and_wait_for_rows(cmd, out, tmp_path / "log")
    os.kill(proc.pid, signal.SIGINT)
    assert proc.wait(60) == 130, (tmp_path / "log").read_text()[-2000:]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    counts = Counter(row["output"] for row in _rows(out))
    assert len(counts) == 3 and set(counts.values()) == {1}


def test_a_second_run_on_the_same_folder_refuses_or_waits(tmp_path, few_faces):
    out = tmp_path / "out"
    holder = OutputDirLock(out).acquire()  # as a first run does
    try:
        r = CliRunner().invoke(main, ["generate", str(few_faces), str(out), "--expressions", "happiness",
                                      "--size", "64", "--quiet", "--workers", "1"])
        assert r.exit_code == 1 and f"in use by another affectsynth run (process {os.getpid()}" in r.stderr
        assert "--wait" in r.stderr and not (out / "manifest.csv").exists()
        threading.Timer(1.0, holder.release).start()
        r = CliRunner().invoke(main, ["generate", str(few_faces), str(out), "--expressions", "happiness",
                                      "--size", "64", "--quiet", "--workers", "1", "--wait"])
    finally:
        holder.release()
    assert r.exit_code == 0, r.output
    assert "waiting (--wait)" in r.stderr and len(_rows(out)) == 3


@pytest.fixture
def small_tmpfs(tmp_path):
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode(errors='replace').strip()[:80]})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_stops_the_run_and_the_rerun_completes(tmp_path, few_faces, small_tmpfs):
    out = small_tmpfs / "out"
    out.mkdir()
    filler = small_tmpfs / "filler"
    free = os.statvfs(small_tmpfs).f_bavail * os.statvfs(small_tmpfs).f_frsize
    filler.write_bytes(b"\0" * (free - 40_000))  # room for the manifest and a few outputs
    args = ["generate", str(few_faces), str(out), "--expressions", "happiness,sadness", "--size", "96",
            "--quiet", "--workers", "1", "--png-compression", "0"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1 and "No space left on device" in r.stderr and "stopped early" in r.stderr, r.output
    data = (out / "manifest.csv").read_bytes()
    assert data.endswith(b"\n")  # whole lines only
    rows = _rows(out)
    assert len(rows) < 6 and all(row["status"] == "ok" for row in rows)  # stopped, not 6 failed rows
    filler.unlink()
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    counts = Counter(row["output"] for row in _rows(out))
    assert len(counts) == 6 and set(counts.values()) == {1}
