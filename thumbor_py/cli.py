"""The ``thumbor-py`` command: ``serve``, ``sign``, ``url``, ``purge``, ``config``,
``check-config``, and for the image repository ``storage setup``, ``housekeep``, ``hash-key``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from thumbor_py import logs
from thumbor_py.builder import build_url, quote_path
from thumbor_py.config import Config, load_config
from thumbor_py.config_schema import ENV_PREFIX
from thumbor_py.errors import ConfigError, StorageError
from thumbor_py.signing import signed_path

_DESCRIPTION = (
    "A Thumbor-compatible image server. Commands: serve (run the server), sign and url "
    "(make signed URLs), purge (delete stored variants of a source), config (print the "
    "effective configuration) and check-config (validate a config file)."
)
_KEY_ENV = f"{ENV_PREFIX}SECURITY_KEY"
_KEY_HELP = f"the signing key (default: {_KEY_ENV}, or security.key of --config)"

_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".avif"}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return int(args.command(args))
    except ConfigError as exc:
        print(f"thumbor-py: configuration error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="thumbor-py", description=_DESCRIPTION)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    serve = commands.add_parser("serve", help="run the image server")
    serve.add_argument("--config", "-c", help="YAML config (default: the embedded quick start)")
    serve.add_argument("--host", help="override server.host")
    serve.add_argument("--port", type=int, help="override server.port")
    serve.add_argument("--workers", type=int, help="override server.workers (0 = one per CPU)")
    serve.set_defaults(command=_serve)

    sign = commands.add_parser("sign", help="print the signed path for PATH")
    sign.add_argument("--key", help=_KEY_HELP)
    sign.add_argument("--config", "-c", help="YAML config whose security.key signs")
    sign.add_argument("path", help="the path after the signature, e.g. 300x200/img.jpg")
    sign.set_defaults(command=_sign)

    url = commands.add_parser("url", help="build a Thumbor URL")
    url.add_argument("image")
    url.add_argument("--key", help=_KEY_HELP + "; with none, an /unsafe/ URL")
    url.add_argument("--config", "-c", help="YAML config whose security.key signs")
    url.add_argument("--unsafe", action="store_true", help="an /unsafe/ URL even with a key")
    url.add_argument("--width", type=_size, default="0", help="pixels, 0 or orig")
    url.add_argument("--height", type=_size, default="0", help="pixels, 0 or orig")
    url.add_argument("--fit-in", action="store_true")
    url.add_argument("--adaptive-fit-in", action="store_true")
    url.add_argument("--full-fit-in", action="store_true")
    url.add_argument("--smart", action="store_true")
    url.add_argument("--halign", choices=("left", "center", "right"), default="center")
    url.add_argument("--valign", choices=("top", "middle", "bottom"), default="middle")
    url.add_argument("--crop", help="LEFTxTOP:RIGHTxBOTTOM")
    url.add_argument("--trim", action="store_true")
    url.add_argument("--flip", action="store_true", help="flip horizontally")
    url.add_argument("--flop", action="store_true", help="flip vertically")
    url.add_argument("--meta", action="store_true")
    url.add_argument(
        "--filters",
        action="append",
        default=[],
        help="e.g. 'quality(80):format(webp)'; may be repeated",
    )
    url.set_defaults(command=_url)

    purge = commands.add_parser("purge", help="delete every stored variant of a source")
    purge.add_argument("--config", "-c", help="YAML config naming the result storage")
    purge.add_argument(
        "--source", required=True, help="the image part of the URLs: any spelling of it"
    )
    purge.set_defaults(command=_purge)

    show = commands.add_parser(
        "config", help="print the effective configuration (defaults + file + environment)"
    )
    show.add_argument("--config", "-c", help="YAML config (default: the embedded quick start)")
    show.set_defaults(command=_show_config)

    check = commands.add_parser("check-config", help="validate a YAML config and exit")
    check.add_argument("file")
    check.set_defaults(command=_check_config)
    _repository_commands(commands)  # issue 17
    return parser


# --- repository (issue 17): storage setup, housekeep, hash-key ----------------------------
def _repository_commands(commands: Any) -> None:
    storage = commands.add_parser("storage", help="set up the repository's bucket")
    actions = storage.add_subparsers(required=True, metavar="ACTION")
    setup = actions.add_parser("setup", help="apply the lifecycle rule for temporary uploads")
    setup.add_argument("--config", "-c", required=True)
    setup.add_argument("--print", action="store_true", help="print the rule, change nothing")
    setup.set_defaults(command=_storage_setup)
    sweep = commands.add_parser("housekeep", help="remove abandoned uploads and orphans")
    sweep.add_argument("--config", "-c", required=True)
    sweep.add_argument("--dry-run", action="store_true", help="list, remove nothing")
    sweep.add_argument("--grace", type=float, default=3600.0, help="seconds (default 3600)")
    sweep.set_defaults(command=_housekeep)
    hashed = commands.add_parser("hash-key", help="print the sha256 of an API key read on stdin")
    hashed.set_defaults(command=_hash_key)


def _storage_setup(args: argparse.Namespace) -> int:
    from thumbor_py.repository import housekeeping

    async def run(repositories: Any) -> None:
        for storage, rule in housekeeping.lifecycle_rules(repositories).items():
            print(f"bucket {storage.bucket}: {json.dumps(rule, sort_keys=True)}")
            if not args.print:
                await housekeeping.apply_lifecycle(storage, rule)
                print(f"bucket {storage.bucket}: lifecycle rule applied")

    return _with_repositories(load_config(args.config), run)


def _housekeep(args: argparse.Namespace) -> int:
    from thumbor_py.repository import housekeeping

    async def run(repositories: Any) -> None:
        report = await housekeeping.sweep(repositories, dry_run=args.dry_run, grace=args.grace)
        print("\n".join(report.lines(dry_run=args.dry_run)))

    return _with_repositories(load_config(args.config), run)


def _hash_key(_args: argparse.Namespace) -> int:
    from thumbor_py.repository.auth import hash_key

    key = sys.stdin.readline().strip()
    if not key:
        print("thumbor-py: give the API key on stdin", file=sys.stderr)
        return 2
    print(hash_key(key))
    return 0


def _with_repositories(config: Config, action: Any) -> int:
    from thumbor_py.app import REPOSITORIES_KEY, create_app, started

    async def run() -> None:
        app = create_app(config)
        repositories = app.get(REPOSITORIES_KEY)
        if repositories is None:
            raise ConfigError("repository.enabled: no repository is enabled")
        async with started(app):
            await action(repositories)

    try:
        asyncio.run(run())
    except StorageError as exc:
        print(f"thumbor-py: {exc.reason}", file=sys.stderr)
        return 1
    return 0


# --- end of repository --------------------------------------------------------------------


def _size(text: str) -> str:
    if text == "orig" or text.isdigit():
        return text
    raise argparse.ArgumentTypeError(
        f"{text!r} is not a size: give whole pixels, 0 or orig (flip with --flip/--flop)"
    )


def _serve(args: argparse.Namespace) -> int:
    from thumbor_py import server  # aiohttp is only needed to serve

    with _held_warnings() as held:  # shown once logging is set up (JSON lines included)
        config = load_config(args.config)
    overrides = {
        name: value
        for name, value in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if value is not None
    }
    if overrides:
        config = dataclasses.replace(config, server=dataclasses.replace(config.server, **overrides))
        config.validate()  # --port 70000 is refused like server.port: 70000
    logs.configure(config.server.log_format, config.server.log_level)
    for record in held:
        logging.getLogger(record.name).handle(record)
    try:
        server.serve(config, banner=lambda base: _banner_lines(config, base))
    except OSError as exc:  # binding the port: in use, not permitted, unknown host
        host, port = config.server.host, config.server.port
        print(f"thumbor-py: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0


@contextlib.contextmanager
def _held_warnings() -> Iterator[list[logging.LogRecord]]:
    """Hold what loading the config logs (unknown ``THUMBOR_PY_*`` variables) until the
    configured log handler exists, instead of printing it through logging's bare fallback."""
    held: list[logging.LogRecord] = []
    handler = _ListHandler(held)
    logger = logging.getLogger("thumbor_py.config")
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield held
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


class _ListHandler(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__()
        self._records = records

    def emit(self, record: logging.LogRecord) -> None:
        self._records.append(record)


def _banner_lines(config: Config, base: str) -> list[str]:
    """Example URLs, logged by the server once it listens on ``base``."""
    example = _example_image(config)
    if example is None:
        return []
    lines = []
    if config.security.allow_unsafe:
        lines.append(f"try: {base}{build_url(example, width=300, height=200, smart=True)}")
    if config.security.key:
        signed = build_url(example, key=config.security.key, width=300, height=200)
        lines.append(f"signed: {base}{signed}")
    return lines


def _example_image(config: Config) -> str | None:
    if config.loader.use != "file":
        return None
    root = Path(str(config.loader.settings.get("root", "./samples")))
    images = sorted(p for p in root.glob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    return images[0].name if images else None


def _signing_key(args: argparse.Namespace) -> str | None:
    """``--key``, else ``security.key`` of ``--config`` (environment included), else the
    environment: the key need not be typed where the shell history keeps it."""
    if args.key:
        return str(args.key)
    if args.config:
        return load_config(args.config).security.key
    return os.environ.get(_KEY_ENV) or None


def _sign(args: argparse.Namespace) -> int:
    key = _signing_key(args)
    if key is None:
        raise ConfigError(f"security.key: give --key, set {_KEY_ENV} or name a --config with one")
    print(signed_path(key, quote_path(args.path)))
    return 0


def _show_config(args: argparse.Namespace) -> int:
    from thumbor_py.config_dump import effective_yaml

    print(effective_yaml(load_config(args.config)), end="")
    return 0


def _url(args: argparse.Namespace) -> int:
    crop = None
    if args.crop:
        try:
            top_left, bottom_right = args.crop.split(":")
            left, top = top_left.split("x")
            right, bottom = bottom_right.split("x")
            crop = (int(left), int(top), int(right), int(bottom))
        except ValueError:
            print("thumbor-py: --crop must look like 10x20:300x400", file=sys.stderr)
            return 2
    print(
        build_url(
            args.image,
            key=None if args.unsafe else _signing_key(args),
            width=args.width,
            height=args.height,
            fit_in=args.fit_in,
            adaptive=args.adaptive_fit_in,
            full=args.full_fit_in,
            smart=args.smart,
            halign=args.halign,
            valign=args.valign,
            crop=crop,
            trim=args.trim,
            flip_horizontal=args.flip,
            flip_vertical=args.flop,
            meta=args.meta,
            filters=[text for text in args.filters if text],
        )
    )
    return 0


def _purge(args: argparse.Namespace) -> int:
    from thumbor_py.app import purge_source

    config = load_config(args.config)
    try:
        count = asyncio.run(purge_source(config, args.source))
    except StorageError as exc:  # the guard logged the cause; this says what to do
        print(f"thumbor-py: {exc.reason}", file=sys.stderr)
        return 1
    print(f"purged {count} stored variant(s) of {args.source}")
    return 0


def _check_config(args: argparse.Namespace) -> int:
    config = load_config(args.file)
    from thumbor_py.app import create_app

    create_app(config)  # resolves plugins: a bad module:Class is reported here too
    _check_host(config.server.host)
    print(f"{args.file}: OK")
    return 0


def _check_host(host: str) -> None:
    """``server.host`` must resolve, or ``serve`` would fail when it binds."""
    try:
        socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise ConfigError(f"server.host: cannot resolve {host!r}: {exc}") from exc
