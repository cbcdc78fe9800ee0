"""Adapter: the early-refresh scenario ops onto ``EarlyRefreshCache`` and its renderings.

The ops are specified once, for every language's driver, under ``"ops"`` in
templates/early-refresh/scenarios.json: ``set_clock {ms}``, ``set_rand {value}`` and
``get {key, ttl?, beta?, load_ms?}`` with a loader. The cache object is built with a
fake clock and a fixed random draw (its ``clock=`` and ``rand=``), so that every XFetch
decision in a scenario is exact.

The reference is given the options explicitly, ``key_prefix`` as its ``prefix``: with
it the reference keeps values at ``<key_prefix>:<key>`` and locks at
``<lock_prefix><key_prefix>:<key>``, the keys a rendered file builds. A rendered file
carries the options as its defaults, so it is constructed without them and the suite
checks that the baked-in values are the ones asked for.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import redis


class _Clock:
    """Stands still at ``ms`` until moved; read in seconds, as the reference's clock is."""

    def __init__(self) -> None:
        self.ms = round(time.time() * 1000)

    def __call__(self) -> float:
        return self.ms / 1000


class _Draw:
    """XFetch's r: the same value on every draw until set again."""

    def __init__(self) -> None:
        self.value = 1.0

    def __call__(self) -> float:
        return self.value


class Adapter:
    def __init__(
        self, module: ModuleType, client: redis.Redis, options: dict[str, Any], driver: Any
    ) -> None:
        self.baked = bool(driver.baked)
        self.options = options
        self.clock = _Clock()
        self.draw = _Draw()
        # The reference keeps its own name; a rendered file uses the one asked for.
        cls = getattr(module, options["class_name"] if self.baked else "EarlyRefreshCache")
        if self.baked:
            self.cache = cls(client, clock=self.clock, rand=self.draw)
        else:
            hmac_env = options.get("hmac_key_env") or ""
            self.cache = cls(
                client,
                prefix=options["key_prefix"],
                lock_timeout=options["lock_timeout"],
                lock_prefix=options["lock_prefix"],
                serializer=options["serializer"],
                hmac_key=os.environ.get(hmac_env) if options["serializer"] == "pickle" else None,
                fail_open=options["fail_open"],
                clock=self.clock,
                rand=self.draw,
            )

    def _timed(self, loader: Callable[[], Any], load_ms: int) -> Callable[[], Any]:
        """``loader``, taking ``load_ms`` on the fake clock: the entry's delta."""

        def load() -> Any:
            self.clock.ms += load_ms
            return loader()

        return load

    def _get(self, args: dict[str, Any], loader: Callable[[], Any]) -> Any:
        # Absent ttl or beta: a rendered file's own defaults, the options for the reference.
        keywords: dict[str, Any] = (
            {} if self.baked else {"ttl": self.options["ttl"], "beta": self.options["beta"]}
        )
        keywords.update((name, args[name]) for name in ("ttl", "beta") if name in args)
        load = self._timed(loader, int(args.get("load_ms", 0)))
        return self.cache.get_with_refresh(args["key"], load, **keywords)

    def call(self, op: str, args: dict[str, Any], loader: Any) -> Any:
        if op == "set_clock":
            self.clock.ms = int(args["ms"])
            return None
        if op == "set_rand":
            self.draw.value = float(args["value"])
            return None
        if op == "get":
            return self._get(args, loader)
        raise ValueError(f"early-refresh has no op {op!r}")

    def close(self) -> None:
        pass
