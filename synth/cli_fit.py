"""`affectsynth fit`: fit the face model to photos, write the fitted mesh (OBJ) and the fit (JSON) per photo."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

__all__ = ["fit_command", "fit_to_json", "write_fit_outputs"]


def fit_to_json(image_name: str, width: int, height: int, fits, model) -> dict:
    """The JSON document of one photo: the photo's fields and one `FaceFit.to_dict` per face
    (readable with ``FaceFit.load(path, face=k)``; see `affectsynth fit --help`)."""
    from affectsynth.fitting.face_fit import FIT_SCHEMA_VERSION

    return {
        "version": FIT_SCHEMA_VERSION,
        "image": image_name,
        "width": int(width),
        "height": int(height),
        "landmarks68_vertices": model.landmarks68.tolist(),
        "faces": [f.to_dict() for f in fits],
    }


def write_fit_outputs(out_dir: Path, stem: str, image_name: str, image, fits, synth, *, ply: bool = False) -> list[Path]:
    """Write, atomically, ``<stem>.json`` (all faces) and per face k ``<stem>_f<k>.obj`` + ``.mtl`` +
    ``_texture.png`` (textured mesh, camera coordinates, cm) and, with ``ply``, ``<stem>_f<k>.ply``
    (vertex colours).

    Args:
        out_dir: the output folder.
        stem: file name stem for this photo.
        image_name: the photo's file name (recorded in the JSON).
        image: [H, W, 3] uint8 the photo (the textures are unwrapped from it).
        fits: the photo's `FaceFit` s, largest first.
        synth: the `affectsynth.synthesizer.Synthesizer` whose model and renderer to use.
        ply: also write vertex-coloured PLY files.
    """
    from affectsynth.atomic import atomic_write_text
    from affectsynth.fit_export import write_textured_obj, write_vertex_colored_ply

    written: list[Path] = []
    for k, fit in enumerate(fits):
        prepared = synth.prepare(image, fit)
        written += write_textured_obj(out_dir / f"{stem}_f{k}.obj", prepared, synth.renderer)
        if ply:
            written.append(write_vertex_colored_ply(out_dir / f"{stem}_f{k}.ply", prepared, synth.renderer))
    doc = fit_to_json(image_name, image.shape[1], image.shape[0], fits, synth.model)
    atomic_write_text(out_dir / f"{stem}.json", json.dumps(doc, indent=1))
    written.append(out_dir / f"{stem}.json")
    return written


@click.command(name="fit")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <stem>.obj and <stem>.json.")
@click.option("--max-faces", type=click.IntRange(min=1), default=None, help="Fit at most this many faces per photo.")
@click.option("--ply", is_flag=True, help="Also write <stem>_f<k>.ply meshes with vertex colours.")
@click.option("--device", default="cpu", show_default=True, help="torch device.")
@click.option("--quiet", is_flag=True, help="No progress messages on stderr.")
def fit_command(images: tuple[Path, ...], out_dir: Path, max_faces: int | None, ply: bool, device: str,
                quiet: bool) -> None:
    """Fit the 3D face model to every face of each photo.

    Writes, per photo and face k (0 = largest), DIR/<stem>_f<k>.obj with .mtl and _texture.png (the
    fitted mesh with its expression and the model's UVs, the skin textured from the photo, in that
    face's OpenCV camera coordinates in cm: x right, y down, z forward; vertex (x, y, z) projects to
    (fx*x/z + cx, fy*y/z + cy) in continuous pixel coordinates, top-left corner (0, 0)), with --ply
    also DIR/<stem>_f<k>.ply (vertex colours), and
    DIR/<stem>.json: version, image, width, height, landmarks68_vertices (0-based OBJ vertex indices
    in iBUG order) and per face the fit (FaceFit.load(path, face=k) reads it back): identity,
    expression (blendshape weights), rotation, translation (cm), camera, bbox, landmarks,
    landmark_kind, residuals, reprojection_error_px, interocular_px, pose_deg (yaw, pitch, roll;
    zero when facing the camera; positive yaw turns the nose to the image's right, positive pitch
    tilts it down, positive roll turns the face counter-clockwise in the image), fit_ms, detect_ms.

    \b
    Examples:
      affectsynth fit photo.jpg --out fits/
      affectsynth fit photos/*.jpg --out fits/ --max-faces 1 --ply

    A photo without a face gets a JSON with "faces": [] and a message on stderr. An unreadable file
    gets a one-line error; the other photos are still fitted and the exit code is 3.
    """
    from affectsynth.fitting import fit_image
    from affectsynth.images import ImageLoadError, load_image
    from affectsynth.synthesizer import Synthesizer

    out_dir.mkdir(parents=True, exist_ok=True)
    synth = Synthesizer(device=device)
    failed = 0
    used_stems: set[str] = set()
    for path in images:
        stem = path.stem
        n = 1
        while stem in used_stems:  # two photos with one name in different folders
            n += 1
            stem = f"{path.stem}_{n}"
        used_stems.add(stem)
        try:
            image = load_image(path)
        except (ImageLoadError, FileNotFoundError, OSError) as exc:
            failed += 1
            msg = " ".join(str(exc).split())
            click.echo(f"affectsynth fit: {msg if str(path) in msg else f'{path}: {msg}'}", err=True)
            continue
        fits = fit_image(image, model=synth.model, detector=synth.detector, settings=synth.fit_settings,
                         max_faces=max_faces)
        if not fits:
            click.echo(f"affectsynth fit: {path}: no face found", err=True)
        written = write_fit_outputs(out_dir, stem, path.name, image, fits, synth, ply=ply)
        for p in written:
            click.echo(str(p))
        if not quiet and fits:
            f = fits[0]
            click.echo(
                f"{path.name}: {len(fits)} face(s); largest: error {f.reprojection_error_px:.2f} px "
                f"({100 * f.reprojection_error_px / max(f.interocular_px, 1e-6):.1f}% IOD), fit {f.fit_ms:.1f} ms",
                err=True,
            )
    if failed:
        sys.exit(3)
