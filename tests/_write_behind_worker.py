"""A flusher process for test_write_behind's SIGKILL test; not a test module.

Usage: python _write_behind_worker.py REDIS_URL SQLITE_PATH MARKER_PATH PREFIX

Its flusher reads the whole queue as one window and writes it in batches of 20 rows.
The store commits the first batch, then the first half of the second, writes
MARKER_PATH, and stalls inside ``upsert_many``: a SIGKILL sent once the marker exists
lands mid-batch, after the first batch's XACK and a partial commit of the second.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import redis
from templategen.reference.store import Row, SQLiteStore
from templategen.reference.write_behind import WriteBehindCache


class StallingStore:
    def __init__(self, inner: SQLiteStore, marker: Path) -> None:
        self.inner = inner
        self.marker = marker
        self.calls = 0

    def get(self, id: str) -> Row | None:
        return self.inner.get(id)

    def upsert(self, id: str, data: Any) -> Row:
        return self.inner.upsert(id, data)

    def upsert_many(self, rows: Iterable[Row]) -> int:
        batch = list(rows)
        self.calls += 1
        if self.calls == 1:
            return self.inner.upsert_many(batch)
        written = self.inner.upsert_many(batch[: len(batch) // 2])
        self.marker.write_text(f"{len(batch)} rows, {written} committed")
        time.sleep(3600)  # the test kills the process here
        return written

    def delete(self, id: str) -> bool:
        return self.inner.delete(id)


def main(redis_url: str, sqlite_path: str, marker: str, prefix: str) -> None:
    store = StallingStore(SQLiteStore(sqlite_path), Path(marker))
    cache = WriteBehindCache(
        redis.Redis.from_url(redis_url), store, prefix=prefix, batch_size=20, flush_interval=0.05
    )
    cache.start()
    time.sleep(3600)


if __name__ == "__main__":
    main(*sys.argv[1:])
