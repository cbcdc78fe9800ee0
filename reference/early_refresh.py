"""Probabilistic early refresh (XFetch): recompute a value shortly before it expires.

The pattern (Vattani, Chierichetti, Lowenstein, "Optimal Probabilistic Cache Stampede
Prevention", VLDB 2015): each entry stores the value, ``delta`` (how long the loader
took to compute it) and its absolute ``expiry``. On every hit a caller draws
``r`` uniform in (0, 1] and recomputes early when::

    now - delta * beta * ln(r) >= expiry

``-ln(r)`` is exponentially distributed, so the chance of refreshing grows sharply as
expiry nears, and earlier for values that are slow to compute (large ``delta``). With
``beta = 1`` one caller typically refreshes about ``delta`` before expiry; ``beta > 1``
refreshes earlier, ``beta = 0`` only at expiry. ``r`` is drawn as
``1 - random.random()``, so ``ln(0)`` cannot happen. ``now``, ``expiry`` and ``delta``
come from one clock, ``time.time`` unless another is injected.

A caller that decides to refresh takes a Redis lock (``SET NX PX``) so that one
refresher runs across all processes. With ``background=False`` (the default) it runs
the loader itself and returns the new value; with ``background=True`` it starts a thread
(at most one per key per process) and returns the current value at once.

Guarantees:

- A hit is one round trip: one GET of one envelope string. With ``background=True``
  that holds for every hit; without it, the one caller that refreshes also pays for
  the lock and the load.
- A value is never served after its ttl: the key carries the ttl as a Redis expiry, so
  Redis removes it on its own clock, whatever the callers' clocks say.
- At most one refresh per key runs at a time while the refresh lock holds (across
  processes), and at most one background thread per key per process.
- A failed refresh (loader raises, Redis hiccup) keeps serving the current value, which
  is still within its ttl, and logs a warning. Only a miss lets a loader error through.
- A miss is "no such key", never a falsy value: ``None``, ``0`` and ``[]`` are cached.

Failure modes:

- *Redis down*: with ``fail_open=True`` (the default) callers run the loader and the
  outage is logged once (:class:`OutageLog`); with ``fail_open=False`` they get
  :class:`CacheUnavailableError`. A failed store after a load is logged; the value is
  returned.
- *Refresher killed, or slower than ``lock_timeout``*: its lock expires after
  ``lock_timeout``; the next caller that draws a refresh takes it. If the value expires
  first, callers miss and load (see below).
- *Clock skew*: ``expiry`` is the writer's wall clock; readers compare it with theirs. A
  reader whose clock runs ahead by ``s`` seconds refreshes as if the value were ``s``
  seconds older (more refreshes); one running behind refreshes later, and if it is
  behind by more than the early-refresh window it may see the key expire (a miss) before
  it refreshes. Redis still expires the key on time. Keep hosts on NTP; skew of a few
  ms against a ttl of seconds does not matter.
- *Undecodable entry* (not an envelope, or a payload the serializer rejects): treated as
  a miss and overwritten; tampered signed-pickle data is logged as a security warning.

What it does not do: coalesce cold misses (on a cold key every concurrent caller loads;
put :mod:`.stampede_lock`'s ``cache_with_lock`` in front if cold starts matter); close
the stale-set race for misses (see the leases in ``cache_aside``). A refresh writes with
``SET ... XX``, so a key deleted by an invalidation during a refresh stays deleted.

Wire format (other languages must match):

- value: ``<prefix>:<key>`` holds one envelope string, ``PX`` = ttl in ms (without a
  ``prefix``, the default, the key is ``<key>`` exactly as given)::

      0xC1 "xf1:" <expiry_ms> ":" <delta_ms> ":" <payload>

  ``expiry_ms``: Unix epoch milliseconds (writer's clock) when the value expires, i.e.
  the time of the store plus ttl; ``delta_ms``: the loader's run time in milliseconds.
  Both are ASCII decimal integers without sign or padding. ``payload`` is the
  serialized value (``serializers``; JSON by default), to the end of the string. The
  leading 0xC1 is never the first byte of a serialized value, so an envelope is never
  mistaken for a bare value and vice versa.
- lock: ``<lock_prefix>`` followed by the value key (``lock_prefix`` defaults to
  ``refresh-lock:``) holds the refresher's token (a uuid4, 32 lowercase hex
  characters), ``PX`` = lock_timeout in ms; deleted by ``RELEASE_LUA``
  (compare-and-delete) after the refresh.
- commands: hit ``GET``; miss ``SET key envelope PX ttl``; refresh ``SET lock token NX
  PX lock_timeout``, ``SET key envelope XX PX ttl``, ``EVALSHA RELEASE_LUA``.

Deviations from the design page: options are keyword-only constructor arguments
(``prefix``, ``background``, ``lock_timeout``, ``lock_prefix``, ``serializer``,
``hmac_key``, ``fail_open``, and ``clock``/``rand`` for tests); ``beta`` is XFetch's
beta, not a probability factor; there is no second round trip for the TTL. ``prefix``
is new: None (the default) keeps the page's keys, the key exactly as given; a prefix
stores values at ``<prefix>:<key>`` and locks at ``<lock_prefix><prefix>:<key>``, the
layout of the rendered files (which always have a prefix).
"""

from __future__ import annotations

import math
import random
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Final, NamedTuple

import redis

from ._support import (
    REDIS_OUTAGE_ERRORS,
    OutageLog,
    logger,
    require_bool,
    require_bytes_client,
    require_callable,
    require_key,
    require_non_negative,
    require_positive_seconds,
    require_prefix,
    to_ms,
)
from .errors import CacheUnavailableError, SerializationError, TamperedDataError
from .serializers import get_serializer

__all__ = ["ENVELOPE_PREFIX", "RELEASE_LUA", "EarlyRefreshCache"]

ENVELOPE_PREFIX = b"\xc1xf1:"
_ENVELOPE_HEADER = re.compile(rb"\xc1xf1:(0|[1-9][0-9]*):(0|[1-9][0-9]*):")

# KEYS[1] = lock key; ARGV[1] = token. Deletes the lock only if it is still ours: a
# refresh that outlived its lock must not delete the next refresher's. 1 if deleted.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

_MISS: Final = object()


def _uniform_open_zero() -> float:
    """Uniform in (0, 1]: ``random.random()`` is in [0, 1), and ln(0) is undefined."""
    return 1.0 - random.random()


class _Entry(NamedTuple):
    value: Any
    expiry: float  # seconds since the epoch, writer's clock
    delta: float  # seconds the loader took


def _encode(payload: bytes, expiry: float, delta: float) -> bytes:
    return b"%b%d:%d:%b" % (ENVELOPE_PREFIX, round(expiry * 1000), round(delta * 1000), payload)


class EarlyRefreshCache:
    """Cache reads that refresh a value shortly before it expires (see module doc)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str | None = None,
        background: bool = False,
        lock_timeout: float = 10.0,
        lock_prefix: str = "refresh-lock:",
        serializer: str = "json",
        hmac_key: bytes | str | None = None,
        fail_open: bool = True,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = _uniform_open_zero,
    ) -> None:
        self._client = require_bytes_client(client)
        self._prefix = None if prefix is None else require_prefix(prefix)
        self._background = require_bool(background, "background")
        self._fail_open = require_bool(fail_open, "fail_open")
        self._lock_ms = to_ms(require_positive_seconds(lock_timeout, "lock_timeout"))
        self._lock_prefix = require_prefix(lock_prefix, "lock_prefix")
        self._serializer = get_serializer(serializer, hmac_key=hmac_key)
        self._clock = require_callable(clock, "clock")
        self._rand = require_callable(rand, "rand")
        self._release = client.register_script(RELEASE_LUA)
        self._outage = OutageLog("EarlyRefreshCache")
        self._refreshing: set[str] = set()
        self._refreshing_lock = threading.Lock()

    def get_with_refresh(
        self, key: str, loader: Callable[[], Any], ttl: float = 3600, beta: float = 1.0
    ) -> Any:
        """The value at ``key``, loaded on a miss and refreshed early as XFetch decides."""
        require_key(key)
        require_callable(loader)
        ttl = require_positive_seconds(ttl, "ttl")
        beta = require_non_negative(
            beta, "beta", hint="XFetch's default is 1.0; larger refreshes earlier, 0 only at expiry"
        )
        value_key = self._value_key(key)
        try:
            data = self._client.get(value_key)
            self._outage.succeeded()
        except REDIS_OUTAGE_ERRORS as exc:
            if not self._fail_open:
                raise CacheUnavailableError(
                    f"get_with_refresh: Redis unavailable and fail_open=False: {exc}"
                ) from exc
            self._outage.failed(exc)
            return loader()
        entry = self._decode(value_key, data) if isinstance(data, bytes) else None
        if entry is None:
            return self._load_and_store(value_key, loader, ttl, refresh=False)
        if self._clock() - entry.delta * beta * math.log(self._rand()) < entry.expiry:
            return entry.value
        if self._background:
            self._refresh_in_background(value_key, loader, ttl)
            return entry.value
        refreshed = self._refresh(value_key, loader, ttl)
        return entry.value if refreshed is _MISS else refreshed

    # -- internals ------------------------------------------------------------------------

    def _value_key(self, key: str) -> str:
        return key if self._prefix is None else self._prefix + ":" + key

    def _load_and_store(
        self, key: str, loader: Callable[[], Any], ttl: float, refresh: bool
    ) -> Any:
        """Run the loader, timing it, and store its value; a refresh only overwrites (XX)."""
        started = self._clock()
        value = loader()
        finished = self._clock()
        envelope = _encode(
            self._serializer.dumps(value),
            expiry=finished + ttl,
            delta=max(0.0, finished - started),  # a wall clock can step backwards
        )
        try:
            self._client.set(key, envelope, px=to_ms(ttl), xx=refresh)
            self._outage.succeeded()
        except REDIS_OUTAGE_ERRORS as exc:
            self._outage.failed(exc)
        return value

    def _refresh(self, key: str, loader: Callable[[], Any], ttl: float) -> Any:
        """Refresh under the lock: the new value, or _MISS if skipped or failed."""
        lock_key, token = self._lock_prefix + key, uuid.uuid4().hex
        try:
            if not self._client.set(lock_key, token, nx=True, px=self._lock_ms):
                return _MISS  # another caller, maybe in another process, is refreshing
        except REDIS_OUTAGE_ERRORS as exc:
            self._outage.failed(exc)
            return _MISS
        try:
            return self._load_and_store(key, loader, ttl, refresh=True)
        except Exception:
            # The current value is still within its ttl: serve it, and say why it stays.
            logger.warning(
                "early refresh of %s failed; serving the current value", key, exc_info=True
            )
            return _MISS
        finally:
            try:
                self._release(keys=[lock_key], args=[token])
            except REDIS_OUTAGE_ERRORS as exc:
                logger.warning("could not release %s (%s); it will expire", lock_key, exc)

    def _refresh_in_background(self, key: str, loader: Callable[[], Any], ttl: float) -> None:
        with self._refreshing_lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)

        def run() -> None:
            try:
                self._refresh(key, loader, ttl)
            finally:
                with self._refreshing_lock:
                    self._refreshing.discard(key)

        threading.Thread(target=run, name=f"early-refresh:{key}", daemon=True).start()

    def _decode(self, key: str, data: bytes) -> _Entry | None:
        header = _ENVELOPE_HEADER.match(data)
        if header is None:
            logger.warning("%s does not hold an early-refresh envelope; treated as a miss", key)
            return None
        try:
            value = self._serializer.loads(data[header.end() :])
        except TamperedDataError:
            logger.warning("SECURITY: %s holds tampered signed data; treated as a miss", key)
            return None
        except SerializationError as exc:
            logger.warning("%s holds undecodable data (%s); treated as a miss", key, exc)
            return None
        return _Entry(value, int(header[1]) / 1000, int(header[2]) / 1000)
