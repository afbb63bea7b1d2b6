#!/usr/bin/env python3
"""The ceiling of callback delivery on this machine: a bare aiohttp client, in a process of its
own as the server's worker is, POSTing N JSON bodies to a receiver with C in flight.

    .venv/bin/python scripts/callback_ceiling.py URL N [C] < body.json

Every POST carries the body read from standard input and a distinct ``webhook-id`` (a receiver
that de-duplicates counts each once). It prints one number: posts per second, from the first
POST sent to the last answer received (the interpreter's start-up is not counted). Any answer
but 2xx makes it exit with status 1. ``scripts/bench_lifecycle.py`` runs it against its own
receiver in each run, so the server's figure stands beside this one from the same minute.
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp


async def post_all(url: str, count: int, concurrency: int, body: bytes) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        queue = iter(range(count))

        async def sender() -> None:
            # A fixed set of senders, each posting the next message: no task per message.
            for n in queue:
                headers = {"Content-Type": "application/json", "webhook-id": f"ceiling_{n}"}
                async with session.post(url, data=body, headers=headers) as response:
                    response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        return count / (time.perf_counter() - started)


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    url, count = sys.argv[1], int(sys.argv[2])
    concurrency = int(sys.argv[3]) if len(sys.argv) == 4 else 64
    body = sys.stdin.buffer.read()
    try:
        rate = asyncio.run(post_all(url, count, concurrency, body))
    except aiohttp.ClientError as error:
        print(f"failed: {error}", file=sys.stderr)
        return 1
    print(f"{rate:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
