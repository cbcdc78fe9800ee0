"""The textbook recipes: the design page's patterns, as the baseline to beat.

Re-implemented minimally for the benchmarks from the recipe page templategen started
from (the same commands in the same order, nothing fixed), so that round trips,
stampedes and refresh counts can be set side by side with the reference. They keep
the recipes' flaws on purpose -- a falsy check for a miss, no leases, a lock that
sleeps once and then loads anyway, a refresh probability that reads the TTL in a
second round trip, ``get_tags`` by SCAN -- because those flaws are what is measured.
Not for use outside bench/.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

__all__ = [
    "TextbookCacheAside",
    "TextbookEarlyRefresh",
    "TextbookStampede",
    "TextbookTaggedCache",
    "TextbookVersionedCache",
    "TextbookWriteBehind",
    "TextbookWriteThrough",
]

_RELEASE_LUA = """
if redis.call("get", KEYS[1]) == ARGV[1] then
    return redis.call("del", KEYS[1])
else
    return 0
end
"""


class TextbookCacheAside:
    """The page's class-based cache-aside: GET, else load and SETEX."""

    def __init__(self, client: redis.Redis, prefix: str = "cache", ttl: int = 3600) -> None:
        self.redis, self.prefix, self.ttl = client, prefix, ttl

    def get(self, key: str, loader: Callable[[], Any], ttl: int | None = None) -> Any:
        cache_key = f"{self.prefix}:{key}"
        cached = self.redis.get(cache_key)
        if cached:
            return json.loads(cached)
        data = loader()
        self.redis.setex(cache_key, ttl or self.ttl, json.dumps(data))
        return data

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        self.redis.setex(f"{self.prefix}:{key}", ttl or self.ttl, json.dumps(value))

    def delete(self, key: str) -> None:
        self.redis.delete(f"{self.prefix}:{key}")


class TextbookTaggedCache:
    """The page's tagged cache: pipelined SETEX + SADD, SMEMBERS + DEL, SCAN for get_tags."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def set_with_tags(self, key: str, value: str, ttl: int, tags: list[str]) -> None:
        pipe = self.redis.pipeline()
        pipe.setex(key, ttl, value)
        for tag in tags:
            tag_key = f"cache:tag:{tag}"
            pipe.sadd(tag_key, key)
            pipe.expire(tag_key, ttl)
        pipe.execute()

    def get(self, key: str) -> Any:
        # The page has no get: a reader GETs the bare key, as its usage example does.
        cached = self.redis.get(key)
        return json.loads(cached) if cached else None

    def invalidate_tags(self, *tags: str) -> None:
        keys_to_delete: set[bytes | str] = set()
        for tag in tags:
            tag_key = f"cache:tag:{tag}"
            keys_to_delete.update(self.redis.smembers(tag_key))
            keys_to_delete.add(tag_key)
        if keys_to_delete:
            self.redis.delete(*keys_to_delete)

    def get_tags(self, key: str) -> set[str]:
        tags = set()
        for tag_key in self.redis.scan_iter(match="cache:tag:*", count=100):
            if self.redis.sismember(tag_key, key):
                tags.add(tag_key.decode().split(":", 2)[2])
        return tags


class TextbookVersionedCache:
    """The page's versioned cache: GET the version, then GET the entry (two round trips)."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get_version(self, entity: str) -> int:
        version = self.redis.get(f"cache:version:{entity}")
        return int(version) if version else 0

    def increment_version(self, entity: str) -> int:
        return int(self.redis.incr(f"cache:version:{entity}"))

    def cache_key(self, entity: str, id: str) -> str:
        return f"{entity}:v{self.get_version(entity)}:{id}"

    def get(self, entity: str, id: str) -> bytes | None:
        return self.redis.get(self.cache_key(entity, id))  # type: ignore[return-value]

    def set(self, entity: str, id: str, value: str, ttl: int = 3600) -> None:
        self.redis.setex(self.cache_key(entity, id), ttl, value)

    def get_or_load(self, entity: str, id: str, loader: Callable[[], Any], ttl: int = 3600) -> Any:
        # How the page's usage combines them: get, and on a miss load and set.
        cached = self.get(entity, id)
        if cached:
            return json.loads(cached)
        data = loader()
        self.set(entity, id, json.dumps(data), ttl)
        return data


class TextbookStampede:
    """The page's cache_with_lock: SET NX lock; losers sleep 100 ms once, then load anyway."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def cache_with_lock(self, cache_key: str, loader: Callable[[], Any], ttl: int = 3600) -> Any:
        cached = self.redis.get(cache_key)
        if cached:
            return json.loads(cached)
        lock_key, lock_value = f"lock:{cache_key}", str(uuid.uuid4())
        acquired = self.redis.set(lock_key, lock_value, ex=10, nx=True)
        try:
            if acquired:
                data = loader()
                self.redis.setex(cache_key, ttl, json.dumps(data))
                return data
            time.sleep(0.1)
            cached = self.redis.get(cache_key)
            if cached:
                return json.loads(cached)
            return loader()  # the fallback that stampedes once a load outlasts the sleep
        finally:
            if acquired:
                self.redis.eval(_RELEASE_LUA, 1, lock_key, lock_value)


class TextbookEarlyRefresh:
    """The page's early refresh: GET, then TTL, refresh with probability beta * age / ttl."""

    def __init__(self, client: redis.Redis) -> None:
        self.redis = client

    def get_with_refresh(
        self, key: str, loader: Callable[[], Any], ttl: int = 3600, beta: float = 1.0
    ) -> Any:
        cached_data = self.redis.get(key)
        if cached_data:
            remaining_ttl = self.redis.ttl(key)
            if remaining_ttl > 0:
                delta = ttl - remaining_ttl
                probability = beta * delta / ttl
                if random.random() < probability:
                    try:
                        data = loader()
                        self.redis.setex(key, ttl, json.dumps(data))
                        return data
                    except Exception:
                        return json.loads(cached_data)
            return json.loads(cached_data)
        data = loader()
        self.redis.setex(key, ttl, json.dumps(data))
        return data


class TextbookWriteThrough:
    """The page's write-through, over a Store instead of MongoDB: GET, else read and SETEX."""

    def __init__(self, client: redis.Redis, store: Any, prefix: str, ttl: int = 3600) -> None:
        self.redis, self.store, self.prefix, self.ttl = client, store, prefix, ttl

    def get(self, doc_id: str) -> Any:
        cache_key = f"{self.prefix}:{doc_id}"
        cached = self.redis.get(cache_key)
        if cached:
            return json.loads(cached)
        row = self.store.get(doc_id)
        if row:
            self.redis.setex(cache_key, self.ttl, json.dumps(row.data))
            return row.data
        return None

    def set(self, doc_id: str, data: Any) -> Any:
        row = self.store.upsert(doc_id, data)
        self.redis.setex(f"{self.prefix}:{doc_id}", self.ttl, json.dumps(row.data))
        return row.data


class TextbookWriteBehind:
    """The page's write-behind, synchronous: SETEX now, pending writes in a dict, flushed
    in bulk writes of ``batch_size`` (the page's ``bulk_write`` is ``store.upsert_many``)."""

    def __init__(self, client: redis.Redis, store: Any, batch_size: int = 100) -> None:
        self.redis, self.store, self.batch_size = client, store, batch_size
        self.pending_writes: dict[str, dict[str, Any]] = {}
        self._version = 0

    def set(self, collection: str, doc_id: str, data: Any) -> None:
        self.redis.setex(f"{collection}:{doc_id}", 3600, json.dumps(data))
        self.pending_writes.setdefault(collection, {})[doc_id] = {
            "data": data,
            "timestamp": time.time(),
        }

    def flush_all(self, row: Callable[[str, Any, int], Any]) -> None:
        for docs in self.pending_writes.values():
            operations = []
            for doc_id, doc_info in list(docs.items()):
                self._version += 1
                operations.append(row(doc_id, doc_info["data"], self._version))
                if len(operations) >= self.batch_size:
                    self.store.upsert_many(operations)
                    operations = []
            if operations:
                self.store.upsert_many(operations)
            docs.clear()
