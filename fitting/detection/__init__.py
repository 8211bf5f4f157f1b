"""affectsynth.fitting.detection: MediaPipe's face detector and face mesh, ported to torch.

`BlazeFace` (detector network + SSD decoding), `FaceMesh` (478-point landmark network with
attention), the crop and projection helpers, and `FacePipeline`, the photo-level steps that
`affectsynth.fitting.TorchFaceDetector` runs. Weights: `fitting/data/mediapipe_face_*.npz`.
"""

from affectsynth.fitting.detection.anchors import ssd_anchors
from affectsynth.fitting.detection.blazeface import BlazeFace, Detections
from affectsynth.fitting.detection.face_mesh import FaceMesh, unproject
from affectsynth.fitting.detection.graph import ConvGraph, load_graph, optimize_for_cpu
from affectsynth.fitting.detection.nms import box_iou, weighted_nms
from affectsynth.fitting.detection.pipeline import FacePipeline, FaceResult, PipelineSettings
from affectsynth.fitting.detection.roi import crop_rects, letterbox_rect, rect_from_detection

__all__ = [
    "BlazeFace",
    "ConvGraph",
    "Detections",
    "FaceMesh",
    "FacePipeline",
    "FaceResult",
    "PipelineSettings",
    "box_iou",
    "crop_rects",
    "letterbox_rect",
    "load_graph",
    "optimize_for_cpu",
    "rect_from_detection",
    "ssd_anchors",
    "unproject",
    "weighted_nms",
]
