"""The single-flight helper: concurrent calls with one key share one execution."""

from __future__ import annotations

import asyncio

import pytest

from thumbor_py.singleflight import SingleFlight


async def test_concurrent_calls_share_one_execution_and_its_error() -> None:
    flights: SingleFlight[str, int] = SingleFlight()
    calls = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return 7

    waiting = [asyncio.create_task(flights.run("k", work)) for _ in range(5)]
    await asyncio.sleep(0)
    assert flights.running("k")
    release.set()
    assert await asyncio.gather(*waiting) == [7] * 5
    assert calls == 1
    assert not flights.running("k")

    async def fail() -> int:
        await asyncio.sleep(0.01)
        raise ValueError("boom")

    failing = [asyncio.create_task(flights.run("k", fail)) for _ in range(3)]
    results = await asyncio.gather(*failing, return_exceptions=True)
    assert all(isinstance(result, ValueError) for result in results)


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    """The first caller runs the execution in its own task; when it is cancelled, a caller
    that joined it starts over and runs it itself, instead of being cancelled with it."""
    flights: SingleFlight[str, str] = SingleFlight()
    release = asyncio.Event()
    calls = 0

    async def work() -> str:
        nonlocal calls
        calls += 1
        await release.wait()
        return "done"

    first = asyncio.create_task(flights.run("k", work))
    second = asyncio.create_task(flights.run("k", work))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    release.set()
    assert await second == "done"
    with pytest.raises(asyncio.CancelledError):
        await first
    assert calls == 2
    assert not flights.running("k")
