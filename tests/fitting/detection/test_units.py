"""The port's parts: anchors, weighted NMS, rects and crops, the attention ops, the graph's layers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from affectsynth.fitting.detection.anchors import ssd_anchors
from affectsynth.fitting.detection.blazeface import BlazeFace
from affectsynth.fitting.detection.face_mesh import FaceMesh, unproject
from affectsynth.fitting.detection.graph import _depth_to_space, _resize_bilinear, _same_pad, load_graph
from affectsynth.fitting.detection.nms import box_iou, weighted_nms
from affectsynth.fitting.detection.roi import crop_rects, letterbox_rect, rect_from_detection
from affectsynth.fitting.detection.tflite_ops import LandmarksToMatrix, TransformLandmarks, TransformTensorBilinear


def test_anchors():
    a = ssd_anchors(128, (8, 16, 16, 16))
    assert a.shape == (896, 2)
    # stride 8: 16 x 16 cells, 2 anchors each, row-major; first centre (0.5 / 16, 0.5 / 16)
    torch.testing.assert_close(a[0], torch.tensor([1 / 32, 1 / 32]))
    torch.testing.assert_close(a[1], a[0])
    torch.testing.assert_close(a[2], torch.tensor([3 / 32, 1 / 32]))
    # stride 16: 8 x 8 cells, 6 anchors each
    torch.testing.assert_close(a[512], torch.tensor([1 / 16, 1 / 16]))
    torch.testing.assert_close(a[517], a[512])
    torch.testing.assert_close(a[518], torch.tensor([3 / 16, 1 / 16]))
    f = ssd_anchors(192, (4,), interpolated_scale_aspect_ratio=0.0)
    assert f.shape == (2304, 2) and float(f.max()) < 1 and float(f.min()) > 0
    with pytest.raises(ValueError, match="stride"):
        ssd_anchors(128, ())


def test_weighted_nms():
    boxes = torch.tensor([[0, 0, 10, 10, 1, 1], [1, 0, 11, 10, 2, 2], [50, 50, 60, 60, 5, 5], [0, 0, 10, 10, 3, 3]], dtype=torch.float32)
    scores = torch.tensor([0.9, 0.6, 0.8, 0.3])
    out, s = weighted_nms(boxes, scores)
    assert out.shape == (2, 6)
    torch.testing.assert_close(s, torch.tensor([0.9, 0.8]))
    w = torch.tensor([0.9, 0.6, 0.3])
    torch.testing.assert_close(out[0], (boxes[[0, 1, 3]] * w[:, None]).sum(0) / w.sum())
    torch.testing.assert_close(out[1], boxes[2])
    e, es = weighted_nms(boxes[:0], scores[:0])
    assert e.shape == (0, 6) and es.shape == (0,)
    iou = box_iou(boxes[:2, :4], boxes[:2, :4])
    torch.testing.assert_close(iou.diagonal(), torch.ones(2))
    assert abs(float(iou[0, 1]) - 90 / 110) < 1e-6


def _weighted_nms_in_torch(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> tuple[torch.Tensor, torch.Tensor]:
    """`weighted_nms` as first written: torch operations, one best box at a time."""
    order = torch.argsort(scores, descending=True, stable=True)
    boxes, scores = boxes[order], scores[order]
    kept_boxes, kept_scores = [], []
    remaining = torch.arange(len(scores))
    while remaining.numel():
        top = remaining[0]
        absorbed = box_iou(boxes[top, None, :4], boxes[remaining, :4])[0] > iou_threshold
        absorbed[0] = True
        members = remaining[absorbed]
        w = scores[members, None]
        kept_boxes.append((boxes[members] * w).sum(0) / w.sum())
        kept_scores.append(scores[top])
        remaining = remaining[~absorbed]
    if not kept_boxes:
        return boxes.new_zeros((0, boxes.shape[1])), scores.new_zeros((0,))
    return torch.stack(kept_boxes), torch.stack(kept_scores)


def test_weighted_nms_matches_the_torch_loop():
    """The numpy grouping and batched means give the torch loop's boxes and scores to the bit."""
    g = torch.Generator().manual_seed(2)
    for _ in range(200):
        n = int(torch.randint(0, 60, (1,), generator=g))
        centre, half = torch.rand(n, 2, generator=g) * 3, torch.rand(n, 2, generator=g) * 0.5 + 0.05
        boxes = torch.cat([centre - half, centre + half, torch.rand(n, 12, generator=g)], 1)
        scores = torch.rand(n, generator=g)
        scores[: n // 4] = scores[n // 4: 2 * (n // 4)]  # ties keep their order
        for threshold in (0.3, 0.0):
            new, ref = weighted_nms(boxes, scores, iou_threshold=threshold), _weighted_nms_in_torch(boxes, scores, threshold)
            assert torch.equal(new[0], ref[0]) and torch.equal(new[1], ref[1])
            for limit in (1, 3):  # stopping early gives the first detections of the full result, to the bit
                first = weighted_nms(boxes, scores, iou_threshold=threshold, max_detections=limit)
                assert torch.equal(first[0], ref[0][:limit]) and torch.equal(first[1], ref[1][:limit])


def test_rects_and_crops():
    r = letterbox_rect(300, 500)
    torch.testing.assert_close(r, torch.tensor([250.0, 150.0, 500.0, 500.0, 0.0]))
    boxes = torch.tensor([[10.0, 20.0, 50.0, 80.0]])
    level = rect_from_detection(boxes, torch.tensor([[[20.0, 40.0], [40.0, 40.0]]]))
    torch.testing.assert_close(level, torch.tensor([[30.0, 50.0, 90.0, 90.0, 0.0]]))
    tilted = rect_from_detection(boxes, torch.tensor([[[20.0, 40.0], [40.0, 60.0]]]))  # left eye lower: head tilted
    assert abs(float(tilted[0, 4]) - math.pi / 4) < 1e-6
    # a crop of a gradient image at scale 1 reproduces the pixels; border modes differ outside
    img = torch.arange(64, dtype=torch.float32).reshape(8, 8).expand(3, 8, 8).clone()
    crop = crop_rects(img, torch.tensor([[4.0, 4.0, 8.0, 8.0, 0.0]]), 8)
    torch.testing.assert_close(crop[0], img)
    out = torch.tensor([[0.0, 0.0, 8.0, 8.0, 0.0]])
    assert float(crop_rects(img, out, 8, border="zero")[0, 0, 0, 0]) == 0.0
    assert float(crop_rects(img, out, 8, border="replicate")[0, 0, 0, 0]) == 0.0 + img[0, 0, 0]
    assert float(crop_rects(img, out, 8, border="zero")[0, 0, 7, 7]) == float(img[0, 3, 3])
    with pytest.raises(ValueError, match="border"):
        crop_rects(img, out, 8, border="wrap")
    with pytest.raises(ValueError, match=r"\[3, H, W\]"):
        crop_rects(img[0], out, 8)


def _crop_rects_per_pixel(image: torch.Tensor, rects: torch.Tensor, size: int, border: str) -> torch.Tensor:
    """`crop_rects` as first written: the float64 sample point of every output pixel on its own."""
    h, w = image.shape[1:]
    t = torch.arange(size, dtype=torch.float64) / size - 0.5
    local_y, local_x = torch.meshgrid(t, t, indexing="ij")
    r = rects.to(torch.float64)
    c, s = torch.cos(r[:, 4]), torch.sin(r[:, 4])
    lx, ly = local_x[None] * r[:, 2, None, None], local_y[None] * r[:, 3, None, None]
    x = c[:, None, None] * lx - s[:, None, None] * ly + r[:, 0, None, None]
    y = s[:, None, None] * lx + c[:, None, None] * ly + r[:, 1, None, None]
    x, y = torch.round(x * 32) / 32, torch.round(y * 32) / 32
    grid = torch.stack([x * (2.0 / max(w - 1, 1)) - 1.0, y * (2.0 / max(h - 1, 1)) - 1.0], -1).to(torch.float32)
    src = image.to(torch.float32)[None].expand(len(rects), -1, -1, -1)
    out = torch.nn.functional.grid_sample(src, grid, mode="bilinear", padding_mode="border" if border == "replicate" else "zeros",
                                          align_corners=True)
    return torch.round(out).clamp(0, 255)


@pytest.mark.parametrize("rotated", [False, True])
def test_crop_rects_match_the_per_pixel_sample_points(rotated):
    """The separable grid of `crop_rects` gives the same crops, to the bit, as every pixel's own sample point."""
    g = torch.Generator().manual_seed(1)
    for k in range(40):
        h, w = (int(v) for v in torch.randint(2, 200, (2,), generator=g))
        img = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
        rects = torch.rand(3, 5, generator=g)
        rects[:, 0] *= w
        rects[:, 1] *= h
        rects[:, 2:4] = rects[:, 2:4] * 250 + 0.5
        rects[:, 4] = (rects[:, 4] - 0.5) * 2 * math.pi if rotated else (-0.0 if k % 2 else 0.0)
        size = (8, 37, 128)[k % 3]
        for border in ("zero", "replicate"):
            assert torch.equal(crop_rects(img, rects, size, border=border), _crop_rects_per_pixel(img, rects, size, border))


def test_unproject_inverts_the_crop_mapping():
    rect = torch.tensor([[100.0, 80.0, 60.0, 60.0, 0.3]])
    pts = torch.tensor([[[0.5, 0.5, 0.1], [0.0, 0.5, 0.0], [1.0, 1.0, 0.0]]])
    out = unproject(pts, rect)[0]
    torch.testing.assert_close(out[0], torch.tensor([100.0, 80.0, 6.0]))
    c, s = math.cos(0.3), math.sin(0.3)
    torch.testing.assert_close(out[1, :2], torch.tensor([100 - 30 * c, 80 - 30 * s]))
    torch.testing.assert_close(out[2, :2], torch.tensor([100 + 30 * (c - s), 80 + 30 * (s + c)]))


def test_attention_ops():
    pts = torch.tensor([[[0.0, 0.0, 0.0], [4.0, 0.0, 0.0], [4.0, 2.0, 0.0], [0.0, 2.0, 0.0]]])
    m = LandmarksToMatrix([0, 1, 2, 3], 0, 1, 0.0, (2, 4), (1.0, 1.0))(pts)
    # crop pixel (0, 0) -> box corner, (4, 2) -> opposite corner; unit scale (box 4 x 2 on a 4 x 2 crop)
    p = TransformLandmarks()(torch.tensor([[[0.0, 0.0], [4.0, 2.0]]]), m)
    torch.testing.assert_close(p[0], torch.tensor([[0.0, 0.0], [4.0, 2.0]]))
    feat = torch.arange(24, dtype=torch.float32).reshape(1, 1, 4, 6)
    crop = TransformTensorBilinear((2, 4))(feat, m)
    # pixel centres: crop (u, v) samples feature (u + 0.5 - 0.5, v) = feature pixel (u, v)
    torch.testing.assert_close(crop[0, 0], feat[0, 0, :2, :4])
    far = m.clone()
    far[:, 0, 3] = 100.0
    assert float(TransformTensorBilinear((2, 4))(feat, far).abs().max()) == 0.0


def test_graph_layers():
    assert _same_pad(96, 3, 2, 1) == (0, 1) and _same_pad(96, 3, 1, 1) == (1, 1)
    x = torch.arange(8, dtype=torch.float32).reshape(1, 8, 1, 1)
    y = _depth_to_space(x, 2)  # TF order: channel (i * 2 + j) * C + c
    torch.testing.assert_close(y[0, 0], torch.tensor([[0.0, 2.0], [4.0, 6.0]]))
    torch.testing.assert_close(y[0, 1], torch.tensor([[1.0, 3.0], [5.0, 7.0]]))
    z = _resize_bilinear(torch.tensor([[[[0.0, 2.0]]]]), [1, 4], False, False)
    torch.testing.assert_close(z, torch.tensor([[[[0.0, 1.0, 2.0, 2.0]]]]))
    with pytest.raises(FileNotFoundError, match="no model file"):
        load_graph("/nonexistent/model.npz")


@pytest.mark.parametrize("batch", [1, 3])
def test_networks_batch(batch):
    """A batch gives each item's single-image result; outputs have the documented shapes."""
    g = torch.Generator().manual_seed(0)
    det = BlazeFace("short")
    x = torch.rand(batch, 3, 128, 128, generator=g) * 2 - 1
    with torch.no_grad():
        boxes, scores = det(x)
        assert boxes.shape == (batch, 896, 16) and scores.shape == (batch, 896)
        torch.testing.assert_close(det(x[-1:])[0][0], boxes[-1], atol=1e-4, rtol=1e-4)
        mesh = FaceMesh()
        crops = torch.rand(batch, 3, 192, 192, generator=g)
        pts, presence = mesh(crops)
        assert pts.shape == (batch, 478, 3) and presence.shape == (batch,)
        torch.testing.assert_close(mesh(crops[-1:])[0][0], pts[-1], atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="kind"):
        BlazeFace("medium")
    with pytest.raises(ValueError, match=r"\[B, 3, 128, 128\]"):
        det(torch.zeros(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"\[B, 3, 192, 192\]"):
        mesh(torch.zeros(1, 3, 128, 128))


def test_coarse_mesh_is_the_mesh_before_its_refinement():
    """`FaceMesh.coarse`: the points the refinement leaves alone (and every depth) as `forward` gives
    them, to the bit; the presence score too."""
    mesh = FaceMesh()
    crops = torch.rand(2, 3, 192, 192, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        pts, presence = mesh(crops)
        coarse, coarse_presence = mesh.coarse(crops)
    assert coarse.shape == (2, 468, 3)
    kept = torch.ones(468, dtype=torch.bool)
    kept[torch.cat([mesh._lips, mesh._left_eye, mesh._right_eye])] = False
    assert torch.equal(coarse[:, kept], pts[:, :468][:, kept]) and torch.equal(coarse[..., 2], pts[:, :468, 2])
    assert torch.equal(coarse_presence, presence)
    with pytest.raises(ValueError, match=r"\[B, 3, 192, 192\]"):
        mesh.coarse(torch.zeros(1, 3, 128, 128))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu():
    mesh = FaceMesh()
    crops = torch.rand(2, 3, 192, 192)
    with torch.no_grad():
        a = mesh(crops)[0]
        b = mesh.cuda()(crops.cuda())[0].cpu()
    torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_optimized_cpu_networks_match_eager():
    """`optimize_for_cpu_` (traced, frozen) gives the eager outputs, also for a batch size it was not traced with."""
    g = torch.Generator().manual_seed(1)
    det, mesh = BlazeFace("short"), FaceMesh()
    x = torch.rand(3, 3, 128, 128, generator=g) * 2 - 1
    crops = torch.rand(2, 3, 192, 192, generator=g)
    with torch.no_grad():
        ref_det, ref_mesh = det(x), mesh(crops)
        det.optimize_for_cpu_()
        mesh.optimize_for_cpu_()
        for a, b in zip(det(x), ref_det):
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)
        for a, b in zip(mesh(crops), ref_mesh):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3)


def test_detect_decodes_the_kept_anchors_as_forward_does(dev_photos):
    """`BlazeFace.detect` decodes only the anchors above the threshold: its detections are, to the bit,
    those of `forward`'s full decoding filtered by score, weighted-NMS'd and scaled to the image."""
    from affectsynth.images import load_image

    det = BlazeFace("full")
    photo = torch.from_numpy(np.array(load_image(dev_photos / "2008_002470.jpg"))).permute(2, 0, 1)
    with torch.no_grad():
        (found,) = det.detect([photo], min_score=0.6)
        rect = letterbox_rect(*photo.shape[1:])
        boxes, scores = det(crop_rects(photo, rect[None], 192, border="zero") / 127.5 - 1.0)
        keep = scores[0] >= 0.6
        kb, ks = weighted_nms(boxes[0][keep], scores[0][keep], iou_threshold=0.3)
    assert len(ks) > 1
    pix = kb.reshape(-1, 8, 2) * rect[2] + (rect[:2] - rect[2] / 2)
    assert torch.equal(found.boxes, pix[:, :2].reshape(-1, 4)) and torch.equal(found.keypoints, pix[:, 2:])
    assert torch.equal(found.scores, ks)


def test_sample_grid_in_torch_equals_the_cpus_numpy_grid():
    """The grid formula run in torch (other devices) gives the CPU's numpy grid, to the bit."""
    from affectsynth.fitting.detection.roi import _grid_from, _sample_grid, _unit_offsets

    g = torch.Generator().manual_seed(2)
    for k in range(30):
        rects = torch.rand(1 + k % 4, 5, generator=g) * torch.tensor([500.0, 400.0, 300.0, 300.0, 6.28])
        if k % 3 == 0:
            rects[:, 4] = 0.0
        r = rects.double()
        c, s = torch.cos(r[:, 4, None]), torch.sin(r[:, 4, None])
        size, unrotated = (37, 128, 192)[k % 3], bool((s == 0).all())
        torch_grid = _grid_from(torch, _unit_offsets(size, r.device), r, c, s, unrotated, size, 375, 500)
        assert torch.equal(torch_grid, _sample_grid(rects, size, 375, 500))
