"""URL signatures: Thumbor's vectors, libthumbor-signed URLs served, tampering refused."""

from __future__ import annotations

import asyncio
import hmac
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from libthumbor import CryptoURL

from thumbor_py import signing
from thumbor_py.app import create_app
from thumbor_py.config import Config
from thumbor_py.errors import ConfigError, SignatureError
from thumbor_py.url import parse

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "tests" / "parity" / "images"
KEY = "ACME-SEC"

AiohttpClient = Any  # pytest-aiohttp's factory fixture
Client = TestClient[web.Request, web.Application]


@pytest.mark.parametrize(
    ("key", "path", "signature"),
    [
        pytest.param("ACME-SEC", "smart/image.jpg", "_wIUeSaeHw8dricKG2MGhqu5thk=", id="acme"),
        pytest.param(
            "my-security-key",
            "300x200/my.server.com/some/path/to/image.jpg",
            "8ammJH8D-7tXy6kU3lTvoXlhu4o=",
            id="my-security-key",
        ),
        pytest.param(b"ACME-SEC", "smart/image.jpg", "_wIUeSaeHw8dricKG2MGhqu5thk=", id="bytes"),
    ],
)
def test_sign_matches_thumbor_vectors(key: str | bytes, path: str, signature: str) -> None:
    assert signing.sign(key, path) == signature
    assert len(signature) == 28
    assert signing.signed_path(key, "/" + path) == f"/{signature}/{path}"


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({"width": 300, "height": 200}, id="size"),
        pytest.param({"width": 300, "height": 200, "smart": True}, id="smart"),
        pytest.param({"width": 300, "height": 200, "fit_in": True}, id="fit-in"),
        pytest.param({"width": 100, "height": 400, "adaptive_fit_in": True}, id="adaptive"),
        pytest.param({"width": 300, "height": 300, "full_fit_in": True}, id="full-fit-in"),
        pytest.param({"width": 300, "height": 200, "flip": True, "flop": True}, id="flips"),
        pytest.param({"halign": "left", "valign": "top", "width": 200, "height": 200}, id="align"),
        pytest.param({"crop": ((10, 20), (400, 300))}, id="crop"),
        pytest.param({"trim": True}, id="trim"),
        pytest.param({"trim": ("bottom-right", 5)}, id="trim-corner-tolerance"),
        pytest.param({"meta": True, "width": 100}, id="meta"),
        pytest.param({"filters": ["quality(50)", "format(png)"], "width": 80}, id="filters"),
        pytest.param({"filters": ["unknown_filter(1)"]}, id="unknown-filter"),
        pytest.param({"width": 0, "height": 0, "flip": True}, id="flip-no-size"),
    ],
)
def test_libthumbor_signature_verifies(options: dict[str, Any]) -> None:
    url = CryptoURL(key=KEY).generate(image_url="landscape.jpg", **options)
    signing.verify(parse(url), url, keys=(KEY,), allow_unsafe=False)


def test_verify_compares_in_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    url = "/_wIUeSaeHw8dricKG2MGhqu5thk=/smart/image.jpg"
    signing.verify(parse(url), url, keys=("ACME-SEC",), allow_unsafe=False)
    assert calls == [(b"_wIUeSaeHw8dricKG2MGhqu5thk=", b"_wIUeSaeHw8dricKG2MGhqu5thk=")]


@pytest.mark.parametrize(
    ("url", "keys", "allow_unsafe"),
    [
        pytest.param("/_wIUeSaeHw8dricKG2MGhqu5thk=/smart/other.jpg", (KEY,), False, id="path"),
        pytest.param("/_wIUeSaeHw8dricKG2MGhqu5thk=/smart/image.jpg", ("k",), False, id="key"),
        pytest.param("/_wIUeSaeHw8dricKG2MGhqu5thk/smart/image.jpg", (KEY,), False, id="short"),
        pytest.param("/AAAAAAAAAAAAAAAAAAAAAAAAAAA=/smart/image.jpg", (KEY,), False, id="zeros"),
        pytest.param("/_wIUeSaeHw8dricKG2MGhqu5thk=/smart/image.jpg", (), True, id="no-keys"),
        pytest.param("/unsafe/smart/image.jpg", (KEY,), False, id="unsafe-disabled"),
        pytest.param("/UNSAFE/smart/image.jpg", (KEY,), True, id="unsafe-uppercase"),
        pytest.param(
            "/_wIUeSaeHw8dricKG2MGhqu5thk=/unsafe/smart/image.jpg", (KEY,), True, id="both"
        ),
    ],
)
def test_verify_refuses(url: str, keys: tuple[str, ...], allow_unsafe: bool) -> None:
    with pytest.raises(SignatureError):
        signing.verify(parse(url), url, keys=keys, allow_unsafe=allow_unsafe)


def test_verify_accepts_any_previous_key() -> None:
    url = signing.signed_path("old-key", "300x200/a.jpg")
    signing.verify(parse(url), url, keys=("new-key", "old-key"), allow_unsafe=False)


def _config(**security: Any) -> Config:
    return Config.from_mapping(
        {"security": security, "loader": {"use": "file", "settings": {"root": str(IMAGES)}}},
        env={},
    )


@pytest.fixture
async def client(aiohttp_client: AiohttpClient) -> Client:
    return await aiohttp_client(create_app(_config(key=KEY)))  # type: ignore[no-any-return]


_LIBTHUMBOR_OPTIONS = [
    {},
    {"width": 300, "height": 200},
    {"width": 300, "height": 200, "smart": True},
    {"width": 300, "height": 200, "fit_in": True},
    {"width": 100, "height": 400, "adaptive_fit_in": True},
    {"width": 300, "height": 300, "full_fit_in": True},
    {"width": 300, "height": 200, "flip": True, "flop": True},
    {"width": 200, "height": 200, "halign": "left", "valign": "bottom"},
    {"crop": ((10, 20), (400, 300)), "width": 100},
    {"trim": True, "width": 100},
    {"meta": True, "width": 100, "height": 100},
    {"filters": ["quality(50)", "format(png)"], "width": 80},
    {"filters": ["unknown_filter(1)", "max_age(60)"], "width": 80},
    {"width": 0, "height": 0, "flip": True},
]


@pytest.mark.parametrize(
    "options", [pytest.param(o, id=f"options-{i}") for i, o in enumerate(_LIBTHUMBOR_OPTIONS)]
)
async def test_libthumbor_url_is_served(client: Client, options: dict[str, Any]) -> None:
    url = CryptoURL(key=KEY).generate(image_url="landscape.jpg", **options)
    response = await client.get(url)
    assert response.status == 200, await response.text()


def _tamper(url: str) -> list[str]:
    signature, _, rest = url[1:].partition("/")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    return [
        f"/{flipped}/{rest}",  # signature changed
        f"/{signature}/{rest.replace('300x200', '301x200')}",  # options changed
        f"/{signature}/{rest.replace('landscape', 'portrait')}",  # image changed
        f"/{signature[:-1]}/{rest}",  # signature truncated
        f"/{signature}/smart/{rest}",  # option added
    ]


async def test_tampered_libthumbor_urls_are_refused(client: Client) -> None:
    url = CryptoURL(key=KEY).generate(image_url="landscape.jpg", width=300, height=200)
    assert (await client.get(url)).status == 200
    for tampered in _tamper(url):
        response = await client.get(tampered)
        assert response.status == 400, tampered


async def test_unsafe_is_refused_when_disabled(client: Client) -> None:
    response = await client.get("/unsafe/300x200/landscape.jpg")
    assert response.status == 400
    assert "unsafe" in await response.text()


async def test_unsafe_is_served_when_allowed(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(create_app(_config(allow_unsafe=True)))
    assert (await client.get("/unsafe/300x200/landscape.jpg")).status == 200


async def test_previous_keys_keep_old_urls_working(aiohttp_client: AiohttpClient) -> None:
    client = await aiohttp_client(
        create_app(_config(key="new-key", previous_keys=["old-key", "older-key"]))
    )
    for key in ("new-key", "old-key", "older-key"):
        url = CryptoURL(key=key).generate(image_url="landscape.jpg", width=50, height=50)
        assert (await client.get(url)).status == 200, key
    retired = CryptoURL(key="retired").generate(image_url="landscape.jpg", width=50, height=50)
    assert (await client.get(retired)).status == 400


@pytest.mark.parametrize(
    "security",
    [
        pytest.param({}, id="defaults"),
        pytest.param({"allow_unsafe": False}, id="explicit"),
        pytest.param({"key": ""}, id="empty-key"),
        pytest.param({"previous_keys": ["old"]}, id="only-previous-keys"),
    ],
)
def test_config_without_key_is_refused(security: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match=r"security\.key"):
        Config.from_mapping({"security": security}, env={})


def test_create_app_refuses_a_config_without_key() -> None:
    config = Config(loader=_config(key=KEY).loader)  # dataclass defaults: no key, no unsafe
    with pytest.raises(ConfigError, match=r"security\.key"):
        create_app(config)


def test_serve_refuses_to_start_without_key(tmp_path: Path) -> None:
    config_file = tmp_path / "thumbor.yaml"
    config_file.write_text(f"loader: {{use: file, settings: {{root: {IMAGES}}}}}\n")
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-m", "thumbor_py", "serve", "--config", str(config_file), "--port", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "security.key" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("image", "status"),
    [
        pytest.param("landscape%2Ejpg", 200, id="encoded-dot"),
        pytest.param("/landscape.jpg", 200, id="double-slash"),
        pytest.param("sub/../landscape.jpg", 200, id="dot-segments"),
        pytest.param("./landscape.jpg", 200, id="dot-segment"),
        pytest.param("caf%C3%A9.jpg", 404, id="utf8"),
        pytest.param("caf%c3%a9.jpg", 404, id="lowercase-hex"),
        pytest.param("a%7eb.jpg", 404, id="encoded-unreserved"),
        pytest.param("http%3A%2F%2Fexample.com%2Fa%20b.jpg%3Fx%3D1", 404, id="encoded-url"),
        pytest.param("a;b=c.jpg", 404, id="semicolon"),
    ],
)
async def test_signature_covers_the_raw_path_as_sent(
    client: Client, image: str, status: int
) -> None:
    # The server must verify the bytes the client signed: no normalisation before the check.
    # The request line is written by hand: HTTP client libraries (aiohttp's included) resolve
    # dot segments before sending, so they cannot send what this test needs.
    url = CryptoURL(key=KEY).generate(image_url=image, width=30, height=20)
    assert client.server.port is not None
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(f"GET {url} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
    await writer.drain()
    answer = await reader.read()
    writer.close()
    status_line = answer.split(b"\r\n", 1)[0].decode()
    assert status_line.startswith(f"HTTP/1.1 {status} "), answer[:300]
