"""Face quality gates: which fitted faces synthesis accepts, shared by every entry point.

The limits of what one photo supports live here too (`MAX_HEAD_ROTATION_DEG`). A face too small to texture, turned further than the photo shows, or fitted poorly would give
an output whose face does not match its label. `check_face` says why a face is refused; the
`Synthesizer` applies it (``Synthesizer.check``), the batch engine writes the reason as a
``skipped`` row, the transform passes such items through unchanged and counts them, the grid
labels the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_HEAD_ROTATION_DEG", "FaceGates", "FaceRejection", "check_face"]

#: Largest extra head turn (|yaw|, |pitch|) in degrees that a single photo supports. Beyond it the
#: photo has not seen what the turn reveals: the jaw line leaves a seam on the cheek and the neck
#: uncovered under the chin repeats the chin's edge (a dark wedge); up to these limits both stay
#: within a few pixels on 256 px faces (looked at on the astronaut and Tom Cruise at 10/15/25 deg).
MAX_HEAD_ROTATION_DEG: tuple[float, float] = (15.0, 10.0)


@dataclass(frozen=True)
class FaceGates:
    """Limits a face must meet to be synthesised.

    Attributes:
        min_face_px: shorter side of the face box, pixels.
        max_yaw_deg, max_pitch_deg: head turn limits: the model cannot texture what the photo
            does not show.
        max_fit_error: mean landmark error as a fraction of the eye distance (occluded or
            mis-detected faces fit poorly).
        max_roll_deg: in-plane tilt limit (a photo on its side): the landmark model expects
            upright faces, and its landmarks of a face lying on its side are unreliable.
    """

    min_face_px: float = 24.0
    max_yaw_deg: float = 60.0
    max_pitch_deg: float = 40.0
    max_fit_error: float = 0.08
    max_roll_deg: float = 45.0

    def __post_init__(self) -> None:
        if not (self.max_yaw_deg > 0 and self.max_pitch_deg > 0 and self.max_fit_error > 0 and self.max_roll_deg > 0):
            raise ValueError("FaceGates: max_yaw_deg, max_pitch_deg, max_fit_error and max_roll_deg must be > 0, "
                             f"got {self.max_yaw_deg}, {self.max_pitch_deg}, {self.max_fit_error}, {self.max_roll_deg}")
        if self.min_face_px < 0:
            raise ValueError(f"FaceGates: min_face_px must be >= 0, got {self.min_face_px}")


@dataclass(frozen=True)
class FaceRejection:
    """Why a face is not synthesised.

    Attributes:
        reason: short code: "face-too-small", "rotated-face", "extreme-pose" or "poor-fit".
        detail: one line with the measured value and the limit.
    """

    reason: str
    detail: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.detail}"


def check_face(fit: Any, gates: FaceGates) -> FaceRejection | None:
    """The first gate ``fit`` fails, or None when the face may be synthesised.

    Args:
        fit: an ``affectsynth.fitting.FaceFit`` (uses ``bbox``, ``pose_deg``,
            ``reprojection_error_px``, ``interocular_px``).
        gates: the limits.
    """
    x0, y0, x1, y1 = (float(v) for v in fit.bbox)
    if min(x1 - x0, y1 - y0) < gates.min_face_px:
        return FaceRejection("face-too-small", f"{x1 - x0:.0f}x{y1 - y0:.0f} px, under {gates.min_face_px:g} px")
    yaw, pitch, roll = fit.pose_deg
    if abs(roll) > gates.max_roll_deg:
        return FaceRejection("rotated-face", f"tilted {roll:.0f} deg in the image plane, beyond "
                                             f"{gates.max_roll_deg:g} deg (rotate the photo upright)")
    if abs(yaw) > gates.max_yaw_deg or abs(pitch) > gates.max_pitch_deg:
        return FaceRejection("extreme-pose", f"turned yaw {yaw:.0f}, pitch {pitch:.0f} deg, beyond "
                                             f"{gates.max_yaw_deg:g}/{gates.max_pitch_deg:g} deg")
    if fit.reprojection_error_px > gates.max_fit_error * max(fit.interocular_px, 1e-6):
        return FaceRejection("poor-fit", f"landmark error {fit.reprojection_error_px:.1f} px is over "
                                         f"{100 * gates.max_fit_error:g}% of the eye distance")
    return None
