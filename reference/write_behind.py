"""Write-behind: writes land in Redis at once and reach the database later, in batches.

The pattern
    ``set(id, data)`` caches the value and appends the write to a Redis stream, in one
    Lua script, and returns: the caller never waits for the database. A flusher reads
    the stream through a consumer group, up to ``read_limit`` entries at a time, keeps
    the latest write of each row, writes the rows with ``store.upsert_many`` in batches
    of ``batch_size`` rows, and acknowledges each batch's entries only after its commit.
    ``start()`` runs a flusher in a background thread; the command ::

        python -m templategen.reference.write_behind --redis-url URL --sqlite PATH

    runs one as its own process (``--help`` lists the options; SIGTERM drains, then
    exits). Any number of flushers may share a stream. ``get`` reads Redis, and on a
    miss the store.

Guarantees
    - Durable queue: when ``set`` returns, the value is cached and the write queued,
      both or neither. It reaches the store as long as Redis keeps its data: the queue
      is exactly as durable as Redis is configured to be (use AOF persistence).
    - No loss when a flusher dies: its entries stay pending in the group, and another
      flusher claims them (XAUTOCLAIM) once idle for ``claim_idle``. Replays are
      no-ops: each write carries a per-row version that only grows, and
      ``upsert_many`` skips rows whose version the store already has. So the store
      never goes back to an older write, in whatever order batches commit.
    - Coalescing: a flush writes each row at most once, with its highest version, for
      all the writes it reads (up to ``read_limit``, 10,000 by default): a backlog of
      10,000 writes over 100 rows is 100 row writes, not 10,000.
    - A dirty value never expires: it is cached without a TTL, and the TTL (``ttl``)
      starts only after the store commit, and only if no newer write came meanwhile.
    - Read-your-writes: ``get`` returns the latest ``set`` of any process while it is
      cached, and the store's row (which has it) once the TTL after its flush ends.
    - Nothing is dropped on failure: store errors are retried with backoff and the
      entries stay pending; writes that can never be stored are dead-lettered.

Failure modes
    - Flusher killed before, during, after or between commits: see "no loss" above; the
      batches it committed are acknowledged (each with the older writes of its rows),
      a batch committed but not acknowledged is written again, as a no-op, and the rest
      of what it read stays pending, every write of each row not yet committed included.
    - Redis down: ``set`` raises :class:`~.errors.CacheUnavailableError` (a write that
      cannot be made durable is never accepted quietly; retrying it is harmless), and
      so does ``get`` (the store may be behind the queue). Flushers wait and resume.
    - Store down: the batch is retried with exponential backoff (``backoff``, doubled
      per failure, capped at 30 s) for as long as it takes; ``stats().retried`` counts
      failed attempts. ``stop(timeout)`` raises :class:`~.errors.FlushTimeoutError` at
      its deadline, leaving the entries pending for the next flusher.
    - Poison: an entry that cannot be decoded goes to the dead-letter stream at once.
      A batch still refused after ``max_retries`` retries is written row by row; a row
      refused alone twice, each time followed by the store taking another write (a
      later row of the batch, or a probe: a replay of a row this flusher committed,
      which changes nothing), goes to the dead-letter stream with the error text, and
      the rest of the batch is flushed; a refused write already superseded by a newer
      queued one is only acknowledged (the newer one decides). The cache keeps the
      rejected value (no TTL) until the row is written again.
      ``_write_behind_flusher`` explains the choice.
    - A batch of refused rows only (a few poison rows, or one hot row's writes) does
      not stall the writes behind it: the probe settles it at once. A flusher that has
      committed nothing yet has no probe: it keeps those rows pending, writes other rows
      first (reading past the refused ones when nothing else is in reach, up to
      ``read_limit`` more entries), and dead-letters them once a healthy row is
      written. A queue of refused rows only stays pending until then.
    - Store down, with poison in the queue: no write is taken, so nothing is
      dead-lettered. Only a store that flaps twice within one row-by-row pass (down
      for a row, up for the next write, down for it again, up again) can have a
      healthy row dead-lettered; it stays in the dead-letter stream, to replay.
    - Slow store: a flush that has spent ``claim_idle / 2`` writing its batches leaves
      the rest pending and reads it again at once, restarting its idle time, so no other
      flusher claims it. Only a single batch slower than that (retries included) has
      its entries claimed and written twice (harmless); keep ``claim_idle`` well above
      the time a batch takes.
    - Memory: a flush holds up to ``read_limit`` entries, decoded (twice that while it
      reads past refused rows); lower ``read_limit`` for large values.
    - Eviction: under ``maxmemory-policy allkeys-*`` Redis may evict the queue or a
      dirty value. Use ``noeviction`` or a ``volatile-*`` policy.

Does not
    - Exactly-once into a store that is not idempotent: delivery is at least once, and
      only the versioned ``upsert_many`` of the Store contract makes replays no-ops.
    - Order writes across rows, or write several rows atomically.
    - Delete rows, or share the table with other writers: a version the store got
      elsewhere, above the ones handed out here, makes the store ignore these writes.
    - Bound the dead-letter stream: inspect it, replay what you can, trim it yourself.
    - Remove a crashed flusher's consumer from the group (once its entries are claimed
      it holds none; ``XGROUP DELCONSUMER`` it). ``stop()`` removes its own.

Wire format (``<prefix>`` is ``prefix``)
    - ``<prefix>:data:<id>``: the cached value, the serializer's bytes (compact UTF-8
      JSON by default); no TTL while dirty, PX ``ttl`` once flushed (the committing
      flusher's ``ttl``: give every flusher the same) or filled from the store.
    - ``<prefix>:version:<id>``: the row's latest version, ASCII decimal, no TTL (the
      counter must outlive the value). The first write seeds it from Redis's clock,
      ``<unix seconds><6-digit microseconds>``, then INCR: a row that has a
      counter-based version in the store already, or a counter lost with Redis's data,
      still gets versions the store has not seen (below 2^53, so exact in Lua). A
      fill from the store raises it to the row's version if that is higher.
    - Stream ``<prefix>:queue`` (``stream=``), group ``flushers`` (``group=``) created
      from ID 0 with MKSTREAM. Entry fields: ``id`` (the row id, UTF-8), ``version``
      (decimal), ``payload`` (the serializer's bytes). Consumers ``<host>:<pid>:<hex>``.
    - Dead letters: stream ``<stream>:dead``, fields ``entry`` (the original ID),
      ``error`` (text), then the original entry's fields.
    - Scripts: ``SET_LUA`` and ``FILL_LUA`` here; ``ACK_FLUSHED_LUA``,
      ``DEAD_LETTER_LUA`` and ``RETIRE_CONSUMER_LUA`` in ``_write_behind_flusher``.
      They touch several keys: on Redis Cluster use a hash-tagged ``prefix`` and
      ``stream`` (``prefix="{users}"``) so that they share a slot.

Deviations from the design page
    - Synchronous, like the rest of the reference: ``set`` is one EVALSHA, so an event
      loop can call it (or ``asyncio.to_thread`` it); the flusher is a thread or a
      process, and ``start()`` returns at once instead of being the loop's coroutine.
    - ``WriteBehindCache(redis_client, db, flush_interval, batch_size)`` becomes
      ``WriteBehindCache(client, store, *, prefix="wb", ttl=3600, ...)``: a :class:`Store`
      replaces the MongoDB ``db``, one cache per collection, so ``set(collection,
      doc_id, data)`` becomes ``set(doc_id, data)``, returning the queued ``Row``.
    - The queue is in Redis, not in process memory; a failed bulk write keeps its
      batch (the design cleared it); a dirty value cannot expire before its flush.
    - ``batch_size`` counts rows per store write, after coalescing; ``read_limit``
      (new) counts the entries one flush reads and coalesces.
    - ``stop(timeout)`` drains with a deadline. New: ``get``, ``flush``, ``stats``.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis

from ._support import (
    logger,
    require_bytes_client,
    require_key,
    require_positive_seconds,
    require_prefix,
    to_ms,
)
from ._write_behind_flusher import (
    ACK_FLUSHED_LUA,
    DEAD_LETTER_LUA,
    RETIRE_CONSUMER_LUA,
    Counters,
    Flusher,
    Layout,
    Policy,
)
from .errors import (
    CacheError,
    CacheUnavailableError,
    ConfigurationError,
    FlushTimeoutError,
    StoreError,
)
from .serializers import get_serializer
from .store import Row, SQLiteStore, Store

__all__ = [
    "ACK_FLUSHED_LUA",
    "DEAD_LETTER_LUA",
    "FILL_LUA",
    "RETIRE_CONSUMER_LUA",
    "SET_LUA",
    "WriteBehindCache",
    "WriteBehindStats",
    "main",
]

# KEYS[1] = data key, KEYS[2] = version key, KEYS[3] = stream; ARGV[1] = row id,
# ARGV[2] = payload. Caches the value, bumps the row's version and queues the write in
# one step: a write is cached and queued, or neither. Returns the new version (decimal).
SET_LUA = """
if redis.call('EXISTS', KEYS[2]) == 0 then
  -- First write of the row here (or the counter was lost): start from the clock in
  -- microseconds, above any version a counting store gave the row before.
  local now = redis.call('TIME')
  redis.call('SET', KEYS[2], now[1] .. string.format('%06d', tonumber(now[2])))
end
redis.call('INCR', KEYS[2])
-- Read back as a string: a Lua number argument could be sent in exponent notation.
local version = redis.call('GET', KEYS[2])
-- No TTL while dirty: the flusher starts it after the commit.
redis.call('SET', KEYS[1], ARGV[2])
redis.call('XADD', KEYS[3], '*', 'id', ARGV[1], 'version', version, 'payload', ARGV[2])
return version
"""

# KEYS[1] = data key, KEYS[2] = version key; ARGV[1] = payload, ARGV[2] = the row's
# version in the store, ARGV[3] = ttl in ms. Caches a row read from the store, unless
# something is cached or a newer write is queued (the store is behind the queue, and
# caching its row would hide that write). Raises the counter to the row's version so
# the next write gets one the store has not seen. Returns 1 if cached, 0 if not.
FILL_LUA = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local queued = tonumber(redis.call('GET', KEYS[2]) or '0')
if queued > tonumber(ARGV[2]) then
  return 0
end
if queued < tonumber(ARGV[2]) then
  redis.call('SET', KEYS[2], ARGV[2])
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
"""

_MAX_BATCH = 10_000
_MAX_READ_LIMIT = 100_000
_MAX_RETRIES = 100


@dataclass(frozen=True, slots=True)
class WriteBehindStats:
    """Counters of one cache (``queued`` .. ``dead_lettered``) and of its stream (the rest)."""

    queued: int  # writes this cache's set() queued
    flushed: int  # entries its flusher wrote to the store and acknowledged
    retried: int  # store writes its flusher saw fail (retried, rejected, or a probe)
    dead_lettered: int  # entries its flusher moved to the dead-letter stream
    queue_depth: int  # entries in the stream not yet flushed, by any flusher (XLEN)
    oldest_pending_age: float  # seconds since the oldest of them was queued; 0.0 if none
    dead_letters: int  # entries in the dead-letter stream (XLEN)


def _require_int(value: object, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigurationError(f"{name} must be an int from {low} to {high}, got {value!r}")
    return value


class WriteBehindCache:
    """Cache writes in Redis and queue them there; flushers write them to a :class:`Store`.

    ``ttl`` is how long a value stays cached after its flush. Flushers: ``read_limit``
    entries read and coalesced per flush, ``batch_size`` rows per store write, at most
    ``flush_interval`` seconds between flushes when idle, ``claim_idle`` seconds before
    a silent flusher's entries are taken over, ``max_retries`` retries (``backoff``
    seconds, doubling) before a failing batch is written row by row to find a poison row.
    """

    def __init__(
        self,
        client: redis.Redis,
        store: Store,
        *,
        prefix: str = "wb",
        ttl: float = 3600.0,
        stream: str | None = None,
        group: str = "flushers",
        batch_size: int = 100,
        read_limit: int = 10_000,
        flush_interval: float = 1.0,
        claim_idle: float = 30.0,
        max_retries: int = 3,
        backoff: float = 0.1,
        serializer: str = "json",
        hmac_key: bytes | str | None = None,
    ) -> None:
        self._client = require_bytes_client(client)
        if not isinstance(store, Store):
            raise ConfigurationError(
                "store must implement the Store protocol (get, upsert, upsert_many, "
                f"delete), got {type(store).__name__}"
            )
        self._store = store
        prefix = require_prefix(prefix)
        stream = f"{prefix}:queue" if stream is None else require_prefix(stream, "stream")
        self._layout = Layout(prefix, stream, require_prefix(group, "group"))
        self._policy = Policy(
            ttl_ms=to_ms(require_positive_seconds(ttl, "ttl")),
            batch_size=_require_int(batch_size, "batch_size", 1, _MAX_BATCH),
            read_limit=_require_int(read_limit, "read_limit", 1, _MAX_READ_LIMIT),
            flush_interval=require_positive_seconds(flush_interval, "flush_interval"),
            claim_idle_ms=to_ms(require_positive_seconds(claim_idle, "claim_idle")),
            max_retries=_require_int(max_retries, "max_retries", 0, _MAX_RETRIES),
            backoff=require_positive_seconds(backoff, "backoff"),
        )
        self._serializer = get_serializer(serializer, hmac_key=hmac_key)
        self._counters = Counters()
        self._flusher = Flusher(
            self._client, store, self._serializer, self._layout, self._policy, self._counters
        )
        self._set = self._client.register_script(SET_LUA)
        self._fill = self._client.register_script(FILL_LUA)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def set(self, doc_id: str, data: Any) -> Row:
        """Cache ``data`` and queue its write to the store; returns the queued row."""
        doc_id = require_key(doc_id, "doc_id")
        payload = self._serializer.dumps(data)  # refuses unencodable data before Redis
        layout = self._layout
        try:
            version = self._set(
                keys=[layout.data_key(doc_id), layout.version_key(doc_id), layout.stream],
                args=[doc_id, payload],
            )
        except redis.RedisError as exc:
            raise CacheUnavailableError(
                f"write-behind: Redis failed, the write of {doc_id!r} may not be queued "
                f"(retrying it is harmless): {exc}"
            ) from exc
        self._counters.add(queued=1)
        return Row(doc_id, data, int(version))

    def get(self, doc_id: str) -> Row | None:
        """The latest write of ``doc_id``: the cached one, else the store's row, else None."""
        doc_id = require_key(doc_id, "doc_id")
        data_key, version_key = self._layout.data_key(doc_id), self._layout.version_key(doc_id)
        try:
            cached, version = self._client.mget(data_key, version_key)
        except redis.RedisError as exc:
            raise CacheUnavailableError(
                f"write-behind: Redis failed reading {doc_id!r}; the store is not read "
                f"instead, it may be behind the queued writes: {exc}"
            ) from exc
        if isinstance(cached, bytes) and version is not None:
            # An undecodable value raises SerializationError: it may be the latest write,
            # so answering with the store's older row would be wrong.
            return Row(doc_id, self._serializer.loads(cached), int(version))
        row = self._store.get(doc_id)
        if row is not None:
            try:
                payload = self._serializer.dumps(row.data)
                self._fill(
                    keys=[data_key, version_key],
                    args=[payload, row.version, self._policy.ttl_ms],
                )
            except (redis.RedisError, CacheError) as exc:  # the row is right; caching is a bonus
                logger.warning("write-behind: could not cache %r: %s", doc_id, exc)
        return row

    def start(self) -> None:
        """Run a flusher in a background thread (once; calling again while it runs is a no-op)."""
        with self._lock:
            if self._thread is not None:
                return
            try:
                self._flusher.ensure_group()
            except redis.RedisError as exc:
                raise CacheUnavailableError(
                    f"write-behind: cannot start the flusher: {exc}"
                ) from exc
            self._stopping = threading.Event()
            self._thread = threading.Thread(
                target=self._flusher.run,
                args=(self._stopping,),
                name=f"write-behind-flusher-{self._layout.prefix}",
                daemon=True,  # if the process exits without stop(), the entries stay pending
            )
            self._thread.start()

    def flush(self, timeout: float = 30.0) -> None:
        """Write everything queued before this call to the store, in this thread."""
        timeout = require_positive_seconds(timeout, "timeout")
        self._flusher.drain(time.monotonic() + timeout, timeout)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the flusher thread after draining the queue; FlushTimeoutError after ``timeout``.

        On a timeout the unflushed entries stay pending; another flusher claims them.
        """
        timeout = require_positive_seconds(timeout, "timeout")
        deadline = time.monotonic() + timeout
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                raise FlushTimeoutError(
                    f"write-behind: the flusher was still inside a store call after "
                    f"{timeout:g}s; its entries stay pending for the next flusher"
                )
        self._flusher.drain(deadline, timeout)
        try:
            self._flusher.retire()
        except redis.RedisError as exc:  # only bookkeeping: a stale consumer name is harmless
            logger.warning("write-behind: could not remove consumer from the group: %s", exc)

    def stats(self) -> WriteBehindStats:
        """This cache's counters, and the queue as Redis sees it (one round trip)."""
        layout = self._layout
        pipe = self._client.pipeline(transaction=False)
        pipe.xlen(layout.stream)
        pipe.xrange(layout.stream, count=1)
        pipe.xlen(layout.dead_letters)
        pipe.time()
        try:
            depth, oldest, dead, (seconds, micros) = pipe.execute()
        except redis.RedisError as exc:
            raise CacheUnavailableError(f"write-behind: cannot read the queue: {exc}") from exc
        age = 0.0
        if oldest:
            queued_ms = int(oldest[0][0].split(b"-")[0])
            age = max(0.0, seconds + micros / 1e6 - queued_ms / 1000)
        c = self._counters
        return WriteBehindStats(c.queued, c.flushed, c.retried, c.dead_lettered, depth, age, dead)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a flusher from Redis into an SQLite table until SIGTERM or SIGINT, then drain."""
    parser = argparse.ArgumentParser(
        prog="python -m templategen.reference.write_behind",
        description="Write queued write-behind entries from Redis into an SQLite table "
        "until SIGTERM or SIGINT, then drain the queue and exit.",
    )
    add = parser.add_argument
    add("--redis-url", required=True, help="Redis to read the queue from, redis://host:port/db.")
    add("--sqlite", required=True, help="Path of the SQLite database file.")
    add("--table", default="cache_rows", help="SQLite table of the rows.")
    add("--prefix", default="wb", help="Key prefix the writers use.")
    add(
        "--ttl",
        type=float,
        default=3600.0,
        help="Seconds a value stays cached after this flushes it.",
    )
    add("--stream", help="Stream name (default: PREFIX:queue).")
    add("--group", default="flushers", help="Consumer group name.")
    add("--batch-size", type=int, default=100, help="Rows per store write.")
    add(
        "--read-limit",
        type=int,
        default=10_000,
        help="Queued writes one flush reads and coalesces (one row per id, latest wins).",
    )
    add("--flush-interval", type=float, default=1.0, help="Seconds between flushes when idle.")
    add(
        "--claim-idle",
        type=float,
        default=30.0,
        help="Seconds before a dead flusher's entries are claimed.",
    )
    add("--max-retries", type=int, default=3, help="Retries of a failing batch before it is split.")
    add("--backoff", type=float, default=0.1, help="Seconds before the first retry (doubles).")
    add("--serializer", choices=("json", "msgpack"), default="json", help="Value encoding.")
    add("--drain-timeout", type=float, default=30.0, help="Seconds to drain on shutdown.")
    args = parser.parse_args(argv)

    try:
        drain_timeout = require_positive_seconds(args.drain_timeout, "--drain-timeout")
        cache = WriteBehindCache(
            redis.Redis.from_url(args.redis_url),
            SQLiteStore(args.sqlite, table=args.table),
            prefix=args.prefix,
            ttl=args.ttl,
            stream=args.stream,
            group=args.group,
            batch_size=args.batch_size,
            read_limit=args.read_limit,
            flush_interval=args.flush_interval,
            claim_idle=args.claim_idle,
            max_retries=args.max_retries,
            backoff=args.backoff,
            serializer=args.serializer,
        )
    except (ConfigurationError, StoreError, sqlite3.Error) as exc:
        print(f"write-behind: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    try:
        cache.start()
        while not stopping.wait(1.0):
            pass
        cache.stop(drain_timeout)
    except CacheError as exc:  # its message names write-behind already
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
