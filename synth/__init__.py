"""affectsynth: synthesise labelled facial expressions of the same person from photos.

Imports are lazy: ``import affectsynth.render`` must not load mediapipe or the face model.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
