"""Go suite targets: a rendered Go package, vetted and built into the Go driver.

Go has no dynamic import, and the rendered package and type names are options, so the
adapter that maps scenario ops onto a pattern's Go API is itself a template
(``templategen/drivers/go/adapters/<pattern>/go.go.j2``), rendered with the target's own
options and the same filters as the pattern's template. One build folder per target::

    <workdir>/go/<pattern>/
        go.mod, go.sum, *.go        the harness: the module and the driver's main package
        adapter.go                  the pattern's adapter, rendered
        <files.go>                  the rendered package, at its pattern.toml path
        <dir>/example_test.go       its runnable examples, rendered (if the pattern has any)
        driver                      the binary the runner starts

``go vet ./...`` must pass there (this is where the rendered Go is vetted: vet needs the
module), then ``go build``. Nothing is downloaded: the modules pinned by the harness's
go.sum must already be in the module cache (``go mod download`` in the harness), and
builds share the user's build cache, so only the first build compiles go-redis.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath

from ..context import build_context
from ..engine import RenderedFile, render_template
from ..errors import RenderedCodeError, ToolMissingError
from ..formatting import numbered
from ..gotools import find_go_tool, gofmt
from ..registry import Registry

__all__ = [
    "GO_HARNESS",
    "build_go_driver",
    "go_environment",
    "has_go_adapter",
    "render_adapter",
    "render_examples",
]

#: The Go module of the behaviour suite: go.mod and go.sum pin go-redis and x/sync.
GO_HARNESS = Path(__file__).parent.parent / "drivers" / "go"

_MODULE = re.compile(r"^module\s+(\S+)\s*$", re.M)
#: Signs that a build wanted a module that is not in the cache (GOPROXY=off forbids
#: fetching it).
NOT_DOWNLOADED = ("GOPROXY=off", "module lookup disabled", "missing go.sum entry")


def _harness_template(kind: str, pattern: str) -> Path:
    """``adapters/<pattern>/go.go.j2`` or ``examples/<pattern>/go.go.j2``."""
    return GO_HARNESS / kind / pattern / "go.go.j2"


def has_go_adapter(pattern: str) -> bool:
    """Whether the Go driver has an adapter for ``pattern``."""
    return _harness_template("adapters", pattern).is_file()


def go_environment() -> dict[str, str]:
    """The environment of every go command the suite runs: offline, local toolchain."""
    env = dict(os.environ)
    env.update(
        # Only what go.sum pins, from the module cache: a test run never downloads.
        # -trimpath keeps the build folder's path out of the build cache's keys, so the
        # same sources built in another temp folder are cache hits (only the link runs).
        GOFLAGS="-mod=readonly -buildvcs=false -trimpath",
        GOPROXY="off",
        GOTOOLCHAIN="local",
        GOWORK="off",
        # Pure Go (the net package's resolver too): no C compiler needed.
        CGO_ENABLED="0",
    )
    return env


def _module_path() -> str:
    match = _MODULE.search((GO_HARNESS / "go.mod").read_text(encoding="utf-8"))
    if match is None:
        raise RuntimeError(f"{GO_HARNESS / 'go.mod'} has no module line")
    return match.group(1)


def _package_dir(rendered: RenderedFile) -> PurePosixPath:
    """The rendered file's folder inside the module: its path without ``go/``."""
    return rendered.path.relative_to(rendered.language).parent


def render_adapter(rendered: RenderedFile, registry: Registry | None = None) -> str:
    """The pattern's Go adapter, rendered with ``rendered``'s options, gofmt-clean."""
    return _render_harness_template("adapters", rendered, registry)


def render_examples(rendered: RenderedFile, registry: Registry | None = None) -> str | None:
    """The pattern's runnable Example functions (an ``_test.go`` file of the rendered
    package) rendered with ``rendered``'s options, or None if it has none."""
    if not _harness_template("examples", rendered.pattern).is_file():
        return None
    return _render_harness_template("examples", rendered, registry)


def _render_harness_template(kind: str, rendered: RenderedFile, registry: Registry | None) -> str:
    spec = (registry or Registry()).get(rendered.pattern)
    context = dict(build_context(spec, "go", rendered.options))
    context["import_path"] = f"{_module_path()}/{_package_dir(rendered)}"
    # The harness folder stands in for the pattern folder: same filters, same strict
    # environment, and errors that name drivers/go/<kind>/<pattern>/go.go.j2.
    name = f"drivers/go/{kind}/{spec.name}"
    folder = _harness_template(kind, spec.name).parent
    text = render_template(dataclasses.replace(spec, name=name, folder=folder), "go", context)
    return gofmt(text, f"{name}/go.go.j2 (rendered)")


def run_go(go: str, args: list[str], folder: Path) -> subprocess.CompletedProcess[str]:
    """``go ARGS`` in ``folder`` with the strict, offline environment (go_environment)."""
    return subprocess.run(
        [go, *args],
        cwd=folder,
        env=go_environment(),
        capture_output=True,
        text=True,
        encoding="utf-8",
        errors="replace",
        check=False,
    )


def _failed(step: str, out: subprocess.CompletedProcess[str], source: str, path: str) -> Exception:
    report = (out.stdout + out.stderr).strip()
    if any(sign in report for sign in NOT_DOWNLOADED):
        return ToolMissingError(
            f"the Go modules the suite builds with are not downloaded; run "
            f"`go mod download` in {GO_HARNESS} once (it fetches what go.sum pins):\n{report}"
        )
    # Mark the first line go reports in the rendered file, if it names one.
    where = re.search(re.escape(path) + r":(\d+):", report)
    return RenderedCodeError(
        f"{path}: `go {step}` failed:\n{report}\n"
        + numbered(source, int(where.group(1)) if where else None)
    )


def build_go_driver(rendered: RenderedFile, workdir: Path) -> Path:
    """Vet and build the Go driver for ``rendered`` under ``workdir``; the binary's path."""
    go = find_go_tool("go", "the Go behaviour suite")
    folder = workdir / "go" / rendered.pattern
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for item in GO_HARNESS.iterdir():
        if item.name in ("go.mod", "go.sum") or (
            item.suffix == ".go" and not item.name.endswith("_test.go")
        ):
            shutil.copyfile(item, folder / item.name)
    package = _package_dir(rendered)
    source = folder / package / rendered.path.name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_text(rendered.text, encoding="utf-8")
    (folder / "adapter.go").write_text(render_adapter(rendered), encoding="utf-8")
    examples = render_examples(rendered)
    if examples is not None:
        # Vetted with the rest; tests/test_go_suite.py runs them with go test.
        (source.parent / "example_test.go").write_text(examples, encoding="utf-8")
    shown = str(package / rendered.path.name)
    vet = run_go(go, ["vet", "./..."], folder)
    if vet.returncode != 0:
        raise _failed("vet", vet, rendered.text, shown)
    binary = folder / ("driver.exe" if os.name == "nt" else "driver")
    build = run_go(go, ["build", "-o", binary.name, "."], folder)
    if build.returncode != 0:
        raise _failed("build", build, rendered.text, shown)
    return binary
