"""BlazeFace, MediaPipe's face detector (short range 128 px, full range 192 px), batched in torch.

`BlazeFace` is the network plus its SSD decoding; `BlazeFace.detect` adds MediaPipe's letterbox
input, score threshold, weighted NMS and the projection back to image pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from affectsynth.fitting.detection.anchors import ssd_anchors
from affectsynth.fitting.detection.graph import empty_input, load_graph, optimize_for_cpu
from affectsynth.fitting.detection.nms import weighted_nms
from affectsynth.fitting.detection.roi import crop_rects, letterbox_rect

__all__ = ["BlazeFace", "Detections", "DATA_DIR"]

DATA_DIR = Path(__file__).resolve().parents[1] / "data"

#: MediaPipe's graph constants per model: file, input side, anchor strides, interpolated anchors.
_CONFIGS = {
    "short": ("mediapipe_face_detection_short_range.npz", 128, (8, 16, 16, 16), 1.0),
    "full": ("mediapipe_face_detection_full_range.npz", 192, (4,), 0.0),
}


@dataclass(frozen=True)
class Detections:
    """Faces found in one image.

    Attributes:
        boxes: [M, 4] float32 (x0, y0, x1, y1) in image pixels.
        keypoints: [M, 6, 2] float32 in image pixels: subject's right eye, left eye, nose tip,
            mouth centre, right ear tragion, left ear tragion.
        scores: [M] float32 in (0, 1), descending.
    """

    boxes: Tensor
    keypoints: Tensor
    scores: Tensor


class BlazeFace(nn.Module):
    """MediaPipe's BlazeFace detector network with its anchors.

    Args:
        kind: "short" (128 px input, faces within about 2 m) or "full" (192 px, small faces too).
    """

    def __init__(self, kind: str = "full"):
        super().__init__()
        if kind not in _CONFIGS:
            raise ValueError(f"BlazeFace: kind must be one of {sorted(_CONFIGS)}, got {kind!r}")
        file, self.input_size, strides, interp = _CONFIGS[kind]
        self.kind = kind
        self.net = load_graph(DATA_DIR / file)
        self.register_buffer("anchors", ssd_anchors(self.input_size, strides, interpolated_scale_aspect_ratio=interp),
                             persistent=False)
        self._runner: nn.Module | None = None

    def optimize_for_cpu_(self) -> "BlazeFace":
        """Run the network through a traced, frozen CPU copy from now on (see `optimize_for_cpu`)."""
        self._runner = optimize_for_cpu(self.net, torch.zeros(1, 3, self.input_size, self.input_size))
        return self

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Decode every anchor's box, keypoints and score.

        Args:
            x: [B, 3, S, S] float32 letterboxed images in [-1, 1], S = `input_size`.

        Returns:
            (boxes [B, N, 16] float32: x0, y0, x1, y1, then 6 keypoints (x, y), normalised to
            the input square; scores [B, N] float32 sigmoid scores).
        """
        raw, logits = self._raw(x)
        return _decode(raw, self.anchors, self.input_size), _scores(logits)

    def _raw(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The network's raw regressors [B, N, 16] and score logits [B, N, 1] on checked input."""
        s = self.input_size
        if x.ndim != 4 or x.shape[1:] != (3, s, s):
            raise ValueError(f"BlazeFace: expected [B, 3, {s}, {s}] input, got {list(x.shape)}")
        net = self._runner if self._runner is not None and x.device.type == "cpu" else self.net
        raw, logits = net(x)[:2]
        return raw, logits

    @torch.no_grad()
    def detect(self, images: list[Tensor], *, min_score: float = 0.5, iou_threshold: float = 0.3,
               max_detections: int | None = None) -> list[Detections]:
        """Find faces in a list of images, one network call for all of them.

        Args:
            images: B images [3, H, W] RGB, uint8 or float holding 0..255 (sizes may differ), all on
                this module's device.
            min_score: score threshold (MediaPipe's `min_detection_confidence`).
            iou_threshold: weighted-NMS overlap.
            max_detections: at most this many per image, the best (the first ones of the full
                result, to the bit; weighted NMS stops there); None: all.

        Returns:
            One `Detections` per image, in pixels of that image.
        """
        if not images:
            return []
        dev = self.anchors.device
        rects = [letterbox_rect(im.shape[1], im.shape[2]).to(dev) for im in images]
        batch = torch.cat([crop_rects(im, r[None], self.input_size, border="zero") for im, r in zip(images, rects)])
        x = empty_input(batch).copy_(batch).div_(127.5).sub_(1.0)  # scaled in the network's layout (one copy to it)
        raw, logits = self._raw(x)
        scores = _scores(logits)
        # only the anchors above the threshold are decoded, those of all images at once (elementwise:
        # the rows `forward` gives), in image then anchor order
        image_of, anchor = torch.nonzero(scores >= min_score, as_tuple=True)
        decoded = _decode(raw[image_of, anchor], self.anchors.index_select(0, anchor), self.input_size)
        counts = torch.bincount(image_of, minlength=len(images)).tolist()
        out = []
        for rect, boxes_b, scores_b in zip(rects, decoded.split(counts), scores[image_of, anchor].split(counts)):
            kb, ks = weighted_nms(boxes_b, scores_b, iou_threshold=iou_threshold, max_detections=max_detections)
            side = rect[2]
            origin = rect[:2] - side / 2
            pix = kb.reshape(-1, 8, 2) * side + origin
            out.append(Detections(pix[:, :2].reshape(-1, 4), pix[:, 2:], ks))
        return out


def _decode(raw: Tensor, anchors: Tensor, size: int) -> Tensor:
    """Boxes and keypoints [..., N, 16] (x0, y0, x1, y1, then 6 keypoints (x, y), normalised to the
    input square) from raw regressors [..., N, 16] and their anchors [N, 2]; elementwise per row."""
    a = anchors.to(raw.dtype)
    centre = raw[..., 0:2] / size + a
    half = raw[..., 2:4] / size / 2
    kps = raw[..., 4:16].reshape(*raw.shape[:-1], 6, 2) / size + a[:, None]
    return torch.cat([centre - half, centre + half, kps.flatten(-2)], -1)


def _scores(logits: Tensor) -> Tensor:
    """[B, N] sigmoid scores of [B, N, 1] logits (clamped as MediaPipe's score clipping)."""
    return torch.sigmoid(logits[..., 0].clamp(-100.0, 100.0))
