"""Every rendered file passes its language's parser and formatter before it is written.

:data:`FORMATTERS` maps a language to a function that checks the rendered text and
returns it formatted; the returned text *is* the output. A failure is a template bug and
raises :class:`RenderedCodeError` with the rendered text, numbered. A language without an
entry cannot be rendered: it fails with "not yet supported" rather than passing unchecked.

Python is checked in process (``compile()`` and black). TypeScript goes through the
toolchain pinned in ``templategen/drivers/typescript`` (its package-lock.json, installed
there by ``npm ci``): prettier formats the file, then ``tsc --noEmit`` with that folder's
strict tsconfig.json must accept the formatted text — two node processes per file, and
nothing is ever downloaded while rendering. Express output is JavaScript (CommonJS) and is
checked the same way: prettier, then ``tsc --allowJs --checkJs --noEmit`` against the same
tsconfig.json, so its JSDoc types are held to the TypeScript output's strictness.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

import black
from black.mode import TargetVersion
from black.report import NothingChanged

from .errors import NotSupportedError, RenderedCodeError, ToolMissingError
from .gotools import gofmt

__all__ = [
    "BLACK_MODE",
    "FORMATTERS",
    "JAVASCRIPT_CHECK_OPTIONS",
    "TYPESCRIPT_HARNESS",
    "check_and_format",
    "javascript_workspace",
    "numbered",
    "typescript_toolchain",
]

#: Pinned with black itself (pyproject.toml): the output is compared byte for byte.
BLACK_MODE = black.Mode(target_versions={TargetVersion.PY311}, line_length=88)

Formatter = Callable[[str, str], str]


def numbered(text: str, mark: int | None = None) -> str:
    """``text`` with line numbers; line ``mark`` (1-based) gets a ``>>`` in the margin."""
    return "\n".join(
        f"{'>>' if i == mark else '  '}{i:>5} | {line}"
        for i, line in enumerate(text.splitlines(), start=1)
    )


def _python(text: str, name: str) -> str:
    try:
        compile(text, name, "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise RenderedCodeError(
            f"{name}: the rendered Python does not compile: {exc.msg} (line {exc.lineno})\n"
            + numbered(text, exc.lineno)
        ) from None
    try:
        # fast=False: black also checks that the AST is unchanged and that a second
        # pass changes nothing.
        formatted = black.format_file_contents(text, fast=False, mode=BLACK_MODE)
    except NothingChanged:
        formatted = text
    except Exception as exc:  # black raises several unrelated types; all mean "bug here"
        raise RenderedCodeError(
            f"{name}: black refused the rendered Python: {exc}\n" + numbered(text)
        ) from None
    return formatted


#: The pinned TypeScript toolchain (package.json, package-lock.json, tsconfig.json) and
#: the behaviour-suite driver; ships inside the package.
TYPESCRIPT_HARNESS = Path(__file__).parent / "drivers" / "typescript"

# Stricter than --strict on purpose: generated code has no unused names or parameters.
_TSC_CHECK_OPTIONS = {"noEmit": True, "noUnusedLocals": True, "noUnusedParameters": True}
_TSC_ERROR = re.compile(r"^(?P<file>[^\n(]+)\((?P<line>\d+),(?P<col>\d+)\): error ", re.M)
_PRETTIER_ERROR = re.compile(r"\((?P<line>\d+):(?P<col>\d+)\)")


def typescript_toolchain() -> tuple[str, Path]:
    """``(node, node_modules)`` of the pinned toolchain; ToolMissingError saying how to get it."""
    node = shutil.which("node")
    if node is None:
        raise ToolMissingError(
            "TypeScript output needs Node.js 20 or newer, and node is not on PATH: install "
            "it (Debian/Ubuntu: apt-get install nodejs npm; macOS: brew install node), then "
            f"run `npm ci --ignore-scripts` in {TYPESCRIPT_HARNESS}"
        )
    modules = TYPESCRIPT_HARNESS / "node_modules"
    for tool in ("typescript/bin/tsc", "prettier/bin/prettier.cjs", "redis/package.json"):
        if not (modules / tool).is_file():
            raise ToolMissingError(
                f"the TypeScript toolchain is not installed ({modules / tool} is missing): "
                f"run `npm ci --ignore-scripts` in {TYPESCRIPT_HARNESS} (it installs the "
                "versions pinned in package-lock.json)"
            )
    return node, modules


def typescript_workspace(folder: Path, node_modules: Path) -> None:
    """Make ``folder`` a place where .ts files resolve ``redis`` and run as ES modules."""
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(node_modules, target_is_directory=True)
    (folder / "package.json").write_text('{"type": "module"}\n', encoding="utf-8")


def javascript_workspace(folder: Path, node_modules: Path) -> None:
    """Make ``folder`` a place where .js files are CommonJS and resolve ``redis``."""
    link = folder / "node_modules"
    if not link.exists():
        link.symlink_to(node_modules, target_is_directory=True)
    (folder / "package.json").write_text('{"type": "commonjs"}\n', encoding="utf-8")


def _run_node(
    node: str, args: list[str], stdin: str, cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [node, *args], input=stdin, capture_output=True, text=True, encoding="utf-8", cwd=cwd
    )


#: The check of Express output: the TypeScript check, reading JavaScript and its JSDoc.
JAVASCRIPT_CHECK_OPTIONS = {**_TSC_CHECK_OPTIONS, "allowJs": True, "checkJs": True}


def _prettier_then_tsc(
    text: str,
    name: str,
    *,
    kind: str,
    check: str,
    options: Mapping[str, object],
    workspace: Callable[[Path, Path], None],
) -> str:
    """Format ``text`` with prettier, then type-check it with tsc; return it formatted.

    One check for TypeScript and Express output: they differ only in the file kind
    (ES module TypeScript, CommonJS JavaScript) and the compiler options.
    """
    node, modules = typescript_toolchain()
    file_name = Path(name).name
    with tempfile.TemporaryDirectory(prefix="templategen-tsc-") as tmp:
        work = Path(tmp)
        # --no-config: the output must not depend on a .prettierrc that happens to sit
        # above the temp folder (or above the user's checkout).
        pretty = _run_node(
            node,
            [str(modules / "prettier/bin/prettier.cjs"), "--no-config", "--no-editorconfig",
             "--stdin-filepath", file_name],
            text,
            work,
        )  # fmt: skip
        if pretty.returncode != 0:
            where = _PRETTIER_ERROR.search(pretty.stderr)
            raise RenderedCodeError(
                f"{name}: prettier cannot parse the rendered {kind}: "
                f"{pretty.stderr.strip()}\n" + numbered(text, int(where["line"]) if where else None)
            )
        formatted = pretty.stdout
        workspace(work, modules)
        (work / file_name).write_text(formatted, encoding="utf-8")
        config = {
            "extends": str(TYPESCRIPT_HARNESS / "tsconfig.json"),
            "compilerOptions": {**options, "rootDir": "."},
            "include": [],
            "files": [file_name],
        }
        (work / "tsconfig.json").write_text(json.dumps(config), encoding="utf-8")
        tsc = _run_node(
            node, [str(modules / "typescript/bin/tsc"), "-p", ".", "--pretty", "false"], "", work
        )
    if tsc.returncode != 0:
        report = (tsc.stdout + tsc.stderr).strip()
        where = _TSC_ERROR.search(report)
        raise RenderedCodeError(
            f"{name}: the rendered {kind} does not pass {check}:\n{report}\n"
            + numbered(formatted, int(where["line"]) if where else None)
        )
    return formatted


def _typescript(text: str, name: str) -> str:
    """TypeScript output: an ES module, formatted by prettier and checked by tsc --strict."""
    return _prettier_then_tsc(
        text,
        name,
        kind="TypeScript",
        check="tsc --strict",
        options=_TSC_CHECK_OPTIONS,
        workspace=typescript_workspace,
    )


def _express(text: str, name: str) -> str:
    """Express output: CommonJS JavaScript, formatted by prettier and type-checked by tsc."""
    return _prettier_then_tsc(
        text,
        name,
        kind="JavaScript",
        check="tsc --checkJs --strict",
        options=JAVASCRIPT_CHECK_OPTIONS,
        workspace=javascript_workspace,
    )


FORMATTERS: Mapping[str, Formatter] = {
    "python": _python,
    "typescript": _typescript,
    "express": _express,
    # gofmt only: go vet needs the module and its dependencies, so it runs where the
    # behaviour suite builds the file (templategen/suite/gotarget.py).
    "go": gofmt,
}


def check_and_format(language: str, text: str, name: str) -> str:
    """Check ``text`` with ``language``'s parser and return it formatted."""
    formatter = FORMATTERS.get(language)
    if formatter is None:
        raise NotSupportedError(
            f"{language} output is not yet supported: there is no {language} "
            "parser/formatter check in templategen/formatting.py, and unchecked code is "
            "never written"
        )
    return formatter(text, name)
