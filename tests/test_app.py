"""HTTP behaviour through ``create_app``: one test per reachable DESIGN.md §4 row, and headers."""

from __future__ import annotations

import asyncio
import io
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from libthumbor import CryptoURL
from PIL import Image
from yarl import URL

from loaders.file import FileLoader
from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.plugins import PluginContext, Source

IMAGES = Path(__file__).resolve().parent / "parity" / "images"
KEY = "ACME-SEC"

Client = TestClient[web.Request, web.Application]
MakeClient = Callable[..., Awaitable[Client]]


# ---------------------------------------------------------------------------------------
# Loader plugins named by ``module:Class`` in the config, as a deployment would.
# ---------------------------------------------------------------------------------------


class ExplodingLoader:
    """A loader with a bug: every load raises an unexpected exception."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        message: str = "secret internal detail"

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        self._message = settings.message

    async def load(self, source: str) -> Source:
        raise RuntimeError(self._message)


class GatedLoader:
    """Loads from the parity images, but only once the test opens the gate."""

    gate: ClassVar[asyncio.Event | None] = None
    waiting: ClassVar[int] = 0

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        pass

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        self._files = FileLoader(FileLoader.Settings(root=str(IMAGES)), context)

    async def load(self, source: str) -> Source:
        assert GatedLoader.gate is not None
        GatedLoader.waiting += 1
        await GatedLoader.gate.wait()
        return await self._files.load(source)


# ---------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    for name in ("landscape.jpg", "small.jpg", "small.webp", "single.gif", "palette.png"):
        shutil.copy(IMAGES / name, root / name)
    shutil.copy(IMAGES / "not_an_image.jpg", root / "not_an_image.jpg")
    jpeg = (IMAGES / "landscape.jpg").read_bytes()
    (root / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 3])
    (root / "corrupt.jpg").write_bytes(jpeg[:20] + bytes(range(256)) * 8)
    (root / "empty.jpg").write_bytes(b"")
    (tmp_path / "secret.jpg").write_bytes(jpeg)
    (root / "link.jpg").symlink_to(tmp_path / "secret.jpg")
    return root


def make_config(root: Path, **sections: dict[str, Any]) -> Config:
    data: dict[str, Any] = {
        "security": {"key": KEY, "allow_unsafe": True},
        "loader": {"use": "file", "settings": {"root": str(root)}},
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    return Config.from_mapping(data, env={})


@pytest.fixture
def make_client(aiohttp_client: Any, root: Path) -> MakeClient:
    async def make(**sections: dict[str, Any]) -> Client:
        return await aiohttp_client(create_app(make_config(root, **sections)))  # type: ignore[no-any-return]

    return make


@pytest.fixture
async def client(make_client: MakeClient) -> Client:
    return await make_client()


def signed(path: str, key: str = KEY) -> str:
    return str(CryptoURL(key=key).generate(image_url=path))


async def assert_error(response: Any, status: int) -> str:
    """An error answer: the status, one line of plain text, no traceback, never cached long."""
    text = str(await response.text())
    assert response.status == status, text
    assert text.strip(), "error bodies name the reason"
    assert "\n" not in text.strip()
    assert "Traceback" not in text
    assert response.headers["Content-Type"].startswith("text/plain")
    assert "ETag" not in response.headers
    cache = response.headers.get("Cache-Control", "")
    assert cache == "no-store" or (status == 404 and cache.startswith("public, max-age="))
    assert response.headers["X-Request-ID"]
    return text


# ---------------------------------------------------------------------------------------
# DESIGN.md §4, row by row
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/", id="root"),
        pytest.param("/unsafe/", id="no-image"),
        pytest.param("/unsafe", id="unsafe-only"),
    ],
)
async def test_unparseable_path_is_400(client: Client, path: str) -> None:
    await assert_error(await client.get(path), 400)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/300x200/landscape.jpg", id="neither"),
        pytest.param("/landscape.jpg/x", id="neither-image-first"),
        pytest.param(
            "/_wIUeSaeHw8dricKG2MGhqu5thk=/unsafe/300x200/landscape.jpg", id="both-signature-bad"
        ),
        pytest.param("/UNSAFE/300x200/landscape.jpg", id="unsafe-uppercase"),
    ],
)
async def test_neither_or_both_signature_and_unsafe_is_400(client: Client, path: str) -> None:
    await assert_error(await client.get(path), 400)


async def test_signed_path_starting_with_unsafe_is_an_image_path(client: Client) -> None:
    # Thumbor 7.8: a valid signature over "unsafe/..." reads "unsafe/..." as the image.
    response = await client.get(signed("unsafe/300x200/landscape.jpg"))
    await assert_error(response, 404)


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/AAAAAAAAAAAAAAAAAAAAAAAAAAA=/300x200/landscape.jpg", id="wrong"),
        pytest.param(signed("300x200/landscape.jpg", key="other-key"), id="other-key"),
        pytest.param(signed("300x200/landscape.jpg").replace("300x200", "300x201"), id="tamper"),
    ],
)
async def test_bad_signature_is_400(client: Client, path: str) -> None:
    await assert_error(await client.get(path), 400)


async def test_good_signature_is_200(client: Client) -> None:
    response = await client.get(signed("300x200/landscape.jpg"))
    assert response.status == 200


async def test_unsafe_when_disabled_is_400(make_client: MakeClient) -> None:
    client = await make_client(security={"allow_unsafe": False})
    text = await assert_error(await client.get("/unsafe/300x200/landscape.jpg"), 400)
    assert "unsafe" in text
    assert (await client.get(signed("300x200/landscape.jpg"))).status == 200


@pytest.mark.parametrize(
    "image",
    [
        pytest.param("%2e%2e/secret.jpg", id="encoded-dotdot"),
        pytest.param("%2E%2E/secret.jpg", id="encoded-dotdot-upper"),
        pytest.param("..%2fsecret.jpg", id="encoded-slash"),
        pytest.param("sub/%2e%2e/%2e%2e/secret.jpg", id="nested"),
        pytest.param("link.jpg", id="symlink-out"),
        pytest.param("a%00.jpg", id="nul-byte"),
    ],
)
async def test_path_escaping_the_root_is_400(client: Client, image: str) -> None:
    response = await client.get(URL(f"/unsafe/{image}", encoded=True))
    await assert_error(response, 400)


@pytest.mark.parametrize(
    "image",
    [
        pytest.param("missing.jpg", id="missing"),
        pytest.param("%252e%252e/secret.jpg", id="double-encoded-is-a-name"),
        pytest.param("300x200/", id="option-given-back-to-image"),
    ],
)
async def test_missing_source_is_404(client: Client, image: str) -> None:
    text = await assert_error(await client.get(URL(f"/unsafe/{image}", encoded=True)), 404)
    assert "not found" in text


async def test_404_may_be_cached_briefly(make_client: MakeClient) -> None:
    client = await make_client(http={"error_max_age": 0})
    response = await client.get("/unsafe/missing.jpg")
    assert response.status == 404
    assert response.headers["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "image",
    [
        pytest.param("not_an_image.jpg", id="not-an-image"),
        pytest.param("corrupt.jpg", id="corrupt-jpeg"),
        # A truncated JPEG is served, as Thumbor does: tests/test_parity_fixes.py.
        pytest.param("empty.jpg", id="empty-file"),
    ],
)
@pytest.mark.parametrize(
    "options", [pytest.param("", id="as-is"), pytest.param("50x50/", id="resized")]
)
async def test_undecodable_source_is_400(client: Client, image: str, options: str) -> None:
    await assert_error(await client.get(f"/unsafe/{options}{image}"), 400)


async def test_source_over_max_pixels_is_400(make_client: MakeClient) -> None:
    client = await make_client(imaging={"max_pixels": 800 * 600 - 1})
    text = await assert_error(await client.get("/unsafe/100x100/landscape.jpg"), 400)
    assert "pixel" in text
    assert (await client.get("/unsafe/100x100/small.jpg")).status == 200


async def test_source_over_max_source_bytes_is_400(make_client: MakeClient, root: Path) -> None:
    size = (root / "landscape.jpg").stat().st_size
    client = await make_client(imaging={"max_source_bytes": size - 1})
    await assert_error(await client.get("/unsafe/100x100/landscape.jpg"), 400)
    assert (await client.get("/unsafe/100x100/small.jpg")).status == 200


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/unsafe/20000x20000/landscape.jpg", id="huge-box"),
        pytest.param("/unsafe/20000x20000/missing.jpg", id="refused-before-loading"),
        pytest.param("/unsafe/fit-in/20000x20000/filters:upscale()/landscape.jpg", id="upscale"),
        pytest.param("/unsafe/full-fit-in/20000x20000/landscape.jpg", id="full-fit-in"),
        pytest.param("/unsafe/8000x0/landscape.jpg", id="proportional-side-over-limit"),
    ],
)
async def test_output_over_max_output_pixels_is_refused_fast(client: Client, path: str) -> None:
    started = time.perf_counter()
    response = await client.get(path)
    elapsed = time.perf_counter() - started
    text = await assert_error(response, 400)
    assert "pixel" in text
    assert elapsed < 0.5, f"took {elapsed:.2f}s: the output must be refused before rendering"


async def test_full_render_queue_is_503_with_retry_after(aiohttp_client: Any, root: Path) -> None:
    GatedLoader.gate = asyncio.Event()
    GatedLoader.waiting = 0
    config = make_config(
        root,
        server={"render_threads": 1, "render_queue": 1},
        loader={"use": "tests.test_app:GatedLoader", "settings": {}},
    )
    client = await aiohttp_client(create_app(config))
    # Two different sources fill threads + queue (identical URLs share one render, and
    # sizes of one source wait for its first decode).
    held = [
        asyncio.create_task(client.get(f"/unsafe/{size}/{name}"))
        for size, name in (("10x10", "landscape.jpg"), ("20x20", "small.jpg"))
    ]
    for _ in range(200):
        if GatedLoader.waiting == 2:
            break
        await asyncio.sleep(0.01)
    assert GatedLoader.waiting == 2
    response = await client.get("/unsafe/30x30/landscape.jpg")
    await assert_error(response, 503)
    assert int(response.headers["Retry-After"]) >= 1
    GatedLoader.gate.set()
    assert [r.status for r in await asyncio.gather(*held)] == [200, 200]
    assert (await client.get("/unsafe/30x30/landscape.jpg")).status == 200


async def test_unexpected_error_is_500_with_request_id_and_no_traceback(
    aiohttp_client: Any, root: Path
) -> None:
    config = make_config(root, loader={"use": "tests.test_app:ExplodingLoader", "settings": {}})
    client = await aiohttp_client(create_app(config))
    response = await client.get("/unsafe/landscape.jpg")
    text = await assert_error(response, 500)
    assert "secret internal detail" not in text
    assert "RuntimeError" not in text
    assert response.headers["X-Request-ID"] in text
    echoed = await client.get("/unsafe/landscape.jpg", headers={"X-Request-ID": "req-42.a:b"})
    assert echoed.headers["X-Request-ID"] == "req-42.a:b"
    assert "req-42.a:b" in await echoed.text()


# ---------------------------------------------------------------------------------------
# Success headers, conditional requests, HEAD, healthcheck
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http", "path", "expected"),
    [
        pytest.param({}, "/unsafe/50x50/small.jpg", "public, max-age=86400", id="default"),
        pytest.param({"max_age": 60}, "/unsafe/50x50/small.jpg", "public, max-age=60", id="config"),
        pytest.param({"max_age": 0}, "/unsafe/50x50/small.jpg", None, id="zero-means-none"),
        pytest.param(
            {}, "/unsafe/50x50/filters:max_age(120)/small.jpg", "public, max-age=120", id="filter"
        ),
    ],
)
async def test_cache_control(
    make_client: MakeClient, http: dict[str, Any], path: str, expected: str | None
) -> None:
    client = await make_client(http=http)
    response = await client.get(path)
    assert response.status == 200
    assert response.headers.get("Cache-Control") == expected


async def test_request_id_is_generated_when_absent_or_unsafe(client: Client) -> None:
    plain = await client.get("/unsafe/50x50/small.jpg")
    assert len(plain.headers["X-Request-ID"]) >= 16
    hostile = await client.get("/unsafe/50x50/small.jpg", headers={"X-Request-ID": "a b\tc"})
    assert hostile.headers["X-Request-ID"] != "a b\tc"
    echoed = await client.get("/unsafe/50x50/small.jpg", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"


@pytest.mark.parametrize(
    ("if_none_match", "status"),
    [
        pytest.param("{etag}", 304, id="exact"),
        pytest.param("W/{etag}", 304, id="weak"),
        pytest.param("*", 304, id="star"),
        pytest.param('"other", {etag}', 304, id="in-a-list"),
        pytest.param('"other"', 200, id="different"),
        pytest.param("", 200, id="empty"),
    ],
)
async def test_if_none_match(client: Client, if_none_match: str, status: int) -> None:
    first = await client.get("/unsafe/50x50/small.jpg")
    etag = first.headers["ETag"]
    assert etag.startswith('"')
    assert etag.endswith('"')
    response = await client.get(
        "/unsafe/50x50/small.jpg", headers={"If-None-Match": if_none_match.format(etag=etag)}
    )
    assert response.status == status
    assert response.headers["ETag"] == etag
    if status == 304:
        assert await response.read() == b""
        assert response.headers["Cache-Control"] == first.headers["Cache-Control"]


async def test_etag_differs_per_variant(client: Client) -> None:
    a = await client.get("/unsafe/50x50/small.jpg")
    b = await client.get("/unsafe/60x50/small.jpg")
    assert a.headers["ETag"] != b.headers["ETag"]


async def test_head_has_no_body_and_the_same_headers(client: Client) -> None:
    get = await client.get("/unsafe/50x50/small.jpg")
    head = await client.head("/unsafe/50x50/small.jpg")
    assert head.status == 200
    assert await head.read() == b""
    for name in ("Content-Type", "ETag", "Cache-Control"):
        assert head.headers[name] == get.headers[name]
    assert (await client.head("/unsafe/missing.jpg")).status == 404


async def test_healthcheck(client: Client) -> None:
    response = await client.get("/healthcheck")
    assert response.status == 200
    assert await response.text() == "WORKING"
    assert (await client.head("/healthcheck")).status == 200


@pytest.mark.parametrize(
    ("image", "content_type", "pil_format"),
    [
        pytest.param("landscape.jpg", "image/jpeg", "JPEG", id="jpeg"),
        pytest.param("palette.png", "image/png", "PNG", id="png"),
        pytest.param("small.webp", "image/webp", "WEBP", id="webp"),
        pytest.param("single.gif", "image/gif", "GIF", id="gif"),
    ],
)
async def test_output_keeps_source_format_and_content_type_matches(
    client: Client, image: str, content_type: str, pil_format: str
) -> None:
    response = await client.get(f"/unsafe/40x30/{image}")
    assert response.status == 200
    assert response.headers["Content-Type"] == content_type
    decoded = Image.open(io.BytesIO(await response.read()))
    assert decoded.format == pil_format
    assert decoded.size == (40, 30)


async def test_jpeg_is_progressive_quality_80(client: Client) -> None:
    response = await client.get("/unsafe/300x200/landscape.jpg")
    decoded = Image.open(io.BytesIO(await response.read()))
    assert decoded.info.get("progressive") or decoded.info.get("progression")
    # libjpeg's quality-80 luminance table starts with 6.
    assert decoded.quantization[0][0] == 6  # type: ignore[attr-defined]


async def test_meta_returns_thumbors_json_shape(client: Client) -> None:
    response = await client.get("/unsafe/meta/400x150/landscape.jpg")
    assert response.status == 200
    assert response.headers["Content-Type"] == "application/json"
    body = await response.json()
    thumbor = body["thumbor"]
    assert thumbor["source"] == {
        "url": "landscape.jpg",
        "width": 400,
        "height": 150,
        "frameCount": 1,
    }
    assert thumbor["operations"] == [
        {"type": "crop", "left": 0, "top": 150, "right": 800, "bottom": 450},
        {"type": "resize", "width": 400.0, "height": 150.0},
    ]
    assert thumbor["target"] == {"width": 400.0, "height": 150.0}


async def test_non_get_methods_are_refused_in_one_line(client: Client) -> None:
    response = await client.post("/unsafe/50x50/small.jpg")
    assert response.status == 405
    assert "Traceback" not in await response.text()


def test_app_is_an_aiohttp_application(root: Path) -> None:
    assert isinstance(create_app(make_config(root)), web.Application)
