"""Named presets: a Cloudimage-style operations string (``w=640&h=360&func=crop``) by name.

Usable from both dialects: ``?p=name`` in Cloudimage URLs, ``filters:preset(name)`` in
Thumbor URLs (inside the signed path, so a preset URL is signed like any other). A tenant
with ``only_presets`` refuses URLs that ask for sizes or effects of their own.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from urllib.parse import parse_qsl

from thumbor_py.cloudimage.params import build_request
from thumbor_py.errors import UrlParseError
from thumbor_py.url import ImageRequest

PRESET_FILTER = "preset"
# Parameters that stay allowed on a presets-only tenant: choosing, securing, hinting.
_PRESET_SAFE = frozenset({"p", "ci_sign", "ci_seal", "ci_eqs", "ci_url_encoded", "ci_info"})
_PRESET_SAFE |= frozenset({"dpr"})


def preset_params(presets: Mapping[str, str], name: str) -> dict[str, str]:
    """The parameters of preset ``name``; a 400 when the tenant has no such preset."""
    text = presets.get(name)
    if text is None:
        raise UrlParseError(f"unknown preset {name!r}")
    return dict(parse_qsl(text, keep_blank_values=True))


def expand(params: Mapping[str, str], presets: Mapping[str, str], *, only: bool) -> dict[str, str]:
    """Cloudimage parameters with ``p=NAME`` expanded (the URL's own parameters win)."""
    name = params.get("p")
    if only and (name is None or set(params) - _PRESET_SAFE):
        raise UrlParseError("this host serves presets only: give p=NAME and nothing else")
    if name is None:
        return dict(params)
    return {**preset_params(presets, name), **{k: v for k, v in params.items() if k != "p"}}


def apply_to_thumbor(
    request: ImageRequest, presets: Mapping[str, str], *, only: bool, max_dpr: float
) -> ImageRequest:
    """``request`` with a ``preset(NAME)`` filter replaced by the preset's options.

    The preset gives the geometry and its filters; the URL's other filters follow them.
    """
    names = [f.args for f in request.filters if f.name == PRESET_FILTER]
    if not names:
        if only:
            raise UrlParseError("this host serves presets only: use filters:preset(NAME)")
        return request
    if only and _has_own_options(request):
        raise UrlParseError("this host serves presets only: no other options with preset()")
    params = preset_params(presets, names[-1] or "")
    expanded = build_request(request.image, params, max_dpr=max_dpr)
    others = tuple(f for f in request.filters if f.name != PRESET_FILTER)
    return dataclasses.replace(
        expanded,
        unsafe=request.unsafe,
        signature=request.signature,
        meta=request.meta,
        filters=expanded.filters + others,
    )


def _has_own_options(request: ImageRequest) -> bool:
    bare = ImageRequest(image=request.image, filters=request.filters)
    return bool(bare.option_segments() != request.option_segments())
