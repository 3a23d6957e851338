"""Install what the browser test needs, once: Debian's Chromium, Node.js, the pinned npm packages.

Idempotent and cheap when everything is there: Chromium and Node.js come from apt only when
missing (which needs root), and ``npm ci`` runs only when ``node_modules`` does not match the
committed ``package-lock.json``. Run it by hand with ``python tests/browser/install.py``.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHROMIUM = Path("/usr/bin/chromium")
NODE_MODULES = HERE / "node_modules"
LOCKFILE = HERE / "package-lock.json"
# Written after a successful `npm ci`: the hash of the lockfile it installed.
STAMP = NODE_MODULES / ".installed-lock-sha256"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive"}
# Wait for another apt or dpkg (e.g. unattended upgrades on a fresh machine) instead of failing.
APT_WAIT = ("-o", "DPkg::Lock::Timeout=300")
MIN_NODE = 20  # playwright-core 1.65's "engines"


class InstallError(RuntimeError):
    """Something the browser test needs is missing and cannot be installed here."""


@dataclass(frozen=True, slots=True)
class BrowserTools:
    """Where the tools are, and what this call had to install (with the seconds it took)."""

    chromium: Path
    node: Path
    installed: tuple[tuple[str, float], ...]


def ensure() -> BrowserTools:
    """Make Chromium, Node.js and ``node_modules`` present; raise InstallError if impossible."""
    installed: list[tuple[str, float]] = []
    with _lock():
        apt = [package for package, tool in _APT_TOOLS if not _has(tool)]
        if apt:
            installed.append((" ".join(apt), _timed(lambda: _apt_install(apt))))
        node = shutil.which("node")
        if node is None or not _has(str(CHROMIUM)):
            raise InstallError("apt-get installed chromium/nodejs, yet they are still missing")
        _check_node_version(node)
        if not _node_modules_current():
            installed.append(("npm ci", _timed(lambda: _npm_ci(node))))
    return BrowserTools(CHROMIUM, Path(node), tuple(installed))


# (Debian package, the program it provides)
_APT_TOOLS = (("chromium", str(CHROMIUM)), ("nodejs", "node"), ("npm", "npm"))


def _check_node_version(node: str) -> None:
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=False)
    major = version.stdout.strip().lstrip("v").split(".")[0]
    if not major.isdigit() or int(major) < MIN_NODE:
        raise InstallError(
            f"{node} is {version.stdout.strip() or 'unusable'}; playwright-core needs "
            f"Node.js {MIN_NODE} or newer"
        )


def _has(tool: str) -> bool:
    return Path(tool).is_file() if tool.startswith("/") else shutil.which(tool) is not None


def _timed(action: Callable[[], None]) -> float:
    started = time.monotonic()
    action()
    return round(time.monotonic() - started, 1)


def _apt_install(packages: Sequence[str]) -> None:
    if os.geteuid() != 0:
        raise InstallError(
            f"the browser test needs {', '.join(packages)} and only root can install them: "
            f"run `sudo apt-get install -y {' '.join(packages)}`"
        )
    _run(["apt-get", *APT_WAIT, "update"])
    _run(["apt-get", *APT_WAIT, "install", "-y", *packages])


def _lock_hash() -> str:
    return hashlib.sha256(LOCKFILE.read_bytes()).hexdigest()


def _node_modules_current() -> bool:
    return STAMP.is_file() and STAMP.read_text().strip() == _lock_hash()


def _npm_ci(node: str) -> None:
    npm = shutil.which("npm") or str(Path(node).with_name("npm"))
    _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=HERE)
    STAMP.write_text(_lock_hash() + "\n")


def _run(command: Sequence[str], cwd: Path | None = None) -> None:
    result = subprocess.run(
        command,
        cwd=cwd,
        env={**os.environ, **APT_ENV},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-15:]
        raise InstallError(
            f"`{' '.join(command)}` failed ({result.returncode}):\n" + "\n".join(tail)
        )


@contextmanager
def _lock() -> Iterator[None]:
    """One installer at a time (two pytest runs in one checkout must not race `npm ci`)."""
    with open(HERE / ".install.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


if __name__ == "__main__":
    try:
        tools = ensure()
    except InstallError as exc:
        sys.exit(f"install.py: {exc}")
    print(f"chromium: {tools.chromium}\nnode: {tools.node}")
    for what, seconds in tools.installed or (("nothing to install", 0.0),):
        print(f"{what}: {seconds} s")
