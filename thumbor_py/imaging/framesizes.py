"""The size of every frame or page of a source, read from headers before any decoding.

A source's first frame says little about the others: Pillow grows a GIF's canvas when a
later frame reaches past it (a GIF may declare a 1x1 screen and then draw 9000x9000), and
every TIFF page has its own size. :func:`check_frames` walks the headers and refuses the
source when one frame, or all of them together, would be over ``max_pixels``.
"""

from __future__ import annotations

from collections.abc import Iterator

from PIL import Image

from thumbor_py.errors import ImageDecodeError, ImageTooLargeError

_GIF_EXTENSION = 0x21
_GIF_IMAGE = 0x2C
_GIF_TRAILER = 0x3B
# Multi-page formats whose pages each have their own size, and whose seek reads headers
# only; the frames of other formats (WebP, APNG, AVIF, FLI animations) share one canvas.
_PER_PAGE = frozenset({"TIFF", "MPO", "DCX", "PSD"})
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError)


def check_frames(image: Image.Image, data: bytes, frames: int, max_pixels: int) -> None:
    """Refuse (400) a source with a frame over ``max_pixels``, or whose frames (each at the
    canvas size Pillow will decode it to) add up to more than ``max_pixels``."""
    total = 0
    for index, (width, height) in enumerate(frame_sizes(image, data, frames)):
        pixels = width * height
        if pixels > max_pixels:
            raise ImageTooLargeError(
                f"frame {index + 1} is {width}x{height}, over the {max_pixels}-pixel "
                f"max_pixels limit"
            )
        total += pixels
        if total > max_pixels:
            raise ImageTooLargeError(
                f"frames 1-{index + 1} add up to {total} pixels, over the {max_pixels}-pixel "
                f"max_pixels limit"
            )


def frame_sizes(image: Image.Image, data: bytes, frames: int) -> Iterator[tuple[int, int]]:
    """The canvas size of each frame, as Pillow will decode it, without decoding."""
    if image.format == "GIF":
        yield from gif_canvas_sizes(data)
    elif frames > 1 and image.format in _PER_PAGE:
        yield from _seek_sizes(image, frames)
    else:
        for _ in range(frames):
            yield image.size


def _seek_sizes(image: Image.Image, frames: int) -> Iterator[tuple[int, int]]:
    """Page sizes of multi-page formats (TIFF, MPO, ...), whose seek reads headers only."""
    try:
        for index in range(frames):
            image.seek(index)
            yield image.size
        image.seek(0)
    except _DECODE_ERRORS as exc:
        raise ImageDecodeError("a frame or page header is truncated or corrupt") from exc


def gif_canvas_sizes(data: bytes) -> Iterator[tuple[int, int]]:
    """For each image of a GIF, the canvas Pillow decodes it on: the logical screen, grown
    to hold every frame so far. Stops quietly where the data is truncated."""
    if len(data) < 13 or data[:3] != b"GIF":
        return
    width, height = _u16(data, 6), _u16(data, 8)
    flags = data[10]
    offset = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    while offset < len(data):
        kind = data[offset]
        if kind == _GIF_IMAGE and offset + 10 <= len(data):
            left, top = _u16(data, offset + 1), _u16(data, offset + 3)
            right, bottom = left + _u16(data, offset + 5), top + _u16(data, offset + 7)
            width, height = max(width, right), max(height, bottom)
            yield width, height
            local = data[offset + 9]
            offset += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0)
            offset = _skip_blocks(data, offset + 1)  # after the LZW minimum code size
        elif kind == _GIF_EXTENSION:
            offset = _skip_blocks(data, offset + 2)
        elif kind == _GIF_TRAILER:
            return
        else:  # Pillow skips a stray byte and reads on: so must we, or a frame hides
            offset += 1


def _skip_blocks(data: bytes, offset: int) -> int:
    """The offset after a chain of data sub-blocks (each a length byte, 0 ends it)."""
    while offset < len(data):
        length = data[offset]
        offset += 1 + length
        if length == 0:
            break
    return offset


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")
