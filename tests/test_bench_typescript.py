"""bench section 8 (rendered TypeScript against node-redis) runs and counts: never a timing.

Like tests/test_bench.py, it puts the checkout on sys.path (bench/ is not installed). It
needs node and the pinned toolchain in templategen/drivers/typescript, as the TypeScript
suite tests do; without them the section says why and measures nothing, and so does this
test's failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from templategen.redis_server import RedisServer

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import typescript_hits  # noqa: E402
from bench.context import Run  # noqa: E402
from bench.implementations import REDIS_PATTERNS, Implementations  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]

RANGE_1 = "1 (1\N{EN DASH}1)"  # a count of 1 in every repetition


def test_every_rendered_typescript_hit_is_one_round_trip(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # No Python renderings: this section renders and measures TypeScript only.
    run = Run(redis_server, Implementations(tmp_path), tmp_path, reps=1, quick=True)
    try:
        section = typescript_hits.measure(run)
    finally:
        run.server_counts.close()
    assert section.key == "typescript"
    assert [t.met for t in section.targets if "round trip" in t.target] == [True], [
        (t.target, t.figure) for t in section.targets
    ]
    (table,) = section.tables
    assert [row[0] for row in table.rows] == list(REDIS_PATTERNS)
    rt = table.columns.index("RT per hit")
    assert {row[0]: row[rt] for row in table.rows} == dict.fromkeys(REDIS_PATTERNS, RANGE_1)
    # Every counted and timed call was a hit: no loader ran, no store was read.
    assert any("none, every call was a hit" in note for note in table.notes), table.notes
    throughput = next(t for t in section.targets if "floor" in t.target)
    assert throughput.met is not None  # measured, whichever way the machine's load tips it
