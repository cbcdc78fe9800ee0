"""SQLiteStore: the embedded default database keeps the Store contract."""

from __future__ import annotations

import threading
from pathlib import Path

from templategen.reference.store import Row, SQLiteStore, Store


def test_sqlite_store_satisfies_the_store_protocol(tmp_path: Path) -> None:
    assert isinstance(SQLiteStore(tmp_path / "db.sqlite"), Store)


def test_upsert_bumps_the_version_and_get_returns_the_latest(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    assert store.get("a") is None
    assert store.upsert("a", {"n": 1}) == Row("a", {"n": 1}, 1)
    assert store.upsert("a", {"n": 2}) == Row("a", {"n": 2}, 2)
    assert store.get("a") == Row("a", {"n": 2}, 2)


def test_concurrent_upserts_never_share_a_version(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    versions: list[int] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(20):
            row = store.upsert("hot", {"w": n, "i": i})
            with lock:
                versions.append(row.version)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(versions) == list(range(1, 161))


def test_upsert_many_is_idempotent_and_never_goes_back_a_version(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    batch = [Row("a", "new", 5), Row("b", "b1", 1)]
    assert store.upsert_many(batch) == 2
    assert store.upsert_many(batch) == 0  # a replay writes nothing
    assert store.upsert_many([Row("a", "old", 3)]) == 0
    assert store.get("a") == Row("a", "new", 5)


def test_delete_removes_the_row(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    store.upsert("a", 1)
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.get("a") is None
