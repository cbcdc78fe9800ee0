"""Version-based invalidation: bump an entity's version, and every old entry is a miss.

Each entity type ("user", "product") has a version counter. Entries are stored under a
key that embeds the version current when they were written, and read under the version
current when they are read; :meth:`VersionedCache.increment_version` therefore makes
every entry of the entity a miss at once, in O(1), without finding or deleting them (a
schema change, a bulk import). The orphaned entries expire by their TTL.

Guarantees
    - A read is one round trip: one script reads the version and then the entry.
    - After ``increment_version`` returns, no read returns an entry written under an
      older version.
    - A value loaded under an old version never lands under a new one: :meth:`lookup`
      returns the version it read, and ``set(..., version=v)`` writes only while ``v`` is
      still current, checked inside the writing script. :meth:`get_or_load` does exactly
      this. (``set`` without ``version`` writes under whatever version is current when the
      script runs: right for a value known to be fresh, such as one just committed.)
    - Every entry has a TTL, so orphaned versions free their memory.
    - The version counter outlives every entry of its entity: each ``set`` gives it the
      entry's TTL if it had none (``PEXPIRE NX``) and otherwise only lengthens it
      (``PEXPIRE GT``). Were the counter to expire while entries of version 5 lived, it
      would restart at 0 and a later increment to 5 would bring them back, stale. Because
      it lives at least as long as any entry, by the time it expires every entry written
      under it has expired too, and restarting the count is harmless. (Entity types that
      are no longer used therefore free their counter as well.)
    - Signed-pickle data that fails verification is never unpickled.

Failure modes
    - Redis down or timing out: every method raises ``CacheUnavailableError`` from the
      redis-py error (``get_or_load`` before calling the loader). An increment lost to an
      outage did not happen: retry it. Incrementing twice is harmless.
    - Crash mid-operation: every operation is one command or one script, so it happened
      whole or not at all.
    - The counter disappears while entries live (``DEL``/``FLUSHDB`` of part of the data,
      or eviction under an ``allkeys-*`` or ``volatile-*`` maxmemory-policy, since the
      counter has a TTL): versions restart at 0 and old entries can resurface. Run the
      cache with ``noeviction``, or on a Redis of its own, if that matters. An increment
      acknowledged by a primary and lost in an asynchronous failover is undone likewise
      (use ``WAIT`` after ``increment_version`` if that matters).
    - Stored bytes that cannot be deserialized: the entry is deleted and read as a miss;
      tampered or unsigned pickle also logs a security warning.
    - The loader of ``get_or_load`` raises: nothing is cached and the exception propagates.

What it does not do
    - No per-key invalidation (use a TTL, or tag invalidation) and no stampede protection.
    - It does not delete orphaned entries: they use memory until their TTL ends.
    - It is not Redis Cluster safe as is: the scripts build the entry's key name inside
      Lua from the version they read, so it is not declared in KEYS. On a cluster use a
      prefix with a hash tag, e.g. ``"{cache}"``, which puts every key in one slot.

Wire format (every language reproduces it; ``{p}`` is the prefix, default ``cache``)
    - ``{p}:version:{entity}``: the version, a decimal integer string written by ``INCR``
      (and ``"0"`` by the first ``set``); a missing counter means version 0. PTTL at least
      every entry's, or none until the first ``set`` after an ``increment_version``.
    - ``{p}:{entity}:v{version}:{id}``: the serializer's bytes (``json`` by default),
      ``SET ... PX`` (milliseconds, at least 1). ``entity`` contains no ``:``, which keeps
      the layout unambiguous; ``id`` is any string. Neither is ever used as a pattern.
    - Scripts: ``GET_LUA`` (returns ``{version, bytes or nil}``) and ``SET_LUA`` (returns
      the version written under, or nil when the expected version was no longer current).
      ``get_version`` is ``GET``, ``increment_version`` is ``INCR``.

Deviations from the design page
    - ``VersionedCache(redis_client)`` → ``VersionedCache(client, *, prefix, serializer,
      hmac_key)``; the client must return bytes. The version key moves from
      ``cache:version:{entity}`` to ``{prefix}:version:{entity}`` (the same by default) and
      entries gain the prefix: ``{prefix}:{entity}:v{version}:{id}``.
    - ``get(entity, id, default=None)`` returns the deserialized value (the design returned
      the raw string); ``set`` serializes, returns whether it wrote, takes ``ttl`` in
      seconds (float allowed) and a keyword-only ``version``. ``lookup`` and
      ``get_or_load`` are new.
    - ``cache_key`` is gone: the key depends on a version read inside the scripts, and
      reading it separately (as the design did) was a second round trip and a race.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from ._support import (
    REDIS_OUTAGE_ERRORS,
    logger,
    outage_as_unavailable,
    require_bytes_client,
    require_callable,
    require_key,
    require_positive_seconds,
    require_prefix,
    serializer_from,
    to_ms,
    unavailable,
)
from .errors import ConfigurationError, SerializationError, TamperedDataError
from .serializers import Serializer

__all__ = ["GET_LUA", "SET_LUA", "VersionedCache", "VersionedLookup"]

# KEYS[1] = version key; ARGV[1] = prefix, ARGV[2] = entity, ARGV[3] = id.
# Returns {version, stored bytes or nil}: the version and the entry read at one instant.
GET_LUA = """
local version = redis.call('GET', KEYS[1]) or '0'
local key = ARGV[1] .. ':' .. ARGV[2] .. ':v' .. version .. ':' .. ARGV[3]
return {version, redis.call('GET', key)}
"""

# KEYS[1] = version key; ARGV[1] = prefix, ARGV[2] = entity, ARGV[3] = id, ARGV[4] = value,
# ARGV[5] = ttl in ms, ARGV[6] = the version the value was loaded under, or '' for any.
# Returns the version written under, or nil when ARGV[6] is no longer current.
SET_LUA = """
local version = redis.call('GET', KEYS[1])
local counted = version ~= false
version = version or '0'
-- A value loaded under an older version must not land under the current one.
if ARGV[6] ~= '' and ARGV[6] ~= version then
  return false
end
redis.call('SET', ARGV[1] .. ':' .. ARGV[2] .. ':v' .. version .. ':' .. ARGV[3],
  ARGV[4], 'PX', ARGV[5])
-- The counter must outlive this entry: expiring first, it would restart at 0 and a later
-- increment could make this entry current again. NX gives it a first TTL, GT only ever
-- lengthens it.
if counted then
  redis.call('PEXPIRE', KEYS[1], ARGV[5], 'NX')
  redis.call('PEXPIRE', KEYS[1], ARGV[5], 'GT')
else
  redis.call('SET', KEYS[1], '0', 'PX', ARGV[5])
end
return version
"""


@dataclass(frozen=True, slots=True)
class VersionedLookup:
    """What :meth:`VersionedCache.lookup` read: the version, and the entry if any.

    ``found`` tells a cached ``None`` from a miss; ``value`` is None on a miss. Pass
    ``version`` to ``set`` when filling a miss, so a load that raced an increment is dropped.
    """

    found: bool
    value: Any
    version: int


def _require_entity(entity: object) -> str:
    if not isinstance(entity, str) or not entity or ":" in entity:
        raise ConfigurationError(
            f"entity must be a non-empty string without ':' (it names a type such as "
            f"'user'; ':' separates the parts of the key), got {entity!r}"
        )
    return entity


def _require_version(version: object) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise ConfigurationError(
            f"version must be an int >= 0 as returned by lookup() or get_version(), got {version!r}"
        )
    return version


class VersionedCache:
    """Entries keyed by their entity's version; thread-safe (no local state)."""

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "cache",
        serializer: str | Serializer = "json",
        hmac_key: bytes | str | None = None,
    ) -> None:
        self.client = require_bytes_client(client)
        self.prefix = require_prefix(prefix)
        self._serializer = serializer_from(serializer, hmac_key)
        self._get = client.register_script(GET_LUA)
        self._set = client.register_script(SET_LUA)

    def _version_key(self, entity: str) -> str:
        return f"{self.prefix}:version:{entity}"

    def _entry_key(self, entity: str, version: int, id: str) -> str:
        return f"{self.prefix}:{entity}:v{version}:{id}"

    def get_version(self, entity: str) -> int:
        """The current version of ``entity`` (0 before the first increment)."""
        _require_entity(entity)
        with outage_as_unavailable("version_invalidation", f"reading the version of {entity!r}"):
            version = self.client.get(self._version_key(entity))
        return int(version) if version is not None else 0

    def increment_version(self, entity: str) -> int:
        """Make every cached entry of ``entity`` a miss; returns the new version."""
        _require_entity(entity)
        with outage_as_unavailable(
            "version_invalidation", f"incrementing the version of {entity!r}"
        ):
            # INCR keeps the counter's TTL, which already covers every live entry.
            return int(self.client.incr(self._version_key(entity)))

    def lookup(self, entity: str, id: str) -> VersionedLookup:
        """Read the version and the entry under it, in one round trip."""
        _require_entity(entity)
        require_key(id, "id")
        found, value, version = self._lookup(entity, id)
        return VersionedLookup(found=found, value=value, version=version)

    def get(self, entity: str, id: str, default: Any = None) -> Any:
        """The value cached for ``id`` under the current version, or ``default``."""
        _require_entity(entity)
        require_key(id, "id")
        found, value, _ = self._lookup(entity, id)
        return value if found else default

    def set(
        self,
        entity: str,
        id: str,
        value: Any,
        ttl: float = 3600,
        *,
        version: int | None = None,
    ) -> bool:
        """Cache ``value`` for ``ttl`` seconds; with ``version``, only if still current.

        Returns whether it was written.
        """
        _require_entity(entity)
        require_key(id, "id")
        ttl_ms = to_ms(require_positive_seconds(ttl, "ttl"))
        expected = "" if version is None else str(_require_version(version))
        data = self._serializer.dumps(value)
        with outage_as_unavailable("version_invalidation", f"writing {entity!r} {id!r}"):
            written = self._set(
                keys=[self._version_key(entity)],
                args=[self.prefix, entity, id, data, ttl_ms, expected],
            )
        return written is not None

    def get_or_load(
        self, entity: str, id: str, loader: Callable[[], Any], ttl: float = 3600
    ) -> Any:
        """The cached value, or ``loader()``'s, cached unless the version moved meanwhile."""
        require_callable(loader)
        require_positive_seconds(ttl, "ttl")
        _require_entity(entity)
        require_key(id, "id")
        found, value, version = self._lookup(entity, id)
        if found:
            return value
        value = loader()
        self.set(entity, id, value, ttl, version=version)
        return value

    def _lookup(self, entity: str, id: str) -> tuple[bool, Any, int]:
        """``lookup`` after its checks, as a plain tuple: hits skip building the dataclass."""
        try:
            raw_version, data = self._read(entity, id)
        except REDIS_OUTAGE_ERRORS as exc:
            raise unavailable("version_invalidation", f"reading {entity!r} {id!r}", exc) from exc
        version = int(raw_version)
        if data is None:
            return False, None, version
        try:
            return True, self._serializer.loads(data), version
        except SerializationError as exc:
            key = self._entry_key(entity, version, id)
            if isinstance(exc, TamperedDataError):
                logger.warning("version_invalidation: %s: %s (check hmac_key)", key, exc)
            else:
                logger.warning("version_invalidation: %s: undecodable entry deleted: %s", key, exc)
            with outage_as_unavailable(
                "version_invalidation", f"deleting the undecodable entry {key!r}"
            ):
                self.client.unlink(key)
            return False, None, version

    def _read(self, entity: str, id: str) -> list[Any]:
        """GET_LUA: ``[version, stored bytes or None]``, read at one instant."""
        # EVALSHA straight from the client: calling the Script object costs a hit about
        # two microseconds more (a Pipeline check through typing.Protocol, list copies).
        # On NOSCRIPT the Script object loads the script and runs it.
        version_key, args = self._version_key(entity), (self.prefix, entity, id)
        try:
            reply: list[Any] = self.client.evalsha(self._get.sha, 1, version_key, *args)
        except redis.exceptions.NoScriptError:
            reply = self._get(keys=[version_key], args=args)
        return reply
