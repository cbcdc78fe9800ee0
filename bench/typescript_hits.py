"""8. Rendered TypeScript against node-redis: hit throughput as a ratio to its own floor,
and round trips per hit.

Every pattern that talks to Redis is rendered for TypeScript with its default options,
exactly as a user gets it (``templategen.engine.render_many``: ``render`` of each, with
the prettier and tsc checks run as one batch), and driven through its own API by a small
program in ``bench/typescript/``: ``hits.ts`` speaks JSON lines (the protocol is at its
top) and ``adapters/<pattern>.ts`` maps the pattern's hit onto the rendered module. One
tsc run of the pinned toolchain (templategen/drivers/typescript) compiles it all::

    <workdir>/typescript-hits/
        rendered/<file>.ts            each rendering, under its output/typescript/ name
        hits.ts, hit-path.ts          copied from bench/typescript/
        adapters/<pattern>.ts         of the patterns that rendered
        tsconfig.json                 extends the harness's strict tsconfig.json
        package.json, node_modules    ES modules; a link to the harness's node_modules
        out/hits.js                   the program

The program then runs as one node process for the whole section:

- *round trips*: a MONITOR window opens around exactly one request for ``HITS`` hits, so
  the server's count of client requests is the hits' and nothing else's;
- *throughput*: the program times alternating chunks of the pattern's hit and of its
  floor, the same node-redis client doing ``GET`` and ``JSON.parse`` of the same 1 KB
  value, with section 2's method (see ``throughput._paired``); only the chunk times come
  back over the pipe, and the ratios are taken here.
"""

from __future__ import annotations

import contextlib
import json
import select
import shutil
import statistics
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from templategen.engine import RenderedFile, render, render_many
from templategen.errors import TemplategenError, ToolMissingError
from templategen.formatting import TYPESCRIPT_HARNESS, typescript_toolchain, typescript_workspace
from templategen.registry import Registry

from .context import Run
from .harness import Summary, breakdown, count_text
from .implementations import REDIS_PATTERNS
from .patterns import json_value
from .report import Section, Table, Target

__all__ = ["measure"]

TARGET = 0.95
#: Hits inside each MONITOR window: enough that one stray request would show as a
#: fraction, few enough that the window's monitor stream stays short.
HITS = 20
#: Calls of the hit and of the floor before anything is timed: V8 optimises a function
#: only once it has run a while, and the first chunks would time its interpreter.
WARMUP = 500
#: The program's TypeScript sources; ``adapters/<pattern>.ts`` is a pattern's adapter.
SOURCE = Path(__file__).resolve().parent / "typescript"
#: How long one request may take before the program is taken for hung: a setup or a
#: repetition takes well under a second.
REPLY_TIMEOUT = 60.0
MEASUREMENT = "8. rendered TypeScript"
RATIO_TARGET = f"every pattern's hit ≥ {TARGET:.2f}× its own floor (rendered TypeScript)"
RT_TARGET = "hit = exactly 1 round trip (rendered TypeScript)"


class _Sizes:
    # section 2's chunks, so that the two sections' ratios are taken alike.
    def __init__(self, quick: bool) -> None:
        self.chunk = 50
        self.rounds = 8 if quick else 40


class _Unmeasured(Exception):
    """The section cannot be measured; ``met`` is None (the machine) or False (the code)."""

    def __init__(self, reason: str, met: bool | None) -> None:
        super().__init__(reason)
        self.met = met


class _PatternFailed(Exception):
    """The program answered a request for one pattern with an error."""


@dataclass(frozen=True)
class _Result:
    ratio: Summary
    rate: Summary
    round_trips: Summary
    commands: str
    loads: int


# -- the build ----------------------------------------------------------------------------


def _adapter(pattern: str) -> Path:
    return SOURCE / "adapters" / f"{pattern}.ts"


def _render(
    patterns: tuple[str, ...],
) -> tuple[dict[str, RenderedFile], dict[str, str], dict[str, str]]:
    """The default rendering of each pattern that can be measured here; the patterns
    that cannot (no template, no adapter) and those whose rendering failed, with why."""
    registry = Registry()
    wanted: list[str] = []
    missing: dict[str, str] = {}
    for pattern in patterns:
        if "typescript" not in registry.get(pattern).languages:
            missing[pattern] = "no TypeScript template"
        elif not _adapter(pattern).is_file():
            missing[pattern] = f"no bench adapter (adapters/{pattern}.ts)"
        else:
            wanted.append(pattern)
    try:
        files = render_many([(p, "typescript", None) for p in wanted], registry=registry)
    except TemplategenError:
        # The batch stops at its first failure: one by one, every other pattern still
        # gets its figure and each failure its own message.
        pass
    else:
        return dict(zip(wanted, files, strict=True)), missing, {}
    rendered: dict[str, RenderedFile] = {}
    failed: dict[str, str] = {}
    for pattern in wanted:
        try:
            rendered[pattern] = render(pattern, "typescript", registry=registry)
        except TemplategenError as exc:
            failed[pattern] = f"render: {exc}"
    return rendered, missing, failed


def _lay_out(folder: Path, rendered: dict[str, RenderedFile], modules: Path) -> None:
    """The program, the adapters of the rendered patterns only, and each rendering."""
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "rendered").mkdir(parents=True)
    (folder / "adapters").mkdir()
    for name in ("hits.ts", "hit-path.ts"):
        shutil.copyfile(SOURCE / name, folder / name)
    for pattern, file in rendered.items():
        shutil.copyfile(_adapter(pattern), folder / "adapters" / _adapter(pattern).name)
        # typescript/cacheAside.ts -> rendered/cacheAside.ts, where the adapter imports it.
        (folder / "rendered" / file.path.name).write_text(file.text, encoding="utf-8")
    typescript_workspace(folder, modules)
    config = {
        "extends": str(TYPESCRIPT_HARNESS / "tsconfig.json"),
        "compilerOptions": {"rootDir": ".", "outDir": "out"},
        # hits.ts imports its adapters by pattern name at run time, which tsc cannot
        # follow: they are listed, and each brings its rendered module by its import.
        "files": ["hits.ts", *(f"adapters/{p}.ts" for p in rendered)],
        "include": [],
    }
    (folder / "tsconfig.json").write_text(json.dumps(config), encoding="utf-8")


def _compile(node: str, modules: Path, folder: Path) -> float:
    """One tsc run over ``folder``; its seconds."""
    started = time.perf_counter()
    tsc = subprocess.run(
        [node, str(modules / "typescript" / "bin" / "tsc"), "-p", ".", "--pretty", "false"],
        cwd=folder,
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )
    if tsc.returncode != 0:
        # Each rendering passed the same strict check alone, so this is the bench's
        # adapters disagreeing with a rendered API: the code, not the machine.
        raise _Unmeasured(
            "the bench program and the rendered modules do not compile together: "
            + (tsc.stdout + tsc.stderr).strip(),
            False,
        )
    return time.perf_counter() - started


def _package_version(modules: Path, package: str) -> str:
    try:
        manifest = json.loads((modules / package / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "?"
    return str(manifest.get("version", "?"))


# -- the running program ------------------------------------------------------------------


class _NodeProgram:
    """The compiled program, running: one JSON line per request, one per reply."""

    def __init__(self, node: str, folder: Path) -> None:
        # stderr goes to a file: a pipe nobody reads could fill up and stall node.
        self._stderr_path = folder / "stderr.log"
        self._stderr: IO[bytes] = self._stderr_path.open("wb")
        # --expose-gc: the program collects before each repetition, as section 2 does.
        self._proc = subprocess.Popen(
            [node, "--expose-gc", str(folder / "out" / "hits.js")],
            cwd=folder,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )

    def request(self, op: str, **fields: object) -> Any:
        """The reply's ``ok``; _PatternFailed if the program answered with an error."""
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
            raise RuntimeError(f"the node program gave no reply to {op!r} in {REPLY_TIMEOUT:.0f} s")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(self._died(op))
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise _PatternFailed(str(reply["error"]))
        return reply["ok"]

    def _died(self, op: str) -> str:
        code = self._proc.wait()
        self._stderr.flush()
        tail = self._stderr_path.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
        return f"the node program exited ({code}) during {op!r}: {tail or 'nothing on stderr'}"

    def close(self) -> None:
        try:
            if self._proc.poll() is None:
                self.request("bye")
            self._proc.wait(timeout=10)
        except (RuntimeError, _PatternFailed, subprocess.TimeoutExpired):
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


# -- the measurement ----------------------------------------------------------------------


def _measure_pattern(run: Run, program: _NodeProgram, pattern: str, sizes: _Sizes) -> _Result:
    run.log(f"{pattern} hit (rendered TypeScript)")
    key = f"tp:typescript:{uuid.uuid4().hex}"
    program.request("setup", pattern=pattern, key=key, warmup=WARMUP)
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
    return _Result(
        Summary.of(ratios),
        Summary.of(rates),
        Summary.of(round_trips),
        # The commonest breakdown; they differ only if some repetition was not all hits.
        commands.most_common(1)[0][0],
        loads,
    )


def measure(run: Run) -> Section:
    sizes = _Sizes(run.quick)
    section = Section(
        "typescript",
        "8. Rendered TypeScript against node-redis",
        "Each pattern's TypeScript rendering with the default options, compiled with one "
        "tsc run of the pinned toolchain and driven as one node process (bench/typescript/). "
        "*ratio to floor*: hit calls per second / the floor's, median (min–max) of "
        f"{run.reps} repetitions; each repetition alternates {sizes.rounds} chunks of "
        f"{sizes.chunk} calls of the hit and of its floor (the same node-redis client: "
        "`GET` and `JSON.parse` of the same 1 KB JSON value) and takes the median ratio of "
        f"adjacent chunks, as section 2. *RT per hit*: requests the server received from "
        f"clients (MONITOR) over {HITS} hits per repetition; *commands per hit*: every "
        "command it ran (commandstats), those inside Lua included. Targets: ≥ "
        f"{TARGET:.2f}× and exactly 1 round trip, every pattern.",
    )
    try:
        node, modules = typescript_toolchain()
    except ToolMissingError as exc:
        return _unmeasured(section, str(exc), None)
    started = time.perf_counter()
    rendered, missing, failed = _render(REDIS_PATTERNS)
    render_seconds = time.perf_counter() - started
    if not rendered:
        reasons = "; ".join(f"{p}: {why}" for p, why in {**missing, **failed}.items())
        # A template that fails to render is the code's fault, not the machine's.
        return _unmeasured(section, reasons, False if failed else None)
    folder = run.workdir / "typescript-hits"
    _lay_out(folder, rendered, modules)
    run.log(f"tsc of the bench program and {len(rendered)} rendered modules")
    try:
        compile_seconds = _compile(node, modules, folder)
    except _Unmeasured as exc:
        return _unmeasured(section, str(exc), exc.met)

    value = json_value()
    floor_key = f"floor:{uuid.uuid4().hex}"
    # The floor's value as section 2 writes its own: compact JSON, the very bytes
    # JSON.stringify makes of the same value.
    run.server_counts.client.set(floor_key, json.dumps(value, separators=(",", ":")))
    results: dict[str, _Result] = {}
    runtime = "node (no answer)"
    program = _NodeProgram(node, folder)
    try:
        hello = program.request("connect", url=run.url, value=value, floor_key=floor_key)
        runtime = f"node {hello['node']}"
        for pattern in rendered:
            try:
                results[pattern] = _measure_pattern(run, program, pattern, sizes)
            except _PatternFailed as exc:
                failed[pattern] = str(exc)
    except (RuntimeError, _PatternFailed) as exc:
        # The program is gone or could not connect: the patterns it had not finished
        # get no figure.
        for pattern in rendered:
            if pattern not in results:
                failed.setdefault(pattern, str(exc))
    finally:
        program.close()
        run.server_counts.client.delete(floor_key)

    versions = (
        f"{runtime}, node-redis {_package_version(modules, 'redis')}, "
        f"tsc {_package_version(modules, 'typescript')}"
    )
    section.tables.append(
        _table(results, failed, missing, versions, len(rendered), render_seconds, compile_seconds)
    )
    section.targets += _targets(results, failed, missing)
    section.plot["throughput (TypeScript)"] = {
        f"{p} (TypeScript)": r.ratio for p, r in results.items()
    }
    return section


def _unmeasured(section: Section, reason: str, met: bool | None) -> Section:
    section.about += f" Not measured in this run: {reason}"
    section.targets += [
        Target(MEASUREMENT, RATIO_TARGET, reason, met),
        Target(MEASUREMENT, RT_TARGET, reason, met),
    ]
    return section


def _table(
    results: dict[str, _Result],
    failed: dict[str, str],
    missing: dict[str, str],
    versions: str,
    built: int,
    render_seconds: float,
    compile_seconds: float,
) -> Table:
    table = Table(
        "Rendered TypeScript hit paths: throughput / their own floor, and round trips",
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
        result = results.get(pattern)
        if result is None:
            why = failed.get(pattern) or missing.get(pattern, "not measured")
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
    loaded = [f"{p} {r.loads}" for p, r in results.items() if r.loads]
    table.notes.append(
        "Loader calls and store reads during the counted and timed hits: "
        + (
            f"{', '.join(loaded)}, so those figures are not all hits"
            if loaded
            else "none, every call was a hit"
        )
        + "."
    )
    table.notes.append(
        "The floor reads with node-redis's own `get` (a string reply). The rendered "
        "modules send their commands through `sendCommand` and ask for Buffer replies, "
        "decoded as strict UTF-8 before `JSON.parse`, so that stored bytes are seen "
        "exactly; the constructors are called as each module's docs show, with no "
        "options (early-refresh: `background: true`, as section 2 builds the Python one)."
    )
    table.notes.append(
        f"{versions}: the toolchain pinned in templategen/drivers/typescript. Rendering "
        f"the {built} modules took {render_seconds:.1f} s (prettier and tsc checks as one "
        f"batch) and the one tsc run {compile_seconds:.1f} s; each pattern's hit and the "
        f"floor ran {WARMUP} times before anything was timed, so V8 had optimised both."
    )
    return table


def _count(summary: Summary) -> str:
    """A count that was the same in every repetition as itself, else with its range."""
    return f"{summary.median:g}" if summary.low == summary.high else count_text(summary)


def _targets(
    results: dict[str, _Result], failed: dict[str, str], missing: dict[str, str]
) -> list[Target]:
    # A hit that called a loader or read the store was a miss: its figures say nothing
    # about the hit path, so they cannot meet a target.
    loaded = [p for p, r in results.items() if r.loads]
    unmeasured = [f"{p} ({missing[p]})" for p in missing]
    broken = [f"{p} failed" for p in failed] + [f"{p} loaded during its hits" for p in loaded]

    def met(good: bool) -> bool | None:
        if broken or not good:
            return False
        return None if unmeasured else True

    def suffix() -> str:
        extra = broken + ([f"not measured: {', '.join(unmeasured)}"] if unmeasured else [])
        return "; " + "; ".join(extra) if extra else ""

    if not results:
        reason = suffix().removeprefix("; ")
        verdict = False if broken else None
        return [
            Target(MEASUREMENT, RATIO_TARGET, reason, verdict),
            Target(MEASUREMENT, RT_TARGET, reason, verdict),
        ]
    low = [f"{p} {r.ratio.median:.2f}×" for p, r in results.items() if r.ratio.median < TARGET]
    worst, lowest = min(results.items(), key=lambda kv: kv[1].ratio.median)
    ratio_figure = (
        f"below: {', '.join(low)}" if low else f"lowest {worst} {lowest.ratio.median:.2f}×"
    )
    # Exactly 1 in every repetition, not only in the median one.
    exact = all(r.round_trips.low == r.round_trips.high == 1 for r in results.values())
    rt_figure = ", ".join(f"{p} {_count(r.round_trips)}" for p, r in results.items())
    return [
        Target(MEASUREMENT, RATIO_TARGET, ratio_figure + suffix(), met(not low)),
        Target(MEASUREMENT, RT_TARGET, rt_figure + suffix(), met(exact)),
    ]
