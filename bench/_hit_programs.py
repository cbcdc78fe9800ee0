"""What sections 8 and 9 share: a rendered language's bench program, driven over JSON
lines, its hits counted and timed against its own floor, and the section's table and
targets.

``typescript_hits.py`` and ``go_hits.py`` describe their section (a :class:`Language`),
find their toolchain, render, lay out and build one program, and say how to start and
greet it (a :class:`Program` subclass); the rest is here: which patterns have a template
and an adapter, rendering one by one, running the program, the table and the targets.
The program answers one JSON line per request with one line, ``{"ok": ...}`` or
``{"error": "..."}``:

- ``setup`` a pattern's hit path on a fresh key (language-specific fields besides);
- ``hits`` ``n`` hits and nothing else, ``{"loads"}``;
- ``paired`` ``rounds`` pairs of ``chunk`` calls of the floor and of the hit,
  ``{"floor": [s, ...], "hit": [s, ...], "loads"}``;
- ``bye``, and it exits.

*Round trips*: a MONITOR window opens around exactly one ``hits`` request for ``HITS``
hits, so the server's count of client requests is the hits' and nothing else's.
*Throughput*: the program times the chunks, only their times cross the pipe, and the
ratios are taken here with section 2's method (see ``throughput._paired``).
"""

from __future__ import annotations

import contextlib
import json
import select
import statistics
import subprocess
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from templategen.engine import RenderedFile, render
from templategen.errors import TemplategenError
from templategen.registry import Registry

from .context import Run
from .harness import Summary, breakdown, count_text
from .implementations import REDIS_PATTERNS
from .patterns import json_value
from .report import Section, Table, Target

__all__ = [
    "HITS",
    "TARGET",
    "Language",
    "Measured",
    "PatternFailed",
    "Program",
    "Unmeasured",
]

TARGET = 0.95
#: Hits inside each MONITOR window: enough that one stray request would show as a
#: fraction, few enough that the window's monitor stream stays short.
HITS = 20
#: How long one request may take before the program is taken for hung: a setup or a
#: repetition takes well under a second.
REPLY_TIMEOUT = 60.0


class Sizes:
    # section 2's chunks, so that the sections' ratios are taken alike.
    def __init__(self, quick: bool) -> None:
        self.chunk = 50
        self.rounds = 8 if quick else 40


class Unmeasured(Exception):
    """The section cannot be measured; ``met`` is None (the machine) or False (the code)."""

    def __init__(self, reason: str, met: bool | None) -> None:
        super().__init__(reason)
        self.met = met


class PatternFailed(Exception):
    """The program answered a request for one pattern with an error."""


@dataclass(frozen=True)
class Result:
    ratio: Summary
    rate: Summary
    round_trips: Summary
    commands: str
    loads: int


@dataclass(frozen=True)
class Measured:
    """What the program measured: a result or a failure per pattern, and its runtime."""

    results: dict[str, Result]
    failed: dict[str, str]
    runtime: str


@dataclass(frozen=True)
class Language:
    """One language's section: its names and texts, and what it does with them."""

    #: ``go``: the section's key, and the language's in the registry.
    key: str
    #: ``Go``: in the titles, the targets, the log and the plot.
    name: str
    #: ``9. Rendered Go against go-redis``
    title: str
    #: ``9. rendered Go``: the targets' measurement.
    measurement: str
    #: What the floor is, for the about text: the client and its read and decode.
    floor: str
    #: The keys' prefix in Redis: ``<prefix>:<pattern>:<uuid>`` and ``<prefix>:floor:<uuid>``.
    key_prefix: str
    #: The program's sources in bench/, the adapters among them.
    source: Path

    @property
    def ratio_target(self) -> str:
        return f"every pattern's hit ≥ {TARGET:.2f}× its own floor (rendered {self.name})"

    @property
    def rt_target(self) -> str:
        return f"hit = exactly 1 round trip (rendered {self.name})"

    def section(self, run: Run, built: str) -> Section:
        """The section, its about text opened by ``built``: how the program was made."""
        sizes = Sizes(run.quick)
        return Section(
            self.key,
            self.title,
            f"{built} *ratio to floor*: hit calls per second / the floor's, median "
            f"(min–max) of {run.reps} repetitions; each repetition alternates "
            f"{sizes.rounds} chunks of {sizes.chunk} calls of the hit and of its floor "
            f"({self.floor}) and takes the median ratio of adjacent chunks, as section 2. "
            f"*RT per hit*: requests the server received from clients (MONITOR) over {HITS} "
            "hits per repetition; *commands per hit*: every command it ran (commandstats), "
            f"those inside Lua included. Targets: ≥ {TARGET:.2f}× and exactly 1 round trip, "
            "every pattern.",
        )

    def buildable(
        self, registry: Registry, patterns: Iterable[str], adapter: Callable[[str], Path]
    ) -> tuple[list[str], dict[str, str]]:
        """The patterns with a template in this language and a bench adapter (its file
        is ``adapter(pattern)``), and why not the others."""
        wanted: list[str] = []
        missing: dict[str, str] = {}
        for pattern in patterns:
            if self.key not in registry.get(pattern).languages:
                missing[pattern] = f"no {self.name} template"
            elif not adapter(pattern).is_file():
                missing[pattern] = f"no bench adapter ({adapter(pattern).relative_to(self.source)})"
            else:
                wanted.append(pattern)
        return wanted, missing

    def render_each(
        self, registry: Registry, patterns: Iterable[str]
    ) -> tuple[dict[str, RenderedFile], dict[str, str]]:
        """Each pattern's default rendering, one by one; each failure's message."""
        rendered: dict[str, RenderedFile] = {}
        failed: dict[str, str] = {}
        for pattern in patterns:
            try:
                rendered[pattern] = render(pattern, self.key, registry=registry)
            except TemplategenError as exc:
                failed[pattern] = str(exc)
        return rendered, failed

    def unmeasured(self, section: Section, reason: str, met: bool | None) -> Section:
        """``section`` with both targets not measured, for ``reason``."""
        section.about += f" Not measured in this run: {reason}"
        section.targets += self.both_targets(reason, met)
        return section

    def measure(
        self,
        run: Run,
        program: Program,
        patterns: Iterable[str],
        failed: dict[str, str] | None = None,
    ) -> Measured:
        """Each of ``patterns`` measured by ``program``, which is closed at the end;
        ``failed``: the patterns that failed before (their rendering), kept."""
        patterns = list(patterns)
        sizes = Sizes(run.quick)
        value = json_value()
        floor_key = f"{self.key_prefix}:floor:{uuid.uuid4().hex}"
        results: dict[str, Result] = {}
        failed = dict(failed or {})
        runtime = f"{program.runtime} (no answer)"
        try:
            runtime = program.greet(run, value, floor_key)
            setup = program.setup_fields(value, floor_key)
            for pattern in patterns:
                try:
                    results[pattern] = self._measure_pattern(run, program, pattern, sizes, setup)
                except PatternFailed as exc:
                    failed[pattern] = str(exc)
        except (RuntimeError, PatternFailed) as exc:
            # The program is gone or could not connect: the patterns it had not finished
            # get no figure.
            for pattern in patterns:
                if pattern not in results:
                    failed.setdefault(pattern, str(exc))
        finally:
            program.close()
            run.server_counts.client.delete(floor_key)
        return Measured(results, failed, runtime)

    def finish(
        self, section: Section, measured: Measured, missing: dict[str, str], notes: list[str]
    ) -> Section:
        """``section`` with its table (``notes`` after the loads'), targets and plot;
        ``missing``: the patterns not measurable here (no template, no adapter), with why."""
        section.tables.append(_table(self, measured, missing, notes))
        section.targets += _targets(self, measured, missing)
        section.plot[f"throughput ({self.name})"] = {
            f"{p} ({self.name})": r.ratio for p, r in measured.results.items()
        }
        return section

    def both_targets(self, figure: str, met: bool | None) -> list[Target]:
        """Both targets, with one figure and one verdict."""
        return [
            Target(self.measurement, self.ratio_target, figure, met),
            Target(self.measurement, self.rt_target, figure, met),
        ]

    def _measure_pattern(
        self, run: Run, program: Program, pattern: str, sizes: Sizes, setup: dict[str, object]
    ) -> Result:
        run.log(f"{pattern} hit (rendered {self.name})")
        key = f"{self.key_prefix}:{pattern}:{uuid.uuid4().hex}"
        program.request("setup", pattern=pattern, key=key, **setup)
        loads = 0
        round_trips: list[float] = []
        commands: Counter[str] = Counter()
        for _ in range(run.reps):
            with run.server_counts.window(monitor=True) as view:
                reply = program.request("hits", n=HITS)
            assert view.requests is not None
            round_trips.append(view.requests / HITS)
            commands[breakdown(view.commands, HITS)] += 1
            loads += int(reply["loads"])
        ratios, rates = [], []
        for _ in range(run.reps):
            reply = program.request("paired", rounds=sizes.rounds, chunk=sizes.chunk)
            floor, hit = reply["floor"], reply["hit"]
            # As throughput._paired: floor time / hit time per adjacent pair, and the median.
            ratios.append(statistics.median(f / h for f, h in zip(floor, hit, strict=True)))
            rates.append(sizes.chunk * len(hit) / sum(hit))
            loads += int(reply["loads"])
        return Result(
            Summary.of(ratios),
            Summary.of(rates),
            Summary.of(round_trips),
            # The commonest breakdown; they differ only if some repetition was not all hits.
            commands.most_common(1)[0][0],
            loads,
        )


# -- the running program ------------------------------------------------------------------


class Program:
    """A built bench program, running: one JSON line per request, one per reply.

    A subclass says how the program is greeted (it connects, and says what runs it) and
    what else its ``setup`` needs; ``runtime`` names it in messages (``the Go program``).
    """

    runtime = "?"

    def __init__(self, command: list[str], folder: Path) -> None:
        # stderr goes to a file: a pipe nobody reads could fill up and stall the program.
        self._stderr_path = folder / "stderr.log"
        self._stderr: IO[bytes] = self._stderr_path.open("wb")
        self._proc = subprocess.Popen(
            command,
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )

    def greet(self, run: Run, value: Any, floor_key: str) -> str:
        """Connect to the run's server with ``floor_key`` holding ``value`` as the floor;
        what runs the program (its version), for the table's notes."""
        raise NotImplementedError

    def setup_fields(self, value: Any, floor_key: str) -> dict[str, object]:
        """The ``setup`` request's fields beyond the pattern and its key."""
        return {}

    def request(self, op: str, **fields: object) -> Any:
        """The reply's ``ok``; PatternFailed if the program answered with an error."""
        assert self._proc.stdin is not None and self._proc.stdout is not None
        try:
            self._proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            raise RuntimeError(self._died(op)) from None
        # The program writes one line per request and nothing else, so the reader's
        # buffer is empty here and select on the pipe says whether a reply came.
        ready, _, _ = select.select([self._proc.stdout], [], [], REPLY_TIMEOUT)
        if not ready:
            self._proc.kill()
            raise RuntimeError(
                f"the {self.runtime} program gave no reply to {op!r} in {REPLY_TIMEOUT:.0f} s"
            )
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(self._died(op))
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise PatternFailed(str(reply["error"]))
        return reply["ok"]

    def _died(self, op: str) -> str:
        code = self._proc.wait()
        self._stderr.flush()
        tail = self._stderr_path.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
        return (
            f"the {self.runtime} program exited ({code}) during {op!r}: "
            f"{tail or 'nothing on stderr'}"
        )

    def close(self) -> None:
        try:
            if self._proc.poll() is None:
                self.request("bye")
            self._proc.wait(timeout=10)
        except (RuntimeError, PatternFailed, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait()
        finally:
            for pipe in (self._proc.stdin, self._proc.stdout):
                # A request written to a program that died is still in stdin's buffer,
                # and closing flushes it into the broken pipe.
                with contextlib.suppress(OSError):
                    if pipe is not None:
                        pipe.close()
            self._stderr.close()


# -- the table and the targets ------------------------------------------------------------


def _table(
    language: Language, measured: Measured, missing: dict[str, str], notes: list[str]
) -> Table:
    table = Table(
        f"Rendered {language.name} hit paths: throughput / their own floor, and round trips",
        [
            "pattern",
            "ratio to floor",
            "RT per hit",
            "commands per hit",
            "calls/s (context)",
            "target",
        ],
    )
    for pattern in REDIS_PATTERNS:
        result = measured.results.get(pattern)
        if result is None:
            why = measured.failed.get(pattern) or missing.get(pattern, "not measured")
            table.add(pattern, why if pattern in missing else f"failed: {why}", "–", "–", "–", "")
            continue
        table.add(
            pattern,
            result.ratio.text("{:.2f}", "×"),
            count_text(result.round_trips),
            result.commands,
            result.rate.text("{:,.0f}"),
            f"≥ {TARGET:.2f}×, exactly 1",
        )
    loaded = [f"{p} {r.loads}" for p, r in measured.results.items() if r.loads]
    table.notes.append(
        "Loader calls and store reads during the counted and timed hits: "
        + (
            f"{', '.join(loaded)}, so those figures are not all hits"
            if loaded
            else "none, every call was a hit"
        )
        + "."
    )
    table.notes += notes
    return table


def _count(summary: Summary) -> str:
    """A count that was the same in every repetition as itself, else with its range."""
    return f"{summary.median:g}" if summary.low == summary.high else count_text(summary)


def _targets(language: Language, measured: Measured, missing: dict[str, str]) -> list[Target]:
    results = measured.results
    # A hit that called a loader or read the store was a miss: its figures say nothing
    # about the hit path, so they cannot meet a target.
    loaded = [p for p, r in results.items() if r.loads]
    unmeasurable = [f"{p} ({missing[p]})" for p in missing]
    broken = [f"{p} failed" for p in measured.failed] + [
        f"{p} loaded during its hits" for p in loaded
    ]

    def met(good: bool) -> bool | None:
        if broken or not good:
            return False
        return None if unmeasurable else True

    def suffix() -> str:
        extra = broken + ([f"not measured: {', '.join(unmeasurable)}"] if unmeasurable else [])
        return "; " + "; ".join(extra) if extra else ""

    if not results:
        reason = suffix().removeprefix("; ")
        return language.both_targets(reason, False if broken else None)
    low = [f"{p} {r.ratio.median:.2f}×" for p, r in results.items() if r.ratio.median < TARGET]
    worst, lowest = min(results.items(), key=lambda kv: kv[1].ratio.median)
    ratio_figure = (
        f"below: {', '.join(low)}" if low else f"lowest {worst} {lowest.ratio.median:.2f}×"
    )
    # Exactly 1 in every repetition, not only in the median one.
    exact = all(r.round_trips.low == r.round_trips.high == 1 for r in results.values())
    rt_figure = ", ".join(f"{p} {_count(r.round_trips)}" for p, r in results.items())
    return [
        Target(language.measurement, language.ratio_target, ratio_figure + suffix(), met(not low)),
        Target(language.measurement, language.rt_target, rt_figure + suffix(), met(exact)),
    ]
