"""Adapter: the stampede-lock scenario ops onto ``StampedePrevention`` and its renderings.

The ops are specified once, for every language's driver, under ``"ops"`` in
templates/stampede-lock/scenarios.json: ``get {key, ttl?, other_process?,
wait_timeout?}`` with a loader, and ``lock {key, timeout?}`` with an optional loader.

The reference is given the options explicitly, ``key_prefix`` as its ``prefix``: with
it the reference keeps values at ``<key_prefix>:<key>`` and locks at
``<lock_prefix><key_prefix>:<key>``, the keys a rendered file builds. A rendered file
carries the options as its defaults, so it is constructed without them and the suite
checks that the baked-in values are the ones asked for.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import redis


class Adapter:
    def __init__(
        self, module: ModuleType, client: redis.Redis, options: dict[str, Any], driver: Any
    ) -> None:
        self.baked = bool(driver.baked)
        self.options = options
        self.redis_url: str = driver.redis_url
        # The reference keeps its own name; a rendered file uses the one asked for.
        self.cls = getattr(module, options["class_name"] if self.baked else "StampedePrevention")
        self.cache = self._new(client)

    def _new(self, client: redis.Redis, **overrides: Any) -> Any:
        if self.baked:
            return self.cls(client, **overrides)
        hmac_env = self.options.get("hmac_key_env") or ""
        return self.cls(
            client,
            prefix=self.options["key_prefix"],
            lock_timeout=self.options["lock_timeout"],
            lock_prefix=self.options["lock_prefix"],
            serializer=self.options["serializer"],
            hmac_key=os.environ.get(hmac_env) if self.options["serializer"] == "pickle" else None,
            fail_open=self.options["fail_open"],
            **overrides,
        )

    def _get(self, cache: Any, args: dict[str, Any], loader: Any) -> Any:
        if "ttl" in args:
            return cache.cache_with_lock(args["key"], loader, args["ttl"])
        if self.baked:
            return cache.cache_with_lock(args["key"], loader)
        return cache.cache_with_lock(args["key"], loader, self.options["ttl"])

    def _get_as_other_process(self, args: dict[str, Any], loader: Any) -> Any:
        # A cache object of its own on a connection of its own: its single-flight is not
        # ours, so only the Redis lock stands between it and our loads.
        client = redis.Redis.from_url(self.redis_url)
        try:
            overrides = {"wait_timeout": args["wait_timeout"]} if "wait_timeout" in args else {}
            return self._get(self._new(client, **overrides), args, loader)
        finally:
            client.close()

    def call(self, op: str, args: dict[str, Any], loader: Any) -> Any:
        if op == "get":
            if args.get("other_process") or "wait_timeout" in args:
                return self._get_as_other_process(args, loader)
            return self._get(self.cache, args, loader)
        if op == "lock":
            with self.cache.distributed_lock(args["key"], args.get("timeout")) as held:
                if held and loader is not None:
                    loader()
            return held
        raise ValueError(f"stampede-lock has no op {op!r}")

    def close(self) -> None:
        pass
