"""One set of S3 settings for the loader and the storage; secrets through the config's
environment overrides, never read from ``os.environ`` by a plugin."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

import loaders.s3
import result_storages.mongodb
import result_storages.s3
from loaders.s3 import S3Loader
from result_storages.s3 import S3ResultStorage
from thumbor_py.config import Config
from thumbor_py.errors import ConfigError
from thumbor_py.s3client import S3Settings

URI = "mongodb://user:pw@mongo.internal:27017/"


def test_loader_and_storage_share_the_s3_settings_and_defaults() -> None:
    shared = {f.name: f.default for f in dataclasses.fields(S3Settings)}
    loader = {f.name: f.default for f in dataclasses.fields(S3Loader.Settings)}
    storage = {f.name: f.default for f in dataclasses.fields(S3ResultStorage.Settings)}
    assert issubclass(S3Loader.Settings, S3Settings)
    assert issubclass(S3ResultStorage.Settings, S3Settings)
    own = {"bucket", "prefix"}  # the storage requires a bucket and writes under results/
    for name, default in shared.items():
        assert loader[name] == default, name
        if name not in own:
            assert storage[name] == default, name


def config(storage: dict[str, Any], env: dict[str, str], **sections: Any) -> Config:
    data = {"security": {"allow_unsafe": True}, "result_storage": storage, **sections}
    return Config.from_mapping(data, env=env)


def test_the_mongodb_uri_comes_through_the_config() -> None:
    storage = {"use": "s3", "settings": {"bucket": "b"}}
    loaded = config(storage, {"THUMBOR_PY_MONGODB_URI": URI})
    assert loaded.result_storage.settings["metadata"] == {"uri": URI}


def test_no_storage_or_loader_reads_the_environment() -> None:
    for module in (result_storages.s3, result_storages.mongodb, loaders.s3):
        assert "os.environ" not in Path(module.__file__ or "").read_text()


def test_the_environment_wins_over_the_file() -> None:
    storage = {
        "use": "result_storages.s3:S3ResultStorage",
        "settings": {"bucket": "b", "metadata": {"uri": "mongodb://file/", "database": "d"}},
    }
    loaded = config(storage, {"THUMBOR_PY_MONGODB_URI": URI})
    assert loaded.result_storage.settings["metadata"] == {"uri": URI, "database": "d"}


def test_other_storages_ignore_the_variable() -> None:
    storage = {"use": "file", "settings": {"root": "/tmp/x"}}
    loaded = config(storage, {"THUMBOR_PY_MONGODB_URI": URI})
    assert dict(loaded.result_storage.settings) == {"root": "/tmp/x"}


def test_s3_credentials_come_from_named_variables() -> None:
    env = {
        "THUMBOR_PY_RESULT_STORAGE_ACCESS_KEY_ID": "AKIA-storage",
        "THUMBOR_PY_RESULT_STORAGE_SECRET_ACCESS_KEY": "storage-secret",
        "THUMBOR_PY_LOADER_ACCESS_KEY_ID": "AKIA-loader",
        "THUMBOR_PY_LOADER_SECRET_ACCESS_KEY": "loader-secret",
    }
    loaded = config(
        {"use": "s3", "settings": {"bucket": "b", "metadata": {"uri": URI}}},
        env,
        loader={"use": "s3", "settings": {"bucket": "images"}},
    )
    assert loaded.result_storage.settings["access_key_id"] == "AKIA-storage"
    assert loaded.result_storage.settings["secret_access_key"] == "storage-secret"
    assert loaded.loader.settings["access_key_id"] == "AKIA-loader"
    assert loaded.loader.settings["secret_access_key"] == "loader-secret"


def test_a_settings_section_of_the_wrong_shape_names_its_path() -> None:
    storage = {"use": "s3", "settings": {"bucket": "b", "metadata": "oops"}}
    with pytest.raises(ConfigError, match=r"result_storage\.settings\.metadata"):
        config(storage, {"THUMBOR_PY_MONGODB_URI": URI})


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"bucket": "b"}, id="no-mongodb-uri"),
        pytest.param({"bucket": "b", "serve": "redirect", "metadata": {"uri": URI}}, id="no-url"),
        pytest.param(
            {"bucket": "b", "public_url": "https://cdn/x", "metadata": {"uri": URI}},
            id="url-without-object-key",
        ),
        pytest.param({"bucket": "b", "access_key_id": "A", "metadata": {"uri": URI}}, id="half"),
        pytest.param({"bucket": "b", "read_timeout": 0, "metadata": {"uri": URI}}, id="timeout"),
    ],
)
def test_bad_storage_settings_are_config_errors(settings: dict[str, Any]) -> None:
    from thumbor_py.app import create_app

    with pytest.raises(ConfigError, match="result_storage"):
        create_app(config({"use": "s3", "settings": settings}, {}))


def test_a_missing_bucket_names_its_key() -> None:
    from thumbor_py.app import create_app

    with pytest.raises(ConfigError, match=r"result_storage\.settings\.bucket: required"):
        create_app(config({"use": "s3", "settings": {"metadata": {"uri": URI}}}, {}))
