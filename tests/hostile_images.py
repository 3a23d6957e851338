"""Small hostile sources built in memory: tiny files that declare huge frames or pages."""

from __future__ import annotations

import io
import struct

from PIL import Image

# LZW for one pixel of colour 0 with a minimum code size of 2: clear (4), 0, end (5), as
# 3-bit codes packed least significant bit first; one 2-byte data sub-block.
_ONE_PIXEL = bytes([2, 2, 0x44, 0x01, 0])


def gif_growing_canvas(*later: tuple[int, int], screen: tuple[int, int] = (1, 1)) -> bytes:
    """A GIF whose logical screen is ``screen``, with a 1x1 first frame and then one frame
    of each ``later`` size: Pillow grows the canvas to each larger frame as it reaches it.
    Each frame holds one pixel of data (decoding would find it truncated)."""
    header = b"GIF89a" + struct.pack("<HHBBB", *screen, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff"
    frames = [
        b"\x2c" + struct.pack("<HHHHB", 0, 0, *size, 0) + _ONE_PIXEL for size in ((1, 1), *later)
    ]
    return header + b"".join(frames) + b"\x3b"


def gif_frames(size: tuple[int, int], count: int) -> bytes:
    """A real animated GIF of ``count`` frames of ``size``, each a different colour."""
    frames = [Image.new("RGB", size, (index * 9 % 256, 80, 160)) for index in range(count)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    return buffer.getvalue()


def tiff_pages(*sizes: tuple[int, int]) -> bytes:
    """A little-endian TIFF with one 8-bit grey page per size; every page's pixel data is a
    single byte (a header read finds each page's size; decoding the big ones would not)."""
    out = bytearray(b"II*\x00\x00\x00\x00\x00")
    previous_link = 4
    for width, height in sizes:
        data_offset = len(out)
        out += b"\x80\x00"  # one byte of pixels (and padding to a word boundary)
        ifd_offset = len(out)
        struct.pack_into("<I", out, previous_link, ifd_offset)
        tags = [
            (256, 4, width),  # ImageWidth
            (257, 4, height),  # ImageLength
            (258, 3, 8),  # BitsPerSample
            (259, 3, 1),  # Compression: none
            (262, 3, 1),  # PhotometricInterpretation: black is zero
            (273, 4, data_offset),  # StripOffsets
            (277, 3, 1),  # SamplesPerPixel
            (278, 4, height),  # RowsPerStrip
            (279, 4, 1),  # StripByteCounts
        ]
        out += struct.pack("<H", len(tags))
        for tag, kind, value in tags:
            packed = struct.pack("<HI", value, 0)[:4] if kind == 3 else struct.pack("<I", value)
            out += struct.pack("<HHI", tag, kind, 1) + packed
        previous_link = len(out)
        out += b"\x00\x00\x00\x00"
    return bytes(out)


def nine_patch(side: int) -> bytes:
    """A ``side`` x ``side`` nine-patch PNG whose content box is its centre pixel: each
    ``frame()`` with it grows the canvas by about ``side`` pixels both ways."""
    patch = Image.new("RGBA", (side, side), (255, 255, 255, 255))
    black = (0, 0, 0, 255)
    middle = side // 2
    for marker in ((middle, 0), (0, middle), (middle, side - 1), (side - 1, middle)):
        patch.putpixel(marker, black)
    for corner in ((0, 0), (side - 1, 0), (0, side - 1), (side - 1, side - 1)):
        patch.putpixel(corner, (0, 0, 0, 0))
    buffer = io.BytesIO()
    patch.save(buffer, "PNG")
    return buffer.getvalue()
