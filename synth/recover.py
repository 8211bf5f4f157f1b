"""Recovery after one item failed: drop the Synthesizer state that a failure may have left broken.

A MediaPipe graph that raised once (e.g. on an empty image) answers every later call with
"Graph has errors"; without this, one bad item would silently spoil every item after it.
"""

from __future__ import annotations

import contextlib
from typing import Any

__all__ = ["reset_detector"]


def reset_detector(synthesizer: Any) -> None:
    """Close and forget ``synthesizer``'s landmark detector; it is rebuilt lazily on the next fit.

    Args:
        synthesizer: an ``affectsynth.synthesizer.Synthesizer`` (anything with a lazily built
            ``_detector``; other objects are left alone).
    """
    det = getattr(synthesizer, "_detector", None)
    if det is None:
        return
    with contextlib.suppress(Exception):  # a broken graph may raise on close too
        det.close()
    with contextlib.suppress(AttributeError):
        synthesizer._detector = None
