"""Shared fixtures: a guard against blocking calls on the event loop, and a real S3 server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO

import pytest
from blockbuster import BlockBuster, blockbuster_ctx

from thumbor_py.assembly import apply_process_settings

# What the server does at start-up, before any event loop runs.
apply_process_settings()

REPO = Path(__file__).resolve().parent.parent
# The metadata stores' tests run against in-memory doubles, and also against a real MongoDB
# when this names one (none can be installed on the development machines).
MONGODB_URI = os.environ.get("THUMBOR_PY_TEST_MONGODB_URI")
REAL_MONGODB = pytest.param(
    "mongodb",
    marks=pytest.mark.skipif(
        not MONGODB_URI, reason="set THUMBOR_PY_TEST_MONGODB_URI to run against MongoDB"
    ),
)
SAMPLES = REPO / "samples"


@pytest.fixture(autouse=True)
def blockbuster() -> Iterator[BlockBuster]:
    """Fail any test in which our code makes a blocking call on the event loop.

    Start-up (``create_app``) may block: it runs once, before the server's loop starts.
    """
    with blockbuster_ctx(["thumbor_py", "loaders", "result_storages"]) as guard:
        for function in guard.functions.values():
            function.can_block_functions.append(("thumbor_py/app.py", {"create_app"}))
            # PyMongo's async client stats /.dockerenv when it opens a pool; nothing we can move.
            function.can_block_functions.append(
                ("pymongo/pool_options.py", {"get_container_env_info"})
            )
        yield guard


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Block until something accepts connections on 127.0.0.1:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listening on port {port} after {timeout}s")


def serve_process(
    config: Path,
    port: int,
    *,
    env: Mapping[str, str] | None = None,
    stdout: IO[bytes] | int | None = subprocess.DEVNULL,
    stderr: IO[bytes] | int | None = subprocess.DEVNULL,
) -> subprocess.Popen[bytes]:
    """`thumbor-py serve` from this checkout on ``port`` with ``config``; the environment's
    metrics folder is dropped, so the server makes its own as in production."""
    environment = dict(os.environ if env is None else env)
    environment.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "thumbor_py", "serve", "--config", str(config)]
    return subprocess.Popen(
        [*command, "--port", str(port)], cwd=REPO, env=environment, stdout=stdout, stderr=stderr
    )


def stop_server(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, so the supervisor stops its workers (a kill would orphan them); SIGKILL if
    it has not exited within 20 s. Returns the exit status."""
    if process.poll() is None:
        process.terminate()
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait(timeout=10)


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API over HTTP: moto's server mode in a subprocess on 127.0.0.1."""
    port = free_port()
    env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing")
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(autouse=True)
def _aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a test reach real AWS credentials or the instance metadata service."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
