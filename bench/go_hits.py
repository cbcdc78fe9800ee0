"""9. Rendered Go against go-redis: hit throughput as a ratio to its own floor, and
round trips per hit.

Every pattern that talks to Redis and has a Go template is rendered with its default
options, exactly as a user gets it (``templategen.engine.render(pattern, "go")``). The
rendered packages and the harness in ``bench/go/`` (a small adapter per pattern, what
they share in ``adapters.go`` and a ``main`` that speaks JSON lines) go into one module
with the Go driver's go.mod and go.sum, so go-redis is the version the behaviour suite
pins, and are built once, offline, with the suite's own go environment. The program then
runs as one process for the whole section, driven by ``_hit_programs`` as section 8's
is: the floor is the same go-redis client doing ``Get(ctx, key).Bytes()`` and
``json.Unmarshal`` of the same 1 KB into the same Go type.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path, PurePosixPath
from typing import Any

from templategen.engine import RenderedFile
from templategen.gotools import INSTALL_GO
from templategen.registry import Registry
from templategen.suite.gotarget import GO_HARNESS, NOT_DOWNLOADED, run_go

from ._hit_programs import Language, Program, Unmeasured
from .context import Run
from .implementations import REDIS_PATTERNS
from .report import Section

__all__ = ["measure"]

#: The harness's Go sources; ``<pattern with _>.go`` is a pattern's adapter, the others
#: go into every build.
HARNESS = Path(__file__).resolve().parent / "go"
LANGUAGE = Language(
    key="go",
    name="Go",
    title="9. Rendered Go against go-redis",
    measurement="9. rendered Go",
    floor="the same go-redis client: `Get(ctx, key).Bytes()` and `json.Unmarshal` of the "
    "same 1 KB JSON into the same Go struct",
    key_prefix="gohits",
    source=HARNESS,
)
#: Copied into every build: the program, and what the adapters share.
SHARED = ("main.go", "adapters.go")
#: The module path the program is built as; the adapters import the rendered packages
#: from under it.
MODULE = "templategen.local/gohits"
#: Where Go lives when it is not on PATH (.ci/run adds this folder to PATH too).
GO_FALLBACK = Path("/usr/local/go/bin/go")

# A build that wanted a module missing from the module cache (GOPROXY=off forbids the
# download), or a toolchain older than go.mod's go line: the machine's setup, not the
# code, so the section is "not measured" rather than failed.
_TOO_OLD = re.compile(r"requires go >= \S+")


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
    wanted, missing = LANGUAGE.buildable(registry, patterns, _adapter)
    rendered, failed = LANGUAGE.render_each(registry, wanted)
    why = {**missing, **{p: f"render failed: {error}" for p, error in failed.items()}}
    # In the patterns' order, as the table lists them.
    return rendered, {p: why[p] for p in patterns if p in why}


def _lay_out(folder: Path, rendered: dict[str, RenderedFile]) -> None:
    """One module: the driver's go.mod (renamed) and go.sum, main.go and adapters.go,
    the adapters of the rendered patterns only, and each rendered file at its package
    path."""
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
    for name in SHARED:
        shutil.copyfile(HARNESS / name, folder / name)
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
    out = run_go(go, ["build", "-o", binary.name, "."], folder)
    seconds = time.perf_counter() - started
    if out.returncode == 0:
        return binary, seconds
    report = (out.stdout + out.stderr).strip()
    if any(sign in report for sign in NOT_DOWNLOADED):
        raise Unmeasured(
            "the Go modules are not in the module cache: run `go mod download` in "
            f"{GO_HARNESS} once (.ci/run does)",
            None,
        )
    too_old = _TOO_OLD.search(report)
    if too_old is not None:
        raise Unmeasured(f"this Go is too old: go.mod {too_old.group(0)}", None)
    raise Unmeasured(f"go build of the rendered packages failed: {report}", False)


def _go_redis_version() -> str:
    found = re.search(
        r"github\.com/redis/go-redis/v9 (v\S+)",
        (GO_HARNESS / "go.mod").read_text(encoding="utf-8"),
    )
    return found.group(1) if found else "?"


# -- the running program ------------------------------------------------------------------


class _GoProgram(Program):
    """The built program; the server's URL is on its command line."""

    runtime = "Go"

    def __init__(self, binary: Path, url: str, folder: Path) -> None:
        super().__init__([str(binary), "-url", url], folder)

    def greet(self, run: Run, value: Any, floor_key: str) -> str:
        hello = self.request("hello")
        return f"{hello['go']}, GOMAXPROCS {hello['gomaxprocs']}"

    def setup_fields(self, value: Any, floor_key: str) -> dict[str, object]:
        # The program writes the floor's key itself, from the value's bytes as sent.
        return {"floor_key": floor_key, "value": value}


# -- the measurement ----------------------------------------------------------------------


def measure(run: Run) -> Section:
    section = LANGUAGE.section(
        run,
        "Each pattern's Go rendering with the default options, built once with the Go "
        f"driver's pinned go-redis ({_go_redis_version()}) and driven as one process.",
    )
    go = _find_go()
    if go is None:
        reason = f"go is not on PATH nor at {GO_FALLBACK}: {INSTALL_GO}"
        return LANGUAGE.unmeasured(section, reason, None)
    started = time.perf_counter()
    rendered, missing = _render(REDIS_PATTERNS)
    render_seconds = time.perf_counter() - started
    if not rendered:
        reason = "; ".join(f"{p}: {w}" for p, w in missing.items())
        # A template that fails to render is the code's fault, not the machine's.
        failed = any(w.startswith("render failed") for w in missing.values())
        return LANGUAGE.unmeasured(section, reason, False if failed else None)
    folder = run.workdir / "go-hits"
    _lay_out(folder, rendered)
    run.log(f"go build of {len(rendered)} rendered packages")
    try:
        binary, build_seconds = _build(go, folder)
    except Unmeasured as exc:
        return LANGUAGE.unmeasured(section, str(exc), exc.met)

    program = _GoProgram(binary, run.url, folder)
    measured = LANGUAGE.measure(run, program, rendered)
    note = (
        f"{measured.runtime}. Rendering the {len(rendered)} packages took "
        f"{render_seconds:.1f} s and the one `go build` {build_seconds:.1f} s (offline, "
        "-trimpath, the user's build cache: a machine's first build also compiles go-redis "
        "and the standard library, later ones reuse them)."
    )
    return LANGUAGE.finish(section, measured, missing, [note])
