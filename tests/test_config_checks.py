"""Load-time checks: ranges, names, duplicate YAML keys, unknown environment variables,
relative roots and plugin coroutine-ness, each error naming its key path."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from thumbor_py.app import create_app
from thumbor_py.assembly import build_renderer
from thumbor_py.cli import main
from thumbor_py.config import Config, load_config
from thumbor_py.errors import ConfigError
from thumbor_py.plugins import PluginContext, Source

SAMPLES = Path(__file__).resolve().parent.parent / "samples"
VALID: dict[str, Any] = {"security": {"key": "k"}}


class SyncLoader:
    """Satisfies the Loader protocol by name, but ``load`` is a plain function."""

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        pass

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        pass

    def load(self, source: str) -> Source:
        return Source(b"")


@pytest.mark.parametrize(
    ("sections", "key"),
    [
        pytest.param({"server": {"port": 70000}}, r"server\.port", id="port-high"),
        pytest.param({"server": {"port": 0}}, r"server\.port", id="port-zero"),
        pytest.param({"server": {"port": -1}}, r"server\.port", id="port-negative"),
        pytest.param({"server": {"request_timeout": -5}}, r"server\.request_timeout", id="timeout"),
        pytest.param({"server": {"request_timeout": 0}}, r"server\.request_timeout", id="t0"),
        pytest.param({"server": {"workers": -1}}, r"server\.workers", id="workers"),
        pytest.param(
            {"server": {"malloc_retain_bytes": -1}}, r"server\.malloc_retain_bytes", id="retain"
        ),
        pytest.param({"security": {"key": ""}}, r"security\.key", id="empty-key"),
        pytest.param(
            {"security": {"key": "", "allow_unsafe": True}}, r"security\.key", id="empty-unsafe"
        ),
        pytest.param(
            {"security": {"key": "k", "previous_keys": ["old", ""]}},
            r"security\.previous_keys\[1\]",
            id="empty-previous-key",
        ),
        pytest.param(
            {"coherence": {"check_interval": -0.1}}, r"coherence\.check_interval", id="interval"
        ),
        pytest.param(
            {"imaging": {"revalidate_after": -1}}, r"imaging\.revalidate_after", id="revalidate"
        ),
        pytest.param(
            {"imaging": {"revalidate_grace": -1}}, r"imaging\.revalidate_grace", id="grace"
        ),
    ],
)
def test_out_of_range_values_name_their_key(sections: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Config.from_mapping({**VALID, **sections}, env={})


def test_unknown_filter_names_are_refused_when_the_renderer_is_built() -> None:
    # Filter plugins add names, so the check runs where the registry is assembled.
    config = Config.from_mapping({**VALID, "imaging": {"filters": ["blur", "bler"]}}, env={})
    with pytest.raises(ConfigError, match=r"imaging\.filters\[1\]: unknown filter 'bler'"):
        build_renderer(config.imaging)


def test_unknown_filter_suggests_the_closest_name() -> None:
    config = Config.from_mapping({**VALID, "imaging": {"filters": ["bler"]}}, env={})
    with pytest.raises(ConfigError, match=r"unknown filter 'bler' \(did you mean 'blur'\?\)"):
        build_renderer(config.imaging)


def test_known_filters_and_boundaries_pass() -> None:
    config = Config.from_mapping(
        {
            **VALID,
            "server": {"port": 65535, "workers": 0, "request_timeout": 0.5},
            "imaging": {"filters": ["blur", "quality", "format"]},
        },
        env={},
    )
    assert config.server.port == 65535


def test_empty_key_from_the_environment_means_unset() -> None:
    config = Config.from_mapping(
        {"security": {"key": "file-key"}}, env={"THUMBOR_PY_SECURITY_KEY": ""}
    )
    assert config.security.key == "file-key"


def test_duplicate_yaml_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("security: {key: k}\nimaging:\n  quality: 80\n  quality: 20\n")
    with pytest.raises(ConfigError, match="duplicate key 'quality'"):
        load_config(path, env={})


def test_duplicate_top_level_sections_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("security: {key: k}\nsecurity: {allow_unsafe: true}\n")
    with pytest.raises(ConfigError, match="duplicate key 'security'"):
        load_config(path, env={})


def test_unknown_environment_variable_is_a_warning_with_a_suggestion(
    caplog: pytest.LogCaptureFixture,
) -> None:
    env = {
        "THUMBOR_PY_SECURTY_KEY": "typo",
        "THUMBOR_PY_SECURITY_KEY": "k",
        "THUMBOR_PY_MONGODB_URI": "mongodb://x/",
        "OTHER": "y",
    }
    with caplog.at_level(logging.WARNING, logger="thumbor_py.config"):
        config = Config.from_mapping({}, env=env)
    assert config.security.key == "k"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "THUMBOR_PY_SECURTY_KEY" in message
    assert "did you mean 'THUMBOR_PY_SECURITY_KEY'" in message


def test_relative_roots_resolve_against_the_config_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    (folder / "images").mkdir(parents=True)
    path = folder / "c.yaml"
    path.write_text(
        "security: {key: k}\n"
        "loader: {use: file, settings: {root: images}}\n"
        "routes: [{prefix: 'x/', loader: {use: file, settings: {root: ./images}}}]\n"
        "result_storage: {use: file, settings: {root: results}}\n"
    )
    monkeypatch.chdir(tmp_path)  # somewhere else: the cwd must not matter
    config = load_config(path, env={})
    assert config.loader.settings["root"] == str(folder / "images")
    assert config.routes[0].loader.settings["root"] == str(folder / "images")
    assert config.result_storage.settings["root"] == str(folder / "results")
    create_app(config)


def test_absolute_roots_and_other_plugins_are_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        f"security: {{key: k}}\nloader: {{use: file, settings: {{root: {SAMPLES}}}}}\n"
        "result_storage: {use: 'mymod:Store', settings: {root: rel}}\n"
    )
    config = load_config(path, env={})
    assert config.loader.settings["root"] == str(SAMPLES)
    assert config.result_storage.settings["root"] == "rel"


def test_a_missing_root_is_reported_with_the_absolute_path(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("security: {key: k}\nloader: {use: file, settings: {root: nowhere}}\n")
    with pytest.raises(ConfigError, match=str(tmp_path / "nowhere")):
        create_app(load_config(path, env={}))


def test_synchronous_loader_is_refused_when_built() -> None:
    config = Config.from_mapping({**VALID, "loader": {"use": f"{__name__}:SyncLoader"}}, env={})
    with pytest.raises(ConfigError, match=r"loader\.use: .*load\(\) with 'async def'"):
        create_app(config)


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("server: {port: 70000}\n", id="port"),
        pytest.param("server: {request_timeout: -5}\n", id="timeout"),
        pytest.param("server: {workers: -1}\n", id="workers"),
        pytest.param("imaging: {filters: [nope]}\n", id="filters"),
        pytest.param("imaging: {quality: 80}\nimaging: {quality: 90}\n", id="duplicate"),
        pytest.param("security: {previous_keys: ['']}\n", id="empty-previous-key"),
        pytest.param(f"loader: {{use: '{__name__}:SyncLoader'}}\n", id="sync-loader"),
    ],
)
def test_check_config_rejects_what_serve_would_fail_on(
    text: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "security: {key: k}\n" + text
        if "security" not in text
        else text.replace("security: {", "security: {key: k, ")
    )
    assert main(["check-config", str(path)]) == 2
    assert "configuration error" in capsys.readouterr().err


def test_check_config_rejects_a_host_that_does_not_resolve(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("security: {key: k}\nserver: {host: no-such-host.invalid}\n")
    assert main(["check-config", str(path)]) == 2
    assert "server.host" in capsys.readouterr().err


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "security: {key: k}\nimaging:\n  <<: {quality: 70, max_width: 300}\n  quality: 90\n"
    )
    config = load_config(path, env={})
    assert (config.imaging.quality, config.imaging.max_width) == (90, 300)
