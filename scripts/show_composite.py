"""Picture check of unwrap -> re-render with a new expression -> motion-field warp -> composite.

Usage: python scripts/show_composite.py PHOTO OUT_DIR [--expr jawOpen=0.6 --expr mouthSmile_L=0.5 ...]

Writes OUT_DIR/<stem>_before_after.png (photo | composite | |diff| x4), <stem>_texture.png (raw
texture | weight | filled) and <stem>_flow.png. Needs the embedded face model and MediaPipe.
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import imageio.v3 as iio
import numpy as np
import torch

from affectsynth.fitting.face_model import FaceModel
from affectsynth.fitting.fit import fit_landmarks
from affectsynth.fitting.landmarks import MediaPipeDetector
from affectsynth.render.antialias import antialias
from affectsynth.render.camera import project_points, to_clip
from affectsynth.render.composite import CompositeSettings, composite
from affectsynth.render.rasterize import rasterize
from affectsynth.render.texture import texture
from affectsynth.render.unwrap import fill_texture, mirror_texel_map, unwrap_texture
from affectsynth.render.warp import motion_field, motion_window


def _u8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def _render(verts_cam, tri, uv, tri_uv, mat, tex, cam, window, material_colors):
    """Render the window (x0, y0, w, h) of the photo: colour [h, w, 3], coverage [h, w]."""
    x0, y0, w, h = window
    P = cam.crop(*window).projection_matrix(near=1.0, far=1000.0)
    clip = to_clip(verts_cam[None], P)
    rast, _ = rasterize(clip, tri, (h, w))
    tid = rast[0, ..., 3].long() - 1
    cov = tid >= 0
    t = tid.clamp(min=0)
    bu, bv = rast[0, ..., 0:1], rast[0, ..., 1:2]
    cuv = uv[tri_uv[t].long()]  # [h, w, 3, 2]
    uvp = bu * cuv[..., 0, :] + bv * cuv[..., 1, :] + (1 - bu - bv) * cuv[..., 2, :]
    color = texture(tex[None], uvp[None], boundary_mode="clamp")[0]
    m = mat[t]
    for k, c in material_colors.items():
        color = torch.where((m == k)[..., None], torch.tensor(c), color)
    color = color * cov[..., None]
    rgba = torch.cat([color, cov[..., None].float()], dim=-1)
    out = antialias(rgba[None], rast, clip, tri)[0]
    return out[..., :3], out[..., 3].clamp(0, 1)


@click.command()
@click.argument("photo", type=click.Path(exists=True, dir_okay=False))
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--expr", "exprs", multiple=True, default=("jawOpen=0.5", "mouthSmile_L=0.6", "mouthSmile_R=0.6"))
@click.option("--resolution", default=1024, show_default=True)
def main(photo: str, out_dir: str, exprs: tuple[str, ...], resolution: int) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(photo).stem
    img8 = iio.imread(photo)[..., :3]
    H, W = img8.shape[:2]
    model = FaceModel.default()
    t0 = time.perf_counter()
    lms = MediaPipeDetector(max_faces=1).detect(img8)
    fit = fit_landmarks(model, lms[:1], image_sizes=[(W, H)])[0]
    print(f"detect+fit {time.perf_counter() - t0:.2f} s, reprojection {fit.reprojection_error_px:.2f} px")
    cam = fit.camera
    tri, uv, tri_uv = model.triangles, model.uv, model.triangle_uv
    mat = model.triangle_material
    names = model.material_names
    face = mat == names.index("M_Face")
    old = model.reconstruct(fit)
    weights = fit.expression.clone()
    for e in exprs:
        k, v = e.split("=")
        weights[model.expression_names.index(k)] = float(v)
    new = model.reconstruct(fit, expression=weights)

    image = torch.from_numpy(img8).float() / 255
    t0 = time.perf_counter()
    un = unwrap_texture(image, old, tri, uv, tri_uv, cam,
                        resolution=resolution, triangle_mask=face)
    t1 = time.perf_counter()
    mirror = mirror_texel_map(uv, tri_uv, tri, model.symmetry, resolution, triangle_mask=face)
    filled = fill_texture(un.texture, un.weight, mirror_uv=mirror)
    t2 = time.perf_counter()
    print(f"unwrap {t1 - t0:.3f} s, mirror+fill {t2 - t1:.3f} s at {resolution}")
    iio.imwrite(out / f"{stem}_texture.png", _u8(torch.cat([un.texture, un.weight[..., None].expand(-1, -1, 3), filled], 1)))

    src_pix = project_points(old, cam)
    dst_pix = project_points(new, cam)
    used_v = torch.unique(tri[face].long())
    keep = torch.zeros(old.shape[0], dtype=torch.bool)
    keep[used_v] = True
    lo = torch.minimum(src_pix[keep].min(0).values, dst_pix[keep].min(0).values).floor() - 4
    hi = torch.maximum(src_pix[keep].max(0).values, dst_pix[keep].max(0).values).ceil() + 4
    x0, y0 = max(0, int(lo[0])), max(0, int(lo[1]))
    x1, y1 = min(W, int(hi[0])), min(H, int(hi[1]))
    win = (x0, y0, x1 - x0, y1 - y0)
    # face skin, mouth socket, gums/tongue, teeth (eyes come from the warped photo)
    socket, gums, teeth = names.index("M_BackHead"), names.index("M_GumsTongue"), names.index("M_Teeth")
    draw = face | (mat == socket) | (mat == gums) | (mat == teeth)
    t0 = time.perf_counter()
    color, cov = _render(new, tri[draw], uv, tri_uv[draw], mat[draw], filled, cam, win,
                         {socket: (0.06, 0.03, 0.03), gums: (0.45, 0.15, 0.15), teeth: (0.85, 0.82, 0.75)})
    t1 = time.perf_counter()
    fwin = motion_window(src_pix[keep], dst_pix[keep], (H, W), margin_px=16.0)
    flow = motion_field(src_pix, dst_pix, tri[face], (H, W), margin_px=16.0, dst_depth=new[:, 2], window=fwin)
    t2 = time.perf_counter()
    res = composite(torch.from_numpy(img8), color, cov, window=(x0, y0), flow=flow, flow_window=fwin[:2],
                    settings=CompositeSettings(feather_px=4.0, color_match=False))
    t3 = time.perf_counter()
    print(f"render {t1 - t0:.3f} s ({win[2]}x{win[3]}), motion field {t2 - t1:.3f} s ({fwin[2]}x{fwin[3]}), "
          f"composite {t3 - t2:.3f} s")
    outside = ~res.mask_used
    print("outside mask bit-identical:", bool((res.image[outside] == torch.from_numpy(img8)[outside]).all()))
    diff = (res.image.float() - torch.from_numpy(img8).float()).abs().mul(4).clamp(0, 255).byte()
    iio.imwrite(out / f"{stem}_before_after.png", np.concatenate([img8, res.image.numpy(), diff.numpy()], 1))
    pad = 40
    cy0, cy1, cx0, cx1 = max(0, y0 - pad), min(H, y1 + pad), max(0, x0 - pad), min(W, x1 + pad)
    iio.imwrite(out / f"{stem}_crop.png", np.concatenate([img8[cy0:cy1, cx0:cx1], res.image.numpy()[cy0:cy1, cx0:cx1]], 1))
    mag = flow.norm(dim=-1)
    iio.imwrite(out / f"{stem}_flow.png", _u8(mag / mag.max().clamp_min(1e-6)))


if __name__ == "__main__":
    main()
