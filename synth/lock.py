"""An exclusive lock on an output folder, so that one batch run at a time writes into it.

The lock is ``flock(LOCK_EX)`` on ``<folder>/.affectsynth.lock``: the kernel drops it when the
holder exits, however it exits (SIGKILL too), so a killed run never leaves a lock that blocks.
The file names the holder (process id, host, start time, command) for the message a second run
prints; what it says after the holder died is ignored.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Callable

__all__ = ["LOCK_NAME", "OutputDirLock", "OutputDirLockedError"]

LOCK_NAME = ".affectsynth.lock"


class OutputDirLockedError(RuntimeError):
    """Another run holds the output folder's lock."""


def _holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        info = json.loads(os.read(fd, 65536).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        info = {}
    if not isinstance(info, dict) or "pid" not in info:
        return "another process (holder unknown)"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.get("started", 0)))
    return f"process {info.get('pid')} on host {info.get('host', '?')} since {since}"


class OutputDirLock:
    """Hold ``<folder>/.affectsynth.lock`` exclusively while a run writes into ``folder``.

    Args:
        folder: the output folder (created if missing).
        wait: block until the lock is free instead of raising.
        poll_s: how often a waiting run retries.
        on_wait: called once with the holder's description when a run starts waiting.

    Raises:
        OutputDirLockedError: (on ``acquire``, without ``wait``) another run holds the lock; the
            message names it (process id, host) and the ``--wait`` flag.
        OSError: the lock file cannot be created or locked (e.g. a filesystem without locks).

    Example:
        >>> import tempfile
        >>> d = tempfile.mkdtemp()
        >>> with OutputDirLock(d):
        ...     try:
        ...         OutputDirLock(d).acquire()
        ...     except OutputDirLockedError as e:
        ...         print("in use" in str(e))
        True
    """

    def __init__(self, folder: str | os.PathLike, *, wait: bool = False, poll_s: float = 0.5,
                 on_wait: Callable[[str], None] | None = None) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.wait = wait
        self.poll_s = poll_s
        self.on_wait = on_wait
        self._fd: int | None = None

    def acquire(self) -> "OutputDirLock":
        """Take the lock (see the class docstring); returns self."""
        import fcntl

        if self._fd is not None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.path, flags, 0o644)
        told = False
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as e:
                    if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                        raise
                holder = _holder(fd)
                if not self.wait:
                    raise OutputDirLockedError(
                        f"OUTPUT_DIR {self.folder} is in use by another affectsynth run ({holder}; lock file "
                        f"{self.path}); wait for it to finish, or pass --wait to start when it does")
                if not told and self.on_wait is not None:
                    self.on_wait(holder)
                told = True
                time.sleep(self.poll_s)
            info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time(),
                    "argv": sys.argv[:8]}
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode("utf-8", "backslashreplace") + b"\n", 0)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return self

    def release(self) -> None:
        """Drop the lock (closing the file releases it)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "OutputDirLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
