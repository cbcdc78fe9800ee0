"""Adapter: the write-behind scenario ops onto ``WriteBehindCache`` and a store double.

The ops are specified under ``"ops"`` in ``templates/write-behind/scenarios.json``. The
user's database is an ``SQLiteStore`` on a temporary file, behind :class:`ScriptedStore`,
a test double that can fail, refuse a row, wait at a gate and count its calls (a double
may stand in for the user's database, never for Redis).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

STATS_FIELDS = ("queued", "flushed", "retried", "dead_lettered", "queue_depth", "dead_letters")


class ScriptedStore:
    """The user's database (``inner``) with the failures and gates a scenario asks for."""

    def __init__(self, inner: Any, driver: Any) -> None:
        self.inner = inner
        self._loaders = driver.loaders
        self._lock = threading.Lock()
        self.failures = 0
        self.poison: set[str] = set()
        self.gate: str | None = None
        self.calls: list[int] = []

    def get(self, id: str) -> Any:
        return self.inner.get(id)

    def upsert(self, id: str, data: Any) -> Any:
        return self.inner.upsert(id, data)

    def upsert_many(self, rows: Iterable[Any]) -> int:
        batch = list(rows)
        with self._lock:
            self.calls.append(len(batch))
            gate, self.gate = self.gate, None
        if gate is not None:
            event = self._loaders.gate(gate)
            self._loaders.entered.set()  # lets an async op answer: the write is parked
            if not event.wait(timeout=30):
                raise TimeoutError(f"store gate {gate!r} was never released")
        with self._lock:
            failing, self.failures = self.failures > 0, max(0, self.failures - 1)
        if failing:
            raise ConnectionError("database is down")
        for row in batch:
            if row.id in self.poison:
                raise ValueError(f"row {row.id!r} violates constraint data_check")
        return int(self.inner.upsert_many(batch))

    def delete(self, id: str) -> Any:
        return self.inner.delete(id)


class Adapter:
    def __init__(
        self, module: ModuleType, client: redis.Redis, options: dict[str, Any], driver: Any
    ) -> None:
        self._dir = tempfile.mkdtemp(prefix="write-behind-suite-")
        self._sqlite = module.SQLiteStore(Path(self._dir) / "db.sqlite")
        self._row = module.Row
        self.store = ScriptedStore(self._sqlite, driver)
        # The reference keeps its own names; a rendered file uses the ones asked for.
        cls = getattr(module, options["class_name"] if driver.baked else "WriteBehindCache")
        if driver.baked:
            # A rendered file carries the options as its defaults: construct with none,
            # so the suite checks that the baked-in values are the ones asked for.
            self.cache = cls(client, self.store)
        else:
            hmac_env = options.get("hmac_key_env") or ""
            self.cache = cls(
                client,
                self.store,
                prefix=options["key_prefix"],
                ttl=options["ttl"],
                batch_size=options["batch_size"],
                read_limit=options["read_limit"],
                flush_interval=options["flush_interval"],
                claim_idle=options["claim_idle"],
                max_retries=options["max_retries"],
                backoff=options["backoff"],
                serializer=options["serializer"],
                hmac_key=os.environ.get(hmac_env) if options["serializer"] == "pickle" else None,
            )
        self._started = False

    def call(self, op: str, args: dict[str, Any], loader: Any) -> Any:
        cache, store = self.cache, self.store
        timeout = {"timeout": args["timeout"]} if "timeout" in args else {}
        if op == "set":
            return cache.set(args["id"], args["data"]).version
        if op == "get":
            row = cache.get(args["id"])
            return None if row is None else row.data
        if op == "flush":
            return cache.flush(**timeout)
        if op == "start":
            self._started = True
            return cache.start()
        if op == "stop":
            return cache.stop(**timeout)
        if op == "stats":
            stats = cache.stats()
            return {name: getattr(stats, name) for name in args.get("fields", STATS_FIELDS)}
        if op == "store_get":
            row = self._sqlite.get(args["id"])
            return None if row is None else row.data
        if op == "store_put":
            row = self._row(args["id"], args["data"], args["version"])
            return self._sqlite.upsert_many([row])
        if op == "store_fail":
            store.failures = int(args["calls"])
            return None
        if op == "store_poison":
            store.poison.add(args["id"])
            return None
        if op == "store_block":
            store.gate = str(args["gate"])
            return None
        if op == "store_calls":
            return list(store.calls)
        raise ValueError(f"write-behind has no op {op!r}")

    def close(self) -> None:
        if self._started:
            # End the flusher thread; whatever it leaves pending is the next flush's
            # business, and Redis is flushed between scenarios anyway.
            with contextlib.suppress(Exception):
                self.cache.stop(timeout=1)
        self._sqlite.close()
        shutil.rmtree(self._dir, ignore_errors=True)
