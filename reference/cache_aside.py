"""Cache-aside: read from Redis, on a miss load from the source of truth and fill.

The caller asks :meth:`CacheAside.get` for a key with a ``loader``. A hit returns the
stored value; a miss calls the loader, stores its result with a TTL and returns it.
Writers update the database first and then :meth:`~CacheAside.delete` the key (or
``set`` it), so the next read loads the new value. :class:`CacheManager` offers the same
as a decorator, with ``f.invalidate(*args)`` for exactly one call's entry.

Guarantees
    - A miss is Redis answering nil. Cached ``0``, ``""``, ``[]``, ``False`` are hits, and
      so is a cached ``None`` when negative caching is on (``negative_ttl``).
    - No stale set: a value loaded *before* a ``delete``, ``set``, ``delete_pattern`` or
      ``invalidate`` of its key is never written *after* it. On a miss the reader puts a
      lease marker in the key's own slot and fills only if the marker is still there
      (see ``_lease``); every way of removing or overwriting the key revokes the lease.
    - A hit is one round trip, a miss two (read-or-lease, fill). The read is
      ``SET key marker NX PX lease_ttl GET``: ``READ_OR_LEASE_LUA`` as one native command,
      which a server that refuses it (before Redis 7.0, or out of memory, a read-only
      replica) replaces with the script itself, at a second round trip (see ``_lease``).
    - ``ttl``, ``negative_ttl`` and ``lease_ttl`` are always > 0: a key never lives forever.
    - Signed-pickle data that fails verification is never unpickled.

Failure modes
    - Redis down or timing out: with ``fail_open=True`` (the default) ``get`` falls
      through to the loader and returns its value, ``set``/``delete`` do nothing, and one
      warning is logged per outage per client (and one note when Redis is back), not one
      per call. With ``fail_open=False`` every call raises ``CacheUnavailableError`` from
      the redis-py error, before the loader runs. An invalidation lost to an outage
      leaves the old value until its TTL if Redis kept it (a partition, not a restart).
    - The loader raises: nothing is cached, the exception propagates, and the lease is
      released (if that fails too, it expires on its own after ``lease_ttl``).
    - The loader returns ``None`` and ``negative_ttl`` is None: returned, not cached,
      lease released. A value the serializer cannot encode raises ``SerializationError``.
    - A load slower than ``lease_ttl``: the lease expires, another reader may take a new
      one; our value is returned to our caller but not cached (the fill finds no lease).
    - Concurrent misses: the lease holder's value is written; other readers that miss
      while the lease is out load for their own caller and write nothing. Concurrent
      ``set`` calls are plain SETs: the last one wins.
    - Stored bytes that cannot be deserialized are replaced by our lease (only if still
      the same bytes) and treated as a miss; tampered or unsigned pickle also logs a
      security warning (an ``hmac_key`` that differs between processes looks the same).
    - A process crash mid-load leaves only a lease marker, gone after ``lease_ttl``.

What it does not do
    - No stampede protection: N concurrent misses run the loader N times (one of them
      fills). Use ``stampede_lock`` when a load is expensive.
    - No cross-key atomicity: each key is filled and invalidated on its own.
    - ``delete_pattern`` / ``invalidate_all`` walk keys with SCAN, which is not a
      snapshot: keys written while it runs may survive. Per-call invalidation uses exact
      keys and is not affected. ``invalidate_all`` removes every key under its
      ``key_prefix``, including keys of other functions sharing it and of nested prefixes
      (``"user"`` also covers ``"user:admin"``).
    - Methods: ``self`` has no canonical encoding, so decorated methods need a
      ``key_builder``; invalidate through the class: ``Repo.find.invalidate(repo, 1)``.
    - Errors other than "down or timing out" (e.g. an OOM refusal) propagate.

Wire format
    - Key: ``f"{prefix}:{key}"``. Decorator keys: ``f"{key_prefix}:{built}"`` with a
      ``key_builder``, else ``f"{key_prefix}:{module}.{qualname}:{sha256hex}"`` where the
      hash is of the call's arguments bound by name (defaults applied) as compact,
      sorted-key UTF-8 JSON: ``{"page":1,"query":"x"}``.
    - Value: exactly the serializer's bytes (``json`` by default; see ``serializers``),
      written with ``SET ... PX`` (milliseconds, optionally jittered by ±``jitter``).
    - Lease marker: ``b"\\xc1lease:" + 32 hex chars`` in the value slot, ``PX lease_ttl``.
    - Every get reads with ``SET key marker NX PX lease_ttl GET``, or ``READ_OR_LEASE_LUA``
      where that is refused: the same effect, so the other languages, which run the
      script, share the keys. Scripts: ``FILL_IF_LEASED_LUA`` (the fill, and the swap of
      undecodable bytes for a lease: it is a compare-and-set), ``RELEASE_LEASE_LUA`` (drop
      our lease when nothing will be filled), both from ``_lease``. Deletes use UNLINK.

Deviations from the design page
    - ``CacheManager(redis_url)`` → ``CacheManager(client)``: the caller owns the client
      (pool, timeouts, TLS); it must return bytes (``decode_responses=False``).
    - ``CacheAside(redis_client, config)`` → ``CacheAside(client, config=None)``.
    - ``CacheConfig``: frozen, keyword-only, validated; adds ``hmac_key``,
      ``negative_ttl``, ``jitter``, ``lease_ttl``, ``fail_open``. ``ttl`` may be a float.
    - ``cache_aside``: the other options are keyword-only; the default key hashes the
      bound arguments with sha256 instead of ``repr()`` with md5[:12] (which never hit for
      objects with default reprs and could collide); unencodable arguments raise
      ``UnencodableArgumentsError``; ``key_builder`` must return a str or int.
    - ``f.invalidate(*args)`` always deletes exactly that call's key (the design deleted
      *every* key of the prefix when there was no key_builder); ``f.invalidate_all()``
      is new and does that explicitly.
    - ``get``: no falsy check, no ``ttl or default``, leases; ``None`` cached only with
      ``negative_ttl``. ``set`` revokes in-flight loads. ``delete`` returns whether a key
      was removed; ``delete_pattern`` escapes the prefix, UNLINKs in batches and returns
      the count. ``_serialize``/``_deserialize`` moved to ``serializers``; pickle is
      signed only; an unknown serializer is a ``ConfigurationError`` at construction.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import json
import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, ParamSpec, Protocol, Self, TypeVar, cast, overload

import redis

from ._lease import FILL_IF_LEASED_LUA, LeaseScripts, new_lease_token
from ._support import (
    REDIS_OUTAGE_ERRORS,
    OutageLog,
    escape_glob,
    jittered_ms,
    logger,
    require_bool,
    require_bytes_client,
    require_callable,
    require_fraction,
    require_key,
    require_positive_seconds,
    require_prefix,
    to_ms,
    unlink_matching,
)
from .errors import (
    CacheUnavailableError,
    ConfigurationError,
    SerializationError,
    TamperedDataError,
    UnencodableArgumentsError,
)
from .serializers import Serializer, get_serializer

__all__ = [
    "CacheAside",
    "CacheConfig",
    "CacheManager",
    "CachedFunction",
]

T = TypeVar("T")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)
P = ParamSpec("P")


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    """Options of one :class:`CacheAside`; every field is checked on construction."""

    ttl: float = 3600
    prefix: str = "cache"
    serializer: str = "json"
    hmac_key: bytes | str | None = field(default=None, repr=False)
    negative_ttl: float | None = None
    jitter: float = 0.0
    lease_ttl: float = 10.0
    fail_open: bool = True

    def __post_init__(self) -> None:
        require_positive_seconds(self.ttl, "ttl")
        require_prefix(self.prefix)
        # Unknown names and a missing or short pickle hmac_key fail here, not at first use.
        get_serializer(self.serializer, hmac_key=self.hmac_key)
        if self.negative_ttl is not None:
            require_positive_seconds(self.negative_ttl, "negative_ttl (None disables it)")
        require_fraction(self.jitter, "jitter", upper=0.5)
        require_positive_seconds(self.lease_ttl, "lease_ttl")
        require_bool(self.fail_open, "fail_open")


# One outage log per client, so caches sharing a client log one warning per outage
# between them instead of one each.
_outage_logs: weakref.WeakKeyDictionary[redis.Redis, OutageLog] = weakref.WeakKeyDictionary()


def _outage_log_for(client: redis.Redis) -> OutageLog:
    log = _outage_logs.get(client)
    if log is None:
        kw = client.get_connection_kwargs()
        where = kw.get("path") or f"{kw.get('host', '?')}:{kw.get('port', '?')}"
        log = _outage_logs.setdefault(client, OutageLog(f"cache_aside {where}/{kw.get('db', 0)}"))
    return log


class CacheAside(Generic[T]):
    """Cache-aside over one key prefix; thread-safe (no state beyond the client's pool)."""

    def __init__(self, client: redis.Redis, config: CacheConfig | None = None) -> None:
        self.client = require_bytes_client(client)
        if config is not None and not isinstance(config, CacheConfig):
            raise ConfigurationError(f"config must be a CacheConfig, got {type(config).__name__}")
        self.config = config or CacheConfig()
        self._serializer: Serializer = get_serializer(
            self.config.serializer, hmac_key=self.config.hmac_key
        )
        self._leases = LeaseScripts(client)
        self._compare_and_set = client.register_script(FILL_IF_LEASED_LUA)
        self._lease_ms = to_ms(self.config.lease_ttl)
        self._outage = _outage_log_for(client)

    def get(self, key: str, loader: Callable[[], T], ttl: float | None = None) -> T:
        """The cached value of ``key``, or ``loader()`` stored for ``ttl`` seconds."""
        full = self._full_key(key)
        require_callable(loader)
        return self._get(full, loader, self._ttl(ttl))

    def _get(self, full: str, loader: Callable[[], T], ttl_s: float) -> T:
        """``get`` after its argument checks; decorated functions call this directly."""
        try:
            read = self._leases.read_or_lease(full, self._lease_ms)
        except REDIS_OUTAGE_ERRORS as exc:
            self._unavailable(exc)
            return loader()
        self._outage.succeeded()
        token = read.token
        if read.value is not None:
            try:
                return cast(T, self._serializer.loads(read.value))
            except SerializationError as exc:
                token = self._replace_undecodable(full, read.value, exc)
        return self._load_and_fill(full, token, loader, ttl_s)

    def set(self, key: str, value: T, ttl: float | None = None) -> None:
        """Store ``value``; a load of ``key`` in flight elsewhere will not overwrite it."""
        full = self._full_key(key)
        ms = jittered_ms(self._ttl(ttl), self.config.jitter)
        payload = self._serializer.dumps(value)
        try:
            # A plain SET replaces any lease marker, which is what revokes in-flight loads.
            self.client.set(full, payload, px=ms)
        except REDIS_OUTAGE_ERRORS as exc:
            self._unavailable(exc)
            return
        self._outage.succeeded()

    def delete(self, key: str) -> bool:
        """Remove ``key`` (and any lease on it); True if something was removed."""
        full = self._full_key(key)
        try:
            removed = bool(self.client.unlink(full))
        except REDIS_OUTAGE_ERRORS as exc:
            self._unavailable(exc)
            return False
        self._outage.succeeded()
        return removed

    def delete_pattern(self, pattern: str) -> int:
        """UNLINK every key of this prefix matching the glob ``pattern``; the count removed.

        The prefix is matched literally (its glob characters are escaped); ``pattern``
        is a Redis glob. SCAN is not a snapshot: keys written meanwhile may survive.
        """
        require_key(pattern, "pattern")
        try:
            removed = unlink_matching(self.client, f"{escape_glob(self.config.prefix)}:{pattern}")
        except REDIS_OUTAGE_ERRORS as exc:
            self._unavailable(exc)
            return 0
        self._outage.succeeded()
        return removed

    def _full_key(self, key: str) -> str:
        return f"{self.config.prefix}:{require_key(key)}"

    def _ttl(self, ttl: float | None) -> float:
        return self.config.ttl if ttl is None else require_positive_seconds(ttl, "ttl")

    def _unavailable(self, exc: BaseException) -> None:
        """Fail open (one warning per outage) or raise CacheUnavailableError."""
        if not self.config.fail_open:
            raise CacheUnavailableError(
                f"Redis unavailable for cache prefix {self.config.prefix!r}: {exc}"
            ) from exc
        self._outage.failed(exc)

    def _replace_undecodable(
        self, full: str, stored: bytes, exc: SerializationError
    ) -> bytes | None:
        """Swap bytes we cannot read for our lease; our token, or None if that lost."""
        if isinstance(exc, TamperedDataError):
            logger.warning(
                "cache_aside: SECURITY: %r holds data that failed signature verification "
                "(tampering, or processes with different hmac_keys); not unpickled, "
                "replacing it: %s",
                full,
                exc,
            )
        else:
            logger.warning("cache_aside: %r could not be deserialized, replacing it: %s", full, exc)
        token = new_lease_token()
        try:
            # Compare-and-set, not DEL: a good value written since our read must survive.
            swapped = self._compare_and_set(keys=[full], args=[stored, token, self._lease_ms])
        except REDIS_OUTAGE_ERRORS as err:
            self._unavailable(err)
            return None
        return token if swapped else None

    def _load_and_fill(
        self, full: str, token: bytes | None, loader: Callable[[], T], ttl_s: float
    ) -> T:
        try:
            value = loader()
        except Exception:
            if token is not None:
                self._release_lease(full, token)
            raise
        if token is None:  # another reader holds the lease (or Redis failed): its write lands
            return value
        if value is None:
            if self.config.negative_ttl is None:
                self._release_lease(full, token)
                return value
            ttl_s = self.config.negative_ttl
        try:
            payload = self._serializer.dumps(value)
        except SerializationError:
            self._release_lease(full, token)
            raise
        try:
            filled = self._leases.fill(full, token, payload, jittered_ms(ttl_s, self.config.jitter))
        except REDIS_OUTAGE_ERRORS as exc:
            self._unavailable(exc)
            return value
        if not filled:
            # Invalidated, overwritten or lease expired while we loaded: the value may be
            # older than what the cache now holds, so it is returned but not stored.
            logger.debug("cache_aside: lease on %r lost during load; not cached", full)
        return value

    def _release_lease(self, full: str, token: bytes) -> None:
        """Best effort: if Redis is unreachable the lease expires after lease_ttl."""
        with contextlib.suppress(*REDIS_OUTAGE_ERRORS):
            self._leases.release(full, token)


class CachedFunction(Protocol[P, R_co]):
    """A function wrapped by :meth:`CacheManager.cache_aside`."""

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co: ...

    def invalidate(self, *args: P.args, **kwargs: P.kwargs) -> bool:
        """Delete the entry of exactly this call (same arguments as the call)."""
        ...

    def invalidate_all(self) -> int:
        """Delete every entry under the decorator's key_prefix; the count removed."""
        ...

    # Decorated methods bind like functions: ``obj.method(...)`` type-checks, and
    # ``Class.method.invalidate(obj, ...)`` names the entry (self has no canonical
    # encoding, so methods need a key_builder).
    @overload
    def __get__(self, instance: None, owner: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(self, instance: object, owner: type[Any] | None = None) -> Callable[..., R_co]: ...


_ENCODABLE = "str, int, float, bool, None, and lists, tuples and str-keyed dicts of them"


def _canonical(value: object, where: str, func_name: str) -> object:
    """``value`` as plain JSON data, or UnencodableArgumentsError naming the culprit."""
    if value is None or isinstance(value, str | int):  # bool is an int
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        problem = f"{value!r} is not a finite number"
    elif isinstance(value, list | tuple):
        return [_canonical(item, f"{where}[{i}]", func_name) for i, item in enumerate(value)]
    elif isinstance(value, dict):
        out: dict[str, object] = {}
        for k, v in value.items():
            # json.dumps would turn 1 into "1": {1: x} and {"1": x} must not share a key.
            if not isinstance(k, str):
                problem = f"has a {type(k).__name__} dict key {k!r} (only str keys are)"
                break
            out[k] = _canonical(v, f"{where}[{k!r}]", func_name)
        else:
            return out
    else:
        problem = f"is a {type(value).__name__}"
    raise UnencodableArgumentsError(
        f"cannot build a cache key for {func_name}: argument {where} {problem}; only "
        f"{_ENCODABLE} have a canonical encoding. Pass key_builder= to cache_aside to "
        "build the key yourself"
    )


def _default_key_builder(func: Callable[..., Any]) -> Callable[..., str]:
    """``module.qualname:sha256(canonical JSON of the bound arguments)``.

    The arguments are bound by name with defaults applied: f(1), f(x=1) and
    f(1, y=<default>) are one call. ``Signature.bind`` does that at a cost above a
    cached call's round trip, so a signature without ``*args`` or ``**kwargs`` is bound
    here by position and name, the same way; any other, and a call this does not take
    (too many arguments, a missing or unknown one), goes to ``Signature.bind``, which
    binds it or raises.
    """
    name = f"{func.__module__}.{func.__qualname__}"
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot read the signature of {name} to build cache keys; pass key_builder="
        ) from exc
    kind = inspect.Parameter
    params = list(signature.parameters.values())
    names = [p.name for p in params]  # the order Signature.bind returns them in
    simple = all(p.kind not in (kind.VAR_POSITIONAL, kind.VAR_KEYWORD) for p in params)
    positional = (kind.POSITIONAL_ONLY, kind.POSITIONAL_OR_KEYWORD)
    by_position = [p.name for p in params if p.kind in positional]
    named = (kind.POSITIONAL_OR_KEYWORD, kind.KEYWORD_ONLY)
    by_name = frozenset(p.name for p in params if p.kind in named)
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    # json.dumps with any option set builds a new JSONEncoder on every call; this one has
    # the same options, so it writes the same text.
    encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def bind(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if (
            simple
            and len(args) <= len(by_position)
            and (
                not kwargs
                or (kwargs.keys() <= by_name and kwargs.keys().isdisjoint(by_position[: len(args)]))
            )
        ):
            given = {**defaults, **dict(zip(by_position, args, strict=False)), **kwargs}
            # Fewer: a parameter without a default was not passed.
            if len(given) == len(names):
                return {param: given[param] for param in names}
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return bound.arguments

    def make(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
        data = {
            param: _canonical(value, param, name) for param, value in bind(args, kwargs).items()
        }
        text = encoder.encode(data)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
        return f"{name}:{digest}"

    # Calls repeat, so the keys of calls by position with only str and int arguments
    # are remembered: equal tuples of those encode alike (bool is left out: True == 1,
    # but one is true and the other 1). Not when a default could change between calls
    # (a list, say). At most 1024 keys, forgotten all at once when full.
    immutable = (str, int, float, bool, type(None))
    remember = all(type(default) in immutable for default in defaults.values())
    known: dict[tuple[Any, ...], str] = {}

    def build(*args: Any, **kwargs: Any) -> str:
        if kwargs or not remember:
            return make(args, kwargs)
        for arg in args:
            if type(arg) is not str and type(arg) is not int:
                return make(args, kwargs)
        key = known.get(args)
        if key is None:
            key = make(args, kwargs)
            if len(known) >= 1024:
                known.clear()
            known[args] = key
        return key

    return build


def _user_key_builder(key_builder: Callable[..., Any]) -> Callable[..., str]:
    def build(*args: Any, **kwargs: Any) -> str:
        key = key_builder(*args, **kwargs)
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise ConfigurationError(
                f"key_builder must return a str or int, got {type(key).__name__} {key!r}"
            )
        return str(key)

    return build


class CacheManager:
    """Makes cache-aside decorators over one Redis client."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = require_bytes_client(client)

    def cache_aside(
        self,
        key_prefix: str,
        ttl: float = 3600,
        key_builder: Callable[..., str | int] | None = None,
        *,
        serializer: str = "json",
        hmac_key: bytes | str | None = None,
        negative_ttl: float | None = None,
        jitter: float = 0.0,
        lease_ttl: float = 10.0,
        fail_open: bool = True,
    ) -> Callable[[Callable[P, R]], CachedFunction[P, R]]:
        """Cache a function's results under ``key_prefix`` (options as in CacheConfig).

        ``key_builder(*args, **kwargs)`` makes the key part after ``key_prefix:``;
        without it the key is the function's name and a hash of its bound arguments.
        """
        config = CacheConfig(
            ttl=ttl,
            prefix=key_prefix,
            serializer=serializer,
            hmac_key=hmac_key,
            negative_ttl=negative_ttl,
            jitter=jitter,
            lease_ttl=lease_ttl,
            fail_open=fail_open,
        )
        if key_builder is not None:
            require_callable(key_builder, "key_builder")

        def decorator(func: Callable[P, R]) -> CachedFunction[P, R]:
            require_callable(func, "the decorated function")
            cache: CacheAside[R] = CacheAside(self.client, config)
            key_for = (
                _default_key_builder(func)
                if key_builder is None
                else _user_key_builder(key_builder)
            )

            @functools.wraps(func)
            def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
                # Past get()'s checks: the loader is ours and the ttl the config's.
                full = cache._full_key(key_for(*args, **kwargs))
                return cache._get(full, lambda: func(*args, **kwargs), config.ttl)

            def invalidate(*args: P.args, **kwargs: P.kwargs) -> bool:
                return cache.delete(key_for(*args, **kwargs))

            def invalidate_all() -> int:
                return cache.delete_pattern("*")

            wrapper.invalidate = invalidate  # type: ignore[attr-defined]
            wrapper.invalidate_all = invalidate_all  # type: ignore[attr-defined]
            return cast(CachedFunction[P, R], wrapper)

        return decorator
