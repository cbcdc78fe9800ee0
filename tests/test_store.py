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


def test_delete_returns_the_version_of_the_deletion_and_none_without_a_row(
    tmp_path: Path,
) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    assert store.delete("a") is None  # never existed
    store.upsert("a", 1)
    store.upsert("a", 2)
    assert store.delete("a") == 3
    assert store.get("a") is None
    assert store.delete("a") is None  # already deleted: nothing changes
    assert store.upsert("a", 3) == Row("a", 3, 4)


def test_versions_keep_growing_across_deletes(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    seen = [store.upsert("a", "v1").version]
    for i in range(3):
        deleted = store.delete("a")
        assert deleted is not None
        seen += [deleted, store.upsert("a", f"again {i}").version]
    assert seen == list(range(1, 8))
    assert store.get("a") == Row("a", "again 2", 7)


def test_a_json_null_row_is_a_row_not_a_tombstone(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    store.upsert("a", None)
    assert store.get("a") == Row("a", None, 1)
    assert store.delete("a") == 2


def test_upsert_many_treats_a_tombstone_like_an_older_version(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    store.upsert_many([Row("a", "v5", 5)])
    assert store.delete("a") == 6
    # A replayed batch from before the delete does not bring the row back ...
    assert store.upsert_many([Row("a", "v5", 5), Row("a", "v6", 6)]) == 0
    assert store.get("a") is None
    # ... a newer write does.
    assert store.upsert_many([Row("a", "v7", 7)]) == 1
    assert store.get("a") == Row("a", "v7", 7)


def test_concurrent_deletes_and_upserts_never_share_a_version(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    versions: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(20):
            version = store.delete("hot") if i % 2 else store.upsert("hot", n).version
            if version is not None:
                with lock:
                    versions.append(version)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(versions) == len(set(versions))  # every write and delete has its own
    last = store.upsert("hot", "last").version
    assert last == max(versions) + 1
