"""The worker model thumbor-py did not choose, for the benchmark: one event loop (one
process) handing every render to a pool of N processes.

    python bench/process_pool.py CONFIG.yaml PORT PROCESSES

It is thumbor-py's own app with the render executor swapped for an adapter that ships the
source bytes and the parsed request to a ``ProcessPoolExecutor`` (each pool process has its
own renderer), so the only difference measured is the worker model.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web

from thumbor_py.app import PIPELINE_KEY, create_app
from thumbor_py.assembly import build_renderer
from thumbor_py.config import Config, PluginConfig, load_config
from thumbor_py.imaging.master import PixelSource
from thumbor_py.imaging.output import Rendered
from thumbor_py.imaging.transform import Renderer
from thumbor_py.url import ImageRequest

_renderer: Renderer | None = None


def _start(config: Config) -> None:
    global _renderer
    _renderer = build_renderer(config.imaging)


def _render(
    source: PixelSource,
    request: ImageRequest,
    format_class: str,
    resources: Mapping[str, bytes],
    deadline: float | None,
) -> Rendered:
    assert _renderer is not None
    return _renderer.render(source, request, format_class, resources=resources, deadline=deadline)


class PoolAdapter(Executor):
    """Unwraps the pipeline's render job (a partial of ``Renderer.render``) into a call a
    process pool can pickle."""

    def __init__(self, pool: ProcessPoolExecutor) -> None:
        self._pool = pool

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        run = args[0]  # partial(_in_thread, queued_at, deadline, job, stage)
        job = run.args[2]
        assert isinstance(job, partial), "expected a render job"
        source, request, format_class = job.args
        resources, deadline = job.keywords["resources"], job.keywords["deadline"]
        return self._pool.submit(_render, source, request, format_class, resources, deadline)


def main() -> None:
    path, port, processes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    base = load_config(path)
    # No master cache: its masters would live in the loop process, not the pool.
    imaging = {**_fields(base.imaging), "master_cache_bytes": 0}
    config = Config.from_mapping(
        {
            "server": {"workers": 1, "access_log": False},
            "security": {"allow_unsafe": True},
            "loader": {"use": base.loader.use, "settings": dict(base.loader.settings)},
            "imaging": imaging,
        }
    )
    pool = ProcessPoolExecutor(processes, initializer=_start, initargs=(config,))
    app = create_app(config)
    pipeline = app[PIPELINE_KEY]
    pipeline._jobs._executor = PoolAdapter(pool)
    # Sources are read on the loop's I/O thread, so that each render job is a plain
    # Renderer.render call the adapter can ship (not a read-then-render closure).
    pipeline._sources.reader = lambda _name: None
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _fields(section: object) -> dict[str, object]:
    import dataclasses

    values = {f.name: getattr(section, f.name) for f in dataclasses.fields(section)}  # type: ignore[arg-type]
    return {key: _plain(value) for key, value in values.items()}


def _plain(value: object) -> object:
    """A config value as YAML would give it (lists, and plugins as mappings)."""
    if isinstance(value, PluginConfig):
        return {"use": value.use, "settings": dict(value.settings)}
    if isinstance(value, tuple):
        return [_plain(item) for item in value]
    return value


if __name__ == "__main__":
    main()
