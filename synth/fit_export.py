"""Mesh exports of a fitted face: textured OBJ (+ MTL + PNG, as DECA exports) and vertex-coloured PLY.

Vertices are the fit's camera-space vertices (cm, OpenCV: x right, y down, z forward), in the face
model's vertex order, so vertex indices (e.g. ``landmarks68_vertices`` of the fit JSON) keep their
meaning. The OBJ carries the model's own UV layout with separate ``vt`` indices (``f v/vt``): UV
seams do not split vertices. The skin is textured with the face's texture unwrapped from the photo;
the mouth's surfaces (teeth, gums, tongue, socket) get plain material colours.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from affectsynth.atomic import atomic_write_bytes, atomic_write_text
from affectsynth.images import save_png
from affectsynth.prepare import PreparedFace
from affectsynth.render.warp import sample_image

__all__ = ["vertex_colors", "write_textured_obj", "write_vertex_colored_ply"]


def _skin_triangles(renderer) -> np.ndarray:
    return renderer.all_skin.cpu().numpy()


def write_textured_obj(path: Path, prepared: PreparedFace, renderer) -> list[Path]:
    """Write ``path`` (OBJ), ``path.with_suffix('.mtl')`` and ``<stem>_texture.png``, each atomically.

    Args:
        path: the .obj path.
        prepared: the face's prepared texture and vertices (`affectsynth.prepare.prepare_face`).
        renderer: the `affectsynth.face_render.FaceRenderer` of the face model (triangles, UVs,
            which triangles are skin, mouth colours).

    Returns:
        The three paths written.
    """
    model = renderer.model
    verts = prepared.vertices.detach().cpu().numpy()
    uv = model.uv.cpu().numpy()
    tri = model.triangles.cpu().numpy() + 1
    tri_uv = model.triangle_uv.cpu().numpy() + 1
    skin = _skin_triangles(renderer)
    mtl_path, tex_path = path.with_suffix(".mtl"), path.with_name(f"{path.stem}_texture.png")
    lines = [f"# affectsynth fitted face: camera space, cm (OpenCV axes); {len(verts)} vertices",
             f"mtllib {mtl_path.name}"]
    lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in verts]
    lines += [f"vt {u:.6f} {v:.6f}" for u, v in uv]
    for name, sel in (("skin", skin), ("mouth", ~skin)):
        lines += [f"usemtl {name}"]
        lines += [f"f {a}/{ta} {b}/{tb} {c}/{tc}" for (a, b, c), (ta, tb, tc) in zip(tri[sel], tri_uv[sel])]
    mouth = renderer.material_colors(prepared.skin_color)[1].tolist()  # the teeth's colour in this photo
    mtl = (f"newmtl skin\nKa 1 1 1\nKd 1 1 1\nKs 0 0 0\nillum 1\nmap_Kd {tex_path.name}\n\n"
           f"newmtl mouth\nKa 1 1 1\nKd {mouth[0]:.4f} {mouth[1]:.4f} {mouth[2]:.4f}\nKs 0 0 0\nillum 1\n")
    tex = (prepared.texture.detach().clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    save_png(tex_path, np.ascontiguousarray(tex[::-1]))  # texture rows run with v; an image's rows run down
    atomic_write_text(mtl_path, mtl)
    atomic_write_bytes(path, ("\n".join(lines) + "\n").encode())
    return [path, mtl_path, tex_path]


def vertex_colors(prepared: PreparedFace, renderer) -> np.ndarray:
    """[V, 3] uint8 colour per vertex: the texture at the vertex's UV on the skin, the mouth colour elsewhere."""
    model = renderer.model
    tri = model.triangles.long()
    tri_uv = model.triangle_uv.long()
    skin = renderer.all_skin
    v_uv = torch.full((model.num_vertices,), -1, dtype=torch.long, device=tri.device)
    v_uv[tri[skin].flatten()] = tri_uv[skin].flatten()  # one of the vertex's UVs (seams: any side)
    colors = renderer.material_colors(prepared.skin_color)[1].expand(model.num_vertices, 3).clone()
    has = v_uv >= 0
    res = prepared.texture.shape[0]
    coords = model.uv[v_uv[has]] * res  # texel coordinates (texel centres at +0.5)
    colors[has] = sample_image(prepared.texture, coords[None])[0]
    return (colors.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()


def write_vertex_colored_ply(path: Path, prepared: PreparedFace, renderer) -> Path:
    """Write a binary PLY of the face with per-vertex colours (`vertex_colors`), atomically."""
    import trimesh

    mesh = trimesh.Trimesh(prepared.vertices.detach().cpu().numpy(), renderer.model.triangles.cpu().numpy(),
                           vertex_colors=vertex_colors(prepared, renderer), process=False)
    atomic_write_bytes(path, mesh.export(file_type="ply"))
    return path
