"""`affectsynth fit` in-process: outputs for a face, a photo without a face, and an unreadable file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from affectsynth.cli import main
from affectsynth.fitting import FaceModel
from affectsynth.render.camera import project_points


@pytest.fixture(scope="module")
def run(tmp_path_factory, dev_photos):
    """One CLI run over [unreadable file, astronaut, dogs.jpg]; the broken file comes first on purpose."""
    import skimage.data

    inputs = tmp_path_factory.mktemp("in")
    out = tmp_path_factory.mktemp("out")
    Image.fromarray(skimage.data.astronaut()).save(inputs / "astronaut.png")
    (inputs / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 definitely not a complete jpeg")
    shutil.copy(dev_photos / "dogs.jpg", inputs / "dogs.jpg")
    args = ["fit", str(inputs / "broken.jpg"), str(inputs / "astronaut.png"), str(inputs / "dogs.jpg"),
            "--out", str(out), "--ply"]
    result = CliRunner().invoke(main, args)
    return result, out


def _read_obj_vertices(path) -> np.ndarray:
    rows = [line.split()[1:4] for line in path.read_text().splitlines() if line.startswith("v ")]
    return np.array(rows, dtype=np.float64)


def test_exit_code_and_messages(run):
    result, out = run
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 3, result.output
    errors = [ln for ln in result.stderr.splitlines() if "broken.jpg" in ln]
    assert len(errors) == 1 and "Traceback" not in result.stderr
    assert any("dogs.jpg" in ln and "no face" in ln for ln in result.stderr.splitlines())
    # the failing file did not stop the others; nothing written for it
    names = ["astronaut.json", "astronaut_f0.mtl", "astronaut_f0.obj", "astronaut_f0.ply", "astronaut_f0_texture.png",
             "dogs.json"]
    assert sorted(p.name for p in out.iterdir()) == names
    assert set(result.stdout.split()) == {str(out / n) for n in names}


def test_no_face_json(run):
    _, out = run
    doc = json.loads((out / "dogs.json").read_text())
    assert doc["faces"] == [] and doc["image"] == "dogs.jpg"
    assert doc["width"] > 0 and doc["height"] > 0


def test_fit_json_reads_back_as_face_fit(run):
    """What `affectsynth fit` writes is what `FaceFit.load` reads: same mesh, same pose, same camera."""
    from affectsynth.fitting import FaceFit

    _, out = run
    path = out / "astronaut.json"
    fit = FaceFit.load(path, face=0)
    assert json.loads(path.read_text())["version"] == 2
    model = FaceModel.default()
    verts = model.reconstruct(fit).numpy()
    np.testing.assert_allclose(verts, _read_obj_vertices(out / "astronaut_f0.obj"), atol=1e-4)  # OBJ: 6 decimals
    assert fit.expression_names == model.expression_names
    assert len(FaceFit.load_all(path)) == 1
    torch.testing.assert_close(FaceFit.load_all(path)[0].rotation, fit.rotation)
    with pytest.raises(ValueError, match="holds 1 face"):
        FaceFit.load(path, face=1)
    assert FaceFit.load_all(out / "dogs.json") == []


def test_astronaut_json_schema(run):
    _, out = run
    doc = json.loads((out / "astronaut.json").read_text())
    assert {"image", "width", "height", "landmarks68_vertices", "faces"} <= set(doc)
    assert (doc["image"], doc["width"], doc["height"]) == ("astronaut.png", 512, 512)
    assert len(doc["landmarks68_vertices"]) == 68
    assert len(doc["faces"]) == 1
    face = doc["faces"][0]
    keys = {"bbox", "camera", "landmarks", "reprojection_error_px", "interocular_px", "pose_deg", "expression",
            "identity", "fit_ms"}
    assert keys <= set(face), keys - set(face)
    assert set(face["camera"]) >= {"fx", "fy", "cx", "cy"}
    assert set(face["pose_deg"]) == {"yaw", "pitch", "roll"}
    assert len(face["landmarks"]) == 468 and len(face["bbox"]) == 4  # the fitted MediaPipe face points (no iris)
    assert len(face["expression"]) == 53 and all(0.0 <= w <= 1.0 for w in face["expression"].values())
    assert 50 < face["interocular_px"] < 150  # the face is about 110 px wide in a 512 px photo
    assert face["reprojection_error_px"] < 0.03 * face["interocular_px"]
    assert all(abs(a) < 20 for a in face["pose_deg"].values())  # a near-frontal portrait
    assert face["fit_ms"] > 0


def test_obj_projects_onto_the_photo(run):
    _, out = run
    doc = json.loads((out / "astronaut.json").read_text())
    face = doc["faces"][0]
    cam = face["camera"]
    verts = _read_obj_vertices(out / "astronaut_f0.obj")
    assert verts.shape == (18844, 3)
    assert (verts[:, 2] > 0).all()  # in front of the camera (OpenCV, cm)

    def project(p: np.ndarray) -> np.ndarray:
        return np.c_[cam["fx"] * p[:, 0] / p[:, 2] + cam["cx"], cam["fy"] * p[:, 1] / p[:, 2] + cam["cy"]]

    x0, y0, x1, y1 = face["bbox"]
    m = 0.1 * (x1 - x0)
    lm68 = project(verts[doc["landmarks68_vertices"]])
    assert ((lm68[:, 0] > x0 - m) & (lm68[:, 0] < x1 + m) & (lm68[:, 1] > y0 - m) & (lm68[:, 1] < y1 + m)).all()
    assert lm68[36, 0] < lm68[45, 0] and lm68[8, 1] > lm68[27, 1]  # not mirrored, not upside down

    # the model's MediaPipe points on the OBJ mesh land on the detected landmarks
    model = FaceModel.default()
    mp = model.landmark_points(torch.tensor(verts, dtype=torch.float32)[None], "mediapipe468")[0].double().numpy()
    detected = np.array(face["landmarks"])[:468]
    err = np.linalg.norm(project(mp) - detected, axis=1) / face["interocular_px"]
    inner = ~model.embedding("mediapipe468").is_contour.numpy()  # contour points slide along the silhouette
    assert err[inner].mean() < 0.03, f"{100 * err[inner].mean():.2f}% IOD"
    assert np.median(err) < 0.04


def test_textured_exports_show_the_photo(run):
    """trimesh loads the textured OBJ and the PLY; the colour they give a frontal skin vertex is the photo's
    colour where that vertex projects (the texture and its UVs are the right way up)."""
    import skimage.data
    import trimesh

    from affectsynth.fitting import FaceFit

    _, out = run
    photo = skimage.data.astronaut().astype(np.float64)
    fit = FaceFit.load(out / "astronaut.json")
    model = FaceModel.default()
    verts = model.reconstruct(fit)
    pix = project_points(verts, fit.camera).numpy()
    # frontal skin vertices: inside the face box, on the nose/cheeks band (not the eyes or mouth)
    lm = model.landmarks68.tolist()
    probe = [lm[i] for i in (29, 30, 2, 14, 31, 35)]  # nose bridge, nose tip, cheeks, nostrils
    expected = np.array([photo[int(pix[v, 1]), int(pix[v, 0])] for v in probe])
    ply = trimesh.load(out / "astronaut_f0.ply", process=False)
    assert len(ply.vertices) == model.num_vertices
    got = np.asarray(ply.visual.vertex_colors)[probe, :3].astype(np.float64)
    assert np.abs(got - expected).mean() < 20, (got, expected)  # the texture's colour at each vertex
    obj = trimesh.load(out / "astronaut_f0.obj", process=False, force="mesh")
    assert obj.visual.kind == "texture" and obj.visual.material.image is not None
    tex = np.asarray(obj.visual.material.image.convert("RGB"), np.float64)
    uv = np.asarray(obj.visual.uv)
    # trimesh splits vertices at UV seams: find the loaded vertex of each probe by position
    loaded = np.asarray(obj.vertices)
    idx = [int(np.argmin(np.linalg.norm(loaded - verts[v].numpy(), axis=1))) for v in probe]
    h, w = tex.shape[:2]
    sampled = np.array([tex[int((1 - uv[i, 1]) * h), int(uv[i, 0] * w)] for i in idx])
    assert np.abs(sampled - expected).mean() < 20, (sampled, expected)
