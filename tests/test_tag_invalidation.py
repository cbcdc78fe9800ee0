"""TaggedCache against a real Redis: atomic invalidation, tag lifetimes, drains, re-tagging."""

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
from templategen.reference.tag_invalidation import TaggedCache

from templategen.redis_server import RedisServer

P = "tc"


@pytest.fixture
def cache(redis_client: redis.Redis) -> TaggedCache:
    return TaggedCache(redis_client, prefix=P)


def members(client: redis.Redis, key: str) -> set[str]:
    return {m.decode() for m in client.smembers(key)}


def assert_consistent(client: redis.Redis) -> None:
    """Every tag member is a live entry carrying the tag; every entry is in all its tags."""
    assert not list(client.scan_iter(match=f"{P}:drain:*")), "a drain was left behind"
    assert not client.exists(f"{P}:draining")
    for raw in client.scan_iter(match=f"{P}:tag:*"):
        tag = raw.decode().removeprefix(f"{P}:tag:")
        for key in members(client, raw.decode()):
            assert client.exists(f"{P}:key:{key}"), f"{tag!r} lists {key!r}, which is gone"
            assert tag in members(client, f"{P}:tags:{key}"), f"{key!r} does not carry {tag!r}"
    for raw in client.scan_iter(match=f"{P}:key:*"):
        key = raw.decode().removeprefix(f"{P}:key:")
        for tag in members(client, f"{P}:tags:{key}"):
            assert key in members(client, f"{P}:tag:{tag}"), f"{key!r} missing from {tag!r}"


@pytest.fixture
def pause_before_first_drain(
    cache: TaggedCache,
) -> Iterator[Callable[[Callable[[], Any]], None]]:
    """Run a callback between an invalidation's RENAME and its first drain batch."""
    real = cache._drain
    hooks: list[Callable[[], Any]] = []

    def drain(**kwargs: Any) -> Any:
        while hooks:
            hooks.pop()()
        return real(**kwargs)

    cache._drain = drain  # type: ignore[assignment]
    yield hooks.append
    cache._drain = real


def test_values_round_trip_through_json_and_a_miss_returns_the_default(
    cache: TaggedCache, redis_client: redis.Redis
) -> None:
    cache.set_with_tags("p:1", {"name": "x", "n": [1, 2]}, 60, ["products"])
    assert cache.get("p:1") == {"name": "x", "n": [1, 2]}
    assert redis_client.get(f"{P}:key:p:1") == b'{"name":"x","n":[1,2]}'
    assert cache.get("p:2") is None
    assert cache.get("p:2", default="miss") == "miss"
    cache.set_with_tags("zero", 0, 60, [])
    assert cache.get("zero", default="miss") == 0


def test_entry_index_and_tag_sets_get_the_ttl(
    cache: TaggedCache, redis_client: redis.Redis
) -> None:
    cache.set_with_tags("k", "v", 30, ["a", "b"])
    for key in (f"{P}:key:k", f"{P}:tags:k", f"{P}:tag:a", f"{P}:tag:b"):
        assert 29_000 < redis_client.pttl(key) <= 30_000, key


def test_tag_set_life_only_grows(cache: TaggedCache, redis_client: redis.Redis) -> None:
    cache.set_with_tags("long", "v", 30, ["t"])
    cache.set_with_tags("short", "v", 0.05, ["t"])
    assert redis_client.pttl(f"{P}:tag:t") > 29_000
    cache.set_with_tags("longer", "v", 60, ["t"])
    assert redis_client.pttl(f"{P}:tag:t") > 59_000


def test_longer_lived_member_is_still_invalidated_after_a_shorter_lived_one_expired(
    cache: TaggedCache,
) -> None:
    cache.set_with_tags("old", "kept long", 30, ["t"])
    cache.set_with_tags("new", "kept briefly", 0.05, ["t"])
    time.sleep(0.15)
    assert cache.get("new") is None
    assert cache.invalidate_tags("t") == 1
    assert cache.get("old") is None


def test_retagging_removes_the_key_from_tags_it_no_longer_has(
    cache: TaggedCache, redis_client: redis.Redis
) -> None:
    cache.set_with_tags("k", "v1", 60, ["a", "b"])
    cache.set_with_tags("k", "v2", 60, ["b", "c"])
    assert cache.get_tags("k") == {"b", "c"}
    assert members(redis_client, f"{P}:tag:a") == set()
    assert cache.invalidate_tags("a") == 0
    assert cache.get("k") == "v2"
    assert cache.invalidate_tags("c") == 1
    assert cache.get("k") is None
    assert_consistent(redis_client)


def test_get_tags_reads_the_keys_own_index_and_never_scans(
    cache: TaggedCache, redis_client: redis.Redis
) -> None:
    for i in range(200):
        cache.set_with_tags(f"k{i}", i, 60, [f"t{i}", "all"])
    cache.set_with_tags("k7", 7, 60, ["x", "y"])
    cache.get_tags("k7")  # loads the script, so the count below is one call's
    calls = calls_during(redis_client, lambda: cache.get_tags("k7"))
    assert cache.get_tags("k7") == {"x", "y"}
    assert calls.get("scan", 0) == calls.get("keys", 0) == 0
    assert calls["evalsha"] == 1
    assert calls["smembers"] == 1


def test_get_tags_is_empty_for_a_missing_or_expired_key(cache: TaggedCache) -> None:
    assert cache.get_tags("nothing") == set()
    cache.set_with_tags("brief", "v", 0.05, ["t"])
    time.sleep(0.1)
    assert cache.get_tags("brief") == set()


def test_invalidating_several_tags_deletes_each_entry_once(
    cache: TaggedCache, redis_client: redis.Redis
) -> None:
    cache.set_with_tags("k1", 1, 60, ["a"])
    cache.set_with_tags("k2", 2, 60, ["b"])
    cache.set_with_tags("k3", 3, 60, ["a", "b", "c"])
    cache.set_with_tags("k4", 4, 60, ["c"])
    assert cache.invalidate_tags("a", "b") == 3
    assert [cache.get(k) for k in ("k1", "k2", "k3", "k4")] == [None, None, None, 4]
    # k3 also left tag c, so c now lists exactly what it holds.
    assert members(redis_client, f"{P}:tag:c") == {"k4"}
    assert_consistent(redis_client)


def test_delete_removes_the_entry_and_its_tag_memberships(
    cache: TaggedCache, redis_client: redis.Redis
) -> None:
    cache.set_with_tags("k", "v", 60, ["a", "b"])
    cache.set_with_tags("other", "v", 60, ["a"])
    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k") is None
    assert members(redis_client, f"{P}:tag:a") == {"other"}
    assert not redis_client.exists(f"{P}:tag:b", f"{P}:tags:k")


def test_names_with_colons_and_glob_characters_stay_apart(
    cache: TaggedCache, redis_client: redis.Redis
) -> None:
    cache.set_with_tags("tag:x", "key named like a tag", 60, ["x"])
    cache.set_with_tags("user:*:[1]?", "globby key", 60, ["*", "a:b"])
    cache.set_with_tags("plain", "plain", 60, ["[a-z]", "tag:x"])
    assert cache.get_tags("user:*:[1]?") == {"*", "a:b"}
    assert cache.invalidate_tags("*") == 1
    assert cache.get("user:*:[1]?") is None
    assert cache.get("tag:x") == "key named like a tag"
    assert cache.get("plain") == "plain"
    assert cache.invalidate_tags("tag:x") == 1
    assert cache.get("tag:x") == "key named like a tag"
    assert_consistent(redis_client)


@pytest.mark.parametrize("drain_batch", [500, 1], ids=["in one script", "drained"])
def test_expired_membership_does_not_delete_a_newer_entry_with_other_tags(
    cache: TaggedCache, drain_batch: int
) -> None:
    cache.drain_batch = drain_batch
    cache.set_with_tags("keeper", "v", 60, ["a"])  # keeps tag a's set alive
    cache.set_with_tags("k", "old", 0.05, ["a"])
    time.sleep(0.1)  # k's entry and index expire; its membership in a lingers
    cache.set_with_tags("k", "new", 60, ["b"])
    assert cache.invalidate_tags("a") == 1
    assert cache.get("keeper") is None
    assert cache.get("k") == "new"


def test_undecodable_entry_is_deleted_and_read_as_a_miss(
    cache: TaggedCache, redis_client: redis.Redis
) -> None:
    cache.set_with_tags("k", "v", 60, ["a"])
    redis_client.set(f"{P}:key:k", b"\xff not json", keepttl=True)
    assert cache.get("k", default="miss") == "miss"
    assert not redis_client.exists(f"{P}:key:k", f"{P}:tags:k", f"{P}:tag:a")


def test_large_tag_is_drained_in_batches(redis_client: redis.Redis) -> None:
    cache = TaggedCache(redis_client, prefix=P, drain_batch=1000)
    pipe = redis_client.pipeline(transaction=False)
    for i in range(10_000):  # set_with_tags' own script, pipelined to save time
        cache._set_with_tags(
            keys=[f"{P}:key:k{i}", f"{P}:tags:k{i}", f"{P}:draining", f"{P}:tag:big"],
            args=[P, f"k{i}", b"1", 60_000, "big"],
            client=pipe,
        )
    pipe.execute()
    assert redis_client.scard(f"{P}:tag:big") == 10_000
    cache.invalidate_tags("warm-up")  # loads the invalidation script
    result: list[int] = []
    calls = calls_during(redis_client, lambda: result.append(cache.invalidate_tags("big")))
    assert result == [10_000]
    assert calls["evalsha"] >= 1 + 10_000 // 1000  # the start, then one call per batch
    assert calls["rename"] == 1
    assert redis_client.dbsize() == 0  # entries, indexes, draining key and registry


def test_small_tags_are_invalidated_in_one_script_call(
    cache: TaggedCache, redis_client: redis.Redis
) -> None:
    for i in range(20):
        cache.set_with_tags(f"k{i}", i, 60, ["a" if i % 2 else "b"])
    cache.invalidate_tags("warm-up")
    result: list[int] = []
    calls = calls_during(redis_client, lambda: result.append(cache.invalidate_tags("a", "b")))
    assert result == [20]
    assert calls["evalsha"] == 1
    assert "rename" not in calls
    assert redis_client.dbsize() == 0


def test_get_misses_every_entry_still_waiting_in_a_drain(
    redis_client: redis.Redis,
    pause_before_first_drain: Callable[[Callable[[], Any]], None],
    cache: TaggedCache,
) -> None:
    cache.drain_batch = 10
    for i in range(50):
        cache.set_with_tags(f"k{i}", i, 60, ["t", "other"])
    seen: dict[str, Any] = {}

    def look() -> None:
        seen["get"] = {cache.get(f"k{i}", "miss") for i in range(50)}
        seen["tags"] = [cache.get_tags(f"k{i}") for i in range(50)]
        seen["raw"] = sum(redis_client.exists(f"{P}:key:k{i}") for i in range(50))

    pause_before_first_drain(look)
    assert cache.invalidate_tags("t") == 50
    assert seen == {"get": {"miss"}, "tags": [set()] * 50, "raw": 50}
    assert redis_client.dbsize() == 0
    assert_consistent(redis_client)


def test_entry_written_during_a_drain_survives_it(
    redis_client: redis.Redis,
    pause_before_first_drain: Callable[[Callable[[], Any]], None],
    cache: TaggedCache,
) -> None:
    cache.drain_batch = 10
    for i in range(50):
        cache.set_with_tags(f"k{i}", "old", 60, ["t"])

    def rewrite() -> None:
        for i in range(0, 50, 2):
            cache.set_with_tags(f"k{i}", "new", 60, ["t"] if i % 4 else ["u"])

    pause_before_first_drain(rewrite)
    assert cache.invalidate_tags("t") == 25
    assert {i: cache.get(f"k{i}") for i in range(50)} == {
        i: "new" if i % 2 == 0 else None for i in range(50)
    }
    assert members(redis_client, f"{P}:tag:t") == {f"k{i}" for i in range(2, 50, 4)}
    assert_consistent(redis_client)


def test_abandoned_drain_keeps_its_entries_invisible_until_they_expire(
    redis_client: redis.Redis,
    pause_before_first_drain: Callable[[Callable[[], Any]], None],
    cache: TaggedCache,
) -> None:
    cache.drain_batch = 10
    for i in range(30):
        cache.set_with_tags(f"k{i}", i, 0.3, ["t"])

    class Crash(Exception):
        pass

    def crash() -> None:
        raise Crash

    pause_before_first_drain(crash)
    with pytest.raises(Crash):
        cache.invalidate_tags("t")
    assert {cache.get(f"k{i}", "miss") for i in range(30)} == {"miss"}
    assert all(redis_client.exists(f"{P}:key:k{i}") for i in range(30))
    cache.set_with_tags("k0", "rewritten", 60, ["t"])
    assert cache.get("k0") == "rewritten"
    time.sleep(0.4)
    cache.invalidate_tags("unrelated")  # forgets the drain whose key expired
    assert not redis_client.exists(f"{P}:draining")
    assert cache.get("k0") == "rewritten"
    assert set(redis_client.scan_iter(match=f"{P}:*")) == {
        f"{P}:key:k0".encode(),
        f"{P}:tags:k0".encode(),
        f"{P}:tag:t".encode(),
    }


@pytest.mark.slow
def test_no_entry_written_before_an_invalidation_escapes_it(redis_client: redis.Redis) -> None:
    # Writers hammer the hot tag (unique keys, plus a small pool re-tagged at random)
    # while another thread invalidates it over and over; a small drain batch makes
    # some invalidations drain.
    cache = TaggedCache(redis_client, prefix=P, drain_batch=5)
    stop = threading.Event()
    written: list[tuple[str, bool, float, float]] = []  # key, hot, started, done
    rounds: list[tuple[float, float]] = []

    def writer(n: int) -> None:
        rng = random.Random(n)
        i = 0
        while not stop.is_set():
            i += 1
            hot = rng.random() < 0.7
            started = time.monotonic()
            cache.set_with_tags(f"u{n}:{i}", i, 60, ["hot", "a"] if hot else ["a"])
            written.append((f"u{n}:{i}", hot, started, time.monotonic()))
            tags = rng.sample(["hot", "a", "b"], rng.randint(0, 3))
            cache.set_with_tags(f"pool:{rng.randrange(20)}", i, 60, tags)

    def invalidator() -> None:
        try:
            for _ in range(40):
                started = time.monotonic()
                cache.invalidate_tags("hot")
                rounds.append((started, time.monotonic()))
                time.sleep(0.01)
        finally:
            stop.set()

    run_threads([*(functools.partial(writer, n) for n in range(4)), invalidator])
    last_started, last_done = rounds[-1]
    for key, hot, started, done in written:
        exists = cache.get(key) is not None
        if not hot:
            assert exists, f"{key} was never tagged hot, yet it is gone"
        elif done < last_started:
            assert not exists, f"{key} was written before an invalidation and escaped it"
        elif started > last_done:
            assert exists, f"{key} was written after the last invalidation, yet it is gone"
    assert sum(1 for _, hot, _, done in written if hot and done < last_started) > 100
    assert_consistent(redis_client)


def test_redis_down_raises_cache_unavailable(private_redis: RedisServer) -> None:
    client = redis.Redis.from_url(private_redis.url, socket_timeout=1)
    cache = TaggedCache(client)
    private_redis.stop()
    for call in (
        lambda: cache.set_with_tags("k", "v", 60, ["a"]),
        lambda: cache.get("k"),
        lambda: cache.get_tags("k"),
        lambda: cache.delete("k"),
        lambda: cache.invalidate_tags("a"),
    ):
        with pytest.raises(CacheUnavailableError):
            call()


@pytest.mark.parametrize(
    "call",
    [
        pytest.param(lambda c: c.set_with_tags("k", "v", 60, ["a", ""]), id="empty tag"),
        pytest.param(lambda c: c.set_with_tags("k", "v", 0, ["a"]), id="ttl zero"),
        pytest.param(lambda c: c.set_with_tags("k", "v", -1, ["a"]), id="ttl negative"),
        pytest.param(lambda c: c.set_with_tags("k", "v", True, ["a"]), id="ttl bool"),
        pytest.param(lambda c: c.set_with_tags("k", "v", 60, "products"), id="tags a str"),
        pytest.param(lambda c: c.set_with_tags("k", "v", 60, [1]), id="tag not a str"),
        pytest.param(lambda c: c.set_with_tags(1, "v", 60, ["a"]), id="key not a str"),
        pytest.param(lambda c: c.invalidate_tags(""), id="invalidate empty tag"),
        pytest.param(lambda c: c.invalidate_tags(["a", "b"]), id="invalidate a list"),
        pytest.param(lambda c: TaggedCache(c.client, prefix=""), id="empty prefix"),
        pytest.param(lambda c: TaggedCache(c.client, drain_batch=0), id="drain_batch 0"),
        pytest.param(lambda c: TaggedCache(c.client, serializer="xml"), id="unknown serializer"),
    ],
)
def test_bad_input_raises_configuration_error(
    cache: TaggedCache, redis_client: redis.Redis, call: Callable[[TaggedCache], object]
) -> None:
    with pytest.raises(ConfigurationError):
        call(cache)
    assert redis_client.dbsize() == 0


def test_client_decoding_responses_is_refused(redis_url: str) -> None:
    with pytest.raises(ConfigurationError):
        TaggedCache(redis.Redis.from_url(redis_url, decode_responses=True))
