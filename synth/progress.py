"""Progress bars on stderr: tqdm when wanted, a silent stand-in otherwise.

A bar is shown only if all hold: not ``quiet``, stderr is a terminal, and the environment
variable ``AFFECTSYNTH_NO_PROGRESS`` is unset or ``0`` (as ``HF_HUB_DISABLE_PROGRESS_BARS``).
"""

from __future__ import annotations

import os
import sys
from typing import Any, TextIO

__all__ = ["NullProgress", "make_progress", "progress_enabled"]


def progress_enabled(*, quiet: bool = False, stream: TextIO | None = None) -> bool:
    """Whether a progress bar should be drawn (see the module docstring)."""
    if quiet:
        return False
    if os.environ.get("AFFECTSYNTH_NO_PROGRESS", "0").strip().lower() not in ("", "0", "false", "no"):
        return False
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class NullProgress:
    """Does nothing; has the tqdm methods the engine uses."""

    def __init__(self, total: int | None = None, **_: Any) -> None:
        self.total = total
        self.n = 0

    def update(self, n: int = 1) -> None:
        self.n += n

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        pass

    def write(self, s: str) -> None:
        print(s, file=sys.stderr)

    def close(self) -> None:
        pass

    def __enter__(self) -> "NullProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_progress(total: int | None, *, desc: str = "", unit: str = "img", enabled: bool = True) -> Any:
    """A tqdm bar on stderr (rate and ETA) when ``enabled``, else :class:`NullProgress`."""
    if not enabled:
        return NullProgress(total)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1, mininterval=0.2)
