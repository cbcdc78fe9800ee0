"""The user's database, as write-through and write-behind see it: the ``Store`` protocol.

A store holds rows ``(id, data, version)``. ``version`` grows on every write of a row,
deletes included, and is how the cache tells a newer write from an older one. The
protocol is four methods, so it can be implemented for any database in a screenful;
:class:`SQLiteStore` (stdlib ``sqlite3``) is the embedded default and what the tests run
against.

Guarantees a store must give:

- Versions of a row only grow, also across a delete: a row deleted at version 7 and
  written again gets 9, never 1. (Otherwise a write of the old row still on its way to
  the cache could win the cache's version compare-and-set over the new one.) A store
  keeps the version of a deleted row in a *tombstone* (the row with no data), or takes
  versions from one sequence shared by all rows.
- ``upsert(id, data)`` writes the row and returns it with a version greater than any
  the row had before, atomically (two concurrent upserts never get the same version).
- ``upsert_many(rows)`` writes each row only if its version is greater than the stored
  one (a tombstone's included), in one transaction, and returns how many it wrote.
  Replaying a batch is therefore a no-op: write-behind relies on this after a crash.
- ``delete(id)`` removes the row and returns the version of the deletion, greater than
  any the row had; ``None`` if there was no row (nothing changes then).
- ``get(id)`` returns the row, or ``None`` if there is none or it was deleted.
- Failures raise; wrap them in :class:`~.errors.StoreError` if you like, any exception
  is treated as a failed write.

A PostgreSQL store, for example (psycopg 3, table ``rows(id text primary key,
data jsonb, version bigint not null)``; a deleted row keeps its version with ``data``
NULL)::

    class PostgresStore:
        def __init__(self, pool): self.pool = pool

        def get(self, id):
            with self.pool.connection() as c:
                r = c.execute("SELECT data, version FROM rows"
                              " WHERE id = %s AND data IS NOT NULL", (id,)).fetchone()
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
                r = c.execute("UPDATE rows SET data = NULL, version = version + 1"
                              " WHERE id = %s AND data IS NOT NULL RETURNING version",
                              (id,)).fetchone()
            return r[0] if r else None

(Store JSON ``null`` as the jsonb value ``'null'``, not SQL NULL, so it is not taken
for a tombstone.) MongoDB is the same shape, with a ``deleted`` flag in each document:
``find_one_and_update({"_id": id}, {"$set": {"data": data, "deleted": False}, "$inc":
{"version": 1}}, upsert=True, return_document=AFTER)`` for ``upsert``; ``bulk_write``
of ``UpdateOne({"_id": id, "version": {"$lt": v}}, {"$set": {..., "deleted": False}},
upsert=True)`` for ``upsert_many`` (a duplicate-key error on an upsert there means a
newer version won; ignore it); ``find_one_and_update({"_id": id, "deleted": False},
{"$set": {"deleted": True, "data": None}, "$inc": {"version": 1}},
return_document=AFTER)`` for ``delete`` (its ``version``, or None when nothing
matched); and ``find_one({"_id": id, "deleted": False})`` for ``get``.

Tombstones are never purged here: purging one would let the row restart at version 1.
A store that needs to reclaim them should take versions from one sequence shared by
every row instead (a PostgreSQL sequence, a MongoDB counter document); then ``delete``
may remove the row outright and return the sequence's next value.
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
    """The four operations write-through and write-behind need from a database.

    A row's versions only grow, across deletes too (see the module docstring).
    """

    def get(self, id: str) -> Row | None:
        """The live row ``id``; None if there is none or it was deleted."""
        ...

    def upsert(self, id: str, data: Any) -> Row:
        """Write the row at a version above any it had, deleted or not; return it."""
        ...

    def upsert_many(self, rows: Iterable[Row]) -> int:
        """Write each row whose version is above the stored one, atomically; the count."""
        ...

    def delete(self, id: str) -> int | None:
        """Delete the live row; the deletion's version (above the row's), or None if none."""
        ...


class SQLiteStore:
    """A :class:`Store` in one SQLite table; safe across threads and processes.

    Each thread gets its own connection (sqlite3 connections must not be shared while
    in use); WAL mode lets readers run beside a writer, and ``busy_timeout`` makes a
    second process wait for the write lock instead of failing at once. A deleted row
    stays as a tombstone (``data`` NULL) holding its last version, so the row's
    versions keep growing when it is written again. A table created by an older
    version of this class (``data`` NOT NULL) cannot hold tombstones: ``delete`` fails
    on it with a StoreError; recreate the table.
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
                " id TEXT PRIMARY KEY, data TEXT, version INTEGER NOT NULL)"
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
        if found is None or found[0] is None:  # no such row, or its tombstone
            return None
        return Row(id, json.loads(found[0]), found[1])

    def upsert(self, id: str, data: Any) -> Row:
        encoded = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        conn = self._connect()
        try:
            # BEGIN IMMEDIATE takes the write lock before reading the version, so two
            # writers (threads or processes) can never both read v and both write v + 1.
            # A tombstone is a conflict like a live row: the version continues from it.
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
                    # The WHERE makes a replayed (or older) row a no-op: idempotent. A
                    # tombstone is compared like any row, so only a newer write revives it.
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

    def delete(self, id: str) -> int | None:
        try:
            # One statement, so atomic: the row becomes a tombstone one version up, and
            # a row that is already a tombstone (or absent) is left alone.
            # fetchall steps the statement to its end, which is when autocommit commits.
            found = (
                self._connect()
                .execute(
                    f"UPDATE {self._table} SET data = NULL, version = version + 1"
                    " WHERE id = ? AND data IS NOT NULL RETURNING version",
                    (id,),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise StoreError(f"sqlite delete {id!r} failed: {exc}") from exc
        return int(found[0][0]) if found else None

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
