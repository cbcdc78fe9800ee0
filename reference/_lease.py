"""Leases: the token that closes the stale-set race of cache-aside.

The race: reader A misses, starts loading; a writer updates the database and deletes
the key; A finishes and stores the value it loaded *before* the update. The cache now
holds stale data until the TTL ends.

The fix, as memcache leases do it: on a miss, the reader atomically stores a *lease
marker* (``0xC1 "lease:" token``) in the key's own slot, with a short expiry. Its
final write is a compare-and-set that succeeds only if the slot still holds that exact
marker. Anything that happened in between — a delete, an invalidation, an explicit
``set``, a pattern delete of the prefix — replaced or removed the marker, so the late
write is dropped. Keeping the marker in the value slot (rather than a second key)
means every existing way of deleting a key also revokes its lease, with no extra
bookkeeping. No serializer output starts with 0xC1 (see ``serializers``), so a marker
is never mistaken for a value.

A second reader that misses while a lease is out gets the marker back: it loads for
its own caller but does not write, so the first reader's write is the one that lands.
If the lease holder dies, the marker expires after ``lease_ttl`` and the next reader
takes a new lease.

A reader that will not fill (its load failed, or there is nothing to cache) releases
its lease, so the next reader may fill at once instead of waiting out ``lease_ttl``.

The read is one round trip: ``SET key marker NX PX lease_ms GET``, which is
``READ_OR_LEASE_LUA`` as one native command (Redis >= 7.0 takes NX and GET together): it
returns the stored bytes and leaves them alone, or sets our marker in an empty slot and
returns nil, atomically. It costs the server about what a GET costs, where a script
costs a third more, and that is most of a hit. A server that refuses it (older than
7.0; or refusing writes: out of memory under ``noeviction``, a read-only replica, an ACL
without SET) gets the script instead, which reads without writing on a hit, so reads
keep working there as they always did, at a second round trip. A hit is one round trip,
a miss two (the read, then fill or release).

Tokens are 16 random bytes from ``os.urandom`` as 32 hex characters: unique per miss
(they are only ever compared for equality), and a fraction of uuid4's cost on a path
that makes one for every read.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import redis

__all__ = [
    "FILL_IF_LEASED_LUA",
    "LEASE_PREFIX",
    "READ_OR_LEASE_LUA",
    "RELEASE_LEASE_LUA",
    "LeaseRead",
    "LeaseScripts",
    "is_lease",
    "new_lease_token",
]

LEASE_PREFIX = b"\xc1lease:"

# KEYS[1] = key; ARGV[1] = our lease marker, ARGV[2] = lease expiry in ms.
# Returns the stored bytes (a value, or another reader's lease marker), or nil when the
# key was empty and our lease now holds it. Here it runs only where the server refuses
# SET ... NX ... GET, which does the same (see above); the other languages run it.
READ_OR_LEASE_LUA = """
local v = redis.call('GET', KEYS[1])
if v then
  return v
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return false
"""

# KEYS[1] = key; ARGV[1] = our lease marker, ARGV[2] = value, ARGV[3] = ttl in ms.
# Writes only if our lease still holds the slot: 1 if written, 0 if the lease was lost.
FILL_IF_LEASED_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
"""

# KEYS[1] = key; ARGV[1] = our lease marker. Frees the slot only while our marker holds
# it, so releasing a lease never deletes a value (or another reader's lease) written
# there meanwhile. Returns 1 if released, 0 if the slot holds something else.
RELEASE_LEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


def new_lease_token() -> bytes:
    return LEASE_PREFIX + os.urandom(16).hex().encode("ascii")


def is_lease(data: bytes) -> bool:
    return data.startswith(LEASE_PREFIX)


@dataclass(slots=True)  # not frozen: that costs twice as much, on every read
class LeaseRead:
    """The outcome of :meth:`LeaseScripts.read_or_lease`.

    Exactly one of: ``value`` holds stored bytes (a hit); ``token`` is our lease (a miss
    we may fill); both None (a miss while another reader holds the lease: load, do not
    write).
    """

    value: bytes | None
    token: bytes | None


class LeaseScripts:
    """The lease read and scripts on one client (EVALSHA, EVAL on NOSCRIPT)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._read_or_lease = client.register_script(READ_OR_LEASE_LUA)
        self._fill = client.register_script(FILL_IF_LEASED_LUA)
        self._release = client.register_script(RELEASE_LEASE_LUA)

    def read_or_lease(self, key: str, lease_ms: int) -> LeaseRead:
        token = new_lease_token()
        try:
            # execute_command, not client.set(), which checks a dozen options on every
            # call; get=True tells redis-py's SET reply parser to return the old value,
            # not a bool. Bytes go out as they are, where str is encoded on every call.
            stored = self._client.execute_command(  # type: ignore[no-untyped-call]
                "SET", key, token, b"NX", b"PX", lease_ms, b"GET", get=True
            )
        except redis.ResponseError:
            # Refused (see the module docstring): the script does the same in one call
            # and, on a hit, only reads. Its errors are the caller's, as before.
            stored = self._read_or_lease(keys=[key], args=[token, lease_ms])
        if stored is None:
            return LeaseRead(value=None, token=token)
        if is_lease(stored):
            return LeaseRead(value=None, token=None)
        return LeaseRead(value=stored, token=None)

    def fill(self, key: str, token: bytes, value: bytes, ttl_ms: int) -> bool:
        return bool(self._fill(keys=[key], args=[token, value, ttl_ms]))

    def release(self, key: str, token: bytes) -> bool:
        """Drop our lease if it still holds ``key``; True if it did."""
        return bool(self._release(keys=[key], args=[token]))
