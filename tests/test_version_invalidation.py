"""VersionedCache against a real Redis: one-round-trip reads, TTLs, racing loads."""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from _helpers import calls_during, run_threads
from templategen.reference.errors import CacheUnavailableError, ConfigurationError
from templategen.reference.version_invalidation import VersionedCache

from templategen.redis_server import RedisServer

P = "vc"


class CountingConnection(redis.Connection):
    """A real connection that counts the requests it writes to the socket."""

    requests = 0

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        type(self).requests += 1
        super().send_packed_command(command, check_health)


@pytest.fixture
def cache(redis_client: redis.Redis) -> VersionedCache:
    return VersionedCache(redis_client, prefix=P)


@pytest.fixture
def counting_client(redis_url: str, redis_client: redis.Redis) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, connection_class=CountingConnection)
    yield client
    client.close()


def test_values_round_trip_and_a_miss_returns_the_default(cache: VersionedCache) -> None:
    assert cache.set("user", "1", {"name": "Ann", "tags": ["a"]}) is True
    assert cache.get("user", "1") == {"name": "Ann", "tags": ["a"]}
    assert cache.get("user", "2") is None
    assert cache.get("user", "2", default="miss") == "miss"
    cache.set("user", "none", None)
    assert cache.lookup("user", "none").found is True
    assert cache.lookup("user", "2").found is False


def test_keys_follow_the_wire_format(cache: VersionedCache, redis_client: redis.Redis) -> None:
    cache.set("user", "42:*", {"a": 1})
    assert redis_client.get(f"{P}:user:v0:42:*") == b'{"a":1}'
    assert redis_client.get(f"{P}:version:user") == b"0"
    assert cache.increment_version("user") == 1
    cache.set("user", "42:*", {"a": 2})
    assert redis_client.get(f"{P}:user:v1:42:*") == b'{"a":2}'
    assert redis_client.get(f"{P}:version:user") == b"1"


def test_get_is_one_round_trip(counting_client: redis.Redis, redis_client: redis.Redis) -> None:
    cache = VersionedCache(counting_client, prefix=P)
    cache.set("user", "1", "v")
    cache.increment_version("user")
    cache.set("user", "1", "v1")
    cache.get("user", "1")  # connects and loads the script
    requests = CountingConnection.requests
    values: list[Any] = []
    calls = calls_during(redis_client, lambda: values.append(cache.get("user", "1")))
    assert values == ["v1"]
    assert CountingConnection.requests - requests == 1
    assert calls["evalsha"] == 1
    assert calls["get"] == 2  # the version, then the entry


def test_get_version_starts_at_zero_and_counts_increments(cache: VersionedCache) -> None:
    assert cache.get_version("user") == 0
    assert cache.increment_version("user") == 1
    assert cache.increment_version("user") == 2
    assert cache.get_version("user") == 2
    assert cache.get_version("product") == 0


def test_increment_version_makes_every_old_entry_a_miss(cache: VersionedCache) -> None:
    for i in range(5):
        cache.set("user", str(i), i)
    cache.set("product", "1", "p")
    cache.increment_version("user")
    assert [cache.get("user", str(i)) for i in range(5)] == [None] * 5
    assert cache.get("product", "1") == "p"
    cache.set("user", "1", "fresh")
    assert cache.get("user", "1") == "fresh"


def test_every_entry_has_a_ttl_and_the_version_key_outlasts_them(
    cache: VersionedCache, redis_client: redis.Redis
) -> None:
    for _ in range(3):
        for i, ttl in enumerate((5, 30, 0.5)):
            cache.set("user", f"u{i}", i, ttl)
        cache.set("product", "p", "x", 10)
        cache.increment_version("user")
    latest: dict[str, int] = {}  # entity -> when its last entry expires (unix ms)
    for raw in redis_client.scan_iter(match="*"):
        key = raw.decode()
        if key.startswith(f"{P}:version:"):
            continue
        expires_at = redis_client.pexpiretime(key)
        assert expires_at > 0, f"{key} has no TTL"
        entity = key.split(":")[1]
        latest[entity] = max(latest.get(entity, 0), expires_at)
    assert set(latest) == {"user", "product"}
    for entity, expires_at in latest.items():
        assert redis_client.pexpiretime(f"{P}:version:{entity}") >= expires_at


def test_version_key_outlives_a_longer_lived_entry_after_a_shorter_one_was_set(
    cache: VersionedCache,
) -> None:
    cache.set("user", "1", "old", 30)
    cache.increment_version("user")
    cache.set("user", "2", "brief", 0.05)
    time.sleep(0.15)
    # Had the counter taken the short TTL, it would be gone, version 0 current again and
    # "old" readable; it keeps the longest TTL instead.
    assert cache.get_version("user") == 1
    assert cache.get("user", "1") is None


def test_counter_created_by_an_increment_gets_a_ttl_at_the_first_set(
    cache: VersionedCache, redis_client: redis.Redis
) -> None:
    cache.increment_version("user")
    assert redis_client.pttl(f"{P}:version:user") == -1
    cache.set("user", "1", "v", 30)
    assert 29_000 < redis_client.pttl(f"{P}:version:user") <= 30_000


def test_load_racing_an_increment_is_not_cached_under_the_new_version(
    cache: VersionedCache, redis_client: redis.Redis
) -> None:
    def load() -> str:
        cache.increment_version("user")  # the data changed while we were loading
        return "loaded under v0"

    assert cache.get_or_load("user", "1", load) == "loaded under v0"
    assert cache.get("user", "1") is None
    assert list(redis_client.scan_iter(match=f"{P}:user:*")) == []
    assert cache.get_or_load("user", "1", lambda: "loaded under v1") == "loaded under v1"
    assert cache.get("user", "1") == "loaded under v1"


def test_set_with_a_version_no_longer_current_writes_nothing(
    cache: VersionedCache, redis_client: redis.Redis
) -> None:
    seen = cache.lookup("user", "1")
    cache.increment_version("user")
    assert cache.set("user", "1", "stale", version=seen.version) is False
    assert list(redis_client.scan_iter(match=f"{P}:user:*")) == []
    assert cache.set("user", "1", "fresh", version=cache.get_version("user")) is True
    assert cache.get("user", "1") == "fresh"


@pytest.mark.slow
def test_concurrent_loads_never_serve_data_older_than_the_last_increment(
    cache: VersionedCache,
) -> None:
    # The writer changes the "database", then increments. A read that starts after an
    # increment returned must see at least that generation, hit or miss. Readers spread
    # over many ids, so some load is nearly always in flight when an increment lands.
    db = [0]
    increments: list[tuple[float, int]] = []  # done, generation
    reads: list[tuple[float, int]] = []  # started, value
    stop = threading.Event()

    def load() -> int:
        generation = db[0]
        time.sleep(0.001)  # widen the window in which an increment can land
        return generation

    def reader(n: int) -> None:
        rng = random.Random(n)
        while not stop.is_set():
            started = time.monotonic()
            value = cache.get_or_load("user", str(rng.randrange(30)), load)
            reads.append((started, value))

    def writer() -> None:
        try:
            for _ in range(150):
                db[0] += 1
                cache.increment_version("user")
                increments.append((time.monotonic(), db[0]))
                time.sleep(0.002)
        finally:
            stop.set()

    run_threads([*(functools.partial(reader, n) for n in range(4)), writer])
    assert len(reads) > 300
    for started, value in reads:
        floor = max((gen for done, gen in increments if done < started), default=0)
        assert value >= floor, f"read generation {value} after generation {floor} was current"
    assert {cache.get("user", str(i)) for i in range(30)} <= {None, db[0]}


def test_undecodable_entry_is_deleted_and_read_as_a_miss(
    cache: VersionedCache, redis_client: redis.Redis
) -> None:
    cache.set("user", "1", "v")
    redis_client.set(f"{P}:user:v0:1", b"\xff not json", keepttl=True)
    assert cache.get("user", "1", default="miss") == "miss"
    assert not redis_client.exists(f"{P}:user:v0:1")


def test_redis_down_raises_cache_unavailable_before_loading(
    private_redis: RedisServer,
) -> None:
    client = redis.Redis.from_url(private_redis.url, socket_timeout=1)
    cache = VersionedCache(client)
    private_redis.stop()
    loads: list[int] = []
    for call in (
        lambda: cache.get("user", "1"),
        lambda: cache.set("user", "1", "v"),
        lambda: cache.get_version("user"),
        lambda: cache.increment_version("user"),
        lambda: cache.get_or_load("user", "1", lambda: loads.append(1)),
    ):
        with pytest.raises(CacheUnavailableError):
            call()
    assert loads == []


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.get("", "1"), id="empty entity"),
        pytest.param(lambda c: c.get("user:admin", "1"), id="entity with a colon"),
        pytest.param(lambda c: c.increment_version(1), id="entity not a str"),
        pytest.param(lambda c: c.get("user", 1), id="id not a str"),
        pytest.param(lambda c: c.set("user", "1", "v", 0), id="ttl zero"),
        pytest.param(lambda c: c.set("user", "1", "v", -5), id="ttl negative"),
        pytest.param(lambda c: c.set("user", "1", "v", float("inf")), id="ttl infinite"),
        pytest.param(lambda c: c.set("user", "1", "v", version=-1), id="version negative"),
        pytest.param(lambda c: c.set("user", "1", "v", version="0"), id="version a str"),
        pytest.param(lambda c: c.set("user", "1", "v", version=True), id="version bool"),
        pytest.param(lambda c: c.get_or_load("user", "1", "not callable"), id="loader"),
        pytest.param(lambda c: c.get_or_load("user", "1", list, ttl=0), id="loader ttl"),
        pytest.param(lambda c: VersionedCache(c.client, prefix=""), id="empty prefix"),
        pytest.param(lambda c: VersionedCache(c.client, serializer="xml"), id="serializer"),
    ],
)
def test_bad_input_raises_configuration_error(
    cache: VersionedCache,
    redis_client: redis.Redis,
    call: Callable[[VersionedCache], object],
) -> None:
    with pytest.raises(ConfigurationError):
        call(cache)
    assert redis_client.dbsize() == 0


def test_client_decoding_responses_is_refused(redis_url: str) -> None:
    with pytest.raises(ConfigurationError):
        VersionedCache(redis.Redis.from_url(redis_url, decode_responses=True))
