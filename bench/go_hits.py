"""9. Rendered Go against go-redis: hit throughput as a ratio to its own floor, and
round trips per hit.

Every pattern that talks to Redis and has a Go template is rendered with its default
options, exactly as a user gets it (``templategen.engine.render(pattern, "go")``). The
rendered packages and the harness in ``bench/go/`` (a small adapter per pattern and a
``main`` that speaks JSON lines) go into one module with the Go driver's go.mod and
go.sum, so go-redis is the version the behaviour suite pins, and are built once, offline,
with the suite's own go environment. The program then runs as one process for the
whole section:

- *round trips*: a MONITOR window opens around exactly one request for ``HITS`` hits, so
  the server's count of client requests is the hits' and nothing else's;
- *throughput*: the program times alternating chunks of the pattern's hit and of its
  floor, the same go-redis client doing ``Get(ctx, key).Bytes()`` and ``json.Unmarshal``
  of the same 1 KB into the same Go type, with section 2's method (see
  ``throughput._paired``); only the chunk times come back over the pipe.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import statistics
import subprocess
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from templategen.engine import RenderedFile, render
from templategen.errors import TemplategenError
from templategen.gotools import INSTALL_GO
from templategen.registry import Registry
from templategen.suite.gotarget import GO_HARNESS, go_environment

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
#: The harness's Go sources; ``<pattern with _>.go`` is a pattern's adapter.
HARNESS = Path(__file__).resolve().parent / "go"
#: The module path the program is built as; the adapters import the rendered packages
#: from under it.
MODULE = "templategen.local/gohits"
#: Where Go lives when it is not on PATH (.ci/run adds this folder to PATH too).
GO_FALLBACK = Path("/usr/local/go/bin/go")
#: How long one request may take before the program is taken for hung: a setup or a
#: repetition takes well under a second.
REPLY_TIMEOUT = 60.0
MEASUREMENT = "9. rendered Go"
RATIO_TARGET = f"every pattern's hit ≥ {TARGET:.2f}× its own floor (rendered Go)"
RT_TARGET = "hit = exactly 1 round trip (rendered Go)"

# A build that wanted a module missing from the module cache (GOPROXY=off forbids the
# download), or a toolchain older than go.mod's go line: the machine's setup, not the
# code, so the section is "not measured" rather than failed.
_NOT_DOWNLOADED = ("GOPROXY=off", "module lookup disabled", "missing go.sum entry")
_TOO_OLD = re.compile(r"requires go >= \S+")


class _Sizes:
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


def _find_go() -> str | None:
    found = shutil.which("go")
    if found is not None:
        return found
    return str(GO_FALLBACK) if GO_FALLBACK.is_file() else None


def _adapter(pattern: str) -> Path:
    return HARNESS / f"{pattern.replace('-', '_')}.go"


def _render(patterns: tuple[str, ...]) -> tuple[dict[str, RenderedFile], dict[str, str]]:
    """The default rendering of each pattern that can be built here, and why not the others."""
    registry = Registry()
    rendered: dict[str, RenderedFile] = {}
    missing: dict[str, str] = {}
    for pattern in patterns:
        if "go" not in registry.get(pattern).languages:
            missing[pattern] = "no Go template"
        elif not _adapter(pattern).is_file():
            missing[pattern] = f"no bench adapter ({_adapter(pattern).name})"
        else:
            try:
                rendered[pattern] = render(pattern, "go", registry=registry)
            except TemplategenError as exc:
                missing[pattern] = f"render failed: {exc}"
    return rendered, missing


def _lay_out(folder: Path, rendered: dict[str, RenderedFile]) -> None:
    """One module: the driver's go.mod (renamed) and go.sum, main.go, the adapters of
    the rendered patterns only, and each rendered file at its package path."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    go_mod = (GO_HARNESS / "go.mod").read_text(encoding="utf-8")
    # Only the module line changes: the requirements, and so go.sum, stay the pins.
    go_mod, renamed = re.subn(r"(?m)^module\s+\S+\s*$", f"module {MODULE}", go_mod, count=1)
    if not renamed:
        raise RuntimeError(f"{GO_HARNESS / 'go.mod'} has no module line")
    (folder / "go.mod").write_text(go_mod, encoding="utf-8")
    shutil.copyfile(GO_HARNESS / "go.sum", folder / "go.sum")
    shutil.copyfile(HARNESS / "main.go", folder / "main.go")
    for pattern, file in rendered.items():
        shutil.copyfile(_adapter(pattern), folder / _adapter(pattern).name)
        # go/cacheaside/cache_aside.go -> cacheaside/cache_aside.go in the module.
        target = folder / PurePosixPath(file.path).relative_to(file.language)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(file.text, encoding="utf-8")


def _build(go: str, folder: Path) -> tuple[Path, float]:
    """``go build`` in ``folder``: the binary and the build's seconds."""
    binary = folder / ("gohits.exe" if os.name == "nt" else "gohits")
    started = time.perf_counter()
    out = subprocess.run(
        [go, "build", "-o", binary.name, "."],
        cwd=folder,
        env=go_environment(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )
    seconds = time.perf_counter() - started
    if out.returncode == 0:
        return binary, seconds
    report = (out.stdout + out.stderr).strip()
    if any(sign in report for sign in _NOT_DOWNLOADED):
        raise _Unmeasured(
            "the Go modules are not in the module cache: run `go mod download` in "
            f"{GO_HARNESS} once (.ci/run does)",
            None,
        )
    too_old = _TOO_OLD.search(report)
    if too_old is not None:
        raise _Unmeasured(f"this Go is too old: go.mod {too_old.group(0)}", None)
    raise _Unmeasured(f"go build of the rendered packages failed: {report}", False)


def _go_redis_version() -> str:
    found = re.search(
        r"github\.com/redis/go-redis/v9 (v\S+)",
        (GO_HARNESS / "go.mod").read_text(encoding="utf-8"),
    )
    return found.group(1) if found else "?"


# -- the running program ------------------------------------------------------------------


class _GoProgram:
    """The built program, running: one JSON line per request, one per reply."""

    def __init__(self, binary: Path, url: str, stderr: Path) -> None:
        self._stderr_path = stderr
        self._stderr: IO[bytes] = stderr.open("wb")
        self._proc = subprocess.Popen(
            [str(binary), "-url", url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            encoding="utf-8",
        )

    def request(self, op: str, **fields: object) -> dict[str, Any]:
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
            raise RuntimeError(f"the Go program gave no reply to {op!r} in {REPLY_TIMEOUT:.0f} s")
        line = self._proc.stdout.readline()
        if not line:
            raise RuntimeError(self._died(op))
        reply: dict[str, Any] = json.loads(line)
        if not reply.get("ok"):
            raise _PatternFailed(str(reply.get("error")))
        return reply

    def _died(self, op: str) -> str:
        code = self._proc.wait()
        self._stderr.flush()
        tail = self._stderr_path.read_text(encoding="utf-8", errors="replace")[-2000:].strip()
        return f"the Go program exited ({code}) during {op!r}: {tail or 'nothing on stderr'}"

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


def _measure_pattern(
    run: Run, program: _GoProgram, pattern: str, value: Any, floor_key: str, sizes: _Sizes
) -> _Result:
    run.log(f"{pattern} hit (rendered Go)")
    key = f"gohits:{pattern}:{uuid.uuid4().hex}"
    program.request("setup", pattern=pattern, key=key, floor_key=floor_key, value=value)
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
        "go",
        "9. Rendered Go against go-redis",
        "Each pattern's Go rendering with the default options, built once with the Go "
        f"driver's pinned go-redis ({_go_redis_version()}) and driven as one process. "
        f"*ratio to floor*: hit calls per second / the floor's, median (min–max) of "
        f"{run.reps} repetitions; each repetition alternates {sizes.rounds} chunks of "
        f"{sizes.chunk} calls of the hit and of its floor (the same go-redis client: "
        "`Get(ctx, key).Bytes()` and `json.Unmarshal` of the same 1 KB JSON into the same "
        "Go struct) and takes the median ratio of adjacent chunks, as section 2. *RT per "
        f"hit*: requests the server received from clients (MONITOR) over {HITS} hits per "
        "repetition; *commands per hit*: every command it ran (commandstats), those "
        f"inside Lua included. Targets: ≥ {TARGET:.2f}× and exactly 1 round trip, every "
        "pattern.",
    )
    go = _find_go()
    if go is None:
        return _unmeasured(section, f"go is not on PATH nor at {GO_FALLBACK}: {INSTALL_GO}", None)
    started = time.perf_counter()
    rendered, missing = _render(REDIS_PATTERNS)
    render_seconds = time.perf_counter() - started
    if not rendered:
        return _unmeasured(section, "; ".join(f"{p}: {w}" for p, w in missing.items()), None)
    folder = run.workdir / "go-hits"
    _lay_out(folder, rendered)
    run.log(f"go build of {len(rendered)} rendered packages")
    try:
        binary, build_seconds = _build(go, folder)
    except _Unmeasured as exc:
        return _unmeasured(section, str(exc), exc.met)

    value = json_value()
    floor_key = f"gohits:floor:{uuid.uuid4().hex}"
    results: dict[str, _Result] = {}
    failed: dict[str, str] = {}
    go_runtime = "Go (no answer)"
    program = _GoProgram(binary, run.url, folder / "stderr.log")
    try:
        hello = program.request("hello")
        go_runtime = f"{hello['go']}, GOMAXPROCS {hello['gomaxprocs']}"
        for pattern in rendered:
            try:
                results[pattern] = _measure_pattern(run, program, pattern, value, floor_key, sizes)
            except _PatternFailed as exc:
                failed[pattern] = str(exc)
    except RuntimeError as exc:
        # The program is gone: the patterns it had not finished get no figure.
        for pattern in rendered:
            if pattern not in results:
                failed.setdefault(pattern, str(exc))
    finally:
        program.close()
        run.server_counts.client.delete(floor_key)

    section.tables.append(
        _table(results, failed, missing, go_runtime, len(rendered), build_seconds, render_seconds)
    )
    section.targets += _targets(results, failed, missing)
    section.plot["throughput (Go)"] = {f"{p} (Go)": r.ratio for p, r in results.items()}
    return section


def _unmeasured(section: Section, reason: str, met: bool | None) -> Section:
    section.targets += [
        Target(MEASUREMENT, RATIO_TARGET, reason, met),
        Target(MEASUREMENT, RT_TARGET, reason, met),
    ]
    return section


def _table(
    results: dict[str, _Result],
    failed: dict[str, str],
    missing: dict[str, str],
    go_runtime: str,
    built: int,
    build_seconds: float,
    render_seconds: float,
) -> Table:
    table = Table(
        "Rendered Go hit paths: throughput / their own floor, and round trips",
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
        f"{go_runtime}. Rendering the {built} packages took {render_seconds:.1f} s and "
        f"the one `go build` {build_seconds:.1f} s (offline, -trimpath, the user's build "
        "cache: a machine's first build also compiles go-redis and the standard library, "
        "later ones reuse them)."
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
        return None if unmeasured or not results else True

    def suffix() -> str:
        extra = broken + ([f"not measured: {', '.join(unmeasured)}"] if unmeasured else [])
        return "; " + "; ".join(extra) if extra else ""

    targets = []
    if results:
        low = [f"{p} {r.ratio.median:.2f}×" for p, r in results.items() if r.ratio.median < TARGET]
        worst, lowest = min(results.items(), key=lambda kv: kv[1].ratio.median)
        figure = f"below: {', '.join(low)}" if low else f"lowest {worst} {lowest.ratio.median:.2f}×"
        targets.append(Target(MEASUREMENT, RATIO_TARGET, figure + suffix(), met(not low)))
        # Exactly 1 in every repetition, not only in the median one.
        exact = all(r.round_trips.low == r.round_trips.high == 1 for r in results.values())
        figure = ", ".join(f"{p} {_count(r.round_trips)}" for p, r in results.items())
        targets.append(Target(MEASUREMENT, RT_TARGET, figure + suffix(), met(exact)))
    else:
        reason = suffix().removeprefix("; ")
        targets += [
            Target(MEASUREMENT, RATIO_TARGET, reason, met(False) if broken else None),
            Target(MEASUREMENT, RT_TARGET, reason, met(False) if broken else None),
        ]
    return targets
