"""YAML configuration: key paths in every error, environment overrides, plugins, check-config."""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from thumbor_py.app import create_app
from thumbor_py.cli import main
from thumbor_py.config import Config, load_config
from thumbor_py.errors import ConfigError
from thumbor_py.plugins import PluginContext

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
VALID: dict[str, Any] = {"security": {"key": "k"}}


class NotALoader:
    """Has settings, but no ``load``: does not satisfy the Loader protocol."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        pass

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        pass


class NoSettingsLoader:
    """A loader without a ``Settings`` dataclass."""

    async def load(self, source: str) -> None:
        raise NotImplementedError


def with_valid(**sections: Any) -> dict[str, Any]:
    return {**VALID, **sections}


def test_defaults() -> None:
    config = Config.from_mapping(VALID, env={})
    assert config.server.host == "127.0.0.1"
    assert config.server.port == 8888
    assert config.security.allow_unsafe is False
    assert config.loader.use == "file"
    assert config.imaging.quality == 80
    assert config.imaging.respect_orientation is True
    assert config.imaging.preserve_exif is False
    assert config.http.max_age == 86400


def test_config_is_frozen() -> None:
    config = Config.from_mapping(VALID, env={})
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.server.port = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.loader.settings["root"] = "/"  # type: ignore[index]


@pytest.mark.parametrize(
    ("data", "path"),
    [
        pytest.param({"nope": 1}, "nope", id="top-level"),
        pytest.param({"imaging": {"qualty": 80}}, "imaging.qualty", id="section"),
        pytest.param({"security": {"keys": ["a"]}}, "security.keys", id="security"),
        pytest.param({"loader": {"use": "file", "setting": {}}}, "loader.setting", id="plugin"),
        pytest.param(
            {"routes": [{"prefix": "x", "loader": {"use": "file", "extra": 1}}]},
            "routes[0].loader.extra",
            id="route",
        ),
        pytest.param(
            {"loader": {"use": "file", "settings": {"rooot": "."}}},
            "loader.settings.rooot",
            id="plugin-settings",
        ),
    ],
)
def test_unknown_keys_name_the_key_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(path)}: "):
        create_app(Config.from_mapping(with_valid(**data), env={}))


@pytest.mark.parametrize(
    ("data", "path"),
    [
        pytest.param({"imaging": {"quality": "high"}}, "imaging.quality", id="str-for-int"),
        pytest.param({"imaging": {"quality": True}}, "imaging.quality", id="bool-for-int"),
        pytest.param({"imaging": {"quality": 80.5}}, "imaging.quality", id="float-for-int"),
        pytest.param({"server": {"port": "8888"}}, "server.port", id="quoted-port"),
        pytest.param({"server": {"request_timeout": "1s"}}, "server.request_timeout", id="float"),
        pytest.param({"server": {"host": 127}}, "server.host", id="int-for-str"),
        pytest.param({"security": {"allow_unsafe": "yes"}}, "security.allow_unsafe", id="bool"),
        pytest.param({"security": {"previous_keys": "a"}}, "security.previous_keys", id="list"),
        pytest.param({"imaging": {"filters": [1]}}, r"imaging.filters\[0\]", id="list-item"),
        pytest.param({"server": []}, "server", id="section-not-mapping"),
        pytest.param(
            {"loader": {"use": "file", "settings": [1]}}, "loader.settings", id="settings"
        ),
        pytest.param({"routes": {"prefix": "x"}}, "routes", id="routes-not-list"),
        pytest.param(
            {"routes": [{"loader": {"use": "file"}}]}, r"routes\[0\].prefix", id="required"
        ),
        pytest.param({"imaging": {"quality": 0}}, "imaging.quality", id="quality-low"),
        pytest.param({"imaging": {"quality": 101}}, "imaging.quality", id="quality-high"),
        pytest.param({"imaging": {"max_pixels": 0}}, "imaging.max_pixels", id="zero-limit"),
        pytest.param({"server": {"render_queue": 0}}, "server.render_queue", id="zero-queue"),
    ],
)
def test_wrong_types_and_values_name_the_key_path(data: dict[str, Any], path: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{path}: "):
        Config.from_mapping(with_valid(**data), env={})


@pytest.mark.parametrize(
    ("env", "check"),
    [
        pytest.param(
            {"THUMBOR_PY_SECURITY_KEY": "from-env"},
            lambda c: c.security.key == "from-env",
            id="security-key",
        ),
        pytest.param(
            {"THUMBOR_PY_SECURITY_KEY": "12345"},
            lambda c: c.security.key == "12345",
            id="numeric-looking-key-stays-text",
        ),
        pytest.param({"THUMBOR_PY_SERVER_WORKERS": "4"}, lambda c: c.server.workers == 4, id="int"),
        pytest.param(
            {"THUMBOR_PY_IMAGING_AUTO_WEBP": "true"}, lambda c: c.imaging.auto_webp, id="bool"
        ),
        pytest.param(
            {"THUMBOR_PY_HTTP_MAX_AGE": "60"}, lambda c: c.http.max_age == 60, id="overrides-file"
        ),
        pytest.param(
            {"THUMBOR_PY_SECURITY_ALLOW_UNSAFE": "true", "THUMBOR_PY_SECURITY_KEY": ""},
            lambda c: c.security.allow_unsafe,
            id="unsafe-from-env",
        ),
        pytest.param(
            {"THUMBOR_PY_REPOSITORY_METADATA_URI": "mongodb://u:p@db/"},
            lambda c: c.repository.metadata.uri == "mongodb://u:p@db/",
            id="subsection-secret",
        ),
        pytest.param(
            {"THUMBOR_PY_REPOSITORY_METADATA_TIMEOUT_MS": "500"},
            lambda c: c.repository.metadata.timeout_ms == 500,
            id="subsection-int",
        ),
        pytest.param(
            {"THUMBOR_PY_UNRELATED": "x", "OTHER": "y"},
            lambda c: c.security.key == "k",
            id="ignored",
        ),
    ],
)
def test_environment_overrides(env: dict[str, str], check: Any) -> None:
    config = Config.from_mapping(with_valid(http={"max_age": 10}), env=env)
    assert check(config)


def test_secret_from_the_environment_only(tmp_path: Path) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text("server: {port: 9000}\n")
    with pytest.raises(ConfigError, match=r"security\.key"):
        load_config(config_file, env={})
    config = load_config(config_file, env={"THUMBOR_PY_SECURITY_KEY": "s3cret"})
    assert config.security.key == "s3cret"
    assert config.server.port == 9000


@pytest.mark.parametrize(
    ("env", "path"),
    [
        pytest.param({"THUMBOR_PY_SERVER_PORT": "eighty"}, "server.port", id="not-an-int"),
        pytest.param({"THUMBOR_PY_SERVER_PORT": "[1"}, "THUMBOR_PY_SERVER_PORT", id="bad-yaml"),
        pytest.param(
            {"THUMBOR_PY_IMAGING_AUTO_WEBP": "maybe"}, "imaging.auto_webp", id="not-a-bool"
        ),
    ],
)
def test_bad_environment_values_are_named(env: dict[str, str], path: str) -> None:
    with pytest.raises(ConfigError, match=path):
        Config.from_mapping(VALID, env=env)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param("server: [\n", "not valid YAML", id="syntax"),
        pytest.param("- a\n- b\n", "mapping", id="top-level-list"),
        pytest.param("!!python/object:os.system {}\n", "not valid YAML", id="unsafe-tag"),
    ],
)
def test_bad_files(tmp_path: Path, text: str, message: str) -> None:
    config_file = tmp_path / "c.yaml"
    config_file.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(config_file, env={})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml", env={})


def test_embedded_default_is_the_quick_start() -> None:
    config = load_config(None, env={})
    assert config.security.allow_unsafe is True
    assert config.loader.use == "file"
    assert config.loader.settings["root"] == "./samples"


@pytest.mark.parametrize(
    ("loader", "key", "message"),
    [
        pytest.param({"use": "nosuchalias"}, "loader.use", "neither a known", id="unknown-alias"),
        pytest.param({"use": "no_such_module:X"}, "loader.use", "cannot import", id="module"),
        pytest.param({"use": "loaders.file:Nope"}, "loader.use", "no attribute", id="attribute"),
        pytest.param({"use": "os.path:join"}, "loader.use", "not a class", id="not-a-class"),
        pytest.param(
            {"use": "tests.test_config:NotALoader"}, "loader.use", "Loader", id="not-a-loader"
        ),
        pytest.param(
            {"use": "tests.test_config:NoSettingsLoader"}, "loader.use", "Settings", id="settings"
        ),
        pytest.param(
            {"use": "file", "settings": {"root": "/no/such/folder"}},
            "loader",
            "not a folder",
            id="plugin-refuses-settings",
        ),
    ],
)
def test_bad_plugin_is_a_config_error_naming_the_key(
    loader: dict[str, Any], key: str, message: str
) -> None:
    config = Config.from_mapping(with_valid(loader=loader), env={})
    with pytest.raises(ConfigError, match=rf"^{key}\b.*{message}"):
        create_app(config)


def test_bad_route_plugin_names_the_route() -> None:
    config = Config.from_mapping(
        with_valid(
            loader={"use": "file", "settings": {"root": str(SAMPLES)}},
            routes=[
                {"prefix": "a/", "loader": {"use": "file", "settings": {"root": str(SAMPLES)}}},
                {"prefix": "b/", "loader": {"use": "nope:Nope"}},
            ],
        ),
        env={},
    )
    with pytest.raises(ConfigError, match=r"^routes\[1\]\.loader\.use: "):
        create_app(config)


def test_check_config_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = tmp_path / "ok.yaml"
    config_file.write_text(
        f"security: {{key: k}}\nloader: {{use: file, settings: {{root: {SAMPLES}}}}}\n"
    )
    assert main(["check-config", str(config_file)]) == 0
    assert capsys.readouterr().out.strip() == f"{config_file}: OK"


@pytest.mark.parametrize(
    ("text", "path"),
    [
        pytest.param("imaging: {qualty: 80}\nsecurity: {key: k}\n", "imaging.qualty", id="key"),
        pytest.param(
            "imaging: {quality: high}\nsecurity: {key: k}\n", "imaging.quality", id="type"
        ),
        pytest.param("security: {allow_unsafe: false}\n", "security.key", id="no-key"),
        pytest.param("security: {key: k}\nloader: {use: 'x.y:Z'}\n", "loader.use", id="plugin"),
    ],
)
def test_check_config_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, path: str
) -> None:
    config_file = tmp_path / "bad.yaml"
    config_file.write_text(text)
    assert main(["check-config", str(config_file)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert path in captured.err
    assert "Traceback" not in captured.err
