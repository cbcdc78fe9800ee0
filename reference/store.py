"""The user's database, as write-through and write-behind see it: the ``Store`` protocol.

A store holds rows ``(id, data, version)``. ``version`` grows by one on every write of
a row, and is how the cache tells a newer write from an older one. The protocol is four
methods, so it can be implemented for any database in a screenful; :class:`SQLiteStore`
(stdlib ``sqlite3``) is the embedded default and what the tests run against.

Guarantees a store must give:

- ``upsert(id, data)`` writes the row and returns it with a version greater than any
  the row had before, atomically (two concurrent upserts never get the same version).
- ``upsert_many(rows)`` writes each row only if its version is greater than the stored
  one, in one transaction, and returns how many it wrote. Replaying a batch is
  therefore a no-op: write-behind relies on this after a crash.
- ``delete(id)`` removes the row; ``get(id)`` returns it or ``None``.
- Failures raise; wrap them in :class:`~.errors.StoreError` if you like, any exception
  is treated as a failed write.

A PostgreSQL store, for example (psycopg 3, table ``rows(id text primary key,
data jsonb, version bigint)``)::

    class PostgresStore:
        def __init__(self, pool): self.pool = pool

        def get(self, id):
            with self.pool.connection() as c:
                r = c.execute("SELECT data, version FROM rows WHERE id = %s", (id,)).fetchone()
            return Row(id, r[0], r[1]) if r else None

        def upsert(self, id, data):
            with self.pool.connection() as c:
                (version,) = c.execute(
                    "INSERT INTO rows VALUES (%s, %s, 1) ON CONFLICT (id) DO UPDATE"
                    " SET data = EXCLUDED.data, version = rows.version + 1 RETURNING version",
                    (id, Jsonb(data))).fetchone()
            return Row(id, data, version)

        def upsert_many(self, rows):
            with self.pool.connection() as c:
                cur = c.cursor()
                cur.executemany(
                    "INSERT INTO rows VALUES (%s, %s, %s) ON CONFLICT (id) DO UPDATE"
                    " SET data = EXCLUDED.data, version = EXCLUDED.version"
                    " WHERE rows.version < EXCLUDED.version",
                    [(r.id, Jsonb(r.data), r.version) for r in rows])
                return cur.rowcount

        def delete(self, id):
            with self.pool.connection() as c:
                return c.execute("DELETE FROM rows WHERE id = %s", (id,)).rowcount > 0

MongoDB is the same shape: ``find_one_and_update(..., {"$inc": {"version": 1}},
upsert=True, return_document=AFTER)`` for ``upsert``, and ``bulk_write`` of
``UpdateOne({"_id": id, "version": {"$lt": v}}, ..., upsert=True)`` for ``upsert_many``
(a duplicate-key error on an upsert there means a newer version won; ignore it).
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .errors import StoreError

__all__ = ["Row", "SQLiteStore", "Store"]


@dataclass(frozen=True, slots=True)
class Row:
    """One row of the user's data: ``data`` is JSON-compatible, ``version`` only grows."""

    id: str
    data: Any
    version: int


@runtime_checkable
class Store(Protocol):
    """The four operations write-through and write-behind need from a database."""

    def get(self, id: str) -> Row | None: ...

    def upsert(self, id: str, data: Any) -> Row: ...

    def upsert_many(self, rows: Iterable[Row]) -> int: ...

    def delete(self, id: str) -> bool: ...


class SQLiteStore:
    """A :class:`Store` in one SQLite table; safe across threads and processes.

    Each thread gets its own connection (sqlite3 connections must not be shared while
    in use); WAL mode lets readers run beside a writer, and ``busy_timeout`` makes a
    second process wait for the write lock instead of failing at once.
    """

    def __init__(self, path: str | Path, *, table: str = "cache_rows") -> None:
        if not table.isidentifier():
            raise StoreError(f"table must be a plain SQL identifier, got {table!r}")
        self.path = str(path)
        self._table = table
        self._local = threading.local()
        with self._connect() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} ("
                " id TEXT PRIMARY KEY, data TEXT NOT NULL, version INTEGER NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def get(self, id: str) -> Row | None:
        try:
            found = (
                self._connect()
                .execute(f"SELECT data, version FROM {self._table} WHERE id = ?", (id,))
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite get {id!r} failed: {exc}") from exc
        return Row(id, json.loads(found[0]), found[1]) if found else None

    def upsert(self, id: str, data: Any) -> Row:
        encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        conn = self._connect()
        try:
            # BEGIN IMMEDIATE takes the write lock before reading the version, so two
            # writers (threads or processes) can never both read v and both write v + 1.
            conn.execute("BEGIN IMMEDIATE")
            try:
                (version,) = conn.execute(
                    f"INSERT INTO {self._table} (id, data, version) VALUES (?, ?, 1)"
                    " ON CONFLICT (id) DO UPDATE SET data = excluded.data,"
                    f" version = {self._table}.version + 1 RETURNING version",
                    (id, encoded),
                ).fetchone()
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite upsert {id!r} failed: {exc}") from exc
        return Row(id, data, int(version))

    def upsert_many(self, rows: Iterable[Row]) -> int:
        params = [
            (row.id, json.dumps(row.data, separators=(",", ":"), ensure_ascii=False), row.version)
            for row in rows
        ]
        conn = self._connect()
        written = 0
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                for param in params:
                    # The WHERE makes a replayed (or older) row a no-op: idempotent.
                    cur = conn.execute(
                        f"INSERT INTO {self._table} (id, data, version) VALUES (?, ?, ?)"
                        " ON CONFLICT (id) DO UPDATE SET data = excluded.data,"
                        " version = excluded.version"
                        f" WHERE {self._table}.version < excluded.version",
                        param,
                    )
                    written += cur.rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite upsert_many failed: {exc}") from exc
        return written

    def delete(self, id: str) -> bool:
        try:
            cur = self._connect().execute(f"DELETE FROM {self._table} WHERE id = ?", (id,))
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite delete {id!r} failed: {exc}") from exc
        return cur.rowcount > 0

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
