"""The browser test's installer: what it decides to install, and how it refuses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser import install


def test_a_missing_browser_without_root_fails_saying_what_to_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(install, "_has", lambda tool: tool != str(install.CHROMIUM))
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    ran: list[list[str]] = []
    monkeypatch.setattr(install, "_run", lambda command, cwd=None: ran.append(list(command)))
    with pytest.raises(install.InstallError, match=r"sudo apt-get install -y chromium"):
        install.ensure()
    assert ran == []


def test_a_missing_browser_as_root_is_installed_from_debian(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    present = {"node", "npm"}
    ran: list[list[str]] = []

    def run(command: list[str], cwd: Path | None = None) -> None:
        ran.append(list(command))
        if "install" in command:
            present.add(str(install.CHROMIUM))

    monkeypatch.setattr(install, "_has", lambda tool: tool in present)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(install, "_run", run)
    monkeypatch.setattr(install, "_check_node_version", lambda node: None)
    monkeypatch.setattr(install, "_node_modules_current", lambda: True)
    tools = install.ensure()
    wait = list(install.APT_WAIT)
    assert ran == [["apt-get", *wait, "update"], ["apt-get", *wait, "install", "-y", "chromium"]]
    assert [what for what, _ in tools.installed] == ["chromium"]


@pytest.mark.parametrize(
    ("stamp", "current"),
    [
        pytest.param(None, False, id="never-installed"),
        pytest.param("0" * 64, False, id="lockfile-changed"),
        pytest.param("lock", True, id="up-to-date"),
    ],
)
def test_npm_ci_runs_only_when_node_modules_is_stale(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, stamp: str | None, current: bool
) -> None:
    lockfile = tmp_path / "package-lock.json"
    lockfile.write_text('{"lockfileVersion": 3}')
    monkeypatch.setattr(install, "LOCKFILE", lockfile)
    monkeypatch.setattr(install, "STAMP", tmp_path / "stamp")
    if stamp is not None:
        (tmp_path / "stamp").write_text(install._lock_hash() if stamp == "lock" else stamp)
    assert install._node_modules_current() is current
