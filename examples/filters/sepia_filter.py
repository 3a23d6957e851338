"""A worked filter plugin: ``sepia([strength])`` tints the image brown.

Enable it with::

    imaging:
      filter_plugins: ["sepia_filter:sepia"]   # module:function, the module on PYTHONPATH

then ask for ``/unsafe/300x200/filters:sepia(80)/photo.jpg``. The function receives the
image (each frame of an animation in turn), a read-only ``FilterContext``, and its
arguments already parsed by the declared ``Arg`` types; it returns the new image. A URL
whose arguments do not match (``sepia(x)``) skips the filter, or answers 400 in strict mode.
"""

from __future__ import annotations

from PIL import Image, ImageOps

from thumbor_py.errors import FilterArgumentError
from thumbor_py.imaging.filters import POSITIVE_NUMBER, FilterContext, image_filter


@image_filter(POSITIVE_NUMBER)
def sepia(image: Image.Image, ctx: FilterContext, strength: int = 100) -> Image.Image:
    """``sepia([strength])``: blend a brown-toned greyscale over the image (0..100 %)."""
    if strength > 100:
        raise FilterArgumentError("sepia: strength is a percentage (0..100)")
    alpha = image.getchannel("A") if "A" in image.getbands() else None
    rgb = image.convert("RGB")
    toned = ImageOps.colorize(rgb.convert("L"), black=(40, 26, 13), white=(255, 240, 192))
    result = Image.blend(rgb, toned, strength / 100)
    if alpha is not None:
        result.putalpha(alpha)
    return result
