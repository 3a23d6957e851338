"""The example loader plugin, loaded from a YAML file by ``module:Class`` and served end to end."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.loaders.http_origin import IMAGE
from thumbor_py.app import create_app
from thumbor_py.config import Config, load_config
from thumbor_py.errors import ConfigError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "loaders"

CONFIG = """\
security:
  allow_unsafe: true
imaging:
  max_source_bytes: 100000
loader:
  use: zip_loader:ZipLoader
  settings:
    path: {archive}
    prefix: originals/
"""


@pytest.fixture
def config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A YAML config naming the example plugin, and the archive it serves."""
    monkeypatch.syspath_prepend(str(EXAMPLES))  # how an operator would install a plugin
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        handle.writestr("originals/cats/chelsea.jpg", IMAGE)
        handle.writestr("originals/big.bin", b"\0" * 100_001)
        handle.writestr("originals/cats/", b"")
    path = tmp_path / "thumbor-py.yaml"
    path.write_text(CONFIG.format(archive=archive), encoding="utf-8")
    return path


@pytest.fixture
def config(config_file: Path) -> Config:
    """The YAML file loaded (a sync fixture: reading the file blocks)."""
    return load_config(config_file, env={})


async def test_serves_an_image_from_the_example_plugin(aiohttp_client: Any, config: Config) -> None:
    client = await aiohttp_client(create_app(config))
    response = await client.get("/unsafe/50x30/cats/chelsea.jpg")
    assert response.status == 200
    with Image.open(io.BytesIO(await response.read())) as image:
        assert image.size == (50, 30)


@pytest.mark.parametrize(
    ("source", "status"),
    [
        pytest.param("cats/missing.jpg", 404, id="missing"),
        pytest.param("cats/", 404, id="directory"),
        pytest.param("big.bin", 400, id="too-large"),
    ],
)
async def test_example_plugin_errors(
    aiohttp_client: Any, config: Config, source: str, status: int
) -> None:
    client = await aiohttp_client(create_app(config))
    response = await client.get(f"/unsafe/{source}")
    assert response.status == status


def test_bad_example_settings_name_the_yaml_key(config_file: Path) -> None:
    config_file.write_text(
        config_file.read_text(encoding="utf-8").replace("images.zip", "images.tar"),
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match=r"^loader: cannot create"):
        create_app(load_config(config_file, env={}))


ROUTED = """\
security:
  allow_unsafe: true
loader:
  use: file
  settings:
    root: {samples}
routes:
  - prefix: originals/
    loader:
      use: zip_loader:ZipLoader
      settings:
        path: {archive}
"""


@pytest.fixture
def routed_config(config_file: Path, tmp_path: Path) -> Config:
    """The example plugin behind a route, next to the file loader."""
    path = tmp_path / "routed.yaml"
    samples = EXAMPLES.parents[1] / "samples"
    path.write_text(ROUTED.format(samples=samples, archive=tmp_path / "images.zip"), "utf-8")
    return load_config(path, env={})


async def test_serves_the_example_plugin_behind_a_route(
    aiohttp_client: Any, routed_config: Config
) -> None:
    client = await aiohttp_client(create_app(routed_config))
    for source in ["originals/cats/chelsea.jpg", "coffee.jpg"]:
        response = await client.get(f"/unsafe/40x40/{source}")
        assert response.status == 200, source
