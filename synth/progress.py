"""Progress bars on stderr: tqdm, drawn only when wanted.

A bar is shown only if all hold: not ``quiet``, the environment variable
``AFFECTSYNTH_NO_PROGRESS`` is unset or ``0`` (as ``HF_HUB_DISABLE_PROGRESS_BARS``), and stderr
is a terminal or ``AFFECTSYNTH_PROGRESS=1`` asks for it (e.g. a bar in a log file).

`OutputProgress` is the ``generate`` bar: it counts outputs (not images), so its rate and ETA
are in outputs, and shows ``ok=/skip=/err=`` counts; `StageProgress` is a bar over named stages
(``demo``: loading models, fitting, synthesising k/n).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections import Counter
from typing import Any, Mapping, Sequence, TextIO

__all__ = ["NullProgress", "OutputProgress", "StageProgress", "make_progress", "progress_enabled"]


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "0").strip().lower() not in ("", "0", "false", "no")


def progress_enabled(*, quiet: bool = False, stream: TextIO | None = None) -> bool:
    """Whether a progress bar should be drawn (see the module docstring)."""
    if quiet or _env_flag("AFFECTSYNTH_NO_PROGRESS"):
        return False
    if _env_flag("AFFECTSYNTH_PROGRESS"):  # asked for: drawn also when stderr is no terminal (a log file)
        return True
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


def make_progress(total: int | None, *, desc: str = "", unit: str = "img", enabled: bool = True,
                  file: TextIO | None = None) -> Any:
    """A tqdm bar on ``file`` (default stderr; rate and ETA); with ``enabled=False`` tqdm's own
    disabled bar (draws nothing)."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr if file is None else file, dynamic_ncols=True,
                smoothing=0.1, mininterval=0.2, disable=not enabled)


#: Row status -> the postfix count it adds to (``rejected``: under ``--min-verify``, not written).
_COUNT_OF = {"ok": "ok", "skipped": "skip", "rejected": "skip", "error": "err"}


class OutputProgress:
    """A bar counting a batch's outputs as their rows come back (in-process or from workers).

    The total starts as the outputs planned per job (images x targets not done, face 0); a job
    that returns more rows (extra faces with ``faces="all"``) grows it, and a job that returns
    fewer still advances by its planned count, so the bar ends at its total. Every row
    advances it, whatever its status: the postfix shows ``ok=N skip=N err=N``.

    Args:
        planned: job key (its ``rel_source``) -> outputs planned for it.
        desc: the bar's label.
        note: how the run executes (e.g. "2 workers"), shown after ``desc``.
        enabled: draw it (see `progress_enabled`); disabled, it still counts.
        file: where to draw (default stderr).
    """

    def __init__(self, planned: Mapping[str, int], *, desc: str = "generate", note: str = "",
                 enabled: bool = True, file: TextIO | None = None) -> None:
        self.planned = dict(planned)
        self.counts: Counter = Counter(ok=0, skip=0, err=0)
        label = f"{desc} [{note}]" if note else desc
        self.bar = make_progress(sum(self.planned.values()), desc=label, unit="out", enabled=enabled, file=file)
        self._stage: str | None = None

    @property
    def done(self) -> int:
        """Outputs counted so far (every status)."""
        return int(self.bar.n)

    @property
    def total(self) -> int:
        """Outputs planned so far (grows with extra faces)."""
        return int(self.bar.total or 0)

    def postfix(self) -> str:
        """``"ok=N skip=N err=N"``, or the current stage before the first row."""
        counts = " ".join(f"{k}={self.counts[k]}" for k in ("ok", "skip", "err"))
        return f"{self._stage}; {counts}" if self._stage else counts

    def stage(self, text: str | None) -> None:
        """Show what the run is doing before outputs come (e.g. "loading models"); None clears it."""
        self._stage = text
        self.bar.set_postfix_str(self.postfix(), refresh=True)

    def advance(self, key: str, rows: Sequence[Any]) -> None:
        """Count one job's rows (objects with a ``status``) and move the bar by its outputs."""
        expected = self.planned.pop(key, 0)
        if len(rows) > expected:
            self.bar.total = self.total + len(rows) - expected
        for r in rows:
            self.counts[_COUNT_OF.get(r.status, "err")] += 1
        self.counts["skip"] += max(0, expected - len(rows))  # planned but never attempted
        self._stage = None
        self.bar.set_postfix_str(self.postfix(), refresh=False)
        self.bar.update(max(len(rows), expected))

    def close(self) -> None:
        """Finish the bar (its last line stays on the terminal)."""
        self.bar.close()


class StageProgress:
    """A bar over a fixed number of steps whose postfix names the current stage.

    For short commands (``affectsynth demo``): ``step("synthesising 3/8")`` advances one step and
    shows the text; ``stage("loading models")`` shows a text without advancing.

    Args:
        total: steps.
        desc: the bar's label.
        enabled: draw it (see `progress_enabled`).
        file: where to draw (default stderr).
    """

    def __init__(self, total: int, *, desc: str = "", enabled: bool = True, file: TextIO | None = None) -> None:
        self.bar = make_progress(total, desc=desc, unit="step", enabled=enabled, file=file)

    def stage(self, text: str) -> None:
        """Show ``text`` as the current stage (no step done)."""
        self.bar.set_postfix_str(text, refresh=True)

    def step(self, text: str | None = None) -> None:
        """One step done; then show ``text`` (the next stage) if given."""
        self.bar.update(1)
        if text is not None:
            self.bar.set_postfix_str(text, refresh=True)  # drawn now: a stage is shown even when short

    def close(self) -> None:
        """Finish the bar."""
        self.bar.close()
