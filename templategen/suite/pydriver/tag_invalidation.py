"""Adapter: the tag-invalidation scenario ops onto ``TaggedCache``.

Ops: ``set_with_tags {key, value, ttl, tags}``, ``get {key, default?}``,
``get_tags {key}`` (answered as a sorted list, so every language reports it alike),
``invalidate_tags {tags}`` and ``delete {key}``.
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
        # The reference keeps its own name; a rendered file uses the one asked for.
        cache_cls = getattr(module, options["class_name"] if driver.baked else "TaggedCache")
        if driver.baked:
            # A rendered file carries the options as its defaults: construct with none,
            # so the suite checks that the baked-in values are the ones asked for.
            self.cache = cache_cls(client)
        else:
            hmac_env = options.get("hmac_key_env") or ""
            self.cache = cache_cls(
                client,
                prefix=options["key_prefix"],
                serializer=options["serializer"],
                hmac_key=os.environ.get(hmac_env) if options["serializer"] == "pickle" else None,
                drain_batch=options["drain_batch"],
            )

    def call(self, op: str, args: dict[str, Any], loader: Any) -> Any:
        if op == "set_with_tags":
            return self.cache.set_with_tags(args["key"], args["value"], args["ttl"], args["tags"])
        if op == "get":
            return self.cache.get(args["key"], args.get("default"))
        if op == "get_tags":
            return sorted(self.cache.get_tags(args["key"]))
        if op == "invalidate_tags":
            return self.cache.invalidate_tags(*args["tags"])
        if op == "delete":
            return self.cache.delete(args["key"])
        raise ValueError(f"tag-invalidation has no op {op!r}")

    def close(self) -> None:
        pass
