"""The OUTPUT_DIR lock: a second holder is refused (naming the first) or waits; a killed holder never blocks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from affectsynth.lock import LOCK_NAME, OutputDirLock, OutputDirLockedError


def test_second_holder_is_refused_with_the_holders_pid_and_host(tmp_path):
    with OutputDirLock(tmp_path):
        with pytest.raises(OutputDirLockedError) as ei:
            OutputDirLock(tmp_path).acquire()
    msg = str(ei.value)
    assert f"process {os.getpid()}" in msg and socket.gethostname() in msg and "--wait" in msg
    with OutputDirLock(tmp_path):  # released: free again
        pass


def test_wait_blocks_until_the_holder_releases(tmp_path):
    first = OutputDirLock(tmp_path).acquire()
    told = []
    threading.Timer(0.6, first.release).start()
    t0 = time.monotonic()
    with OutputDirLock(tmp_path, wait=True, poll_s=0.05, on_wait=told.append):
        waited = time.monotonic() - t0
    assert waited >= 0.5 and len(told) == 1 and str(os.getpid()) in told[0]


def test_a_killed_holder_leaves_no_lock_behind(tmp_path):
    code = (f"import sys, time; sys.path[:0] = {sys.path!r}; from affectsynth.lock import OutputDirLock; "
            f"OutputDirLock({str(tmp_path)!r}).acquire(); print('held', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "held"
        with pytest.raises(OutputDirLockedError, match=f"process {p.pid}"):
            OutputDirLock(tmp_path).acquire()
        os.kill(p.pid, signal.SIGKILL)
        p.wait(10)
    finally:
        p.kill()
        p.stdout.close()
        p.wait()
    assert (tmp_path / LOCK_NAME).read_text()  # the dead holder's note is still there ...
    with OutputDirLock(tmp_path):  # ... but does not block
        pass
