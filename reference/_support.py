"""Small helpers every pattern shares: argument checks, key globbing, outage handling.

Private to the reference package: the names here are not part of its public surface.
"""

from __future__ import annotations

import contextlib
import logging
import math
import random
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeGuard

import redis

from .errors import CacheUnavailableError, ConfigurationError
from .serializers import Serializer, get_serializer

logger = logging.getLogger("templategen.reference")

#: The redis-py errors that mean "Redis is down or slow", as opposed to a bug such as a
#: wrong command. Patterns translate these at the edge (fail open, or raise
#: CacheUnavailableError).
REDIS_OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.ConnectionError,
    redis.TimeoutError,
)

_GLOB_SPECIALS = frozenset("*?[]\\")


def require_prefix(prefix: object, name: str = "prefix") -> str:
    """A key prefix: a non-empty str (it namespaces every key the pattern writes)."""
    if not isinstance(prefix, str) or not prefix:
        raise ConfigurationError(f"{name} must be a non-empty string, got {prefix!r}")
    return prefix


def _is_finite_number(value: object) -> TypeGuard[int | float]:
    # bool is an int to Python, but True is never meant as a number of seconds.
    return not isinstance(value, bool) and isinstance(value, int | float) and math.isfinite(value)


def require_positive_seconds(value: object, name: str) -> float:
    """A duration in seconds: an int or float > 0 (bool is refused; it is not a duration)."""
    if not _is_finite_number(value) or value <= 0:
        raise ConfigurationError(f"{name} must be a number of seconds > 0, got {value!r}")
    return float(value)


def require_non_negative(value: object, name: str, *, hint: str = "") -> float:
    """A finite number >= 0 (bool is refused); ``hint`` says in the error what it means."""
    if not _is_finite_number(value) or value < 0:
        note = f" ({hint})" if hint else ""
        raise ConfigurationError(f"{name} must be a finite number >= 0{note}, got {value!r}")
    return float(value)


def require_fraction(value: object, name: str, *, upper: float = 1.0) -> float:
    """A fraction in [0, upper]."""
    if not _is_finite_number(value) or not 0 <= value <= upper:
        raise ConfigurationError(f"{name} must be a number between 0 and {upper}, got {value!r}")
    return float(value)


def require_bool(value: object, name: str) -> bool:
    """A flag: exactly True or False (1, 0 and "false" are refused, not guessed at)."""
    if not isinstance(value, bool):
        raise ConfigurationError(f"{name} must be True or False, got {value!r}")
    return value


def require_callable(value: object, name: str = "loader") -> Callable[..., Any]:
    if not callable(value):
        raise ConfigurationError(f"{name} must be callable, got {type(value).__name__}")
    return value


def require_key(key: object, name: str = "key") -> str:
    if not isinstance(key, str):
        raise ConfigurationError(f"{name} must be a str, got {type(key).__name__}")
    return key


def to_ms(seconds: float) -> int:
    """Seconds to whole milliseconds for PX/PEXPIRE, never below 1 (0 would be an error)."""
    return max(1, round(seconds * 1000))


def jittered_ms(seconds: float, jitter: float, rng: Callable[[], float] = random.random) -> int:
    """``seconds`` spread uniformly by up to ±``jitter`` (a fraction), in milliseconds.

    Keys written together with one TTL expire together and reload together; spreading
    the TTL turns that synchronized burst into a trickle.
    """
    if jitter == 0:
        return to_ms(seconds)
    return to_ms(seconds * (1 + jitter * (2 * rng() - 1)))


def escape_glob(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches only itself in SCAN MATCH."""
    return "".join("\\" + ch if ch in _GLOB_SPECIALS else ch for ch in text)


def _batched(items: Iterable[bytes], size: int) -> Iterable[list[bytes]]:
    batch: list[bytes] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def unlink_matching(client: redis.Redis, pattern: str, *, batch_size: int = 500) -> int:
    """UNLINK every key matching the glob ``pattern``, ``batch_size`` keys per command.

    UNLINK frees memory in a background thread, and batching turns N round trips into
    N / batch_size. SCAN gives no snapshot: keys written while this runs may survive,
    which is why per-call invalidation uses exact keys and leases instead.
    """
    deleted = 0
    for batch in _batched(client.scan_iter(match=pattern, count=batch_size), batch_size):
        deleted += int(client.unlink(*batch))
    return deleted


class OutageLog:
    """Logs one warning when Redis becomes unreachable and one note when it is back.

    A cache that fails open keeps serving from the source of truth during an
    outage; logging every failed call would bury the one line that matters under
    thousands.
    """

    def __init__(self, name: str) -> None:
        self._name = name
        self._down = False
        self._lock = threading.Lock()

    @property
    def down(self) -> bool:
        return self._down

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            if self._down:
                return
            self._down = True
        logger.warning(
            "%s: Redis unavailable (%s: %s); failing open until it is back",
            self._name,
            type(exc).__name__,
            exc,
        )

    def succeeded(self) -> None:
        if not self._down:  # the common case, without taking the lock
            return
        with self._lock:
            if not self._down:
                return
            self._down = False
        logger.warning("%s: Redis reachable again", self._name)


def unavailable(pattern: str, action: str, exc: BaseException) -> CacheUnavailableError:
    """The CacheUnavailableError for an outage while ``action``; raise it ``from exc``."""
    return CacheUnavailableError(f"{pattern}: Redis unavailable while {action}: {exc}")


@contextlib.contextmanager
def outage_as_unavailable(pattern: str, action: str) -> Iterator[None]:
    """Turn a Redis outage inside the block into CacheUnavailableError naming ``action``.

    For the patterns with no fail-open mode: a skipped invalidation or a read that could
    not tell a miss from an outage would be silently wrong, so the caller must hear it.
    Hit paths catch REDIS_OUTAGE_ERRORS and raise :func:`unavailable` themselves: the
    generator behind a ``with`` block costs about a microsecond per call.
    """
    try:
        yield
    except REDIS_OUTAGE_ERRORS as exc:
        raise unavailable(pattern, action, exc) from exc


def serializer_from(serializer: str | Serializer, hmac_key: bytes | str | None) -> Serializer:
    """``serializer`` itself when it is one, else the serializer of that name."""
    if isinstance(serializer, Serializer):
        return serializer
    return get_serializer(serializer, hmac_key=hmac_key)


def require_bytes_client(client: object) -> redis.Redis:
    """A redis-py client that returns bytes: values are binary (msgpack, signed pickle)."""
    if not isinstance(client, redis.Redis):
        raise ConfigurationError(
            f"client must be a redis.Redis instance, got {type(client).__name__}"
        )
    if client.get_connection_kwargs().get("decode_responses"):
        raise ConfigurationError(
            "client must be created with decode_responses=False: cached values are bytes"
        )
    return client
