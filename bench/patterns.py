"""Each pattern's operations, the same way for the reference, the rendered code and the textbook.

:func:`operations` returns, for one pattern and one implementation, a dict of named
:class:`Operation` objects (``hit``, ``miss``, and the pattern's writes). An operation
is ``prime(key)``, which puts the key in the state the operation needs (outside the
measured window), and ``call(key)``, the measured call. Keys are fresh per call, so a
miss is a real miss.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import redis
from templategen.reference.store import SQLiteStore
from templategen.registry import Registry

from . import textbook

__all__ = ["Operation", "json_value", "main_class", "operations"]


def json_value(size: int = 1024) -> dict[str, Any]:
    """A JSON object whose compact encoding is ``size`` bytes: a user record with padding."""
    value: dict[str, Any] = {
        "id": 123,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "roles": ["admin", "editor"],
        "active": True,
        "score": 98.5,
        "bio": "",
    }
    overhead = len(json.dumps(value, separators=(",", ":")))
    value["bio"] = "x" * (size - overhead)
    return value


def _nothing(key: str) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Operation:
    call: Callable[[str], object]
    prime: Callable[[str], object] = _nothing


def operations(
    pattern: str,
    impl: str,
    module: ModuleType | None,
    client: redis.Redis,
    value: Any,
    workdir: Path,
) -> dict[str, Operation]:
    """The operations of ``pattern`` for ``impl`` ("reference", "rendered" or "textbook")."""

    def loader() -> Any:
        return value

    tag = f"b-{impl}"  # each implementation keeps to its own keys
    if impl == "textbook":
        return _textbook(pattern, client, value, loader, tag, workdir)
    assert module is not None
    m: Any = module
    cls = main_class(pattern, impl, module)
    if pattern == "cache-aside":
        ca = m.CacheAside(client, m.CacheConfig(prefix=f"{tag}-ca"))
        return {
            "hit": Operation(lambda k: ca.get(k, loader), lambda k: ca.set(k, value)),
            "miss": Operation(lambda k: ca.get(k, loader)),
            "set": Operation(lambda k: ca.set(k, value)),
            "delete": Operation(ca.delete, lambda k: ca.set(k, value)),
        }
    if pattern == "write-through":
        store = SQLiteStore(workdir / f"{tag}-wt.db")
        wt = m.WriteThroughCache(client, store, prefix=f"{tag}-wt", ttl=3600)
        return {
            "hit": Operation(wt.get, lambda k: wt.set(k, value)),
            "miss": Operation(wt.get, lambda k: store.upsert(k, value)),
            "set": Operation(lambda k: wt.set(k, value)),
        }
    if pattern == "write-behind":
        store = SQLiteStore(workdir / f"{tag}-wb.db")
        wb = m.WriteBehindCache(client, store, prefix=f"{tag}-wb")
        return {
            "hit": Operation(wb.get, lambda k: wb.set(k, value)),
            "miss": Operation(wb.get, lambda k: store.upsert(k, value)),
            "set": Operation(lambda k: wb.set(k, value)),
        }
    if pattern == "tag-invalidation":
        tc = m.TaggedCache(client, prefix=f"{tag}-tag")

        def tagged(k: str) -> None:
            tc.set_with_tags(k, value, 3600, ["products", f"item:{k}"])

        return {
            "hit": Operation(tc.get, tagged),
            "miss": Operation(tc.get),
            "set_with_tags": Operation(tagged),
            "get_tags": Operation(tc.get_tags, tagged),
            "invalidate_tags (1 member)": Operation(
                lambda k: tc.invalidate_tags(f"item:{k}"), tagged
            ),
        }
    if pattern == "version-invalidation":
        vc = m.VersionedCache(client, prefix=f"{tag}-ver")
        return {
            "hit": Operation(
                lambda k: vc.get_or_load("user", k, loader), lambda k: vc.set("user", k, value)
            ),
            "miss": Operation(lambda k: vc.get_or_load("user", k, loader)),
            "increment_version": Operation(lambda k: vc.increment_version("user")),
        }
    if pattern == "stampede-lock":
        sp = cls(client, lock_prefix=f"{tag}-lock:")
        return {
            "hit": Operation(
                lambda k: sp.cache_with_lock(k, loader), lambda k: sp.cache_with_lock(k, loader)
            ),
            "miss": Operation(lambda k: sp.cache_with_lock(k, loader)),
        }
    if pattern == "early-refresh":
        er = cls(client, background=True, lock_prefix=f"{tag}-rl:")
        return {
            "hit": Operation(
                lambda k: er.get_with_refresh(k, loader, ttl=3600),
                lambda k: er.get_with_refresh(k, loader, ttl=3600),
            ),
            "miss": Operation(lambda k: er.get_with_refresh(k, loader, ttl=3600)),
        }
    raise ValueError(f"no operations for {pattern}")


#: The reference's class per pattern; rendered code names it after its class_name option.
_REFERENCE_CLASS = {
    "cache-aside": "CacheAside",
    "write-through": "WriteThroughCache",
    "write-behind": "WriteBehindCache",
    "tag-invalidation": "TaggedCache",
    "version-invalidation": "VersionedCache",
    "stampede-lock": "StampedePrevention",
    "early-refresh": "EarlyRefreshCache",
}


def main_class(pattern: str, impl: str, module: ModuleType) -> Any:
    """The pattern's class in ``module``: the reference's name, or the rendered default."""
    name = _REFERENCE_CLASS[pattern]
    if impl == "rendered":
        spec = Registry().get(pattern)
        if any(option.name == "class_name" for option in spec.options):
            name = str(spec.option("class_name").default)
    return getattr(module, name)


def _textbook(
    pattern: str,
    client: redis.Redis,
    value: Any,
    loader: Callable[[], Any],
    tag: str,
    workdir: Path,
) -> dict[str, Operation]:
    if pattern == "cache-aside":
        ca = textbook.TextbookCacheAside(client, prefix=f"{tag}-ca")
        return {
            "hit": Operation(lambda k: ca.get(k, loader), lambda k: ca.set(k, value)),
            "miss": Operation(lambda k: ca.get(k, loader)),
            "set": Operation(lambda k: ca.set(k, value)),
            "delete": Operation(ca.delete, lambda k: ca.set(k, value)),
        }
    if pattern == "write-through":
        store = SQLiteStore(workdir / f"{tag}-wt.db")
        wt = textbook.TextbookWriteThrough(client, store, prefix=f"{tag}-wt")
        return {
            "hit": Operation(wt.get, lambda k: wt.set(k, value)),
            "miss": Operation(wt.get, lambda k: store.upsert(k, value)),
            "set": Operation(lambda k: wt.set(k, value)),
        }
    if pattern == "tag-invalidation":
        tc = textbook.TextbookTaggedCache(client)
        payload = json.dumps(value)

        def tagged(k: str) -> None:
            tc.set_with_tags(f"{tag}:{k}", payload, 3600, ["products", f"item:{k}"])

        return {
            "hit": Operation(lambda k: tc.get(f"{tag}:{k}"), tagged),
            "miss": Operation(lambda k: tc.get(f"{tag}:{k}")),
            "set_with_tags": Operation(tagged),
            "invalidate_tags (1 member)": Operation(
                lambda k: tc.invalidate_tags(f"item:{k}"), tagged
            ),
        }
    if pattern == "version-invalidation":
        vc = textbook.TextbookVersionedCache(client)
        payload = json.dumps(value)
        return {
            "hit": Operation(
                lambda k: vc.get_or_load("user", k, loader), lambda k: vc.set("user", k, payload)
            ),
            "miss": Operation(lambda k: vc.get_or_load("user", k, loader)),
            "increment_version": Operation(lambda k: vc.increment_version("user")),
        }
    if pattern == "stampede-lock":
        sp = textbook.TextbookStampede(client)
        return {
            "hit": Operation(
                lambda k: sp.cache_with_lock(k, loader), lambda k: sp.cache_with_lock(k, loader)
            ),
            "miss": Operation(lambda k: sp.cache_with_lock(k, loader)),
        }
    if pattern == "early-refresh":
        er = textbook.TextbookEarlyRefresh(client)
        return {
            "hit": Operation(
                lambda k: er.get_with_refresh(k, loader),
                lambda k: er.get_with_refresh(k, loader),
            ),
            "miss": Operation(lambda k: er.get_with_refresh(k, loader)),
        }
    return {}  # write-behind: the page's version has no read and queues in process memory
