"""The supervisor's pure parts: restart back-off and how a worker's death is described."""

from __future__ import annotations

import os
import signal

import pytest

from thumbor_py.supervisor import Backoff, describe_exit


@pytest.mark.parametrize(
    ("lived", "deaths", "expected"),
    [
        pytest.param(1.0, 0, (0.5, 1), id="first-early-death"),
        pytest.param(1.0, 1, (1.0, 2), id="doubles"),
        pytest.param(1.0, 3, (4.0, 4), id="doubles-again"),
        pytest.param(1.0, 10, (30.0, 11), id="capped"),
        pytest.param(30.0, 10, (0.5, 1), id="lived-long-enough-resets"),
    ],
)
def test_backoff(lived: float, deaths: int, expected: tuple[float, int]) -> None:
    assert Backoff(first=0.5, ceiling=30.0).next(lived, deaths) == expected


def _status_of(action: str) -> int:
    pid = os.fork()
    if pid == 0:
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        os._exit(3)
    return os.waitpid(pid, 0)[1]


def test_describe_exit() -> None:
    assert describe_exit(_status_of("kill")) == "killed by signal SIGKILL"
    assert describe_exit(_status_of("exit")) == "exited with status 3"
