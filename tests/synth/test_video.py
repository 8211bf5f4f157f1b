"""Frame-sequence writers (affectsynth.video): what a player or a dataloader reads back."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from affectsynth.video import WRITERS, frame_name, video_formats, write_frames


def _frames(n: int = 5, size: int = 33) -> list[np.ndarray]:
    """A still background with a moving square: what an animation of one face looks like."""
    y, x = np.mgrid[0:size, 0:size]
    bg = np.stack([x * 255 // size, y * 255 // size, (x + y) * 127 // size], -1).astype(np.uint8)
    out = []
    for i in range(n):
        f = bg.copy()
        f[4 + i:12 + i, 6:14] = (255, 40 * i, 0)
        out.append(f)
    return out


def test_png_frames_round_trip_exactly(tmp_path):
    frames = _frames()
    paths = write_frames(tmp_path / "seq", frames, fmt="png", fps=12)
    assert [p.name for p in paths] == [frame_name(i) for i in range(5)] == ["frame_0000.png", "frame_0001.png",
                                                                            "frame_0002.png", "frame_0003.png",
                                                                            "frame_0004.png"]
    for p, f in zip(paths, frames):
        np.testing.assert_array_equal(np.asarray(Image.open(p)), f)


@pytest.mark.parametrize("fmt", ["gif", "webp"])
def test_animated_files_hold_every_frame_at_the_rate(tmp_path, fmt):
    frames = _frames(6)
    (path,) = write_frames(tmp_path / f"a.{fmt}", frames, fmt=fmt, fps=8, quality=100)
    with Image.open(path) as im:
        assert im.n_frames == 6 and im.size == (33, 33)
        durations, decoded = [], []
        for i in range(6):
            im.seek(i)
            im.load()
            durations.append(im.info["duration"])
            decoded.append(np.asarray(im.convert("RGB")).astype(int))
    assert sum(durations) == pytest.approx(750, abs=6)  # 6 frames at 8 fps
    # the still background does not flicker: unchanged pixels decode the same in every frame
    still = np.ones((33, 33), bool)
    still[4:17, 6:14] = False
    for d in decoded[1:]:
        np.testing.assert_array_equal(d[still], decoded[0][still])
    if fmt == "webp":  # quality 100 is lossless
        np.testing.assert_array_equal(decoded[3], frames[3])


def test_mp4_writes_or_names_the_install_command(tmp_path):
    frames = _frames(4, size=33)  # odd size: padded to even, never resampled
    if "mp4" not in video_formats():
        with pytest.raises(ImportError, match=r"affectsynth\[video\]"):
            write_frames(tmp_path / "a.mp4", frames, fmt="mp4", fps=12)
        return
    import imageio_ffmpeg

    (path,) = write_frames(tmp_path / "a.mp4", frames, fmt="mp4", fps=12)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    got = [np.frombuffer(b, np.uint8).reshape(meta["size"][1], meta["size"][0], 3) for b in reader]
    assert meta["size"] == (34, 34) and len(got) == 4 and meta["fps"] == pytest.approx(12)
    assert np.abs(got[2][:33, :33].astype(int) - frames[2]).mean() < 20  # lossy, but the same picture
    assert not list(tmp_path.glob(".*"))  # no temporary file left


def test_writer_errors_name_what_was_expected(tmp_path):
    with pytest.raises(ValueError, match="format must be one of png, gif, webp, mp4"):
        write_frames(tmp_path / "a.avi", _frames(), fmt="avi", fps=12)
    with pytest.raises(ValueError, match="at least one frame"):
        write_frames(tmp_path / "a.gif", [], fmt="gif", fps=12)
    with pytest.raises(ValueError, match=r"frame 1 must be \[33, 33, 3\] uint8"):
        write_frames(tmp_path / "a.gif", [_frames()[0], np.zeros((8, 8, 3), np.uint8)], fmt="gif", fps=12)
    with pytest.raises(ValueError, match="fps"):
        write_frames(tmp_path / "a.gif", _frames(), fmt="gif", fps=0)
    assert set(video_formats()) >= {"png", "gif", "webp"} and set(video_formats()) <= set(WRITERS)
