"""Replace originals under load and count stale answers (run by hand, never by the suite).

Starts two replicas (one with two workers, one with one) sharing a folder of originals, the
file result storage and its purge log; six clients request two originals by four spellings
and four sizes on both; every 0.7 s one original is replaced and then (``purge`` mode) purged
through the endpoint or the CLI with a random spelling, or (``revalidate`` mode) left alone
with ``revalidate_after: 1``. A response is stale when its request started after the purge
returned (or after the replacement + 1.05 s) and it shows the old colour. Prints the count.

Usage::

    .venv/bin/python tools/coherence_check.py purge
    .venv/bin/python tools/coherence_check.py revalidate
"""

from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.test_replicas import (
    BLUE,
    RED,
    REPO,
    color,
    purge,
    replace_file,
    serving,
    write_config,
)

NAMES = ("p1.jpg", "p2.jpg")


class Check:
    """What each original must look like, and from when."""

    def __init__(self) -> None:
        self.expected = {name: ("red", 0.0) for name in NAMES}
        self.stale: list[tuple[str, str, str]] = []
        self.total = 0
        self.running = True

    async def client(self, session: aiohttp.ClientSession, bases: list[str], seed: int) -> None:
        rng = random.Random(seed)
        while self.running:
            name = rng.choice(NAMES)
            spelling = rng.choice([name, f"%2F{name}", f"./{name}", f"x/../{name}"])
            url = f"{rng.choice(bases)}/unsafe/{rng.choice([100, 110, 120, 130])}x0/{spelling}"
            started = time.monotonic()
            got = await color(session, url)
            self.total += 1
            want, since = self.expected[name]
            if started > since and got != want:
                self.stale.append((url, got, want))


async def run(mode: str) -> int:
    folder = Path(tempfile.mkdtemp())
    originals = folder / "originals"
    originals.mkdir()
    for name in NAMES:
        replace_file(originals / name, RED)
    loader = f"{{use: file, settings: {{root: {originals}}}}}"
    revalidate = "1.0" if mode == "revalidate" else "null"
    config_a = write_config(folder, "a", loader, workers=2, revalidate_after=revalidate)
    config_b = write_config(folder, "b", loader, revalidate_after=revalidate)
    check = Check()
    with serving(config_a) as replica_a, serving(config_b) as replica_b:
        async with aiohttp.ClientSession() as session:
            bases = [replica_a, replica_b]
            clients = [asyncio.create_task(check.client(session, bases, i)) for i in range(6)]
            for step in range(8):
                await asyncio.sleep(0.7)
                name = NAMES[step % 2]
                new = "blue" if check.expected[name][0] == "red" else "red"
                check.expected[name] = (new, float("inf"))  # either colour until the bound
                replace_file(originals / name, BLUE if new == "blue" else RED)
                if mode == "revalidate":
                    check.expected[name] = (new, time.monotonic() + 1.05)
                    continue
                spelling = random.choice([name, f"/{name}", f"./{name}", f"a/../{name}"])
                if step % 3 == 2:
                    command = [sys.executable, "-m", "thumbor_py", "purge", "-c", str(config_a)]
                    await asyncio.to_thread(
                        subprocess.run, [*command, "--source", spelling], cwd=REPO, check=True
                    )
                else:
                    await purge(session, random.choice(bases), spelling)
                check.expected[name] = (new, time.monotonic())
            await asyncio.sleep(1.5)
            check.running = False
            await asyncio.gather(*clients)
    print(f"{mode}: {check.total} responses, {len(check.stale)} stale after the bound")
    for stale in check.stale[:10]:
        print("  ", *stale)
    return 1 if check.stale else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run(sys.argv[1] if len(sys.argv) > 1 else "purge")))
