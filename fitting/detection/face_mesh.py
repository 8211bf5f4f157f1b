"""MediaPipe's face landmark network with attention (478 points: 468 mesh + 10 iris), in torch.

`FaceMesh` runs the network on 192 x 192 face crops and assembles the 478 points the way
MediaPipe's `TensorsToFaceLandmarksWithAttention` graph does (refined lips and eyes overwrite the
mesh's x, y; iris points get the mean depth of their eye's contour). `unproject` maps crop points
back into the image through the crop's rect (MediaPipe `LandmarkProjectionCalculator`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from affectsynth.fitting.detection.blazeface import DATA_DIR
from affectsynth.fitting.detection.graph import load_graph, optimize_for_cpu

__all__ = ["FaceMesh", "unproject"]

INPUT_SIZE = 192

# Where the refined regions go in the 468-point mesh (MediaPipe's LandmarksRefinementCalculator).
_LIPS = [
    61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409,
    78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415,
    76, 77, 90, 180, 85, 16, 315, 404, 320, 307, 306, 184, 74, 73, 72, 11, 302, 303, 304, 408,
    62, 96, 89, 179, 86, 15, 316, 403, 319, 325, 292, 183, 42, 41, 38, 12, 268, 271, 272, 407,
]
_LEFT_EYE = [
    33, 7, 163, 144, 145, 153, 154, 155, 133, 246, 161, 160, 159, 158, 157, 173,
    130, 25, 110, 24, 23, 22, 26, 112, 243, 247, 30, 29, 27, 28, 56, 190,
    226, 31, 228, 229, 230, 231, 232, 233, 244, 113, 225, 224, 223, 222, 221, 189,
    35, 124, 46, 53, 52, 65, 143, 111, 117, 118, 119, 120, 121, 128, 245,
    156, 70, 63, 105, 66, 107, 55, 193,
]
_RIGHT_EYE = [
    263, 249, 390, 373, 374, 380, 381, 382, 362, 466, 388, 387, 386, 385, 384, 398,
    359, 255, 339, 254, 253, 252, 256, 341, 463, 467, 260, 259, 257, 258, 286, 414,
    446, 261, 448, 449, 450, 451, 452, 453, 464, 342, 445, 444, 443, 442, 441, 413,
    265, 353, 276, 283, 282, 295, 372, 340, 346, 347, 348, 349, 350, 357, 465,
    383, 300, 293, 334, 296, 336, 285, 417,
]
# The eye contours whose mean depth the iris points take.
_LEFT_EYE_DEPTH = _LEFT_EYE[:16]
_RIGHT_EYE_DEPTH = _RIGHT_EYE[:16]


class FaceMesh(nn.Module):
    """The 478-point face landmark network with its output assembly."""

    def __init__(self):
        super().__init__()
        self.net = load_graph(DATA_DIR / "mediapipe_face_landmark_with_attention.npz")
        for name, idx in (("lips", _LIPS), ("left_eye", _LEFT_EYE), ("right_eye", _RIGHT_EYE),
                          ("left_depth", _LEFT_EYE_DEPTH), ("right_depth", _RIGHT_EYE_DEPTH)):
            self.register_buffer(f"_{name}", torch.tensor(idx, dtype=torch.long), persistent=False)
        self._runner: nn.Module | None = None

    def optimize_for_cpu_(self) -> "FaceMesh":
        """Run the network through a traced, frozen CPU copy from now on (see `optimize_for_cpu`)."""
        self._runner = optimize_for_cpu(self.net, torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
        return self

    def forward(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """Landmarks of a batch of face crops.

        Args:
            crops: [B, 3, 192, 192] float32 RGB in [0, 1], faces upright (eyes level).

        Returns:
            (points [B, 478, 3] float32 in crop units: x, y in [0, 1] of the crop, z relative depth
            in crop widths (smaller is nearer); face presence [B] float32 in (0, 1)).
        """
        if crops.ndim != 4 or crops.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"FaceMesh: expected [B, 3, {INPUT_SIZE}, {INPUT_SIZE}] crops, got {list(crops.shape)}")
        net = self._runner if self._runner is not None and crops.device.type == "cpu" else self.net
        mesh, lips, left_eye, right_eye, left_iris, right_iris, flag = net(crops)
        b = crops.shape[0]
        pts = mesh.reshape(b, 468, 3).clone()
        for part, idx in ((lips, self._lips), (left_eye, self._left_eye), (right_eye, self._right_eye)):
            pts[:, idx, :2] = part.reshape(b, -1, 2)
        irises = []
        for iris, depth_idx in ((left_iris, self._left_depth), (right_iris, self._right_depth)):
            z = pts[:, depth_idx, 2].mean(1, keepdim=True)
            irises.append(torch.cat([iris.reshape(b, 5, 2), z[:, :, None].expand(b, 5, 1)], -1))
        pts = torch.cat([pts, *irises], 1) / INPUT_SIZE
        return pts, torch.sigmoid(flag.reshape(b))

    def coarse(self, crops: Tensor) -> tuple[Tensor, Tensor]:
        """The network's own 468 mesh points, without the attention refinement of the lips and eyes:
        the backbone alone, about half the cost of `forward` for one face (a third in fours).

        Args:
            crops: as in `forward`.

        Returns:
            (points [B, 468, 3] float32 in crop units as in `forward`, before the lips and eyes are
            refined: the refinement moves them by up to a few percent of the face; face presence [B]
            float32, as `forward` gives it).
        """
        if crops.ndim != 4 or crops.shape[1:] != (3, INPUT_SIZE, INPUT_SIZE):
            raise ValueError(f"FaceMesh: expected [B, 3, {INPUT_SIZE}, {INPUT_SIZE}] crops, got {list(crops.shape)}")
        if self._runner is not None and crops.device.type == "cpu":  # the traced network has all its outputs
            outs = self._runner(crops)
            mesh, flag = outs[0], outs[6]
        else:
            mesh, flag = self.net(crops, outputs=("output_mesh_identity", "conv_faceflag"))
        b = crops.shape[0]
        return mesh.reshape(b, 468, 3) / INPUT_SIZE, torch.sigmoid(flag.reshape(b))


def unproject(points: Tensor, rects: Tensor) -> Tensor:
    """Crop landmarks back to image pixels through the crops' rects.

    Args:
        points: [B, N, 3] float32 from `FaceMesh` (x, y in [0, 1] of the crop, z in crop widths).
        rects: [B, 5] float32 crop rects (x_centre, y_centre, side, side, rotation) in pixels.

    Returns:
        [B, N, 3] float32: x, y in image pixels (continuous coordinates), z in pixels.
    """
    dx, dy = points[..., 0] - 0.5, points[..., 1] - 0.5
    c, s = torch.cos(rects[:, 4, None]), torch.sin(rects[:, 4, None])
    x = (c * dx - s * dy) * rects[:, 2, None] + rects[:, 0, None]
    y = (s * dx + c * dy) * rects[:, 3, None] + rects[:, 1, None]
    z = points[..., 2] * rects[:, 2, None]
    return torch.stack([x, y, z], -1)
