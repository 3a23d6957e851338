"""The ``thumbor-py`` command: sign, url, help, and a real server process started and stopped."""

from __future__ import annotations

import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from libthumbor import CryptoURL
from PIL import Image

from tests.conftest import free_port, wait_for_port
from thumbor_py.cli import main

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "thumbor-py"


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("key", "path", "expected"),
    [
        pytest.param(
            "my-security-key",
            "300x200/my.server.com/some/path/to/image.jpg",
            "/8ammJH8D-7tXy6kU3lTvoXlhu4o=/300x200/my.server.com/some/path/to/image.jpg",
            id="issue-vector",
        ),
        pytest.param(
            "ACME-SEC",
            "/smart/image.jpg",
            "/_wIUeSaeHw8dricKG2MGhqu5thk=/smart/image.jpg",
            id="leading-slash",
        ),
    ],
)
def test_sign(capsys: pytest.CaptureFixture[str], key: str, path: str, expected: str) -> None:
    assert run_main(capsys, "sign", "--key", key, path) == (0, expected + "\n", "")


# (thumbor-py url arguments, the same request in libthumbor's options)
URL_CASES = [
    pytest.param(["--width", "300", "--height", "200"], {"width": 300, "height": 200}, id="size"),
    pytest.param(
        ["--width", "300", "--height", "200", "--smart", "--fit-in", "--filters", "quality(80)"],
        {"width": 300, "height": 200, "smart": True, "fit_in": True, "filters": ["quality(80)"]},
        id="issue-example",
    ),
    pytest.param(
        ["--width", "100", "--height", "400", "--adaptive-fit-in"],
        {"width": 100, "height": 400, "adaptive_fit_in": True},
        id="adaptive",
    ),
    pytest.param(
        ["--width", "100", "--height", "400", "--full-fit-in"],
        {"width": 100, "height": 400, "full_fit_in": True},
        id="full",
    ),
    pytest.param(
        ["--width", "300", "--height", "200", "--flip", "--flop"],
        {"width": 300, "height": 200, "flip": True, "flop": True},
        id="flips",
    ),
    pytest.param(
        ["--halign", "left", "--valign", "top", "--width", "10", "--height", "10"],
        {"halign": "left", "valign": "top", "width": 10, "height": 10},
        id="align",
    ),
    pytest.param(["--crop", "10x20:300x400"], {"crop": ((10, 20), (300, 400))}, id="crop"),
    pytest.param(["--trim", "--meta"], {"trim": True, "meta": True}, id="trim-meta"),
    pytest.param(
        ["--filters", "quality(80):format(webp)"],
        {"filters": ["quality(80)", "format(webp)"]},
        id="filters",
    ),
]


@pytest.mark.parametrize(("args", "options"), URL_CASES)
def test_url_matches_libthumbor(
    capsys: pytest.CaptureFixture[str], args: list[str], options: dict[str, Any]
) -> None:
    image = "my.server.com/some/path/to/image.jpg"
    code, out, _ = run_main(capsys, "url", "--key", "my-security-key", *args, image)
    assert code == 0
    assert out.strip() == CryptoURL(key="my-security-key").generate(image_url=image, **options)


def test_url_without_key_is_unsafe(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "url", "--width", "300", "a.jpg")
    assert (code, out) == (0, "/unsafe/300x0/a.jpg\n")


def test_url_with_bad_crop_fails(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "url", "--crop", "nonsense", "a.jpg")
    assert code != 0
    assert out == ""
    assert "--crop" in err


@pytest.mark.parametrize(
    "size", [pytest.param("abc", id="text"), pytest.param("-5", id="negative")]
)
def test_url_with_bad_size_fails_in_one_line(capsys: pytest.CaptureFixture[str], size: str) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["url", f"--width={size}", "a.jpg"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--width" in err
    assert "Traceback" not in err


def test_serve_on_a_busy_port_fails_in_one_line() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run(
            [str(BIN), "serve", "--port", str(port), "--workers", "1"],
            capture_output=True,
            text=True,
            timeout=30,
            cwd=REPO,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_command_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["frobnicate"])
    assert exc.value.code == 2


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param([sys.executable, "-m", "thumbor_py", "--help"], id="python-m"),
        pytest.param([str(BIN), "--help"], id="console-script"),
    ],
)
def test_help(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=30, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    for command in ("serve", "sign", "url", "check-config"):
        assert command in result.stdout


def test_console_script_signs() -> None:
    result = subprocess.run(
        [str(BIN), "sign", "--key", "ACME-SEC", "smart/image.jpg"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (
        0,
        "/_wIUeSaeHw8dricKG2MGhqu5thk=/smart/image.jpg\n",
    )


def _read_lines(stream: io.TextIOBase, lines: list[str], found: threading.Event) -> None:
    for line in stream:
        lines.append(line)
        if "try: " in line:
            found.set()


def test_serve_quick_start_with_two_workers() -> None:
    """`thumbor-py serve` from the repo root: embedded config, samples/, a working example URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("THUMBOR_PY_")}
    process = subprocess.Popen(
        [str(BIN), "serve", "--port", str(port), "--workers", "2"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    found = threading.Event()
    assert process.stdout is not None
    reader = threading.Thread(target=_read_lines, args=(process.stdout, lines, found), daemon=True)
    reader.start()
    try:
        assert found.wait(20), "".join(lines)
        wait_for_port(port)
        banner = "".join(lines)
        assert "workers: 2" in banner
        match = re.search(r"try: (\S+)$", banner, re.MULTILINE)
        assert match, banner
        example = match.group(1)
        assert example.startswith(f"http://127.0.0.1:{port}/unsafe/")
        for _ in range(4):  # several connections: both workers answer
            with urllib.request.urlopen(example, timeout=20) as response:
                assert response.status == 200
                assert response.headers["Content-Type"] == "image/jpeg"
                image = Image.open(io.BytesIO(response.read()))
                assert image.size == (300, 200)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthcheck", timeout=5) as health:
            assert health.read() == b"WORKING"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
        reader.join(timeout=5)
    assert code == 0, "".join(lines)
    assert "Traceback" not in "".join(lines)
