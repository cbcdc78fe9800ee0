"""Stampede prevention with a lock: one load per cold key, across threads and processes.

The pattern: when a key is missing, exactly one caller runs the loader; every other
caller waits for that value instead of loading it again. Two layers do this:

1. **In-process single-flight.** Threads of one process asking for the same key join
   one *flight*: the first thread (the leader) does the work, the others wait for its
   outcome. This layer knows nothing about Redis (``_SingleFlight``, modelled on
   dogpile.cache's lock module), so a process sends one set of commands per cold key,
   however many threads want it.
2. **A Redis lock across processes.** The leader runs ``ACQUIRE_OR_READ_LUA``: the
   value if it is there, else ``SET lock token NX PX lock_timeout``. The winner runs
   the loader while a *watchdog* thread extends the lock every ``lock_timeout / 3``
   (compare-and-pexpire), so a load slower than ``lock_timeout`` keeps its lock. It
   then stores the value, deletes its own lock and PUBLISHes the value on the lock's
   channel, all in one script. A leader that lost the race SUBSCRIBEs to that channel,
   re-checks (the value may have been published before the subscription existed), then
   waits for the message, re-checking every ``poll_interval`` as a fallback.

Guarantees:

- While Redis is up and loads finish within ``wait_timeout``, a cold key is loaded once,
  however many threads and processes ask for it at the same time; every one of them
  gets the value.
- A waiter never runs the loader blindly: it returns the stored value, takes the lock
  itself (when the holder released it without a value, or its lock expired), or raises
  :class:`LockTimeoutError` at ``wait_timeout``.
- A lock is only ever extended or deleted by its owner (token compare in Lua).
- A miss is "no such key", never a falsy value: ``None``, ``0`` and ``[]`` are cached.
- Every caller gets its own decoded object; only the caller that ran the loader gets the
  loader's own object back.

Failure modes:

- *Loader raises*: the lock is deleted and an empty message published. The caller that
  ran the loader gets the exception, and so do the threads of its process that shared
  the flight (they asked for the same load; retrying would multiply the load on a
  failing backend). Waiters in other processes wake on the empty message and retry the
  lock: one of them runs the loader next.
- *Process killed while holding the lock*: the watchdog dies with it; the lock expires
  within ``lock_timeout`` and a waiter takes it at its next poll. Keep ``lock_timeout``
  well below ``wait_timeout`` (by default ``wait_timeout`` is twice ``lock_timeout``)
  so that waiters outlive a dead owner's lock.
- *Lock lost mid-load* (Redis failover, a watchdog starved past ``lock_timeout``, a
  manual DEL): the watchdog logs a warning; another caller may load concurrently; both
  values are fresh and the last write wins.
- *Redis down*: with ``fail_open=True`` (the default) callers run the loader (still one
  per process per key) and the outage is logged once by :class:`OutageLog`; with
  ``fail_open=False`` they get :class:`CacheUnavailableError`. If Redis fails after the
  loader ran, the value is returned anyway and the lock left to expire.
  ``distributed_lock`` always raises :class:`CacheUnavailableError`: a lock that fails
  open would give no mutual exclusion.
- *Undecodable stored value*: deleted and treated as a miss; tampered signed-pickle data
  is logged as a security warning.

Cost in round trips: a hit is one GET. The caller that loads sends GET, the acquire
script and the store script. A process that waits sends GET, the acquire script,
SUBSCRIBE (on a pub/sub connection taken from the client's pool; redis-py disconnects
it afterwards) and the re-check; the value then arrives in the message. Its other
threads send one GET each and wait in-process. A poll adds one script call per
``poll_interval`` only while no message comes.

What it does not do: refresh values before they expire (see ``early_refresh``); close
the stale-set race with invalidations (a load that started before a DEL may store old
data; see the leases in ``cache_aside``); bound the loader's run time (the caller that
runs it waits as long as it takes; only waiters have a deadline); fence writes to other
systems with the lock (a lock with an expiry is not a fencing token).

Wire format (other languages must match):

- value: ``<prefix>:<cache_key>`` holds the serialized value (``serializers``; JSON by
  default), ``PX`` = ttl in ms. Without a ``prefix`` (the default) the key is
  ``<cache_key>`` exactly as given.
- lock: ``<lock_prefix>`` followed by the value key (``lock_prefix`` defaults to
  ``lock:``) holds the owner token, 32 lowercase hex characters (a uuid4), ``PX`` =
  lock_timeout in ms. ``distributed_lock(key)`` takes the same lock as
  ``cache_with_lock(key, ...)``.
- channel: the lock key's name. Messages are the serialized value (after a store) or
  the empty string (the owner released the lock without a value). No serializer emits
  an empty string.
- scripts: ``ACQUIRE_OR_READ_LUA``, ``EXTEND_LUA``, ``RELEASE_LUA``,
  ``STORE_AND_RELEASE_LUA`` below. The last touches the value key and the lock key, so
  on Redis Cluster they must share a hash slot: put a hash tag in the cache key
  (``{report:daily}``) and keep braces out of both prefixes; the lock key then carries
  the same tag.

Deviations from the design page: options are keyword-only constructor arguments
(``prefix``, ``lock_timeout``, ``wait_timeout``, ``poll_interval``, ``lock_prefix``,
``serializer``, ``hmac_key``, ``fail_open``); the page's hard-coded ``lock:`` is
``lock_prefix``'s default. ``prefix`` is new: None (the default) keeps the page's keys,
the cache key exactly as given; a prefix stores values at ``<prefix>:<cache_key>`` and
locks at ``<lock_prefix><prefix>:<cache_key>``, the layout of the rendered files (which
always have a prefix). ``distributed_lock(key, timeout=None)`` takes its default from
``lock_timeout`` (10 s, as on the page), yields whether it acquired (it never waits)
and keeps the lock alive with the watchdog while the block runs; a block that outlives
a lost lock is not interrupted (the watchdog logs the loss).
``cache_with_lock`` waits for the value instead of sleeping 100 ms and loading anyway.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from typing import Any, Final

import redis

from ._support import (
    REDIS_OUTAGE_ERRORS,
    OutageLog,
    logger,
    require_bool,
    require_bytes_client,
    require_callable,
    require_key,
    require_positive_seconds,
    require_prefix,
    to_ms,
)
from .errors import (
    CacheUnavailableError,
    LockTimeoutError,
    SerializationError,
    TamperedDataError,
)
from .serializers import get_serializer

__all__ = [
    "ACQUIRE_OR_READ_LUA",
    "EXTEND_LUA",
    "RELEASE_LUA",
    "STORE_AND_RELEASE_LUA",
    "StampedePrevention",
]

# KEYS[1] = value key, KEYS[2] = lock key; ARGV[1] = token, ARGV[2] = lock expiry in ms.
# Returns the stored value (bytes), 1 when the key was empty and our lock now holds it,
# or 0 when it was empty and another owner holds the lock. One round trip for the read
# and the lock attempt, so no caller can see "no value" and then lose a race it never
# entered.
ACQUIRE_OR_READ_LUA = """
local v = redis.call('GET', KEYS[1])
if v then
  return v
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 1
end
return 0
"""

# KEYS[1] = lock key; ARGV[1] = token, ARGV[2] = new expiry in ms. 1 if extended, 0 if
# the lock is gone or has another owner (which must never be extended by us).
EXTEND_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] = lock key (also the channel); ARGV[1] = token. Deletes the lock only if it is
# ours and tells waiters, with an empty message, to retry it. 1 if released, else 0.
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('PUBLISH', KEYS[1], '')
  return 1
end
return 0
"""

# KEYS[1] = value key, KEYS[2] = lock key (also the channel); ARGV[1] = token,
# ARGV[2] = serialized value, ARGV[3] = ttl in ms. Stores the value, releases our lock
# (if it is still ours) and publishes the value, atomically: nobody can observe the lock
# gone and the value not yet there. Returns 1 if our lock was released, 0 if it was lost.
STORE_AND_RELEASE_LUA = """
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
local released = 0
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[2])
  released = 1
end
redis.call('PUBLISH', KEYS[2], ARGV[2])
return released
"""

_MISS: Final = object()


def _new_token() -> str:
    return uuid.uuid4().hex


class _FollowerTimeout(Exception):
    """A follower waited longer than its timeout for the leader of its flight."""


class _SingleFlight:
    """Runs one call per key at a time in this process; concurrent callers share it.

    Knows nothing about Redis. A follower waits at most ``timeout`` seconds for the
    leader's outcome, result or exception, then raises _FollowerTimeout.
    """

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._flights: dict[str, Future[Any]] = {}

    def run(self, key: str, fn: Callable[[], Any], timeout: float) -> tuple[bool, Any]:
        """``(True, fn())`` in the leader; ``(False, the leader's result)`` in followers."""
        with self._mutex:
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = Future()
        if not leader:
            try:
                return False, flight.result(timeout=timeout)
            except TimeoutError:
                # A TimeoutError the leader raised is its outcome, passed on as it is;
                # only a flight still running means that our wait ran out.
                if flight.done():
                    raise
                raise _FollowerTimeout from None
        try:
            result = fn()
        except BaseException as exc:
            self._finish(key)
            flight.set_exception(exc)
            raise
        self._finish(key)
        flight.set_result(result)
        return True, result

    def _finish(self, key: str) -> None:
        # Removed before the outcome is published: a caller arriving later starts a new
        # flight (and finds the stored value) instead of inheriting a finished one.
        with self._mutex:
            del self._flights[key]


class _Watchdog:
    """Extends a held lock every ``interval`` seconds until stopped."""

    def __init__(self, extend: Callable[[], bool], lock_key: str, interval: float) -> None:
        self._extend = extend
        self._lock_key = lock_key
        self._interval = interval
        self._stopped = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lock-watchdog:{lock_key}", daemon=True
        )

    def start(self) -> _Watchdog:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while not self._stopped.wait(self._interval):
            try:
                held = self._extend()
            except REDIS_OUTAGE_ERRORS as exc:
                logger.warning("could not extend lock %s (%s); retrying", self._lock_key, exc)
                continue
            if not held:
                # After stop() the owner may already have released it: not a loss.
                if not self._stopped.is_set():
                    logger.warning(
                        "lock %s was lost while its owner was still loading (it expired "
                        "or was deleted); another caller may load the same value",
                        self._lock_key,
                    )
                return


class _Subscription:
    """A subscription to one channel on a connection of its own (redis-py's PubSub)."""

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self._pubsub: redis.client.PubSub = client.pubsub()  # type: ignore[no-untyped-call]
        try:
            self._pubsub.subscribe(channel)
        except BaseException:
            self._pubsub.close()
            raise

    def confirm(self, timeout: float) -> bool:
        """Wait for the server's confirmation of SUBSCRIBE; False if ``timeout`` passed.

        Only once the server has processed SUBSCRIBE is a later PUBLISH sure to reach
        us, so a re-check of the value must come after this returns True.
        """
        end = time.monotonic() + timeout
        while True:
            message = self._pubsub.get_message(timeout=max(0.0, end - time.monotonic()))
            if message is not None and message["type"] == "subscribe":
                return True
            if time.monotonic() >= end:
                return False

    def next_payload(self, timeout: float) -> bytes | None:
        """The next message's payload, or None when ``timeout`` passes without one."""
        end = time.monotonic() + timeout
        while True:
            message = self._pubsub.get_message(timeout=max(0.0, end - time.monotonic()))
            if message is not None and message["type"] == "message":
                return bytes(message["data"])
            if time.monotonic() >= end:
                return None

    def close(self) -> None:
        self._pubsub.close()


class StampedePrevention:
    """Single-flight loading of cold keys across threads and processes (see module doc)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str | None = None,
        lock_timeout: float = 10.0,
        wait_timeout: float | None = None,
        poll_interval: float = 0.5,
        lock_prefix: str = "lock:",
        serializer: str = "json",
        hmac_key: bytes | str | None = None,
        fail_open: bool = True,
    ) -> None:
        self._client = require_bytes_client(client)
        self._prefix = None if prefix is None else require_prefix(prefix)
        self._lock_timeout = require_positive_seconds(lock_timeout, "lock_timeout")
        self._wait_timeout = (
            2 * self._lock_timeout
            if wait_timeout is None
            else require_positive_seconds(wait_timeout, "wait_timeout")
        )
        self._poll_interval = require_positive_seconds(poll_interval, "poll_interval")
        self._lock_prefix = require_prefix(lock_prefix, "lock_prefix")
        self._serializer = get_serializer(serializer, hmac_key=hmac_key)
        self._fail_open = require_bool(fail_open, "fail_open")
        self._outage = OutageLog("StampedePrevention")
        self._flights = _SingleFlight()
        self._acquire_or_read = client.register_script(ACQUIRE_OR_READ_LUA)
        self._extend = client.register_script(EXTEND_LUA)
        self._release = client.register_script(RELEASE_LUA)
        self._store_and_release = client.register_script(STORE_AND_RELEASE_LUA)

    # -- the bare lock ------------------------------------------------------------------

    @contextmanager
    def distributed_lock(self, key: str, timeout: float | None = None) -> Iterator[bool]:
        """Try once to take the lock on ``key``; yield whether this caller holds it.

        While the block runs, a watchdog keeps the lock from expiring; on exit it is
        deleted if it is still ours. It never waits: to wait for a value another caller
        is loading, use :meth:`cache_with_lock`.
        """
        require_key(key)
        seconds = (
            self._lock_timeout if timeout is None else require_positive_seconds(timeout, "timeout")
        )
        lock_key, token = self._lock_key(self._value_key(key)), _new_token()
        try:
            acquired = bool(self._client.set(lock_key, token, nx=True, px=to_ms(seconds)))
        except REDIS_OUTAGE_ERRORS as exc:
            raise CacheUnavailableError(
                f"distributed_lock: Redis unavailable, lock {lock_key!r} not taken: {exc}"
            ) from exc
        if not acquired:
            yield False
            return
        watchdog = self._start_watchdog(lock_key, token, seconds)
        try:
            yield True
        finally:
            watchdog.stop()
            self._release_quietly(lock_key, token)

    # -- the cache ------------------------------------------------------------------------

    def cache_with_lock(self, cache_key: str, loader: Callable[[], Any], ttl: float = 3600) -> Any:
        """The value at ``cache_key``; on a miss, loaded by one caller and shared by all.

        Raises :class:`LockTimeoutError` if another caller's load does not produce a value
        within ``wait_timeout``; the loader's own exceptions reach the caller(s) described
        in the module docstring.
        """
        require_key(cache_key, "cache_key")
        require_callable(loader)
        ttl_s = require_positive_seconds(ttl, "ttl")
        key = self._value_key(cache_key)
        redis_down = False
        try:
            stored = self._client.get(key)
            self._outage.succeeded()
        except REDIS_OUTAGE_ERRORS as exc:
            self._check_fail_open(exc)
            redis_down, stored = True, None
        if isinstance(stored, bytes):
            value = self._decode(key, stored)
            if value is not _MISS:
                return value

        def fill() -> tuple[Any, bytes]:
            if redis_down:
                return self._load_without_redis(loader)
            return self._fill(key, loader, to_ms(ttl_s))

        try:
            leader, (value, data) = self._flights.run(key, fill, self._wait_timeout)
        except _FollowerTimeout:
            raise LockTimeoutError(
                f"cache_with_lock: waited {self._wait_timeout:g}s for another thread of "
                f"this process to load {key!r}; raise wait_timeout or speed up the loader"
            ) from None
        # Followers decode their own copy, so no two callers share a mutable object.
        return value if leader else self._serializer.loads(data)

    # -- internals ------------------------------------------------------------------------

    def _value_key(self, cache_key: str) -> str:
        return cache_key if self._prefix is None else self._prefix + ":" + cache_key

    def _lock_key(self, key: str) -> str:
        return self._lock_prefix + key

    def _fill(self, key: str, loader: Callable[[], Any], ttl_ms: int) -> tuple[Any, bytes]:
        """Read, or lock and load, or wait for the lock's owner: the flight leader's work."""
        lock_key, token = self._lock_key(key), _new_token()
        deadline = time.monotonic() + self._wait_timeout
        subscription: _Subscription | None = None
        try:
            while True:
                try:
                    reply = self._acquire_or_read(
                        keys=[key, lock_key], args=[token, to_ms(self._lock_timeout)]
                    )
                    self._outage.succeeded()
                except REDIS_OUTAGE_ERRORS as exc:
                    self._check_fail_open(exc)
                    return self._load_without_redis(loader)
                if reply == 1:
                    return self._load_holding_lock(key, lock_key, token, loader, ttl_ms)
                if isinstance(reply, bytes):
                    value = self._decode(key, reply)
                    if value is not _MISS:
                        return value, reply
                    continue
                # Another owner holds the lock.
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise LockTimeoutError(
                        f"cache_with_lock: waited {self._wait_timeout:g}s for {key!r}; "
                        f"lock {lock_key!r} is still held by another caller and no value "
                        "appeared. Raise wait_timeout, or look for a slow or hung loader"
                    )
                try:
                    if subscription is None:
                        # Subscribe, then loop to re-check: a value published before the
                        # subscription existed is in the key by now. Unconfirmed by the
                        # deadline, the loop re-checks once more and gives up.
                        subscription = _Subscription(self._client, lock_key)
                        subscription.confirm(remaining)
                        continue
                    payload = subscription.next_payload(min(remaining, self._poll_interval))
                except REDIS_OUTAGE_ERRORS as exc:
                    self._check_fail_open(exc)
                    return self._load_without_redis(loader)
                if payload:
                    value = self._decode(key, payload, delete=False)
                    if value is not _MISS:
                        return value, payload
                # An empty message (released without a value), a poll tick, or an
                # undecodable payload: retry the read and the lock.
        finally:
            if subscription is not None:
                subscription.close()

    def _load_holding_lock(
        self,
        key: str,
        lock_key: str,
        token: str,
        loader: Callable[[], Any],
        ttl_ms: int,
    ) -> tuple[Any, bytes]:
        watchdog = self._start_watchdog(lock_key, token, self._lock_timeout)
        try:
            value = loader()
            data = self._serializer.dumps(value)
        except BaseException:
            watchdog.stop()
            self._release_quietly(lock_key, token)
            raise
        # Stopped first so that the release below is not reported as a lost lock.
        watchdog.stop()
        try:
            self._store_and_release(keys=[key, lock_key], args=[token, data, ttl_ms])
            self._outage.succeeded()
        except REDIS_OUTAGE_ERRORS as exc:
            # The value is loaded; failing the caller now would help nobody. The lock
            # expires by itself within lock_timeout.
            self._outage.failed(exc)
        return value, data

    def _load_without_redis(self, loader: Callable[[], Any]) -> tuple[Any, bytes]:
        value = loader()
        return value, self._serializer.dumps(value)

    def _check_fail_open(self, exc: BaseException) -> None:
        if not self._fail_open:
            raise CacheUnavailableError(
                f"cache_with_lock: Redis unavailable and fail_open=False: {exc}"
            ) from exc
        self._outage.failed(exc)

    def _start_watchdog(self, lock_key: str, token: str, seconds: float) -> _Watchdog:
        lock_ms = to_ms(seconds)

        def extend() -> bool:
            return bool(self._extend(keys=[lock_key], args=[token, lock_ms]))

        return _Watchdog(extend, lock_key, seconds / 3).start()

    def _release_quietly(self, lock_key: str, token: str) -> None:
        try:
            self._release(keys=[lock_key], args=[token])
        except REDIS_OUTAGE_ERRORS as exc:
            # Not raised: it would hide the exception (if any) that ended the block. The
            # lock expires by itself within its timeout.
            logger.warning("could not release lock %s (%s); it will expire", lock_key, exc)

    def _decode(self, key: str, data: bytes, *, delete: bool = True) -> Any:
        """The value in ``data``, or _MISS (after deleting the key) if it cannot be read."""
        try:
            return self._serializer.loads(data)
        except TamperedDataError:
            logger.warning("SECURITY: %s holds tampered signed data; treated as a miss", key)
        except SerializationError as exc:
            logger.warning("%s holds undecodable data (%s); treated as a miss", key, exc)
        if delete:
            with suppress(*REDIS_OUTAGE_ERRORS):
                self._client.delete(key)
        return _MISS
