"""3. Stampede: 50 concurrent callers on a cold key, in one process and split across two.

Each run asks every contender for a fresh key with 50 callers released at one instant
(threads, or asyncio tasks for the asyncio libraries), the loader sleeping 50, 200 or
300 ms. Callers live in worker processes (bench/_stampede_worker.py) that stay up for
the whole measurement with their connections open; a run is 50 callers in one worker,
or 25 in each of two. Counted: loader calls, each caller's latency from its own call
to its return, how long after the release the last caller got to its call (the
harness's spread, as context), and round trips, attributed to the caller that sent them.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from .context import ROOT, Run
from .harness import Summary, count_text, percentile
from .report import Section, Table, Target

__all__ = ["measure"]

CALLERS = 50
LOADERS_MS = (50, 200, 300)
SLACK_MS = 20
#: What a waiter needs without polling: GET, the acquire script, SUBSCRIBE, the
#: re-check, plus one new connection's handshake (redis-py 8: HELLO and 3 CLIENT).
MAX_WAITER_RT = 8
CONTENDERS = (
    "reference",
    "rendered",
    "textbook",
    "dogpile (mutex)",
    "dogpile (distributed_lock)",
    "cashews (lock=True)",
    "cashews (@cache.early)",
    "aiocache (@cached_stampede)",
)


class _WorkerProcess:
    def __init__(self, run: Run) -> None:
        rendered = {}
        if "stampede-lock" in run.impls.rendered_files:
            rendered["rendered"] = str(run.impls.rendered_files["stampede-lock"])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench._stampede_worker", run.url, json.dumps(rendered)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            text=True,
        )
        self.receive()

    def send(self, request: dict[str, Any]) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"stampede worker exited with {self.proc.wait()}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        try:
            self.send({"op": "quit"})
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()


@dataclass
class _Runs:
    """The repetitions of one contender, one layout, one loader time."""

    loads: list[float] = field(default_factory=list)
    p50: list[float] = field(default_factory=list)
    p99: list[float] = field(default_factory=list)
    worst: list[float] = field(default_factory=list)
    last_start: list[float] = field(default_factory=list)  # ms after the release
    total_rt: list[float] = field(default_factory=list)
    waiter_rt: list[float] = field(default_factory=list)  # median over waiting callers
    waiter_rt_max: list[float] = field(default_factory=list)

    def add(self, replies: list[dict[str, Any]]) -> None:
        latencies = [1000 * x for r in replies for x in r["latencies"]]
        callers = [c for r in replies for c in r["callers"]]
        waiting = [rt for rt, loads in callers if loads == 0] or [0]
        self.loads.append(sum(r["loads"] for r in replies))
        self.p50.append(statistics.median(latencies))
        self.p99.append(percentile(latencies, 0.99))
        self.worst.append(max(latencies))
        self.last_start.append(max(1000 * x for r in replies for x in r["starts"]))
        self.total_rt.append(sum(rt for rt, _ in callers) + sum(r["unattributed"] for r in replies))
        self.waiter_rt.append(statistics.median(waiting))
        self.waiter_rt_max.append(max(waiting))


def _one(workers: list[_WorkerProcess], contender: str, loader_ms: int) -> list[dict[str, Any]]:
    key = f"stampede:{uuid.uuid4().hex}"
    start_at = time.monotonic() + 0.15  # time for every worker to start its callers
    share = CALLERS // len(workers)
    for worker in workers:
        worker.send(
            {
                "op": "run",
                "contender": contender,
                "key": key,
                "callers": share,
                "loader_ms": loader_ms,
                "start_at": start_at,
            }
        )
    return [worker.receive() for worker in workers]


def measure(run: Run) -> Section:
    contenders = [c for c in CONTENDERS if c != "rendered" or "stampede-lock" in run.impls.rendered]
    workers = [_WorkerProcess(run), _WorkerProcess(run)]
    results: dict[tuple[int, int, str], _Runs] = {}
    try:
        for worker in workers:
            for contender in contenders:
                worker.send({"op": "prepare", "contender": contender, "callers": CALLERS})
                worker.receive()
        for processes in (1, 2):
            for loader_ms in LOADERS_MS:
                run.log(f"{processes} process(es), loader {loader_ms} ms")
                for _ in range(run.reps):
                    # Contenders take turns within a repetition: drift hits all alike.
                    for contender in contenders:
                        runs = results.setdefault((processes, loader_ms, contender), _Runs())
                        runs.add(_one(workers[:processes], contender, loader_ms))
    finally:
        for worker in workers:
            worker.close()
    section = Section(
        "stampede",
        "3. Stampede: 50 concurrent callers on a cold key",
        f"Median (min–max) of {run.reps} repetitions. Latency is each caller's own, from "
        "its call to its return. All callers are released at one instant (one Event per "
        "process); *last call after the release* says how long the last of them took to "
        "reach its call, which is the harness's wake-up spread, not the cache's work. "
        "*RT per waiting caller*: round trips of a caller "
        "that did not run the loader (median / max over those callers); round trips of "
        "background threads count in *RT total* only. Targets for ours: 1 loader call, p99 "
        f"≤ loader + {SLACK_MS} ms, at most {MAX_WAITER_RT} round trips per waiting caller "
        "at every loader time (GET, lock attempt, SUBSCRIBE, re-check, and one connection "
        "handshake of 4: anything more is polling).",
    )
    for processes in (1, 2):
        section.tables.append(_table(run, results, processes, contenders))
    section.targets += _targets(run, results)
    section.plot["stampede"] = {
        (processes, loader_ms, contender): Summary.of(r.loads)
        for (processes, loader_ms, contender), r in results.items()
    }
    return section


def _table(
    run: Run, results: dict[tuple[int, int, str], _Runs], processes: int, contenders: list[str]
) -> Table:
    where = "one process (50 callers)" if processes == 1 else "two processes (25 callers each)"
    table = Table(f"Callers in {where}", ["loader", "figure", *contenders])
    for loader_ms in LOADERS_MS:
        runs = [results[(processes, loader_ms, c)] for c in contenders]
        table.add(
            f"{loader_ms} ms", "loader calls", *(count_text(Summary.of(r.loads)) for r in runs)
        )
        for label, attr in (
            ("p50 ms", "p50"),
            ("p99 ms", "p99"),
            ("max ms", "worst"),
            ("last call after the release, ms (context)", "last_start"),
        ):
            table.add(
                "",
                label,
                *(Summary.of(getattr(r, attr)).text("{:.0f}") for r in runs),
            )
        table.add(
            "",
            "RT per waiting caller (median / max)",
            *(
                f"{count_text(Summary.of(r.waiter_rt))} / {count_text(Summary.of(r.waiter_rt_max))}"
                for r in runs
            ),
        )
        table.add("", "RT total", *(count_text(Summary.of(r.total_rt)) for r in runs))
    if "rendered" not in contenders:
        table.notes.append(f"rendered: {run.impls.why_missing('stampede-lock')}")
    return table


def _targets(run: Run, results: dict[tuple[int, int, str], _Runs]) -> list[Target]:
    targets = []
    for impl in ("reference", "rendered"):
        if (1, LOADERS_MS[0], impl) not in results:
            targets.append(
                Target(
                    "3. stampede",
                    f"all targets ({impl})",
                    run.impls.why_missing("stampede-lock"),
                    None,
                )
            )
            continue
        mine = {(p, ms): r for (p, ms, c), r in results.items() if c == impl}
        loads = {k: Summary.of(r.loads) for k, r in mine.items()}
        targets.append(
            Target(
                "3. stampede",
                f"1 loader call per cold key, 1 and 2 processes, every loader time ({impl})",
                ", ".join(f"{p}p/{ms}ms {count_text(s)}" for (p, ms), s in sorted(loads.items())),
                all(s.high == 1 for s in loads.values()),
            )
        )
        p99 = {k: Summary.of(r.p99) for k, r in mine.items()}
        targets.append(
            Target(
                "3. stampede",
                f"p99 latency ≤ loader + {SLACK_MS} ms ({impl})",
                ", ".join(
                    f"{p}p/{ms}ms {s.median:.0f} ms (+{s.median - ms:.0f})"
                    for (p, ms), s in sorted(p99.items())
                ),
                all(s.median <= ms + SLACK_MS for (_, ms), s in p99.items()),
            )
        )
        worst = {k: Summary.of(r.waiter_rt_max).median for k, r in mine.items()}
        targets.append(
            Target(
                "3. stampede",
                f"round trips per waiting caller bounded (max ≤ {MAX_WAITER_RT} at every "
                f"loader time: no polling) ({impl})",
                ", ".join(f"{p}p/{ms}ms {v:g}" for (p, ms), v in sorted(worst.items())),
                all(v <= MAX_WAITER_RT for v in worst.values()),
            )
        )
    return targets
