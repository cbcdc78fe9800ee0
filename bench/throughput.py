"""2. Hit throughput of one caller, 1 KB JSON value, as a ratio to the floor.

The floor is the least any cache can do on a hit: a raw redis-py ``GET`` of the same
value plus ``json.loads`` (sync), or the same on ``redis.asyncio`` (async). Each
repetition alternates chunks of the contender and of its floor, on the same server in
the same seconds, and the ratio is floor time / contender time: 1.00 means as fast
as the floor. dogpile.cache is held to the sync floor, cashews and aiocache to the
async one, like our patterns to theirs.
"""

from __future__ import annotations

import asyncio
import gc
import json
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import redis
import redis.asyncio

from .context import Run
from .harness import (
    Cost,
    RoundTrips,
    Summary,
    async_connection_class,
    counting_client,
    counting_pool,
    extra_cost,
    recording_client,
    time_calls,
)
from .implementations import REDIS_PATTERNS
from .libraries import aiocache_function, cashews_function, dogpile_function
from .patterns import json_value, operations
from .report import Section, Table, Target

__all__ = ["measure"]

TARGET = 0.95
#: Patterns whose textbook hit is measured too (the others' is a plain GET, the floor).
TEXTBOOK = ("cache-aside", "version-invalidation", "early-refresh")


class _Sizes:
    def __init__(self, quick: bool) -> None:
        self.chunk = 50
        self.rounds = 8 if quick else 40
        self.cost_calls = 200 if quick else 1000


def _paired(
    contender: Callable[[], object], floor: Callable[[], object], sizes: _Sizes
) -> tuple[float, float]:
    """One repetition: (ratio to the floor, contender calls per second).

    Many short chunks, alternating which side goes first; the ratio is the median of
    the adjacent pairs' ratios, so a burst of load from another process that lands on
    a few chunks moves the median little.
    """
    gc.collect()
    ratios, spent = [], 0.0
    for i in range(sizes.rounds):
        if i % 2 == 0:
            f, c = time_calls(floor, sizes.chunk), time_calls(contender, sizes.chunk)
        else:
            c, f = time_calls(contender, sizes.chunk), time_calls(floor, sizes.chunk)
        ratios.append(f / c)
        spent += c
    return statistics.median(ratios), sizes.chunk * sizes.rounds / spent


async def _time_async(fn: Callable[[], Awaitable[object]], n: int) -> float:
    started = time.perf_counter()
    for _ in range(n):
        await fn()
    return time.perf_counter() - started


async def _paired_async(
    contender: Callable[[], Awaitable[object]],
    floor: Callable[[], Awaitable[object]],
    sizes: _Sizes,
) -> tuple[float, float]:
    gc.collect()
    ratios, spent = [], 0.0
    for i in range(sizes.rounds):
        if i % 2 == 0:
            f = await _time_async(floor, sizes.chunk)
            c = await _time_async(contender, sizes.chunk)
        else:
            c = await _time_async(contender, sizes.chunk)
            f = await _time_async(floor, sizes.chunk)
        ratios.append(f / c)
        spent += c
    return statistics.median(ratios), sizes.chunk * sizes.rounds / spent


class _Alone:
    """A hit's one request sent raw, plus json.loads: the most that hit path can reach.

    Our hits send more than a GET where they must (the cache-aside read plants its lease
    in the same command); replaying exactly that request through redis-py, with the
    same reply parser, separates what the request costs from what our code adds.
    """

    def __init__(self, request: str, ratio: Summary | None) -> None:
        self.request = request
        self.ratio = ratio  # None: the request is the floor's own GET

    def cell(self) -> str:
        if self.ratio is None:
            return f"{self.request}: the floor"
        return f"{self.request}: {self.ratio.text('{:.2f}', '×')}"


class _Result:
    def __init__(
        self,
        reps: list[tuple[float, float]],
        round_trips: float,
        cost: Cost,
        alone: _Alone | None = None,
    ) -> None:
        self.ratio = Summary.of(r[0] for r in reps)
        self.rate = Summary.of(r[1] for r in reps)
        self.round_trips = round_trips
        self.cost = cost
        self.alone = alone

    def cell(self) -> str:
        return f"{self.ratio.text('{:.2f}', '×')}"

    def cost_text(self) -> str:
        return (
            f"{self.round_trips:g} RT, {self.cost.client_cpu_us:.0f} µs client CPU, "
            f"{self.cost.server_cpu_us:.0f} µs server CPU"
        )


async def _async_cpu_run(
    fn: Callable[[], Awaitable[object]], run: Run, n: int
) -> tuple[float, float]:
    server, cpu = run.server_counts.cpu_seconds(), time.process_time()
    for _ in range(n):
        await fn()
    return (
        (time.process_time() - cpu) / n * 1e6,
        (run.server_counts.cpu_seconds() - server) / n * 1e6,
    )


async def _async_extra_cost(
    fn: Callable[[], Awaitable[object]],
    floor: Callable[[], Awaitable[object]],
    run: Run,
    n: int,
    pairs: int = 5,
) -> Cost:
    """As harness.extra_cost, for coroutine functions."""
    await fn()
    await floor()
    client, remote = [], []
    for _ in range(pairs):
        mine = await _async_cpu_run(fn, run, n // pairs)
        base = await _async_cpu_run(floor, run, n // pairs)
        client.append(mine[0] - base[0])
        remote.append(mine[1] - base[1])
    return Cost(statistics.median(client), statistics.median(remote))


def _rt_per_hit(call: Callable[[], object], counter: RoundTrips, n: int = 20) -> float:
    call()
    before, _ = counter.snapshot()
    for _ in range(n):
        call()
    after, _ = counter.snapshot()
    return (after - before) / n


def _describe(args: tuple[Any, ...]) -> str:
    """A request's name and shape, without its keys and values: ``SET NX PX GET``."""
    words = [a.decode("latin-1") if isinstance(a, bytes) else str(a) for a in args]
    name = words[0].upper()
    if name == "SET":
        flags = [w.upper() for w in words[3:] if w.upper() in {"NX", "XX", "PX", "EX", "GET"}]
        return " ".join([name, *flags])
    if name == "EVALSHA":
        return f"EVALSHA of a script, {words[2]} key(s)"
    if name in {"MGET", "EXISTS", "DEL", "UNLINK"}:
        return f"{name} of {len(words) - 1} key(s)"
    return name


def _request_alone(
    run: Run,
    hit_on: Callable[[redis.Redis], Callable[[], object]],
    payload: bytes,
    floor: Callable[[], object],
    sizes: _Sizes,
) -> _Alone | None:
    """Record the one request a warm hit sends, then time it raw against the floor."""
    client, sent = recording_client(run.url)
    hit = hit_on(client)
    hit()
    sent.clear()
    hit()
    recorded = list(sent)
    client.close()
    if len(recorded) != 1:
        return None  # not one request: nothing to replay (the RT column says so)
    args, options = recorded[0]
    request = _describe(args)
    if request == "GET":
        return _Alone(request, None)
    raw = run.client()

    def alone() -> object:
        raw.execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return json.loads(payload)

    alone()
    reps = [_paired(alone, floor, sizes) for _ in range(run.reps)]
    raw.close()
    return _Alone(request, Summary.of(r[0] for r in reps))


def measure(run: Run) -> Section:
    sizes = _Sizes(run.quick)
    value = json_value()
    payload = json.dumps(value, separators=(",", ":")).encode()
    raw = run.client()
    floor_key = f"floor:{uuid.uuid4().hex}"
    raw.set(floor_key, payload)

    def sync_floor() -> object:
        return json.loads(raw.get(floor_key))  # type: ignore[arg-type]

    section = Section(
        "throughput",
        "2. Hit throughput, one caller, 1 KB JSON",
        f"Hit calls per second as a ratio to the floor, median (min–max) of {run.reps} "
        f"repetitions; each repetition alternates {sizes.rounds} chunks of {sizes.chunk} "
        "calls of the contender and of its floor and takes the median ratio of adjacent "
        "chunks (sync floor: redis-py GET + json.loads of the "
        "same 1 KB value; async: the same on redis.asyncio). Target: ≥ "
        f"{TARGET:.2f}× for every pattern's hit path, and above every library.",
    )
    ours: dict[tuple[str, str], _Result] = {}
    for pattern in REDIS_PATTERNS:
        for impl in ("reference", "rendered", "textbook"):
            module = (
                run.impls.reference[pattern]
                if impl == "reference"
                else run.impls.rendered.get(pattern)
            )
            if (impl == "rendered" and module is None) or (
                impl == "textbook" and pattern not in TEXTBOOK
            ):
                continue
            ours[(pattern, impl)] = _measure_op(
                run, pattern, impl, module, value, payload, sync_floor, sizes
            )
        if pattern == "cache-aside":
            for impl, module in run.impls.variants(pattern):
                if module is not None:
                    ours[("cache-aside @cache_aside", impl)] = _measure_decorator(
                        run, module, impl, value, payload, sync_floor, sizes
                    )
    libs = {"dogpile.cache (sync floor)": _measure_dogpile(run, value, sync_floor, sizes)}
    libs.update(asyncio.run(_measure_async_libs(run, value, payload, sizes)))
    raw.close()
    section.tables += _tables(run, ours, libs)
    section.targets += _targets(run, ours, libs)
    section.plot["throughput"] = {
        **{f"{p} ({i})": r.ratio for (p, i), r in ours.items() if i != "textbook"},
        **{name.split(" (")[0]: r.ratio for name, r in libs.items()},
    }
    return section


def _measure_op(
    run: Run,
    pattern: str,
    impl: str,
    module: Any,
    value: Any,
    payload: bytes,
    floor: Callable[[], object],
    sizes: _Sizes,
) -> _Result:
    run.log(f"{pattern} hit ({impl})")
    client = run.client()
    key = f"tp:{impl}:{uuid.uuid4().hex}"
    op = operations(pattern, impl, module, client, value, run.workdir)["hit"]
    op.prime(key)
    op.call(key)
    reps = [_paired(lambda: op.call(key), floor, sizes) for _ in range(run.reps)]
    cost = extra_cost(lambda: op.call(key), floor, run.server_counts, sizes.cost_calls)
    counter = RoundTrips()
    counted = operations(
        pattern, impl, module, counting_client(run.url, counter), value, run.workdir
    )["hit"]
    counted.prime(key + ":rt")
    rt = _rt_per_hit(lambda: counted.call(key + ":rt"), counter)
    client.close()
    alone = None
    if impl == "reference":

        def hit_on(recording: redis.Redis) -> Callable[[], object]:
            op = operations(pattern, impl, module, recording, value, run.workdir)["hit"]
            op.prime(key + ":alone")
            return lambda: op.call(key + ":alone")

        alone = _request_alone(run, hit_on, payload, floor, sizes)
    return _Result(reps, rt, cost, alone)


def _measure_decorator(
    run: Run,
    module: Any,
    impl: str,
    value: Any,
    payload: bytes,
    floor: Callable[[], object],
    sizes: _Sizes,
) -> _Result:
    run.log(f"cache-aside @cache_aside ({impl})")

    def decorated(client: redis.Redis) -> Callable[[str], Any]:
        manager = module.CacheManager(client)

        def find_user(user_id: str) -> Any:
            return value

        return manager.cache_aside(f"tp-dec-{impl}")(find_user)  # type: ignore[no-any-return]

    client = run.client()
    fn = decorated(client)
    key = uuid.uuid4().hex
    fn(key)
    reps = [_paired(lambda: fn(key), floor, sizes) for _ in range(run.reps)]
    cost = extra_cost(lambda: fn(key), floor, run.server_counts, sizes.cost_calls)
    counter = RoundTrips()
    counted = decorated(counting_client(run.url, counter))
    rt = _rt_per_hit(lambda: counted(key), counter)
    client.close()
    alone = None
    if impl == "reference":

        def hit_on(recording: redis.Redis) -> Callable[[], object]:
            fn = decorated(recording)
            return lambda: fn(key)

        alone = _request_alone(run, hit_on, payload, floor, sizes)
    return _Result(reps, rt, cost, alone)


def _measure_dogpile(run: Run, value: Any, floor: Callable[[], object], sizes: _Sizes) -> _Result:
    run.log("dogpile.cache")

    def find_user(user_id: str) -> Any:
        return value

    fn = dogpile_function(run.url, find_user, namespace="tp")
    key = uuid.uuid4().hex
    fn(key)
    reps = [_paired(lambda: fn(key), floor, sizes) for _ in range(run.reps)]
    cost = extra_cost(lambda: fn(key), floor, run.server_counts, sizes.cost_calls)
    counter = RoundTrips()
    counted = dogpile_function(
        run.url, find_user, pool=counting_pool(run.url, counter), namespace="tp-rt"
    )
    rt = _rt_per_hit(lambda: counted(key), counter)
    return _Result(reps, rt, cost)


async def _measure_async_libs(
    run: Run, value: Any, payload: bytes, sizes: _Sizes
) -> dict[str, _Result]:
    aclient = redis.asyncio.Redis.from_url(run.url)
    floor_key = f"afloor:{uuid.uuid4().hex}"
    await aclient.set(floor_key, payload)

    async def async_floor() -> object:
        return json.loads(await aclient.get(floor_key))  # type: ignore[arg-type]

    async def find_user(user_id: str) -> Any:
        return value

    results: dict[str, _Result] = {}
    makers: dict[str, Callable[..., Any]] = {
        "cashews @cache (async floor)": lambda fn, cc, tag: cashews_function(
            run.url, fn, connection_class=cc, prefix=tag
        ),
        "aiocache @cached (async floor)": lambda fn, cc, tag: aiocache_function(
            run.url, fn, connection_class=cc, namespace=tag
        ),
    }
    for name, make in makers.items():
        run.log(name.split(" (")[0])
        results[name] = await _measure_async_lib(run, make, find_user, async_floor, sizes)
    await aclient.aclose()
    return results


async def _measure_async_lib(
    run: Run,
    make: Callable[..., Any],
    find_user: Callable[[str], Awaitable[Any]],
    floor: Callable[[], Awaitable[object]],
    sizes: _Sizes,
) -> _Result:
    async def made(connection_class: type[Any] | None, tag: str) -> Any:
        fn = make(find_user, connection_class, tag)
        return await fn if asyncio.iscoroutine(fn) else fn

    fn = await made(None, "tp")
    key = uuid.uuid4().hex
    await fn(key)
    reps = [await _paired_async(lambda: fn(key), floor, sizes) for _ in range(run.reps)]
    cost = await _async_extra_cost(lambda: fn(key), floor, run, sizes.cost_calls)
    counter = RoundTrips()
    counted = await made(async_connection_class(counter), "tp-rt")
    await counted(key)
    before, _ = counter.snapshot()
    for _ in range(20):
        await counted(key)
    after, _ = counter.snapshot()
    return _Result(reps, (after - before) / 20, cost)


def _cost(cost: Cost) -> str:
    return f"{cost.client_cpu_us:+.0f} / {cost.server_cpu_us:+.0f}"


def _tables(
    run: Run, ours: dict[tuple[str, str], _Result], libs: dict[str, _Result]
) -> list[Table]:
    patterns = list(dict.fromkeys(p for p, _ in ours))
    table = Table(
        "Our hit paths: throughput / sync floor",
        [
            "hit path",
            "reference",
            "rendered",
            "textbook",
            "the hit's request alone (raw) / floor",
            "reference RT per hit",
            "reference CPU µs per hit beyond the floor: client / server",
            "reference calls/s (context)",
            "target",
        ],
    )
    for pattern in patterns:
        cells = []
        for impl in ("reference", "rendered", "textbook"):
            result = ours.get((pattern, impl))
            if result is not None:
                cells.append(result.cell())
            elif impl == "rendered":
                base = pattern.split(" ")[0]
                cells.append(run.impls.why_missing(base) if base in run.impls.missing else "–")
            else:
                cells.append("–")
        ref = ours[(pattern, "reference")]
        table.add(
            pattern,
            *cells,
            ref.alone.cell() if ref.alone else "–",
            f"{ref.round_trips:g}",
            _cost(ref.cost),
            ref.rate.text("{:,.0f}"),
            f"≥ {TARGET:.2f}×",
        )
    table.notes.append(
        "CPU µs per hit beyond the floor: this process's CPU time and the redis-server's "
        "(user + system, from INFO cpu) per call, minus the floor's, in adjacent runs "
        "(median of 5 pairs); it says where a ratio below 1 comes from. Ratios move with "
        "the machine's load (a busy machine stretches the extra server and client work), "
        "so compare columns within one run. The textbook's hit is measured where it "
        "differs from the floor."
    )
    table.notes.append(
        "The hit's request alone: the one request the reference's warm hit sends, "
        "recorded and replayed through redis-py with the same reply parser, plus "
        "json.loads of the value: the most that hit path can reach, since the server "
        "work and the client's packing of that request are part of it. Between it and "
        "the reference is what our Python code adds. Where the request is a GET it is "
        "the floor itself."
    )
    lib_table = Table(
        "Libraries: throughput / their own floor",
        [
            "library",
            "ratio to floor",
            "RT per hit",
            "CPU µs per hit beyond the floor: client / server",
            "calls/s (context)",
        ],
    )
    for name, result in libs.items():
        lib_table.add(
            name,
            result.cell(),
            f"{result.round_trips:g}",
            _cost(result.cost),
            result.rate.text("{:,.0f}"),
        )
    lib_table.notes.append(
        "dogpile.cache: region.cache_on_arguments() on dogpile.cache.redis (values "
        "pickled); cashews: @cache(ttl='1h') on its Redis backend; aiocache: "
        "@cached(ttl=3600, cache=Cache.REDIS, serializer=JsonSerializer()). "
        "Ours are compared with the sync floor, the asyncio libraries with the async one."
    )
    return [table, lib_table]


def _low(pattern: str, result: _Result, alone: _Alone | None) -> str:
    """A pattern below target, with what its request alone reaches (the reference's)."""
    text = f"{pattern} {result.ratio.median:.2f}×"
    if alone is not None and alone.ratio is not None:
        text += f" (its request alone {alone.ratio.median:.2f}×)"
    return text


def _targets(
    run: Run, ours: dict[tuple[str, str], _Result], libs: dict[str, _Result]
) -> list[Target]:
    targets = []
    best_lib = max(libs.items(), key=lambda kv: kv[1].ratio.median)
    for impl in ("reference", "rendered"):
        mine = {p: r for (p, i), r in ours.items() if i == impl}
        missing = [p for p in REDIS_PATTERNS if (p, impl) not in ours]
        if not mine:
            targets.append(
                Target("2. hit throughput", f"≥ {TARGET}× floor ({impl})", "not rendered yet", None)
            )
            continue
        low = [
            _low(p, r, ours[(p, "reference")].alone)
            for p, r in mine.items()
            if r.ratio.median < TARGET
        ]
        worst_name, worst = min(mine.items(), key=lambda kv: kv[1].ratio.median)
        figure = (
            f"below: {', '.join(low)}" if low else f"lowest {worst_name} {worst.ratio.median:.2f}×"
        )
        if missing:
            figure += f"; not rendered yet: {', '.join(missing)}"
        targets.append(
            Target(
                "2. hit throughput",
                f"every pattern's hit ≥ {TARGET:.2f}× the sync floor ({impl})",
                figure,
                not low,
            )
        )
        beaten = worst.ratio.median > best_lib[1].ratio.median
        targets.append(
            Target(
                "2. hit throughput",
                f"every hit path above every library's ratio ({impl})",
                f"lowest of ours {worst_name} {worst.ratio.median:.2f}× vs best library "
                f"{best_lib[0].split(' (')[0]} {best_lib[1].ratio.median:.2f}× ("
                + ", ".join(f"{n.split(' (')[0]} {r.ratio.median:.2f}×" for n, r in libs.items())
                + ")",
                beaten,
            )
        )
    return targets
