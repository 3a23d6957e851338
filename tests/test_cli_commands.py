"""CLI ergonomics: where the signing key comes from, one encoding for sign and url, repeated
--filters, the help text, and ``thumbor-py config`` with secrets masked."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from libthumbor import CryptoURL

from thumbor_py.cli import _parser, main
from thumbor_py.config_dump import MASK

KEY = "ACME-SEC"
REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent / "thumbor-py"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("THUMBOR_PY_SECURITY_KEY", raising=False)


def test_sign_reads_the_key_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THUMBOR_PY_SECURITY_KEY", KEY)
    expected = CryptoURL(key=KEY).generate(image_url="image.jpg", smart=True)
    assert run(capsys, "sign", "smart/image.jpg") == (0, expected + "\n", "")


def test_sign_and_url_read_the_key_from_a_config(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(f"security: {{key: {KEY}}}\n")
    expected = CryptoURL(key=KEY).generate(image_url="image.jpg", width=300, height=200)
    assert run(capsys, "sign", "--config", str(path), "300x200/image.jpg")[1] == expected + "\n"
    argv = ["url", "--config", str(path), "--width", "300", "--height", "200", "image.jpg"]
    assert run(capsys, *argv)[1] == expected + "\n"


def test_key_flag_wins_over_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("THUMBOR_PY_SECURITY_KEY", "other")
    expected = CryptoURL(key=KEY).generate(image_url="image.jpg")
    assert run(capsys, "url", "--key", KEY, "image.jpg")[1] == expected + "\n"
    assert run(capsys, "url", "--unsafe", "image.jpg")[1] == "/unsafe/image.jpg\n"


def test_sign_without_any_key_fails_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "sign", "smart/image.jpg")
    assert (code, out) == (2, "")
    assert "THUMBOR_PY_SECURITY_KEY" in err
    assert "Traceback" not in err


@pytest.mark.parametrize("image", ["my photo.jpg", "a?b#c.jpg", "caf\u00e9.jpg", "100%.jpg"])
def test_sign_encodes_like_url(capsys: pytest.CaptureFixture[str], image: str) -> None:
    signed = run(capsys, "sign", "--key", KEY, f"300x200/{image}")[1]
    built = run(capsys, "url", "--key", KEY, "--width", "300", "--height", "200", image)[1]
    assert signed == built
    assert " " not in signed
    assert "?" not in signed


def test_repeated_filters_accumulate(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["url", "--filters", "quality(80)", "--filters", "grayscale():blur(2)", "a.jpg"]
    assert run(capsys, *argv)[1] == "/unsafe/filters:quality(80):grayscale():blur(2)/a.jpg\n"


def test_help_is_plain_text_and_lists_every_command() -> None:
    text = _parser().format_help()
    assert "``" not in text
    for command in ("serve", "sign", "url", "purge", "config", "check-config"):
        assert command in text


def test_config_prints_the_effective_configuration_with_secrets_masked(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "security: {key: file-key, previous_keys: [old-key]}\n"
        "imaging: {quality: 70}\n"
        "admin: {token: admin-secret}\n"
        "result_storage:\n"
        "  use: s3\n"
        "  settings:\n"
        "    bucket: b\n"
        "    secret_access_key: s3-secret\n"
        "    metadata: {uri: 'mongodb://user:mongo-pass@db:27017/'}\n"
    )
    monkeypatch.setenv("THUMBOR_PY_SECURITY_KEY", "env-key")
    monkeypatch.setenv("THUMBOR_PY_SERVER_PORT", "9001")
    code, out, _ = run(capsys, "config", "--config", str(path))
    assert code == 0
    for secret in ("env-key", "file-key", "old-key", "admin-secret", "s3-secret", "mongo-pass"):
        assert secret not in out
    data = yaml.safe_load(out)
    assert data["server"]["port"] == 9001  # environment
    assert data["imaging"]["quality"] == 70  # file
    assert data["imaging"]["max_pixels"] == 75_000_000  # default
    assert data["security"]["key"] == MASK
    assert data["security"]["previous_keys"] == [MASK]
    assert data["result_storage"]["settings"]["bucket"] == "b"
    assert (
        data["result_storage"]["settings"]["metadata"]["uri"] == f"mongodb://user:{MASK}@db:27017/"
    )


def test_config_without_a_file_shows_the_quick_start(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "config")
    data = yaml.safe_load(out)
    assert code == 0
    assert data["security"] == {"key": None, "previous_keys": [], "allow_unsafe": True}


def _serve(tmp_path: Path, *argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "c.yaml"
    path.write_text(
        "security: {allow_unsafe: true}\n"
        f"loader: {{use: file, settings: {{root: {REPO / 'samples'}}}}}\n"
        "server: {log_format: json, workers: 1}\n"
    )
    return subprocess.run(
        [str(BIN), "serve", "--config", str(path), *argv],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=False,
        env={**os.environ, **env},
    )


def test_serve_warns_about_unknown_variables_through_the_configured_log(tmp_path: Path) -> None:
    with socket.socket() as busy:  # a busy port: serve stops right after loading the config
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _serve(tmp_path, "--port", str(port), env={"THUMBOR_PY_SERVR_PORT": "1"})
    warnings = [
        json.loads(line)
        for line in result.stderr.splitlines()
        if line.startswith("{") and "THUMBOR_PY_SERVR_PORT" in line
    ]
    assert len(warnings) == 1, result.stderr
    assert warnings[0]["level"] == "WARNING"
    assert "THUMBOR_PY_SERVER_PORT" in warnings[0]["message"]


def test_serve_refuses_an_out_of_range_port_override(tmp_path: Path) -> None:
    result = _serve(tmp_path, "--port", "70000", env={})
    assert result.returncode == 2
    assert "server.port" in result.stderr
    assert "Traceback" not in result.stderr
