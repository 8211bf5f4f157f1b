from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from affectsynth.images import ImageLoadError, is_image_path, load_image, restore_like, save_png, to_numpy_image


@pytest.mark.parametrize("name", ["rgb.png", "gray.png", "rgba.png", "la.png", "palette.png", "cmyk.jpg",
                                  "photo.JPG", "photo.webp", "photo.bmp", "photo.tiff", "gray16.png", "rgb16.png"])
def test_loads_every_mode_as_rgb_uint8(awkward, photo, name):
    a = load_image(awkward[name])
    assert a.dtype == np.uint8 and a.shape == (128, 128, 3) and a.flags.c_contiguous
    if name in ("rgb.png", "photo.bmp", "photo.tiff", "photo.webp", "rgba.png"):
        np.testing.assert_array_equal(a, photo)
    elif name in ("gray.png", "la.png"):
        g = np.asarray(Image.fromarray(photo).convert("L"))
        np.testing.assert_array_equal(a, np.repeat(g[..., None], 3, 2))
    elif name == "gray16.png":  # scaled 65535 -> 255, not clipped to 255
        np.testing.assert_array_equal(a[..., 0], photo[..., 1])
    elif name == "rgb16.png":
        np.testing.assert_array_equal(a, photo)
    elif name == "palette.png":
        np.testing.assert_array_equal(a, np.asarray(Image.open(awkward[name]).convert("RGB")))
    else:  # CMYK JPEG: lossy, close to the photo
        assert np.abs(a.astype(int) - photo).mean() < 12


def test_exif_orientation_is_applied(awkward, photo):
    a = load_image(awkward["exif_rot.jpg"])
    assert a.shape == (96, 128, 3)  # stored 128 high x 96 wide, orientation 6 -> rotated
    expect = np.rot90(photo[:, :96], k=-1)
    assert np.abs(a.astype(int) - expect).mean() < 8


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_loads_as_pillow_transposes_it(tmp_path, photo, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / f"o{orientation}.png"  # lossless: the pixels must match exactly
    Image.fromarray(photo[:, :96]).save(path, exif=exif.tobytes())
    with Image.open(path) as img:
        expect = np.asarray(ImageOps.exif_transpose(img).convert("RGB"))  # Pillow's own (copying) path
    got = load_image(path)
    assert got.flags.c_contiguous
    np.testing.assert_array_equal(got, expect)
    if orientation in (6, 8):
        assert got.shape[:2] == photo[:, :96].shape[1::-1]


@pytest.mark.parametrize("name,needle", [("empty.png", "empty file"), ("notimage.jpg", "not a recognised image"),
                                         ("truncated.jpg", "truncated"), ("truncated.png", "decode"),
                                         ("bomb.png", "too large")])
def test_bad_files_raise_one_line_naming_the_file(awkward, name, needle):
    with pytest.raises(ImageLoadError) as ei:
        load_image(awkward[name])
    msg = str(ei.value)
    assert name in msg and needle in msg and "\n" not in msg
    assert isinstance(ei.value, ValueError)


def test_max_pixels_is_configurable(awkward):
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(awkward["rgb.png"], max_pixels=1000)
    assert load_image(awkward["rgb.png"], max_pixels=128 * 128).shape == (128, 128, 3)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png"):
        load_image(tmp_path / "nope.png")
    with pytest.raises(ImageLoadError, match="directory"):
        load_image(tmp_path)


def test_is_image_path():
    assert is_image_path("a/B.JPEG") and is_image_path("x.TiF") and not is_image_path("x.txt")


def _variants(photo):
    t = torch.from_numpy(photo.copy()).permute(2, 0, 1).contiguous()
    return {
        "pil_rgb": Image.fromarray(photo),
        "pil_l": Image.fromarray(photo).convert("L"),
        "pil_rgba": Image.fromarray(photo).convert("RGBA"),
        "np_u8": photo.copy(),
        "np_f32": photo.astype(np.float32) / 255,
        "np_gray": photo[..., 0].copy(),
        "np_rgba": np.concatenate([photo, np.full(photo.shape[:2] + (1,), 200, np.uint8)], 2),
        "t_u8": t,
        "t_f32": t.float() / 255,
        "t_f64_gray": t[:1].double() / 255,
        "t_bf16": (t.float() / 255).bfloat16(),
    }


@pytest.mark.parametrize("kind", list(_variants(np.zeros((4, 4, 3), np.uint8))))
def test_to_numpy_and_restore_round_trip(photo, kind):
    x = _variants(photo)[kind]
    a = to_numpy_image(x)
    assert a.dtype == np.uint8 and a.shape == (128, 128, 3)
    back = restore_like(x, a)
    assert type(back) is type(x)
    if isinstance(x, Image.Image):
        assert back.mode == x.mode and back.size == x.size
        np.testing.assert_array_equal(np.asarray(back), np.asarray(x))
    elif isinstance(x, np.ndarray):
        assert back.dtype == x.dtype and back.shape == x.shape
        np.testing.assert_allclose(back, x, atol=1 / 255 if x.dtype.kind == "f" else 1)
    else:
        assert back.dtype == x.dtype and back.shape == x.shape and back.device == x.device
        atol = 1 if not x.is_floating_point() else (4e-3 if x.dtype == torch.bfloat16 else 1 / 255 + 1e-6)
        torch.testing.assert_close(back, x, atol=atol, rtol=0)


def test_restore_like_changes_content_and_keeps_alpha(photo):
    rgba = np.concatenate([photo, np.full(photo.shape[:2] + (1,), 7, np.uint8)], 2)
    out = restore_like(rgba, 255 - photo)
    np.testing.assert_array_equal(out[..., :3], 255 - photo)
    assert (out[..., 3] == 7).all()


@pytest.mark.parametrize("bad,exc", [(np.zeros((3, 8, 8), np.uint8), ValueError),
                                     (np.full((4, 4, 3), 2.0, np.float32), ValueError),
                                     (np.zeros((4, 4, 3), np.int32), TypeError),
                                     (torch.zeros(5, 8, 8), ValueError),
                                     ([[0, 1]], TypeError)])
def test_to_numpy_image_rejects(bad, exc):
    with pytest.raises(exc, match="to_numpy_image"):
        to_numpy_image(bad)


def test_save_png_is_lossless_and_atomic(tmp_path, photo):
    p = tmp_path / "d" / "o.png"
    save_png(p, photo)
    np.testing.assert_array_equal(load_image(p), photo)
    assert sorted(x.name for x in p.parent.iterdir()) == ["o.png"]
    with pytest.raises(ValueError, match="save_png"):
        save_png(p, photo.astype(np.float32))


def _png_header(w: int, h: int) -> bytes:
    import struct
    import zlib

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("w,h", [(33000, 1000), (1, 40_000_000), (32767, 1)])
def test_sides_opencv_cannot_take_are_refused_before_decoding(tmp_path, w, h):
    p = tmp_path / "long.png"
    p.write_bytes(_png_header(w, h))  # under the 50 MP limit, but a side OpenCV aborts on
    with pytest.raises(ImageLoadError, match=f"side too long \\({w}x{h}"):
        load_image(p)
    with pytest.raises(ValueError, match="side too long"):
        to_numpy_image(np.zeros((1, 32767, 3), np.uint8))


def test_undecodable_tiffs_say_what_they_are(tmp_path):
    import io
    import struct

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="TIFF")
    d = bytearray(buf.getvalue())
    (ifd,) = struct.unpack("<I", d[4:8])
    for i in range(struct.unpack("<H", d[ifd:ifd + 2])[0]):
        e = ifd + 2 + 12 * i
        if struct.unpack("<H", d[e:e + 2])[0] == 259:
            d[e + 8:e + 10] = struct.pack("<H", 34712)
    (tmp_path / "j2k.tif").write_bytes(bytes(d))
    (tmp_path / "big.tif").write_bytes(b"II+\x00\x08\x00\x00\x00" + bytes(64))
    with pytest.raises(ImageLoadError, match=r"a TIFF image that Pillow cannot decode \(compression 34712 \(JPEG 2000\)"):
        load_image(tmp_path / "j2k.tif")
    with pytest.raises(ImageLoadError, match="BigTIFF"):
        load_image(tmp_path / "big.tif")


def test_empty_and_non_finite_images_are_refused():
    for bad in (Image.new("RGB", (0, 0)), np.zeros((0, 4, 3), np.uint8), torch.zeros(3, 4, 0)):
        with pytest.raises(ValueError, match="zero size"):
            to_numpy_image(bad)
    a = np.full((4, 4, 3), 0.5, np.float32)
    a[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="1 NaN"):
        to_numpy_image(a)
    with pytest.raises(ValueError, match="finite"):
        to_numpy_image(torch.full((3, 4, 4), float("inf")))


@pytest.mark.parametrize("shape", [(1, 1, 3), (7, 5, 3), (9, 4), (6, 3, 4), (64, 48, 3)])
@pytest.mark.parametrize("level", [0, 1, 3, 6])
def test_save_png_round_trips_every_layout_and_level(tmp_path, shape, level):
    from PIL import Image

    a = np.random.default_rng(sum(shape) + level).integers(0, 256, shape, dtype=np.uint8)
    p = tmp_path / "o.png"
    save_png(p, a, compress_level=level, fsync=False)
    with Image.open(p) as img:
        np.testing.assert_array_equal(np.asarray(img), a)


def test_fast_png_is_deterministic(photo):
    from affectsynth.images import encode_png_fast

    assert encode_png_fast(photo) == encode_png_fast(photo.copy())


@pytest.mark.parametrize("deflater", ["isal", "zlib"])
@pytest.mark.parametrize("level", [1, 2, 3])
def test_fast_png_deflaters_give_back_the_pixels(photo, deflater, level):
    """Either deflater (ISA-L by default, zlib where isal is missing) writes a PNG that decodes to the
    exact pixels; ISA-L's file stays within a few percent of zlib's size."""
    from PIL import Image

    from affectsynth.images import encode_png_fast

    data = encode_png_fast(photo, level, deflater=deflater)
    with Image.open(io.BytesIO(data)) as img:
        np.testing.assert_array_equal(np.asarray(img), photo)
    if deflater == "isal":
        assert len(data) < 1.1 * len(encode_png_fast(photo, level, deflater="zlib"))


def test_fast_png_auto_falls_back_to_zlib_without_isal(photo, monkeypatch):
    import sys

    from affectsynth.images import encode_png_fast

    monkeypatch.setitem(sys.modules, "isal", None)  # as if isal were not installed
    assert encode_png_fast(photo) == encode_png_fast(photo, deflater="zlib")
    with pytest.raises(ImportError):
        encode_png_fast(photo, deflater="isal")


def test_fast_png_rejects_an_unknown_deflater(photo):
    from affectsynth.images import encode_png_fast

    with pytest.raises(ValueError, match="deflater must be one of"):
        encode_png_fast(photo, deflater="zstd")
