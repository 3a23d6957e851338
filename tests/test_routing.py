"""Source routing: prefix matching, shared instances, lifecycle and config errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from thumbor_py.assembly import build_loader
from thumbor_py.config import Config
from thumbor_py.errors import ConfigError
from thumbor_py.plugins import PluginContext, Source
from thumbor_py.routing import RoutingLoader

CONTEXT = PluginContext(max_source_bytes=1000)


class RecordingLoader:
    """A loader that answers with its own name and records its lifecycle calls."""

    events: ClassVar[list[str]] = []

    @dataclass(frozen=True, slots=True, kw_only=True)
    class Settings:
        """``settings``: a name, and whether ``start`` fails."""

        name: str = "default"
        fail_start: bool = False

    def __init__(self, settings: Settings, context: PluginContext) -> None:
        self.settings = settings

    async def load(self, source: str) -> Source:
        return Source(data=f"{self.settings.name}:{source}".encode())

    async def start(self) -> None:
        if self.settings.fail_start:
            raise OSError("cannot start")
        self.events.append(f"start {self.settings.name}")

    async def aclose(self) -> None:
        self.events.append(f"close {self.settings.name}")


USE = "tests.test_routing:RecordingLoader"


def _config(*routes: tuple[str, dict[str, object]]) -> Config:
    return Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "loader": {"use": USE, "settings": {"name": "default"}},
            "routes": [
                {"prefix": prefix, "loader": {"use": USE, "settings": settings}}
                for prefix, settings in routes
            ],
        },
        env={},
    )


@pytest.fixture(autouse=True)
def _clear_events() -> None:
    RecordingLoader.events.clear()


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param("s3://bucket/key.jpg", b"s3:s3://bucket/key.jpg", id="s3"),
        pytest.param("http://host/a.jpg", b"web:http://host/a.jpg", id="http"),
        pytest.param("https://host/a.jpg", b"web:https://host/a.jpg", id="https"),
        pytest.param("s3/not-a-scheme.jpg", b"default:s3/not-a-scheme.jpg", id="near-miss"),
        pytest.param("photos/a.jpg", b"default:photos/a.jpg", id="default"),
    ],
)
async def test_routes_by_prefix_and_keeps_the_source(source: str, expected: bytes) -> None:
    web: dict[str, object] = {"name": "web"}
    routes: list[tuple[str, dict[str, object]]] = [
        ("s3://", {"name": "s3"}),
        ("http://", web),
        ("https://", web),
    ]
    loader = build_loader(_config(*routes), CONTEXT)
    assert (await loader.load(source)).data == expected


def test_without_routes_the_default_loader_is_used_directly() -> None:
    assert isinstance(build_loader(_config(), CONTEXT), RecordingLoader)


def test_first_matching_prefix_wins() -> None:
    loader = build_loader(_config(("http", {"name": "a"}), ("http://", {"name": "b"})), CONTEXT)
    assert isinstance(loader, RoutingLoader)
    chosen = loader.loader_for("http://host/x.jpg")
    assert isinstance(chosen, RecordingLoader)
    assert chosen.settings.name == "a"


def test_identical_loader_sections_share_one_instance() -> None:
    loader = build_loader(
        _config(
            ("http://", {"name": "web"}),
            ("https://", {"name": "web"}),
            ("s3://", {"name": "s3"}),
            ("local/", {"name": "default"}),
        ),
        CONTEXT,
    )
    assert isinstance(loader, RoutingLoader)
    assert loader.loader_for("http://a") is loader.loader_for("https://a")
    assert loader.loader_for("http://a") is not loader.loader_for("s3://a")
    assert loader.loader_for("local/a") is loader.loader_for("elsewhere")


async def test_each_loader_starts_and_closes_once() -> None:
    loader = build_loader(
        _config(("http://", {"name": "web"}), ("https://", {"name": "web"})), CONTEXT
    )
    assert isinstance(loader, RoutingLoader)
    await loader.start()
    await loader.aclose()
    assert RecordingLoader.events == ["start web", "start default", "close default", "close web"]


async def test_a_failed_start_closes_the_loaders_already_started() -> None:
    loader = build_loader(
        _config(("a/", {"name": "a"}), ("b/", {"name": "b", "fail_start": True})), CONTEXT
    )
    assert isinstance(loader, RoutingLoader)
    with pytest.raises(OSError, match="cannot start"):
        await loader.start()
    assert RecordingLoader.events == ["start a", "close a"]


def test_a_bad_route_names_its_yaml_key() -> None:
    config = Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "routes": [
                {"prefix": "s3://", "loader": {"use": "s3"}},
                {"prefix": "x:", "loader": {"use": "no_such_module:Loader"}},
            ],
        },
        env={},
    )
    with pytest.raises(ConfigError, match=r"^routes\[1\]\.loader\.use: cannot import"):
        build_loader(config, CONTEXT)


def test_a_bad_route_setting_names_its_yaml_key() -> None:
    config = Config.from_mapping(
        {
            "security": {"allow_unsafe": True},
            "routes": [{"prefix": "http", "loader": {"use": "http", "settings": {"nope": 1}}}],
        },
        env={},
    )
    with pytest.raises(ConfigError, match=r"^routes\[0\]\.loader\.settings\.nope: unknown key"):
        build_loader(config, CONTEXT)
