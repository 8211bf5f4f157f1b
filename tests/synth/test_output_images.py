"""Output file formats (`affectsynth.output_images`): lossless PNG and WebP, their names, and the
completeness check a resumed run relies on; and ``generate --image-format webp`` end to end."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from affectsynth.naming import frame_relpath, output_relpath
from affectsynth.output_images import IMAGE_FORMATS, encode_webp_lossless, is_complete_image, save_output_image


def _photo_like(h: int = 96, w: int = 80, channels: int = 3) -> np.ndarray:
    """Smooth gradients plus noise: what a photo crop compresses like (not a flat test card)."""
    rng = np.random.default_rng(7)
    ramp = np.linspace(0, 180, h)[:, None, None] + np.linspace(0, 60, w)[None, :, None]
    return np.clip(ramp + rng.normal(0, 12, (h, w, channels)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("fmt", IMAGE_FORMATS)
def test_every_format_gives_back_the_exact_pixels(tmp_path, fmt):
    a = _photo_like()
    p = tmp_path / "sub" / f"out.{fmt}"
    save_output_image(p, a, image_format=fmt, fsync=False)
    with Image.open(p) as im:
        assert im.format == fmt.upper() and im.mode == "RGB"
        assert np.array_equal(np.asarray(im), a)
    assert is_complete_image(p) and is_complete_image(p, full=True)


def test_webp_keeps_rgba_exactly_including_transparent_colour():
    a = _photo_like(channels=4)
    a[:10, :, 3] = 0  # transparent rows keep their colour ("exact"): the pixels are the output
    with Image.open(__import__("io").BytesIO(encode_webp_lossless(a))) as im:
        assert np.array_equal(np.asarray(im.convert("RGBA")), a)


def test_webp_is_smaller_than_the_fast_png_on_a_photo(tmp_path):
    import skimage.data

    a = np.ascontiguousarray(skimage.data.astronaut()[20:276, 100:356])  # a 256 px face crop
    save_output_image(tmp_path / "a.png", a, image_format="png", fsync=False)
    save_output_image(tmp_path / "a.webp", a, image_format="webp", fsync=False)
    assert (tmp_path / "a.webp").stat().st_size < (tmp_path / "a.png").stat().st_size


def test_bad_requests_are_refused_by_name(tmp_path):
    a = _photo_like()
    with pytest.raises(ValueError, match=r"out\.png: an webp output must end in \.webp"):
        save_output_image(tmp_path / "out.png", a, image_format="webp")
    with pytest.raises(ValueError, match="image format must be one of"):
        save_output_image(tmp_path / "out.jpg", a, image_format="jpeg")
    with pytest.raises(ValueError, match=r"expected \[H, W, 3\|4\] uint8"):
        encode_webp_lossless(a[..., 0])
    assert not any(tmp_path.iterdir())  # nothing half-written


def test_webp_completeness_check_catches_what_a_crash_leaves(tmp_path):
    data = encode_webp_lossless(_photo_like())
    cases = {"truncated.webp": data[: len(data) // 2], "zeros.webp": bytes(len(data)), "empty.webp": b"",
             "png_named.webp": b"\x89PNG\r\n\x1a\n" + data}
    for name, blob in cases.items():
        (tmp_path / name).write_bytes(blob)
        assert not is_complete_image(tmp_path / name), name
        assert not is_complete_image(tmp_path / name, full=True), name
    flipped = bytearray(data)
    flipped[40] ^= 0xFF  # inside the bitstream: the container is intact, the decode fails
    (tmp_path / "flipped.webp").write_bytes(bytes(flipped))
    assert is_complete_image(tmp_path / "flipped.webp") and not is_complete_image(tmp_path / "flipped.webp", full=True)
    (tmp_path / "grown.webp").write_bytes(data + b"\0\0")  # not the length the header declares
    assert not is_complete_image(tmp_path / "grown.webp")
    assert not is_complete_image(tmp_path / "missing.webp")


def test_output_names_carry_the_format_suffix():
    assert output_relpath("a/img.jpg", "happiness_i1.00").as_posix() == "a/img_jpg/f0_happiness_i1.00.png"
    assert output_relpath("a/img.jpg", "happiness_i1.00", 1, image_format="webp").as_posix() == \
        "a/img_jpg/f1_happiness_i1.00.webp"
    flat = output_relpath("a/img.jpg", "happiness_i1.00", layout="flat", image_format="webp").as_posix()
    assert flat.startswith("img_jpg-") and flat.endswith("__f0_happiness_i1.00.webp")
    assert frame_relpath("a/img.jpg", "circle", 7, image_format="webp").as_posix() == \
        "a/img_jpg/f0_path-circle/frame_0007.webp"
    with pytest.raises(ValueError, match="image format must be one of"):
        output_relpath("a/img.jpg", "happiness_i1.00", image_format="gif")


def _rows(out: Path) -> list[dict]:
    with open(out / "manifest.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_generate_webp_outputs_are_the_png_pixels_and_resume_redoes_a_broken_one(tmp_path):
    import skimage.data

    from affectsynth.cli import main

    inp = tmp_path / "in"
    inp.mkdir()
    Image.fromarray(skimage.data.astronaut()).resize((256, 256)).save(inp / "astro.png")
    args = ["--expressions", "happiness,anger", "--size", "96", "--workers", "1", "--quiet"]
    outs = {}
    for fmt in IMAGE_FORMATS:
        outs[fmt] = tmp_path / f"out_{fmt}"
        r = CliRunner().invoke(main, ["generate", str(inp), str(outs[fmt]), "--image-format", fmt, *args])
        assert r.exit_code == 0, r.output
    png_rows, webp_rows = _rows(outs["png"]), _rows(outs["webp"])
    assert [r["output"] for r in webp_rows] == [r["output"].replace(".png", ".webp") for r in png_rows]
    for p_row, w_row in zip(png_rows, webp_rows):
        assert w_row["status"] == "ok" and w_row["output"].endswith(".webp")
        assert {k: v for k, v in w_row.items() if k != "output"} == {k: v for k, v in p_row.items() if k != "output"}
        with Image.open(outs["png"] / p_row["output"]) as a, Image.open(outs["webp"] / w_row["output"]) as b:
            assert b.format == "WEBP" and np.array_equal(np.asarray(a), np.asarray(b))

    broken = outs["webp"] / webp_rows[0]["output"]
    good = broken.read_bytes()
    broken.write_bytes(good[: len(good) // 3])  # what a power loss can leave behind a surviving row
    r = CliRunner().invoke(main, ["generate", str(inp), str(outs["webp"]), "--image-format", "webp", *args])
    assert r.exit_code == 0, r.output
    assert broken.read_bytes() == good  # redone, byte for byte
    ok = [row["output"] for row in _rows(outs["webp"]) if row["status"] == "ok"]
    assert sorted(ok) == sorted(row["output"] for row in webp_rows)  # one ok row per output, no duplicate
