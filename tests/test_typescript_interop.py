"""The rendered TypeScript next to the rendered Python on one Redis, and without Redis.

Interop: with the json serializer, what one language caches is a hit for the other, an
invalidation in either is seen by both, and a lease or lock taken by one holds against
the other. Outages: a TypeScript cache that fails open serves from the loader (one
warning per outage); one that does not says "unavailable" before the loader runs.
Both languages are driven through their behaviour-suite drivers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import redis
from templategen.reference.stampede_lock import StampedePrevention

from templategen.engine import render
from templategen.redis_server import RedisServer
from templategen.suite.driver import PROTOCOL_VERSION, DriverProcess
from templategen.suite.targets import rendered_target


class Driven:
    """One rendered file behind its driver: ``op`` sends a step and checks it succeeded."""

    def __init__(self, driver: DriverProcess, name: str) -> None:
        self.driver = driver
        self.name = name

    def request(self, op: str, args: Mapping[str, Any] | None = None, **extra: Any) -> Any:
        return self.driver.request({"op": op, "args": dict(args or {}), **extra})

    def op(self, op: str, args: Mapping[str, Any] | None = None, **extra: Any) -> Any:
        response = self.request(op, args, **extra)
        assert response["ok"], f"{self.name} {op}: {response}\n{self.driver.stderr_tail()}"
        return response["value"]

    def calls(self) -> int:
        return int(self.request("hello")["loader_calls"])


def _start(
    pattern: str, language: str, options: Mapping[str, Any], url: str, workdir: Path
) -> Driven:
    rendered = render(pattern, language, dict(options))
    target = rendered_target(rendered, workdir / language, language)
    driver = DriverProcess(target.command, env=target.env, cwd=target.cwd)
    assert driver.request({"op": "hello", "protocol": PROTOCOL_VERSION})["ok"]
    configured = driver.request(
        {"op": "configure", "pattern": pattern, "options": dict(target.options), "redis_url": url}
    )
    assert configured["ok"], configured
    assert driver.request({"op": "reset"})["ok"]
    return Driven(driver, language)


@pytest.fixture
def pair(
    request: pytest.FixtureRequest, redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[Driven, Driven]]:
    """(python, typescript) renderings of the test's pattern with the same options."""
    pattern: str = request.param
    redis.Redis.from_url(redis_server.url).flushall()
    python = _start(pattern, "python", {}, redis_server.url, tmp_path)
    typescript = _start(pattern, "typescript", {}, redis_server.url, tmp_path)
    yield python, typescript
    python.driver.close()
    typescript.driver.close()


VALUE = {"name": "é🐍", "n": [1, 2.5, None, True], "empty": {}}


@pytest.mark.parametrize("pair", ["cache-aside"], indirect=True)
def test_cache_aside_values_and_invalidations_cross_languages(pair) -> None:
    py, ts = pair
    assert py.op("get", {"key": "shared"}, loader={"value": VALUE}) == VALUE
    assert ts.op("get", {"key": "shared"}, loader={"value": "loaded"}) == VALUE
    assert ts.calls() == 0
    ts.op("set", {"key": "t", "value": [0, "", False]})
    assert py.op("get", {"key": "t"}, loader={"value": "loaded"}) == [0, "", False]
    assert py.calls() == 1
    # An invalidation in either is seen by both.
    assert py.op("delete", {"key": "shared"}) is True
    assert ts.op("get", {"key": "shared"}, loader={"value": 2}) == 2
    assert py.op("get", {"key": "shared"}, loader={"value": 3}) == 2
    assert ts.op("delete", {"key": "t"}) is True
    assert py.op("get", {"key": "t"}, loader={"value": "p"}) == "p"
    assert (py.calls(), ts.calls()) == (2, 1)
    assert ts.op("delete_pattern", {"pattern": "*"}) == 2
    assert py.op("get", {"key": "shared"}, loader={"value": 4}) == 4


@pytest.mark.parametrize("pair", ["cache-aside"], indirect=True)
def test_cache_aside_lease_of_one_language_is_revoked_by_the_other(pair) -> None:
    py, ts = pair
    # TypeScript loads under its lease; Python deletes; the late fill must not land.
    ts.op("get", {"key": "race"}, loader={"value": "stale", "block": "g"}, **{"async": "h"})
    py.op("delete", {"key": "race"})
    ts.op("release", {"gate": "g"})
    assert ts.op("await", {"handle": "h"}) == "stale"
    assert py.op("get", {"key": "race"}, loader={"value": "fresh"}) == "fresh"
    # Python loads under its lease; TypeScript sets; the set wins.
    py.op("get", {"key": "race2"}, loader={"value": "stale", "block": "g"}, **{"async": "h"})
    ts.op("set", {"key": "race2", "value": "new"})
    py.op("release", {"gate": "g"})
    assert py.op("await", {"handle": "h"}) == "stale"
    assert ts.op("get", {"key": "race2"}, loader={"value": "loaded"}) == "new"


@pytest.mark.parametrize("pair", ["stampede-lock"], indirect=True)
def test_stampede_lock_values_and_locks_cross_languages(pair) -> None:
    py, ts = pair
    assert py.op("get", {"key": "k"}, loader={"value": VALUE}) == VALUE
    assert ts.op("get", {"key": "k"}, loader={"value": "loaded"}) == VALUE
    assert ts.op("get", {"key": "k2"}, loader={"value": [1]}) == [1]
    assert py.op("get", {"key": "k2"}, loader={"value": "loaded"}) == [1]
    assert (py.calls(), ts.calls()) == (1, 1)
    # A lock held by TypeScript excludes Python, and the other way round.
    ts.op("lock", {"key": "job"}, loader={"block": "g"}, **{"async": "h"})
    assert py.op("lock", {"key": "job"}) is False
    ts.op("release", {"gate": "g"})
    assert ts.op("await", {"handle": "h"}) is True
    py.op("lock", {"key": "job"}, loader={"block": "g"}, **{"async": "h"})
    assert ts.op("lock", {"key": "job"}) is False
    py.op("release", {"gate": "g"})
    assert py.op("await", {"handle": "h"}) is True


@pytest.mark.parametrize("pair", ["stampede-lock"], indirect=True)
def test_stampede_lock_python_waiter_gets_the_typescript_load(pair, redis_server) -> None:
    """A Python caller that finds TypeScript's load lock waits for its value.

    A driver answers an async op only once its loader is parked at a gate, so the
    waiter here is the reference in a thread of the test, on the same keys.
    """
    _, ts = pair
    ts.op("get", {"key": "cold"}, loader={"value": "once", "block": "g"}, **{"async": "h"})
    waiter = StampedePrevention(redis.Redis.from_url(redis_server.url))
    loads: list[str] = []
    got: list[object] = []

    def load() -> str:
        loads.append("python")
        return "twice"

    thread = threading.Thread(
        target=lambda: got.append(waiter.cache_with_lock("stampede:cold", load))
    )
    thread.start()
    time.sleep(0.3)  # not a timing assert: the waiter gets "once" early or late
    ts.op("release", {"gate": "g"})
    assert ts.op("await", {"handle": "h"}) == "once"
    thread.join(timeout=20)
    assert got == ["once"]
    assert loads == []


@pytest.mark.parametrize("pair", ["early-refresh"], indirect=True)
def test_early_refresh_envelopes_cross_languages(pair) -> None:
    py, ts = pair
    assert py.op("get", {"key": "k", "load_ms": 40}, loader={"value": VALUE}) == VALUE
    assert ts.op("get", {"key": "k"}, loader={"value": "loaded"}) == VALUE
    assert ts.op("get", {"key": "k2", "load_ms": 7}, loader={"value": 0}) == 0
    assert py.op("get", {"key": "k2"}, loader={"value": "loaded"}) == 0
    assert (py.calls(), ts.calls()) == (1, 1)


# --- outages -----------------------------------------------------------------------------


def _typescript_on(
    server: RedisServer, pattern: str, options: Mapping[str, Any], tmp_path: Path
) -> Driven:
    return _start(pattern, "typescript", options, server.url, tmp_path)


@pytest.mark.slow
def test_cache_aside_fails_open_with_one_warning_per_outage(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    ts = _typescript_on(private_redis, "cache-aside", {}, tmp_path)
    try:
        assert ts.op("get", {"key": "k"}, loader={"value": 1}) == 1
        private_redis.stop()
        for n in (2, 3, 4):
            assert ts.op("get", {"key": "k"}, loader={"value": n}) == n
        assert ts.op("set", {"key": "k", "value": 5}) is None
        assert ts.op("delete", {"key": "k"}) is False
        assert ts.driver.stderr_tail().count("Redis unavailable") == 1
        private_redis.start()
        client = redis.Redis.from_url(private_redis.url)
        deadline = time.monotonic() + 15
        # Served from the loader until the client has reconnected; then cached again.
        while not client.exists("cache:back") and time.monotonic() < deadline:
            assert ts.op("get", {"key": "back"}, loader={"value": 6}) == 6
            time.sleep(0.1)
        assert client.exists("cache:back")
        assert "Redis reachable again" in ts.driver.stderr_tail()
    finally:
        ts.driver.close()


@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["cache-aside", "stampede-lock", "early-refresh"])
def test_without_fail_open_an_outage_is_unavailable_before_the_loader_runs(
    private_redis: RedisServer, tmp_path: Path, pattern: str
) -> None:
    ts = _typescript_on(private_redis, pattern, {"fail_open": False}, tmp_path)
    try:
        private_redis.stop()
        response = ts.request("get", {"key": "k"}, loader={"value": 1})
        assert not response["ok"]
        assert response["error"]["kind"] == "unavailable", response
        assert response["loader_calls"] == 0
    finally:
        ts.driver.close()


@pytest.mark.slow
def test_stampede_lock_fails_open_but_its_bare_lock_never_does(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    ts = _typescript_on(private_redis, "stampede-lock", {}, tmp_path)
    try:
        private_redis.stop()
        assert ts.op("get", {"key": "k"}, loader={"value": "v"}) == "v"
        response = ts.request("lock", {"key": "job"})
        assert response["error"]["kind"] == "unavailable", response
    finally:
        ts.driver.close()
