"""Progress bars on stderr: tqdm, drawn only when wanted.

A bar is shown only if all hold: not ``quiet``, stderr is a terminal, and the environment
variable ``AFFECTSYNTH_NO_PROGRESS`` is unset or ``0`` (as ``HF_HUB_DISABLE_PROGRESS_BARS``).
"""

from __future__ import annotations

import os
import sys
import warnings
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


def NullProgress(total: int | None = None, **_: Any) -> Any:  # noqa: N802 (the old class name)
    """Deprecated: use ``make_progress(total, enabled=False)`` (a disabled tqdm bar)."""
    warnings.warn("NullProgress is deprecated; use make_progress(total, enabled=False)", DeprecationWarning,
                  stacklevel=2)
    return make_progress(total, enabled=False)


def make_progress(total: int | None, *, desc: str = "", unit: str = "img", enabled: bool = True) -> Any:
    """A tqdm bar on stderr (rate and ETA); with ``enabled=False`` tqdm's own disabled bar (draws nothing)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True,
                smoothing=0.1, mininterval=0.2, disable=not enabled)
