"""4. Early refresh under steady load: ttl 2 s, loader 50 ms, 20 threads reading for 10 s.

One key is filled by a first call (the warm-up), then 20 threads read it in a loop,
pausing ``PAUSE`` between reads, for ``DURATION`` seconds. Counted: loader calls,
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


def _one(
    get: Callable[[str, Callable[[], Any]], Any], counter: RoundTrips, duration: float
) -> _Outcome:
    value = json_value()
    key = f"refresh:{uuid.uuid4().hex}"
    local = threading.local()
    loads_lock = threading.Lock()
    loads = [0]

    def loader() -> Any:
        with loads_lock:
            loads[0] += 1
        if getattr(local, "reading", False):
            local.waited = True  # this read is running the loader itself
        time.sleep(LOADER_S)
        return value

    get(key, loader)  # the warm-up: fills the key
    loads[0] = 0
    before, _ = counter.snapshot()
    stop = time.monotonic() + duration
    totals = {"reads": 0, "waited": 0, "hit_rt": 0, "hits": 0, "rt": 0}
    totals_lock = threading.Lock()

    def reader() -> None:
        stats = CallerStats()
        CALLER.set(stats)
        reads = waited = hit_rt = hits = 0
        while time.monotonic() < stop:
            local.reading, local.waited = True, False
            sent = stats.round_trips
            get(key, loader)
            local.reading = False
            reads += 1
            if local.waited:
                waited += 1
            else:
                hits += 1
                hit_rt += stats.round_trips - sent
            time.sleep(PAUSE)
        with totals_lock:
            for name, n in (
                ("reads", reads),
                ("waited", waited),
                ("hit_rt", hit_rt),
                ("hits", hits),
                ("rt", stats.round_trips),
            ):
                totals[name] += n

    threads = [threading.Thread(target=reader) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    time.sleep(LOADER_S * 2)  # a refresh still running in the background finishes
    after, _ = counter.snapshot()
    return _Outcome(
        totals["reads"],
        totals["waited"],
        loads[0],
        totals["hit_rt"] / max(1, totals["hits"]),
        after - before - totals["rt"],
    )


def _contenders(
    run: Run, counter: RoundTrips
) -> dict[str, Callable[[str, Callable[[], Any]], Any] | str]:
    client = counting_client(run.url, counter)
    prewarm(client.connection_pool, THREADS + 4)  # no connection handshake inside a read
    found: dict[str, Callable[[str, Callable[[], Any]], Any] | str] = {}
    for impl, module in run.impls.variants("early-refresh"):
        label = f"{impl} (background=True)"
        if module is None:
            found[label] = run.impls.why_missing("early-refresh")
            continue
        cache = main_class("early-refresh", impl, module)(client, background=True)
        found[label] = lambda key, loader, c=cache: c.get_with_refresh(key, loader, ttl=TTL)
    textbook = TextbookEarlyRefresh(client)
    # The page's recipe takes whole seconds (SETEX, TTL), as its usage does.
    found["textbook (linear probability)"] = lambda key, loader: textbook.get_with_refresh(
        key, loader, ttl=int(TTL)
    )
    return found


def measure(run: Run) -> Section:
    duration = 3.0 if run.quick else 10.0
    counter = RoundTrips()
    contenders = _contenders(run, counter)
    outcomes: dict[str, list[_Outcome]] = {
        name: [] for name, c in contenders.items() if callable(c)
    }
    for rep in range(run.reps):
        for name, get in contenders.items():
            if callable(get):
                run.log(f"{name}, repetition {rep + 1}")
                outcomes[name].append(_one(get, counter, duration))
    section = Section(
        "refresh",
        "4. Early refresh under steady load",
        f"ttl {TTL:g} s, loader {LOADER_S * 1000:.0f} ms, {THREADS} threads reading one hot "
        f"key for {duration:g} s with a {PAUSE * 1000:g} ms pause between reads, after a "
        f"warm-up call that fills it; median (min–max) of {run.reps} repetitions. Targets "
        f"(background refresh): 0 reads that wait on a loader, ≤ {MAX_LOADS} loader calls, "
        "1 round trip per hit.",
    )
    table = Table("Early refresh, per run", ["figure", *contenders])

    def row(label: str, fn: Callable[[_Outcome], float], fmt: str | None = None) -> None:
        cells = []
        for name, c in contenders.items():
            if not callable(c):
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
        if not callable(c):
            section.targets.append(Target("4. early refresh", f"all targets ({name})", c, None))
    return section
