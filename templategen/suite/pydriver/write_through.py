"""Adapter: the write-through scenario ops onto ``WriteThroughCache`` over a SQLite store.

Ops (see ``templates/write-through/scenarios.json``): ``set {id, data}``, ``get {id}``
and ``delete {id}`` on the cache; ``store_get {id}`` on the store itself; and
``new_cache {key_prefix?, ttl?, negative_ttl?, lease_ttl?}``, which builds one more
cache with those options to see bad ones refused. Rows are answered as
``{"data", "version"}``.

The store is a ``SQLiteStore`` on a temporary file: the reference's for the reference,
and the rendered file's own for a rendered file (which embeds one as its default), so
the suite runs the SQLite code users get. ``GatedStore``, a test double standing in
for the user's database, wraps it: ``store_block`` in a step's args parks that step's
one store call at a gate once the call has completed (a read done, a write
committed), which is how a scenario holds a reader or a writer between the database
and the cache; ``store_error`` makes the call raise instead. Store reads are counted
as the driver's loader calls, since the store is what this pattern loads from.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import redis

from .loaders import Loaders

#: Scenario option names that are spelled differently as constructor arguments.
_ARGUMENT_NAMES = {"key_prefix": "prefix"}

GATE_TIMEOUT = 30.0  # seconds, as for a loader at a gate


class StoreGateError(Exception):
    """A store call parked at a gate that was never released."""


class InjectedStoreError(Exception):
    """The failure a step asked the store for with ``store_error``."""


class GatedStore:
    """A store whose calls a step can park at a gate after they ran, or make fail.

    What to do is per thread: the adapter arms it around one op, so only that op's
    store call parks, never another caller's.
    """

    def __init__(self, inner: Any, loaders: Loaders) -> None:
        self.inner = inner
        self._loaders = loaders
        self._count_read = loaders.make({})  # a loader call that does nothing but count
        self._step = threading.local()

    @contextlib.contextmanager
    def armed(self, *, block: str | None, error: str | None) -> Iterator[None]:
        self._step.block, self._step.error = block, error
        try:
            yield
        finally:
            self._step.block = self._step.error = None

    def _before(self) -> None:
        error = getattr(self._step, "error", None)
        if error is not None:
            raise InjectedStoreError(error)

    def _after(self) -> None:
        block = getattr(self._step, "block", None)
        if block is None:
            return
        gate = self._loaders.gate(block)
        self._loaders.entered.set()  # lets an async step answer: it is now parked
        if not gate.wait(GATE_TIMEOUT):
            raise StoreGateError(f"store gate {block!r} was never released")

    def get(self, id: str) -> Any:
        self._before()
        row = self.inner.get(id)
        self._count_read()
        self._after()
        return row

    def upsert(self, id: str, data: Any) -> Any:
        self._before()
        row = self.inner.upsert(id, data)  # committed here
        self._after()
        return row

    def upsert_many(self, rows: Iterable[Any]) -> int:
        self._before()
        written: int = self.inner.upsert_many(rows)
        self._after()
        return written

    def delete(self, id: str) -> int | None:
        self._before()
        version: int | None = self.inner.delete(id)  # committed here
        self._after()
        return version


def _row(row: Any) -> dict[str, Any] | None:
    return None if row is None else {"data": row.data, "version": row.version}


class Adapter:
    def __init__(
        self, module: ModuleType, client: redis.Redis, options: dict[str, Any], driver: Any
    ) -> None:
        self.module = module
        self.client = client
        self.options = options
        self.baked: bool = driver.baked
        # The reference keeps its own names; a rendered file uses the ones asked for.
        self.cache_cls = getattr(
            module, options["class_name"] if driver.baked else "WriteThroughCache"
        )
        # A rendered file defines SQLiteStore itself; the reference has it in .store.
        stores = module if driver.baked else importlib.import_module(f"{module.__package__}.store")
        self._dir = tempfile.TemporaryDirectory(prefix="write-through-", ignore_cleanup_errors=True)
        self.store = GatedStore(
            stores.SQLiteStore(Path(self._dir.name) / "rows.sqlite"), driver.loaders
        )
        self.cache = self._new_cache({})

    def _new_cache(self, overrides: dict[str, Any]) -> Any:
        given = {_ARGUMENT_NAMES.get(k, k): v for k, v in overrides.items()}
        if "negative_ttl" in given and given["negative_ttl"] == 0:
            given["negative_ttl"] = None  # as the option: 0 turns negative caching off
        if self.baked:
            # A rendered file carries the options as its defaults: construct with only
            # the overrides, so the suite checks that the baked-in values are the ones
            # asked for.
            return self.cache_cls(self.client, self.store, **given)
        options = self.options
        hmac_env = options.get("hmac_key_env") or ""
        negative_ttl = options.get("negative_ttl") or None
        arguments: dict[str, Any] = {
            "prefix": options["key_prefix"],
            "ttl": float(options["ttl"]),
            "serializer": options["serializer"],
            "hmac_key": os.environ.get(hmac_env) if options["serializer"] == "pickle" else None,
            "negative_ttl": None if negative_ttl is None else float(negative_ttl),
            "lease_ttl": float(options["lease_ttl"]),
            "fail_open": bool(options["fail_open"]),
        }
        return self.cache_cls(self.client, self.store, **{**arguments, **given})

    def call(self, op: str, args: dict[str, Any], loader: Any) -> Any:
        if op == "store_get":
            return _row(self.store.inner.get(args["id"]))
        if op == "new_cache":
            self._new_cache(args)
            return None
        block, error = args.pop("store_block", None), args.pop("store_error", None)
        with self.store.armed(block=block, error=error):
            if op == "set":
                return _row(self.cache.set(args["id"], args["data"]))
            if op == "get":
                return _row(self.cache.get(args["id"]))
            if op == "delete":
                return self.cache.delete(args["id"])
        raise ValueError(f"write-through has no op {op!r}")

    def close(self) -> None:
        close = getattr(self.store.inner, "close", None)
        if close is not None:
            close()
        self._dir.cleanup()
