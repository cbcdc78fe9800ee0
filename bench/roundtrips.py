"""1. Redis round trips per call, per pattern, hit and miss (and the pattern's writes).

Counted client-side (sends on a counting connection) and server-side (requests from
clients in a MONITOR session, and ``INFO commandstats`` deltas, which also count the
commands a script runs). Each repetition primes fresh keys outside the window, then
makes ``CALLS`` calls inside it; the figure is per call.
"""

from __future__ import annotations

import uuid
from collections import Counter

from .context import Run
from .harness import RoundTrips, Summary, breakdown, count_text, counting_client
from .implementations import REDIS_PATTERNS
from .patterns import Operation, json_value, operations
from .report import Section, Table, Target

__all__ = ["measure"]

CALLS = 5
IMPLS = ("reference", "rendered", "textbook")


def _count(run: Run, counter: RoundTrips, op: Operation, label: str) -> tuple[float, float, str]:
    """One repetition: (client RT per call, server requests per call, commandstats per call)."""
    keys = [f"{label}:{uuid.uuid4().hex}" for _ in range(CALLS)]
    for key in keys:
        op.prime(key)
    before, _ = counter.snapshot()
    with run.server_counts.window(monitor=True) as view:
        for key in keys:
            op.call(key)
    after, _ = counter.snapshot()
    assert view.requests is not None
    return (after - before) / CALLS, view.requests / CALLS, breakdown(view.commands, CALLS)


def measure(run: Run) -> Section:
    value = json_value()
    section = Section(
        "roundtrips",
        "1. Redis round trips per call",
        "Round trips per call with warm connections and loaded scripts, median (min–max) "
        f"of {run.reps} repetitions of {CALLS} calls on fresh keys. *client*: requests "
        "written by redis-py (a pipeline is one); *server*: requests the server received "
        "from clients (MONITOR); *commandstats*: every command the server ran per call, "
        "including those inside Lua scripts. *textbook*: the design page's recipe "
        "(bench/textbook.py).",
    )
    table = Table(
        "Round trips per call",
        [
            "pattern",
            "call",
            "reference: client",
            "reference: server",
            "reference: commandstats per call",
            "rendered: client / server",
            "textbook: client / server",
            "target",
        ],
    )
    measured: dict[tuple[str, str, str], float] = {}
    mismatches: list[str] = []
    for pattern in REDIS_PATTERNS:
        counter = RoundTrips()
        client = counting_client(run.url, counter)
        per_impl = {}
        for impl in IMPLS:
            module = (
                run.impls.reference[pattern]
                if impl == "reference"
                else run.impls.rendered.get(pattern)
            )
            if impl == "rendered" and module is None:
                continue
            per_impl[impl] = operations(pattern, impl, module, client, value, run.workdir)
        names = list(dict.fromkeys(n for ops in per_impl.values() if ops for n in ops))
        for name in names:
            cells: dict[str, tuple[Summary, Summary, Counter[str]]] = {}
            for impl, ops in per_impl.items():
                if not ops or name not in ops:
                    continue
                op = ops[name]
                label = f"{impl}:{pattern}:{name}"
                _count(run, counter, op, label)  # warm-up: scripts loaded, connections open
                reps = [_count(run, counter, op, label) for _ in range(run.reps)]
                client_rt = Summary.of(r[0] for r in reps)
                server_rt = Summary.of(r[1] for r in reps)
                stats = Counter(r[2] for r in reps)
                cells[impl] = (client_rt, server_rt, stats)
                measured[(pattern, name, impl)] = client_rt.median
                if client_rt != server_rt:
                    mismatches.append(f"{impl} {pattern} {name}")
            table.add(
                pattern,
                name,
                _client(cells, "reference"),
                count_text(cells["reference"][1]) if "reference" in cells else "–",
                cells["reference"][2].most_common(1)[0][0] if "reference" in cells else "–",
                _rendered(run, pattern, cells),
                _both(cells, "textbook"),
                _target(pattern, name),
            )
        client.close()
    if mismatches:
        table.notes.append(
            "Client and server differ where the client pipelines several commands into "
            "one round trip: " + ", ".join(mismatches) + "."
        )
    table.notes.append(
        "http-cache-headers sends no Redis commands. The textbook write-behind has no read "
        "and queues writes in process memory, so it has no row here."
    )
    section.tables.append(table)
    section.targets += _targets(run, measured)
    return section


def _client(cells: dict[str, tuple[Summary, Summary, Counter[str]]], impl: str) -> str:
    return count_text(cells[impl][0]) if impl in cells else "–"


def _rendered(
    run: Run, pattern: str, cells: dict[str, tuple[Summary, Summary, Counter[str]]]
) -> str:
    if pattern not in run.impls.rendered:
        return run.impls.why_missing(pattern)
    return _both(cells, "rendered")


def _both(cells: dict[str, tuple[Summary, Summary, Counter[str]]], impl: str) -> str:
    if impl not in cells:
        return "–"
    client_rt, server_rt, _ = cells[impl]
    return f"{count_text(client_rt)} / {count_text(server_rt)}"


def _target(pattern: str, name: str) -> str:
    if name == "hit":
        return "exactly 1"
    if name == "miss" and pattern == "cache-aside":
        return "≤ 2"
    return ""


def _targets(run: Run, measured: dict[tuple[str, str, str], float]) -> list[Target]:
    targets = []
    for impl in ("reference", "rendered"):
        hits = {p: measured.get((p, "hit", impl)) for p in REDIS_PATTERNS}
        have = {p: v for p, v in hits.items() if v is not None}
        figure = ", ".join(f"{p} {v:g}" for p, v in have.items())
        missing = [p for p in REDIS_PATTERNS if p not in have]
        if missing:
            figure += f"; not rendered yet: {', '.join(missing)}"
        targets.append(
            Target(
                "1. round trips",
                f"hit = exactly 1 round trip, every pattern ({impl})",
                figure,
                all(v == 1 for v in have.values())
                if not missing
                else (False if any(v != 1 for v in have.values()) else None),
            )
        )
        miss = measured.get(("cache-aside", "miss", impl))
        targets.append(
            Target(
                "1. round trips",
                f"cache-aside miss ≤ 2 round trips, lease-guarded fill included ({impl})",
                "not rendered yet" if miss is None else f"{miss:g}",
                None if miss is None else miss <= 2,
            )
        )
    differ = [
        f"{p} {n}: reference {v:g}, rendered {measured[(p, n, 'rendered')]:g}"
        for (p, n, impl), v in measured.items()
        if impl == "reference"
        and (p, n, "rendered") in measured
        and measured[(p, n, "rendered")] != v
    ]
    compared = sum(1 for (_, _, impl) in measured if impl == "rendered")
    targets.append(
        Target(
            "1. round trips",
            "rendered Python (defaults) = reference, every call",
            "; ".join(differ) or f"equal on all {compared} calls of the rendered patterns",
            not differ if compared else None,
        )
    )
    return targets
