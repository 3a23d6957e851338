"""The operator docs stay true: every thumbor-py key the Thumbor migration table names exists,
the table covers the settings teams move, and the Quick start names what it needs."""

from __future__ import annotations

import dataclasses
import re

import pytest

from tests.conftest import REPO
from thumbor_py.config import Config

FROM_THUMBOR = (REPO / "docs" / "from-thumbor.md").read_text()
README = (REPO / "README.md").read_text()
_SECTIONS = {field.name: field for field in dataclasses.fields(Config)}


def _config_keys() -> set[str]:
    config = Config()
    keys = set()
    for name in _SECTIONS:
        section = getattr(config, name)
        if dataclasses.is_dataclass(section):
            keys |= {f"{name}.{f.name}" for f in dataclasses.fields(section)}
    return keys


def test_every_key_the_migration_table_names_exists() -> None:
    named = set(
        re.findall(
            r"`((?:server|security|imaging|http|result_storage|metrics|admin)\.\w+)", FROM_THUMBOR
        )
    )
    assert named
    assert named <= _config_keys(), named - _config_keys()


@pytest.mark.parametrize(
    "setting",
    [
        "SECURITY_KEY",
        "ALLOW_UNSAFE_URL",
        "RESULT_STORAGE_STORES_UNSAFE",
        "MAX_WIDTH",
        "MAX_HEIGHT",
        "AUTO_WEBP",
        "AUTO_AVIF",
        "RESPECT_ORIENTATION",
        "QUALITY",
        "MAX_AGE",
        "LOADER",
        "RESULT_STORAGE",
        "MAX_SOURCE_SIZE",
    ],
)
def test_migration_table_covers_the_common_settings(setting: str) -> None:
    rows = [line for line in FROM_THUMBOR.splitlines() if line.startswith("| ")]
    assert any(f"`{setting}`" in row.split(" | ")[0] for row in rows)


def test_readme_links_the_migration_page_and_states_the_python_it_needs() -> None:
    assert "## Moving from Thumbor" in README
    assert "docs/from-thumbor.md" in README
    quick_start = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "Python >= 3.11" in quick_start
    assert "venv" in quick_start
