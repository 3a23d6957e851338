"""Filters that paint around or over the image: fill, background_color, round_corner,
watermark and frame (a nine-patch)."""

from __future__ import annotations

import io
import math

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageColor, ImageDraw, ImageStat, UnidentifiedImageError

from thumbor_py.errors import FilterArgumentError, FilterError
from thumbor_py.imaging import pixels
from thumbor_py.imaging.filters import (
    BOOLEAN,
    IMAGE_URL,
    POSITIVE_NUMBER,
    Arg,
    FilterContext,
    image_filter,
)

_WORD = Arg(r"[\w]+", str)
_POSITION = Arg(r"(?:-?\d+p?)|center|repeat", str)
_RATIO = Arg(r"(?:-?\d+)|none", str)
_RADIUS = Arg(r"[\d]+(?:\|[\d]+)?", str)
Flags = npt.NDArray[np.bool_]
_SUPERSAMPLE = 4
_MAX_MASK_SIDE = 2048
# A nine-patch has nine cells; a few stretch regions per side is plenty. Each cell is a
# resize and a composite, so a patch striped pixel by pixel must not mean millions of them.
_MAX_CELLS = 1024


def parse_color(name: str) -> tuple[int, int, int, int]:
    """A CSS colour name or hex (with or without ``#``), or ``transparent``, as RGBA."""
    if name.lower() == "transparent":
        return (0, 0, 0, 0)
    for candidate in (name, f"#{name}"):
        try:
            red, green, blue, *alpha = ImageColor.getrgb(candidate)
        except ValueError:
            continue
        return (red, green, blue, alpha[0] if alpha else 255)
    raise FilterArgumentError(f"{name!r} is not a colour")


def mean_color(image: Image.Image) -> tuple[int, int, int, int]:
    """The mean R, G and B (floored, as Thumbor's ``fill(auto)``), opaque."""
    rgb = pixels.as_rgb(image)
    count = max(rgb.width * rgb.height, 1)
    # ImageStat sums in C without a copy; the float sums are exact (under 2**53).
    red, green, blue = (int(total) // count for total in ImageStat.Stat(rgb).sum[:3])
    return (red, green, blue, 255)


@image_filter(_WORD, BOOLEAN, grows=True)
def fill(
    image: Image.Image, ctx: FilterContext, color: str, fill_transparent: bool = False
) -> Image.Image:
    """``fill(color|auto|blur|transparent[,fill_transparent])``: pad to the requested box."""
    target = ctx.requested_size(image)
    ctx.check_canvas(target, "fill() output")
    if color == "blur":
        background = pixels.blur(image.convert("RGBA"), 50).resize(target, Image.Resampling.LANCZOS)
    else:
        rgba = mean_color(image) if color == "auto" else parse_color(color)
        background = Image.new("RGBA", target, rgba)
    position = ((target[0] - image.size[0]) // 2, (target[1] - image.size[1]) // 2)
    overlay = image.convert("RGBA")
    if fill_transparent:
        _composite(background, overlay, position)
    else:
        background.paste(overlay, position)
    return _keep_opaque(background, image)


def _keep_opaque(result: Image.Image, original: Image.Image) -> Image.Image:
    """Back to RGB when nothing became transparent and the input had no alpha."""
    if pixels.has_alpha(original) or pixels.min_value(result.getchannel("A")) < 255:
        return result
    return result.convert("RGB")


def _composite(base: Image.Image, overlay: Image.Image, position: tuple[int, int]) -> None:
    """Alpha-composite ``overlay`` onto ``base`` at ``position`` (which may be negative)."""
    left, top = position
    src_left, src_top = max(-left, 0), max(-top, 0)
    dest = (max(left, 0), max(top, 0))
    width = min(overlay.size[0] - src_left, base.size[0] - dest[0])
    height = min(overlay.size[1] - src_top, base.size[1] - dest[1])
    if width <= 0 or height <= 0:
        return
    box = (src_left, src_top, src_left + width, src_top + height)
    base.alpha_composite(overlay, dest, box)


@image_filter(_WORD)
def background_color(image: Image.Image, ctx: FilterContext, color: str) -> Image.Image:
    """``background_color(color)``: composite a transparent image onto a solid colour."""
    if not pixels.has_alpha(image):
        return image
    background = Image.new("RGBA", image.size, parse_color(color))
    background.alpha_composite(image.convert("RGBA"))
    return background


@image_filter(_RADIUS, POSITIVE_NUMBER, POSITIVE_NUMBER, POSITIVE_NUMBER, BOOLEAN)
def round_corner(
    image: Image.Image,
    ctx: FilterContext,
    radius: str,
    red: int,
    green: int,
    blue: int,
    transparent: bool = False,
) -> Image.Image:
    """``round_corner(a[|b],r,g,b[,transparent])``: elliptic corners in a colour (or clear)."""
    image = pixels.as_rgb(image)
    if transparent:
        image = image.convert("RGBA")
    width, height = image.size
    a_text, _, b_text = radius.partition("|")
    a_radius = min(int(a_text), width // 2)
    b_radius = min(int(b_text or a_text), height // 2)
    if a_radius <= 0 or b_radius <= 0:
        return image
    mask = _corner_mask(width, height, a_radius, b_radius)
    colour = Image.new(image.mode, image.size, (red, green, blue, 255)[: len(image.mode)])
    result = Image.composite(image, colour, mask)
    if transparent:
        alpha = Image.new("L", image.size, 0)
        alpha.paste(image.getchannel("A"), mask=mask)
        result.putalpha(alpha)
    return result


def _corner_mask(width: int, height: int, a_radius: int, b_radius: int) -> Image.Image:
    """255 inside the rounded rectangle, 0 in the corners, anti-aliased on the curve."""
    # Large corners need less anti-aliasing, and a 4x mask of them would be 4x the image.
    factor = max(1, min(_SUPERSAMPLE, _MAX_MASK_SIDE // max(a_radius, b_radius)))
    big = Image.new("L", (a_radius * factor, b_radius * factor), 0)
    ImageDraw.Draw(big).ellipse((0, 0, big.size[0] * 2, big.size[1] * 2), fill=255)
    corner = big.resize((a_radius, b_radius), Image.Resampling.BOX)
    mask = Image.new("L", (width, height), 255)
    mask.paste(corner, (0, 0))
    mask.paste(corner.transpose(Image.Transpose.FLIP_LEFT_RIGHT), (width - a_radius, 0))
    mask.paste(corner.transpose(Image.Transpose.FLIP_TOP_BOTTOM), (0, height - b_radius))
    mask.paste(corner.transpose(Image.Transpose.ROTATE_180), (width - a_radius, height - b_radius))
    return mask


def open_resource(ctx: FilterContext, url: str) -> Image.Image | None:
    """The image another filter argument names, decoded as RGBA; None when unavailable.

    For an animation it is decoded once and each frame gets a copy; a single frame gets
    the decoded image itself (a cached one and its copy would be twice the memory).
    """
    decoded = ctx.decoded.get(url)
    if decoded is None:
        data = ctx.resources.get(url)
        if data is None:
            return None
        # A watermark or frame image is drawn into the output, so it gets the output's
        # pixel budget (and it is decoded twice as wide: RGB, then RGBA).
        limit = min(ctx.max_pixels, ctx.budget.max_output_pixels)
        decoded = _decode_resource(data, url, limit)
        if ctx.budget.frames <= 1:
            return decoded
        ctx.decoded[url] = decoded
    return decoded.copy()


def _decode_resource(data: bytes, url: str, max_pixels: int) -> Image.Image:
    try:
        with Image.open(io.BytesIO(data)) as source:
            if source.size[0] * source.size[1] > max_pixels:
                raise FilterArgumentError(f"{url}: over the {max_pixels}-pixel limit")
            return source.convert("RGBA")
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as exc:
        raise FilterArgumentError(f"{url}: not a decodable image") from exc


@image_filter(IMAGE_URL, _POSITION, _POSITION, POSITIVE_NUMBER, _RATIO, _RATIO)
def watermark(
    image: Image.Image,
    ctx: FilterContext,
    url: str,
    x: str,
    y: str,
    alpha: int,
    w_ratio: str = "none",
    h_ratio: str = "none",
) -> Image.Image:
    """``watermark(image,x,y,alpha[,w_ratio,h_ratio])``: overlay another image.

    ``x``/``y`` are pixels (negative counts from the right/bottom), ``Np`` percentages,
    ``center`` or ``repeat``; ``alpha`` is 0 (opaque) to 100 (invisible); the ratios are
    the largest share (%) of the image the watermark may cover.
    """
    mark = open_resource(ctx, url)
    if mark is None:
        return image
    mark.putalpha(mark.getchannel("A").point(_shift_lut(-pixels.cdiv(255 * alpha, 100))))
    mark = _fit_mark(mark, image.size, _ratio(w_ratio), _ratio(h_ratio))
    base = image.convert("RGBA")
    for position in _positions(image.size, mark.size, x, y):
        _composite(base, mark, position)
    return base if pixels.has_alpha(image) else base.convert("RGB")


def _shift_lut(delta: int) -> list[int]:
    return [pixels.clamp(value + delta) for value in range(256)]


def _ratio(text: str) -> float:
    # Capped at 100 %: a mark larger than the image shows no more of itself, and an unbounded
    # ratio would let one URL allocate gigabytes.
    return 0.0 if text == "none" else min(float(text), 100.0) / 100.0


def _fit_mark(
    mark: Image.Image, size: tuple[int, int], w_ratio: float, h_ratio: float
) -> Image.Image:
    if not w_ratio and not h_ratio:
        return mark
    mark_w, mark_h = mark.size
    max_w = size[0] * w_ratio if w_ratio else mark_w * (size[1] * h_ratio) / mark_h
    max_h = size[1] * h_ratio if h_ratio else mark_h * max_w / mark_w
    if mark_w / max_w >= mark_h / max_h:
        new_size = (round(max_w), round(mark_h * max_w / mark_w))
    else:
        new_size = (round(mark_w * max_h / mark_h), round(max_h))
    return mark.resize((max(new_size[0], 1), max(new_size[1], 1)), Image.Resampling.LANCZOS)


def _positions(
    size: tuple[int, int], mark: tuple[int, int], x: str, y: str
) -> list[tuple[int, int]]:
    x, y = _percent(x, size[0]), _percent(y, size[1])
    if x == "repeat" and y == "repeat":
        counts = [_tiles(size[i], mark[i]) for i in range(2)]
        if counts[0][0] * counts[1][0] > 100:
            counts = [(min(6, c), size[i] - min(6, c) * mark[i]) for i, (c, _) in enumerate(counts)]
        columns, rows = (_repeat(counts[i], mark[i]) for i in range(2))
        return [(left, top) for left in columns for top in rows]
    if x == "repeat":
        columns = _repeat(_tiles(size[0], mark[0]), mark[0])
    else:
        columns = [_offset(x, size[0], mark[0])]
    if y == "repeat":
        rows = _repeat(_tiles(size[1], mark[1]), mark[1])
    else:
        rows = [_offset(y, size[1], mark[1])]
    return [(left, top) for left in columns for top in rows]


def _percent(position: str, length: int) -> str:
    if not position.endswith("p"):
        return position
    sign = "-" if position.startswith("-") else ""
    return f"{sign}{round(length * float(position.strip('-p')) / 100 + 1e-5)}"


def _offset(position: str, length: int, mark: int) -> int:
    if position == "center":
        return int((length - mark) / 2)
    value = int(position)
    return length - mark + value if position.startswith("-") else value


def _tiles(length: int, mark: int) -> tuple[int, int]:
    count, spare = divmod(length, mark)
    if length / mark < 2:
        return math.ceil(length / mark), 10
    return count, spare


def _repeat(tiles: tuple[int, int], mark: int) -> list[int]:
    count, spare = tiles
    space = spare // (max(count, 2) - 1)
    return [i * space + i * mark for i in range(int(count))]


@image_filter(IMAGE_URL)
def frame(image: Image.Image, ctx: FilterContext, url: str) -> Image.Image:
    """``frame(image)``: draw a nine-patch around the image (padded to its content box)."""
    patch = open_resource(ctx, url)
    if patch is None:
        return image
    if patch.size[0] < 3 or patch.size[1] < 3:
        raise FilterArgumentError(f"frame: {url} is too small to be a nine-patch")
    top_edge, bottom_edge, left_edge, right_edge = _edges(patch)
    left, top, right, bottom = _padding(bottom_edge, right_edge)
    size = (image.size[0] + left + right, image.size[1] + top + bottom)
    ctx.check_canvas(size, "frame() output")
    columns = _cells(top_edge, size[0])
    rows = _cells(left_edge, size[1])
    if len(columns) * len(rows) > _MAX_CELLS:
        raise FilterError(f"frame: {url} has more than {_MAX_CELLS} nine-patch cells")
    target = Image.new("RGBA", size, "#fff")
    target.alpha_composite(image.convert("RGBA"), (left, top))
    for src_y, src_h, dst_y, dst_h in rows:
        for src_x, src_w, dst_x, dst_w in columns:
            if dst_w <= 0 or dst_h <= 0:
                continue
            cell = patch.crop((src_x + 1, src_y + 1, src_x + 1 + src_w, src_y + 1 + src_h))
            cell = cell.resize((dst_w, dst_h), Image.Resampling.BILINEAR)
            _composite(target, cell, (dst_x, dst_y))
    return target


def _edges(patch: Image.Image) -> tuple[Flags, Flags, Flags, Flags]:
    """The black, opaque markers along each border of a nine-patch, corners excluded: top,
    bottom, left, right. Only the borders are read, so a large patch is not copied whole."""
    width, height = patch.size
    boxes = (
        (1, 0, width - 1, 1),
        (1, height - 1, width - 1, height),
        (0, 1, 1, height - 1),
        (width - 1, 1, width, height - 1),
    )
    top, bottom, left, right = (_markers(patch.crop(box)) for box in boxes)
    return top, bottom, left, right


def _markers(strip: Image.Image) -> Flags:
    values = pixels.to_array(strip).reshape(-1, 4)
    markers: Flags = (values[:, :3].max(axis=1) == 0) & (values[:, 3] == 255)
    return markers


def _padding(bottom_edge: Flags, right_edge: Flags) -> tuple[int, int, int, int]:
    """Content-box padding from the bottom row and the right column of a nine-patch."""
    bottom_row = np.flatnonzero(bottom_edge)
    right_column = np.flatnonzero(right_edge)
    inner_w, inner_h = len(bottom_edge), len(right_edge)
    left = int(bottom_row[0]) if bottom_row.size else 0
    right = inner_w - 1 - int(bottom_row[-1]) if bottom_row.size else 0
    top = int(right_column[0]) if right_column.size else 0
    bottom = inner_h - 1 - int(right_column[-1]) if right_column.size else 0
    return left, top, right, bottom


def _cells(flags: Flags, target: int) -> list[tuple[int, int, int, int]]:
    """Runs of equal stretchiness: (source start, source length, target start, length)."""
    runs: list[tuple[int, int, bool]] = []
    for index, flag in enumerate(flags.tolist()):
        if runs and runs[-1][2] == flag:
            start, length, _ = runs[-1]
            runs[-1] = (start, length + 1, flag)
        else:
            runs.append((index, 1, flag))
    stretch_total = sum(length for _, length, flag in runs if flag)
    spare = max(target - (len(flags) - stretch_total), 0)
    cells, position = [], 0
    for start, length, flag in runs:
        size = int(length / stretch_total * spare + 0.5) if flag else length
        cells.append((start, length, position, size))
        position += size
    return cells
