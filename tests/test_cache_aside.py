"""Cache-aside: hits and misses, leases against the stale-set race, outages, wire format.

Every test runs against a real redis-server. Round trips are counted on the real
traffic: ``CountingRedis`` records each command the client sends.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import pickle
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
from _helpers import CountingRedis, wait_until
from redis.backoff import NoBackoff
from redis.retry import Retry
from templategen.reference._lease import LEASE_PREFIX, new_lease_token
from templategen.reference.cache_aside import CacheAside, CacheConfig, CacheManager
from templategen.reference.errors import (
    CacheUnavailableError,
    ConfigurationError,
    SerializationError,
    UnencodableArgumentsError,
)
from templategen.reference.serializers import SERIALIZER_NAMES, get_serializer

from templategen.redis_server import RedisServer

HMAC_KEY = b"k" * 32
LOGGER = "templategen.reference"


class Loader:
    """Returns ``value`` and counts its calls."""

    def __init__(self, value: Any) -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> Any:
        self.calls += 1
        return self.value


class BlockingLoader(Loader):
    """Signals ``started``, then returns only once ``release`` is set."""

    def __init__(self, value: Any) -> None:
        super().__init__(value)
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self) -> Any:
        self.started.set()
        assert self.release.wait(10)
        return super().__call__()


def in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(fn()), daemon=True)
    thread.start()
    return thread, result


def outage_client(server: RedisServer, cls: type[redis.Redis] = redis.Redis) -> redis.Redis:
    # Short timeouts and no retries: each call against a dead server fails fast.
    return cls.from_url(
        server.url,
        socket_timeout=0.1,
        socket_connect_timeout=0.1,
        retry=Retry(NoBackoff(), 0),
    )


def warnings_about(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno == logging.WARNING and text in r.getMessage()]


@pytest.fixture
def client(redis_client: redis.Redis, redis_server: RedisServer) -> Iterator[CountingRedis]:
    # redis_client has flushed the server; this client counts what the cache sends.
    counting = CountingRedis(host="127.0.0.1", port=redis_server.port)
    yield counting
    counting.close()


@pytest.fixture(params=SERIALIZER_NAMES)
def serializer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(client: redis.Redis, serializer: str = "json", **options: Any) -> CacheAside[Any]:
    return CacheAside(client, CacheConfig(serializer=serializer, hmac_key=HMAC_KEY, **options))


def stored(client: redis.Redis, serializer: str, key: str) -> Any:
    raw = client.get(key)
    assert isinstance(raw, bytes), f"{key} is not in Redis"
    return get_serializer(serializer, hmac_key=HMAC_KEY).loads(raw)


# -- hits and misses -------------------------------------------------------------------


def test_miss_loads_stores_the_serializer_bytes_and_the_next_get_is_a_hit(
    client: CountingRedis, serializer: str
) -> None:
    cache: CacheAside[dict[str, Any]] = make(client, serializer, ttl=60)
    value = {"name": "Ada", "tags": ["a", "b"], "age": None}
    loader = Loader(value)

    assert cache.get("user:1", loader) == value
    assert cache.get("user:1", loader) == value

    assert loader.calls == 1
    assert client.get("cache:user:1") == get_serializer(serializer, hmac_key=HMAC_KEY).dumps(value)
    assert 59_000 < client.pttl("cache:user:1") <= 60_000


@pytest.mark.parametrize("value", [0, "", [], {}, False, 0.0], ids=repr)
def test_falsy_values_are_hits(client: CountingRedis, serializer: str, value: Any) -> None:
    cache = make(client, serializer)
    loader = Loader(value)

    assert cache.get("k", loader) == value
    assert cache.get("k", loader) == value
    assert loader.calls == 1


def test_none_is_not_cached_without_negative_ttl(client: CountingRedis, serializer: str) -> None:
    cache = make(client, serializer)
    loader = Loader(None)

    assert cache.get("missing", loader) is None
    assert client.exists("cache:missing") == 0  # not cached, and our lease was released
    assert cache.get("missing", loader) is None
    assert loader.calls == 2


def test_none_is_cached_for_negative_ttl_when_negative_caching_is_on(
    client: CountingRedis, serializer: str
) -> None:
    cache = make(client, serializer, ttl=3600, negative_ttl=30)
    loader = Loader(None)

    assert cache.get("missing", loader) is None
    assert cache.get("missing", loader) is None
    assert loader.calls == 1
    assert 29_000 < client.pttl("cache:missing") <= 30_000


def test_hit_costs_one_round_trip_and_miss_two(client: CountingRedis, serializer: str) -> None:
    cache = make(client, serializer)
    cache.get("warm-up", Loader(1))  # loads the scripts (NOSCRIPT, SCRIPT LOAD) once
    client.sent.clear()

    cache.get("k", Loader({"a": 1}))
    assert client.sent == ["SET", "EVALSHA"]  # read-or-lease (SET NX GET), fill
    client.sent.clear()

    cache.get("k", Loader("unused"))
    assert client.sent == ["SET"]


def test_hits_are_served_while_redis_refuses_writes_and_misses_raise_its_refusal(
    private_redis: RedisServer,
) -> None:
    client = redis.Redis.from_url(private_redis.url)
    cache = make(client)
    cache.set("k", "cached")
    # At maxmemory with noeviction Redis refuses SET, even SET ... NX ... GET of a key
    # that exists: the read falls back to the script, which on a hit only reads.
    client.config_set("maxmemory", 1)
    try:
        assert cache.get("k", Loader("unused")) == "cached"
        loader = Loader("from the database")
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            cache.get("other", loader)  # not an outage: the refusal reaches the caller
        assert loader.calls == 0
    finally:
        client.config_set("maxmemory", 0)
        client.close()


def test_lease_tokens_are_unique_markers_of_32_hex_characters() -> None:
    tokens = [new_lease_token() for _ in range(100_000)]
    assert len(set(tokens)) == len(tokens)
    assert all(re.fullmatch(rb"\xc1lease:[0-9a-f]{32}", token) for token in tokens)


def test_per_call_ttl_overrides_the_default(client: CountingRedis) -> None:
    cache = make(client, ttl=3600)
    cache.get("a", Loader(1), ttl=20)
    cache.set("b", 2, ttl=40)
    assert 19_000 < client.pttl("cache:a") <= 20_000
    assert 39_000 < client.pttl("cache:b") <= 40_000


def test_set_stores_a_hit_and_delete_removes_it(client: CountingRedis, serializer: str) -> None:
    cache = make(client, serializer)
    cache.set("k", [1, 2])
    assert cache.get("k", Loader("unused")) == [1, 2]

    assert cache.delete("k") is True
    assert cache.delete("k") is False
    assert cache.get("k", Loader("fresh")) == "fresh"


def test_cache_aside_round_trips_each_serializer_value_kinds(
    client: CountingRedis, serializer: str
) -> None:
    cache = make(client, serializer)
    value = {"int": 2**40, "float": 1.5, "text": "naïve 🐍", "nested": [{"x": [None, True]}]}
    cache.get("k", Loader(value))
    assert cache.get("k", Loader("unused")) == value
    assert stored(client, serializer, "cache:k") == value


# -- the stale-set race, closed by leases ----------------------------------------------


@pytest.mark.parametrize("invalidation", ["delete", "delete_pattern"])
def test_invalidation_during_load_never_leaves_stale_value(
    client: CountingRedis, serializer: str, invalidation: str
) -> None:
    cache = make(client, serializer)
    slow = BlockingLoader("stale")
    reader, result = in_thread(lambda: cache.get("user:1", slow))
    assert slow.started.wait(10)

    # The writer has committed a new row and invalidates while the reader is loading.
    if invalidation == "delete":
        cache.delete("user:1")
    else:
        cache.delete_pattern("user:*")
    slow.release.set()
    reader.join(10)

    assert result == ["stale"]  # the caller still gets what it loaded ...
    assert client.exists("cache:user:1") == 0  # ... but it was not cached
    fresh = Loader("fresh")
    assert cache.get("user:1", fresh) == "fresh"
    assert cache.get("user:1", fresh) == "fresh"
    assert fresh.calls == 1


def test_set_during_load_wins_over_the_loaded_value(client: CountingRedis, serializer: str) -> None:
    cache = make(client, serializer)
    slow = BlockingLoader("stale")
    reader, result = in_thread(lambda: cache.get("k", slow))
    assert slow.started.wait(10)

    cache.set("k", "written")
    slow.release.set()
    reader.join(10)

    assert result == ["stale"]
    assert stored(client, serializer, "cache:k") == "written"


def test_second_reader_during_a_lease_loads_for_itself_and_writes_nothing(
    client: CountingRedis,
) -> None:
    cache = make(client)
    cache.get("warm-up", Loader(1))
    first = BlockingLoader("first")
    reader, result = in_thread(lambda: cache.get("k", first))
    assert first.started.wait(10)
    client.sent.clear()

    assert cache.get("k", Loader("second")) == "second"
    assert client.sent == ["SET"]  # saw the lease: no write
    raw = client.get("cache:k")
    assert isinstance(raw, bytes) and raw.startswith(LEASE_PREFIX)

    first.release.set()
    reader.join(10)
    assert result == ["first"]
    assert stored(client, "json", "cache:k") == "first"  # the lease holder's write lands


def test_load_slower_than_the_lease_is_returned_but_not_cached(
    client: CountingRedis, serializer: str
) -> None:
    cache = make(client, serializer, lease_ttl=0.05)

    def slow_loader() -> str:
        wait_until(lambda: client.exists("cache:k") == 0)  # our lease has expired
        # Meanwhile another reader leases the key and caches a newer value.
        assert cache.get("k", Loader("newer")) == "newer"
        return "older"

    assert cache.get("k", slow_loader) == "older"
    assert stored(client, serializer, "cache:k") == "newer"


def test_loader_error_propagates_caches_nothing_and_releases_the_lease(
    client: CountingRedis,
) -> None:
    cache = make(client)

    def failing() -> str:
        raise RuntimeError("database down")

    with pytest.raises(RuntimeError, match="database down"):
        cache.get("k", failing)
    assert client.exists("cache:k") == 0

    recovered = Loader("v")
    assert cache.get("k", recovered) == "v"
    assert cache.get("k", recovered) == "v"
    assert recovered.calls == 1


def test_value_the_serializer_cannot_encode_raises_and_leaves_nothing(
    client: CountingRedis,
) -> None:
    cache = make(client)
    with pytest.raises(SerializationError, match="JSON"):
        cache.get("k", Loader({1, 2}))
    with pytest.raises(SerializationError, match="JSON"):
        cache.set("k", object())
    assert client.exists("cache:k") == 0


# -- bad stored data -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("serializer", "garbage"),
    [("json", b"{not json"), ("json", b"\xff\xfe"), ("msgpack", b"\xc1\xc1")],
)
def test_undecodable_value_is_replaced_and_treated_as_a_miss(
    client: CountingRedis, caplog: pytest.LogCaptureFixture, serializer: str, garbage: bytes
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    cache = make(client, serializer)
    client.set("cache:k", garbage)
    loader = Loader({"ok": True})

    assert cache.get("k", loader) == {"ok": True}
    assert cache.get("k", loader) == {"ok": True}
    assert loader.calls == 1
    assert stored(client, serializer, "cache:k") == {"ok": True}
    assert len(warnings_about(caplog, "could not be deserialized")) == 1


UNPICKLED: list[str] = []


def _record_unpickling() -> None:
    UNPICKLED.append("a forged pickle was executed")


class _Forgery:
    def __reduce__(self) -> tuple[Callable[[], None], tuple[()]]:
        return (_record_unpickling, ())


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(lambda: pickle.dumps(_Forgery()), id="unsigned"),
        pytest.param(
            lambda: get_serializer("pickle", hmac_key=b"x" * 32).dumps(_Forgery()),
            id="signed-with-another-key",
        ),
    ],
)
def test_forged_pickle_is_never_unpickled_and_logs_a_security_warning(
    client: CountingRedis, caplog: pytest.LogCaptureFixture, forge: Callable[[], bytes]
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    UNPICKLED.clear()
    cache = make(client, "pickle")
    client.set("cache:k", forge())

    assert cache.get("k", Loader("genuine")) == "genuine"

    assert UNPICKLED == []
    assert len(warnings_about(caplog, "SECURITY")) == 1
    assert stored(client, "pickle", "cache:k") == "genuine"  # replaced by a signed value


# -- TTL jitter ------------------------------------------------------------------------


def _ttls_written(client: CountingRedis, cache: CacheAside[Any], via: str, n: int) -> list[int]:
    for i in range(n):
        if via == "get":
            cache.get(f"k{i}", Loader(i))
        else:
            cache.set(f"k{i}", i)
    pipe = client.pipeline(transaction=False)
    for i in range(n):
        pipe.pttl(f"cache:k{i}")
    return [int(ms) for ms in pipe.execute()]


@pytest.mark.parametrize("via", ["get", "set"])
def test_jitter_spreads_ttls_within_the_bound(client: CountingRedis, via: str) -> None:
    ttls = _ttls_written(client, make(client, ttl=100, jitter=0.1), via, 300)
    assert all(88_000 <= ms <= 110_000 for ms in ttls)  # ±10 %, less time elapsed
    assert min(ttls) < 97_000 and max(ttls) > 103_000  # spread to both sides


@pytest.mark.parametrize("via", ["get", "set"])
def test_without_jitter_every_ttl_is_exact(client: CountingRedis, via: str) -> None:
    ttls = _ttls_written(client, make(client, ttl=100), via, 300)
    assert all(98_000 <= ms <= 100_000 for ms in ttls)


# -- deleting by pattern ---------------------------------------------------------------


def test_delete_pattern_keeps_the_user_glob_and_matches_the_prefix_literally(
    client: CountingRedis,
) -> None:
    cache = make(client, prefix="t[1]*")
    for key in ("user:1", "user:2", "order:1"):
        cache.set(key, 1)
    # Keys an unescaped "t[1]*:user:*" would also match:
    client.set("t1:user:3", 1)
    client.set("t[1]*x:user:4", 1)

    assert cache.delete_pattern("user:*") == 2
    assert sorted(client.keys("*")) == [b"t1:user:3", b"t[1]*:order:1", b"t[1]*x:user:4"]


def test_delete_pattern_unlinks_in_batches_never_one_del_per_key(client: CountingRedis) -> None:
    cache = make(client)
    pipe = client.pipeline(transaction=False)
    for i in range(1200):
        pipe.set(f"cache:k{i}", b"1")
    pipe.set("other:k", b"1")
    pipe.execute()
    client.sent.clear()

    assert cache.delete_pattern("*") == 1200

    assert client.sent.count("UNLINK") == 3  # batches of 500
    assert "DEL" not in client.sent
    assert client.keys("*") == [b"other:k"]


# -- configuration ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": 0}, "ttl must be a number of seconds > 0"),
        ({"ttl": -1}, "ttl must be a number of seconds > 0"),
        ({"ttl": True}, "ttl must be a number of seconds > 0"),
        ({"prefix": ""}, "prefix must be a non-empty string"),
        ({"serializer": "yaml"}, "allowed: json, msgpack, pickle"),
        ({"serializer": "pickle"}, "requires hmac_key"),
        ({"serializer": "pickle", "hmac_key": b"short"}, "at least 16 bytes"),
        ({"negative_ttl": 0}, "negative_ttl"),
        ({"jitter": 0.6}, "jitter must be a number between 0 and 0.5"),
        ({"jitter": -0.1}, "jitter must be a number between 0 and 0.5"),
        ({"lease_ttl": 0}, "lease_ttl must be a number of seconds > 0"),
        ({"fail_open": "yes"}, "fail_open must be True or False"),
    ],
    ids=repr,
)
def test_bad_config_is_refused_saying_what_is_allowed(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        CacheConfig(**options)


def test_bad_call_arguments_are_refused_before_touching_redis(client: CountingRedis) -> None:
    cache = make(client)
    with pytest.raises(ConfigurationError, match="ttl must be a number of seconds > 0"):
        cache.get("k", Loader(1), ttl=0)
    with pytest.raises(ConfigurationError, match="ttl must be a number of seconds > 0"):
        cache.set("k", 1, ttl=-5)
    with pytest.raises(ConfigurationError, match="loader must be callable"):
        cache.get("k", "not a function")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="key must be a str"):
        cache.get(42, Loader(1))  # type: ignore[arg-type]
    assert client.sent == []


def test_client_that_decodes_responses_is_refused(redis_server: RedisServer) -> None:
    text_client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    with pytest.raises(ConfigurationError, match="decode_responses=False"):
        CacheAside(text_client, CacheConfig())
    with pytest.raises(ConfigurationError, match="decode_responses=False"):
        CacheManager(text_client)


# -- Redis down or slow ----------------------------------------------------------------


def test_redis_down_serves_loader_values_with_one_warning_then_caching_resumes(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    client = outage_client(private_redis)
    users, orders = make(client, prefix="users"), make(client, prefix="orders")
    assert users.get("1", Loader("cached")) == "cached"

    private_redis.stop()
    loader = Loader("from the database")
    for i in range(15):
        assert users.get(str(i % 3), loader) == "from the database"
        assert orders.get(str(i), loader) == "from the database"
    users.set("1", "x")
    assert users.delete("1") is False
    assert orders.delete_pattern("*") == 0
    assert loader.calls == 30
    # One warning for the outage, shared by every cache on the client, not one per call.
    assert len(warnings_about(caplog, "Redis unavailable")) == 1

    private_redis.start()
    fresh = Loader("fresh")
    assert users.get("1", fresh) == "fresh"
    assert users.get("1", fresh) == "fresh"
    assert fresh.calls == 1
    assert len(warnings_about(caplog, "reachable again")) == 1
    assert len(warnings_about(caplog, "Redis unavailable")) == 1


def test_redis_timing_out_serves_loader_values(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    cache = make(outage_client(private_redis))
    admin = redis.Redis.from_url(private_redis.url)
    # Pausing writes holds every read unanswered (SET ... NX ... GET, or the script, may
    # write): the client times out.
    admin.client_pause(30_000, all=False)
    try:
        loader = Loader("from the database")
        for _ in range(3):
            assert cache.get("k", loader) == "from the database"
        assert loader.calls == 3
    finally:
        admin.client_unpause()
    assert len(warnings_about(caplog, "TimeoutError")) == 1

    again = Loader("cached")
    assert cache.get("k", again) == "cached"
    assert cache.get("k", again) == "cached"
    assert again.calls == 1


def test_fail_closed_raises_cache_unavailable_without_calling_the_loader(
    private_redis: RedisServer,
) -> None:
    cache = make(outage_client(private_redis), fail_open=False)
    private_redis.stop()
    loader = Loader("unused")

    with pytest.raises(CacheUnavailableError) as info:
        cache.get("k", loader)
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    assert loader.calls == 0
    with pytest.raises(CacheUnavailableError):
        cache.set("k", 1)
    with pytest.raises(CacheUnavailableError):
        cache.delete("k")
    with pytest.raises(CacheUnavailableError):
        cache.delete_pattern("*")


def test_redis_dying_during_a_load_still_returns_the_loaded_value(
    private_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    cache = make(outage_client(private_redis))

    def loader() -> str:
        private_redis.stop()
        return "loaded"

    assert cache.get("k", loader) == "loaded"
    assert len(warnings_about(caplog, "Redis unavailable")) == 1


# -- the decorator ---------------------------------------------------------------------


@pytest.fixture
def manager(client: CountingRedis) -> CacheManager:
    return CacheManager(client)


def test_positional_keyword_and_default_arguments_share_one_key(
    client: CountingRedis, manager: CacheManager
) -> None:
    calls: list[tuple[str, int]] = []

    @manager.cache_aside("search", ttl=60)
    def search(query: str, page: int = 1) -> list[str]:
        calls.append((query, page))
        return [query] * page

    assert search("redis") == ["redis"]
    assert search(query="redis") == ["redis"]
    assert search("redis", page=1) == ["redis"]
    assert search("redis", 1) == ["redis"]
    assert calls == [("redis", 1)]
    assert search("redis", 2) == ["redis", "redis"]
    assert len(client.keys("search:*")) == 2


def test_default_key_is_prefix_function_name_and_sha256_of_sorted_compact_json(
    client: CountingRedis, manager: CacheManager
) -> None:
    @manager.cache_aside("search")
    def search(query: str, page: int = 1) -> str:
        return "x"

    @manager.cache_aside("batch")
    def batch(*ids: int, **options: bool) -> str:
        return "x"

    search("naïve", page=2)
    batch(3, 1, fast=True)

    def key(prefix: str, func: Callable[..., Any], canonical: str) -> bytes:
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        return f"{prefix}:{func.__module__}.{func.__qualname__}:{digest}".encode()

    assert client.keys("search:*") == [key("search", search, '{"page":2,"query":"naïve"}')]
    assert client.keys("batch:*") == [key("batch", batch, '{"ids":[3,1],"options":{"fast":true}}')]


def _signature_key(prefix: str, func: Callable[..., Any], *args: Any, **kwargs: Any) -> bytes:
    """The documented key, its arguments bound by ``inspect.Signature.bind`` itself."""
    bound = inspect.signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    canonical = json.dumps(
        bound.arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
    return f"{prefix}:{func.__module__}.{func.__qualname__}:{digest}".encode()


def _named(a: int, b: int = 2, *, c: str = "c") -> str:
    return "named"


def _positional_only(a: int, /, b: int, *, c: Any) -> str:
    return "positional only"


def _variadic(*ids: int, **options: Any) -> str:
    return "variadic"


def _mixed(a: int, *rest: int, key: str | None = None) -> str:
    return "mixed"


@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        (_named, (1,), {}),
        (_named, (1, 2), {}),
        (_named, (1, 5), {}),
        (_named, (1,), {"b": 5}),
        (_named, (), {"a": 1}),
        (_named, (), {"b": 5, "a": 1}),
        (_named, (1,), {"c": "naïve"}),
        (_named, (1, 2), {"c": "x"}),
        (_named, ([1, "x", None], {"k": [True, 1.5]}), {}),
        (_positional_only, (1, 2), {"c": 3}),
        (_positional_only, (1,), {"b": 2, "c": None}),
        (_variadic, (), {}),
        (_variadic, (3, 1), {"fast": True}),
        (_mixed, (1,), {}),
        (_mixed, (1, 2, 3), {"key": "k"}),
    ],
)
def test_every_call_shape_gets_the_key_of_its_arguments_bound_by_signature(
    client: CountingRedis, manager: CacheManager, func: Callable[..., str], args: Any, kwargs: Any
) -> None:
    decorated = manager.cache_aside("shape")(func)
    assert decorated(*args, **kwargs) == func(*args, **kwargs)
    assert decorated(*args, **kwargs) == func(*args, **kwargs)  # a hit, the same key
    assert client.keys("shape:*") == [_signature_key("shape", func, *args, **kwargs)]


def test_equal_arguments_of_different_types_keep_their_own_keys_on_every_call(
    client: CountingRedis, manager: CacheManager
) -> None:
    seen: list[Any] = []

    @manager.cache_aside("eq")
    def echo(x: Any) -> str:
        seen.append(x)
        return repr(x)

    # Equal to one another, or hashed alike, but each encodes differently.
    arguments: list[Any] = [1, True, 1.0, "1", 0.0, -0.0, 0]
    for _ in range(2):
        assert [echo(x) for x in arguments] == [repr(x) for x in arguments]
    assert seen == arguments  # each loaded once, then a hit under its own key
    expected = {_signature_key("eq", echo.__wrapped__, x) for x in arguments}  # type: ignore[attr-defined]
    assert set(client.keys("eq:*")) == expected and len(expected) == len(arguments)


def test_a_default_changed_between_calls_changes_the_key(
    client: CountingRedis, manager: CacheManager
) -> None:
    fields: list[str] = ["name"]

    def find(user_id: int, only: list[str] = fields) -> str:
        return ",".join(only)

    cached = manager.cache_aside("dflt")(find)
    assert cached(1) == "name"
    fields.append("email")
    assert cached(1) == "name,email"  # a new key, as Signature.bind binds the default now
    assert set(client.keys("dflt:*")) == {
        _signature_key("dflt", find, 1),
        _signature_key("dflt", find, 1, ["name"]),
    }


@pytest.mark.parametrize(
    ("func", "args", "kwargs"),
    [
        (_named, (), {}),  # a missing
        (_named, (1, 2, 3), {}),  # one too many
        (_named, (1,), {"a": 1}),  # a twice
        (_named, (1,), {"d": 1}),  # no such parameter
        (_named, (1, 2, "c"), {}),  # c is keyword-only
        (_positional_only, (), {"a": 1, "b": 2, "c": 3}),  # a by name
        (_positional_only, (1, 2), {}),  # c missing
    ],
)
def test_calls_the_function_would_refuse_raise_type_error_and_touch_nothing(
    client: CountingRedis, manager: CacheManager, func: Callable[..., str], args: Any, kwargs: Any
) -> None:
    decorated = manager.cache_aside("shape")(func)
    client.sent.clear()
    with pytest.raises(TypeError):
        decorated(*args, **kwargs)
    assert client.sent == []


def test_functions_with_the_same_name_in_different_modules_do_not_share_keys(
    manager: CacheManager,
) -> None:
    def make_function(module: str, result: str) -> Callable[[int], str]:
        def lookup(x: int) -> str:
            return result

        lookup.__module__ = module
        return manager.cache_aside("shared")(lookup)

    assert make_function("billing", "billing")(1) == "billing"
    assert make_function("shipping", "shipping")(1) == "shipping"


class _Opaque:
    """Has the default repr, so the design's repr-hashing key never hit for it."""


@pytest.mark.parametrize(
    ("argument", "culprit"),
    [
        (_Opaque(), "_Opaque"),
        ({1, 2}, "set"),
        (b"bytes", "bytes"),
        (float("nan"), "finite"),
        ({1: "a"}, "int dict key"),
        ([{"ok": 1}, object()], "object"),
    ],
    ids=["object", "set", "bytes", "nan", "int-dict-key", "nested"],
)
def test_arguments_without_a_canonical_encoding_raise_and_ask_for_key_builder(
    manager: CacheManager, argument: Any, culprit: str
) -> None:
    loader = Loader("unused")

    @manager.cache_aside("p")
    def lookup(thing: Any) -> Any:
        return loader()

    with pytest.raises(UnencodableArgumentsError, match=culprit) as info:
        lookup(argument)
    assert "key_builder" in str(info.value) and "thing" in str(info.value)
    assert loader.calls == 0


def test_methods_need_a_key_builder_because_self_has_no_canonical_encoding(
    manager: CacheManager,
) -> None:
    class Repository:
        @manager.cache_aside("repo")
        def find(self, id: int) -> int:
            return id

    with pytest.raises(UnencodableArgumentsError, match="argument self"):
        Repository().find(1)


def test_methods_with_a_key_builder_cache_and_invalidate_through_the_class(
    client: CountingRedis, manager: CacheManager
) -> None:
    loads: list[int] = []

    class Repository:
        @manager.cache_aside("repo", key_builder=lambda self, id: id)
        def find(self, id: int) -> str:
            loads.append(id)
            return f"row {id}"

    repo = Repository()
    assert repo.find(1) == "row 1"
    assert Repository().find(1) == "row 1"
    assert loads == [1]
    assert Repository.find.invalidate(repo, 1) is True
    assert client.keys("*") == []


def test_key_builder_makes_the_key_and_lets_any_argument_hit(
    client: CountingRedis, manager: CacheManager
) -> None:
    @dataclass
    class User:
        id: int

    loads: list[int] = []

    @manager.cache_aside("user", ttl=1800, key_builder=lambda user: user.id)
    def profile(user: User) -> dict[str, int]:
        loads.append(user.id)
        return {"id": user.id}

    assert profile(User(7)) == {"id": 7}
    assert profile(User(7)) == {"id": 7}  # a different object, the same key
    assert loads == [7]
    assert client.keys("*") == [b"user:7"]

    assert profile.invalidate(User(7)) is True
    assert client.keys("*") == []


def test_key_builder_must_return_a_str_or_int(manager: CacheManager) -> None:
    @manager.cache_aside("p", key_builder=lambda x: [x])  # type: ignore[arg-type, return-value]
    def f(x: int) -> int:
        return x

    with pytest.raises(ConfigurationError, match="key_builder must return a str or int"):
        f(1)


def test_invalidate_deletes_exactly_that_calls_key(
    client: CountingRedis, manager: CacheManager
) -> None:
    loads: list[int] = []

    @manager.cache_aside("item")
    def item(id: int, detail: bool = False) -> int:
        loads.append(id)
        return id

    item(1)
    item(2)
    assert item.invalidate(id=1, detail=False) is True  # same call, spelled differently
    assert item.invalidate(1) is False
    item(1)
    item(2)
    assert loads == [1, 2, 1]


def test_invalidate_all_deletes_every_key_of_the_prefix_only(
    client: CountingRedis, manager: CacheManager
) -> None:
    @manager.cache_aside("item")
    def item(id: int) -> int:
        return id

    @manager.cache_aside("other")
    def other(id: int) -> int:
        return id

    for i in range(5):
        item(i)
    other(1)

    assert item.invalidate_all() == 5
    assert len(client.keys("item:*")) == 0
    assert len(client.keys("other:*")) == 1


@pytest.mark.parametrize("invalidation", ["invalidate", "invalidate_all"])
def test_decorator_invalidation_during_load_never_leaves_stale_value(
    client: CountingRedis, manager: CacheManager, invalidation: str
) -> None:
    database = {1: "old"}
    started, release = threading.Event(), threading.Event()

    @manager.cache_aside("user")
    def get_user(id: int) -> str:
        row = database[id]  # read before the writer's commit ...
        started.set()
        assert release.wait(10)
        return row  # ... and returned after its invalidation

    reader, result = in_thread(lambda: get_user(1))
    assert started.wait(10)
    database[1] = "new"
    if invalidation == "invalidate":
        get_user.invalidate(1)
    else:
        get_user.invalidate_all()
    release.set()
    reader.join(10)

    assert result == ["old"]
    assert client.keys("user:*") == []
    assert get_user(1) == "new"


def test_decorator_hit_costs_one_round_trip_and_miss_two(
    client: CountingRedis, manager: CacheManager
) -> None:
    @manager.cache_aside("sq")
    def square(x: int) -> int:
        return x * x

    square(0)  # loads the scripts once
    client.sent.clear()
    assert square(3) == 9
    assert client.sent == ["SET", "EVALSHA"]
    client.sent.clear()
    assert square(3) == 9
    assert client.sent == ["SET"]


@dataclass(frozen=True)
class Point:
    x: int
    y: int


def test_decorator_with_signed_pickle_round_trips_python_objects(manager: CacheManager) -> None:
    loads: list[int] = []

    @manager.cache_aside("pt", serializer="pickle", hmac_key=HMAC_KEY)
    def point(x: int) -> Point:
        loads.append(x)
        return Point(x, -x)

    assert point(2) == Point(2, -2)
    assert point(2) == Point(2, -2)
    assert loads == [2]


def test_decorated_function_keeps_its_name_doc_and_wrapped(manager: CacheManager) -> None:
    def lookup(x: int) -> int:
        """Look x up."""
        return x

    cached = manager.cache_aside("p")(lookup)
    assert cached.__name__ == "lookup"  # type: ignore[attr-defined]
    assert cached.__doc__ == "Look x up."
    assert cached.__wrapped__ is lookup  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ttl": 0}, "ttl must be a number of seconds > 0"),
        ({"key_prefix": ""}, "prefix must be a non-empty string"),
        ({"key_builder": "id"}, "key_builder must be callable"),
        ({"serializer": "pickle"}, "requires hmac_key"),
    ],
    ids=repr,
)
def test_decorator_bad_options_are_refused_at_decoration(
    manager: CacheManager, options: dict[str, Any], message: str
) -> None:
    arguments = {"key_prefix": "p", **options}
    with pytest.raises(ConfigurationError, match=message):
        manager.cache_aside(**arguments)
