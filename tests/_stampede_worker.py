"""One process of the two-process stampede test: threads that ask for one cold key.

Run through ``multiprocessing`` (spawn), so it imports nothing from the test module.
Every thread waits on a barrier shared by all processes, then calls ``cache_with_lock``;
the loader counts its runs with INCR on a Redis key, so the count spans processes.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import redis
from templategen.reference.stampede_lock import StampedePrevention

LOAD_SECONDS = 0.3
VALUE = {"report": "daily", "rows": [1, 2, 3]}


def run(
    url: str,
    key: str,
    counter_key: str,
    threads: int,
    barrier: Any,  # multiprocessing.Barrier: its class is not importable for annotations
    results: Any,  # multiprocessing.Queue
) -> None:
    client = redis.Redis.from_url(url)
    cache = StampedePrevention(client)

    def loader() -> dict[str, Any]:
        client.incr(counter_key)
        time.sleep(LOAD_SECONDS)
        return VALUE

    outcomes: list[Any] = []
    outcomes_lock = threading.Lock()

    def call() -> None:
        try:
            barrier.wait(timeout=60)
            outcome: Any = cache.cache_with_lock(key, loader, ttl=60)
        except Exception as exc:  # reported to the parent, which fails the test
            outcome = f"error: {exc!r}"
        with outcomes_lock:
            outcomes.append(outcome)

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(outcomes)
    client.close()
