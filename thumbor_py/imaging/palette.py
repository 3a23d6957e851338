"""Palette output: GIF frames through Pillow's fast octree quantiser, and PNGs that stay
indexed when their source was (Thumbor's ``PILLOW_PRESERVE_INDEXED_MODE``)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from thumbor_py.imaging.pixels import has_alpha

_TRANSPARENT_INDEX = 255
_ALPHA_THRESHOLD = 128


def to_gif_frames(frames: list[Image.Image]) -> list[Image.Image]:
    """Each frame as a P image with its own palette; transparency on index 255."""
    return [_gif_frame(frame) for frame in frames]


def _gif_frame(image: Image.Image) -> Image.Image:
    if image.mode in ("L", "P") and "transparency" not in image.info:
        return image
    if not has_alpha(image):
        return image.convert("RGB").quantize(256, method=Image.Quantize.FASTOCTREE)
    rgba = image.convert("RGBA")
    indexed = rgba.convert("RGB").quantize(255, method=Image.Quantize.FASTOCTREE)
    clear = rgba.getchannel("A").point(lambda a: 255 if a < _ALPHA_THRESHOLD else 0)
    indexed.paste(_TRANSPARENT_INDEX, mask=clear)
    colours = indexed.getpalette() or []
    colours = (colours + [0] * 768)[:768]
    indexed.putpalette(colours)
    indexed.info["transparency"] = _TRANSPARENT_INDEX
    return indexed


def to_palette(image: Image.Image) -> Image.Image:
    """A P image: exact when there are at most 256 colours, else octree-quantised."""
    if image.mode == "P":
        return image
    rgba = image.convert("RGBA")
    values = np.asarray(rgba, dtype=np.uint8).reshape(-1, 4)
    keys = values.view(np.uint32).ravel()
    colours, inverse = np.unique(keys, return_inverse=True)
    if len(colours) > 256:
        return rgba.quantize(256, method=Image.Quantize.FASTOCTREE)
    table = colours.view(np.uint8).reshape(-1, 4)
    indexed = Image.fromarray(inverse.astype(np.uint8).reshape(rgba.size[1], rgba.size[0]), "L")
    indexed = indexed.convert("P")
    indexed.putpalette(table[:, :3].ravel().tolist())
    alphas = table[:, 3]
    if (alphas < 255).any():
        indexed.info["transparency"] = bytes(alphas.tolist())
    return indexed
