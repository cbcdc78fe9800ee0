"""bench/ runs and counts: structure and counts only, never a timing (timings are its output).

bench/ lives beside the package (run as ``python -m bench`` from the checkout), so these
tests put the checkout on sys.path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis

from templategen.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import RoundTrips, ServerCounts, counting_client  # noqa: E402
from bench.report import Section, Table, Target, results_markdown  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

RANGE_1 = "1 (1\N{EN DASH}1)"  # a count of 1 in every repetition


def test_a_get_is_one_round_trip_client_side_and_server_side(redis_server: RedisServer) -> None:
    counter = RoundTrips()
    client = counting_client(redis_server.url, counter)
    client.ping()  # the connection's handshake is not the GET's
    server = ServerCounts(redis_server.unix_socket)
    before, _ = counter.snapshot()
    with server.window(monitor=True) as view:
        client.get("bench-test:missing")
    after, commands = counter.snapshot()
    assert after - before == 1
    assert commands["get"] == 1
    assert view.requests == 1
    assert view.commands["get"] == 1
    server.close()
    client.close()


def test_a_pipeline_is_one_round_trip_of_several_commands(redis_server: RedisServer) -> None:
    counter = RoundTrips()
    client = counting_client(redis_server.url, counter)
    client.ping()
    before, _ = counter.snapshot()
    pipe = client.pipeline(transaction=False)
    pipe.set("bench-test:a", b"1")
    pipe.get("bench-test:a")
    pipe.execute()
    after, commands = counter.snapshot()
    assert after - before == 1
    assert commands["set"] == 1 and commands["get"] == 1
    client.close()


def test_commands_inside_a_script_count_server_side_only(redis_server: RedisServer) -> None:
    counter = RoundTrips()
    client = counting_client(redis_server.url, counter)
    script = client.register_script("return redis.call('GET', KEYS[1])")
    script(keys=["bench-test:s"])  # loads the script
    server = ServerCounts(redis_server.unix_socket)
    before, _ = counter.snapshot()
    with server.window(monitor=True) as view:
        script(keys=["bench-test:s"])
    after, _ = counter.snapshot()
    assert after - before == 1
    assert view.requests == 1 and view.in_scripts == 1
    assert view.commands == {"evalsha": 1, "get": 1}
    server.close()
    client.close()


def test_the_results_writer_puts_targets_and_tables_in_the_file() -> None:
    section = Section("demo", "1. Demo", "What it measures.")
    table = Table("Demo table", ["case", "reference", "rendered"])
    table.add("hit", RANGE_1, "not rendered yet")
    section.tables.append(table)
    section.targets.append(Target("1. demo", "hit = 1", "1", True))
    section.targets.append(Target("1. demo", "miss ≤ 2", "3", False))
    text = results_markdown(
        [section], [("machine", "test")], "Preamble.", ["TypeScript: none yet"], None
    )
    assert "| 1. demo | hit = 1 | 1 | met |" in text
    assert "| 1. demo | miss ≤ 2 | 3 | **NOT MET** |" in text
    assert f"| hit | {RANGE_1} | not rendered yet |" in text
    assert "## Not measured" in text and "- TypeScript: none yet" in text


def _quick(measure: Callable[[Any], Section], redis_server: RedisServer, tmp_path: Path) -> Section:
    """One quick repetition of a bench measurement against the test server."""
    from bench.context import Run
    from bench.implementations import Implementations

    run = Run(redis_server, Implementations.load(tmp_path), tmp_path, reps=1, quick=True)
    try:
        return measure(run)
    finally:
        run.server_counts.close()


def test_quick_round_trip_measurement_counts_one_per_hit(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """The real measurement, one repetition, against the test server: counts only."""
    from bench import roundtrips

    section = _quick(roundtrips.measure, redis_server, tmp_path)
    table = section.tables[0]
    hits = [row for row in table.rows if row[1] == "hit"]
    assert len(hits) == 7  # every pattern that talks to Redis
    assert all(row[2] == RANGE_1 and row[3] == RANGE_1 for row in hits)
    hit_target = next(
        t for t in section.targets if t.target.startswith("hit") and "reference" in t.target
    )
    assert hit_target.met is True
    redis.Redis.from_url(redis_server.url).flushall()


def test_a_recorded_request_replays_as_the_very_same_command(redis_server: RedisServer) -> None:
    """The throughput table's "request alone" sends exactly what the hit sent."""
    from bench.harness import recording_client

    client, sent = recording_client(redis_server.url)
    client.set("bench-test:rec", b"stored")
    sent.clear()
    stored = client.execute_command(  # type: ignore[no-untyped-call]
        "SET", "bench-test:rec", b"marker", b"NX", b"PX", 10_000, b"GET", get=True
    )
    assert stored == b"stored"
    assert len(sent) == 1
    args, options = sent[0]
    assert args[0] == "SET" and options == {"get": True}
    server = ServerCounts(redis_server.unix_socket)
    with server.window(monitor=True) as view:
        replayed = client.execute_command(*args, **options)  # type: ignore[no-untyped-call]
    assert replayed == b"stored"  # the same reply parser: the value, not a bool
    assert view.requests == 1 and view.commands == {"set": 1}
    assert client.get("bench-test:rec") == b"stored"  # NX: a hit writes nothing
    server.close()
    client.close()


@pytest.mark.parametrize("textbook", [False, True], ids=["ours", "textbook"])
def test_the_tag_keyspace_script_writes_what_the_public_api_reads(
    redis_server: RedisServer, textbook: bool
) -> None:
    from templategen.reference.tag_invalidation import TaggedCache

    from bench.tags import PREFIX, _Layout
    from bench.textbook import TextbookTaggedCache

    client = redis.Redis.from_url(redis_server.url)
    client.flushdb()
    _Layout(client, textbook).write("item-", "group-", 25, divisor=10)
    _Layout(client, textbook).write("big-m", "big", 12)
    cache = TextbookTaggedCache(client) if textbook else TaggedCache(client, prefix=PREFIX)
    assert cache.get_tags("item-0") == {"group-0"}
    assert cache.get_tags("item-24") == {"group-2"}
    assert cache.get_tags("big-m11") == {"big"}
    cache.invalidate_tags("big")
    assert cache.get_tags("big-m3") == set()
    assert cache.get_tags("item-13") == {"group-1"}  # other tags untouched
    client.flushdb()
    client.close()


def test_early_refresh_side_by_side_keeps_every_reader_off_the_loader(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Three contenders reading at once, each counted on its own client: counts only."""
    from bench import refresh

    section = _quick(refresh.measure, redis_server, tmp_path)
    waited = next(t for t in section.targets if t.target.startswith("0 reads wait"))
    rt = next(t for t in section.targets if t.target.startswith("1 round trip per hit"))
    assert waited.met is True and rt.met is True
    rows = {row[0]: row[1:] for row in section.tables[0].rows}
    # The recipe's linear probability makes readers load: counted apart from ours.
    assert rows["reads that waited on a loader"][-1] != "0 (0\N{EN DASH}0)"
    redis.Redis.from_url(redis_server.url).flushall()
