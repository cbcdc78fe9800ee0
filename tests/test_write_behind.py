"""WriteBehindCache: every accepted write reaches the store, through crashes and outages."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from templategen.reference.errors import (
    CacheUnavailableError,
    ConfigurationError,
    FlushTimeoutError,
    SerializationError,
)
from templategen.reference.store import Row, SQLiteStore, Store
from templategen.reference.write_behind import WriteBehindCache, main

from templategen.redis_server import RedisServer

WORKER = Path(__file__).with_name("_write_behind_worker.py")
STREAM = "wb:queue"
GROUP = "flushers"


class FlakyStore:
    """SQLiteStore that fails while ``down`` or for its next ``failures`` upsert_many calls.

    It records the number of rows (``calls``) and the row ids (``call_ids``) of every
    upsert_many call, refuses rows whose id is in ``reject`` (a constraint the data can
    never meet), runs ``during_write`` (once) inside the next successful call, before
    its commit, and takes ``delay`` seconds over each call (a slow database).
    """

    def __init__(self, inner: SQLiteStore, *, failures: int = 0, reject: Iterable[str] = ()):
        self.inner = inner
        self.failures = failures
        self.reject = frozenset(reject)
        self.down = False
        self.calls: list[int] = []
        self.call_ids: list[list[str]] = []
        self.during_write: Callable[[], None] | None = None
        self.delay = 0.0

    def get(self, id: str) -> Row | None:
        return self.inner.get(id)

    def upsert(self, id: str, data: Any) -> Row:
        return self.inner.upsert(id, data)

    def upsert_many(self, rows: Iterable[Row]) -> int:
        batch = list(rows)
        self.calls.append(len(batch))
        self.call_ids.append([row.id for row in batch])
        time.sleep(self.delay)
        if self.down or self.failures > 0:
            self.failures -= 1
            raise ConnectionError("database is down")
        for row in batch:
            if row.id in self.reject:
                raise ValueError(f"row {row.id!r} violates constraint data_check")
        hook, self.during_write = self.during_write, None
        if hook is not None:
            hook()
        return self.inner.upsert_many(batch)

    def delete(self, id: str) -> bool:
        return self.inner.delete(id)


@pytest.fixture
def store(tmp_path: Path) -> FlakyStore:
    return FlakyStore(SQLiteStore(tmp_path / "db.sqlite"))


@pytest.fixture
def make_cache(redis_client: redis.Redis) -> Iterator[Callable[..., WriteBehindCache]]:
    made: list[WriteBehindCache] = []

    def make(store: Store, **options: Any) -> WriteBehindCache:
        settings: dict[str, Any] = {
            "prefix": "wb",
            "ttl": 60,
            "flush_interval": 0.05,
            "claim_idle": 0.5,
            "max_retries": 2,
            "backoff": 0.01,
        }
        cache = WriteBehindCache(redis_client, store, **(settings | options))
        made.append(cache)
        return cache

    yield make
    for cache in made:  # end flusher threads; a failure here is the test's own business
        with contextlib.suppress(Exception):
            cache.stop(timeout=2)


def in_store(store: Store, keys: Iterable[str]) -> dict[str, Any]:
    return {key: row.data for key in keys if (row := store.get(key)) is not None}


def dead_letters(client: redis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in client.xrange(f"{STREAM}:dead")]


# --- writes, reads, TTLs ----------------------------------------------------------------


def test_set_queues_the_write_in_redis_and_leaves_the_store_alone(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store)
    row = cache.set("user:1", {"name": "Ada"})

    assert store.calls == [] and store.get("user:1") is None
    assert redis_client.get("wb:data:user:1") == b'{"name":"Ada"}'
    assert redis_client.get("wb:version:user:1") == str(row.version).encode()
    [(_, fields)] = redis_client.xrange(STREAM)
    assert fields == {
        b"id": b"user:1",
        b"version": str(row.version).encode(),
        b"payload": b'{"name":"Ada"}',
    }


def test_get_reads_your_latest_write_before_it_is_flushed(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    writer, other_process = make_cache(store), make_cache(store)
    first = writer.set("a", 1)
    latest = writer.set("a", 2)

    assert latest.version > first.version
    assert writer.get("a") == other_process.get("a") == Row("a", 2, latest.version)
    assert store.get("a") is None


def test_a_flushed_value_gets_its_ttl_and_a_miss_reads_and_refills_from_the_store(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store, ttl=60)
    row = cache.set("a", {"n": 1})
    cache.flush()

    assert 0 < redis_client.pttl("wb:data:a") <= 60_000
    redis_client.delete("wb:data:a")  # as the TTL would
    assert cache.get("a") == row
    assert redis_client.get("wb:data:a") == b'{"n":1}'
    assert 0 < redis_client.pttl("wb:data:a") <= 60_000
    assert cache.get("missing") is None


def test_a_dirty_value_has_no_ttl_and_outlives_the_ttl_while_the_store_is_down(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store, ttl=0.2)
    store.down = True
    cache.set("a", "dirty")
    with pytest.raises(FlushTimeoutError):
        cache.flush(timeout=0.3)
    time.sleep(0.4)  # past the ttl

    assert redis_client.pttl("wb:data:a") == -1
    assert cache.get("a") is not None and cache.get("a").data == "dirty"  # type: ignore[union-attr]

    store.down = False
    cache.flush()
    assert store.get("a") is not None and store.get("a").data == "dirty"  # type: ignore[union-attr]
    assert redis_client.pttl("wb:data:a") > 0


def test_a_write_that_arrives_during_the_flush_stays_dirty_without_ttl(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store)
    cache.set("a", "v1")

    def write_v2() -> None:
        cache.set("a", "v2")

    store.during_write = write_v2
    cache.flush()

    assert store.get("a") is not None and store.get("a").data == "v1"  # type: ignore[union-attr]
    assert redis_client.pttl("wb:data:a") == -1  # v2 is not flushed yet: no TTL
    assert cache.get("a").data == "v2"  # type: ignore[union-attr]
    cache.flush()
    assert store.get("a").data == "v2"  # type: ignore[union-attr]


def test_the_first_write_to_a_row_already_in_the_store_is_not_ignored(
    store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    for n in range(3):
        store.upsert("a", f"old {n}")  # version 3, from the store's own counter
    cache = make_cache(store)
    cache.set("a", "new")
    cache.flush()

    assert store.get("a").data == "new"  # type: ignore[union-attr]


def test_reading_an_evicted_dirty_value_never_caches_the_older_row(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store)
    old = cache.set("a", "v1")
    cache.flush()
    cache.set("a", "v2")
    redis_client.delete("wb:data:a")  # evicted (an allkeys-* maxmemory policy) while dirty

    assert cache.get("a") == old  # the store is all there is...
    assert redis_client.get("wb:data:a") is None  # ...but it is behind the queue: not cached
    cache.flush()
    assert cache.get("a").data == "v2"  # type: ignore[union-attr]


def test_reading_a_row_with_a_higher_version_than_the_counter_raises_the_counter(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    high = 5 * 10**15  # above the clock-seeded versions, below 2^53
    store.inner.upsert_many([Row("a", "from elsewhere", high)])
    cache = make_cache(store)
    assert cache.get("a") == Row("a", "from elsewhere", high)

    assert cache.set("a", "new").version == high + 1
    cache.flush()
    assert store.get("a") == Row("a", "new", high + 1)


# --- coalescing, draining, counters ----------------------------------------------------


@pytest.mark.slow
def test_one_flush_of_ten_thousand_writes_over_a_hundred_keys_upserts_at_most_a_hundred_rows(
    store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store)  # default batch_size (100 rows) and read_limit (10,000)
    last: dict[str, int] = {}
    for i in range(10_000):
        cache.set(f"k{i % 100}", i)
        last[f"k{i % 100}"] = i
    cache.flush()

    assert sum(store.calls) <= 100  # rows over every upsert_many of the flush
    assert in_store(store, last) == last  # each key's last write
    stats = cache.stats()
    assert (stats.queued, stats.flushed, stats.queue_depth) == (10_000, 10_000, 0)


def test_a_window_of_more_rows_than_batch_size_is_written_in_batches_of_batch_size_rows(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store, batch_size=100)
    last = {f"k{n}": n + 1000 for n in range(250)}
    for key, value in last.items():
        cache.set(key, value - 1000)
    for key, value in last.items():
        cache.set(key, value)
    cache.flush()

    assert store.calls == [100, 100, 50]
    assert in_store(store, last) == last
    assert redis_client.xlen(STREAM) == 0 and cache.stats().flushed == 500


def test_read_limit_bounds_the_writes_one_flush_reads_and_coalesces(
    store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store, read_limit=50)
    last: dict[str, int] = {}
    for i in range(200):
        cache.set(f"k{i % 10}", i)
        last[f"k{i % 10}"] = i
    cache.flush()

    assert store.calls == [10, 10, 10, 10]  # four windows of 50 writes, 10 rows each
    assert in_store(store, last) == last


def test_an_older_write_is_acknowledged_only_with_the_batch_that_commits_its_row(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store, batch_size=2)
    for value in ("old", "new"):
        for key in ("a", "b", "c", "d"):
            cache.set(key, f"{key} {value}")

    def fail_from_now_on() -> None:
        store.down = True

    store.during_write = fail_from_now_on  # the first batch (a, b) commits, then none
    with pytest.raises(FlushTimeoutError):
        cache.flush(timeout=0.3)

    assert in_store(store, ["a", "b", "c", "d"]) == {"a": "a new", "b": "b new"}
    # a's and b's entries, both writes, are gone; c's and d's, both writes, are pending.
    queued = [fields[b"payload"] for _, fields in redis_client.xrange(STREAM)]
    assert queued == [b'"c old"', b'"d old"', b'"c new"', b'"d new"']
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 4
    store.down = False
    cache.flush()
    assert in_store(store, ["a", "b", "c", "d"]) == {key: f"{key} new" for key in "abcd"}
    assert redis_client.xlen(STREAM) == 0


def test_stop_drains_what_is_queued_before_returning(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    # The thread flushes once at start, then sleeps for a minute: only stop() can drain.
    cache = make_cache(store, flush_interval=60)
    cache.start()
    last = {f"k{i % 30}": i for i in range(300)}
    for key, value in ((f"k{i % 30}", i) for i in range(300)):
        cache.set(key, value)
    cache.stop(timeout=10)

    assert in_store(store, last) == last
    assert redis_client.xlen(STREAM) == 0
    assert cache.stats().flushed == 300
    assert redis_client.xinfo_consumers(STREAM, GROUP) == []  # it left the group


def test_stats_count_the_queue_and_the_age_of_its_oldest_entry(
    store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store)
    for n in range(3):
        cache.set(f"k{n}", n)
    time.sleep(0.2)
    before = cache.stats()
    cache.flush()
    after = cache.stats()

    assert (before.queued, before.flushed, before.queue_depth) == (3, 0, 3)
    assert before.oldest_pending_age >= 0.2
    assert (after.flushed, after.queue_depth, after.oldest_pending_age) == (3, 0, 0.0)


# --- store failures and poison ---------------------------------------------------------


@pytest.mark.parametrize("failures", [2, 5, 30])
def test_a_store_that_fails_for_a_while_loses_nothing_and_counts_retries(
    redis_client: redis.Redis,
    tmp_path: Path,
    make_cache: Callable[..., WriteBehindCache],
    failures: int,
) -> None:
    # 2: retried within the batch; 5: back mid-way through the row-by-row pass;
    # 30: down through several rounds of retries.
    store = FlakyStore(SQLiteStore(tmp_path / "db.sqlite"), failures=failures)
    cache = make_cache(store, max_retries=2)
    last = {f"k{n}": n for n in range(10)}
    for key, value in last.items():
        cache.set(key, value)
    cache.flush(timeout=20)

    assert in_store(store, last) == last
    stats = cache.stats()
    assert stats.retried == failures
    assert (stats.dead_lettered, stats.dead_letters, stats.queue_depth) == (0, 0, 0)


def test_a_poison_row_is_dead_lettered_with_its_error_and_its_batch_is_flushed(
    redis_client: redis.Redis, tmp_path: Path, make_cache: Callable[..., WriteBehindCache]
) -> None:
    store = FlakyStore(SQLiteStore(tmp_path / "db.sqlite"), reject={"poison"})
    cache = make_cache(store)
    last = {f"k{n}": n for n in range(10)}
    for key, value in last.items():
        cache.set(key, value)
        if key == "k4":
            cache.set("poison", {"bad": True})
    cache.flush()

    assert in_store(store, last) == last and store.get("poison") is None
    [letter] = dead_letters(redis_client)
    assert letter[b"id"] == b"poison" and letter[b"payload"] == b'{"bad":true}'
    assert letter[b"error"] == b"ValueError: row 'poison' violates constraint data_check"
    stats = cache.stats()
    assert (stats.dead_lettered, stats.dead_letters, stats.queue_depth) == (1, 1, 0)


def test_an_undecodable_entry_is_dead_lettered_and_its_batch_is_flushed(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store)
    cache.set("a", 1)
    redis_client.xadd(STREAM, {"id": "b", "version": "1", "payload": b"\xff not json"})
    cache.set("c", 3)
    cache.flush()

    assert in_store(store, ["a", "b", "c"]) == {"a": 1, "c": 3}
    [letter] = dead_letters(redis_client)
    assert letter[b"payload"] == b"\xff not json"
    assert letter[b"error"].startswith(b"undecodable entry: SerializationError(")
    assert cache.stats().dead_lettered == 1


@pytest.mark.parametrize("batch_size", [2, 1])
def test_a_batch_of_only_refused_rows_does_not_stall_the_healthy_writes_behind_it(
    redis_client: redis.Redis,
    tmp_path: Path,
    make_cache: Callable[..., WriteBehindCache],
    batch_size: int,
) -> None:
    # A new flusher has written nothing yet: it cannot prove the store is up, so it reads
    # past the refused batch; "ok" is written, and that proves the refusals are poison.
    store = FlakyStore(SQLiteStore(tmp_path / "db.sqlite"), reject={"p1", "p2"})
    cache = make_cache(store, batch_size=batch_size)
    cache.set("p1", "bad")
    cache.set("p2", "bad")
    cache.set("ok", "fine")
    cache.flush(timeout=3)

    assert in_store(store, ["p1", "p2", "ok"]) == {"ok": "fine"}
    assert sorted(letter[b"id"] for letter in dead_letters(redis_client)) == [b"p1", b"p2"]
    stats = cache.stats()
    assert (stats.flushed, stats.dead_lettered, stats.queue_depth) == (1, 2, 0)


def test_a_refused_batch_is_dead_lettered_at_once_once_the_store_has_taken_a_write(
    redis_client: redis.Redis, tmp_path: Path, make_cache: Callable[..., WriteBehindCache]
) -> None:
    # The flusher remembers a row it committed; replaying it is a no-op the store accepts
    # while it is up, which tells poison from an outage without any other write queued.
    store = FlakyStore(SQLiteStore(tmp_path / "db.sqlite"), reject={"p1", "p2"})
    cache = make_cache(store, batch_size=2, max_retries=0)
    cache.set("ok", "fine")
    cache.flush()
    cache.set("p1", "bad")
    cache.set("p2", "bad")
    store.calls.clear()
    cache.flush(timeout=3)

    assert in_store(store, ["ok", "p1", "p2"]) == {"ok": "fine"}
    assert len(dead_letters(redis_client)) == 2
    # The batch, p1, p2, a probe, p1, p2, a probe: one attempt, no waiting for new writes.
    assert store.calls == [2, 1, 1, 1, 1, 1, 1]
    assert cache.stats().queue_depth == 0


@pytest.mark.parametrize("writes", [100, 250])
def test_a_hot_refused_row_written_batch_size_times_does_not_stall_the_writes_behind_it(
    redis_client: redis.Redis,
    tmp_path: Path,
    make_cache: Callable[..., WriteBehindCache],
    writes: int,
) -> None:
    # Coalescing makes the batch_size entries of one row a single row: the whole batch.
    store = FlakyStore(SQLiteStore(tmp_path / "db.sqlite"), reject={"hot"})
    cache = make_cache(store, batch_size=100)
    for n in range(writes):
        cache.set("hot", n)
    cache.set("ok", "fine")
    cache.flush(timeout=10)

    assert in_store(store, ["hot", "ok"]) == {"ok": "fine"}
    letters = dead_letters(redis_client)
    assert letters and {letter[b"id"] for letter in letters} == {b"hot"}
    assert letters[0][b"payload"] == str(writes - 1).encode()  # the row's latest write
    stats = cache.stats()
    assert (stats.queue_depth, stats.dead_letters) == (0, len(letters))
    assert cache.get("hot").data == writes - 1  # type: ignore[union-attr]
    assert redis_client.pttl("wb:data:hot") == -1  # refused: still dirty, kept


def test_a_refused_write_superseded_by_a_newer_queued_one_is_not_dead_lettered_too(
    redis_client: redis.Redis, tmp_path: Path, make_cache: Callable[..., WriteBehindCache]
) -> None:
    # Windows of two entries split the poison row's writes: the first window refuses
    # its older write while the newer one waits in the next window, which decides.
    store = FlakyStore(SQLiteStore(tmp_path / "db.sqlite"), reject={"poison"})
    cache = make_cache(store, read_limit=2)
    cache.set("ok", "fine")
    cache.flush()  # a committed row to probe with
    cache.set("poison", "older")
    cache.set("x", "fine")
    newest = cache.set("poison", "newest")
    cache.flush(timeout=5)

    assert in_store(store, ["x", "poison"]) == {"x": "fine"}
    [letter] = dead_letters(redis_client)
    assert letter[b"payload"] == b'"newest"'
    assert letter[b"version"] == str(newest.version).encode()
    assert cache.stats().queue_depth == 0


def test_refused_rows_stay_queued_until_the_store_is_seen_taking_a_write(
    redis_client: redis.Redis, tmp_path: Path, make_cache: Callable[..., WriteBehindCache]
) -> None:
    # Nothing proves the store is up: the refusals may be an outage, so nothing is dropped.
    store = FlakyStore(SQLiteStore(tmp_path / "db.sqlite"), reject={"p1", "p2"})
    cache = make_cache(store, batch_size=2)
    cache.set("p1", "bad")
    cache.set("p2", "bad")
    with pytest.raises(FlushTimeoutError):
        cache.flush(timeout=0.3)
    assert dead_letters(redis_client) == [] and cache.stats().queue_depth == 2

    cache.set("ok", "fine")
    cache.flush(timeout=3)
    assert store.get("ok") is not None and len(dead_letters(redis_client)) == 2


@pytest.mark.parametrize("committed_before", [False, True], ids=["new-flusher", "with-probe"])
def test_a_store_outage_never_dead_letters_healthy_rows(
    redis_client: redis.Redis,
    tmp_path: Path,
    make_cache: Callable[..., WriteBehindCache],
    committed_before: bool,
) -> None:
    store = FlakyStore(SQLiteStore(tmp_path / "db.sqlite"), reject={"poison"})
    cache = make_cache(store, batch_size=3, max_retries=0)
    if committed_before:  # the flusher then has a row to probe the store with
        cache.set("seen", 0)
        cache.flush()
    last = {f"k{n}": n for n in range(8)}
    store.down = True
    for key, value in last.items():
        cache.set(key, value)
        if key == "k2":
            cache.set("poison", "bad")
    store.call_ids.clear()
    with pytest.raises(FlushTimeoutError):
        cache.flush(timeout=0.5)

    assert ["k0"] in store.call_ids  # it wrote rows alone while the store was down...
    if committed_before:
        assert ["seen"] in store.call_ids  # ...probed it...
    else:
        assert ["k7"] in store.call_ids  # ...or tried the rows behind the refused ones
    assert dead_letters(redis_client) == [] and in_store(store, last) == {}
    store.down = False
    cache.flush(timeout=5)
    assert in_store(store, last) == last
    assert [letter[b"id"] for letter in dead_letters(redis_client)] == [b"poison"]
    assert cache.stats().queue_depth == 0


@pytest.mark.parametrize("rows", [("k0", "p1", "k1"), ("p1", "p2")], ids=["mixed", "all-refused"])
@pytest.mark.parametrize("failures", range(12))
def test_a_store_back_at_any_point_of_a_refused_batch_dead_letters_only_the_refused_rows(
    redis_client: redis.Redis,
    tmp_path: Path,
    make_cache: Callable[..., WriteBehindCache],
    failures: int,
    rows: tuple[str, ...],
) -> None:
    # The outage ends at each store call in turn: during the batch's retries, the first
    # row-by-row pass, a probe, the second pass, a second probe.
    refused = {"p1", "p2"}
    store = FlakyStore(SQLiteStore(tmp_path / "db.sqlite"), reject=refused)
    cache = make_cache(store, max_retries=1)
    cache.set("seen", 0)
    cache.flush()  # a committed row to probe with
    store.failures = failures
    for key in rows:
        cache.set(key, key)
    cache.flush(timeout=10)

    healthy = [key for key in rows if key not in refused]
    assert in_store(store, rows) == {key: key for key in healthy}
    letters = sorted(letter[b"id"].decode() for letter in dead_letters(redis_client))
    assert letters == sorted(refused & set(rows))
    assert cache.stats().queue_depth == 0


@pytest.mark.slow
def test_stop_with_the_store_down_raises_flush_timeout_and_keeps_every_entry_pending(
    redis_client: redis.Redis, tmp_path: Path, make_cache: Callable[..., WriteBehindCache]
) -> None:
    sqlite = SQLiteStore(tmp_path / "db.sqlite")
    down = FlakyStore(sqlite)
    down.down = True
    cache = make_cache(down)
    cache.start()
    last = {f"k{n}": n for n in range(20)}
    for key, value in last.items():
        cache.set(key, value)

    outcome: list[BaseException | None] = []

    def stop() -> None:
        try:
            cache.stop(timeout=1)
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    stopper = threading.Thread(target=stop)
    stopper.start()
    stopper.join(30)  # a liveness bound, not a measurement: stop() must return at all
    assert not stopper.is_alive()
    assert isinstance(outcome[0], FlushTimeoutError)
    assert redis_client.xlen(STREAM) == 20 and in_store(sqlite, last) == {}

    # The next flusher claims the stopped one's pending entries and writes them all.
    make_cache(FlakyStore(sqlite), claim_idle=0.2).flush(timeout=20)
    assert in_store(sqlite, last) == last
    assert redis_client.xlen(STREAM) == 0
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0


# --- crashes and concurrency -----------------------------------------------------------


@pytest.mark.slow
def test_every_last_write_reaches_sqlite_after_a_flusher_is_killed_mid_batch(
    redis_client: redis.Redis,
    redis_url: str,
    tmp_path: Path,
    make_cache: Callable[..., WriteBehindCache],
) -> None:
    sqlite = SQLiteStore(tmp_path / "db.sqlite")
    writer = make_cache(sqlite)
    last: dict[str, int] = {}
    for i in range(500):
        writer.set(f"k{i % 50}", i)
        last[f"k{i % 50}"] = i

    marker = tmp_path / "in-upsert"
    worker = subprocess.Popen(
        [sys.executable, str(WORKER), redis_url, str(tmp_path / "db.sqlite"), str(marker), "wb"],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marker.exists(), worker.stderr.read() if worker.poll() is not None else "no marker"
    finally:
        os.kill(worker.pid, signal.SIGKILL)
        worker.wait()

    # Killed mid-batch: it read all 500 writes (50 rows), committed its first batch of
    # 20 rows and acknowledged their 200 entries, then committed half of its second.
    assert len(in_store(sqlite, last)) == 30
    assert redis_client.xpending(STREAM, GROUP)["pending"] == redis_client.xlen(STREAM) == 300
    for i in range(500, 700):  # writers carry on
        writer.set(f"k{i % 50}", i)
        last[f"k{i % 50}"] = i

    make_cache(sqlite, claim_idle=0.3).flush(timeout=30)
    assert in_store(sqlite, last) == last
    assert redis_client.xlen(STREAM) == 0
    assert redis_client.xpending(STREAM, GROUP)["pending"] == 0


@pytest.mark.slow
def test_concurrent_writers_and_flushers_leave_each_rows_newest_write_in_the_store(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    flushers = [make_cache(store, batch_size=20) for _ in range(2)]
    for flusher in flushers:
        flusher.start()
    newest: dict[str, Row] = {}
    lock = threading.Lock()

    def write(n: int) -> None:
        cache = make_cache(store)
        for i in range(300):
            row = cache.set(f"k{i % 10}", [n, i])
            with lock:
                if row.id not in newest or row.version > newest[row.id].version:
                    newest[row.id] = row

    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    for flusher in flushers:
        flusher.stop(timeout=20)

    assert {key: store.get(key) for key in newest} == newest
    assert sum(f.stats().flushed for f in flushers) >= 1200  # a claimed batch counts twice


@pytest.mark.slow
def test_a_flush_slower_than_half_of_claim_idle_keeps_its_window_from_being_claimed(
    store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    # Seven batches of 0.4 s outlast claim_idle (2 s). The flush stops at half of it and
    # reads the rest of its window again, which restarts the entries' idle time: the
    # other flusher, claiming entries idle for 2 s, never takes rows it still has to
    # write, and each row is written once.
    store.delay = 0.4
    first = make_cache(store, batch_size=2, claim_idle=2)
    other = make_cache(store, batch_size=2, claim_idle=2)
    keys = [f"k{n}" for n in range(14)]
    for key in keys:
        first.set(key, key)
    flushing = threading.Thread(target=first.flush, kwargs={"timeout": 30})
    flushing.start()
    deadline = time.monotonic() + 30
    while not store.calls and time.monotonic() < deadline:  # first has read the queue
        time.sleep(0.01)
    other.flush(timeout=30)  # waits for first's entries, claiming those idle for 2 s
    flushing.join(30)

    assert not flushing.is_alive()
    assert sorted(row_id for ids in store.call_ids for row_id in ids) == sorted(keys)
    assert (first.stats().flushed, other.stats().flushed) == (14, 0)


# --- Redis down, bad input, the command ------------------------------------------------


def test_set_and_get_fail_loudly_when_redis_is_down(
    private_redis: RedisServer, store: FlakyStore
) -> None:
    cache = WriteBehindCache(redis.Redis.from_url(private_redis.url), store, prefix="wb")
    cache.set("a", 1)
    private_redis.stop()

    with pytest.raises(CacheUnavailableError):
        cache.set("a", 2)
    with pytest.raises(CacheUnavailableError):
        cache.get("a")


def test_unencodable_data_is_refused_before_anything_is_queued(
    redis_client: redis.Redis, store: FlakyStore, make_cache: Callable[..., WriteBehindCache]
) -> None:
    cache = make_cache(store)
    with pytest.raises(SerializationError):
        cache.set("a", {1, 2})
    assert redis_client.xlen(STREAM) == 0 and redis_client.get("wb:data:a") is None


@pytest.mark.parametrize(
    "options",
    [
        {"prefix": ""},
        {"ttl": 0},
        {"ttl": -1},
        {"stream": ""},
        {"group": ""},
        {"batch_size": 0},
        {"batch_size": True},
        {"batch_size": 1.5},
        {"read_limit": 0},
        {"read_limit": True},
        {"read_limit": 100_001},
        {"flush_interval": 0},
        {"claim_idle": float("nan")},
        {"max_retries": -1},
        {"backoff": 0},
        {"serializer": "xml"},
        {"serializer": "pickle"},  # without hmac_key
    ],
)
def test_bad_options_raise_configuration_error(
    redis_client: redis.Redis, store: FlakyStore, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        WriteBehindCache(redis_client, store, **options)


def test_bad_arguments_raise_configuration_error(
    redis_url: str, redis_client: redis.Redis, store: FlakyStore
) -> None:
    with pytest.raises(ConfigurationError):
        WriteBehindCache(redis.Redis.from_url(redis_url, decode_responses=True), store)
    with pytest.raises(ConfigurationError):
        WriteBehindCache(redis_client, object())  # type: ignore[arg-type]
    cache = WriteBehindCache(redis_client, store)
    with pytest.raises(ConfigurationError):
        cache.set(5, "x")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        cache.stop(timeout=0)
    sqlite = str(store.inner.path)
    assert main(["--redis-url", redis_url, "--sqlite", sqlite, "--batch-size", "0"]) == 2


@pytest.mark.slow
def test_the_flusher_command_flushes_the_queue_and_drains_it_on_sigterm(
    redis_client: redis.Redis, redis_url: str, tmp_path: Path
) -> None:
    sqlite = SQLiteStore(tmp_path / "db.sqlite")
    writer = WriteBehindCache(redis_client, sqlite, prefix="wb")
    last = {f"k{n}": n for n in range(20)}
    for key, value in last.items():
        writer.set(key, value)

    # Run from a directory outside the checkout: the module must be importable installed.
    command = [sys.executable, "-m", "templategen.reference.write_behind"]
    options = ["--redis-url", redis_url, "--sqlite", str(tmp_path / "db.sqlite")]
    flusher = subprocess.Popen(
        [*command, *options, "--flush-interval", "60"], cwd=tmp_path, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 30
        while redis_client.xlen(STREAM) and flusher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert in_store(sqlite, last) == last  # its first flush, at start
        for n in range(20):  # the next flush is a minute away: only the drain writes these
            writer.set(f"k{n}", n + 100)
            last[f"k{n}"] = n + 100
        flusher.send_signal(signal.SIGTERM)
        _, stderr = flusher.communicate(timeout=30)
    finally:
        if flusher.poll() is None:
            flusher.kill()
    assert flusher.returncode == 0, stderr.decode()
    assert in_store(sqlite, last) == last
    assert redis_client.xlen(STREAM) == 0
