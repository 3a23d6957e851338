"""Fixtures of the browser test: the installed tools, a real HTTP origin, TLS, and thumbor-py."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import boto3
import pytest
import yaml
from botocore.config import Config as BotoConfig
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from PIL import Image, ImageDraw

from tests.browser import install
from tests.conftest import REPO, SAMPLES, free_port, wait_for_port

# The plugin's domain: one of the five media hostnames, a tenant in the server's config.
DOMAIN = "media.miluv.app"
# A hostname no tenant claims: the server must refuse it (421).
STRANGER = "media.unknown-brand.test"
# name -> (width, height) of the origin images the page asks for, all larger than any request
# so that the plugin's default `org_if_sml=1` never applies.
ORIGINALS = {
    "landscape.jpg": (2400, 1600),
    "portrait.jpg": (1600, 2400),
    "wide.jpg": (2400, 1200),
    "lazy.jpg": (2400, 1200),
    "photo.jpg": (1800, 1200),
}
# The private original: an object in BUCKET reached only through a presigned URL.
BUCKET = "miluv-media"
PRIVATE = "photo.jpg"


@pytest.fixture(scope="session")
def browser_tools() -> install.BrowserTools:
    """Chromium, Node.js and the pinned npm packages, installed on first use.

    A machine that cannot install them fails the test with the reason. Outside CI a developer
    may opt out with THUMBOR_PY_SKIP_BROWSER_TESTS=1; under CI=true the test always runs.
    """
    if os.environ.get("THUMBOR_PY_SKIP_BROWSER_TESTS") == "1" and os.environ.get("CI") != "true":
        pytest.skip("THUMBOR_PY_SKIP_BROWSER_TESTS=1")
    try:
        return install.ensure()
    except install.InstallError as exc:
        pytest.fail(f"browser test cannot run: {exc}", pytrace=False)


def _draw(path: Path, size: tuple[int, int]) -> None:
    """A picture with a visible centre, edges and corners, so crops and pads can be seen."""
    width, height = size
    image = Image.new("RGB", size, (32, 96, 160))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(220, 40, 40), width=width // 50)
    draw.ellipse((width // 4, height // 4, 3 * width // 4, 3 * height // 4), fill=(240, 200, 40))
    draw.line((0, 0, width, height), fill=(255, 255, 255), width=width // 100)
    image.save(path, quality=85)


@dataclass(frozen=True, slots=True)
class Origin:
    """The local origin: public images under ``images``, one private object behind a presigned
    URL, and the origin's verdict on every request for the private object."""

    images: str
    presigned: str
    verdicts: list[tuple[str, bool]]


def _decoded_pairs(query: str) -> list[tuple[str, str]]:
    pairs = (pair.partition("=") for pair in query.split("&") if pair)
    return sorted((unquote(name), unquote(value)) for name, _, value in pairs)


class _OriginHandler(SimpleHTTPRequestHandler):
    """Files from the origin's folder; under BUCKET, only with the query that was presigned.

    Like S3's SigV4 check, the query is compared after percent-decoding each name and value
    (so ``%2F`` and ``/`` are the same), in any order; any other difference is a 403.
    """

    server: _OriginServer

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path.startswith(f"/{BUCKET}/"):
            valid = self.server.signed.get(path) == _decoded_pairs(query)
            self.server.verdicts.append((self.path, valid))
            if not valid:
                self.send_error(403, "SignatureDoesNotMatch")
                return
            self.path = path
        super().do_GET()

    def log_message(self, format: str, *args: Any) -> None:
        return


class _OriginServer(ThreadingHTTPServer):
    signed: dict[str, list[tuple[str, str]]]
    verdicts: list[tuple[str, bool]]


def _presign(base: str, key: str) -> str:
    """A real SigV4 presigned GET URL for ``key``, made by boto3 (path-style, on ``base``)."""
    client = boto3.client(
        "s3",
        endpoint_url=base,
        region_name="us-east-1",
        aws_access_key_id="browser-test",
        aws_secret_access_key="browser-test-secret",
        config=BotoConfig(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    url: str = client.generate_presigned_url(
        "get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=3600
    )
    return url


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    """A real HTTP origin on 127.0.0.1 serving ORIGINALS (and PRIVATE behind a presigned URL)."""
    root = tmp_path_factory.mktemp("origin")
    for folder in ("images", f"{BUCKET}/private"):
        (root / folder).mkdir(parents=True)
    for name, size in ORIGINALS.items():
        _draw(root / ("images" if name != PRIVATE else f"{BUCKET}/private") / name, size)
    server = _OriginServer(("127.0.0.1", 0), partial(_OriginHandler, directory=str(root)))
    base = f"http://127.0.0.1:{server.server_address[1]}"
    presigned = _presign(base, f"private/{PRIVATE}")
    split = urlsplit(presigned)
    server.signed = {split.path: _decoded_pairs(split.query)}
    server.verdicts = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield Origin(f"{base}/images/", presigned, server.verdicts)
    server.shutdown()
    server.server_close()


@dataclass(frozen=True, slots=True)
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for the media domains (the browser is told to accept it)."""
    folder = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, DOMAIN)])
    now = datetime.datetime.now(datetime.UTC)
    names = [x509.DNSName(DOMAIN), x509.DNSName(STRANGER)]
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .sign(key, hashes.SHA256())
    )
    paths = Certificate(folder / "cert.pem", folder / "key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def server_config(port: int) -> dict[str, Any]:
    """thumbor-py for the five media hostnames' first brand, fetching from the local origin."""
    http = {"use": "http", "settings": {"allowed_networks": ["127.0.0.0/8"]}}
    return {
        "server": {"host": "127.0.0.1", "port": port, "workers": 1, "log_level": "WARNING"},
        "security": {"key": "browser-test-key"},
        "loader": {"use": "file", "settings": {"root": str(SAMPLES)}},
        "routes": [{"prefix": "http://", "loader": http}],
        "tenants": {
            "default": None,
            "sites": [
                {
                    "name": "miluv",
                    "hosts": [DOMAIN, "media-app.miluv.app"],
                    "allowed_origins": ["127.0.0.1"],
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def thumbor_py(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``thumbor-py serve`` in a subprocess, as deployed; yields its port."""
    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(server_config(port)))
    log = (folder / "server.log").open("w")
    command = [sys.executable, "-m", "thumbor_py", "serve", "--config", str(config)]
    process = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    try:
        try:
            wait_for_port(port)
        except TimeoutError:
            pytest.fail(f"thumbor-py did not start:\n{(folder / 'server.log').read_text()}")
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()
