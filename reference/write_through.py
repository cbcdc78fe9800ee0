"""Write-through: every write goes to the database, then, versioned, to the cache.

The pattern
    ``set(id, data)`` upserts the row into the :class:`~.store.Store` (the database is
    the source of truth and assigns the row a new version), then writes the row into
    Redis with a compare-and-set that never replaces a newer version with an older one.
    ``get(id)`` reads Redis (one command on a hit: ``SET ... NX ... GET``, which reads
    and, on a miss, takes a lease; see ``_lease``), reads the row from the store on a
    miss and fills the cache only if its lease is still in the slot. ``delete(id)``
    deletes the row (the store keeps counting its versions), then writes a *tombstone*
    -- "no such row", at the deletion's version -- through the same compare-and-set, so
    no older write can land after it.

Guarantees (for a store whose versions only grow, deletes included; see ``store``)
    - Concurrent writers and deleters: once every ``set`` and ``delete`` has returned,
      the cache holds what the database holds -- the row with its version, or for a
      deleted row a tombstone with the deletion's version -- or nothing. A slow writer
      cannot put its older version over a newer one, nor a deleted row back over its
      tombstone, because every cache write is a version compare-and-set in Lua.
    - Read-your-writes: after ``set`` returns version v, every later ``get``, in any
      process, returns version v or newer; after ``delete`` returns, every later
      ``get`` returns None until a later ``set``. The cache holds that write or a newer
      one, or nothing and the database answers. (Unless Redis refused both the cache
      write and the delete of the key, see below.)
    - Readers never put stale data back: a reader's fill lands only while its lease
      marker is still in the slot, and every ``set`` and ``delete`` replaces that
      marker (or finds a newer entry in its place). So a reader that loaded a row
      before a write or a delete cannot cache it after the write or the delete.
    - A deleted row is a cached absence: ``get`` returns None from the tombstone for
      up to ``ttl`` without reading the database, as it would return a cached row.

Failure modes
    - Redis down or refusing writes (OOM, ACL) after the database commit of a ``set``
      or ``delete``: the key is deleted so the next ``get`` reloads from the database
      (for a delete this gives up the tombstone, so a ``set`` of the same row still in
      flight from before the delete could cache the deleted row until its TTL ends).
      If the delete of the key fails too, a warning names the key: it may serve the
      previous value until its TTL ends, which bounds the staleness. The write itself
      has committed, so by default (``fail_open=True``) ``set`` and ``delete`` still
      return; with ``fail_open=False`` they raise
      :class:`~.errors.CacheUnavailableError`, whose message says the database write
      committed. Either way the database is never rolled back.
    - Redis down or refusing the lease during ``get``: the row is read from the
      database and not cached (one warning per outage); with ``fail_open=False``,
      CacheUnavailableError.
    - A crash between the database commit and the cache update leaves the previous
      value cached until its TTL ends; nothing here can notice a process that died.
    - The store fails: :class:`~.errors.StoreError` (the store's own error as
      ``__cause__``), and the cache is left as it was, which matches the unchanged
      database. A value the serializer cannot encode is refused before the database
      write (:class:`~.errors.SerializationError`).
    - An entry that cannot be decoded (another format, a forged signed pickle) is
      deleted and treated as a miss; forged pickle is logged as a security warning.
    - A lease holder that dies leaves its marker for ``lease_ttl``; meanwhile other
      readers read the database without filling, and after it the next one fills.

Does not
    - Run multi-row transactions, or keep several keys consistent with each other.
    - Make up versions: the store must hand out versions that only grow, also across a
      delete (a row deleted at version 7 and re-created must not restart at 1, or a
      ``set`` of the old row still in flight may win the compare-and-set over the new
      one). ``SQLiteStore`` keeps a tombstone row for this; see ``store``.
    - Touch the cache when ``delete`` finds no row (the store returns None): nothing
      was deleted, so there is no version to write a tombstone with, and deleting the
      key could remove another delete's tombstone. A row removed from the database
      behind the cache's back stays cached until its TTL ends.

Wire format (what the TypeScript and Go renderings read and write byte for byte)
    - Key: ``<prefix>:<id>``, a Redis string with a PX expiry (``ttl``).
    - Entry: ``<version>:<payload>`` -- the row's version in ASCII decimal (no sign,
      no leading zeros), one ``:`` (0x3A), then the serializer's bytes of the row's
      data (compact UTF-8 JSON by default, see ``serializers``). Example:
      ``7:{"name":"Ada"}``. Lua compares the decimal headers without converting them
      to numbers, so versions are exact at any width.
    - Tombstone: ``<version>:`` with an empty payload, meaning "no row" (no serializer
      ever produces empty bytes). ``delete`` writes it with the deletion's version and
      the ``ttl`` expiry, through ``SET_IF_NEWER_LUA`` like any entry; with negative
      caching a reader's fill writes ``0:`` for a row the database does not have, with
      the ``negative_ttl`` expiry. A ``get`` that finds a tombstone returns None
      without reading the database; any newer version replaces it.
    - Lease marker: ``0xC1 "lease:" <32 hex>`` (``_lease``), older than any entry.
    - Reads: ``SET key marker NX PX lease_ttl GET``, or ``READ_OR_LEASE_LUA`` where the
      server refuses that (same effect; see ``_lease``). Scripts: ``FILL_IF_LEASED_LUA``
      and ``RELEASE_LEASE_LUA`` from ``_lease``, plus ``SET_IF_NEWER_LUA`` here.

Deviations from the design page
    - ``WriteThroughCache(redis_client, db, collection_name, ttl)`` becomes
      ``WriteThroughCache(client, store, *, prefix, ttl, ...)``: a :class:`Store`
      replaces the hard-wired MongoDB ``db`` and ``collection_name``, and ``prefix``
      (was ``collection_name``) namespaces the keys.
    - ``get(doc_id)`` and ``set(doc_id, data)`` return a :class:`~.store.Row` (``id``,
      ``data``, ``version``) instead of the bare document; ``row.data`` is the
      document. ``set`` replaces the whole row with ``data`` (the design merged fields
      into the stored document with ``$set``, then read it back in a second, racy
      query); the store returns the committed row with its version in one call.
    - ``delete(doc_id)`` returns whether the row existed, and leaves a versioned
      tombstone in the cache instead of deleting the key.
    - New options: ``serializer``/``hmac_key`` (the design hard-wired JSON),
      ``negative_ttl``, ``lease_ttl`` and ``fail_open``.
    - The design's "atomic" write was two independent writes; here the database
      commits first and the cache write is a version compare-and-set.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

import redis

from ._lease import LeaseScripts
from ._support import (
    REDIS_OUTAGE_ERRORS,
    OutageLog,
    logger,
    require_bool,
    require_bytes_client,
    require_key,
    require_positive_seconds,
    require_prefix,
    to_ms,
)
from .errors import (
    CacheError,
    CacheUnavailableError,
    ConfigurationError,
    SerializationError,
    StoreError,
    TamperedDataError,
)
from .serializers import get_serializer
from .store import Row, Store

__all__ = ["SET_IF_NEWER_LUA", "WriteThroughCache"]

# KEYS[1] = key; ARGV[1] = the row's version (decimal, no leading zeros),
# ARGV[2] = the entry ("<version>:" .. payload), ARGV[3] = ttl in ms.
# Writes unless the slot holds a newer version: a lease marker (first byte 0xC1), an
# older entry or tombstone, or bytes that are not an entry all count as older. The
# version headers are compared as decimal strings (longer is larger, then byte by byte):
# Lua numbers are doubles, exact only up to 2^53, and '<' on strings follows the locale.
# Returns 1 if written, 0 if a newer version was kept.
SET_IF_NEWER_LUA = """
local function newer(a, b)
  if #a ~= #b then
    return #a > #b
  end
  for i = 1, #a do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x > y
    end
  end
  return false
end
local cur = redis.call('GET', KEYS[1])
if cur and string.byte(cur, 1) ~= 193 then
  local sep = string.find(cur, ':', 1, true)
  if sep then
    local have = string.sub(cur, 1, sep - 1)
    if string.find(have, '^%d+$') and newer(have, ARGV[1]) then
      return 0
    end
  end
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 1
"""

_SEPARATOR = b":"
_TOMBSTONE = b"0:"


def _entry(version: int, payload: bytes) -> bytes:
    return b"%d:%s" % (version, payload)


class WriteThroughCache:
    """Rows written to a :class:`Store` and, versioned, to Redis; reads from Redis first.

    ``ttl`` bounds how long any cached entry lives, and so how long a failed cache
    update can serve an old value. ``negative_ttl`` (off by default) caches "no such
    row" for that long. ``lease_ttl`` should exceed a slow ``store.get``: a fill after
    it is dropped. ``fail_open=False`` raises CacheUnavailableError on Redis failures
    instead of logging them (the database write has still committed).
    """

    def __init__(
        self,
        client: redis.Redis,
        store: Store,
        *,
        prefix: str,
        ttl: float,
        serializer: str = "json",
        hmac_key: bytes | str | None = None,
        negative_ttl: float | None = None,
        lease_ttl: float = 5.0,
        fail_open: bool = True,
    ) -> None:
        self._client = require_bytes_client(client)
        if not isinstance(store, Store):
            raise ConfigurationError(
                f"store must implement the Store protocol (get, upsert, upsert_many, "
                f"delete), got {type(store).__name__}"
            )
        self._store = store
        self._prefix = require_prefix(prefix)
        self._ttl = require_positive_seconds(ttl, "ttl")
        self._ttl_ms = to_ms(self._ttl)
        self._negative_ms = (
            None
            if negative_ttl is None
            else to_ms(require_positive_seconds(negative_ttl, "negative_ttl"))
        )
        self._lease_ms = to_ms(require_positive_seconds(lease_ttl, "lease_ttl"))
        self._fail_open = require_bool(fail_open, "fail_open")
        self._serializer = get_serializer(serializer, hmac_key=hmac_key)
        self._leases = LeaseScripts(client)
        self._set_if_newer = client.register_script(SET_IF_NEWER_LUA)
        self._outage = OutageLog(f"WriteThroughCache({prefix!r})")

    def _key(self, id: str) -> str:
        return f"{self._prefix}:{require_key(id, 'id')}"

    def get(self, id: str) -> Row | None:
        """The row ``id`` from the cache, else from the store (then cached); None if absent."""
        key = self._key(id)
        try:
            read = self._leases.read_or_lease(key, self._lease_ms)
        except redis.RedisError as exc:
            # Down, or refusing the lease (OOM, ACL): the database can still answer.
            self._redis_down(exc)
            return self._store_get(id)
        self._outage.succeeded()
        if read.value is not None:
            try:
                return self._decode(id, read.value)
            except SerializationError as exc:
                self._drop_undecodable(key, exc)
                return self._store_get(id)
        if read.token is None:
            # Another reader holds the lease: read the database, leave the fill to it.
            return self._store_get(id)
        try:
            row = self._store_get(id)
        except BaseException:
            self._release_lease(key, read.token)
            raise
        self._fill(key, read.token, row)
        return row

    def set(self, id: str, data: Any) -> Row:
        """Write ``data`` as row ``id`` to the store, then to the cache; return the row."""
        key = self._key(id)
        # Encode first: a value the cache cannot hold is refused before the database
        # changes, rather than committed and then left uncached.
        payload = self._serializer.dumps(data)
        try:
            row = self._store.upsert(id, data)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"store upsert {id!r} failed: {exc}") from exc
        # The database has committed; from here on nothing may fail the write itself.
        try:
            version = self._version(row.version)
            if row.data is not data:  # the store normalized the data: cache what it holds
                payload = self._serializer.dumps(row.data)
            self._set_if_newer(keys=[key], args=[version, _entry(version, payload), self._ttl_ms])
        except (CacheError, redis.RedisError) as exc:
            self._after_failed_update(key, id, row.version, "committed", exc)
        else:
            self._outage.succeeded()
        return row

    def delete(self, id: str) -> bool:
        """Delete row ``id`` from the store, then cache its absence; True if it existed."""
        key = self._key(id)
        try:
            deleted_at = self._store.delete(id)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"store delete {id!r} failed: {exc}") from exc
        if deleted_at is None:
            return False  # nothing changed, so nothing in the cache is out of date
        # After the commit, not before: a reader that misses in between would cache the
        # row again. The tombstone goes through the same compare-and-set as a set: it
        # replaces the row and any reader's lease marker (so a reader that loaded the
        # row before the delete cannot put it back), and a set of the row delayed past
        # the delete carries an older version, so its late cache write loses to it.
        try:
            version = self._version(deleted_at)
            self._set_if_newer(keys=[key], args=[version, _entry(version, b""), self._ttl_ms])
        except (CacheError, redis.RedisError) as exc:
            self._after_failed_update(key, id, deleted_at, "deleted", exc)
        else:
            self._outage.succeeded()
        return True

    def _store_get(self, id: str) -> Row | None:
        try:
            return self._store.get(id)
        except StoreError:
            raise
        except Exception as exc:
            raise StoreError(f"store get {id!r} failed: {exc}") from exc

    def _decode(self, id: str, raw: bytes) -> Row | None:
        head, sep, payload = raw.partition(_SEPARATOR)
        if not sep or not head.isdigit():
            raise SerializationError("cached bytes are not a '<version>:<payload>' entry")
        if not payload:
            return None  # a tombstone: negative caching says there is no such row
        return Row(id, self._serializer.loads(payload), int(head))

    @staticmethod
    def _version(version: object) -> int:
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise StoreError(f"store returned version {version!r}; versions are ints >= 1")
        return version

    def _fill(self, key: str, token: bytes, row: Row | None) -> None:
        """Cache what the store returned, if our lease still holds the slot."""
        try:
            if row is not None:
                entry = _entry(self._version(row.version), self._serializer.dumps(row.data))
                ttl_ms = self._ttl_ms
            elif self._negative_ms is not None:
                entry, ttl_ms = _TOMBSTONE, self._negative_ms
            else:
                self._release_lease(key, token)  # so the next reader may fill at once
                return
            # A lost lease means a write or delete came after our read: drop the fill.
            self._leases.fill(key, token, entry, ttl_ms)
        except (CacheError, redis.RedisError) as exc:
            # The caller gets the row regardless; a failed fill only costs a later miss.
            logger.debug("WriteThroughCache: fill of %s skipped: %s", key, exc)
            self._release_lease(key, token)

    def _release_lease(self, key: str, token: bytes) -> None:
        # On failure the marker expires after lease_ttl on its own.
        with contextlib.suppress(redis.RedisError):
            self._leases.release(key, token)

    def _drop_undecodable(self, key: str, exc: SerializationError) -> None:
        level = logging.WARNING if isinstance(exc, TamperedDataError) else logging.INFO
        logger.log(level, "WriteThroughCache: deleting undecodable entry %s (%s)", key, exc)
        # On failure the entry stays a miss for every reader until a write replaces it.
        with contextlib.suppress(redis.RedisError):
            self._client.delete(key)

    def _redis_down(self, exc: BaseException) -> None:
        self._outage.failed(exc)
        if not self._fail_open:
            raise CacheUnavailableError(f"Redis unavailable: {exc}") from exc

    def _after_failed_update(
        self, key: str, id: str, version: object, done: str, exc: BaseException
    ) -> None:
        """The database ``done`` (committed, deleted) but the cache write failed: drop the key."""
        if isinstance(exc, REDIS_OUTAGE_ERRORS):
            self._outage.failed(exc)
        try:
            # Also removes any reader's lease, so no reader can fill the older row.
            self._client.delete(key)
        except redis.RedisError as del_exc:
            logger.warning(
                "WriteThroughCache: row %r %s at version %s, but key %s could be"
                " neither updated (%s) nor deleted (%s); it may serve the previous value"
                " until its TTL ends (at most %gs)",
                id,
                done,
                version,
                key,
                exc,
                del_exc,
                self._ttl,
            )
            if not self._fail_open:
                raise CacheUnavailableError(
                    f"row {id!r} {done} at version {version}, but key {key} could be "
                    f"neither updated nor deleted ({del_exc}); it may serve the previous "
                    f"value for up to {self._ttl:g}s"
                ) from exc
            return
        if not isinstance(exc, REDIS_OUTAGE_ERRORS):
            logger.warning(
                "WriteThroughCache: could not update %s after row %r was %s (%s); deleted"
                " it, the next get reloads from the store",
                key,
                id,
                done,
                exc,
            )
        if not self._fail_open and isinstance(exc, redis.RedisError):
            raise CacheUnavailableError(
                f"row {id!r} {done} at version {version}, but key {key} could not be "
                f"updated ({exc}); it was deleted, the next get reloads it"
            ) from exc
