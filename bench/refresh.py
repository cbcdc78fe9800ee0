"""4. Early refresh under steady load: ttl 2 s, loader 50 ms, 20 threads reading for 10 s.

Each contender fills its own key with a first call (the warm-up), then 20 threads per
contender read it in a loop, pausing ``PAUSE`` between reads, for 10 seconds; the
contenders run side by side in the same seconds. Counted per contender: loader calls,
reads during which the reading thread itself ran the loader (it *waited on a
loader*: a miss, or a refresh in the foreground), and round trips per hit (a read that
did not run the loader). Refreshes in a background thread count in *background round
trips*, not in any read's.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from .context import Run
from .harness import (
    CALLER,
    CallerStats,
    RoundTrips,
    Summary,
    count_text,
    counting_client,
    prewarm,
)
from .patterns import json_value, main_class
from .report import Section, Table, Target
from .textbook import TextbookEarlyRefresh

__all__ = ["measure"]

TTL = 2.0
LOADER_S = 0.05
THREADS = 20
PAUSE = 0.001
MAX_LOADS = 6


@dataclass
class _Outcome:
    reads: int
    waited: int
    loads: int
    rt_per_hit: float
    background_rt: int


Get = Callable[[str, Callable[[], Any]], Any]


class _Contender:
    """One contender's key, loader, readers and counts in one run.

    Each contender has its own client and round-trip counter, so the contenders can
    read side by side in the same seconds and still be counted apart.
    """

    def __init__(self, get: Get, counter: RoundTrips) -> None:
        self.get = get
        self.counter = counter
        self.value = json_value()
        self.key = f"refresh:{uuid.uuid4().hex}"
        self.local = threading.local()
        self.lock = threading.Lock()
        self.loads = 0
        self.totals = {"reads": 0, "waited": 0, "hit_rt": 0, "hits": 0, "rt": 0}
        self.before = 0

    def loader(self) -> Any:
        with self.lock:
            self.loads += 1
        if getattr(self.local, "reading", False):
            self.local.waited = True  # this read is running the loader itself
        time.sleep(LOADER_S)
        return self.value

    def warm_up(self) -> None:
        self.get(self.key, self.loader)  # fills the key
        self.loads = 0
        self.before, _ = self.counter.snapshot()

    def reader(self, stop: float) -> None:
        stats = CallerStats()
        CALLER.set(stats)
        local = self.local
        reads = waited = hit_rt = hits = 0
        while time.monotonic() < stop:
            local.reading, local.waited = True, False
            sent = stats.round_trips
            self.get(self.key, self.loader)
            local.reading = False
            reads += 1
            if local.waited:
                waited += 1
            else:
                hits += 1
                hit_rt += stats.round_trips - sent
            time.sleep(PAUSE)
        with self.lock:
            for name, n in (
                ("reads", reads),
                ("waited", waited),
                ("hit_rt", hit_rt),
                ("hits", hits),
                ("rt", stats.round_trips),
            ):
                self.totals[name] += n

    def outcome(self) -> _Outcome:
        after, _ = self.counter.snapshot()
        return _Outcome(
            self.totals["reads"],
            self.totals["waited"],
            self.loads,
            self.totals["hit_rt"] / max(1, self.totals["hits"]),
            after - self.before - self.totals["rt"],
        )


def _side_by_side(
    contenders: dict[str, tuple[Get, RoundTrips]], duration: float
) -> dict[str, _Outcome]:
    """One run: every contender's THREADS readers in the same ``duration`` seconds."""
    running = {name: _Contender(get, counter) for name, (get, counter) in contenders.items()}
    for contender in running.values():
        contender.warm_up()
    stop = time.monotonic() + duration
    threads = [
        threading.Thread(target=contender.reader, args=(stop,))
        for contender in running.values()
        for _ in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(LOADER_S * 2)  # a refresh still running in the background finishes
    return {name: contender.outcome() for name, contender in running.items()}


def _contenders(run: Run) -> dict[str, tuple[Get, RoundTrips] | str]:
    def client() -> tuple[redis.Redis, RoundTrips]:
        counter = RoundTrips()
        made = counting_client(run.url, counter)
        prewarm(made.connection_pool, THREADS + 4)  # no connection handshake inside a read
        return made, counter

    found: dict[str, tuple[Get, RoundTrips] | str] = {}
    for impl, module in run.impls.variants("early-refresh"):
        label = f"{impl} (background=True)"
        if module is None:
            found[label] = run.impls.why_missing("early-refresh")
            continue
        made, counter = client()
        cache = main_class("early-refresh", impl, module)(made, background=True)
        found[label] = (
            lambda key, loader, c=cache: c.get_with_refresh(key, loader, ttl=TTL),
            counter,
        )
    made, counter = client()
    textbook = TextbookEarlyRefresh(made)
    # The page's recipe takes whole seconds (SETEX, TTL), as its usage does.
    found["textbook (linear probability)"] = (
        lambda key, loader: textbook.get_with_refresh(key, loader, ttl=int(TTL)),
        counter,
    )
    return found


def measure(run: Run) -> Section:
    duration = 3.0 if run.quick else 10.0
    contenders = _contenders(run)
    measured = {name: c for name, c in contenders.items() if not isinstance(c, str)}
    outcomes: dict[str, list[_Outcome]] = {name: [] for name in measured}
    for rep in range(run.reps):
        run.log(f"repetition {rep + 1}: {', '.join(measured)} side by side")
        for name, outcome in _side_by_side(measured, duration).items():
            outcomes[name].append(outcome)
    section = Section(
        "refresh",
        "4. Early refresh under steady load",
        f"ttl {TTL:g} s, loader {LOADER_S * 1000:.0f} ms, {THREADS} threads per contender "
        f"reading its own hot key for {duration:g} s with a {PAUSE * 1000:g} ms pause "
        "between reads, after a warm-up call that fills it. The contenders read side by "
        "side in the same seconds, each through its own client and counters (so each "
        f"reads less often than alone); median (min–max) of {run.reps} repetitions. Targets "
        f"(background refresh): 0 reads that wait on a loader, ≤ {MAX_LOADS} loader calls, "
        "1 round trip per hit.",
    )
    table = Table("Early refresh, per run", ["figure", *contenders])

    def row(label: str, fn: Callable[[_Outcome], float], fmt: str | None = None) -> None:
        cells = []
        for name, c in contenders.items():
            if isinstance(c, str):
                cells.append(c)
                continue
            summary = Summary.of(fn(o) for o in outcomes[name])
            cells.append(count_text(summary) if fmt is None else summary.text(fmt))
        table.add(label, *cells)

    row("reads that waited on a loader", lambda o: o.waited)
    row("loader calls", lambda o: o.loads)
    row("round trips per hit", lambda o: o.rt_per_hit, "{:.2f}")
    row("background round trips (refreshes)", lambda o: o.background_rt)
    row("reads (context)", lambda o: o.reads, "{:,.0f}")
    section.tables.append(table)
    for name, results in outcomes.items():
        if name.startswith("textbook"):
            continue
        waited = Summary.of(o.waited for o in results)
        loads = Summary.of(o.loads for o in results)
        rt = Summary.of(o.rt_per_hit for o in results)
        section.targets += [
            Target(
                "4. early refresh",
                f"0 reads wait on a loader ({name})",
                count_text(waited),
                waited.high == 0,
            ),
            Target(
                "4. early refresh",
                f"≤ {MAX_LOADS} loader calls in {duration:g} s ({name})",
                count_text(loads),
                loads.high <= MAX_LOADS,
            ),
            Target(
                "4. early refresh",
                f"1 round trip per hit ({name})",
                rt.text("{:.2f}"),
                rt.high == 1,
            ),
        ]
    for name, c in contenders.items():
        if isinstance(c, str):
            section.targets.append(Target("4. early refresh", f"all targets ({name})", c, None))
    return section
