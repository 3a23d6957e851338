"""Meta-tests: the docs, the status table and the plugin aliases cannot drift from the code."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from thumbor_py import errors
from thumbor_py.app import create_app
from thumbor_py.config import Config, load_config
from thumbor_py.config_schema import build
from thumbor_py.errors import HttpError
from thumbor_py.plugins import (
    ALIASES,
    Detector,
    Loader,
    PluginContext,
    ResultStorage,
    Source,
    resolve_class,
)

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "config.example.yaml"


# ---------------------------------------------------------------------------------------
# config.example.yaml documents every field
# ---------------------------------------------------------------------------------------


def _field_paths(cls: type[Any], prefix: str = "") -> list[str]:
    """Every key path of a config dataclass; lists of sections as ``routes``."""
    paths: list[str] = []
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        path = f"{prefix}{field.name}"
        paths.append(path)
        tp = hints[field.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            paths += _field_paths(tp, path + ".")
    return paths


def _lookup(data: object, path: str) -> bool:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            return False
        data = data[part]
    return True


@pytest.mark.parametrize("path", _field_paths(Config))
def test_example_config_documents_every_field(path: str) -> None:
    example = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert _lookup(example, path), f"{path} is missing from config.example.yaml"


def test_example_config_is_valid_and_all_defaults() -> None:
    """Every key in the example is a real field, set to the field's default."""
    config = load_config(EXAMPLE, env={"THUMBOR_PY_SECURITY_KEY": "k"})
    assert dataclasses.replace(config, security=Config().security) == dataclasses.replace(
        Config(), loader=config.loader
    )


def test_route_fields_are_documented() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    for name in ("prefix", "loader"):
        assert f"{name}:" in text


# ---------------------------------------------------------------------------------------
# Every HttpError has a status row (DESIGN.md §4), and the middleware answers with it
# ---------------------------------------------------------------------------------------

STATUS_TABLE: dict[type[HttpError], int] = {
    errors.HttpError: 500,
    errors.BadRequestError: 400,
    errors.UrlParseError: 400,
    errors.SignatureError: 400,
    errors.SourceForbiddenError: 400,
    errors.SourceTooLargeError: 400,
    errors.ImageDecodeError: 400,
    errors.ImageTooLargeError: 400,
    errors.FilterArgumentError: 400,
    errors.FilterError: 400,
    errors.SourceNotFoundError: 404,
    errors.UpstreamError: 502,
    errors.UpstreamTimeoutError: 504,
    errors.OverloadedError: 503,
    errors.RetryLaterError: 503,
    errors.UnauthorizedError: 401,
    errors.ConflictError: 409,
    errors.ForbiddenError: 403,
    errors.PreconditionFailedError: 412,
    errors.UnsupportedMediaTypeError: 415,
    errors.RateLimitedError: 429,
    errors.NotReadyError: 503,
    errors.StorageError: 503,
    errors.StorageUnavailableError: 503,
    errors.StorageKeyError: 500,
    errors.DeadlineExceededError: 503,
}


def _subclasses(cls: type[HttpError]) -> set[type[HttpError]]:
    found = {cls}
    for sub in cls.__subclasses__():
        found |= _subclasses(sub)
    return found


def _http_errors() -> set[type[HttpError]]:
    """Every HttpError defined in thumbor_py.errors (test doubles elsewhere are ignored)."""
    return {c for c in _subclasses(HttpError) if c.__module__ == errors.__name__}


def test_every_http_error_has_a_status_row() -> None:
    assert _http_errors() == set(STATUS_TABLE)


@pytest.mark.parametrize(
    ("cls", "status"), [pytest.param(c, s, id=c.__name__) for c, s in STATUS_TABLE.items()]
)
def test_status_row_matches_the_class(cls: type[HttpError], status: int) -> None:
    assert cls.status == status
    assert cls.__doc__, "HTTP-facing errors document when they are raised"
    assert cls.__name__ in (errors.__doc__ or ""), "the module docstring draws the hierarchy"


class RaisingLoader:
    """Raises the error class named in its settings, as a backend would."""

    raised: ClassVar[HttpError | None] = None

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        pass

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        pass

    async def load(self, source: str) -> Source:
        assert RaisingLoader.raised is not None
        raise RaisingLoader.raised


@pytest.mark.parametrize(
    ("cls", "status"), [pytest.param(c, s, id=c.__name__) for c, s in STATUS_TABLE.items()]
)
async def test_middleware_answers_each_error_with_its_status(
    aiohttp_client: Any, cls: type[HttpError], status: int
) -> None:
    RaisingLoader.raised = cls("reason\nwith a second line")
    config = Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "loader": {"use": "tests.test_meta:RaisingLoader", "settings": {}},
        },
        env={},
    )
    client = await aiohttp_client(create_app(config))
    response = await client.get("/unsafe/a.jpg")
    assert response.status == status
    text = await response.text()
    assert "\n" not in text.strip()
    assert "reason with a second line" in text
    if cls is errors.OverloadedError:
        assert response.headers["Retry-After"]


# ---------------------------------------------------------------------------------------
# Every built-in alias resolves and satisfies its Protocol
# ---------------------------------------------------------------------------------------

PROTOCOLS: dict[str, type[Any]] = {
    "loader": Loader,
    "result_storage": ResultStorage,
    "detector": Detector,
}


def _protocol_methods(protocol: type[Any]) -> dict[str, Any]:
    return {
        name: value
        for name, value in vars(protocol).items()
        if not name.startswith("_") and callable(value)
    }


ALIAS_PARAMS = [
    pytest.param(kind, alias, id=f"{kind}:{alias}")
    for kind, aliases in ALIASES.items()
    for alias in aliases
]


def test_every_alias_kind_has_a_protocol() -> None:
    assert set(ALIASES) <= set(PROTOCOLS)


@pytest.mark.parametrize(("kind", "alias"), ALIAS_PARAMS)
def test_alias_resolves_and_satisfies_its_protocol(kind: str, alias: str) -> None:
    cls = resolve_class(alias, kind, f"{kind}.use")
    protocol = PROTOCOLS[kind]
    for name, method in _protocol_methods(protocol).items():
        implementation = getattr(cls, name, None)
        assert implementation is not None, f"{cls.__name__} lacks {name}"
        is_async = inspect.iscoroutinefunction(method)
        kind_text = "async" if is_async else "sync"
        assert inspect.iscoroutinefunction(implementation) == is_async, (
            f"{cls.__name__}.{name} must be {kind_text}"
        )
        expected = list(inspect.signature(method).parameters)
        assert list(inspect.signature(implementation).parameters) == expected, name
    settings_cls = getattr(cls, "Settings", None)
    assert dataclasses.is_dataclass(settings_cls), f"{cls.__name__} needs a Settings dataclass"
    params = settings_cls.__dataclass_params__  # type: ignore[union-attr]
    assert params.frozen, f"{cls.__name__}.Settings must be frozen"
    assert cls.__doc__
    assert settings_cls.__doc__


@pytest.mark.parametrize(("kind", "alias"), ALIAS_PARAMS)
def test_alias_with_default_settings_builds_an_instance(
    kind: str, alias: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(REPO)  # the file loader's default root is ./samples
    cls = resolve_class(alias, kind, f"{kind}.use")
    try:
        settings = build(cls.Settings, {}, f"{kind}.settings")
    except Exception as exc:  # a required setting (a bucket name): nothing more to check
        pytest.skip(f"{alias} needs settings: {exc}")
    instance = cls(settings, PluginContext(max_source_bytes=1024))
    assert isinstance(instance, PROTOCOLS[kind])


@pytest.mark.parametrize("alias", sorted(ALIASES["detector"]))
def test_example_config_documents_each_detector_setting(alias: str) -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    settings = resolve_class(alias, "detector", "test").Settings
    for field in dataclasses.fields(settings):
        assert f"{field.name}:" in text, f"{alias} setting {field.name} is not documented"
