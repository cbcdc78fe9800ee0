"""A stampede worker process: N concurrent callers of one contender on one cold key.

Run by bench.stampede as ``python -m bench._stampede_worker URL RENDERED_JSON``; it
reads one JSON request per line on stdin and answers one JSON line on stdout:

- ``{"op": "prepare", "contender": C, "callers": N}``: build C with a counting client
  and warm it up (a stampede of N callers on a throwaway key with an instant loader),
  so connections are open before anything is measured.
- ``{"op": "run", "contender": C, "key": K, "callers": N, "loader_ms": T,
  "start_at": M}``: N callers (threads, or asyncio tasks for the asyncio libraries)
  wait until ``time.monotonic() == M`` (one clock for every process on the machine),
  then all ask for K. Answers the loader calls, each caller's latency from M, each
  caller's round trips and whether it ran the loader, and round trips that belong to
  no caller (background threads).
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis

from .harness import (
    CALLER,
    CallerStats,
    RoundTrips,
    async_connection_class,
    counting_client,
    counting_pool,
    prewarm,
)
from .implementations import load_module_file
from .libraries import aiocache_function, cashews_function, dogpile_function
from .patterns import json_value, main_class
from .textbook import TextbookStampede

#: Contenders whose callers are asyncio tasks; the others are threads.
ASYNC = frozenset({"cashews (lock=True)", "cashews (@cache.early)", "aiocache (@cached_stampede)"})

VALUE = json_value()


class Worker:
    def __init__(self, url: str, rendered: dict[str, str]) -> None:
        self.url = url
        self.rendered = rendered
        self.counter = RoundTrips()
        self.loader_s = 0.0
        self.loads = 0
        self._loads_lock = threading.Lock()
        self.loop = asyncio.new_event_loop()
        self.sync: dict[str, Callable[[str], Any]] = {}
        self.pools: dict[str, redis.ConnectionPool] = {}
        self.aio: dict[str, Callable[[str], Awaitable[Any]]] = {}

    # -- the loaders (one count per call, attributed to the caller that ran it) ---------

    def _counted(self) -> None:
        with self._loads_lock:
            self.loads += 1
        caller = CALLER.get()
        if caller is not None:
            caller.loads += 1

    def load(self, *_: object) -> Any:
        self._counted()
        time.sleep(self.loader_s)
        return VALUE

    async def aload(self, *_: object) -> Any:
        self._counted()
        await asyncio.sleep(self.loader_s)
        return VALUE

    # -- contenders ---------------------------------------------------------------------

    def build(self, name: str) -> None:
        if name in self.sync or name in self.aio:
            return
        if name in ASYNC:
            self.aio[name] = self.loop.run_until_complete(self._build_async(name))
            return
        if name in ("reference", "rendered"):
            if name == "reference":
                from templategen.reference import stampede_lock as module
            else:
                module = load_module_file(Path(self.rendered[name]), "bench_rendered_stampede")
            cls = main_class("stampede-lock", name, module)
            client = counting_client(self.url, self.counter)
            cache = cls(client)
            self.pools[name] = client.connection_pool
            self.sync[name] = lambda key: cache.cache_with_lock(key, self.load)
        elif name == "textbook":
            client = counting_client(self.url, self.counter)
            textbook = TextbookStampede(client)
            self.pools[name] = client.connection_pool
            self.sync[name] = lambda key: textbook.cache_with_lock(key, self.load)
        elif name in ("dogpile (mutex)", "dogpile (distributed_lock)"):

            def build_report(key: str) -> Any:
                return self.load()

            self.pools[name] = counting_pool(self.url, self.counter)
            self.sync[name] = dogpile_function(
                self.url,
                build_report,
                distributed_lock=name == "dogpile (distributed_lock)",
                pool=self.pools[name],
                namespace=name.split("(")[1].rstrip(")"),
            )
        else:
            raise ValueError(f"unknown contender {name!r}")

    async def _build_async(self, name: str) -> Callable[[str], Awaitable[Any]]:
        connection_class = async_connection_class(self.counter)

        async def build_report(key: str) -> Any:
            return await self.aload()

        if name == "cashews (lock=True)":
            return await cashews_function(
                self.url, build_report, kind="lock", connection_class=connection_class
            )
        if name == "cashews (@cache.early)":
            return await cashews_function(
                self.url, build_report, kind="early", connection_class=connection_class
            )
        return aiocache_function(
            self.url, build_report, stampede=True, connection_class=connection_class
        )

    # -- one stampede -------------------------------------------------------------------

    def stampede(
        self, name: str, key: str, callers: int, loader_ms: float, start_at: float
    ) -> dict[str, Any]:
        self.build(name)
        self.loader_s = loader_ms / 1000
        self.loads = 0
        before, _ = self.counter.snapshot()
        if name in ASYNC:
            results = self.loop.run_until_complete(
                self._async_callers(name, key, callers, start_at)
            )
        else:
            results = self._thread_callers(name, key, callers, start_at)
        # Background threads (a watchdog, a lock's release) may still be finishing.
        time.sleep(0.02)
        after, _ = self.counter.snapshot()
        attributed = sum(stats.round_trips for _, _, stats in results)
        return {
            "loads": self.loads,
            "latencies": [latency for latency, _, _ in results],
            "starts": [started for _, started, _ in results],
            "callers": [[stats.round_trips, stats.loads] for _, _, stats in results],
            "unattributed": after - before - attributed,
        }

    def _thread_callers(
        self, name: str, key: str, callers: int, start_at: float
    ) -> list[tuple[float, float, CallerStats]]:
        call = self.sync[name]
        go = threading.Event()
        results: list[tuple[float, float, CallerStats]] = []
        lock = threading.Lock()

        def caller() -> None:
            stats = CallerStats()
            CALLER.set(stats)  # this thread's own context
            go.wait()
            # The caller's latency runs from its own call: threads woken by one Event
            # reach their calls milliseconds apart, and that spread is the harness's.
            called = time.monotonic()
            call(key)
            returned = time.monotonic()
            with lock:
                results.append((returned - called, called - start_at, stats))

        threads = [threading.Thread(target=caller, daemon=True) for _ in range(callers)]
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, start_at - time.monotonic()))
        go.set()
        for thread in threads:
            thread.join()
        return results

    async def _async_callers(
        self, name: str, key: str, callers: int, start_at: float
    ) -> list[tuple[float, float, CallerStats]]:
        call = self.aio[name]
        go = asyncio.Event()

        async def caller() -> tuple[float, float, CallerStats]:
            stats = CallerStats()
            CALLER.set(stats)  # this task's context, shared with the tasks it spawns
            await go.wait()
            called = time.monotonic()
            await call(key)
            return time.monotonic() - called, called - start_at, stats

        tasks = [asyncio.create_task(caller()) for _ in range(callers)]
        await asyncio.sleep(max(0.0, start_at - time.monotonic()))
        go.set()
        return list(await asyncio.gather(*tasks))

    def prepare(self, name: str, callers: int) -> dict[str, Any]:
        """Build, open a connection per caller, load scripts: nothing cold is measured."""
        self.build(name)
        if name in self.pools:
            prewarm(self.pools[name], callers + 2)
        # Stampedes on throwaway keys, with a loader long enough for every caller to be
        # waiting at once: the asyncio libraries' pools open their connections here.
        for _ in range(2):
            self.stampede(name, f"warm:{uuid.uuid4().hex}", callers, 50.0, time.monotonic() + 0.05)
        return {"ready": name}


def main() -> int:
    url, rendered = sys.argv[1], json.loads(sys.argv[2])
    worker = Worker(url, rendered)
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "quit":
            break
        if request["op"] == "prepare":
            reply = worker.prepare(request["contender"], request["callers"])
        else:
            reply = worker.stampede(
                request["contender"],
                request["key"],
                request["callers"],
                request["loader_ms"],
                request["start_at"],
            )
        print(json.dumps(reply), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
