"""Tag-based invalidation: store entries under tags, drop every entry of a tag at once.

:meth:`TaggedCache.set_with_tags` stores a value with a TTL and files its key under one
or more tags ("products", "brand:apple"); :meth:`~TaggedCache.invalidate_tags` deletes
every entry filed under any of the given tags. Each tag is a Redis set of keys, and each
key keeps a small reverse index of its own tags, so re-tagging, deleting and
:meth:`~TaggedCache.get_tags` touch only that key's tags.

Guarantees
    - Invalidation is atomic. Its instant is its first script: every entry carrying one
      of the tags then is gone for :meth:`~TaggedCache.get` from that instant and deleted
      from Redis (with its index and its other tag memberships) when the call returns;
      an entry written after that instant survives, even while a large tag is still
      draining. A write racing the invalidation lands entirely before it (and is
      deleted) or entirely after (and stays).
    - ``set_with_tags`` is atomic (one script): value, tag memberships and reverse index
      change together. Re-setting a key with other tags removes it from the tags it no
      longer has, so invalidating those leaves it alone.
    - A tag set only ever gets a longer life (``PEXPIRE NX``, then ``GT``), so it outlives
      every entry filed under it: a long-lived entry stays invalidatable after shorter-lived
      ones were added to its tag.
    - Outside a running drain, every member of a tag set is a live entry carrying that
      tag, and every entry is a member of each of its tags' sets. (Entries that expired
      linger as members until the set expires or is invalidated; harmless, see below.)
    - ``get_tags`` reads the key's own reverse index: a few commands whatever the size of
      the keyspace, never SCAN or KEYS.
    - Signed-pickle data that fails verification is never unpickled.

How a large tag drains (what is atomic, what readers see)
    A tag with at most ``drain_batch`` members (counted over all tags of one call) is
    deleted inside the first script, entries and all. A larger tag is atomically RENAMEd
    to a draining key ``{prefix}:drain:{token}:{n}`` recorded in the drain registry,
    and drained by further script calls of ``drain_batch`` members each (SPOP, then
    UNLINK of each entry and its reverse index, and removal from its other tags). Each
    batch is atomic; the whole drain is not. During a drain:

    - ``get`` and ``get_tags`` treat every entry still waiting in a drain as gone (they
      check the registry, which is empty unless a drain is running), so readers of this
      class see the invalidation at once. A raw ``GET`` of a data key still sees a waiting
      entry until its batch; so does its reverse index.
    - The live tag set starts empty: new writes to the tag land there and are kept.
    - ``set_with_tags`` of a waiting key removes it from every draining set first, so the
      drain never deletes the newer entry.

Failure modes
    - Redis down or timing out: every method raises ``CacheUnavailableError`` from the
      redis-py error. There is no fail-open mode: a silently skipped invalidation would
      leave stale data. An outage during the first invalidation script may or may not
      have applied it (retry; invalidating twice is harmless).
    - Crash or outage mid-drain: the invalidation has already taken effect for ``get``.
      The waiting entries stay invisible to ``get`` and are freed by their own TTLs; the
      draining key keeps the tag set's TTL, which is at least every member's, so it goes
      too, and the next ``invalidate_tags`` forgets registry entries whose draining key
      has gone. Nothing resumes an abandoned drain.
    - A client crash mid-call cannot split an operation: each script runs whole inside
      Redis. Redis does not roll a script back when a command in it fails, though: a key
      of the wrong type under the prefix (written by someone else) fails the script with
      WRONGTYPE after its earlier writes. Keep the prefix to this cache alone.
    - Stored bytes that cannot be deserialized: the entry is deleted (with its tag
      memberships) and ``get`` returns the default; tampered or unsigned pickle also logs
      a security warning.

What it does not do
    - It is not Redis Cluster safe as is: the scripts build data, index and draining key
      names inside Lua from the prefix. On a cluster use a prefix with a hash tag, e.g.
      ``"{cache}"``, which puts every key of the cache in one slot.
    - An entry that expires stays a member of its tag sets (nothing is notified of an
      expiry) until the tag set expires or is invalidated. Invalidation skips such a
      member unless the key's current entry still carries the tag, so it never deletes a
      newer, differently tagged entry of the same key.
    - No loader, no stampede protection: it is a store with grouped deletes. ``get``
      returns ``default`` (None) on a miss; pass a sentinel to tell a cached None apart.
    - No transactions across keys beyond the above, and no SCAN-based pattern deletes.

Wire format (every language reproduces it; ``{p}`` is the prefix, default ``cache``)
    - ``{p}:key:{key}`` string: the serializer's bytes (``json`` by default), ``SET ... PX``.
    - ``{p}:tag:{tag}`` set of keys (the user's key strings, not full names); its PTTL
      only grows and is at least each member's.
    - ``{p}:tags:{key}`` set of the entry's tags; same PTTL as the entry.
    - ``{p}:drain:{token}:{n}`` a tag set being drained (renamed, TTL kept); the caller
      picks ``token`` (32 random hex characters, once per call), ``n`` is the tag's
      position in the call from 1.
    - ``{p}:draining`` hash: draining key → tag name, while drains are running (an entry
      whose draining key has gone is stale and is pruned by the next invalidation).
    - Keys and tags are arbitrary strings (colons, glob characters, spaces), UTF-8
      encoded; they are never used as patterns. TTLs are milliseconds, at least 1.
    - Scripts: ``SET_WITH_TAGS_LUA``, ``GET_LUA``, ``GET_TAGS_LUA``, ``DELETE_LUA``,
      ``INVALIDATE_LUA`` (returns ``{deleted, {positions of the tags left to drain}}``)
      and ``DRAIN_LUA`` (returns ``{deleted, left}``; called until ``left`` is 0).

Deviations from the design page
    - ``TaggedCache(redis_client)`` → ``TaggedCache(client, *, prefix, serializer,
      hmac_key, drain_batch)``; the client must return bytes.
    - Values go through the serializer (the design took pre-encoded strings); ``ttl`` is
      in seconds and may be a float; ``tags`` is any iterable of non-empty strings.
    - Entries live under ``{prefix}:key:`` (the design used the bare key), so a key can
      never collide with a tag set or an index.
    - ``invalidate_tags`` returns how many entries it deleted; ``get`` and ``delete`` are
      new so the class is usable on its own. ``get_tags`` reads the reverse index instead
      of scanning every tag in the keyspace.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import redis

from ._support import (
    REDIS_OUTAGE_ERRORS,
    logger,
    outage_as_unavailable,
    require_bytes_client,
    require_key,
    require_positive_seconds,
    require_prefix,
    serializer_from,
    to_ms,
    unavailable,
)
from .errors import ConfigurationError, SerializationError, TamperedDataError
from .serializers import Serializer

__all__ = [
    "DELETE_LUA",
    "DRAIN_LUA",
    "GET_LUA",
    "GET_TAGS_LUA",
    "INVALIDATE_LUA",
    "SET_WITH_TAGS_LUA",
    "TaggedCache",
]

# Lua shared by the scripts below (prepended to them). A member is the user's key; its
# data and index key names are built here from the prefix, hence the one-slot note above.

# Deletes one member's entry if it still carries `tag`: the entry, its index, and its
# place in its other tags. A membership left over after the entry expired is skipped, so
# a newer entry of the same key with other tags is not deleted.
_PURGE_FN = """
local function purge(prefix, tag, member)
  local index = prefix .. ':tags:' .. member
  if redis.call('SISMEMBER', index, tag) == 0 then
    return 0
  end
  for _, t in ipairs(redis.call('SMEMBERS', index)) do
    redis.call('SREM', prefix .. ':tag:' .. t, member)
  end
  redis.call('UNLINK', prefix .. ':key:' .. member, index)
  return 1
end
"""

# True when a running drain still holds this member for a tag its entry carries: the
# invalidation has happened, the batch that deletes the entry has not yet.
_INVALIDATED_FN = """
local function invalidated(registry, index, member)
  local drains = redis.call('HGETALL', registry)
  for i = 1, #drains, 2 do
    if redis.call('SISMEMBER', drains[i], member) == 1
        and redis.call('SISMEMBER', index, drains[i + 1]) == 1 then
      return true
    end
  end
  return false
end
"""

# KEYS[1] = data key, KEYS[2] = its index, KEYS[3] = drain registry, KEYS[4..] = the new
# tags' sets. ARGV[1] = prefix, ARGV[2] = key, ARGV[3] = value, ARGV[4] = ttl in ms,
# ARGV[5..] = the new tags, in KEYS[4..] order.
SET_WITH_TAGS_LUA = """
local prefix, member, ttl = ARGV[1], ARGV[2], ARGV[4]
local keep = {}
for i = 5, #ARGV do
  keep[ARGV[i]] = true
end
-- Leave the tags this key no longer has, so invalidating them spares the new entry.
for _, old in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  if not keep[old] then
    redis.call('SREM', prefix .. ':tag:' .. old, member)
  end
end
-- A drain still holding this key belongs to an invalidation that happened before this
-- write: it must not delete the entry written now.
for _, draining in ipairs(redis.call('HKEYS', KEYS[3])) do
  redis.call('SREM', draining, member)
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ttl)
redis.call('DEL', KEYS[2])
for i = 5, #ARGV do
  redis.call('SADD', KEYS[2], ARGV[i])
end
redis.call('PEXPIRE', KEYS[2], ttl)
-- NX gives a new set its first TTL; GT only ever lengthens it, so the set outlives this
-- entry and every older, longer-lived one.
for i = 4, #KEYS do
  redis.call('SADD', KEYS[i], member)
  redis.call('PEXPIRE', KEYS[i], ttl, 'NX')
  redis.call('PEXPIRE', KEYS[i], ttl, 'GT')
end
return 1
"""

# KEYS[1] = data key, KEYS[2] = its index, KEYS[3] = drain registry; ARGV[1] = key.
# The stored bytes, or nil when absent or already invalidated by a running drain.
GET_LUA = (
    _INVALIDATED_FN
    + """
local value = redis.call('GET', KEYS[1])
if value and invalidated(KEYS[3], KEYS[2], ARGV[1]) then
  return false
end
return value
"""
)

# Same KEYS and ARGV as GET_LUA. The entry's tags; empty when it is absent or invalidated.
GET_TAGS_LUA = (
    _INVALIDATED_FN
    + """
if redis.call('EXISTS', KEYS[1]) == 0 or invalidated(KEYS[3], KEYS[2], ARGV[1]) then
  return {}
end
return redis.call('SMEMBERS', KEYS[2])
"""
)

# KEYS[1] = data key, KEYS[2] = its index; ARGV[1] = prefix, ARGV[2] = key.
# 1 if an entry was deleted, else 0; its tag memberships go either way.
DELETE_LUA = """
for _, t in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  redis.call('SREM', ARGV[1] .. ':tag:' .. t, ARGV[2])
end
local existed = redis.call('EXISTS', KEYS[1])
redis.call('UNLINK', KEYS[1], KEYS[2])
return existed
"""

# KEYS[1] = drain registry, KEYS[2..n+1] = the n tags' sets, KEYS[n+2..2n+1] = a fresh
# draining key name for each. ARGV[1] = prefix, ARGV[2] = how many members to delete here
# at most, ARGV[3..n+2] = the tags. Small tags are deleted here, entries and all; larger
# ones are renamed to their draining key for DRAIN_LUA. Everything in this script happens
# at one instant: that is the instant of invalidation. Returns {entries deleted,
# {positions (from 1) of the tags left to drain}}.
INVALIDATE_LUA = (
    _PURGE_FN
    + """
local prefix, budget, n = ARGV[1], tonumber(ARGV[2]), #ARGV - 2
-- Forget drains whose key has gone: finished, or expired after their drainer died.
for _, draining in ipairs(redis.call('HKEYS', KEYS[1])) do
  if redis.call('EXISTS', draining) == 0 then
    redis.call('HDEL', KEYS[1], draining)
  end
end
local deleted, left = 0, {}
for i = 1, n do
  local set, tag = KEYS[i + 1], ARGV[i + 2]
  local size = redis.call('SCARD', set)
  if size > 0 and size <= budget then
    budget = budget - size
    for _, member in ipairs(redis.call('SMEMBERS', set)) do
      deleted = deleted + purge(prefix, tag, member)
    end
    redis.call('DEL', set)
  elseif size > 0 then
    -- RENAME keeps the TTL, which covers every member: a drain abandoned by a crash
    -- still goes away on its own.
    redis.call('RENAME', set, KEYS[i + n + 1])
    redis.call('HSET', KEYS[1], KEYS[i + n + 1], tag)
    left[#left + 1] = i
  end
end
return {deleted, left}
"""
)

# KEYS[1] = draining key, KEYS[2] = drain registry. ARGV[1] = prefix, ARGV[2] = batch
# size, ARGV[3] = the tag being drained. Returns {entries deleted, members left}.
DRAIN_LUA = (
    _PURGE_FN
    + """
local deleted = 0
for _, member in ipairs(redis.call('SPOP', KEYS[1], ARGV[2])) do
  deleted = deleted + purge(ARGV[1], ARGV[3], member)
end
local left = redis.call('SCARD', KEYS[1])
if left == 0 then
  redis.call('HDEL', KEYS[2], KEYS[1])
end
return {deleted, left}
"""
)


def _require_tag(tag: object) -> str:
    if not isinstance(tag, str) or not tag:
        raise ConfigurationError(f"a tag must be a non-empty string, got {tag!r}")
    return tag


def _require_tags(tags: object) -> list[str]:
    # A bare string is iterable too; taking "products" as seven one-letter tags would
    # fail silently much later.
    if isinstance(tags, str | bytes) or not isinstance(tags, Iterable):
        raise ConfigurationError(
            f"tags must be an iterable of non-empty strings (e.g. a list), got {tags!r}"
        )
    return list(dict.fromkeys(_require_tag(tag) for tag in tags))


def _require_batch(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"drain_batch must be an int >= 1, got {value!r}")
    return value


class TaggedCache:
    """Entries filed under tags, invalidated a tag at a time; thread-safe (no local state)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "cache",
        serializer: str | Serializer = "json",
        hmac_key: bytes | str | None = None,
        drain_batch: int = 500,
    ) -> None:
        self.client = require_bytes_client(client)
        self.prefix = require_prefix(prefix)
        self._serializer = serializer_from(serializer, hmac_key)
        self.drain_batch = _require_batch(drain_batch)
        self._registry = f"{self.prefix}:draining"
        self._set_with_tags = client.register_script(SET_WITH_TAGS_LUA)
        self._get = client.register_script(GET_LUA)
        self._get_tags = client.register_script(GET_TAGS_LUA)
        self._delete = client.register_script(DELETE_LUA)
        self._invalidate = client.register_script(INVALIDATE_LUA)
        self._drain = client.register_script(DRAIN_LUA)

    def _data_key(self, key: str) -> str:
        return f"{self.prefix}:key:{key}"

    def _index_key(self, key: str) -> str:
        return f"{self.prefix}:tags:{key}"

    def _tag_key(self, tag: str) -> str:
        return f"{self.prefix}:tag:{tag}"

    def _entry_keys(self, key: str) -> list[str]:
        return [self._data_key(key), self._index_key(key), self._registry]

    def set_with_tags(self, key: str, value: Any, ttl: float, tags: Iterable[str]) -> None:
        """Store ``value`` for ``ttl`` seconds under ``tags`` (replacing the key's old tags)."""
        require_key(key)
        ttl_ms = to_ms(require_positive_seconds(ttl, "ttl"))
        tag_list = _require_tags(tags)
        data = self._serializer.dumps(value)
        with outage_as_unavailable("tag_invalidation", f"setting {key!r}"):
            self._set_with_tags(
                keys=[*self._entry_keys(key), *(self._tag_key(t) for t in tag_list)],
                args=[self.prefix, key, data, ttl_ms, *tag_list],
            )

    def get(self, key: str, default: Any = None) -> Any:
        """The value stored for ``key``, or ``default`` when there is none."""
        require_key(key)
        try:
            data = self._read(key)
        except REDIS_OUTAGE_ERRORS as exc:
            raise unavailable("tag_invalidation", f"reading {key!r}", exc) from exc
        if data is None:
            return default
        try:
            return self._serializer.loads(data)
        except SerializationError as exc:
            if isinstance(exc, TamperedDataError):
                logger.warning("tag_invalidation: %s: %s (check hmac_key)", key, exc)
            else:
                logger.warning("tag_invalidation: %s: undecodable entry deleted: %s", key, exc)
            self.delete(key)
            return default

    def _read(self, key: str) -> bytes | None:
        """GET_LUA for ``key``: the stored bytes, or None when absent or invalidated."""
        # EVALSHA straight from the client: calling the Script object costs a hit about
        # two microseconds more (a Pipeline check through typing.Protocol, list copies).
        # On NOSCRIPT the Script object loads the script and runs it.
        keys = (self._data_key(key), self._index_key(key), self._registry)
        try:
            data: bytes | None = self.client.evalsha(self._get.sha, 3, *keys, key)
        except redis.exceptions.NoScriptError:
            data = self._get(keys=keys, args=[key])
        return data

    def delete(self, key: str) -> bool:
        """Delete ``key``'s entry and its tag memberships; True if there was an entry."""
        require_key(key)
        with outage_as_unavailable("tag_invalidation", f"deleting {key!r}"):
            deleted = self._delete(
                keys=[self._data_key(key), self._index_key(key)], args=[self.prefix, key]
            )
        return bool(deleted)

    def get_tags(self, key: str) -> set[str]:
        """The tags of ``key``'s current entry; empty when there is none."""
        require_key(key)
        with outage_as_unavailable("tag_invalidation", f"reading the tags of {key!r}"):
            members = self._get_tags(keys=self._entry_keys(key), args=[key])
        return {member.decode("utf-8") for member in members}

    def invalidate_tags(self, *tags: str) -> int:
        """Delete every entry carrying any of ``tags``; returns how many were deleted."""
        if any(not isinstance(tag, str) and isinstance(tag, Iterable) for tag in tags):
            raise ConfigurationError(
                f"invalidate_tags takes tags as separate arguments, got {tags!r}; "
                "call invalidate_tags(*tags) to pass a list"
            )
        tag_list = list(dict.fromkeys(_require_tag(tag) for tag in tags))
        if not tag_list:
            return 0
        token = uuid.uuid4().hex
        drains = [f"{self.prefix}:drain:{token}:{n}" for n in range(1, len(tag_list) + 1)]
        with outage_as_unavailable("tag_invalidation", f"invalidating {tag_list!r}"):
            deleted, left_to_drain = self._invalidate(
                keys=[self._registry, *(self._tag_key(t) for t in tag_list), *drains],
                args=[self.prefix, self.drain_batch, *tag_list],
            )
        deleted = int(deleted)
        for position in left_to_drain:
            draining, tag = drains[position - 1], tag_list[position - 1]
            with outage_as_unavailable(
                "tag_invalidation",
                f"draining {tag!r} (the invalidation already holds for get(); "
                "what is left expires with the tag's TTL)",
            ):
                left = 1
                while left:
                    batch_deleted, left = self._drain(
                        keys=[draining, self._registry],
                        args=[self.prefix, self.drain_batch, tag],
                    )
                    deleted += int(batch_deleted)
        return deleted
