"""The shared harness: repetitions and their summaries, round-trip counters, server counts.

A *round trip* is one request written to a Redis connection and its reply read back:
one ``send_packed_command`` of redis-py, whatever it holds (a pipeline is one). The
counting connection classes below count them client-side, with the command names
packed into them; :class:`ServerCounts` counts what the server saw, from ``INFO
commandstats`` deltas (every command it ran, those inside scripts included) and from a
``MONITOR`` session (which says which commands came from clients and which from Lua).
"""

from __future__ import annotations

import contextvars
import math
import statistics
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio

__all__ = [
    "CALLER",
    "CallerStats",
    "Cost",
    "RoundTrips",
    "ServerCounts",
    "Summary",
    "async_counting_pool",
    "counting_client",
    "counting_pool",
    "extra_cost",
    "prewarm",
    "recording_client",
    "time_calls",
]


@dataclass(frozen=True, slots=True)
class Summary:
    """The median of some repetitions, with their range."""

    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: Iterable[float]) -> Summary:
        data = sorted(values)
        if not data:
            raise ValueError("no repetitions to summarise")
        return cls(statistics.median(data), data[0], data[-1], len(data))

    def text(self, fmt: str = "{:.2f}", unit: str = "") -> str:
        """``median (min–max)``, e.g. ``0.97× (0.95–0.99)``."""
        mid, low, high = (fmt.format(v) for v in (self.median, self.low, self.high))
        return f"{mid}{unit} ({low}–{high})"


def count_text(summary: Summary) -> str:
    """A count: integers without decimals, per-call averages with two."""
    whole = all(float(v).is_integer() for v in (summary.median, summary.low, summary.high))
    return summary.text("{:.0f}" if whole else "{:.2f}")


# -- client-side round trips ------------------------------------------------------------


@dataclass(slots=True)
class CallerStats:
    """What one caller (a thread, or an asyncio task and the tasks it spawns) did."""

    round_trips: int = 0
    loads: int = 0


#: The caller that round trips are attributed to. Threads start with an empty context,
#: so a library's own background threads (watchdogs, refreshers) count as nobody's.
CALLER: contextvars.ContextVar[CallerStats | None] = contextvars.ContextVar(
    "bench_caller", default=None
)


@dataclass
class RoundTrips:
    """Counts round trips and the commands packed into them, across threads."""

    total: int = 0
    commands: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def sent(self) -> None:
        with self._lock:
            self.total += 1
        caller = CALLER.get()
        if caller is not None:
            caller.round_trips += 1

    def packed(self, names: Iterable[str]) -> None:
        with self._lock:
            self.commands.update(names)

    def snapshot(self) -> tuple[int, Counter[str]]:
        with self._lock:
            return self.total, Counter(self.commands)


def _name(args: tuple[Any, ...]) -> str:
    first = args[0]
    name = first.decode() if isinstance(first, bytes) else str(first)
    # redis-py passes "SCRIPT LOAD" and "CLIENT SETINFO" as one argument.
    return name.lower()


class _CountingConnection(redis.Connection):
    bench_counter: RoundTrips

    # send_command packs without pack_command in redis-py 8, so both are covered.
    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self.bench_counter.packed([_name(args)])
        super().send_command(*args, **kwargs)

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        commands = [tuple(c) for c in commands]
        self.bench_counter.packed(_name(c) for c in commands)
        return super().pack_commands(commands)

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.bench_counter.sent()
        super().send_packed_command(command, check_health)


class _AsyncCountingConnection(redis.asyncio.Connection):
    bench_counter: RoundTrips

    def pack_command(self, *args: Any) -> list[bytes]:
        self.bench_counter.packed([_name(args)])
        return super().pack_command(*args)

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        commands = [tuple(c) for c in commands]
        self.bench_counter.packed(_name(c) for c in commands)
        return super().pack_commands(commands)

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.bench_counter.sent()
        await super().send_packed_command(command, check_health)


class _RecordingConnection(redis.Connection):
    bench_sent: list[tuple[tuple[Any, ...], dict[str, Any]]]

    def send_command(self, *args: Any, **kwargs: Any) -> None:
        self.bench_sent.append((args, kwargs))
        super().send_command(*args, **kwargs)


def recording_client(url: str) -> tuple[redis.Redis, list[tuple[tuple[Any, ...], dict[str, Any]]]]:
    """A bytes client, and the list it appends each command it sends to.

    Each entry is the command's arguments and redis-py's options for it (which choose
    the reply parser), so ``client.execute_command(*args, **options)`` sends the very
    same request again.
    """
    sent: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    connection_class = type("RecordingConnection", (_RecordingConnection,), {"bench_sent": sent})
    pool = redis.ConnectionPool.from_url(url, connection_class=connection_class)
    return redis.Redis(connection_pool=pool), sent


def _bound(base: type[Any], counter: RoundTrips) -> type[Any]:
    # A subclass per counter: redis-py builds connections from a class and keyword
    # arguments it validates, so the counter travels as a class attribute.
    return type(f"Counting{base.__name__}", (base,), {"bench_counter": counter})


def counting_pool(url: str, counter: RoundTrips, **kwargs: Any) -> redis.ConnectionPool:
    """A redis-py connection pool whose connections count into ``counter``."""
    return redis.ConnectionPool.from_url(
        url, connection_class=_bound(_CountingConnection, counter), **kwargs
    )


def counting_client(url: str, counter: RoundTrips, **kwargs: Any) -> redis.Redis:
    """A bytes-returning ``redis.Redis`` whose round trips count into ``counter``."""
    return redis.Redis(connection_pool=counting_pool(url, counter, **kwargs))


def async_counting_pool(
    url: str, counter: RoundTrips, **kwargs: Any
) -> redis.asyncio.ConnectionPool:
    return redis.asyncio.ConnectionPool.from_url(
        url, connection_class=_bound(_AsyncCountingConnection, counter), **kwargs
    )


def async_connection_class(counter: RoundTrips) -> type[Any]:
    """For libraries that build their own asyncio pool from a ``connection_class``."""
    return _bound(_AsyncCountingConnection, counter)


def prewarm(pool: redis.ConnectionPool, connections: int) -> None:
    """Open ``connections`` connections now, so their handshakes are not measured."""
    held = [pool.get_connection() for _ in range(connections)]
    for conn in held:
        pool.release(conn)


# -- server-side counts -----------------------------------------------------------------

# Commands the harness itself sends on the stats connection.
_HARNESS_COMMANDS = frozenset({"info", "monitor", "echo", "config|resetstat"})


@dataclass
class ServerView:
    """What the server saw during one window."""

    #: commandstats deltas: every command the server ran, those inside scripts included.
    commands: Counter[str]
    #: From MONITOR: commands sent by clients over TCP, and those run inside Lua.
    requests: int | None = None
    in_scripts: int | None = None


class ServerCounts:
    """Server-side counts over a unix-socket connection the measured code never uses."""

    def __init__(self, unix_socket: str) -> None:
        self.client = redis.Redis(unix_socket_path=unix_socket)

    def commandstats(self) -> Counter[str]:
        stats = self.client.info("commandstats")
        return Counter(
            {
                name.removeprefix("cmdstat_"): int(entry["calls"])
                for name, entry in stats.items()
                if name.removeprefix("cmdstat_") not in _HARNESS_COMMANDS
            }
        )

    def cpu_seconds(self) -> float:
        """CPU seconds the server process has used (user + system, all threads)."""
        cpu = self.client.info("cpu")
        return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])

    @contextmanager
    def window(self, *, monitor: bool = False) -> Iterator[ServerView]:
        """Counts of what the server ran inside the ``with`` block.

        With ``monitor``, a MONITOR session also tells client requests (TCP) from
        commands run by scripts (Lua); the measured clients must connect over TCP.
        """
        view = ServerView(Counter())
        session = self.client.monitor() if monitor else None
        if session is not None:
            # MONITOR is confirmed before the block runs; its connection's handshake
            # happens here, before the first snapshot, so it is not counted.
            session.__enter__()
        before = self.commandstats()
        try:
            yield view
        finally:
            if session is not None:
                marker = f"bench-marker-{uuid.uuid4().hex}"
                self.client.echo(marker)
                requests = in_scripts = 0
                # Everything the server ran before the marker is ahead of it in the stream.
                for entry in session.listen():
                    if entry["client_type"] == "unix" and marker in entry["command"]:
                        break
                    if entry["client_type"] == "tcp":
                        requests += 1
                    elif entry["client_type"] == "lua":
                        in_scripts += 1
                view.requests, view.in_scripts = requests, in_scripts
            # Before the session closes: closing disconnects its connection, and the
            # next command on it would count a new handshake here.
            after = self.commandstats()
            if session is not None:
                session.__exit__(None, None, None)
            view.commands = Counter(
                {k: after[k] - before.get(k, 0) for k in after if after[k] != before.get(k, 0)}
            )

    def close(self) -> None:
        self.client.close()


def breakdown(commands: Counter[str], per: int = 1) -> str:
    """``evalsha 1, get 1`` for a commandstats delta, divided by ``per`` calls."""
    parts = []
    for name, calls in sorted(commands.items(), key=lambda kv: (-kv[1], kv[0])):
        share = calls / per
        parts.append(f"{name} {share:.0f}" if share.is_integer() else f"{name} {share:.2f}")
    return ", ".join(parts) or "none"


# -- timing -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cost:
    """CPU µs of this process and of the redis-server (per call, or beyond a floor)."""

    client_cpu_us: float
    server_cpu_us: float


def _cpu_run(fn: Callable[[], object], server: ServerCounts, n: int) -> tuple[float, float]:
    server_cpu, cpu = server.cpu_seconds(), time.process_time()
    for _ in range(n):
        fn()
    return (
        (time.process_time() - cpu) / n * 1e6,
        (server.cpu_seconds() - server_cpu) / n * 1e6,
    )


def extra_cost(
    fn: Callable[[], object],
    floor: Callable[[], object],
    server: ServerCounts,
    n: int = 1000,
    pairs: int = 5,
) -> Cost:
    """CPU µs per call that ``fn`` costs beyond ``floor``, in this process and the server.

    CPU time is work done, not waiting, but a busy machine still inflates it (caches,
    clock), so it is taken in adjacent runs of ``fn`` and of ``floor``: the median of
    the pairs' differences.
    """
    fn()
    floor()
    client, remote = [], []
    for _ in range(pairs):
        mine, base = _cpu_run(fn, server, n // pairs), _cpu_run(floor, server, n // pairs)
        client.append(mine[0] - base[0])
        remote.append(mine[1] - base[1])
    return Cost(statistics.median(client), statistics.median(remote))


def time_calls(fn: Callable[[], object], n: int) -> float:
    """Seconds for ``n`` back-to-back calls of ``fn``."""
    started = time.perf_counter()
    for _ in range(n):
        fn()
    return time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values``, nearest rank: p99 of 50 is the 50th."""
    data = sorted(values)
    rank = min(len(data), max(1, math.ceil(q * len(data))))
    return data[rank - 1]
