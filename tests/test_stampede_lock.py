"""StampedePrevention: one load per cold key across threads and processes, against real Redis.

Two ``StampedePrevention`` instances stand for two processes: each has its own
in-process single-flight, so between them only the Redis lock coordinates. The
two-process test uses real processes.
"""

from __future__ import annotations

import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import _stampede_worker
import pytest
import redis
from _helpers import CountingRedis, import_rendered, wait_until
from templategen.reference.errors import (
    CacheUnavailableError,
    ConfigurationError,
    LockTimeoutError,
)
from templategen.reference.stampede_lock import EXTEND_LUA, StampedePrevention


def counting_client(url: str) -> CountingRedis:
    return CountingRedis(connection_pool=redis.ConnectionPool.from_url(url))


class CountingLoader:
    """A loader that counts its runs; it may sleep, wait for a gate, then fail."""

    def __init__(
        self,
        value: Any = "loaded",
        *,
        seconds: float = 0.0,
        gate: threading.Event | None = None,
        error: Exception | None = None,
    ) -> None:
        self.value, self.seconds, self.gate, self.error = value, seconds, gate, error
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self) -> Any:
        with self._lock:
            self.calls += 1
        time.sleep(self.seconds)
        if self.gate is not None and not self.gate.wait(timeout=30):
            raise AssertionError("the test never opened the gate")
        if self.error is not None:
            raise self.error
        return self.value


def run_in_threads(count: int, call: Callable[[], Any]) -> list[Any]:
    """Run ``call`` in ``count`` threads released together; return results or exceptions."""
    barrier = threading.Barrier(count)

    def one() -> Any:
        barrier.wait(timeout=30)
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(lambda _: one(), range(count)))


def subscribers(client: redis.Redis, channel: str) -> int:
    return int(dict(client.pubsub_numsub(channel))[channel.encode()])


@pytest.fixture
def cache(redis_client: redis.Redis) -> StampedePrevention:
    return StampedePrevention(redis_client)


@pytest.fixture
def other_process(redis_url: str) -> Iterator[StampedePrevention]:
    """A second instance on its own client: to Redis, another process."""
    client = redis.Redis.from_url(redis_url)
    yield StampedePrevention(client)
    client.close()


# -- loading once ------------------------------------------------------------------------


@pytest.mark.slow
def test_cold_key_is_loaded_once_by_fifty_threads_in_two_processes(
    redis_client: redis.Redis, redis_url: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(50)
    results = ctx.Queue()
    processes = [
        ctx.Process(
            target=_stampede_worker.run,
            args=(redis_url, "report:daily", "loads", 25, barrier, results),
            daemon=True,
        )
        for _ in range(2)
    ]
    outcomes: list[Any] = []
    try:
        for process in processes:
            process.start()
        deadline = time.monotonic() + 60
        while len(outcomes) < 50:
            try:
                outcomes += results.get(timeout=1)
            except queue.Empty:
                # A worker that died would otherwise leave us waiting out the deadline.
                assert all(p.exitcode in (None, 0) for p in processes), "a worker failed"
                assert time.monotonic() < deadline, "workers did not report in 60 s"
        for process in processes:
            process.join(timeout=30)
            assert process.exitcode == 0
    finally:
        for process in processes:
            if process.is_alive():
                process.kill()
                process.join()

    assert redis_client.get("loads") == b"1"
    assert outcomes == [_stampede_worker.VALUE] * 50


@pytest.mark.slow
def test_cold_key_is_loaded_once_by_fifty_threads_in_one_process(redis_url: str) -> None:
    client = counting_client(redis_url)
    cache = StampedePrevention(client)
    loader = CountingLoader({"n": 1}, seconds=0.3)

    outcomes = run_in_threads(50, lambda: cache.cache_with_lock("cold", loader, ttl=60))

    assert loader.calls == 1
    assert outcomes == [{"n": 1}] * 50
    # Each thread reads once; then one flight locks and stores (a first EVALSHA of a
    # script may add NOSCRIPT + SCRIPT LOAD). Waiting threads send nothing: a polling
    # waiter would add a command per poll.
    assert client.sent.count("GET") == 50
    assert len(client.sent) <= 50 + 2 * 3
    client.close()


def test_value_is_stored_as_json_with_the_ttl_and_served_from_redis(
    cache: StampedePrevention, redis_client: redis.Redis
) -> None:
    loader = CountingLoader({"a": [1, 2]})

    assert cache.cache_with_lock("k", loader, ttl=30) == {"a": [1, 2]}
    assert cache.cache_with_lock("k", loader, ttl=30) == {"a": [1, 2]}

    assert loader.calls == 1
    assert redis_client.get("k") == b'{"a":[1,2]}'
    assert 29_000 < redis_client.pttl("k") <= 30_000
    assert not redis_client.exists("lock:k")


@pytest.mark.parametrize("falsy", [None, 0, "", [], {}, False])
def test_falsy_values_are_cached_like_any_other(cache: StampedePrevention, falsy: Any) -> None:
    loader = CountingLoader(falsy)

    assert cache.cache_with_lock("k", loader) == falsy
    assert cache.cache_with_lock("k", loader) == falsy
    assert loader.calls == 1


def test_each_caller_gets_its_own_copy_of_a_shared_load(cache: StampedePrevention) -> None:
    loader = CountingLoader({"items": []}, seconds=0.2)

    outcomes = run_in_threads(5, lambda: cache.cache_with_lock("k", loader))

    assert loader.calls == 1
    assert len({id(outcome) for outcome in outcomes}) == 5


def test_undecodable_value_is_deleted_and_reloaded(
    cache: StampedePrevention, redis_client: redis.Redis
) -> None:
    redis_client.set("k", b"\xff not json")

    assert cache.cache_with_lock("k", CountingLoader("fresh")) == "fresh"
    assert redis_client.get("k") == b'"fresh"'


# -- key layout --------------------------------------------------------------------------


def test_without_a_prefix_the_cache_key_is_the_redis_key(
    cache: StampedePrevention, redis_client: redis.Redis
) -> None:
    cache.cache_with_lock("report:daily", CountingLoader("v"))

    assert redis_client.keys("*") == [b"report:daily"]


def test_prefix_namespaces_the_value_and_the_lock_as_rendered_files_do(
    redis_client: redis.Redis,
) -> None:
    cache = StampedePrevention(redis_client, prefix="app", lock_prefix="lk:")
    go = threading.Event()
    with ThreadPoolExecutor(1) as pool:
        loading = pool.submit(cache.cache_with_lock, "report", CountingLoader([1], gate=go), 30)
        wait_until(lambda: redis_client.exists("lk:app:report") == 1)  # held while loading
        go.set()
        assert loading.result() == [1]

    assert redis_client.keys("*") == [b"app:report"]  # the lock is gone
    assert redis_client.get("app:report") == b"[1]"
    assert 29_000 < redis_client.pttl("app:report") <= 30_000
    with cache.distributed_lock("report") as held:
        assert held
        assert redis_client.exists("lk:app:report")  # the lock cache_with_lock takes


def test_prefixed_reference_and_rendered_file_share_values_and_locks(
    redis_client: redis.Redis, tmp_path: Path
) -> None:
    rendered = import_rendered("stampede-lock", {"key_prefix": "app"}, tmp_path)
    ours = StampedePrevention(redis_client, prefix="app")
    theirs = rendered.StampedeLockCache(redis_client)

    assert ours.cache_with_lock("k", CountingLoader("stored by the reference")) == (
        "stored by the reference"
    )
    unused = CountingLoader("never")
    assert theirs.cache_with_lock("k", unused) == "stored by the reference"
    assert unused.calls == 0
    with theirs.distributed_lock("job") as first, ours.distributed_lock("job") as second:
        assert (first, second) == (True, False)


# -- waiting -----------------------------------------------------------------------------


def test_waiter_in_another_process_is_woken_by_the_value_without_polling(
    cache: StampedePrevention, redis_client: redis.Redis, redis_url: str
) -> None:
    # poll_interval is longer than wait_timeout: only the published value can wake it.
    waiter_client = counting_client(redis_url)
    waiter = StampedePrevention(waiter_client, wait_timeout=30, poll_interval=60)
    go = threading.Event()
    loader = CountingLoader("v", gate=go)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.cache_with_lock, "k", loader)
        wait_until(lambda: redis_client.exists("lock:k") == 1)
        waiting = pool.submit(waiter.cache_with_lock, "k", CountingLoader("never"))
        wait_until(lambda: subscribers(redis_client, "lock:k") == 1)
        go.set()

        wait_until(waiting.done, timeout=5)  # far less than its 30 s deadline
        assert waiting.result() == "v"
        assert first.result() == "v"

    assert loader.calls == 1
    # GET, then the lock attempt, then the re-check after SUBSCRIBE; the value itself
    # arrives in the message, so no read follows the wake-up.
    assert waiter_client.sent == ["GET", "EVALSHA", "EVALSHA"]
    waiter_client.close()


def test_waiter_whose_deadline_passes_gets_lock_timeout_error(
    redis_client: redis.Redis,
) -> None:
    redis_client.set("lock:k", "someone-else", px=60_000)
    cache = StampedePrevention(redis_client, wait_timeout=0.3, poll_interval=0.1)
    loader = CountingLoader()

    with pytest.raises(LockTimeoutError, match="'lock:k' is still held"):
        cache.cache_with_lock("k", loader)
    assert loader.calls == 0


def test_waiter_takes_over_when_the_holder_dies_and_its_lock_expires(
    redis_client: redis.Redis,
) -> None:
    # A killed holder leaves a lock nobody extends and no message: the poll finds it gone.
    redis_client.set("lock:k", "dead-process", px=300)
    cache = StampedePrevention(redis_client, wait_timeout=10, poll_interval=0.1)
    loader = CountingLoader("mine")

    assert cache.cache_with_lock("k", loader) == "mine"
    assert loader.calls == 1


def test_thread_waiting_on_a_slow_load_in_its_process_gets_lock_timeout_error(
    redis_client: redis.Redis,
) -> None:
    cache = StampedePrevention(redis_client, wait_timeout=0.2)
    finish = threading.Event()
    loader = CountingLoader("slow", gate=finish)
    with ThreadPoolExecutor(1) as pool:
        leader = pool.submit(cache.cache_with_lock, "k", loader)
        wait_until(lambda: loader.calls == 1)

        with pytest.raises(LockTimeoutError, match="another thread of this process"):
            cache.cache_with_lock("k", CountingLoader("never"))
        finish.set()
        assert leader.result() == "slow"


# -- the lock's lifetime -----------------------------------------------------------------


@pytest.mark.slow
def test_watchdog_keeps_the_lock_through_a_load_longer_than_lock_timeout(
    redis_client: redis.Redis, redis_url: str
) -> None:
    cache = StampedePrevention(redis_client, lock_timeout=0.3)
    seen: dict[str, Any] = {}
    loads = CountingLoader()

    def loader() -> str:
        loads()
        seen["token_at_start"] = redis_client.get("lock:k")
        time.sleep(1.0)  # more than three lock timeouts
        seen["token_at_end"] = redis_client.get("lock:k")
        return "v"

    other_client = redis.Redis.from_url(redis_url)
    other = StampedePrevention(other_client, wait_timeout=10)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(cache.cache_with_lock, "k", loader)
        wait_until(lambda: loads.calls == 1)
        time.sleep(0.6)  # the original expiry has long passed
        assert other.cache_with_lock("k", CountingLoader("second load")) == "v"
        assert first.result() == "v"

    assert loads.calls == 1
    assert seen["token_at_start"] is not None
    assert seen["token_at_end"] == seen["token_at_start"]
    assert not redis_client.exists("lock:k")
    other_client.close()


def test_watchdog_logs_when_it_finds_the_lock_lost(
    cache: StampedePrevention, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="templategen.reference")
    with cache.distributed_lock("job", timeout=0.3) as acquired:
        assert acquired
        redis_client.delete("lock:job")
        wait_until(lambda: "lock lock:job was lost" in caplog.text)


def test_loader_exception_releases_the_lock_and_reaches_the_caller(
    cache: StampedePrevention, redis_client: redis.Redis
) -> None:
    with pytest.raises(ValueError, match="database down"):
        cache.cache_with_lock("k", CountingLoader(error=ValueError("database down")))

    assert not redis_client.exists("lock:k")
    assert not redis_client.exists("k")
    assert cache.cache_with_lock("k", CountingLoader("recovered")) == "recovered"


def test_threads_sharing_a_failed_load_all_get_its_exception(
    cache: StampedePrevention,
) -> None:
    loader = CountingLoader(seconds=0.2, error=ValueError("database down"))

    outcomes = run_in_threads(10, lambda: cache.cache_with_lock("k", loader))

    assert loader.calls == 1
    assert all(isinstance(outcome, ValueError) for outcome in outcomes)


def test_loader_timeout_error_is_not_mistaken_for_a_lock_timeout(
    cache: StampedePrevention,
) -> None:
    loader = CountingLoader(seconds=0.2, error=TimeoutError("query timed out"))

    outcomes = run_in_threads(4, lambda: cache.cache_with_lock("k", loader))

    assert loader.calls == 1
    assert all(type(outcome) is TimeoutError for outcome in outcomes)


def test_waiter_in_another_process_retries_the_lock_when_the_load_fails(
    cache: StampedePrevention, redis_client: redis.Redis, redis_url: str
) -> None:
    # Woken only by the release message (poll_interval > wait_timeout).
    waiter_client = redis.Redis.from_url(redis_url)
    waiter = StampedePrevention(waiter_client, wait_timeout=30, poll_interval=60)
    go = threading.Event()
    failing = CountingLoader(gate=go, error=ValueError("database down"))
    second = CountingLoader("second try")
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(cache.cache_with_lock, "k", failing)
        wait_until(lambda: redis_client.exists("lock:k") == 1)
        waiting = pool.submit(waiter.cache_with_lock, "k", second)
        wait_until(lambda: subscribers(redis_client, "lock:k") == 1)
        go.set()

        wait_until(waiting.done, timeout=5)  # far less than its 30 s deadline
        assert waiting.result() == "second try"
        with pytest.raises(ValueError):
            first.result()

    assert (failing.calls, second.calls) == (1, 1)
    waiter_client.close()


# -- the bare lock -----------------------------------------------------------------------


def test_distributed_lock_is_exclusive_and_released_on_exit(
    cache: StampedePrevention, other_process: StampedePrevention, redis_client: redis.Redis
) -> None:
    with cache.distributed_lock("job") as first:
        with other_process.distributed_lock("job") as second:
            assert (first, second) == (True, False)
        assert redis_client.exists("lock:job")  # the loser's exit did not release it
        assert 9_000 < redis_client.pttl("lock:job") <= 10_000
    assert not redis_client.exists("lock:job")
    with other_process.distributed_lock("job") as third:
        assert third


def test_release_never_deletes_another_owners_lock(
    cache: StampedePrevention, redis_client: redis.Redis
) -> None:
    with cache.distributed_lock("job") as acquired:
        assert acquired
        # Our lock expired and another owner took it.
        redis_client.set("lock:job", "other-owner", px=60_000)

    assert redis_client.get("lock:job") == b"other-owner"


def test_extend_never_extends_another_owners_lock(redis_client: redis.Redis) -> None:
    extend = redis_client.register_script(EXTEND_LUA)
    redis_client.set("lock:job", "other-owner", px=5_000)

    assert extend(keys=["lock:job"], args=["my-token", 60_000]) == 0
    assert redis_client.pttl("lock:job") <= 5_000
    assert extend(keys=["lock:job"], args=["other-owner", 60_000]) == 1
    assert redis_client.pttl("lock:job") > 5_000


# -- outages and bad input ---------------------------------------------------------------


def test_redis_outage_fails_open_to_the_loader(
    stopped_redis: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    cache = StampedePrevention(stopped_redis)
    loader = CountingLoader({"v": 1})

    assert cache.cache_with_lock("k", loader) == {"v": 1}
    assert loader.calls == 1
    assert "Redis unavailable" in caplog.text


def test_redis_outage_raises_cache_unavailable_when_fail_open_is_off(
    stopped_redis: redis.Redis,
) -> None:
    cache = StampedePrevention(stopped_redis, fail_open=False)
    loader = CountingLoader()

    with pytest.raises(CacheUnavailableError):
        cache.cache_with_lock("k", loader)
    assert loader.calls == 0


def test_distributed_lock_never_fails_open(stopped_redis: redis.Redis) -> None:
    cache = StampedePrevention(stopped_redis)

    with pytest.raises(CacheUnavailableError), cache.distributed_lock("job"):
        pytest.fail("the block must not run without the lock")


@pytest.mark.parametrize(
    "options",
    [
        {"lock_timeout": 0},
        {"lock_timeout": -1},
        {"lock_timeout": "10"},
        {"lock_timeout": True},
        {"wait_timeout": 0},
        {"poll_interval": 0},
        {"lock_prefix": ""},
        {"prefix": ""},
        {"prefix": b"app"},
        {"serializer": "xml"},
        {"serializer": "pickle"},
        {"fail_open": "yes"},
    ],
)
def test_bad_options_raise_configuration_error(
    redis_client: redis.Redis, options: dict[str, Any]
) -> None:
    with pytest.raises(ConfigurationError):
        StampedePrevention(redis_client, **options)


def test_text_client_is_refused(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="decode_responses"):
        StampedePrevention(redis.Redis.from_url(redis_url, decode_responses=True))


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.cache_with_lock("k", CountingLoader(), ttl=0),
        lambda c: c.cache_with_lock("k", CountingLoader(), ttl=-5),
        lambda c: c.cache_with_lock("k", "not callable"),
        lambda c: c.cache_with_lock(42, CountingLoader()),
        lambda c: c.distributed_lock("job", timeout=0).__enter__(),
    ],
)
def test_bad_arguments_raise_configuration_error(
    cache: StampedePrevention, call: Callable[[StampedePrevention], Any]
) -> None:
    with pytest.raises(ConfigurationError):
        call(cache)
