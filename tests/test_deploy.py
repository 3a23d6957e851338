"""The container files stay correct: the image's config loads and resolves its plugins, and
the Compose file wires the server to MinIO and MongoDB the way the config expects."""

from __future__ import annotations

import dataclasses
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import REPO
from thumbor_py.app import create_app
from thumbor_py.config import load_config
from thumbor_py.errors import ConfigError

DOCKER_CONFIG = REPO / "deploy" / "config.docker.yaml"


def compose() -> dict[str, Any]:
    data = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_docker_config_loads_and_resolves_plugins(tmp_path: Path) -> None:
    env = {"THUMBOR_PY_SECURITY_KEY": "k", "THUMBOR_PY_MONGODB_URI": "mongodb://mongodb:27017/"}
    config = load_config(DOCKER_CONFIG, env=env)
    assert config.server.host == "0.0.0.0"
    assert config.result_storage.use == "s3"
    samples = tmp_path / "samples"
    samples.mkdir()
    # /app/samples exists only in the image; point the file loader at a real folder.
    settings = {**config.loader.settings, "root": str(samples)}
    loader = dataclasses.replace(config.loader, settings=settings)
    create_app(dataclasses.replace(config, loader=loader))


def test_docker_config_needs_the_key_from_the_environment() -> None:
    with pytest.raises(ConfigError, match=r"security\.key"):
        load_config(DOCKER_CONFIG, env={})


def test_compose_runs_server_minio_and_mongodb() -> None:
    services = compose()["services"]
    assert {"thumbor-py", "minio", "mongodb"} <= set(services)
    server = services["thumbor-py"]
    environment = server["environment"]
    assert "THUMBOR_PY_SECURITY_KEY" in environment
    assert environment["THUMBOR_PY_MONGODB_URI"].startswith("mongodb://mongodb:")
    assert server["build"] == "."


def test_compose_creates_the_bucket_the_config_names() -> None:
    config = yaml.safe_load(DOCKER_CONFIG.read_text())
    bucket = config["result_storage"]["settings"]["bucket"]
    endpoint = config["result_storage"]["settings"]["endpoint_url"]
    setup = compose()["services"]["minio-setup"]["entrypoint"]
    assert f"local/{bucket}" in setup
    host = re.match(r"https?://([^:/]+)", endpoint)
    assert host is not None
    assert host.group(1) in compose()["services"]


def test_dockerfile_runs_as_non_root_with_a_healthcheck() -> None:
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^USER (?!root)\S+", dockerfile, re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile
    assert "/healthcheck" in dockerfile
    copied = re.findall(r"^COPY (?:--from=\S+ )?(\S+)", dockerfile, re.MULTILINE)
    for path in copied:
        if not path.startswith("/"):
            assert (REPO / path).exists(), path


# Compose's interpolation of ``${VAR:?message}`` / ``${VAR:-default}`` / ``${VAR}``.
_INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?:(?P<op>:\?|:-|\?|-)(?P<arg>[^}]*))?\}")


def interpolate(text: str, env: dict[str, str]) -> str:
    """The Compose file's text as ``docker compose`` would see it under ``env``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match["name"], match["op"], match["arg"]
        value = env.get(name)
        if op == ":?" and not value:
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        if op == ":-" and not value:
            return arg
        return value or ""

    return _INTERPOLATION.sub(replace, text)


@pytest.mark.parametrize("env", [{}, {"THUMBOR_PY_SECURITY_KEY": ""}], ids=["unset", "empty"])
def test_compose_refuses_to_start_without_a_signing_key(env: dict[str, str]) -> None:
    text = (REPO / "docker-compose.yml").read_text()
    with pytest.raises(ValueError, match="THUMBOR_PY_SECURITY_KEY"):
        interpolate(text, env)


def test_compose_passes_the_signing_key_through() -> None:
    text = interpolate((REPO / "docker-compose.yml").read_text(), {"THUMBOR_PY_SECURITY_KEY": "s"})
    environment = yaml.safe_load(text)["services"]["thumbor-py"]["environment"]
    assert environment["THUMBOR_PY_SECURITY_KEY"] == "s"
    assert "change-me" not in text


def _make_dry_run(target: str) -> str:
    result = subprocess.run(
        ["make", "-n", "-B", target], cwd=REPO, capture_output=True, text=True, check=True
    )
    return result.stdout


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_serve_installs_only_the_runtime_dependencies() -> None:
    serve = _make_dry_run("serve")
    assert "pip install --quiet -e ." in serve
    assert "[test]" not in serve
    assert "[test]" in _make_dry_run("test")
