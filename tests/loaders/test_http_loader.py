"""The HTTP loader against a real local origin: content, limits, timeouts, errors, redirects.

The origin listens on 127.0.0.1, which the SSRF guard refuses, so the tests here that need it
to serve set ``allow_private_networks: true`` on purpose. The guard's own tests are in
``test_http_ssrf.py``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from loaders.http import HttpLoader
from tests.loaders.http_origin import IMAGE, MAX_BYTES, LoaderFactory, StubResolver, closed_port
from thumbor_py.errors import (
    HttpError,
    SourceForbiddenError,
    SourceNotFoundError,
    SourceTooLargeError,
    UpstreamError,
    UpstreamTimeoutError,
)
from thumbor_py.plugins import PluginContext

# The origin is on loopback: see the module docstring.
OPEN: dict[str, Any] = {"allow_private_networks": True}


async def test_serves_an_image_with_its_metadata(make_loader: LoaderFactory, origin: str) -> None:
    loader = await make_loader(**OPEN)
    source = await loader.load(f"{origin}/image.jpg")
    assert source.data == IMAGE
    assert source.content_type == "image/jpeg"
    assert source.etag == '"chelsea"'
    assert source.last_modified == datetime(2015, 10, 21, 7, 28, tzinfo=UTC)


async def test_serves_a_chunked_body(make_loader: LoaderFactory, origin: str) -> None:
    loader = await make_loader(**OPEN)
    assert (await loader.load(f"{origin}/chunked.jpg")).data == IMAGE


async def test_passes_a_non_image_body_through_for_the_decoder(
    make_loader: LoaderFactory, origin: str
) -> None:
    loader = await make_loader(**OPEN)
    assert (await loader.load(f"{origin}/text")).data == b"not an image"


async def test_follows_a_redirect_chain(make_loader: LoaderFactory, origin: str) -> None:
    loader = await make_loader(max_redirects=3, **OPEN)
    assert (await loader.load(f"{origin}/chain/2")).data == IMAGE


async def test_refuses_one_redirect_too_many(make_loader: LoaderFactory, origin: str) -> None:
    loader = await make_loader(max_redirects=3, **OPEN)
    with pytest.raises(UpstreamError, match="more than 3 redirects"):
        await loader.load(f"{origin}/chain/3")


async def test_redirect_without_location_is_a_broken_response(
    make_loader: LoaderFactory, origin: str
) -> None:
    loader = await make_loader(**OPEN)
    with pytest.raises(UpstreamError):
        await loader.load(f"{origin}/no-location")


async def test_refuses_a_redirect_to_another_scheme(
    make_loader: LoaderFactory, origin: str
) -> None:
    loader = await make_loader(**OPEN)
    with pytest.raises(SourceForbiddenError, match="non-http"):
        await loader.load(f"{origin}/redirect?url=file:///etc/passwd")


@pytest.mark.parametrize(
    ("code", "error"),
    [
        pytest.param(404, SourceNotFoundError, id="404"),
        pytest.param(403, SourceNotFoundError, id="403"),
        pytest.param(410, SourceNotFoundError, id="410"),
        pytest.param(401, SourceNotFoundError, id="401"),
        pytest.param(429, UpstreamError, id="429-is-transient"),
        pytest.param(500, UpstreamError, id="500"),
        pytest.param(503, UpstreamError, id="503"),
        pytest.param(304, UpstreamError, id="304-unasked"),
    ],
)
async def test_maps_upstream_statuses(
    make_loader: LoaderFactory, origin: str, code: int, error: type[HttpError]
) -> None:
    loader = await make_loader(**OPEN)
    with pytest.raises(error) as caught:
        await loader.load(f"{origin}/status/{code}")
    assert type(caught.value) is error
    assert "upstream says no" not in caught.value.reason


@pytest.mark.parametrize("path", ["/huge-length", "/huge-chunked", "/gzip-bomb"])
async def test_stops_at_the_byte_limit(make_loader: LoaderFactory, origin: str, path: str) -> None:
    loader = await make_loader(**OPEN)
    started = time.monotonic()
    with pytest.raises(SourceTooLargeError, match=f"{MAX_BYTES}-byte limit"):
        await loader.load(origin + path)
    assert time.monotonic() - started < 2


async def test_refuses_a_declared_length_before_reading(
    make_loader: LoaderFactory, origin: str
) -> None:
    loader = await make_loader(**OPEN)
    with pytest.raises(SourceTooLargeError, match=r"is 4000000 bytes"):
        await loader.load(f"{origin}/huge-length")


async def test_stops_a_close_delimited_body_at_the_limit(
    make_loader: LoaderFactory, raw_origin: str
) -> None:
    loader = await make_loader(**OPEN)
    with pytest.raises(SourceTooLargeError):
        await loader.load(f"{raw_origin}/huge")


async def test_a_truncated_body_is_a_broken_response(
    make_loader: LoaderFactory, raw_origin: str
) -> None:
    loader = await make_loader(**OPEN)
    with pytest.raises(UpstreamError, match="broken body"):
        await loader.load(f"{raw_origin}/broken")


@pytest.mark.parametrize("path", ["/slow-body", "/slow-headers"])
async def test_total_timeout(make_loader: LoaderFactory, origin: str, path: str) -> None:
    loader = await make_loader(total_timeout=0.3, **OPEN)
    started = time.monotonic()
    with pytest.raises(UpstreamTimeoutError):
        await loader.load(origin + path)
    assert time.monotonic() - started < 1.5


async def test_connection_refused_is_a_bad_gateway(make_loader: LoaderFactory, origin: str) -> None:
    loader = await make_loader(**OPEN)
    with pytest.raises(UpstreamError, match="cannot connect"):
        await loader.load(f"http://127.0.0.1:{closed_port()}/image.jpg")


async def test_dns_failure_is_a_gateway_timeout(make_loader: LoaderFactory) -> None:
    loader = await make_loader(resolver=StubResolver({}))
    with pytest.raises(UpstreamTimeoutError, match="does not resolve"):
        await loader.load("http://no-such-host.test/image.jpg")


@pytest.mark.parametrize(
    ("source", "default_scheme", "expected"),
    [
        pytest.param("{host}/image.jpg", "http", IMAGE, id="scheme-less+prepend"),
        pytest.param("http:/{host}/image.jpg", None, IMAGE, id="collapsed-slashes"),
        pytest.param("HTTP://{host}/image.jpg", None, IMAGE, id="upper-case-scheme"),
        pytest.param("{host}/image.jpg", None, None, id="scheme-less-refused"),
        pytest.param("ftp://{host}/image.jpg", None, None, id="ftp-refused"),
        pytest.param("http://", None, None, id="no-host"),
    ],
)
async def test_source_forms(
    make_loader: LoaderFactory,
    origin: str,
    source: str,
    default_scheme: str | None,
    expected: bytes | None,
) -> None:
    loader = await make_loader(default_scheme=default_scheme, **OPEN)
    text = source.format(host=origin.removeprefix("http://"))
    if expected is None:
        with pytest.raises(SourceForbiddenError):
            await loader.load(text)
    else:
        assert (await loader.load(text)).data == expected


async def test_percent_escapes_left_by_the_parser_reach_the_origin(
    make_loader: LoaderFactory, origin: str
) -> None:
    # The URL parser already decoded once: "%2F" here came in as "%252F" and must stay "%2F";
    # a raw space is encoded for the wire.
    loader = await make_loader(**OPEN)
    source = await loader.load(f"{origin}/echo/a%2Fb c.jpg")
    assert source.data == b"/echo/a%2Fb%20c.jpg"


@pytest.mark.parametrize(
    ("allowed", "ok"),
    [
        pytest.param(["127.0.0.1"], True, id="exact-host"),
        pytest.param(["127.0.0.*"], True, id="host-glob"),
        pytest.param(["*.example.com"], False, id="other-glob"),
        pytest.param([r"^http://127\.0\.0\.1:\d+/image\.jpg"], True, id="url-regex"),
        pytest.param([r"^http://127\.0\.0\.1:\d+/other"], False, id="url-regex-miss"),
        pytest.param([r"^http://127\.0\.0\.1"], False, id="regex-must-match-all"),
    ],
)
async def test_allowed_sources(
    make_loader: LoaderFactory, origin: str, allowed: list[str], ok: bool
) -> None:
    loader = await make_loader(allowed_sources=tuple(allowed), **OPEN)
    if ok:
        assert (await loader.load(f"{origin}/image.jpg")).data == IMAGE
    else:
        with pytest.raises(SourceForbiddenError, match="allowed_sources"):
            await loader.load(f"{origin}/image.jpg")


async def test_allowed_sources_is_checked_on_every_redirect_hop(
    make_loader: LoaderFactory, origin: str
) -> None:
    loader = await make_loader(allowed_sources=("127.0.0.1",), **OPEN)
    target = origin.replace("127.0.0.1", "localhost") + "/image.jpg"
    with pytest.raises(SourceForbiddenError, match="allowed_sources"):
        await loader.load(f"{origin}/redirect?url={target}")


async def test_load_before_start_is_a_programming_error() -> None:
    loader = HttpLoader(HttpLoader.Settings(), PluginContext(max_source_bytes=MAX_BYTES))
    with pytest.raises(RuntimeError):
        await loader.load("http://example.com/a.jpg")


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"total_timeout": 0}, id="timeout"),
        pytest.param({"max_redirects": -1}, id="redirects"),
        pytest.param({"default_scheme": "ftp"}, id="scheme"),
        pytest.param({"allowed_sources": ("^(",)}, id="regex"),
        pytest.param({"allowed_networks": ("10.0.0.0/33",)}, id="network"),
    ],
)
def test_bad_settings_are_refused(settings: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        HttpLoader(HttpLoader.Settings(**settings), PluginContext(max_source_bytes=1))  # type: ignore[arg-type]


# --- identity and conditional revalidation (cache coherence) -------------------------------


@pytest.mark.parametrize(
    ("spelling", "identity"),
    [
        pytest.param("http://h.test/a.jpg", "http://h.test/a.jpg", id="canonical"),
        pytest.param("HTTP://H.Test:80/a.jpg", "http://h.test/a.jpg", id="case-and-port"),
        pytest.param("https://h.test:443/a.jpg", "https://h.test/a.jpg", id="https-port"),
        pytest.param("http://h.test:8080/a.jpg", "http://h.test:8080/a.jpg", id="other-port"),
        pytest.param("http://h.test/x/./y/../a.jpg", "http://h.test/x/a.jpg", id="dot-segments"),
        pytest.param("http://h.test/%61%2e%6Apg", "http://h.test/a.jpg", id="unreserved-escapes"),
        pytest.param(
            "http://h.test/a%2fb.jpg", "http://h.test/a%2Fb.jpg", id="slash-stays-escaped"
        ),
        pytest.param("http://h.test/a b.jpg", "http://h.test/a%20b.jpg", id="space"),
        pytest.param("http:/h.test/a.jpg", "http://h.test/a.jpg", id="collapsed-scheme"),
        pytest.param("http://h.test/a.jpg?b=2&a=1", "http://h.test/a.jpg?b=2&a=1", id="query-kept"),
        pytest.param("http://h.test/a.jpg#top", "http://h.test/a.jpg", id="no-fragment"),
    ],
)
def test_every_spelling_of_one_url_has_one_identity(spelling: str, identity: str) -> None:
    loader = HttpLoader(HttpLoader.Settings(), PluginContext(max_source_bytes=MAX_BYTES))
    assert loader.identity(spelling) == identity
    assert loader.identity(identity) == identity


def test_a_scheme_less_source_gets_the_default_scheme_in_its_identity() -> None:
    settings = HttpLoader.Settings(default_scheme="https")
    loader = HttpLoader(settings, PluginContext(max_source_bytes=MAX_BYTES))
    assert loader.identity("H.test/a.jpg") == "https://h.test/a.jpg"


class RevisedOrigin:
    """An origin whose image can be replaced; it answers conditional GETs like a CDN."""

    def __init__(self, validator: str) -> None:
        self.body, self.validator, self.validator_name = IMAGE, '"v1"', validator
        self.conditional: list[str] = []

    async def handle(self, request: web.Request) -> web.Response:
        asked = request.headers.get("If-None-Match") or request.headers.get("If-Modified-Since")
        if asked:
            self.conditional.append(asked)
        header = {self.validator_name: self.validator}
        if asked == self.validator:
            return web.Response(status=304, headers=header)
        return web.Response(body=self.body, content_type="image/jpeg", headers=header)


@pytest.mark.parametrize(
    ("name", "first", "second"),
    [
        pytest.param("ETag", '"v1"', '"v2"', id="etag"),
        pytest.param(
            "Last-Modified",
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Thu, 22 Oct 2015 07:28:00 GMT",
            id="last-modified",
        ),
    ],
)
async def test_revalidation_is_a_conditional_get(
    make_loader: LoaderFactory, name: str, first: str, second: str
) -> None:
    origin = RevisedOrigin(name)
    origin.validator = first
    app = web.Application()
    app.router.add_get("/img.jpg", origin.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        loader = await make_loader(allow_private_networks=True)
        url = f"http://127.0.0.1:{server.port}/img.jpg"
        loaded = await loader.load(url)
        assert loaded.identity == url
        assert loaded.version is not None
        assert await loader.unchanged(url, loaded.version)
        origin.validator = second  # the original is replaced
        assert not await loader.unchanged(url, loaded.version)
        assert origin.conditional == [first, first]
    finally:
        await server.close()


async def test_revalidating_a_vanished_url_raises_not_found(
    make_loader: LoaderFactory, origin: str
) -> None:
    loader = await make_loader(allow_private_networks=True)
    with pytest.raises(SourceNotFoundError):
        await loader.unchanged(f"{origin}/missing", 'etag:"x"')
