"""A local HTTP origin for the loader tests, a raw-socket origin and a stub resolver."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import socket
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.test_utils import TestServer

from loaders.http import HttpLoader
from thumbor_py.plugins import PluginContext

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
IMAGE = (SAMPLES / "chelsea.jpg").read_bytes()
# Sources over this size are refused; the "huge" routes serve far more.
MAX_BYTES = 200_000
HUGE = 20 * MAX_BYTES
# Linux routes all of 127/8 to the loopback interface: a second origin on 127.0.0.2 lets a
# test open exactly that address (``allowed_networks``) while 127.0.0.1 stays refused.
ALT_HOST = "127.0.0.2"


async def _image(_request: web.Request) -> web.Response:
    return web.Response(
        body=IMAGE,
        content_type="image/jpeg",
        headers={"ETag": '"chelsea"', "Last-Modified": "Wed, 21 Oct 2015 07:28:00 GMT"},
    )


async def _chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    for start in range(0, len(IMAGE), 4096):
        await response.write(IMAGE[start : start + 4096])
    await response.write_eof()
    return response


async def _slow_body(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "image/jpeg"})
    response.content_length = len(IMAGE)
    await response.prepare(request)
    await response.write(IMAGE[:100])
    await asyncio.sleep(30)
    return response


async def _slow_headers(_request: web.Request) -> web.Response:
    await asyncio.sleep(30)
    return web.Response(body=IMAGE)


async def _huge_length(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.content_length = HUGE
    await response.prepare(request)
    for _ in range(HUGE // 65536):
        await response.write(b"\0" * 65536)
    return response


async def _huge_chunked(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    while True:  # endless: only the reader's cap ends this
        await response.write(b"\0" * 65536)


async def _gzip_bomb(_request: web.Request) -> web.Response:
    body = gzip.compress(b"\0" * HUGE)
    return web.Response(body=body, headers={"Content-Encoding": "gzip"})


async def _text(_request: web.Request) -> web.Response:
    return web.Response(text="not an image")


async def _status(request: web.Request) -> web.Response:
    return web.Response(status=int(request.match_info["code"]), text="upstream says no")


async def _redirect_chain(request: web.Request) -> web.Response:
    hops = int(request.match_info["hops"])
    target = "/image.jpg" if hops == 0 else f"/chain/{hops - 1}"
    raise web.HTTPFound(target)


async def _redirect_to(request: web.Request) -> web.Response:
    raise web.HTTPFound(request.query["url"])


async def _no_location(_request: web.Request) -> web.Response:
    return web.Response(status=302)


async def _echo(request: web.Request) -> web.Response:
    return web.Response(body=request.rel_url.raw_path.encode())


def closed_port() -> int:
    """A port on 127.0.0.1 nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def origin_app() -> web.Application:
    """The origin every HTTP loader test talks to."""
    app = web.Application()
    app.router.add_get("/image.jpg", _image)
    app.router.add_get("/chunked.jpg", _chunked)
    app.router.add_get("/slow-body", _slow_body)
    app.router.add_get("/slow-headers", _slow_headers)
    app.router.add_get("/huge-length", _huge_length)
    app.router.add_get("/huge-chunked", _huge_chunked)
    app.router.add_get("/gzip-bomb", _gzip_bomb)
    app.router.add_get("/text", _text)
    app.router.add_get("/status/{code}", _status)
    app.router.add_get("/chain/{hops}", _redirect_chain)
    app.router.add_get("/redirect", _redirect_to)
    app.router.add_get("/no-location", _no_location)
    app.router.add_get("/echo/{tail:.*}", _echo)
    return app


@contextlib.asynccontextmanager
async def serving_origin(host: str = "127.0.0.1") -> AsyncIterator[str]:
    """:func:`origin_app` served on ``host``; yields its base URL."""
    server = TestServer(origin_app(), host=host)
    await server.start_server()
    try:
        yield f"http://{host}:{server.port}"
    finally:
        await server.close()


async def raw_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    request_line = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass
    if b"/broken" in request_line:
        # Promises 1000 bytes, sends 10, hangs up.
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + IMAGE[:10])
    else:
        # No Content-Length, not chunked: the body ends when the connection closes.
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n")
        try:
            for _ in range(HUGE // 65536):
                writer.write(b"\0" * 65536)
                await writer.drain()
        except ConnectionError:
            pass
    writer.close()


class StubResolver(AbstractResolver):
    """Resolves names from a table; anything else fails like a DNS miss."""

    def __init__(self, table: Mapping[str, Sequence[str]]) -> None:
        self.table = table

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.table[host]
        ]

    async def close(self) -> None:
        """Nothing to close."""


@dataclass
class LoaderFactory:
    """Builds started HTTP loaders and closes them after the test."""

    made: list[HttpLoader]

    async def __call__(
        self, *, resolver: AbstractResolver | None = None, **settings: object
    ) -> HttpLoader:
        loader = HttpLoader(
            HttpLoader.Settings(**settings),  # type: ignore[arg-type]
            PluginContext(max_source_bytes=MAX_BYTES),
            resolver=resolver,
        )
        await loader.start()
        self.made.append(loader)
        return loader
