"""EarlyRefreshCache (XFetch) against a real Redis, with an injected clock and random source."""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from _helpers import CountingRedis, import_rendered, wait_until
from templategen.reference.early_refresh import EarlyRefreshCache
from templategen.reference.errors import CacheUnavailableError, ConfigurationError

START = 1000.0  # the fake clock's epoch seconds when an entry is first loaded
COST = 0.2  # seconds the first load takes on the fake clock: the entry's delta
TTL = 10.0  # so the entry expires at START + COST + TTL = 1010.2


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Draws:
    """The random source: returns ``r`` until told otherwise."""

    def __init__(self, r: float = 1.0) -> None:
        self.r = r

    def __call__(self) -> float:
        return self.r


class Loader:
    """Counts runs; advances the fake clock by ``cost``; may fail."""

    def __init__(
        self,
        value: Any = "v",
        *,
        clock: FakeClock | None = None,
        cost: float = 0.0,
        error: Exception | None = None,
    ) -> None:
        self.value, self.clock, self.cost, self.error = value, clock, cost, error
        self.calls = 0
        self.threads: list[str] = []
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
            self.threads.append(threading.current_thread().name)
        if self.clock is not None:
            self.clock.now += self.cost
        if self.error is not None:
            raise self.error
        return self.value


def stored(client: redis.Redis, key: str) -> bytes:
    data = client.get(key)
    return data if isinstance(data, bytes) else b""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def draws() -> Draws:
    return Draws()


def make_cache(
    client: redis.Redis, clock: FakeClock, draws: Draws, **options: Any
) -> EarlyRefreshCache:
    return EarlyRefreshCache(client, clock=clock, rand=draws, **options)


def fill(cache: EarlyRefreshCache, clock: FakeClock, value: Any = "old") -> None:
    """Store ``value`` at START with delta = COST, expiring at START + COST + TTL."""
    clock.now = START
    assert cache.get_with_refresh("k", Loader(value, clock=clock, cost=COST), ttl=TTL) == value


# -- the envelope ------------------------------------------------------------------------


def test_entry_is_one_envelope_string_with_expiry_and_recompute_time(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws
) -> None:
    cache = make_cache(redis_client, clock, draws)
    clock.now = START
    loader = Loader({"a": 1}, clock=clock, cost=0.25)

    assert cache.get_with_refresh("k", loader, ttl=60) == {"a": 1}

    assert redis_client.get("k") == b'\xc1xf1:1060250:250:{"a":1}'
    assert 59_000 < redis_client.pttl("k") <= 60_000


@pytest.mark.parametrize("falsy", [None, 0, "", [], {}, False])
def test_falsy_values_are_cached_like_any_other(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws, falsy: Any
) -> None:
    cache = make_cache(redis_client, clock, draws)
    loader = Loader(falsy)

    assert cache.get_with_refresh("k", loader) == falsy
    assert cache.get_with_refresh("k", loader) == falsy
    assert loader.calls == 1


def test_value_outside_an_envelope_is_a_miss_and_is_overwritten(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws
) -> None:
    redis_client.set("k", b'"written by someone else"')
    cache = make_cache(redis_client, clock, draws)

    assert cache.get_with_refresh("k", Loader("mine")) == "mine"
    assert stored(redis_client, "k").endswith(b':"mine"')


def test_prefix_namespaces_the_entry_and_the_refresh_lock_as_rendered_files_do(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws
) -> None:
    cache = make_cache(redis_client, clock, draws, prefix="app", lock_prefix="rl:")
    fill(cache, clock)
    assert redis_client.keys("*") == [b"app:k"]
    assert redis_client.get("app:k") == b'\xc1xf1:1010200:200:"old"'
    clock.now = EXPIRY  # due whatever r is
    locks_seen: list[bytes | None] = []

    def refresh() -> str:
        locks_seen.append(redis_client.get("rl:app:k"))
        return "new"

    assert cache.get_with_refresh("k", refresh, ttl=TTL) == "new"
    assert locks_seen != [None]  # the refresh ran under rl:app:k
    assert redis_client.keys("*") == [b"app:k"]  # and released it
    assert stored(redis_client, "app:k").endswith(b':"new"')


def test_prefixed_reference_and_rendered_file_share_entries(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws, tmp_path: Path
) -> None:
    rendered = import_rendered("early-refresh", {"key_prefix": "app"}, tmp_path)
    ours = make_cache(redis_client, clock, draws, prefix="app")
    theirs = rendered.EarlyRefreshCache(redis_client, clock=clock, rand=draws)

    fill(ours, clock)
    unused = Loader("never")
    assert theirs.get_with_refresh("k", unused, ttl=TTL) == "old"
    assert unused.calls == 0
    assert redis_client.keys("*") == [b"app:k"]


def test_hit_is_one_round_trip(redis_url: str, clock: FakeClock, draws: Draws) -> None:
    client = CountingRedis(connection_pool=redis.ConnectionPool.from_url(redis_url))
    client.flushall()
    cache = make_cache(client, clock, draws)
    fill(cache, clock)
    client.sent.clear()
    clock.now = START + 5

    for _ in range(20):
        assert cache.get_with_refresh("k", Loader("new"), ttl=TTL) == "old"

    assert client.sent == ["GET"] * 20
    client.connection_pool.disconnect()


# -- the decision ------------------------------------------------------------------------


def xfetch(now: float, delta: float, beta: float, expiry: float, r: float) -> bool:
    return now - delta * beta * math.log(r) >= expiry


EXPIRY = START + COST + TTL


@pytest.mark.parametrize(
    ("now", "r", "beta", "refresh"),
    [
        # 1 s before expiry, beta 1: refresh iff -ln(r) >= 1 / 0.2, i.e. r <= e**-5.
        (EXPIRY - 1, 0.0067, 1.0, True),
        (EXPIRY - 1, 0.0068, 1.0, False),
        # beta 2 doubles the window: r <= e**-2.5 = 0.08208...
        (EXPIRY - 1, 0.0820, 2.0, True),
        (EXPIRY - 1, 0.0821, 2.0, False),
        # r = 1 draws no head start: refresh exactly at expiry, not before.
        (EXPIRY, 1.0, 1.0, True),
        (EXPIRY - 0.1, 1.0, 1.0, False),
        # beta 0 disables early refresh however small r is.
        (EXPIRY - 0.1, 1e-300, 0.0, False),
        # Just after the load, only an absurdly small r refreshes.
        (START + COST + 0.1, 1e-9, 1.0, False),
        (START + COST + 0.1, 1e-30, 1.0, True),
    ],
)
def test_refresh_decision_is_the_xfetch_formula(
    redis_client: redis.Redis,
    clock: FakeClock,
    draws: Draws,
    now: float,
    r: float,
    beta: float,
    refresh: bool,
) -> None:
    assert xfetch(now, COST, beta, EXPIRY, r) is refresh  # the table matches the paper
    cache = make_cache(redis_client, clock, draws)
    fill(cache, clock)
    clock.now, draws.r = now, r
    loader = Loader("new")

    result = cache.get_with_refresh("k", loader, ttl=TTL, beta=beta)

    assert loader.calls == (1 if refresh else 0)
    assert result == ("new" if refresh else "old")


def test_default_random_source_never_takes_the_log_of_zero(
    redis_client: redis.Redis, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = EarlyRefreshCache(redis_client, clock=clock)
    fill(cache, clock)
    monkeypatch.setattr(random, "random", lambda: 0.0)  # the draw that would be ln(0)

    assert cache.get_with_refresh("k", Loader("new"), ttl=TTL) == "old"


# -- refreshing --------------------------------------------------------------------------


def test_refresh_is_skipped_while_another_process_holds_the_refresh_lock(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws
) -> None:
    cache = make_cache(redis_client, clock, draws)
    fill(cache, clock)
    redis_client.set("refresh-lock:k", "another-process", px=60_000)
    clock.now = EXPIRY  # due whatever r is
    loader = Loader("new")

    assert cache.get_with_refresh("k", loader, ttl=TTL) == "old"
    assert loader.calls == 0
    assert redis_client.get("refresh-lock:k") == b"another-process"


def test_refresh_stores_the_new_entry_and_releases_its_lock(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws
) -> None:
    cache = make_cache(redis_client, clock, draws)
    fill(cache, clock)
    clock.now = EXPIRY

    assert cache.get_with_refresh("k", Loader("new", clock=clock, cost=0.5), ttl=TTL) == "new"
    assert redis_client.get("k") == b'\xc1xf1:1020700:500:"new"'
    assert not redis_client.exists("refresh-lock:k")


def test_background_refresh_returns_the_current_value_and_stores_the_new_one(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws
) -> None:
    cache = make_cache(redis_client, clock, draws, background=True)
    fill(cache, clock)
    clock.now = EXPIRY
    loader = Loader("new")

    assert cache.get_with_refresh("k", loader, ttl=TTL) == "old"
    wait_until(lambda: stored(redis_client, "k").endswith(b':"new"'))
    wait_until(lambda: not redis_client.exists("refresh-lock:k"))
    assert loader.calls == 1
    assert loader.threads == ["early-refresh:k"]


def test_refresh_does_not_bring_back_a_key_invalidated_during_it(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws
) -> None:
    cache = make_cache(redis_client, clock, draws)
    fill(cache, clock)
    clock.now = EXPIRY

    def loader_racing_an_invalidation() -> str:
        redis_client.delete("k")  # a writer invalidates while the refresh loads
        return "loaded before the write"

    cache.get_with_refresh("k", loader_racing_an_invalidation, ttl=TTL)

    assert not redis_client.exists("k")


@pytest.mark.parametrize("background", [False, True])
def test_failed_refresh_keeps_serving_the_current_value_and_logs(
    redis_client: redis.Redis,
    clock: FakeClock,
    draws: Draws,
    caplog: pytest.LogCaptureFixture,
    background: bool,
) -> None:
    caplog.set_level(logging.WARNING, logger="templategen.reference")
    cache = make_cache(redis_client, clock, draws, background=background)
    fill(cache, clock)
    before = stored(redis_client, "k")
    clock.now = EXPIRY
    failing = Loader(error=ValueError("database down"))

    assert cache.get_with_refresh("k", failing, ttl=TTL) == "old"
    wait_until(lambda: "early refresh of k failed" in caplog.text)
    wait_until(lambda: not redis_client.exists("refresh-lock:k"))
    assert failing.calls == 1
    assert stored(redis_client, "k") == before
    clock.now = EXPIRY - 1
    assert cache.get_with_refresh("k", Loader("unused"), ttl=TTL, beta=0) == "old"


def test_loader_error_on_a_miss_reaches_the_caller(
    redis_client: redis.Redis, clock: FakeClock, draws: Draws
) -> None:
    cache = make_cache(redis_client, clock, draws)

    with pytest.raises(ValueError, match="database down"):
        cache.get_with_refresh("k", Loader(error=ValueError("database down")))
    assert not redis_client.exists("k")


@pytest.mark.slow
def test_steady_load_refreshes_in_the_background_about_once_per_ttl(
    redis_client: redis.Redis,
) -> None:
    # Real clock and randomness: 8 readers for 3 s, ttl 1 s, a 100 ms loader. The
    # refresh window grows with the load time (delta), so refreshes start a few hundred
    # ms before expiry and a refresher that a loaded machine schedules late still ends
    # in time: the counts below do not depend on how fast the machine is.
    cache = EarlyRefreshCache(redis_client, background=True)
    loads = Loader()

    def loader() -> str:
        loads()
        time.sleep(0.1)
        return "v"

    assert cache.get_with_refresh("hot", loader, ttl=1.0) == "v"  # warm-up, in this thread
    readers_done = threading.Event()
    reads: list[int] = []
    wrong: list[Any] = []

    def reader() -> None:
        count = 0
        while not readers_done.is_set():
            value = cache.get_with_refresh("hot", loader, ttl=1.0)
            if value != "v":
                wrong.append(value)
            count += 1
            time.sleep(0.002)
        reads.append(count)

    threads = [threading.Thread(target=reader, name=f"reader-{i}") for i in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(3.0)
    readers_done.set()
    for thread in threads:
        thread.join()

    assert wrong == []
    # No reader ran the loader (nor waited for it): every load after the warm-up ran in
    # a background refresher, so no key expired under the readers.
    assert [name for name in loads.threads if name.startswith("reader")] == []
    assert loads.threads[0] == threading.current_thread().name
    # About one load per ttl period (3 periods: ~4 loads). A linear-probability or an
    # always-refresh scheme, with hundreds of reads, reloads as soon as the refresh
    # lock frees: dozens of loads.
    assert 2 <= loads.calls <= 12, loads.calls
    assert sum(reads) > 200


# -- outages and bad input ---------------------------------------------------------------


def test_redis_outage_fails_open_to_the_loader(
    stopped_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = EarlyRefreshCache(stopped_redis)
    loader = Loader({"v": 1})

    assert cache.get_with_refresh("k", loader) == {"v": 1}
    assert loader.calls == 1
    assert "Redis unavailable" in caplog.text


def test_redis_outage_raises_cache_unavailable_when_fail_open_is_off(
    stopped_redis: redis.Redis,
) -> None:
    cache = EarlyRefreshCache(stopped_redis, fail_open=False)
    loader = Loader()

    with pytest.raises(CacheUnavailableError):
        cache.get_with_refresh("k", loader)
    assert loader.calls == 0


@pytest.mark.parametrize(
    "options",
    [
        {"lock_timeout": 0},
        {"lock_prefix": ""},
        {"serializer": "xml"},
        {"prefix": ""},
        {"prefix": b"app"},
        {"background": "yes"},
        {"fail_open": 1},
        {"clock": 1000.0},
        {"rand": 0.5},
    ],
)
def test_bad_options_raise_configuration_error(
    redis_client: redis.Redis, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        EarlyRefreshCache(redis_client, **options)


@pytest.mark.parametrize(
    ("arguments", "complaint"),
    [
        ({"beta": -0.5}, "beta must be a finite number >= 0"),
        ({"beta": math.nan}, "beta must be a finite number >= 0"),
        ({"beta": "1"}, "beta must be a finite number >= 0"),
        ({"ttl": 0}, "ttl must be"),
        ({"ttl": -1}, "ttl must be"),
        ({"loader": "not callable"}, "loader must be callable"),
    ],
)
def test_bad_arguments_raise_configuration_error(
    redis_client: redis.Redis, arguments: dict[str, Any], complaint: str
) -> None:
    cache = EarlyRefreshCache(redis_client)
    call: dict[str, Any] = {"key": "k", "loader": Loader(), **arguments}

    with pytest.raises(ConfigurationError, match=complaint):
        cache.get_with_refresh(**call)
    assert not redis_client.exists("k")
