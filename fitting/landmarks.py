"""Facial landmarks: the `Landmarks` boundary type and the detectors that produce it.

Coordinates are continuous pixel coordinates (OpenCV convention): the image's top-left corner is
(0, 0) and the centre of pixel (row i, column j) is (j + 0.5, i + 0.5), i.e. MediaPipe's normalised
points times the image size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:  # the torch pipeline is imported on first use
    from affectsynth.fitting.detection.pipeline import FaceCandidate, LocatedFace

__all__ = [
    "EYE_CORNERS",
    "box_overlap",
    "Landmarks",
    "LandmarkDetector",
    "MediaPipeDetector",
    "TorchFaceDetector",
    "detectors",
    "get_detector",
]


#: Outer eye corners (subject's right, subject's left) per layout: 300-W's inter-ocular distance.
EYE_CORNERS: dict[str, tuple[int, int]] = {"mediapipe468": (33, 263), "ibug68": (36, 45)}


@dataclass(frozen=True)
class Landmarks:
    """Landmarks of one face in one image.

    Attributes:
        points: [N, 2] float32 pixel coordinates (x, y), continuous image coordinates.
        kind: layout name: "mediapipe468" (MediaPipe face mesh order; 478 with iris points appended)
            or "ibug68" (iBUG / Multi-PIE 68-point order).
        bbox: (x0, y0, x1, y1) face box in pixels.
        depth: [N] float32 relative depth in pixels (MediaPipe's z times the image width), or None.
        score: detector confidence in [0, 1].
        detector: name of the detector that produced them.
        faces_found: how many faces the detector found in the photo (see
            `TorchFaceDetector.detect`), or None when unknown (user landmarks).
    """

    points: np.ndarray
    kind: str
    bbox: tuple[float, float, float, float]
    depth: np.ndarray | None = None
    score: float = 1.0
    detector: str = "user"
    faces_found: int | None = None

    def __post_init__(self) -> None:
        pts = np.asarray(self.points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 2:
            raise ValueError(f"Landmarks: points must be [N, 2], got {list(pts.shape)}")
        expected = {"mediapipe468": (468, 478), "ibug68": (68,)}
        if self.kind not in expected:
            raise ValueError(f"Landmarks: kind must be one of {sorted(expected)}, got {self.kind!r}")
        if pts.shape[0] not in expected[self.kind]:
            raise ValueError(f"Landmarks: kind {self.kind!r} needs {expected[self.kind]} points, got {pts.shape[0]}")
        if not np.isfinite(pts).all():
            raise ValueError("Landmarks: points contain NaN or inf")
        object.__setattr__(self, "points", pts)

    @classmethod
    def from_points(cls, points: np.ndarray, kind: str, **kwargs) -> "Landmarks":
        """User-supplied landmarks; the box is the points' bounding box."""
        pts = np.asarray(points, dtype=np.float32)
        box = (float(pts[:, 0].min()), float(pts[:, 1].min()), float(pts[:, 0].max()), float(pts[:, 1].max()))
        return cls(points=pts, kind=kind, bbox=kwargs.pop("bbox", box), **kwargs)

    @property
    def size(self) -> float:
        """Face size in pixels: the geometric mean of the box's width and height."""
        x0, y0, x1, y1 = self.bbox
        return float(np.sqrt(max(x1 - x0, 0.0) * max(y1 - y0, 0.0)))

    def eye_corners(self) -> tuple[np.ndarray, np.ndarray]:
        """Outer eye corners (subject's right, subject's left), as in 300-W's inter-ocular distance."""
        idx = EYE_CORNERS[self.kind]
        return self.points[idx[0]], self.points[idx[1]]

    @property
    def interocular(self) -> float:
        """Distance between the outer eye corners in pixels."""
        a, b = self.eye_corners()
        return float(np.linalg.norm(a - b))


class LandmarkDetector(Protocol):
    """Anything that finds faces and their landmarks in an RGB uint8 image [H, W, 3]."""

    name: str

    def detect(self, image: np.ndarray, *, max_faces: int | None = None) -> list[Landmarks]:
        """All faces in the image, largest first (at most ``max_faces`` of them when given)."""
        ...


@dataclass
class TorchFaceDetector:
    """MediaPipe's face detection and face mesh with iris (478 points), ported to torch.

    Faces are found by the full-range detector (small faces in group photos too), then each face crop
    (the box enlarged by `crop_scale`) goes through the face mesh. Where the detector finds nothing,
    the face mesh runs on the whole image as a fallback. The networks are MediaPipe's (Apache-2.0),
    converted once to `fitting/data/mediapipe_face_*.npz` (see `scripts/convert_mediapipe_models.py`);
    neither mediapipe nor a TFLite interpreter is needed. `detect_batch` runs each network once for a
    whole list of photos. Torch's thread setting is the caller's.

    Only the faces that can be among the ``max_faces`` largest go through the face mesh: the
    largest boxes are located (the detection inside their crops), the largest located face is
    meshed, then the faces that could still give a larger landmark box (bounds
    `BOX_TO_LANDMARK_AREA_MAX`, `LOCATED_TO_LANDMARK_AREA_MAX`, the located keypoints'
    `KEYPOINT_AREA_EXPONENTS`) go through the landmark network's backbone alone (a coarse mesh, about
    half the cost), and those it does not rule out (`REFINED_TO_COARSE_AREA_MAX`) through the
    whole mesh: ``detect(image, max_faces=1)`` meshes one face in full on every dev photo (and a
    few coarse), where ``detect(image)`` meshes every face of a group photo, and returns the same
    face.

    Args:
        max_faces: at most this many faces (largest kept).
        min_confidence: detection score threshold (MediaPipe's own floors, 0.6 for the full-range
            and 0.5 for the short-range detector, still apply).
        crop_scale: face box enlargement for the mesh crop.
        min_face_px: faces smaller than this (box side, pixels) are ignored: too small to fit.
        tile_min_side: photos whose longer side is at least this many pixels are also searched in
            overlapping 2x2 and 3x3 tiles with the short-range detector, which finds the medium-size
            faces of group photos that the full-range detector misses at its 192 px input.
        device: where the networks run ("cpu", "cuda").
        optimize: on the CPU, trace and freeze the networks on first use (about 2x faster calls
            after a one-time cost of several seconds; for many photos, e.g. a dataloader).
    """

    max_faces: int = 32
    min_confidence: float = 0.5
    crop_scale: float = 1.8
    min_face_px: float = 24.0
    tile_min_side: int = 1000
    device: str = "cpu"
    optimize: bool = False
    name: str = field(default="mediapipe", init=False)

    def __post_init__(self) -> None:
        if self.max_faces < 1:
            raise ValueError(f"TorchFaceDetector: max_faces must be >= 1, got {self.max_faces}")
        self._settings()  # validates the rest now, not on first use
        self._pipeline = None

    def _settings(self):
        from affectsynth.fitting.detection.pipeline import PipelineSettings

        return PipelineSettings(max_faces=self.max_faces, min_confidence=self.min_confidence, crop_scale=self.crop_scale,
                                min_face_px=self.min_face_px, tile_min_side=self.tile_min_side, optimize=self.optimize)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_pipeline"] = None  # rebuilt lazily in the new process
        return state

    def _ensure(self):
        if self._pipeline is None:
            from affectsynth.fitting.detection.pipeline import FacePipeline  # torch networks: built on first use

            self._pipeline = FacePipeline(self._settings(), device=self.device)
        return self._pipeline

    def detect(self, image: np.ndarray, *, max_faces: int | None = None) -> list[Landmarks]:
        """Detect faces and their 478 landmarks.

        Args:
            image: [H, W, 3] uint8 RGB.
            max_faces: at most this many faces (the largest; at most the detector's own
                `max_faces`): the face mesh runs only on faces that can be among them.

        Returns:
            One `Landmarks` (kind "mediapipe468", 478 points) per face, largest first. Their
            ``faces_found`` is the number of faces the detectors found in the photo (boxes of at
            least `min_face_px`, before the face mesh confirms them; the faces of the whole-photo
            fallback where they found none): the same whatever ``max_faces``.

        Raises:
            ValueError: not an [H, W, 3] uint8 array, or an empty (0-pixel) image.
        """
        return self.detect_batch([image], max_faces=max_faces)[0]

    def detect_batch(self, images: Sequence[np.ndarray], *, max_faces: int | None = None) -> list[list[Landmarks]]:
        """`detect` for many photos at once: each network runs once per round for all of them.

        Args:
            images: photos [H, W, 3] uint8 RGB; sizes may differ.
            max_faces: as in `detect`.

        Returns:
            Per photo, its faces as `detect` returns them.

        Raises:
            ValueError: a photo is not an [H, W, 3] uint8 array, or is empty.
        """
        for k, image in enumerate(images):
            if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                got = getattr(image, "shape", type(image).__name__)
                raise ValueError(f"TorchFaceDetector.detect: image {k}: expected an [H, W, 3] uint8 RGB array, got {got}")
            if image.shape[0] == 0 or image.shape[1] == 0:
                raise ValueError(f"TorchFaceDetector.detect: image {k} is empty ({image.shape[0]} x {image.shape[1]} pixels)")
        # a photo under 2 px on a side holds no face (and cannot be resampled): no detection to run
        usable = [k for k, im in enumerate(images) if min(im.shape[:2]) >= 2]
        if not usable:
            return [[] for _ in images]
        limit = self.max_faces if max_faces is None else min(max_faces, self.max_faces)
        if limit < 1:
            raise ValueError(f"TorchFaceDetector.detect: max_faces must be >= 1, got {max_faces}")
        out: list[list[Landmarks]] = [[] for _ in images]
        for k, faces in zip(usable, self._largest_faces([images[k] for k in usable], limit)):
            out[k] = _ranked(faces)[:limit]
        return out

    def _largest_faces(self, images: list[np.ndarray], limit: int) -> list[list[Landmarks]]:
        """Per photo, the faces meshed to know its ``limit`` largest (not yet deduplicated or
        sorted), or those of the whole-photo face mesh where no box gave a face."""
        pipe = self._ensure()
        tensors = pipe.tensors(images)
        searches = [_LargestFaces(cs, limit) for cs in pipe.candidates(tensors)]
        while True:  # rounds: every photo's next candidates in one batch per network
            new = [(i, j) for i, search in enumerate(searches) for j in search.pending() if j not in search.located]
            if new:
                for (i, j), located in zip(new, pipe.locate(tensors, [(i, searches[i].candidates[j]) for i, j in new])):
                    searches[i].locate(j, located)
            coarse = [(i, j) for i, search in enumerate(searches) for j in search.to_coarse()]
            if coarse:
                points = pipe.mesh_coarse(tensors, [(i, searches[i].candidates[j], searches[i].located[j]) for i, j in coarse])
                for (i, j), pts in zip(coarse, points):
                    searches[i].coarse[j] = float(np.ptp(pts[:, 0])) * float(np.ptp(pts[:, 1]))
            picks = [(i, j) for i, search in enumerate(searches) for j in search.to_mesh()]
            if not new and not coarse and not picks:
                break
            if picks:
                meshed = pipe.mesh_located(tensors, [(i, searches[i].candidates[j], searches[i].located[j]) for i, j in picks])
                for (i, j), face in zip(picks, meshed):
                    searches[i].meshed[j] = None if face is None else self._make(
                        face.points, face.depth, face.score, len(searches[i].candidates))
        found = [search.faces() for search in searches]
        empty = [i for i, faces in enumerate(found) if not faces]
        if empty:  # whole-photo face mesh where the detectors found nothing
            for i, faces in zip(empty, pipe.whole_photo([tensors[i] for i in empty])):
                found[i] = [self._make(f.points, f.depth, f.score, len(faces)) for f in faces]
        return found

    def _make(self, pts: np.ndarray, depth: np.ndarray, score: float, faces_found: int) -> Landmarks:
        face = pts[:468]
        box = (float(face[:, 0].min()), float(face[:, 1].min()), float(face[:, 0].max()), float(face[:, 1].max()))
        return Landmarks(points=pts, kind="mediapipe468", bbox=box, depth=depth, score=score, detector=self.name,
                         faces_found=faces_found)

    def close(self) -> None:
        """Release the networks (they are rebuilt on the next call)."""
        self._pipeline = None


#: The historical name: the detector that gives MediaPipe's 478 landmarks.
MediaPipeDetector = TorchFaceDetector


#: Largest ratios of a face's landmark-box area to its detector-box area (photo detectors; the
#: short-range detection inside its crop) that `TorchFaceDetector` allows for when it meshes only
#: the faces that can be among the largest. Measured on the 55 faces of the dev photos: 0.22-1.32
#: (log std 0.25) for the photo's box, 0.75-1.19 (log std 0.095) for the located box; the bounds
#: are about 3 and 4 log std above the mean.
BOX_TO_LANDMARK_AREA_MAX = 2.0
LOCATED_TO_LANDMARK_AREA_MAX = 1.5

#: Largest ratio of a face's landmark-box area to that of its coarse mesh (`FacePipeline.mesh_coarse`:
#: the lips and eyes not yet refined), that `TorchFaceDetector` allows for. The refinement moves them
#: by up to 7% of the face's size, and beyond the rest of the mesh's box on some faces: on the 66
#: faces of the dev photos, meshed alone and in batches, the ratio is 0.994-1.013 (log std 0.002);
#: the bound is about four times the largest excess seen.
REFINED_TO_COARSE_AREA_MAX = 1.05

#: A tighter bound of a located face's landmark-box area from its detector keypoints as well
#: (`_located_area_max`). With A the located box's area, E and Y the squared distances between its
#: two ear tragions and its two eyes: log(landmark area / A) = 1.66 log(E / A) - 0.89 log(Y / A)
#: - 1.07 + residual (scale-free; a face turned aside has a narrower landmark box than its square
#: detector box, and its ears come closer faster than its eyes). Least squares on the 66 faces of
#: the dev photos: residual log std 0.050 (leave-one-out 0.053, against 0.095 for A alone), largest
#: residual 0.094; the bound's offset is 4 leave-one-out std above the fit's (-1.07 + 0.21).
KEYPOINT_AREA_EXPONENTS = (1.66, -0.89)
KEYPOINT_AREA_OFFSET = -0.858
#: The ranges of log(E / A) and log(Y / A) the fit saw (dev photos: -0.75..-0.03, -2.46..-1.46);
#: outside them only `LOCATED_TO_LANDMARK_AREA_MAX` bounds the face.
KEYPOINT_FIT_RANGES = ((-0.76, -0.02), (-2.47, -1.45))

#: The first round locates (`FacePipeline.locate`) at least this many of the largest boxes: the
#: located box tells the largest face far better than the photo's, and locating is cheap next to
#: the landmark network (CPU, one thread: about 2.3 ms per face, against 8 ms for one face and
#: 4 ms per face in fours), so the first mesh is nearly always the largest face's and rules out
#: the others.
FIRST_LOCATED = 8

#: Boxes of one face seen twice overlap at least this much (intersection over union).
DUPLICATE_IOU = 0.5


def _dedupe(faces: Sequence[Landmarks], iou_threshold: float = DUPLICATE_IOU) -> list[Landmarks]:
    """Drop faces whose box overlaps a higher-scoring face's box (one face seen twice)."""
    kept: list[Landmarks] = []
    for f in sorted(faces, key=lambda f: -f.score):
        if all(box_overlap(f.bbox, k.bbox) < iou_threshold for k in kept):
            kept.append(f)
    return kept


def _ranked(faces: Sequence[Landmarks]) -> list[Landmarks]:
    """The faces of one photo as `detect` returns them: duplicates dropped, largest first."""
    return sorted(_dedupe(faces), key=lambda f: -f.size)


class _LargestFaces:
    """One photo's search for its ``limit`` largest faces: the candidates (`FaceCandidate`, highest
    score first) located (`FacePipeline.locate`) and meshed so far, and which to do next."""

    def __init__(self, candidates: Sequence[FaceCandidate], limit: int):
        self.candidates = list(candidates)
        self.limit = limit
        self.located: dict[int, LocatedFace | None] = {}  # None: no face in the candidate's crop
        self.meshed: dict[int, Landmarks | None] = {}  # None: no face, or one the presence check refused
        self.coarse: dict[int, float] = {}  # landmark-box area of the coarse mesh (`FacePipeline.mesh_coarse`)

    def locate(self, j: int, located: LocatedFace | None) -> None:
        """Record candidate ``j``'s located face (None: no face, it needs no mesh)."""
        self.located[j] = located
        if located is None:
            self.meshed[j] = None

    def to_coarse(self) -> list[int]:
        """Once ``limit`` faces are known, the pending located candidates that could still matter only
        by their size and have no coarse mesh yet: a coarse mesh (`FacePipeline.mesh_coarse`, about
        half a mesh) bounds their landmark box to within `REFINED_TO_COARSE_AREA_MAX`, which rules
        out nearly all of them; the others are meshed next (`to_mesh`)."""
        known = self._known()
        if known is None:
            return []
        return [j for j in self.pending()
                if self.located.get(j) is not None and j not in self.coarse and not self._guarded(j, known[1])]

    def to_mesh(self) -> list[int]:
        """The next candidates to mesh: while fewer than ``limit`` faces are known, the pending located
        ones with the largest located boxes, as many as faces are missing; then every pending located
        one that its coarse mesh did not rule out (or that may be a duplicate, see `pending`), in one
        batch (a face-mesh call of one face costs about two of a batch of four)."""
        located = [j for j in self.pending() if self.located.get(j) is not None]
        known = self._known()
        if known is None:
            missing = self.limit - len(_ranked(self.faces())[: self.limit])
            return sorted(located, key=lambda j: -self.located[j].area)[:missing]
        return [j for j in located if j in self.coarse or self._guarded(j, known[1])]

    def faces(self) -> list[Landmarks]:
        """The faces meshed so far, in candidate order (as the fully meshed photo lists them)."""
        return [f for _, f in sorted(self.meshed.items()) if f is not None]

    def pending(self) -> list[int]:
        """Candidates still to locate or mesh so that the ``limit`` largest faces are those of the
        fully meshed photo: first the `FIRST_LOCATED` (at least ``limit``) largest boxes; then
        every box left while fewer faces were found; else every one whose landmark box could be
        larger than the smallest of the ``limit`` largest faces so far (`_area_max`), or that has at
        least the score of such a face (or of the face that removed a duplicate of one) and a crop
        that touches it: as a duplicate `_dedupe` would keep it instead.
        """
        rest = [j for j in range(len(self.candidates)) if j not in self.meshed]
        if not self.located:
            return sorted(rest, key=lambda j: -self.candidates[j].area)[: max(self.limit, FIRST_LOCATED)]
        known = self._known()
        if known is None:
            return rest
        smallest, guarded = known
        return [j for j in rest if self._area_max(j) > smallest or self._guarded(j, guarded)]

    def _known(self) -> tuple[float, list[Landmarks]] | None:
        """Once ``limit`` faces are meshed: the landmark-box area of the smallest of the ``limit``
        largest, and the faces whose duplicates must be meshed (those, and the faces `_dedupe`
        keeps in place of a duplicate of one); None before."""
        faces = self.faces()
        top = _ranked(faces)[: self.limit]
        if len(top) < self.limit:
            return None
        smallest = top[-1].size ** 2
        return smallest, top + _removers(faces, smallest)

    def _area_max(self, j: int) -> float:
        """Upper bound of candidate ``j``'s landmark-box area (square pixels), the tightest known:
        `REFINED_TO_COARSE_AREA_MAX` x its coarse mesh's box, `_located_area_max` of its located face,
        or `BOX_TO_LANDMARK_AREA_MAX` x its detector box before it is located."""
        if j in self.coarse:
            return self.coarse[j] * REFINED_TO_COARSE_AREA_MAX
        located = self.located.get(j)
        return _located_area_max(located) if located else self.candidates[j].area * BOX_TO_LANDMARK_AREA_MAX

    def _guarded(self, j: int, guarded: Sequence[Landmarks]) -> bool:
        """Whether candidate ``j`` may be a duplicate that `_dedupe` keeps instead of one of ``guarded``:
        at least its score, and a crop that touches its box."""
        c = self.candidates[j]
        return any(c.score >= g.score and box_overlap(c.crop, g.bbox) > 0 for g in guarded)


def _located_area_max(located: LocatedFace) -> float:
    """Upper bound of a located face's landmark-box area (square pixels): `LOCATED_TO_LANDMARK_AREA_MAX`
    x its located box's area, or the keypoint bound (`KEYPOINT_AREA_EXPONENTS`) where lower and its
    keypoint ratios lie inside the ranges it was fitted on (`KEYPOINT_FIT_RANGES`)."""
    area = located.area
    bound = area * LOCATED_TO_LANDMARK_AREA_MAX
    kp = located.keypoints
    if kp is None or not area > 0:
        return bound
    kp = kp.astype(np.float64)
    ratios = [float(((kp[i] - kp[j]) ** 2).sum()) / area for i, j in ((5, 4), (1, 0))]  # ears, eyes
    if not all(r > 0 for r in ratios):
        return bound
    logs = [float(np.log(r)) for r in ratios]
    if not all(lo <= v <= hi for v, (lo, hi) in zip(logs, KEYPOINT_FIT_RANGES)):
        return bound
    exponent = KEYPOINT_AREA_OFFSET + sum(a * v for a, v in zip(KEYPOINT_AREA_EXPONENTS, logs))
    return min(bound, area * float(np.exp(exponent)))


def _removers(faces: Sequence[Landmarks], min_area: float) -> list[Landmarks]:
    """The faces that `_dedupe` keeps in place of a duplicate of at least ``min_area`` square pixels
    (were they removed in turn, that duplicate would come back)."""
    kept = _dedupe(faces)
    dropped = [f for f in faces if f.size ** 2 >= min_area and not any(f is k for k in kept)]
    return [k for k in kept if any(k.score >= d.score and box_overlap(k.bbox, d.bbox) >= DUPLICATE_IOU for d in dropped)]


#: Registry of detector factories (plain dict, as trimesh's loaders).
detectors: dict[str, type] = {"mediapipe": TorchFaceDetector, "torch": TorchFaceDetector}


def get_detector(name: str = "mediapipe", **kwargs) -> LandmarkDetector:
    """Build a detector by name (see `detectors`)."""
    if name not in detectors:
        raise ValueError(f"get_detector: expected one of {sorted(detectors)}, got {name!r}")
    return detectors[name](**kwargs)


def box_overlap(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1, ...) boxes given as plain numbers."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
