"""The behaviour suite against the rendered Go, and what only a second language can show.

Every scenario of every pattern with a Go template runs against the rendered Go package
(vetted and built into the Go driver with its rendered adapter), with the default
options and with each named option set of the pattern's scenarios.json; choices Go does
not offer (serializer msgpack) fall back to Go's default, so the hostile strings and
names still come through. The rendered package's runnable examples (typed use of the
API) pass go test. Then: values written by the rendered Python are hits for the Go and
the other way round, and each sees the other's invalidations and locks; Redis going
away fails open or not, as configured; and a Go package broken on purpose fails.

Building needs Go and the harness's modules (``go mod download`` in
templategen/drivers/go); the first build compiles go-redis (about 20 s), later ones
reuse the build cache.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from templategen.engine import render
from templategen.redis_server import RedisServer
from templategen.registry import Registry
from templategen.suite import targets
from templategen.suite.driver import PROTOCOL_VERSION, DriverProcess
from templategen.suite.gotarget import GO_HARNESS, go_environment
from templategen.suite.runner import ScenarioResult, Target, run_target
from templategen.suite.scenarios import load_scenarios
from templategen.suite.targets import default_options, option_sets, rendered_target

pytestmark = pytest.mark.slow

REGISTRY = Registry()
GO_PATTERNS = [
    p for p in REGISTRY.names() if "go" in REGISTRY.get(p).languages and load_scenarios(p)
]


def go_option_sets(pattern: str) -> dict[str, dict[str, Any]]:
    """option_sets for Go: a choice Go does not offer falls back to Go's default."""
    defaults = default_options(pattern, "go")
    return {
        name: {**defaults, **targets.given_options(pattern, "go", name)}
        for name in option_sets(pattern, "go")
    }


def given(pattern: str, values: dict[str, Any]) -> dict[str, Any]:
    defaults = default_options(pattern, "go")
    return {k: v for k, v in values.items() if v != defaults[k]}


CASES = [
    pytest.param(pattern, set_name, sc.name, id=f"{pattern}-go[{set_name}]-{sc.name}")
    for pattern in GO_PATTERNS
    for set_name in go_option_sets(pattern)
    for sc in load_scenarios(pattern)
]

Lookup = Callable[[str, str, str], ScenarioResult]
Build = Callable[[str, str], Target]


@pytest.fixture(scope="module")
def go_targets(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """Builds each (pattern, option set) once: render, vet, build."""
    built: dict[tuple[str, str], Target] = {}

    def target(pattern: str, set_name: str) -> Target:
        if (pattern, set_name) not in built:
            values = go_option_sets(pattern)[set_name]
            rendered = render(pattern, "go", given(pattern, values))
            workdir = tmp_path_factory.mktemp(f"go-{pattern}-{set_name}")
            built[(pattern, set_name)] = rendered_target(rendered, workdir, f"go[{set_name}]")
        return built[(pattern, set_name)]

    return target


@pytest.fixture(scope="module")
def go_results(redis_server: RedisServer, go_targets: Build) -> Lookup:
    cache: dict[tuple[str, str, str], ScenarioResult] = {}

    def result(pattern: str, set_name: str, scenario: str) -> ScenarioResult:
        if (pattern, set_name, scenario) not in cache:
            target = go_targets(pattern, set_name)
            for r in run_target(target, load_scenarios(pattern), redis_server.url):
                cache[(pattern, set_name, r.scenario)] = r
        return cache[(pattern, set_name, scenario)]

    return result


@pytest.mark.parametrize(("pattern", "set_name", "scenario"), CASES)
def test_rendered_go_behaves_as_the_scenario_says(
    go_results: Lookup, pattern: str, set_name: str, scenario: str
) -> None:
    result = go_results(pattern, set_name, scenario)
    if result.status == "skipped":
        pytest.skip(result.message)
    assert result.status == "passed", result.message


EXAMPLES = [
    pytest.param(pattern, set_name, id=f"{pattern}-go[{set_name}]")
    for pattern in GO_PATTERNS
    if (GO_HARNESS / "examples" / pattern / "go.go.j2").is_file()
    for set_name in go_option_sets(pattern)
]


@pytest.mark.parametrize(("pattern", "set_name"), EXAMPLES)
def test_runnable_examples_of_the_rendered_go_pass(
    go_targets: Build, redis_server: RedisServer, pattern: str, set_name: str
) -> None:
    """Typed use of the API (a struct for T, errors.Is, Wrap), checked by go test."""
    target = go_targets(pattern, set_name)
    package = REGISTRY.get(pattern).files["go"].parent
    out = subprocess.run(
        [shutil.which("go") or "go", "test", "-count=1", f"./{package}"],
        cwd=target.cwd,
        env={**go_environment(), "REDIS_URL": redis_server.url},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_every_pattern_with_scenarios_and_a_go_template_is_covered() -> None:
    assert {
        "cache-aside",
        "stampede-lock",
        "early-refresh",
        "tag-invalidation",
        "version-invalidation",
        "write-through",
        "write-behind",
        "http-cache-headers",
    } <= set(GO_PATTERNS)


# --- two drivers, one Redis -----------------------------------------------------------


class Session:
    """A driver that was told hello, configure and reset; ``op`` raises on any error."""

    def __init__(self, target: Target, redis_url: str) -> None:
        self.driver = DriverProcess(target.command, env=target.env, cwd=target.cwd)
        self.driver.request({"op": "hello", "protocol": PROTOCOL_VERSION})
        configure = {
            "op": "configure",
            "pattern": target.pattern,
            "options": dict(target.options),
            "redis_url": redis_url,
        }
        for message in (configure, {"op": "reset"}):
            assert self.driver.request(message)["ok"], self.driver.stderr_tail()

    def send(self, op: str, **message: Any) -> dict[str, Any]:
        return self.driver.request({"op": op, **message}, timeout=30)

    def op(self, op: str, **message: Any) -> Any:
        response = self.send(op, **message)
        assert response["ok"], (response, self.driver.stderr_tail())
        return response

    def close(self) -> None:
        self.driver.close()


@pytest.fixture
def sessions(redis_server: RedisServer, tmp_path: Path) -> Iterator[Callable[[str, str], Session]]:
    """Opens a Go or rendered-Python driver on the shared Redis (flushed first)."""
    import redis

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    opened: list[Session] = []

    def open_session(pattern: str, language: str) -> Session:
        rendered = render(pattern, language)
        target = rendered_target(rendered, tmp_path / language, language)
        opened.append(Session(target, redis_server.url))
        return opened[-1]

    yield open_session
    for session in opened:
        session.close()


def test_cache_aside_values_and_invalidations_cross_between_python_and_go(sessions):
    go, py = sessions("cache-aside", "go"), sessions("cache-aside", "python")
    value = {"name": "é🐍", "n": [1, 2.5, None, True]}

    loaded = go.op("get", args={"key": "u"}, loader={"value": value})
    assert loaded["value"] == value
    hit = py.op("get", args={"key": "u"}, loader={"value": "python loaded"})
    assert (hit["value"], hit["loader_calls"]) == (value, 0)

    py.op("set", args={"key": "w", "value": [3, "x"]})
    hit = go.op("get", args={"key": "w"}, loader={"value": "go loaded"})
    assert (hit["value"], hit["loader_calls"]) == ([3, "x"], 1)  # the one load above

    assert py.op("delete", args={"key": "u"})["value"] is True
    reloaded = go.op("get", args={"key": "u"}, loader={"value": "fresh"})
    assert (reloaded["value"], reloaded["loader_calls"]) == ("fresh", 2)

    assert go.op("delete", args={"key": "w"})["value"] is True
    reloaded = py.op("get", args={"key": "w"}, loader={"value": "fresh too"})
    assert (reloaded["value"], reloaded["loader_calls"]) == ("fresh too", 1)


def test_cache_aside_lease_taken_by_go_blocks_a_stale_fill_from_python(sessions):
    go, py = sessions("cache-aside", "go"), sessions("cache-aside", "python")
    # Python misses and leases the key, then loads (blocked); Go writes a value, which
    # revokes the lease: Python's late fill must not land.
    py.op("get", args={"key": "r"}, loader={"value": "stale", "block": "g"}, **{"async": "h"})
    go.op("set", args={"key": "r", "value": "new"})
    py.op("release", args={"gate": "g"})
    assert py.op("await", args={"handle": "h"})["value"] == "stale"
    hit = go.op("get", args={"key": "r"}, loader={"value": "loaded"})
    assert (hit["value"], hit["loader_calls"]) == ("new", 0)


def test_stampede_lock_python_waits_for_the_value_go_loads_under_the_lock(sessions):
    go, py = sessions("stampede-lock", "go"), sessions("stampede-lock", "python")
    go.op("get", args={"key": "k"}, loader={"value": {"n": 1}, "block": "g"}, **{"async": "h"})
    answer: dict[str, Any] = {}
    # Python finds Go's lock, subscribes and waits: it must get Go's value, not load.
    waiter = threading.Thread(
        target=lambda: answer.update(py.send("get", args={"key": "k"}, loader={"value": 2}))
    )
    waiter.start()
    go.op("release", args={"gate": "g"})
    assert go.op("await", args={"handle": "h"})["value"] == {"n": 1}
    waiter.join(30)
    assert answer["ok"], answer
    assert (answer["value"], answer["loader_calls"]) == ({"n": 1}, 0)


def test_stampede_lock_value_python_stored_is_a_hit_for_go(sessions):
    go, py = sessions("stampede-lock", "go"), sessions("stampede-lock", "python")
    py.op("get", args={"key": "p"}, loader={"value": [1, "two"]})
    hit = go.op("get", args={"key": "p"}, loader={"value": "go loaded"})
    assert (hit["value"], hit["loader_calls"]) == ([1, "two"], 0)


@pytest.mark.parametrize(("writer", "reader"), [("go", "python"), ("python", "go")])
def test_early_refresh_envelope_of_one_language_is_a_hit_for_the_other(sessions, writer, reader):
    first, second = sessions("early-refresh", writer), sessions("early-refresh", reader)
    first.op("set_clock", args={"ms": 1_000_000})
    first.op("get", args={"key": "e", "ttl": 60, "load_ms": 250}, loader={"value": {"x": [1]}})
    # Halfway to the expiry, r = 1: a hit, whoever reads it.
    second.op("set_clock", args={"ms": 1_030_000})
    hit = second.op("get", args={"key": "e", "ttl": 60}, loader={"value": "reloaded"})
    assert (hit["value"], hit["loader_calls"]) == ({"x": [1]}, 0)
    # At the expiry the reader refreshes the other's entry.
    second.op("set_clock", args={"ms": 1_060_250})
    refreshed = second.op("get", args={"key": "e", "ttl": 60}, loader={"value": "new"})
    assert (refreshed["value"], refreshed["loader_calls"]) == ("new", 1)
    first.op("set_clock", args={"ms": 1_060_300})
    assert first.op("get", args={"key": "e", "ttl": 60}, loader={"value": 0})["value"] == "new"


def test_tags_and_invalidations_cross_between_python_and_go(sessions):
    go, py = sessions("tag-invalidation", "go"), sessions("tag-invalidation", "python")
    tagged = {"key": "g", "value": {"by": "é🐍"}, "ttl": 60, "tags": ["all", "go"]}
    go.op("set_with_tags", args=tagged)
    py.op("set_with_tags", args={"key": "p", "value": [1, "py"], "ttl": 60, "tags": ["all"]})
    assert py.op("get", args={"key": "g"})["value"] == {"by": "é🐍"}
    assert go.op("get", args={"key": "p"})["value"] == [1, "py"]
    assert py.op("get_tags", args={"key": "g"})["value"] == ["all", "go"]
    # Python's invalidation deletes Go's entry, index and memberships, and the other way.
    assert py.op("invalidate_tags", args={"tags": ["all"]})["value"] == 2
    assert go.op("get", args={"key": "g", "default": "miss"})["value"] == "miss"
    assert go.op("get_tags", args={"key": "g"})["value"] == []
    py.op("set_with_tags", args={"key": "p", "value": "again", "ttl": 60, "tags": ["py"]})
    assert go.op("invalidate_tags", args={"tags": ["py", "go"]})["value"] == 1
    assert py.op("get", args={"key": "p", "default": "miss"})["value"] == "miss"


def test_versions_and_entries_cross_between_python_and_go(sessions):
    go = sessions("version-invalidation", "go")
    py = sessions("version-invalidation", "python")
    assert go.op("set", args={"entity": "user", "id": "1", "value": {"n": 1}})["value"] is True
    assert py.op("get", args={"entity": "user", "id": "1"})["value"] == {"n": 1}
    assert py.op("increment_version", args={"entity": "user"})["value"] == 1
    assert go.op("get", args={"entity": "user", "id": "1", "default": "miss"})["value"] == "miss"
    loaded = go.op("get_or_load", args={"entity": "user", "id": "1"}, loader={"value": "fresh"})
    assert (loaded["value"], loaded["loader_calls"]) == ("fresh", 1)
    found = py.op("lookup", args={"entity": "user", "id": "1"})["value"]
    assert found == {"found": True, "value": "fresh", "version": 1}
    # A value Python loaded under version 1 is refused by the script once Go moved on.
    assert go.op("increment_version", args={"entity": "user"})["value"] == 2
    stale = py.op("set", args={"entity": "user", "id": "1", "value": "stale", "version": 1})
    assert stale["value"] is False


def test_write_through_versions_decide_between_python_and_go_writers(sessions):
    go, py = sessions("write-through", "go"), sessions("write-through", "python")
    # Each driver has its own store; they share the cache, where the version decides.
    for n in (1, 2, 3):
        go.op("set", args={"id": "w", "data": {"n": n}})
    hit = py.op("get", args={"id": "w"})
    assert (hit["value"], hit["loader_calls"]) == ({"data": {"n": 3}, "version": 3}, 0)
    # Python's row is at version 1 in its store: its cache write loses to Go's 3, and
    # so does the tombstone of its delete (version 2).
    assert py.op("set", args={"id": "w", "data": "python"})["value"]["version"] == 1
    assert py.op("delete", args={"id": "w"})["value"] is True
    hit = go.op("get", args={"id": "w"})
    assert (hit["value"], hit["loader_calls"]) == ({"data": {"n": 3}, "version": 3}, 0)
    # A newer tombstone wins in the other direction: Go reads Python's "no row".
    for _ in range(4):
        py.op("set", args={"id": "w", "data": "python"})
    assert py.op("delete", args={"id": "w"})["value"] is True  # version 7
    gone = go.op("get", args={"id": "w"})
    assert (gone["value"], gone["loader_calls"]) == (None, 0)


def test_write_behind_writes_queued_by_one_language_are_flushed_by_the_other(sessions):
    go, py = sessions("write-behind", "go"), sessions("write-behind", "python")
    # Each driver has its own store; they share the cached values, the version counters
    # and the queue with its consumer group.
    data = {"name": "é🐍", "n": [1, 2.5, None]}
    go_version = go.op("set", args={"id": "u", "data": data})["value"]
    assert py.op("get", args={"id": "u"})["value"] == data
    assert py.op("set", args={"id": "u", "data": "python"})["value"] == go_version + 1
    py.op("flush")  # Python's flusher writes the row once, with the newer write
    assert py.op("store_calls")["value"] == [1]
    assert py.op("store_get", args={"id": "u"})["value"] == "python"
    assert go.op("get", args={"id": "u"})["value"] == "python"
    py.op("set", args={"id": "v", "data": [3]})
    go.op("set", args={"id": "w", "data": {"k": True}})
    go.op("flush")
    assert go.op("store_get", args={"id": "v"})["value"] == [3]
    assert go.op("store_get", args={"id": "w"})["value"] == {"k": True}
    stats = go.op("stats", args={"fields": ["queue_depth", "dead_letters"]})["value"]
    assert stats == {"queue_depth": 0, "dead_letters": 0}


# --- Redis going away -----------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["cache-aside", "stampede-lock", "early-refresh"])
@pytest.mark.parametrize("fail_open", [True, False])
def test_redis_down_fails_open_or_returns_unavailable_as_configured(
    pattern, fail_open, private_redis, tmp_path
):
    rendered = render(pattern, "go", {"fail_open": fail_open})
    session = Session(rendered_target(rendered, tmp_path, "go"), private_redis.url)
    try:
        private_redis.stop()
        response = session.send("get", args={"key": "k"}, loader={"value": "from the source"})
        if fail_open:
            assert response["ok"], response
            assert (response["value"], response["loader_calls"]) == ("from the source", 1)
        else:
            assert not response["ok"]
            assert response["error"]["kind"] == "unavailable", response
            assert response["loader_calls"] == 0  # refused before the loader ran
        private_redis.start()
        # Back up: the cache works again (go-redis reconnects on its own).
        stored = session.op("get", args={"key": "k"}, loader={"value": "stored"})
        assert stored["value"] == "stored"
        hit = session.op("get", args={"key": "k"}, loader={"value": "not again"})
        assert hit["value"] == "stored"
    finally:
        session.close()


def test_distributed_lock_never_fails_open(private_redis, tmp_path):
    rendered = render("stampede-lock", "go", {"fail_open": True})
    session = Session(rendered_target(rendered, tmp_path, "go"), private_redis.url)
    try:
        private_redis.stop()
        response = session.send("lock", args={"key": "job"}, loader={})
        assert not response["ok"]
        assert response["error"]["kind"] == "unavailable"
        assert response["loader_calls"] == 0
    finally:
        private_redis.start()
        session.close()


@pytest.mark.parametrize(
    ("pattern", "op", "message"),
    [
        ("tag-invalidation", "invalidate_tags", {"args": {"tags": ["t"]}}),
        ("tag-invalidation", "get", {"args": {"key": "k"}}),
        (
            "version-invalidation",
            "get_or_load",
            {"args": {"entity": "user", "id": "1"}, "loader": {"value": 1}},
        ),
        ("version-invalidation", "increment_version", {"args": {"entity": "user"}}),
    ],
)
def test_invalidation_patterns_never_fail_open(pattern, op, message, private_redis, tmp_path):
    """A skipped invalidation, or a read that cannot say its version, is an error."""
    session = Session(rendered_target(render(pattern, "go"), tmp_path, "go"), private_redis.url)
    try:
        private_redis.stop()
        response = session.send(op, **message)
        assert not response["ok"]
        assert response["error"]["kind"] == "unavailable", response
        assert response["loader_calls"] == 0  # refused before any loader ran
        private_redis.start()
        assert session.send(op, **message)["ok"]  # go-redis reconnects on its own
    finally:
        private_redis.start()
        session.close()


@pytest.mark.parametrize("fail_open", [True, False])
def test_write_through_with_redis_down_still_commits_and_fails_open_as_configured(
    fail_open, private_redis, tmp_path
):
    rendered = render("write-through", "go", {"fail_open": fail_open})
    session = Session(rendered_target(rendered, tmp_path, "go"), private_redis.url)
    try:
        private_redis.stop()
        written = session.send("set", args={"id": "u", "data": {"n": 1}})
        row = {"data": {"n": 1}, "version": 1}
        assert session.op("store_get", args={"id": "u"})["value"] == row  # never rolled back
        read = session.send("get", args={"id": "u"})
        if fail_open:
            assert (written["ok"], written["value"]) == (True, row)
            assert (read["ok"], read["value"], read["loader_calls"]) == (True, row, 1)
        else:
            assert written["error"]["kind"] == "unavailable", written
            assert "committed at version 1" in written["error"]["message"]
            assert read["error"]["kind"] == "unavailable", read
            assert read["loader_calls"] == 0  # refused before the store was read
        private_redis.start()
        # Back up: a miss reads the store and fills, and the next read is a hit.
        before = session.op("get", args={"id": "u"})["loader_calls"]
        hit = session.op("get", args={"id": "u"})
        assert (hit["value"], hit["loader_calls"]) == (row, before)
    finally:
        private_redis.start()
        session.close()


def test_write_behind_with_redis_down_accepts_no_write_and_times_out_flushes(
    private_redis, tmp_path
):
    target = rendered_target(render("write-behind", "go"), tmp_path, "go")
    session = Session(target, private_redis.url)
    try:
        private_redis.stop()
        # A write that cannot be queued durably is refused, and a read does not fall
        # back to the store, which may be behind the queue.
        for op, args in (("set", {"id": "u", "data": 1}), ("get", {"id": "u"})):
            response = session.send(op, args=args)
            assert not response["ok"]
            assert response["error"]["kind"] == "unavailable", response
        flushed = session.send("flush", args={"timeout": 0.5})
        assert flushed["error"]["kind"] == "flush_timeout", flushed
        private_redis.start()
        # Back up: go-redis reconnects on its own, and writes flow again.
        session.op("set", args={"id": "u", "data": 2})
        session.op("flush")
        assert session.op("store_get", args={"id": "u"})["value"] == 2
    finally:
        private_redis.start()
        session.close()


# --- the Go driver reports failures --------------------------------------------------


def test_go_suite_catches_a_broken_cache_aside(redis_server, tmp_path):
    """Break the rendered Go twice over (no lease check, no TTL check): scenarios fail."""
    rendered = render("cache-aside", "go")
    broken_text = rendered.text.replace("if isLease(stored) {", "if false && isLease(stored) {")
    broken_text = broken_text.replace("\tif ttl <= 0 {\n", "\tif ttl < 0 {\n")
    assert broken_text.count("false && isLease") == 1 and "ttl < 0" in broken_text
    broken = dataclasses.replace(rendered, text=broken_text)
    target = rendered_target(broken, tmp_path, "go[broken]")
    results = {
        r.scenario: r for r in run_target(target, load_scenarios("cache-aside"), redis_server.url)
    }
    assert results["lease_holder_wins_for_concurrent_misses"].status == "failed"
    assert results["non_positive_ttl_is_refused"].status == "failed"
    assert results["miss_loads_once_then_hits"].status == "passed"
