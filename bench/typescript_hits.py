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

The program then runs as one node process for the whole section, driven by
``_hit_programs`` as section 9's is: the floor is the same node-redis client doing
``GET`` and ``JSON.parse`` of the same 1 KB value.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from templategen.engine import RenderedFile, render_many
from templategen.errors import TemplategenError, ToolMissingError
from templategen.formatting import TYPESCRIPT_HARNESS, typescript_toolchain, typescript_workspace
from templategen.registry import Registry

from ._hit_programs import Language, Program, Unmeasured
from .context import Run
from .implementations import REDIS_PATTERNS
from .report import Section

__all__ = ["measure"]

#: The program's TypeScript sources; ``adapters/<pattern>.ts`` is a pattern's adapter.
SOURCE = Path(__file__).resolve().parent / "typescript"
LANGUAGE = Language(
    key="typescript",
    name="TypeScript",
    title="8. Rendered TypeScript against node-redis",
    measurement="8. rendered TypeScript",
    floor="the same node-redis client: `GET` and `JSON.parse` of the same 1 KB JSON value",
    key_prefix="tp:typescript",
    source=SOURCE,
)
#: Calls of the hit and of the floor before anything is timed: V8 optimises a function
#: only once it has run a while, and the first chunks would time its interpreter.
WARMUP = 500


# -- the build ----------------------------------------------------------------------------


def _adapter(pattern: str) -> Path:
    return SOURCE / "adapters" / f"{pattern}.ts"


def _render(
    patterns: tuple[str, ...],
) -> tuple[dict[str, RenderedFile], dict[str, str], dict[str, str]]:
    """The default rendering of each pattern that can be measured here; the patterns
    that cannot (no template, no adapter) and those whose rendering failed, with why."""
    registry = Registry()
    wanted, missing = LANGUAGE.buildable(registry, patterns, _adapter)
    try:
        files = render_many([(p, "typescript", None) for p in wanted], registry=registry)
    except TemplategenError:
        # The batch stops at its first failure: one by one, every other pattern still
        # gets its figure and each failure its own message.
        pass
    else:
        return dict(zip(wanted, files, strict=True)), missing, {}
    rendered, failed = LANGUAGE.render_each(registry, wanted)
    return rendered, missing, {p: f"render: {error}" for p, error in failed.items()}


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
        raise Unmeasured(
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


class _NodeProgram(Program):
    """The compiled program; it connects when greeted."""

    runtime = "node"

    def __init__(self, node: str, folder: Path) -> None:
        # --expose-gc: the program collects before each repetition, as section 2 does.
        super().__init__([node, "--expose-gc", str(folder / "out" / "hits.js")], folder)

    def greet(self, run: Run, value: Any, floor_key: str) -> str:
        # The floor's value as section 2 writes its own: compact JSON, the very bytes
        # JSON.stringify makes of the same value.
        run.server_counts.client.set(floor_key, json.dumps(value, separators=(",", ":")))
        hello = self.request("connect", url=run.url, value=value, floor_key=floor_key)
        return f"node {hello['node']}"

    def setup_fields(self, value: Any, floor_key: str) -> dict[str, object]:
        return {"warmup": WARMUP}


# -- the measurement ----------------------------------------------------------------------


def measure(run: Run) -> Section:
    section = LANGUAGE.section(
        run,
        "Each pattern's TypeScript rendering with the default options, compiled with one "
        "tsc run of the pinned toolchain and driven as one node process (bench/typescript/).",
    )
    try:
        node, modules = typescript_toolchain()
    except ToolMissingError as exc:
        return LANGUAGE.unmeasured(section, str(exc), None)
    started = time.perf_counter()
    rendered, missing, failed = _render(REDIS_PATTERNS)
    render_seconds = time.perf_counter() - started
    if not rendered:
        reasons = "; ".join(f"{p}: {why}" for p, why in {**missing, **failed}.items())
        # A template that fails to render is the code's fault, not the machine's.
        return LANGUAGE.unmeasured(section, reasons, False if failed else None)
    folder = run.workdir / "typescript-hits"
    _lay_out(folder, rendered, modules)
    run.log(f"tsc of the bench program and {len(rendered)} rendered modules")
    try:
        compile_seconds = _compile(node, modules, folder)
    except Unmeasured as exc:
        return LANGUAGE.unmeasured(section, str(exc), exc.met)

    program = _NodeProgram(node, folder)
    measured = LANGUAGE.measure(run, program, rendered, failed)
    versions = (
        f"{measured.runtime}, node-redis {_package_version(modules, 'redis')}, "
        f"tsc {_package_version(modules, 'typescript')}"
    )
    notes = [
        "The floor reads with node-redis's own `get` (a string reply). The rendered "
        "modules send their commands through `sendCommand` and ask for Buffer replies, "
        "decoded as strict UTF-8 before `JSON.parse`, so that stored bytes are seen "
        "exactly; the constructors are called as each module's docs show, with no "
        "options (early-refresh: `background: true`, as section 2 builds the Python one).",
        f"{versions}: the toolchain pinned in templategen/drivers/typescript. Rendering "
        f"the {len(rendered)} modules took {render_seconds:.1f} s (prettier and tsc checks "
        f"as one batch) and the one tsc run {compile_seconds:.1f} s; each pattern's hit and "
        f"the floor ran {WARMUP} times before anything was timed, so V8 had optimised both.",
    ]
    return LANGUAGE.finish(section, measured, missing, notes)
