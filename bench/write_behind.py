"""5. Write-behind: accepted writes per second, store upserts per flush, time to durable.

- *Writes/s*: ``set`` against a plain ``SET`` of the same bytes, on the same single
  connection, in alternating chunks: the ratio of their rates.
- *Upserts*: 10,000 writes over 100 keys, then (a) one ``flush()`` of that backlog, and
  (b) the same writes with the background flusher running (``start()``/``stop()``).
  A counting store records every ``upsert_many``: how many calls, how many rows.
- *Time to durable*: writes at a steady rate with the background flusher running (the
  reference and the rendered module side by side, each on its own store); for each
  write, the time from ``set`` returning to the commit of the first
  ``upsert_many`` holding that row at that version or a newer one.
"""

from __future__ import annotations

import itertools
import json
import statistics
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import redis
from templategen.reference.store import Row, SQLiteStore

from .context import Run
from .harness import Summary, count_text, percentile, time_calls
from .patterns import main_class
from .report import Section, Table, Target
from .textbook import TextbookWriteBehind

__all__ = ["measure"]

KEYS = 100
WRITES = 10_000
MAX_ROWS_PER_FLUSH = 100


class CountingStore:
    """SQLiteStore, recording each upsert_many: its rows and when it committed."""

    def __init__(self, path: Path) -> None:
        self._store = SQLiteStore(path)
        self.calls: list[tuple[float, list[tuple[str, int]]]] = []
        self._lock = threading.Lock()

    def get(self, id: str) -> Row | None:
        return self._store.get(id)

    def upsert(self, id: str, data: Any) -> Row:
        return self._store.upsert(id, data)

    def upsert_many(self, rows: Iterable[Any]) -> int:
        rows = list(rows)
        written = self._store.upsert_many(rows)
        with self._lock:
            self.calls.append((time.monotonic(), [(r.id, r.version) for r in rows]))
        return written

    def delete(self, id: str) -> int | None:
        return self._store.delete(id)

    @property
    def rows(self) -> int:
        return sum(len(rows) for _, rows in self.calls)


def _row(data: dict[str, Any]) -> dict[str, Any]:
    return {"name": "Ada", "visits": data["n"], "plan": "pro"}


class _Bench:
    def __init__(self, run: Run) -> None:
        self.run = run
        # next() on a count is atomic: threads measuring side by side never share a
        # store file or a key prefix (and so a stream, whose flusher would take both).
        self._numbers = itertools.count(1)

    def store(self) -> CountingStore:
        return CountingStore(self.run.workdir / f"wb-{next(self._numbers)}.db")

    def cache(self, impl: str, module: Any, client: redis.Redis, store: CountingStore) -> Any:
        cls = main_class("write-behind", impl, module)
        return cls(client, store, prefix=f"wb{next(self._numbers)}")


def _writes_ratio(bench: _Bench, impl: str, module: Any, chunk: int, rounds: int) -> float:
    """One repetition: write-behind sets per second / plain SETs per second."""
    client = redis.Redis.from_url(bench.run.url, single_connection_client=True)
    cache = bench.cache(impl, module, client, bench.store())
    payload = json.dumps(_row({"n": 1}), separators=(",", ":")).encode()
    i = [0]

    def queued() -> None:
        i[0] += 1
        cache.set(f"user:{i[0] % KEYS}", _row({"n": i[0]}))

    def plain() -> None:
        i[0] += 1
        client.set(f"plain:{i[0] % KEYS}", payload)

    ratios = []
    for r in range(rounds):
        if r % 2 == 0:
            p, q = time_calls(plain, chunk), time_calls(queued, chunk)
        else:
            q, p = time_calls(queued, chunk), time_calls(plain, chunk)
        ratios.append(p / q)
    client.close()
    return statistics.median(ratios)


def _textbook_writes_ratio(bench: _Bench, chunk: int, rounds: int) -> float:
    client = redis.Redis.from_url(bench.run.url, single_connection_client=True)
    textbook = TextbookWriteBehind(client, bench.store())
    payload = json.dumps(_row({"n": 1}), separators=(",", ":")).encode()
    i = [0]

    def queued() -> None:
        i[0] += 1
        textbook.set("users", f"user:{i[0] % KEYS}", _row({"n": i[0]}))

    def plain() -> None:
        i[0] += 1
        client.set(f"plain:{i[0] % KEYS}", payload)

    ratios = []
    for r in range(rounds):
        if r % 2 == 0:
            p, q = time_calls(plain, chunk), time_calls(queued, chunk)
        else:
            q, p = time_calls(queued, chunk), time_calls(plain, chunk)
        ratios.append(p / q)
    client.close()
    return statistics.median(ratios)


def _upserts(bench: _Bench, impl: str, module: Any, writes: int, background: bool) -> CountingStore:
    """``writes`` sets over KEYS keys, then one flush (or a running flusher); the store."""
    client = bench.run.client()
    store = bench.store()
    cache = bench.cache(impl, module, client, store)
    if background:
        cache.start()
    for i in range(writes):
        cache.set(f"user:{i % KEYS}", _row({"n": i}))
    if background:
        cache.stop(timeout=120)
    else:
        cache.flush(timeout=120)
    client.close()
    return store


def _textbook_upserts(bench: _Bench, writes: int) -> CountingStore:
    client = bench.run.client()
    store = bench.store()
    textbook = TextbookWriteBehind(client, store)
    for i in range(writes):
        textbook.set("users", f"user:{i % KEYS}", _row({"n": i}))
    textbook.flush_all(lambda doc_id, data, version: Row(doc_id, data, version))
    client.close()
    return store


def _durable(bench: _Bench, impl: str, module: Any, seconds: float, rate: float) -> list[float]:
    """Milliseconds from each set to the commit that made it durable."""
    client = bench.run.client()
    store = bench.store()
    cache = bench.cache(impl, module, client, store)
    cache.start()
    written: list[tuple[str, int, float]] = []
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < seconds:
        due = start + i / rate
        time.sleep(max(0.0, due - time.monotonic()))
        row = cache.set(f"user:{i % KEYS}", _row({"n": i}))
        written.append((row.id, row.version, time.monotonic()))
        i += 1
    cache.stop(timeout=120)
    client.close()
    commits: dict[str, list[tuple[int, float]]] = {}
    for committed, rows in store.calls:
        for id, version in rows:
            commits.setdefault(id, []).append((version, committed))
    latencies = []
    for id, version, at in written:
        durable = min(t for v, t in commits.get(id, []) if v >= version)
        latencies.append(1000 * (durable - at))
    return latencies


def measure(run: Run) -> Section:
    bench = _Bench(run)
    writes = 2_000 if run.quick else WRITES
    chunk, rounds = 50, (8 if run.quick else 30)
    durable_s, rate = (2.0, 200.0) if run.quick else (3.0, 300.0)
    impls = [(impl, m) for impl, m in run.impls.variants("write-behind") if m is not None]
    ratio: dict[str, list[float]] = {}
    backlog: dict[str, list[CountingStore]] = {}
    running: dict[str, list[CountingStore]] = {}
    durable: dict[str, list[tuple[float, float]]] = {}
    for rep in range(run.reps):
        run.log(f"repetition {rep + 1}")
        for impl, module in impls:
            ratio.setdefault(impl, []).append(_writes_ratio(bench, impl, module, chunk, rounds))
            backlog.setdefault(impl, []).append(_upserts(bench, impl, module, writes, False))
            running.setdefault(impl, []).append(_upserts(bench, impl, module, writes, True))
        # Time to durable is set by the flushers' timing, not by CPU: the implementations
        # write side by side, each at the full rate to its own store, in the same seconds.
        with ThreadPoolExecutor(len(impls)) as pool:
            lats = pool.map(lambda im: _durable(bench, im[0], im[1], durable_s, rate), impls)
            for (impl, _), lat in zip(impls, lats, strict=True):
                durable.setdefault(impl, []).append((percentile(lat, 0.5), percentile(lat, 0.99)))
        ratio.setdefault("textbook", []).append(_textbook_writes_ratio(bench, chunk, rounds))
        backlog.setdefault("textbook", []).append(_textbook_upserts(bench, writes))
    columns = [impl for impl, _ in impls] + ["textbook"]
    section = Section(
        "write-behind",
        "5. Write-behind",
        f"Median (min–max) of {run.reps} repetitions. {writes:,} writes go over {KEYS} keys "
        "(round robin), default options (batch_size 100, flush_interval 1 s). *textbook*: "
        "the page's recipe made synchronous (SETEX, pending writes in a dict in process "
        "memory, lost if the process dies), flushed once.",
    )
    table = Table("Write-behind", ["figure", *columns, "target"])

    def cell(impl: str, values: list[float] | None, fmt: str | None = None) -> str:
        if values is None:
            return "–"
        summary = Summary.of(values)
        return count_text(summary) if fmt is None else summary.text(fmt)

    table.add(
        "accepted writes/s ÷ plain SET loop, same connection",
        *(cell(c, ratio.get(c), "{:.2f}") for c in columns),
        "",
    )
    for label, stores, target in (
        (
            f"backlog of {writes:,} writes, one flush(): rows upserted",
            backlog,
            f"≤ {MAX_ROWS_PER_FLUSH}",
        ),
        (f"backlog of {writes:,} writes, one flush(): upsert_many calls", backlog, ""),
        ("flusher running during the writes: rows upserted", running, ""),
        ("flusher running during the writes: upsert_many calls", running, ""),
        ("largest upsert_many (rows), either way", None, f"≤ {MAX_ROWS_PER_FLUSH}"),
    ):
        cells = []
        for c in columns:
            if stores is None:
                sizes = [
                    max((len(rows) for _, rows in s.calls), default=0)
                    for s in backlog.get(c, []) + running.get(c, [])
                ]
                cells.append(cell(c, sizes or None))
            elif c not in stores:
                cells.append("–")
            elif "calls" in label:
                cells.append(cell(c, [len(s.calls) for s in stores[c]]))
            else:
                cells.append(cell(c, [s.rows for s in stores[c]]))
        table.add(label, *cells, target)
    for label, index in (
        ("write → durable in SQLite, p50 ms (context)", 0),
        ("p99 ms (context)", 1),
    ):
        table.add(
            label,
            *(
                cell(c, [d[index] for d in durable[c]], "{:.0f}") if c in durable else "–"
                for c in columns
            ),
            "",
        )
    table.notes.append(
        f"Time to durable: {rate:g} writes/s for {durable_s:g} s with the background flusher, "
        "each implementation on its own store, side by side; an absolute time (context), "
        "set by flush_interval when the flusher is idle."
    )
    if "rendered" not in columns:
        table.notes.append(f"rendered: {run.impls.why_missing('write-behind')}")
    section.tables.append(table)
    for impl, _ in impls:
        rows = Summary.of(s.rows for s in backlog[impl])
        biggest = max(len(r) for s in backlog[impl] + running[impl] for _, r in s.calls)
        section.targets.append(
            Target(
                "5. write-behind",
                f"≤ {MAX_ROWS_PER_FLUSH} store upserts per flush for {writes:,} writes over "
                f"{KEYS} keys ({impl})",
                f"one flush() of the backlog upserts {count_text(rows)} rows in "
                f"{count_text(Summary.of(len(s.calls) for s in backlog[impl]))} calls of ≤ "
                f"{biggest} rows",
                rows.high <= MAX_ROWS_PER_FLUSH,
            )
        )
    section.plot["write-behind"] = {c: Summary.of(v) for c, v in ratio.items()}
    return section
