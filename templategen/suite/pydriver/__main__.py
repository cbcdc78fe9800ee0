"""Entry point: ``python -m templategen.suite.pydriver (--module NAME | --file PATH)``."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import threading
from concurrent.futures import Future
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import redis

from .loaders import Loaders

PROTOCOL_VERSION = 1
LANGUAGE = "python"

ADAPTERS = {
    "cache-aside": "cache_aside",
    "stampede-lock": "stampede_lock",
    "early-refresh": "early_refresh",
    "tag-invalidation": "tag_invalidation",
    "version-invalidation": "version_invalidation",
    "write-through": "write_through",
    "write-behind": "write_behind",
    "http-cache-headers": "http_cache_headers",
}

# Error kinds are matched on class names along the MRO, so the reference's errors and
# a rendered file's own copies of them map alike.
_ERROR_KINDS = [
    ("LoaderFailure", "loader"),
    ("UnencodableArgumentsError", "configuration"),
    ("ConfigurationError", "configuration"),
    ("LockTimeoutError", "lock_timeout"),
    ("FlushTimeoutError", "flush_timeout"),
    ("CacheUnavailableError", "unavailable"),
    ("TamperedDataError", "serialization"),
    ("SerializationError", "serialization"),
    ("StoreError", "store"),
]


def error_kind(exc: BaseException) -> str:
    names = {cls.__name__ for cls in type(exc).__mro__}
    for name, kind in _ERROR_KINDS:
        if name in names:
            return kind
    return "internal"


class Adapter(Protocol):
    def call(self, op: str, args: dict[str, Any], loader: Any) -> Any: ...

    def close(self) -> None: ...


def load_module(module: str | None, file: str | None) -> ModuleType:
    if module:
        return importlib.import_module(module)
    assert file is not None
    path = Path(file).resolve()
    spec = importlib.util.spec_from_file_location(f"rendered_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses and pickle look modules up by name
    spec.loader.exec_module(mod)
    return mod


class Driver:
    def __init__(self, module: ModuleType, baked: bool) -> None:
        self.module = module
        #: A rendered file has its options baked in as defaults; the reference is given
        #: them explicitly. Adapters use this to decide what to pass to constructors.
        self.baked = baked
        self.loaders = Loaders()
        self.adapter: Adapter | None = None
        self.pattern = ""
        self.options: dict[str, Any] = {}
        self.redis_url = ""
        self.client: redis.Redis | None = None
        self.pending: dict[str, Future[Any]] = {}

    def new_adapter(self) -> Adapter:
        mod = importlib.import_module(f"{__package__}.{ADAPTERS[self.pattern]}")
        assert self.client is not None
        adapter: Adapter = mod.Adapter(self.module, self.client, self.options, self)
        return adapter

    def _run(self, message: dict[str, Any]) -> Any:
        assert self.adapter is not None
        loader = self.loaders.make(message.get("loader")) if "loader" in message else None
        return self.adapter.call(message["op"], dict(message.get("args", {})), loader)

    def _concurrent(self, message: dict[str, Any]) -> list[Any]:
        callers = int(message["callers"])
        inner = dict(message["step"])
        barrier = threading.Barrier(callers)
        results: list[Any] = [None] * callers
        errors: list[BaseException | None] = [None] * callers

        def one(i: int) -> None:
            barrier.wait()
            try:
                results[i] = self._run(inner)
            except BaseException as exc:  # reported below, per caller
                errors[i] = exc

        threads = [threading.Thread(target=one, args=(i,)) for i in range(callers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        failed = [e for e in errors if e is not None]
        if failed:
            raise failed[0]
        return results

    def _async(self, message: dict[str, Any]) -> None:
        handle = str(message["async"])
        future: Future[Any] = Future()
        self.loaders.entered.clear()

        def run() -> None:
            try:
                future.set_result(self._run(message))
            except BaseException as exc:
                future.set_exception(exc)

        threading.Thread(target=run, daemon=True).start()
        # Return once the op has finished or its loader is parked at a gate, so the
        # runner's next step is known to happen *during* the load.
        while not future.done() and not self.loaders.entered.wait(0.005):
            pass
        self.pending[handle] = future

    def handle(self, message: dict[str, Any]) -> Any:
        op = message["op"]
        if op == "hello":
            return {"language": LANGUAGE, "protocol": PROTOCOL_VERSION}
        if op == "configure":
            self.pattern = message["pattern"]
            if self.pattern not in ADAPTERS:
                raise ValueError(f"no Python adapter for pattern {self.pattern!r}")
            self.options = dict(message["options"])
            self.redis_url = message["redis_url"]
            self.client = redis.Redis.from_url(self.redis_url)
            return None
        if op == "reset":
            if self.adapter is not None:
                self.adapter.close()
            self.loaders.reset()
            self.pending.clear()
            self.adapter = self.new_adapter()
            return None
        if op == "release":
            self.loaders.release(str(message["args"]["gate"]))
            return None
        if op == "await":
            return self.pending.pop(str(message["args"]["handle"])).result(timeout=30)
        if op == "concurrent":
            return self._concurrent(message)
        if "async" in message:
            self._async(message)
            return None
        return self._run(message)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m templategen.suite.pydriver")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--module", help="import name of the implementation (the reference)")
    where.add_argument("--file", help="path of a rendered Python file")
    args = parser.parse_args(argv)
    driver = Driver(load_module(args.module, args.file), baked=args.file is not None)
    out = sys.stdout
    for line in sys.stdin:
        message = json.loads(line)
        reply: dict[str, Any] = {"id": message.get("id")}
        try:
            value = driver.handle(message)
            reply.update(ok=True, value=value)
        except BaseException as exc:  # every failure is an answer, never a dead driver
            kind = error_kind(exc)
            reply.update(ok=False, error={"kind": kind, "message": f"{type(exc).__name__}: {exc}"})
        reply["loader_calls"] = driver.loaders.calls
        out.write(json.dumps(reply, default=repr) + "\n")
        out.flush()
        if message.get("op") == "bye":
            break
    if driver.adapter is not None:
        driver.adapter.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
