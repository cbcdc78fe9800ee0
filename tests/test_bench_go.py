"""bench/go_hits.py (section 9) runs and counts: counts only, never a timing.

The real measurement, one quick repetition, against the test server: every rendered Go
pattern is built into the harness in bench/go/ and its hits are counted server-side.
Building needs Go and the Go driver's modules, as tests/test_go_suite.py does. bench/
lives beside the package, so the checkout goes on sys.path, as in tests/test_bench.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import redis

from templategen.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import go_hits  # noqa: E402
from bench.context import Run  # noqa: E402
from bench.implementations import REDIS_PATTERNS, Implementations  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

RANGE_1 = "1 (1\N{EN DASH}1)"  # a count of 1 in every repetition


def quick_run(server: RedisServer, workdir: Path) -> Run:
    # The section renders its own Go; the Python implementations are not needed.
    return Run(server, Implementations(workdir), workdir, reps=1, quick=True)


def test_every_rendered_go_hit_is_one_round_trip(redis_server: RedisServer, tmp_path: Path) -> None:
    run = quick_run(redis_server, tmp_path)
    try:
        section = go_hits.measure(run)
    finally:
        run.server_counts.close()
        redis.Redis.from_url(redis_server.url).flushall()
    assert section.key == "go"
    (table,) = section.tables
    assert [row[0] for row in table.rows] == list(REDIS_PATTERNS)
    rt = table.columns.index("RT per hit")
    assert [row[rt] for row in table.rows] == [RANGE_1] * len(REDIS_PATTERNS)
    # Every counted and timed call was a hit: no loader call, no store read.
    assert any("none, every call was a hit" in note for note in table.notes)
    rt_target = next(t for t in section.targets if t.target == go_hits.LANGUAGE.rt_target)
    assert rt_target.met is True
    ratio_target = next(t for t in section.targets if t.target == go_hits.LANGUAGE.ratio_target)
    assert ratio_target.met is not None  # measured; whether it is met is a timing


def test_without_go_the_section_is_not_measured_and_says_why(
    redis_server: RedisServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(go_hits, "_find_go", lambda: None)
    run = quick_run(redis_server, tmp_path)
    try:
        section = go_hits.measure(run)
    finally:
        run.server_counts.close()
    assert not section.tables
    assert len(section.targets) == 2
    assert all(t.met is None and "go is not on PATH" in t.figure for t in section.targets)
