"""Labelled image grids: rows of images with a label per row (left) and per column (top)."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

__all__ = ["grid_cell_seed", "make_grid", "synthesize_grid_rows", "target_label"]


def _font(px: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=px)  # Pillow >= 10.1 with FreeType
    except (TypeError, OSError, AttributeError):  # pragma: no cover - old Pillow / no FreeType
        return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont) -> tuple[int, int]:
    x0, y0, x1, y1 = draw.textbbox((0, 0), text, font=font)
    return x1 - x0, y1 - y0


def _fit_text(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont, width: int) -> str:
    if _text_size(draw, text, font)[0] <= width:
        return text
    while len(text) > 1 and _text_size(draw, text + "...", font)[0] > width:
        text = text[:-1]
    return text + "..."


def make_grid(rows: Sequence[Sequence[np.ndarray]], row_labels: Sequence[str] | None = None,
              col_labels: Sequence[str] | None = None, *, cell: int = 256, pad: int = 4,
              font_px: int = 14, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Compose images into a labelled grid.

    Each image is resized (aspect kept) to fit a ``cell x cell`` box and centred in it. Rows may
    be ragged (missing cells stay blank, also past the longest row when ``col_labels`` names
    more columns); a ``None`` cell is left blank.

    Args:
        rows: rows of [H, W, 3] (or [H, W]) uint8 images; sizes may differ.
        row_labels: one label per row, drawn left of the row (None: no label column).
        col_labels: one label per column, drawn above the first row (None: no label row).
        cell: cell side in pixels.
        pad: gap between cells and around the grid, pixels.
        font_px: label font size (PIL's default font).
        background: RGB of the background.

    Returns:
        [H, W, 3] uint8 grid.

    Raises:
        ValueError: no rows, label counts that don't match, or a bad image.

    Example:
        >>> import numpy as np
        >>> g = make_grid([[np.zeros((10, 20, 3), np.uint8)] * 2], ["row"], ["a", "b"], cell=32)
        >>> g.dtype, g.shape[2]
        (dtype('uint8'), 3)
    """
    if not rows or not any(len(r) for r in rows):
        raise ValueError("make_grid: expected at least one image, got none")
    n_rows = len(rows)
    n_cols = max(len(r) for r in rows)
    if row_labels is not None and len(row_labels) != n_rows:
        raise ValueError(f"make_grid: {n_rows} rows but {len(row_labels)} row labels")
    if col_labels is not None:
        if len(col_labels) < n_cols:
            raise ValueError(f"make_grid: {n_cols} columns but {len(col_labels)} column labels")
        n_cols = len(col_labels)  # rows may be shorter (blank cells), e.g. a photo without a face
    if cell < 8 or pad < 0:
        raise ValueError(f"make_grid: cell must be >= 8 and pad >= 0, got {cell}, {pad}")
    font = _font(font_px)
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    line_h = _text_size(probe, "Ag", font)[1] + 4
    label_w = 0
    if row_labels is not None:
        label_w = min(max(_text_size(probe, str(t), font)[0] for t in row_labels) + 2 * pad, 2 * cell)
    top = line_h + pad if col_labels is not None else 0
    width = pad + label_w + n_cols * (cell + pad)
    height = pad + top + n_rows * (cell + pad)
    canvas = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(canvas)
    text_color = (0, 0, 0) if sum(background) > 384 else (255, 255, 255)
    if col_labels is not None:
        for j, t in enumerate(col_labels):
            t = _fit_text(draw, str(t), font, cell)
            tw = _text_size(draw, t, font)[0]
            x = pad + label_w + j * (cell + pad) + (cell - tw) // 2
            draw.text((x, pad), t, fill=text_color, font=font)
    for i, row in enumerate(rows):
        y = pad + top + i * (cell + pad)
        if row_labels is not None:
            t = _fit_text(draw, str(row_labels[i]), font, label_w - pad)
            th = _text_size(draw, t, font)[1]
            draw.text((pad, y + (cell - th) // 2), t, fill=text_color, font=font)
        for j, img in enumerate(row):
            if img is None:
                continue
            a = np.asarray(img)
            if a.dtype != np.uint8 or a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 3, 4)):
                raise ValueError(f"make_grid: cell ({i}, {j}) must be [H, W, 3] uint8, got {a.shape} {a.dtype}")
            if a.ndim == 3 and a.shape[2] == 1:
                a = a[..., 0]
            im = Image.fromarray(a).convert("RGB")
            s = cell / max(im.size)
            im = im.resize((max(1, round(im.size[0] * s)), max(1, round(im.size[1] * s))), Image.LANCZOS)
            x = pad + label_w + j * (cell + pad)
            canvas.paste(im, (x + (cell - im.size[0]) // 2, y + (cell - im.size[1]) // 2))
    return np.asarray(canvas)


def target_label(target: object) -> str:
    """Short column label of a target: ``happiness 1.0``, ``V+0.50 A-0.25``, ``AU12 0.8 ...``."""
    from affectsynth.result import TargetLabels

    return TargetLabels.of(target).text()


def grid_cell_seed(seed: int, row: int, column: int) -> int:
    """The synthesis seed of one grid cell (image ``row``, target ``column``).

    Example:
        >>> grid_cell_seed(0, 0, 1) == grid_cell_seed(0, 0, 1) != grid_cell_seed(1, 0, 1)
        True
    """
    return int(np.random.SeedSequence([int(seed), int(row), int(column)]).generate_state(1, np.uint64)[0]) >> 1


def synthesize_grid_rows(synthesizer: object, images: Sequence[tuple[str, np.ndarray]], targets: Sequence[object],
                         *, crop: bool = True, cell: int = 256, crop_scale: float = 1.6, seed: int = 0,
                         on_step: Callable[[str], None] | None = None
                         ) -> tuple[list[list[np.ndarray | None]], list[str], list[str]]:
    """Synthesise every target on the largest face of every image, as rows for :func:`make_grid`.

    Args:
        synthesizer: an ``affectsynth.synthesizer.Synthesizer``.
        images: (row label, [H, W, 3] uint8 image) pairs.
        targets: expression targets (columns); an expression's variant, when None, is drawn per column
            (`Synthesizer.resolve_target` with seed = column index) and named in the column label.
        crop: crop each cell to a square around the face (else the whole photo).
        cell: crop output side in pixels.
        crop_scale: crop side / face box longer side.
        seed: seed of the synthesis draws (variants, head rotation, relighting); the cell of image
            i and target k uses ``grid_cell_seed(seed, i, k)``, so a grid is reproducible.
        on_step: called with what was just done: ``"fitted NAME"`` after each photo's fit, then
            ``"synthesised k/n"`` after each cell (progress display, e.g. the ``demo`` command's).

    Returns:
        (rows, row_labels, col_labels); column 0 is the input. A photo without a face, or whose face
        the synthesizer's gates refuse (`Synthesizer.check`), gets only its input cell and the
        reason in its label ("(no face)", "(extreme-pose)", ...).
    """
    from affectsynth.batch import crop_square

    # column k's variant is drawn from seed k once, so a column shows one variant in every row and says which
    targets = [synthesizer.resolve_target(t, k) for k, t in enumerate(targets)]  # type: ignore[attr-defined]
    rows: list[list[np.ndarray | None]] = []
    row_labels: list[str] = []
    for i, (name, img) in enumerate(images):
        fits = synthesizer.fit(img, max_faces=1)  # type: ignore[attr-defined]
        if on_step is not None:
            on_step(f"fitted {name}")
        if not fits:
            rows.append([img])
            row_labels.append(f"{name} (no face)")
            continue
        fit = fits[0]
        rejection = synthesizer.check(fit)  # type: ignore[attr-defined]
        if rejection is not None:
            rows.append([img])
            row_labels.append(f"{name} ({rejection.reason})")
            continue
        prep = (lambda a: crop_square(a, fit.bbox, cell, scale=crop_scale)) if crop else (lambda a: a)
        row: list[np.ndarray | None] = [prep(img)]
        for k, t in enumerate(targets):
            res = synthesizer.synthesize(img, t, fit=fit, rng_seed=grid_cell_seed(seed, i, k))  # type: ignore[attr-defined]
            row.append(prep(np.asarray(res.image)))
            if on_step is not None:
                on_step(f"synthesised {k + 1}/{len(targets)}")
        rows.append(row)
        row_labels.append(name)
    return rows, row_labels, ["input"] + [target_label(t) for t in targets]
