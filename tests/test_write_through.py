"""WriteThroughCache: the database first, then a versioned compare-and-set into Redis.

The store is a real SQLiteStore behind ``HookedStore``, a double standing in for the
user's database that can pause or slow a call at the exact point a race needs. Redis is
always a real server; faults are a stopped server, an OOM limit, or an ACL change.
"""

from __future__ import annotations

import json
import logging
import pickle
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis
from templategen.reference._lease import new_lease_token
from templategen.reference.errors import (
    CacheUnavailableError,
    ConfigurationError,
    SerializationError,
    StoreError,
)
from templategen.reference.store import Row, SQLiteStore
from templategen.reference.write_through import WriteThroughCache

from templategen.redis_server import RedisServer

TTL = 60.0
TTL_MS = 60_000
LOGGER = "templategen.reference"
WAIT = 10.0  # seconds a test waits for another thread before it counts as hung


class HookedStore:
    """An SQLiteStore with hooks around its calls: the user's database, slowed or paused."""

    def __init__(self, path: Path) -> None:
        self.inner = SQLiteStore(path)
        self.gets = 0
        self.fail_next_upsert: Exception | None = None
        self.after_get: Callable[[Row | None], None] | None = None
        self.after_upsert: Callable[[Row], None] | None = None
        self.before_delete: Callable[[], None] | None = None
        self.after_delete: Callable[[int | None], None] | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()

    def get(self, id: str) -> Row | None:
        with self._lock:
            self.gets += 1
        row = self.inner.get(id)
        if self.after_get is not None:
            self.after_get(row)
        return row

    def upsert(self, id: str, data: Any) -> Row:
        failure, self.fail_next_upsert = self.fail_next_upsert, None
        if failure is not None:
            raise failure
        # SQLite already serializes writers, but by polling with growing sleeps, which
        # spreads concurrent commits far apart; a lock makes them land back to back, so
        # the random pauses below reorder the cache updates far more often.
        with self._write_lock:
            row = self.inner.upsert(id, data)  # committed here
        if self.after_upsert is not None:
            self.after_upsert(row)
        return row

    def upsert_many(self, rows: Iterable[Row]) -> int:
        return self.inner.upsert_many(rows)

    def delete(self, id: str) -> int | None:
        if self.before_delete is not None:
            self.before_delete()
        version = self.inner.delete(id)  # committed here
        if self.after_delete is not None:
            self.after_delete(version)
        return version


class Pause:
    """A store hook that holds the thread calling it until released: a race's window.

    ``reached`` is set when a thread arrives; ``only`` picks the calls that pause.
    """

    def __init__(self, only: Callable[[Any], bool] = lambda _: True) -> None:
        self.reached = threading.Event()
        self._released = threading.Event()
        self._only = only

    def __call__(self, arg: Any) -> None:
        if self._only(arg):
            self.reached.set()
            assert self._released.wait(WAIT)

    def release(self) -> None:
        self._released.set()


TOMBSTONE = object()  # what cached() reports for the empty payload of a tombstone


def cached(client: redis.Redis, key: str) -> tuple[int, Any] | None:
    """Decode a JSON entry by the documented wire format, independently of the module."""
    raw = client.get(key)
    if raw is None:
        return None
    head, sep, payload = raw.partition(b":")
    assert sep and head.isdigit(), f"not a '<version>:<payload>' entry: {raw!r}"
    return int(head), json.loads(payload) if payload else TOMBSTONE


@pytest.fixture
def store(tmp_path: Path) -> HookedStore:
    return HookedStore(tmp_path / "db.sqlite")


@pytest.fixture
def cache(redis_client: redis.Redis, store: HookedStore) -> WriteThroughCache:
    return WriteThroughCache(redis_client, store, prefix="users", ttl=TTL)


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=4) as executor:
        yield executor


@pytest.fixture
def own_client(private_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url, socket_timeout=2, socket_connect_timeout=2)
    yield client
    client.close()


# --- the write path and the wire format ---------------------------------------------


def test_set_commits_to_the_store_then_caches_the_row_under_its_version(
    cache: WriteThroughCache, store: HookedStore, redis_client: redis.Redis
) -> None:
    assert cache.set("ada", {"name": "Ada"}) == Row("ada", {"name": "Ada"}, 1)
    assert store.inner.get("ada") == Row("ada", {"name": "Ada"}, 1)
    assert redis_client.get("users:ada") == b'1:{"name":"Ada"}'
    assert 0 < redis_client.pttl("users:ada") <= TTL_MS

    assert cache.set("ada", {"name": "Ada L."}).version == 2
    assert redis_client.get("users:ada") == b'2:{"name":"Ada L."}'


def test_msgpack_entries_carry_the_same_decimal_version_header(
    redis_client: redis.Redis, store: HookedStore
) -> None:
    cache = WriteThroughCache(redis_client, store, prefix="users", ttl=TTL, serializer="msgpack")
    cache.set("ada", {"name": "Ada"})
    assert redis_client.get("users:ada") == b"1:" + msgpack.packb({"name": "Ada"})
    assert cache.get("ada") == Row("ada", {"name": "Ada"}, 1)


def test_a_value_the_serializer_cannot_encode_is_refused_before_the_database_write(
    cache: WriteThroughCache, store: HookedStore
) -> None:
    with pytest.raises(SerializationError):
        cache.set("ada", {"score": float("nan")})  # JSON in other languages rejects NaN
    assert store.inner.get("ada") is None


def test_a_failing_store_raises_store_error_and_leaves_the_cache_as_it_was(
    cache: WriteThroughCache, store: HookedStore, redis_client: redis.Redis
) -> None:
    cache.set("ada", {"n": 1})
    disk_full = OSError("disk full")
    store.fail_next_upsert = disk_full
    with pytest.raises(StoreError) as raised:
        cache.set("ada", {"n": 2})
    assert raised.value.__cause__ is disk_full
    assert cached(redis_client, "users:ada") == (1, {"n": 1})  # matches the unchanged row


# --- the read path ------------------------------------------------------------------


def test_a_hit_is_one_command_and_never_touches_the_store(
    own_client: redis.Redis, store: HookedStore
) -> None:
    # A server of this test's own: its command counts are ours alone.
    redis_client = own_client
    cache = WriteThroughCache(redis_client, store, prefix="users", ttl=TTL)
    cache.set("ada", {"name": "Ada"})
    cache.get("ada")
    store.gets = 0
    redis_client.config_resetstat()
    assert cache.get("ada") == Row("ada", {"name": "Ada"}, 1)
    calls = {name: stat["calls"] for name, stat in redis_client.info("commandstats").items()}
    # The read-or-lease as one SET ... NX ... GET, which on a hit writes nothing; CONFIG
    # RESETSTAT is this test's own.
    assert calls == {"cmdstat_set": 1, "cmdstat_config|resetstat": 1}
    assert redis_client.get("users:ada") == b'1:{"name":"Ada"}'
    assert store.gets == 0


def test_a_hit_is_served_from_the_cache_while_redis_refuses_writes(
    own_client: redis.Redis, store: HookedStore
) -> None:
    cache = WriteThroughCache(own_client, store, prefix="users", ttl=TTL)
    cache.set("ada", {"name": "Ada"})
    store.inner.upsert("bob", {"name": "Bob"})
    store.gets = 0
    # At maxmemory with noeviction Redis refuses SET, even SET ... NX ... GET of a key
    # that exists: the read falls back to the script, which on a hit only reads.
    own_client.config_set("maxmemory", 1)
    try:
        assert cache.get("ada") == Row("ada", {"name": "Ada"}, 1)
        assert store.gets == 0
        # A miss cannot take its lease: the store answers, and nothing is cached.
        assert cache.get("bob") == Row("bob", {"name": "Bob"}, 1)
        assert store.gets == 1
        assert own_client.exists("users:bob") == 0
    finally:
        own_client.config_set("maxmemory", 0)


def test_a_miss_reads_the_store_once_and_fills_the_cache(
    cache: WriteThroughCache, store: HookedStore, redis_client: redis.Redis
) -> None:
    store.inner.upsert("ada", {"name": "Ada"})  # written by someone not using the cache
    assert cache.get("ada") == Row("ada", {"name": "Ada"}, 1)
    assert cached(redis_client, "users:ada") == (1, {"name": "Ada"})
    assert 0 < redis_client.pttl("users:ada") <= TTL_MS
    assert cache.get("ada") == Row("ada", {"name": "Ada"}, 1)
    assert store.gets == 1


def test_a_missing_row_is_none_and_leaves_no_key_by_default(
    cache: WriteThroughCache, store: HookedStore, redis_client: redis.Redis
) -> None:
    assert cache.get("nobody") is None
    assert redis_client.exists("users:nobody") == 0  # the lease was released, not left
    assert cache.get("nobody") is None
    assert store.gets == 2


def test_negative_caching_remembers_a_missing_row_until_a_set_replaces_it(
    redis_client: redis.Redis, store: HookedStore
) -> None:
    cache = WriteThroughCache(redis_client, store, prefix="users", ttl=TTL, negative_ttl=5)
    assert cache.get("ada") is None
    assert redis_client.get("users:ada") == b"0:"
    assert 0 < redis_client.pttl("users:ada") <= 5000
    assert cache.get("ada") is None
    assert store.gets == 1

    cache.set("ada", {"name": "Ada"})
    assert cache.get("ada") == Row("ada", {"name": "Ada"}, 1)


@pytest.mark.parametrize("garbage", [b"not an entry", b"1:{not json", b"x:{}"])
def test_an_undecodable_entry_is_deleted_and_the_row_served_from_the_store(
    cache: WriteThroughCache, store: HookedStore, redis_client: redis.Redis, garbage: bytes
) -> None:
    store.inner.upsert("ada", {"name": "Ada"})
    redis_client.set("users:ada", garbage)
    assert cache.get("ada") == Row("ada", {"name": "Ada"}, 1)
    assert redis_client.exists("users:ada") == 0
    cache.get("ada")
    assert cached(redis_client, "users:ada") == (1, {"name": "Ada"})


def test_a_forged_signed_pickle_is_not_served_and_is_logged_as_a_warning(
    redis_client: redis.Redis, store: HookedStore, caplog: pytest.LogCaptureFixture
) -> None:
    cache = WriteThroughCache(
        redis_client, store, prefix="users", ttl=TTL, serializer="pickle", hmac_key=b"k" * 32
    )
    store.inner.upsert("ada", {"name": "Ada"})
    forged = b"1:tgp1" + b"\0" * 32 + pickle.dumps({"name": "Mallory"})
    redis_client.set("users:ada", forged)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.get("ada") == Row("ada", {"name": "Ada"}, 1)
    assert "users:ada" in caplog.text
    assert redis_client.get("users:ada") != forged


# --- version compare-and-set --------------------------------------------------------


@pytest.mark.parametrize(
    ("stored_before", "cached_version"),
    [
        (8, 10),  # the set writes 9; as strings "9" > "10", as numbers 9 < 10
        (2**53 - 1, 2**53 + 1),  # the set writes 2**53, which a Lua double cannot tell apart
    ],
)
def test_a_set_never_replaces_a_newer_cached_version(
    cache: WriteThroughCache,
    store: HookedStore,
    redis_client: redis.Redis,
    stored_before: int,
    cached_version: int,
) -> None:
    store.inner.upsert_many([Row("ada", {"n": "old"}, stored_before)])
    newer = f'{cached_version}:{{"n":"newer"}}'.encode()
    redis_client.set("users:ada", newer)
    assert cache.set("ada", {"n": "older"}).version == stored_before + 1
    assert redis_client.get("users:ada") == newer


@pytest.mark.parametrize("occupant", [b"not an entry", b"0:", new_lease_token()])
def test_a_set_replaces_a_tombstone_a_lease_or_undecodable_bytes(
    cache: WriteThroughCache, redis_client: redis.Redis, occupant: bytes
) -> None:
    redis_client.set("users:ada", occupant)
    cache.set("ada", {"n": 1})
    assert cached(redis_client, "users:ada") == (1, {"n": 1})


def test_a_writer_delayed_after_its_commit_cannot_overwrite_a_newer_write(
    cache: WriteThroughCache,
    store: HookedStore,
    redis_client: redis.Redis,
    pool: ThreadPoolExecutor,
) -> None:
    first_write = store.after_upsert = Pause(only=lambda row: row.version == 1)
    slow = pool.submit(lambda: cache.set("ada", {"n": 1}))
    assert first_write.reached.wait(WAIT)
    cache.set("ada", {"n": 2})
    first_write.release()
    assert slow.result(WAIT).version == 1
    assert cached(redis_client, "users:ada") == (2, {"n": 2})
    assert cache.get("ada") == Row("ada", {"n": 2}, 2)


def test_a_reader_that_loaded_the_old_row_cannot_cache_it_after_a_set(
    cache: WriteThroughCache,
    store: HookedStore,
    redis_client: redis.Redis,
    pool: ThreadPoolExecutor,
) -> None:
    store.inner.upsert("ada", {"n": 1})
    loaded = store.after_get = Pause()
    reader = pool.submit(lambda: cache.get("ada"))
    assert loaded.reached.wait(WAIT)  # the reader holds the lease and the version-1 row
    store.after_get = None
    cache.set("ada", {"n": 2})
    loaded.release()
    assert reader.result(WAIT) == Row("ada", {"n": 1}, 1)
    assert cached(redis_client, "users:ada") == (2, {"n": 2})


# --- delete ---------------------------------------------------------------------------


def test_delete_removes_the_row_then_caches_a_tombstone_at_its_version(
    cache: WriteThroughCache, store: HookedStore, redis_client: redis.Redis
) -> None:
    cache.set("ada", {"n": 1})
    assert cache.delete("ada") is True
    assert store.inner.get("ada") is None
    assert redis_client.get("users:ada") == b"2:"  # the deletion's version, no payload
    assert 0 < redis_client.pttl("users:ada") <= TTL_MS
    store.gets = 0
    assert cache.get("ada") is None
    assert store.gets == 0  # the tombstone is the cached absence


def test_delete_of_a_missing_row_changes_nothing_in_the_store_or_the_cache(
    cache: WriteThroughCache, store: HookedStore, redis_client: redis.Redis
) -> None:
    cache.set("ada", {"n": 1})
    cache.delete("ada")
    assert cache.delete("ada") is False
    assert cache.delete("nobody") is False
    assert redis_client.get("users:ada") == b"2:"  # the first delete's tombstone stays
    assert redis_client.exists("users:nobody") == 0
    assert cache.set("ada", {"n": 2}).version == 3


def test_a_deleted_row_written_again_continues_its_versions_over_the_tombstone(
    cache: WriteThroughCache, store: HookedStore, redis_client: redis.Redis
) -> None:
    cache.set("ada", {"n": 1})
    cache.delete("ada")
    assert cache.set("ada", {"n": "again"}) == Row("ada", {"n": "again"}, 3)
    assert cached(redis_client, "users:ada") == (3, {"n": "again"})
    store.gets = 0
    assert cache.get("ada") == Row("ada", {"n": "again"}, 3)
    assert store.gets == 0


def test_a_set_delayed_past_a_delete_cannot_cache_the_deleted_row(
    cache: WriteThroughCache,
    store: HookedStore,
    redis_client: redis.Redis,
    pool: ThreadPoolExecutor,
) -> None:
    committed = store.after_upsert = Pause()
    slow = pool.submit(lambda: cache.set("ada", {"n": 1}))
    assert committed.reached.wait(WAIT)  # version 1 is in the database, not yet in Redis
    assert cache.delete("ada") is True  # the tombstone: version 2
    committed.release()
    assert slow.result(WAIT).version == 1
    assert redis_client.get("users:ada") == b"2:"  # the late write lost the compare-and-set
    assert cache.get("ada") is None
    assert store.inner.get("ada") is None


def test_a_delete_delayed_past_a_newer_set_does_not_hide_the_new_row(
    cache: WriteThroughCache,
    store: HookedStore,
    redis_client: redis.Redis,
    pool: ThreadPoolExecutor,
) -> None:
    cache.set("ada", {"n": 1})
    deleted = store.after_delete = Pause()
    slow = pool.submit(lambda: cache.delete("ada"))
    assert deleted.reached.wait(WAIT)  # the row is a version-2 tombstone; Redis still holds 1
    assert cache.set("ada", {"n": 3}).version == 3
    deleted.release()
    assert slow.result(WAIT) is True
    assert cached(redis_client, "users:ada") == (3, {"n": 3})
    assert cache.get("ada") == Row("ada", {"n": 3}, 3)


def test_a_reader_arriving_while_the_row_is_deleted_cannot_cache_it_again(
    cache: WriteThroughCache, store: HookedStore, redis_client: redis.Redis
) -> None:
    store.inner.upsert("ada", {"n": 1})
    # A reader that misses just before the database delete loads the row and fills the
    # cache; had the tombstone been written before the row was deleted, that fill would
    # land after it and outlive the row.
    store.before_delete = lambda: cache.get("ada")
    assert cache.delete("ada") is True
    assert redis_client.get("users:ada") == b"2:"
    assert cache.get("ada") is None


def test_delete_revokes_the_lease_of_a_reader_blocked_in_store_get(
    cache: WriteThroughCache,
    store: HookedStore,
    redis_client: redis.Redis,
    pool: ThreadPoolExecutor,
) -> None:
    store.inner.upsert("ada", {"n": 1})
    loaded = store.after_get = Pause()
    reader = pool.submit(lambda: cache.get("ada"))
    assert loaded.reached.wait(WAIT)  # the reader has read the row and holds the lease
    store.after_get = None
    assert cache.delete("ada") is True
    loaded.release()
    assert reader.result(WAIT) == Row("ada", {"n": 1}, 1)  # its caller gets what it read
    assert redis_client.get("users:ada") == b"2:"  # but its fill was dropped
    assert cache.get("ada") is None


# --- concurrency ----------------------------------------------------------------------


def jittery_store(path: Path, seed: int) -> HookedStore:
    """Sleeps a random moment after each commit and read, to widen every race window."""
    store = HookedStore(path)
    rng, lock = random.Random(seed), threading.Lock()

    def pause(_: object) -> None:
        with lock:
            delay = rng.uniform(0, 0.01)
        time.sleep(delay)

    store.after_upsert = pause
    store.after_get = pause
    return store


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(24))
def test_concurrent_writers_leave_the_cache_equal_to_the_database(
    redis_client: redis.Redis, tmp_path: Path, seed: int
) -> None:
    store = jittery_store(tmp_path / "db.sqlite", seed)
    cache = WriteThroughCache(redis_client, store, prefix="race", ttl=TTL)
    writers = 8

    def write(start: threading.Barrier, n: int, round_: int) -> None:
        start.wait(WAIT)
        cache.set("hot", {"writer": n, "round": round_})

    def read(start: threading.Barrier) -> None:
        start.wait(WAIT)
        for _ in range(4):
            cache.get("hot")

    with ThreadPoolExecutor(max_workers=writers + 1) as workers:
        for round_ in range(4):
            # All writers commit at once, then each sleeps a random moment before its
            # cache update, so the last commit is often not the last cache update.
            start = threading.Barrier(writers + 1)
            jobs = [workers.submit(write, start, n, round_) for n in range(writers)]
            jobs.append(workers.submit(read, start))
            for job in jobs:
                job.result(WAIT)
            final = store.inner.get("hot")
            assert final is not None and final.version == writers * (round_ + 1)
            assert cached(redis_client, "race:hot") == (final.version, final.data)
            assert cache.get("hot") == final


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(12))
def test_concurrent_writers_and_deleters_leave_the_cache_equal_to_the_database(
    redis_client: redis.Redis, tmp_path: Path, seed: int
) -> None:
    store = jittery_store(tmp_path / "db.sqlite", seed)
    store.after_delete = store.after_upsert  # a delete pauses before its tombstone too
    cache = WriteThroughCache(redis_client, store, prefix="race", ttl=TTL)
    callers = 8

    def write_or_delete(start: threading.Barrier, n: int, round_: int) -> None:
        start.wait(WAIT)
        if (n + round_) % 3 == 0:
            cache.delete("hot")
        else:
            cache.set("hot", {"writer": n, "round": round_})

    with ThreadPoolExecutor(max_workers=callers) as workers:
        for round_ in range(6):
            start = threading.Barrier(callers)
            jobs = [workers.submit(write_or_delete, start, n, round_) for n in range(callers)]
            for job in jobs:
                job.result(WAIT)
            final = store.inner.get("hot")
            entry = cached(redis_client, "race:hot")
            if final is None:
                assert entry is not None and entry[1] is TOMBSTONE
            else:
                assert entry == (final.version, final.data)
            assert cache.get("hot") == final


@pytest.mark.slow
def test_a_get_after_a_set_never_returns_an_older_version_than_seen(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    store = jittery_store(tmp_path / "db.sqlite", seed=7)
    cache = WriteThroughCache(redis_client, store, prefix="ryw", ttl=TTL)
    stop = threading.Event()

    def other_writer(n: int) -> None:
        while not stop.is_set():
            cache.set("hot", {"other": n})

    def other_reader() -> None:
        # The pause keeps a loop of cache hits from hogging the GIL on a busy machine.
        while not stop.wait(0.001):
            cache.get("hot")

    with ThreadPoolExecutor(max_workers=6) as workers:
        jobs = [workers.submit(other_writer, n) for n in range(4)]
        jobs += [workers.submit(other_reader) for _ in range(2)]
        try:
            seen = 0
            for i in range(150):
                written = cache.set("hot", {"me": i})
                got = cache.get("hot")
                assert got is not None
                assert got.version >= max(written.version, seen)
                seen = got.version
        finally:
            stop.set()
        for job in jobs:
            job.result(WAIT)


# --- Redis failing after the database commit ----------------------------------------


def test_a_refused_cache_update_after_the_commit_deletes_the_key_and_get_reloads(
    own_client: redis.Redis, store: HookedStore
) -> None:
    cache = WriteThroughCache(own_client, store, prefix="users", ttl=TTL)
    cache.set("ada", {"n": 1})
    # At maxmemory with noeviction Redis refuses the script's SET but still allows DEL.
    store.after_upsert = lambda row: own_client.config_set("maxmemory", 1)
    try:
        assert cache.set("ada", {"n": 2}) == Row("ada", {"n": 2}, 2)
        assert own_client.exists("users:ada") == 0  # the version-1 entry is gone
    finally:
        own_client.config_set("maxmemory", 0)
    assert cache.get("ada") == Row("ada", {"n": 2}, 2)
    assert cached(own_client, "users:ada") == (2, {"n": 2})


def test_a_refused_tombstone_after_the_delete_deletes_the_key_and_get_reads_the_store(
    own_client: redis.Redis, store: HookedStore
) -> None:
    cache = WriteThroughCache(own_client, store, prefix="users", ttl=TTL)
    cache.set("ada", {"n": 1})
    store.after_delete = lambda version: own_client.config_set("maxmemory", 1)
    try:
        assert cache.delete("ada") is True
        assert own_client.exists("users:ada") == 0  # the deleted row's entry is gone
    finally:
        own_client.config_set("maxmemory", 0)
    assert cache.get("ada") is None
    assert store.gets == 1


def test_when_update_and_delete_both_fail_a_warning_names_the_key_and_its_ttl_bounds_it(
    own_client: redis.Redis,
    private_redis: RedisServer,
    store: HookedStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    own_client.execute_command(
        "ACL", "SETUSER", "admin", "on", ">s3cret-admin", "~*", "&*", "+@all"
    )
    admin = redis.Redis.from_url(private_redis.url, username="admin", password="s3cret-admin")
    cache = WriteThroughCache(own_client, store, prefix="users", ttl=TTL)
    cache.set("ada", {"n": 1})
    # The cache's user loses every permission between the commit and the cache update.
    store.after_upsert = lambda row: admin.execute_command("ACL", "SETUSER", "default", "-@all")
    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert cache.set("ada", {"n": 2}) == Row("ada", {"n": 2}, 2)
        assert any(
            r.levelno == logging.WARNING and "users:ada" in r.getMessage() for r in caplog.records
        )
        assert store.inner.get("ada") == Row("ada", {"n": 2}, 2)
        assert cached(admin, "users:ada") == (1, {"n": 1})  # stale, but only until the TTL
        assert 0 < admin.pttl("users:ada") <= TTL_MS
    finally:
        admin.execute_command("ACL", "SETUSER", "default", "+@all")
        admin.close()


def test_redis_stopped_between_commit_and_cache_update_does_not_fail_the_set(
    own_client: redis.Redis,
    private_redis: RedisServer,
    store: HookedStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = WriteThroughCache(own_client, store, prefix="users", ttl=TTL)
    cache.set("ada", {"n": 1})
    store.after_upsert = lambda row: private_redis.stop()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.set("ada", {"n": 2}) == Row("ada", {"n": 2}, 2)
    assert "users:ada" in caplog.text
    assert store.inner.get("ada") == Row("ada", {"n": 2}, 2)
    private_redis.start()
    assert cache.get("ada") == Row("ada", {"n": 2}, 2)


def test_with_fail_open_false_a_set_reports_the_cache_failure_after_committing(
    own_client: redis.Redis, private_redis: RedisServer, store: HookedStore
) -> None:
    cache = WriteThroughCache(own_client, store, prefix="users", ttl=TTL, fail_open=False)
    store.after_upsert = lambda row: private_redis.stop()
    with pytest.raises(CacheUnavailableError, match="committed at version 1"):
        cache.set("ada", {"n": 1})
    assert store.inner.get("ada") == Row("ada", {"n": 1}, 1)


def test_get_reads_the_store_while_redis_is_down_unless_fail_open_is_false(
    own_client: redis.Redis, private_redis: RedisServer, store: HookedStore
) -> None:
    store.inner.upsert("ada", {"n": 1})
    private_redis.stop()
    tolerant = WriteThroughCache(own_client, store, prefix="users", ttl=TTL)
    assert tolerant.get("ada") == Row("ada", {"n": 1}, 1)
    strict = WriteThroughCache(own_client, store, prefix="users", ttl=TTL, fail_open=False)
    with pytest.raises(CacheUnavailableError):
        strict.get("ada")


def test_delete_with_redis_down_deletes_the_row_and_warns_naming_the_key(
    own_client: redis.Redis,
    private_redis: RedisServer,
    store: HookedStore,
    caplog: pytest.LogCaptureFixture,
) -> None:
    cache = WriteThroughCache(own_client, store, prefix="users", ttl=TTL)
    cache.set("ada", {"n": 1})
    private_redis.stop()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert cache.delete("ada") is True
    assert "users:ada" in caplog.text
    assert store.inner.get("ada") is None

    store.inner.upsert("bob", {"n": 1})
    strict = WriteThroughCache(own_client, store, prefix="users", ttl=TTL, fail_open=False)
    with pytest.raises(CacheUnavailableError, match="users:bob"):
        strict.delete("bob")
    assert store.inner.get("bob") is None


# --- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"prefix": ""}, "prefix"),
        ({"ttl": 0}, "ttl"),
        ({"ttl": -1}, "ttl"),
        ({"ttl": True}, "ttl"),
        ({"negative_ttl": 0}, "negative_ttl"),
        ({"lease_ttl": float("inf")}, "lease_ttl"),
        ({"store": object()}, "Store protocol"),
        ({"serializer": "yaml"}, "json, msgpack, pickle"),
        ({"serializer": "pickle"}, "hmac_key"),
        ({"fail_open": "no"}, "fail_open"),
    ],
)
def test_bad_configuration_is_refused_saying_what_is_allowed(
    redis_client: redis.Redis, store: HookedStore, changes: dict[str, Any], message: str
) -> None:
    options: dict[str, Any] = {"store": store, "prefix": "users", "ttl": TTL, **changes}
    with pytest.raises(ConfigurationError, match=message):
        WriteThroughCache(redis_client, **options)


def test_a_client_that_decodes_responses_is_refused(redis_url: str, store: HookedStore) -> None:
    with pytest.raises(ConfigurationError, match="decode_responses"):
        WriteThroughCache(
            redis.Redis.from_url(redis_url, decode_responses=True), store, prefix="u", ttl=TTL
        )


def test_an_id_that_is_not_a_string_is_refused(cache: WriteThroughCache) -> None:
    with pytest.raises(ConfigurationError, match="id"):
        cache.get(42)  # type: ignore[arg-type]
