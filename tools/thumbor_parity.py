"""Regenerate the Thumbor 7.8 parity fixture in ``tests/parity/``.

This tool is run by hand (never by the test suite).  It

1. deterministically generates the synthetic source images in ``tests/parity/images/``
   (and copies two real photos from ``samples/``),
2. writes one ``thumbor.conf`` per configuration into a temporary directory,
3. starts the real Thumbor 7.8 (``$THUMBOR_BIN``, default ``/tmp/thumbor-venv/bin/thumbor``)
   on a free port for each configuration,
4. requests every fixture URL with :mod:`urllib` and records status, headers, decoded image
   properties and an 8x8 pixel signature,
5. writes ``tests/parity/thumbor78.json`` and stops Thumbor.

Usage::

    .venv/bin/python tools/thumbor_parity.py            # images + fixture
    .venv/bin/python tools/thumbor_parity.py --images-only
"""

from __future__ import annotations

import argparse
import functools
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from libthumbor import CryptoURL
from libthumbor.url_signers.base64_hmac_sha1 import UrlSigner
from PIL import Image, ImageCms, ImageDraw, JpegImagePlugin

ROOT = Path(__file__).resolve().parent.parent
PARITY_DIR = ROOT / "tests" / "parity"
IMAGES_DIR = PARITY_DIR / "images"
FIXTURE = PARITY_DIR / "thumbor78.json"
SAMPLES_DIR = ROOT / "samples"
THUMBOR_BIN = os.environ.get("THUMBOR_BIN", "/tmp/thumbor-venv/bin/thumbor")

SECURITY_KEY = "ACME-SEC"
SIGNATURE_SIZE = (8, 8)

# Settings shared by every configuration. Everything not listed is Thumbor's default
# (QUALITY=80, MAX_AGE=86400, ENABLE_ETAGS=True, AUTO_WEBP=False, ...).
BASE_CONFIG: dict[str, Any] = {
    "LOADER": "thumbor.loaders.file_loader",
    "STORAGE": "thumbor.storages.no_storage",
    "RESULT_STORAGE": None,
    "SECURITY_KEY": SECURITY_KEY,
    "ALLOW_UNSAFE_URL": True,
    # Thumbor's default is False; thumbor-py always applies EXIF orientation.
    "RESPECT_ORIENTATION": True,
    # No detectors: `smart` is accepted but behaves like a plain centred crop.
    "DETECTORS": [],
}

CONFIGS: dict[str, dict[str, Any]] = {
    "default": {},
    "max_size": {"MAX_WIDTH": 400, "MAX_HEIGHT": 300},
    "no_unsafe": {"ALLOW_UNSAFE_URL": False},
}


# --------------------------------------------------------------------------------------
# Source images
# --------------------------------------------------------------------------------------

QUADRANTS = ((220, 40, 40), (40, 180, 40), (40, 60, 220), (230, 210, 40))  # TL TR BL BR


def quadrant_image(width: int, height: int) -> Image.Image:
    """Four coloured quadrants (red, green, blue, yellow) with a left-to-right brightness
    gradient, a white disc in the centre and a black bar along the top edge."""
    img = Image.new("RGB", (width, height))
    px = img.load()
    assert px is not None
    for y in range(height):
        for x in range(width):
            base = QUADRANTS[(2 if y >= height // 2 else 0) + (1 if x >= width // 2 else 0)]
            k = 0.55 + 0.45 * x / max(width - 1, 1)
            px[x, y] = tuple(int(c * k) for c in base)
    draw = ImageDraw.Draw(img)
    r = min(width, height) // 8
    cx, cy = width // 2, height // 2
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(255, 255, 255))
    draw.rectangle((0, 0, width - 1, max(height // 40, 2)), fill=(0, 0, 0))
    return img


def make_alpha_png() -> Image.Image:
    # Fully transparent pixels hide green RGB: shows whether alpha is dropped or composited.
    img = Image.new("RGBA", (200, 250), (0, 200, 0, 0))
    draw = ImageDraw.Draw(img)
    draw.ellipse((20, 20, 140, 140), fill=(230, 30, 30, 255))
    draw.rectangle((80, 120, 190, 240), fill=(30, 30, 230, 128))
    return img


def make_palette_png() -> Image.Image:
    img = Image.new("P", (160, 120), 0)
    palette = [0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0, 255, 255, 255]
    img.putpalette(palette + [0] * (768 - len(palette)))
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, 0, 79, 59), fill=1)
    draw.rectangle((80, 0, 159, 59), fill=2)
    draw.rectangle((0, 60, 79, 119), fill=3)
    draw.ellipse((90, 70, 150, 110), fill=4)
    img.info["transparency"] = 0  # the black background (bottom-right) is transparent
    return img


def make_gray_jpeg() -> Image.Image:
    img = Image.new("L", (240, 180))
    px = img.load()
    assert px is not None
    for y in range(180):
        for x in range(240):
            px[x, y] = (x * 255 // 239 + (60 if y < 90 else 0)) % 256
    return img


def make_border_png() -> Image.Image:
    """White 300x200 canvas, content box (40,30)-(219,149) i.e. 180x120 after trim."""
    img = Image.new("RGB", (300, 200), (255, 255, 255))
    content = quadrant_image(180, 120)
    img.paste(content, (40, 30))
    return img


def make_halo_png() -> Image.Image:
    """White canvas, a light-grey (235) halo 10 px wide around a dark-blue 100x60 box at
    (100,70). Trim with low tolerance keeps the halo (120x80), high tolerance removes it."""
    img = Image.new("RGB", (300, 200), (255, 255, 255))
    draw = ImageDraw.Draw(img)
    draw.rectangle((90, 60, 209, 139), fill=(235, 235, 235))
    draw.rectangle((100, 70, 199, 129), fill=(20, 30, 120))
    # bottom-right corner pixel differs so trim:bottom-right uses another reference colour
    draw.rectangle((290, 190, 299, 199), fill=(0, 0, 0))
    return img


def make_gif(frames: int) -> Image.Image | list[Image.Image]:
    colours = ((255, 0, 0), (0, 255, 0), (0, 0, 255))
    out = []
    for i in range(frames):
        img = Image.new("RGB", (120, 90) if frames == 1 else (80, 60), colours[i])
        ImageDraw.Draw(img).rectangle((10, 10, 40, 30), fill=(255, 255, 255))
        out.append(img.convert("P", palette=Image.Palette.ADAPTIVE, colors=8))
    return out[0] if frames == 1 else out


def exif_with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def deterministic_srgb_profile() -> bytes:
    """LittleCMS' sRGB profile with the creation date and profile ID (an MD5) zeroed."""
    data = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    data[24:36] = bytes(12)
    data[84:100] = bytes(16)
    return bytes(data)


def generate_images() -> None:
    if IMAGES_DIR.exists():
        shutil.rmtree(IMAGES_DIR)
    IMAGES_DIR.mkdir(parents=True)

    def out(name: str) -> Path:
        return IMAGES_DIR / name

    jpeg: dict[str, Any] = {"quality": 85, "subsampling": 2}
    quadrant_image(800, 600).save(out("landscape.jpg"), **jpeg)
    quadrant_image(600, 800).save(out("portrait.jpg"), **jpeg)
    quadrant_image(200, 140).save(out("small.jpg"), **jpeg)
    quadrant_image(1000, 250).save(out("wide.jpg"), **jpeg)
    make_alpha_png().save(out("alpha.png"))
    make_palette_png().save(out("palette.png"), transparency=0)
    make_gray_jpeg().save(out("gray.jpg"), **jpeg)
    quadrant_image(160, 120).save(out("small.webp"), quality=80)
    single = make_gif(1)
    assert isinstance(single, Image.Image)
    single.save(out("single.gif"))
    anim = make_gif(3)
    assert isinstance(anim, list)
    anim[0].save(out("anim.gif"), save_all=True, append_images=anim[1:], duration=100, loop=0)
    # Stored 300x200; orientation 6 means "rotate 90 CW to display" -> displayed 200x300.
    stored = quadrant_image(300, 200)
    stored.save(out("exif6.jpg"), exif=exif_with_orientation(6), **jpeg)
    stored.save(out("exif3.jpg"), exif=exif_with_orientation(3), **jpeg)
    make_border_png().save(out("border.png"))
    make_halo_png().save(out("halo.png"))
    srgb = deterministic_srgb_profile()
    quadrant_image(120, 90).save(out("icc.jpg"), icc_profile=srgb, **jpeg)
    for name in ("chelsea.jpg", "coffee.jpg"):
        shutil.copyfile(SAMPLES_DIR / name, out(name))
    out("not_an_image.jpg").write_text("this is not an image\n")


# --------------------------------------------------------------------------------------
# URL list
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    group: str
    config: str
    url: str
    note: str


_signer = UrlSigner(security_key=SECURITY_KEY)


def sign(path: str, key: str | None = None) -> str:
    """Sign an URL path (without leading slash) the way Thumbor expects."""
    signer = _signer if key is None else UrlSigner(security_key=key)
    signature: bytes = signer.signature(path)
    return "/" + signature.decode() + "/" + path


def cases() -> list[Case]:
    """The fixture URLs, grouped by the part of the grammar they exercise."""
    out: list[Case] = []
    group = ""

    def raw(url: str, note: str, config: str = "default") -> None:
        out.append(Case(group, config, url, note))

    def u(path: str, note: str, config: str = "default") -> None:
        raw("/unsafe/" + path, note, config)

    def s(path: str, note: str, config: str = "default") -> None:
        raw(sign(path), note, config)

    # --- sizes -------------------------------------------------------------------------
    group = "size"
    u("landscape.jpg", "no size: original")
    u("300x200/landscape.jpg", "same aspect")
    u("300x300/landscape.jpg", "square crop of landscape (centre)")
    u("300x0/landscape.jpg", "width only (0)")
    u("0x200/landscape.jpg", "height only (0)")
    u("300x/landscape.jpg", "width only (missing)")
    u("x200/landscape.jpg", "height only (missing)")
    u("0x0/landscape.jpg", "0x0")
    u("x/landscape.jpg", "x only")
    u("origxorig/landscape.jpg", "orig keyword both")
    u("origx100/landscape.jpg", "orig width, fixed height")
    u("300xorig/landscape.jpg", "fixed width, orig height")
    u("1x1/landscape.jpg", "1x1")
    u("10x500/landscape.jpg", "tall thin crop")
    u("1600x1200/landscape.jpg", "upscale 2x default mode")
    u("400x300/small.jpg", "upscale small image default mode")
    u("1000x0/small.jpg", "upscale small image width only")
    u("200x200/portrait.jpg", "square crop of portrait")
    u("300x100/wide.jpg", "wide crop")
    u("100x300/wide.jpg", "tall crop of wide image")
    # --- flips -------------------------------------------------------------------------
    group = "flip"
    u("-300x200/landscape.jpg", "horizontal flip")
    u("300x-200/landscape.jpg", "vertical flip")
    u("-300x-200/landscape.jpg", "both flips")
    u("-0x0/landscape.jpg", "flip with 0 width")
    u("-0x-0/landscape.jpg", "flip both with 0 sizes")
    u("-x-/landscape.jpg", "flip both without sizes")
    u("-origx-orig/landscape.jpg", "flip both with orig sizes")
    u("-300x0/landscape.jpg", "h flip, width only")
    u("fit-in/-300x-300/landscape.jpg", "fit-in with flips")
    # --- alignment ---------------------------------------------------------------------
    group = "align"
    for align in ("left", "right", "center"):
        u(f"300x300/{align}/landscape.jpg", f"halign {align}")
    for valign in ("top", "bottom", "middle"):
        u(f"300x150/{valign}/portrait.jpg", f"valign {valign}")
    u("300x300/left/top/landscape.jpg", "left top")
    u("300x300/right/bottom/landscape.jpg", "right bottom")
    u("300x150/right/bottom/portrait.jpg", "right bottom portrait")
    u("300x150/left/top/portrait.jpg", "left top portrait")
    # --- manual crop -------------------------------------------------------------------
    group = "crop"
    u("100x100:400x300/landscape.jpg", "manual crop only")
    u("100x100:400x300/150x0/landscape.jpg", "manual crop + width")
    u("100x100:400x300/100x100/landscape.jpg", "manual crop + different aspect")
    u("0x0:800x600/landscape.jpg", "manual crop full image")
    u("0x0:0x0/landscape.jpg", "manual crop all zero")
    u("700x500:900x700/landscape.jpg", "manual crop partially outside")
    u("900x700:1000x800/landscape.jpg", "manual crop fully outside")
    u("400x300:100x100/landscape.jpg", "manual crop inverted corners")
    u("100x100:100x100/landscape.jpg", "manual crop empty")
    u("100x100:400x300/fit-in/100x100/landscape.jpg", "manual crop before fit-in (bad order)")
    u("fit-in/100x100:400x300/100x100/landscape.jpg", "fit-in then manual crop (bad order)")
    u("100x100:400x300/-150x-100/landscape.jpg", "manual crop + flips")
    u("50x50:250x150/exif6.jpg", "manual crop on EXIF-rotated image")
    # --- fit-in family -----------------------------------------------------------------
    group = "fit_in"
    u("fit-in/300x300/landscape.jpg", "fit-in")
    u("fit-in/300x0/landscape.jpg", "fit-in width only")
    u("fit-in/0x300/landscape.jpg", "fit-in height only")
    u("fit-in/landscape.jpg", "fit-in without size")
    u("fit-in/1000x1000/small.jpg", "fit-in larger than source (no upscale)")
    u("fit-in/300x300/portrait.jpg", "fit-in portrait")
    u("adaptive-fit-in/300x400/landscape.jpg", "adaptive-fit-in swaps box")
    u("adaptive-fit-in/400x300/landscape.jpg", "adaptive-fit-in no swap needed")
    u("full-fit-in/300x300/landscape.jpg", "full-fit-in")
    u("full-fit-in/300x300/portrait.jpg", "full-fit-in portrait")
    u("adaptive-full-fit-in/300x400/landscape.jpg", "adaptive-full-fit-in")
    u("fit-in/300x300/filters:fill(blue)/landscape.jpg", "fit-in + fill(blue)")
    u("fit-in/300x300/filters:fill(ff0000)/alpha.png", "fit-in + fill(hex) on RGBA")
    u("fit-in/300x300/filters:fill(transparent)/alpha.png", "fit-in + fill(transparent)")
    u("fit-in/300x300/filters:fill(auto)/landscape.jpg", "fit-in + fill(auto)")
    u("fit-in/1000x1000/filters:upscale()/small.jpg", "fit-in + upscale()")
    u("fit-in/300x300/filters:fill(ff0000)/small.jpg", "fill pads a small image (no upscale)")
    u("fit-in/300x300/filters:fill(ff0000,true)/alpha.png", "fill with fill_transparent")
    u("fit-in/100x100/exif6.jpg", "fit-in on EXIF orientation 6")
    # --- trim --------------------------------------------------------------------------
    group = "trim"
    u("trim/border.png", "trim white border")
    u("trim:bottom-right/border.png", "trim by bottom-right colour")
    u("trim/100x0/border.png", "trim + resize")
    u("trim/halo.png", "trim halo tolerance 0")
    u("trim:top-left:5/halo.png", "trim halo tolerance 5")
    u("trim:top-left:50/halo.png", "trim halo tolerance 50")
    u("trim:bottom-right/halo.png", "trim halo bottom-right (black corner)")
    u("trim:top-left:500/halo.png", "trim tolerance above max")
    u("trim/landscape.jpg", "trim image without border")
    u("trim/alpha.png", "trim transparent RGBA")
    # --- meta --------------------------------------------------------------------------
    group = "meta"
    u("meta/landscape.jpg", "meta original")
    u("meta/300x200/landscape.jpg", "meta resize")
    u("meta/300x300/landscape.jpg", "meta crop")
    u("meta/fit-in/300x300/landscape.jpg", "meta fit-in")
    u("meta/100x100:400x300/150x0/landscape.jpg", "meta manual crop")
    u("meta/-300x-200/landscape.jpg", "meta flips")
    u("meta/smart/300x300/landscape.jpg", "meta smart without detectors")
    u("meta/exif6.jpg", "meta EXIF orientation 6")
    u("meta/trim/border.png", "meta trim")
    u("meta/alpha.png", "meta RGBA png")
    u("meta/anim.gif", "meta animated gif")
    u("meta/300x200/filters:rotate(90)/landscape.jpg", "meta + rotate filter")
    u("meta/missing.jpg", "meta missing file")
    # --- smart (no detectors configured) ----------------------------------------------
    group = "smart"
    u("smart/300x300/landscape.jpg", "smart before size")
    u("300x300/smart/portrait.jpg", "smart after size")
    u("meta/300x300/smart/landscape.jpg", "meta smart in the right position")
    u("fit-in/300x300/smart/landscape.jpg", "smart + fit-in")
    # --- formats / quality ------------------------------------------------------------
    group = "format"
    for name in (
        "alpha.png",
        "palette.png",
        "gray.jpg",
        "small.webp",
        "single.gif",
        "anim.gif",
        "chelsea.jpg",
        "coffee.jpg",
        "wide.jpg",
    ):
        u(name, f"original {name}")
    u("100x100/anim.gif", "resize animated gif (no gifsicle)")
    u("100x0/single.gif", "resize gif")
    u("100x0/palette.png", "resize palette png")
    u("filters:format(webp)/landscape.jpg", "format webp")
    u("filters:format(png)/landscape.jpg", "format png")
    u("filters:format(jpeg)/alpha.png", "format jpeg on RGBA")
    u("filters:format(jpeg)/palette.png", "format jpeg on transparent palette png")
    u("filters:format(gif)/landscape.jpg", "format gif")
    u("filters:format(webp)/single.gif", "format webp on gif")
    u("filters:format(webp)/anim.gif", "format webp on animated gif")
    u("filters:format(png)/single.gif", "format png on gif")
    u("filters:grayscale()/single.gif", "post-transform filter on gif")
    u("filters:rotate(90)/single.gif", "rotate filter on gif")
    u("filters:format(avif)/small.jpg", "format avif")
    u("filters:format(bogus)/small.jpg", "unknown format")
    u("filters:format(webp)/alpha.png", "format webp on RGBA")
    u("filters:quality(10)/landscape.jpg", "quality 10")
    u("filters:quality(100)/landscape.jpg", "quality 100")
    u("filters:quality(0)/landscape.jpg", "quality 0")
    u("filters:quality(150)/landscape.jpg", "quality above 100")
    u("filters:quality(10)/alpha.png", "quality on png")
    u("filters:format(webp):quality(10)/landscape.jpg", "webp quality 10")
    u("filters:max_bytes(5000)/landscape.jpg", "max_bytes 5000 (original is ~12 KB)")
    u("300x200/filters:max_bytes(1000)/landscape.jpg", "max_bytes 1000 (resized is ~3.5 KB)")
    u("icc.jpg", "JPEG with sRGB ICC profile")
    u("filters:strip_icc()/icc.jpg", "strip_icc")
    u("filters:format(png)/icc.jpg", "ICC to png")
    u("filters:format(webp)/icc.jpg", "ICC to webp")
    # --- EXIF orientation -------------------------------------------------------------
    group = "orientation"
    u("exif6.jpg", "orientation 6 original")
    u("exif3.jpg", "orientation 3 original")
    u("100x0/exif6.jpg", "orientation 6 width only")
    u("100x100/left/exif6.jpg", "orientation 6 crop left")
    u("filters:strip_exif()/exif6.jpg", "orientation 6 + strip_exif")
    # --- filters ----------------------------------------------------------------------
    group = "filter"
    f = "300x200/filters:{}/landscape.jpg"
    curve = (
        "curve([(0,0),(128,64),(255,255)],[(0,0),(255,255)],[(0,0),(255,255)],[(0,0),(255,255)])"
    )
    for flt in (
        "grayscale()",
        "blur(3)",
        "blur(3,1)",
        "brightness(20)",
        "brightness(-20)",
        "contrast(10)",
        "saturation(2)",
        "rgb(20,0,0)",
        "rgb(-20,10,0)",
        "rotate(90)",
        "rotate(180)",
        "rotate(270)",
        "rotate(45)",
        "strip_icc()",
        "round_corner(20,255,255,255)",
        "round_corner(30|10,0,0,0,1)",
        "sharpen(1,1,true)",
        "equalize()",
        "colorize(40,80,20,ffff00)",
        "convolution(1;2;1;2;4;2;1;2;1,3,true)",
        curve,
        "max_age(60)",
        "max_age(0)",
        "grayscale():rotate(90):quality(50)",
        "focal(500x400:700x550)",
        "watermark(small.jpg,10,10,50)",
        "watermark(small.jpg,-10,-10,0)",
        "unknown_filter(1)",
        "grayscale",
        "blur(x)",
        "quality(abc)",
    ):
        u(f.format(flt), f"filter {flt}")
    u("filters:background_color(ff0000)/alpha.png", "background_color on RGBA")
    u("filters:background_color(ff0000)/landscape.jpg", "background_color on JPEG")
    u("fit-in/300x300/filters:stretch()/landscape.jpg", "stretch with fit-in")
    u("300x300/filters:stretch()/landscape.jpg", "stretch")
    u("filters:proportion(0.5)/landscape.jpg", "proportion 0.5")
    u("200x200/filters:proportion(0.5)/landscape.jpg", "proportion 0.5 + size")
    u("1600x1200/filters:no_upscale()/small.jpg", "no_upscale")
    u("filters:grayscale()/alpha.png", "grayscale on RGBA")
    u("filters:rotate(90)/exif6.jpg", "rotate on EXIF-oriented image")
    u("filters:/landscape.jpg", "empty filters section")
    # --- errors / malformed ------------------------------------------------------------
    group = "error"
    u("missing.jpg", "missing file")
    u("300x200/missing.jpg", "missing file with size")
    u("not_an_image.jpg", "text file with .jpg name")
    u("300x200/not_an_image.jpg", "text file with size")
    u("abcxdef/landscape.jpg", "garbage size segment")
    u("300x200/sub/../landscape.jpg", "dot-dot inside path")
    raw("/unsafe/", "unsafe without image")
    raw("/unsafe/300x200/", "unsafe size without image")
    raw("/", "root")
    raw("/healthcheck", "healthcheck")
    raw("/unsafe/300x200/filters:blur(/landscape.jpg", "unclosed filter paren")
    raw("/UNSAFE/landscape.jpg", "upper-case UNSAFE")
    raw("/unsafe//landscape.jpg", "double slash")
    # --- signatures -------------------------------------------------------------------
    group = "signature"
    s("landscape.jpg", "signed original")
    s("300x200/landscape.jpg", "signed resize")
    s("fit-in/300x300/filters:grayscale()/landscape.jpg", "signed fit-in + filter")
    s("meta/300x200/landscape.jpg", "signed meta")
    s("300x200/missing.jpg", "signed missing file")
    gen = CryptoURL(key=SECURITY_KEY).generate(
        width=300, height=200, smart=True, filters=["quality(50)"], image_url="portrait.jpg"
    )
    raw(gen, "libthumbor CryptoURL.generate")
    raw(sign("300x200/landscape.jpg", key="WRONG-KEY"), "signed with wrong key")
    bad = sign("300x200/landscape.jpg")
    raw(bad.replace("300x200", "300x201"), "signature for a different path")
    raw("/" + "A" * 28 + "/300x200/landscape.jpg", "garbage 28-char signature")
    raw("/short/300x200/landscape.jpg", "garbage short signature segment")
    # --- other configurations ---------------------------------------------------------
    group = "config"
    u("landscape.jpg", "MAX_WIDTH/MAX_HEIGHT clamp original", "max_size")
    u("300x200/landscape.jpg", "within max", "max_size")
    u("1600x1200/landscape.jpg", "request above max", "max_size")
    u("fit-in/1000x1000/landscape.jpg", "fit-in above max", "max_size")
    u("portrait.jpg", "portrait clamp", "max_size")
    u("100x100:500x400/landscape.jpg", "manual crop on a clamped source", "max_size")
    u("meta/landscape.jpg", "meta with max", "max_size")
    u("landscape.jpg", "unsafe disallowed", "no_unsafe")
    s("300x200/landscape.jpg", "signed when unsafe disallowed", "no_unsafe")
    raw(sign("unsafe/300x200/landscape.jpg"), "signed path starting with unsafe", "no_unsafe")
    return out


# --------------------------------------------------------------------------------------
# Thumbor process
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def write_conf(directory: Path, name: str) -> Path:
    settings = {**BASE_CONFIG, "FILE_LOADER_ROOT_PATH": str(IMAGES_DIR), **CONFIGS[name]}
    path = directory / f"thumbor-{name}.conf"
    path.write_text("".join(f"{key} = {value!r}\n" for key, value in settings.items()))
    return path


@contextmanager
def running_thumbor(conf: Path, log: Path) -> Iterator[str]:
    port = free_port()
    with log.open("wb") as log_file:
        proc = subprocess.Popen(
            [THUMBOR_BIN, "-c", str(conf), "-p", str(port), "-i", "127.0.0.1", "-l", "warning"],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"thumbor exited early, see {log}")
                try:
                    with urllib.request.urlopen(base + "/healthcheck", timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            yield base
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------


def fetch(base: str, url: str) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(base + url, headers={"User-Agent": "thumbor-parity"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, dict(resp.headers.items()), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers.items()), err.read()


def pixel_signature(img: Image.Image) -> list[int]:
    """RGB bytes of the image (alpha composited on black) box-resized to 8x8."""
    rgba = img.convert("RGBA")
    black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
    rgb = Image.alpha_composite(black, rgba).convert("RGB")
    return list(rgb.resize(SIGNATURE_SIZE, Image.Resampling.BOX).tobytes())


@functools.cache
def _reference_qtables() -> dict[int, Any]:
    """Quantization tables libjpeg (via Pillow) writes for each quality 1..100."""
    tables = {}
    for quality in range(1, 101):
        buf = io.BytesIO()
        Image.new("RGB", (16, 16)).save(buf, "JPEG", quality=quality)
        tables[quality] = Image.open(buf).quantization  # type: ignore[attr-defined]
    return tables


def estimate_jpeg_quality(img: Image.Image) -> int | None:
    """The libjpeg quality setting whose standard tables match the image, if any."""
    qtables = getattr(img, "quantization", None)
    for quality, tables in _reference_qtables().items():
        if tables == qtables:
            return quality
    return None


def alpha_range(img: Image.Image) -> list[int] | None:
    """[min, max] of the alpha channel (incl. palette transparency), None if no alpha."""
    if img.mode not in ("RGBA", "LA", "PA") and "transparency" not in img.info:
        return None
    extrema = img.convert("RGBA").getchannel("A").getextrema()
    assert isinstance(extrema[0], int)
    assert isinstance(extrema[1], int)
    return [extrema[0], extrema[1]]


def dump_fixture(results: list[dict[str, Any]]) -> str:
    """Pretty JSON, but with each entry's signature kept on a single line."""
    text = json.dumps(results, indent=1)
    return re.sub(
        r"\[\s*(\d+(?:,\s*\d+)*)\s*\]",
        lambda m: "[" + ", ".join(re.split(r",\s*", m.group(1))) + "]",
        text,
    )


def describe(
    config: str, case: Case, status: int, headers: dict[str, str], body: bytes
) -> dict[str, Any]:
    lower = {k.lower(): v for k, v in headers.items()}
    entry: dict[str, Any] = {
        "group": case.group,
        "config": config,
        "url": case.url,
        "note": case.note,
        "status": status,
        "content_type": lower.get("content-type"),
        "cache_control": lower.get("cache-control"),
        "etag_present": "etag" in lower,
        "expires_present": "expires" in lower,
        "vary": lower.get("vary"),
        "body_bytes": len(body),
        "width": None,
        "height": None,
        "format": None,
        "mode": None,
        "frames": None,
        "exif_orientation": None,
        "icc_profile": None,
        "alpha_range": None,
        "jpeg_progressive": None,
        "jpeg_subsampling": None,
        "jpeg_quality": None,
        "json": None,
        "signature": None,
    }
    ctype = (entry["content_type"] or "").split(";")[0].strip()
    if ctype in ("application/json", "text/javascript") and body:
        entry["json"] = json.loads(body)
        return entry
    if status != 200 or not body:
        return entry
    try:
        img = Image.open(io.BytesIO(body))
        img.load()
    except OSError:
        return entry
    orientation = img.getexif().get(0x0112)
    entry.update(
        width=img.width,
        height=img.height,
        format=img.format,
        mode=img.mode,
        frames=getattr(img, "n_frames", 1),
        exif_orientation=orientation,
        icc_profile=bool(img.info.get("icc_profile")),
        alpha_range=alpha_range(img),
        signature=pixel_signature(img),
    )
    if img.format == "JPEG":
        entry["jpeg_progressive"] = bool(img.info.get("progressive"))
        entry["jpeg_subsampling"] = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(
            JpegImagePlugin.get_sampling(img), "other"
        )
        entry["jpeg_quality"] = estimate_jpeg_quality(img)
    return entry


def record(all_cases: list[Case]) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="thumbor-parity-") as tmp:
        tmpdir = Path(tmp)
        for config in CONFIGS:
            selected = [c for c in all_cases if c.config == config]
            if not selected:
                continue
            conf = write_conf(tmpdir, config)
            with running_thumbor(conf, tmpdir / f"{config}.log") as base:
                for case in selected:
                    status, headers, body = fetch(base, case.url)
                    results.append(describe(config, case, status, headers, body))
            print(f"{config}: {len(selected)} urls", file=sys.stderr)
    results.sort(key=lambda e: (e["config"], e["url"]))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images-only", action="store_true", help="only regenerate images")
    args = parser.parse_args()
    generate_images()
    if args.images_only:
        return 0
    all_cases = cases()
    keys = [(c.config, c.url) for c in all_cases]
    dupes = {k for k in keys if keys.count(k) > 1}
    if dupes:
        raise SystemExit(f"duplicate cases: {sorted(dupes)}")
    results = record(all_cases)
    FIXTURE.write_text(dump_fixture(results) + "\n")
    print(f"wrote {len(results)} entries to {FIXTURE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
