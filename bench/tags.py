"""6. Tag invalidation as the keyspace grows: 1k, 10k, 100k entries; tags of 10 and 10k.

Each contender gets one Redis database per keyspace size, filled with that many
tagged entries (ten per background tag) written in the pattern's wire format by a
server-side script (docs/wire-format.md; the public API then reads them back as a
check). In
each repetition, for each size in turn, a 10-member and a 10k-member tag are written
afresh and timed: ``get_tags`` of a member, ``invalidate_tags`` of each tag. The
figure that matters is the ratio of a call's time at 100k entries to its time at 1k
in the same repetition, with the round trips it took at each size.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from .context import Run
from .harness import RoundTrips, Summary, count_text, counting_client
from .patterns import main_class
from .report import Section, Table, Target
from .textbook import TextbookTaggedCache

__all__ = ["measure"]

SIZES = (1_000, 10_000, 100_000)
SMALL, LARGE = 10, 10_000
SMALL_TAGS = 10  # small tags invalidated per repetition and size (one large one)
PREFIX = "bt"
TTL_MS = 3_600_000
MAX_RATIO = 1.5
VALUE = json.dumps({"id": 1, "name": "product", "price": 9.5}).encode()


# Writes tagged entries in a contender's wire format on the server: the keyspace is
# context, not what is measured, and building 100k entries (and a 10k-member tag per
# size and repetition) through client pipelines took most of this measurement's time.
# ARGV: layout ("textbook" or "ours"), prefix, key stem, tag stem, tag divisor (0: every
# entry gets the tag stem itself; n: entry i gets stem .. floor(i / n)), first index,
# count, value, ttl in ms. Keys are built here, so it runs on a standalone server only.
_WRITE_LUA = """
local textbook, prefix, stem, tag = ARGV[1] == 'textbook', ARGV[2], ARGV[3], ARGV[4]
local divisor, first, count = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local value, ttl = ARGV[8], ARGV[9]
for i = first, first + count - 1 do
  local key, t = stem .. i, tag
  if divisor > 0 then t = tag .. math.floor(i / divisor) end
  if textbook then
    redis.call('SET', key, value, 'PX', ttl)
    redis.call('SADD', 'cache:tag:' .. t, key)
    redis.call('PEXPIRE', 'cache:tag:' .. t, ttl)
  else
    redis.call('SET', prefix .. ':key:' .. key, value, 'PX', ttl)
    redis.call('SADD', prefix .. ':tags:' .. key, t)
    redis.call('PEXPIRE', prefix .. ':tags:' .. key, ttl)
    redis.call('SADD', prefix .. ':tag:' .. t, key)
    redis.call('PEXPIRE', prefix .. ':tag:' .. t, ttl)
  end
end
return count
"""
BATCH = 5_000  # entries per script call: a few milliseconds of server time each


class _Layout:
    """Writes tagged entries the way a contender stores them (see docs/wire-format.md)."""

    def __init__(self, client: redis.Redis, textbook: bool) -> None:
        self.kind = "textbook" if textbook else "ours"
        self.script = client.register_script(_WRITE_LUA)

    def write(self, stem: str, tag: str, count: int, divisor: int = 0) -> None:
        """Entries ``stem0 .. stem{count-1}``, tagged ``tag`` (or ``tag{i // divisor}``)."""
        for first in range(0, count, BATCH):
            self.script(
                args=[
                    self.kind,
                    PREFIX,
                    stem,
                    tag,
                    divisor,
                    first,
                    min(BATCH, count - first),
                    VALUE,
                    TTL_MS,
                ]
            )


class _Contender:
    def __init__(self, run: Run, name: str, module: Any, db: int) -> None:
        self.name = name
        self.counter = RoundTrips()
        self.client = counting_client(f"{run.url.rsplit('/', 1)[0]}/{db}", self.counter)
        self.layout = _Layout(self.client, textbook=module is None)
        if module is None:
            self.cache: Any = TextbookTaggedCache(self.client)
        else:
            self.cache = main_class("tag-invalidation", name, module)(self.client, prefix=PREFIX)

    def fill(self, size: int) -> None:
        self.layout.write("item-", "group-", size, divisor=10)
        if self.cache.get_tags("item-0") != {"group-0"}:
            raise RuntimeError(f"{self.name}: the filled keyspace does not read back")
        # Warm-up: every script loaded (the drain's too) before anything is timed.
        self.tag("warm", 600)
        self.cache.invalidate_tags("warm")

    def tag(self, tag: str, members: int) -> str:
        self.layout.write(f"{tag}-m", tag, members)
        return f"{tag}-m0"

    def timed(self, fn: Callable[[], object], calls: int = 1) -> tuple[float, float]:
        """(median seconds per call, round trips per call)."""
        before, _ = self.counter.snapshot()
        times = []
        for _ in range(calls):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        after, _ = self.counter.snapshot()
        return statistics.median(times), (after - before) / calls

    def invalidations(self, tags: list[str]) -> tuple[float, float]:
        """Invalidate each tag: (median seconds per call, round trips per call)."""
        it = iter(tags)
        return self.timed(lambda: self.cache.invalidate_tags(next(it)), len(tags))


def _contenders(run: Run) -> list[_Contender]:
    found = []
    db = 1
    for impl, module in [*run.impls.variants("tag-invalidation"), ("textbook", None)]:
        if impl == "rendered" and module is None:
            continue
        for _ in SIZES:
            found.append(_Contender(run, impl, module, db))
            db += 1
    return found


OPS = ("get_tags", f"invalidate_tags ({SMALL} members)", f"invalidate_tags ({LARGE:,} members)")


def measure(run: Run) -> Section:
    large = 1_000 if run.quick else LARGE
    ops = (OPS[0], OPS[1], f"invalidate_tags ({large:,} members)")
    contenders = _contenders(run)
    names = list(dict.fromkeys(c.name for c in contenders))
    by = {(c.name, size): c for c, size in zip(contenders, SIZES * len(names), strict=True)}
    for (name, size), contender in by.items():
        run.log(f"{name}: filling {size:,} entries")
        contender.fill(size)
    # (name, op, size) -> per repetition (seconds, round trips)
    seen: dict[tuple[str, str, int], list[tuple[float, float]]] = {}
    for rep in range(run.reps):
        run.log(f"repetition {rep + 1}")
        for name in names:
            # Sizes in turn, the order flipped every repetition: a drift in machine
            # load favours neither end of the ratio.
            for size in SIZES if rep % 2 == 0 else reversed(SIZES):
                c = by[(name, size)]
                tag = uuid.uuid4().hex[:8]
                small = [f"s{tag}-{i}" for i in range(SMALL_TAGS)]
                members = [c.tag(t, SMALL) for t in small]
                # The textbook's get_tags scans the whole keyspace: one call is plenty.
                calls = 1 if name == "textbook" else 50
                seen.setdefault((name, ops[0], size), []).append(
                    c.timed(lambda c=c, m=members[0]: c.cache.get_tags(m), calls)
                )
                seen.setdefault((name, ops[1], size), []).append(c.invalidations(small))
                c.tag(f"l{tag}", large)
                seen.setdefault((name, ops[2], size), []).append(
                    c.timed(lambda c=c, t=tag: c.cache.invalidate_tags(f"l{t}"))
                )
    for c in contenders:
        c.client.flushdb()
        c.client.close()
    section = Section(
        "tags",
        "6. Tag invalidation as the keyspace grows",
        f"Keyspace: {', '.join(f'{s:,}' for s in SIZES)} tagged entries (one database each). "
        f"Median (min–max) of {run.reps} repetitions; a repetition times get_tags 50 times, "
        f"invalidates {SMALL_TAGS} small tags and one large one per size, and takes the "
        "median call. *÷ 1k*: time at 100k entries ÷ time at 1k in the same repetition "
        "(1.00 = independent of the keyspace). Round trips "
        "are per call at 1k / 10k / 100k. Target: a ratio ≤ "
        f"{MAX_RATIO:g} and equal round trips at every size: the cost follows the tag's "
        "members, not the keyspace.",
    )
    table = Table("Tag invalidation", ["call", "figure", *names])
    for op in ops:
        ratio = {
            n: Summary.of(
                big[0] / small[0]
                for small, big in zip(
                    seen[(n, op, SIZES[0])], seen[(n, op, SIZES[-1])], strict=True
                )
            )
            for n in names
        }
        table.add(op, "time at 100k ÷ time at 1k", *(ratio[n].text("{:.2f}", "×") for n in names))
        table.add(
            "",
            "round trips at 1k / 10k / 100k",
            *(
                " / ".join(count_text(Summary.of(r for _, r in seen[(n, op, s)])) for s in SIZES)
                for n in names
            ),
        )
        table.add(
            "",
            "time at 1k / 100k (context)",
            *(
                " / ".join(
                    _duration(Summary.of(t for t, _ in seen[(n, op, s)]).median)
                    for s in (SIZES[0], SIZES[-1])
                )
                for n in names
            ),
        )
        for n in names:
            if n == "textbook":
                continue
            rts = [Summary.of(r for _, r in seen[(n, op, s)]).median for s in SIZES]
            section.targets.append(
                Target(
                    "6. tag invalidation",
                    f"{op}: independent of the keyspace ({n})",
                    f"100k ÷ 1k {ratio[n].text('{:.2f}', '×')}; round trips "
                    + " / ".join(f"{r:g}" for r in rts),
                    ratio[n].median <= MAX_RATIO and len(set(rts)) == 1,
                )
            )
    if "rendered" not in names:
        table.notes.append(f"rendered: {run.impls.why_missing('tag-invalidation')}")
    table.notes.append(
        "The reference drains a tag of more than drain_batch (500) members in batches: "
        "one script call per 500 members after the first."
    )
    section.tables.append(table)
    return section


def _duration(seconds: float) -> str:
    return f"{seconds * 1e6:.0f} µs" if seconds < 0.001 else f"{seconds * 1000:.1f} ms"
