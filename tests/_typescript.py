"""Helpers for the TypeScript tests: run the pinned tsc and node on files in a temp folder.

The folder gets the harness's node_modules and ``"type": "module"`` (as the engine's own
check and the suite targets do), so files import ``redis`` and each other as ES modules.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Mapping
from pathlib import Path

from templategen.formatting import TYPESCRIPT_HARNESS, typescript_toolchain, typescript_workspace

_TSC_ERROR = re.compile(
    r"^(?P<file>[^(\n]+)\((?P<line>\d+),(?P<col>\d+)\): error (?P<text>.*)$", re.M
)


def tsc(folder: Path, files: Mapping[str, str], *, emit: bool = False) -> dict[str, list[str]]:
    """Write ``files`` into ``folder`` and type-check them (strict, as the engine does).

    Returns the errors per file name ({} when clean). With ``emit``, JavaScript goes to
    ``folder/out``.
    """
    node, modules = typescript_toolchain()
    folder.mkdir(parents=True, exist_ok=True)
    typescript_workspace(folder, modules)
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    options: dict[str, object] = {"rootDir": ".", "noUnusedLocals": False}
    options.update({"outDir": "out"} if emit else {"noEmit": True})
    config = {
        "extends": str(TYPESCRIPT_HARNESS / "tsconfig.json"),
        "compilerOptions": options,
        "include": [],
        "files": sorted(files),
    }
    (folder / "tsconfig.json").write_text(json.dumps(config), encoding="utf-8")
    out = subprocess.run(
        [node, str(modules / "typescript" / "bin" / "tsc"), "-p", ".", "--pretty", "false"],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    errors: dict[str, list[str]] = {}
    for match in _TSC_ERROR.finditer(out.stdout):
        errors.setdefault(match["file"], []).append(f"{match['line']}: {match['text']}")
    if out.returncode != 0 and not errors:
        raise AssertionError(f"tsc failed without file errors:\n{out.stdout}{out.stderr}")
    return errors


def node_run(folder: Path, script: str) -> str:
    """Run an ES module ``script`` in ``folder`` with node; its stdout."""
    node, _ = typescript_toolchain()
    path = folder / "run.mjs"
    path.write_text(script, encoding="utf-8")
    out = subprocess.run([node, str(path)], cwd=folder, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout


def code_only(text: str) -> str:
    """``text`` without comments and string/template literals (good enough for scanning)."""
    pattern = re.compile(
        r"//[^\n]*|/\*.*?\*/|\"(?:\\.|[^\"\\\n])*\"|'(?:\\.|[^'\\\n])*'|`(?:\\.|[^`\\])*`",
        re.S,
    )
    return pattern.sub(" ", text)
