"""The one error hierarchy of the reference implementation.

Every error a pattern raises on purpose derives from :class:`CacheError`, so a caller
can catch the whole family in one ``except``. Errors of redis-py and of the user's
database are translated into this hierarchy at the edge (where the pattern talks to
them); the original error is kept as ``__cause__``::

    CacheError
    ├── ConfigurationError (ValueError)    a bad argument: empty prefix, ttl <= 0, ...
    │   └── UnencodableArgumentsError (TypeError)
    │                                      call arguments with no canonical encoding:
    │                                      pass key_builder
    ├── SerializationError                 a value that cannot be encoded or decoded
    │   └── TamperedDataError              signed-pickle data whose signature is wrong
    ├── CacheUnavailableError              Redis down or timing out, not failing open
    ├── LockTimeoutError (TimeoutError)    waited past the deadline for a lock or value
    ├── StoreError                         the user's database failed
    └── FlushTimeoutError (TimeoutError)   write-behind could not drain before a deadline
"""

from __future__ import annotations

__all__ = [
    "CacheError",
    "CacheUnavailableError",
    "ConfigurationError",
    "FlushTimeoutError",
    "LockTimeoutError",
    "SerializationError",
    "StoreError",
    "TamperedDataError",
    "UnencodableArgumentsError",
]


class CacheError(Exception):
    """Base class of every error raised on purpose by the reference patterns."""


class ConfigurationError(CacheError, ValueError):
    """An argument is invalid; the message says what was given and what is allowed."""


class UnencodableArgumentsError(ConfigurationError, TypeError):
    """Call arguments cannot be encoded canonically into a cache key."""


class SerializationError(CacheError):
    """A value could not be serialized, or stored bytes could not be deserialized."""


class TamperedDataError(SerializationError):
    """Signed data failed verification; it was not deserialized."""


class CacheUnavailableError(CacheError):
    """Redis could not be reached, and the operation does not (or may not) fail open."""


class LockTimeoutError(CacheError, TimeoutError):
    """A lock, or the value another caller was loading, missed the deadline."""


class StoreError(CacheError):
    """The user's database (a :class:`Store`) failed."""


class FlushTimeoutError(CacheError, TimeoutError):
    """Queued writes could not be flushed to the store before the deadline."""
