"""The rendered Go, TypeScript and Express read with one SET ... NX ... GET, the script
where refused.

Cache-aside and write-through (Express renders cache-aside only) read a key as the
Python reference does (``tests/test_cache_aside.py``, ``tests/test_write_through.py``):
one native command, ``SET key marker NX PX lease_ms GET``, which on a hit returns the
value and writes nothing; where Redis answers that command with an error reply,
READ_OR_LEASE_LUA does the same in a second round trip, on every read (the refusal is not
remembered). Each test drives the rendered file through its behaviour-suite driver on a
redis-server of its own, so what that server ran is the rendering's traffic alone:
MONITOR shows the commands with their arguments, INFO commandstats the refused ones
(MONITOR never sees those).

To refuse the command without a test double, the server runs out of memory under
``noeviction`` (``maxmemory 1``): it then refuses SET, even a SET ... NX ... GET of a key
that exists, but still runs a script that only reads. Building needs Go and node, as the
Go, TypeScript and Express suites do.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
import redis

from templategen.engine import render
from templategen.redis_server import RedisServer
from templategen.suite.driver import PROTOCOL_VERSION, DriverProcess
from templategen.suite.targets import Target, default_options, rendered_target

pytestmark = pytest.mark.slow

R = TypeVar("R")

LANGUAGES = ["go", "typescript"]
PATTERNS = ["cache-aside", "write-through"]
CASES = [
    pytest.param(language, pattern, id=f"{language}-{pattern}")
    for language in LANGUAGES
    for pattern in PATTERNS
] + [pytest.param("express", "cache-aside", id="express-cache-aside")]  # no other in Express

# How MONITOR shows a lease marker: the byte 0xC1 escaped, then "lease:" and the token.
MARKER = re.compile(r"\\xc1lease:[0-9a-f]{32}")

# One hit of each pattern: the op that stores an entry, the read, and what it returns.
VALUE = {"name": "Ada", "n": [1, 2.5, None, True]}
STORE = {
    "cache-aside": ("set", {"key": "ada", "value": VALUE}),
    "write-through": ("set", {"id": "ada", "data": VALUE}),
}
READ = {"cache-aside": {"key": "ada"}, "write-through": {"id": "ada"}}
HIT = {"cache-aside": VALUE, "write-through": {"data": VALUE, "version": 1}}
LOADER = {"value": "from the loader"}


class Driven:
    """One rendered file behind its driver, on one Redis."""

    def __init__(self, target: Target, redis_url: str) -> None:
        self.driver = DriverProcess(target.command, env=target.env, cwd=target.cwd)
        self.driver.request({"op": "hello", "protocol": PROTOCOL_VERSION})
        for message in (
            {
                "op": "configure",
                "pattern": target.pattern,
                "options": dict(target.options),
                "redis_url": redis_url,
            },
            {"op": "reset"},
        ):
            assert self.driver.request(message)["ok"], self.driver.stderr_tail()

    def request(self, op: str, args: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return self.driver.request({"op": op, "args": args, **extra}, timeout=30)

    def op(self, op: str, args: dict[str, Any], **extra: Any) -> Any:
        response = self.request(op, args, **extra)
        assert response["ok"], (response, self.driver.stderr_tail())
        return response["value"]

    def get(self, args: dict[str, Any]) -> Any:
        return self.op("get", args, loader=LOADER)


@pytest.fixture(scope="module")
def targets(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Target]:
    """Builds each (language, pattern) once, with the default options."""
    built: dict[tuple[str, str], Target] = {}

    def target(language: str, pattern: str) -> Target:
        if (language, pattern) not in built:
            workdir = tmp_path_factory.mktemp(f"{language}-{pattern}")
            built[(language, pattern)] = rendered_target(
                render(pattern, language), workdir, language
            )
        return built[(language, pattern)]

    return target


@pytest.fixture
def admin(private_redis: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(private_redis.url)
    yield client
    client.close()


@pytest.fixture
def drive(
    private_redis: RedisServer, targets: Callable[[str, str], Target]
) -> Iterator[Callable[[str, str], Driven]]:
    opened: list[Driven] = []

    def start(language: str, pattern: str) -> Driven:
        opened.append(Driven(targets(language, pattern), private_redis.url))
        return opened[-1]

    yield start
    for driven in opened:
        driven.driver.close()


def commands_during(admin: redis.Redis, action: Callable[[], R]) -> tuple[R, list[list[str]]]:
    """What ``action`` returned, and the commands the server ran meanwhile, as words."""
    end = "end of the action"
    admin.ping()  # connected before MONITOR starts: its handshake is not in the list
    watcher = redis.Redis(connection_pool=redis.ConnectionPool(**admin.get_connection_kwargs()))
    try:
        with watcher.monitor() as monitor:
            result = action()
            admin.echo(end)
            commands = []
            while (command := monitor.next_command()["command"]) != f"ECHO {end}":
                commands.append(command.split(" "))
    finally:
        watcher.close()
    return result, commands


def command_stats(admin: redis.Redis) -> dict[str, dict[str, int]]:
    """INFO commandstats: command -> its calls, rejected_calls and failed_calls."""
    return {
        name.removeprefix("cmdstat_"): {k: int(v) for k, v in stats.items() if k != "usec_per_call"}
        for name, stats in admin.info("commandstats").items()
    }


def stats_during(
    admin: redis.Redis, action: Callable[[], R]
) -> tuple[R, dict[str, dict[str, int]]]:
    """What ``action`` returned, and how it changed each command's calls, rejected_calls
    and failed_calls."""
    before = command_stats(admin)
    result = action()
    after = command_stats(admin)
    changed = {}
    for name, stats in after.items():
        delta = {
            k: n - before.get(name, {}).get(k, 0)
            for k, n in stats.items()
            if k in ("calls", "rejected_calls", "failed_calls")
        }
        if any(delta.values()):
            changed[name] = {k: n for k, n in delta.items() if n}
    changed.pop("info", None)  # the INFO of `before`
    return result, changed


@contextlib.contextmanager
def refusing_writes(admin: redis.Redis) -> Iterator[None]:
    """The server refuses every write, SET ... NX ... GET of a key that exists included."""
    admin.config_set("maxmemory-policy", "noeviction")
    admin.config_set("maxmemory", 1)
    try:
        yield
    finally:
        admin.config_set("maxmemory", 0)


@pytest.mark.parametrize(("language", "pattern"), CASES)
def test_a_warm_hit_is_one_set_nx_px_get_and_no_script(
    drive: Callable[[str, str], Driven], admin: redis.Redis, language: str, pattern: str
) -> None:
    cache = drive(language, pattern)
    cache.op(*STORE[pattern])
    assert cache.get(READ[pattern]) == HIT[pattern]  # warm: connections open

    hit, commands = commands_during(admin, lambda: cache.get(READ[pattern]))

    assert hit == HIT[pattern]
    options = default_options(pattern, language)
    lease_ms = str(round(options["lease_ttl"] * 1000))
    (command,) = commands  # one round trip, and no script
    name, key, marker, *rest = command
    assert (name.upper(), key) == ("SET", options["key_prefix"] + ":ada")
    assert MARKER.fullmatch(marker), command
    assert [word.upper() for word in rest] == ["NX", "PX", lease_ms, "GET"]
    assert cache.request("hello", {})["loader_calls"] == 0


@pytest.mark.parametrize(("language", "pattern"), CASES)
def test_a_server_refusing_set_get_still_serves_hits_through_the_script(
    drive: Callable[[str, str], Driven], admin: redis.Redis, language: str, pattern: str
) -> None:
    cache = drive(language, pattern)
    cache.op(*STORE[pattern])
    with refusing_writes(admin):
        assert cache.get(READ[pattern]) == HIT[pattern]  # loads the script (NOSCRIPT, EVAL)
        for _ in range(2):
            hit, stats = stats_during(admin, lambda: cache.get(READ[pattern]))
            assert hit == HIT[pattern]
            # Every read is refused, then served by the script: not remembered.
            assert stats == {
                "set": {"rejected_calls": 1},
                "evalsha": {"calls": 1},
                "get": {"calls": 1},  # the script's
            }
        assert cache.request("hello", {})["loader_calls"] == 0


@pytest.mark.parametrize("language", [*LANGUAGES, "express"])
def test_a_cache_aside_miss_while_redis_refuses_writes_returns_the_refusal_before_loading(
    drive: Callable[[str, str], Driven], admin: redis.Redis, language: str
) -> None:
    cache = drive(language, "cache-aside")
    # The script cannot take the lease either: the refusal is no outage, so it reaches
    # the caller, and the loader does not run.
    with refusing_writes(admin):
        response = cache.request("get", {"key": "other"}, loader=LOADER)
    assert response["ok"] is False
    assert "OOM" in response["error"]["message"]
    assert response["loader_calls"] == 0


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_write_through_miss_while_redis_refuses_writes_reads_the_store_and_caches_nothing(
    drive: Callable[[str, str], Driven], admin: redis.Redis, language: str
) -> None:
    cache = drive(language, "write-through")
    cache.op("set", {"id": "bob", "data": {"name": "Bob"}})
    key = default_options("write-through", language)["key_prefix"] + ":bob"
    assert admin.delete(key) == 1
    with refusing_writes(admin):
        assert cache.get({"id": "bob"}) == {"data": {"name": "Bob"}, "version": 1}
    assert cache.request("hello", {})["loader_calls"] == 1  # the store's read
    assert admin.exists(key) == 0
