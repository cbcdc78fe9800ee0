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

:func:`check_and_format_all` checks many files at once and returns exactly what
:func:`check_and_format` would for each, in two node processes for all the TypeScript and
Express files instead of two per file: one prettier run formats them all, and one
``tsc --build`` checks each file as a project of its own, so no file can lean on another's
declarations. A file the batch cannot vouch for (prettier or tsc failed on it, or the
batch could not tell) goes through the per-file check, whose message is the one users see.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
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
    "check_and_format_all",
    "check_node_batch",
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


@dataclass(frozen=True, slots=True)
class _NodeCheck:
    """prettier, then tsc: one check for TypeScript and Express output.

    They differ only in the file kind (ES module TypeScript, CommonJS JavaScript) and the
    compiler options. Being one type is what lets :func:`check_and_format_all` batch them.
    """

    #: What the file is, and what it must pass, as the error messages say it.
    kind: str
    check: str
    options: Mapping[str, object]
    workspace: Callable[[Path, Path], None]

    def __call__(self, text: str, name: str) -> str:
        return _prettier_then_tsc(text, name, self)

    def tsconfig(self, file_name: str) -> str:
        """The tsconfig.json that checks ``file_name`` alone, in its own folder."""
        config = {
            "extends": str(TYPESCRIPT_HARNESS / "tsconfig.json"),
            # outDir and the build info here, not where the base config says: tsc --build
            # writes its .tsbuildinfo even with noEmit, and the base's "out" is inside the
            # installed package (read-only, and shared by every check at once).
            "compilerOptions": {
                **self.options,
                "rootDir": ".",
                "outDir": "out",
                "tsBuildInfoFile": "out/tsconfig.tsbuildinfo",
            },
            "include": [],
            "files": [file_name],
        }
        return json.dumps(config)


def _prettier_args(modules: Path) -> list[str]:
    # --no-config: the output must not depend on a .prettierrc that happens to sit above
    # the temp folder (or above the user's checkout). --no-color: the batch reads the
    # names prettier prints, and with CI set (or FORCE_COLOR) it colours them.
    return [
        str(modules / "prettier/bin/prettier.cjs"),
        "--no-config",
        "--no-editorconfig",
        "--no-color",
    ]


def _tsc_args(modules: Path, mode: str, *projects: str) -> list[str]:
    # tsc takes --build only as its first argument.
    return [str(modules / "typescript/bin/tsc"), mode, *projects, "--pretty", "false"]


def _prettier_then_tsc(text: str, name: str, check: _NodeCheck) -> str:
    """Format ``text`` with prettier, then type-check it with tsc; return it formatted."""
    node, modules = typescript_toolchain()
    file_name = Path(name).name
    with tempfile.TemporaryDirectory(prefix="templategen-tsc-") as tmp:
        work = Path(tmp)
        pretty = _run_node(
            node, [*_prettier_args(modules), "--stdin-filepath", file_name], text, work
        )
        if pretty.returncode != 0:
            where = _PRETTIER_ERROR.search(pretty.stderr)
            raise RenderedCodeError(
                f"{name}: prettier cannot parse the rendered {check.kind}: "
                f"{pretty.stderr.strip()}\n" + numbered(text, int(where["line"]) if where else None)
            )
        formatted = pretty.stdout
        check.workspace(work, modules)
        (work / file_name).write_text(formatted, encoding="utf-8")
        (work / "tsconfig.json").write_text(check.tsconfig(file_name), encoding="utf-8")
        tsc = _run_node(node, _tsc_args(modules, "-p", "."), "", work)
    if tsc.returncode != 0:
        report = (tsc.stdout + tsc.stderr).strip()
        where = _TSC_ERROR.search(report)
        raise RenderedCodeError(
            f"{name}: the rendered {check.kind} does not pass {check.check}:\n{report}\n"
            + numbered(formatted, int(where["line"]) if where else None)
        )
    return formatted


def check_node_batch(files: Sequence[tuple[str, str, str]]) -> list[str | None]:
    """Check TypeScript and Express ``(language, text, name)`` files in one batch.

    Returns each file's formatted text where the batch proves the per-file check would
    return that very text: prettier reported writing the file and no error, and tsc
    reported no error in the file's project. None means "check this one alone", which
    also gives its error message.
    """
    checks = []
    for language, _, _ in files:
        check = FORMATTERS.get(language)
        if not isinstance(check, _NodeCheck):
            raise NotSupportedError(
                f"{language} output is not checked by node: the batch takes TypeScript and "
                "Express files only"
            )
        checks.append(check)
    node, modules = typescript_toolchain()
    # One folder per file, named by its index: two files may share a name (one pattern
    # with two option sets), each folder becomes its own tsc project, and an error line
    # leads back to its file by the folder.
    paths = [f"{i}/{Path(name).name}" for i, (_, _, name) in enumerate(files)]
    with tempfile.TemporaryDirectory(prefix="templategen-tsc-") as tmp:
        work = Path(tmp)
        for path, (_, text, _) in zip(paths, files, strict=True):
            (work / path).parent.mkdir()
            (work / path).write_text(text, encoding="utf-8")
        # prettier names each file it wrote on stdout ("0/cacheAside.ts 40ms") and each it
        # could not parse on stderr ("[error] 1/broken.js: SyntaxError: ..."); a file it
        # does not say it wrote (ignored, not found, not parsed) is not vouched for.
        pretty = _run_node(node, [*_prettier_args(modules), "--write", *paths], "", work)
        wrote = {line.split(" ", 1)[0] for line in pretty.stdout.splitlines()}
        formatted: dict[int, str] = {}
        for i, path in enumerate(paths):
            if path in wrote and f"[error] {path}:" not in pretty.stderr:
                formatted[i] = (work / path).read_text(encoding="utf-8")
        for i in formatted:
            folder = work / str(i)
            checks[i].workspace(folder, modules)
            tsconfig = checks[i].tsconfig(Path(paths[i]).name)
            (folder / "tsconfig.json").write_text(tsconfig, encoding="utf-8")
        if formatted:
            projects = [str(i) for i in formatted]
            tsc = _run_node(node, _tsc_args(modules, "--build", *projects), "", work)
            if tsc.returncode != 0:
                for i in _tsc_failures(tsc.stdout + tsc.stderr, len(files)):
                    formatted.pop(i, None)
    return [formatted.get(i) for i in range(len(files))]


def _tsc_failures(report: str, count: int) -> set[int]:
    """The indexes of the projects a failed ``tsc --build`` reported errors in.

    Every file when a line of the report cannot be traced to one (an error in no file,
    or one tsc reports in a way not seen before): then nothing is vouched for.
    """
    failed: set[int] = set()
    for line in report.splitlines():
        if not line.strip() or line[0].isspace():
            continue  # a blank line, or the continuation of a multi-line message
        folder = line.split("/", 1)[0]
        if "/" not in line or not folder.isdigit() or int(folder) >= count:
            return set(range(count))
        failed.add(int(folder))
    return failed or set(range(count))


_TYPESCRIPT = _NodeCheck(
    # TypeScript output: an ES module, formatted by prettier and checked by tsc --strict.
    kind="TypeScript",
    check="tsc --strict",
    options=_TSC_CHECK_OPTIONS,
    workspace=typescript_workspace,
)
_EXPRESS = _NodeCheck(
    # Express output: CommonJS JavaScript, formatted by prettier and type-checked by tsc.
    kind="JavaScript",
    check="tsc --checkJs --strict",
    options=JAVASCRIPT_CHECK_OPTIONS,
    workspace=javascript_workspace,
)

FORMATTERS: Mapping[str, Formatter] = {
    "python": _python,
    "typescript": _TYPESCRIPT,
    "express": _EXPRESS,
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


def check_and_format_all(files: Sequence[tuple[str, str, str]]) -> list[str]:
    """:func:`check_and_format` of each ``(language, text, name)``, in fewer processes.

    The same texts come back, and the same error: that of the first file, in order, that
    fails its check. The TypeScript and Express files are checked in one batch when the
    first of them is reached; see the module docstring.
    """
    batched = [i for i, (language, _, _) in enumerate(files) if _batches(language)]
    if len(batched) < 2:
        return [check_and_format(*file) for file in files]
    # Not run beside black in a thread: tsc --build and prettier keep both cores of a
    # small machine busy, and measured, the overlap saved nothing.
    vouched: dict[int, str | None] = {}
    formatted = []
    for i, file in enumerate(files):
        if i == batched[0]:
            batch = check_node_batch([files[j] for j in batched])
            vouched = dict(zip(batched, batch, strict=True))
        text = vouched.get(i)
        formatted.append(check_and_format(*file) if text is None else text)
    return formatted


def _batches(language: str) -> bool:
    return isinstance(FORMATTERS.get(language), _NodeCheck)
