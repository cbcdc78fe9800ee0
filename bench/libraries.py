"""The libraries we compare against, set up the way their documentation shows.

dogpile.cache (sync, redis backend), cashews (asyncio, ``@cache``) and aiocache (asyncio,
``@cached`` / ``@cached_stampede``), each with its defaults except where a benchmark
names an option (the stampede variants). Every factory can take a counting connection
class or pool, so round trips are counted the same way as ours.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlparse

import redis

__all__ = ["aiocache_function", "cashews_function", "dogpile_function"]


def dogpile_function(
    url: str,
    fn: Callable[[str], Any],
    *,
    distributed_lock: bool = False,
    pool: redis.ConnectionPool | None = None,
    namespace: str = "",
) -> Callable[[str], Any]:
    """``fn`` behind ``region.cache_on_arguments()`` on dogpile's redis backend."""
    from dogpile.cache import make_region

    arguments: dict[str, Any] = {"distributed_lock": distributed_lock}
    if pool is not None:
        arguments["connection_pool"] = pool
    else:
        arguments["url"] = url
    region = make_region().configure(
        "dogpile.cache.redis", expiration_time=3600, arguments=arguments
    )
    return region.cache_on_arguments(namespace=namespace or None)(fn)  # type: ignore[no-any-return]


async def cashews_function(
    url: str,
    fn: Callable[[str], Awaitable[Any]],
    *,
    kind: str = "plain",
    connection_class: type[Any] | None = None,
    prefix: str = "",
) -> Callable[[str], Awaitable[Any]]:
    """``fn`` behind cashews: ``plain`` = ``@cache(ttl)``, ``lock`` = ``lock=True``,
    ``early`` = ``@cache.early``. A Cache instance of its own, set up in this event loop."""
    from cashews import Cache

    cache = Cache()
    kwargs: dict[str, Any] = {}
    if connection_class is not None:
        kwargs["connection_class"] = connection_class
    cache.setup(url, **kwargs)
    await cache.init()
    if kind == "plain":
        decorator = cache(ttl="1h", prefix=prefix)
    elif kind == "lock":
        decorator = cache(ttl="1h", lock=True, prefix=prefix)
    elif kind == "early":
        decorator = cache.early(ttl="1h", early_ttl="50m", prefix=prefix)
    else:
        raise ValueError(kind)
    return decorator(fn)  # type: ignore[no-any-return]


def aiocache_function(
    url: str,
    fn: Callable[[str], Awaitable[Any]],
    *,
    stampede: bool = False,
    connection_class: type[Any] | None = None,
    namespace: str = "",
) -> Callable[[str], Awaitable[Any]]:
    """``fn`` behind aiocache's ``@cached`` (or ``@cached_stampede``) on its Redis cache."""
    from aiocache import Cache, cached, cached_stampede
    from aiocache.serializers import JsonSerializer

    where = urlparse(url)
    kwargs: dict[str, Any] = {
        "ttl": 3600,
        "cache": Cache.REDIS,
        "endpoint": where.hostname,
        "port": where.port,
        "serializer": JsonSerializer(),
        "namespace": namespace,
    }
    if connection_class is not None:
        kwargs["connection_pool_kwargs"] = {"connection_class": connection_class}
    decorator = cached_stampede(**kwargs) if stampede else cached(**kwargs)
    return decorator(fn)  # type: ignore[no-any-return]
